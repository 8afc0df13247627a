//! Semver range constraints with the semantics of Masterminds/semver v3 (the library
//! Flux and Argo CD Image Updater use), on top of the `semver` crate's versions, and
//! [`parse_tag`], which reads an image tag as a version the way those tools do.
//!
//! A range is an OR (`||`) of AND groups; the comparators of a group are separated by
//! spaces or commas. Comparators: `=`, `!=`, `>`, `<`, `>=`/`=>`, `<=`/`=<`, tilde
//! `~`/`~>`, caret `^`, wildcards (`1.2.x`, `1.*`, `*`), bare partial versions (`1.2`
//! means `1.2.x`) and hyphen ranges (`1.2 - 1.4.5`). A `v` may precede any version.
//!
//! Pre-releases follow Masterminds, not npm: a pre-release version can only match a
//! group in which some comparator carries a pre-release, and then pre-releases of any
//! `major.minor.patch` may match (`>=1.2.3-0 <2` matches `1.3.0-rc.1`).
//!
//! Where Masterminds has plain bugs with a wildcard major version, this module gives
//! the obvious meaning instead: `^*` and `<=*` match every version, `!=*` none.

use std::cmp::Ordering;
use std::fmt;

use ::semver::{BuildMetadata, Prerelease, Version};

use super::PolicyError;

/// A parsed semver range: an OR of AND groups of comparators.
#[derive(Debug, Clone)]
pub struct Constraint {
    source: String,
    groups: Vec<Group>,
}

/// Why a version does not satisfy a range ([`Constraint::check`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    /// The version is outside every alternative of the range.
    OutsideRange,
    /// The version is a pre-release, and the alternatives it would otherwise satisfy
    /// name no pre-release.
    Prerelease,
}

/// Comparators that must all hold.
#[derive(Debug, Clone)]
struct Group {
    comparators: Vec<Comparator>,
    /// Some comparator carries a pre-release: pre-release versions may match.
    allows_prerelease: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// `=`, or no operator: exact for a full version, the wildcard's set otherwise.
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Tilde,
    Caret,
}

/// How much of the version was given; the rest was `x` or absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Precision {
    /// `*`, `x`: nothing fixed.
    Any,
    /// `1`, `1.x`: the major version fixed.
    Major,
    /// `1.2`, `1.2.x`: major and minor fixed.
    Minor,
    /// `1.2.3`.
    Full,
}

#[derive(Debug, Clone)]
struct Comparator {
    op: Op,
    /// The version with missing parts as 0, keeping any pre-release.
    base: Version,
    precision: Precision,
}

impl Constraint {
    /// Parses a range such as `^1.2`, `>=1.2.3 <2.0.0 || 3.x` or `1.2 - 1.4.5`.
    pub fn parse(range: &str) -> Result<Constraint, PolicyError> {
        let err = |reason: RangeError| PolicyError::InvalidRange {
            range: range.to_string(),
            reason,
        };
        if range.trim().is_empty() {
            return Err(err(RangeError::Empty));
        }
        let groups = range
            .split("||")
            .map(|g| parse_group(g).map_err(&err))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Constraint {
            source: range.to_string(),
            groups,
        })
    }

    /// Whether `v` satisfies the range.
    pub fn matches(&self, v: &Version) -> bool {
        self.groups.iter().any(|g| g.matches(v))
    }

    /// Like [`Constraint::matches`], and when `v` fails, why: a pre-release that some
    /// group would otherwise match but no such group names a pre-release is
    /// [`Miss::Prerelease`]; anything else is [`Miss::OutsideRange`].
    pub fn check(&self, v: &Version) -> Result<(), Miss> {
        if self.matches(v) {
            return Ok(());
        }
        let blocked_only_by_prerelease = !v.pre.is_empty()
            && self
                .groups
                .iter()
                .any(|g| !g.allows_prerelease && g.comparators.iter().all(|c| c.matches(v)));
        if blocked_only_by_prerelease {
            Err(Miss::Prerelease)
        } else {
            Err(Miss::OutsideRange)
        }
    }

    /// The range as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl std::str::FromStr for Constraint {
    type Err = PolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Constraint::parse(s)
    }
}

impl Group {
    fn matches(&self, v: &Version) -> bool {
        if !v.pre.is_empty() && !self.allows_prerelease {
            return false;
        }
        self.comparators.iter().all(|c| c.matches(v))
    }
}

