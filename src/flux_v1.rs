//! Flux v1 annotations as policies, with no config of ours: part of the discover stage.
//!
//! Each container of a workload (or image of a helm-operator HelmRelease) annotated
//! `fluxcd.io/automated: "true"` ([`manifest::flux_v1`]) becomes a governor of exactly that
//! container's reference: `semver:` ranks by version; `glob:`, `regex:` and no filter take the
//! most recently built tag (the image config's `created`, read at select through
//! `Lookups::newest_build`, as fluxd orders by creation time). A workload locked with
//! `fluxcd.io/locked: "true"` is held whatever governs it, reported as
//! `locked: MSG (by USER)`. An `images:` entry of our config for the same repository
//! overrides the annotations; a Flux marker names its own policy and keeps it.

use std::collections::HashMap;

use crate::config::Watched;
use crate::discover::{Occurrence, Source};
use crate::manifest::flux_v1::{TagFilter, Workload};
use crate::policy::{Order, Policy, PolicyKind};

/// Give the references of `workloads` (each with its file) their Flux v1 governors, or hold
/// them when locked. A reference our config's `images:` already governs keeps that governor.
pub(crate) fn apply(
    workloads: &[(String, Workload)],
    sources: &[Source],
    occurrences: &mut [Occurrence],
    governors: &mut Vec<Watched>,
) {
    if workloads.is_empty() {
        return;
    }
    // One governor per (file, workload, container).
    let mut made: HashMap<(usize, String), Result<usize, String>> = HashMap::new();
    for occ in occurrences.iter_mut() {
        let rel = &sources[occ.file].rel;
        let starts: Vec<usize> = occ
            .site
            .parts
            .scalars()
            .iter()
            .map(|f| f.span.start)
            .collect();
        let found = workloads.iter().enumerate().find_map(|(i, (file, w))| {
            (file == rel).then_some(())?;
            let c = w
                .containers
                .iter()
                .find(|c| c.scalars.iter().any(|s| starts.contains(s)))?;
            Some((i, w, c))
        });
        let Some((i, w, container)) = found else {
            continue;
        };
        if let Some(lock) = &w.lock {
            occ.governor = None;
            occ.reason = Some(lock.reason());
            continue;
        }
        // Our config's images and Flux markers keep what they govern.
        if occ.governor.is_some() || occ.site.policy.is_some() {
            continue;
        }
        if !w.automated {
            occ.reason = Some(format!(
                "no policy ({} {}: fluxcd.io/automated is not \"true\")",
                w.kind,
                w.id()
            ));
            continue;
        }
        let key = (i, container.name.clone());
        let g = made
            .entry(key)
            .or_insert_with(|| {
                let filter = w.filter(&container.name);
                let line = w
                    .filters
                    .iter()
                    .find(|(c, _, _)| *c == container.name)
                    .map_or(w.line, |(_, _, l)| *l);
                governor(w, &container.name, &filter, occ)
                    .map(|g| {
                        governors.push(g);
                        governors.len() - 1
                    })
                    .map_err(|e| format!("{rel}:{line}: {e}"))
            })
            .clone();
        match g {
            Ok(g) => {
                occ.governor = Some(g);
                occ.reason = None;
            }
            Err(why) => occ.reason = Some(why),
        }
    }
}

/// The policy fluxd applies to `container` of `w`, watching the repository `occ` refers to.
fn governor(
    w: &Workload,
    container: &str,
    filter: &TagFilter,
    occ: &Occurrence,
) -> Result<Watched, String> {
    let who = format!("{} {} container {container}", w.kind, w.id());
    let kind = match filter {
        TagFilter::Semver(range) => PolicyKind::Semver(range.clone()),
        // Ranked by build time at select; the order here only breaks ties.
        _ => PolicyKind::Alphabetical(Order::Asc),
    };
    let mut policy = Policy::new(kind, &[], false).map_err(|e| format!("{who}: {e}"))?;
    if let Some(pattern) = filter.pattern() {
        policy = policy
            .with_filter(&pattern, None)
            .map_err(|e| format!("{who}: {e}"))?;
    }
    let mut image = occ.image.clone();
    image.tag = None;
    image.digest = None;
    Ok(Watched {
        name: format!("{}:{container}", w.id()),
        // Governs only the reference it is given: never matched by repository name.
        namespace: Some(format!("flux-v1:{}", w.id())),
        flux: true,
        image,
        policy,
        files: None,
        helm_keys: 0..0,
        pin_digest: false,
        platforms: Vec::new(),
        newest_build: filter.by_build_time(),
        rule: None,
    })
}

/// Whether `governor` was made from Flux v1 annotations (for the commit message fluxd wrote).
pub(crate) fn is_flux_v1(governor: &Watched) -> bool {
    governor
        .namespace
        .as_deref()
        .is_some_and(|n| n.starts_with("flux-v1:"))
}

