//! The discover stage: read the selected files, find every image reference in every format,
//! read the Flux image policies the repo declares, and decide which policy governs each
//! reference (or why none does).
//!
//! Who governs a reference, first match wins: the policy a Flux marker names (an
//! `images[].name`, or a Flux ImagePolicy by `NS:NAME`); the image whose configured `helm`
//! keys found it; the configured image with the same repository whose `files` globs admit the
//! file ([`govern`]). Flux ImagePolicies govern only what their markers name, as in Flux.
//!
//! Configured images are the exact `images[]` entries, then the prefix entries
//! (`ghcr.io/acme/*`) made governors of the repositories found under them that no exact entry
//! names ([`prefix_governors`]; only the longest matching prefix, so a longer prefix beats a
//! shorter one). They all come before the repo's own objects: Flux v1 annotations and Argo CD
//! Image Updater annotations yield to them, as to exact entries. `image: "*"` governs what is
//! still ungoverned afterwards (`crate::outdated::govern_unwatched`).

use std::path::{Path, PathBuf};

use crate::config::{most_specific, Watched, Wildcard};
use crate::manifest::{self, FluxPolicy, FluxPolicyKind, FluxSortOrder, Format, Parts, Site};
use crate::policy::{Order, Policy, PolicyError, PolicyKind};
use crate::reference::{ImageRef, ReferenceError};
use crate::report::{SkipKind, Skipped};

/// A file that was read.
pub(crate) struct Source {
    pub rel: String,
    pub path: PathBuf,
    pub text: String,
    /// Not in the work tree: `text` is the file a write-back would create, with the current
    /// values (argocd-image-updater's `.argocd-source-<app>.yaml`; see `crate::argocd_objects`).
    pub created: bool,
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
    /// Issue 16: the repo's Flux automations and policy scopes (crate::flux_repo).
    pub flux: crate::flux_repo::FluxObjects,
    /// What the repo's own objects ask for and cannot be honoured (argocd-image-updater).
    pub errors: Vec<crate::report::ErrorEntry>,
    /// Issue 18: chart versions and Flux HelmRepositories, for `crate::charts::govern`.
    pub charts: crate::charts::Found,
}

pub(crate) struct Sites {
    file: usize,
    sites: Vec<Site>,
}

/// Read `files` (relative to `root`) and find their references.
///
/// Files are read and scanned in parallel, one worker per core taking the next file as it
/// finishes; results are put back in `files` order, so the output never depends on timing.
/// A file that is not UTF-8 or holds a NUL byte is skipped with its reason ([`as_text`]); a
/// file whose bytes cannot hold an image ([`Prefilter`]) is not parsed at all; and only the
/// texts of files with references are kept (they are what gets rewritten).
pub(crate) fn discover(
    root: &Path,
    files: &manifest::files::Discovered,
    options: &manifest::ScanOptions,
    watched: &[Watched],
) -> Discovery {
    discover_with_prefixes(root, files, options, watched, &[])
}

