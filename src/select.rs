//! The select stage: for each governed reference whose repository was listed, the policy picks
//! the tag to move to (narrowed to the tags that cover the policy's platforms, pinned to a
//! digest when asked), and the result is an update with the splices that make it
//! ([`Selected::Update`]), a reference held where it is with the reason ([`Selected::Held`]),
//! or nothing to do.

use std::collections::{BTreeMap, HashMap};

use crate::config::Watched;
use crate::discover::{self, Discovery, Occurrence};
use crate::manifest::{self, edit::Edit};
use crate::policy;
use crate::report::{ErrorEntry, SkipKind, Skipped, Update};
use crate::resolve::{Lookups, RepoKey, TagCache};

/// A file of the discover stage's list ([`Discovery::sources`]): how the stages after it
/// name the files they hand on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct FileId(usize);

impl FileId {
    /// The file `occ` was found in.
    pub fn of(occ: &Occurrence) -> FileId {
        FileId(occ.file)
    }

    /// Its entry in `found`.
    pub fn source(self, found: &Discovery) -> &discover::Source {
        &found.sources[self.0]
    }

    /// The `i`th file of a test's discovery.
    #[cfg(test)]
    pub fn nth(i: usize) -> FileId {
        FileId(i)
    }
}

/// One update and the splices that make it.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub edits: Vec<Edit>,
    pub update: Update,
}

/// What the select stage decided for every reference it looked at.
#[derive(Default)]
pub(crate) struct Selection {
    /// The changes to make, per file, in file order.
    pub changes: BTreeMap<FileId, Vec<Change>>,
    /// References held where they are, and why.
    pub held: Vec<Skipped>,
    /// References whose selection failed (a digest or platform lookup, a bad digest).
    pub errors: Vec<ErrorEntry>,
    /// The policies of the references whose repository was listed, once each, sorted.
    pub resolved: Vec<String>,
    /// References looked at: their repository was listed.
    pub references: usize,
    /// Tags ranked, over every policy ranked (for the `select` line at `-v`).
    pub ranked: usize,
}

/// Select for each of `live` (a reference and the policy governing it) whose repository is
/// listed in `tags`; the others are left alone (their listing failed and is an error already).
pub(crate) async fn select_all(
    lookups: &mut Lookups<'_>,
    found: &Discovery,
    live: &[(&Occurrence, &Watched)],
    tags: &TagCache,
) -> Selection {
    let mut out = Selection::default();
    let mut ranking = Ranking::default();
    for (occ, g) in live {
        let Some(Ok(list)) = tags.get(&RepoKey::of(&g.image)) else {
            continue;
        };
        out.references += 1;
        out.resolved.push(g.name.clone());
        let file = FileId::of(occ);
        match select(lookups, &mut ranking, occ, g, list).await {
            Ok(Some(Selected::Update(edits, update))) => {
                out.changes.entry(file).or_default().push(Change {
                    edits,
                    update: Update {
                        file: file.source(found).rel.clone(),
                        ..update
                    },
                });
            }
            Ok(Some(Selected::Held(reason))) => out.held.push(Skipped {
                image: Some(written(occ)),
                file: file.source(found).rel.clone(),
                line: occ.site.line,
                reason,
                kind: SkipKind::Reference,
            }),
            Ok(None) => {}
            Err(message) => out.errors.push(ErrorEntry {
                image: Some(g.image.canonical_name()),
                file: None,
                message,
            }),
        }
    }
    out.ranked = ranking.ranked;
    out.resolved.sort();
    out.resolved.dedup();
    out
}

/// A reference as the manifest writes it (parts put together).
pub(crate) fn written(o: &Occurrence) -> String {
    match &o.site.parts {
        manifest::Parts::Whole(f) => f.value.clone(),
        _ => o.image.to_string(),
    }
}

/// Each policy's best tag: its repository's list is ranked once, not once a reference.
#[derive(Default)]
struct Ranking {
    /// By governor: two Flux ImagePolicies may share `NS:NAME` (in two cluster trees); and
    /// by current tag for a policy relative to it (`update:`).
    best: HashMap<(Option<usize>, Option<String>), Option<String>>,
    ranked: usize,
}

/// What [`select`] decided for one reference that moves or is held.
enum Selected {
    /// Rewrite it: the splices, and the update to report.
    Update(Vec<Edit>, Update),
    /// Keep it, and report why in `skipped` (a lower version offered for a tag the policy
    /// does not accept: never a silent downgrade).
    Held(String),
}

