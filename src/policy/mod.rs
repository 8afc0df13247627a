//! Which tag wins: a [`Policy`] turns a repository's tag list into the candidates it
//! allows, best first ([`Policy::select`]), and decides whether the tag now in a
//! manifest should move ([`Policy::update_from`]) — never a downgrade unless asked,
//! and never a flip between two spellings of one version.
//!
//! Signature and attestation tags (`*.sig`, `*.att`, `*.sbom`, `sha256-*`) are always
//! excluded, on top of the policy's own exclude globs.

pub mod semver;

use std::cmp::Ordering;

use ::semver::Version;
use globset::{Glob, GlobSet, GlobSetBuilder};

use self::semver::{parse_tag, precedence, Constraint};

/// Tags that are never candidates: cosign signatures, attestations and SBOMs.
pub const ALWAYS_EXCLUDED: [&str; 4] = ["*.sig", "*.att", "*.sbom", "sha256-*"];

/// A policy that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A semver range that does not parse.
    #[error("invalid semver range {range:?}: {reason}")]
    InvalidRange { range: String, reason: String },
    /// An exclude glob that does not compile.
    #[error("invalid exclude pattern {pattern:?}: {reason}")]
    InvalidExclude { pattern: String, reason: String },
}

/// How tags are ordered and which are allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyKind {
    /// Tags read as versions ([`semver::parse_tag`]) that satisfy this range; the
    /// highest version wins.
    Semver(String),
}

/// The compiled form of a [`PolicyKind`].
#[derive(Debug, Clone)]
enum Rule {
    Semver(Constraint),
}

/// A compiled policy: its rule, exclusions and downgrade setting.
#[derive(Debug, Clone)]
pub struct Policy {
    rule: Rule,
    exclude: GlobSet,
    allow_downgrade: bool,
}

/// The outcome of [`Policy::select`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Tags passing the policy (not excluded, readable as a version, matching the
    /// range), best first.
    pub candidates: Vec<String>,
    /// The best candidate, or None when nothing passes.
    pub latest: Option<String>,
}

impl Policy {
    /// exclude: glob patterns (globset); "*.sig", "*.att", "*.sbom", "sha256-*" are
    /// always excluded. Errors for a bad range or bad glob quote them.
    pub fn new(
        kind: PolicyKind,
        exclude: &[String],
        allow_downgrade: bool,
    ) -> Result<Policy, PolicyError> {
        let rule = match kind {
            PolicyKind::Semver(range) => Rule::Semver(Constraint::parse(&range)?),
        };
        let mut builder = GlobSetBuilder::new();
        let patterns = ALWAYS_EXCLUDED
            .iter()
            .copied()
            .chain(exclude.iter().map(String::as_str));
        for pattern in patterns {
            let glob = Glob::new(pattern).map_err(|e| PolicyError::InvalidExclude {
                pattern: pattern.to_string(),
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
            exclude,
            allow_downgrade,
        })
    }

    /// Whether downgrades were allowed when the policy was built.
    pub fn allow_downgrade(&self) -> bool {
        self.allow_downgrade
    }

    /// Whether `tag` is removed by an exclude glob (the policy's or the built-in ones).
    pub fn is_excluded(&self, tag: &str) -> bool {
        self.exclude.is_match(tag)
    }

    /// The tags that pass the policy, best first. Each tag is parsed once and the
    /// list sorted once; duplicates are dropped.
    pub fn select(&self, tags: &[String]) -> Selection {
        let ranked = self.rank(tags);
        let candidates: Vec<String> = ranked.into_iter().map(|(_, t)| t.to_string()).collect();
        Selection {
            latest: candidates.first().cloned(),
            candidates,
        }
    }

    /// The tag to move to from `current` (the tag now in the manifest, if any), or
    /// None when no change:
    /// None when nothing passes; None when the best candidate is not strictly newer
    /// than current (never a downgrade, unless allow_downgrade, where any best of a
    /// different version is taken).
    /// Ties: two tags reading as the same version (v1.2.4 vs 1.2.4, 1.20 vs 1.20.0) —
    /// the current tag wins a tie so runs never flip-flop.
    /// A current tag that is not a version (e.g. "latest") or absent: move to the
    /// best candidate.
    pub fn update_from(&self, current: Option<&str>, tags: &[String]) -> Option<String> {
        let ranked = self.rank(tags);
        let (best_version, best) = ranked.into_iter().next()?;
        let Some(current) = current else {
            return Some(best.to_string());
        };
        if current == best {
            return None;
        }
        let Some(current_version) = self.read(current) else {
            return Some(best.to_string());
        };
        match precedence(&best_version, &current_version) {
            Ordering::Greater => Some(best.to_string()),
            Ordering::Equal => None,
            Ordering::Less if self.allow_downgrade => Some(best.to_string()),
            Ordering::Less => None,
        }
    }

    /// Reads a tag the way the rule orders it.
    fn read(&self, tag: &str) -> Option<Version> {
        match &self.rule {
            Rule::Semver(_) => parse_tag(tag),
        }
    }

    /// Passing tags with their versions, best first, without duplicates.
    fn rank<'a>(&self, tags: &'a [String]) -> Vec<(Version, &'a str)> {
        let mut ranked: Vec<(Version, &str)> = match &self.rule {
            Rule::Semver(range) => tags
                .iter()
                .filter_map(|tag| {
                    let version = parse_tag(tag)?;
                    (range.matches(&version) && !self.is_excluded(tag))
                        .then_some((version, tag.as_str()))
                })
                .collect(),
        };
        ranked.sort_unstable_by(better_first);
        ranked.dedup_by(|a, b| a.1 == b.1);
        ranked
    }
}

