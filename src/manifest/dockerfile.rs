//! Dockerfiles and Containerfiles: the image of every `FROM` line.
//!
//! A small line-based scanner, not a YAML one: it reads the instructions as BuildKit does
//! (parser directives such as `# escape=`` ` at the top, comment lines, line continuations,
//! heredoc bodies, which are not instructions) and gives each reference's exact byte span, so
//! a rewrite is a splice of the original bytes like every other format.
//!
//! - `FROM [--platform=…] IMAGE [AS NAME]`: IMAGE is a reference, unless it is `scratch` or
//!   names an earlier stage (`FROM build`).
//! - `FROM $BASE` or `FROM ${BASE}`, with `ARG BASE=nginx:1.25` before the first `FROM`: the
//!   ARG's default is the reference, rewritten where the ARG sets it.
//! - A `FROM` the scanner cannot follow (an ARG without a default, variables inside the
//!   reference, a reference split by a line continuation) is a [`Problem`], reported as
//!   skipped with why.
//!
//! [`apply_edits`] splices new references into those spans and scans the result again: it
//! must hold the same references, in the same places, with only the edited ones changed.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::path::Path as FsPath;

use super::{FileScan, Format, Found, ManifestError, Parts, Problem, ProblemAbout, Site};
use crate::manifest::edit::Edit;

/// Whether the file is a Dockerfile: `Dockerfile`, `Containerfile` (either with a lower-case
/// first letter), `*.Dockerfile`, `Dockerfile.*` and the same for `Containerfile`.
pub fn is_dockerfile(path: &FsPath) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    let base = |s: &str| {
        matches!(
            s,
            "Dockerfile" | "dockerfile" | "Containerfile" | "containerfile"
        )
    };
    base(name)
        || name.split_once('.').is_some_and(|(first, _)| base(first))
        || name.rsplit_once('.').is_some_and(|(_, last)| base(last))
}

/// One physical piece of an instruction: a line's bytes without its line end, comment lines
/// and the continuation character.
#[derive(Debug, Clone)]
struct Token {
    span: Range<usize>,
    /// Whether the token ends at a line continuation with no space before it and the next
    /// piece starts without a space: BuildKit would join it to the next token.
    joined: bool,
}

/// An instruction: its keyword (upper-cased), first line and tokens after the keyword.
struct Instruction {
    keyword: String,
    line: usize,
    tokens: Vec<Token>,
}

/// What the scanner found: the references (`FROM` images and ARG defaults used by a `FROM`),
/// and the `FROM` lines it could not follow.
#[derive(Debug, Default)]
struct Scanned {
    refs: Vec<Found>,
    problems: Vec<Problem>,
}

/// Every reference in a Dockerfile, as [`Format::Dockerfile`] sites, and the `FROM` lines
/// left alone with why. Never fails: a line the scanner does not understand is not a site.
pub fn scan(text: &str) -> FileScan {
    let scanned = references(text);
    FileScan {
        sites: scanned
            .refs
            .into_iter()
            .map(|f| Site {
                format: Format::Dockerfile,
                policy: None,
                keys: None,
                line: f.line,
                parts: Parts::Whole(f),
            })
            .collect(),
        problems: scanned.problems,
        ..FileScan::default()
    }
}

/// The lines of `text` as (start offset, content without the line end).
fn lines(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut at = 0;
    for raw in text.split_inclusive('\n') {
        let content = raw.strip_suffix('\n').unwrap_or(raw);
        let content = content.strip_suffix('\r').unwrap_or(content);
        out.push((at, content));
        at += raw.len();
    }
    out
}

/// The parser directive `# key=value` of a line, if it is one.
fn directive(line: &str) -> Option<(String, &str)> {
    let rest = line.trim_start().strip_prefix('#')?;
    let (key, value) = rest.split_once('=')?;
    let key = key.trim();
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    Some((key.to_ascii_lowercase(), value.trim()))
}

