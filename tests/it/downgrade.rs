//! Never a silent downgrade (found on public repos): `mariadb:10.9` under a filter for
//! `10.6.x-focal` was rewritten to the older `10.6.12-focal`, the reason only in JSON. Now a
//! tag the policy does not accept is replaced by a lower version only with
//! `allow_downgrade: true`; otherwise it is kept and skipped with its reason in text,
//! Markdown and JSON alike. Against the real registry.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::Registry;

fn tree(dir: &Path, registry: &str, allow_downgrade: bool) {
    std::fs::write(
        dir.join(".image-updater.yaml"),
        format!(
            "registries:\n  - {{ host: {registry}, insecure: true }}\n\
             images:\n  - name: db\n    image: {registry}/acme/db\n    policy: {{ semver: '*' }}\n    \
             filter: {{ pattern: '^(?P<v>10\\.6\\.\\d+)-focal$', extract: '$v' }}\n    \
             allow_downgrade: {allow_downgrade}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("db.yaml"),
        format!(
            "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {{ name: db }}\nspec:\n  template:\n    spec:\n      containers:\n        - name: new\n          image: {registry}/acme/db:10.9\n        - name: old\n          image: {registry}/acme/db:10.5\n"
        ),
    )
    .unwrap();
}

fn plan(dir: &Path, format: &str) -> (Option<i32>, String) {
    let o = Command::new(common::test_bin())
        .args(["plan", dir.to_str().unwrap(), "--output", format])
        .env("NO_COLOR", "1")
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITLAB_CI")
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.code(), all)
}

#[test]
fn a_filter_that_excludes_the_current_tag_never_moves_it_down_silently() {
    let registry = Registry::start();
    registry.push_image(
        "acme/db",
        &["10.6.11-focal", "10.6.12-focal", "10.9", "11.0"],
    );
    let tmp = tempfile::tempdir().unwrap();
    tree(tmp.path(), &registry.addr, false);

    let (code, json) = plan(tmp.path(), "json");
    assert_eq!(code, Some(0), "{json}");
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    let moves: Vec<(&str, &str)> = report["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["from"].as_str().unwrap(), u["to"].as_str().unwrap()))
        .collect();
    assert_eq!(moves, [("10.5", "10.6.12-focal")], "{json}");
    let held: Vec<&serde_json::Value> = report["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["line"] == 9)
        .collect();
    assert_eq!(held.len(), 1, "{json}");
    let reason = held[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("10.9")
            && reason.contains("10.6.12-focal")
            && reason.contains("allow_downgrade"),
        "{reason}"
    );
    // The same reason in the text and Markdown reports.
    for format in ["text", "markdown"] {
        let (code, out) = plan(tmp.path(), format);
        assert_eq!(code, Some(0), "{out}");
        assert!(
            out.contains("lower version") && out.contains("allow"),
            "{format}: {out}"
        );
    }
    // The diff moves one reference, 10.5; 10.9 stays.
    let (_, text) = plan(tmp.path(), "text");
    let added: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with('+') && l.contains("acme/db:"))
        .collect();
    assert_eq!(added.len(), 1, "{text}");
    let removed: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with('-') && l.contains("acme/db:"))
        .collect();
    assert!(
        removed.len() == 1 && removed[0].ends_with("acme/db:10.5"),
        "{text}"
    );

    // With the opt-in, 10.9 moves down too.
    tree(tmp.path(), &registry.addr, true);
    let (code, json) = plan(tmp.path(), "json");
    assert_eq!(code, Some(0), "{json}");
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    let mut moves: Vec<(&str, &str)> = report["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["from"].as_str().unwrap(), u["to"].as_str().unwrap()))
        .collect();
    moves.sort();
    assert_eq!(
        moves,
        [("10.5", "10.6.12-focal"), ("10.9", "10.6.12-focal")],
        "{json}"
    );
}
