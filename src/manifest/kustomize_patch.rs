//! kustomize overlays that patch a Flux `ImagePolicy`: each `kustomization.yaml` renders the
//! ImagePolicies its `resources` bring in (files, or directories with their own
//! kustomization), and applies its `patches` (strategic merge or JSON 6902, from a file or
//! inline), `patchesStrategicMerge` and `patchesJson6902` to them, as the cluster would see the
//! overlay. Only `spec.policy` and `spec.filterTags` can be patched; any other change to an
//! ImagePolicy, or a patch that cannot be read, refuses that overlay's policy with the file and
//! line, so a patched range is never silently replaced by the base one.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::flux::{FluxPolicy, FluxPolicyKind, FluxSortOrder};
use super::flux_automation::normalise_path;
use super::scan::{self, Node};
use super::ManifestError;

/// What a patch sets on an ImagePolicy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyPatch {
    /// A new `spec.policy`.
    pub kind: Option<FluxPolicyKind>,
    /// A new `spec.filterTags.pattern` (`Some(None)`: removed).
    pub pattern: Option<Option<String>>,
    /// A new `spec.filterTags.extract` (`Some(None)`: removed).
    pub extract: Option<Option<String>>,
}

impl PolicyPatch {
    /// `policy` with this patch applied.
    pub fn apply(&self, policy: &FluxPolicy) -> FluxPolicy {
        let mut p = policy.clone();
        if let Some(k) = &self.kind {
            p.kind = k.clone();
        }
        if let Some(v) = &self.pattern {
            p.filter_pattern = v.clone();
        }
        if let Some(v) = &self.extract {
            p.filter_extract = v.clone();
        }
        p
    }
}

/// Why a patch cannot be applied: the line (in the file holding the patch) and what.
pub type PatchError = (usize, String);

fn order(node: &Node) -> Result<FluxSortOrder, PatchError> {
    match node.get("order").and_then(Node::as_str) {
        None | Some("asc") => Ok(FluxSortOrder::Asc),
        Some("desc") => Ok(FluxSortOrder::Desc),
        Some(o) => Err((node.line, format!("order {o:?} is not asc or desc"))),
    }
}

/// A `spec.policy` value.
fn policy_kind(node: &Node) -> Result<FluxPolicyKind, PatchError> {
    if let Some(range) = node.get_path(&["semver", "range"]).and_then(Node::as_str) {
        Ok(FluxPolicyKind::Semver(range.to_string()))
    } else if let Some(a) = node.get("alphabetical") {
        Ok(FluxPolicyKind::Alphabetical(order(a)?))
    } else if let Some(n) = node.get("numerical") {
        Ok(FluxPolicyKind::Numerical(order(n)?))
    } else {
        Err((
            node.line,
            "spec.policy has no semver range, alphabetical or numerical order".into(),
        ))
    }
}

/// A `spec.filterTags` value into `patch`.
fn filter_tags(node: &Node, patch: &mut PolicyPatch) -> Result<(), PatchError> {
    for (k, v) in node.as_mapping().unwrap_or_default() {
        let value = v.as_str().map(str::to_string);
        match k.as_str() {
            Some("pattern") => patch.pattern = Some(value),
            Some("extract") => patch.extract = Some(value),
            other => {
                return Err((
                    k.line,
                    format!(
                        "spec.filterTags.{} is not a Flux field",
                        other.unwrap_or("?")
                    ),
                ))
            }
        }
    }
    Ok(())
}

/// A strategic-merge patch document of an ImagePolicy.
pub fn strategic_merge(root: &Node) -> Result<PolicyPatch, PatchError> {
    let mut patch = PolicyPatch::default();
    for (k, v) in root
        .get("spec")
        .and_then(Node::as_mapping)
        .unwrap_or_default()
    {
        match k.as_str() {
            Some("policy") => patch.kind = Some(policy_kind(v)?),
            Some("filterTags") => filter_tags(v, &mut patch)?,
            other => {
                return Err((
                    k.line,
                    format!(
                        "the patch changes spec.{} of an ImagePolicy; only spec.policy and \
                         spec.filterTags are read from patches",
                        other.unwrap_or("?")
                    ),
                ))
            }
        }
    }
    Ok(patch)
}

