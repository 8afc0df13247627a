//! Flux `ImagePolicy` and `ImageRepository` objects (`image.toolkit.fluxcd.io`, v1 and the
//! v1beta versions, which share these fields) read as policies, so that a Flux repo needs no
//! config file: the image, the semver range or alphabetical/numerical order, `filterTags`
//! pattern and extract, and the repository's `exclusionList`.

use super::scan::{self, Node};
use super::{Problem, ProblemAbout};

/// The API group of Flux's image objects.
pub const GROUP: &str = "image.toolkit.fluxcd.io";

/// Sort order of an alphabetical or numerical policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FluxSortOrder {
    /// Ascending: the last tag wins (Flux's default).
    Asc,
    /// Descending: the first tag wins.
    Desc,
}

/// How an ImagePolicy picks the latest tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FluxPolicyKind {
    /// `policy.semver.range`.
    Semver(String),
    /// `policy.alphabetical.order`.
    Alphabetical(FluxSortOrder),
    /// `policy.numerical.order`.
    Numerical(FluxSortOrder),
}

/// A Flux ImagePolicy, with its ImageRepository's image and exclusions once joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FluxPolicy {
    /// `metadata.namespace`; `None` when the file does not say (set by a kustomization, say).
    pub namespace: Option<String>,
    /// `metadata.name`: what markers name after `NS:`.
    pub name: String,
    /// `spec.imageRepositoryRef.name`.
    pub repository_ref: String,
    /// `spec.imageRepositoryRef.namespace`, else the policy's own namespace.
    pub repository_namespace: Option<String>,
    /// The ImageRepository's `spec.image`, when joined ([`join`]).
    pub image: Option<String>,
    /// The ImageRepository's `spec.exclusionList` (regular expressions), when joined.
    pub exclusion_list: Vec<String>,
    /// How the latest tag is picked.
    pub kind: FluxPolicyKind,
    /// `spec.filterTags.pattern`.
    pub filter_pattern: Option<String>,
    /// `spec.filterTags.extract`.
    pub filter_extract: Option<String>,
    /// 1-based line of the object.
    pub line: usize,
}

/// A Flux ImageRepository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FluxRepository {
    /// `metadata.namespace`, when the file says.
    pub namespace: Option<String>,
    /// `metadata.name`.
    pub name: String,
    /// `spec.image`.
    pub image: String,
    /// `spec.exclusionList`: regular expressions of tags to leave out.
    pub exclusion_list: Vec<String>,
    /// 1-based line of the object.
    pub line: usize,
}

/// The Flux object in one document, if it is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FluxObject {
    /// An ImagePolicy.
    Policy(FluxPolicy),
    /// An ImageRepository.
    Repository(FluxRepository),
}

fn str_at<'a>(node: &'a Node, keys: &[&str]) -> Option<&'a str> {
    node.get_path(keys)
        .filter(|n| !n.is_null())
        .and_then(Node::as_str)
}

/// Read `root` as a Flux ImagePolicy or ImageRepository. `Ok(None)` when it is neither; an
/// error when it is one that cannot be used.
pub fn read(root: &Node) -> Result<Option<FluxObject>, Problem> {
    let (api, kind) = scan::api_version_kind(root);
    if !scan::in_group(api, GROUP) {
        return Ok(None);
    }
    let problem = |message: String| Problem {
        line: root.line,
        message,
        about: ProblemAbout::FluxObject,
    };
    let namespace = str_at(root, &["metadata", "namespace"]).map(str::to_owned);
    let name = str_at(root, &["metadata", "name"]).map(str::to_owned);
    match kind {
        Some("ImageRepository") => {
            let name =
                name.ok_or_else(|| problem("ImageRepository without metadata.name".into()))?;
            let image = str_at(root, &["spec", "image"])
                .ok_or_else(|| problem(format!("ImageRepository {name} without spec.image")))?;
            let exclusion_list = root
                .get_path(&["spec", "exclusionList"])
                .and_then(Node::as_sequence)
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|n| n.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            Ok(Some(FluxObject::Repository(FluxRepository {
                namespace,
                name,
                image: image.to_owned(),
                exclusion_list,
                line: root.line,
            })))
        }
        Some("ImagePolicy") => {
            let name = name.ok_or_else(|| problem("ImagePolicy without metadata.name".into()))?;
            let repository_ref =
                str_at(root, &["spec", "imageRepositoryRef", "name"]).ok_or_else(|| {
                    problem(format!(
                        "ImagePolicy {name} without spec.imageRepositoryRef.name"
                    ))
                })?;
            let repository_namespace = str_at(root, &["spec", "imageRepositoryRef", "namespace"])
                .map(str::to_owned)
                .or_else(|| namespace.clone());
            let order = |which: &str| -> Result<FluxSortOrder, Problem> {
                match str_at(root, &["spec", "policy", which, "order"]) {
                    None | Some("asc") => Ok(FluxSortOrder::Asc),
                    Some("desc") => Ok(FluxSortOrder::Desc),
                    Some(other) => Err(problem(format!(
                        "ImagePolicy {name}: {which} order {other:?} is not asc or desc"
                    ))),
                }
            };
            let policy = root.get_path(&["spec", "policy"]);
            let kind = if let Some(range) = str_at(root, &["spec", "policy", "semver", "range"]) {
                FluxPolicyKind::Semver(range.to_owned())
            } else if policy.and_then(|p| p.get("alphabetical")).is_some() {
                FluxPolicyKind::Alphabetical(order("alphabetical")?)
            } else if policy.and_then(|p| p.get("numerical")).is_some() {
                FluxPolicyKind::Numerical(order("numerical")?)
            } else {
                return Err(problem(format!(
                    "ImagePolicy {name}: spec.policy has no semver range, alphabetical or numerical order"
                )));
            };
            Ok(Some(FluxObject::Policy(FluxPolicy {
                namespace,
                name,
                repository_ref: repository_ref.to_owned(),
                repository_namespace,
                image: None,
                exclusion_list: Vec::new(),
                kind,
                filter_pattern: str_at(root, &["spec", "filterTags", "pattern"]).map(str::to_owned),
                filter_extract: str_at(root, &["spec", "filterTags", "extract"]).map(str::to_owned),
                line: root.line,
            })))
        }
        _ => Ok(None),
    }
}

