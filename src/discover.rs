//! The discover stage: read the selected files, find every image reference in every format,
//! read the Flux image policies the repo declares, and decide which policy governs each
//! reference (or why none does).
//!
//! Who governs a reference, first match wins: the policy a Flux marker names (an
//! `images[].name`, or a Flux ImagePolicy by `NS:NAME`); the image whose configured `helm`
//! keys found it; the configured image with the same repository whose `files` globs admit the
//! file. Flux ImagePolicies govern only what their markers name, as in Flux.

use std::path::{Path, PathBuf};

use crate::config::Watched;
use crate::manifest::{self, FluxPolicy, FluxPolicyKind, FluxSortOrder, Format, Parts, Site};
use crate::policy::{Order, Policy, PolicyKind};
use crate::reference::ImageRef;
use crate::report::Skipped;

/// A file that was read.
pub(crate) struct Source {
    pub rel: String,
    pub path: PathBuf,
    pub text: String,
}

/// One image reference found in a file.
#[derive(Debug, Clone)]
pub(crate) struct Occurrence {
    /// Index into [`Discovery::sources`].
    pub file: usize,
    pub site: Site,
    /// The reference as the site holds it now (parts put together).
    pub image: ImageRef,
    /// Index into [`Discovery::governors`].
    pub governor: Option<usize>,
    /// Why it is left alone, when it is.
    pub reason: Option<String>,
}

/// What the discover stage found.
pub(crate) struct Discovery {
    pub sources: Vec<Source>,
    pub occurrences: Vec<Occurrence>,
    /// The config's images, then the Flux ImagePolicies found in the repo.
    pub governors: Vec<Watched>,
    /// Files and marker problems left alone, with why.
    pub skipped: Vec<Skipped>,
}

pub(crate) struct Sites {
    file: usize,
    sites: Vec<Site>,
}

/// Read `files` (relative to `root`) and find their references.
pub(crate) fn discover(
    root: &Path,
    files: &manifest::files::Discovered,
    options: &manifest::ScanOptions,
    watched: &[Watched],
) -> Discovery {
    let mut sources = Vec::with_capacity(files.files.len());
    let mut skipped: Vec<Skipped> = files
        .skipped
        .iter()
        .map(|(p, why)| file_skip(&rel_string(p), 0, why.clone()))
        .collect();
    let mut found: Vec<Sites> = Vec::new();
    let mut flux_policies: Vec<(String, FluxPolicy)> = Vec::new();
    let mut flux_repositories = Vec::new();
    for rel in &files.files {
        let path = root.join(rel);
        let rel = rel_string(rel);
        let text = match std::fs::read(&path).map(String::from_utf8) {
            Ok(Ok(t)) => t,
            Ok(Err(_)) => {
                skipped.push(file_skip(&rel, 0, "not UTF-8 text".into()));
                continue;
            }
            Err(e) => {
                skipped.push(file_skip(&rel, 0, format!("cannot read: {e}")));
                continue;
            }
        };
        let scan = match manifest::scan_file(Path::new(&rel), &text, options) {
            Ok(s) => s,
            Err(e) => {
                skipped.push(file_skip(&rel, e.line().unwrap_or(0), e.to_string()));
                continue;
            }
        };
        for p in scan.problems {
            skipped.push(file_skip(&rel, p.line, p.message));
        }
        flux_policies.extend(scan.flux_policies.into_iter().map(|p| (rel.clone(), p)));
        flux_repositories.extend(scan.flux_repositories);
        found.push(Sites {
            file: sources.len(),
            sites: scan.sites,
        });
        sources.push(Source { rel, path, text });
    }

    let mut governors = watched.to_vec();
    {
        let mut policies: Vec<FluxPolicy> = flux_policies.iter().map(|(_, p)| p.clone()).collect();
        manifest::flux::join(&mut policies, &flux_repositories);
        for ((file, _), p) in flux_policies.iter().zip(policies) {
            match flux_governor(&p) {
                Ok(w) => governors.push(w),
                Err(why) => skipped.push(file_skip(file, p.line, why)),
            }
        }
    }

    let mut occurrences = Vec::new();
    for Sites { file, sites } in found {
        let rel = sources[file].rel.clone();
        for site in sites {
            match occurrence(file, &rel, site, &governors) {
                Ok(o) => occurrences.push(o),
                Err(s) => skipped.push(s),
            }
        }
    }
    Discovery {
        sources,
        occurrences,
        governors,
        skipped,
    }
}

