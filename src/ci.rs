//! What a CI system reads back from a `run` or `plan`, besides stdout.
//!
//! - **GitHub Actions** (`GITHUB_ACTIONS=true` or `GITHUB_OUTPUT` set): step outputs `updated`,
//!   `count`, `commit`, `pull-request-url` (the first pull request) and `report` (the path of
//!   the JSON report) appended to `$GITHUB_OUTPUT`; the Markdown report appended to
//!   `$GITHUB_STEP_SUMMARY`; errors and skipped files as workflow commands
//!   (`::error file=…,line=…::…`) on stderr, so they show on the lines they concern.
//! - **GitLab CI** or anything else: `$IMAGE_UPDATER_DOTENV` names a dotenv file
//!   (`artifacts: reports: dotenv`) that gets the same values as `IMAGE_UPDATER_*` variables.
//! - **Anywhere**: `$IMAGE_UPDATER_REPORT` names a file for the JSON report (in GitHub Actions
//!   it defaults to `$RUNNER_TEMP/image-updater-report.json`).
//!
//! Nothing here decides anything about the run: it only writes down the [`Report`]. What came
//! from outside (a forge's pull-request URL, file names, messages) is escaped for each of these
//! sinks by [`crate::escape`]: every value is one line, every command well formed.

use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::env::Env;
use crate::error::Error;
use crate::escape::{command_data, command_property, md_code, md_link, md_text, text_line};
use crate::report::{Report, SkipKind};

/// Publish `report` for the CI system `env` names (empty variables count as unset). `root`
/// is the work tree the report's file names are relative to. Annotations go to stderr.
pub fn publish(report: &Report, root: &Path, env: &Env) -> Result<(), Error> {
    publish_with(report, root, env, &mut std::io::stderr().lock())
}

/// [`publish`] with the annotation stream handed in.
pub fn publish_with(
    report: &Report,
    root: &Path,
    env: &Env,
    annotations: &mut dyn Write,
) -> Result<(), Error> {
    let github = env.get("GITHUB_ACTIONS") == Some("true") || env.get("GITHUB_OUTPUT").is_some();
    let report_path = env
        .get("IMAGE_UPDATER_REPORT")
        .map(PathBuf::from)
        .or_else(|| {
            github.then(|| {
                env.get("RUNNER_TEMP")
                    .map(PathBuf::from)
                    .unwrap_or_else(std::env::temp_dir)
                    .join("image-updater-report.json")
            })
        });
    if let Some(path) = &report_path {
        write_file(path, &report.to_json(), false)?;
    }
    let values = Values::of(report, report_path.as_deref());
    if let Some(path) = env.get("IMAGE_UPDATER_DOTENV") {
        write_file(Path::new(path), &values.dotenv(), false)?;
    }
    if !github {
        return Ok(());
    }
    if let Some(path) = env.get("GITHUB_OUTPUT") {
        write_file(Path::new(path), &values.github_outputs(), true)?;
    }
    if let Some(path) = env.get("GITHUB_STEP_SUMMARY") {
        write_file(Path::new(path), &summary(report), true)?;
    }
    let prefix = workspace_prefix(root, env.get("GITHUB_WORKSPACE"));
    annotations
        .write_all(workflow_commands(report, prefix.as_deref()).as_bytes())
        .and_then(|()| annotations.flush())
        .map_err(|e| Error::Failed(format!("writing workflow commands: {e}")))
}

fn write_file(path: &Path, text: &str, append: bool) -> Result<(), Error> {
    let mut options = std::fs::OpenOptions::new();
    if append {
        options.append(true).create(true);
    } else {
        options.write(true).create(true).truncate(true);
    }
    options
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| Error::Failed(format!("{}: {e}", path.display())))
}

/// The values every CI gets, in the order they are written.
struct Values {
    updated: bool,
    count: usize,
    commit: String,
    pull_request_url: String,
    report: String,
}