/// The instructions of `text`, in order.
fn instructions(text: &str) -> Vec<Instruction> {
    let lines = lines(text);
    let mut escape = '\\';
    let mut i = 0;
    // Parser directives: only at the very top, before any comment, blank line or instruction.
    while let Some(&(start, content)) = lines.get(i) {
        let content = if start == 0 {
            content.strip_prefix('\u{feff}').unwrap_or(content)
        } else {
            content
        };
        match directive(content) {
            Some((key, value)) => {
                if key == "escape" && (value == "`" || value == "\\") {
                    escape = value.chars().next().unwrap_or('\\');
                }
                i += 1;
            }
            None => break,
        }
    }
    let mut out = Vec::new();
    while i < lines.len() {
        let (start, content) = lines[i];
        let content = if start == 0 {
            content.strip_prefix('\u{feff}').unwrap_or(content)
        } else {
            content
        };
        let start = start + (lines[i].1.len() - content.len());
        let trimmed = content.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            i += 1;
            continue;
        }
        let line = i + 1;
        // Pieces: (start offset, text) of each physical line of the instruction.
        let mut pieces: Vec<(usize, &str)> = Vec::new();
        let (mut at, mut piece) = (start, content);
        loop {
            let body = piece.trim_end();
            let continued = body.ends_with(escape);
            let body = if continued {
                &body[..body.len() - escape.len_utf8()]
            } else {
                body
            };
            pieces.push((at, body));
            i += 1;
            if !continued {
                break;
            }
            // Comment lines inside an instruction are dropped; blank lines too.
            let mut more = false;
            while let Some(&(s, c)) = lines.get(i) {
                let t = c.trim_start();
                if t.starts_with('#') || t.is_empty() {
                    i += 1;
                } else {
                    (at, piece, more) = (s, c, true);
                    break;
                }
            }
            if !more {
                break;
            }
        }
        let mut tokens: Vec<Token> = Vec::new();
        for (n, &(at, body)) in pieces.iter().enumerate() {
            let next_starts_bare = pieces
                .get(n + 1)
                .is_some_and(|(_, b)| !b.starts_with(char::is_whitespace));
            let mut word: Option<usize> = None;
            for (j, c) in body.char_indices().chain([(body.len(), ' ')]) {
                match (c.is_whitespace(), word) {
                    (false, None) => word = Some(j),
                    (true, Some(w)) => {
                        tokens.push(Token {
                            span: at + w..at + j,
                            joined: j == body.len() && next_starts_bare,
                        });
                        word = None;
                    }
                    _ => {}
                }
            }
        }
        let Some(first) = tokens.first() else {
            continue;
        };
        let keyword = text[first.span.clone()].to_ascii_uppercase();
        // Only these instructions take heredocs.
        let heredocs: Vec<(String, bool)> = match keyword.as_str() {
            "RUN" | "COPY" | "ADD" => tokens[1..]
                .iter()
                .filter_map(|t| heredoc(&text[t.span.clone()]))
                .collect(),
            _ => Vec::new(),
        };
        out.push(Instruction {
            keyword,
            line,
            tokens: tokens[1..].to_vec(),
        });
        // A heredoc's body is not instructions: skip to each terminator in turn.
        for (word, strip_tabs) in heredocs {
            while let Some(&(_, c)) = lines.get(i) {
                i += 1;
                let c = if strip_tabs {
                    c.trim_start_matches('\t')
                } else {
                    c
                };
                if c == word {
                    break;
                }
            }
        }
    }
    out
}

/// The terminator of a heredoc token (`<<EOF`, `<<-EOF`, `<<"EOF"`, `<<'EOF'`, `cat<<EOF`)
/// and whether its lines may start with tabs (`<<-`).
fn heredoc(token: &str) -> Option<(String, bool)> {
    let at = token.find("<<")?;
    let rest = &token[at + 2..];
    let (rest, strip_tabs) = match rest.strip_prefix('-') {
        Some(r) => (r, true),
        None => (rest, false),
    };
    let word: String = rest
        .trim_matches(|c| c == '"' || c == '\'')
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    (!word.is_empty()).then_some((word, strip_tabs))
}

/// A global ARG (declared before the first `FROM`): its default's span and value, when it has
/// one a `FROM` can be pointed at.
#[derive(Debug, Clone)]
enum ArgDefault {
    None,
    /// The value's exact bytes (inside quotes, when quoted).
    Literal(Found),
    /// A default that is itself built from variables or escapes.
    Computed(String),
}

fn arg_defaults(text: &str, ins: &Instruction, args: &mut HashMap<String, ArgDefault>) {
    for t in &ins.tokens {
        let word = &text[t.span.clone()];
        let Some((name, value)) = word.split_once('=') else {
            args.insert(word.to_string(), ArgDefault::None);
            continue;
        };
        let value_start = t.span.start + name.len() + 1;
        let (inner, offset) = match value.as_bytes().first() {
            Some(&q @ (b'"' | b'\''))
                if value.len() >= 2 && value.as_bytes()[value.len() - 1] == q =>
            {
                (&value[1..value.len() - 1], 1)
            }
            _ => (value, 0),
        };
        let default = if inner.is_empty() {
            ArgDefault::None
        } else if t.joined || !safe_word(inner) {
            ArgDefault::Computed(value.to_string())
        } else {
            let start = value_start + offset;
            ArgDefault::Literal(Found {
                line: super::scan::line_at(text, start),
                span: start..start + inner.len(),
                value: inner.to_string(),
                path: format!("ARG {name}"),
            })
        };
        args.insert(name.to_string(), default);
    }
}