/// Orders versions by semver precedence (§11): major, minor, patch, then
/// pre-release; build metadata is ignored (unlike `Version`'s `Ord`).
pub fn precedence(a: &Version, b: &Version) -> Ordering {
    (a.major, a.minor, a.patch)
        .cmp(&(b.major, b.minor, b.patch))
        .then_with(|| a.pre.cmp(&b.pre))
}

impl Comparator {
    fn matches(&self, v: &Version) -> bool {
        let base = &self.base;
        let ord = precedence(v, base);
        let same_major = v.major == base.major;
        let same_minor = same_major && v.minor == base.minor;
        match (self.op, self.precision) {
            (Op::Eq, Precision::Full) => ord == Ordering::Equal,
            (Op::Eq, _) | (Op::Tilde, _) => self.tilde(v, ord),
            (Op::Ne, Precision::Any) => false,
            (Op::Ne, Precision::Major) => !same_major,
            (Op::Ne, Precision::Minor) => !same_minor,
            (Op::Ne, Precision::Full) => ord != Ordering::Equal,
            (Op::Gt, Precision::Any | Precision::Full) => ord == Ordering::Greater,
            (Op::Gt, Precision::Major) => v.major > base.major,
            (Op::Gt, Precision::Minor) => {
                v.major > base.major || (same_major && v.minor > base.minor)
            }
            (Op::Lt, _) => ord == Ordering::Less,
            (Op::Ge, _) => ord != Ordering::Less,
            (Op::Le, Precision::Any) => true,
            (Op::Le, Precision::Major) => v.major <= base.major,
            (Op::Le, Precision::Minor) => {
                v.major < base.major || (same_major && v.minor <= base.minor)
            }
            (Op::Le, Precision::Full) => ord != Ordering::Greater,
            (Op::Caret, _) => self.caret(v, ord),
        }
    }

    /// `~1.2.3` is `>=1.2.3 <1.3.0`, `~1.2` is `1.2.x`, `~1` is `1.x`;
    /// `~0.0.0` and `~*` match everything.
    fn tilde(&self, v: &Version, ord: Ordering) -> bool {
        let base = &self.base;
        if self.precision == Precision::Any {
            return true;
        }
        if ord == Ordering::Less {
            return false;
        }
        if self.precision == Precision::Full
            && base.major == 0
            && base.minor == 0
            && base.patch == 0
        {
            return true;
        }
        v.major == base.major && (self.precision == Precision::Major || v.minor == base.minor)
    }

    /// `^1.2.3` is `>=1.2.3 <2.0.0`, `^0.2.3` is `>=0.2.3 <0.3.0`, `^0.0.3` is
    /// `>=0.0.3 <0.0.4`; `^0` is `0.x`, `^0.0` is `0.0.x`, `^*` everything.
    fn caret(&self, v: &Version, ord: Ordering) -> bool {
        let base = &self.base;
        if self.precision == Precision::Any {
            return true;
        }
        if ord == Ordering::Less {
            return false;
        }
        if base.major > 0 || self.precision == Precision::Major {
            return v.major == base.major;
        }
        if v.major > 0 {
            return false;
        }
        if base.minor > 0 || self.precision == Precision::Minor {
            return v.minor == base.minor;
        }
        v.minor == 0 && v.patch == base.patch
    }
}

/// One AND group: comparators separated by whitespace and/or a comma, including
/// hyphen ranges `A - B`.
/// What is wrong with a semver range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("the range is empty")]
    Empty,
    #[error("an alternative of \"||\" is empty")]
    EmptyAlternative,
    #[error("unexpected ','")]
    Comma,
    #[error("'-' of a hyphen range needs a version on each side")]
    LoneHyphen,
    #[error("unknown operator {0:?}")]
    Operator(String),
    #[error("operator {0:?} has no version after it")]
    NoVersion(String),
    #[error("a hyphen range cannot start with an operator ({0:?})")]
    HyphenOperator(String),
    #[error("hyphen range \"{0} -\" has no upper bound")]
    NoUpperBound(String),
    #[error("{0:?} is not a version")]
    NotVersion(String),
    #[error("{0:?} has more than three version parts")]
    TooManyParts(String),
    #[error("{0:?}: a number cannot follow a wildcard")]
    AfterWildcard(String),
    #[error("{text:?}: {part} is too large")]
    TooLarge { text: String, part: String },
    #[error("{text:?} has an invalid pre-release: {reason}")]
    Prerelease { text: String, reason: String },
    #[error("{0:?} has an empty pre-release")]
    EmptyPrerelease(String),
    #[error("{0:?} has empty build metadata")]
    EmptyBuild(String),
    #[error("{text:?} has invalid build metadata: {reason}")]
    Build { text: String, reason: String },
}

