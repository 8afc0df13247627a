//! What a run found and did, as plain data, and its three renderings: a text table for
//! people, JSON (schema version 1 of the product contract) for machines, Markdown for
//! pull-request bodies and CI summaries.
//!
//! Every name, path, reason and message goes through [`crate::escape`] on its way into text
//! or Markdown: none of it can add a line, a table cell or markup of its own.

use std::fmt::Write as _;

use serde::Serialize;

use crate::escape::{md_code, md_text, text_line};

mod stages_render;
pub use stages_render::{stages_markdown, stages_markdown_at};

/// The result of `run` or `plan`, schema version 1.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct Report {
    pub version: u32,
    pub updates: Vec<Update>,
    /// References no policy governs that have a newer tag (empty with `outdated: false`).
    pub outdated: Vec<Outdated>,
    pub skipped: Vec<Skipped>,
    pub errors: Vec<ErrorEntry>,
    pub commit: Option<String>,
    pub pull_requests: Vec<PullRequest>,
    /// The promotion stages in config order (issue 22); empty, and not written, without
    /// `stages:`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageReport>,
}

/// One promotion stage: what it holds and what waits to move into it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StageReport {
    pub name: String,
    /// The upstream stage, `None` for a first stage (its candidates come from the policies).
    pub from: Option<String>,
    /// The stage's `soak`, as the config writes it (`24h`); `None` without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub soak: Option<String>,
    pub images: Vec<StageImage>,
    pub pending: Vec<StagePending>,
}

/// The version a stage holds of one image, and since when (committer time of the first-parent
/// commit that brought it into the stage's files).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StageImage {
    /// `images[].name`, or the Flux policy's name.
    pub name: String,
    /// The repository, canonical (`registry/path`).
    pub image: String,
    pub version: String,
    /// RFC 3339; `None` when history does not reach back to the commit that brought it.
    pub since: Option<String>,
    /// The commit that brought `version` into the stage's files (the soak evidence).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

/// A version waiting to move into a stage, or moving in this run, and why.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StagePending {
    pub name: String,
    pub version: String,
    /// `promoted`, or what holds it back (`soaking until 2026-12-07T10:00:00Z`, `min_age`,
    /// `together: api not ready`, ...).
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Update {
    pub policy: String,
    pub image: String,
    pub file: String,
    pub line: usize,
    pub from: String,
    pub to: String,
    pub digest: Option<String>,
    /// Why this is not a plain upgrade, when it is not: the current tag is not accepted by
    /// the policy, or a downgrade was allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A reference no policy governs, with the newer tags of its shape (suffix and precision
/// kept; see [`crate::policy::docker`]).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Outdated {
    pub file: String,
    pub line: usize,
    /// The repository, canonical (`registry/path`).
    pub image: String,
    pub current: String,
    /// The newest tag in the current major, when newer than `current`.
    pub minor: Option<String>,
    /// The newest tag of a newer major, when there is one.
    pub major: Option<String>,
}

/// A reference, a file, a marker or a Flux object left alone, and why.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Skipped {
    /// The reference as written; `None` when what was left alone is not one reference (a
    /// whole file, a marker comment, a Flux object).
    pub image: Option<String>,
    pub file: String,
    pub line: usize,
    pub reason: String,
    /// What was left alone.
    pub kind: SkipKind,
}

/// What a [`Skipped`] entry left alone.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SkipKind {
    /// A whole file: not YAML, a template, too large, a symlink out of the repo, ...
    File,
    /// One image reference (`image` is the reference as written).
    Reference,
    /// An image policy marker comment that cannot be used. When it marks a reference, which is
    /// then left alone (the marker names an unknown policy), `image` is that reference as
    /// written; a malformed or unattached marker has none, and leaves its scalar to the other
    /// formats.
    Marker,
    /// A Flux ImagePolicy or ImageRepository object that cannot be used.
    Policy,
}

