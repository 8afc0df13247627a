//! A useful answer with no config at all (issue 21): a repo whose config names no image (only
//! where the test registry is) gets an `outdated` report of every reference that has a newer
//! tag of its shape — k8s, compose and Dockerfile references alike — at one tag list per
//! repository; `outdated: false` turns it off. The `update: patch | minor | major` policy kind
//! and `image: "*"` rewrite the same references through `run`, trees compared byte for byte.
//! Against the real registry and a git remote.
//!
//! Fixture: `fixtures/outdated/` with `input/`, `tags.txt`, `config.yaml` (no images) and, per
//! level, `config-LEVEL.yaml` and `expected-LEVEL/`; `{{REGISTRY}}` stands for the test
//! registry's address.

use crate::common;
use common::{image_updater, output_json as json, output_text as text};

use std::path::{Path, PathBuf};

use common::{git, Registry};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/outdated")
}

/// Every file under `dir` (`.git` and the config left out), relative, sorted, with
/// `{{REGISTRY}}` filled in.
fn tree(dir: &Path, registry: &str) -> Vec<(String, String)> {
    fn walk(base: &Path, dir: &Path, registry: &str, out: &mut Vec<(String, String)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.file_name()
                .is_some_and(|n| n == ".git" || n == ".image-updater.yaml")
            {
                continue;
            }
            if p.is_dir() {
                walk(base, &p, registry, out);
            } else {
                let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
                let text = std::fs::read_to_string(&p)
                    .unwrap()
                    .replace("{{REGISTRY}}", registry);
                out.push((rel, text));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, registry, &mut out);
    out.sort();
    out
}

struct Scenario {
    _tmp: tempfile::TempDir,
    registry: Registry,
    bare: PathBuf,
    work: PathBuf,
}

/// The registry seeded with `tags.txt`, a bare remote holding `input/` and `config` (a file
/// of the fixture, with `extra` appended), and a clone of it.
fn scenario(config: &str, extra: &str) -> Scenario {
    let registry = Registry::start();
    let dir = fixture();
    for line in std::fs::read_to_string(dir.join("tags.txt"))
        .unwrap()
        .lines()
    {
        let mut parts = line.split_whitespace();
        let Some(repo) = parts.next().filter(|r| !r.starts_with('#')) else {
            continue;
        };
        let tags: Vec<&str> = parts.collect();
        registry.push_image(repo, &tags);
    }
    let mut files = tree(&dir.join("input"), &registry.addr);
    let config = std::fs::read_to_string(dir.join(config))
        .unwrap()
        .replace("{{REGISTRY}}", &registry.addr)
        + extra;
    files.push((".image-updater.yaml".into(), config));
    let (tmp, bare, work) = common::remote_and_clone(&files);
    Scenario {
        _tmp: tmp,
        registry,
        bare,
        work,
    }
}

/// How many tag lists the registry was asked for, by repository.
fn tag_lists(registry: &Registry) -> Vec<(String, usize)> {
    let log = registry.log();
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for line in log.lines() {
        if let Some(at) = line.find("\"GET /v2/") {
            let path = &line[at + "\"GET /v2/".len()..];
            if let Some(end) = path.find("/tags/list") {
                *counts.entry(path[..end].to_string()).or_default() += 1;
            }
        }
    }
    counts.into_iter().collect()
}

#[test]
fn a_repo_with_no_policy_gets_every_outdated_reference_at_one_tag_list_per_repository() {
    let s = scenario("config.yaml", "");
    let work = s.work.to_str().unwrap();
    let addr = &s.registry.addr;

    let report = json(&image_updater(&["plan", work, "--output", "json"]));
    assert_eq!(report["updates"], serde_json::json!([]), "{report}");
    assert_eq!(report["errors"], serde_json::json!([]), "{report}");
    let entry = |file: &str,
                 line: u64,
                 image: &str,
                 current: &str,
                 minor: Option<&str>,
                 major: Option<&str>| {
        serde_json::json!({
            "file": file, "line": line, "image": format!("{addr}/{image}"),
            "current": current, "minor": minor, "major": major,
        })
    };
    assert_eq!(
        report["outdated"],
        serde_json::json!([
            entry(
                "Dockerfile",
                1,
                "library/golang",
                "1.22-bookworm",
                Some("1.23-bookworm"),
                None
            ),
            entry(
                "Dockerfile",
                4,
                "library/alpine",
                "3.19",
                Some("3.21"),
                None
            ),
            entry(
                "apps/web/deploy.yaml",
                13,
                "library/nginx",
                "1.25.3-alpine",
                Some("1.27.3-alpine"),
                None
            ),
            entry(
                "apps/web/deploy.yaml",
                15,
                "acme/api",
                "v1.4.2",
                Some("v1.5.0"),
                Some("v2.1.0")
            ),
            entry(
                "compose.yaml",
                3,
                "library/postgres",
                "16",
                None,
                Some("17")
            ),
            entry(
                "compose.yaml",
                5,
                "library/redis",
                "7.2",
                Some("7.4"),
                Some("8.0")
            ),
        ]),
        "{report:#}"
    );
    // Each repository whose tag is a version was listed once; `latest` and `main` were not
    // worth a request.
    let lists = tag_lists(&s.registry);
    let names: Vec<(&str, usize)> = lists.iter().map(|(n, c)| (n.as_str(), *c)).collect();
    assert_eq!(
        names,
        [
            ("acme/api", 1),
            ("library/alpine", 1),
            ("library/golang", 1),
            ("library/memcached", 1),
            ("library/nginx", 1),
            ("library/postgres", 1),
            ("library/redis", 1),
        ]
    );

    // The text and Markdown reports have their own section.
    for (format, name) in [
        ("text", "outdated_plan_text"),
        ("markdown", "outdated_plan_markdown"),
    ] {
        let o = image_updater(&["plan", work, "--output", format]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let out = String::from_utf8(o.stdout)
            .unwrap()
            .replace(addr.as_str(), "{{REGISTRY}}");
        insta::assert_snapshot!(name, out);
    }

    // Read-only: nothing written, nothing pushed, even by `run`.
    let head = git(&s.bare, &["rev-parse", "refs/heads/main"]);
    let run = json(&image_updater(&["run", work, "--output", "json"]));
    assert_eq!(run["outdated"], report["outdated"]);
    assert_eq!(run["commit"], serde_json::Value::Null);
    assert_eq!(git(&s.bare, &["rev-parse", "refs/heads/main"]), head);
    assert_eq!(tree(&s.work, addr), tree(&fixture().join("input"), addr));
}

#[test]
fn outdated_false_turns_the_report_and_its_requests_off() {
    let s = scenario("config.yaml", "outdated: false\n");
    let work = s.work.to_str().unwrap();
    let report = json(&image_updater(&["plan", work, "--output", "json"]));
    assert_eq!(report["outdated"], serde_json::json!([]), "{report}");
    assert_eq!(tag_lists(&s.registry), []);
    let o = image_updater(&["plan", work]);
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("Outdated"),
        "{}",
        text(&o)
    );
}

#[test]
fn a_bad_update_level_is_a_config_error_at_its_line() {
    let s = scenario(
        "config.yaml",
        "images:\n  - name: all\n    image: \"*\"\n    policy: { update: minro }\n",
    );
    let o = image_updater(&["plan", s.work.to_str().unwrap()]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(
        out.contains(".image-updater.yaml:7:")
            && out.contains("\"minro\"")
            && out.contains("patch"),
        "{out}"
    );
}

/// `run` with `config-LEVEL.yaml` commits and pushes exactly `expected-LEVEL/`.
fn run_to_expected(level: &str) {
    let s = scenario(&format!("config-{level}.yaml"), "");
    let work = s.work.to_str().unwrap();
    let addr = &s.registry.addr;
    let report = json(&image_updater(&["run", work, "--output", "json"]));
    assert_eq!(report["errors"], serde_json::json!([]), "{report}");
    // Everything is governed now: nothing is left to report as outdated.
    assert_eq!(report["outdated"], serde_json::json!([]), "{report}");
    assert!(report["commit"].is_string(), "{report}");
    assert_eq!(
        tree(&s.work, addr),
        tree(&fixture().join(format!("expected-{level}")), addr),
        "{report:#}"
    );
    // What was pushed is what is in the work tree.
    let pushed = common::clone(
        &format!("file://{}", s.bare.display()),
        &s._tmp.path().join("pushed"),
    );
    assert_eq!(tree(&pushed, addr), tree(&s.work, addr));
    // A second run has nothing to do.
    let again = json(&image_updater(&["run", work, "--output", "json"]));
    assert_eq!(again["updates"], serde_json::json!([]), "{again}");
}

#[test]
fn update_patch_stays_in_the_current_minor_keeping_suffix_and_precision() {
    run_to_expected("patch");
}

#[test]
fn update_minor_stays_in_the_current_major_keeping_suffix_and_precision() {
    run_to_expected("minor");
}

#[test]
fn update_major_takes_any_newer_version_and_an_exact_entry_wins_over_the_wildcard() {
    run_to_expected("major");
}
