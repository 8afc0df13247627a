//! Where locks are written, byte-exactly: a `locks:` entry in `.image-updater.yaml`, or the
//! `fluxcd.io/locked` annotations of a Flux v1 workload. Each edit inserts, replaces or
//! removes whole lines; every other byte of the file (comments, quoting, CRLF) stays as it was.
//! Reading the locks back for a run is `crate::locks`.

use std::ops::Range;

use super::scan::{self, Node, NodeKind, Style};
use super::ManifestError;
use crate::reference::ImageRef;

/// Annotation prefixes of Flux v1, current and legacy.
pub const FLUX_V1_PREFIXES: [&str; 2] = ["fluxcd.io/", "flux.weave.works/"];

/// Why a lock could not be written into a file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct LockEditError {
    pub line: usize,
    pub message: String,
}

impl From<ManifestError> for LockEditError {
    fn from(e: ManifestError) -> Self {
        LockEditError {
            line: 1,
            message: e.to_string(),
        }
    }
}

fn err(line: usize, message: impl Into<String>) -> LockEditError {
    LockEditError {
        line,
        message: message.into(),
    }
}

/// One `locks:` entry of the config, as found in its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigLock {
    pub image: String,
    pub reason: Option<String>,
    /// The entry's whole lines.
    lines: Range<usize>,
}

/// The line ending the file uses (CRLF when its first line ends so).
fn newline(text: &str) -> &'static str {
    match text.find('\n') {
        Some(i) if i > 0 && text.as_bytes()[i - 1] == b'\r' => "\r\n",
        _ => "\n",
    }
}

/// Byte offset where line `line` (1-based) starts.
fn line_start(text: &str, line: usize) -> usize {
    if line <= 1 {
        return 0;
    }
    text.match_indices('\n')
        .nth(line - 2)
        .map_or(text.len(), |(i, _)| i + 1)
}

/// Byte offset just past the end of the line holding `offset` (its newline included).
fn line_end(text: &str, offset: usize) -> usize {
    text[offset.min(text.len())..]
        .find('\n')
        .map_or(text.len(), |i| offset + i + 1)
}

/// The offset just past the last line a node occupies (its last scalar's line).
fn node_end(text: &str, node: &Node) -> usize {
    let mut last = node.span.end;
    scan::walk(node, &mut scan::Path::default(), &mut |n, _| {
        if matches!(n.kind, NodeKind::Scalar { .. }) {
            last = last.max(n.span.end);
        }
    });
    // A block scalar's token runs on to its last line's newline.
    if last > 0 && text.as_bytes()[last - 1] == b'\n' {
        last
    } else {
        line_end(text, last)
    }
}

/// `value` as a YAML scalar: plain when that is safe for an image name, else double-quoted.
fn scalar(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"./_-".contains(&b))
        && !value.starts_with(['-', '.']);
    if plain {
        value.to_string()
    } else {
        quoted(value)
    }
}

/// `value` double-quoted (JSON escapes are YAML double-quoted escapes).
fn quoted(value: &str) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "\"\"".into())
}

/// The one-line flow mapping of a `locks:` entry.
pub fn config_entry(image: &str, reason: &str, since: &str) -> String {
    format!(
        "{{ image: {}, reason: {}, since: {} }}",
        scalar(image),
        quoted(reason),
        quoted(since)
    )
}

/// The config's root mapping, if the file has one (an empty file has none).
fn root_mapping(text: &str) -> Result<Option<Node>, LockEditError> {
    let docs = scan::parse_documents(text)?;
    match docs.into_iter().next().and_then(|d| d.root) {
        None => Ok(None),
        Some(n) if n.is_null() => Ok(None),
        Some(n) if n.as_mapping().is_some() => Ok(Some(n)),
        Some(n) => Err(err(n.line, "expected a mapping at the top of the config")),
    }
}

/// Whether two written image names name one repository.
pub fn same_image(a: &str, b: &str) -> bool {
    match (ImageRef::parse(a), ImageRef::parse(b)) {
        (Ok(a), Ok(b)) => a.canonical_name() == b.canonical_name(),
        _ => a == b,
    }
}

