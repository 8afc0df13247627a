//! Argo CD Image Updater's Applications as policies, with no config of ours: part of the
//! discover stage. Each alias of an annotated Application ([`manifest::argocd_annotations`]),
//! or of an Application an `ImageUpdater` resource selects ([`manifest::argocd_crd`]),
//! becomes a governor of exactly one place, its git write-back target
//! ([`manifest::argocd_writeback`]): an entry of `.argocd-source-<app>.yaml` (a file created
//! when it does not exist yet, with the bytes Image Updater would write), a kustomization's
//! `images:` entry, or Helm values keys. It governs nothing else, so the application's other
//! references are left as they are, as Argo CD leaves them under an override.
//!
//! Whatever cannot be honoured is an error naming the file and line: `write-back-method:
//! argocd` (the live Application, not Git), a target without the entry to rewrite (Image
//! Updater would add one; adding is not a splice), `newest-build` (not implemented here), an
//! image the application does not show without `force-update`.
//!
//! An `images:` entry of our config for the same repository (admitted by its `files`)
//! overrides the annotations at that place.

use std::path::Path;

use crate::config::Watched;
use crate::discover::{current_reference, CurrentError, Occurrence, Source};
use crate::manifest::argocd_annotations::{
    AnnotationError, AppImage, ArgoApp, SourceKind, Strategy, Target, WriteBack, PREFIX,
};
use crate::manifest::argocd_crd::{Application, ArgoObject};
use crate::manifest::argocd_writeback::{self as wb, HelmNames};
use crate::manifest::files::ReadError;
use crate::manifest::{self, scan, ManifestError, Parts, Site};
use crate::policy::{Order, Policy, PolicyError, PolicyKind};
use crate::reference::{ImageRef, ReferenceError};
use crate::report::ErrorEntry;

/// The discover stage's results that Argo CD Applications add to.
pub(crate) struct Found<'a> {
    pub sources: &'a mut Vec<Source>,
    pub occurrences: &'a mut Vec<Occurrence>,
    pub governors: &'a mut Vec<Watched>,
    /// How many of `governors` come from our config (they come first).
    pub configured: usize,
    pub errors: &'a mut Vec<ErrorEntry>,
}

/// Why an alias of an Application cannot be a policy ([`governor`]); `who` names the
/// Application and alias.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GovernorError {
    #[error("{who}: {source}")]
    Reference {
        who: String,
        #[source]
        source: ReferenceError,
    },
    #[error(
        "{who}: update-strategy digest follows the tag given in image-list ({image}:TAG), and \
         none is given"
    )]
    DigestWithoutTag { who: String, image: String },
    #[error(
        "{who}: update-strategy newest-build with platforms is not supported: the build time \
         is read from one image's config, not an index's"
    )]
    NewestBuildPlatforms { who: String },
    #[error(
        "{who}: update-strategy digest on a Helm application needs helm.image-spec (one value \
         for image, tag and digest); a separate tag value cannot hold the digest"
    )]
    HelmDigestWithoutSpec { who: String },
    #[error("{who}: {source}")]
    Policy {
        who: String,
        #[source]
        source: PolicyError,
    },
}