/// Fill each policy's `image` and `exclusion_list` from the repository it refers to: same
/// name, and same namespace when both say one (a namespace missing on either side matches).
/// Policies already joined are left alone.
pub fn join(policies: &mut [FluxPolicy], repositories: &[FluxRepository]) {
    for policy in policies.iter_mut().filter(|p| p.image.is_none()) {
        let repo = repositories.iter().find(|r| {
            r.name == policy.repository_ref
                && match (&r.namespace, &policy.repository_namespace) {
                    (Some(a), Some(b)) => a == b,
                    _ => true,
                }
        });
        if let Some(repo) = repo {
            policy.image = Some(repo.image.clone());
            policy.exclusion_list = repo.exclusion_list.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::scan::parse_documents;

    fn objects(text: &str) -> Vec<Result<Option<FluxObject>, Problem>> {
        parse_documents(text)
            .unwrap()
            .iter()
            .filter_map(|d| d.root.as_ref())
            .map(read)
            .collect()
    }

    const FLUX: &str = "\
apiVersion: image.toolkit.fluxcd.io/v1beta2
kind: ImageRepository
metadata:
  name: podinfo
  namespace: flux-system
spec:
  image: ghcr.io/stefanprodan/podinfo
  interval: 5m
  exclusionList:
    - \"^.*\\\\.sig$\"
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata:
  name: podinfo
  namespace: flux-system
spec:
  imageRepositoryRef:
    name: podinfo
  filterTags:
    pattern: '^main-[a-f0-9]+-(?P<ts>[0-9]+)'
    extract: '$ts'
  policy:
    semver:
      range: 5.0.x
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata:
  name: by-time
spec:
  imageRepositoryRef:
    name: other
    namespace: apps
  policy:
    numerical:
      order: desc
---
apiVersion: image.toolkit.fluxcd.io/v1beta2
kind: ImagePolicy
metadata: {name: alpha}
spec:
  imageRepositoryRef: {name: podinfo}
  policy: {alphabetical: {}}
";

    #[test]
    fn reads_repositories_and_policies() {
        let objs = objects(FLUX);
        let Ok(Some(FluxObject::Repository(repo))) = &objs[0] else {
            panic!("{:?}", objs[0])
        };
        assert_eq!(repo.image, "ghcr.io/stefanprodan/podinfo");
        assert_eq!(repo.exclusion_list, ["^.*\\.sig$"]);
        assert_eq!(repo.namespace.as_deref(), Some("flux-system"));
        let Ok(Some(FluxObject::Policy(p))) = &objs[1] else {
            panic!()
        };
        assert_eq!(p.kind, FluxPolicyKind::Semver("5.0.x".into()));
        assert_eq!(
            p.filter_pattern.as_deref(),
            Some("^main-[a-f0-9]+-(?P<ts>[0-9]+)")
        );
        assert_eq!(p.filter_extract.as_deref(), Some("$ts"));
        assert_eq!(p.line, 12);
        let Ok(Some(FluxObject::Policy(p2))) = &objs[2] else {
            panic!()
        };
        assert_eq!(p2.kind, FluxPolicyKind::Numerical(FluxSortOrder::Desc));
        assert_eq!(p2.repository_namespace.as_deref(), Some("apps"));
        assert_eq!(p2.namespace, None);
        let Ok(Some(FluxObject::Policy(p3))) = &objs[3] else {
            panic!()
        };
        assert_eq!(p3.kind, FluxPolicyKind::Alphabetical(FluxSortOrder::Asc));

        let repos = vec![repo.clone()];
        let mut policies = vec![p.clone(), p2.clone(), p3.clone()];
        join(&mut policies, &repos);
        assert_eq!(
            policies[0].image.as_deref(),
            Some("ghcr.io/stefanprodan/podinfo")
        );
        assert_eq!(policies[0].exclusion_list, ["^.*\\.sig$"]);
        assert_eq!(policies[1].image, None, "other name and namespace");
        assert_eq!(
            policies[2].image.as_deref(),
            Some("ghcr.io/stefanprodan/podinfo"),
            "no namespace on the policy matches"
        );
    }

    #[test]
    fn unusable_objects_are_problems_and_others_ignored() {
        let text = "\
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: {name: p}
spec: {imageRepositoryRef: {name: r}, policy: {}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: {name: q}
spec: {imageRepositoryRef: {name: r}, policy: {numerical: {order: up}}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {name: r}
spec: {}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageUpdateAutomation
metadata: {name: u}
---
apiVersion: image.toolkit.fluxcd.iox/v1
kind: ImagePolicy
";
        let objs = objects(text);
        assert!(objs[0]
            .as_ref()
            .unwrap_err()
            .message
            .contains("spec.policy"));
        assert!(objs[1].as_ref().unwrap_err().message.contains("\"up\""));
        assert!(objs[2].as_ref().unwrap_err().message.contains("spec.image"));
        assert_eq!(objs[2].as_ref().unwrap_err().line, 11);
        assert_eq!(objs[3], Ok(None));
        assert_eq!(objs[4], Ok(None));
    }
}
