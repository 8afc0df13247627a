//! The bad-input corpus of `fixtures/bad/`, driven by one test through the built binary.
//!
//! `fixtures/bad/expected.txt` lists every case with its expected outcome, one a line:
//! `KIND/NAME => exit CODE; FILE-STATE; REASON`, where FILE-STATE is `unchanged` or
//! `rewritten` (the bad file's bytes after `run`) and REASON is a substring of the report's
//! `skipped` reasons for that file (`-`: no skipped entry), of stderr for a config error, or
//! `latest TAG` for a tag list. Kinds:
//!
//! - `manifests/NAME`: hostile YAML, put at `apps/NAME` in a repo beside a good Deployment;
//!   `run` (commit mode, file:// remote, an OCI layout registry) must skip it with a reason,
//!   never crash, hang or half-write it, and still deliver the good file's update.
//! - `configs/NAME`: a hostile `.image-updater.yaml`; the run must stop with exit 2 and a
//!   clear message before touching anything.
//! - `tags/NAME.json`: hostile tags in the registry (newlines, quotes, `#`, `{{`, spaces, shell
//!   metacharacters); none may reach a manifest, a commit message or the output, and `tags
//!   --tags-from` picks the same valid tag.
//! - `layout/NAME`: repo layouts the test builds (symlinks out of the repo, into `.git`,
//!   loops, a FIFO named `.yaml`), as git may not keep them.
//! - `generated/NAME`: inputs too big to keep in git (an 11 MiB file, a 9 MiB scalar,
//!   thousands of documents), written by the test.
//!
//! Every child runs under a 4 GiB address-space limit and a 60 s hang detector: a case that
//! needs either is a failure. `UPDATE_BAD_EXPECTED=1` prints the observed outcomes in the
//! file's format instead of comparing, for review.

use crate::common;

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{bare_repo_with_files, clone, git};

const BIN: &str = env!("CARGO_BIN_EXE_image-updater");

/// A run that takes longer than this is a hang, not a slow case.
const HANG: Duration = Duration::from_secs(60);

const GOOD: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: good
spec:
  template:
    spec:
      containers:
        - name: web
          image: ghcr.io/acme/web:1.0.0
";

const CONFIG: &str = r#"registries:
  - host: ghcr.io
    api: "oci-layout:{{LAYOUT}}/ghcr.io"
images:
  - name: web
    image: ghcr.io/acme/web
    policy: { semver: "^1.0" }
delivery:
  mode: commit
  commit:
    author: { name: image-updater-test, email: bot@example.invalid }
    message: "chore(images): {{ summary }}"
"#;

/// Tags the registry holds for every case but `tags/`.
const TAGS: &[&str] = &["1.0.0", "1.2.0", "2.0.0"];

fn bad_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/bad")
}

/// One finished child process.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Ran {
    fn show(&self) -> String {
        format!(
            "exit {:?} after {:.1?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.took, self.stdout, self.stderr
        )
    }
}

