//! A useful answer with no config at all: the references no policy governs, and what is newer.
//!
//! - [`govern_unwatched`]: an `images: [{ image: "*", … }]` entry governs every reference no
//!   other entry governs (an exact entry always wins), one governor per repository.
//! - [`candidates`] and [`report`]: every reference still ungoverned whose tag is a Docker
//!   version ([`crate::policy::docker`]) is looked up in its repository's tag list (listed
//!   once per run by the resolve stage, like a governed image's), and reported under
//!   `outdated` when a newer tag of its shape exists: the newest in its major (`minor`) and the
//!   newest of a newer major (`major`). Read-only: nothing is rewritten for it.

use std::collections::HashMap;

use crate::config::Wildcard;
use crate::discover::{Discovery, Occurrence};
use crate::manifest::Parts;
use crate::policy::docker;
use crate::reference::ImageRef;
use crate::report::Outdated;
use crate::resolve::{RepoKey, TagCache};
use crate::select::FileId;

/// The reason the discover stage gives a reference no configured image governs.
const NO_POLICY: &str = "no policy";

/// Whether `o` is governed by nothing, for no reason but that no entry names its image.
fn ungoverned(o: &Occurrence) -> bool {
    o.governor.is_none() && o.reason.as_deref() == Some(NO_POLICY)
}

/// Let `wildcard` govern every reference no other entry governs (and its `files` globs
/// allow), except a separate-keys site without a tag. Each repository gets one governor,
/// appended to `found.governors`.
pub(crate) fn govern_unwatched(found: &mut Discovery, wildcard: &Wildcard) {
    let mut by_repo: HashMap<String, usize> = HashMap::new();
    for i in 0..found.occurrences.len() {
        let o = &found.occurrences[i];
        if !ungoverned(o) {
            continue;
        }
        if matches!(&o.site.parts, Parts::Split { tag: None, .. }) {
            continue;
        }
        let rel = &FileId::of(o).source(found).rel;
        if wildcard.files.as_ref().is_some_and(|g| !g.is_match(rel)) {
            continue;
        }
        let name = o.image.canonical_name();
        let governor = match by_repo.get(&name) {
            Some(g) => *g,
            None => {
                let Ok(image) = ImageRef::parse(&name) else {
                    continue;
                };
                found.governors.push(wildcard.govern(image));
                let g = found.governors.len() - 1;
                by_repo.insert(name, g);
                g
            }
        };
        let o = &mut found.occurrences[i];
        o.governor = Some(governor);
        o.reason = None;
    }
}

/// The references the `outdated` report looks at: no policy governs them, and their tag is a
/// Docker version. `owns` says whether this job handles an image (`--shard`).
pub(crate) fn candidates(found: &Discovery, owns: impl Fn(&ImageRef) -> bool) -> Vec<&Occurrence> {
    found
        .occurrences
        .iter()
        .filter(|o| ungoverned(o) && owns(&o.image))
        .filter(|o| {
            o.image
                .tag
                .as_deref()
                .is_some_and(|t| docker::Version::parse(t).is_some())
        })
        .collect()
}

/// One entry for each of `candidates` whose repository was listed and has a newer tag of its
/// shape, in file order.
pub(crate) fn report(
    found: &Discovery,
    candidates: &[&Occurrence],
    tags: &TagCache,
) -> Vec<Outdated> {
    let mut out: Vec<Outdated> = candidates
        .iter()
        .filter_map(|o| {
            let current = o.image.tag.as_deref()?;
            let Some(Ok(list)) = tags.get(&RepoKey::of(&o.image)) else {
                return None;
            };
            let newer = docker::newer(current, list)?;
            Some(Outdated {
                file: FileId::of(o).source(found).rel.clone(),
                line: o.site.line,
                image: o.image.canonical_name(),
                current: current.to_string(),
                minor: newer.minor,
                major: newer.major,
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    out
}
