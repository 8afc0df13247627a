//! The whole path against real servers: the distribution registry, git remotes over smart HTTP
//! as in production (file:// and SSH where a test is about them), and the built binary. Fixture scenarios live in `fixtures/<case>/`:
//! `input/` (the infra repo), `expected/` (the repo after the run), `config.yaml` (with
//! `{{REGISTRY}}` for the test registry's address) and `tags.txt` (what the registry holds).

use crate::common;
use common::{output_json as json, output_text as text};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{bare_repo_with_files, git, GitHttpServer, Registry};

const BIN: &str = env!("CARGO_BIN_EXE_image-updater");

fn fixture_dir(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(case)
}

/// Every file under `dir`, relative, sorted, with its bytes.
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if e.file_name() == ".git" {
                continue;
            }
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Push the tags of `tags.txt` to `registry`.
fn push_tags(registry: &Registry, tags_file: &Path) {
    for line in std::fs::read_to_string(tags_file).unwrap().lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split_whitespace();
        let repo = parts.next().unwrap();
        let tags: Vec<&str> = parts.collect();
        registry.push_image(repo, &tags);
    }
}

/// A bare remote seeded with the fixture's input and config, and a clone of it to work in.
struct Scenario {
    bare: PathBuf,
    work: PathBuf,
    /// The remote's URL: smart HTTP (as in production) unless the test asks for file://.
    url: String,
    _server: Option<GitHttpServer>,
    _tmp: tempfile::TempDir,
}

/// How a scenario's work tree reaches its remote.
#[derive(Clone, Copy)]
enum Remote {
    /// git's smart HTTP protocol, served by `git http-backend`: what production pushes over.
    Http,
    /// A file:// URL: for the tests that are about local remotes or replace the URL.
    File,
}

