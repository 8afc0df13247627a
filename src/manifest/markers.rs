//! Flux setter markers: `# {"$imagepolicy": "NS:NAME"}` comments that bind a scalar to a policy.
//!
//! As in Flux, the comment must be exactly a JSON object with an `"$imagepolicy"` string
//! `NS:NAME` (the whole reference), `NS:NAME:tag`, `NS:NAME:name` or `NS:NAME:digest`.
//!
//! Where a marker binds:
//! - a **trailing** comment binds the last value scalar (not a key) that ends on its line
//!   before the `#` (`image: x:1 # {...}`, `- x:1 # {...}`, `newTag: v1 # {...}`);
//! - a comment **on its own line** binds the value scalar that starts on the next line, when
//!   exactly one does (`# {...}` above `image: x:1` or `- x:1`); a trailing marker on that
//!   line wins.
//!
//! A marker that is malformed, binds nothing, binds a block scalar, or is overridden is
//! reported as a [`Problem`], never silently dropped.
//!
//! Comments are found from the text and the scalars' spans (the parser's comment events are
//! not used): a comment starts at a `#` outside every scalar token, at the start of a line or
//! after a space or tab.

use std::ops::Range;

use super::scan::{Document, Node, NodeKind, Path, Segment, Style};
use super::{Found, PolicyRef, Problem, ProblemAbout};

/// The part of a reference a marker sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MarkerField {
    /// `NS:NAME`: the whole reference.
    Whole,
    /// `NS:NAME:name`: the repository.
    Name,
    /// `NS:NAME:tag`: the tag.
    Tag,
    /// `NS:NAME:digest`: the digest.
    Digest,
}

/// A parsed marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    /// The policy named.
    pub policy: PolicyRef,
    /// What it sets.
    pub field: MarkerField,
}

/// The shorthand key Flux uses.
pub const SHORTHAND: &str = "$imagepolicy";

/// A comment that mentions `$imagepolicy` but is no valid marker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "malformed image policy marker `# {comment}`: expected \
     # {{\"$imagepolicy\": \"NAMESPACE:NAME[:tag|:name|:digest]\"}}"
)]
pub struct MalformedMarker {
    /// The comment, trimmed, without the `#`.
    pub comment: String,
}

/// Parse the text of a comment (after the `#`). `None` when it does not mention
/// `$imagepolicy`; an error when it does but is not a valid marker.
pub fn parse_marker(comment: &str) -> Option<Result<Marker, MalformedMarker>> {
    if !comment.contains(SHORTHAND) {
        return None;
    }
    let body = comment.trim();
    let malformed = || MalformedMarker {
        comment: body.to_string(),
    };
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(body) else {
        return Some(Err(malformed()));
    };
    let Some(serde_json::Value::String(setter)) = map.get(SHORTHAND) else {
        return Some(Err(malformed()));
    };
    let parts: Vec<&str> = setter.split(':').collect();
    let field = match parts.as_slice() {
        [_, _] => MarkerField::Whole,
        [_, _, "tag"] => MarkerField::Tag,
        [_, _, "name"] => MarkerField::Name,
        [_, _, "digest"] => MarkerField::Digest,
        _ => return Some(Err(malformed())),
    };
    let (namespace, name) = (parts[0].trim(), parts[1].trim());
    if namespace.is_empty() || name.is_empty() {
        return Some(Err(malformed()));
    }
    Some(Ok(Marker {
        policy: PolicyRef {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        },
        field,
    }))
}

/// A scalar in value position (a mapping value, a sequence item or a document root).
#[derive(Debug, Clone)]
pub struct ValueScalar {
    /// The scalar.
    pub found: Found,
    /// How it is written.
    pub style: Style,
    /// Identity of the collection holding it (unique per file; 0 for a document root).
    pub parent: usize,
}

/// Every scalar token of a file: all spans (keys too), and the value scalars.
#[derive(Debug, Clone, Default)]
pub struct Scalars {
    /// Non-empty spans of every scalar, keys included, in source order.
    pub spans: Vec<Range<usize>>,
    /// Value scalars in source order.
    pub values: Vec<ValueScalar>,
}