/// The `locks:` entries of a config text, with their lines.
pub fn config_locks(text: &str) -> Result<Vec<ConfigLock>, LockEditError> {
    let Some(root) = root_mapping(text)? else {
        return Ok(Vec::new());
    };
    let Some(locks) = root.get("locks") else {
        return Ok(Vec::new());
    };
    let Some(items) = locks.as_sequence() else {
        return Ok(Vec::new());
    };
    items
        .iter()
        .map(|item| {
            let image = item
                .get("image")
                .and_then(Node::as_str)
                .ok_or_else(|| err(item.line, "a locks: entry needs `image:`"))?;
            Ok(ConfigLock {
                image: image.to_string(),
                reason: item.get("reason").and_then(Node::as_str).map(String::from),
                lines: line_start(text, item.line)..node_end(text, item),
            })
        })
        .collect()
}

/// `text` with a `locks:` entry for `image` (replacing one there is); the key is added at the
/// end of the file when absent. Returns `None` when the same entry is there already.
pub fn config_lock(
    text: &str,
    image: &str,
    reason: &str,
    since: &str,
) -> Result<Option<String>, LockEditError> {
    let nl = newline(text);
    let entry = config_entry(image, reason, since);
    let existing = config_locks(text)?;
    if let Some(lock) = existing.iter().find(|l| same_image(&l.image, image)) {
        if lock.reason.as_deref() == Some(reason) {
            return Ok(None);
        }
        let first = &text[lock.lines.clone()];
        let indent: String = first.chars().take_while(|c| *c == ' ').collect();
        let mut out = text.to_string();
        out.replace_range(lock.lines.clone(), &format!("{indent}- {entry}{nl}"));
        return Ok(Some(out));
    }
    let root = root_mapping(text)?;
    let Some((key, value)) = root.as_ref().and_then(|r| {
        r.as_mapping()?
            .iter()
            .find(|(k, _)| k.as_str() == Some("locks"))
            .cloned()
    }) else {
        // No `locks:` key: append it.
        let mut out = text.to_string();
        if !out.is_empty() && !out.ends_with('\n') {
            out.push_str(nl);
        }
        out.push_str(&format!("locks:{nl}  - {entry}{nl}"));
        return Ok(Some(out));
    };
    if key.column != 1 {
        return Err(err(
            key.line,
            "`locks:` must start at the beginning of its line",
        ));
    }
    match &value.kind {
        NodeKind::Sequence(items) if !items.is_empty() => {
            if value.span.start < value.span.end {
                return Err(err(
                    value.line,
                    "`locks:` is a flow list ([...]); write it as a block list (- ...) to have \
                     entries added",
                ));
            }
            let first = &text[line_start(text, items[0].line)..];
            let indent: String = first.chars().take_while(|c| *c == ' ').collect();
            let at = node_end(text, value_last(items));
            let mut out = text.to_string();
            let mut line = format!("{indent}- {entry}{nl}");
            if at == text.len() && !text.ends_with('\n') {
                line.insert_str(0, nl);
            }
            out.insert_str(at, &line);
            Ok(Some(out))
        }
        NodeKind::Sequence(_) => {
            // `locks: []`: the brackets give way to a block list.
            let close = text[value.span.end..]
                .find(']')
                .map(|i| value.span.end + i + 1)
                .ok_or_else(|| err(value.line, "unclosed `[` after `locks:`"))?;
            Ok(Some(replace_value(
                text,
                &key,
                value.span.start..close,
                &entry,
                nl,
            )))
        }
        NodeKind::Scalar {
            style: Style::Plain,
            ..
        } if value.is_null() => Ok(Some(replace_value(
            text,
            &key,
            value.span.clone(),
            &entry,
            nl,
        ))),
        _ => Err(err(
            value.line,
            "`locks:` must be a list of { image, reason }",
        )),
    }
}

fn value_last(items: &[Node]) -> &Node {
    &items[items.len() - 1]
}

