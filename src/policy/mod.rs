//! Which tag wins: a [`Policy`] turns a repository's tag list into the candidates it
//! allows, best first ([`Policy::select`]), says why every other tag was dropped
//! ([`Policy::explain`]), and decides whether the tag now in a manifest should move
//! ([`Policy::update_from`]) — never a downgrade unless asked, and never a flip
//! between two spellings of one version.
//!
//! Every tag goes through the same steps, once, in this order; the first that
//! rejects it is the reason it is dropped:
//!
//! 1. the exclude globs: the policy's own and the always-excluded signature and
//!    attestation tags (`*.sig`, `*.att`, `*.sbom`, `sha256-*`);
//! 2. the exclude regexes (Flux's `exclusionList`), unanchored;
//! 3. the filter ([`filter`]): its pattern must match, and its extract template, if
//!    any, gives the value that is ranked instead of the tag;
//! 4. the kind: [`semver`] reads the value as a version and checks the range,
//!    [`order`] ranks it as text or as a number, [`digest`] keeps only the followed tag.
//!
//! Ties — two tags whose values rank equal (`v1.2.4` and `1.2.4`, `1.20` and
//! `1.20.0`, two tags extracting the same value) — are ordered longer tag first, then
//! byte order, so the order never depends on the registry's; and the current tag
//! always wins a tie.

pub mod digest;
pub mod docker;
pub mod filter;
pub mod order;
pub mod semver;

#[cfg(test)]
mod cases;
#[cfg(test)]
mod props;

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashSet;
use std::fmt;

use ::semver::Version;
use globset::{Glob, GlobSet, GlobSetBuilder};
use regex::RegexSet;

pub use self::filter::Filter;
use self::order::Number;
pub use self::order::Order;
use self::semver::{parse_tag, precedence, Constraint, Miss};

/// Tags that are never candidates: cosign signatures, attestations and SBOMs.
pub const ALWAYS_EXCLUDED: [&str; 4] = ["*.sig", "*.att", "*.sbom", "sha256-*"];

/// Whether `tag` is a valid OCI tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`. The pipeline drops
/// every other tag a registry (or `--tags-from`) gives before a policy sees it, so no newline,
/// quote, `#`, space or template can reach a manifest, a branch name or a message.
pub fn is_oci_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// A policy that cannot be built. Every message quotes the offending text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A semver range that does not parse.
    #[error("invalid semver range {range:?}: {reason}")]
    InvalidRange {
        range: String,
        #[source]
        reason: semver::RangeError,
    },
    /// An exclude glob that does not compile.
    #[error("invalid exclude pattern {pattern:?}: {reason}")]
    InvalidExclude { pattern: String, reason: String },
    /// An exclude regex that does not compile.
    #[error("invalid exclude regex {pattern:?}: {reason}")]
    InvalidExcludeRegex { pattern: String, reason: String },
    /// A filter pattern that does not compile.
    #[error("invalid filter pattern {pattern:?}: {reason}")]
    InvalidFilter { pattern: String, reason: String },
    /// An extract template that refers to a group the pattern lacks.
    #[error("invalid extract template {extract:?}: {reason}")]
    InvalidExtract { extract: String, reason: String },
    /// An extract template given without a filter pattern.
    #[error("extract template {extract:?} needs a filter pattern to extract from")]
    ExtractWithoutPattern { extract: String },
    /// An order other than `asc` or `desc`.
    #[error("invalid order {order:?}: expected \"asc\" or \"desc\"")]
    InvalidOrder { order: String },
    /// A digest policy's tag that is not a tag.
    #[error("invalid digest tag {tag:?}: {reason}")]
    InvalidDigestTag { tag: String, reason: String },
    /// A policy spec naming none of the kinds.
    #[error("policy needs one of semver, alphabetical, numerical, digest, update")]
    NoKind,
    /// A policy spec naming more than one kind.
    #[error("policy takes exactly one of semver, alphabetical, numerical, digest, update")]
    SeveralKinds,
    /// An `update:` level other than patch, minor, major.
    #[error("{0}")]
    InvalidLevel(String),
    /// `versioning: docker` with a policy kind that does not read versions.
    #[error(
        "versioning: docker reads tags as versions: it takes a semver range or an update level \
         (or no policy), not {kind}"
    )]
    DockerVersioning { kind: &'static str },
}

/// How tags are read as versions (`images[].versioning`, `tags --versioning`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Versioning {
    /// Semantic versions: a suffix after `-` is a pre-release, and any precision may replace any.
    #[default]
    Semver,
    /// Docker tags ([`docker`]): the current tag's suffix and precision are kept.
    Docker,
}

/// How tags are ranked and which are allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyKind {
    /// Tags read as versions ([`semver::parse_tag`]) that satisfy this range; the
    /// highest version wins.
    Semver(String),
    /// Any tag, in byte order; `asc` picks the greatest.
    Alphabetical(Order),
    /// Tags that are decimal numbers ([`order::Number`]); `asc` picks the greatest.
    Numerical(Order),
    /// Follows one mutable tag: the only candidate is this tag, when listed.
    Digest(String),
    /// Docker versioning ([`docker`]): newer tags of the current tag's shape within the
    /// level (`update: patch | minor | major`).
    Update(docker::Level),
}

/// The compiled form of a [`PolicyKind`].
#[derive(Debug, Clone)]
enum Rule {
    Semver(Constraint),
    Alphabetical(Order),
    Numerical(Order),
    Digest(String),
    /// Docker versioning ([`docker`]): tags of the current tag's shape within `level`, and
    /// (for `versioning: docker` with a semver range) whose numbers, read as a semantic
    /// version, the range allows. `base` is the current tag (see [`Policy::relative_to`]);
    /// without one, nothing passes.
    Docker {
        level: docker::Level,
        range: Option<Constraint>,
        base: Option<docker::Version>,
    },
}