/// Collect the scalars of `docs`.
pub fn collect(docs: &[Document]) -> Scalars {
    let mut out = Scalars::default();
    let mut next_id = 0;
    for doc in docs {
        if let Some(root) = &doc.root {
            visit(root, &mut Path::default(), false, 0, &mut next_id, &mut out);
        }
    }
    out.spans.sort_by_key(|r| r.start);
    out.values.sort_by_key(|v| v.found.span.start);
    out
}

fn visit(
    node: &Node,
    path: &mut Path,
    in_key: bool,
    parent: usize,
    next_id: &mut usize,
    out: &mut Scalars,
) {
    match &node.kind {
        NodeKind::Scalar { style, .. } => {
            if !node.span.is_empty() {
                out.spans.push(node.span.clone());
            }
            if !in_key {
                if let Some(found) = node.to_found(path) {
                    out.values.push(ValueScalar {
                        found,
                        style: *style,
                        parent,
                    });
                }
            }
        }
        NodeKind::Mapping(entries) => {
            *next_id += 1;
            let id = *next_id;
            for (k, v) in entries {
                visit(k, path, true, id, next_id, out);
                path.push(Segment::Key(k.as_str().unwrap_or("?").to_owned()));
                visit(v, path, in_key, id, next_id, out);
                path.pop();
            }
        }
        NodeKind::Sequence(items) => {
            *next_id += 1;
            let id = *next_id;
            for (i, item) in items.iter().enumerate() {
                path.push(Segment::Index(i));
                visit(item, path, in_key, id, next_id, out);
                path.pop();
            }
        }
        NodeKind::Alias(_) => {}
    }
}

/// A marker bound to a value scalar.
#[derive(Debug, Clone)]
pub struct Bound {
    /// Index into [`Scalars::values`].
    pub value: usize,
    /// The marker.
    pub marker: Marker,
}

/// Find every marker comment in `text` and bind it to a value scalar.
pub fn find(text: &str, scalars: &Scalars) -> (Vec<Bound>, Vec<Problem>) {
    let mut bound: Vec<Bound> = Vec::new();
    let mut problems = Vec::new();
    if !text.contains(SHORTHAND) {
        return (bound, problems);
    }
    let lines = line_ranges(text);
    // Own-line markers, bound after the trailing ones so that those win: (line, value, marker).
    let mut above: Vec<(usize, usize, Marker)> = Vec::new();
    for (l, line) in lines.iter().enumerate() {
        let Some(hash) = comment_start(text, line.clone(), &scalars.spans) else {
            continue;
        };
        let comment = text[hash + 1..line.end].trim_end_matches('\r');
        let marker = match parse_marker(comment) {
            None => continue,
            Some(Err(e)) => {
                problems.push(Problem {
                    about: ProblemAbout::Marker,
                    line: l + 1,
                    message: e.to_string(),
                });
                continue;
            }
            Some(Ok(m)) => m,
        };
        let own_line = text[line.start..hash]
            .trim_start_matches('\u{feff}')
            .trim_matches([' ', '\t'])
            .is_empty();
        if own_line {
            let next = lines.get(l + 1).cloned().unwrap_or(text.len()..text.len());
            let starting: Vec<usize> = values_starting_in(scalars, next).collect();
            match starting.as_slice() {
                [v] => above.push((l + 1, *v, marker)),
                [] => problems.push(Problem {
                    about: ProblemAbout::Marker,
                    line: l + 1,
                    message: "image policy marker on its own line, but the next line holds no scalar value".into(),
                }),
                _ => problems.push(Problem {
                    about: ProblemAbout::Marker,
                    line: l + 1,
                    message: "image policy marker on its own line, but the next line holds several scalar values; put it after the value".into(),
                }),
            }
            continue;
        }
        // Trailing: the last value scalar ending on this line before the `#`.
        let end = scalars.values.partition_point(|v| v.found.span.end <= hash);
        let target = scalars.values[..end]
            .iter()
            .enumerate()
            .rev()
            .take_while(|(_, v)| v.found.span.end >= line.start)
            .find(|(_, v)| !v.found.span.is_empty())
            .map(|(i, _)| i);
        match target {
            Some(v) => bound.push(Bound { value: v, marker }),
            None => problems.push(Problem {
                about: ProblemAbout::Marker,
                line: l + 1,
                message: "image policy marker does not follow a scalar value on its line".into(),
            }),
        }
    }
    for (line, value, marker) in above {
        if bound.iter().any(|b| b.value == value) {
            problems.push(Problem {
                about: ProblemAbout::Marker,
                line,
                message: "image policy marker above a value that has its own marker; the one on the value's line wins".into(),
            });
        } else {
            bound.push(Bound { value, marker });
        }
    }
    bound.retain(|b| {
        let v = &scalars.values[b.value];
        let block = matches!(v.style, Style::Literal | Style::Folded);
        if block {
            problems.push(Problem {
                about: ProblemAbout::Marker,
                line: v.found.line,
                message: "image policy marker on a block scalar (| or >), which is not rewritten"
                    .into(),
            });
        }
        !block
    });
    bound.sort_by_key(|b| b.value);
    problems.sort_by_key(|p| p.line);
    (bound, problems)
}

