//! Hostile remote text cannot become a CI command or markup.
//!
//! One server plays a registry and the GitHub API, and puts lines of its own into everything
//! it answers: a tag-list refusal whose message holds newlines, `::error::pwned`,
//! `::stop-commands::x`, a Unicode line separator, `|`, `<script>`, `[link](x)` and `# heading`;
//! a pull request whose `html_url` does the same (with a `key=value` line for `$GITHUB_OUTPUT`);
//! a refused pull request quoting such text. The repo adds file names of its own with a newline,
//! `|`, `<script>`, a link, backticks and `::error::`. `plan` and `run` (pull-request mode) then
//! run as a GitHub Actions step, with text and Markdown output, and the test reads what the
//! runner would: every line of stdout and stderr (split at CR and LF, as the runner does, and
//! trimmed at the start, as it trims), the step summary, `$GITHUB_OUTPUT`, and the pull-request
//! bodies the forge received.
//!
//! What must hold: a line that starts with `::` is one of our annotations, well formed (GitHub's
//! escaping in data and properties), one per error and skip in the JSON report; every Markdown
//! table keeps its column count on every row and has the rows it should; no raw `<script`, no
//! link or heading from remote text; `$GITHUB_OUTPUT` has exactly our keys, one `key=value`
//! line each. And the hostile text did arrive (escaped), so none of this holds vacuously.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{bare_repo_with_files, clone, HostileRequest, HostileServer, Reply};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_image-updater");
const TOKEN: &str = "ghp-output-test-token";

/// The registry's refusal of `acme/evil`'s tag list.
const REGISTRY_SAYS: &str = "denied\n::error::pwned\n::stop-commands::x\r\n  ::warning::indented\r::notice::cr\u{2028}::error::ls\u{85}nel | a | b <script>alert(1)</script> [link](x) %0A::error::pct\n# heading\n- item `tick` *star* _under_";
/// The pull request's web address, as the forge answers it.
const FORGE_URL: &str = "https://github.example/acme/infra/pull/1\n::error::forge-url\nupdated=hacked\r\n| a | b |) [x](javascript:alert(2)) <script>alert(3)</script>";
/// The forge's refusal of the `other` pull request.
const FORGE_SAYS: &str =
    "Validation Failed\n::error::forge-said\n| x | y | <script>alert(4)</script>\n## heading";
/// A manifest whose name carries markup and a command on a line of its own.
const HOSTILE_FILE: &str = "apps/x|y <script>alert(5) [l](u) *_ `t`\n::error::file-name.yaml";
/// A file skipped (a Helm template) whose name does the same.
const HOSTILE_SKIP: &str = "apps/\n::warning::skipped| <script>alert(6).yaml";

/// The hostile server: a registry under `/v2/`, GitHub's REST API under `/repos/`.
struct Hostile {
    server: HostileServer,
}

impl Hostile {
    fn start() -> Hostile {
        Hostile {
            server: HostileServer::start(|req, _| {
                let (status, answer) = answer(req);
                Reply::json(status, answer.to_string())
            }),
        }
    }

    fn host(&self) -> String {
        self.server.addr.clone()
    }

    /// The JSON bodies of the pull requests it was asked to open.
    fn posted(&self) -> Vec<Value> {
        self.server
            .seen()
            .iter()
            .filter(|r| r.method == "POST" && r.path() == "/repos/acme/infra/pulls")
            .map(|r| serde_json::from_slice(&r.body).unwrap_or(Value::Null))
            .collect()
    }
}

fn answer(req: &HostileRequest) -> (u16, Value) {
    match (req.method.as_str(), req.path()) {
        ("GET", "/v2/") => (200, json!({})),
        ("GET", "/v2/acme/evil/tags/list") => (
            403,
            json!({"errors": [{"code": "DENIED", "message": REGISTRY_SAYS}]}),
        ),
        ("GET", p) if p.starts_with("/v2/acme/") && p.ends_with("/tags/list") => {
            let name = p.trim_start_matches("/v2/").trim_end_matches("/tags/list");
            (200, json!({"name": name, "tags": ["1.0.0", "1.1.0"]}))
        }
        ("GET", "/repos/acme/infra/pulls") => (200, json!([])),
        ("POST", "/repos/acme/infra/pulls") => {
            let req: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
            if req["head"] == "image-updater/other" {
                (
                    422,
                    json!({"message": FORGE_SAYS, "errors": [{"message": FORGE_SAYS}]}),
                )
            } else {
                (
                    201,
                    json!({
                        "number": 1,
                        "html_url": FORGE_URL,
                        "node_id": "PR_1",
                        "title": req["title"],
                        "body": req["body"],
                        "state": "open",
                        "draft": false,
                        "merged_at": null,
                        "head": {"ref": req["head"]},
                        "base": {"ref": req["base"]},
                    }),
                )
            }
        }
        _ => (404, json!({"message": FORGE_SAYS})),
    }
}

