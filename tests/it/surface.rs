//! What a newcomer meets first, run against the binary: each subcommand's `--help`, the
//! message of a config that is wrong (once, where it is wrong), a config that only looks
//! wrong (`images:` with no items), `delivery.forge` checked when the config is read, and what
//! `skipped` says about markers and Helm templates.

use crate::common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use common::Registry;

/// The binary in `dir`, with none of the caller's `IMAGE_UPDATER_*`, CI or token variables.
fn bin(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(common::test_bin());
    cmd.current_dir(dir)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("NO_COLOR", "1");
    cmd.output().unwrap()
}

fn show(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The long flags a help text lists (`--name` at the start of an option line).
fn flags(help: &str) -> BTreeSet<String> {
    help.lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('-'))
        .filter_map(|l| {
            let at = l.find("--")?;
            let name: String = l[at..]
                .chars()
                .take_while(|c| *c == '-' || c.is_ascii_alphanumeric())
                .collect();
            Some(name)
        })
        .collect()
}

fn help(command: &str, flag: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = bin(dir.path(), &[command, flag]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{command} {flag}: {}",
        show(&out)
    );
    stdout(&out)
}

#[test]
fn help_lists_only_the_flags_each_command_takes() {
    let job = ["--shard", "--mode", "--clone", "--branch"];
    let everywhere = ["--config", "--output", "--verbose", "--quiet", "--no-color"];
    for command in ["run", "plan", "scan", "tags"] {
        let listed = flags(&help(command, "--help"));
        for f in everywhere {
            assert!(listed.contains(f), "{command} --help lacks {f}: {listed:?}");
        }
        for f in job {
            let takes = matches!(command, "run" | "plan");
            assert_eq!(
                listed.contains(f),
                takes,
                "{command} --help {} {f}: {listed:?}",
                if takes { "lacks" } else { "lists" }
            );
        }
    }
    assert!(flags(&help("plan", "--help")).contains("--exit-code"));
}

/// The product contract's global flags: `--config` (and `--output`, `-v`) go before the
/// command or after it.
#[test]
fn global_flags_go_before_or_after_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("elsewhere.yaml");
    std::fs::write(&cfg, "delivery: { forge: sourcehut }\n").unwrap();
    let cfg = cfg.to_str().unwrap();
    let repo = dir.path().to_str().unwrap();
    for args in [
        vec!["--config", cfg, "plan", repo],
        vec!["plan", repo, "--config", cfg],
        vec!["--output", "json", "--config", cfg, "scan", repo],
    ] {
        // The config named is the one read: its unknown forge is the error.
        let out = bin(dir.path(), &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", show(&out));
        assert!(
            show(&out).contains("elsewhere.yaml"),
            "{args:?}: {}",
            show(&out)
        );
    }
}

#[test]
fn help_describes_path_and_where_the_config_is_looked_for() {
    for command in ["run", "plan", "scan"] {
        let text = help(command, "-h");
        let path = text
            .lines()
            .find(|l| l.trim_start().starts_with("[PATH]"))
            .unwrap_or_else(|| panic!("{command} -h has no [PATH]:\n{text}"));
        let said = path.trim_start().trim_start_matches("[PATH]").trim();
        assert!(
            said.len() > "[default: .]".len() && !said.starts_with('['),
            "{command}: PATH is not described: {path:?}"
        );
        let config = text.lines().find(|l| l.contains("--config")).unwrap();
        assert!(config.contains(".image-updater.yaml at PATH"), "{config}");
    }
    // `tags` has no PATH: its config is looked for in the current directory.
    let text = help("tags", "-h");
    let config = text.lines().find(|l| l.contains("--config")).unwrap();
    assert!(config.contains("current directory"), "{config}");
    assert!(!text.contains("PATH/"), "{text}");
}

#[test]
fn config_errors_name_the_place_once() {
    let dir = tempfile::tempdir().unwrap();
    for (yaml, want) in [
        (
            "images:\n  - name: a\n    image: x/y\n    polcy: {semver: '1'}\n",
            "error: ./.image-updater.yaml:4:5: unknown field `polcy`, expected one of name, image, policy, versioning, filter, exclude, allow_downgrade, files, helm, pin_digest, platforms\n",
        ),
        (
            "images: 5\n",
            "error: ./.image-updater.yaml:1:9: expected sequence start\n",
        ),
    ] {
        std::fs::write(dir.path().join(".image-updater.yaml"), yaml).unwrap();
        let out = bin(dir.path(), &["scan"]);
        assert_eq!(out.status.code(), Some(2), "{yaml:?}: {}", show(&out));
        assert_eq!(stderr(&out), want, "{yaml:?}");
    }
}