fn parse_group(text: &str) -> Result<Group, RangeError> {
    #[derive(PartialEq)]
    enum Tok<'a> {
        Word(&'a str),
        Comma,
    }
    let mut toks = Vec::new();
    for chunk in text.split_whitespace() {
        let mut parts = chunk.split(',').peekable();
        while let Some(part) = parts.next() {
            if !part.is_empty() {
                toks.push(Tok::Word(part));
            }
            if parts.peek().is_some() {
                toks.push(Tok::Comma);
            }
        }
    }
    if toks.is_empty() {
        return Err(RangeError::EmptyAlternative);
    }

    let mut comparators = Vec::new();
    let mut i = 0;
    // A comma is allowed once after each comparator.
    let mut comma_allowed = false;
    while i < toks.len() {
        let word = match toks[i] {
            Tok::Comma if comma_allowed => {
                comma_allowed = false;
                i += 1;
                continue;
            }
            Tok::Comma => return Err(RangeError::Comma),
            Tok::Word(w) => w,
        };
        i += 1;
        if word == "-" {
            return Err(RangeError::LoneHyphen);
        }
        let op_len = word
            .find(|c: char| !matches!(c, '=' | '!' | '<' | '>' | '~' | '^'))
            .unwrap_or(word.len());
        let (op_text, mut version_text) = word.split_at(op_len);
        let op = match op_text {
            "" | "=" => Op::Eq,
            "!=" => Op::Ne,
            ">" => Op::Gt,
            "<" => Op::Lt,
            ">=" | "=>" => Op::Ge,
            "<=" | "=<" => Op::Le,
            "~" | "~>" => Op::Tilde,
            "^" => Op::Caret,
            other => return Err(RangeError::Operator(other.to_string())),
        };
        if version_text.is_empty() {
            // The operator stands alone: `>= 1.2`.
            match toks.get(i) {
                Some(Tok::Word(w)) if *w != "-" => {
                    version_text = w;
                    i += 1;
                }
                _ => return Err(RangeError::NoVersion(op_text.to_string())),
            }
        }
        let low = parse_partial(version_text)?;

        if toks.get(i) == Some(&Tok::Word("-")) {
            if !op_text.is_empty() {
                return Err(RangeError::HyphenOperator(word.to_string()));
            }
            let high_text = match toks.get(i + 1) {
                Some(Tok::Word(w)) => *w,
                _ => return Err(RangeError::NoUpperBound(version_text.to_string())),
            };
            let high = parse_partial(high_text)?;
            i += 2;
            comparators.push(low.into_comparator(Op::Ge));
            comparators.push(high.into_comparator(Op::Le));
        } else {
            comparators.push(low.into_comparator(op));
        }
        comma_allowed = true;
    }

    let allows_prerelease = comparators.iter().any(|c| !c.base.pre.is_empty());
    Ok(Group {
        comparators,
        allows_prerelease,
    })
}

/// A version in a range: `v?` then up to three parts, each a number or a wildcard
/// (`x`, `X`, `*`), then an optional pre-release and build metadata.
struct Partial {
    parts: [Option<u64>; 3],
    given: usize,
    pre: Prerelease,
}

impl Partial {
    fn into_comparator(self, op: Op) -> Comparator {
        let precision = match self.given {
            0 => Precision::Any,
            1 => Precision::Major,
            2 => Precision::Minor,
            _ => Precision::Full,
        };
        let [major, minor, patch] = self.parts.map(|p| p.unwrap_or(0));
        let mut base = Version::new(major, minor, patch);
        base.pre = self.pre;
        Comparator {
            op,
            base,
            precision,
        }
    }
}