/// The value at `span` (an empty list or a null) removed, and a block list of `entry` put on
/// the line after `key`'s.
fn replace_value(text: &str, key: &Node, span: Range<usize>, entry: &str, nl: &str) -> String {
    let mut out = text.to_string();
    // An empty value's span may sit on the colon: the value starts after it.
    let colon = text[key.span.end..]
        .find(':')
        .map_or(key.span.end, |i| key.span.end + i + 1);
    let span = span.start.max(colon)..span.end.max(colon);
    // `locks: []` keeps no space before the gone value; a comment after it stays.
    let mut start = span.start;
    while start > colon && text.as_bytes()[start - 1] == b' ' {
        start -= 1;
    }
    let tail = &text[span.end..line_end(text, span.end)];
    let comment = tail.trim_end_matches(['\n', '\r']).trim_start();
    let keep = if comment.is_empty() {
        String::new()
    } else {
        format!(" {comment}")
    };
    let end = line_end(text, span.end);
    let ended = text[..end].ends_with('\n');
    let mut replacement = format!("{keep}{nl}  - {entry}");
    replacement.push_str(if ended { nl } else { "" });
    out.replace_range(start..end, &replacement);
    out
}

/// `text` without the `locks:` entry of `image`; `None` when there is none.
pub fn config_unlock(text: &str, image: &str) -> Result<Option<String>, LockEditError> {
    let existing = config_locks(text)?;
    let Some(lock) = existing.iter().find(|l| same_image(&l.image, image)) else {
        return Ok(None);
    };
    let mut out = text.to_string();
    out.replace_range(lock.lines.clone(), "");
    Ok(Some(out))
}

/// A Flux v1 workload: a document whose `metadata.annotations` carry `fluxcd.io/automated`
/// or `fluxcd.io/tag.*` (or the `flux.weave.works/` spellings).
#[derive(Debug, Clone)]
pub struct FluxWorkload {
    /// `Kind/name`, for messages.
    pub name: String,
    /// Every `image:` value in the document.
    pub images: Vec<String>,
    /// `Some(message)` when `fluxcd.io/locked` is "true" (the message may be empty).
    pub locked: Option<String>,
    /// Byte range of the document's root (its first to its last line).
    pub span: Range<usize>,
    annotations: Node,
}

/// The Flux v1 workloads in `text`.
pub fn flux_workloads(text: &str) -> Result<Vec<FluxWorkload>, LockEditError> {
    let mut out = Vec::new();
    for doc in scan::parse_documents(text)? {
        let Some(root) = doc.root else { continue };
        let Some(annotations) = root.get_path(&["metadata", "annotations"]) else {
            continue;
        };
        let Some(entries) = annotations.as_mapping() else {
            continue;
        };
        let flux_key = |k: &str, names: &[&str]| {
            FLUX_V1_PREFIXES.iter().any(|p| {
                k.strip_prefix(p).is_some_and(|rest| {
                    names
                        .iter()
                        .any(|n| rest == *n || (n.ends_with('.') && rest.starts_with(n)))
                })
            })
        };
        let keys: Vec<&str> = entries.iter().filter_map(|(k, _)| k.as_str()).collect();
        if !keys.iter().any(|k| flux_key(k, &["automated", "tag."])) {
            continue;
        }
        let value_of = |name: &str| {
            entries
                .iter()
                .find(|(k, _)| k.as_str().is_some_and(|k| flux_key(k, &[name])))
                .and_then(|(_, v)| v.as_str())
        };
        let locked = (value_of("locked") == Some("true"))
            .then(|| value_of("locked_msg").unwrap_or_default().to_string());
        let mut images = Vec::new();
        scan::walk(&root, &mut scan::Path::default(), &mut |n, path| {
            if path.last_key() == Some("image") {
                if let Some(v) = n.as_str() {
                    images.push(v.to_string());
                }
            }
        });
        let (_, kind) = scan::api_version_kind(&root);
        let name = root
            .get_path(&["metadata", "name"])
            .and_then(Node::as_str)
            .unwrap_or("?");
        out.push(FluxWorkload {
            name: format!("{}/{name}", kind.unwrap_or("?")),
            images,
            locked,
            span: line_start(text, root.line)..node_end(text, &root),
            annotations: annotations.clone(),
        });
    }
    Ok(out)
}

impl FluxWorkload {
    /// Whether one of its containers runs `image` (any tag).
    pub fn runs(&self, image: &str) -> bool {
        self.images
            .iter()
            .any(|i| match (ImageRef::parse(i), ImageRef::parse(image)) {
                (Ok(a), Ok(b)) => a.canonical_name() == b.canonical_name(),
                _ => false,
            })
    }

