//! `set`, `lock` and `unlock` (fluxctl's verbs) against the distribution registry and a git
//! remote served over smart HTTP, with the built binary. The scenario is `fixtures/verbs/`:
//! `input/` (the infra repo, its `.image-updater.yaml` with `{{REGISTRY}}` for the test
//! registry's address), `tags.txt`, and `expected/<case>/` (the whole repo after the command,
//! byte for byte).

use crate::common;
use common::{output_json as json, output_text as text};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::forges::files_of;
use common::{bare_repo_with_files, git, GitHttpServer, Registry};

const BIN: &str = env!("CARGO_BIN_EXE_image-updater");

/// The time locks are stamped with (`since:`), through `SOURCE_DATE_EPOCH`.
const EPOCH: &str = "1796577620"; // 2026-12-06T17:20:20Z

const WEB: &str = "registry.example.com/acme/web";
const API: &str = "registry.example.com/acme/api";
const LEGACY: &str = "registry.example.com/acme/legacy";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/verbs")
}

/// The registry, the bare remote behind smart HTTP, and a clone to work in.
struct Scenario {
    registry: Registry,
    bare: PathBuf,
    work: PathBuf,
    _server: GitHttpServer,
    _tmp: tempfile::TempDir,
}

/// `dir`'s files with the registry's address put in.
fn filled(dir: &Path, registry: &str) -> Vec<(String, Vec<u8>)> {
    files_of(dir)
        .into_iter()
        .map(|(p, b)| {
            let text = String::from_utf8(b).unwrap();
            (p, text.replace("{{REGISTRY}}", registry).into_bytes())
        })
        .collect()
}

fn scenario() -> Scenario {
    let registry = Registry::start();
    for line in std::fs::read_to_string(fixture().join("tags.txt"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let mut parts = line.split_whitespace();
        let repo = parts.next().unwrap();
        let tags: Vec<&str> = parts.collect();
        registry.push_image(repo, &tags);
    }
    let tmp = tempfile::tempdir().unwrap();
    let files = filled(&fixture().join("input"), &registry.addr);
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_slice()))
        .collect();
    let bare = bare_repo_with_files(&tmp.path().join("remote.git"), &refs);
    let server = GitHttpServer::start(tmp.path(), None);
    let work = common::clone(
        &format!("{}/remote.git", server.base_url),
        &tmp.path().join("work"),
    );
    Scenario {
        registry,
        bare,
        work,
        _server: server,
        _tmp: tmp,
    }
}

impl Scenario {
    /// The binary with `args` and then the work tree's path.
    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .arg(&self.work)
            .env("NO_COLOR", "1")
            .env("SOURCE_DATE_EPOCH", EPOCH);
        for v in [
            "IMAGE_UPDATER_GIT_TOKEN",
            "GITHUB_TOKEN",
            "GITLAB_TOKEN",
            "CI_JOB_TOKEN",
            "GITEA_TOKEN",
            "IMAGE_UPDATER_CONFIG",
            "IMAGE_UPDATER_OUTPUT",
            "IMAGE_UPDATER_MODE",
            "GITHUB_ACTIONS",
            "GITHUB_OUTPUT",
            "GITHUB_STEP_SUMMARY",
        ] {
            cmd.env_remove(v);
        }
        cmd.output().unwrap()
    }

    fn head(&self) -> String {
        git(&self.bare, &["rev-parse", "refs/heads/main"])
            .trim()
            .to_string()
    }

    /// The work tree, the remote's main and the expected case agree byte for byte, and the
    /// work tree is clean.
    fn assert_tree(&self, case: &str) {
        let want = filled(&fixture().join("expected").join(case), &self.registry.addr);
        let mut got = files_of(&self.work);
        got.retain(|(p, _)| !p.starts_with(".git/"));
        let names = |t: &[(String, Vec<u8>)]| t.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>();
        assert_eq!(names(&got), names(&want), "file lists differ ({case})");
        for ((p, a), (_, b)) in got.iter().zip(&want) {
            assert!(
                a == b,
                "{case}: {p} differs:\n--- got\n{}\n--- expected\n{}",
                String::from_utf8_lossy(a),
                String::from_utf8_lossy(b)
            );
            let on_remote = git(&self.bare, &["show", &format!("main:{p}")]);
            assert!(
                on_remote.as_bytes() == b.as_slice(),
                "{case}: {p} on the remote differs"
            );
        }
        assert_eq!(git(&self.work, &["status", "--porcelain"]), "", "{case}");
    }

    fn last_message(&self) -> String {
        git(&self.bare, &["log", "-1", "--format=%an <%ae>%n%B", "main"])
    }
}