impl Values {
    fn of(report: &Report, report_path: Option<&Path>) -> Values {
        Values {
            updated: !report.updates.is_empty(),
            count: report.updates.len(),
            commit: report.commit.clone().unwrap_or_default(),
            pull_request_url: report
                .pull_requests
                .first()
                .map(|p| p.url.clone())
                .unwrap_or_default(),
            report: report_path
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        }
    }

    fn pairs(&self) -> [(&'static str, String); 5] {
        [
            ("updated", self.updated.to_string()),
            ("count", self.count.to_string()),
            ("commit", self.commit.clone()),
            ("pull-request-url", self.pull_request_url.clone()),
            ("report", self.report.clone()),
        ]
    }

    /// `$GITHUB_OUTPUT` lines: `name=value`, one a line.
    fn github_outputs(&self) -> String {
        let mut out = String::new();
        for (name, value) in self.pairs() {
            out.push_str(&github_output(name, &value));
        }
        out
    }

    /// `IMAGE_UPDATER_UPDATED=true` …: GitLab's dotenv takes one `KEY=value` a line, with
    /// neither quotes nor line breaks: values are [`text_line`]s without quotes.
    fn dotenv(&self) -> String {
        let mut out = String::new();
        for (name, value) in self.pairs() {
            let key = format!("IMAGE_UPDATER_{}", name.replace('-', "_").to_uppercase());
            let value: String = text_line(&value)
                .chars()
                .filter(|c| !matches!(c, '\n' | '\r' | '"' | '\''))
                .collect();
            let _ = writeln!(out, "{key}={value}");
        }
        out
    }
}

/// One `$GITHUB_OUTPUT` entry, `name=value` on one line: the value is a [`text_line`], so
/// a forge's answer cannot add a line (another output) of its own.
pub fn github_output(name: &str, value: &str) -> String {
    format!("{name}={}\n", text_line(value))
}

/// The step summary: the Markdown report and the pull requests it opened or updated.
pub fn summary(report: &Report) -> String {
    let mut out = report.to_markdown();
    if !report.pull_requests.is_empty() {
        out.push_str("\n### Pull requests\n\n");
        for p in &report.pull_requests {
            let _ = writeln!(
                out,
                "- {} {} ({})",
                md_link(&format!("#{}", p.number), &p.url),
                md_code(&p.branch),
                md_text(&p.action)
            );
        }
    }
    out.push('\n');
    out
}

/// Where `root` is inside the workspace, as a prefix for the report's file names (which are
/// relative to `root`), so annotations land on the repository's files. `None` when `root` is
/// outside the workspace (a `--clone`): annotations then name no file.
fn workspace_prefix(root: &Path, workspace: Option<&str>) -> Option<String> {
    let root = std::fs::canonicalize(root).ok()?;
    let workspace = match workspace {
        Some(w) => std::fs::canonicalize(w).ok()?,
        None => std::env::current_dir()
            .ok()
            .and_then(|d| std::fs::canonicalize(d).ok())?,
    };
    let rel = root.strip_prefix(&workspace).ok()?;
    let mut prefix = String::new();
    for part in rel.components() {
        prefix.push_str(&part.as_os_str().to_string_lossy());
        prefix.push('/');
    }
    Some(prefix)
}

/// Workflow commands for errors (`::error`) and skips: a skipped file, an unusable marker or
/// Flux object is a `::warning`, a reference left alone (no policy, say) a `::notice` — a repo
/// has many of those and they are not problems. `prefix`: see [`workspace_prefix`]; `None` puts `file:line` in the message.
pub fn workflow_commands(report: &Report, prefix: Option<&str>) -> String {
    let mut out = String::new();
    let mut command = |kind: &str, file: Option<&str>, line: usize, title: &str, msg: &str| {
        let mut props = Vec::new();
        let mut msg = msg.to_string();
        match (file, prefix) {
            (Some(f), Some(p)) => {
                props.push(format!("file={}", command_property(&format!("{p}{f}"))));
                if line > 0 {
                    props.push(format!("line={line}"));
                }
            }
            (Some(f), None) if line > 0 => msg = format!("{f}:{line}: {msg}"),
            (Some(f), None) => msg = format!("{f}: {msg}"),
            (None, _) => {}
        }
        props.push(format!("title={}", command_property(title)));
        let _ = writeln!(out, "::{kind} {}::{}", props.join(","), command_data(&msg));
    };
    for e in &report.errors {
        let title = match &e.image {
            Some(image) => format!("image-updater: {image}"),
            None => "image-updater".to_string(),
        };
        command("error", e.file.as_deref(), 0, &title, &e.message);
    }
    for s in &report.skipped {
        let (kind, title) = match (s.kind, &s.image) {
            (SkipKind::File, _) => ("warning", "image-updater: file skipped".to_string()),
            (SkipKind::Marker, _) => ("warning", "image-updater: marker not used".to_string()),
            (SkipKind::Policy, _) => ("warning", "image-updater: Flux object not used".into()),
            (SkipKind::Reference, Some(image)) => {
                ("notice", format!("image-updater: {image} left alone"))
            }
            (SkipKind::Reference, None) => ("notice", "image-updater: left alone".to_string()),
        };
        command(kind, Some(&s.file), s.line, &title, &s.reason);
    }
    out
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::report::{ErrorEntry, PullRequest, Skipped};

    fn sample() -> Report {
        let mut r = crate::report::tests::sample();
        r.skipped.push(Skipped {
            image: None,
            file: "charts/web/templates/deployment.yaml".into(),
            line: 4,
            reason: "not a plain YAML manifest: template braces `{{` at line 4, column 9".into(),
            kind: SkipKind::File,
        });
        r.skipped.push(Skipped {
            image: Some("docker.io/library/nginx:1.27".into()),
            file: "apps/web/deploy.yaml".into(),
            line: 30,
            reason: "no policy".into(),
            kind: SkipKind::Reference,
        });
        r.errors.push(ErrorEntry {
            image: Some("ghcr.io/acme/api".into()),
            file: None,
            message: "100% broken\nsecond line".into(),
        });
        r.commit = Some("5f0c2a".into());
        r.pull_requests.push(PullRequest {
            branch: "image-updater/web".into(),
            number: 7,
            url: "https://github.com/acme/infra/pull/7".into(),
            action: "created".into(),
        });
        r
    }

    #[test]
    fn outputs_are_one_line_each() {
        assert_eq!(github_output("count", "3"), "count=3\n");
        assert_eq!(
            github_output("pull-request-url", "https://x/1\nupdated=false\r\n"),
            "pull-request-url=https://x/1\\nupdated=false\\r\\n\n"
        );
    }

    #[test]
    fn hostile_values_stay_in_their_place() {
        let mut r = sample();
        r.pull_requests[0].url = "https://x/1\n::error::u) [y](javascript:z)".into();
        r.pull_requests[0].action = "created\n# heading".into();
        r.errors[0].message = "no\n::stop-commands::x\r\n::error::pwned".into();
        r.skipped[0].file = "a,b:c\n::warning::d.yaml".into();
        let c = workflow_commands(&r, Some("infra/"));
        assert_eq!(c.lines().count(), 3, "{c}");
        assert!(c.starts_with("::error title=image-updater%3A ghcr.io/acme/api::no\\n::stop-commands::x\\r\\n::error::pwned\n"), "{c}");
        assert!(
            c.contains("::warning file=infra/a%2Cb%3Ac\\n%3A%3Awarning%3A%3Ad.yaml,line=4,"),
            "{c}"
        );
        let s = summary(&r);
        assert!(s.contains("- #7 https://x/1\\\\n::error::u) \\[y\\](javascript:z) `image-updater/web` (created\\\\n\\# heading)\n"), "{s}");
        assert!(
            s.lines()
                .all(|l| !l.starts_with("::") && !l.starts_with("# ")),
            "{s}"
        );
        let v = Values::of(&r, None);
        assert_eq!(v.github_outputs().lines().count(), 5);
        assert_eq!(v.dotenv().lines().count(), 5);
    }

    #[test]
    fn commands_carry_file_line_and_escaped_messages() {
        let c = workflow_commands(&sample(), Some("infra/"));
        let lines: Vec<&str> = c.lines().collect();
        assert_eq!(
            lines,
            [
                "::error title=image-updater%3A ghcr.io/acme/api::100%25 broken\\nsecond line",
                "::warning file=infra/charts/web/templates/deployment.yaml,line=4,title=image-updater%3A file skipped::not a plain YAML manifest: template braces `{{` at line 4, column 9",
                "::notice file=infra/apps/web/deploy.yaml,line=30,title=image-updater%3A docker.io/library/nginx%3A1.27 left alone::no policy",
            ]
        );
        // Outside the workspace, the place goes into the message.
        let c = workflow_commands(&sample(), None);
        assert!(
            c.contains("::notice title=image-updater%3A docker.io/library/nginx%3A1.27 left alone::apps/web/deploy.yaml:30: no policy"),
            "{c}"
        );
    }

    #[test]
    fn publish_writes_outputs_summary_report_and_dotenv() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let root = d.join("infra");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(d.join("out"), "earlier=kept\n").unwrap();
        let env = Env::from_pairs([
            ("GITHUB_ACTIONS", "true".to_string()),
            ("GITHUB_OUTPUT", d.join("out").display().to_string()),
            (
                "GITHUB_STEP_SUMMARY",
                d.join("summary").display().to_string(),
            ),
            ("GITHUB_WORKSPACE", d.display().to_string()),
            ("RUNNER_TEMP", d.display().to_string()),
            (
                "IMAGE_UPDATER_DOTENV",
                d.join("ci.env").display().to_string(),
            ),
        ]);
        let mut stderr = Vec::new();
        publish_with(&sample(), &root, &env, &mut stderr).unwrap();

        let report = d.join("image-updater-report.json");
        let out = std::fs::read_to_string(d.join("out")).unwrap();
        assert_eq!(
            out,
            format!(
                "earlier=kept\nupdated=true\ncount=1\ncommit=5f0c2a\npull-request-url=https://github.com/acme/infra/pull/7\nreport={}\n",
                report.display()
            )
        );
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        assert_eq!(json["updates"][0]["to"], "1.3.1");
        let summary = std::fs::read_to_string(d.join("summary")).unwrap();
        assert!(
            summary.contains("| web | `ghcr.io/acme/web` |"),
            "{summary}"
        );
        assert!(
            summary.contains(
                "- [#7](https://github.com/acme/infra/pull/7) `image-updater/web` (created)"
            ),
            "{summary}"
        );
        let dotenv = std::fs::read_to_string(d.join("ci.env")).unwrap();
        assert!(dotenv.starts_with("IMAGE_UPDATER_UPDATED=true\nIMAGE_UPDATER_COUNT=1\nIMAGE_UPDATER_COMMIT=5f0c2a\nIMAGE_UPDATER_PULL_REQUEST_URL=https://github.com/acme/infra/pull/7\n"), "{dotenv}");
        let stderr = String::from_utf8(stderr).unwrap();
        assert!(
            stderr.contains("::warning file=infra/charts/web/templates/deployment.yaml,line=4,"),
            "{stderr}"
        );
    }

    #[test]
    fn outside_ci_nothing_is_written_unless_asked() {
        let dir = tempfile::tempdir().unwrap();
        let env = Env::default();
        let mut stderr = Vec::new();
        publish_with(&Report::new(), dir.path(), &env, &mut stderr).unwrap();
        assert!(stderr.is_empty());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

        let path = dir.path().join("r.json");
        let env = Env::from_pairs([("IMAGE_UPDATER_REPORT", path.display().to_string())]);
        publish_with(&Report::new(), dir.path(), &env, &mut stderr).unwrap();
        assert!(stderr.is_empty());
        assert!(std::fs::read_to_string(path)
            .unwrap()
            .contains("\"version\": 1"));
    }

    #[test]
    fn no_updates_gives_false_zero_and_empty_values() {
        let v = Values::of(&Report::new(), None).github_outputs();
        assert_eq!(
            v,
            "updated=false\ncount=0\ncommit=\npull-request-url=\nreport=\n"
        );
    }
}