fn parse_partial(text: &str) -> Result<Partial, RangeError> {
    let t = || text.to_string();
    let body = text.strip_prefix(['v', 'V']).unwrap_or(text);
    let core_end = body.find(['-', '+']).unwrap_or(body.len());
    let (core, suffix) = body.split_at(core_end);
    if core.is_empty() {
        return Err(RangeError::NotVersion(t()));
    }
    let mut parts = [None; 3];
    let mut given = 0;
    let mut wildcard = false;
    for (n, part) in core.split('.').enumerate() {
        if n == 3 {
            return Err(RangeError::TooManyParts(t()));
        }
        if matches!(part, "x" | "X" | "*") {
            wildcard = true;
            continue;
        }
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RangeError::NotVersion(t()));
        }
        if wildcard {
            return Err(RangeError::AfterWildcard(t()));
        }
        let value = part.parse::<u64>().map_err(|_| RangeError::TooLarge {
            text: t(),
            part: part.to_string(),
        })?;
        parts[n] = Some(value);
        given += 1;
    }
    let (pre, build) = match suffix.strip_prefix('-') {
        Some(rest) => match rest.split_once('+') {
            Some((pre, build)) => (pre, Some(build)),
            None => (rest, None),
        },
        None => ("", suffix.strip_prefix('+')),
    };
    let pre = Prerelease::new(pre).map_err(|e| RangeError::Prerelease {
        text: t(),
        reason: e.to_string(),
    })?;
    if let Some(build) = build {
        if build.is_empty() {
            return Err(RangeError::EmptyBuild(t()));
        }
        BuildMetadata::new(build).map_err(|e| RangeError::Build {
            text: t(),
            reason: e.to_string(),
        })?;
    }
    if suffix.starts_with('-') && pre.is_empty() {
        return Err(RangeError::EmptyPrerelease(t()));
    }
    Ok(Partial { parts, given, pre })
}

/// Read a tag as a version: optional leading "v"/"V"; 3-part "1.2.3", also 2-part
/// "1.2" -> 1.2.0 and 1-part "16" -> 16.0.0; pre-release and build metadata as semver.
/// None for anything else ("latest", "main-abc", "1.2.3.4").
///
/// Like Masterminds' `NewVersion`, leading zeros in the numeric parts are accepted
/// (`2024.01.15` reads as 2024.1.15), and a suffix reads as a pre-release
/// (`16-alpine` is 16.0.0-alpine).
pub fn parse_tag(tag: &str) -> Option<Version> {
    let body = tag.strip_prefix(['v', 'V']).unwrap_or(tag);
    let core_end = body.find(['-', '+']).unwrap_or(body.len());
    let (core, suffix) = body.split_at(core_end);
    let mut nums = [0u64; 3];
    for (n, part) in core.split('.').enumerate() {
        if n == 3 || part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        nums[n] = part.parse().ok()?;
    }
    let mut version = Version::new(nums[0], nums[1], nums[2]);
    if let Some(rest) = suffix.strip_prefix('-') {
        let (pre, build) = match rest.split_once('+') {
            Some((pre, build)) => (pre, Some(build)),
            None => (rest, None),
        };
        if pre.is_empty() {
            return None;
        }
        version.pre = Prerelease::new(pre).ok()?;
        if let Some(build) = build {
            version.build = read_build(build)?;
        }
    } else if let Some(build) = suffix.strip_prefix('+') {
        version.build = read_build(build)?;
    }
    Some(version)
}

