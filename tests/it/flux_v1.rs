//! Flux v1 annotations as the policies, with no config of ours but where the test registry
//! is: a repo shaped like Flux's getting-started repo (annotated Deployment, CronJob with the
//! older `flux.weave.works/` prefix, a locked StatefulSet, a DaemonSet with automation off,
//! helm-operator HelmReleases with `chart-image` and path annotations). Image build times
//! differ from version order: `semver:` takes the highest version, `glob:` and `regex:` the
//! image built last. Through `plan` and `run` against the real registry and a git remote;
//! trees compared byte for byte.
//!
//! Fixture: `fixtures/flux-v1/getting-started/` with `input/`, `expected/`, `config.yaml`
//! and `tags.txt` (repository, tag, the image config's `created`); `{{REGISTRY}}` stands for
//! the test registry's address.

use crate::common;
use common::{image_updater, output_json as json, output_text as text};

use std::path::{Path, PathBuf};

use common::{bare_repo_with_files, git, Registry};

fn fixture(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/flux-v1")
        .join(case)
}

/// Every file under `dir` (`.git` and the config left out), relative, sorted, with
/// `{{REGISTRY}}` filled in.
fn tree(dir: &Path, registry: &str) -> Vec<(String, String)> {
    fn walk(base: &Path, dir: &Path, registry: &str, out: &mut Vec<(String, String)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if name == ".git" || name == ".image-updater.yaml" {
                continue;
            }
            if p.is_dir() {
                walk(base, &p, registry, out);
            } else {
                let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
                let text = std::fs::read_to_string(&p).unwrap();
                out.push((rel, text.replace("{{REGISTRY}}", registry)));
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

/// The registry seeded from `tags.txt`, a bare remote holding `input/` and the config, and
/// a clone of it.
fn scenario(case: &str) -> Scenario {
    let registry = Registry::start();
    let dir = fixture(case);
    for line in std::fs::read_to_string(dir.join("tags.txt"))
        .unwrap()
        .lines()
    {
        if let [repo, tag, created] = line.split_whitespace().collect::<Vec<_>>()[..] {
            if !repo.starts_with('#') {
                registry.push_built(repo, tag, created);
            }
        }
    }
    let mut files: Vec<(String, Vec<u8>)> = tree(&dir.join("input"), &registry.addr)
        .into_iter()
        .map(|(p, t)| (p, t.into_bytes()))
        .collect();
    let config = std::fs::read_to_string(dir.join("config.yaml"))
        .unwrap()
        .replace("{{REGISTRY}}", &registry.addr);
    files.push((".image-updater.yaml".into(), config.into_bytes()));
    let (tmp, bare, work) = common::remote_and_clone(&files);
    Scenario {
        _tmp: tmp,
        registry,
        bare,
        work,
    }
}

fn assert_tree(work: &Path, expected: &Path, registry: &str) {
    let got = tree(work, registry);
    let want = tree(expected, registry);
    let names = |t: &[(String, String)]| t.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>();
    assert_eq!(names(&got), names(&want), "file lists differ");
    for ((p, a), (_, b)) in got.iter().zip(&want) {
        assert!(a == b, "{p} differs:\n--- got\n{a}--- expected\n{b}");
    }
}

/// (file, line, policy, from, to) of each update of a report.
fn moves(report: &serde_json::Value) -> Vec<(String, u64, String, String, String)> {
    let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    report["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                s(&u["file"]),
                u["line"].as_u64().unwrap(),
                s(&u["policy"]),
                s(&u["from"]),
                s(&u["to"]),
            )
        })
        .collect()
}

#[test]
fn getting_started_annotations_govern_as_fluxd_did() {
    let s = scenario("getting-started");
    let work = s.work.to_str().unwrap();
    let reg = &s.registry.addr;

    let plan = image_updater(&["plan", work, "--output", "json"]);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    let report = json(&plan);
    let m = |file: &str, line: u64, policy: &str, from: &str, to: &str| {
        (
            file.to_string(),
            line,
            policy.to_string(),
            from.to_string(),
            to.to_string(),
        )
    };
    assert_eq!(
        moves(&report),
        [
            // helm-operator path annotations: semver:^2, the highest version.
            m(
                "releases/app.yaml",
                21,
                "demo:helmrelease/app:app",
                "2.0.0",
                "2.1.0"
            ),
            // glob:4.0.* on fluxd's `image:` + `tag:` shape: the image built last, 4.0.9,
            // not the higher 4.0.10.
            m(
                "releases/mongodb.yaml",
                18,
                "demo:helmrelease/mongodb:chart-image",
                "4.0.3",
                "4.0.9"
            ),
            // semver:~4.0: 4.0.14, though 4.0.12 was built after it.
            m(
                "releases/redis.yaml",
                20,
                "demo:helmrelease/redis:chart-image",
                "4.0.11",
                "4.0.14"
            ),
            // flux.weave.works/ prefix, bare glob build-*: built last.
            m(
                "workloads/builder-cron.yaml",
                19,
                "demo:cronjob/builder:job",
                "build-a",
                "build-b"
            ),
            // regex:^3.10.*: 3.10.2 was built after 3.10.3.
            m(
                "workloads/podinfo-dep.yaml",
                30,
                "demo:deployment/podinfo:init",
                "3.10.1",
                "3.10.2"
            ),
            // semver:~3.1: 3.1.2, though 3.1.1 was built later.
            m(
                "workloads/podinfo-dep.yaml",
                36,
                "demo:deployment/podinfo:podinfod",
                "3.1.0",
                "3.1.2"
            ),
        ],
        "{report}"
    );
    let skipped: Vec<(String, String)> = report["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["file"].as_str().unwrap().to_string(),
                k["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        skipped,
        [
            (
                "releases/ghost.yaml".to_string(),
                "no policy (HelmRelease demo:helmrelease/ghost: fluxcd.io/automated is not \"true\")"
                    .to_string()
            ),
            (
                "workloads/agent-ds.yaml".to_string(),
                "no policy (DaemonSet demo:daemonset/agent: fluxcd.io/automated is not \"true\")"
                    .to_string()
            ),
            (
                "workloads/db-locked.yaml".to_string(),
                "locked: Halt updates for now (by Stefan Prodan <stefan@example.com>)".to_string()
            ),
        ],
        "{report}"
    );
    assert_eq!(report["errors"], serde_json::json!([]), "{report}");

    // The lock is shown in text and Markdown too.
    for (format, user) in [
        ("text", "Stefan Prodan <stefan@example.com>"),
        ("markdown", "Stefan Prodan &lt;stefan@example.com&gt;"),
    ] {
        let out = image_updater(&["plan", work, "--output", format]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let shown = String::from_utf8_lossy(&out.stdout);
        let line = "workloads/db-locked.yaml:18";
        let reason = format!("locked: Halt updates for now (by {user})");
        assert!(
            shown
                .lines()
                .any(|l| l.contains(line) && l.ends_with(&reason)),
            "{format}:\n{shown}"
        );
    }
    // plan wrote nothing.
    assert_tree(&s.work, &fixture("getting-started/input"), reg);

    let run = image_updater(&["run", work, "--output", "json"]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert_eq!(moves(&json(&run)).len(), 6, "{}", text(&run));
    assert_tree(&s.work, &fixture("getting-started/expected"), reg);
    // Pushed, with the message fluxd wrote for an automated release.
    let message = git(&s.bare, &["log", "-1", "--format=%B", "refs/heads/main"]);
    let want = format!(
        "Auto-release multiple (6) images\n\n - {reg}/acme/app:2.1.0\n - {reg}/acme/job:build-b\n \
         - {reg}/bitnami/mongodb:4.0.9\n - {reg}/bitnami/redis:4.0.14\n - {reg}/library/alpine:3.10.2\n \
         - {reg}/stefanprodan/podinfo:3.1.2\n"
    );
    assert_eq!(message.trim_end(), want.trim_end());

    let again = image_updater(&["run", work, "--output", "json"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert_eq!(
        json(&again)["updates"],
        serde_json::json!([]),
        "{}",
        text(&again)
    );
}

#[test]
fn a_missing_build_time_is_reported_and_nothing_is_guessed() {
    let registry = Registry::start();
    registry.push_built("acme/web", "main-a", "2024-01-01T10:00:00Z");
    // Pushed without a "created" time in its config.
    registry.push_image("acme/web", &["main-b"]);
    registry.push_image("acme/api", &["1.0.0", "1.1.0"]);
    let reg = &registry.addr;
    let deploy = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  annotations:\n    \
         fluxcd.io/automated: \"true\"\n    fluxcd.io/tag.web: glob:main-*\n    \
         fluxcd.io/tag.api: semver:~1\n    fluxcd.io/tag.bad: regex:main-(\nspec:\n  template:\n    spec:\n      containers:\n      \
         - name: web\n        image: {reg}/acme/web:main-a\n      - name: api\n        \
         image: {reg}/acme/api:1.0.0\n      - name: bad\n        image: {reg}/acme/api:1.0.0\n"
    );
    let config = format!("registries:\n  - {{ host: \"{reg}\", insecure: true }}\n");
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repo_with_files(
        &tmp.path().join("remote.git"),
        &[
            ("web.yaml", deploy.as_bytes()),
            (".image-updater.yaml", config.as_bytes()),
        ],
    );
    let work = common::clone(
        &format!("file://{}", bare.display()),
        &tmp.path().join("work"),
    );
    let plan = image_updater(&["plan", work.to_str().unwrap(), "--output", "json"]);
    // The semver container still moves; the glob one is an error naming the tag.
    assert_eq!(plan.status.code(), Some(1), "{}", text(&plan));
    let report = json(&plan);
    assert_eq!(
        moves(&report),
        [(
            "web.yaml".to_string(),
            17,
            "default:deployment/web:api".to_string(),
            "1.0.0".to_string(),
            "1.1.0".to_string()
        )],
        "{report}"
    );
    // An invalid filter leaves its container alone, naming the file and line.
    let skipped: Vec<&str> = report["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["reason"].as_str().unwrap())
        .collect();
    assert_eq!(skipped.len(), 1, "{report}");
    assert!(
        skipped[0].starts_with("web.yaml:9: Deployment default:deployment/web container bad: "),
        "{report}"
    );
    let errors = report["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{report}");
    let message = errors[0]["message"].as_str().unwrap();
    assert!(
        message.starts_with("default:deployment/web:web: the most recently built tag wins")
            && message.contains("tag main-b of")
            && message.contains("its image config has no created time"),
        "{message}"
    );
}
