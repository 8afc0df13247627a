//! Argo CD Image Updater's Application annotations (`argocd-image-updater.argoproj.io/*`)
//! read as policies: which images an Application tracks (`image-list`), how each alias picks
//! its tag (`update-strategy`, `allow-tags`, `ignore-tags`, `platforms`), where the new tag is
//! written (`write-back-method`, `write-back-target`, the Helm and Kustomize names) and
//! `force-update`. Plain data; what it governs is decided by `crate::argocd_objects`.
//!
//! Everything is read as Argo CD Image Updater's documentation describes it. An annotation this
//! tool cannot honour (an unknown key, a strategy it does not have, a malformed value) is an
//! [`AnnotationError`] naming the line, never a guess.

use super::scan::{self, Node};

/// The annotation prefix of Argo CD Image Updater.
pub const PREFIX: &str = "argocd-image-updater.argoproj.io/";

/// How an alias picks its tag (`<alias>.update-strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// `semver` (the default): the highest version the constraint allows.
    Semver,
    /// `newest-build` (old name `latest`): the most recently built image.
    NewestBuild,
    /// `alphabetical` (old name `name`): the last tag in lexical order.
    Alphabetical,
    /// `digest`: the digest the constraint's tag points at now.
    Digest,
}

/// Which kind of application the source is, as Argo CD builds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// `spec.source.kustomize` is set.
    Kustomize,
    /// `spec.source.helm` or `spec.source.chart` is set.
    Helm,
    /// Neither: the files under the source path decide (kustomization.yaml or Chart.yaml).
    Unknown,
}

/// Where Argo CD Image Updater writes (`write-back-method`, `write-back-target`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteBack {
    /// `argocd` (the default): the live Application through Argo CD's API.
    Argocd,
    /// `git`: to `target`.
    Git(Target),
}

/// The `write-back-target` of `git` write-back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The parameter-override file `.argocd-source-<app>.yaml` in the source path.
    Default,
    /// `kustomization[:PATH]`: the `images:` of PATH's kustomization (relative to the source
    /// path, or to the repository root with a leading `/`); the source path when bare.
    Kustomization(Option<String>),
    /// `helmvalues[:PATH]`: the values file PATH (same rules); `values.yaml` when bare.
    HelmValues(Option<String>),
}

/// One entry of `image-list` with its per-alias annotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppImage {
    /// The alias (`alias=image`); the annotations of an image without one cannot be set.
    pub alias: Option<String>,
    /// The image as written, without the constraint (`ghcr.io/acme/web`).
    pub image: String,
    /// The constraint after the image (`~1.26`; the followed tag for `digest`).
    pub constraint: Option<String>,
    /// Line of the `image-list` annotation.
    pub line: usize,
    pub strategy: Strategy,
    /// `allow-tags: regexp:RE`: the regular expression a tag must match.
    pub allow_tags: Option<String>,
    /// `ignore-tags`: globs of tags never taken.
    pub ignore_tags: Vec<String>,
    /// `platforms`: `os/arch[/variant]` a tag must have.
    pub platforms: Vec<String>,
    /// `helm.image-name`, `helm.image-tag`, `helm.image-spec`.
    pub helm_name: Option<String>,
    pub helm_tag: Option<String>,
    pub helm_spec: Option<String>,
    /// `kustomize.image-name`.
    pub kustomize_name: Option<String>,
    /// `force-update: true`: update even an image the application does not show running.
    pub force_update: bool,
}

/// An Application with Argo CD Image Updater annotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgoApp {
    pub name: String,
    /// Line of `metadata.annotations`.
    pub line: usize,
    /// `spec.source.path` (or the one source of `spec.sources` that has a path).
    pub source_path: Option<String>,
    pub source_kind: SourceKind,
    pub write_back: WriteBack,
    /// Line of the `write-back-method` annotation (of `annotations` when absent).
    pub write_back_line: usize,
    pub images: Vec<AppImage>,
}

/// An annotation that cannot be honoured, with its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnotationError {
    pub line: usize,
    pub message: String,
}