/// Whether `value` can stand in a Dockerfile unquoted and unchanged: the characters of an
/// image reference, and no variable, quote, escape or comment.
fn safe_word(value: &str) -> bool {
    !value.is_empty()
        && value.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':' | '@' | '+')
        })
}

/// `NAME` of `$NAME` or `${NAME}`, when that is the whole word.
fn lone_variable(word: &str) -> Option<&str> {
    let name = word.strip_prefix('$')?;
    let name = match name.strip_prefix('{') {
        Some(n) => n.strip_suffix('}')?,
        None => name,
    };
    let mut chars = name.chars();
    let first = chars.next()?;
    ((first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_'))
    .then_some(name)
}

fn references(text: &str) -> Scanned {
    let mut out = Scanned::default();
    let mut args: HashMap<String, ArgDefault> = HashMap::new();
    let mut stages: HashSet<String> = HashSet::new();
    let mut used_args: HashSet<String> = HashSet::new();
    let mut seen_from = false;
    let mut stage = 0;
    for ins in instructions(text) {
        match ins.keyword.as_str() {
            "ARG" if !seen_from => arg_defaults(text, &ins, &mut args),
            "FROM" => {
                seen_from = true;
                stage += 1;
                let mut words = ins
                    .tokens
                    .iter()
                    .skip_while(|t| text[t.span.clone()].starts_with("--"));
                let Some(image) = words.next() else { continue };
                let alias = match (words.next(), words.next()) {
                    (Some(a), Some(n)) if text[a.span.clone()].eq_ignore_ascii_case("as") => {
                        Some(text[n.span.clone()].to_ascii_lowercase())
                    }
                    _ => None,
                };
                let word = &text[image.span.clone()];
                let lower = word.to_ascii_lowercase();
                // `scratch` is no image, and an earlier stage's name names that stage.
                let not_an_image = lower == "scratch" || stages.contains(&lower);
                stages.extend(alias);
                if not_an_image {
                    continue;
                }
                let problem = |message: String| Problem {
                    line: ins.line,
                    message,
                    about: ProblemAbout::Reference,
                };
                if image.joined {
                    out.problems.push(problem(format!(
                        "FROM {word}…: the image is split by a line continuation, so it is not \
                         rewritten"
                    )));
                    continue;
                }
                if let Some(name) = lone_variable(word) {
                    match args.get(name) {
                        Some(ArgDefault::Literal(f)) => {
                            let value = f.value.to_ascii_lowercase();
                            if value != "scratch" && used_args.insert(name.to_string()) {
                                out.refs.push(f.clone());
                            }
                        }
                        Some(ArgDefault::Computed(v)) => out.problems.push(problem(format!(
                            "FROM {word}: the default of ARG {name} ({v}) is not a plain \
                             reference, so it is not rewritten"
                        ))),
                        Some(ArgDefault::None) => out.problems.push(problem(format!(
                            "FROM {word}: ARG {name} has no default, so the image is only known \
                             at build time"
                        ))),
                        None => out.problems.push(problem(format!(
                            "FROM {word}: {name} is not an ARG declared before the first FROM"
                        ))),
                    }
                    continue;
                }
                if !safe_word(word) {
                    out.problems.push(problem(if word.contains('$') {
                        format!(
                            "FROM {word}: a reference built from variables is not rewritten \
                             (only FROM $NAME with an ARG default is)"
                        )
                    } else {
                        format!("FROM {word}: not a plain image reference, so it is not rewritten")
                    }));
                    continue;
                }
                out.refs.push(Found {
                    line: super::scan::line_at(text, image.span.start),
                    span: image.span.clone(),
                    value: word.to_string(),
                    path: format!("FROM (stage {stage})"),
                });
            }
            _ => {}
        }
    }
    out.refs.sort_by_key(|f| f.span.start);
    out
}

/// Splice `edits` (spans of references [`scan`] found, new references as values) into a
/// Dockerfile, then scan the result again: it must hold the same references at the shifted
/// places, the edited ones with their new values, and the same problems. Anything else is an
/// error and nothing should be written.
pub fn apply_edits(original: &str, edits: &[Edit]) -> Result<String, ManifestError> {
    let before = references(original);
    let mut sorted: Vec<&Edit> = edits.iter().collect();
    sorted.sort_by_key(|e| (e.span.start, e.span.end));
    let mut last_end = 0;
    for e in &sorted {
        let bad = |reason: &str| ManifestError::BadEdit {
            start: e.span.start,
            end: e.span.end,
            reason: reason.to_owned(),
        };
        if e.span.start < last_end {
            return Err(bad("overlaps another edit"));
        }
        last_end = e.span.end;
        if !before.refs.iter().any(|f| f.span == e.span) {
            return Err(bad("the span is not an image reference of this Dockerfile"));
        }
        if !safe_word(&e.new_value) {
            return Err(bad(&format!(
                "{:?} is not a plain image reference",
                e.new_value
            )));
        }
    }
    let mut out = String::with_capacity(original.len() + 64);
    let mut pos = 0;
    for e in &sorted {
        out.push_str(&original[pos..e.span.start]);
        out.push_str(&e.new_value);
        pos = e.span.end;
    }
    out.push_str(&original[pos..]);

    let after = references(&out);
    let verify = |line: usize, detail: String| ManifestError::Verify { line, detail };
    if after.refs.len() != before.refs.len() || after.problems.len() != before.problems.len() {
        return Err(verify(
            1,
            format!(
                "the edited Dockerfile holds {} references and {} FROM lines left alone, the \
                 original {} and {}",
                after.refs.len(),
                after.problems.len(),
                before.refs.len(),
                before.problems.len()
            ),
        ));
    }
    let mut shift: isize = 0;
    let mut next = sorted.iter().peekable();
    for (b, a) in before.refs.iter().zip(&after.refs) {
        let edit = next.next_if(|e| e.span == b.span);
        let start = b.span.start.saturating_add_signed(shift);
        let value = edit.map_or(b.value.as_str(), |e| e.new_value.as_str());
        if let Some(e) = edit {
            shift += e.new_value.len() as isize - e.span.len() as isize;
        }
        if a.value != value || a.span != (start..start + value.len()) {
            return Err(verify(
                a.line,
                format!(
                    "expected {value:?} at bytes {start}.., found {:?} at {:?}",
                    a.value, a.span
                ),
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(text: &str) -> Vec<(String, String, usize)> {
        let s = references(text);
        s.refs
            .iter()
            .map(|f| {
                assert_eq!(&text[f.span.clone()], f.value);
                (f.value.clone(), f.path.clone(), f.line)
            })
            .collect()
    }

    fn problems(text: &str) -> Vec<(usize, String)> {
        references(text)
            .problems
            .into_iter()
            .map(|p| (p.line, p.message))
            .collect()
    }

    #[test]
    fn file_names() {
        for yes in [
            "Dockerfile",
            "build/Containerfile",
            "api.Dockerfile",
            "Dockerfile.dev",
            "dockerfile",
            "web.containerfile",
        ] {
            assert!(is_dockerfile(FsPath::new(yes)), "{yes}");
        }
        for no in [
            "Dockerfiles",
            "MyDockerfile",
            "docker-compose.yml",
            "Dockerfile/x",
        ] {
            assert!(!is_dockerfile(FsPath::new(no)), "{no}");
        }
    }

    #[test]
    fn from_lines_stages_platform_and_args() {
        let text = "\
# syntax=docker/dockerfile:1
ARG BASE=\"node:20.1-alpine\"
ARG TAG
ARG GO=golang:1.22
FROM --platform=$BUILDPLATFORM ${GO} AS build
RUN go build
from   docker.io/library/alpine:3.19   as   final   # not a comment in Docker, a word
FROM build AS again
FROM scratch
FROM $BASE
FROM ${BASE}
COPY --from=build /out /out
FROM nginx:$TAG
FROM $TAG
FROM $NOPE
";
        assert_eq!(
            refs(text),
            [
                ("node:20.1-alpine".into(), "ARG BASE".into(), 2),
                ("golang:1.22".into(), "ARG GO".into(), 4),
                (
                    "docker.io/library/alpine:3.19".into(),
                    "FROM (stage 2)".into(),
                    7
                ),
            ]
        );
        assert_eq!(
            problems(text),
            [
                (
                    13,
                    "FROM nginx:$TAG: a reference built from variables is not rewritten (only \
                     FROM $NAME with an ARG default is)"
                        .into()
                ),
                (
                    14,
                    "FROM $TAG: ARG TAG has no default, so the image is only known at build time"
                        .into()
                ),
                (
                    15,
                    "FROM $NOPE: NOPE is not an ARG declared before the first FROM".into()
                ),
            ]
        );
    }

    #[test]
    fn continuations_comments_heredocs_and_escape_directive() {
        let text = "\
# escape=`\r
FROM `\r
  # a comment inside the instruction\r
  --platform=linux/amd64 `\r
  ghcr.io/acme/base:1.0 AS base\r
RUN <<EOF\r
FROM not-an-instruction:1\r
EOF\r
RUN echo \\\r
FROM nginx:1.25\r
";
        let got = refs(text);
        // With the backtick escape, `\` is no continuation: the last FROM is an instruction.
        assert_eq!(
            got,
            [
                ("ghcr.io/acme/base:1.0".into(), "FROM (stage 1)".into(), 5),
                ("nginx:1.25".into(), "FROM (stage 2)".into(), 10),
            ]
        );
        let split = "FROM ghcr.io/acme/\\\nbase:1.0\n";
        assert!(refs(split).is_empty());
        assert_eq!(problems(split).len(), 1);
    }

    #[test]
    fn splices_are_verified() {
        let text = "\u{feff}ARG BASE='nginx:1.25'\r\nFROM $BASE\r\nFROM  alpine:3.19\t# x\r\n";
        let s = scan(text);
        let spans: Vec<Range<usize>> = s
            .sites
            .iter()
            .flat_map(|s| s.parts.scalars())
            .map(|f| f.span.clone())
            .collect();
        let out = apply_edits(
            text,
            &[
                Edit {
                    span: spans[0].clone(),
                    new_value: "nginx:1.27.3".into(),
                },
                Edit {
                    span: spans[1].clone(),
                    new_value: "alpine:3.20".into(),
                },
            ],
        )
        .unwrap();
        assert_eq!(
            out,
            "\u{feff}ARG BASE='nginx:1.27.3'\r\nFROM $BASE\r\nFROM  alpine:3.20\t# x\r\n"
        );
        // Not a reference's span, or a value that would change the instruction: refused.
        assert!(apply_edits(
            text,
            &[Edit {
                span: 0..3,
                new_value: "x".into()
            }]
        )
        .is_err());
        let bad = Edit {
            span: spans[1].clone(),
            new_value: "alpine:3.20 AS x".into(),
        };
        assert!(apply_edits(text, &[bad]).is_err());
    }

    /// Lines drawn from every construct the scanner knows, joined with LF or CRLF: nothing
    /// panics, spans hold their values, and replacing every reference found verifies and
    /// changes only those bytes.
    mod props {
        use super::*;
        use proptest::prelude::*;

        const LINES: &[&str] = &[
            "FROM nginx:1.25",
            "from  --platform=$BUILDPLATFORM ghcr.io/acme/base:1.0 AS build",
            "FROM build",
            "FROM scratch",
            "FROM $BASE",
            "FROM ${BASE} as b2",
            "FROM nginx:$TAG",
            "ARG BASE=alpine:3.19",
            "ARG BASE=\"alpine:3.19\" OTHER",
            "ARG TAG",
            "RUN <<EOF",
            "EOF",
            "FROM \\",
            "  redis:7 \\",
            "# escape=`",
            "# größer — 日本語",
            "FROM `",
            "",
            "   ",
            "\u{feff}FROM x:1",
            "RUN echo \\",
            "COPY --from=build /a /b",
            "FROM ghcr.io/a/\\",
            "b:1",
        ];

        proptest! {
            #[test]
            fn scan_and_splice(picks in proptest::collection::vec(0..LINES.len(), 0..24),
                               crlf in any::<bool>(), last in any::<bool>()) {
                let end = if crlf { "\r\n" } else { "\n" };
                let mut text = picks.iter().map(|&i| LINES[i]).collect::<Vec<_>>().join(end);
                if last {
                    text.push_str(end);
                }
                let found = references(&text);
                let mut edits = Vec::new();
                for (n, f) in found.refs.iter().enumerate() {
                    prop_assert_eq!(&text[f.span.clone()], f.value.as_str());
                    edits.push(Edit { span: f.span.clone(), new_value: format!("new{n}.io/x:{n}.0") });
                }
                let out = apply_edits(&text, &edits).unwrap();
                let again = references(&out);
                prop_assert_eq!(again.refs.len(), found.refs.len());
                for (n, f) in again.refs.iter().enumerate() {
                    prop_assert_eq!(f.value.clone(), format!("new{n}.io/x:{n}.0"));
                }
            }
        }
    }
}
