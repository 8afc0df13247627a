//! Argo CD Image Updater v1.x's `ImageUpdater` custom resource
//! (`argocd-image-updater.argoproj.io/v1alpha1`) read as policies: `applicationRefs` select
//! Applications by `namePattern` (a glob) in the resource's namespace, and each of their
//! `images` is an alias as an `image-list` entry is, with `commonUpdateSettings` and
//! `writeBackConfig` inherited from the spec, then the reference, then the image. Plain data;
//! `crate::argocd_objects` matches the Applications of the repo.
//!
//! The settings mean what the annotations mean ([`super::argocd_annotations`]); what cannot be
//! honoured (`labelSelectors`, an unknown field) is an error naming its line.

use super::argocd_annotations::{
    parse_image_list, parse_target, set_alias_annotation, source_of, AnnotationError, AppImage,
    SourceKind, Target, WriteBack,
};
use super::scan::{self, Node};

/// The API group of the resource.
pub const GROUP: &str = "argocd-image-updater.argoproj.io";

/// What a file holds for Argo CD Image Updater.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgoObject {
    /// An Application with Image Updater annotations.
    Annotated(super::argocd_annotations::ArgoApp),
    /// An Application without them (an `ImageUpdater` may select it).
    Application(Application),
    /// An `ImageUpdater` resource.
    Updater(Updater),
}

/// One `ImageUpdater` resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Updater {
    pub name: String,
    /// The namespace whose Applications it selects (`metadata.namespace`, or the older
    /// `spec.namespace`); `None` selects any.
    pub namespace: Option<String>,
    pub refs: Vec<AppRef>,
}

/// One `applicationRefs` entry, settings resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRef {
    pub name_pattern: String,
    pub line: usize,
    pub write_back: WriteBack,
    pub write_back_line: usize,
    pub images: Vec<AppImage>,
}

/// An Argo CD Application as an `ImageUpdater` selects it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Application {
    pub name: String,
    pub namespace: Option<String>,
    pub line: usize,
    pub source_path: Option<String>,
    pub source_kind: SourceKind,
}

/// The Application `root` is, if it is one (with or without annotations).
pub fn application(root: &Node) -> Option<Application> {
    let (api, kind) = scan::api_version_kind(root);
    if !scan::in_group(api, super::argocd::GROUP) || kind != Some("Application") {
        return None;
    }
    let meta = root.get("metadata")?;
    let name = meta.get("name").and_then(Node::as_str)?.to_string();
    let (source_path, source_kind) = source_of(root.get("spec"));
    Some(Application {
        name,
        namespace: meta
            .get("namespace")
            .and_then(Node::as_str)
            .map(str::to_string),
        line: root.line,
        source_path,
        source_kind,
    })
}

fn bad(node: &Node, message: String) -> AnnotationError {
    AnnotationError {
        line: node.line,
        message,
    }
}

