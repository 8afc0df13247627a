//! Argo CD Image Updater's Applications, with no config of ours but where the test registry
//! is: their annotations are the policies and their git write-back targets are what changes
//! (`.argocd-source-<app>.yaml` created or updated, a kustomization's `images:`, a values file
//! of any name). Against the real registry and a git remote; trees compared byte for byte.
//! What cannot be honoured is an error naming the file and line.
//!
//! Fixtures: `fixtures/argocd/<case>/` with `input/`, `expected/`, `config.yaml` and `tags.txt`;
//! `{{REGISTRY}}` in any of them stands for the test registry's address.

use crate::common;
use common::{image_updater, output_json as json, output_text as text};

use std::path::{Path, PathBuf};

use common::forges::{ok_report, pr_actions, run_async, GithubFake};
use common::{git, Registry};

fn fixture(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/argocd")
        .join(case)
}

/// Every file under `dir` (`.git` left out), relative, sorted, with `{{REGISTRY}}` (and any
/// other placeholder of `subs`) filled in.
fn tree(dir: &Path, registry: &str) -> Vec<(String, Vec<u8>)> {
    tree_with(dir, &[("{{REGISTRY}}", registry)])
}

fn tree_with(dir: &Path, subs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
    fn walk(base: &Path, dir: &Path, subs: &[(&str, &str)], out: &mut Vec<(String, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.file_name().is_some_and(|n| n == ".git") {
                continue;
            }
            if p.is_dir() {
                walk(base, &p, subs, out);
            } else {
                let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
                let mut text = std::fs::read_to_string(&p).unwrap();
                for (from, to) in subs {
                    text = text.replace(from, to);
                }
                out.push((rel, text.into_bytes()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, subs, &mut out);
    out.sort();
    out
}

struct Scenario {
    _tmp: tempfile::TempDir,
    registry: Registry,
    bare: PathBuf,
    work: PathBuf,
}

/// The registry seeded with `tags.txt`, a bare remote holding `input/` and the config, and a
/// clone of it.
fn scenario(case: &str) -> Scenario {
    scenario_with(case, "")
}

/// [`scenario`] with `extra` appended to the fixture's config.
fn scenario_with(case: &str, extra: &str) -> Scenario {
    let registry = Registry::start();
    let dir = fixture(case);
    for line in std::fs::read_to_string(dir.join("tags.txt"))
        .unwrap()
        .lines()
    {
        let mut parts = line.split_whitespace();
        let Some(repo) = parts.next().filter(|r| !r.starts_with('#')) else {
            continue;
        };
        let rest: Vec<&str> = parts.collect();
        match rest.as_slice() {
            [tag, created] if created.contains('T') => registry.push_built(repo, tag, created),
            tags => {
                registry.push_image(repo, tags);
            }
        }
    }
    let mut files = tree(&dir.join("input"), &registry.addr);
    let config = std::fs::read_to_string(dir.join("config.yaml"))
        .unwrap()
        .replace("{{REGISTRY}}", &registry.addr)
        + extra;
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
    assert_tree_with(work, expected, &[("{{REGISTRY}}", registry)]);
}

fn assert_tree_with(work: &Path, expected: &Path, subs: &[(&str, &str)]) {
    let mut got = tree_with(work, subs);
    got.retain(|(p, _)| p != ".image-updater.yaml");
    let want = tree_with(expected, subs);
    let names = |t: &[(String, Vec<u8>)]| t.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>();
    assert_eq!(names(&got), names(&want), "file lists differ");
    for ((p, a), (_, b)) in got.iter().zip(&want) {
        assert!(
            a == b,
            "{p} differs:\n--- got\n{}--- expected\n{}",
            String::from_utf8_lossy(a),
            String::from_utf8_lossy(b)
        );
    }
}

fn remote_head(bare: &Path) -> String {
    git(bare, &["rev-parse", "refs/heads/main"])
        .trim()
        .to_string()
}

#[test]
fn the_documented_annotations_write_back_as_argo_cd_reads_it() {
    let s = scenario("docs-examples");
    let work = s.work.to_str().unwrap();
    let addr = &s.registry.addr;

    // plan: every write-back target, and nothing written.
    let plan = image_updater(&["plan", work, "--output", "json"]);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    let report = json(&plan);
    assert_eq!(report["errors"], serde_json::json!([]), "{report}");
    let mut moves: Vec<(String, String, u64, String, String)> = report["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["policy"].as_str().unwrap().to_string(),
                u["file"].as_str().unwrap().to_string(),
                u["line"].as_u64().unwrap(),
                u["from"].as_str().unwrap().to_string(),
                u["to"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    moves.sort();
    let m = |p: &str, f: &str, l: u64, from: &str, to: &str| {
        (
            p.to_string(),
            f.to_string(),
            l,
            from.to_string(),
            to.to_string(),
        )
    };
    assert_eq!(
        moves,
        [
            m(
                "api/api",
                "charts/api/.argocd-source-api.yaml",
                7,
                "1.0.0",
                "1.1.0"
            ),
            m(
                "frontend/fe",
                "apps/frontend/base/kustomization.yaml",
                6,
                "v0.9.0",
                "v1.0.0"
            ),
            m(
                "guestbook/tools",
                "apps/guestbook/.argocd-source-guestbook.yaml",
                4,
                "main-1",
                "main-3"
            ),
            m(
                "guestbook/web",
                "apps/guestbook/.argocd-source-guestbook.yaml",
                3,
                "1.2.0",
                "1.2.3"
            ),
            m(
                "ui/ui",
                "charts/ui/.argocd-source-ui.yaml",
                7,
                "3.0.0",
                "3.1.0"
            ),
            m(
                "worker/worker",
                "env/prod/worker-settings.yaml",
                6,
                "2.0.1",
                "2.0.4"
            ),
        ],
        "{report}"
    );
    assert!(!s
        .work
        .join("apps/guestbook/.argocd-source-guestbook.yaml")
        .exists());
    assert_tree(&s.work, &fixture("docs-examples/input"), addr);
    let diff = image_updater(&["plan", work]);
    let diff = String::from_utf8_lossy(&diff.stdout).into_owned();
    assert!(
        diff.contains(&format!(
            "+++ b/apps/guestbook/.argocd-source-guestbook.yaml\n@@ -0,0 +1,4 @@\n+kustomize:\n+  images:\n+  - {addr}/acme/web:1.2.3\n"
        )),
        "{diff}"
    );

    // run: the expected tree, committed and pushed; the new file is in the commit.
    let before = remote_head(&s.bare);
    let run = image_updater(&["run", work, "--output", "json"]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert_tree(&s.work, &fixture("docs-examples/expected"), addr);
    let head = remote_head(&s.bare);
    assert_ne!(head, before);
    assert_eq!(json(&run)["commit"].as_str(), Some(head.as_str()));
    let changed = git(&s.bare, &["diff", "--name-status", &before, &head]);
    assert!(
        changed.contains("A\tapps/guestbook/.argocd-source-guestbook.yaml"),
        "{changed}"
    );
    assert_eq!(git(&s.work, &["status", "--porcelain"]), "");

    // A second run finds every target current and changes nothing.
    let again = image_updater(&["run", work, "--output", "json"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert_eq!(
        json(&again)["updates"],
        serde_json::json!([]),
        "{}",
        text(&again)
    );
    assert_eq!(remote_head(&s.bare), head);
}

#[test]
fn what_cannot_be_honoured_is_an_error_naming_file_and_line() {
    let s = scenario("refused");
    let work = s.work.to_str().unwrap();
    let out = image_updater(&["plan", work, "--output", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = json(&out);
    let mut errors: Vec<String> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect();
    errors.sort();
    let expect = [
        (
            "argocd/live.yaml:7: ",
            "write-back-method argocd (the default)",
        ),
        (
            "argocd/missing-entry.yaml:6: ",
            "the kustomization in apps/shop has no images: entry",
        ),
        // A tag whose image config has no build time: the tag and the repository are named.
        ("", "its image config has no created time"),
        (
            "argocd/typo.yaml:7: ",
            "unknown annotation argocd-image-updater.argoproj.io/shop.update-stratgy",
        ),
    ];
    assert_eq!(errors.len(), expect.len(), "{report}");
    for (at, what) in expect {
        assert!(
            errors.iter().any(|e| e.starts_with(at) && e.contains(what)),
            "no error {at}…{what}… in {errors:#?}"
        );
    }
    assert_eq!(report["updates"], serde_json::json!([]), "{report}");
    assert_tree(&s.work, &fixture("refused/input"), &s.registry.addr);
}

#[test]
fn newest_build_takes_the_tag_built_last_whatever_its_name() {
    let s = scenario("newest-build");
    let work = s.work.to_str().unwrap();
    let plan = image_updater(&["plan", work, "--output", "json"]);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    let report = json(&plan);
    let moves: Vec<(&str, &str)> = report["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["from"].as_str().unwrap(), u["to"].as_str().unwrap()))
        .collect();
    // force-update with no reference under the source path: no current tag.
    assert_eq!(moves, [("", "build-a")], "{report}");
    let run = image_updater(&["run", work, "--output", "json"]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert_tree(&s.work, &fixture("newest-build/expected"), &s.registry.addr);
    let again = image_updater(&["run", work, "--output", "json"]);
    assert_eq!(
        json(&again)["updates"],
        serde_json::json!([]),
        "{}",
        text(&again)
    );
}

#[test]
fn digest_platforms_alphabetical_and_image_spec() {
    let s = scenario("strategies");
    let digest = s.registry.push_image("acme/dig", &["stable"]).remove(0);
    for (tag, platforms) in [
        ("1.0.0", &["linux/amd64", "linux/arm64"][..]),
        ("1.1.0", &["linux/amd64", "linux/arm64"]),
        ("1.2.0", &["linux/amd64"]),
    ] {
        s.registry.push_index("acme/multi", tag, platforms);
    }
    let work = s.work.to_str().unwrap();
    let plan = image_updater(&["plan", work, "--output", "json"]);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    let report = json(&plan);
    let mut moves: Vec<(&str, &str, &str)> = report["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["policy"].as_str().unwrap(),
                u["from"].as_str().unwrap(),
                u["to"].as_str().unwrap(),
            )
        })
        .collect();
    moves.sort();
    assert_eq!(
        moves,
        [
            ("edge/dig", "stable", "stable"),
            ("edge/multi", "1.0.0", "1.1.0"),
            ("tool/tool", "a", "c"),
        ],
        "{report}"
    );
    let run = image_updater(&["run", work, "--output", "json"]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert_tree_with(
        &s.work,
        &fixture("strategies/expected"),
        &[("{{REGISTRY}}", &s.registry.addr), ("{{DIGEST}}", &digest)],
    );
    let again = image_updater(&["run", work, "--output", "json"]);
    assert_eq!(
        json(&again)["updates"],
        serde_json::json!([]),
        "{}",
        text(&again)
    );

    // The moving tag moves: the next run follows it to the new digest.
    let moved = s
        .registry
        .push_image_salted("acme/dig", &["stable"], "rebuilt")
        .remove(0);
    assert_ne!(moved, digest);
    let follow = image_updater(&["run", work, "--output", "json"]);
    assert_eq!(follow.status.code(), Some(0), "{}", text(&follow));
    let written =
        std::fs::read_to_string(s.work.join("apps/edge/.argocd-source-edge.yaml")).unwrap();
    assert!(
        written.contains(&format!("/acme/dig:stable@{moved}\n")),
        "{written}"
    );
}

#[test]
fn an_image_updater_resource_selects_applications_by_name() {
    let s = scenario("image-updater-cr");
    let work = s.work.to_str().unwrap();
    let plan = image_updater(&["plan", work, "--output", "json"]);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    let report = json(&plan);
    let mut moves: Vec<(&str, &str, &str, &str)> = report["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["policy"].as_str().unwrap(),
                u["file"].as_str().unwrap(),
                u["from"].as_str().unwrap(),
                u["to"].as_str().unwrap(),
            )
        })
        .collect();
    moves.sort();
    // shop-us already runs 1.2.3: no override file is written for it.
    assert_eq!(
        moves,
        [
            ("cart/cart", "charts/cart/values.yaml", "0.1.0", "0.2.0"),
            (
                "shop-eu/web",
                "apps/shop-eu/.argocd-source-shop-eu.yaml",
                "1.2.0",
                "1.2.3"
            ),
        ],
        "{report}"
    );
    let run = image_updater(&["run", work, "--output", "json"]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert_tree(
        &s.work,
        &fixture("image-updater-cr/expected"),
        &s.registry.addr,
    );
    let again = image_updater(&["run", work, "--output", "json"]);
    assert_eq!(
        json(&again)["updates"],
        serde_json::json!([]),
        "{}",
        text(&again)
    );
}

/// `mode: pull-request`: the branch holds the new override file with Image Updater's bytes
/// and the in-place rewrites; the base and the work tree are left alone.
#[tokio::test(flavor = "multi_thread")]
async fn a_pull_request_creates_the_override_file_on_its_branch() {
    const TOKEN: &str = "ghp-argocd-test-token";
    let server = wiremock::MockServer::start().await;
    let fake = GithubFake::new(TOKEN);
    common::forges::mount_fake(&server, fake.clone()).await;
    let s = scenario_with(
        "docs-examples",
        &format!(
            "delivery:\n  mode: pull-request\n  group: all\n  forge: github\n  api_url: {}\n  \
             repository: acme/infra\n",
            server.uri()
        ),
    );
    let before = remote_head(&s.bare);
    let report = ok_report(
        &run_async(&s.work, &[("GITHUB_TOKEN", TOKEN)]).await,
        &[TOKEN],
    );
    let prs = pr_actions(&report);
    assert_eq!(prs.len(), 1, "{report}");
    assert_eq!(prs[0].2, "created", "{report}");
    let branch = &prs[0].0;
    assert_eq!(remote_head(&s.bare), before, "the base is not pushed to");
    assert_eq!(git(&s.work, &["status", "--porcelain"]), "");
    assert!(!s
        .work
        .join("apps/guestbook/.argocd-source-guestbook.yaml")
        .exists());
    let expected = fixture("docs-examples/expected");
    for file in [
        "apps/guestbook/.argocd-source-guestbook.yaml",
        "charts/ui/.argocd-source-ui.yaml",
        "charts/api/.argocd-source-api.yaml",
        "apps/frontend/base/kustomization.yaml",
        "env/prod/worker-settings.yaml",
    ] {
        let on_branch = git(&s.bare, &["show", &format!("{branch}:{file}")]);
        let want = std::fs::read_to_string(expected.join(file))
            .unwrap()
            .replace("{{REGISTRY}}", &s.registry.addr);
        assert_eq!(on_branch, want, "{file} on {branch}");
    }
    assert!(
        fake.state().problems.is_empty(),
        "{:?}",
        fake.state().problems
    );
}