/// Annotations this tool does not need and that never change the answer: credentials (ours
/// come from the config and Docker's), the branch and repository (delivery follows the config)
/// and the commit message.
const NOT_NEEDED: &[&str] = &[
    "git-branch",
    "git-repository",
    "git-credentials",
    "commit-message",
    "pull-secret",
];

/// Read the Image Updater annotations of an Application (`None` for any other object, or one
/// without any). An ApplicationSet's annotations sit in a template Argo CD renders: refused.
pub fn read(root: &Node) -> Result<Option<ArgoApp>, AnnotationError> {
    let (api, kind) = scan::api_version_kind(root);
    if !scan::in_group(api, super::argocd::GROUP) {
        return Ok(None);
    }
    let (meta, spec) = match kind {
        Some("Application") => (root.get("metadata"), root.get("spec")),
        Some("ApplicationSet") => {
            let template = root.get_path(&["spec", "template", "metadata", "annotations"]);
            if let Some(a) = template.filter(|a| has_ours(a)) {
                return Err(AnnotationError {
                    line: a.line,
                    message: "Argo CD Image Updater annotations in an ApplicationSet template: \
                              the Applications are rendered by Argo CD, not in the repo, so their \
                              names and write-back files are unknown; annotate the generated \
                              Applications' sources instead"
                        .into(),
                });
            }
            return Ok(None);
        }
        _ => return Ok(None),
    };
    let Some(annotations) = meta.and_then(|m| m.get("annotations")) else {
        return Ok(None);
    };
    if !has_ours(annotations) {
        return Ok(None);
    }
    let entries = annotation_entries(annotations)?;
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Node::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| AnnotationError {
            line: annotations.line,
            message: "an Application with Argo CD Image Updater annotations needs \
                      metadata.name (it names the .argocd-source-<name>.yaml file)"
                .into(),
        })?
        .to_string();
    let get = |key: &str| entries.iter().find(|(k, _, _)| k == key);
    let (list, list_line) = match get("image-list") {
        Some((_, v, l)) => (v.clone(), *l),
        None => {
            return Err(AnnotationError {
                line: annotations.line,
                message: format!("{PREFIX}image-list is missing: no image to track"),
            })
        }
    };
    let mut images = parse_image_list(&list, list_line)?;
    let aliases: Vec<String> = images.iter().filter_map(|i| i.alias.clone()).collect();
    let mut write_back = WriteBack::Argocd;
    let mut write_back_line = annotations.line;
    let mut target = None;
    for (key, value, line) in &entries {
        let bad = |message: String| AnnotationError {
            line: *line,
            message,
        };
        match key.as_str() {
            "image-list" => {}
            "write-back-method" => {
                write_back_line = *line;
                let method = value.split(':').next().unwrap_or_default().trim();
                write_back = match method {
                    "git" => WriteBack::Git(Target::Default),
                    "argocd" => WriteBack::Argocd,
                    other => {
                        return Err(bad(format!(
                            "{PREFIX}write-back-method {other:?}: expected git or argocd"
                        )))
                    }
                };
            }
            "write-back-target" => {
                target = Some((parse_target(value).map_err(|e| bad(e.to_string()))?, *line))
            }
            k if NOT_NEEDED.contains(&k) => {}
            k => {
                let Some((alias, setting)) = k.split_once('.') else {
                    return Err(bad(format!(
                        "unknown annotation {PREFIX}{k}: not one Argo CD Image Updater documents"
                    )));
                };
                let Some(image) = images
                    .iter_mut()
                    .find(|i| i.alias.as_deref() == Some(alias))
                else {
                    return Err(bad(format!(
                        "{PREFIX}{k} names alias {alias:?}, which image-list does not define \
                         (aliases: {})",
                        if aliases.is_empty() {
                            "none".to_string()
                        } else {
                            aliases.join(", ")
                        }
                    )));
                };
                set_alias_annotation(image, setting, value).map_err(|e| bad(e.to_string()))?;
            }
        }
    }
    if let Some((t, line)) = target {
        match &mut write_back {
            WriteBack::Git(slot) => *slot = t,
            WriteBack::Argocd => {
                return Err(AnnotationError {
                    line,
                    message: format!(
                        "{PREFIX}write-back-target is set, but write-back-method is argocd (the \
                         default), which ignores it"
                    ),
                })
            }
        }
    }
    let (source_path, source_kind) = source_of(spec);
    Ok(Some(ArgoApp {
        name,
        line: annotations.line,
        source_path,
        source_kind,
        write_back,
        write_back_line,
        images,
    }))
}

