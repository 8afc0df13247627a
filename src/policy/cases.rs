//! The table-driven suite: every case of `fixtures/policy/cases.yaml` builds a
//! policy and checks its pick, its candidate order, its update decision, its
//! explanations, or the error it fails with. The fixture's header documents the keys.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

use super::{ChangeReason, Outcome, Policy, PolicyError, PolicyKind};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    semver: Option<String>,
    alphabetical: Option<String>,
    numerical: Option<String>,
    digest: Option<String>,
    filter: Option<FilterSpec>,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    exclude_regex: Vec<String>,
    #[serde(default)]
    allow_downgrade: bool,
    #[serde(default)]
    tags: Vec<String>,
    /// `pick: null` expects nothing to pass; an absent `pick` checks nothing.
    #[serde(default, deserialize_with = "present")]
    pick: Option<Option<String>>,
    candidates: Option<Vec<String>>,
    update: Option<UpdateSpec>,
    /// tag -> a substring of the reason it is dropped.
    #[serde(default)]
    why: BTreeMap<String, String>,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilterSpec {
    #[serde(default)]
    pattern: String,
    extract: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateSpec {
    /// The current tag; null for a reference without one.
    #[serde(deserialize_with = "present")]
    from: Option<Option<String>>,
    /// The expected new tag; null for no change.
    #[serde(deserialize_with = "present")]
    to: Option<Option<String>>,
    /// newer | current-not-accepted | downgrade; required when `to` is a tag.
    reason: Option<String>,
}

/// Tells an explicit `null` (Some(None)) from an absent key (None).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

impl Case {
    fn build(&self) -> Result<Policy, PolicyError> {
        let kinds = [
            self.semver.clone().map(PolicyKind::Semver),
            self.alphabetical
                .as_deref()
                .map(|o| o.parse().map(PolicyKind::Alphabetical))
                .transpose()?,
            self.numerical
                .as_deref()
                .map(|o| o.parse().map(PolicyKind::Numerical))
                .transpose()?,
            self.digest.clone().map(PolicyKind::Digest),
        ];
        let mut kinds = kinds.into_iter().flatten();
        let kind = kinds.next().expect("a case names one policy kind");
        assert!(kinds.next().is_none(), "a case names one policy kind");
        let mut policy = Policy::new(kind, &self.exclude, self.allow_downgrade)?
            .with_exclude_regex(&self.exclude_regex)?;
        if let Some(filter) = &self.filter {
            policy = policy.with_filter(&filter.pattern, filter.extract.as_deref())?;
        }
        Ok(policy)
    }

    /// Checks the case; Err describes the first mismatch.
    fn run(&self) -> Result<(), String> {
        let policy = match (self.build(), &self.error) {
            (Err(e), Some(want)) if e.to_string().contains(want.as_str()) => return Ok(()),
            (Err(e), _) => return Err(format!("error {e}")),
            (Ok(_), Some(want)) => return Err(format!("built, expected error {want:?}")),
            (Ok(p), None) => p,
        };
        if let Some(want) = &self.pick {
            let got = policy.select(&self.tags).latest;
            if &got != want {
                return Err(format!("pick {got:?}, expected {want:?}"));
            }
        }
        if let Some(want) = &self.candidates {
            let got = policy.select(&self.tags).candidates;
            if &got != want {
                return Err(format!("candidates {got:?}, expected {want:?}"));
            }
        }
        if let Some(update) = &self.update {
            let from = update.from.as_ref().expect("update.from (null for none)");
            let to = update.to.as_ref().expect("update.to (null for no change)");
            let got = policy
                .update_from(from.as_deref(), &self.tags)
                .map(|c| (c.to, reason_word(c.reason).to_string()));
            let want = to.clone().map(|t| {
                let reason = update.reason.clone().expect("update.reason with update.to");
                (t, reason)
            });
            if got != want {
                return Err(format!("update from {from:?}: {got:?}, expected {want:?}"));
            }
        }
        if !self.why.is_empty() {
            let verdicts = policy.explain(&self.tags);
            for (tag, want) in &self.why {
                let verdict = verdicts.iter().find(|v| &v.tag == tag);
                match verdict.map(|v| &v.outcome) {
                    Some(Outcome::Dropped(why)) if why.contains(want.as_str()) => {}
                    other => return Err(format!("{tag}: {other:?}, expected dropped: {want}")),
                }
            }
        }
        Ok(())
    }
}

fn reason_word(reason: ChangeReason) -> &'static str {
    match reason {
        ChangeReason::Newer => "newer",
        ChangeReason::CurrentNotAccepted => "current-not-accepted",
        ChangeReason::Downgrade => "downgrade",
    }
}

#[test]
fn policy_cases() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/policy/cases.yaml");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let cases: Vec<Case> = serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(cases.len() >= 150, "only {} cases", cases.len());
    let mut names = std::collections::HashSet::new();
    let mut failures = Vec::new();
    for case in &cases {
        assert!(
            names.insert(case.name.as_str()),
            "duplicate case name {:?}",
            case.name
        );
        let checks = case.pick.is_some()
            || case.candidates.is_some()
            || case.update.is_some()
            || !case.why.is_empty();
        assert!(
            checks != case.error.is_some(),
            "{:?}: a case expects an error, or a pick/candidates/update/why",
            case.name
        );
        if let Err(e) = case.run() {
            failures.push(format!("{}: {e}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
