//! A run a person can watch and debug (issue 23), against real servers: the distribution
//! registry (behind a fault-injecting proxy where waits are needed), git remotes over file://,
//! the GitHub fake, and a real terminal (tmux).
//!
//! - `-v`: one line per stage with its counts and duration; `-vv`: one line per registry,
//!   forge and git request, with status, duration, and retry waits with their reason;
//!   `--log-format json` / `IMAGE_UPDATER_LOG_FORMAT=json`: one JSON object a line.
//! - The progress line on a terminal, and none in CI, with `-q`, or when stderr is a file.
//! - The last line of every run says what happened to the repository (shards too).
//! - The Markdown report renders: converted to HTML by a CommonMark renderer with GitHub's
//!   table extension (markdown-it-py), it has the table and a `language-diff` code block.
//! - `tags --config FILE` reads the config's `oci-layout:` paths from the config's directory;
//!   a local path without `oci-layout:` is a usage error before any request.
//! - `--clone` of a remote whose HEAD names a missing branch is an error that lists its
//!   branches and suggests `--branch`, for `plan` and `run` alike.

use crate::ci_common;
use crate::common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::forges::{mount_fake, seed_registry, GithubFake};
use common::{git, require_program, FaultProxy, Registry};
use serde_json::Value;
use wiremock::MockServer;

const TOKEN: &str = "ghp-observability-token";

/// The binary with a clean environment: no CI, no tokens, no colour, no config from outside.
fn bin(args: &[&str]) -> Command {
    let mut cmd = Command::new(common::test_bin());
    cmd.args(args).env("NO_COLOR", "1");
    for v in [
        "CI",
        "GITHUB_ACTIONS",
        "GITLAB_CI",
        "GITHUB_OUTPUT",
        "GITHUB_STEP_SUMMARY",
        "GITHUB_TOKEN",
        "IMAGE_UPDATER_FORGE_TOKEN",
        "IMAGE_UPDATER_GIT_TOKEN",
        "IMAGE_UPDATER_CONFIG",
        "IMAGE_UPDATER_OUTPUT",
        "IMAGE_UPDATER_LOG",
        "IMAGE_UPDATER_LOG_FORMAT",
        "IMAGE_UPDATER_MODE",
        "IMAGE_UPDATER_SHARD",
        "IMAGE_UPDATER_CLONE",
        "IMAGE_UPDATER_BRANCH",
        "IMAGE_UPDATER_QUIET",
    ] {
        cmd.env_remove(v);
    }
    cmd
}

fn output(mut cmd: impl std::borrow::BorrowMut<Command>) -> Output {
    let cmd = cmd.borrow_mut();
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn text(o: &Output) -> String {
    common::forges::output_text(o)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo")
}

/// A bare remote holding the `commit-basic` fixture, its config pointing at `registry_addr`,
/// with `delivery` (YAML lines) in place of its `mode: commit`; and a clone of it.
fn remote_and_work(dir: &Path, registry_addr: &str, delivery: &str) -> (PathBuf, PathBuf) {
    let bare = common::forges::fixture_remote(dir, registry_addr, delivery);
    let work = common::clone(&format!("file://{}", bare.display()), &dir.join("work"));
    (bare, work)
}

/// The lines of `log` holding `needle`.
fn lines_with<'a>(log: &'a str, needle: &str) -> Vec<&'a str> {
    log.lines().filter(|l| l.contains(needle)).collect()
}

/// The value of `key=` in a text log line (`ms=3.1` -> "3.1").
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!(" {key}=");
    let at = line.find(&pat)? + pat.len();
    line[at..].split(' ').next()
}

/// The one line of `log` for `stage`, which must carry a duration.
#[track_caller]
fn stage_line<'a>(log: &'a str, stage: &str) -> &'a str {
    let found = lines_with(log, stage);
    assert_eq!(found.len(), 1, "one line for {stage:?}:\n{log}");
    let line = found[0];
    assert!(line.contains(" INFO "), "{line}");
    let ms: f64 = field(line, "ms")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no duration (ms=) in {line}"));
    assert!(ms >= 0.0, "{line}");
    line
}