/// [`discover`], with the config's prefix entries (`ghcr.io/acme/*`) governing the
/// repositories under them that no exact entry names.
pub(crate) fn discover_with_prefixes(
    root: &Path,
    files: &manifest::files::Discovered,
    options: &manifest::ScanOptions,
    watched: &[Watched],
    prefixes: &[Wildcard],
) -> Discovery {
    let mut sources = Vec::new();
    let mut skipped: Vec<Skipped> = files
        .skipped
        .iter()
        .map(|(p, why)| file_skip(&rel_string(p), 0, why.clone()))
        .collect();
    let mut found: Vec<Sites> = Vec::new();
    let mut flux_policies: Vec<(String, FluxPolicy)> = Vec::new();
    let mut flux_repositories = Vec::new();
    let mut argocd_apps = Vec::new(); // argocd-image-updater
    let mut flux_v1 = Vec::new(); // issue 21: Flux v1 annotated workloads
    let mut charts = crate::charts::Found::default(); // issue 18
    let prefilter = Prefilter::new(options);
    let gitlab = manifest::ci_yaml::gitlab_included(&files.files, |f| {
        std::fs::read_to_string(root.join(f)).ok()
    });
    let scanned = scan_all(root, &files.files, options, &prefilter, &gitlab);
    for (rel, scanned) in files.files.iter().zip(scanned) {
        let rel = rel_string(rel);
        let (text, scan) = match scanned {
            Scanned::Nothing => continue,
            Scanned::Skip { line, reason } => {
                skipped.push(file_skip(&rel, line, reason));
                continue;
            }
            Scanned::Found { text, scan } => (text, scan),
        };
        for p in scan.problems {
            let kind = match p.about {
                manifest::ProblemAbout::Marker => SkipKind::Marker,
                manifest::ProblemAbout::FluxObject => SkipKind::Policy,
                manifest::ProblemAbout::Reference => SkipKind::Reference,
            };
            skipped.push(Skipped {
                kind,
                ..file_skip(&rel, p.line, p.message)
            });
        }
        flux_policies.extend(scan.flux_policies.into_iter().map(|p| (rel.clone(), p)));
        flux_repositories.extend(scan.flux_repositories);
        // argocd-image-updater: annotated Applications, or why their annotations cannot be read.
        for app in scan.argocd_apps {
            argocd_apps.push((rel.clone(), app));
        }
        flux_v1.extend(scan.flux_v1.into_iter().map(|w| (rel.clone(), w)));
        charts.repositories.extend(scan.helm_repositories);
        if scan.sites.is_empty() && scan.charts.is_empty() {
            continue;
        }
        charts
            .sites
            .extend(scan.charts.into_iter().map(|c| (sources.len(), c)));
        found.push(Sites {
            file: sources.len(),
            sites: scan.sites,
        });
        sources.push(Source {
            path: root.join(&rel),
            rel,
            text,
            created: false,
        });
    }

    // Flux objects are read from the whole repo: `paths` limits only what is rewritten.
    let outside = crate::flux_repo::image_objects(root, &files.outside_paths);
    flux_policies.extend(outside.policies);
    flux_repositories.extend(outside.repositories);
    for (file, p) in outside.problems {
        skipped.push(Skipped {
            kind: SkipKind::Policy,
            ..file_skip(&file, p.line, p.message)
        });
    }
    let every_file: Vec<PathBuf> = files
        .files
        .iter()
        .chain(&files.outside_paths)
        .cloned()
        .collect();
    let mut governors = watched.to_vec();
    governors.extend(prefix_governors(&found, watched, prefixes));
    // The config's governors, exact and prefix entries: they come first.
    let configured = governors.len();
    // Issue 16 (flux_repo): the repo's ImageUpdateAutomations and ImagePolicy metadata.
    let mut flux = crate::flux_repo::FluxObjects::collect(root, &every_file);
    {
        let mut policies: Vec<FluxPolicy> = flux_policies.iter().map(|(_, p)| p.clone()).collect();
        manifest::flux::join(&mut policies, &flux_repositories);
        for ((file, _), p) in flux_policies.iter().zip(policies.clone()) {
            match flux_governor(&p) {
                Ok(w) => {
                    // Issue 16 (flux_repo): where each Flux governor is declared.
                    flux.note_governor(governors.len(), file, p.line, p.namespace.as_deref());
                    governors.push(w)
                }
                Err(why) => skipped.push(Skipped {
                    kind: SkipKind::Policy,
                    ..file_skip(file, p.line, why.to_string())
                }),
            }
        }
        // Issue 16 (flux_repo, kustomize_patch): ImagePolicies as the overlays patch them.
        let declared: Vec<(String, FluxPolicy)> = flux_policies
            .iter()
            .map(|(f, _)| f.clone())
            .zip(policies)
            .collect();
        flux.add_overlay_policies(root, &every_file, &declared, &mut governors, flux_governor);
        flux.apply_policy_settings(&mut governors);
    }

    // Each governor's repository name, formatted once rather than once per reference.
    let names: Vec<String> = governors.iter().map(|g| g.image.canonical_name()).collect();
    let mut occurrences = Vec::new();
    for Sites { file, sites } in found {
        let rel = sources[file].rel.clone();
        for site in sites {
            match occurrence(file, &rel, site, &governors, &names) {
                Ok(o) => occurrences.push(o),
                Err(s) => skipped.push(s),
            }
        }
    }
    // Issue 16 (flux_repo): each marker's ImagePolicy as the cluster sees it, and the
    // automation's update.path and suspend.
    flux.scope(&mut occurrences, |f| sources[f].rel.clone(), &governors);
    // Issue 21: Flux v1 annotations govern (or lock) their workloads' containers.
    crate::flux_v1::apply(&flux_v1, &sources, &mut occurrences, &mut governors);
    // argocd-image-updater: annotated Applications govern their write-back targets.
    let mut errors = Vec::new();
    let apps = crate::argocd_objects::read_apps(argocd_apps, &mut errors);
    crate::argocd_objects::apply(
        root,
        &apps,
        &mut crate::argocd_objects::Found {
            sources: &mut sources,
            occurrences: &mut occurrences,
            governors: &mut governors,
            configured,
            errors: &mut errors,
        },
    );
    Discovery {
        sources,
        occurrences,
        governors,
        skipped,
        flux,
        errors,
        charts,
    }
}

/// What reading and scanning one file gave.
enum Scanned {
    /// Its bytes cannot hold an image: not parsed.
    Nothing,
    /// It is left alone: unreadable, not UTF-8, binary (a NUL byte), not YAML.
    Skip { line: usize, reason: String },
    /// Its text and what the scan found.
    Found {
        text: String,
        scan: manifest::FileScan,
    },
}

/// A cheap byte test run before parsing: a file can hold an image reference, a Flux marker
/// or a Flux image object only if it contains `image` (which also covers `images:`,
/// `$imagepolicy`, `ImagePolicy`, `ImageRepository`) or `repository` (Helm values), in any
/// case, or the last key of a configured Helm key path or Argo CD parameter name (which
/// may be anything, `version` say). Files without any of these are not parsed. (A key
/// spelled with YAML escapes, `"\x69mage"`, would slip past it; no manifest does that.)
pub(crate) struct Prefilter(regex::bytes::Regex);

