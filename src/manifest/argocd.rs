//! Argo CD `Application` (and `ApplicationSet` template) sources: `kustomize.images`
//! overrides, `helm.parameters` named by config (or `image.repository`/`image.tag`; a `spec`
//! name holds the whole reference, as Image Updater's `helm.image-spec`), and
//! `helm.valuesObject` read as Helm values. `helm.values` is a string (usually a block
//! scalar) and is not rewritten.

use super::scan::{self, Node, Path, Segment};
use super::{helm, Format, Found, HelmKeys, Parts, ScanOptions, Site};

/// Argo CD's API group.
pub const GROUP: &str = "argoproj.io";

/// The parameter names tried when no configured names match: Helm's usual `image.*` keys.
fn default_params() -> HelmKeys {
    HelmKeys {
        registry: Some("image.registry".into()),
        repository: Some("image.repository".into()),
        tag: Some("image.tag".into()),
        digest: Some("image.digest".into()),
        spec: None,
    }
}

/// The sources of an Application (`spec`) or ApplicationSet (`spec.template.spec`), with
/// their paths.
fn sources(root: &Node) -> Vec<(&Node, Path)> {
    let (api, kind) = scan::api_version_kind(root);
    if !scan::in_group(api, GROUP) {
        return Vec::new();
    }
    let (spec, base): (Option<&Node>, &[&str]) = match kind {
        Some("Application") => (root.get("spec"), &["spec"]),
        Some("ApplicationSet") => (
            root.get_path(&["spec", "template", "spec"]),
            &["spec", "template", "spec"],
        ),
        _ => return Vec::new(),
    };
    let Some(spec) = spec else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(source) = spec.get("source").filter(|s| s.as_mapping().is_some()) {
        let mut path = scan::path_of(base);
        path.push(Segment::Key("source".into()));
        out.push((source, path));
    }
    if let Some(items) = spec.get("sources").and_then(Node::as_sequence) {
        for (i, source) in items.iter().enumerate() {
            let mut path = scan::path_of(base);
            path.push(Segment::Key("sources".into()));
            path.push(Segment::Index(i));
            out.push((source, path));
        }
    }
    out
}

/// Split an Argo CD kustomize image override into its prefix (`name=` or empty) and
/// reference.
pub fn split_override(value: &str) -> (&str, &str) {
    match value.find('=') {
        Some(i) => value.split_at(i + 1),
        None => ("", value),
    }
}