/// Why an alias cannot be placed at its write-back target.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PlaceError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("{rel}: not UTF-8 text")]
    NotUtf8 {
        rel: String,
        #[source]
        source: std::string::FromUtf8Error,
    },
    #[error("{rel}: {source}")]
    Yaml {
        rel: String,
        #[source]
        source: ManifestError,
    },
    /// The reference at the target cannot be put together.
    #[error("{rel}:{line}: {source}")]
    Current {
        rel: String,
        line: usize,
        #[source]
        source: CurrentError,
    },
    #[error("{rel} cannot be created: the source path {source_path}/ is not a folder of the repo")]
    NoSourceFolder { rel: String, source_path: String },
    #[error(
        "{rel} would be created without {image}: the application shows no reference to it \
         under {source_path}/ (set {prefix}{alias}.force-update: \"true\" to write it anyway)",
        prefix = PREFIX
    )]
    NotShown {
        rel: String,
        image: String,
        source_path: String,
        alias: String,
    },
    /// `entry`: the kind of entry missing (`kustomize.images entry`, `helm.parameters entry`).
    #[error(
        "{rel} has no {entry} for {image}: Argo CD Image Updater would add one, which this tool \
         does not do to an existing file (add it, with the current tag, and run again)"
    )]
    NoOverrideEntry {
        rel: String,
        entry: &'static str,
        image: String,
    },
    #[error("{app}: no current tag for {image} under {source_path}/ to write as {tag_key}")]
    NoCurrentTag {
        app: String,
        image: String,
        source_path: String,
        tag_key: String,
    },
    /// `dir`: the kustomization's folder (`.` for the repository root).
    #[error(
        "the kustomization in {dir} has no images: entry for {image}: Argo CD Image Updater \
         would add one (kustomize edit set image), which this tool does not do to an existing \
         file (add it, with the current tag, and run again)"
    )]
    NoKustomizeEntry { dir: String, image: String },
    #[error(
        "{rel} does not exist: Argo CD Image Updater would create it; create it with the \
         image's keys and run again"
    )]
    NoValuesFile { rel: String },
    #[error(
        "{rel} has no {keys} for {image}: Argo CD Image Updater would add them, which this tool \
         does not do to an existing file (add them and run again)"
    )]
    NoValuesKeys {
        rel: String,
        keys: String,
        image: String,
    },
    /// The name key of the values holds another image (`path` is the key).
    #[error("{rel}:{line}: {path} holds {value:?}, not {image}: the keys name another image")]
    OtherImage {
        rel: String,
        line: usize,
        path: String,
        value: String,
        image: String,
    },
}

/// An error at `file:line`.
fn error(file: &str, line: usize, image: Option<String>, message: String) -> ErrorEntry {
    ErrorEntry {
        image,
        file: Some(file.to_string()),
        message: format!("{file}:{line}: {message}"),
    }
}

/// The Applications to update, each with the file its settings come from: the annotated ones,
/// and those an `ImageUpdater` selects (its settings, its file and lines). An error for each
/// object that cannot be honoured.
pub(crate) fn read_apps(
    objects: Vec<(String, Result<ArgoObject, AnnotationError>)>,
    errors: &mut Vec<ErrorEntry>,
) -> Vec<(String, ArgoApp)> {
    let mut annotated = Vec::new();
    let mut plain = Vec::new();
    let mut updaters = Vec::new();
    for (file, object) in objects {
        match object {
            Ok(ArgoObject::Annotated(app)) => annotated.push((file, app)),
            Ok(ArgoObject::Application(app)) => plain.push(app),
            Ok(ArgoObject::Updater(u)) => updaters.push((file, u)),
            Err(e) => errors.push(error(&file, e.line, None, e.message)),
        }
    }
    let mut out = Vec::new();
    for (file, u) in updaters {
        for r in &u.refs {
            let pattern = globset::Glob::new(&r.name_pattern)
                .expect("checked when read")
                .compile_matcher();
            if let Some((other, _)) = annotated.iter().find(|(_, a)| pattern.is_match(&a.name)) {
                errors.push(error(
                    &file,
                    r.line,
                    None,
                    format!(
                        "ImageUpdater {}: namePattern {:?} selects an Application that {other} \
                         also configures with annotations: which settings count is ambiguous",
                        u.name, r.name_pattern
                    ),
                ));
                continue;
            }
            let selected: Vec<&Application> = plain
                .iter()
                .filter(|a| pattern.is_match(&a.name))
                .filter(|a| match (&u.namespace, &a.namespace) {
                    (Some(want), Some(have)) => want == have,
                    _ => true,
                })
                .collect();
            if selected.is_empty() {
                errors.push(error(
                    &file,
                    r.line,
                    None,
                    format!(
                        "ImageUpdater {}: namePattern {:?} selects no Application in the repo",
                        u.name, r.name_pattern
                    ),
                ));
            }
            for a in selected {
                out.push((
                    file.clone(),
                    ArgoApp {
                        name: a.name.clone(),
                        line: r.line,
                        source_path: a.source_path.clone(),
                        source_kind: a.source_kind,
                        write_back: r.write_back.clone(),
                        write_back_line: r.write_back_line,
                        images: r.images.clone(),
                    },
                ));
            }
        }
    }
    annotated.extend(out);
    annotated
}