impl Prefilter {
    pub(crate) fn new(options: &manifest::ScanOptions) -> Prefilter {
        // "argoproj.io": Argo CD Applications, which an argocd-image-updater ImageUpdater
        // may select whatever they hold.
        let mut needles = vec![
            "image".to_string(),
            "repository".to_string(),
            "argoproj.io".to_string(),
        ];
        if options.charts {
            // Issue 18: kustomize `helmCharts:` and Chart.yaml `dependencies:` (whose
            // `repo:`/`version:` keys hold neither needle); the other chart shapes name a
            // HelmRepository, an OCIRepository or an Argo CD Application.
            needles.extend(["helmCharts".to_string(), "dependencies".to_string()]);
        }
        for keys in options.helm.iter().chain(&options.argocd_helm_params) {
            let paths = [
                &keys.registry,
                &keys.repository,
                &keys.tag,
                &keys.digest,
                &keys.spec,
            ];
            for path in paths.into_iter().flatten() {
                let leaf = path.rsplit('.').next().unwrap_or(path);
                let leaf = leaf.split('[').next().unwrap_or(leaf);
                if !leaf.is_empty() && !needles.iter().any(|n| n.eq_ignore_ascii_case(leaf)) {
                    needles.push(leaf.to_string());
                }
            }
        }
        let pattern: Vec<String> = needles.iter().map(|n| regex::escape(n)).collect();
        let re = regex::bytes::RegexBuilder::new(&pattern.join("|"))
            .case_insensitive(true)
            .unicode(false)
            .build()
            .expect("escaped literals always compile");
        Prefilter(re)
    }

    /// Whether `bytes` may hold something the scan finds.
    pub(crate) fn may_hold_images(&self, bytes: &[u8]) -> bool {
        self.0.is_match(bytes)
    }
}

/// The bytes of a file as text, or the line and reason why they are not YAML text: not
/// UTF-8 (UTF-16 and UTF-32 named by their byte-order mark), or holding a NUL byte, which
/// YAML forbids and binary files are full of. Run on every file before the [`Prefilter`], so
/// that a binary or mis-encoded file with a `.yaml` name is reported even when it holds no
/// image text. Both checks are linear and fast (UTF-8 validation, which parsing needs anyway,
/// then `<[u8]>::contains`, a memchr, for NUL); only the failure path counts lines.
fn as_text(bytes: Vec<u8>) -> Result<String, (usize, String)> {
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let bytes = e.as_bytes();
            let at = e.utf8_error().valid_up_to();
            let encoding = [
                (&[0xFF, 0xFE, 0, 0][..], "UTF-32LE"),
                (&[0, 0, 0xFE, 0xFF][..], "UTF-32BE"),
                (&[0xFF, 0xFE][..], "UTF-16LE"),
                (&[0xFE, 0xFF][..], "UTF-16BE"),
            ]
            .into_iter()
            .find(|(bom, _)| bytes.starts_with(bom));
            return Err(match encoding {
                Some((_, name)) => (
                    1,
                    format!(
                        "not UTF-8 text: {name} (byte-order mark at line 1), only UTF-8 is read"
                    ),
                ),
                None => {
                    let (line, column) = line_column(bytes, at);
                    (
                        line,
                        format!(
                            "not UTF-8 text: invalid byte 0x{:02X} at line {line}, column \
                             {column} (a binary file?)",
                            bytes[at]
                        ),
                    )
                }
            });
        }
    };
    if text.as_bytes().contains(&0) {
        let at = text.bytes().position(|b| b == 0).unwrap_or_default();
        let (line, column) = line_column(text.as_bytes(), at);
        return Err((
            line,
            format!("not YAML text: a NUL byte at line {line}, column {column} (a binary file?)"),
        ));
    }
    Ok(text)
}

/// 1-based line and column (in characters) of byte `at` of `bytes`, valid UTF-8 before it.
fn line_column(bytes: &[u8], at: usize) -> (usize, usize) {
    let before = &bytes[..at];
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, column)
}

/// Read and scan one file.
fn scan_one(
    root: &Path,
    rel: &Path,
    options: &manifest::ScanOptions,
    prefilter: &Prefilter,
    gitlab: bool,
) -> Scanned {
    let bytes = match std::fs::read(root.join(rel)) {
        Ok(b) => b,
        Err(e) => {
            return Scanned::Skip {
                line: 0,
                reason: format!("cannot read: {e}"),
            }
        }
    };
    let text = match as_text(bytes) {
        Ok(text) => text,
        Err((line, reason)) => return Scanned::Skip { line, reason },
    };
    if !gitlab && !manifest::always_scanned(rel) && !prefilter.may_hold_images(text.as_bytes()) {
        return Scanned::Nothing;
    }
    match manifest::sites::scan_file_as(rel, &text, options, gitlab) {
        Ok(scan) => Scanned::Found { text, scan },
        Err(e) => Scanned::Skip {
            line: e.line().unwrap_or(0),
            reason: e.to_string(),
        },
    }
}

/// [`scan_one`] over `files` on every core (one for a handful of files), results in `files`
/// order. `gitlab` holds the GitLab CI pipeline files (`.gitlab-ci.yml` and its includes).
fn scan_all(
    root: &Path,
    files: &[PathBuf],
    options: &manifest::ScanOptions,
    prefilter: &Prefilter,
    gitlab: &std::collections::HashSet<PathBuf>,
) -> Vec<Scanned> {
    let workers = crate::parallel::cores().min(files.len() / 16);
    crate::parallel::map_in_order(files, workers, |f| {
        scan_one(root, f, options, prefilter, gitlab.contains(f))
    })
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
        kind: SkipKind::File,
    }
}

/// Why a Flux ImagePolicy cannot govern; `who` names it (`ImagePolicy NS/NAME`).
#[derive(Debug, thiserror::Error)]
enum GovernorError {
    #[error(
        "{who}: its ImageRepository {repository:?} is not in the repo, so its image is unknown"
    )]
    NoImage { who: String, repository: String },
    #[error("{who}: {source}")]
    Reference {
        who: String,
        #[source]
        source: ReferenceError,
    },
    #[error("{who}: {source}")]
    Policy {
        who: String,
        #[source]
        source: PolicyError,
    },
}