fn number(line: &str, key: &str) -> u64 {
    field(line, key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in {line}"))
}

#[test]
fn each_stage_logs_one_line_with_its_counts_and_duration_at_v() {
    let registry = Registry::start();
    seed_registry(&registry);
    let tmp = tempfile::tempdir().unwrap();
    let (bare, work) = remote_and_work(tmp.path(), &registry.addr, "  mode: commit\n");
    let o = output(bin(&["run", work.to_str().unwrap(), "-v"]));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let log = stderr(&o);

    let discover = stage_line(&log, "discover: files walked and parsed");
    assert!(number(discover, "files") >= 4, "{discover}");
    assert_eq!(number(discover, "references"), 6, "{discover}");
    let resolve = stage_line(&log, "resolve: repositories listed");
    assert_eq!(number(resolve, "repositories"), 3, "{resolve}");
    assert_eq!(number(resolve, "pages"), 3, "{resolve}");
    assert!(number(resolve, "requests") >= 3, "{resolve}");
    assert!(number(resolve, "bytes") > 0, "{resolve}");
    let select = stage_line(&log, "select: candidates ranked");
    assert_eq!(number(select, "updates"), 3, "{select}");
    assert!(number(select, "tags_ranked") >= 6, "{select}");
    let rewrite = stage_line(&log, "rewrite: files rewritten");
    assert_eq!(number(rewrite, "files"), 2, "{rewrite}");
    let deliver = stage_line(&log, "deliver: commit and push");
    let head = git(&bare, &["rev-parse", "main"]);
    assert!(
        deliver.contains(&format!("commit=\"{}\"", &head.trim()[..7])),
        "{deliver}"
    );
    // -v is stages only: no request lines.
    assert!(!log.contains(" DEBUG "), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn very_verbose_logs_each_registry_forge_and_git_request_and_retry_waits() {
    let registry = Registry::start();
    seed_registry(&registry);
    let proxy = FaultProxy::start(&registry.addr);
    // A rate limit with Retry-After on one repository, a 503 on another.
    proxy.inject(
        "/acme/web/tags/list",
        [common::Fault::Status(429, Some("1".into()))],
    );
    proxy.inject("/acme/api/tags/list", [common::Fault::Status(503, None)]);
    let server = MockServer::start().await;
    let fake = GithubFake::new(TOKEN);
    mount_fake(&server, fake.clone()).await;
    let tmp = tempfile::tempdir().unwrap();
    let (_bare, work) = remote_and_work(
        tmp.path(),
        &format!("http://{}", proxy.addr),
        &format!(
            "  mode: pull-request\n  forge: github\n  api_url: {}\n  repository: acme/infra\n",
            server.uri()
        ),
    );
    let work2 = work.clone();
    let o = tokio::task::spawn_blocking(move || {
        output(bin(&["run", work2.to_str().unwrap(), "-vv"]).env("GITHUB_TOKEN", TOKEN))
    })
    .await
    .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let log = stderr(&o);
    // Shown with --nocapture: the README's -vv example comes from here.
    println!("{log}");
    assert!(!log.contains(TOKEN), "{log}");

    // Registry: every request with its status, duration and size; URLs without a query.
    let web = format!("GET http://{}/v2/acme/web/tags/list", proxy.addr);
    let web_lines = lines_with(&log, &web);
    assert!(web_lines.iter().any(|l| l.contains("status=429")), "{log}");
    let ok = web_lines
        .iter()
        .find(|l| l.contains("status=200"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(field(ok, "ms").is_some() && number(ok, "bytes") > 0, "{ok}");
    assert!(
        !log.contains("?n="),
        "URLs are shown without their query:\n{log}"
    );
    // Retries: the wait and its reason.
    let rate = lines_with(&log, "retrying: HTTP 429");
    assert_eq!(rate.len(), 1, "{log}");
    assert!(rate[0].contains("wait_for=\"Retry-After\""), "{}", rate[0]);
    assert_eq!(field(rate[0], "wait_ms"), Some("1000.0"), "{}", rate[0]);
    let busy = lines_with(&log, "retrying: HTTP 503");
    assert_eq!(busy.len(), 1, "{log}");
    assert!(busy[0].contains("wait_for=\"backoff\""), "{}", busy[0]);
    let resolve = stage_line(&log, "resolve: repositories listed");
    assert_eq!(number(resolve, "retries"), 2, "{resolve}");
    assert!(number(resolve, "waited_ms") >= 1000, "{resolve}");

    // Forge: one line per API call, with status and duration.
    let created = lines_with(&log, "GitHub API POST /repos/acme/infra/pulls");
    assert_eq!(created.len(), 2, "{log}");
    assert!(created.iter().all(|l| l.contains("status=201")), "{log}");
    let deliver = stage_line(&log, "deliver: branches pushed and forge called");
    assert_eq!(number(deliver, "created"), 2, "{deliver}");
    assert_eq!(
        number(deliver, "calls") as usize,
        fake.state().calls.len(),
        "{deliver}"
    );
    // Git: the branch pushes.
    let pushes = lines_with(&log, "git push: ok");
    assert_eq!(pushes.len(), 2, "{log}");
    assert!(pushes.iter().all(|l| field(l, "ms").is_some()), "{log}");
}

/// Every stderr line of `o` as a JSON object.
#[track_caller]
fn json_lines(o: &Output) -> Vec<Value> {
    stderr(o)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            serde_json::from_str::<Value>(l)
                .unwrap_or_else(|e| panic!("not a JSON object ({e}): {l}\n{}", text(o)))
        })
        .collect()
}

#[test]
fn json_logs_are_one_object_a_line_by_flag_and_by_environment() {
    let demo = demo();
    let by_flag = output(bin(&[
        "plan",
        demo.to_str().unwrap(),
        "-vv",
        "--log-format",
        "json",
    ]));
    let by_env = output(
        bin(&["plan", demo.to_str().unwrap(), "-vv"]).env("IMAGE_UPDATER_LOG_FORMAT", "json"),
    );
    for o in [by_flag, by_env] {
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let events = json_lines(&o);
        for e in &events {
            for key in ["timestamp", "level", "message", "target"] {
                assert!(e.get(key).is_some(), "no {key} in {e}");
            }
        }
        let stage = |m: &str| {
            events
                .iter()
                .find(|e| e["message"] == m)
                .unwrap_or_else(|| panic!("no {m:?} event:\n{}", text(&o)))
        };
        let discover = stage("discover: files walked and parsed");
        assert_eq!(discover["level"], "INFO");
        assert_eq!(discover["references"], 9, "{discover}");
        assert!(discover["ms"].is_f64(), "{discover}");
        let resolve = stage("resolve: repositories listed");
        assert_eq!(resolve["repositories"], 3, "{resolve}");
        let listed: Vec<&Value> = events
            .iter()
            .filter(|e| e["message"] == "tags listed")
            .collect();
        assert_eq!(listed.len(), 3, "{}", text(&o));
        assert!(listed.iter().all(|e| e["level"] == "DEBUG"));
        assert!(stdout(&o).starts_with("7 updates:"), "{}", text(&o));
    }
}

/// The last line of a text report.
fn last_line(o: &Output) -> String {
    stdout(o).lines().last().unwrap_or_default().to_string()
}

#[test]
fn the_last_line_says_what_happened_to_the_repository() {
    let registry = Registry::start();
    seed_registry(&registry);
    let tmp = tempfile::tempdir().unwrap();
    let (bare, work) = remote_and_work(tmp.path(), &registry.addr, "  mode: commit\n");
    let w = work.to_str().unwrap();
    let before = git(&bare, &["rev-parse", "main"]);

    let plan = output(bin(&["plan", w]));
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    assert_eq!(last_line(&plan), "plan: nothing written", "{}", text(&plan));

    let none = output(bin(&["run", w]).env("IMAGE_UPDATER_MODE", "none"));
    assert_eq!(none.status.code(), Some(0), "{}", text(&none));
    assert!(stdout(&none).starts_with("3 updates:"), "{}", text(&none));
    assert_eq!(
        last_line(&none),
        "report only: nothing written (mode: none)",
        "{}",
        text(&none)
    );
    assert_eq!(git(&bare, &["rev-parse", "main"]), before);

    let run = output(&mut bin(&["run", w]));
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let head = git(&bare, &["rev-parse", "main"]);
    assert_ne!(head, before);
    assert_eq!(
        last_line(&run),
        format!("Committed and pushed {} to main", &head.trim()[..7]),
        "{}",
        text(&run)
    );
    let again = output(&mut bin(&["run", w]));
    assert_eq!(
        last_line(&again),
        "run: nothing to commit, every image is current",
        "{}",
        text(&again)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_last_line_counts_pull_requests() {
    let registry = Registry::start();
    seed_registry(&registry);
    let server = MockServer::start().await;
    let fake = GithubFake::new(TOKEN);
    mount_fake(&server, fake.clone()).await;
    let tmp = tempfile::tempdir().unwrap();
    let (_bare, work) = remote_and_work(
        tmp.path(),
        &registry.addr,
        &format!(
            "  mode: pull-request\n  forge: github\n  api_url: {}\n  repository: acme/infra\n",
            server.uri()
        ),
    );
    for expected in [
        "pull requests: 2 opened, 0 updated, 0 closed",
        "pull requests: 0 opened, 0 updated, 0 closed, 2 unchanged",
    ] {
        let w = work.clone();
        let o = tokio::task::spawn_blocking(move || {
            output(bin(&["run", w.to_str().unwrap()]).env("GITHUB_TOKEN", TOKEN))
        })
        .await
        .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        assert_eq!(last_line(&o), expected, "{}", text(&o));
    }
}

#[test]
fn a_shard_says_how_many_images_belong_to_the_others() {
    let demo = demo();
    let mut others = 0;
    for i in 1..=2 {
        let shard = format!("{i}/2");
        let o = output(bin(&["plan", demo.to_str().unwrap(), "--shard", &shard]));
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let last = last_line(&o);
        let prefix = format!("plan: nothing written; shard {shard}: ");
        let rest = last
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("{}", text(&o)));
        let n: usize = rest
            .strip_suffix(" of 3 images belong to other shards")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{}", text(&o)));
        others += n;
    }
    // Each of the demo's three images belongs to exactly one of the two shards.
    assert_eq!(others, 3);
}

/// `markdown` rendered to HTML as GitHub renders it: CommonMark with the table extension
/// (markdown-it-py, installed by scripts/install-test-deps.sh).
fn render_markdown(markdown: &str) -> String {
    let python = ci_common::venv_bin().join("python");
    assert!(
        python.is_file(),
        "no Python venv with markdown-it-py at {}: run scripts/install-test-deps.sh",
        python.display()
    );
    let script = "import sys\n\
                  from markdown_it import MarkdownIt\n\
                  md = MarkdownIt('commonmark').enable('table').enable('strikethrough')\n\
                  sys.stdout.write(md.render(sys.stdin.read()))\n";
    let mut child = Command::new(&python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(markdown.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "markdown-it-py failed (scripts/install-test-deps.sh installs it): {}",
        text(&o)
    );
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn the_markdown_report_with_a_diff_renders_as_github_shows_it() {
    let o = output(bin(&[
        "plan",
        demo().to_str().unwrap(),
        "--output",
        "markdown",
    ]));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let md = stdout(&o);
    assert!(md.contains("\n```diff\n--- a/"), "{md}");
    let html = render_markdown(&md);
    // The updates table: a header and seven rows.
    assert!(
        html.contains("<table>") && html.contains("<th>Policy</th>"),
        "{html}"
    );
    assert_eq!(html.matches("<tr>").count(), 8, "{html}");
    // The diff: one code block marked as a diff, holding every file's hunk as it is.
    assert_eq!(
        html.matches(r#"<pre><code class="language-diff">"#).count(),
        1,
        "{html}"
    );
    let block = html
        .split(r#"<pre><code class="language-diff">"#)
        .nth(1)
        .and_then(|b| b.split("</code></pre>").next())
        .unwrap();
    assert!(
        block.starts_with("--- a/apps/api/kustomization.yaml\n"),
        "{block}"
    );
    assert!(
        block.contains("-          image: &quot;registry.example.com/acme/web:1.2.0&quot;   # same image, migration entrypoint\n"),
        "{block}"
    );
    assert_eq!(block.matches("\n+++ b/").count(), 6, "{block}");
    // The skipped items: a list, not loose text.
    let skipped = html
        .split("<h3>Skipped</h3>")
        .nth(1)
        .unwrap_or_else(|| panic!("{html}"));
    assert!(skipped.trim_start().starts_with("<ul>"), "{html}");
    assert_eq!(
        skipped
            .split("</ul>")
            .next()
            .unwrap()
            .matches("<li>")
            .count(),
        3,
        "{html}"
    );
    // And the last paragraph says nothing was written.
    assert!(
        html.trim_end().ends_with("<p>plan: nothing written</p>"),
        "{html}"
    );
}

#[test]
fn scan_markdown_lists_skipped_files() {
    let o = output(bin(&[
        "scan",
        demo().to_str().unwrap(),
        "--output",
        "markdown",
    ]));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let html = render_markdown(&stdout(&o));
    let skipped = html
        .split("<h3>Skipped</h3>")
        .nth(1)
        .unwrap_or_else(|| panic!("{html}"));
    assert!(skipped.trim_start().starts_with("<ul>\n<li>"), "{html}");
}

#[test]
fn tags_reads_the_configs_layout_paths_from_the_configs_directory() {
    // From the repository root and from elsewhere, with a relative and an absolute --config.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().unwrap();
    let absolute = demo().join(".image-updater.yaml");
    for (cwd, config) in [
        (
            root.as_path(),
            "examples/demo/.image-updater.yaml".to_string(),
        ),
        (tmp.path(), absolute.to_str().unwrap().to_string()),
    ] {
        let o = output(
            bin(&[
                "tags",
                "registry.example.com/acme/web",
                "--semver",
                "^1.2",
                "--config",
                &config,
            ])
            .current_dir(cwd),
        );
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        assert_eq!(
            stdout(&o),
            "* 1.3.1\n  1.3.0\n  1.2.5\n  1.2.0\nlatest: 1.3.1\n",
            "{}",
            text(&o)
        );
    }
}

#[test]
fn tags_of_a_local_path_without_the_prefix_is_an_error_before_any_request() {
    // Any request would go through this proxy: it must see none.
    let proxy = TcpListener::bind("127.0.0.1:0").unwrap();
    proxy.set_nonblocking(true).unwrap();
    let via = format!("http://{}", proxy.local_addr().unwrap());
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for path in [
        "examples/demo/registry/acme/web".to_string(),
        "./examples/demo/registry/acme/web".to_string(),
        demo()
            .join("registry/acme/web")
            .to_str()
            .unwrap()
            .to_string(),
    ] {
        let o = output(
            bin(&["tags", &path])
                .current_dir(&root)
                .env("HTTPS_PROXY", &via)
                .env("HTTP_PROXY", &via)
                .env("ALL_PROXY", &via)
                .env("IMAGE_UPDATER_REGISTRY_DEADLINE", "3"),
        );
        assert_eq!(o.status.code(), Some(2), "{path}: {}", text(&o));
        let err = stderr(&o);
        assert!(
            err.contains(&format!("oci-layout:{path}")) && err.contains("path"),
            "{err}"
        );
        assert!(
            proxy.accept().is_err(),
            "{path}: a request was made:\n{}",
            text(&o)
        );
    }
}

/// A bare repository over file:// with `main`, whose HEAD names `refs/heads/master`, which
/// does not exist.
fn remote_with_a_dangling_head(dir: &Path, registry_addr: &str) -> String {
    let (bare, _) = remote_and_work(dir, registry_addr, "  mode: commit\n");
    git(&bare, &["branch", "release", "main"]);
    git(&bare, &["symbolic-ref", "HEAD", "refs/heads/master"]);
    format!("file://{}", bare.display())
}

#[test]
fn clone_of_a_remote_whose_head_names_a_missing_branch_says_so() {
    let registry = Registry::start();
    seed_registry(&registry);
    let tmp = tempfile::tempdir().unwrap();
    let url = remote_with_a_dangling_head(tmp.path(), &registry.addr);
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    for command in ["plan", "run"] {
        let o = output(
            bin(&[command, "--clone", &url])
                .current_dir(&empty)
                .env("HOME", tmp.path()),
        );
        let all = text(&o);
        assert_eq!(o.status.code(), Some(2), "{command}: {all}");
        assert!(!stdout(&o).contains("No updates"), "{command}: {all}");
        let err = stderr(&o);
        assert!(err.contains("refs/heads/master"), "{command}: {err}");
        assert!(
            err.contains("its branches: main, release"),
            "{command}: {err}"
        );
        assert!(err.contains("--branch"), "{command}: {err}");
    }
    // A branch it does not have, named with --branch: the same list.
    let o = output(
        bin(&["plan", "--clone", &url, "--branch", "nope"])
            .current_dir(&empty)
            .env("HOME", tmp.path()),
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        stderr(&o).contains("its branches: main, release"),
        "{}",
        text(&o)
    );
    // Named, it works.
    let o = output(
        bin(&["plan", "--clone", &url, "--branch", "main"])
            .current_dir(&empty)
            .env("HOME", tmp.path()),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(stdout(&o).starts_with("3 updates:"), "{}", text(&o));
}

// ---------------------------------------------------------------------------------------------
// The progress line, in a real terminal
// ---------------------------------------------------------------------------------------------

/// A tmux server of the test's own (its socket in a temp dir), stopped on drop.
struct Tmux {
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmux {
    fn start() -> Tmux {
        require_program("tmux", "apt-get install tmux");
        let dir = tempfile::tempdir().unwrap();
        Tmux {
            socket: dir.path().join("tmux.sock"),
            _dir: dir,
        }
    }

    fn cmd(&self, args: &[&str]) -> Output {
        let o = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .env_remove("TMUX")
            .output()
            .unwrap();
        o
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let o = self.cmd(args);
        assert!(o.status.success(), "tmux {args:?}: {}", text(&o));
        stdout(&o)
    }

    /// Run `shell` (sh -c) in a 160x30 terminal; it starts when [`Tmux::go`] is called.
    fn session(&self, shell: &str) {
        let sock = self.socket.to_str().unwrap();
        let script =
            format!("tmux -S '{sock}' wait-for go; {shell}; tmux -S '{sock}' wait-for -S done");
        self.ok(&[
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            "160",
            "-y",
            "30",
            "sh",
            "-c",
            &script,
        ]);
    }

    /// Record everything written to the terminal into `file`, then start the session.
    fn record_and_go(&self, file: &Path) {
        self.ok(&[
            "pipe-pane",
            "-t",
            "t",
            "-o",
            &format!("cat >> '{}'", file.display()),
        ]);
        self.ok(&["wait-for", "-S", "go"]);
    }

    /// The terminal's screen as text.
    fn screen(&self) -> String {
        stdout(&self.cmd(&["capture-pane", "-p", "-t", "t"]))
    }

    fn wait_done(&self) {
        self.ok(&["wait-for", "done"]);
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

/// A registry held back by a slow front: every answer takes `delay`; the demo's config
/// pointed at it (two images there), in a work tree of its own.
struct Slow {
    _registry: Registry,
    _proxy: FaultProxy,
    work: PathBuf,
    _tmp: tempfile::TempDir,
}

fn slow(delay: Duration) -> Slow {
    let registry = Registry::start();
    seed_registry(&registry);
    let proxy = FaultProxy::start(&registry.addr);
    proxy.set_delay(delay);
    let tmp = tempfile::tempdir().unwrap();
    let (_bare, work) = remote_and_work(
        tmp.path(),
        &format!("http://{}", proxy.addr),
        "  mode: commit\n",
    );
    Slow {
        _registry: registry,
        _proxy: proxy,
        work,
        _tmp: tmp,
    }
}

/// `image-updater plan WORK ARGS` as a shell command line, with the CI variables removed
/// (CI itself runs the tests with CI=true), then `set` (`NAME=VALUE`) set, and stdout to `out`.
fn plan_line(work: &Path, set: &str, args: &str, out: &Path) -> String {
    format!(
        "env -u CI -u GITHUB_ACTIONS -u GITLAB_CI -u NO_COLOR {set} '{}' plan '{}' {args} > '{}'",
        common::test_bin(),
        work.display(),
        out.display()
    )
}

#[test]
fn a_terminal_shows_the_progress_line_while_a_slow_registry_holds_the_run_back() {
    let s = slow(Duration::from_secs(4));
    let tmux = Tmux::start();
    let dir = tempfile::tempdir().unwrap();
    let (out, tty) = (dir.path().join("out"), dir.path().join("tty"));
    tmux.session(&plan_line(&s.work, "", "", &out));
    tmux.record_and_go(&tty);
    let mut seen = String::new();
    common::wait_until_for(
        "the progress line on the terminal",
        Duration::from_secs(60),
        || {
            seen = tmux.screen();
            seen.contains("repositories listed")
        },
    );
    let line = seen
        .lines()
        .find(|l| l.contains("repositories listed"))
        .unwrap();
    assert!(line.contains("/3"), "{seen}");
    assert!(line.contains("waiting on"), "{seen}");
    tmux.wait_done();
    let report = std::fs::read_to_string(&out).unwrap();
    assert!(report.starts_with("3 updates:"), "{report}");
    // Drawn with escape codes, then taken away before the run ended.
    let written = std::fs::read(&tty).unwrap();
    assert!(written.contains(&0x1b), "no escape codes drawn");
}

#[test]
fn no_progress_line_with_q_in_ci_or_when_stderr_is_a_file() {
    let s = slow(Duration::from_millis(2500));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let err = dir.path().join("err");
    for (what, args, ci) in [
        ("-q", "-q", ""),
        ("CI=true", "", "CI=true"),
        (
            "stderr a file",
            &format!("-v 2> '{}'", err.display()) as &str,
            "",
        ),
    ] {
        let tmux = Tmux::start();
        let tty = dir.path().join(format!("tty-{}", what.len()));
        tmux.session(&plan_line(&s.work, ci, args, &out));
        tmux.record_and_go(&tty);
        tmux.wait_done();
        let report = std::fs::read_to_string(&out).unwrap();
        assert!(report.starts_with("3 updates:"), "{what}: {report}");
        let written =
            String::from_utf8_lossy(&std::fs::read(&tty).unwrap_or_default()).into_owned();
        assert!(
            !written.contains("repositories listed"),
            "{what}: a progress line was drawn:\n{written:?}"
        );
    }
    // stderr a file: the log lines, and no escape code in them.
    let log = std::fs::read_to_string(&err).unwrap();
    assert!(log.contains("resolve: repositories listed"), "{log}");
    assert!(!log.contains('\u{1b}'), "escape codes in a file: {log:?}");
}