/// A JSON 6902 patch (a list of operations) of an ImagePolicy.
pub fn json6902(root: &Node) -> Result<PolicyPatch, PatchError> {
    let ops = root.as_sequence().ok_or((
        root.line,
        "a JSON 6902 patch is a list of operations".to_string(),
    ))?;
    let mut patch = PolicyPatch::default();
    for op in ops {
        let name = op.get("op").and_then(Node::as_str).unwrap_or_default();
        let path = op.get("path").and_then(Node::as_str).unwrap_or_default();
        let value = op.get("value");
        let refuse = || -> Result<(), PatchError> {
            Err((
                op.line,
                format!(
                    "JSON 6902 {name} of {path:?} on an ImagePolicy is not applied; only \
                     add/replace/remove under /spec/policy and /spec/filterTags are"
                ),
            ))
        };
        let need = || value.ok_or((op.line, format!("{name} of {path:?} without a value")));
        match (name, path) {
            ("add" | "replace", "/spec/policy") => patch.kind = Some(policy_kind(need()?)?),
            ("add" | "replace", "/spec/policy/semver/range") => {
                let v = need()?
                    .as_str()
                    .ok_or((op.line, "range is not a string".into()))?;
                patch.kind = Some(FluxPolicyKind::Semver(v.to_string()));
            }
            ("add" | "replace", "/spec/policy/semver") => {
                let v = need()?;
                let range = v
                    .get("range")
                    .and_then(Node::as_str)
                    .ok_or((v.line, "semver without range".to_string()))?;
                patch.kind = Some(FluxPolicyKind::Semver(range.to_string()));
            }
            ("add" | "replace", "/spec/policy/alphabetical" | "/spec/policy/numerical") => {
                let o = order(need()?)?;
                patch.kind = Some(if path.ends_with("alphabetical") {
                    FluxPolicyKind::Alphabetical(o)
                } else {
                    FluxPolicyKind::Numerical(o)
                });
            }
            ("add" | "replace", "/spec/filterTags") => {
                patch.pattern = Some(None);
                patch.extract = Some(None);
                filter_tags(need()?, &mut patch)?;
            }
            ("add" | "replace", "/spec/filterTags/pattern" | "/spec/filterTags/extract") => {
                let v = need()?.as_str().map(str::to_string);
                if path.ends_with("pattern") {
                    patch.pattern = Some(v);
                } else {
                    patch.extract = Some(v);
                }
            }
            ("remove", "/spec/filterTags") => {
                patch.pattern = Some(None);
                patch.extract = Some(None);
            }
            ("remove", "/spec/filterTags/extract") => patch.extract = Some(None),
            ("remove", "/spec/filterTags/pattern") => patch.pattern = Some(None),
            ("test", _) => {}
            _ => refuse()?,
        }
    }
    Ok(patch)
}

/// Which objects a patch entry targets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    pub kind: Option<String>,
    pub name: Option<String>,
    pub namespace: Option<String>,
    /// `labelSelector` or `annotationSelector`: not evaluated here.
    pub selector: bool,
}

impl Target {
    fn read(node: &Node) -> Target {
        let s = |k: &str| node.get(k).and_then(Node::as_str).map(str::to_string);
        Target {
            kind: s("kind"),
            name: s("name"),
            namespace: s("namespace"),
            selector: node.get("labelSelector").is_some()
                || node.get("annotationSelector").is_some(),
        }
    }

    /// Whether it may target ImagePolicy `p` (names are regular expressions in kustomize).
    fn matches(&self, p: &FluxPolicy) -> bool {
        let full = |pattern: &str, value: &str| {
            regex::Regex::new(&format!("^(?:{pattern})$"))
                .map_or(pattern == value, |r| r.is_match(value))
        };
        self.kind.as_deref().is_none_or(|k| full(k, "ImagePolicy"))
            && self.name.as_deref().is_none_or(|n| full(n, &p.name))
            && match (&self.namespace, &p.namespace) {
                (Some(want), Some(have)) => full(want, have),
                _ => true,
            }
    }
}

/// Where a patch's text is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatchText {
    /// A file, relative to the repo root.
    File(String),
    /// Inline in the kustomization, starting at this line.
    Inline(String, usize),
}