/// Every site of an Argo CD Application or ApplicationSet document.
pub fn sites(root: &Node, opts: &ScanOptions, out: &mut Vec<Site>) {
    for (source, path) in sources(root) {
        if let Some(images) = source
            .get_path(&["kustomize", "images"])
            .and_then(Node::as_sequence)
        {
            for (i, image) in images.iter().enumerate() {
                let mut p = path.clone();
                p.0.extend([
                    Segment::Key("kustomize".into()),
                    Segment::Key("images".into()),
                    Segment::Index(i),
                ]);
                let Some(found) = image
                    .to_found(&p)
                    .filter(|f| !image.is_null() && !f.value.is_empty())
                else {
                    continue;
                };
                let prefix = split_override(&found.value).0.to_owned();
                out.push(Site {
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
        if let Some(params) = source
            .get_path(&["helm", "parameters"])
            .and_then(Node::as_sequence)
        {
            let mut p = path.clone();
            p.0.extend([
                Segment::Key("helm".into()),
                Segment::Key("parameters".into()),
            ]);
            param_sites(params, &p, opts, out);
        }
        if let Some(values) = source.get_path(&["helm", "valuesObject"]) {
            let mut p = path.clone();
            p.0.extend([
                Segment::Key("helm".into()),
                Segment::Key("valuesObject".into()),
            ]);
            helm::values_sites(values, &p, &opts.helm, out);
        }
    }
}

/// `helm.parameters` entries `{name, value}` grouped by configured names; the default
/// `image.*` names count only when both a repository and a tag are present.
fn param_sites(params: &[Node], path: &Path, opts: &ScanOptions, out: &mut Vec<Site>) {
    let value_of = |name: &Option<String>| -> Option<Found> {
        let name = name.as_deref()?;
        let (i, entry) = params
            .iter()
            .enumerate()
            .find(|(_, e)| e.get("name").and_then(Node::as_str) == Some(name))?;
        // An empty value (`image.digest: ""`) is no value: the chart's default applies.
        let value = entry
            .get("value")
            .filter(|v| !v.is_null() && v.as_str() != Some(""))?;
        let mut p = path.clone();
        p.push(Segment::Index(i));
        p.push(Segment::Key("value".into()));
        value.to_found(&p)
    };
    let site = |keys: &HelmKeys, index: Option<usize>| {
        // One parameter holding the whole reference (Image Updater's `helm.image-spec`).
        if keys.spec.is_some() {
            let whole = value_of(&keys.spec)?;
            return Some(Site {
                format: Format::ArgoCd,
                policy: None,
                keys: index,
                line: whole.line,
                parts: Parts::Whole(whole),
            });
        }
        let registry = value_of(&keys.registry);
        let name = value_of(&keys.repository);
        let tag = value_of(&keys.tag);
        let digest = value_of(&keys.digest);
        if index.is_none() && (name.is_none() || tag.is_none()) {
            return None;
        }
        if [&registry, &name, &tag, &digest]
            .iter()
            .all(|p| p.is_none())
        {
            return None;
        }
        let parts = Parts::Split {
            registry,
            name,
            tag,
            digest,
        };
        Some(Site {
            format: Format::ArgoCd,
            policy: None,
            keys: index,
            line: parts.report_line(),
            parts,
        })
    };
    for (i, keys) in opts.argocd_helm_params.iter().enumerate() {
        out.extend(site(keys, Some(i)));
    }
    out.extend(site(&default_params(), None));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::scan::parse_documents;

    const APP: &str = "\
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: web, namespace: argocd}
spec:
  source:
    repoURL: https://github.com/acme/infra
    kustomize:
      images:
        - ghcr.io/acme/web=ghcr.io/acme/web:1.2.0
        - 'nginx:1.25'
        - redis@sha256:abcd
    helm:
      parameters:
        - name: image.repository
          value: ghcr.io/acme/api
        - name: image.tag
          value: \"1.0\"
        - name: worker.tag
          value: v3
          forceString: true
      valuesObject:
        image:
          repository: ghcr.io/acme/ui
          tag: 2.0.0
  sources:
    - repoURL: x
      kustomize:
        images: [\"a=b:1\"]
";

    fn all(text: &str, opts: &ScanOptions) -> Vec<Site> {
        let docs = parse_documents(text).unwrap();
        let mut out = Vec::new();
        for d in &docs {
            sites(d.root.as_ref().unwrap(), opts, &mut out);
        }
        out
    }

    #[test]
    fn kustomize_images_params_and_values_object() {
        let opts = ScanOptions {
            argocd_helm_params: vec![HelmKeys {
                tag: Some("worker.tag".into()),
                ..Default::default()
            }],
            ..Default::default()
        };
        let sites = all(APP, &opts);
        let overrides: Vec<(String, String)> = sites
            .iter()
            .filter_map(|s| match &s.parts {
                Parts::Override { scalar, prefix } => Some((scalar.value.clone(), prefix.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(
            overrides,
            [
                (
                    "ghcr.io/acme/web=ghcr.io/acme/web:1.2.0".into(),
                    "ghcr.io/acme/web=".into()
                ),
                ("nginx:1.25".into(), "".into()),
                ("redis@sha256:abcd".into(), "".into()),
                ("a=b:1".into(), "a=".into()),
            ]
        );
        type Row = (Option<usize>, Option<String>, Option<String>, Format);
        let splits: Vec<Row> = sites
            .iter()
            .filter_map(|s| match &s.parts {
                Parts::Split { name, tag, .. } => Some((
                    s.keys,
                    name.as_ref().map(|f| f.value.clone()),
                    tag.as_ref().map(|f| f.path.clone()),
                    s.format,
                )),
                _ => None,
            })
            .collect();
        assert_eq!(
            splits,
            [
                (
                    Some(0),
                    None,
                    Some("spec.source.helm.parameters[2].value".into()),
                    Format::ArgoCd
                ),
                (
                    None,
                    Some("ghcr.io/acme/api".into()),
                    Some("spec.source.helm.parameters[1].value".into()),
                    Format::ArgoCd
                ),
                (
                    None,
                    Some("ghcr.io/acme/ui".into()),
                    Some("spec.source.helm.valuesObject.image.tag".into()),
                    Format::Helm
                ),
            ]
        );
    }

    #[test]
    fn an_empty_digest_parameter_is_no_digest() {
        let app = "apiVersion: argoproj.io/v1alpha1\nkind: Application\nspec:\n  source:\n    helm:\n      parameters:\n      - {name: image.repository, value: ghcr.io/acme/api}\n      - {name: image.tag, value: '2.4.0'}\n      - {name: image.digest, value: \"\"}\n";
        let sites = all(app, &ScanOptions::default());
        assert_eq!(sites.len(), 1);
        assert!(
            matches!(&sites[0].parts, Parts::Split { digest: None, tag: Some(t), .. } if t.value == "2.4.0"),
            "{sites:?}"
        );
    }

    #[test]
    fn application_sets_and_other_kinds() {
        let set = "apiVersion: argoproj.io/v1alpha1\nkind: ApplicationSet\nspec:\n  template:\n    spec:\n      source:\n        kustomize:\n          images: [x:1]\n";
        assert_eq!(all(set, &ScanOptions::default()).len(), 1);
        let rollout = "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nspec:\n  source:\n    kustomize:\n      images: [x:1]\n";
        assert!(all(rollout, &ScanOptions::default()).is_empty());
        assert_eq!(split_override("a=b:1"), ("a=", "b:1"));
        assert_eq!(split_override("b:1"), ("", "b:1"));
    }
}