/// A compiled policy: its rule, exclusions, filter and downgrade setting.
#[derive(Debug, Clone)]
pub struct Policy {
    rule: Rule,
    globs: Vec<String>,
    exclude: GlobSet,
    regexes: Vec<String>,
    exclude_regex: Option<RegexSet>,
    filter: Option<Filter>,
    allow_downgrade: bool,
}

/// The outcome of [`Policy::select`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Tags passing the policy, best first, each once.
    pub candidates: Vec<String>,
    /// The best candidate, or None when nothing passes.
    pub latest: Option<String>,
}

/// A move decided by [`Policy::update_from`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The tag to write.
    pub to: String,
    /// Why the current tag is replaced.
    pub reason: ChangeReason,
}

/// Why [`Policy::update_from`] replaces the current tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeReason {
    /// The new tag ranks strictly above the current one.
    Newer,
    /// There is no current tag, or the policy does not accept it (`latest` under a
    /// semver range, a tag the filter does not match, an excluded tag): the best
    /// candidate replaces it, even one ranking below it. A version outside the range
    /// is replaced only by a better one (or with `allow_downgrade`).
    CurrentNotAccepted,
    /// With `allow_downgrade`: the current tag is accepted but no longer listed,
    /// and the best listed candidate ranks below it.
    Downgrade,
}

impl fmt::Display for ChangeReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChangeReason::Newer => "newer",
            ChangeReason::CurrentNotAccepted => "current tag not accepted by the policy",
            ChangeReason::Downgrade => "downgrade (allowed)",
        })
    }
}

/// The leading numbers of a version-like tag: `v10.6.12-focal` -> [10, 6, 12]; `None` when
/// the tag does not start with a number (after an optional `v`).
fn version_numbers(tag: &str) -> Option<Vec<u64>> {
    let t = tag.strip_prefix(['v', 'V']).unwrap_or(tag);
    let end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let nums: Option<Vec<u64>> = t[..end]
        .split('.')
        .filter(|p| !p.is_empty())
        .map(|p| p.parse().ok())
        .collect();
    nums.filter(|n| !n.is_empty())
}

/// Whether `candidate` is a lower version than `current`, comparing their leading numbers
/// (`10.6.12-focal` < `10.9`); tags that are not both version-like are never lower.
fn lower_version(candidate: &str, current: &str) -> bool {
    match (version_numbers(candidate), version_numbers(current)) {
        (Some(a), Some(b)) => a
            .iter()
            .zip(&b)
            .find(|(x, y)| x != y)
            .is_some_and(|(x, y)| x < y),
        _ => false,
    }
}

/// What [`Policy::explain`] says about one tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub tag: String,
    pub outcome: Outcome,
}

/// A tag's fate under a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The tag passes; rank 0 is the pick.
    Candidate { rank: usize },
    /// The tag was dropped, and why ("excluded by glob *.sig", "filter pattern did
    /// not match", "not a version", "outside range ^1.2", "not a number", "a
    /// pre-release, and the range names none", ...).
    Dropped(String),
}

/// The value a tag is ranked by; all keys of one policy are the same variant.
#[derive(Debug, Clone)]
enum Key<'t> {
    Version(Version),
    Text(Cow<'t, str>),
    Number(Number),
    Followed,
    Docker(docker::Version),
}

/// Why a tag is not a candidate, rendered by [`Policy::reason`].
#[derive(Debug, Clone)]
enum Rejection {
    Glob(usize),
    Regex(usize),
    FilterMiss,
    /// The value (when an extract template made one) is not a version.
    NotVersion(Option<String>),
    /// A version the range does not take; kept so an update can still compare it.
    Range(Miss, Version),
    NotNumber(Option<String>),
    NotFollowed(Option<String>),
    /// `update:` with no current version to start from.
    NoBase,
    /// `update:`: not a version of the current tag's shape (prefix, precision, suffix).
    Shape,
    /// `update:`: a version of another minor or major than the level allows.
    Level,
    /// `versioning: docker`: of the current tag's shape, but its numbers (read as a semantic
    /// version) are outside the range; kept so an update can still compare it.
    DockerRange(docker::Version),
}

/// Every distinct tag of a list, judged once: candidates best first, then the
/// dropped ones in list order.
struct Evaluation<'t> {
    ranked: Vec<(Key<'t>, &'t str)>,
    dropped: Vec<(&'t str, Rejection)>,
}

impl Policy {
    /// exclude: glob patterns (globset); "*.sig", "*.att", "*.sbom", "sha256-*" are
    /// always excluded. Errors for a bad range, order word, digest tag or glob quote
    /// them.
    pub fn new(
        kind: PolicyKind,
        exclude: &[String],
        allow_downgrade: bool,
    ) -> Result<Policy, PolicyError> {
        let rule = match kind {
            PolicyKind::Semver(range) => Rule::Semver(Constraint::parse(&range)?),
            PolicyKind::Alphabetical(order) => Rule::Alphabetical(order),
            PolicyKind::Numerical(order) => Rule::Numerical(order),
            PolicyKind::Digest(tag) => {
                digest::validate_tag(&tag)?;
                Rule::Digest(tag)
            }
            PolicyKind::Update(level) => Rule::Docker {
                level,
                range: None,
                base: None,
            },
        };
        let globs: Vec<String> = ALWAYS_EXCLUDED
            .iter()
            .map(|g| g.to_string())
            .chain(exclude.iter().cloned())
            .collect();
        let mut builder = GlobSetBuilder::new();
        for pattern in &globs {
            let glob = Glob::new(pattern).map_err(|e| PolicyError::InvalidExclude {
                pattern: pattern.clone(),
                reason: e.kind().to_string(),
            })?;
            builder.add(glob);
        }
        let exclude = builder.build().map_err(|e| PolicyError::InvalidExclude {
            pattern: exclude.join(", "),
            reason: e.to_string(),
        })?;
        Ok(Policy {
            rule,
            globs,
            exclude,
            regexes: Vec::new(),
            exclude_regex: None,
            filter: None,
            allow_downgrade,
        })
    }