/// The commit message fluxd wrote for an automated release, when every update of `planned`
/// comes from Flux v1 annotations and the config does not set `delivery:`: `Auto-release
/// IMAGE:TAG`, or `Auto-release multiple (N) images` and a ` - IMAGE:TAG` line for each,
/// sorted, as fluxd lists them.
pub(crate) fn commit_message(
    governors: &[Watched],
    planned: &[crate::deliver::FilePlan<'_>],
    config_file: &std::path::Path,
) -> Option<String> {
    let updates: Vec<&crate::report::Update> = planned
        .iter()
        .flat_map(|f| f.changes.iter().map(|c| &c.update))
        .collect();
    let ours = |u: &&crate::report::Update| {
        governors
            .iter()
            .any(|g| is_flux_v1(g) && g.name == u.policy)
    };
    if updates.is_empty()
        || !updates.iter().all(ours)
        || crate::flux_repo::config_sets_delivery(config_file)
    {
        return None;
    }
    let mut images: Vec<String> = updates
        .iter()
        .map(|u| format!("{}:{}", u.image, u.to))
        .collect();
    images.sort();
    images.dedup();
    Some(fluxd_message(&images))
}

/// fluxd's automated-release message for `images` (sorted `IMAGE:TAG`s, at least one).
fn fluxd_message(images: &[String]) -> String {
    match images {
        [one] => format!("Auto-release {one}\n"),
        many => {
            let mut out = format!("Auto-release multiple ({}) images\n\n", many.len());
            for image in many {
                out.push_str(&format!(" - {image}\n"));
            }
            out
        }
    }
}

/// A build-time lookup's error (`crate::registry::created`, worded for Argo CD's
/// newest-build) in Flux v1's words when `governor` comes from Flux v1 annotations.
pub(crate) fn build_time_error(governor: &Watched, error: String) -> String {
    if !is_flux_v1(governor) {
        return error;
    }
    let error = error.replace(
        "narrow them with allow-tags or ignore-tags",
        "narrow them with a fluxcd.io/tag.<container> filter",
    );
    match error.strip_prefix("newest-build: ") {
        Some(rest) => format!(
            "{}: the most recently built tag wins (glob:, regex: or no filter): {rest}",
            governor.name
        ),
        None => error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{self, ScanOptions};
    use std::path::{Path, PathBuf};

    /// Discover `files` (name, text) with the config `config`: each reference's governor
    /// name (or skip reason).
    fn governed(files: &[(&str, &str)], config: &str) -> Vec<(String, String)> {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let config = crate::config::Config::parse(Path::new("c.yaml"), config).unwrap();
        let watched = config.watched(Path::new("c.yaml")).unwrap();
        let files = manifest::files::Discovered {
            files: files.iter().map(|(n, _)| PathBuf::from(n)).collect(),
            ..Default::default()
        };
        let d = crate::discover::discover(dir.path(), &files, &ScanOptions::default(), &watched);
        d.occurrences
            .iter()
            .map(|o| {
                let who = match o.governor {
                    Some(g) => d.governors[g].name.clone(),
                    None => o.reason.clone().unwrap_or_default(),
                };
                (o.image.to_string(), who)
            })
            .collect()
    }

    const DEPLOY: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  \
        namespace: demo\n  annotations:\n    fluxcd.io/automated: \"true\"\n    LOCK\nspec:\n  \
        template:\n    spec:\n      containers:\n      - name: web\n        \
        image: ghcr.io/acme/web:1.0.0\n      - name: side\n        image: nginx:1.25.0\n";

    #[test]
    fn a_config_image_overrides_the_annotations_and_a_lock_holds_all() {
        let deploy = DEPLOY.replace("LOCK", "x: y");
        let config = "images:\n  - name: web\n    image: ghcr.io/acme/web\n    \
                      policy: { semver: \"^1\" }\n";
        assert_eq!(
            governed(&[("d.yaml", &deploy)], config),
            [
                ("ghcr.io/acme/web:1.0.0".to_string(), "web".to_string()),
                (
                    "docker.io/library/nginx:1.25.0".to_string(),
                    "demo:deployment/web:side".to_string()
                ),
            ]
        );
        let locked = DEPLOY.replace("LOCK", "fluxcd.io/locked: \"true\"");
        let held = governed(&[("d.yaml", &locked)], config);
        assert!(held.iter().all(|(_, why)| why == "locked"), "{held:?}");
        // No config: the annotations are the policies.
        let free = governed(&[("d.yaml", &deploy)], "{}\n");
        assert_eq!(free[0].1, "demo:deployment/web:web");
    }

    #[test]
    fn messages_as_fluxd_wrote_them() {
        assert_eq!(
            fluxd_message(&["docker.io/acme/web:1.2.0".into()]),
            "Auto-release docker.io/acme/web:1.2.0\n"
        );
        assert_eq!(
            fluxd_message(&["a/x:1".into(), "b/y:2".into()]),
            "Auto-release multiple (2) images\n\n - a/x:1\n - b/y:2\n"
        );
    }
}