/// Refuse keys of `node` outside `known`.
fn only(node: &Node, known: &[&str], what: &str) -> Result<(), AnnotationError> {
    for (k, _) in node.as_mapping().unwrap_or_default() {
        let key = k.as_str().unwrap_or_default();
        if !known.contains(&key) {
            return Err(bad(
                k,
                format!(
                    "{what}: unknown field {key:?} (expected one of {})",
                    known.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

fn string<'a>(node: &'a Node, key: &str, what: &str) -> Result<Option<&'a str>, AnnotationError> {
    match node.get(key) {
        None => Ok(None),
        Some(v) if v.is_null() => Ok(None),
        Some(v) => v
            .as_str()
            .map(Some)
            .ok_or_else(|| bad(v, format!("{what}.{key}: expected a string"))),
    }
}

fn strings(node: &Node, key: &str, what: &str) -> Result<Option<Vec<String>>, AnnotationError> {
    let Some(v) = node.get(key).filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let items = v
        .as_sequence()
        .ok_or_else(|| bad(v, format!("{what}.{key}: expected a list of strings")))?;
    items
        .iter()
        .map(|i| {
            i.as_str()
                .map(str::to_string)
                .ok_or_else(|| bad(i, format!("{what}.{key}: expected a list of strings")))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// `commonUpdateSettings` as annotation settings, in the order they apply.
fn settings(
    node: Option<&Node>,
    what: &str,
) -> Result<Vec<(String, String, usize)>, AnnotationError> {
    let Some(node) = node.filter(|n| !n.is_null()) else {
        return Ok(Vec::new());
    };
    let what = format!("{what}.commonUpdateSettings");
    only(
        node,
        &[
            "updateStrategy",
            "forceUpdate",
            "allowTags",
            "ignoreTags",
            "pullSecret",
            "platforms",
        ],
        &what,
    )?;
    let mut out = Vec::new();
    let line = |k: &str| node.get(k).map_or(node.line, |v| v.line);
    if let Some(s) = string(node, "updateStrategy", &what)? {
        out.push((
            "update-strategy".into(),
            s.to_string(),
            line("updateStrategy"),
        ));
    }
    if let Some(v) = node.get("forceUpdate").and_then(Node::as_str) {
        out.push(("force-update".into(), v.to_string(), line("forceUpdate")));
    }
    if let Some(s) = string(node, "allowTags", &what)? {
        out.push(("allow-tags".into(), s.to_string(), line("allowTags")));
    }
    if let Some(list) = strings(node, "ignoreTags", &what)? {
        out.push(("ignore-tags".into(), list.join(","), line("ignoreTags")));
    }
    if let Some(list) = strings(node, "platforms", &what)? {
        out.push(("platforms".into(), list.join(","), line("platforms")));
    }
    Ok(out)
}

/// `writeBackConfig`: the method and target, over `base`.
fn write_back(
    node: Option<&Node>,
    base: (WriteBack, usize),
    what: &str,
) -> Result<(WriteBack, usize), AnnotationError> {
    let Some(node) = node.filter(|n| !n.is_null()) else {
        return Ok(base);
    };
    let what = format!("{what}.writeBackConfig");
    only(node, &["method", "gitConfig"], &what)?;
    let mut out = base;
    if let Some(m) = string(node, "method", &what)? {
        let line = node.get("method").map_or(node.line, |v| v.line);
        out = match m.split(':').next().unwrap_or_default() {
            "git" => (
                match out.0 {
                    WriteBack::Git(t) => WriteBack::Git(t),
                    WriteBack::Argocd => WriteBack::Git(Target::Default),
                },
                line,
            ),
            "argocd" => (WriteBack::Argocd, line),
            other => {
                return Err(bad(
                    node,
                    format!("{what}.method {other:?}: expected git or argocd"),
                ))
            }
        };
    }
    if let Some(git) = node.get("gitConfig").filter(|g| !g.is_null()) {
        let what = format!("{what}.gitConfig");
        only(git, &["repository", "branch", "writeBackTarget"], &what)?;
        if let Some(t) = string(git, "writeBackTarget", &what)? {
            let target = parse_target(t).map_err(|m| bad(git, format!("{what}: {m}")))?;
            match &mut out.0 {
                WriteBack::Git(slot) => *slot = target,
                WriteBack::Argocd => {
                    return Err(bad(
                        git,
                        format!("{what}.writeBackTarget is set, but the method is argocd"),
                    ))
                }
            }
        }
    }
    Ok(out)
}

/// Read an `ImageUpdater` resource (`None` for any other object).
pub fn read(root: &Node) -> Result<Option<Updater>, AnnotationError> {
    let (api, kind) = scan::api_version_kind(root);
    if !scan::in_group(api, GROUP) || kind != Some("ImageUpdater") {
        return Ok(None);
    }
    let meta = root.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Node::as_str)
        .unwrap_or_default()
        .to_string();
    let what = format!("ImageUpdater {name}");
    let spec = root
        .get("spec")
        .ok_or_else(|| bad(root, format!("{what}: spec is missing")))?;
    only(
        spec,
        &[
            "namespace",
            "commonUpdateSettings",
            "writeBackConfig",
            "applicationRefs",
        ],
        &format!("{what}: spec"),
    )?;
    let namespace = string(spec, "namespace", "spec")?
        .or_else(|| meta.and_then(|m| m.get("namespace")).and_then(Node::as_str))
        .map(str::to_string);
    let spec_settings = settings(spec.get("commonUpdateSettings"), "spec")?;
    let spec_wb = write_back(
        spec.get("writeBackConfig"),
        (WriteBack::Argocd, spec.line),
        "spec",
    )?;
    let refs_node = spec
        .get("applicationRefs")
        .and_then(Node::as_sequence)
        .ok_or_else(|| bad(spec, format!("{what}: spec.applicationRefs is missing")))?;
    let mut refs = Vec::new();
    for (i, r) in refs_node.iter().enumerate() {
        let at = format!("{what}: spec.applicationRefs[{i}]");
        only(
            r,
            &[
                "namePattern",
                "labelSelectors",
                "commonUpdateSettings",
                "writeBackConfig",
                "images",
            ],
            &at,
        )?;
        let name_pattern = string(r, "namePattern", &at)?
            .ok_or_else(|| bad(r, format!("{at}.namePattern is missing")))?;
        globset::Glob::new(name_pattern).map_err(|e| bad(r, format!("{at}.namePattern: {e}")))?;
        if let Some(l) = r.get("labelSelectors").filter(|l| !l.is_null()) {
            return Err(bad(
                l,
                format!(
                    "{at}.labelSelectors: Applications are selected here by namePattern only; \
                     labels are matched in the cluster, so this selection cannot be honoured"
                ),
            ));
        }
        let ref_settings = settings(r.get("commonUpdateSettings"), &at)?;
        let (wb, wb_line) = write_back(r.get("writeBackConfig"), spec_wb.clone(), &at)?;
        let mut images = Vec::new();
        for (j, img) in r
            .get("images")
            .and_then(Node::as_sequence)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let at = format!("{at}.images[{j}]");
            only(
                img,
                &[
                    "alias",
                    "imageName",
                    "commonUpdateSettings",
                    "manifestTargets",
                ],
                &at,
            )?;
            let alias = string(img, "alias", &at)?
                .ok_or_else(|| bad(img, format!("{at}.alias is missing")))?;
            let image_name = string(img, "imageName", &at)?
                .ok_or_else(|| bad(img, format!("{at}.imageName is missing")))?;
            let line = img.get("imageName").map_or(img.line, |v| v.line);
            let mut image = parse_image_list(image_name, line)?.remove(0);
            image.alias = Some(alias.to_string());
            let mut all = spec_settings.clone();
            all.extend(ref_settings.iter().cloned());
            all.extend(settings(img.get("commonUpdateSettings"), &at)?);
            if let Some(t) = img.get("manifestTargets").filter(|t| !t.is_null()) {
                let tw = format!("{at}.manifestTargets");
                only(t, &["helm", "kustomize"], &tw)?;
                if let Some(h) = t.get("helm") {
                    only(h, &["name", "tag", "spec"], &format!("{tw}.helm"))?;
                    for (key, setting) in [
                        ("name", "helm.image-name"),
                        ("tag", "helm.image-tag"),
                        ("spec", "helm.image-spec"),
                    ] {
                        if let Some(v) = string(h, key, &tw)?.filter(|v| !v.is_empty()) {
                            all.push((setting.into(), v.to_string(), h.line));
                        }
                    }
                }
                if let Some(k) = t.get("kustomize") {
                    only(k, &["name"], &format!("{tw}.kustomize"))?;
                    if let Some(v) = string(k, "name", &tw)? {
                        all.push(("kustomize.image-name".into(), v.to_string(), k.line));
                    }
                }
            }
            for (setting, value, line) in all {
                set_alias_annotation(&mut image, &setting, &value).map_err(|m| {
                    AnnotationError {
                        line,
                        message: format!("{at}: {m}"),
                    }
                })?;
            }
            images.push(image);
        }
        if images.is_empty() {
            return Err(bad(r, format!("{at}.images is empty")));
        }
        refs.push(AppRef {
            name_pattern: name_pattern.to_string(),
            line: r.line,
            write_back: wb,
            write_back_line: wb_line,
            images,
        });
    }
    Ok(Some(Updater {
        name,
        namespace,
        refs,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::argocd_annotations::Strategy;
    use crate::manifest::scan::parse_documents;

    fn cr(text: &str) -> Result<Option<Updater>, AnnotationError> {
        read(parse_documents(text).unwrap()[0].root.as_ref().unwrap())
    }

    const DOC: &str = "\
apiVersion: argocd-image-updater.argoproj.io/v1alpha1
kind: ImageUpdater
metadata:
  name: my-image-updater
  namespace: argocd
spec:
  commonUpdateSettings:
    updateStrategy: semver
    ignoreTags: [latest]
  writeBackConfig:
    method: git
    gitConfig:
      branch: main
      writeBackTarget: helmvalues:values-prod.yaml
  applicationRefs:
    - namePattern: my-app-*
      commonUpdateSettings:
        updateStrategy: name
      images:
        - alias: nginx
          imageName: nginx:1.20.x
          commonUpdateSettings:
            updateStrategy: semver
            platforms: [linux/amd64]
          manifestTargets:
            helm:
              name: image.repository
              tag: image.tag
        - alias: tool
          imageName: ghcr.io/acme/tool
";

    #[test]
    fn settings_inherit_from_spec_to_reference_to_image() {
        let u = cr(DOC).unwrap().unwrap();
        assert_eq!(u.namespace.as_deref(), Some("argocd"));
        assert_eq!(u.refs.len(), 1);
        let r = &u.refs[0];
        assert_eq!(r.name_pattern, "my-app-*");
        assert_eq!(
            r.write_back,
            WriteBack::Git(Target::HelmValues(Some("values-prod.yaml".into())))
        );
        let (nginx, tool) = (&r.images[0], &r.images[1]);
        assert_eq!(nginx.alias.as_deref(), Some("nginx"));
        assert_eq!(nginx.constraint.as_deref(), Some("1.20.x"));
        assert_eq!(nginx.strategy, Strategy::Semver);
        assert_eq!(nginx.platforms, ["linux/amd64"]);
        assert_eq!(nginx.ignore_tags, ["latest"]);
        assert_eq!(nginx.helm_name.as_deref(), Some("image.repository"));
        assert_eq!(tool.strategy, Strategy::Alphabetical);
        assert_eq!(tool.line, 30);
    }

    #[test]
    fn what_cannot_be_honoured_names_its_line() {
        let labels = DOC.replace(
            "    - namePattern: my-app-*\n",
            "    - namePattern: my-app-*\n      labelSelectors:\n        matchLabels: {team: a}\n",
        );
        let e = cr(&labels).unwrap_err();
        assert_eq!(e.line, 18);
        assert!(e.message.contains("labelSelectors"), "{}", e.message);
        let typo = DOC.replace("updateStrategy: name", "updateStratgy: name");
        let e = cr(&typo).unwrap_err();
        assert_eq!(e.line, 18);
        assert!(e.message.contains("\"updateStratgy\""), "{}", e.message);
        let strategy = DOC.replace("updateStrategy: name", "updateStrategy: newest");
        assert!(cr(&strategy).unwrap_err().message.contains("\"newest\""));
        assert_eq!(cr("apiVersion: v1\nkind: ConfigMap\n").unwrap(), None);
    }

    #[test]
    fn applications_with_or_without_annotations() {
        let app = "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: my-app-1, namespace: argocd}\nspec:\n  source: {path: apps/one, helm: {}}\n";
        let a = application(&parse_documents(app).unwrap()[0].root.clone().unwrap()).unwrap();
        assert_eq!(
            (
                a.name.as_str(),
                a.namespace.as_deref(),
                a.source_path.as_deref(),
                a.source_kind
            ),
            (
                "my-app-1",
                Some("argocd"),
                Some("apps/one"),
                SourceKind::Helm
            )
        );
    }
}