    /// Adds a filter: `pattern` is an unanchored regex that a tag must match, and
    /// `extract` an optional template ([`filter`]) whose expansion is ranked in place
    /// of the tag (for semver, read as a version). An empty `pattern` means no
    /// filter, and is an error when `extract` is given.
    pub fn with_filter(self, pattern: &str, extract: Option<&str>) -> Result<Policy, PolicyError> {
        if pattern.is_empty() {
            return match extract.filter(|e| !e.is_empty()) {
                Some(extract) => Err(PolicyError::ExtractWithoutPattern {
                    extract: extract.to_string(),
                }),
                None => Ok(self),
            };
        }
        Ok(Policy {
            filter: Some(Filter::new(pattern, extract)?),
            ..self
        })
    }

    /// Adds exclude regexes (Flux's `exclusionList`): a tag any of them matches,
    /// unanchored, is dropped. May be called again to add more.
    pub fn with_exclude_regex(self, patterns: &[String]) -> Result<Policy, PolicyError> {
        if patterns.is_empty() {
            return Ok(self);
        }
        for pattern in patterns {
            regex::Regex::new(pattern).map_err(|e| PolicyError::InvalidExcludeRegex {
                pattern: pattern.clone(),
                reason: filter::regex_error_reason(&e),
            })?;
        }
        let mut regexes = self.regexes;
        regexes.extend(patterns.iter().cloned());
        let set = RegexSet::new(&regexes).map_err(|e| PolicyError::InvalidExcludeRegex {
            pattern: patterns.join(", "),
            reason: e.to_string(),
        })?;
        Ok(Policy {
            regexes,
            exclude_regex: Some(set),
            ..self
        })
    }

    /// This policy with `versioning`: with [`Versioning::Docker`], a semver range keeps
    /// restricting, but only tags of the current tag's shape (suffix and precision, see
    /// [`docker`]) are candidates, and they are ranked by their numbers; an `update:` policy
    /// already reads tags that way. Other kinds do not read versions: an error.
    pub fn with_versioning(self, versioning: Versioning) -> Result<Policy, PolicyError> {
        if versioning == Versioning::Semver {
            return Ok(self);
        }
        let rule = match self.rule {
            Rule::Semver(range) => Rule::Docker {
                level: docker::Level::Major,
                range: Some(range),
                base: None,
            },
            rule @ Rule::Docker { .. } => rule,
            Rule::Alphabetical(_) => {
                return Err(PolicyError::DockerVersioning {
                    kind: "alphabetical",
                })
            }
            Rule::Numerical(_) => return Err(PolicyError::DockerVersioning { kind: "numerical" }),
            Rule::Digest(_) => return Err(PolicyError::DockerVersioning { kind: "digest" }),
        };
        Ok(Policy { rule, ..self })
    }

    /// The tag a `digest` policy follows, if this is one: its digest is what gets written.
    pub fn followed_tag(&self) -> Option<&str> {
        match &self.rule {
            Rule::Digest(tag) => Some(tag),
            _ => None,
        }
    }

    /// Whether which tags pass depends on the current tag (`update:`, `versioning: docker`):
    /// select with the policy [`Policy::relative_to`] gives.
    pub fn is_relative(&self) -> bool {
        matches!(self.rule, Rule::Docker { .. })
    }