/// Why a site's current reference cannot be put together.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CurrentError {
    #[error("only a tag or digest, and no policy names the image")]
    NoName,
    #[error(transparent)]
    Reference(#[from] ReferenceError),
}

/// A marker naming a policy that is not there.
#[derive(Debug, thiserror::Error)]
#[error(
    "the marker names policy {namespace}:{name}, which is neither an images[].name nor a Flux ImagePolicy in the repo"
)]
struct UnknownPolicy {
    namespace: String,
    name: String,
}

/// A Flux ImagePolicy as a governor, or why it cannot be one.
fn flux_governor(p: &FluxPolicy) -> Result<Watched, GovernorError> {
    let who = format!(
        "ImagePolicy {}{}",
        p.namespace
            .as_deref()
            .map(|n| format!("{n}/"))
            .unwrap_or_default(),
        p.name
    );
    let image = p.image.as_deref().ok_or_else(|| GovernorError::NoImage {
        who: who.clone(),
        repository: p.repository_ref.clone(),
    })?;
    let image = ImageRef::parse(image).map_err(|source| GovernorError::Reference {
        who: who.clone(),
        source,
    })?;
    let policy_error = |source| GovernorError::Policy {
        who: who.clone(),
        source,
    };
    let order = |o: FluxSortOrder| match o {
        FluxSortOrder::Asc => Order::Asc,
        FluxSortOrder::Desc => Order::Desc,
    };
    let kind = match &p.kind {
        FluxPolicyKind::Semver(r) => PolicyKind::Semver(r.clone()),
        FluxPolicyKind::Alphabetical(o) => PolicyKind::Alphabetical(order(*o)),
        FluxPolicyKind::Numerical(o) => PolicyKind::Numerical(order(*o)),
    };
    // Issue 16: Flux sets a marked field to the policy's latest tag, even a lower one (its
    // documented revert when a range is narrowed): downgrades are allowed for Flux policies.
    let mut policy = Policy::new(kind, &[], true).map_err(policy_error)?;
    if let Some(pattern) = &p.filter_pattern {
        policy = policy
            .with_filter(pattern, p.filter_extract.as_deref())
            .map_err(policy_error)?;
    }
    policy = policy
        .with_exclude_regex(&p.exclusion_list)
        .map_err(policy_error)?;
    Ok(Watched {
        name: p.name.clone(),
        namespace: p.namespace.clone(),
        flux: true,
        image,
        policy,
        files: None,
        helm_keys: 0..0,
        pin_digest: false,
        platforms: Vec::new(),
        newest_build: false,
        rule: None,
    })
}

/// The reference a site holds now, put together from its parts. `fallback` names the
/// repository when the site holds only a tag or digest (a marker's `:tag`, Helm keys).
pub(crate) fn current_reference(
    site: &Site,
    fallback: Option<&ImageRef>,
) -> Result<ImageRef, CurrentError> {
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
                    None => return Err(CurrentError::NoName),
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
    Ok(ImageRef::parse(&whole)?)
}

