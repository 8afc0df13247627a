//! YAML event walking with exact byte spans, and a light node tree for finding things.
//!
//! `granit-parser` reports UTF-8 byte ranges for every event (unlike parsers that count
//! characters), so a scalar's span can be spliced directly. Spans of quoted scalars include
//! their quotes; anchors, tags and trailing comments are never part of a scalar's span.
//!
//! Two views are offered: [`events`], the flat event stream used to verify edits, and
//! [`parse_documents`], a tree per document with paths for messages, used by the format
//! modules (k8s, kustomize, helm, compose, ...). Both are linear in the size of the input.

use std::collections::HashSet;
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::ops::Range;

use granit_parser::{Event as RawEvent, Parser, ScalarStyle, ScanError, StructureStyle};

use super::{Found, ManifestError};

/// How a scalar is written in the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `value`
    Plain,
    /// `'value'`
    SingleQuoted,
    /// `"value"`
    DoubleQuoted,
    /// `|` block scalar.
    Literal,
    /// `>` block scalar.
    Folded,
}

impl From<ScalarStyle> for Style {
    fn from(style: ScalarStyle) -> Self {
        match style {
            ScalarStyle::Plain => Style::Plain,
            ScalarStyle::SingleQuoted => Style::SingleQuoted,
            ScalarStyle::DoubleQuoted => Style::DoubleQuoted,
            ScalarStyle::Literal => Style::Literal,
            ScalarStyle::Folded => Style::Folded,
        }
    }
}

/// What an [`Event`] is. Anchors are numbered per parse (0 = none); tags are resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// Start of a document; `explicit` when written as `---`.
    DocumentStart {
        /// Whether the document starts with `---`.
        explicit: bool,
    },
    /// End of a document.
    DocumentEnd,
    /// Start of a mapping.
    MappingStart {
        /// Flow style (`{...}`) rather than block.
        flow: bool,
        /// Anchor id, 0 when none.
        anchor: usize,
        /// Resolved tag, if any.
        tag: Option<String>,
    },
    /// End of a mapping.
    MappingEnd,
    /// Start of a sequence.
    SequenceStart {
        /// Flow style (`[...]`) rather than block.
        flow: bool,
        /// Anchor id, 0 when none.
        anchor: usize,
        /// Resolved tag, if any.
        tag: Option<String>,
    },
    /// End of a sequence.
    SequenceEnd,
    /// A scalar.
    Scalar {
        /// The decoded value.
        value: String,
        /// How it was written.
        style: Style,
        /// Anchor id, 0 when none.
        anchor: usize,
        /// Resolved tag, if any.
        tag: Option<String>,
    },
    /// An alias (`*name`) to the node with this anchor id.
    Alias {
        /// The anchor id referred to.
        anchor: usize,
    },
}

/// One parser event with its place in the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// Byte range in the source (empty for implicit events).
    pub span: Range<usize>,
    /// 1-based line where the event starts.
    pub line: usize,
    /// 1-based column (in characters) where the event starts.
    pub column: usize,
}

fn yaml_error(err: &ScanError) -> ManifestError {
    let mark = err.marker();
    let mut message = err.info();
    if message.is_empty() {
        message = err.to_string();
    }
    ManifestError::Yaml {
        line: mark.line(),
        column: mark.col() + 1,
        message,
    }
}

