//! `filter: {pattern, extract}`: keeps the tags an unanchored regular expression
//! (the `regex` crate's syntax) matches, and optionally turns each into the value the
//! policy ranks — the original tag is still what is reported and written.
//!
//! The extract template is expanded with [`regex::Captures::expand`], the same
//! rules as Go's `Regexp.Expand` that Flux uses: `$1` or `$name` (the longest run of
//! letters, digits and `_`), `${1}` or `${name}` to delimit, `$$` for a literal `$`.
//! Unlike Flux, a template that refers to a group the pattern does not define is an
//! error rather than an empty value for every tag (`$1a` names group `1a`; write
//! `${1}a`).

use std::borrow::Cow;

use regex::Regex;

use super::PolicyError;

/// A compiled `filter`.
#[derive(Debug, Clone)]
pub struct Filter {
    pattern: Regex,
    extract: Option<String>,
}

impl Filter {
    /// Compiles `pattern` and checks that `extract` refers only to groups it defines.
    /// An empty `extract` is no template (the tag itself is ranked), as in Flux.
    pub fn new(pattern: &str, extract: Option<&str>) -> Result<Filter, PolicyError> {
        let regex = Regex::new(pattern).map_err(|e| PolicyError::InvalidFilter {
            pattern: pattern.to_string(),
            reason: regex_error_reason(&e),
        })?;
        let extract = extract.filter(|t| !t.is_empty());
        if let Some(template) = extract {
            for group in references(template) {
                let defined = match group.parse::<usize>() {
                    Ok(index) => index < regex.captures_len(),
                    Err(_) => regex.capture_names().flatten().any(|n| n == group),
                };
                if !defined {
                    return Err(PolicyError::InvalidExtract {
                        extract: template.to_string(),
                        reason: format!("the pattern {pattern:?} has no capture group {group:?}"),
                    });
                }
            }
        }
        Ok(Filter {
            pattern: regex,
            extract: extract.map(str::to_string),
        })
    }

    /// The pattern as written (for tests).
    #[cfg(test)]
    pub(crate) fn pattern(&self) -> &str {
        self.pattern.as_str()
    }

    /// The extract template, if any.
    #[cfg(test)]
    pub(crate) fn extract(&self) -> Option<&str> {
        self.extract.as_deref()
    }

    /// The value to rank for `tag`, or None when the pattern does not match it. The
    /// template is expanded for the leftmost match.
    pub fn apply<'t>(&self, tag: &'t str) -> Option<Cow<'t, str>> {
        let Some(template) = &self.extract else {
            return self.pattern.is_match(tag).then_some(Cow::Borrowed(tag));
        };
        let captures = self.pattern.captures(tag)?;
        let mut value = String::new();
        captures.expand(template, &mut value);
        Some(Cow::Owned(value))
    }
}

/// The regex crate's error messages span several lines (the pattern, a caret, the
/// message); keep them readable inside one config error.
pub(super) fn regex_error_reason(e: &regex::Error) -> String {
    match e {
        regex::Error::Syntax(text) => text
            .lines()
            .rev()
            .find(|l| l.starts_with("error:"))
            .map(|l| l.trim_start_matches("error:").trim().to_string())
            .unwrap_or_else(|| text.clone()),
        other => other.to_string(),
    }
}

/// The group names and numbers a template refers to, parsed the way
/// `Captures::expand` parses it; a `$` that starts no reference is literal.
fn references(template: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = template;
    while let Some(at) = rest.find('$') {
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            rest = tail;
            continue;
        }
        if let Some(braced) = after.strip_prefix('{') {
            if let Some(close) = braced.find('}') {
                if close > 0 {
                    found.push(&braced[..close]);
                    rest = &braced[close + 1..];
                    continue;
                }
            }
            rest = after;
            continue;
        }
        let len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        if len > 0 {
            found.push(&after[..len]);
        }
        rest = &after[len..];
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_references_are_parsed_like_expand() {
        assert_eq!(references("$ts"), ["ts"]);
        assert_eq!(references("${1}a-$2_b $$x ${} $"), ["1", "2_b"]);
        assert_eq!(references("a$-b${open"), Vec::<&str>::new());
    }

    #[test]
    fn applies_pattern_and_template() {
        let f = Filter::new(r"^main-(?P<ts>\d+)-(\w+)$", Some("${ts}.$2")).unwrap();
        assert_eq!(f.apply("main-10-abc").as_deref(), Some("10.abc"));
        assert_eq!(f.apply("dev-10-abc"), None);
        let f = Filter::new("rc", None).unwrap();
        assert_eq!(f.apply("1.0.0-rc.1").as_deref(), Some("1.0.0-rc.1"));
        assert_eq!(f.pattern(), "rc");
        assert_eq!(f.extract(), None);
        assert_eq!(Filter::new("rc", Some("")).unwrap().extract(), None);
    }

    #[test]
    fn errors_quote_pattern_or_template() {
        let e = Filter::new("(unclosed", None).unwrap_err().to_string();
        assert!(
            e.starts_with("invalid filter pattern \"(unclosed\": "),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
        let e = Filter::new(r"^(\d+)$", Some("$2")).unwrap_err().to_string();
        assert!(e.starts_with("invalid extract template \"$2\": "), "{e}");
        let e = Filter::new(r"^(?P<ts>\d+)$", Some("$tss"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no capture group \"tss\""), "{e}");
        assert!(Filter::new(r"^(?P<ts>\d+)$", Some("$0 ${ts} $1")).is_ok());
    }
}
