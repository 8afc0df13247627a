//! Argo CD Image Updater's git write-back, as Argo CD reads it: where the tag of an annotated
//! Application's image lives in the repo, and the bytes of a parameter-override file that does
//! not exist yet.
//!
//! - `.argocd-source-<app>.yaml` in the source path (the default target): `kustomize.images`
//!   entries (`[name=]image:tag`) or `helm.parameters` (`{name, value, forcestring}`), in the
//!   layout Image Updater's YAML encoder writes (two-space indent, sequences not indented).
//! - `kustomization[:PATH]`: the kustomization's `images:` entry, found by the kustomize scan.
//! - `helmvalues[:PATH]`: the values keys named by `helm.image-name`/`helm.image-tag` (default
//!   `image.name`/`image.tag`) or `helm.image-spec`, as a dotted path or a literal key.

use super::edit::plain_safe;
use super::scan::{self, Node, Segment};
use super::{Format, Found, Parts, Site};
use crate::reference::ImageRef;

/// Image Updater's default Helm parameter (and values key) for the image name.
pub const DEFAULT_HELM_NAME: &str = "image.name";
/// Image Updater's default Helm parameter (and values key) for the tag.
pub const DEFAULT_HELM_TAG: &str = "image.tag";

/// The parameter-override file Argo CD reads for the application `app`.
pub fn override_file_name(app: &str) -> String {
    format!(".argocd-source-{app}.yaml")
}

/// A write-back target whose `..` leads out of the repository.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path:?} (from source path {source_path:?}) leaves the repository")]
pub struct OutsideRepo {
    pub path: String,
    pub source_path: String,
}

/// Join `path` (a write-back target) to the application's `source_path`: relative to it, or to
/// the repository root with a leading `/`; `..` is resolved and may not leave the repository.
pub fn resolve(source_path: &str, path: &str) -> Result<String, OutsideRepo> {
    let joined = match path.strip_prefix('/') {
        Some(abs) => abs.to_string(),
        None => format!("{source_path}/{path}"),
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(OutsideRepo {
                        path: path.to_string(),
                        source_path: source_path.to_string(),
                    });
                }
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// How the Helm keys or parameters of one image are named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelmNames {
    /// Separate name and tag.
    Split { name: String, tag: String },
    /// One key holding `image:tag` (`helm.image-spec`).
    Spec(String),
}

/// A scalar as Image Updater's YAML encoder writes it: plain when that reads back as the same
/// string, else double-quoted.
fn scalar(value: &str) -> String {
    if plain_safe(value) {
        value.to_string()
    } else {
        serde_json::to_string(value).expect("a string always serialises")
    }
}

/// A new `.argocd-source-<app>.yaml` for a Kustomize application: each entry is
/// `[name=]image[:tag]`.
pub fn render_kustomize(entries: &[String]) -> String {
    let mut out = String::from("kustomize:\n  images:\n");
    for e in entries {
        out.push_str(&format!("  - {}\n", scalar(e)));
    }
    out
}

/// A new `.argocd-source-<app>.yaml` for a Helm application: each parameter forced to a string.
pub fn render_helm(params: &[(String, String)]) -> String {
    let mut out = String::from("helm:\n  parameters:\n");
    for (name, value) in params {
        out.push_str(&format!(
            "  - name: {}\n    value: {}\n    forcestring: true\n",
            scalar(name),
            scalar(value)
        ));
    }
    out
}

/// The `kustomize.images` entry of an override file for `image` (named `kustomize_name` in the
/// kustomization when given): the same repository, or the name before `=`.
pub fn find_kustomize_override(
    root: &Node,
    image: &ImageRef,
    kustomize_name: Option<&str>,
) -> Option<Site> {
    let items = root
        .get_path(&["kustomize", "images"])
        .and_then(Node::as_sequence)?;
    for (i, item) in items.iter().enumerate() {
        let path = scan::Path(vec![
            Segment::Key("kustomize".into()),
            Segment::Key("images".into()),
            Segment::Index(i),
        ]);
        let Some(found) = item.to_found(&path) else {
            continue;
        };
        let (prefix, reference) = super::argocd::split_override(&found.value);
        let name = prefix.trim_end_matches('=');
        let same = match (kustomize_name, name.is_empty()) {
            (Some(k), false) => k == name,
            _ => ImageRef::parse(reference)
                .is_ok_and(|r| r.canonical_name() == image.canonical_name()),
        };
        if same {
            let prefix = prefix.to_string();
            return Some(Site {
                format: Format::ArgoCd,
                policy: None,
                keys: None,
                line: found.line,
                parts: Parts::Override {
                    scalar: found,
                    prefix,
                },
            });
        }
    }
    None
}

/// The `helm.parameters` of an override file that hold `names`.
pub fn find_helm_params(root: &Node, names: &HelmNames) -> Option<Site> {
    let params = root
        .get_path(&["helm", "parameters"])
        .and_then(Node::as_sequence)?;
    let value = |want: &str| -> Option<Found> {
        let (i, p) = params
            .iter()
            .enumerate()
            .find(|(_, p)| p.get("name").and_then(Node::as_str) == Some(want))?;
        let path = scan::Path(vec![
            Segment::Key("helm".into()),
            Segment::Key("parameters".into()),
            Segment::Index(i),
            Segment::Key("value".into()),
        ]);
        p.get("value")?.to_found(&path)
    };
    site_of(names, value, Format::ArgoCd)
}