/// Add every annotated Application of `apps` (file, application) to `found`.
pub(crate) fn apply(root: &Path, apps: &[(String, ArgoApp)], found: &mut Found<'_>) {
    for (file, app) in apps {
        if let Err(e) = apply_app(root, file, app, found) {
            found.errors.push(e);
        }
    }
}

fn apply_app(
    root: &Path,
    file: &str,
    app: &ArgoApp,
    found: &mut Found<'_>,
) -> Result<(), ErrorEntry> {
    let at = |line: usize, message: String| error(file, line, None, message);
    let target = match &app.write_back {
        WriteBack::Git(t) => t,
        WriteBack::Argocd => {
            return Err(at(
                app.write_back_line,
                format!(
                    "Application {}: write-back-method argocd (the default) sets the live \
                     Application through Argo CD's API, which a run on Git cannot do; set \
                     {PREFIX}write-back-method: git",
                    app.name
                ),
            ))
        }
    };
    let source_path = app.source_path.as_deref().ok_or_else(|| {
        at(
            app.line,
            format!(
                "Application {}: git write-back needs spec.source.path (the folder the \
                 write-back target is relative to)",
                app.name
            ),
        )
    })?;
    let source_path = wb::resolve("", source_path).map_err(|e| at(app.line, e.to_string()))?;
    let kind = match (target, app.source_kind) {
        (Target::Kustomization(_), _) => SourceKind::Kustomize,
        (Target::HelmValues(_), _) => SourceKind::Helm,
        (_, SourceKind::Unknown) => kind_of_folder(root, &source_path).ok_or_else(|| {
            at(
                app.line,
                format!(
                    "Application {}: neither spec.source.kustomize nor spec.source.helm is set, \
                     and {source_path}/ holds neither a kustomization nor a Chart.yaml: Image \
                     Updater updates only Kustomize and Helm applications",
                    app.name
                ),
            )
        })?,
        (_, k) => k,
    };
    for image in &app.images {
        let governor = governor(file, app, image, kind)
            .map_err(|e| error(file, image.line, Some(image.image.clone()), e.to_string()))?;
        let image_ref = governor.image.clone();
        found.governors.push(governor);
        let g = found.governors.len() - 1;
        let placed = match target {
            Target::Default => {
                let rel = format!(
                    "{}{}",
                    dir_prefix(&source_path),
                    wb::override_file_name(&app.name)
                );
                place_override(root, &rel, &source_path, app, image, kind, g, found)
            }
            Target::Kustomization(path) => {
                let dir = wb::resolve(&source_path, path.as_deref().unwrap_or("."))
                    .map_err(|e| at(image.line, e.to_string()))?;
                place_kustomization(&dir, image, &image_ref, g, found)
            }
            Target::HelmValues(path) => {
                let rel = wb::resolve(&source_path, path.as_deref().unwrap_or("values.yaml"))
                    .map_err(|e| at(image.line, e.to_string()))?;
                place_values(root, &rel, image, g, found)
            }
        };
        placed.map_err(|e| {
            error(
                file,
                image.line,
                Some(image_ref.canonical_name()),
                e.to_string(),
            )
        })?;
    }
    Ok(())
}

/// `dir/`, or nothing for the repository root.
fn dir_prefix(dir: &str) -> String {
    if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    }
}