/// The edits and the update that move `occ` on, the reason it is held, or None when it is
/// current.
async fn select(
    lookups: &mut Lookups<'_>,
    ranking: &mut Ranking,
    occ: &Occurrence,
    g: &Watched,
    tags: &[String],
) -> Result<Option<Selected>, String> {
    let current = occ.image.tag.as_deref();
    // An `update:` policy passes the tags of the current tag's shape within its level.
    let policy = g.policy.relative_to(current);
    let policy = policy.as_ref();
    // Platforms narrow the candidates: from the best down, the first that covers them all.
    let mut narrowed = Vec::new();
    let candidates: &[String] = if g.platforms.is_empty() {
        // Only the best tag matters to `update_from`: rank the list once per policy.
        let relative = policy.is_relative().then(|| current.map(str::to_string));
        let key = (occ.governor, relative.flatten());
        let ranked = &mut ranking.ranked;
        let best = ranking.best.entry(key).or_insert_with(|| {
            *ranked += tags.len();
            policy.select(tags).latest
        });
        narrowed.extend(best.iter().cloned());
        &narrowed
    } else {
        ranking.ranked += tags.len();
        for tag in policy.select(tags).candidates {
            if Some(tag.as_str()) == current {
                narrowed.push(tag);
                break;
            }
            let have = lookups
                .platforms(&g.image, &tag)
                .await
                .map_err(|e| e.to_string())?;
            if have.is_some_and(|h| covers(&h, &g.platforms)) {
                narrowed.push(tag);
                break;
            }
        }
        &narrowed
    };
    // newest-build (Argo CD Image Updater) takes the candidate built last, whatever its name.
    let change = if g.newest_build {
        lookups
            .newest_build(&g.image, &policy.select(tags).candidates)
            .await
            .map_err(|e| crate::flux_v1::build_time_error(g, e.to_string()))?
            .filter(|n| Some(n.as_str()) != current)
            .map(|to| policy::Change {
                to,
                reason: policy::ChangeReason::Newer,
            })
    } else {
        policy.update_from(current, candidates)
    };
    if change.is_none() {
        if let Some(why) = policy.held(current, candidates) {
            return Ok(Some(Selected::Held(why)));
        }
    }
    // A digest scalar is kept up to date, even one holding no valid digest yet.
    let digest_part = matches!(
        occ.site.parts,
        manifest::Parts::Split {
            digest: Some(_),
            ..
        }
    );
    let pin = g.pin_digest
        || policy.followed_tag().is_some()
        || occ.image.digest.is_some()
        || digest_part;
    let Some(target) = change
        .as_ref()
        .map(|c| c.to.clone())
        .or(current.map(str::to_string))
    else {
        return Ok(None);
    };
    let digest = if pin {
        let d = lookups
            .digest(&g.image, &target)
            .await
            .map_err(|e| e.to_string())?;
        if !is_digest(&d) {
            return Err(format!(
                "the registry gave {:?} as the digest of {target}, which is not sha256:<64 hex>",
                d.escape_debug().to_string()
            ));
        }
        Some(d)
    } else {
        None
    };
    let renames = discover::renames(occ, &g.image);
    if change.is_none() && !renames && (digest.is_none() || digest == occ.image.digest) {
        return Ok(None);
    }
    let edits = discover::edits_for(occ, &g.image, &target, digest.as_deref());
    if edits.is_empty() {
        return Ok(None);
    }
    Ok(Some(Selected::Update(
        edits,
        Update {
            policy: g.name.clone(),
            image: g.image.canonical_name(),
            file: String::new(),
            line: occ.site.line,
            from: current
                .or(occ.image.digest.as_deref())
                .or(match &occ.site.parts {
                    // A digest scalar holding no valid digest, as written.
                    manifest::Parts::Split {
                        digest: Some(d), ..
                    } => Some(d.value.as_str()),
                    _ => None,
                })
                .unwrap_or_default()
                .to_string(),
            to: target.clone(),
            digest,
            note: match change.map(|c| c.reason) {
                None if renames => Some("set to the image its policy watches".into()),
                None => Some("the tag now points at another digest".into()),
                Some(policy::ChangeReason::Newer) => None,
                // A Flux policy's revert is named as a downgrade.
                Some(other) => Some(
                    crate::flux_repo::revert_note(g.flux, current, &target)
                        .unwrap_or_else(|| other.to_string()),
                ),
            },
        },
    )))
}

/// Whether `have` (an index's platforms) covers every platform of `want`; a wanted platform
/// without a variant is covered by any variant of it.
fn covers(have: &[String], want: &[String]) -> bool {
    want.iter().all(|w| {
        have.iter()
            .any(|h| h == w || (w.matches('/').count() == 1 && h.starts_with(&format!("{w}/"))))
    })
}

/// Whether `d` is a digest this tool will write: `sha256:` and 64 lowercase hex digits.
fn is_digest(d: &str) -> bool {
    d.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(s: &[&str]) -> Vec<String> {
        s.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn platforms_are_covered_by_variants_but_not_the_reverse() {
        let have = list(&["linux/amd64", "linux/arm/v7"]);
        assert!(covers(&have, &list(&["linux/amd64", "linux/arm"])));
        assert!(!covers(&have, &list(&["linux/arm64"])));
        assert!(!covers(&list(&["linux/arm"]), &list(&["linux/arm/v7"])));
    }

    #[test]
    fn only_sha256_digests_are_written() {
        assert!(is_digest(&format!("sha256:{}", "a".repeat(64))));
        assert!(!is_digest(&format!("sha256:{}", "A".repeat(64))));
        assert!(!is_digest(&format!("sha512:{}", "a".repeat(64))));
        assert!(!is_digest("sha256:abc"));
    }
}