/// The keys of a Helm values file that hold `names`: a literal top-level key, else a dotted
/// path of nested keys (as Image Updater looks them up).
pub fn find_helm_values(root: &Node, names: &HelmNames) -> Option<Site> {
    let value = |key: &str| -> Option<Found> {
        if let Some(v) = root.get(key) {
            return v.to_found(&scan::path_of(&[key]));
        }
        let keys: Vec<&str> = key.split('.').collect();
        root.get_path(&keys)?.to_found(&scan::path_of(&keys))
    };
    site_of(names, value, Format::Helm)
}

fn site_of(
    names: &HelmNames,
    value: impl Fn(&str) -> Option<Found>,
    format: Format,
) -> Option<Site> {
    let parts = match names {
        HelmNames::Spec(key) => Parts::Whole(value(key)?),
        HelmNames::Split { name, tag } => Parts::Split {
            registry: None,
            name: Some(value(name)?),
            tag: Some(value(tag)?),
            digest: None,
        },
    };
    let line = match &parts {
        Parts::Split { tag: Some(t), .. } => t.line,
        other => other.scalars().first().map_or(0, |f| f.line),
    };
    Some(Site {
        format,
        policy: None,
        keys: None,
        line,
        parts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::edit::{apply_edits, Edit};
    use crate::manifest::scan::parse_documents;

    fn root(text: &str) -> Node {
        parse_documents(text).unwrap()[0].root.clone().unwrap()
    }

    #[test]
    fn targets_resolve_as_image_updater_resolves_them() {
        assert_eq!(resolve("apps/web", "../base").unwrap(), "apps/base");
        assert_eq!(
            resolve("apps/web", "/env/values.yaml").unwrap(),
            "env/values.yaml"
        );
        assert_eq!(resolve("apps/web", ".").unwrap(), "apps/web");
        assert_eq!(resolve(".", "values.yaml").unwrap(), "values.yaml");
        assert_eq!(
            resolve("apps", "../../x").unwrap_err().to_string(),
            r#""../../x" (from source path "apps") leaves the repository"#
        );
        assert_eq!(override_file_name("web"), ".argocd-source-web.yaml");
    }

    #[test]
    fn new_override_files_in_image_updaters_layout() {
        assert_eq!(
            render_kustomize(&["nginx:1.26.0".into(), "api=ghcr.io/acme/api:1.0".into()]),
            "kustomize:\n  images:\n  - nginx:1.26.0\n  - api=ghcr.io/acme/api:1.0\n"
        );
        assert_eq!(
            render_helm(&[
                ("image.name".into(), "nginx".into()),
                ("image.tag".into(), "1.27".into())
            ]),
            "helm:\n  parameters:\n  - name: image.name\n    value: nginx\n    forcestring: true\n  \
             - name: image.tag\n    value: \"1.27\"\n    forcestring: true\n"
        );
    }

    #[test]
    fn override_entries_are_found_and_rewritten_in_place() {
        let text = render_kustomize(&["other:1".into(), "acme/api=ghcr.io/acme/api:1.0".into()]);
        let api = ImageRef::parse("ghcr.io/acme/api").unwrap();
        let site = find_kustomize_override(&root(&text), &api, Some("acme/api")).unwrap();
        let Parts::Override { scalar, prefix } = &site.parts else {
            panic!("{site:?}")
        };
        assert_eq!((prefix.as_str(), site.line), ("acme/api=", 4));
        let new = apply_edits(
            &text,
            &[Edit {
                span: scalar.span.clone(),
                new_value: format!("{prefix}ghcr.io/acme/api:1.1"),
            }],
        )
        .unwrap();
        assert_eq!(
            new,
            render_kustomize(&["other:1".into(), "acme/api=ghcr.io/acme/api:1.1".into()])
        );
        assert!(find_kustomize_override(&root(&text), &api, None).is_some());
        let nginx = ImageRef::parse("nginx").unwrap();
        assert!(find_kustomize_override(&root(&text), &nginx, None).is_none());

        let helm = render_helm(&[
            ("image.name".into(), "nginx".into()),
            ("image.tag".into(), "1.26.0".into()),
        ]);
        let names = HelmNames::Split {
            name: DEFAULT_HELM_NAME.into(),
            tag: DEFAULT_HELM_TAG.into(),
        };
        let site = find_helm_params(&root(&helm), &names).unwrap();
        assert_eq!(site.line, 7);
        assert!(find_helm_params(&root(&helm), &HelmNames::Spec("image.spec".into())).is_none());
    }

    #[test]
    fn values_keys_nested_or_literal() {
        let values = "image:\n  name: nginx\n  tag: 1.26.0\nweb.image: ghcr.io/acme/web:1.0\n";
        let names = HelmNames::Split {
            name: "image.name".into(),
            tag: "image.tag".into(),
        };
        let site = find_helm_values(&root(values), &names).unwrap();
        assert!(
            matches!(&site.parts, Parts::Split { tag: Some(t), .. } if t.value == "1.26.0" && t.path == "image.tag")
        );
        let spec = find_helm_values(&root(values), &HelmNames::Spec("web.image".into())).unwrap();
        assert!(matches!(&spec.parts, Parts::Whole(f) if f.value == "ghcr.io/acme/web:1.0"));
        let missing = HelmNames::Split {
            name: "image.name".into(),
            tag: "image.version".into(),
        };
        assert!(find_helm_values(&root(values), &missing).is_none());
    }
}