/// Iterate over the events of `text` (stream start/end and comments left out).
pub fn event_iter(text: &str) -> impl Iterator<Item = Result<Event, ManifestError>> + '_ {
    let options = granit_parser::options! { emit_comments: false };
    let mut parser = Parser::new_from_str_with_options(text, options);
    let mut failed = false;
    std::iter::from_fn(move || loop {
        if failed {
            return None;
        }
        let (raw, span) = match parser.next_event()? {
            Ok(pair) => pair,
            Err(err) => {
                failed = true;
                return Some(Err(yaml_error(&err)));
            }
        };
        let tag = |t: Option<std::borrow::Cow<'_, granit_parser::Tag>>| t.map(|t| t.to_string());
        let kind = match raw {
            RawEvent::StreamStart | RawEvent::StreamEnd => continue,
            RawEvent::DocumentStart(explicit, _) => EventKind::DocumentStart { explicit },
            RawEvent::DocumentEnd => EventKind::DocumentEnd,
            RawEvent::MappingStart(style, anchor, t) => EventKind::MappingStart {
                flow: style == StructureStyle::Flow,
                anchor,
                tag: tag(t),
            },
            RawEvent::MappingEnd => EventKind::MappingEnd,
            RawEvent::SequenceStart(style, anchor, t) => EventKind::SequenceStart {
                flow: style == StructureStyle::Flow,
                anchor,
                tag: tag(t),
            },
            RawEvent::SequenceEnd => EventKind::SequenceEnd,
            RawEvent::Scalar(value, style, anchor, t) => EventKind::Scalar {
                value: value.into_owned(),
                style: style.into(),
                anchor,
                tag: tag(t),
            },
            RawEvent::Alias(anchor) => EventKind::Alias { anchor },
            // Not emitted with these options (comments off, anchors and unresolved aliases
            // reported the default way); skip rather than guess.
            _ => continue,
        };
        let Some(range) = span.byte_range() else {
            failed = true;
            return Some(Err(ManifestError::Yaml {
                line: span.start.line(),
                column: span.start.col() + 1,
                message: "parser reported no byte offset".to_owned(),
            }));
        };
        return Some(Ok(Event {
            kind,
            span: range,
            line: span.start.line(),
            column: span.start.col() + 1,
        }));
    })
}

/// All events of `text`, or the first YAML error.
pub fn events(text: &str) -> Result<Vec<Event>, ManifestError> {
    event_iter(text).collect()
}

/// A node of a parsed document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The node's content.
    pub kind: NodeKind,
    /// Byte range of the node's first token (a scalar's whole token; a collection's opening
    /// bracket, or an empty range where a block collection starts).
    pub span: Range<usize>,
    /// 1-based line where the node starts.
    pub line: usize,
    /// 1-based column where the node starts.
    pub column: usize,
    /// Anchor id defined on this node, 0 when none.
    pub anchor: usize,
    /// Resolved tag, if any.
    pub tag: Option<String>,
}

/// The content of a [`Node`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    /// A scalar with its decoded value.
    Scalar {
        /// The decoded value.
        value: String,
        /// How it was written.
        style: Style,
    },
    /// A mapping's entries in source order.
    Mapping(Vec<(Node, Node)>),
    /// A sequence's items in source order.
    Sequence(Vec<Node>),
    /// An alias to the node with this anchor id (not followed).
    Alias(usize),
}

impl Node {
    /// The scalar's value, if this is a scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    /// Whether this is a null scalar: empty (`key:`), `~` or `null` written plain.
    pub fn is_null(&self) -> bool {
        match &self.kind {
            NodeKind::Scalar {
                value,
                style: Style::Plain,
            } => self.span.is_empty() || matches!(value.as_str(), "~" | "null" | "Null" | "NULL"),
            _ => false,
        }
    }

    /// The entries, if this is a mapping.
    pub fn as_mapping(&self) -> Option<&[(Node, Node)]> {
        match &self.kind {
            NodeKind::Mapping(entries) => Some(entries),
            _ => None,
        }
    }

    /// The items, if this is a sequence.
    pub fn as_sequence(&self) -> Option<&[Node]> {
        match &self.kind {
            NodeKind::Sequence(items) => Some(items),
            _ => None,
        }
    }

    /// The value of the first entry whose key is the scalar `key`, if this is a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_mapping()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// Follow a chain of mapping keys.
    pub fn get_path(&self, keys: &[&str]) -> Option<&Node> {
        keys.iter().try_fold(self, |node, key| node.get(key))
    }

    /// This scalar as a [`Found`] at `path`, if it is a scalar.
    pub fn to_found(&self, path: &Path) -> Option<Found> {
        let value = self.as_str()?;
        Some(Found {
            line: self.line,
            span: self.span.clone(),
            value: value.to_owned(),
            path: path.to_string(),
        })
    }
}

/// One document of a (possibly multi-document) file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// 0-based position of the document in the file.
    pub index: usize,
    /// The root node; `None` for an empty document.
    pub root: Option<Node>,
}