/// Kustomize or Helm, from the files of the source folder.
fn kind_of_folder(root: &Path, dir: &str) -> Option<SourceKind> {
    let dir = root.join(dir);
    if ["kustomization.yaml", "kustomization.yml", "Kustomization"]
        .iter()
        .any(|n| dir.join(n).is_file())
    {
        Some(SourceKind::Kustomize)
    } else if dir.join("Chart.yaml").is_file() {
        Some(SourceKind::Helm)
    } else {
        None
    }
}

/// The policy of one alias, governing only the place [`apply`] gives it.
fn governor(
    file: &str,
    app: &ArgoApp,
    image: &AppImage,
    kind: SourceKind,
) -> Result<Watched, GovernorError> {
    let alias = image.alias.as_deref().unwrap_or(&image.image);
    let who = format!("Application {} image {alias}", app.name);
    let reference = ImageRef::parse(&image.image).map_err(|source| GovernorError::Reference {
        who: who.clone(),
        source,
    })?;
    let policy_kind = match image.strategy {
        Strategy::Semver => PolicyKind::Semver(
            image
                .constraint
                .clone()
                // No constraint: any version, pre-releases included, as Image Updater takes.
                .unwrap_or_else(|| ">=0.0.0-0".to_string()),
        ),
        Strategy::Alphabetical => PolicyKind::Alphabetical(Order::Asc),
        Strategy::Digest => {
            let tag = image
                .constraint
                .clone()
                .ok_or_else(|| GovernorError::DigestWithoutTag {
                    who: who.clone(),
                    image: image.image.clone(),
                })?;
            PolicyKind::Digest(tag)
        }
        // The tags passing the filters, ordered by build time at select (registry::created).
        Strategy::NewestBuild => {
            if !image.platforms.is_empty() {
                return Err(GovernorError::NewestBuildPlatforms { who });
            }
            PolicyKind::Alphabetical(Order::Asc)
        }
    };
    if image.strategy == Strategy::Digest && kind == SourceKind::Helm && image.helm_spec.is_none() {
        return Err(GovernorError::HelmDigestWithoutSpec { who });
    }
    let policy_error = |source| GovernorError::Policy {
        who: who.clone(),
        source,
    };
    let mut policy = Policy::new(policy_kind, &image.ignore_tags, false).map_err(policy_error)?;
    if let Some(re) = &image.allow_tags {
        policy = policy.with_filter(re, None).map_err(policy_error)?;
    }
    Ok(Watched {
        name: format!("{}/{alias}", app.name),
        // Governs only the place it is given: never matched by repository name.
        namespace: Some(format!("argocd:{file}")),
        flux: true,
        image: reference,
        policy,
        files: None,
        helm_keys: 0..0,
        pin_digest: false,
        platforms: image.platforms.clone(),
        newest_build: image.strategy == Strategy::NewestBuild,
        rule: None,
    })
}

/// The Helm names of an alias: `helm.image-spec`, else `helm.image-name`/`helm.image-tag`
/// (default `image.name`/`image.tag`).
fn helm_names(image: &AppImage) -> HelmNames {
    match &image.helm_spec {
        Some(spec) => HelmNames::Spec(spec.clone()),
        None => HelmNames::Split {
            name: image
                .helm_name
                .clone()
                .unwrap_or_else(|| wb::DEFAULT_HELM_NAME.into()),
            tag: image
                .helm_tag
                .clone()
                .unwrap_or_else(|| wb::DEFAULT_HELM_TAG.into()),
        },
    }
}

