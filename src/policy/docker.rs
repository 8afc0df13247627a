//! Docker tag versioning, after Renovate's `docker` versioning: a tag is a version when it is
//! numbers separated by dots (`1`, `1.25`, `1.25.3`), optionally after a `v`, optionally
//! followed by `-` and a suffix (`1.25.3-alpine`, `18-bookworm-slim`). The suffix is a
//! compatibility mark, not a pre-release: `1.25.3-alpine` only ever moves to another
//! `-alpine` tag. The number of parts is the tag's precision, and is kept too: `1.25` moves
//! to `1.26`, never to `1.26.1`. Tags of one [`Shape`] (prefix, precision, suffix) compare by
//! their numbers. Anything else (`latest`, `main`, a commit sha, `1.2.3rc1`) is not a version.
//!
//! [`newest`] picks, among a tag list, the newest tag of the current tag's shape within a
//! [`Level`]: the current minor (`patch`), the current major (`minor`), or any (`major`). It
//! is what the `outdated` report and the `update:` policy kind share; `versioning: docker`
//! ([`super::Versioning`]) applies the same shape rule under a semver range, which judges
//! [`Version::as_semver`].

use std::cmp::Ordering;
use std::fmt;

/// A tag read as a Docker version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// `v` or nothing.
    pub prefix: String,
    /// The numbers, as many as the tag has parts.
    pub numbers: Vec<u64>,
    /// The text after the first `-`, without it; empty when there is none.
    pub suffix: String,
}

/// What two tags must share to be compared: prefix, precision and suffix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape<'a> {
    pub prefix: &'a str,
    pub precision: usize,
    pub suffix: &'a str,
}

/// How far an update may go from the current version (Keel's vocabulary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Stay in the current minor: only the third and later parts change.
    Patch,
    /// Stay in the current major.
    Minor,
    /// Any newer version.
    Major,
}

impl std::str::FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Level, String> {
        match s {
            "patch" => Ok(Level::Patch),
            "minor" => Ok(Level::Minor),
            "major" => Ok(Level::Major),
            _ => Err(format!(
                "invalid update level {s:?}: expected \"patch\", \"minor\" or \"major\""
            )),
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Patch => "patch",
            Level::Minor => "minor",
            Level::Major => "major",
        })
    }
}

impl Version {
    /// `tag` read as a Docker version, or None when it is not one.
    pub fn parse(tag: &str) -> Option<Version> {
        let (prefix, rest) = match tag.strip_prefix('v') {
            Some(rest) => ("v", rest),
            None => ("", tag),
        };
        let (release, suffix) = match rest.split_once('-') {
            Some((r, s)) if !s.is_empty() => (r, s),
            Some(_) => return None,
            None => (rest, ""),
        };
        if release.is_empty() {
            return None;
        }
        let numbers: Option<Vec<u64>> = release
            .split('.')
            .map(|p| {
                if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                    None
                } else {
                    p.parse().ok()
                }
            })
            .collect();
        let numbers = numbers?;
        // A commit sha that happens to be all digits is still a number; one with letters
        // never reaches here (letters are not digits). A date-like run of many digits is a
        // single-part version, as in Renovate.
        Some(Version {
            prefix: prefix.to_string(),
            numbers,
            suffix: suffix.to_string(),
        })
    }

    /// Its prefix, precision and suffix.
    pub fn shape(&self) -> Shape<'_> {
        Shape {
            prefix: &self.prefix,
            precision: self.numbers.len(),
            suffix: &self.suffix,
        }
    }

    /// Whether `other` has this version's shape (and so can replace it).
    pub fn compatible(&self, other: &Version) -> bool {
        self.shape() == other.shape()
    }

    /// Whether `other` stays within `level` of this version: the same major for `minor`, the
    /// same major and minor for `patch`. A version with fewer parts than the level fixes
    /// cannot move at all at that level (`18` under `minor`, `1.25` under `patch`).
    pub fn within(&self, other: &Version, level: Level) -> bool {
        let fixed = match level {
            Level::Major => 0,
            Level::Minor => 1,
            Level::Patch => 2,
        };
        let n = fixed.min(self.numbers.len());
        self.numbers[..n] == other.numbers[..n.min(other.numbers.len())]
    }

    /// The numbers read as a semantic version, for a semver range to judge: missing parts are
    /// 0 (`1.25` is 1.25.0, `18` is 18.0.0), parts after the third are left out; the suffix is
    /// a variant, not a pre-release, so it is left out too.
    pub fn as_semver(&self) -> ::semver::Version {
        let part = |i: usize| self.numbers.get(i).copied().unwrap_or(0);
        ::semver::Version::new(part(0), part(1), part(2))
    }

    /// Compares the numbers, part by part (for versions of one shape).
    pub fn cmp_numbers(&self, other: &Version) -> Ordering {
        self.numbers.cmp(&other.numbers)
    }
}