/// (file, line, from, to) of each update in a report.
fn updates(report: &serde_json::Value) -> Vec<(String, u64, String, String)> {
    report["updates"]
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
        .collect()
}

fn upd(file: &str, line: u64, from: &str, to: &str) -> (String, u64, String, String) {
    (file.into(), line, from.into(), to.into())
}

#[test]
fn set_forward_rewrites_every_reference_and_commits() {
    let s = scenario();
    let before = s.head();
    let out = s.run(&["set", &format!("{WEB}:1.2.0"), "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report = json(&out);
    assert_eq!(
        updates(&report),
        [
            upd("apps/web.yaml", 11, "1.1.0", "1.2.0"),
            upd("apps/web.yaml", 14, "1.1.0", "1.2.0"),
            upd("clusters/staging/worker.yaml", 12, "1.1.0", "1.2.0"),
        ]
    );
    assert_eq!(report["commit"].as_str(), Some(s.head().as_str()));
    assert_ne!(s.head(), before);
    s.assert_tree("set-forward");
    let log = s.last_message();
    assert!(
        log.starts_with("image-updater-test <bot@example.invalid>\nchore(images): "),
        "{log}"
    );
    assert!(
        !log.contains("Locked"),
        "a move forward locks nothing: {log}"
    );

    // The same set again changes nothing.
    let head = s.head();
    let out = s.run(&["set", &format!("{WEB}:1.2.0")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("at 1.2.0 already"),
        "{}",
        text(&out)
    );
    assert_eq!(s.head(), head);
}

#[test]
fn set_backwards_locks_the_image_so_the_next_run_keeps_the_rollback() {
    let s = scenario();
    let out = s.run(&["set", &format!("{WEB}:1.0.0")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("locked {WEB} in .image-updater.yaml")),
        "{stdout}"
    );
    s.assert_tree("set-back");
    let log = s.last_message();
    assert!(
        log.contains(&format!(
            "Locked {WEB}: rolled back from 1.1.0 to 1.0.0 by image-updater set"
        )),
        "{log}"
    );

    // The scheduled run leaves web where it was set, and says why; api moves on.
    let out = s.run(&["plan", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report = json(&out);
    assert_eq!(
        updates(&report),
        [
            upd("apps/legacy.yaml", 16, "2.0.0", "2.1.0"),
            upd("apps/web.yaml", 16, "1.0.0", "1.1.0"),
        ]
    );
    let skipped = report["skipped"].to_string();
    assert!(
        skipped
            .contains(r#""reason":"locked: rolled back from 1.1.0 to 1.0.0 by image-updater set""#),
        "{skipped}"
    );
}

#[test]
fn set_backwards_with_no_lock_writes_no_lock() {
    let s = scenario();
    let out = s.run(&["set", &format!("{WEB}:1.0.0"), "--no-lock"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    s.assert_tree("set-no-lock");
}

#[test]
fn set_of_a_tag_the_registry_lacks_is_an_error_and_writes_nothing() {
    let s = scenario();
    let before = s.head();
    let out = s.run(&["set", &format!("{WEB}:9.9.9")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{WEB}: the registry has no tag 9.9.9; nothing written"
        )),
        "{stderr}"
    );
    assert_eq!(s.head(), before);
    // The work tree is the input, untouched.
    let want = filled(&fixture().join("input"), &s.registry.addr);
    let mut got = files_of(&s.work);
    got.retain(|(p, _)| !p.starts_with(".git/"));
    assert!(got == want, "the work tree changed");
}

#[test]
fn set_usage_errors_exit_2_before_any_work() {
    let s = scenario();
    let before = s.head();
    for (args, needle) in [
        (
            vec!["set".to_string(), WEB.to_string()],
            "expected IMAGE:TAG",
        ),
        (
            vec![
                "set".into(),
                format!("{WEB}:1.2.0"),
                "--files".into(),
                "[".into(),
            ],
            "--files",
        ),
        (
            vec!["set".into(), "registry.example.com/acme/none:1.0.0".into()],
            "no reference to registry.example.com/acme/none found",
        ),
        (vec!["lock".into(), format!("{WEB}:1.0.0")], "without a tag"),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = s.run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(needle),
            "{args:?}: {}",
            text(&out)
        );
    }
    assert_eq!(s.head(), before);
}

#[test]
fn set_with_files_only_touches_the_matching_files() {
    let s = scenario();
    let out = s.run(&[
        "set",
        &format!("{WEB}:1.2.0"),
        "--files",
        "clusters/**",
        "--output",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        updates(&json(&out)),
        [upd("clusters/staging/worker.yaml", 12, "1.1.0", "1.2.0")]
    );
    s.assert_tree("set-files");
}

#[test]
fn lock_and_unlock_write_the_config_entry_byte_exactly_and_runs_skip_the_image() {
    let s = scenario();
    let out = s.run(&["lock", API, "--reason", "incident 7"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    s.assert_tree("lock-config");
    let log = s.last_message();
    assert!(
        log.contains(&format!("chore(images): lock {API}\n\nincident 7")),
        "{log}"
    );

    // Every run reports the locked image and leaves it alone: JSON, text and Markdown.
    let out = s.run(&["plan", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report = json(&out);
    assert!(
        !updates(&report)
            .iter()
            .any(|u| u.0 == "apps/web.yaml" && u.1 == 16),
        "api is locked: {report}"
    );
    let locked: Vec<&serde_json::Value> = report["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["reason"] == "locked: incident 7")
        .collect();
    assert_eq!(locked.len(), 1, "{report}");
    assert_eq!(locked[0]["file"], "apps/web.yaml");
    assert_eq!(locked[0]["line"], 16);
    for format in ["text", "markdown"] {
        let out = s.run(&["plan", "--output", format]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("locked: incident 7"),
            "{format}: {}",
            text(&out)
        );
    }

    // Locking again with the same reason changes nothing.
    let head = s.head();
    let out = s.run(&["lock", API, "--reason", "incident 7"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(s.head(), head);

    // Unlock: the config is the input again, byte for byte; the run updates api again.
    let out = s.run(&["unlock", API]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    s.assert_tree("../input");
    let out = s.run(&["run", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        updates(&json(&out)).contains(&upd("apps/web.yaml", 16, "1.0.0", "1.1.0")),
        "{}",
        text(&out)
    );
}

#[test]
fn lock_on_a_flux_v1_workload_writes_its_annotations_and_the_run_skips_it() {
    let s = scenario();
    let out = s.run(&["lock", LEGACY, "--reason", "hold"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!(
            "locked {LEGACY} on Deployment/legacy in apps/legacy.yaml"
        )),
        "{}",
        text(&out)
    );
    s.assert_tree("lock-flux");

    let out = s.run(&["run", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report = json(&out);
    assert!(
        !updates(&report).iter().any(|u| u.0 == "apps/legacy.yaml"),
        "{report}"
    );
    assert!(
        report["skipped"]
            .to_string()
            .contains(r#""line":18,"reason":"locked: hold""#),
        "{report}"
    );

    // Unlock takes the annotations out again; the file is its input bytes (plus the run's
    // updates of the other images, which the run committed).
    let out = s.run(&["unlock", LEGACY]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let legacy = std::fs::read(s.work.join("apps/legacy.yaml")).unwrap();
    assert_eq!(
        legacy,
        std::fs::read(fixture().join("input/apps/legacy.yaml")).unwrap()
    );
}

#[test]
fn mode_none_shows_the_diff_and_writes_nothing() {
    let s = scenario();
    let before = s.head();
    let out = s.run(&["lock", API, "--reason", "incident 7", "--mode", "none"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "+  - {{ image: {API}, reason: \"incident 7\", since: \"2026-12-06T17:20:20Z\" }}"
        )),
        "{stdout}"
    );
    assert!(stdout.contains("nothing written"), "{stdout}");
    assert_eq!(s.head(), before);
    s.assert_tree("../input");
}

#[test]
fn lock_in_a_repo_without_a_config_creates_it_with_the_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let deploy: &[u8] = b"kind: Pod\nspec:\n  containers:\n    - image: nginx:1.27\n";
    bare_repo_with_files(&tmp.path().join("remote.git"), &[("pod.yaml", deploy)]);
    let server = GitHttpServer::start(tmp.path(), None);
    let work = common::clone(
        &format!("{}/remote.git", server.base_url),
        &tmp.path().join("work"),
    );
    let out = Command::new(BIN)
        .args(["lock", "nginx", "--reason", "pinned by hand"])
        .arg(&work)
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .env_remove("IMAGE_UPDATER_CONFIG")
        .env_remove("IMAGE_UPDATER_MODE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let want = "locks:\n  - { image: docker.io/library/nginx, reason: \"pinned by hand\", since: \"2026-12-06T17:20:20Z\" }\n";
    assert_eq!(
        std::fs::read_to_string(work.join(".image-updater.yaml")).unwrap(),
        want
    );
    let bare = tmp.path().join("remote.git");
    assert_eq!(git(&bare, &["show", "main:.image-updater.yaml"]), want);
    assert_eq!(git(&work, &["status", "--porcelain"]), "");
}

#[test]
fn a_file_with_uncommitted_changes_is_not_touched() {
    let s = scenario();
    let before = s.head();
    let path = s.work.join("clusters/staging/worker.yaml");
    let edited = std::fs::read_to_string(&path).unwrap() + "# my edit\n";
    std::fs::write(&path, &edited).unwrap();
    let out = s.run(&["set", &format!("{WEB}:1.2.0")]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("clusters/staging/worker.yaml has uncommitted changes"),
        "{}",
        text(&out)
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), edited);
    assert_eq!(s.head(), before);
    let web = std::fs::read(s.work.join("apps/web.yaml")).unwrap();
    assert_eq!(
        String::from_utf8(web).unwrap(),
        String::from_utf8(std::fs::read(fixture().join("input/apps/web.yaml")).unwrap()).unwrap()
    );
}

#[test]
fn help_lists_the_verbs_and_their_flags() {
    let top = Command::new(BIN).arg("--help").output().unwrap();
    let top = String::from_utf8_lossy(&top.stdout).into_owned();
    for verb in ["set", "lock", "unlock"] {
        assert!(
            top.lines().any(|l| l.trim_start().starts_with(verb)),
            "{verb}: {top}"
        );
    }
    for (verb, flags) in [
        ("set", &["--files", "--no-lock", "--mode"][..]),
        ("lock", &["--reason", "--mode"][..]),
        ("unlock", &["--mode"][..]),
    ] {
        let out = Command::new(BIN).args([verb, "--help"]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let help = String::from_utf8_lossy(&out.stdout);
        for f in flags {
            assert!(help.contains(f), "{verb} --help lacks {f}:\n{help}");
        }
    }
}

#[test]
fn a_rollback_of_a_flux_v1_workload_locks_it_in_the_same_file() {
    let s = scenario();
    let out = s.run(&["set", &format!("{LEGACY}:2.1.0")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = s.run(&["set", &format!("{LEGACY}:2.0.0")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let input = std::fs::read_to_string(fixture().join("input/apps/legacy.yaml")).unwrap();
    let want = input.replace(
        "    fluxcd.io/tag.legacy: semver:~2\n",
        "    fluxcd.io/tag.legacy: semver:~2\n    fluxcd.io/locked: \"true\"\n    \
         fluxcd.io/locked_msg: \"rolled back from 2.1.0 to 2.0.0 by image-updater set\"\n",
    );
    assert_ne!(want, input);
    assert_eq!(
        std::fs::read_to_string(s.work.join("apps/legacy.yaml")).unwrap(),
        want
    );
    assert_eq!(git(&s.bare, &["show", "main:apps/legacy.yaml"]), want);
    // The config is left as it was: the workload holds the lock.
    assert_eq!(
        std::fs::read(s.work.join(".image-updater.yaml")).unwrap(),
        filled(&fixture().join("input"), &s.registry.addr)
            .into_iter()
            .find(|(p, _)| p == ".image-updater.yaml")
            .unwrap()
            .1
    );
}

/// `mode: pull-request` (GitHub's API, faked statefully): `set` and `lock` each push their own
/// branch and open a pull request; main is not touched.
#[tokio::test(flavor = "multi_thread")]
async fn set_and_lock_open_pull_requests() {
    use common::forges::{fixture_remote, seed_registry, Forge, ForgeFake};
    const TOKEN: &str = "forge-test-token-never-printed";
    let registry = Registry::start();
    seed_registry(&registry);
    let (_fake, server) = ForgeFake::start(Forge::Github, TOKEN).await;
    let tmp = tempfile::tempdir().unwrap();
    let delivery = Forge::Github.delivery(&server.uri(), "");
    let bare = fixture_remote(tmp.path(), &registry.addr, &delivery);
    let work = common::clone(
        &format!("file://{}", bare.display()),
        &tmp.path().join("work"),
    );
    let main_before = git(&bare, &["rev-parse", "main"]);
    let verb = |args: Vec<String>| {
        let work = work.clone();
        tokio::task::spawn_blocking(move || {
            let mut cmd = Command::new(BIN);
            cmd.args(&args)
                .arg(&work)
                .args(["--output", "json"])
                .env("SOURCE_DATE_EPOCH", EPOCH)
                .env("GITHUB_TOKEN", TOKEN);
            for v in [
                "IMAGE_UPDATER_CONFIG",
                "IMAGE_UPDATER_MODE",
                "GITHUB_ACTIONS",
            ] {
                cmd.env_remove(v);
            }
            cmd.output().unwrap()
        })
    };
    let out = verb(vec!["set".into(), format!("{WEB}:1.1.0")])
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report = json(&out);
    assert_eq!(
        report["pull_requests"][0]["branch"],
        "image-updater/set-web"
    );
    assert_eq!(report["pull_requests"][0]["action"], "created");
    assert!(!out
        .stdout
        .windows(TOKEN.len())
        .any(|w| w == TOKEN.as_bytes()));
    let shown = git(&bare, &["show", "image-updater/set-web:apps/web.yaml"]);
    assert!(
        shown.contains("registry.example.com/acme/web:1.1.0 # plain"),
        "{shown}"
    );

    let out = verb(vec![
        "lock".into(),
        API.into(),
        "--reason".into(),
        "r".into(),
    ])
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report = json(&out);
    assert_eq!(
        report["pull_requests"][0]["branch"],
        "image-updater/lock-api"
    );
    let config = git(
        &bare,
        &["show", "image-updater/lock-api:.image-updater.yaml"],
    );
    assert!(
        config.ends_with(&format!(
            "locks:\n  - {{ image: {API}, reason: \"r\", since: \"2026-12-06T17:20:20Z\" }}\n"
        )),
        "{config}"
    );
    assert_eq!(git(&bare, &["rev-parse", "main"]), main_before);
    assert_eq!(git(&work, &["status", "--porcelain"]), "");
}