fn rel_string(p: &Path) -> String {
    p.to_string_lossy().replace('\\', "/")
}

fn file_skip(file: &str, line: usize, reason: String) -> Skipped {
    Skipped {
        image: None,
        file: file.to_string(),
        line,
        reason,
    }
}

/// A Flux ImagePolicy as a governor, or why it cannot be one.
fn flux_governor(p: &FluxPolicy) -> Result<Watched, String> {
    let who = format!(
        "ImagePolicy {}{}",
        p.namespace
            .as_deref()
            .map(|n| format!("{n}/"))
            .unwrap_or_default(),
        p.name
    );
    let image = p.image.as_deref().ok_or_else(|| {
        format!(
            "{who}: its ImageRepository {:?} is not in the repo, so its image is unknown",
            p.repository_ref
        )
    })?;
    let image = ImageRef::parse(image).map_err(|e| format!("{who}: {e}"))?;
    let order = |o: FluxSortOrder| match o {
        FluxSortOrder::Asc => Order::Asc,
        FluxSortOrder::Desc => Order::Desc,
    };
    let kind = match &p.kind {
        FluxPolicyKind::Semver(r) => PolicyKind::Semver(r.clone()),
        FluxPolicyKind::Alphabetical(o) => PolicyKind::Alphabetical(order(*o)),
        FluxPolicyKind::Numerical(o) => PolicyKind::Numerical(order(*o)),
    };
    let mut policy = Policy::new(kind, &[], false).map_err(|e| format!("{who}: {e}"))?;
    if let Some(pattern) = &p.filter_pattern {
        policy = policy
            .with_filter(pattern, p.filter_extract.as_deref())
            .map_err(|e| format!("{who}: {e}"))?;
    }
    policy = policy
        .with_exclude_regex(&p.exclusion_list)
        .map_err(|e| format!("{who}: {e}"))?;
    Ok(Watched {
        name: p.name.clone(),
        namespace: p.namespace.clone(),
        flux: true,
        image,
        policy,
        files: None,
        helm_keys: 0..0,
    })
}

/// The reference a site holds now, put together from its parts. `fallback` names the
/// repository when the site holds only a tag or digest (a marker's `:tag`, Helm keys).
fn current_reference(site: &Site, fallback: Option<&ImageRef>) -> Result<ImageRef, String> {
    let whole = match &site.parts {
        Parts::Whole(f) => f.value.clone(),
        Parts::Override { scalar, prefix } => scalar.value[prefix.len()..].to_string(),
        Parts::Split {
            registry,
            name,
            tag,
            digest,
        } => {
            let name = match (registry, name) {
                (Some(r), Some(n)) => format!("{}/{}", r.value.trim_end_matches('/'), n.value),
                (None, Some(n)) => n.value.clone(),
                (_, None) => match fallback {
                    Some(img) => img.canonical_name(),
                    None => {
                        return Err("only a tag or digest, and no policy names the image".into())
                    }
                },
            };
            let mut s = name;
            if let Some(t) = tag {
                s.push(':');
                s.push_str(&t.value);
            }
            if let Some(d) = digest {
                s.push('@');
                s.push_str(&d.value);
            }
            s
        }
    };
    ImageRef::parse(&whole).map_err(|e| e.to_string())
}