/// One patch entry of a kustomization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchRef {
    /// Line of the entry in the kustomization.
    pub line: usize,
    pub target: Option<Target>,
    pub text: PatchText,
    /// From `patchesJson6902` (else: decided by the text's shape).
    pub json6902: bool,
}

/// A kustomization file's resources and patches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kustomization {
    /// Its file, relative to the repo root.
    pub file: String,
    /// Its directory (empty for the root).
    pub dir: String,
    /// Resources that are local paths, relative to the repo root, normalised.
    pub resources: Vec<String>,
    pub patches: Vec<PatchRef>,
}

/// Whether `rel` is named as kustomize names its file.
pub fn is_kustomization_file(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    matches!(
        name,
        "kustomization.yaml" | "kustomization.yml" | "Kustomization"
    )
}

fn join(dir: &str, rel: &str) -> Option<String> {
    if rel.contains("://") || rel.starts_with("github.com/") || rel.starts_with('/') {
        return None;
    }
    normalise_path(&format!("{dir}/{rel}"))
}

impl Kustomization {
    /// Read the kustomization at `file` (repo-relative) from its parsed root.
    pub fn read(file: &str, root: &Node) -> Kustomization {
        let dir = file.rsplit_once('/').map_or("", |(d, _)| d).to_string();
        let mut resources = Vec::new();
        for key in ["resources", "bases", "components"] {
            for r in root
                .get(key)
                .and_then(Node::as_sequence)
                .unwrap_or_default()
            {
                if let Some(p) = r.as_str().and_then(|r| join(&dir, r)) {
                    resources.push(p);
                }
            }
        }
        let mut patches = Vec::new();
        let text_of = |entry: &Node| -> Option<PatchText> {
            if let Some(p) = entry.get("path").and_then(Node::as_str) {
                return join(&dir, p).map(PatchText::File);
            }
            entry
                .get("patch")
                .and_then(|n| n.as_str().map(|s| PatchText::Inline(s.to_string(), n.line)))
        };
        for entry in root
            .get("patches")
            .and_then(Node::as_sequence)
            .unwrap_or_default()
        {
            if let Some(text) = text_of(entry) {
                patches.push(PatchRef {
                    line: entry.line,
                    target: entry.get("target").map(Target::read),
                    text,
                    json6902: false,
                });
            }
        }
        for entry in root
            .get("patchesStrategicMerge")
            .and_then(Node::as_sequence)
            .unwrap_or_default()
        {
            let Some(s) = entry.as_str() else { continue };
            // An entry is a file path, or an inline patch (it then holds a newline or `:`).
            let text = if s.contains('\n') || s.contains(": ") {
                Some(PatchText::Inline(s.to_string(), entry.line))
            } else {
                join(&dir, s).map(PatchText::File)
            };
            if let Some(text) = text {
                patches.push(PatchRef {
                    line: entry.line,
                    target: None,
                    text,
                    json6902: false,
                });
            }
        }
        for entry in root
            .get("patchesJson6902")
            .and_then(Node::as_sequence)
            .unwrap_or_default()
        {
            if let Some(text) = text_of(entry) {
                patches.push(PatchRef {
                    line: entry.line,
                    target: entry.get("target").map(Target::read),
                    text,
                    json6902: true,
                });
            }
        }
        Kustomization {
            file: file.to_string(),
            dir,
            resources,
            patches,
        }
    }
}

/// Why an overlay's patch cannot be applied to an ImagePolicy, at the file and line of the
/// patch (or of its entry in the kustomization).
#[derive(Debug, Clone, thiserror::Error)]
pub enum OverlayError {
    /// `patches[].path` names a file that cannot be read.
    #[error("{kustomization}:{line}: patch file {file} cannot be read")]
    Unreadable {
        kustomization: String,
        line: usize,
        file: String,
    },
    #[error("{file}:{line}: the patch is not YAML: {source}")]
    NotYaml {
        file: String,
        line: usize,
        #[source]
        source: Arc<ManifestError>,
    },
    /// A target by label or annotation selector: which policies it hits is not known here.
    #[error(
        "{kustomization}:{line}: a patch target with labelSelector/annotationSelector may patch \
         ImagePolicy objects; name them instead"
    )]
    Selector { kustomization: String, line: usize },
    /// The patch changes what cannot be changed, or cannot be read as a patch.
    #[error("{file}:{line}: {why}")]
    Refused {
        file: String,
        line: usize,
        why: String,
    },
}