/// Of `tags`, the newest of `current`'s shape that stays within `level` of it and is newer
/// than it; None when there is none, or when `current` is not a version. Two spellings of one
/// version (`1.025` and `1.25`) rank equal: the longer, then the smaller in byte order, wins,
/// so the result never depends on the registry's order.
pub fn newest<'t>(current: &str, tags: &'t [String], level: Level) -> Option<&'t str> {
    let base = Version::parse(current)?;
    let mut best: Option<(Version, &str)> = None;
    for tag in tags {
        let Some(v) = Version::parse(tag) else {
            continue;
        };
        if !base.compatible(&v) || !base.within(&v, level) || v.cmp_numbers(&base).is_le() {
            continue;
        }
        let better = match &best {
            None => true,
            Some((b, bt)) => v
                .cmp_numbers(b)
                .then_with(|| tag.len().cmp(&bt.len()))
                .then_with(|| bt.as_bytes().cmp(tag.as_bytes()))
                .is_gt(),
        };
        if better {
            best = Some((v, tag));
        }
    }
    best.map(|(_, t)| t)
}

/// What the `outdated` report says of one tag: the newest tag in its major (when newer), and
/// the newest tag of a newer major (when there is one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Newer {
    pub minor: Option<String>,
    pub major: Option<String>,
}