fn occurrence(
    file: usize,
    rel: &str,
    site: Site,
    governors: &[Watched],
    names: &[String],
) -> Result<Occurrence, Skipped> {
    let skip = |image: Option<String>, reason: String| Skipped {
        image,
        file: rel.to_string(),
        line: site.line,
        reason,
        kind: SkipKind::Reference,
    };
    // A marker names its policy; configured helm keys name their image.
    let named: Option<Result<usize, UnknownPolicy>> = if let Some(r) = &site.policy {
        let flux = governors.iter().position(|g| {
            g.flux && g.name == r.name && g.namespace.as_ref().is_none_or(|n| *n == r.namespace)
        });
        let config = governors.iter().position(|g| !g.flux && g.name == r.name);
        Some(flux.or(config).ok_or_else(|| UnknownPolicy {
            namespace: r.namespace.clone(),
            name: r.name.clone(),
        }))
    } else {
        site.keys
            .filter(|_| matches!(site.format, Format::Helm | Format::ArgoCd))
            .and_then(|k| governors.iter().position(|g| g.helm_keys.contains(&k)))
            .map(Ok)
    };
    let named = match named {
        Some(Ok(g)) => Some(g),
        // The marker's reference is left alone, for the marker's sake.
        Some(Err(why)) => {
            return Err(Skipped {
                kind: SkipKind::Marker,
                ..skip(Some(as_written(&site)), why.to_string())
            })
        }
        None => None,
    };
    let fallback = named.map(|g| &governors[g].image);
    let image = current_reference(&site, fallback)
        .or_else(|why| marker_over_bad_digest(&site, fallback).ok_or(why))
        .map_err(|why| {
            skip(
                site.parts.scalars().first().map(|f| f.value.clone()),
                why.to_string(),
            )
        })?;
    let (governor, mut reason) = match named {
        Some(g) => (Some(g), None),
        None => govern(&image, rel, governors, names),
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

/// The reference of a marker site whose `:digest` scalar holds no valid digest (`latest`,
/// `""`, a truncated one): the site read without it, so that the digest is overwritten, as
/// Flux does. `None` when the site is no such marker site or is unreadable even so.
fn marker_over_bad_digest(site: &Site, fallback: Option<&ImageRef>) -> Option<ImageRef> {
    let Parts::Split {
        registry,
        name,
        tag,
        digest: Some(_),
    } = &site.parts
    else {
        return None;
    };
    site.policy.as_ref()?;
    let without = Site {
        parts: Parts::Split {
            registry: registry.clone(),
            name: name.clone(),
            tag: tag.clone(),
            digest: None,
        },
        ..site.clone()
    };
    current_reference(&without, fallback).ok()
}

/// A site's reference as the manifest writes it: its scalars' values, put together when they
/// are separate (a `:tag` marker's scalar holds the tag alone).
fn as_written(site: &Site) -> String {
    match current_reference(site, None) {
        Ok(image) => match &site.parts {
            Parts::Whole(f) => f.value.clone(),
            _ => image.to_string(),
        },
        Err(_) => site
            .parts
            .scalars()
            .iter()
            .map(|f| f.value.as_str())
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// Why a governed site is left alone whatever its policy, if it is.
fn unsupported(site: &Site, _image: &ImageRef) -> Option<String> {
    match &site.parts {
        Parts::Split {
            tag: None,
            digest: None,
            ..
        } => Some("no tag to update (add a tag key to update it)".into()),
        _ => None,
    }
}

/// The prefix entries as governors of the repositories `found` refers to that no exact entry
/// names: for each, in order of first reference, one governor per entry of its longest
/// matching prefix ([`most_specific`]; several when entries share it with other `files`).
/// [`govern`] then picks among them as among exact entries. References a marker or
/// configured Helm keys name are governed by those, and are not looked at.
fn prefix_governors(found: &[Sites], watched: &[Watched], prefixes: &[Wildcard]) -> Vec<Watched> {
    if prefixes.is_empty() {
        return Vec::new();
    }
    let exact: std::collections::HashSet<String> =
        watched.iter().map(|w| w.image.canonical_name()).collect();
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for site in found.iter().flat_map(|s| &s.sites) {
        if site.policy.is_some() || site.keys.is_some() {
            continue;
        }
        let Ok(image) = current_reference(site, None) else {
            continue;
        };
        let name = image.canonical_name();
        if exact.contains(&name) || !seen.insert(name.clone()) {
            continue;
        }
        let Ok(repository) = ImageRef::parse(&name) else {
            continue;
        };
        for entry in most_specific(prefixes, &name) {
            out.push(entry.govern(repository.clone()));
        }
    }
    out
}

/// The configured image governing `image` in `file`, or why none does. `names` holds each
/// governor's canonical name.
fn govern(
    image: &ImageRef,
    file: &str,
    governors: &[Watched],
    names: &[String],
) -> (Option<usize>, Option<String>) {
    let name = image.canonical_name();
    let mut restricted = false;
    for (i, w) in governors.iter().enumerate() {
        if w.flux || names[i] != name {
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

/// Whether moving `occ` on also writes `governor`'s name over the one the site holds: a Flux
/// marker (whole reference, or `:name`/kustomize `newName` without a separate registry) whose
/// policy watches another image is set to the policy's image, as Flux does.
pub(crate) fn renames(occ: &Occurrence, governor: &ImageRef) -> bool {
    let renamable = match &occ.site.parts {
        Parts::Whole(_) => true,
        Parts::Split {
            name: Some(n),
            registry: None,
            ..
        } => occ.site.format != Format::Kustomize || n.path.ends_with(".newName"),
        _ => false,
    };
    renamable
        && occ.site.policy.is_some()
        && occ.image.canonical_name() != governor.canonical_name()
}

/// The edits that move `occ` to `new_tag` (pinned to `digest` when given): each scalar of the
/// site that must change, with its new value. `governor` is the image the policy watches.
pub(crate) fn edits_for(
    occ: &Occurrence,
    governor: &ImageRef,
    new_tag: &str,
    digest: Option<&str>,
) -> Vec<manifest::edit::Edit> {
    use manifest::edit::Edit;
    let edit = |f: &manifest::Found, v: String| Edit {
        span: f.span.clone(),
        new_value: v,
    };
    match &occ.site.parts {
        // A whole-reference marker is set to its policy's image, as Flux does.
        Parts::Whole(f) if renames(occ, governor) => {
            vec![edit(f, governor.with_tag(new_tag, digest))]
        }
        Parts::Whole(f) => vec![edit(f, occ.image.with_tag(new_tag, digest))],
        Parts::Override { scalar, prefix } => {
            vec![edit(
                scalar,
                format!("{prefix}{}", occ.image.with_tag(new_tag, digest)),
            )]
        }
        Parts::Split {
            name,
            tag,
            digest: digest_part,
            ..
        } => {
            let mut out = Vec::new();
            if let Some(t) = tag.as_ref().filter(|t| t.value != new_tag) {
                out.push(edit(t, new_tag.to_string()));
            }
            if let (Some(d), Some(new)) = (digest_part, digest) {
                if d.value != new {
                    out.push(edit(d, new.to_string()));
                }
            }
            // A marker may point a `:name` (or a kustomize newName) at another repository.
            if let (Some(n), true) = (name, renames(occ, governor)) {
                out.push(edit(n, governor.written_name.clone()));
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{HelmKeys, ScanOptions};

    #[test]
    fn prefilter_passes_every_way_an_image_can_be_written() {
        let plain = Prefilter::new(&ScanOptions::default());
        for text in [
            "containers:\n- image: nginx:1.27\n",
            "images:\n- name: web\n  newTag: 1.2.3\n",
            "x: 1 # {\"$imagepolicy\": \"flux-system:web\"}\n",
            "kind: ImagePolicy\n",
            "image: {repository: acme/web, tag: 1.0.0}\n",
            "chart:\n  repository: acme/web\n  tag: 1.0.0\n",
            "IMAGE: web\n",
        ] {
            assert!(plain.may_hold_images(text.as_bytes()), "{text}");
        }
        for text in [
            "apiVersion: v1\nkind: Service\nspec:\n  ports: [{port: 80}]\n",
            "apiVersion: v1\nkind: ConfigMap\ndata:\n  version: 1.2.3\n",
            "",
        ] {
            assert!(!plain.may_hold_images(text.as_bytes()), "{text}");
        }
        // A configured key path makes its last key a needle.
        let keyed = Prefilter::new(&ScanOptions {
            helm: vec![HelmKeys {
                repository: Some("app.repo".into()),
                tag: Some("sidecars[0].app.version".into()),
                ..HelmKeys::default()
            }],
            argocd_helm_params: vec![HelmKeys {
                tag: Some("server.release".into()),
                ..HelmKeys::default()
            }],
            charts: false,
        });
        assert!(keyed.may_hold_images(b"app:\n  version: 1.2.3\n"));
        assert!(keyed.may_hold_images(b"app:\n  repo: acme/web\n"));
        assert!(keyed.may_hold_images(b"- name: server.release\n  value: 1.0.0\n"));
        assert!(!keyed.may_hold_images(b"kind: Service\n"));
    }

    #[test]
    fn bytes_that_are_not_yaml_text_say_where_and_why() {
        let reason = |bytes: &[u8]| as_text(bytes.to_vec()).unwrap_err();
        assert_eq!(
            reason(b"a: 1\nb: x\xffy\n"),
            (
                2,
                "not UTF-8 text: invalid byte 0xFF at line 2, column 5 (a binary file?)".into()
            )
        );
        assert_eq!(
            reason(b"\x89PNG\r\n\x1a\n\0\0"),
            (
                1,
                "not UTF-8 text: invalid byte 0x89 at line 1, column 1 (a binary file?)".into()
            )
        );
        // Columns count characters, not bytes.
        assert_eq!(reason("é: \0".as_bytes()).0, 1);
        assert!(reason("é: \0".as_bytes()).1.contains("line 1, column 4"));
        assert_eq!(
            reason(b"kind: Service\n\x7fELF\x02\x01\x01\0\0\0"),
            (
                2,
                "not YAML text: a NUL byte at line 2, column 8 (a binary file?)".into()
            )
        );
        assert!(reason(b"\xff\xfek\0:\0")
            .1
            .contains("UTF-16LE (byte-order mark at line 1), only UTF-8 is read"));
        assert!(reason(b"\xfe\xff\0k").1.contains("UTF-16BE"));
        assert!(reason(b"\xff\xfe\0\0k\0\0\0").1.contains("UTF-32LE"));
        assert!(reason(b"\0\0\xfe\xff\0\0\0k").1.contains("UTF-32BE"));
        // Text, with a BOM, CRLF, control characters YAML rejects later, or nothing at all.
        for ok in [&b"\xef\xbb\xbfa: 1\r\n"[..], b"a: \x07\n", b""] {
            assert_eq!(as_text(ok.to_vec()).unwrap().as_bytes(), ok);
        }
    }

    #[test]
    fn binary_files_are_skipped_with_a_reason_even_without_image_text() {
        let dir = tempfile::tempdir().unwrap();
        let files: &[(&str, &[u8])] = &[
            ("png.yaml", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
            ("nul.yaml", b"kind: Service\nspec: {}\n\0"),
            ("latin1.yaml", b"kind: ConfigMap\ndata: {name: Jos\xe9}\n"),
            ("utf16.yaml", b"\xff\xfek\0i\0n\0d\0"),
            ("service.yaml", b"kind: Service\nspec: [unclosed\n"),
            ("deploy.yaml", b"containers:\n  - image: acme/web:1.0\n"),
        ];
        let mut rels = Vec::new();
        for (name, bytes) in files {
            std::fs::write(dir.path().join(name), bytes).unwrap();
            rels.push(PathBuf::from(name));
        }
        let files = manifest::files::Discovered {
            files: rels,
            ..Default::default()
        };
        let d = discover(dir.path(), &files, &ScanOptions::default(), &[]);
        let skipped: Vec<(&str, usize, &str)> = d
            .skipped
            .iter()
            .map(|s| (s.file.as_str(), s.line, s.reason.as_str()))
            .collect();
        assert_eq!(
            skipped,
            [
                (
                    "png.yaml",
                    1,
                    "not UTF-8 text: invalid byte 0x89 at line 1, column 1 (a binary file?)"
                ),
                (
                    "nul.yaml",
                    3,
                    "not YAML text: a NUL byte at line 3, column 1 (a binary file?)"
                ),
                (
                    "latin1.yaml",
                    2,
                    "not UTF-8 text: invalid byte 0xE9 at line 2, column 17 (a binary file?)"
                ),
                (
                    "utf16.yaml",
                    1,
                    "not UTF-8 text: UTF-16LE (byte-order mark at line 1), only UTF-8 is read"
                ),
            ]
        );
        // The broken Service holds no image text: not parsed, not reported; the Deployment is
        // found as before.
        assert_eq!(d.occurrences.len(), 1);
        assert_eq!(d.sources[0].rel, "deploy.yaml");
    }

    #[test]
    fn parallel_discovery_keeps_file_order_and_reads_only_what_can_hold_images() {
        let dir = tempfile::tempdir().unwrap();
        let mut rels = Vec::new();
        for i in 0..200 {
            let rel = PathBuf::from(format!("f{i:03}.yaml"));
            let text = match i % 4 {
                0 => format!("containers:\n  - name: c\n    image: acme/app{i}:1.0.{i}\n"),
                1 => "kind: Service\nspec: {ports: [{port: 80}]}\n".to_string(),
                // Broken YAML that cannot hold an image: not parsed, so not reported.
                2 => "kind: Service\nspec: [unclosed\n".to_string(),
                _ => "containers:\n  - image: [unclosed\n".to_string(),
            };
            std::fs::write(dir.path().join(&rel), text).unwrap();
            rels.push(rel);
        }
        let files = manifest::files::Discovered {
            files: rels,
            ..Default::default()
        };
        let d = discover(dir.path(), &files, &ScanOptions::default(), &[]);
        let rels: Vec<&str> = d.sources.iter().map(|s| s.rel.as_str()).collect();
        let want: Vec<String> = (0..200)
            .step_by(4)
            .map(|i| format!("f{i:03}.yaml"))
            .collect();
        assert_eq!(rels, want);
        let images: Vec<String> = d.occurrences.iter().map(|o| o.image.to_string()).collect();
        let want: Vec<String> = (0..200)
            .step_by(4)
            .map(|i| format!("docker.io/acme/app{i}:1.0.{i}"))
            .collect();
        assert_eq!(images, want);
        let skipped: Vec<&str> = d
            .skipped
            .iter()
            .filter(|s| s.image.is_none())
            .map(|s| s.file.as_str())
            .collect();
        let want: Vec<String> = (3..200)
            .step_by(4)
            .map(|i| format!("f{i:03}.yaml"))
            .collect();
        assert_eq!(skipped, want);
    }

    #[test]
    fn prefix_entries_govern_what_no_exact_entry_names_longest_prefix_first() {
        let dir = tempfile::tempdir().unwrap();
        let deploy = "containers:\n\
                      \x20 - image: ghcr.io/acme/web:1.0.0\n\
                      \x20 - image: ghcr.io/acme/api:1.0.0\n\
                      \x20 - image: ghcr.io/acme/team/worker:1.0.0\n\
                      \x20 - image: ghcr.io/acme/db:1.0.0\n\
                      \x20 - image: ghcr.io/other/x:1.0.0\n\
                      \x20 - image: acme/hub:1.0.0\n";
        std::fs::create_dir_all(dir.path().join("dev")).unwrap();
        std::fs::write(dir.path().join("deploy.yaml"), deploy).unwrap();
        std::fs::write(dir.path().join("dev/deploy.yaml"), deploy).unwrap();
        let config = crate::config::Config::parse(
            Path::new("cfg.yaml"),
            "images:\n\
             \x20 - {name: acme, image: 'ghcr.io/acme/*', policy: {semver: '^1'}}\n\
             \x20 - {name: team, image: 'ghcr.io/acme/team/*', policy: {semver: '^1'}}\n\
             \x20 - {name: web, image: ghcr.io/acme/web, policy: {semver: '^1'}}\n\
             \x20 - {name: db, image: ghcr.io/acme/db, policy: {semver: '^1'}, files: ['dev/**']}\n\
             \x20 - {name: hub, image: 'docker.io/acme/*', policy: {semver: '^1'}}\n",
        )
        .unwrap();
        let file = Path::new("cfg.yaml");
        let watched = config.watched(file).unwrap();
        let prefixes = config.prefixes(file).unwrap();
        let files = manifest::files::Discovered {
            files: vec![
                PathBuf::from("deploy.yaml"),
                PathBuf::from("dev/deploy.yaml"),
            ],
            ..Default::default()
        };
        let d = discover_with_prefixes(
            dir.path(),
            &files,
            &ScanOptions::default(),
            &watched,
            &prefixes,
        );
        let got: Vec<(String, String, String, String)> = d
            .occurrences
            .iter()
            .map(|o| {
                let g = o.governor.map(|g| &d.governors[g]);
                (
                    d.sources[o.file].rel.clone(),
                    o.image.canonical_name(),
                    g.map_or("-".into(), |g| g.name.clone()),
                    g.and_then(|g| g.rule.clone())
                        .or_else(|| o.reason.clone())
                        .unwrap_or_default(),
                )
            })
            .collect();
        let want = |f: &str| {
            let exact_db = if f == "dev/deploy.yaml" {
                ("db", "")
            } else {
                // The exact entry claims the repository; its files leave this file out.
                ("-", "no policy for this file (images[].files excludes it)")
            };
            vec![
                ("web", ""),
                ("acme/api", "ghcr.io/acme/*"),
                ("team/worker", "ghcr.io/acme/team/*"),
                exact_db,
                ("-", "no policy"),
                ("hub/hub", "docker.io/acme/*"),
            ]
            .into_iter()
            .zip([
                "ghcr.io/acme/web",
                "ghcr.io/acme/api",
                "ghcr.io/acme/team/worker",
                "ghcr.io/acme/db",
                "ghcr.io/other/x",
                "docker.io/acme/hub",
            ])
            .map(|((name, rule), image)| {
                (
                    f.to_string(),
                    image.to_string(),
                    name.to_string(),
                    rule.to_string(),
                )
            })
            .collect::<Vec<_>>()
        };
        let mut expected = want("deploy.yaml");
        expected.extend(want("dev/deploy.yaml"));
        assert_eq!(got, expected);
        // One governor per repository, whatever the number of references.
        let made: Vec<&str> = d
            .governors
            .iter()
            .filter(|g| g.rule.is_some())
            .map(|g| g.name.as_str())
            .collect();
        assert_eq!(made, ["acme/api", "team/worker", "hub/hub"]);
    }

    #[test]
    fn prefix_entries_take_precedence_over_the_repos_objects_as_exact_entries_do() {
        // Flux v1 annotations yield to a prefix entry, as to an exact one; a Flux marker names
        // its own policy and keeps it.
        let dir = tempfile::tempdir().unwrap();
        let v1 = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: demo\n  annotations:\n    fluxcd.io/automated: \"true\"\nspec:\n  template:\n    spec:\n      containers:\n      - name: web\n        image: ghcr.io/acme/web:1.0.0\n      - name: side\n        image: nginx:1.25.0\n";
        let marked = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\nspec:\n  template:\n    spec:\n      containers:\n      - name: api\n        image: ghcr.io/acme/api:1.0.0 # {\"$imagepolicy\": \"flux-system:api\"}\n";
        let flux = "apiVersion: image.toolkit.fluxcd.io/v1beta2\nkind: ImageRepository\nmetadata:\n  name: api\n  namespace: flux-system\nspec:\n  image: ghcr.io/acme/api\n---\napiVersion: image.toolkit.fluxcd.io/v1beta2\nkind: ImagePolicy\nmetadata:\n  name: api\n  namespace: flux-system\nspec:\n  imageRepositoryRef:\n    name: api\n  policy:\n    semver:\n      range: \">=1.0.0\"\n";
        let names = ["v1.yaml", "marked.yaml", "flux.yaml"];
        for (name, text) in names.iter().zip([v1, marked, flux]) {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let file = Path::new("cfg.yaml");
        let config = crate::config::Config::parse(
            file,
            "images:\n  - {name: acme, image: 'ghcr.io/acme/*', policy: {semver: '^1'}}\n",
        )
        .unwrap();
        let files = manifest::files::Discovered {
            files: names.iter().map(PathBuf::from).collect(),
            ..Default::default()
        };
        let d = discover_with_prefixes(
            dir.path(),
            &files,
            &ScanOptions::default(),
            &config.watched(file).unwrap(),
            &config.prefixes(file).unwrap(),
        );
        let got: Vec<(String, String)> = d
            .occurrences
            .iter()
            .map(|o| {
                let who = o.governor.map_or_else(
                    || o.reason.clone().unwrap_or_default(),
                    |g| d.governors[g].name.clone(),
                );
                (o.image.canonical_name(), who)
            })
            .collect();
        let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(
            got,
            [
                pair("ghcr.io/acme/web", "acme/web"),
                pair("docker.io/library/nginx", "demo:deployment/web:side"),
                pair("ghcr.io/acme/api", "api"),
            ]
        );
        let api = d.occurrences[2].governor.unwrap();
        assert!(d.governors[api].flux, "the marker's Flux ImagePolicy");
    }

    #[test]
    fn a_prefix_entry_overrides_argocd_image_updater_annotations_as_an_exact_entry_does() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("apps/web")).unwrap();
        let app = "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: shop\n  namespace: argocd\n  annotations:\n    argocd-image-updater.argoproj.io/image-list: web=ghcr.io/acme/web:^1\n    argocd-image-updater.argoproj.io/write-back-method: git\n    argocd-image-updater.argoproj.io/write-back-target: kustomization\nspec:\n  source:\n    repoURL: https://github.com/acme/infra\n    path: apps/web\n";
        let kustomization = "images:\n  - name: ghcr.io/acme/web\n    newTag: 1.0.0\n";
        std::fs::write(dir.path().join("app.yaml"), app).unwrap();
        std::fs::write(
            dir.path().join("apps/web/kustomization.yaml"),
            kustomization,
        )
        .unwrap();
        let files = manifest::files::Discovered {
            files: vec![
                PathBuf::from("app.yaml"),
                PathBuf::from("apps/web/kustomization.yaml"),
            ],
            ..Default::default()
        };
        let file = Path::new("cfg.yaml");
        let governor = |config: &str| {
            let config = crate::config::Config::parse(file, config).unwrap();
            let d = discover_with_prefixes(
                dir.path(),
                &files,
                &ScanOptions::default(),
                &config.watched(file).unwrap(),
                &config.prefixes(file).unwrap(),
            );
            assert_eq!(d.occurrences.len(), 1, "{:?}", d.errors);
            let g = &d.governors[d.occurrences[0].governor.unwrap()];
            (g.name.clone(), g.rule.clone())
        };
        assert_eq!(governor("{}\n"), ("shop/web".to_string(), None));
        assert_eq!(
            governor(
                "images:\n  - {name: acme, image: 'ghcr.io/acme/*', policy: {semver: '~1.0'}}\n"
            ),
            ("acme/web".to_string(), Some("ghcr.io/acme/*".to_string()))
        );
    }
}