fn deployment(images: &[&str]) -> String {
    let mut s = String::from(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\nspec:\n  template:\n    spec:\n      containers:\n",
    );
    for (i, image) in images.iter().enumerate() {
        s.push_str(&format!("        - name: c{i}\n          image: {image}\n"));
    }
    s
}

/// A clone of a remote that holds the manifests and the config; returns the work tree.
fn repo(dir: &Path, server: &Hostile) -> PathBuf {
    let host = server.host();
    let config = format!(
        "registries:
  - {{ host: \"{host}\", insecure: true }}
images:
  - {{ name: evil, image: \"{host}/acme/evil\", policy: {{ semver: \"^1\" }} }}
  - {{ name: good, image: \"{host}/acme/good\", policy: {{ semver: \"^1\" }} }}
  - {{ name: other, image: \"{host}/acme/other\", policy: {{ semver: \"^1\" }} }}
delivery:
  mode: pull-request
  forge: github
  api_url: http://{host}
  repository: acme/infra
"
    );
    let deploy = deployment(&[
        &format!("{host}/acme/evil:1.0.0"),
        &format!("{host}/acme/good:1.0.0"),
        &format!("{host}/acme/other:1.0.0"),
    ]);
    let hostile = deployment(&[&format!("{host}/acme/good:1.0.0")]);
    let files: Vec<(&str, &[u8])> = vec![
        (".image-updater.yaml", config.as_bytes()),
        ("apps/deploy.yaml", deploy.as_bytes()),
        (HOSTILE_FILE, hostile.as_bytes()),
        (HOSTILE_SKIP, b"image: {{ .Values.image }}\n"),
    ];
    let bare = bare_repo_with_files(&dir.join("remote.git"), &files);
    clone(&format!("file://{}", bare.display()), &dir.join("work"))
}

/// What one run left for the runner to read.
struct Ran {
    what: String,
    output: Output,
    summary: String,
    github_output: String,
    report: Value,
}

impl Ran {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    fn show(&self) -> String {
        format!(
            "{}: exit {:?}\n--- stdout\n{}--- stderr\n{}--- summary\n{}--- GITHUB_OUTPUT\n{}",
            self.what,
            self.output.status.code(),
            self.stdout(),
            self.stderr(),
            self.summary,
            self.github_output
        )
    }
}

/// `image-updater COMMAND WORK --output FORMAT` as a GitHub Actions step.
fn run_step(dir: &Path, work: &Path, command: &str, format: &str) -> Ran {
    let step = dir.join(format!("{command}-{format}"));
    std::fs::create_dir_all(&step).unwrap();
    let (out, summary) = (step.join("output"), step.join("summary"));
    let mut cmd = Command::new(BIN);
    cmd.args([command, work.to_str().unwrap(), "--output", format])
        .env("NO_COLOR", "1")
        .env("HOME", dir);
    for v in [
        "IMAGE_UPDATER_GIT_TOKEN",
        "IMAGE_UPDATER_FORGE_TOKEN",
        "IMAGE_UPDATER_SSH_KEY",
        "IMAGE_UPDATER_CONFIG",
        "IMAGE_UPDATER_OUTPUT",
        "IMAGE_UPDATER_REPORT",
        "IMAGE_UPDATER_DOTENV",
        "IMAGE_UPDATER_LOG",
        "GH_TOKEN",
        "GITLAB_TOKEN",
        "CI_JOB_TOKEN",
        "GITEA_TOKEN",
        "GITHUB_API_URL",
        "GITHUB_REPOSITORY",
        "GITLAB_CI",
        "CI_API_V4_URL",
        "SSH_AUTH_SOCK",
        "DOCKER_CONFIG",
    ] {
        cmd.env_remove(v);
    }
    cmd.env("GITHUB_ACTIONS", "true")
        .env("GITHUB_TOKEN", TOKEN)
        .env("GITHUB_OUTPUT", &out)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("GITHUB_WORKSPACE", dir)
        .env("RUNNER_TEMP", &step);
    let output = cmd.output().unwrap();
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let report_file = step.join("image-updater-report.json");
    let ran = Ran {
        what: format!("{command} --output {format}"),
        summary: read(&summary),
        github_output: read(&out),
        report: Value::Null,
        output,
    };
    let report = serde_json::from_str(&read(&report_file))
        .unwrap_or_else(|e| panic!("no JSON report ({e}):\n{}", ran.show()));
    Ran { report, ..ran }
}

/// Lines as the Actions runner reads them: split at CR, LF and CRLF.
fn runner_lines(text: &str) -> Vec<&str> {
    text.split(['\r', '\n']).collect()
}

/// Whether `s` uses only GitHub's escapes (`%25`, `%0D`, `%0A`, and `extra` ones) for `%`.
fn escaped_with(s: &str, extra: &[&str]) -> bool {
    let mut rest = s;
    while let Some(i) = rest.find('%') {
        let code = rest.get(i + 1..i + 3).unwrap_or("");
        if !["25", "0D", "0A"].contains(&code) && !extra.contains(&code) {
            return false;
        }
        rest = &rest[i + 1..];
    }
    true
}

/// Why `line` (starting with `::`) is not a well-formed annotation of ours, if it is not.
fn malformed_annotation(line: &str) -> Option<String> {
    let body = line.strip_prefix("::")?;
    let Some((head, data)) = body.split_once("::") else {
        return Some("no `::` before the data".into());
    };
    let (kind, props) = head.split_once(' ').unwrap_or((head, ""));
    if !["error", "warning", "notice"].contains(&kind) {
        return Some(format!("not an annotation: {kind:?}"));
    }
    for prop in props.split(',').filter(|p| !p.is_empty()) {
        let Some((key, value)) = prop.split_once('=') else {
            return Some(format!("property without a value: {prop:?}"));
        };
        if !["file", "line", "title"].contains(&key) {
            return Some(format!("unexpected property {key:?}"));
        }
        if !escaped_with(value, &["3A", "2C"]) {
            return Some(format!("property {key} not escaped: {value:?}"));
        }
    }
    if !escaped_with(data, &[]) {
        return Some(format!("data not escaped: {data:?}"));
    }
    None
}

/// Every runner line of stdout and stderr that starts (after whitespace, as the runner trims)
/// with `::` or `##[` must be a well-formed annotation on stderr, one per error and skip.
fn check_commands(ran: &Ran, problems: &mut Vec<String>) {
    let mut ours = 0;
    for (stream, text) in [("stdout", ran.stdout()), ("stderr", ran.stderr())] {
        for line in runner_lines(&text) {
            let t = line.trim_start();
            if !t.starts_with("::") && !t.starts_with("##[") {
                continue;
            }
            match (stream, malformed_annotation(line)) {
                ("stderr", None) => ours += 1,
                ("stderr", Some(why)) => {
                    problems.push(format!("{}: stderr line {line:?}: {why}", ran.what))
                }
                _ => problems.push(format!("{}: {stream} line {line:?} is a command", ran.what)),
            }
        }
    }
    let expected = ran.report["errors"].as_array().map_or(0, Vec::len)
        + ran.report["skipped"].as_array().map_or(0, Vec::len);
    if ours != expected {
        problems.push(format!(
            "{}: {ours} annotations, but the report has {expected} errors and skips",
            ran.what
        ));
    }
}

/// The `|` that separate cells: not escaped with `\`.
fn cell_bars(line: &str) -> usize {
    let mut n = 0;
    let mut escaped = false;
    for c in line.chars() {
        match c {
            '\\' if !escaped => escaped = true,
            '|' if !escaped => n += 1,
            _ => escaped = false,
        }
    }
    n
}

/// Markdown written from hostile text: tables keep their shape (`rows`: the body rows each
/// table must have, in order), no raw `<script`, no link, heading or command from the text.
fn check_markdown(what: &str, md: &str, rows: &[usize], problems: &mut Vec<String>) {
    let lower = md.to_lowercase();
    if lower.contains("<script") {
        problems.push(format!("{what}: a raw <script>:\n{md}"));
    }
    for link in ["[link](x)", "[l](u)", "[x](javascript"] {
        if md.contains(link) {
            problems.push(format!("{what}: a link from remote text {link:?}:\n{md}"));
        }
    }
    let headings = [
        "## image-updater",
        "### Errors",
        "### Skipped",
        "### Pull requests",
    ];
    let lines = runner_lines(md);
    for line in &lines {
        let t = line.trim_start();
        if (t.starts_with('#') && !headings.contains(&t)) || t.starts_with("::") {
            problems.push(format!("{what}: line {line:?} from remote text"));
        }
    }
    let mut tables: Vec<(usize, usize)> = Vec::new(); // (columns, body rows)
    let mut in_table = false;
    for line in &lines {
        if !line.starts_with('|') {
            in_table = false;
            continue;
        }
        let bars = cell_bars(line);
        if !in_table {
            tables.push((bars, 0));
            in_table = true;
            continue;
        }
        let (columns, body) = tables.last_mut().unwrap();
        if bars != *columns {
            problems.push(format!(
                "{what}: row {line:?} has {bars} cell bars, the header {columns}"
            ));
        }
        if !line.starts_with("|---") {
            *body += 1;
        }
    }
    let got: Vec<usize> = tables.iter().map(|t| t.1).collect();
    if got != rows {
        problems.push(format!(
            "{what}: tables with {got:?} rows, expected {rows:?}:\n{md}"
        ));
    }
}

/// `$GITHUB_OUTPUT`: exactly our keys, in order, each one `key=value` line.
fn check_github_output(ran: &Ran, problems: &mut Vec<String>) {
    let keys: Vec<&str> = ran
        .github_output
        .lines()
        .map(|l| match l.split_once('=') {
            Some((k, _)) if !k.contains("<<") => k,
            _ => "(not key=value)",
        })
        .collect();
    if keys != ["updated", "count", "commit", "pull-request-url", "report"] {
        problems.push(format!(
            "{}: GITHUB_OUTPUT keys {keys:?}:\n{}",
            ran.what, ran.github_output
        ));
    }
}

#[test]
fn hostile_remote_text_cannot_become_a_command_or_markup() {
    let server = Hostile::start();
    let tmp = tempfile::tempdir().unwrap();
    let work = repo(tmp.path(), &server);
    let mut problems = Vec::new();
    for (command, format) in [
        ("plan", "text"),
        ("plan", "markdown"),
        ("run", "text"),
        ("run", "markdown"),
    ] {
        let ran = run_step(tmp.path(), &work, command, format);
        assert_eq!(ran.output.status.code(), Some(1), "{}", ran.show());
        let errors = ran.report["errors"].to_string();
        assert!(errors.contains("::error::pwned"), "{}", ran.show());
        let updates = ran.report["updates"].as_array().unwrap().len();
        if command == "run" {
            assert!(errors.contains("forge-said"), "{}", ran.show());
            assert_eq!(
                ran.report["pull_requests"][0]["url"],
                FORGE_URL,
                "{}",
                ran.show()
            );
        }
        // The hostile text arrived, escaped: the checks below are not vacuous.
        for text in [ran.stdout(), ran.summary.clone()] {
            assert!(text.contains("pwned"), "{}", ran.show());
        }
        check_commands(&ran, &mut problems);
        check_github_output(&ran, &mut problems);
        check_markdown(
            &format!("{}: step summary", ran.what),
            &ran.summary,
            &[updates],
            &mut problems,
        );
        if format == "markdown" {
            // stdout is the report without the pull requests, then (plan) the diff.
            let md = ran.stdout();
            let md = md.split("\n--- a/").next().unwrap();
            check_markdown(
                &format!("{}: stdout", ran.what),
                md,
                &[updates],
                &mut problems,
            );
        }
    }
    let posted = server.posted();
    assert!(!posted.is_empty(), "no pull request was opened");
    for pr in &posted {
        let body = pr["body"].as_str().unwrap_or_default();
        // One row: the image, from, to, and its files.
        check_markdown(
            &format!("the body of {}", pr["head"]),
            body,
            &[1],
            &mut problems,
        );
        if pr["head"] == "image-updater/good" {
            assert!(body.contains("file-name"), "{body}");
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}