/// The newer tags of `current` in `tags` (its shape kept), or None when there is none or
/// `current` is not a version.
pub fn newer(current: &str, tags: &[String]) -> Option<Newer> {
    let minor = newest(current, tags, Level::Minor).map(str::to_string);
    let major = newest(current, tags, Level::Major)
        .filter(|m| Some(*m) != minor.as_deref())
        .map(str::to_string);
    (minor.is_some() || major.is_some()).then_some(Newer { minor, major })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn tags_read_as_versions() {
        // (tag, prefix, numbers, suffix); None: not a version.
        type Parsed<'a> = Option<(&'a str, &'a [u64], &'a str)>;
        let cases: &[(&str, Parsed)] = &[
            ("1", Some(("", &[1], ""))),
            ("1.25", Some(("", &[1, 25], ""))),
            ("1.25.3", Some(("", &[1, 25, 3], ""))),
            ("1.25.3-alpine", Some(("", &[1, 25, 3], "alpine"))),
            ("18-bookworm-slim", Some(("", &[18], "bookworm-slim"))),
            ("v2.1.0", Some(("v", &[2, 1, 0], ""))),
            ("20231201", Some(("", &[20231201], ""))),
            ("1.2.3.4", Some(("", &[1, 2, 3, 4], ""))),
            ("1.2.3-rc1", Some(("", &[1, 2, 3], "rc1"))),
            ("latest", None),
            ("main", None),
            ("stable-alpine", None),
            ("8a7b3c1", None),
            ("0a1b2c3d4e5f60718293a4b5c6d7e8f901234567", None),
            ("1.2.3rc1", None),
            ("1..2", None),
            ("1.2.", None),
            ("1.2-", None),
            ("-1.2", None),
            ("v", None),
            ("V1.2", None),
        ];
        for (tag, want) in cases {
            let got = Version::parse(tag);
            let got = got
                .as_ref()
                .map(|v| (v.prefix.as_str(), v.numbers.as_slice(), v.suffix.as_str()));
            assert_eq!(got, *want, "{tag}");
        }
    }

    #[test]
    fn newest_keeps_suffix_and_precision_within_the_level() {
        let tags = list(
            "1.25 1.25.3 1.25.4 1.26 1.26.1 1.27 2.0 2.0.1 \
             1.25.3-alpine 1.25.5-alpine 1.26.0-alpine 2.1.0-alpine 1.26.0-bookworm \
             v1.0.0 v1.0.1 v1.2.0 v2.0.0 18 19 20 18-alpine 22-alpine latest main \
             3.9.1 3.10.0 3.9.10",
        );
        // (current, level, newest); None: nothing newer of that shape within the level.
        let cases: &[(&str, Level, Option<&str>)] = &[
            ("1.25", Level::Patch, None),
            ("1.25", Level::Minor, Some("1.27")),
            ("1.25", Level::Major, Some("2.0")),
            ("1.25.3", Level::Patch, Some("1.25.4")),
            ("1.25.3", Level::Minor, Some("1.26.1")),
            ("1.25.3", Level::Major, Some("3.10.0")),
            ("2.0.1", Level::Minor, None),
            ("1.25.3-alpine", Level::Patch, Some("1.25.5-alpine")),
            ("1.25.3-alpine", Level::Minor, Some("1.26.0-alpine")),
            ("1.25.3-alpine", Level::Major, Some("2.1.0-alpine")),
            ("1.26.0-bookworm", Level::Major, None),
            ("v1.0.0", Level::Patch, Some("v1.0.1")),
            ("v1.0.0", Level::Minor, Some("v1.2.0")),
            ("v1.0.0", Level::Major, Some("v2.0.0")),
            ("18", Level::Minor, None),
            ("18", Level::Major, Some("20")),
            ("18-alpine", Level::Major, Some("22-alpine")),
            // Numbers compare as numbers, not text.
            ("3.9.1", Level::Minor, Some("3.10.0")),
            ("3.9.1", Level::Patch, Some("3.9.10")),
            // Current or above: nothing newer.
            ("3.10.0", Level::Major, None),
            ("9.9", Level::Major, None),
            // Not versions: never compared.
            ("latest", Level::Major, None),
            ("main", Level::Major, None),
            ("8a7b3c1", Level::Major, None),
        ];
        for (current, level, want) in cases {
            assert_eq!(
                newest(current, &tags, *level),
                *want,
                "{current} under {level}"
            );
        }
    }

    #[test]
    fn two_spellings_of_one_version_pick_the_same_tag_in_any_order() {
        let a = list("1.025 1.25 1.0");
        let mut b = a.clone();
        b.reverse();
        assert_eq!(newest("1.0", &a, Level::Major), Some("1.025"));
        assert_eq!(newest("1.0", &b, Level::Major), Some("1.025"));
    }

    #[test]
    fn newer_reports_the_current_major_and_a_newer_one_apart() {
        let tags = list("1.25.3 1.26.1 2.0.0 2.1.0");
        assert_eq!(
            newer("1.25.3", &tags),
            Some(Newer {
                minor: Some("1.26.1".into()),
                major: Some("2.1.0".into())
            })
        );
        assert_eq!(
            newer("2.0.0", &tags),
            Some(Newer {
                minor: Some("2.1.0".into()),
                major: None
            })
        );
        assert_eq!(
            newer("18", &list("18 19")),
            Some(Newer {
                minor: None,
                major: Some("19".into())
            })
        );
        assert_eq!(newer("2.1.0", &tags), None);
        assert_eq!(newer("latest", &tags), None);
    }

    #[test]
    fn levels_parse_and_name_the_bad_word() {
        assert_eq!("minor".parse::<Level>(), Ok(Level::Minor));
        let e = "minro".parse::<Level>().unwrap_err();
        assert!(e.contains("\"minro\"") && e.contains("patch"), "{e}");
    }

    #[test]
    fn the_update_policy_applies_the_rule_from_the_current_tag() {
        use crate::policy::{ChangeReason, Policy, PolicyKind};
        let tags = list("1.25 1.25.3 1.25.4 1.26 1.26.1 2.0.1 1.25.5-alpine 1.26.0-alpine latest");
        let policy = |level| Policy::new(PolicyKind::Update(level), &[], false).unwrap();
        // (level, current, move to); None: stays.
        let cases: &[(Level, &str, Option<&str>)] = &[
            (Level::Patch, "1.25.3", Some("1.25.4")),
            (Level::Minor, "1.25.3", Some("1.26.1")),
            (Level::Major, "1.25.3", Some("2.0.1")),
            (Level::Minor, "1.25", Some("1.26")),
            (Level::Patch, "1.25", None),
            (Level::Minor, "1.25.3-alpine", Some("1.26.0-alpine")),
            (Level::Major, "latest", None),
            // Not listed any more, and above every candidate: never a downgrade.
            (Level::Minor, "1.27.0", None),
        ];
        for (level, current, want) in cases {
            let p = policy(*level);
            assert!(p.is_relative());
            let seen = p.relative_to(Some(current));
            let best = seen.select(&tags).latest;
            let change = seen.update_from(Some(current), &tags);
            assert_eq!(
                change.as_ref().map(|c| c.to.as_str()),
                *want,
                "{current} under update: {level} (best {best:?})"
            );
            if let Some(c) = change {
                assert_eq!(c.reason, ChangeReason::Newer);
            }
        }
        // Without a current tag nothing passes, and the reasons say why.
        let p = policy(Level::Minor);
        assert_eq!(p.relative_to(None).select(&tags).latest, None);
        let why = p.relative_to(Some("1.25.3")).explain(&tags);
        let of = |t: &str| {
            why.iter()
                .find(|v| v.tag == t)
                .map(|v| format!("{:?}", v.outcome))
                .unwrap()
        };
        assert!(
            of("2.0.1").contains("beyond update: minor"),
            "{}",
            of("2.0.1")
        );
        assert!(of("1.26").contains("shape"), "{}", of("1.26"));
        assert!(of("latest").contains("not a version"), "{}", of("latest"));
    }
}