/// An ImagePolicy as an overlay renders it.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// Index of the base policy (into the `policies` given to [`render`]).
    pub base: usize,
    /// The policy after the overlay's patches, or why a patch cannot be applied.
    pub policy: Result<FluxPolicy, OverlayError>,
    /// Whether any patch changed it on the way.
    pub patched: bool,
}

/// What [`render`] needs to read: a kustomization by directory, a file's text.
pub trait Tree {
    fn kustomization(&self, dir: &str) -> Option<&Kustomization>;
    fn text(&self, file: &str) -> Option<String>;
}

/// The ImagePolicies kustomization `k` renders, patched. `policies` are the repo's
/// ImagePolicies with the file declaring each.
pub fn render(
    k: &Kustomization,
    tree: &dyn Tree,
    policies: &[(String, FluxPolicy)],
) -> Vec<Rendered> {
    let mut seen = BTreeSet::new();
    render_inner(k, tree, policies, &mut seen, 0)
}

fn render_inner(
    k: &Kustomization,
    tree: &dyn Tree,
    policies: &[(String, FluxPolicy)],
    seen: &mut BTreeSet<String>,
    depth: usize,
) -> Vec<Rendered> {
    if depth > 32 || !seen.insert(k.file.clone()) {
        return Vec::new();
    }
    let mut out: Vec<Rendered> = Vec::new();
    for r in &k.resources {
        let direct: Vec<Rendered> = policies
            .iter()
            .enumerate()
            .filter(|(_, (f, _))| f == r)
            .map(|(i, (_, p))| Rendered {
                base: i,
                policy: Ok(p.clone()),
                patched: false,
            })
            .collect();
        if !direct.is_empty() {
            out.extend(direct);
        } else if let Some(sub) = tree.kustomization(r) {
            out.extend(render_inner(sub, tree, policies, seen, depth + 1));
        }
    }
    seen.remove(&k.file);
    for patch in &k.patches {
        apply_patch(k, patch, tree, &mut out);
    }
    out
}

fn apply_patch(k: &Kustomization, patch: &PatchRef, tree: &dyn Tree, out: &mut [Rendered]) {
    let (file, text, first_line) = match &patch.text {
        PatchText::File(f) => match tree.text(f) {
            Some(t) => (f.clone(), t, 1),
            None => {
                fail_targets(
                    out,
                    patch,
                    None,
                    &OverlayError::Unreadable {
                        kustomization: k.file.clone(),
                        line: patch.line,
                        file: f.clone(),
                    },
                );
                return;
            }
        },
        PatchText::Inline(t, line) => (k.file.clone(), t.clone(), *line),
    };
    let at = |line: usize| {
        if matches!(patch.text, PatchText::Inline(..)) {
            first_line + line - 1
        } else {
            line
        }
    };
    let docs = match scan::parse_documents(&text) {
        Ok(d) => d,
        Err(e) => {
            let why = OverlayError::NotYaml {
                file,
                line: at(e.line().unwrap_or(1)),
                source: Arc::new(e),
            };
            fail_targets(out, patch, None, &why);
            return;
        }
    };
    for root in docs.iter().filter_map(|d| d.root.as_ref()) {
        let is_json = patch.json6902 || root.as_sequence().is_some();
        // A strategic-merge patch names its object; a JSON 6902 one needs the target.
        let (kind, name) = if is_json {
            (None, None)
        } else {
            let (_, kind) = scan::api_version_kind(root);
            (
                kind.map(str::to_string),
                root.get_path(&["metadata", "name"])
                    .and_then(Node::as_str)
                    .map(str::to_string),
            )
        };
        if !is_json && kind.as_deref().is_some_and(|k| k != "ImagePolicy") {
            continue;
        }
        let hits: Vec<usize> = out
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                let Ok(p) = &r.policy else { return true };
                patch.target.as_ref().is_none_or(|t| t.matches(p))
                    && name.as_deref().is_none_or(|n| n == p.name)
                    && (patch.target.is_some() || kind.is_some())
            })
            .map(|(i, _)| i)
            .collect();
        if hits.is_empty() {
            continue;
        }
        if patch.target.as_ref().is_some_and(|t| t.selector) {
            let why = OverlayError::Selector {
                kustomization: k.file.clone(),
                line: patch.line,
            };
            for i in hits {
                out[i].policy = Err(why.clone());
            }
            continue;
        }
        let parsed = if is_json {
            json6902(root)
        } else {
            strategic_merge(root)
        };
        for i in hits {
            let Ok(p) = &out[i].policy else { continue };
            out[i].policy = match &parsed {
                Ok(pp) => {
                    out[i].patched = true;
                    Ok(pp.apply(p))
                }
                Err((line, why)) => Err(OverlayError::Refused {
                    file: file.clone(),
                    line: at(*line),
                    why: why.clone(),
                }),
            };
        }
    }
}