/// Whether a mapping of annotations holds any of Image Updater's.
fn has_ours(annotations: &Node) -> bool {
    annotations.as_mapping().is_some_and(|m| {
        m.iter()
            .any(|(k, _)| k.as_str().is_some_and(|k| k.starts_with(PREFIX)))
    })
}

/// Image Updater's annotations: key without the prefix, value, line.
fn annotation_entries(annotations: &Node) -> Result<Vec<(String, String, usize)>, AnnotationError> {
    let mut out = Vec::new();
    for (k, v) in annotations.as_mapping().unwrap_or_default() {
        let Some(key) = k.as_str().and_then(|k| k.strip_prefix(PREFIX)) else {
            continue;
        };
        let value = v.as_str().ok_or_else(|| AnnotationError {
            line: k.line,
            message: format!("{PREFIX}{key}: annotation values are strings"),
        })?;
        out.push((key.to_string(), value.to_string(), k.line));
    }
    Ok(out)
}

/// `spec.source.path` and the kind of the source.
pub(super) fn source_of(spec: Option<&Node>) -> (Option<String>, SourceKind) {
    let Some(spec) = spec else {
        return (None, SourceKind::Unknown);
    };
    let sources: Vec<&Node> = match spec.get("source") {
        Some(s) if s.as_mapping().is_some() => vec![s],
        _ => spec
            .get("sources")
            .and_then(Node::as_sequence)
            .map(|s| s.iter().filter(|s| s.get("path").is_some()).collect())
            .unwrap_or_default(),
    };
    let Some(source) = sources.first() else {
        return (None, SourceKind::Unknown);
    };
    let path = source
        .get("path")
        .and_then(Node::as_str)
        .map(str::to_string);
    let kind = if source.get("kustomize").is_some() {
        SourceKind::Kustomize
    } else if source.get("helm").is_some() || source.get("chart").is_some() {
        SourceKind::Helm
    } else {
        SourceKind::Unknown
    };
    (path, kind)
}

/// A `write-back-target` that is neither `kustomization[:PATH]` nor `helmvalues[:PATH]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{prefix}write-back-target {kind:?}: expected kustomization[:PATH] or helmvalues[:PATH]",
    prefix = PREFIX
)]
pub struct UnknownTarget {
    /// The word before the `:`.
    pub kind: String,
}

/// An `<alias>.<setting>` annotation (or an `ImageUpdater`'s image setting) that cannot be
/// honoured; `alias` is empty for an image without one.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AliasSettingError {
    #[error(
        "{prefix}{alias}.update-strategy {value:?}: expected semver, newest-build (latest), \
         alphabetical (name) or digest",
        prefix = PREFIX
    )]
    Strategy { alias: String, value: String },
    #[error(
        "{prefix}{alias}.allow-tags: invalid regular expression: {source}",
        prefix = PREFIX
    )]
    AllowTagsRegex {
        alias: String,
        #[source]
        source: regex::Error,
    },
    #[error(
        "{prefix}{alias}.allow-tags {value:?}: expected regexp:<expression> or any",
        prefix = PREFIX
    )]
    AllowTags { alias: String, value: String },
    #[error(
        "{prefix}{alias}.platforms: {platform:?} is not os/arch[/variant]",
        prefix = PREFIX
    )]
    Platform { alias: String, platform: String },
    #[error(
        "{prefix}{alias}.force-update {value:?}: expected true or false",
        prefix = PREFIX
    )]
    ForceUpdate { alias: String, value: String },
    #[error(
        "unknown annotation {prefix}{alias}.{setting}: not one Argo CD Image Updater documents",
        prefix = PREFIX
    )]
    Unknown { alias: String, setting: String },
}