impl Skipped {
    /// What the text and Markdown reports show in place of the image when there is none.
    fn what(&self) -> &str {
        match (&self.image, self.kind) {
            (Some(image), _) => image,
            (None, SkipKind::File) => "(file)",
            (None, SkipKind::Reference) => "(reference)",
            (None, SkipKind::Marker) => "(marker)",
            (None, SkipKind::Policy) => "(Flux object)",
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ErrorEntry {
    /// The repository (`registry/path`) the error concerns, if it concerns one.
    pub image: Option<String>,
    /// The file the error concerns, if it concerns one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PullRequest {
    pub branch: String,
    pub number: u64,
    pub url: String,
    pub action: String,
}

/// One image reference as `scan` lists it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Reference {
    pub file: String,
    pub line: usize,
    /// Where it was found: k8s, marker, kustomize, helm, compose, argocd.
    pub format: String,
    pub image: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
    /// The policy that governs it.
    pub policy: Option<String>,
    /// The `images[].image` of the prefix or `*` entry the policy comes from (`ghcr.io/acme/*`),
    /// when it comes from one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Why no policy governs it (or why it is left alone).
    pub reason: Option<String>,
    /// The Flux ImageUpdateAutomation (`NS/NAME`) whose update.path holds the file (issue 16).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub automation: Option<String>,
}

/// The result of `scan`, schema version 1.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct ScanReport {
    pub version: u32,
    pub references: Vec<Reference>,
    pub skipped: Vec<Skipped>,
}

/// The result of `tags`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TagsReport {
    pub image: String,
    /// Tags passing the policy, best first.
    pub candidates: Vec<String>,
    pub latest: Option<String>,
    /// With `--current`: the tag the policy starts from, as in a manifest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    /// With `--current`: the tag a run writes in its place; `None` when it stays.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update: Option<String>,
    /// With `-v`: the other tags and why each was dropped.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<Dropped>,
}

/// A tag the policy does not accept, and why.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Dropped {
    pub tag: String,
    pub why: String,
}

/// Output formats of `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Markdown,
}

/// Lay out rows as columns separated by two spaces; each cell is a [`text_line`].
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| text_line(c).into_owned()).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                let _ = write!(l, "{c:<w$}  ");
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for r in &rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
}

/// A Markdown table of cells already written as Markdown ([`md_text`], [`md_code`]).
fn md_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("| {} |\n", header.join(" | "));
    out.push_str(&format!("|{}\n", "---|".repeat(header.len())));
    for r in rows {
        out.push_str(&format!("| {} |\n", r.join(" | ")));
    }
    out
}

impl Report {
    pub fn new() -> Report {
        Report {
            version: 1,
            ..Default::default()
        }
    }

    fn update_rows(&self) -> Vec<Vec<String>> {
        self.updates
            .iter()
            .map(|u| {
                vec![
                    u.policy.clone(),
                    u.image.clone(),
                    format!("{}:{}", u.file, u.line),
                    u.from.clone(),
                    u.to.clone(),
                ]
            })
            .collect()
    }

    fn outdated_rows(&self) -> Vec<Vec<String>> {
        let or_dash = |t: &Option<String>| t.clone().unwrap_or_else(|| "-".into());
        self.outdated
            .iter()
            .map(|o| {
                vec![
                    o.image.clone(),
                    format!("{}:{}", o.file, o.line),
                    o.current.clone(),
                    or_dash(&o.minor),
                    or_dash(&o.major),
                ]
            })
            .collect()
    }

    /// The text table: updates, then what was skipped, errors, and the delivery.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        if self.updates.is_empty() {
            out.push_str("No updates.\n");
        } else {
            let n = self.updates.len();
            let _ = writeln!(out, "{n} update{}:", if n == 1 { "" } else { "s" });
            out.push_str(&table(
                &["POLICY", "IMAGE", "FILE:LINE", "FROM", "TO"],
                &self.update_rows(),
            ));
        }
        if !self.outdated.is_empty() {
            let n = self.outdated.len();
            let _ = writeln!(
                out,
                "\nOutdated ({n} reference{} no policy governs; newer tags exist):",
                if n == 1 { "" } else { "s" }
            );
            out.push_str(&table(
                &["IMAGE", "FILE:LINE", "CURRENT", "MINOR", "MAJOR"],
                &self.outdated_rows(),
            ));
        }
        if !self.stages.is_empty() {
            out.push('\n');
            out.push_str(&stages_render::text(&self.stages));
        }
        if !self.skipped.is_empty() {
            let _ = writeln!(out, "\nSkipped:");
            for s in &self.skipped {
                let what = s.what();
                let _ = writeln!(
                    out,
                    "  {}:{}  {}  {}",
                    text_line(&s.file),
                    s.line,
                    text_line(what),
                    text_line(&s.reason)
                );
            }
        }
        if !self.errors.is_empty() {
            let _ = writeln!(out, "\nErrors:");
            for e in &self.errors {
                let _ = writeln!(out, "  {}", text_line(&e.message));
            }
        }
        // The commit is told by the run's last line (`Outcome::summary`), with its short id.
        out
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report serialises") + "\n"
    }

    /// Markdown: a table of updates and lists of skips and errors.
    pub fn to_markdown(&self) -> String {
        let mut out = String::from("## image-updater\n\n");
        if self.updates.is_empty() {
            out.push_str("No updates.\n");
        } else {
            out.push_str(&md_table(
                &["Policy", "Image", "File", "From", "To"],
                &self
                    .update_rows()
                    .into_iter()
                    .map(|r| {
                        r.into_iter()
                            .enumerate()
                            .map(|(i, c)| if i == 0 { md_text(&c) } else { md_code(&c) })
                            .collect()
                    })
                    .collect::<Vec<_>>(),
            ));
        }
        if !self.outdated.is_empty() {
            out.push_str(
                "\n### Outdated\n\nNo policy governs these references; newer tags exist.\n\n",
            );
            out.push_str(&md_table(
                &["Image", "File", "Current", "Minor", "Major"],
                &self
                    .outdated_rows()
                    .into_iter()
                    .map(|r| {
                        r.into_iter()
                            .map(|c| if c == "-" { c } else { md_code(&c) })
                            .collect()
                    })
                    .collect::<Vec<_>>(),
            ));
        }
        if !self.stages.is_empty() {
            out.push('\n');
            out.push_str(&stages_markdown(&self.stages));
        }
        if !self.errors.is_empty() {
            out.push_str("\n### Errors\n\n");
            for e in &self.errors {
                let _ = writeln!(out, "- {}", md_text(&e.message));
            }
        }
        if !self.skipped.is_empty() {
            out.push_str("\n### Skipped\n\n");
            for s in &self.skipped {
                let _ = writeln!(
                    out,
                    "- {} {}: {}",
                    md_code(&format!("{}:{}", s.file, s.line)),
                    md_text(s.what()),
                    md_text(&s.reason)
                );
            }
        }
        if let Some(c) = &self.commit {
            let _ = writeln!(out, "\nCommit: {}", md_code(c));
        }
        out
    }

    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Text => self.to_text(),
            Format::Json => self.to_json(),
            Format::Markdown => self.to_markdown(),
        }
    }
}