fn fail_targets(out: &mut [Rendered], patch: &PatchRef, _name: Option<&str>, why: &OverlayError) {
    for r in out.iter_mut() {
        let hit = match (&r.policy, &patch.target) {
            (Ok(p), Some(t)) => t.matches(p),
            // An unreadable strategic-merge patch could target any of them.
            (Ok(_), None) => true,
            (Err(_), _) => false,
        };
        if hit {
            r.policy = Err(why.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    struct Files(BTreeMap<String, String>, Vec<Kustomization>);

    impl Tree for Files {
        fn kustomization(&self, dir: &str) -> Option<&Kustomization> {
            self.1.iter().find(|k| k.dir == dir)
        }
        fn text(&self, file: &str) -> Option<String> {
            self.0.get(file).cloned()
        }
    }

    fn files(list: &[(&str, &str)]) -> Files {
        let map: BTreeMap<String, String> = list
            .iter()
            .map(|(f, t)| (f.to_string(), t.to_string()))
            .collect();
        let ks = map
            .iter()
            .filter(|(f, _)| is_kustomization_file(f))
            .map(|(f, t)| {
                let docs = scan::parse_documents(t).unwrap();
                Kustomization::read(f, docs[0].root.as_ref().unwrap())
            })
            .collect();
        Files(map, ks)
    }

    fn base() -> Vec<(String, FluxPolicy)> {
        vec![(
            "apps/base/podinfo/policy.yaml".to_string(),
            FluxPolicy {
                namespace: Some("flux-system".into()),
                name: "podinfo".into(),
                repository_ref: "podinfo".into(),
                repository_namespace: Some("flux-system".into()),
                image: Some("ghcr.io/stefanprodan/podinfo".into()),
                exclusion_list: vec![],
                kind: FluxPolicyKind::Semver(">=1.0.0".into()),
                filter_pattern: None,
                filter_extract: None,
                line: 1,
            },
        )]
    }

    const BASE_K: &str = "resources: [deployment.yaml, policy.yaml]\n";

    fn rendered(tree: &Files, dir: &str) -> Vec<Rendered> {
        render(tree.kustomization(dir).unwrap(), tree, &base())
    }

    #[test]
    fn patches_of_every_form_are_applied() {
        let tree = files(&[
            ("apps/base/podinfo/kustomization.yaml", BASE_K),
            (
                "apps/prod/kustomization.yaml",
                "resources: [../base/podinfo]\npatches:\n  - path: policy-patch.yaml\n    target: {kind: ImagePolicy, name: podinfo}\n",
            ),
            (
                "apps/prod/policy-patch.yaml",
                "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {name: podinfo}\nspec:\n  policy:\n    semver:\n      range: '~1.0'\n",
            ),
            (
                "apps/smp/kustomization.yaml",
                "resources: [../base/podinfo]\npatchesStrategicMerge:\n  - |\n    apiVersion: image.toolkit.fluxcd.io/v1\n    kind: ImagePolicy\n    metadata: {name: podinfo}\n    spec:\n      filterTags: {pattern: '^v(?P<v>.*)$', extract: '$v'}\n",
            ),
            (
                "apps/json/kustomization.yaml",
                "resources: [../prod]\npatchesJson6902:\n  - target: {group: image.toolkit.fluxcd.io, version: v1, kind: ImagePolicy, name: podinfo}\n    patch: |\n      - op: replace\n        path: /spec/policy/semver/range\n        value: '~1.1'\n",
            ),
            (
                "apps/inline/kustomization.yaml",
                "resources: [../base/podinfo]\npatches:\n  - target: {kind: ImagePolicy}\n    patch: |-\n      - op: replace\n        path: /spec/policy\n        value: {numerical: {order: desc}}\n",
            ),
            ("apps/plain/kustomization.yaml", "resources: [../base/podinfo]\n"),
        ]);
        let kind = |dir: &str| {
            let r = rendered(&tree, dir);
            assert_eq!(r.len(), 1, "{dir}: {r:?}");
            (r[0].policy.clone().unwrap(), r[0].patched)
        };
        let (p, patched) = kind("apps/prod");
        assert_eq!(p.kind, FluxPolicyKind::Semver("~1.0".into()));
        assert!(patched);
        let (p, _) = kind("apps/smp");
        assert_eq!(p.kind, FluxPolicyKind::Semver(">=1.0.0".into()));
        assert_eq!(p.filter_pattern.as_deref(), Some("^v(?P<v>.*)$"));
        assert_eq!(p.filter_extract.as_deref(), Some("$v"));
        let (p, _) = kind("apps/json");
        assert_eq!(
            p.kind,
            FluxPolicyKind::Semver("~1.1".into()),
            "patched over prod's patch"
        );
        let (p, _) = kind("apps/inline");
        assert_eq!(p.kind, FluxPolicyKind::Numerical(FluxSortOrder::Desc));
        let (p, patched) = kind("apps/plain");
        assert_eq!(p.kind, FluxPolicyKind::Semver(">=1.0.0".into()));
        assert!(!patched);
    }

    #[test]
    fn patches_that_cannot_be_applied_refuse_the_policy_with_file_and_line() {
        let tree = files(&[
            ("apps/base/podinfo/kustomization.yaml", BASE_K),
            (
                "apps/a/kustomization.yaml",
                "resources: [../base/podinfo]\npatches:\n  - target: {kind: ImagePolicy, name: podinfo}\n    patch: |\n      - op: replace\n        path: /spec/imageRepositoryRef/name\n        value: other\n",
            ),
            (
                "apps/b/kustomization.yaml",
                "resources: [../base/podinfo]\npatches:\n  - path: p.yaml\n",
            ),
            (
                "apps/b/p.yaml",
                "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {name: podinfo}\nspec:\n  imageRepositoryRef: {name: other}\n",
            ),
            (
                "apps/c/kustomization.yaml",
                "resources: [../base/podinfo]\npatches:\n  - path: missing.yaml\n    target: {kind: ImagePolicy}\n",
            ),
            (
                "apps/d/kustomization.yaml",
                "resources: [../base/podinfo]\npatches:\n  - target: {labelSelector: app=podinfo}\n    patch: |\n      - op: replace\n        path: /spec/policy/semver/range\n        value: '1.x'\n",
            ),
        ]);
        let err = |dir: &str| {
            rendered(&tree, dir)[0]
                .policy
                .clone()
                .unwrap_err()
                .to_string()
        };
        let a = err("apps/a");
        assert!(
            a.starts_with("apps/a/kustomization.yaml:5:")
                && a.contains("/spec/imageRepositoryRef/name"),
            "{a}"
        );
        let b = err("apps/b");
        assert!(
            b.starts_with("apps/b/p.yaml:5:") && b.contains("spec.imageRepositoryRef"),
            "{b}"
        );
        let c = err("apps/c");
        assert!(c.contains("apps/c/missing.yaml cannot be read"), "{c}");
        let d = err("apps/d");
        assert!(d.contains("labelSelector"), "{d}");
    }

    #[test]
    fn patches_of_other_objects_are_not_applied_to_policies() {
        let tree = files(&[
            ("apps/base/podinfo/kustomization.yaml", BASE_K),
            (
                "apps/x/kustomization.yaml",
                "resources: [../base/podinfo, ../x]\npatches:\n  - path: d.yaml\n  - target: {kind: Deployment}\n    patch: '[{op: replace, path: /spec/replicas, value: 2}]'\n",
            ),
            (
                "apps/x/d.yaml",
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: podinfo}\nspec: {replicas: 3}\n",
            ),
        ]);
        let r = rendered(&tree, "apps/x");
        assert_eq!(r.len(), 1, "a cycle through ../x renders once");
        assert_eq!(
            r[0].policy.as_ref().unwrap().kind,
            FluxPolicyKind::Semver(">=1.0.0".into())
        );
        assert!(!r[0].patched);
    }
}