enum Frame {
    Mapping {
        node: Node,
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
        /// Hashes of the scalar keys, once the mapping is too big to compare key by key.
        hashed: Option<HashSet<u64>>,
    },
    Sequence {
        node: Node,
        items: Vec<Node>,
    },
}

/// Up to this many entries, a new key is compared with each earlier one; past it, keys are
/// hashed, so that a mapping of a million keys costs a million hash look-ups, not 10^12
/// comparisons.
const COMPARE_KEYS_UP_TO: usize = 8;

/// The earlier key of `entries` equal to the scalar `key`, if there is one. `hashed` is the
/// mapping's set of key hashes, built when it outgrows [`COMPARE_KEYS_UP_TO`]; the hasher is
/// keyed at random, so input cannot be made to collide, and a hit is confirmed by value.
/// Keys are compared by their decoded value: `image`, `"image"` and `'image'` are one key,
/// as they are to Kubernetes (which reads keys as JSON strings). Aliases and collections as
/// keys are not compared.
fn earlier_key<'a>(
    entries: &'a [(Node, Node)],
    hashed: &mut Option<HashSet<u64>>,
    hasher: &RandomState,
    key: &Node,
) -> Option<&'a Node> {
    let value = key.as_str()?;
    let find = || {
        entries
            .iter()
            .map(|(k, _)| k)
            .find(|k| k.as_str() == Some(value))
    };
    if entries.len() < COMPARE_KEYS_UP_TO {
        return find();
    }
    let set = hashed.get_or_insert_with(|| {
        entries
            .iter()
            .filter_map(|(k, _)| k.as_str())
            .map(|k| hasher.hash_one(k))
            .collect()
    });
    if set.insert(hasher.hash_one(value)) {
        None
    } else {
        find()
    }
}

/// Parse every document of `text` into a tree.
///
/// Errors when the text is not valid YAML; when a mapping holds the same key twice (which
/// value a reader takes differs between tools, so such a file is left alone); and when it only
/// parses because Go template braces (`{{ .Values.x }}`) read as nested flow mappings: such a
/// file is a template, not a manifest. A YAML error on a line holding `{{` (`{{- if … }}`,
/// `{{- include … | nindent 4 }}`) is that template's too, and is reported as one.
pub fn parse_documents(text: &str) -> Result<Vec<Document>, ManifestError> {
    parse_documents_of(text).map_err(|e| template_error(text, e))
}

/// `e`, or the template error when `e` is a YAML error on a line where a Go template action
/// (`{{`) starts: pointing at the first `{{` of that line.
fn template_error(text: &str, e: ManifestError) -> ManifestError {
    let ManifestError::Yaml { line, .. } = e else {
        return e;
    };
    let Some(at) = text.split_inclusive('\n').nth(line.wrapping_sub(1)) else {
        return e;
    };
    match at.find("{{") {
        Some(i) => ManifestError::Template {
            line,
            column: at[..i].chars().count() + 1,
        },
        None => e,
    }
}