#[test]
fn images_with_no_items_is_an_empty_list() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("pod.yaml"),
        "kind: Pod\nspec:\n  containers:\n    - image: ghcr.io/acme/web:1.0.0\n",
    )
    .unwrap();
    for yaml in [
        "images:\n",
        "images: []\n",
        "images: ~\n",
        "images:\ndelivery: {mode: none}\n",
    ] {
        std::fs::write(dir.path().join(".image-updater.yaml"), yaml).unwrap();
        let out = bin(dir.path(), &["scan"]);
        assert_eq!(out.status.code(), Some(0), "{yaml:?}: {}", show(&out));
        assert!(stdout(&out).contains("pod.yaml:4"), "{}", show(&out));
    }
}

/// An unknown forge (`forge: sourcehut`) used to be found out only when the pull request was
/// to be opened, after every registry lookup (exit 1); it is a config error now, before
/// anything is asked. The five forges are known: `forge: bitbucket` (Bitbucket Cloud) loads.
#[test]
fn unknown_forge_is_a_config_error_before_any_registry_work() {
    let registry = Registry::start();
    registry.push_image("acme/web", &["1.0.0", "1.1.0"]);
    let addr = &registry.addr;
    let config = format!(
        "registries:\n  - host: {addr}\n    insecure: true\nimages:\n  - name: web\n    image: {addr}/acme/web\n    policy: {{ semver: '^1' }}\ndelivery:\n  mode: pull-request\n  forge: sourcehut\n  api_url: http://127.0.0.1:9/api\n  repository: acme/infra\n"
    );
    let deploy = format!("kind: Pod\nspec:\n  containers:\n    - image: {addr}/acme/web:1.0.0\n");
    let tmp = tempfile::tempdir().unwrap();
    let bare = common::bare_repo_with_files(
        &tmp.path().join("infra.git"),
        &[
            (".image-updater.yaml", config.as_bytes()),
            ("pod.yaml", deploy.as_bytes()),
        ],
    );
    let work = common::clone(bare.to_str().unwrap(), &tmp.path().join("work"));
    let pushed = registry.log().len();
    let want = "./.image-updater.yaml:10:10: delivery.forge \"sourcehut\": expected github, gitlab, gitea (or forgejo), bitbucket, bitbucket-server (or bitbucket-dc, bitbucket-datacenter), azure-devops (or azure) or auto";
    for command in ["run", "plan", "scan"] {
        let out = bin(&work, &[command]);
        assert_eq!(out.status.code(), Some(2), "{command}: {}", show(&out));
        assert_eq!(stderr(&out), format!("error: {want}\n"), "{command}");
    }
    let log = registry.log();
    let asked = &log[pushed..];
    assert!(!asked.contains("/v2/"), "the registry was asked:\n{asked}");
    assert_eq!(common::git(&work, &["status", "--porcelain"]), "");
    for forge in ["bitbucket", "bitbucket-server", "azure-devops"] {
        let known = config.replace("forge: sourcehut", &format!("forge: {forge}"));
        std::fs::write(work.join(".image-updater.yaml"), &known).unwrap();
        let out = bin(&work, &["scan"]);
        assert_eq!(out.status.code(), Some(0), "{forge}: {}", show(&out));
    }
}

/// In JSON, `kind` says what each skipped entry left alone, and `image: null` no longer
/// stands for "a file" alone: a marker naming an unknown policy carries the reference it
/// leaves alone; a malformed marker is a marker; a Helm template whose first line is
/// `{{- if … }}` is skipped as a template, like any other.
#[test]
fn skipped_entries_say_what_was_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write(
        "markers.yaml",
        "kind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n        - name: a\n          image: ghcr.io/acme/web:1.0.0 # {\"$imagepolicy\": \"flux-system:nope\"}\n        - name: b\n          image: ghcr.io/acme/api:1.0.0 # {\"$imagepolicy\": \"web\"}\n",
    );
    write(
        "deployment.yaml",
        "{{- if .Values.enabled }}\nkind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n        - image: \"{{ .Values.image }}\"\n{{- end }}\n",
    );
    let out = bin(dir.path(), &["scan", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let skipped: Vec<(String, u64, String, serde_json::Value, String)> = report["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["file"].as_str().unwrap().to_string(),
                s["line"].as_u64().unwrap(),
                s["kind"].as_str().unwrap_or("-").to_string(),
                s["image"].clone(),
                s["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let [template, unknown, malformed] = skipped.as_slice() else {
        panic!("{skipped:#?}");
    };
    assert_eq!(
        (template.0.as_str(), template.1, template.2.as_str()),
        ("deployment.yaml", 1, "file")
    );
    assert!(template.3.is_null());
    assert_eq!(
        template.4,
        "not a plain YAML manifest: template braces `{{` at line 1, column 1"
    );
    assert_eq!(
        (unknown.0.as_str(), unknown.1, unknown.2.as_str()),
        ("markers.yaml", 7, "marker")
    );
    assert_eq!(unknown.3, "ghcr.io/acme/web:1.0.0");
    assert!(unknown.4.contains("flux-system:nope"), "{}", unknown.4);
    assert_eq!(
        (malformed.0.as_str(), malformed.1, malformed.2.as_str()),
        ("markers.yaml", 9, "marker")
    );
    assert!(malformed.3.is_null());
    assert!(malformed.4.starts_with("malformed image policy marker"));
}