    fn entries(&self) -> &[(Node, Node)] {
        self.annotations.as_mapping().unwrap_or_default()
    }

    /// The entry of annotation `name` under either prefix.
    fn entry(&self, name: &str) -> Option<&(Node, Node)> {
        self.entries().iter().find(|(k, _)| {
            k.as_str().is_some_and(|k| {
                FLUX_V1_PREFIXES
                    .iter()
                    .any(|p| k.strip_prefix(p) == Some(name))
            })
        })
    }

    /// The prefix its annotations use (`fluxcd.io/` unless only the legacy one occurs).
    fn prefix(&self) -> &'static str {
        let legacy = self.entries().iter().all(|(k, _)| {
            !k.as_str()
                .is_some_and(|k| k.starts_with(FLUX_V1_PREFIXES[0]))
        });
        if legacy {
            FLUX_V1_PREFIXES[1]
        } else {
            FLUX_V1_PREFIXES[0]
        }
    }

    fn block(&self) -> Result<(), LockEditError> {
        if self.annotations.span.start < self.annotations.span.end {
            return Err(err(
                self.annotations.line,
                format!(
                    "the annotations of {} are a flow mapping ({{...}}); write them as a block \
                     mapping to have the lock added",
                    self.name
                ),
            ));
        }
        Ok(())
    }

    /// `text` (the file holding this workload) with `locked: "true"` and `locked_msg` set.
    pub fn lock(&self, text: &str, reason: &str) -> Result<String, LockEditError> {
        self.block()?;
        let nl = newline(text);
        let entries = self.entries();
        let first_key = &entries[0].0;
        let indent = " ".repeat(first_key.column - 1);
        let prefix = self.prefix();
        let mut replace: Vec<(Range<usize>, String)> = Vec::new();
        let mut add = String::new();
        for (name, value) in [("locked", quoted("true")), ("locked_msg", quoted(reason))] {
            match self.entry(name) {
                Some((k, v)) => {
                    if v.as_str() == Some(if name == "locked" { "true" } else { reason }) {
                        continue;
                    }
                    if !matches!(v.kind, NodeKind::Scalar { .. }) || v.line != k.line {
                        return Err(err(
                            v.line,
                            format!("{} is not a one-line value", k.as_str().unwrap_or(name)),
                        ));
                    }
                    // An empty value (`key:`) has an empty span right after the colon.
                    let span = if v.span.is_empty() {
                        v.span.start..v.span.start
                    } else {
                        v.span.clone()
                    };
                    let value = if v.span.is_empty() {
                        format!(" {value}")
                    } else {
                        value
                    };
                    replace.push((span, value));
                }
                None => add.push_str(&format!("{indent}{prefix}{name}: {value}{nl}")),
            }
        }
        let mut out = text.to_string();
        if !add.is_empty() {
            let (_, last) = &entries[entries.len() - 1];
            let at = node_end(text, last);
            if at == text.len() && !text.ends_with('\n') {
                add.insert_str(0, nl);
            }
            replace.push((at..at, add));
        }
        replace.sort_by_key(|(r, _)| std::cmp::Reverse(r.start));
        for (range, value) in replace {
            out.replace_range(range, &value);
        }
        Ok(out)
    }

    /// `text` without the `locked`, `locked_msg` and `locked_user` annotations.
    pub fn unlock(&self, text: &str) -> Result<String, LockEditError> {
        self.block()?;
        let mut lines: Vec<Range<usize>> = Vec::new();
        for name in ["locked", "locked_msg", "locked_user"] {
            for (k, v) in self.entries().iter().filter(|(k, _)| {
                k.as_str().is_some_and(|k| {
                    FLUX_V1_PREFIXES
                        .iter()
                        .any(|p| k.strip_prefix(p) == Some(name))
                })
            }) {
                lines.push(
                    line_start(text, k.line)..node_end(text, v).max(line_end(text, k.span.end)),
                );
            }
        }
        lines.sort_by_key(|r| std::cmp::Reverse(r.start));
        let mut out = text.to_string();
        for r in lines {
            out.replace_range(r, "");
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SINCE: &str = "2026-12-06T17:00:00Z";

    #[test]
    fn a_lock_is_appended_to_a_block_list_keeping_comments() {
        let text = "# our config\nimages: []\nlocks:\n  # held for the incident\n  - { image: ghcr.io/acme/api, reason: \"x\" }  # keep\n# tail\n";
        let out = config_lock(text, "ghcr.io/acme/web", "bad build", SINCE)
            .unwrap()
            .unwrap();
        assert_eq!(
            out,
            "# our config\nimages: []\nlocks:\n  # held for the incident\n  - { image: ghcr.io/acme/api, reason: \"x\" }  # keep\n  - { image: ghcr.io/acme/web, reason: \"bad build\", since: \"2026-12-06T17:00:00Z\" }\n# tail\n"
        );
        let back = config_unlock(&out, "ghcr.io/acme/web").unwrap().unwrap();
        assert_eq!(back, text);
        assert_eq!(config_unlock(text, "ghcr.io/acme/web").unwrap(), None);
    }

    #[test]
    fn the_key_is_created_when_absent_and_an_empty_list_becomes_a_block_list() {
        let out = config_lock("images: []", "nginx", "r", SINCE)
            .unwrap()
            .unwrap();
        assert_eq!(
            out,
            "images: []\nlocks:\n  - { image: nginx, reason: \"r\", since: \"2026-12-06T17:00:00Z\" }\n"
        );
        let out = config_lock("locks: [] # none yet\r\nx: 1\r\n", "nginx", "r", SINCE)
            .unwrap()
            .unwrap();
        assert_eq!(
            out,
            "locks: # none yet\r\n  - { image: nginx, reason: \"r\", since: \"2026-12-06T17:00:00Z\" }\r\nx: 1\r\n"
        );
        let out = config_lock("locks:\nx: 1\n", "docker.io/library/nginx", "r", SINCE)
            .unwrap()
            .unwrap();
        assert!(
            out.starts_with("locks:\n  - { image: docker.io/library/nginx"),
            "{out}"
        );
        // The same lock again changes nothing; `nginx` and its long name are one image.
        assert_eq!(config_lock(&out, "nginx", "r", SINCE).unwrap(), None);
    }

    #[test]
    fn a_flow_list_with_entries_is_refused_with_its_line() {
        let e = config_lock("x: 1\nlocks: [{image: a}]\n", "b", "r", SINCE).unwrap_err();
        assert_eq!(e.line, 2);
    }

    const WORKLOAD: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  annotations:\n    fluxcd.io/automated: \"true\"  # auto\n    fluxcd.io/tag.web: semver:~1.0\nspec:\n  template:\n    spec:\n      containers:\n        - name: web\n          image: ghcr.io/acme/web:1.0.0\n";

    #[test]
    fn a_flux_v1_workload_gets_its_lock_annotations_and_loses_them() {
        let w = &flux_workloads(WORKLOAD).unwrap()[0];
        assert!(w.runs("ghcr.io/acme/web"));
        assert_eq!(w.locked, None);
        let locked = w.lock(WORKLOAD, "rolled back").unwrap();
        assert_eq!(
            locked,
            WORKLOAD.replace(
                "semver:~1.0\n",
                "semver:~1.0\n    fluxcd.io/locked: \"true\"\n    fluxcd.io/locked_msg: \"rolled back\"\n"
            )
        );
        let w2 = &flux_workloads(&locked).unwrap()[0];
        assert_eq!(w2.locked.as_deref(), Some("rolled back"));
        assert_eq!(w2.unlock(&locked).unwrap(), WORKLOAD);
        // A `locked: "false"` is turned, not duplicated.
        let off = WORKLOAD.replace("  # auto", "  # auto\n    fluxcd.io/locked: \"false\"");
        let w3 = &flux_workloads(&off).unwrap()[0];
        let on = w3.lock(&off, "m").unwrap();
        assert!(
            on.contains("fluxcd.io/locked: \"true\"\n    fluxcd.io/tag.web"),
            "{on}"
        );
        assert!(
            on.contains("semver:~1.0\n    fluxcd.io/locked_msg: \"m\"\n"),
            "{on}"
        );
    }

    #[test]
    fn documents_without_flux_annotations_are_not_workloads() {
        let text = "kind: Deployment\nmetadata:\n  annotations:\n    a: b\n---\nkind: Pod\n";
        assert!(flux_workloads(text).unwrap().is_empty());
    }
}
