//! Property tests: for random tag lists and random policies built from the grammar,
//! the pick passes the policy and nothing that passes ranks above it; `explain`
//! agrees with `select`; an update is never undone by the next run.

use std::collections::HashSet;

use ::semver::{Version, VersionReq};
use proptest::prelude::*;

use super::semver::{parse_tag, precedence, Constraint};
use super::{ChangeReason, Order, Outcome, Policy, PolicyKind};

const PRERELEASES: [&str; 7] = ["0", "alpha", "alpha.1", "beta.2", "rc.1", "rc.10", "rc9"];

/// A tag that reads as a version, in one of the spellings tags use, or junk.
fn tag() -> impl Strategy<Value = String> {
    let version = (
        0u64..4,
        0u64..4,
        0u64..4,
        prop::option::weighted(0.25, 0..PRERELEASES.len()),
        0..4u8,
    )
        .prop_map(|(major, minor, patch, pre, spelling)| {
            let pre = pre
                .map(|i| format!("-{}", PRERELEASES[i]))
                .unwrap_or_default();
            match spelling {
                1 => format!("v{major}.{minor}.{patch}{pre}"),
                2 if patch == 0 => format!("{major}.{minor}{pre}"),
                3 if minor == 0 && patch == 0 => format!("{major}{pre}"),
                _ => format!("{major}.{minor}.{patch}{pre}"),
            }
        });
    prop_oneof![
        8 => version,
        1 => prop::sample::select(vec!["latest", "main-abc1234", "1.2.3.4", "x.sig"])
            .prop_map(str::to_string),
    ]
}

/// A version in a range: full (maybe with a pre-release), partial, or wildcard.
fn partial() -> impl Strategy<Value = String> {
    (
        0u64..4,
        0u64..4,
        0u64..4,
        prop::option::weighted(0.2, 0..PRERELEASES.len()),
        0..7u8,
        any::<bool>(),
    )
        .prop_map(|(major, minor, patch, pre, shape, v)| {
            let v = if v { "v" } else { "" };
            match shape {
                0 | 1 => {
                    let pre = pre
                        .map(|i| format!("-{}", PRERELEASES[i]))
                        .unwrap_or_default();
                    format!("{v}{major}.{minor}.{patch}{pre}")
                }
                2 => format!("{v}{major}.{minor}"),
                3 => format!("{v}{major}"),
                4 => format!("{v}{major}.{minor}.x"),
                5 => format!("{v}{major}.*"),
                _ => "*".to_string(),
            }
        })
}

fn comparator() -> impl Strategy<Value = String> {
    let ops = vec!["", "=", "!=", ">", "<", ">=", "<=", "~", "~>", "^"];
    prop_oneof![
        4 => (prop::sample::select(ops), partial()).prop_map(|(op, p)| format!("{op}{p}")),
        1 => (partial(), partial()).prop_map(|(a, b)| format!("{a} - {b}")),
    ]
}

/// A range: OR of AND groups, joined every way the grammar allows.
fn range() -> impl Strategy<Value = String> {
    let group = (
        prop::collection::vec(comparator(), 1..4),
        prop::sample::select(vec![" ", ", ", ","]),
    )
        .prop_map(|(cs, sep)| cs.join(sep));
    prop::collection::vec(group, 1..4).prop_map(|gs| gs.join(" || "))
}

fn semver_policy(range: &str, allow_downgrade: bool) -> Policy {
    Policy::new(PolicyKind::Semver(range.to_string()), &[], allow_downgrade)
        .unwrap_or_else(|e| panic!("generated range should parse: {e}"))
}

fn distinct(tags: &[String]) -> usize {
    tags.iter().collect::<HashSet<_>>().len()
}

/// `explain` and `select` agree, and every distinct tag gets one verdict.
fn explain_agrees(policy: &Policy, tags: &[String]) -> Result<(), TestCaseError> {
    let verdicts = policy.explain(tags);
    prop_assert_eq!(verdicts.len(), distinct(tags));
    let candidates: Vec<String> = verdicts
        .iter()
        .filter_map(|v| match v.outcome {
            Outcome::Candidate { rank } => Some((rank, v.tag.clone())),
            Outcome::Dropped(_) => None,
        })
        .enumerate()
        .map(|(i, (rank, tag))| {
            assert_eq!(i, rank, "ranks count up from 0");
            tag
        })
        .collect();
    prop_assert_eq!(candidates, policy.select(tags).candidates);
    Ok(())
}