/// The ranking: higher version first (build metadata ignored); between spellings of
/// one version the longer, more explicit one (`1.20.0` before `1.20`, `v1.2.4` before
/// `1.2.4`), then byte order — so the order never depends on the input order.
fn better_first(a: &(Version, &str), b: &(Version, &str)) -> Ordering {
    precedence(&b.0, &a.0)
        .then_with(|| b.1.len().cmp(&a.1.len()))
        .then_with(|| a.1.cmp(b.1))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn update_moves_to_newer() {
        let p = semver("^1");
        let list = tags(&["1.0.0", "1.1.0", "1.2.0", "2.0.0"]);
        assert_eq!(
            p.update_from(Some("1.0.0"), &list).as_deref(),
            Some("1.2.0")
        );
        assert_eq!(p.update_from(Some("1.2.0"), &list), None);
    }

    #[test]
    fn update_never_downgrades() {
        let p = semver("^1");
        let list = tags(&["1.0.0", "1.1.0"]);
        assert_eq!(p.update_from(Some("1.5.0"), &list), None);
        // The current tag may be outside the range (a manual bump): still no downgrade.
        assert_eq!(p.update_from(Some("2.0.0"), &list), None);
        assert_eq!(p.update_from(Some("1.2.0-rc.1"), &list), None);
    }

    #[test]
    fn update_downgrades_when_allowed() {
        let p = Policy::new(PolicyKind::Semver("~1.1".into()), &[], true).unwrap();
        let list = tags(&["1.0.0", "1.1.0", "1.1.3", "1.2.0"]);
        assert!(p.allow_downgrade());
        assert_eq!(
            p.update_from(Some("1.2.0"), &list).as_deref(),
            Some("1.1.3")
        );
        assert_eq!(
            p.update_from(Some("1.0.0"), &list).as_deref(),
            Some("1.1.3")
        );
        assert_eq!(p.update_from(Some("1.1.3"), &list), None);
        // A tie still keeps the current spelling.
        assert_eq!(p.update_from(Some("1.1.3"), &tags(&["v1.1.3"])), None);
    }

    #[test]
    fn update_keeps_current_on_a_tie() {
        let p = semver("*");
        assert_eq!(
            p.update_from(Some("1.2.4"), &tags(&["v1.2.4", "1.2.4"])),
            None
        );
        assert_eq!(p.update_from(Some("v1.2.4"), &tags(&["1.2.4"])), None);
        assert_eq!(
            p.update_from(Some("1.20"), &tags(&["1.20.0", "1.20"])),
            None
        );
        assert_eq!(p.update_from(Some("1.2.3+a"), &tags(&["1.2.3+b"])), None);
        // A newer version in another spelling is still taken.
        assert_eq!(
            p.update_from(Some("1.2.4"), &tags(&["v1.2.5", "1.2.4"]))
                .as_deref(),
            Some("v1.2.5")
        );
    }

    #[test]
    fn update_from_non_version_or_absent_current() {
        let p = semver(">=1");
        let list = tags(&["1.0.0", "1.4.0", "latest"]);
        assert_eq!(
            p.update_from(Some("latest"), &list).as_deref(),
            Some("1.4.0")
        );
        assert_eq!(
            p.update_from(Some("main-abc"), &list).as_deref(),
            Some("1.4.0")
        );
        assert_eq!(p.update_from(None, &list).as_deref(), Some("1.4.0"));
    }

    #[test]
    fn update_with_nothing_passing_is_none() {
        let p = semver(">=9");
        assert_eq!(
            p.update_from(Some("1.0.0"), &tags(&["1.0.0", "2.0.0"])),
            None
        );
        assert_eq!(p.update_from(None, &tags(&["latest"])), None);
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
}