fn parse_documents_of(text: &str) -> Result<Vec<Document>, ManifestError> {
    let mut docs = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<Node> = None;
    let hasher = RandomState::new();
    // End of the last flow mapping's `{`, to spot `{{`.
    let mut open_brace_end: Option<usize> = None;
    for ev in event_iter(text) {
        let Event {
            kind,
            span,
            line,
            column,
        } = ev?;
        let node = |kind, anchor, tag| Node {
            kind,
            span: span.clone(),
            line,
            column,
            anchor,
            tag,
        };
        let brace_end = open_brace_end.take();
        let done = match kind {
            EventKind::DocumentStart { .. } => {
                stack.clear();
                root = None;
                None
            }
            EventKind::DocumentEnd => {
                docs.push(Document {
                    index: docs.len(),
                    root: root.take(),
                });
                None
            }
            EventKind::MappingStart { flow, anchor, tag } => {
                if flow {
                    if brace_end == Some(span.start) {
                        return Err(ManifestError::Template {
                            line,
                            column: column.saturating_sub(1).max(1),
                        });
                    }
                    open_brace_end = Some(span.end);
                }
                stack.push(Frame::Mapping {
                    node: node(NodeKind::Mapping(Vec::new()), anchor, tag),
                    entries: Vec::new(),
                    key: None,
                    hashed: None,
                });
                None
            }
            EventKind::SequenceStart { anchor, tag, .. } => {
                stack.push(Frame::Sequence {
                    node: node(NodeKind::Sequence(Vec::new()), anchor, tag),
                    items: Vec::new(),
                });
                None
            }
            EventKind::MappingEnd | EventKind::SequenceEnd => match stack.pop() {
                Some(Frame::Mapping {
                    mut node, entries, ..
                }) => {
                    node.kind = NodeKind::Mapping(entries);
                    Some(node)
                }
                Some(Frame::Sequence { mut node, items }) => {
                    node.kind = NodeKind::Sequence(items);
                    Some(node)
                }
                None => None,
            },
            EventKind::Scalar {
                value,
                style,
                anchor,
                tag,
            } => Some(node(NodeKind::Scalar { value, style }, anchor, tag)),
            EventKind::Alias { anchor } => Some(node(NodeKind::Alias(anchor), 0, None)),
        };
        if let Some(n) = done {
            match stack.last_mut() {
                Some(Frame::Mapping {
                    entries,
                    key,
                    hashed,
                    ..
                }) => match key.take() {
                    Some(k) => entries.push((k, n)),
                    None => {
                        if let Some(first) = earlier_key(entries, hashed, &hasher, &n) {
                            return Err(ManifestError::duplicate_key(&n, first));
                        }
                        *key = Some(n);
                    }
                },
                Some(Frame::Sequence { items, .. }) => items.push(n),
                None => root = Some(n),
            }
        }
    }
    Ok(docs)
}

/// One step of a [`Path`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A mapping key (non-scalar keys show as `?`).
    Key(String),
    /// A sequence index.
    Index(usize),
}

/// Where a node sits in its document, shown as `spec.containers[0].image`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Path(pub Vec<Segment>);

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Segment::Key(k) if i == 0 => f.write_str(k)?,
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

impl Path {
    /// A path with one more segment.
    pub fn push(&mut self, seg: Segment) {
        self.0.push(seg);
    }

    /// Remove the last segment.
    pub fn pop(&mut self) {
        self.0.pop();
    }

    /// The last key, if the last segment is a key.
    pub fn last_key(&self) -> Option<&str> {
        match self.0.last() {
            Some(Segment::Key(k)) => Some(k),
            _ => None,
        }
    }
}

/// Visit `node` and every node below it (pre-order, mapping values and sequence items; keys
/// are not visited) with its path. Aliases are visited but not followed.
pub fn walk<'a>(node: &'a Node, path: &mut Path, visit: &mut impl FnMut(&'a Node, &Path)) {
    visit(node, path);
    match &node.kind {
        NodeKind::Mapping(entries) => {
            for (k, v) in entries {
                path.push(Segment::Key(k.as_str().unwrap_or("?").to_owned()));
                walk(v, path, visit);
                path.pop();
            }
        }
        NodeKind::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(Segment::Index(i));
                walk(item, path, visit);
                path.pop();
            }
        }
        NodeKind::Scalar { .. } | NodeKind::Alias(_) => {}
    }
}

/// A document's `apiVersion` and `kind`, when they are scalars.
pub fn api_version_kind(root: &Node) -> (Option<&str>, Option<&str>) {
    (
        root.get("apiVersion").and_then(Node::as_str),
        root.get("kind").and_then(Node::as_str),
    )
}

/// Whether `api_version` is in the API `group` (`group/version`).
pub fn in_group(api_version: Option<&str>, group: &str) -> bool {
    api_version
        .and_then(|v| v.strip_prefix(group))
        .is_some_and(|rest| rest.starts_with('/'))
}

/// A path starting with `keys`.
pub fn path_of(keys: &[&str]) -> Path {
    Path(keys.iter().map(|k| Segment::Key((*k).to_owned())).collect())
}