/// Run the binary with a memory limit and the hang detector; `None` when it hung (killed).
fn run_bin(args: &[&str], cwd: &Path) -> Option<Ran> {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("ulimit -v 4194304; exec \"$0\" \"$@\"")
        .arg(BIN)
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .env("HOME", cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for v in [
        "IMAGE_UPDATER_GIT_TOKEN",
        "GITHUB_TOKEN",
        "GITLAB_TOKEN",
        "CI_JOB_TOKEN",
        "GITEA_TOKEN",
        "IMAGE_UPDATER_CONFIG",
        "IMAGE_UPDATER_OUTPUT",
        "GITHUB_OUTPUT",
        "GITHUB_STEP_SUMMARY",
        "GITHUB_ACTIONS",
        "GITLAB_CI",
    ] {
        cmd.env_remove(v);
    }
    let start = Instant::now();
    let mut child = cmd.spawn().expect("spawn image-updater");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() > HANG {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = start.elapsed();
    let stdout = String::from_utf8_lossy(&t_out.join().unwrap()).into_owned();
    let stderr = String::from_utf8_lossy(&t_err.join().unwrap()).into_owned();
    status.map(|s| Ran {
        code: s.code(),
        stdout,
        stderr,
        took,
    })
}

/// Write an OCI image layout for `ghcr.io/acme/web` holding `tags`.
fn build_layout(layout: &Path, tags: &[String]) {
    common::write_oci_layout(&layout.join("ghcr.io/acme/web"), tags);
}

/// A repo to run in: a bare remote holding `files` and the config, and a clone of it.
struct Repo {
    tmp: tempfile::TempDir,
    bare: PathBuf,
    work: PathBuf,
}

fn repo(files: &[(&str, &[u8])], config: &[u8], tags: &[String]) -> Repo {
    let tmp = tempfile::tempdir().unwrap();
    // The layout sits in the work tree (the repo's config may only name paths inside it).
    let config = config_bytes(config, Path::new(common::LAYOUT_IN_REPO));
    let mut all: Vec<(&str, &[u8])> = files.to_vec();
    all.push((".image-updater.yaml", &config));
    let bare = bare_repo_with_files(&tmp.path().join("remote.git"), &all);
    let work = clone(
        &format!("file://{}", bare.display()),
        &tmp.path().join("work"),
    );
    build_layout(&common::layout_in_work_tree(&work), tags);
    Repo { tmp, bare, work }
}

/// Bytes of config with invalid UTF-8 kept: `{{LAYOUT}}` replaced at the byte level.
fn config_bytes(raw: &[u8], layout: &Path) -> Vec<u8> {
    let needle = b"{{LAYOUT}}";
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i..].starts_with(needle) {
            out.extend_from_slice(layout.to_str().unwrap().as_bytes());
            i += needle.len();
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    out
}

fn default_tags() -> Vec<String> {
    TAGS.iter().map(|t| t.to_string()).collect()
}

/// What a case did, in the format of `expected.txt`, plus the invariant violations seen.
struct Observed {
    outcome: String,
    reasons: Vec<String>,
    problems: Vec<String>,
}

/// Run `run --output json` in `r` and describe what happened to `file` (relative path).
fn observe_run(r: &Repo, file: &str, before: Option<&[u8]>) -> Observed {
    let mut problems = Vec::new();
    let work_s = r.work.to_str().unwrap();
    let head0 = git(&r.bare, &["rev-parse", "refs/heads/main"]);
    let Some(ran) = run_bin(&["run", work_s, "--output", "json"], r.tmp.path()) else {
        return Observed {
            outcome: "hang".into(),
            reasons: Vec::new(),
            problems: vec![format!("no exit within {HANG:?}")],
        };
    };
    if ran.stderr.contains("panicked") || ran.code.is_none() {
        problems.push(format!("crashed:\n{}", ran.show()));
    }
    let code = ran.code.unwrap_or(-1);
    let report: Option<serde_json::Value> = serde_json::from_str(&ran.stdout).ok();
    if code != 2 && report.is_none() {
        problems.push(format!("no JSON report:\n{}", ran.show()));
    }
    // Never open a FIFO (the read would block): only regular files, through links.
    let after = std::fs::metadata(r.work.join(file))
        .ok()
        .filter(|m| m.is_file())
        .and_then(|_| std::fs::read(r.work.join(file)).ok());
    let state = match (before, &after) {
        (Some(b), Some(a)) if a.as_slice() == b => "unchanged",
        (None, None) => "unchanged",
        _ => "rewritten",
    };
    let mut reasons: Vec<String> = report
        .iter()
        .flat_map(|r| r["skipped"].as_array().cloned().unwrap_or_default())
        .filter(|s| s["file"].as_str() == Some(file))
        .map(|s| s["reason"].as_str().unwrap_or_default().to_string())
        .collect();
    reasons.extend(
        report
            .iter()
            .flat_map(|r| r["errors"].as_array().cloned().unwrap_or_default())
            .filter(|e| e["file"].as_str() == Some(file))
            .map(|e| format!("error: {}", e["message"].as_str().unwrap_or_default())),
    );
    if code == 2 {
        reasons.push(ran.stderr.trim().to_string());
    }
    // The good file is delivered whatever its neighbour holds, unless the config is bad.
    let good = std::fs::read_to_string(r.work.join("apps/good.yaml")).unwrap_or_default();
    let head1 = git(&r.bare, &["rev-parse", "refs/heads/main"]);
    if code == 2 {
        if good != GOOD || head0 != head1 {
            problems.push(format!("a config error touched the repo:\n{}", ran.show()));
        }
    } else if !good.contains("ghcr.io/acme/web:1.2.0") || head0 == head1 {
        problems.push(format!(
            "the good file was not updated and pushed:\n{}",
            ran.show()
        ));
    }
    if !git(&r.work, &["status", "--porcelain"]).trim().is_empty() {
        problems.push(format!(
            "the run left the work tree dirty:\n{}",
            git(&r.work, &["status", "--porcelain"])
        ));
    }
    Observed {
        outcome: format!("exit {code}; {state}"),
        reasons,
        problems,
    }
}

fn manifest_case(name: &str) -> Observed {
    let bytes = std::fs::read(bad_dir().join("manifests").join(name)).unwrap();
    let rel = format!("apps/{name}");
    let r = repo(
        &[("apps/good.yaml", GOOD.as_bytes()), (&rel, &bytes)],
        CONFIG.as_bytes(),
        &default_tags(),
    );
    observe_run(&r, &rel, Some(&bytes))
}

fn config_case(name: &str) -> Observed {
    let raw = std::fs::read(bad_dir().join("configs").join(name)).unwrap();
    let r = repo(
        &[("apps/good.yaml", GOOD.as_bytes())],
        &raw,
        &default_tags(),
    );
    let mut o = observe_run(&r, ".image-updater.yaml", None);
    o.outcome = o.outcome.replace("; rewritten", "; unchanged");
    o
}

/// Hostile tags in the registry: the pick is a valid tag, and no hostile tag appears in
/// anything the tool wrote or printed. The same list through `tags --tags-from`.
fn tags_case(name: &str) -> Observed {
    let list: Vec<String> =
        serde_json::from_slice(&std::fs::read(bad_dir().join("tags").join(name)).unwrap()).unwrap();
    let hostile: Vec<&String> = list
        .iter()
        .filter(|t| !image_updater::policy::is_oci_tag(t))
        .collect();
    let r = repo(
        &[("apps/good.yaml", GOOD.as_bytes())],
        CONFIG.as_bytes(),
        &list,
    );
    let mut o = observe_run(&r, "apps/good.yaml", Some(GOOD.as_bytes()));
    let good = std::fs::read_to_string(r.work.join("apps/good.yaml")).unwrap();
    let log = git(&r.work, &["log", "--format=%B", "-1"]);
    // --tags-from: one tag a line, so a tag with a newline arrives as two lines.
    let file = r.tmp.path().join("tags.txt");
    std::fs::write(&file, list.join("\n")).unwrap();
    let tags = run_bin(
        &[
            "tags",
            "ghcr.io/acme/web",
            "--tags-from",
            file.to_str().unwrap(),
            "--semver",
            "^1.0",
            "--output",
            "json",
        ],
        r.tmp.path(),
    );
    let latest = match &tags {
        Some(t) => serde_json::from_str::<serde_json::Value>(&t.stdout)
            .map(|v| v["latest"].as_str().unwrap_or("null").to_string())
            .unwrap_or_else(|_| format!("no JSON: {}", t.show())),
        None => "hang".into(),
    };
    for h in &hostile {
        for (what, text) in [("the manifest", &good), ("the commit message", &log)] {
            if !h.is_empty() && text.contains(h.as_str()) {
                o.problems
                    .push(format!("hostile tag {h:?} reached {what}:\n{text}"));
            }
        }
    }
    // Lines of --tags-from are trimmed; what is still not a tag after that must not show.
    let lines = list.join("\n");
    for h in lines
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !image_updater::policy::is_oci_tag(l))
    {
        if let Some(t) = &tags {
            if t.stdout.contains(&format!("\"{h}")) || t.stdout.contains(&format!("{h}\"")) {
                o.problems
                    .push(format!("hostile tag {h:?} printed by tags:\n{}", t.show()));
            }
        }
    }
    o.reasons = vec![format!("latest {latest}")];
    if !good.contains("ghcr.io/acme/web:1.2.0") {
        o.problems.push(format!("the pick is not 1.2.0:\n{good}"));
    }
    o
}

/// Layouts git cannot carry: made on the work tree after the clone.
fn layout_case(name: &str) -> Observed {
    use std::os::unix::fs::symlink;
    let r = repo(
        &[("apps/good.yaml", GOOD.as_bytes())],
        CONFIG.as_bytes(),
        &default_tags(),
    );
    let apps = r.work.join("apps");
    let outside = r.tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.yaml"), GOOD).unwrap();
    let file = match name {
        "symlink-out-of-repo" => {
            symlink(outside.join("secret.yaml"), apps.join("out.yaml")).unwrap();
            "apps/out.yaml"
        }
        "symlink-relative-out-of-repo" => {
            symlink("../../outside/secret.yaml", apps.join("rel.yaml")).unwrap();
            "apps/rel.yaml"
        }
        "symlink-dir-out-of-repo" => {
            symlink(&outside, apps.join("outdir")).unwrap();
            "apps/outdir/secret.yaml"
        }
        "symlink-into-git" => {
            std::fs::write(r.work.join(".git/evil.yaml"), GOOD).unwrap();
            symlink("../.git/evil.yaml", apps.join("git.yaml")).unwrap();
            "apps/git.yaml"
        }
        "symlink-to-git-config" => {
            symlink("../.git/config", apps.join("config.yaml")).unwrap();
            "apps/config.yaml"
        }
        "symlink-to-git-dir" => {
            symlink("../.git", apps.join("dotgit")).unwrap();
            "apps/dotgit/config"
        }
        "symlink-loop" => {
            symlink("b.yaml", apps.join("a.yaml")).unwrap();
            symlink("a.yaml", apps.join("b.yaml")).unwrap();
            "apps/a.yaml"
        }
        "symlink-self" => {
            symlink("self.yaml", apps.join("self.yaml")).unwrap();
            "apps/self.yaml"
        }
        "symlink-dir-loop" => {
            symlink(".", apps.join("loop")).unwrap();
            symlink("..", apps.join("up")).unwrap();
            "apps/loop"
        }
        "symlink-absolute-etc" => {
            symlink("/etc/passwd", apps.join("passwd.yaml")).unwrap();
            "apps/passwd.yaml"
        }
        "symlink-broken" => {
            symlink("missing.yaml", apps.join("broken.yaml")).unwrap();
            "apps/broken.yaml"
        }
        "fifo-named-yaml" => {
            let ok = Command::new("mkfifo")
                .arg(apps.join("fifo.yaml"))
                .status()
                .unwrap();
            assert!(ok.success(), "mkfifo");
            "apps/fifo.yaml"
        }
        "directory-named-yaml" => {
            std::fs::create_dir_all(apps.join("dir.yaml")).unwrap();
            "apps/dir.yaml"
        }
        "git-dir-yaml-file" => {
            // A manifest-looking file inside .git itself is never read.
            std::fs::write(r.work.join(".git/deploy.yaml"), GOOD).unwrap();
            ".git/deploy.yaml"
        }
        other => panic!("unknown layout case {other}"),
    };
    let before_outside = std::fs::read(outside.join("secret.yaml")).unwrap();
    let before_git = std::fs::read(r.work.join(".git/config")).unwrap();
    let before = std::fs::symlink_metadata(r.work.join(file))
        .ok()
        .filter(|m| m.is_file())
        .and_then(|_| std::fs::read(r.work.join(file)).ok());
    let mut o = observe_run(&r, file, before.as_deref());
    // What the test made shows as untracked; only other changes count as the run's mess.
    o.problems.retain(|p| {
        !p.starts_with("the run left the work tree dirty")
            || p.lines()
                .skip(1)
                .any(|l| !l.is_empty() && !l.starts_with("??"))
    });
    if std::fs::read(outside.join("secret.yaml")).unwrap() != before_outside {
        o.problems
            .push("a file outside the repo was written".into());
    }
    if std::fs::read(r.work.join(".git/config")).unwrap() != before_git {
        o.problems.push(".git/config was written".into());
    }
    if let Ok(evil) = std::fs::read_to_string(r.work.join(".git/evil.yaml")) {
        if evil != GOOD {
            o.problems.push("a file inside .git was written".into());
        }
    }
    if before.is_none() {
        o.outcome = o.outcome.replace("; rewritten", "; unchanged");
    }
    o
}

/// Inputs too big for git: written by the test.
fn generated_case(name: &str) -> Observed {
    let bytes: Vec<u8> = match name {
        "huge-file.yaml" => {
            let mut s = GOOD.to_string();
            s.push_str("data: |\n");
            let line = format!("  {}\n", "x".repeat(1022));
            while s.len() < 11 * 1024 * 1024 {
                s.push_str(&line);
            }
            s.into_bytes()
        }
        "huge-scalar.yaml" => {
            let mut s = GOOD.to_string();
            s.push_str("blob: ");
            s.push_str(&"y".repeat(9 * 1024 * 1024));
            s.push('\n');
            s.into_bytes()
        }
        "huge-quoted-image.yaml" => GOOD
            .replace(
                "ghcr.io/acme/web:1.0.0",
                &format!(
                    "\"ghcr.io/acme/web:1.0.0{}\"",
                    "\\t".repeat(2 * 1024 * 1024)
                ),
            )
            .into_bytes(),
        "many-documents.yaml" => {
            let mut s = String::new();
            for i in 0..3000 {
                s.push_str("---\n");
                s.push_str(&GOOD.replace("name: good", &format!("name: d{i}")));
            }
            s.into_bytes()
        }
        "many-empty-documents.yaml" => "---\n".repeat(200_000).into_bytes(),
        // 300,000 keys in one mapping: duplicates are found without comparing every pair.
        "huge-mapping.yaml" | "huge-mapping-duplicate-last.yaml" => {
            let mut s = GOOD.to_string();
            s.push_str("labels:\n");
            for i in 0..300_000 {
                writeln!(s, "  k{i}: v").unwrap();
            }
            if name == "huge-mapping-duplicate-last.yaml" {
                s.push_str("  k0: again\n");
            }
            s.into_bytes()
        }
        "very-long-line.yaml" => {
            let mut s = GOOD.to_string();
            s.push_str("list: [");
            for i in 0..200_000 {
                write!(s, "{i},").unwrap();
            }
            s.push_str("0]\n");
            s.into_bytes()
        }
        other => panic!("unknown generated case {other}"),
    };
    let rel = format!("apps/{name}");
    let r = repo(
        &[("apps/good.yaml", GOOD.as_bytes()), (&rel, &bytes)],
        CONFIG.as_bytes(),
        &default_tags(),
    );
    observe_run(&r, &rel, Some(&bytes))
}

fn observe(case: &str) -> Observed {
    let (kind, name) = case.split_once('/').expect("KIND/NAME");
    match kind {
        "manifests" => manifest_case(name),
        "configs" => config_case(name),
        "tags" => tags_case(name),
        "layout" => layout_case(name),
        "generated" => generated_case(name),
        other => panic!("unknown kind {other}"),
    }
}

/// `(case, outcome, reason)` lines of `expected.txt`.
fn expected() -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(bad_dir().join("expected.txt")).unwrap();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (case, rest) = l
                .split_once(" => ")
                .unwrap_or_else(|| panic!("bad line {l}"));
            let mut parts = rest.splitn(3, "; ");
            let code = parts.next().unwrap().to_string();
            let state = parts.next().unwrap_or_default().to_string();
            let reason = parts.next().unwrap_or("-").to_string();
            (case.to_string(), format!("{code}; {state}"), reason)
        })
        .collect()
}