/// What the next run does after this one: nothing.
fn update_is_stable(
    policy: &Policy,
    current: Option<&str>,
    tags: &[String],
) -> Result<(), TestCaseError> {
    if let Some(change) = policy.update_from(current, tags) {
        prop_assert_eq!(policy.update_from(Some(&change.to), tags), None);
        if !policy.allow_downgrade() {
            prop_assert_ne!(change.reason, ChangeReason::Downgrade);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn semver_pick_satisfies_the_range_and_is_the_highest(
        range in range(),
        tags in prop::collection::vec(tag(), 0..25),
    ) {
        let policy = semver_policy(&range, false);
        let constraint = Constraint::parse(&range).unwrap();
        let passing: Vec<(Version, &String)> = tags
            .iter()
            .filter(|t| !t.ends_with(".sig"))
            .filter_map(|t| parse_tag(t).map(|v| (v, t)))
            .filter(|(v, _)| constraint.matches(v))
            .collect();
        let selection = policy.select(&tags);
        match &selection.latest {
            None => prop_assert!(passing.is_empty(), "{range:?}: nothing picked from {passing:?}"),
            Some(pick) => {
                let picked = parse_tag(pick).expect("the pick reads as a version");
                prop_assert!(constraint.matches(&picked), "{range:?}: {pick} outside the range");
                for (v, t) in &passing {
                    prop_assert!(
                        precedence(v, &picked).is_le(),
                        "{range:?}: {t} passes and ranks above the pick {pick}"
                    );
                }
            }
        }
        let want: HashSet<&str> = passing.iter().map(|(_, t)| t.as_str()).collect();
        let got: HashSet<&str> = selection.candidates.iter().map(String::as_str).collect();
        prop_assert_eq!(got, want);
        for pair in selection.candidates.windows(2) {
            let (a, b) = (parse_tag(&pair[0]).unwrap(), parse_tag(&pair[1]).unwrap());
            prop_assert!(precedence(&a, &b).is_ge(), "{range:?}: {pair:?} out of order");
        }
        explain_agrees(&policy, &tags)?;
    }

    #[test]
    fn semver_updates_never_flip_back(
        range in range(),
        tags in prop::collection::vec(tag(), 0..20),
        current in prop::option::of(tag()),
        allow_downgrade in any::<bool>(),
    ) {
        let policy = semver_policy(&range, allow_downgrade);
        update_is_stable(&policy, current.as_deref(), &tags)?;
        if let (Some(current), Some(change)) = (&current, policy.update_from(current.as_deref(), &tags)) {
            if change.reason == ChangeReason::Newer {
                let (from, to) = (parse_tag(current).unwrap(), parse_tag(&change.to).unwrap());
                prop_assert!(precedence(&to, &from).is_gt());
            }
            // No exclusions or filter here: a current version, in the range or not,
            // is only ever replaced by a higher one unless downgrades are allowed.
            if let (false, Some(from)) = (allow_downgrade, parse_tag(current)) {
                let to = parse_tag(&change.to).unwrap();
                prop_assert!(precedence(&to, &from).is_gt(), "{range:?}: {current} -> {}", change.to);
            }
        }
    }

    #[test]
    fn alphabetical_pick_is_the_extreme(
        tags in prop::collection::vec("[a-cA-C0-9._-]{0,4}", 0..25),
        asc in any::<bool>(),
        current in prop::option::of("[a-c0-9]{1,3}"),
    ) {
        let order = if asc { Order::Asc } else { Order::Desc };
        let policy = Policy::new(PolicyKind::Alphabetical(order), &[], false).unwrap();
        let passing: Vec<&String> = tags.iter().filter(|t| !policy.is_excluded(t)).collect();
        let selection = policy.select(&tags);
        match &selection.latest {
            None => prop_assert!(passing.is_empty()),
            Some(pick) => {
                for t in &passing {
                    let ok = if asc { t.as_str() <= pick.as_str() } else { t.as_str() >= pick.as_str() };
                    prop_assert!(ok, "{t:?} ranks above the pick {pick:?} ({order})");
                }
            }
        }
        prop_assert_eq!(selection.candidates.len(), passing.iter().collect::<HashSet<_>>().len());
        explain_agrees(&policy, &tags)?;
        update_is_stable(&policy, current.as_deref(), &tags)?;
    }

    #[test]
    fn numerical_pick_is_the_extreme(
        numbers in prop::collection::vec((-2000i64..2000, 0u32..4, 0u8..3), 0..25),
        junk in prop::collection::vec("[a-z]{1,3}|1e[0-9]|v[0-9]", 0..5),
        asc in any::<bool>(),
        filtered in any::<bool>(),
    ) {
        // Each number is scaled/10^decimals, written with leading zeros or a
        // trailing zero sometimes; its exact value in thousandths is the oracle.
        let mut tags = Vec::new();
        let mut value = std::collections::HashMap::new();
        for (scaled, decimals, style) in numbers {
            let magnitude = scaled.unsigned_abs();
            let div = 10u64.pow(decimals);
            let sign = if scaled < 0 { "-" } else { "" };
            let mut text = if decimals == 0 {
                format!("{sign}{magnitude}")
            } else {
                format!("{sign}{}.{:0width$}", magnitude / div, magnitude % div, width = decimals as usize)
            };
            match style {
                1 if decimals > 0 => text.push('0'),
                2 if scaled >= 0 => text.insert(0, '0'),
                _ => {}
            }
            let thousandths = scaled * 1000 / div as i64;
            let tag = if filtered { format!("build-{text}-x") } else { text };
            value.insert(tag.clone(), thousandths);
            tags.push(tag);
        }
        tags.extend(junk.into_iter().map(|j| if filtered { format!("build-{j}-x") } else { j }));
        let order = if asc { Order::Asc } else { Order::Desc };
        let mut policy = Policy::new(PolicyKind::Numerical(order), &[], false).unwrap();
        if filtered {
            policy = policy.with_filter(r"^build-(?P<n>.+)-x$", Some("$n")).unwrap();
        }
        let selection = policy.select(&tags);
        match &selection.latest {
            None => prop_assert!(value.is_empty()),
            Some(pick) => {
                let best = value[pick];
                for (tag, v) in &value {
                    let ok = if asc { *v <= best } else { *v >= best };
                    prop_assert!(ok, "{tag} ranks above the pick {pick} ({order})");
                }
            }
        }
        let candidates: HashSet<&String> = selection.candidates.iter().collect();
        prop_assert_eq!(candidates, value.keys().collect::<HashSet<_>>());
        explain_agrees(&policy, &tags)?;
        update_is_stable(&policy, tags.first().map(String::as_str), &tags)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Against an independent implementation: for ranges Cargo's `VersionReq` reads
    /// the same way (one AND group of `= > < >= <= ~ ^` on numeric versions, no
    /// pre-releases, not the Masterminds special case `~0.0.0`), both agree.
    #[test]
    fn simple_ranges_agree_with_the_semver_crate(
        comparators in prop::collection::vec(
            (prop::sample::select(vec!["=", ">", "<", ">=", "<=", "~", "^"]), 0u64..3, 0u64..3, 0u64..3, 1..4usize),
            1..3,
        ),
        versions in prop::collection::vec((0u64..4, 0u64..4, 0u64..4), 1..40),
    ) {
        let parts: Vec<String> = comparators
            .iter()
            .filter(|(op, a, b, c, n)| !(*op == "~" && *n == 3 && (a, b, c) == (&0, &0, &0)))
            .map(|(op, a, b, c, n)| {
                let full = [a, b, c].map(u64::to_string);
                format!("{op}{}", full[..*n].join("."))
            })
            .collect();
        prop_assume!(!parts.is_empty());
        let ours = Constraint::parse(&parts.join(" ")).unwrap();
        let cargo = VersionReq::parse(&parts.join(", ")).unwrap();
        for (a, b, c) in versions {
            let v = Version::new(a, b, c);
            prop_assert_eq!(ours.matches(&v), cargo.matches(&v), "{:?} vs {}", parts, v);
        }
    }
}