/// A unified diff as a fenced ` ```diff ` block, for Markdown that renders it as a diff. The
/// fence is longer than any run of backticks in the diff, so no line of a file can close it.
pub fn markdown_diff(diff: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in diff.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat((longest + 1).max(3));
    let mut out = format!("{fence}diff\n{diff}");
    if !diff.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&fence);
    out.push('\n');
    out
}

impl ScanReport {
    pub fn render(&self, format: Format) -> String {
        let rows: Vec<Vec<String>> = self
            .references
            .iter()
            .map(|r| {
                vec![
                    format!("{}:{}", r.file, r.line),
                    r.format.clone(),
                    r.image.clone(),
                    match (&r.tag, &r.digest) {
                        (Some(t), Some(d)) => format!("{t}@{d}"),
                        (Some(t), None) => t.clone(),
                        (None, Some(d)) => d.clone(),
                        (None, None) => "-".into(),
                    },
                    match (&r.policy, &r.reason, &r.automation) {
                        (Some(p), _, a) => {
                            let mut cell = p.clone();
                            if let Some(rule) = &r.rule {
                                cell.push_str(&format!(" (rule {rule})"));
                            }
                            if let Some(a) = a {
                                cell.push_str(&format!(" (automation {a})"));
                            }
                            cell
                        }
                        (None, Some(why), _) => format!("({why})"),
                        (None, None, _) => "-".into(),
                    },
                ]
            })
            .collect();
        let header = ["FILE:LINE", "FORMAT", "IMAGE", "CURRENT", "POLICY"];
        let mut out = match format {
            Format::Json => return serde_json::to_string_pretty(self).expect("serialises") + "\n",
            Format::Text => table(&header, &rows),
            Format::Markdown => {
                let rows: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| r.iter().map(|c| md_text(c)).collect())
                    .collect();
                md_table(&header, &rows)
            }
        };
        // Markdown: a list under its own heading, never loose lines after the table.
        if format == Format::Markdown && !self.skipped.is_empty() {
            out.push_str("\n### Skipped\n\n");
        }
        for s in &self.skipped {
            let _ = match format {
                Format::Markdown => writeln!(
                    out,
                    "- {}: {}",
                    md_code(&format!("{}:{}", s.file, s.line)),
                    md_text(&s.reason)
                ),
                _ => writeln!(
                    out,
                    "skipped {}:{}: {}",
                    text_line(&s.file),
                    s.line,
                    text_line(&s.reason)
                ),
            };
        }
        out
    }
}