/// The index of `rel` in `sources`, reading it from the work tree when it is not there yet
/// (`None` when it does not exist).
fn source(root: &Path, rel: &str, sources: &mut Vec<Source>) -> Result<Option<usize>, PlaceError> {
    if let Some(i) = sources.iter().position(|s| s.rel == rel) {
        return Ok(Some(i));
    }
    let path = root.join(rel);
    let bytes = match manifest::files::read_regular_file(
        &path,
        manifest::files::DEFAULT_MAX_FILE_SIZE,
        "a YAML file",
    ) {
        Ok(b) => b,
        Err(e) if e.io == Some(std::io::ErrorKind::NotFound) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let text = String::from_utf8(bytes).map_err(|source| PlaceError::NotUtf8 {
        rel: rel.to_string(),
        source,
    })?;
    sources.push(Source {
        rel: rel.to_string(),
        path,
        text,
        created: false,
    });
    Ok(Some(sources.len() - 1))
}

/// The first document's root of a source's text.
fn parsed(rel: &str, text: &str) -> Result<Option<scan::Node>, PlaceError> {
    let docs = scan::parse_documents(text).map_err(|source| PlaceError::Yaml {
        rel: rel.to_string(),
        source,
    })?;
    Ok(docs.into_iter().find_map(|d| d.root))
}

/// Govern `site` of source `file` by `g` (or by our config's entry for its repository, which
/// overrides), replacing any occurrence that shares one of its scalars.
fn govern_site(file: usize, site: Site, g: usize, found: &mut Found<'_>) -> Result<(), PlaceError> {
    let image = current_reference(&site, Some(&found.governors[g].image)).map_err(|source| {
        PlaceError::Current {
            rel: found.sources[file].rel.clone(),
            line: site.line,
            source,
        }
    })?;
    let spans: Vec<_> = site
        .parts
        .scalars()
        .iter()
        .map(|f| f.span.clone())
        .collect();
    found.occurrences.retain(|o| {
        o.file != file
            || !o.site.parts.scalars().iter().any(|f| {
                spans
                    .iter()
                    .any(|s| s.start < f.span.end && f.span.start < s.end)
            })
    });
    let rel = &found.sources[file].rel;
    let name = image.canonical_name();
    let configured = found.governors[..found.configured].iter().position(|w| {
        !w.flux
            && w.image.canonical_name() == name
            && w.files.as_ref().is_none_or(|f| f.is_match(rel))
    });
    found.occurrences.push(Occurrence {
        file,
        site,
        image,
        governor: Some(configured.unwrap_or(g)),
        reason: None,
    });
    Ok(())
}

/// Place an alias in the application's `.argocd-source-<app>.yaml` at `rel`: its entry when the
/// file exists, else a new file holding every alias of the application.
#[allow(clippy::too_many_arguments)]
fn place_override(
    root: &Path,
    rel: &str,
    source_path: &str,
    app: &ArgoApp,
    image: &AppImage,
    kind: SourceKind,
    g: usize,
    found: &mut Found<'_>,
) -> Result<(), PlaceError> {
    let image_ref = found.governors[g].image.clone();
    let find = |node: &scan::Node| match kind {
        SourceKind::Helm => wb::find_helm_params(node, &helm_names(image)),
        _ => wb::find_kustomize_override(node, &image_ref, image.kustomize_name.as_deref()),
    };
    let file = match source(root, rel, found.sources)? {
        Some(i) => i,
        None => {
            if !root.join(source_path).is_dir() {
                return Err(PlaceError::NoSourceFolder {
                    rel: rel.to_string(),
                    source_path: source_path.to_string(),
                });
            }
            let text = new_override(source_path, app, kind, found)?;
            found.sources.push(Source {
                rel: rel.to_string(),
                path: root.join(rel),
                text,
                created: true,
            });
            found.sources.len() - 1
        }
    };
    let src = &found.sources[file];
    let node = parsed(rel, &src.text)?;
    match node.as_ref().and_then(find) {
        Some(site) => govern_site(file, site, g, found),
        None if src.created => Err(PlaceError::NotShown {
            rel: rel.to_string(),
            image: image.image.clone(),
            source_path: source_path.to_string(),
            alias: image.alias.as_deref().unwrap_or("ALIAS").to_string(),
        }),
        None => Err(PlaceError::NoOverrideEntry {
            rel: rel.to_string(),
            entry: match kind {
                SourceKind::Helm => "helm.parameters entry",
                _ => "kustomize.images entry",
            },
            image: image.image.clone(),
        }),
    }
}

/// The bytes Image Updater writes to a new `.argocd-source-<app>.yaml`: every alias the
/// application shows (a reference under `source_path/`, its current tag) or forces, in
/// image-list order. An alias shown nowhere and not forced is left out (Image Updater skips an
/// image that is not live).
fn new_override(
    source_path: &str,
    app: &ArgoApp,
    kind: SourceKind,
    found: &Found<'_>,
) -> Result<String, PlaceError> {
    let under = dir_prefix(source_path);
    let current = |image: &AppImage| -> Option<ImageRef> {
        let want = ImageRef::parse(&image.image).ok()?.canonical_name();
        found
            .occurrences
            .iter()
            .filter(|o| found.sources[o.file].rel.starts_with(&under))
            .find(|o| o.image.canonical_name() == want)
            .map(|o| o.image.clone())
    };
    let mut kustomize = Vec::new();
    let mut helm = Vec::new();
    for image in &app.images {
        let now = current(image);
        if now.is_none() && !image.force_update {
            continue;
        }
        let tag = now.as_ref().and_then(|r| r.tag.clone());
        let digest = now.as_ref().and_then(|r| r.digest.clone());
        let mut reference = image.image.clone();
        if let Some(t) = &tag {
            reference.push(':');
            reference.push_str(t);
        }
        if let Some(d) = &digest {
            reference.push('@');
            reference.push_str(d);
        }
        match kind {
            SourceKind::Helm => match helm_names(image) {
                HelmNames::Spec(key) => helm.push((key, reference)),
                HelmNames::Split { name, tag: tag_key } => {
                    let Some(t) = tag else {
                        return Err(PlaceError::NoCurrentTag {
                            app: app.name.clone(),
                            image: image.image.clone(),
                            source_path: source_path.to_string(),
                            tag_key,
                        });
                    };
                    helm.push((name, image.image.clone()));
                    helm.push((tag_key, t));
                }
            },
            _ => kustomize.push(match &image.kustomize_name {
                Some(k) => format!("{k}={reference}"),
                None => reference,
            }),
        }
    }
    Ok(match kind {
        SourceKind::Helm => wb::render_helm(&helm),
        _ => wb::render_kustomize(&kustomize),
    })
}

/// Place an alias at its entry of the kustomization in `dir`.
fn place_kustomization(
    dir: &str,
    image: &AppImage,
    image_ref: &ImageRef,
    g: usize,
    found: &mut Found<'_>,
) -> Result<(), PlaceError> {
    let prefix = dir_prefix(dir);
    let names: Vec<String> = std::iter::once(image_ref.canonical_name())
        .chain(
            image
                .kustomize_name
                .iter()
                .filter_map(|k| ImageRef::parse(k).ok())
                .map(|r| r.canonical_name()),
        )
        .collect();
    let hit = found.occurrences.iter().position(|o| {
        let rel = &found.sources[o.file].rel;
        o.site.format == manifest::Format::Kustomize
            && rel.strip_prefix(&prefix).is_some_and(|name| {
                manifest::kustomize::is_kustomization_file(Path::new(name)) && !name.contains('/')
            })
            && names.contains(&o.image.canonical_name())
    });
    let Some(i) = hit else {
        return Err(PlaceError::NoKustomizeEntry {
            dir: if dir.is_empty() { "." } else { dir }.to_string(),
            image: image.image.clone(),
        });
    };
    let o = found.occurrences.remove(i);
    govern_site(o.file, o.site, g, found)
}

/// Place an alias at its keys in the Helm values file `rel`.
fn place_values(
    root: &Path,
    rel: &str,
    image: &AppImage,
    g: usize,
    found: &mut Found<'_>,
) -> Result<(), PlaceError> {
    let names = helm_names(image);
    let file = source(root, rel, found.sources)?.ok_or_else(|| PlaceError::NoValuesFile {
        rel: rel.to_string(),
    })?;
    let node = parsed(rel, &found.sources[file].text)?;
    let site = node
        .as_ref()
        .and_then(|n| wb::find_helm_values(n, &names))
        .ok_or_else(|| {
            let keys = match &names {
                HelmNames::Spec(k) => k.clone(),
                HelmNames::Split { name, tag } => format!("{name} and {tag}"),
            };
            PlaceError::NoValuesKeys {
                rel: rel.to_string(),
                keys,
                image: image.image.clone(),
            }
        })?;
    if let Parts::Split { name: Some(n), .. } = &site.parts {
        let named = ImageRef::parse(&n.value).map(|r| r.canonical_name());
        if named.as_ref().ok() != Some(&found.governors[g].image.canonical_name()) {
            return Err(PlaceError::OtherImage {
                rel: rel.to_string(),
                line: n.line,
                path: n.path.to_string(),
                value: n.value.clone(),
                image: image.image.clone(),
            });
        }
    }
    govern_site(file, site, g, found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::argocd_annotations::parse_image_list;
    use crate::manifest::argocd_crd::{AppRef, Updater};

    fn application(name: &str, namespace: Option<&str>) -> ArgoObject {
        ArgoObject::Application(Application {
            name: name.into(),
            namespace: namespace.map(str::to_string),
            line: 1,
            source_path: Some(format!("apps/{name}")),
            source_kind: SourceKind::Kustomize,
        })
    }

    fn updater(patterns: &[&str]) -> ArgoObject {
        ArgoObject::Updater(Updater {
            name: "u".into(),
            namespace: Some("argocd".into()),
            refs: patterns
                .iter()
                .enumerate()
                .map(|(i, p)| AppRef {
                    name_pattern: p.to_string(),
                    line: 10 + i,
                    write_back: WriteBack::Git(Target::Default),
                    write_back_line: 5,
                    images: parse_image_list("web=ghcr.io/acme/web", 12).unwrap(),
                })
                .collect(),
        })
    }

    #[test]
    fn image_updaters_select_applications_by_name_and_namespace() {
        let mut errors = Vec::new();
        let objects = vec![
            (
                "a.yaml".to_string(),
                Ok(application("shop-eu", Some("argocd"))),
            ),
            ("b.yaml".to_string(), Ok(application("shop-us", None))),
            (
                "c.yaml".to_string(),
                Ok(application("shop-cn", Some("other"))),
            ),
            (
                "d.yaml".to_string(),
                Ok(application("cart", Some("argocd"))),
            ),
            ("u.yaml".to_string(), Ok(updater(&["shop-*", "nothing-*"]))),
        ];
        let apps = read_apps(objects, &mut errors);
        let names: Vec<(&str, &str, usize)> = apps
            .iter()
            .map(|(f, a)| (f.as_str(), a.name.as_str(), a.line))
            .collect();
        assert_eq!(
            names,
            [("u.yaml", "shop-eu", 10), ("u.yaml", "shop-us", 10)]
        );
        assert_eq!(apps[0].1.source_path.as_deref(), Some("apps/shop-eu"));
        let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(
            messages,
            ["u.yaml:11: ImageUpdater u: namePattern \"nothing-*\" selects no Application in the repo"]
        );
    }

    #[test]
    fn an_application_configured_twice_is_refused() {
        let annotated = ArgoApp {
            name: "shop-eu".into(),
            line: 3,
            source_path: Some("apps/shop-eu".into()),
            source_kind: SourceKind::Kustomize,
            write_back: WriteBack::Git(Target::Default),
            write_back_line: 3,
            images: parse_image_list("web=ghcr.io/acme/web", 4).unwrap(),
        };
        let mut errors = Vec::new();
        let apps = read_apps(
            vec![
                ("a.yaml".into(), Ok(ArgoObject::Annotated(annotated))),
                ("u.yaml".into(), Ok(updater(&["shop-*"]))),
                (
                    "bad.yaml".into(),
                    Err(AnnotationError {
                        line: 7,
                        message: "why".into(),
                    }),
                ),
            ],
            &mut errors,
        );
        assert_eq!(apps.len(), 1);
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].message, "bad.yaml:7: why");
        assert!(
            errors[1].message.starts_with("u.yaml:10: ") && errors[1].message.contains("ambiguous")
        );
    }
}