/// `kustomization[:PATH]` or `helmvalues[:PATH]`.
pub(super) fn parse_target(value: &str) -> Result<Target, UnknownTarget> {
    let value = value.trim();
    let (kind, path) = match value.split_once(':') {
        Some((k, p)) => (k, Some(p.trim().to_string()).filter(|p| !p.is_empty())),
        None => (value, None),
    };
    match kind {
        "kustomization" => Ok(Target::Kustomization(path)),
        "helmvalues" => Ok(Target::HelmValues(path)),
        other => Err(UnknownTarget {
            kind: other.to_string(),
        }),
    }
}

/// `image-list`: comma-separated `[alias=]image[:constraint]`.
pub fn parse_image_list(list: &str, line: usize) -> Result<Vec<AppImage>, AnnotationError> {
    let mut out: Vec<AppImage> = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let bad = |why: &str| AnnotationError {
            line,
            message: format!("{PREFIX}image-list entry {entry:?}: {why}"),
        };
        let (alias, rest) = match entry.split_once('=') {
            Some((a, r)) => (Some(a.trim().to_string()), r.trim()),
            None => (None, entry),
        };
        if alias.as_deref() == Some("") {
            return Err(bad("an empty alias before ="));
        }
        // The constraint follows the last ':' after the last '/' (a registry port is not one).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (image, constraint) = match rest[last_slash..].find(':') {
            Some(i) => (
                &rest[..last_slash + i],
                Some(rest[last_slash + i + 1..].trim().to_string()),
            ),
            None => (rest, None),
        };
        if image.is_empty() || image.contains(char::is_whitespace) || image.contains('@') {
            return Err(bad("expected [alias=]image[:constraint]"));
        }
        if alias.is_some() && out.iter().any(|i| i.alias == alias) {
            return Err(bad("the alias is used twice"));
        }
        out.push(AppImage {
            alias,
            image: image.to_string(),
            constraint: constraint.filter(|c| !c.is_empty()),
            line,
            strategy: Strategy::Semver,
            allow_tags: None,
            ignore_tags: Vec::new(),
            platforms: Vec::new(),
            helm_name: None,
            helm_tag: None,
            helm_spec: None,
            kustomize_name: None,
            force_update: false,
        });
    }
    if out.is_empty() {
        return Err(AnnotationError {
            line,
            message: format!("{PREFIX}image-list is empty"),
        });
    }
    Ok(out)
}