impl TagsReport {
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Json => serde_json::to_string_pretty(self).expect("serialises") + "\n",
            Format::Text | Format::Markdown => {
                let mut out = String::new();
                for t in &self.candidates {
                    let mark = if Some(t) == self.latest.as_ref() {
                        "* "
                    } else {
                        "  "
                    };
                    let _ = writeln!(out, "{mark}{}", text_line(t));
                }
                for d in &self.dropped {
                    let _ = writeln!(out, "- {}  ({})", text_line(&d.tag), text_line(&d.why));
                }
                let latest = self.latest.as_deref().unwrap_or("null");
                let _ = writeln!(out, "latest: {}", text_line(latest));
                if let Some(current) = &self.current {
                    let _ = match &self.update {
                        Some(to) => {
                            writeln!(out, "current: {} -> {}", text_line(current), text_line(to))
                        }
                        None => writeln!(out, "current: {} (stays)", text_line(current)),
                    };
                }
                out
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A report with one update; other modules' tests add to it.
    pub(crate) fn sample() -> Report {
        let mut r = Report::new();
        r.updates.push(Update {
            policy: "web".into(),
            image: "ghcr.io/acme/web".into(),
            file: "apps/web/deploy.yaml".into(),
            line: 21,
            from: "1.2.0".into(),
            to: "1.3.1".into(),
            digest: None,
            note: None,
        });
        r
    }

    #[test]
    fn json_has_the_schema_keys() {
        let v: serde_json::Value = serde_json::from_str(&sample().to_json()).unwrap();
        assert_eq!(v["version"], 1);
        assert_eq!(v["updates"][0]["line"], 21);
        assert!(v["commit"].is_null());
        assert!(v["pull_requests"].as_array().unwrap().is_empty());
    }

    #[test]
    fn text_table_aligns() {
        let t = sample().to_text();
        assert!(t.contains("POLICY  IMAGE             FILE:LINE"), "{t}");
        assert!(
            t.contains("web     ghcr.io/acme/web  apps/web/deploy.yaml:21  1.2.0  1.3.1"),
            "{t}"
        );
    }

    /// A report whose every field carries hostile text.
    fn hostile() -> Report {
        let evil = "x|y\n::error::pwned <script>[l](u) # h `t`";
        let mut r = Report::new();
        r.updates.push(Update {
            policy: evil.into(),
            image: evil.into(),
            file: evil.into(),
            line: 3,
            from: "1.0.0".into(),
            to: "1.1.0".into(),
            digest: None,
            note: None,
        });
        r.skipped.push(Skipped {
            image: Some(evil.into()),
            file: evil.into(),
            line: 4,
            reason: evil.into(),
            kind: SkipKind::Reference,
        });
        r.errors.push(ErrorEntry {
            image: Some(evil.into()),
            file: None,
            message: evil.into(),
        });
        r
    }

    #[test]
    fn text_report_keeps_hostile_text_on_its_line() {
        let t = hostile().to_text();
        assert_eq!(t.lines().count(), 9, "{t}");
        assert!(t.lines().all(|l| !l.trim_start().starts_with("::")), "{t}");
        assert!(t.contains("  x|y\\n::error::pwned"), "{t}");
    }

    #[test]
    fn markdown_report_keeps_hostile_text_in_its_cell() {
        let m = hostile().to_markdown();
        let row = m.lines().find(|l| l.starts_with("| x")).expect(&m);
        assert_eq!(row.matches(" | ").count(), 4, "{row}");
        assert_eq!(row.matches('|').count(), 6 + 3, "{row}");
        assert!(!m.contains("<script") && !m.contains("[l](u)"), "{m}");
        for l in m.lines() {
            assert!(!l.starts_with("# ") && !l.starts_with("::"), "{l}");
        }
    }

    #[test]
    fn markdown_diff_is_fenced_longer_than_any_backticks_in_it() {
        assert_eq!(
            markdown_diff("--- a/x\n+++ b/x\n-a\n+b\n"),
            "```diff\n--- a/x\n+++ b/x\n-a\n+b\n```\n"
        );
        let inner = markdown_diff(" ```\n+````yaml\n");
        assert!(inner.starts_with("`````diff\n"), "{inner}");
        assert!(inner.ends_with("\n`````\n"), "{inner}");
    }

    #[test]
    fn markdown_escapes_pipes() {
        let md = ScanReport {
            version: 1,
            references: vec![Reference {
                file: "a|b.yaml".into(),
                line: 1,
                format: "k8s".into(),
                image: "x".into(),
                tag: None,
                digest: None,
                policy: None,
                rule: None,
                reason: Some("why\n|".into()),
                automation: None,
            }],
            skipped: vec![],
        }
        .render(Format::Markdown);
        assert!(md.contains("| a\\|b.yaml:1 |"), "{md}");
        assert!(md.contains("| (why\\\\n\\|) |"), "{md}");
    }
}