#[test]
fn bad_inputs_give_their_expected_outcome() {
    let cases = expected();
    // Every fixture file is listed, so a new one cannot be forgotten.
    for kind in ["manifests", "configs", "tags"] {
        for e in std::fs::read_dir(bad_dir().join(kind)).unwrap() {
            let name = format!("{kind}/{}", e.unwrap().file_name().to_string_lossy());
            assert!(
                cases.iter().any(|(c, _, _)| *c == name),
                "{name} is not listed in fixtures/bad/expected.txt"
            );
        }
    }
    assert!(cases.len() >= 60, "only {} bad inputs", cases.len());
    let update = std::env::var_os("UPDATE_BAD_EXPECTED").is_some();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some((case, _, _)) = cases.get(i) else {
                    break;
                };
                let start = Instant::now();
                let o = observe(case);
                results.lock().unwrap().push((i, o, start.elapsed()));
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(i, _, _)| *i);
    let mut failures = Vec::new();
    let mut listing = String::new();
    for (i, o, took) in &results {
        let (case, want, reason) = &cases[*i];
        let shown = o
            .reasons
            .iter()
            .map(|r| r.lines().next().unwrap_or_default())
            .collect::<Vec<_>>()
            .join(" | ");
        writeln!(
            listing,
            "{case} => {}; {}",
            o.outcome,
            if shown.is_empty() { "-" } else { &shown }
        )
        .unwrap();
        eprintln!("{case}: {} in {took:.1?}", o.outcome);
        for p in &o.problems {
            failures.push(format!("{case}: {p}"));
        }
        if update {
            continue;
        }
        if &o.outcome != want {
            failures.push(format!("{case}: expected {want}, got {}", o.outcome));
        }
        let reason_ok = if reason == "-" {
            o.reasons.is_empty()
        } else {
            o.reasons.iter().any(|r| r.contains(reason.as_str()))
        };
        if !reason_ok {
            failures.push(format!(
                "{case}: expected reason containing {reason:?}, got {:?}",
                o.reasons
            ));
        }
    }
    if update {
        println!("{listing}");
    }
    assert!(
        failures.is_empty(),
        "{} of {} bad inputs failed:\n\n{}",
        failures.len(),
        results.len(),
        failures.join("\n\n")
    );
}