    /// This policy as seen from `current` (the tag in the manifest): an `update:` or
    /// `versioning: docker` policy passes only tags of its shape within its level; any other
    /// policy is itself.
    pub fn relative_to(&self, current: Option<&str>) -> Cow<'_, Policy> {
        match &self.rule {
            Rule::Docker { level, range, .. } => Cow::Owned(Policy {
                rule: Rule::Docker {
                    level: *level,
                    range: range.clone(),
                    base: current.and_then(|c| self.docker_version(c)),
                },
                ..self.clone()
            }),
            _ => Cow::Borrowed(self),
        }
    }

    /// `tag` read as a Docker version: its filter's extracted value when there is a filter.
    fn docker_version(&self, tag: &str) -> Option<docker::Version> {
        match &self.filter {
            Some(f) => docker::Version::parse(&f.apply(tag)?),
            None => docker::Version::parse(tag),
        }
    }

    /// Whether downgrades were allowed when the policy was built.
    pub fn allow_downgrade(&self) -> bool {
        self.allow_downgrade
    }

    /// Whether `tag` is removed by an exclude glob (the policy's or the built-in
    /// ones) or an exclude regex.
    pub fn is_excluded(&self, tag: &str) -> bool {
        self.exclude.is_match(tag) || self.exclude_regex.as_ref().is_some_and(|s| s.is_match(tag))
    }

    /// The tags that pass the policy, best first. Each tag is judged once and the
    /// list sorted once; duplicates are dropped.
    pub fn select(&self, tags: &[String]) -> Selection {
        let candidates: Vec<String> = self
            .evaluate(tags)
            .ranked
            .into_iter()
            .map(|(_, t)| t.to_string())
            .collect();
        Selection {
            latest: candidates.first().cloned(),
            candidates,
        }
    }

    /// One verdict per distinct tag: the candidates first, best first (the order of
    /// [`Policy::select`]), then the dropped tags in list order with the reason.
    pub fn explain(&self, tags: &[String]) -> Vec<Verdict> {
        let Evaluation { ranked, dropped } = self.evaluate(tags);
        let candidates = ranked
            .into_iter()
            .enumerate()
            .map(|(rank, (_, tag))| Verdict {
                tag: tag.to_string(),
                outcome: Outcome::Candidate { rank },
            });
        let dropped = dropped.into_iter().map(|(tag, why)| Verdict {
            tag: tag.to_string(),
            outcome: Outcome::Dropped(self.reason(&why)),
        });
        candidates.chain(dropped).collect()
    }

    /// Whether the tag now in the manifest (`current`; None when it has none) should
    /// move, and to what:
    /// - None when nothing passes, or when the best candidate is `current`;
    /// - [`ChangeReason::CurrentNotAccepted`] when `current` is None or the policy
    ///   cannot rank it (not a version, not a number, not matched by the filter,
    ///   not the followed tag) or excludes it: the best candidate, whatever its rank;
    /// - [`ChangeReason::CurrentNotAccepted`] too for a version outside the range
    ///   (or a pre-release the range does not name) when the best candidate ranks
    ///   above it; one ranking above the best candidate (a manual bump past the
    ///   range) is kept, unless `allow_downgrade`;
    /// - [`ChangeReason::Newer`] when the best candidate ranks strictly above an
    ///   accepted current tag;
    /// - a tie (`v1.2.4` vs `1.2.4`) keeps the current tag, so runs never flip-flop;
    /// - a best candidate ranking below an accepted current tag (no longer listed)
    ///   is taken only with `allow_downgrade`, as [`ChangeReason::Downgrade`].
    ///
    /// Whether `current` is accepted depends on its text only, not on the list.
    pub fn update_from(&self, current: Option<&str>, tags: &[String]) -> Option<Change> {
        let ranked = self.evaluate(tags).ranked;
        let (best_key, best) = ranked.first()?;
        let change = |reason| {
            Some(Change {
                to: best.to_string(),
                reason,
            })
        };
        let Some(current) = current else {
            return change(ChangeReason::CurrentNotAccepted);
        };
        if current == *best {
            return None;
        }
        match self.judge(current) {
            Ok(current_key) => match self.compare(best_key, &current_key) {
                Ordering::Greater => change(ChangeReason::Newer),
                Ordering::Equal => None,
                Ordering::Less if self.allow_downgrade => change(ChangeReason::Downgrade),
                Ordering::Less => None,
            },
            // A version the range does not take still has a rank: replaced when
            // below the best candidate, kept when above it (a manual bump past the
            // range is not undone), unless downgrades are allowed.
            Err(why @ (Rejection::Range(..) | Rejection::DockerRange(_))) => {
                let key = match why {
                    Rejection::Range(_, version) => Key::Version(version),
                    Rejection::DockerRange(version) => Key::Docker(version),
                    _ => unreachable!("matched above"),
                };
                let above = self.compare(best_key, &key).is_gt();
                if above || self.allow_downgrade {
                    change(ChangeReason::CurrentNotAccepted)
                } else {
                    None
                }
            }
            // A tag the policy cannot rank (the filter does not match it, say) is replaced,
            // but never by a lower version unless downgrades are allowed ([`Policy::held`]).
            Err(_) if !self.allow_downgrade && lower_version(best, current) => None,
            Err(_) => change(ChangeReason::CurrentNotAccepted),
        }
    }

    /// Why [`Policy::update_from`] keeps `current` although the policy does not accept it:
    /// its best candidate is a lower version (`10.9` under a filter for `10.6.x-focal`
    /// would become `10.6.12-focal`). `None` when it is not held back for that reason.
    pub fn held(&self, current: Option<&str>, tags: &[String]) -> Option<String> {
        let current = current?;
        if self.allow_downgrade || self.judge(current).is_ok() {
            return None;
        }
        if matches!(
            self.judge(current),
            Err(Rejection::Range(..) | Rejection::DockerRange(_))
        ) {
            return None;
        }
        let ranked = self.evaluate(tags).ranked;
        let (_, best) = ranked.first()?;
        lower_version(best, current).then(|| {
            format!(
                "the policy does not accept {current}, and its best tag {best} is a lower version: \
                 kept (set allow_downgrade: true to move down)"
            )
        })
    }

    /// The one code path behind `select`, `explain` and `update_from`.
    fn evaluate<'t>(&self, tags: &'t [String]) -> Evaluation<'t> {
        let mut seen = HashSet::with_capacity(tags.len());
        let mut ranked = Vec::new();
        let mut dropped = Vec::new();
        for tag in tags {
            if !seen.insert(tag.as_str()) {
                continue;
            }
            match self.judge(tag) {
                Ok(key) => ranked.push((key, tag.as_str())),
                Err(why) => dropped.push((tag.as_str(), why)),
            }
        }
        ranked.sort_unstable_by(|a, b| {
            self.compare(&b.0, &a.0)
                .then_with(|| b.1.len().cmp(&a.1.len()))
                .then_with(|| a.1.cmp(b.1))
        });
        Evaluation { ranked, dropped }
    }

    /// Runs one tag through the steps of the module doc.
    fn judge<'t>(&self, tag: &'t str) -> Result<Key<'t>, Rejection> {
        if self.exclude.is_match(tag) {
            let first = self.exclude.matches(tag).into_iter().min().unwrap_or(0);
            return Err(Rejection::Glob(first));
        }
        if let Some(set) = &self.exclude_regex {
            if let Some(first) = set.matches(tag).iter().next() {
                return Err(Rejection::Regex(first));
            }
        }
        let value = match &self.filter {
            Some(filter) => filter.apply(tag).ok_or(Rejection::FilterMiss)?,
            None => Cow::Borrowed(tag),
        };
        // For the reason of a drop: the value, when a template made it.
        let extracted = |value: &Cow<str>| match value {
            Cow::Owned(v) => Some(v.clone()),
            Cow::Borrowed(_) => None,
        };
        match &self.rule {
            Rule::Semver(range) => {
                let version =
                    parse_tag(&value).ok_or_else(|| Rejection::NotVersion(extracted(&value)))?;
                match range.check(&version) {
                    Ok(()) => Ok(Key::Version(version)),
                    Err(miss) => Err(Rejection::Range(miss, version)),
                }
            }
            Rule::Alphabetical(_) => Ok(Key::Text(value)),
            Rule::Numerical(_) => Number::parse(&value)
                .map(Key::Number)
                .ok_or_else(|| Rejection::NotNumber(extracted(&value))),
            Rule::Digest(followed) => {
                if *value == **followed {
                    Ok(Key::Followed)
                } else {
                    Err(Rejection::NotFollowed(extracted(&value)))
                }
            }
            Rule::Docker { level, range, base } => {
                let base = base.as_ref().ok_or(Rejection::NoBase)?;
                let version = docker::Version::parse(&value)
                    .ok_or_else(|| Rejection::NotVersion(extracted(&value)))?;
                if !base.compatible(&version) {
                    Err(Rejection::Shape)
                } else if !base.within(&version, *level) {
                    Err(Rejection::Level)
                } else if range
                    .as_ref()
                    .is_some_and(|r| r.check(&version.as_semver()).is_err())
                {
                    Err(Rejection::DockerRange(version))
                } else {
                    Ok(Key::Docker(version))
                }
            }
        }
    }

    /// Greater when `a` ranks above `b`.
    fn compare(&self, a: &Key, b: &Key) -> Ordering {
        match (&self.rule, a, b) {
            (Rule::Semver(_), Key::Version(a), Key::Version(b)) => precedence(a, b),
            (Rule::Alphabetical(order), Key::Text(a), Key::Text(b)) => order.rank(&**a, &**b),
            (Rule::Numerical(order), Key::Number(a), Key::Number(b)) => order.rank(a, b),
            (Rule::Docker { .. }, Key::Docker(a), Key::Docker(b)) => a.cmp_numbers(b),
            _ => Ordering::Equal,
        }
    }

    fn reason(&self, why: &Rejection) -> String {
        let from = |value: &Option<String>| match value {
            Some(v) => format!(" (extracted {v:?})"),
            None => String::new(),
        };
        match why {
            Rejection::Glob(i) => format!("excluded by glob {}", self.globs[*i]),
            Rejection::Regex(i) => format!("excluded by regex {}", self.regexes[*i]),
            Rejection::FilterMiss => "filter pattern did not match".to_string(),
            Rejection::NotVersion(value) => format!("not a version{}", from(value)),
            Rejection::Range(Miss::OutsideRange, _) => match &self.rule {
                Rule::Semver(range) => format!("outside range {range}"),
                _ => "outside range".to_string(),
            },
            Rejection::Range(Miss::Prerelease, _) => {
                "a pre-release, and the range names none".to_string()
            }
            Rejection::NotNumber(value) => format!("not a number{}", from(value)),
            Rejection::NotFollowed(value) => match &self.rule {
                Rule::Digest(tag) => format!("not the followed tag {tag}{}", from(value)),
                _ => "not the followed tag".to_string(),
            },
            Rejection::NoBase => "no current version to update from".to_string(),
            Rejection::DockerRange(version) => match &self.rule {
                Rule::Docker {
                    range: Some(range), ..
                } => format!("outside range {range} (read as {})", version.as_semver()),
                _ => "outside range".to_string(),
            },
            Rejection::Shape => match &self.rule {
                Rule::Docker {
                    base: Some(base), ..
                } => format!(
                    "not of the current tag's shape ({} part{}{})",
                    base.numbers.len(),
                    if base.numbers.len() == 1 { "" } else { "s" },
                    if base.suffix.is_empty() {
                        ", no suffix".to_string()
                    } else {
                        format!(", suffix -{}", base.suffix)
                    }
                ),
                _ => "not of the current tag's shape".to_string(),
            },
            Rejection::Level => match &self.rule {
                Rule::Docker { level, .. } => format!("beyond update: {level}"),
                _ => "beyond the update level".to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oci_tag_grammar() {
        for bad in [
            "",
            "zz\ninjected: true",
            "zz\"",
            "zz #c",
            "zz{{x}}",
            "zz y",
            "zz;rm",
            ".zz",
            "-zz",
            "1.2+b",
        ] {
            assert!(!is_oci_tag(bad), "{bad:?}");
        }
        assert!(!is_oci_tag(&"z".repeat(129)));
        assert!(is_oci_tag(&"a".repeat(128)));
        assert!(is_oci_tag("_x.Y-9"));
    }

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn semver(range: &str) -> Policy {
        Policy::new(PolicyKind::Semver(range.into()), &[], false).unwrap()
    }

    #[test]
    fn selects_highest_matching_version() {
        let p = semver("^1.2");
        let s = p.select(&tags(&[
            "1.2.0", "1.10.0", "1.9.3", "2.0.0", "1.1.0", "latest",
        ]));
        assert_eq!(s.candidates, tags(&["1.10.0", "1.9.3", "1.2.0"]));
        assert_eq!(s.latest.as_deref(), Some("1.10.0"));
    }

    #[test]
    fn nothing_passing_is_an_empty_selection() {
        let s = semver(">=5").select(&tags(&["1.0.0", "latest"]));
        assert_eq!(
            s,
            Selection {
                candidates: vec![],
                latest: None
            }
        );
        assert_eq!(semver("*").select(&[]).latest, None);
    }

    #[test]
    fn non_version_tags_are_skipped() {
        let s = semver("*").select(&tags(&[
            "latest",
            "main-abc1234",
            "1.2.3.4",
            "stable",
            "v2",
            "1.0",
        ]));
        assert_eq!(s.candidates, tags(&["v2", "1.0"]));
    }

    #[test]
    fn signature_tags_are_always_excluded() {
        let s = semver("*").select(&tags(&[
            "1.0.0",
            "sha256-0123abcd.sig",
            "sha256-0123abcd.att",
            "sha256-0123abcd.sbom",
            "sha256-0123abcd",
            "1.0.1.sig",
        ]));
        assert_eq!(s.candidates, tags(&["1.0.0"]));
    }

    #[test]
    fn user_exclusions_apply() {
        let p = Policy::new(
            PolicyKind::Semver(">=1.0.0-0".into()),
            &tags(&["*-debug", "1.3.*"]),
            false,
        )
        .unwrap();
        let s = p.select(&tags(&[
            "1.2.0",
            "1.2.1-debug",
            "1.3.0",
            "1.3.1",
            "1.2.1-rc.1",
        ]));
        assert_eq!(s.candidates, tags(&["1.2.1-rc.1", "1.2.0"]));
    }

    #[test]
    fn prereleases_only_when_the_range_names_one() {
        let list = tags(&["1.2.0", "1.3.0-rc.1", "1.2.1-beta"]);
        assert_eq!(semver("^1").select(&list).latest.as_deref(), Some("1.2.0"));
        assert_eq!(
            semver(">=1.0.0-0").select(&list).candidates,
            tags(&["1.3.0-rc.1", "1.2.1-beta", "1.2.0"])
        );
    }

    #[test]
    fn ties_are_ordered_deterministically() {
        let forward = tags(&["1.2.4", "v1.2.4", "1.20", "1.20.0", "1.20.0+b", "1.2.4+a"]);
        let mut backward = forward.clone();
        backward.reverse();
        let want = tags(&["1.20.0+b", "1.20.0", "1.20", "1.2.4+a", "v1.2.4", "1.2.4"]);
        assert_eq!(semver("*").select(&forward).candidates, want);
        assert_eq!(semver("*").select(&backward).candidates, want);
    }

    #[test]
    fn duplicate_tags_appear_once() {
        let s = semver("*").select(&tags(&["1.0.0", "1.0.0", "0.9.0"]));
        assert_eq!(s.candidates, tags(&["1.0.0", "0.9.0"]));
    }

    use ChangeReason::{CurrentNotAccepted, Downgrade, Newer};

    /// update_from as (to, reason).
    fn moved(p: &Policy, current: Option<&str>, list: &[&str]) -> Option<(String, ChangeReason)> {
        p.update_from(current, &tags(list))
            .map(|c| (c.to, c.reason))
    }

    fn to(tag: &str, reason: ChangeReason) -> Option<(String, ChangeReason)> {
        Some((tag.to_string(), reason))
    }

    #[test]
    fn update_moves_to_newer() {
        let p = semver("^1");
        let list = ["1.0.0", "1.1.0", "1.2.0", "2.0.0"];
        assert_eq!(moved(&p, Some("1.0.0"), &list), to("1.2.0", Newer));
        assert_eq!(moved(&p, Some("1.2.0"), &list), None);
    }

    #[test]
    fn update_never_downgrades() {
        let p = semver("^1");
        let list = ["1.0.0", "1.1.0"];
        // 1.5.0 is accepted but no longer listed: kept.
        assert_eq!(moved(&p, Some("1.5.0"), &list), None);
    }

    #[test]
    fn update_replaces_a_current_tag_the_policy_does_not_accept() {
        let p = semver("^1");
        let list = ["1.0.0", "1.1.0"];
        // Outside the range but above every candidate (a manual bump): kept.
        assert_eq!(moved(&p, Some("2.0.0"), &list), None);
        assert_eq!(moved(&p, Some("1.2.0-rc.1"), &list), None);
        // Outside the range and below the best candidate: replaced.
        assert_eq!(
            moved(&p, Some("0.9.0"), &list),
            to("1.1.0", CurrentNotAccepted)
        );
        assert_eq!(
            moved(&p, Some("1.1.0-rc.1"), &list),
            to("1.1.0", CurrentNotAccepted)
        );
        // Excluded by a glob of the policy: replaced by a higher version, never a lower one.
        let p = Policy::new(PolicyKind::Semver("^1".into()), &tags(&["*-debug"]), false).unwrap();
        assert_eq!(
            moved(&p, Some("1.1.0-debug"), &["1.2.0", "1.1.0-debug"]),
            to("1.2.0", CurrentNotAccepted)
        );
        assert_eq!(
            moved(&p, Some("1.1.0-debug"), &["1.0.0", "1.1.0-debug"]),
            None
        );
        // Not matched by the filter.
        let p = semver("*").with_filter("^v", None).unwrap();
        assert_eq!(
            moved(&p, Some("0.9.0"), &["v1.0.0", "1.9.0"]),
            to("v1.0.0", CurrentNotAccepted)
        );
        // Not a version at all: the best candidate, whatever it is.
        assert_eq!(
            moved(&p, Some("latest"), &["v1.0.0"]),
            to("v1.0.0", CurrentNotAccepted)
        );
    }

    /// Found on public repos: `mariadb:10.9` under a filter for `10.6.x-focal` became
    /// `10.6.12-focal`, silently. A lower version replaces a tag the policy does not accept
    /// only with `allow_downgrade`; otherwise it is kept, and [`Policy::held`] says why.
    #[test]
    fn a_filter_that_excludes_the_current_tag_never_moves_it_down() {
        let list = tags(&["10.6.11-focal", "10.6.12-focal", "10.9", "11.0"]);
        let focal = r"^(?P<v>10\.6\.\d+)-focal$";
        let p = semver("*").with_filter(focal, Some("$v")).unwrap();
        assert_eq!(p.update_from(Some("10.9"), &list), None);
        let why = p.held(Some("10.9"), &list).expect("a reason");
        assert!(
            why.contains("10.6.12-focal") && why.contains("allow_downgrade"),
            "{why}"
        );
        // Below the filter's versions it still moves up, and nothing is held.
        assert_eq!(
            p.update_from(Some("10.5"), &list).map(|c| c.to),
            Some("10.6.12-focal".to_string())
        );
        assert_eq!(p.held(Some("10.5"), &list), None);
        assert_eq!(p.held(Some("10.6.11-focal"), &list), None);
        // With the opt-in, it moves down.
        let p = Policy::new(PolicyKind::Semver("*".into()), &[], true)
            .unwrap()
            .with_filter(focal, Some("$v"))
            .unwrap();
        assert_eq!(
            p.update_from(Some("10.9"), &list).map(|c| (c.to, c.reason)),
            Some(("10.6.12-focal".to_string(), CurrentNotAccepted))
        );
        assert_eq!(p.held(Some("10.9"), &list), None);
    }

    #[test]
    fn update_downgrades_when_allowed() {
        let p = Policy::new(PolicyKind::Semver("~1.1".into()), &[], true).unwrap();
        let list = ["1.0.0", "1.1.0", "1.1.3", "1.2.0"];
        assert!(p.allow_downgrade());
        assert_eq!(
            moved(&p, Some("1.2.0"), &list),
            to("1.1.3", CurrentNotAccepted)
        );
        assert_eq!(
            moved(&p, Some("1.0.0"), &list),
            to("1.1.3", CurrentNotAccepted)
        );
        assert_eq!(moved(&p, Some("1.1.3"), &list), None);
        assert_eq!(moved(&p, Some("1.1.1"), &list), to("1.1.3", Newer));
        // Accepted, no longer listed, above every candidate.
        assert_eq!(moved(&p, Some("1.1.9"), &list), to("1.1.3", Downgrade));
        // A tie still keeps the current spelling.
        assert_eq!(moved(&p, Some("1.1.3"), &["v1.1.3"]), None);
    }

    #[test]
    fn update_keeps_current_on_a_tie() {
        let p = semver("*");
        assert_eq!(moved(&p, Some("1.2.4"), &["v1.2.4", "1.2.4"]), None);
        assert_eq!(moved(&p, Some("v1.2.4"), &["1.2.4"]), None);
        assert_eq!(moved(&p, Some("1.20"), &["1.20.0", "1.20"]), None);
        assert_eq!(moved(&p, Some("1.2.3+a"), &["1.2.3+b"]), None);
        // A newer version in another spelling is still taken.
        assert_eq!(
            moved(&p, Some("1.2.4"), &["v1.2.5", "1.2.4"]),
            to("v1.2.5", Newer)
        );
    }

    #[test]
    fn update_from_non_version_or_absent_current() {
        let p = semver(">=1");
        let list = ["1.0.0", "1.4.0", "latest"];
        assert_eq!(
            moved(&p, Some("latest"), &list),
            to("1.4.0", CurrentNotAccepted)
        );
        assert_eq!(
            moved(&p, Some("main-abc"), &list),
            to("1.4.0", CurrentNotAccepted)
        );
        assert_eq!(moved(&p, None, &list), to("1.4.0", CurrentNotAccepted));
    }

    #[test]
    fn update_with_nothing_passing_is_none() {
        let p = semver(">=9");
        assert_eq!(moved(&p, Some("1.0.0"), &["1.0.0", "2.0.0"]), None);
        assert_eq!(moved(&p, None, &["latest"]), None);
    }

    #[test]
    fn digest_policy_follows_one_tag() {
        let p = Policy::new(PolicyKind::Digest("stable".into()), &[], false).unwrap();
        let list = ["1.0.0", "stable", "latest"];
        assert_eq!(p.select(&tags(&list)).candidates, tags(&["stable"]));
        assert_eq!(moved(&p, Some("stable"), &list), None);
        assert_eq!(
            moved(&p, Some("1.0.0"), &list),
            to("stable", CurrentNotAccepted)
        );
        assert_eq!(moved(&p, None, &list), to("stable", CurrentNotAccepted));
        assert_eq!(moved(&p, Some("1.0.0"), &["1.0.0", "latest"]), None);
    }

    #[test]
    fn alphabetical_and_numerical_orders() {
        let list = tags(&["b", "a", "10", "9", "1.5", "c-1", "-2"]);
        let pick = |kind| {
            Policy::new(kind, &[], false)
                .unwrap()
                .select(&list)
                .candidates
        };
        assert_eq!(
            pick(PolicyKind::Alphabetical(Order::Asc)),
            tags(&["c-1", "b", "a", "9", "10", "1.5", "-2"])
        );
        assert_eq!(
            pick(PolicyKind::Alphabetical(Order::Desc)),
            tags(&["-2", "1.5", "10", "9", "a", "b", "c-1"])
        );
        assert_eq!(
            pick(PolicyKind::Numerical(Order::Asc)),
            tags(&["10", "9", "1.5", "-2"])
        );
        assert_eq!(
            pick(PolicyKind::Numerical(Order::Desc)),
            tags(&["-2", "1.5", "9", "10"])
        );
    }

    #[test]
    fn explain_gives_ranks_then_reasons() {
        let p = Policy::new(
            PolicyKind::Semver("^1.2".into()),
            &tags(&["*-debug"]),
            false,
        )
        .unwrap()
        .with_exclude_regex(&tags(&["^1\\.4"]))
        .unwrap();
        let list = tags(&[
            "1.2.0",
            "latest",
            "1.3.0",
            "2.0.0",
            "1.3.1-rc.1",
            "1.2.1-debug",
            "x.sig",
            "1.4.0",
            "1.2.0",
        ]);
        let got: Vec<(String, Outcome)> = p
            .explain(&list)
            .into_iter()
            .map(|v| (v.tag, v.outcome))
            .collect();
        let drop = |t: &str, why: &str| (t.to_string(), Outcome::Dropped(why.to_string()));
        let cand = |t: &str, rank| (t.to_string(), Outcome::Candidate { rank });
        assert_eq!(
            got,
            vec![
                cand("1.3.0", 0),
                cand("1.2.0", 1),
                drop("latest", "not a version"),
                drop("2.0.0", "outside range ^1.2"),
                drop("1.3.1-rc.1", "a pre-release, and the range names none"),
                drop("1.2.1-debug", "excluded by glob *-debug"),
                drop("x.sig", "excluded by glob *.sig"),
                drop("1.4.0", "excluded by regex ^1\\.4"),
            ]
        );
        let p = Policy::new(PolicyKind::Numerical(Order::Asc), &[], false)
            .unwrap()
            .with_filter("^main-(?P<ts>[^-]+)-", Some("$ts"))
            .unwrap();
        let got = p.explain(&tags(&["main-x1-abc", "dev-1-abc", "main-7-abc"]));
        assert_eq!(got[0].outcome, Outcome::Candidate { rank: 0 });
        assert_eq!(
            got[1].outcome,
            Outcome::Dropped("not a number (extracted \"x1\")".into())
        );
        assert_eq!(
            got[2].outcome,
            Outcome::Dropped("filter pattern did not match".into())
        );
        let p = Policy::new(PolicyKind::Digest("latest".into()), &[], false).unwrap();
        assert_eq!(
            p.explain(&tags(&["stable"]))[0].outcome,
            Outcome::Dropped("not the followed tag latest".into())
        );
    }

    #[test]
    fn filter_builder_rules() {
        let p = semver("*");
        assert!(p.clone().with_filter("", None).is_ok());
        let e = p
            .clone()
            .with_filter("", Some("$1"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "extract template \"$1\" needs a filter pattern to extract from"
        );
        let e = p.clone().with_filter("a(", None).unwrap_err().to_string();
        assert!(e.starts_with("invalid filter pattern \"a(\": "), "{e}");
        let e = p
            .with_exclude_regex(&tags(&["ok", "[z-a]"]))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("invalid exclude regex \"[z-a]\": "), "{e}");
        let e = Policy::new(PolicyKind::Digest("a b".into()), &[], false).unwrap_err();
        assert!(
            e.to_string().starts_with("invalid digest tag \"a b\": "),
            "{e}"
        );
    }

    #[test]
    fn exclude_regexes_accumulate() {
        let p = semver("*")
            .with_exclude_regex(&tags(&["^1\\."]))
            .unwrap()
            .with_exclude_regex(&tags(&["^2\\."]))
            .unwrap()
            .with_exclude_regex(&[])
            .unwrap();
        assert!(p.is_excluded("1.0.0") && p.is_excluded("2.0.0") && p.is_excluded("a.sig"));
        let s = p.select(&tags(&["1.0.0", "2.0.0", "3.0.0"]));
        assert_eq!(s.candidates, tags(&["3.0.0"]));
    }

    #[test]
    fn errors_quote_the_bad_input() {
        let e = Policy::new(PolicyKind::Semver("latest".into()), &[], false).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid semver range \"latest\": "),
            "{e}"
        );
        let e = Policy::new(PolicyKind::Semver("*".into()), &tags(&["a[b"]), false).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid exclude pattern \"a[b\": "),
            "{e}"
        );
    }

    #[test]
    fn select_handles_tens_of_thousands_of_tags() {
        let mut list = Vec::new();
        for major in 0..20 {
            for minor in 0..50 {
                for patch in 0..30 {
                    list.push(format!("v{major}.{minor}.{patch}"));
                }
            }
        }
        list.extend((0..10_000).map(|i| format!("main-{i:07x}")));
        let start = std::time::Instant::now();
        let s = semver(">=3 <19").select(&list);
        assert_eq!(s.latest.as_deref(), Some("v18.49.29"));
        assert_eq!(s.candidates.len(), 16 * 50 * 30);
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn filtered_numerical_and_explain_handle_tens_of_thousands_of_tags() {
        let mut list: Vec<String> = (0..40_000)
            .map(|i| format!("main-{}-{:07x}", 1_700_000_000 + i * 7 % 40_000, i))
            .collect();
        list.extend((0..5_000).map(|i| format!("pr-{i}")));
        let start = std::time::Instant::now();
        let p = Policy::new(PolicyKind::Numerical(Order::Asc), &[], false)
            .unwrap()
            .with_filter(r"^main-(?P<ts>\d+)-[0-9a-f]{7}$", Some("$ts"))
            .unwrap();
        let s = p.select(&list);
        assert_eq!(s.candidates.len(), 40_000);
        assert!(s.latest.unwrap().starts_with("main-1700039999-"));
        let verdicts = p.explain(&list);
        assert_eq!(verdicts.len(), 45_000);
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }
}