/// Indices of the non-empty value scalars starting within `range`.
fn values_starting_in(scalars: &Scalars, range: Range<usize>) -> impl Iterator<Item = usize> + '_ {
    let from = scalars
        .values
        .partition_point(|v| v.found.span.start < range.start);
    scalars.values[from..]
        .iter()
        .enumerate()
        .take_while(move |(_, v)| v.found.span.start < range.end)
        .filter(|(_, v)| !v.found.span.is_empty())
        .map(move |(i, _)| from + i)
}

/// Byte ranges of the lines of `text`, without their `\n`.
pub fn line_ranges(text: &str) -> Vec<Range<usize>> {
    let mut lines = Vec::new();
    let mut start = 0;
    for (i, b) in text.bytes().enumerate() {
        if b == b'\n' {
            lines.push(start..i);
            start = i + 1;
        }
    }
    if start < text.len() {
        lines.push(start..text.len());
    }
    lines
}

/// Byte offset of the `#` that starts a comment on `line`, if any: outside every scalar token
/// in `spans` (sorted), at the line's start or after a space or tab.
pub fn comment_start(text: &str, line: Range<usize>, spans: &[Range<usize>]) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut pos = line.start;
    while pos < line.end {
        let next = spans.partition_point(|r| r.end <= pos);
        let stop = match spans.get(next) {
            Some(r) if r.start <= pos => {
                pos = r.end;
                continue;
            }
            Some(r) => r.start.min(line.end),
            None => line.end,
        };
        for i in pos..stop {
            if bytes[i] == b'#'
                && (i == line.start
                    || matches!(bytes[i - 1], b' ' | b'\t')
                    || (i == 3 && text.starts_with('\u{feff}')))
            {
                return Some(i);
            }
        }
        pos = stop;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::scan::parse_documents;

    fn bind(text: &str) -> (Vec<(String, String, MarkerField)>, Vec<Problem>) {
        let docs = parse_documents(text).unwrap();
        let scalars = collect(&docs);
        let (bound, problems) = find(text, &scalars);
        let b = bound
            .into_iter()
            .map(|b| {
                (
                    scalars.values[b.value].found.value.clone(),
                    b.marker.policy.name,
                    b.marker.field,
                )
            })
            .collect();
        (b, problems)
    }

    #[test]
    fn parses_the_four_marker_forms() {
        let m = |s: &str| parse_marker(s).unwrap().unwrap();
        let whole = m(r#" {"$imagepolicy": "flux-system:web"}"#);
        assert_eq!(whole.policy.namespace, "flux-system");
        assert_eq!(whole.policy.name, "web");
        assert_eq!(whole.field, MarkerField::Whole);
        assert_eq!(m(r#"{"$imagepolicy":"a:b:tag"}"#).field, MarkerField::Tag);
        assert_eq!(
            m(r#" {"$imagepolicy": "a:b:name"} "#).field,
            MarkerField::Name
        );
        assert_eq!(
            m(r#"{"$imagepolicy": "a:b:digest"}"#).field,
            MarkerField::Digest
        );
        assert!(parse_marker(" just a comment").is_none());
        for bad in [
            r#"{"$imagepolicy": "web"}"#,
            r#"{"$imagepolicy": "a:b:c"}"#,
            r#"{"$imagepolicy": ":b"}"#,
            r#"{"$imagepolicy": 3}"#,
            r#"{"$imagepolicy": "a:b"} trailing words"#,
            r#"$imagepolicy a:b"#,
        ] {
            let err = parse_marker(bad).unwrap().unwrap_err().to_string();
            assert!(err.contains("malformed"), "{bad}: {err}");
        }
        assert_eq!(
            parse_marker(r#" {"$imagepolicy": 3} "#)
                .unwrap()
                .unwrap_err()
                .to_string(),
            r#"malformed image policy marker `# {"$imagepolicy": 3}`: expected # {"$imagepolicy": "NAMESPACE:NAME[:tag|:name|:digest]"}"#
        );
    }

    #[test]
    fn trailing_markers_bind_the_value_on_their_line() {
        let text = "\
image: ghcr.io/acme/web:1.0 # {\"$imagepolicy\": \"flux-system:web\"}
list:
  - 'x:1'   # {\"$imagepolicy\": \"ns:x\"}
kust:
  newName: acme/api # {\"$imagepolicy\": \"ns:api:name\"}
  newTag: \"v1\"\t# {\"$imagepolicy\": \"ns:api:tag\"}
flow: {a: b, image: c:1} # {\"$imagepolicy\": \"ns:c\"}
";
        let (b, p) = bind(text);
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(
            b,
            [
                (
                    "ghcr.io/acme/web:1.0".into(),
                    "web".into(),
                    MarkerField::Whole
                ),
                ("x:1".into(), "x".into(), MarkerField::Whole),
                ("acme/api".into(), "api".into(), MarkerField::Name),
                ("v1".into(), "api".into(), MarkerField::Tag),
                ("c:1".into(), "c".into(), MarkerField::Whole),
            ]
        );
    }

    #[test]
    fn own_line_markers_bind_the_next_line() {
        let text = "\
a:
  # {\"$imagepolicy\": \"ns:one\"}
  image: one:1
  args:
    # {\"$imagepolicy\": \"ns:two\"}
    - two:1
  # {\"$imagepolicy\": \"ns:lost\"}
  nested:
    k: v
  # {\"$imagepolicy\": \"ns:loser\"}
  tag: 3 # {\"$imagepolicy\": \"ns:winner:tag\"}
";
        let (b, p) = bind(text);
        assert_eq!(
            b,
            [
                ("one:1".into(), "one".into(), MarkerField::Whole),
                ("two:1".into(), "two".into(), MarkerField::Whole),
                ("3".into(), "winner".into(), MarkerField::Tag),
            ]
        );
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!(p[0].line, 7);
        assert!(p[0].message.contains("no scalar value"));
        assert_eq!(p[1].line, 10);
        assert!(p[1].message.contains("wins"));
    }

    #[test]
    fn hashes_inside_scalars_are_not_comments() {
        let text = "\
a: \"x # {\\\"$imagepolicy\\\": \\\"ns:no\\\"}\"
b: 'y # {\"$imagepolicy\": \"ns:no\"}'
c: |
  # {\"$imagepolicy\": \"ns:no\"}
d: e#{\"$imagepolicy\":\"ns:no\"}
f: g # {\"$imagepolicy\": \"ns:yes\"}
";
        let (b, p) = bind(text);
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(b, [("g".into(), "yes".into(), MarkerField::Whole)]);
    }

    #[test]
    fn unusable_markers_are_problems() {
        let text = "\
image: # {\"$imagepolicy\": \"ns:a\"}
  repository: x
script: | # {\"$imagepolicy\": \"ns:b\"}
  echo
# {\"$imagepolicy\": \"ns:c\"}
flow: {a: b, c: d}
bad: x # {\"$imagepolicy\": \"nope\"}
# {\"$imagepolicy\": \"ns:d\"}
";
        let (b, p) = bind(text);
        assert!(b.is_empty(), "{b:?}");
        let lines: Vec<usize> = p.iter().map(|p| p.line).collect();
        assert_eq!(lines, [1, 3, 5, 7, 8], "{p:?}");
        assert!(p[2].message.contains("several"));
        assert!(p[3].message.contains("malformed"));
    }

    #[test]
    fn crlf_bom_and_non_ascii() {
        let text = "\u{feff}# {\"$imagepolicy\": \"ns:é\"}\r\nimage: x:1\r\ny: 'ü' # {\"$imagepolicy\": \"ns:z:tag\"}\r\n";
        let (b, p) = bind(text);
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(
            b,
            [
                ("x:1".into(), "é".into(), MarkerField::Whole),
                ("ü".into(), "z".into(), MarkerField::Tag)
            ]
        );
    }
}