/// Build metadata after a '+': must not be empty (the crate accepts "").
fn read_build(build: &str) -> Option<BuildMetadata> {
    if build.is_empty() {
        return None;
    }
    BuildMetadata::new(build).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap_or_else(|e| panic!("bad test version {s}: {e}"))
    }

    /// (range, version, matches)
    const RANGES: &[(&str, &str, bool)] = &[
        // exact and equality
        ("1.2.3", "1.2.3", true),
        ("1.2.3", "1.2.4", false),
        ("=1.2.3", "1.2.3", true),
        ("=1.2.3", "1.2.3+build.5", true),
        ("v1.2.3", "1.2.3", true),
        ("=v1.2.3", "1.2.3", true),
        ("!=1.2.3", "1.2.3", false),
        ("!=1.2.3", "1.2.4", true),
        ("!=1.2", "1.2.9", false),
        ("!=1.2", "1.3.0", true),
        ("!=1.x", "2.0.0", true),
        ("!=1.x", "1.9.0", false),
        // comparisons
        (">1.2.3", "1.2.4", true),
        (">1.2.3", "1.2.3", false),
        (">1.2", "1.2.9", false),
        (">1.2", "1.3.0", true),
        (">1", "1.9.9", false),
        (">1", "2.0.0", true),
        ("<1.2.3", "1.2.2", true),
        ("<1.2.3", "1.2.3", false),
        ("<1.2", "1.1.99", true),
        ("<1.2", "1.2.0", false),
        (">=1.2.3", "1.2.3", true),
        (">=1.2.3", "1.2.2", false),
        ("=>1.2.3", "1.2.3", true),
        (">= 1.2.3", "2.0.0", true),
        ("<=1.2.3", "1.2.3", true),
        ("<=1.2.3", "1.2.4", false),
        ("=<1.2.3", "1.2.3", true),
        ("<=1.2", "1.2.99", true),
        ("<=1.2", "1.3.0", false),
        ("<=1", "1.99.0", true),
        ("<=1", "2.0.0", false),
        // tilde
        ("~1.2.3", "1.2.3", true),
        ("~1.2.3", "1.2.9", true),
        ("~1.2.3", "1.3.0", false),
        ("~1.2.3", "1.2.2", false),
        ("~1.2", "1.2.0", true),
        ("~1.2", "1.3.0", false),
        ("~1", "1.9.0", true),
        ("~1", "2.0.0", false),
        ("~>1.2", "1.2.5", true),
        ("~0.0.0", "5.0.0", true),
        // caret
        ("^1.2.3", "1.2.3", true),
        ("^1.2.3", "1.9.0", true),
        ("^1.2.3", "2.0.0", false),
        ("^1.2.3", "1.2.2", false),
        ("^0.2.3", "0.2.9", true),
        ("^0.2.3", "0.3.0", false),
        ("^0.0.3", "0.0.3", true),
        ("^0.0.3", "0.0.4", false),
        ("^1.x", "1.0.0", true),
        ("^1.x", "2.0.0", false),
        ("^0", "0.9.9", true),
        ("^0", "1.0.0", false),
        ("^0.0", "0.0.9", true),
        ("^0.0", "0.1.0", false),
        ("^1.2", "1.2.0", true),
        ("^1.2", "1.1.9", false),
        ("^*", "3.0.0", true),
        // wildcards and partial versions
        ("1.2.x", "1.2.7", true),
        ("1.2.x", "1.3.0", false),
        ("1.x", "1.5.0", true),
        ("1.x", "2.0.0", false),
        ("1.*", "1.5.0", true),
        ("1.X", "1.5.0", true),
        ("*", "9.9.9", true),
        ("x", "0.0.1", true),
        ("X", "1.0.0", true),
        ("1.2", "1.2.9", true),
        ("1.2", "1.3.0", false),
        ("1", "1.9.0", true),
        ("1", "2.0.0", false),
        ("v1.x", "1.1.0", true),
        // hyphen ranges
        ("1.2 - 1.4.5", "1.2.0", true),
        ("1.2 - 1.4.5", "1.4.5", true),
        ("1.2 - 1.4.5", "1.4.6", false),
        ("1.2 - 1.4.5", "1.1.9", false),
        ("1.2.3 - 2", "2.9.0", true),
        ("1.2.3 - 2", "3.0.0", false),
        ("v1.2.3 - v1.3", "1.3.9", true),
        // AND by spaces and commas
        (">=1.2.3 <2.0.0", "1.9.9", true),
        (">=1.2.3 <2.0.0", "2.0.0", false),
        (">=1.2.3, <2.0.0", "1.5.0", true),
        (">=1.2.3,<2.0.0", "2.1.0", false),
        (">= 1.2.3 , < 2", "1.5.0", true),
        (">1.0.0 <1.5.0 !=1.2.0", "1.2.0", false),
        (">1.0.0 <1.5.0 !=1.2.0", "1.3.0", true),
        // OR
        ("1.x || >=3.0.0", "1.4.0", true),
        ("1.x || >=3.0.0", "2.4.0", false),
        ("1.x || >=3.0.0", "3.1.0", true),
        ("~1.2 || ~1.4", "1.4.2", true),
        ("<1||>2", "2.5.0", false),
        ("<1||>2", "3.0.0", true),
        // pre-releases: only in a group that names one, then of any version
        (">=1.2.3", "1.3.0-rc.1", false),
        ("^1.2", "1.3.0-beta", false),
        ("*", "1.0.0-alpha", false),
        (">=1.2.3-0 <2", "1.3.0-rc.1", true),
        (">=1.2.3-0 <2", "1.2.3-alpha", true),
        (">=1.2.3-0 <2", "1.2.2", false),
        (">=1.2.3-0 <2", "2.0.0", false),
        (">=1.2.3-beta.2", "1.2.3-beta.10", true),
        (">=1.2.3-beta.2", "1.2.3-beta.1", false),
        (">=1.2.3-beta.2", "1.2.3-alpha.9", false),
        ("^1.2.3-rc.1", "1.2.3", true),
        ("^1.2.3-rc.1", "1.2.3-rc.2", true),
        ("^1.2.3-rc.1", "1.2.3-rc.0", false),
        ("1.2.3-rc.1", "1.2.3-rc.1", true),
        ("1.2.3-rc.1 || >=2", "2.1.0-beta", false),
        (">=2.0.0-0 || 1.x", "1.5.0-beta", false),
        (">=2.0.0-0 || 1.x", "2.5.0-beta", true),
    ];

    #[test]
    fn range_table() {
        assert!(RANGES.len() >= 40);
        for &(range, version, want) in RANGES {
            let c =
                Constraint::parse(range).unwrap_or_else(|e| panic!("{range:?} should parse: {e}"));
            assert_eq!(c.matches(&v(version)), want, "{range:?} vs {version}");
        }
    }

    #[test]
    fn invalid_ranges_quote_the_range() {
        let cases = [
            ("latest", "is not a version"),
            (">=", "operator \">=\" has no version after it"),
            ("1.2.3 -", "has no upper bound"),
            ("", "the range is empty"),
            ("   ", "the range is empty"),
            ("1.2 ||", "alternative of \"||\" is empty"),
            ("|| 1.2", "alternative of \"||\" is empty"),
            (">>1.2", "unknown operator \">>\""),
            ("1.2.3.4", "more than three version parts"),
            ("1.x.3", "a number cannot follow a wildcard"),
            ("- 1.2", "hyphen range needs a version on each side"),
            (">=1.2 - 1.4", "cannot start with an operator"),
            (",1.2", "unexpected ','"),
            ("1.2,,1.3", "unexpected ','"),
            ("1.2.3-", "empty pre-release"),
            ("1.2.3-01", "invalid pre-release"),
            ("1.2.3+", "empty build metadata"),
            ("v", "is not a version"),
            ("1..2", "is not a version"),
            ("99999999999999999999", "too large"),
        ];
        for (range, reason) in cases {
            let err = Constraint::parse(range).expect_err(range).to_string();
            let prefix = format!("invalid semver range {range:?}: ");
            assert!(err.starts_with(&prefix), "{range:?}: {err}");
            assert!(err.contains(reason), "{range:?}: {err} lacks {reason:?}");
        }
    }

    #[test]
    fn trailing_comma_is_accepted_like_masterminds() {
        assert!(Constraint::parse(">=1.2,").unwrap().matches(&v("1.3.0")));
    }

    #[test]
    fn display_is_the_source() {
        assert_eq!(Constraint::parse("^1.2").unwrap().to_string(), "^1.2");
    }

    #[test]
    fn tags_as_versions() {
        let cases = [
            ("1.2.3", Some("1.2.3")),
            ("v1.2.3", Some("1.2.3")),
            ("V1.2.3", Some("1.2.3")),
            ("1.2", Some("1.2.0")),
            ("16", Some("16.0.0")),
            ("v16", Some("16.0.0")),
            ("1.2.3-rc.1", Some("1.2.3-rc.1")),
            ("1.2.3+build.7", Some("1.2.3+build.7")),
            ("1.2.3-rc.1+build", Some("1.2.3-rc.1+build")),
            ("1.2-beta", Some("1.2.0-beta")),
            ("16-alpine", Some("16.0.0-alpine")),
            ("2024.01.15", Some("2024.1.15")),
            ("latest", None),
            ("main-abc", None),
            ("1.2.3.4", None),
            ("", None),
            ("v", None),
            ("1.", None),
            (".1", None),
            ("1..2", None),
            ("1.2.3-", None),
            ("1.2.3+", None),
            ("1.2.3-rc..1", None),
            ("1.2.3-01", None),
            ("vv1.2.3", None),
            ("sha256-abcdef.sig", None),
            ("99999999999999999999", None),
        ];
        for (tag, want) in cases {
            assert_eq!(parse_tag(tag), want.map(v), "{tag:?}");
        }
    }

    #[test]
    fn precedence_ignores_build_metadata() {
        assert_eq!(precedence(&v("1.2.3+a"), &v("1.2.3+b")), Ordering::Equal);
        assert_eq!(precedence(&v("1.2.3-rc.1"), &v("1.2.3")), Ordering::Less);
        assert_eq!(
            precedence(&v("1.0.0-alpha.beta"), &v("1.0.0-beta")),
            Ordering::Less
        );
        assert_eq!(
            precedence(&v("1.0.0-rc.10"), &v("1.0.0-rc.9")),
            Ordering::Greater
        );
    }
}