fn scenario(case: &str, registry_addr: &str, remote: Remote) -> Scenario {
    let tmp = tempfile::tempdir().unwrap();
    let dir = fixture_dir(case);
    let config = std::fs::read_to_string(dir.join("config.yaml"))
        .unwrap()
        .replace("{{REGISTRY}}", registry_addr);
    let mut files = tree(&dir.join("input"));
    files.push((".image-updater.yaml".into(), config.into_bytes()));
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_slice()))
        .collect();
    let bare = bare_repo_with_files(&tmp.path().join("remote.git"), &refs);
    let (server, url) = match remote {
        Remote::Http => {
            let server = GitHttpServer::start(tmp.path(), None);
            let url = format!("{}/remote.git", server.base_url);
            (Some(server), url)
        }
        Remote::File => (None, format!("file://{}", bare.display())),
    };
    let work = common::clone(&url, &tmp.path().join("work"));
    // Files the fixture's .gitignore keeps out of the remote still sit in the work tree.
    for (p, b) in &files {
        let path = work.join(p);
        if !path.exists() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b).unwrap();
        }
    }
    Scenario {
        bare,
        work,
        url,
        _server: server,
        _tmp: tmp,
    }
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env("NO_COLOR", "1");
    for v in [
        "IMAGE_UPDATER_GIT_TOKEN",
        "GITHUB_TOKEN",
        "GITLAB_TOKEN",
        "CI_JOB_TOKEN",
        "GITEA_TOKEN",
        "IMAGE_UPDATER_CONFIG",
        "IMAGE_UPDATER_OUTPUT",
    ] {
        cmd.env_remove(v);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn remote_head(bare: &Path) -> String {
    git(bare, &["rev-parse", "refs/heads/main"])
        .trim()
        .to_string()
}

fn assert_tree_eq(actual: &Path, expected: &Path) {
    let mut got = tree(actual);
    got.retain(|(p, _)| p != ".image-updater.yaml");
    let want = tree(expected);
    let names = |t: &[(String, Vec<u8>)]| t.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>();
    assert_eq!(names(&got), names(&want), "file lists differ");
    for ((p, a), (_, b)) in got.iter().zip(&want) {
        assert!(
            a == b,
            "{p} differs from expected:\n--- got\n{}\n--- expected\n{}",
            String::from_utf8_lossy(a),
            String::from_utf8_lossy(b)
        );
    }
}

#[test]
fn commit_basic_end_to_end_over_file_remote() {
    let registry = Registry::start();
    push_tags(&registry, &fixture_dir("commit-basic").join("tags.txt"));
    let s = scenario("commit-basic", &registry.addr, Remote::File);
    let before = remote_head(&s.bare);

    let out = run(&["run", s.work.to_str().unwrap(), "--output", "json"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report = json(&out);
    assert_eq!(report["version"], 1);
    let updates: Vec<(String, u64, String, String)> = report["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["file"].as_str().unwrap().to_string(),
                u["line"].as_u64().unwrap(),
                u["from"].as_str().unwrap().to_string(),
                u["to"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        updates,
        [
            (
                "apps/multi.yaml".to_string(),
                15,
                "v2.4.0".to_string(),
                "2.4.2".to_string()
            ),
            (
                "apps/web.yaml".to_string(),
                11,
                "1.0.0".to_string(),
                "1.2.0".to_string()
            ),
            (
                "apps/web.yaml".to_string(),
                14,
                "1.0.0".to_string(),
                "1.2.0".to_string()
            ),
        ]
    );
    assert!(report["errors"].as_array().unwrap().is_empty(), "{report}");
    let skipped = report["skipped"].to_string();
    assert!(
        skipped.contains("charts/web/templates/deployment.yaml"),
        "{skipped}"
    );
    assert!(skipped.contains("template braces"), "{skipped}");
    assert!(skipped.contains(r#""reason":"no policy""#), "{skipped}");
    assert!(
        !skipped.contains("ignored/"),
        "gitignored files are not read: {skipped}"
    );

    // The files changed byte for byte as expected, and the commit is on the remote.
    assert_tree_eq(&s.work, &fixture_dir("commit-basic").join("expected"));
    let commit = report["commit"].as_str().expect("a commit").to_string();
    let head = remote_head(&s.bare);
    assert_ne!(head, before);
    assert_eq!(head, commit);
    let shown = git(&s.bare, &["show", "main:apps/web.yaml"]);
    assert_eq!(
        shown.as_bytes(),
        std::fs::read(fixture_dir("commit-basic").join("expected/apps/web.yaml")).unwrap()
    );
    let log = git(
        &s.bare,
        &["log", "-1", "--format=%an <%ae>%n%s%n%b", "main"],
    );
    assert!(log.starts_with("image-updater-test <bot@example.invalid>\nchore(images): update api to 2.4.2, web to 1.2.0"), "{log}");
    let changed = git(&s.bare, &["diff", "--name-only", &before, "main"]);
    assert_eq!(changed, "apps/multi.yaml\napps/web.yaml\n");
    assert_eq!(
        git(&s.work, &["status", "--porcelain"]),
        "",
        "work tree left clean"
    );
    assert_eq!(
        std::fs::read(s.work.join("ignored/deploy.yaml")).unwrap(),
        std::fs::read(fixture_dir("commit-basic").join("input/ignored/deploy.yaml")).unwrap(),
        "gitignored files are left alone"
    );

    // A second run with nothing newer changes nothing.
    let again = run(&["run", s.work.to_str().unwrap(), "--output", "json"], &[]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    let report = json(&again);
    assert!(report["updates"].as_array().unwrap().is_empty(), "{report}");
    assert!(report["commit"].is_null());
    assert_eq!(remote_head(&s.bare), head);

    // A newer tag arrives; the next run moves on to it.
    registry.push_image("acme/web", &["1.2.1"]);
    let third = run(&["run", s.work.to_str().unwrap(), "--output", "json"], &[]);
    assert_eq!(third.status.code(), Some(0), "{}", text(&third));
    let report = json(&third);
    assert_eq!(report["updates"].as_array().unwrap().len(), 2, "{report}");
    assert_eq!(report["updates"][0]["to"], "1.2.1");
    assert_ne!(remote_head(&s.bare), head);
}

#[test]
fn plan_prints_the_table_and_diff_and_writes_nothing() {
    let registry = Registry::start();
    push_tags(&registry, &fixture_dir("commit-basic").join("tags.txt"));
    let s = scenario("commit-basic", &registry.addr, Remote::Http);
    let before = tree(&s.work);
    let out = run(&["plan", s.work.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    insta::assert_snapshot!("plan_commit_basic", stdout);
    assert_eq!(tree(&s.work), before, "plan writes nothing");

    let out = run(&["plan", "--exit-code", s.work.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    // The config says commit; IMAGE_UPDATER_MODE=none makes `run` report only.
    let head = remote_head(&s.bare);
    let out = run(
        &["run", s.work.to_str().unwrap(), "--output", "json"],
        &[("IMAGE_UPDATER_MODE", "none")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(json(&out)["updates"].as_array().unwrap().len(), 3);
    assert_eq!(remote_head(&s.bare), head);
    let out = run(
        &[
            "run",
            s.work.to_str().unwrap(),
            "--config",
            "/nonexistent.yaml",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(tree(&s.work), before);
}

#[test]
fn smart_http_push_with_a_token_that_never_shows() {
    let registry = Registry::start();
    push_tags(&registry, &fixture_dir("commit-basic").join("tags.txt"));
    let token = "s3cr3t-t0ken-value";
    let tmp = tempfile::tempdir().unwrap();
    let server = GitHttpServer::start(tmp.path(), Some(("x-access-token", token)));
    let s = scenario("commit-basic", &registry.addr, Remote::File);
    // The bare repo lives in the scenario's own temp dir; this server serves a link to it.
    std::os::unix::fs::symlink(&s.bare, tmp.path().join("remote.git")).unwrap();
    // Drop the credentials from the clone's remote URL: the tool must bring its own.
    let url = format!("{}/remote.git", server.base_url);
    git(&s.work, &["remote", "set-url", "origin", &url]);
    let before = remote_head(&s.bare);

    let out = run(&["run", s.work.to_str().unwrap()], &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "no token: the push fails\n{}",
        text(&out)
    );
    let all = text(&out);
    assert!(all.contains("IMAGE_UPDATER_GIT_TOKEN"), "{all}");
    assert_eq!(remote_head(&s.bare), before);

    // The failed delivery left nothing behind: no local commit, no changed file.
    assert_eq!(git(&s.work, &["rev-parse", "HEAD"]).trim(), before);
    assert_eq!(git(&s.work, &["status", "--porcelain"]), "");
    let out = run(
        &["run", s.work.to_str().unwrap(), "-v"],
        &[("IMAGE_UPDATER_GIT_TOKEN", token)],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        !text(&out).contains(token),
        "the token leaked:\n{}",
        text(&out)
    );
    assert_ne!(remote_head(&s.bare), before);
    assert_tree_eq(&s.work, &fixture_dir("commit-basic").join("expected"));
    let reqs = server.requests();
    assert!(
        reqs.iter().any(|r| r.contains("git-receive-pack")),
        "{reqs:?}"
    );

    // A wrong token: a clear error, and it is not printed either.
    registry.push_image("acme/web", &["1.2.9"]);
    let out = run(
        &["run", s.work.to_str().unwrap()],
        &[("IMAGE_UPDATER_GIT_TOKEN", "wrong-token-xyz")],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(!text(&out).contains("wrong-token-xyz"), "{}", text(&out));
}

#[test]
fn basic_auth_registry_right_and_wrong_password() {
    let registry = Registry::start_with_basic_auth("ci", "right-pass");
    push_tags(&registry, &fixture_dir("commit-basic").join("tags.txt"));
    let s = scenario("commit-basic", &registry.addr, Remote::Http);
    let config = s.work.join(".image-updater.yaml");
    let text_cfg = std::fs::read_to_string(&config).unwrap().replace(
        "    insecure: true\n",
        "    insecure: true\n    credentials: { username_env: REG_USER, password_env: REG_PASS }\n",
    );
    std::fs::write(&config, text_cfg).unwrap();
    git(&s.work, &["commit", "-qam", "credentials"]);
    git(&s.work, &["push", "-q", "origin", "main"]);
    let before = remote_head(&s.bare);
    let files_before = tree(&s.work);

    // Wrong password: a clear error naming the registry, exit 1, nothing written or committed.
    let out = run(
        &["run", s.work.to_str().unwrap(), "--output", "json"],
        &[("REG_USER", "ci"), ("REG_PASS", "wrong-pass")],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = json(&out);
    let errors = report["errors"].to_string();
    assert!(errors.contains("registry.example.com"), "{errors}");
    assert!(errors.contains("401"), "{errors}");
    assert!(!text(&out).contains("wrong-pass"));
    assert!(report["updates"].as_array().unwrap().is_empty());
    assert_eq!(tree(&s.work), files_before);
    assert_eq!(remote_head(&s.bare), before);

    // No credentials at all: the error says what to configure.
    let out = run(
        &["run", s.work.to_str().unwrap(), "--output", "json"],
        &[("REG_USER", "ci")],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("REG_PASS"), "{}", text(&out));

    // The right password: the update goes through.
    let out = run(
        &["run", s.work.to_str().unwrap(), "--output", "json"],
        &[("REG_USER", "ci"), ("REG_PASS", "right-pass")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(json(&out)["updates"].as_array().unwrap().len(), 3);
    assert_ne!(remote_head(&s.bare), before);
}

#[test]
fn bad_config_is_exit_2_with_file_line_column() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join(".image-updater.yaml"),
        "images:\n  - name: web\n    image: ghcr.io/acme/web\n    polcy: {semver: '^1'}\n",
    )
    .unwrap();
    let out = run(&["plan", tmp.path().to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(".image-updater.yaml:4:"), "{err}");
    assert!(err.contains("polcy"), "{err}");
}

fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo")
}

#[test]
fn demo_plan_shows_updates_offline() {
    let out = run(&["plan", demo().to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    insta::assert_snapshot!("demo_plan", String::from_utf8(out.stdout).unwrap());
}

#[test]
fn demo_scan_lists_every_reference() {
    let out = run(&["scan", demo().to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    insta::assert_snapshot!("demo_scan", String::from_utf8(out.stdout).unwrap());
}

#[test]
fn tags_from_layout_and_from_a_file() {
    let layout = demo().join("registry/acme/web");
    let image = format!("oci-layout:{}", layout.display());
    let out = run(&["tags", &image, "--semver", "^1.2"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout,
        "* 1.3.1\n  1.3.0\n  1.2.5\n  1.2.0\nlatest: 1.3.1\n"
    );

    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("tags");
    std::fs::write(&f, "v1.0.0\nfoo\n1.1.0\n").unwrap();
    let out = run(
        &[
            "tags",
            "x/y",
            "--semver",
            ">=2",
            "--tags-from",
            f.to_str().unwrap(),
            "--output",
            "json",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v = json(&out);
    assert!(v["latest"].is_null(), "{v}");
}

/// Thousands of tags, written straight into the registry's storage (pushing each would take
/// minutes): the listing is paged with `n`/`last` until exhausted, and the pick is the newest.
#[test]
fn thousands_of_tags_are_paged_until_exhausted() {
    let registry = Registry::start();
    let digest = registry.push_image("acme/many", &["0.0.1"]).remove(0);
    let tags_dir = registry
        .storage_dir()
        .join("docker/registry/v2/repositories/acme/many/_manifests/tags");
    let mut tags = Vec::new();
    for major in 1..=3 {
        for minor in 0..1000 {
            tags.push(format!("{major}.{minor}.0"));
        }
    }
    for tag in &tags {
        let dir = tags_dir.join(tag).join("current");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("link"), &digest).unwrap();
    }
    // Distribution 2.8 sends every tag at once, whatever `n` says; a paging front before it
    // serves pages of at most 1000 with a Link to the next, as paging registries do.
    let front = common::PagingFront::start(&registry.addr, 1000);
    let page = common::http_request(
        &front.addr,
        "GET",
        "/v2/acme/many/tags/list?n=1000",
        &[],
        b"",
    );
    assert!(
        page.header("link").is_some(),
        "the front should page: {:?}",
        page.headers
    );
    for addr in [&registry.addr, &front.addr] {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = tmp.path().join("config.yaml");
        std::fs::write(
            &cfg,
            format!("registries:\n  - host: {addr}\n    insecure: true\n"),
        )
        .unwrap();
        let image = format!("{addr}/acme/many");
        let out = run(
            &[
                "tags",
                &image,
                "--semver",
                "<3",
                "--config",
                cfg.to_str().unwrap(),
                "--output",
                "json",
            ],
            &[],
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let v = json(&out);
        assert_eq!(
            v["candidates"].as_array().unwrap().len(),
            2001,
            "1.x, 2.x and 0.0.1 via {addr}"
        );
        assert_eq!(v["latest"], "2.999.0");
        assert_eq!(v["candidates"][2000], "0.0.1");
    }
    // Through the front: a probe, then four pages (1000, 1000, 1000, 1), each after the last
    // tag, in byte order, of the one before.
    let pages: Vec<String> = front
        .requests()
        .into_iter()
        .filter(|r| r.contains("/tags/list"))
        .collect();
    assert_eq!(pages.len(), 5, "{pages:?}");
    assert!(pages[2].contains("last=1.998.0"), "{pages:?}");
}

#[test]
fn clone_flag_works_on_a_fresh_clone_and_pushes() {
    let registry = Registry::start();
    push_tags(&registry, &fixture_dir("commit-basic").join("tags.txt"));
    let s = scenario("commit-basic", &registry.addr, Remote::Http);
    let url = s.url.clone();
    let before = remote_head(&s.bare);
    let out = run(&["plan", "--clone", &url, "--output", "json"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(json(&out)["updates"].as_array().unwrap().len(), 3);
    assert_eq!(remote_head(&s.bare), before, "plan pushes nothing");

    let out = run(
        &[
            "run", "--clone", &url, "--branch", "main", "--output", "json",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(json(&out)["commit"].as_str().unwrap(), remote_head(&s.bare));
    let shown = git(&s.bare, &["show", "main:apps/web.yaml"]);
    assert_eq!(
        shown.as_bytes(),
        std::fs::read(fixture_dir("commit-basic").join("expected/apps/web.yaml")).unwrap()
    );
    // Each repository was listed once per run, though web occurs twice.
    let log = registry.log();
    // (the access-log line of each request: `"GET /v2/acme/web/tags/list?n=1000 HTTP/1.1" 200`)
    let web_lists = log.matches("\"GET /v2/acme/web/tags/list").count();
    assert_eq!(web_lists, 2, "once per run:\n{log}");
}

/// The demo with two more images, `acme/queue` and `acme/mail` (the layout of `acme/web`
/// under their names): the demo's three images all hash into shard 2/2, these two into 1/2.
fn demo_for_two_shards() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    crate::ci_common::copy_tree(&demo(), tmp.path());
    let mut config = std::fs::read_to_string(tmp.path().join(".image-updater.yaml")).unwrap();
    for name in ["queue", "mail"] {
        crate::ci_common::copy_tree(
            &demo().join("registry/acme/web"),
            &tmp.path().join(format!("registry/acme/{name}")),
        );
        std::fs::write(
            tmp.path().join(format!("apps/{name}.yaml")),
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers:\n    - name: {name}\n      image: registry.example.com/acme/{name}:1.2.0\n"
            ),
        )
        .unwrap();
        config = config.replacen(
            "images:\n",
            &format!(
                "images:\n  - name: {name}\n    image: registry.example.com/acme/{name}\n    policy: {{ semver: \"^1.2\" }}\n"
            ),
            1,
        );
    }
    std::fs::write(tmp.path().join(".image-updater.yaml"), config).unwrap();
    tmp
}

#[test]
fn shards_split_the_images_between_jobs() {
    let repo = demo_for_two_shards();
    let mut all = Vec::new();
    for shard in ["1/2", "2/2"] {
        let out = run(
            &[
                "plan",
                repo.path().to_str().unwrap(),
                "--shard",
                shard,
                "--output",
                "json",
            ],
            &[],
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let share = json(&out)["updates"].as_array().unwrap().clone();
        // Each job has work: a split that gave one job everything would pass the check below.
        assert!(
            !share.is_empty(),
            "shard {shard} got no update: {}",
            text(&out)
        );
        for u in share {
            all.push(format!("{}:{}", u["file"], u["line"]));
        }
    }
    all.sort();
    let out = run(
        &["plan", repo.path().to_str().unwrap(), "--output", "json"],
        &[],
    );
    let mut whole: Vec<String> = json(&out)["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| format!("{}:{}", u["file"], u["line"]))
        .collect();
    whole.sort();
    assert_eq!(
        all, whole,
        "the shards together do the whole job, each update once"
    );
    let out = run(&["plan", demo().to_str().unwrap(), "--shard", "3/2"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

/// Someone pushes between our checkout and our push: the push is rejected, and the run
/// fetches, recomputes the edits on the new head and pushes again. Nothing is forced.
#[test]
fn commit_mode_recovers_from_a_lost_race() {
    let registry = Registry::start();
    push_tags(&registry, &fixture_dir("commit-basic").join("tags.txt"));
    let s = scenario("commit-basic", &registry.addr, Remote::Http);
    let url = s.url.clone();
    let other = common::clone(&url, &s.work.parent().unwrap().join("other"));
    let web = other.join("apps/web.yaml");
    let edited = std::fs::read_to_string(&web)
        .unwrap()
        .replace("# web: comments", "# web (edited by a colleague): comments");
    std::fs::write(&web, &edited).unwrap();
    git(&other, &["commit", "-qam", "colleague's change"]);
    git(&other, &["push", "-q", "origin", "main"]);
    let theirs = remote_head(&s.bare);

    let out = run(
        &["run", s.work.to_str().unwrap(), "--output", "json", "-v"],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report = json(&out);
    assert_eq!(report["updates"].as_array().unwrap().len(), 3, "{report}");
    let head = remote_head(&s.bare);
    assert_eq!(report["commit"].as_str().unwrap(), head);
    assert_eq!(
        git(&s.bare, &["rev-parse", "main~1"]).trim(),
        theirs,
        "our commit sits on the colleague's"
    );
    let expected =
        std::fs::read_to_string(fixture_dir("commit-basic").join("expected/apps/web.yaml"))
            .unwrap()
            .replace("# web: comments", "# web (edited by a colleague): comments");
    assert_eq!(git(&s.bare, &["show", "main:apps/web.yaml"]), expected);
    assert_eq!(git(&s.work, &["status", "--porcelain"]), "");
    assert!(text(&out).contains("push rejected"), "{}", text(&out));
}

/// Push over SSH with a key from the environment; the server's host key must be known.
#[test]
fn commit_over_ssh_checks_the_host_key() {
    let registry = Registry::start();
    push_tags(&registry, &fixture_dir("commit-basic").join("tags.txt"));
    let sshd = common::SshServer::start();
    let s = scenario("commit-basic", &registry.addr, Remote::File);
    git(
        &s.work,
        &["remote", "set-url", "origin", &sshd.url(&s.bare)],
    );
    let before = remote_head(&s.bare);
    let key = sshd.client_key.to_str().unwrap().to_string();
    let known = sshd.known_hosts.to_str().unwrap().to_string();
    let empty = s.work.parent().unwrap().join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();

    // An unknown host is refused, and nothing is left behind.
    let out = run(
        &["run", s.work.to_str().unwrap()],
        &[
            ("IMAGE_UPDATER_SSH_KEY", &key),
            ("IMAGE_UPDATER_SSH_KNOWN_HOSTS", empty.to_str().unwrap()),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("host key"), "{}", text(&out));
    assert_eq!(remote_head(&s.bare), before);
    assert_eq!(git(&s.work, &["status", "--porcelain"]), "");

    // Known host, key file: the commit arrives.
    let out = run(
        &["run", s.work.to_str().unwrap(), "--output", "json"],
        &[
            ("IMAGE_UPDATER_SSH_KEY", &key),
            ("IMAGE_UPDATER_SSH_KNOWN_HOSTS", &known),
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\nsshd log:\n{}",
        text(&out),
        sshd.log()
    );
    assert_eq!(json(&out)["commit"].as_str().unwrap(), remote_head(&s.bare));
    assert_tree_eq(&s.work, &fixture_dir("commit-basic").join("expected"));

    // The key as text in the variable (as CI secrets hold it) works too.
    registry.push_image("acme/web", &["1.2.7"]);
    let key_text = std::fs::read_to_string(&sshd.client_key).unwrap();
    let out = run(
        &["run", s.work.to_str().unwrap(), "--output", "json"],
        &[
            ("IMAGE_UPDATER_SSH_KEY", &key_text),
            ("IMAGE_UPDATER_SSH_KNOWN_HOSTS", &known),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains("PRIVATE KEY"));
    assert_eq!(json(&out)["updates"][0]["to"], "1.2.7");
    assert_eq!(json(&out)["commit"].as_str().unwrap(), remote_head(&s.bare));
}

/// Digest pinning, a `digest:` policy following a moving `latest`, and platform policies,
/// against multi-platform indexes in the real registry.
#[test]
fn digests_and_platforms_against_real_indexes() {
    let registry = Registry::start();
    registry.push_index("acme/app", "1.0.0", &["linux/amd64", "linux/arm64"]);
    registry.push_index("acme/app", "1.1.0", &["linux/amd64", "linux/arm64/v8"]);
    registry.push_index("acme/app", "1.2.0", &["linux/amd64"]);
    let web = registry.push_image("acme/web", &["1.0.0", "1.2.0"]);
    let latest1 = registry
        .push_image_salted("acme/tool", &["latest"], "one")
        .remove(0);
    let config = format!(
        r#"registries:
  - {{ host: registry.example.com, api: "{}", insecure: true }}
images:
  - name: app
    image: registry.example.com/acme/app
    policy: {{ semver: "^1" }}
    platforms: [linux/amd64, linux/arm64]
  - name: web
    image: registry.example.com/acme/web
    policy: {{ semver: "^1" }}
    pin_digest: true
  - name: tool
    image: registry.example.com/acme/tool
    policy: {{ digest: latest }}
delivery: {{ mode: commit }}
"#,
        registry.addr
    );
    let deploy = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n    - name: app\n      image: registry.example.com/acme/app:1.0.0\n    - name: web\n      image: registry.example.com/acme/web:1.0.0\n    - name: tool\n      image: registry.example.com/acme/tool:latest\n";
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repo_with_files(
        &tmp.path().join("remote.git"),
        &[
            (".image-updater.yaml", config.as_bytes()),
            ("pod.yaml", deploy.as_bytes()),
        ],
    );
    // Pushed over smart HTTP, as in production.
    let server = GitHttpServer::start(tmp.path(), None);
    let work = common::clone(
        &format!("{}/remote.git", server.base_url),
        &tmp.path().join("work"),
    );

    let out = run(&["run", work.to_str().unwrap(), "--output", "json"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let pod = std::fs::read_to_string(work.join("pod.yaml")).unwrap();
    // 1.2.0 lacks arm64: the newest tag covering both platforms is 1.1.0 (arm64/v8 counts).
    assert!(
        pod.contains("image: registry.example.com/acme/app:1.1.0\n"),
        "{pod}\n{}",
        text(&out)
    );
    assert!(
        pod.contains(&format!(
            "image: registry.example.com/acme/web:1.2.0@{}\n",
            web[1]
        )),
        "{pod}\n{}",
        text(&out)
    );
    assert!(
        pod.contains(&format!(
            "image: registry.example.com/acme/tool:latest@{latest1}\n"
        )),
        "{pod}"
    );
    let report = json(&out);
    assert_eq!(report["updates"].as_array().unwrap().len(), 3, "{report}");

    // Nothing moved: nothing changes, and the registry answers from its index once per tag.
    let out = run(&["run", work.to_str().unwrap(), "--output", "json"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        json(&out)["updates"].as_array().unwrap().is_empty(),
        "{}",
        text(&out)
    );

    // `latest` moves: the next run follows it, keeping the tag.
    let latest2 = registry
        .push_image_salted("acme/tool", &["latest"], "two")
        .remove(0);
    assert_ne!(latest1, latest2);
    let out = run(&["run", work.to_str().unwrap(), "--output", "json"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report = json(&out);
    assert_eq!(report["updates"].as_array().unwrap().len(), 1, "{report}");
    assert_eq!(report["updates"][0]["to"], "latest");
    assert_eq!(report["updates"][0]["digest"], latest2.as_str());
    let pod = git(&bare, &["show", "main:pod.yaml"]);
    assert!(
        pod.contains(&format!("acme/tool:latest@{latest2}\n")),
        "{pod}"
    );
}

/// Every manifest format through `run` against the real registry and a real git remote: the
/// mixed-format scenario of fixtures/manifests, with both of its registries served by the
/// distribution registry instead of OCI layout trees.
#[test]
fn every_format_against_the_real_registry() {
    let case =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/manifests/mixed-repo-every-format");
    let registry = Registry::start();
    for line in std::fs::read_to_string(case.join("tags.txt"))
        .unwrap()
        .lines()
    {
        let mut parts = line.split_whitespace();
        let Some(name) = parts.next() else { continue };
        let repo = name.split_once('/').unwrap().1;
        registry.push_image(repo, &parts.collect::<Vec<_>>());
    }
    let mut config = String::new();
    for line in std::fs::read_to_string(case.join("config.yaml"))
        .unwrap()
        .lines()
    {
        if line.trim_start().starts_with("api: \"oci-layout:") {
            config.push_str(&format!(
                "    api: \"{}\"\n    insecure: true\n",
                registry.addr
            ));
        } else {
            config.push_str(line);
            config.push('\n');
        }
    }
    let mut files = tree(&case.join("input"));
    files.push((".image-updater.yaml".into(), config.into_bytes()));
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_slice()))
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repo_with_files(&tmp.path().join("remote.git"), &refs);
    // Pushed over smart HTTP, as in production.
    let server = GitHttpServer::start(tmp.path(), None);
    let work = common::clone(
        &format!("{}/remote.git", server.base_url),
        &tmp.path().join("work"),
    );

    let out = run(&["run", work.to_str().unwrap(), "--output", "json"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report = json(&out);
    assert!(report["errors"].as_array().unwrap().is_empty(), "{report}");
    assert_tree_eq(&work, &case.join("expected"));
    assert_eq!(report["commit"].as_str().unwrap(), remote_head(&bare));
    let again = run(&["run", work.to_str().unwrap(), "--output", "json"], &[]);
    assert!(
        json(&again)["updates"].as_array().unwrap().is_empty(),
        "{}",
        text(&again)
    );
}

/// `run --clone` over smart HTTP: a shallow clone of one commit, and the push from it lands.
#[test]
fn clone_over_http_is_shallow_and_pushes() {
    let registry = Registry::start();
    push_tags(&registry, &fixture_dir("commit-basic").join("tags.txt"));
    let token = "clone-token-123";
    let tmp = tempfile::tempdir().unwrap();
    let server = GitHttpServer::start(tmp.path(), Some(("x-access-token", token)));
    let s = scenario("commit-basic", &registry.addr, Remote::File);
    // Some history, so that shallow means something.
    for i in 0..3 {
        std::fs::write(s.work.join("notes.txt"), format!("{i}\n")).unwrap();
        git(&s.work, &["add", "notes.txt"]);
        git(&s.work, &["commit", "-qm", "history"]);
    }
    git(&s.work, &["push", "-q", "origin", "main"]);
    std::os::unix::fs::symlink(&s.bare, tmp.path().join("remote.git")).unwrap();
    let url = format!("{}/remote.git", server.base_url);
    let before = remote_head(&s.bare);
    let out = run(
        &["run", "--clone", &url, "--output", "json", "-v"],
        &[("IMAGE_UPDATER_GIT_TOKEN", token)],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains(token));
    let head = remote_head(&s.bare);
    assert_ne!(head, before);
    assert_eq!(json(&out)["commit"].as_str().unwrap(), head);
    assert_eq!(git(&s.bare, &["rev-parse", "main~1"]).trim(), before);
    git(&s.bare, &["fsck", "--no-progress"]);
    assert!(text(&out).contains("(shallow, depth 1)"), "{}", text(&out));
    let reqs = server.requests();
    assert!(
        reqs.iter().any(|r| r.contains("git-upload-pack")),
        "{reqs:?}"
    );
}