fn occurrence(
    file: usize,
    rel: &str,
    site: Site,
    governors: &[Watched],
) -> Result<Occurrence, Skipped> {
    let skip = |image: Option<String>, reason: String| Skipped {
        image,
        file: rel.to_string(),
        line: site.line,
        reason,
    };
    // A marker names its policy; configured helm keys name their image.
    let named: Option<Result<usize, String>> = if let Some(r) = &site.policy {
        let flux = governors.iter().position(|g| {
            g.flux && g.name == r.name && g.namespace.as_ref().is_none_or(|n| *n == r.namespace)
        });
        let config = governors.iter().position(|g| !g.flux && g.name == r.name);
        Some(flux.or(config).ok_or_else(|| {
            format!(
                "the marker names policy {}:{}, which is neither an images[].name nor a Flux ImagePolicy in the repo",
                r.namespace, r.name
            )
        }))
    } else {
        site.keys
            .filter(|_| matches!(site.format, Format::Helm | Format::ArgoCd))
            .and_then(|k| governors.iter().position(|g| g.helm_keys.contains(&k)))
            .map(Ok)
    };
    let named = match named {
        Some(Ok(g)) => Some(g),
        Some(Err(why)) => return Err(skip(None, why)),
        None => None,
    };
    let image = current_reference(&site, named.map(|g| &governors[g].image))
        .map_err(|why| skip(site.parts.scalars().first().map(|f| f.value.clone()), why))?;
    let (governor, mut reason) = match named {
        Some(g) => (Some(g), None),
        None => govern(&image, rel, governors),
    };
    if reason.is_none() {
        reason = unsupported(&site, &image);
    }
    Ok(Occurrence {
        file,
        site,
        image,
        governor,
        reason,
    })
}

/// Why a governed site is still left alone by this version, if it is.
fn unsupported(site: &Site, image: &ImageRef) -> Option<String> {
    match &site.parts {
        Parts::Split { tag: None, .. } => {
            Some("no tag to update (add a tag key to update it)".into())
        }
        _ if image.digest.is_some() => {
            Some("pinned by digest: digest pinning is not supported yet, left alone".into())
        }
        _ => None,
    }
}

/// The configured image governing `image` in `file`, or why none does.
fn govern(image: &ImageRef, file: &str, governors: &[Watched]) -> (Option<usize>, Option<String>) {
    let name = image.canonical_name();
    let mut restricted = false;
    for (i, w) in governors.iter().enumerate() {
        if w.flux || w.image.canonical_name() != name {
            continue;
        }
        if w.files.as_ref().is_some_and(|g| !g.is_match(file)) {
            restricted = true;
            continue;
        }
        return (Some(i), None);
    }
    let reason = if restricted {
        "no policy for this file (images[].files excludes it)"
    } else {
        "no policy"
    };
    (None, Some(reason.to_string()))
}

/// The edits that move `occ` to `new_tag`: each scalar of the site that must change, with its
/// new value. `governor` is the image the policy watches.
pub(crate) fn edits_for(
    occ: &Occurrence,
    governor: &ImageRef,
    new_tag: &str,
) -> Vec<manifest::edit::Edit> {
    use manifest::edit::Edit;
    let edit = |f: &manifest::Found, v: String| Edit {
        span: f.span.clone(),
        new_value: v,
    };
    match &occ.site.parts {
        Parts::Whole(f) => vec![edit(f, occ.image.with_tag(new_tag, None))],
        Parts::Override { scalar, prefix } => {
            vec![edit(
                scalar,
                format!("{prefix}{}", occ.image.with_tag(new_tag, None)),
            )]
        }
        Parts::Split {
            registry,
            name,
            tag,
            ..
        } => {
            let mut out = Vec::new();
            if let Some(t) = tag {
                out.push(edit(t, new_tag.to_string()));
            }
            // A marker may point a `:name` (or a kustomize newName) at another repository.
            if let (Some(n), None) = (name, registry) {
                let renamable =
                    occ.site.format != Format::Kustomize || n.path.ends_with(".newName");
                let differs = occ.image.canonical_name() != governor.canonical_name();
                if renamable && differs && occ.site.policy.is_some() {
                    out.push(edit(n, governor.written_name.clone()));
                }
            }
            out
        }
    }
}