/// One `<alias>.<setting>` annotation.
pub(super) fn set_alias_annotation(
    image: &mut AppImage,
    setting: &str,
    value: &str,
) -> Result<(), AliasSettingError> {
    let value = value.trim();
    let alias = image.alias.clone().unwrap_or_default();
    let list = |v: &str| -> Vec<String> {
        v.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    };
    match setting {
        "update-strategy" => {
            image.strategy = match value {
                "semver" => Strategy::Semver,
                "newest-build" | "latest" => Strategy::NewestBuild,
                "alphabetical" | "name" => Strategy::Alphabetical,
                "digest" => Strategy::Digest,
                other => {
                    return Err(AliasSettingError::Strategy {
                        alias,
                        value: other.to_string(),
                    })
                }
            }
        }
        "allow-tags" => {
            image.allow_tags = if value == "any" {
                None
            } else if let Some(re) = value.strip_prefix("regexp:") {
                regex::Regex::new(re)
                    .map_err(|source| AliasSettingError::AllowTagsRegex { alias, source })?;
                Some(re.to_string())
            } else {
                return Err(AliasSettingError::AllowTags {
                    alias,
                    value: value.to_string(),
                });
            }
        }
        "ignore-tags" => image.ignore_tags = list(value),
        "platforms" => {
            let platforms = list(value);
            for p in &platforms {
                let parts = p.split('/').count();
                if !(2..=3).contains(&parts) || p.split('/').any(str::is_empty) {
                    return Err(AliasSettingError::Platform {
                        alias,
                        platform: p.clone(),
                    });
                }
            }
            image.platforms = platforms;
        }
        "helm.image-name" => image.helm_name = Some(value.to_string()),
        "helm.image-tag" => image.helm_tag = Some(value.to_string()),
        "helm.image-spec" => image.helm_spec = Some(value.to_string()),
        "kustomize.image-name" => image.kustomize_name = Some(value.to_string()),
        "force-update" => {
            image.force_update = match value {
                "true" => true,
                "false" => false,
                other => {
                    return Err(AliasSettingError::ForceUpdate {
                        alias,
                        value: other.to_string(),
                    })
                }
            }
        }
        "pull-secret" => {}
        other => {
            return Err(AliasSettingError::Unknown {
                alias,
                setting: other.to_string(),
            })
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::scan::parse_documents;

    fn app(annotations: &str, source: &str) -> Result<Option<ArgoApp>, AnnotationError> {
        let text = format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: web\n  \
             annotations:\n{annotations}spec:\n  source:\n{source}"
        );
        let docs = parse_documents(&text).unwrap();
        read(docs[0].root.as_ref().unwrap())
    }

    const KUSTOMIZE: &str = "    path: apps/web\n    kustomize: {}\n";

    #[test]
    fn the_documented_image_list_forms() {
        let list = parse_image_list(
            "nginx, myalias=some/image, some/other:1.x, quay.io/x/y:~1.26, \
             localhost:5000/a/b, d=localhost:5000/a/b:>=1.0 <2.0",
            3,
        )
        .unwrap();
        let got: Vec<(Option<&str>, &str, Option<&str>)> = list
            .iter()
            .map(|i| {
                (
                    i.alias.as_deref(),
                    i.image.as_str(),
                    i.constraint.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (None, "nginx", None),
                (Some("myalias"), "some/image", None),
                (None, "some/other", Some("1.x")),
                (None, "quay.io/x/y", Some("~1.26")),
                (None, "localhost:5000/a/b", None),
                (Some("d"), "localhost:5000/a/b", Some(">=1.0 <2.0")),
            ]
        );
        assert!(parse_image_list("a=x,a=y", 1)
            .unwrap_err()
            .message
            .contains("used twice"));
        assert!(parse_image_list(" , ", 1).is_err());
    }

    #[test]
    fn every_alias_annotation_is_read() {
        let a = app(
            "    argocd-image-updater.argoproj.io/image-list: web=ghcr.io/acme/web:~1.2, api=ghcr.io/acme/api\n\
             \x20   argocd-image-updater.argoproj.io/web.update-strategy: latest\n\
             \x20   argocd-image-updater.argoproj.io/api.update-strategy: name\n\
             \x20   argocd-image-updater.argoproj.io/web.allow-tags: regexp:^v?[0-9.]+$\n\
             \x20   argocd-image-updater.argoproj.io/api.allow-tags: any\n\
             \x20   argocd-image-updater.argoproj.io/web.ignore-tags: '*-rc*, latest'\n\
             \x20   argocd-image-updater.argoproj.io/web.platforms: linux/amd64,linux/arm/v7\n\
             \x20   argocd-image-updater.argoproj.io/web.helm.image-name: web.image.repository\n\
             \x20   argocd-image-updater.argoproj.io/web.helm.image-tag: web.image.tag\n\
             \x20   argocd-image-updater.argoproj.io/api.helm.image-spec: api.image\n\
             \x20   argocd-image-updater.argoproj.io/api.kustomize.image-name: acme/api\n\
             \x20   argocd-image-updater.argoproj.io/api.force-update: 'true'\n\
             \x20   argocd-image-updater.argoproj.io/write-back-method: git\n\
             \x20   argocd-image-updater.argoproj.io/write-back-target: kustomization:../base\n\
             \x20   argocd-image-updater.argoproj.io/git-branch: main\n",
            KUSTOMIZE,
        )
        .unwrap()
        .unwrap();
        assert_eq!(a.name, "web");
        assert_eq!(a.source_path.as_deref(), Some("apps/web"));
        assert_eq!(a.source_kind, SourceKind::Kustomize);
        assert_eq!(
            a.write_back,
            WriteBack::Git(Target::Kustomization(Some("../base".into())))
        );
        let (web, api) = (&a.images[0], &a.images[1]);
        assert_eq!(web.strategy, Strategy::NewestBuild);
        assert_eq!(api.strategy, Strategy::Alphabetical);
        assert_eq!(web.allow_tags.as_deref(), Some("^v?[0-9.]+$"));
        assert_eq!(api.allow_tags, None);
        assert_eq!(web.ignore_tags, ["*-rc*", "latest"]);
        assert_eq!(web.platforms, ["linux/amd64", "linux/arm/v7"]);
        assert_eq!(web.helm_name.as_deref(), Some("web.image.repository"));
        assert_eq!(web.helm_tag.as_deref(), Some("web.image.tag"));
        assert_eq!(api.helm_spec.as_deref(), Some("api.image"));
        assert_eq!(api.kustomize_name.as_deref(), Some("acme/api"));
        assert!(api.force_update && !web.force_update);
        assert_eq!(web.constraint.as_deref(), Some("~1.2"));
    }

    #[test]
    fn what_cannot_be_honoured_names_its_line() {
        let err = |annotations: &str| app(annotations, KUSTOMIZE).unwrap_err();
        let e = err("    argocd-image-updater.argoproj.io/image-list: a=x\n    argocd-image-updater.argoproj.io/a.update-strategy: newest\n");
        assert_eq!(e.line, 7);
        assert!(e.message.contains("\"newest\""), "{}", e.message);
        let e = err("    argocd-image-updater.argoproj.io/image-list: a=x\n    argocd-image-updater.argoproj.io/b.allow-tags: any\n");
        assert!(e.message.contains("alias \"b\""), "{}", e.message);
        let e = err("    argocd-image-updater.argoproj.io/image-list: a=x\n    argocd-image-updater.argoproj.io/a.allow-tags: glob:*\n");
        assert!(e.message.contains("regexp:"), "{}", e.message);
        let e = err("    argocd-image-updater.argoproj.io/image-list: a=x\n    argocd-image-updater.argoproj.io/write-back-target: kustomization\n");
        assert!(e.message.contains("argocd"), "{}", e.message);
        let e = err("    argocd-image-updater.argoproj.io/image-list: a=x\n    argocd-image-updater.argoproj.io/write-back-method: api\n");
        assert!(
            e.message.contains("expected git or argocd"),
            "{}",
            e.message
        );
        let e = err("    argocd-image-updater.argoproj.io/update-strategy: semver\n");
        assert!(e.message.contains("image-list is missing"), "{}", e.message);
        let e = err("    argocd-image-updater.argoproj.io/image-list: a=x\n    argocd-image-updater.argoproj.io/a.platforms: linux\n");
        assert!(e.message.contains("os/arch"), "{}", e.message);
    }

    #[test]
    fn write_back_forms_and_other_objects() {
        let a = app(
            "    argocd-image-updater.argoproj.io/image-list: x\n    argocd-image-updater.argoproj.io/write-back-method: git:secret:argocd/git-creds\n    argocd-image-updater.argoproj.io/write-back-target: helmvalues:/env/values-prod.yaml\n",
            "    path: chart\n    helm: {}\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            a.write_back,
            WriteBack::Git(Target::HelmValues(Some("/env/values-prod.yaml".into())))
        );
        assert_eq!(a.source_kind, SourceKind::Helm);
        let a = app(
            "    argocd-image-updater.argoproj.io/image-list: x\n",
            "    path: p\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(a.write_back, WriteBack::Argocd);
        assert_eq!(a.source_kind, SourceKind::Unknown);
        assert_eq!(app("    other: x\n", "    path: p\n").unwrap(), None);
        let set = "apiVersion: argoproj.io/v1alpha1\nkind: ApplicationSet\nspec:\n  template:\n    metadata:\n      annotations:\n        argocd-image-updater.argoproj.io/image-list: x\n";
        let docs = parse_documents(set).unwrap();
        assert_eq!(read(docs[0].root.as_ref().unwrap()).unwrap_err().line, 7);
    }
}
