//! Manifest formats: where image references live in YAML files and how they are rewritten.
//!
//! Discovery returns [`Found`] values carrying the exact byte span of each scalar, so that a
//! rewrite is a splice of the original bytes ([`edit::apply_edits`]) and never a reserialisation.
//! [`scan`] holds the generic YAML walking, [`k8s`] the Kubernetes workload shapes, [`edit`] the
//! splicing, verification and atomic writes, and [`files`] which files are read at all.

pub mod edit;
pub mod files;
pub mod k8s;
pub mod scan;

use std::ops::Range;

/// One image reference (or part of one) found in a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// 1-based line of the scalar
    pub line: usize,
    /// Byte range of the whole scalar token in the file, quotes included
    pub span: Range<usize>,
    /// The decoded scalar value (e.g. "ghcr.io/acme/web:1.2.0")
    pub value: String,
    /// Where it sits, for messages: e.g. "spec.template.spec.containers[0].image"
    pub path: String,
}

/// Everything that can go wrong while reading, locating or rewriting manifests.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The text is not valid YAML.
    #[error("invalid YAML at line {line}, column {column}: {message}")]
    Yaml {
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column (in characters) of the problem.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// The text parses, but only because a Go template's `{{ ... }}` reads as nested flow
    /// mappings: it is a template (Helm, say), not a manifest.
    #[error("not a plain YAML manifest: template braces `{{{{` at line {line}, column {column}")]
    Template {
        /// 1-based line of the `{{`.
        line: usize,
        /// 1-based column of the `{{`.
        column: usize,
    },
    /// An edit that cannot be applied (overlapping, out of range, not on a scalar, ...).
    #[error("cannot apply edit at bytes {start}..{end}: {reason}")]
    BadEdit {
        /// Start byte of the edit's span.
        start: usize,
        /// End byte of the edit's span.
        end: usize,
        /// Why it was refused.
        reason: String,
    },
    /// The spliced text does not parse to the original document with only the edited scalars
    /// changed; nothing should be written.
    #[error("edit verification failed at line {line}: {detail}")]
    Verify {
        /// 1-based line, in the edited text, where the difference shows.
        line: usize,
        /// What differed.
        detail: String,
    },
    /// A `paths`/`exclude` glob does not compile.
    #[error("invalid glob {glob:?}: {message}")]
    Glob {
        /// The glob as written.
        glob: String,
        /// Why it is invalid.
        message: String,
    },
    /// Walking the directory tree failed.
    #[error("cannot list manifest files: {message}")]
    Walk {
        /// The walker's message, including the path involved.
        message: String,
    },
}

impl ManifestError {
    /// The 1-based line the error points at, when it points at one.
    pub fn line(&self) -> Option<usize> {
        match self {
            ManifestError::Yaml { line, .. }
            | ManifestError::Template { line, .. }
            | ManifestError::Verify { line, .. } => Some(*line),
            ManifestError::BadEdit { .. }
            | ManifestError::Glob { .. }
            | ManifestError::Walk { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_say_where_and_what() {
        let err = k8s::find_container_images("a: [\n").unwrap_err();
        assert!(err.line().is_some());
        let text = err.to_string();
        assert!(text.contains("line") && text.contains("column"), "{text}");
        let glob = ManifestError::Glob {
            glob: "a/[".into(),
            message: "unclosed".into(),
        };
        assert_eq!(glob.line(), None);
        assert!(glob.to_string().contains("\"a/[\""));
    }
}