/// 1-based line of byte `offset` in `text` (lines end at `\n`, so CRLF counts once).
pub fn line_at(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalars(text: &str) -> Vec<(String, Style, String)> {
        events(text)
            .unwrap()
            .into_iter()
            .filter_map(|e| match e.kind {
                EventKind::Scalar { value, style, .. } => {
                    Some((value, style, text[e.span].to_owned()))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn quoted_spans_include_quotes_and_exclude_comments() {
        let text = "a: \"x:1\" # c\nb: 'it''s'  #d\nc: plain value # {\"$imagepolicy\": \"f:w\"}\n";
        let s = scalars(text);
        assert_eq!(s[1], ("x:1".into(), Style::DoubleQuoted, "\"x:1\"".into()));
        assert_eq!(s[3], ("it's".into(), Style::SingleQuoted, "'it''s'".into()));
        assert_eq!(
            s[5],
            ("plain value".into(), Style::Plain, "plain value".into())
        );
    }

    #[test]
    fn spans_are_bytes_with_bom_crlf_and_multibyte() {
        let text = "\u{feff}k: \"é\"\r\nimage: nginx:1.2\r\n";
        let evs = events(text).unwrap();
        let img = evs
            .iter()
            .find(|e| matches!(&e.kind, EventKind::Scalar { value, .. } if value == "nginx:1.2"))
            .unwrap();
        assert_eq!(&text[img.span.clone()], "nginx:1.2");
        assert_eq!(img.line, 2);
        assert_eq!(img.column, 8);
        assert_eq!(line_at(text, img.span.start), 2);
    }

    #[test]
    fn anchors_and_tags_are_outside_the_span() {
        let text = "a: !!str &x v1\nb: *x\n";
        let evs = events(text).unwrap();
        let v = evs
            .iter()
            .find(|e| matches!(&e.kind, EventKind::Scalar { value, .. } if value == "v1"))
            .unwrap();
        assert_eq!(&text[v.span.clone()], "v1");
        match &v.kind {
            EventKind::Scalar { anchor, tag, .. } => {
                assert_ne!(*anchor, 0);
                assert_eq!(tag.as_deref(), Some("tag:yaml.org,2002:str"));
            }
            _ => unreachable!(),
        }
        assert!(evs
            .iter()
            .any(|e| matches!(e.kind, EventKind::Alias { .. })));
    }

    #[test]
    fn yaml_errors_carry_line_and_column() {
        let err = events("a: b\n  c: d: e\n").unwrap_err();
        match err {
            ManifestError::Yaml {
                line,
                column,
                message,
            } => {
                assert_eq!(line, 2);
                assert!(column >= 1);
                assert!(message.contains("mapping values"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn documents_tree_and_paths() {
        let text = "---\na: {b: [x, {c: d}]}\n---\n---\nk: v\n";
        let docs = parse_documents(text).unwrap();
        assert_eq!(docs.len(), 3);
        assert!(docs[1].root.is_none() || docs[1].root.as_ref().unwrap().as_str().is_some());
        let root = docs[0].root.as_ref().unwrap();
        let c = root
            .get("a")
            .unwrap()
            .get("b")
            .unwrap()
            .as_sequence()
            .unwrap()[1]
            .get("c")
            .unwrap();
        assert_eq!(&text[c.span.clone()], "d");
        let mut seen = Vec::new();
        walk(root, &mut Path::default(), &mut |n, p| {
            if n.as_str() == Some("d") {
                seen.push(p.to_string());
            }
        });
        assert_eq!(seen, ["a.b[1].c"]);
        assert_eq!(
            docs[2]
                .root
                .as_ref()
                .unwrap()
                .get_path(&["k"])
                .unwrap()
                .as_str(),
            Some("v")
        );
    }

    fn duplicate(text: &str) -> (usize, usize, String, usize) {
        match parse_documents(text) {
            Err(ManifestError::DuplicateKey {
                line,
                column,
                key,
                first_line,
            }) => (line, column, key, first_line),
            other => panic!("{text:?}: {other:?}"),
        }
    }

    #[test]
    fn duplicate_keys_are_refused_with_where_and_which() {
        let text = "spec:\n  containers:\n    - name: web\n      image: a:1\n      image: b:2\n";
        assert_eq!(duplicate(text), (5, 7, "\"image\"".into(), 4));
        let err = parse_documents(text).unwrap_err();
        assert_eq!(err.line(), Some(5));
        assert_eq!(
            err.to_string(),
            "duplicate mapping key \"image\" at line 5, column 7 (first at line 4): which value \
             counts is ambiguous, so the file is left alone"
        );
        // A whole subtree twice, quoted the second time, in a flow mapping, at the top.
        assert_eq!(
            duplicate("spec:\n  containers: []\n  \"containers\": []\n").2,
            "\"containers\""
        );
        assert_eq!(duplicate("a: {b: 1, 'b': 2}\n").0, 1);
        assert_eq!(
            duplicate("kind: Pod\nspec: {}\nkind: Pod\n"),
            (3, 1, "\"kind\"".into(), 1)
        );
        // In the second document of a file.
        assert_eq!(duplicate("a: 1\n---\nb: 1\nb: 2\n").0, 4);
        // A long key is shown shortened.
        let long = "k".repeat(500);
        let key = duplicate(&format!("{long}: 1\n{long}: 2\n")).2;
        assert!(key.ends_with("(first 60 of 500 characters)"), "{key}");
        assert!(key.len() < 120, "{key}");
    }

    #[test]
    fn equal_keys_in_different_mappings_or_documents_are_fine() {
        let text = "a: {image: x}\nb: {image: x}\nc:\n  - image: x\n  - image: x\n---\na: 1\n";
        assert_eq!(parse_documents(text).unwrap().len(), 2);
        // Values equal to keys, and keys differing only in case or spacing, are distinct.
        assert!(parse_documents("image: image\nImage: 1\n'image ': 2\n").is_ok());
        // Aliases and collections as keys are not compared.
        assert!(parse_documents("a: &x k\n*x : 1\n? [k]\n: 2\n? [k]\n: 3\n").is_ok());
    }

    #[test]
    fn duplicate_keys_in_big_mappings_are_found_in_linear_time() {
        // Past the key-by-key comparison: a duplicate of the first, a middle and the last key.
        for (dup, first_line) in [(0, 1), (7, 8), (8, 9), (40_000, 40_001), (99_999, 100_000)] {
            let mut text = String::new();
            for i in 0..100_000 {
                text.push_str(&format!("key{i}: {i}\n"));
            }
            text.push_str(&format!("key{dup}: again\n"));
            let (line, _, key, first) = duplicate(&text);
            assert_eq!(
                (line, key, first),
                (100_001, format!("\"key{dup}\""), first_line)
            );
        }
        // 200,000 distinct keys, block and flow: no duplicate, and quick (a quadratic check
        // would make 2*10^10 comparisons here).
        let mut block = String::new();
        let mut flow = String::from("{");
        for i in 0..200_000 {
            block.push_str(&format!("k{i}: {i}\n"));
            flow.push_str(&format!("k{i}: {i}, "));
        }
        flow.push('}');
        let start = std::time::Instant::now();
        for text in [&block, &flow] {
            let docs = parse_documents(text).unwrap();
            let root = docs[0].root.as_ref().unwrap();
            assert_eq!(root.as_mapping().unwrap().len(), 200_000);
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn go_template_braces_are_rejected() {
        let text = "spec:\n  image: {{ .Values.image }}\n";
        assert!(matches!(
            parse_documents(text),
            Err(ManifestError::Template { line: 2, .. })
        ));
        // A flow mapping holding a flow mapping with a space between is ordinary YAML.
        assert!(parse_documents("a: { {b: c}: d }\n").is_ok());
    }

    #[test]
    fn template_actions_that_break_the_yaml_are_templates_too() {
        for (text, line, column) in [
            ("{{- if .Values.x }}\napiVersion: v1\n{{- end }}\n", 1, 1),
            (
                "metadata:\n  labels:\n    {{- include \"x\" . | nindent 4 }}\nspec: {}\n",
                3,
                5,
            ),
            ("kind: Pod\nspec:\n  a: 1\n{{ end }}\n", 4, 1),
            ("{{- /* c */ -}}\r\nkind: Pod\r\n", 1, 1),
        ] {
            match parse_documents(text) {
                Err(ManifestError::Template { line: l, column: c }) => {
                    assert_eq!((l, c), (line, column), "{text:?}")
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
        // A YAML error on a line without `{{` stays a YAML error, `{{` elsewhere or not.
        for text in ["image: \"{{ .Values.x }}\"\nbad: [\n", "a: [\n"] {
            assert!(
                matches!(parse_documents(text), Err(ManifestError::Yaml { .. })),
                "{text:?}"
            );
        }
    }
}