#[cfg(test)]
mod versioning_tests {
    use super::*;
    use crate::policy::{ChangeReason, Policy, PolicyError, PolicyKind, Versioning};

    fn list(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    /// A `semver` policy (range `range`, `*` when None) with `versioning: docker`.
    fn docker(range: Option<&str>) -> Policy {
        Policy::new(PolicyKind::Semver(range.unwrap_or("*").into()), &[], false)
            .unwrap()
            .with_versioning(Versioning::Docker)
            .unwrap()
    }

    #[test]
    fn docker_versioning_keeps_suffix_and_precision_and_the_range_restricts() {
        let tags = list(
            "1.25.0 1.25.3 1.26 1.26.1 1.27 1.27.2 2.0 2.0.1 \
             1.25.0-alpine 1.25.5-alpine 1.26.0-alpine 2.1.0-alpine 1.26.0-bookworm \
             v1.4.2 v1.4.3 v1.5.0 v2.1.0 1.9.9 1 2 3 latest stable 3.1.0rc1 0a1b2c3",
        );
        // (current, range, move to); None: stays.
        let cases: &[(&str, Option<&str>, Option<&str>)] = &[
            // The suffix is kept: only -alpine tags, and none without a suffix.
            ("1.25.0-alpine", None, Some("2.1.0-alpine")),
            ("1.25.0-alpine", Some("^1"), Some("1.26.0-alpine")),
            ("1.26.0-bookworm", None, None),
            // Precision is kept: 1.25 moves to 1.27 (two parts), never 1.27.2.
            ("1.25", None, Some("2.0")),
            ("1.25", Some("^1"), Some("1.27")),
            ("1.25", Some("~1.25"), None),
            ("1", None, Some("3")),
            ("1", Some("<3"), Some("2")),
            ("1.25.3", Some("^1"), Some("1.27.2")),
            ("1.25.3", None, Some("2.0.1")),
            // A `v` prefix is kept (and required).
            ("v1.4.2", None, Some("v2.1.0")),
            ("v1.4.2", Some("~1.4"), Some("v1.4.3")),
            // Not versions: never moved, never chosen.
            ("latest", None, None),
            ("stable", Some("^1"), None),
            // A version above the range is kept (no downgrade); one below it moves up.
            ("3", Some("^1"), None),
            ("0", Some("^1"), Some("1")),
        ];
        for (current, range, want) in cases {
            let p = docker(*range);
            assert!(p.is_relative());
            let seen = p.relative_to(Some(current));
            let change = seen.update_from(Some(current), &tags);
            assert_eq!(
                change.as_ref().map(|c| c.to.as_str()),
                *want,
                "{current} under versioning: docker, range {range:?}"
            );
            // `latest` is never a candidate, whatever the current tag.
            assert!(!seen
                .select(&tags)
                .candidates
                .contains(&"latest".to_string()));
        }
        // Below the range: replaced, as a tag the policy does not accept.
        let seen = docker(Some("^1"));
        let seen = seen.relative_to(Some("0.9"));
        let c = seen
            .update_from(Some("0.9"), &list("0.9 1.2 1.3 2.0"))
            .unwrap();
        assert_eq!(
            (c.to.as_str(), c.reason),
            ("1.3", ChangeReason::CurrentNotAccepted)
        );
        // Why the others were dropped.
        let why = docker(Some("^1")).relative_to(Some("1.25")).explain(&tags);
        let of = |t: &str| {
            why.iter()
                .find(|v| v.tag == t)
                .map(|v| format!("{:?}", v.outcome))
                .unwrap()
        };
        assert!(
            of("2.0").contains("outside range ^1 (read as 2.0.0)"),
            "{}",
            of("2.0")
        );
        assert!(
            of("1.27.2").contains("shape (2 parts, no suffix)"),
            "{}",
            of("1.27.2")
        );
        assert!(of("latest").contains("not a version"), "{}", of("latest"));
        assert!(
            of("3.1.0rc1").contains("not a version"),
            "{}",
            of("3.1.0rc1")
        );
    }

    #[test]
    fn docker_versioning_takes_update_levels_and_refuses_other_kinds() {
        let tags = list("1.25.3 1.25.4 1.26.0 2.0.0");
        let p = Policy::new(PolicyKind::Update(Level::Minor), &[], false)
            .unwrap()
            .with_versioning(Versioning::Docker)
            .unwrap();
        let seen = p.relative_to(Some("1.25.3"));
        assert_eq!(
            seen.update_from(Some("1.25.3"), &tags).map(|c| c.to),
            Some("1.26.0".to_string())
        );
        // semver versioning changes nothing: 1.25 may become 2.0.0.
        let plain = Policy::new(PolicyKind::Semver("*".into()), &[], false)
            .unwrap()
            .with_versioning(Versioning::Semver)
            .unwrap();
        assert!(!plain.is_relative());
        for (kind, name) in [
            (
                PolicyKind::Alphabetical(crate::policy::Order::Asc),
                "alphabetical",
            ),
            (
                PolicyKind::Numerical(crate::policy::Order::Asc),
                "numerical",
            ),
            (PolicyKind::Digest("latest".into()), "digest"),
        ] {
            let e = Policy::new(kind, &[], false)
                .unwrap()
                .with_versioning(Versioning::Docker)
                .unwrap_err();
            assert_eq!(e, PolicyError::DockerVersioning { kind: name });
            assert!(e.to_string().contains(name), "{e}");
        }
    }

    #[test]
    fn docker_versioning_reads_the_filtered_value() {
        // A filter's extracted value is what is read as a version, the current tag's too.
        let p = Policy::new(PolicyKind::Semver("^1".into()), &[], false)
            .unwrap()
            .with_filter("^app-(?P<v>.+)$", Some("$v"))
            .unwrap()
            .with_versioning(Versioning::Docker)
            .unwrap();
        let tags = list("app-1.2-alpine app-1.3-alpine app-1.3.1-alpine app-2.0-alpine app-1.4");
        let seen = p.relative_to(Some("app-1.2-alpine"));
        assert_eq!(
            seen.update_from(Some("app-1.2-alpine"), &tags)
                .map(|c| c.to),
            Some("app-1.3-alpine".to_string())
        );
    }

    #[test]
    fn as_semver_pads_and_drops_the_suffix() {
        let v = |t: &str| Version::parse(t).unwrap().as_semver().to_string();
        assert_eq!(v("1.25"), "1.25.0");
        assert_eq!(v("18-alpine"), "18.0.0");
        assert_eq!(v("v1.2.3.4"), "1.2.3");
    }
}
