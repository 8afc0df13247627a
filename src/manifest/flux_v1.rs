//! Flux v1 (fluxd and the helm-operator) annotations, read as policies.
//!
//! On a Deployment, StatefulSet, DaemonSet or CronJob, and on a helm-operator `HelmRelease`
//! (`helm.fluxcd.io/v1`, or the older `flux.weave.works/v1beta1`):
//! - `fluxcd.io/automated: "true"` turns automation on;
//! - `fluxcd.io/tag.<container>: semver:RANGE | glob:PATTERN | regex:PATTERN` filters the tags
//!   of one container (a bare value is a glob; `regexp:` is read as `regex:`, as fluxd does);
//! - `fluxcd.io/locked: "true"` holds the workload, with `locked_msg` and `locked_user` saying
//!   why and who ([`locked`]).
//!
//! The older `flux.weave.works/` prefix means the same. A HelmRelease's containers are named
//! as fluxd names them: `chart-image` for an image at the top of `spec.values`, the key for
//! an image one level down, and the alias of the helm-operator's `repository.fluxcd.io/<alias>`,
//! `registry.fluxcd.io/<alias>`, `tag.fluxcd.io/<alias>` path annotations ([`helm_sites`]).
//! What the annotations mean for the run is `crate::flux_v1`'s.

use super::scan::{self, Node, NodeKind, Path, Segment};
use super::{helm, Format, Found, HelmKeys, Parts, Problem, ProblemAbout, Site};

/// The annotation prefixes of fluxd's policies: the current one and the older one.
pub const PREFIXES: [&str; 2] = ["fluxcd.io/", "flux.weave.works/"];

/// The container name fluxd gives an image at the top of a HelmRelease's `spec.values`.
pub const CHART_IMAGE: &str = "chart-image";

/// The workload kinds fluxd automates.
const WORKLOADS: [&str; 4] = ["Deployment", "StatefulSet", "DaemonSet", "CronJob"];

/// The helm-operator's HelmRelease API groups.
const HELM_OPERATOR_GROUPS: [&str; 2] = ["helm.fluxcd.io", "flux.weave.works"];

/// How fluxd ranks the tags of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagFilter {
    /// No `tag.<container>` annotation: every tag, the most recently built wins.
    All,
    /// `semver:RANGE`: the highest version in the range wins.
    Semver(String),
    /// `glob:PATTERN` or a bare value: `*` matches any run of characters; the most recently
    /// built tag wins.
    Glob(String),
    /// `regex:PATTERN` (or `regexp:`): the most recently built matching tag wins.
    Regex(String),
}

impl TagFilter {
    /// The filter an annotation value states.
    pub fn parse(value: &str) -> TagFilter {
        if let Some(range) = value.strip_prefix("semver:") {
            TagFilter::Semver(range.trim().to_string())
        } else if let Some(re) = value
            .strip_prefix("regexp:")
            .or_else(|| value.strip_prefix("regex:"))
        {
            TagFilter::Regex(re.to_string())
        } else {
            TagFilter::Glob(value.strip_prefix("glob:").unwrap_or(value).to_string())
        }
    }

    /// Whether the newest build (the image config's `created`) wins, rather than a version.
    pub fn by_build_time(&self) -> bool {
        !matches!(self, TagFilter::Semver(_))
    }

    /// The anchored regular expression a tag must match, for the filters that have one.
    pub fn pattern(&self) -> Option<String> {
        match self {
            TagFilter::All | TagFilter::Semver(_) => None,
            TagFilter::Regex(re) => Some(re.clone()),
            TagFilter::Glob(g) if g == "*" => None,
            TagFilter::Glob(g) => {
                let parts: Vec<String> = g.split('*').map(regex::escape).collect();
                Some(format!("^{}$", parts.join(".*")))
            }
        }
    }
}

/// A workload held by `fluxcd.io/locked: "true"`, with what `locked_msg` and `locked_user` say.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Lock {
    pub message: Option<String>,
    pub user: Option<String>,
}

impl Lock {
    /// The reason a held reference is reported with: `locked: MSG (by USER)`.
    pub fn reason(&self) -> String {
        let mut out = "locked".to_string();
        if let Some(m) = &self.message {
            out.push_str(": ");
            out.push_str(m);
        }
        if let Some(u) = &self.user {
            out.push_str(&format!(" (by {u})"));
        }
        out
    }
}

/// One container (or HelmRelease image) of an annotated workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// The container's name (`chart-image`, a values key or an alias for a HelmRelease).
    pub name: String,
    /// Byte offsets of the scalars holding its image: a site holding any of them is this
    /// container's.
    pub scalars: Vec<usize>,
}

/// A workload or HelmRelease with Flux v1 annotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    /// Its kind, as written (`Deployment`, `HelmRelease`, ...).
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    /// Line of `metadata`.
    pub line: usize,
    /// `automated: "true"`.
    pub automated: bool,
    /// `locked: "true"`.
    pub lock: Option<Lock>,
    /// `tag.<container>` annotations: container, filter, line.
    pub filters: Vec<(String, TagFilter, usize)>,
    pub containers: Vec<Container>,
}

impl Workload {
    /// fluxd's id of the workload: `NAMESPACE:kind/NAME` (`default` when no namespace).
    pub fn id(&self) -> String {
        format!(
            "{}:{}/{}",
            self.namespace.as_deref().unwrap_or("default"),
            self.kind.to_ascii_lowercase(),
            self.name
        )
    }

    /// The filter of `container`: its `tag.<container>` annotation, else every tag.
    pub fn filter(&self, container: &str) -> TagFilter {
        self.filters
            .iter()
            .find(|(c, _, _)| c == container)
            .map_or(TagFilter::All, |(_, f, _)| f.clone())
    }
}

/// The value of Flux v1 annotation `key` (without prefix), under either prefix; the current
/// prefix wins when both are written.
fn annotation<'a>(annotations: &'a [(Node, Node)], key: &str) -> Option<&'a Node> {
    PREFIXES.iter().find_map(|p| {
        annotations
            .iter()
            .find(|(k, _)| k.as_str().and_then(|k| k.strip_prefix(p)) == Some(key))
            .map(|(_, v)| v)
    })
}

fn annotations_of(root: &Node) -> Option<&[(Node, Node)]> {
    root.get_path(&["metadata", "annotations"])?.as_mapping()
}

/// Whether a boolean annotation says `true` (as fluxd reads it: the string "true").
fn is_true(node: Option<&Node>) -> bool {
    node.and_then(Node::as_str) == Some("true")
}

/// The lock `fluxcd.io/locked: "true"` (or `flux.weave.works/locked`) puts on the object at
/// `root`, if any: `None` when unlocked. The `set`/`lock`/`unlock` commands and the discover
/// stage read locks through this one function.
pub fn locked(root: &Node) -> Option<Lock> {
    let annotations = annotations_of(root)?;
    if !is_true(annotation(annotations, "locked")) {
        return None;
    }
    let text = |key: &str| {
        annotation(annotations, key)
            .and_then(Node::as_str)
            .map(|s| s.trim().trim_matches('"').trim().to_string())
            .filter(|s| !s.is_empty())
    };
    Some(Lock {
        message: text("locked_msg"),
        user: text("locked_user"),
    })
}

/// Whether `root` is a helm-operator HelmRelease.
pub fn is_helm_operator_release(root: &Node) -> bool {
    let (api, kind) = scan::api_version_kind(root);
    kind == Some("HelmRelease") && HELM_OPERATOR_GROUPS.iter().any(|g| scan::in_group(api, g))
}

/// The Flux v1 workload at `root`: `Ok(None)` when it is not a workload fluxd automates or
/// carries none of its annotations; a problem for an annotation that cannot be read.
pub fn read(root: &Node) -> Result<Option<Workload>, Problem> {
    let (_, kind) = scan::api_version_kind(root);
    let Some(kind) = kind else { return Ok(None) };
    let helm_release = is_helm_operator_release(root);
    if !helm_release && !WORKLOADS.contains(&kind) {
        return Ok(None);
    }
    let Some(annotations) = annotations_of(root) else {
        return Ok(None);
    };
    let ours = |k: &Node| {
        k.as_str()
            .is_some_and(|k| PREFIXES.iter().any(|p| k.starts_with(p)))
    };
    if !annotations.iter().any(|(k, _)| ours(k)) {
        return Ok(None);
    }
    let mut filters = Vec::new();
    for (k, v) in annotations {
        let Some(container) = k
            .as_str()
            .and_then(|k| PREFIXES.iter().find_map(|p| k.strip_prefix(p)))
            .and_then(|k| k.strip_prefix("tag."))
        else {
            continue;
        };
        let Some(value) = v.as_str() else {
            return Err(Problem {
                line: v.line,
                message: format!(
                    "Flux v1 annotation {}: expected a string (semver:RANGE, glob:PATTERN or \
                     regex:PATTERN)",
                    k.as_str().unwrap_or_default()
                ),
                about: ProblemAbout::FluxObject,
            });
        };
        if filters.iter().any(|(c, _, _)| c == container) {
            continue; // fluxcd.io/ and flux.weave.works/ both: the first written counts
        }
        filters.push((container.to_string(), TagFilter::parse(value), v.line));
    }
    let metadata = root.get("metadata");
    let text = |key: &str| {
        metadata
            .and_then(|m| m.get(key))
            .and_then(Node::as_str)
            .map(str::to_string)
    };
    let containers = if helm_release {
        helm_containers(root)
    } else {
        workload_containers(root)
    };
    Ok(Some(Workload {
        kind: kind.to_string(),
        namespace: text("namespace"),
        name: text("name").unwrap_or_default(),
        line: metadata.map_or(root.line, |m| m.line),
        automated: is_true(annotation(annotations, "automated")),
        lock: locked(root),
        filters,
        containers,
    }))
}

/// Every named container and init container of a workload, with its `image` scalar.
fn workload_containers(root: &Node) -> Vec<Container> {
    let mut out = Vec::new();
    scan::walk(root, &mut Path::default(), &mut |node, path| {
        if !matches!(path.last_key(), Some("containers" | "initContainers")) {
            return;
        }
        for item in node.as_sequence().unwrap_or_default() {
            let name = item.get("name").and_then(Node::as_str);
            let image = item.get("image");
            if let (Some(name), Some(image)) = (name, image) {
                out.push(Container {
                    name: name.to_string(),
                    scalars: vec![image.span.start],
                });
            }
        }
    });
    out
}

/// The starts of the scalars of an image fluxd reads in `m` (a mapping of values): `image`
/// as a string (with `registry`/`tag` siblings) or as a mapping with `repository`.
fn image_scalars(m: &Node) -> Option<Vec<usize>> {
    let image = m.get("image")?;
    match &image.kind {
        NodeKind::Scalar { .. } if !image.is_null() => {
            let mut v = vec![image.span.start];
            v.extend(m.get("tag").map(|t| t.span.start));
            Some(v)
        }
        NodeKind::Mapping(_) => {
            let repo = image.get("repository")?;
            let mut v = vec![repo.span.start];
            v.extend(image.get("tag").map(|t| t.span.start));
            Some(v)
        }
        _ => None,
    }
}

/// A HelmRelease's images, named as fluxd names them (see the module doc).
fn helm_containers(root: &Node) -> Vec<Container> {
    let Some(values) = root.get_path(&["spec", "values"]) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(scalars) = image_scalars(values) {
        out.push(Container {
            name: CHART_IMAGE.to_string(),
            scalars,
        });
    }
    for (k, v) in values.as_mapping().unwrap_or_default() {
        if let (Some(key), Some(scalars)) = (k.as_str(), image_scalars(v)) {
            out.push(Container {
                name: key.to_string(),
                scalars,
            });
        }
    }
    for (alias, keys) in mappings(root) {
        let start = |p: &Option<String>| {
            p.as_deref()
                .and_then(helm::parse_key_path)
                .and_then(|s| lookup(values, &s))
                .map(|n| n.span.start)
        };
        let scalars: Vec<usize> = [start(&keys.repository), start(&keys.tag)]
            .into_iter()
            .flatten()
            .collect();
        if scalars.is_empty() {
            continue;
        }
        // An alias overrules a detected image (the helm-operator's rule).
        out.retain(|c| c.name != alias && !c.scalars.iter().any(|s| scalars.contains(s)));
        out.push(Container {
            name: alias,
            scalars,
        });
    }
    out
}

fn lookup<'a>(root: &'a Node, segments: &[Segment]) -> Option<&'a Node> {
    segments.iter().try_fold(root, |node, seg| match seg {
        Segment::Key(k) => node.get(k),
        Segment::Index(i) => node.as_sequence()?.get(*i),
    })
}

/// The helm-operator's path annotations of a HelmRelease, by alias (those with a
/// `repository.fluxcd.io/<alias>`, which the others need), paths relative to `spec.values`.
pub fn mappings(root: &Node) -> Vec<(String, HelmKeys)> {
    let mut out: Vec<(String, HelmKeys)> = Vec::new();
    let Some(annotations) = annotations_of(root) else {
        return out;
    };
    for (k, v) in annotations {
        let (Some(k), Some(v)) = (k.as_str(), v.as_str()) else {
            continue;
        };
        let Some((part, alias)) = ["registry", "repository", "tag"].iter().find_map(|part| {
            k.strip_prefix(&format!("{part}.fluxcd.io/"))
                .map(|a| (*part, a))
        }) else {
            continue;
        };
        let at = match out.iter().position(|(a, _)| a == alias) {
            Some(i) => i,
            None => {
                out.push((alias.to_string(), HelmKeys::default()));
                out.len() - 1
            }
        };
        let keys = &mut out[at].1;
        let slot = match part {
            "registry" => &mut keys.registry,
            "repository" => &mut keys.repository,
            _ => &mut keys.tag,
        };
        *slot = Some(v.to_string());
    }
    out.retain(|(_, k)| k.repository.is_some());
    out
}

/// The sites of a helm-operator HelmRelease that the Helm values shapes do not find, to be
/// claimed before them: the path annotations' images, and fluxd's `image: REPO` beside
/// `tag: TAG` (and `registry:`) at the top of `spec.values` or one level down. A mapping with
/// a registry and no tag (the repository value then holds `name:tag`) is a problem: it cannot
/// be spliced as separate parts.
pub fn helm_sites(root: &Node, out: &mut Vec<Site>, problems: &mut Vec<Problem>) {
    if !is_helm_operator_release(root) {
        return;
    }
    let Some(values) = root.get_path(&["spec", "values"]) else {
        return;
    };
    let prefix = scan::path_of(&["spec", "values"]);
    for (alias, keys) in mappings(root) {
        match (&keys.registry, &keys.tag) {
            (_, Some(_)) => helm::keyed_sites(values, &prefix, &[keys], Format::Helm, out),
            (None, None) => {
                // The repository value holds the whole reference.
                let repo = keys.repository.as_deref().unwrap_or_default();
                let Some(segments) = helm::parse_key_path(repo) else {
                    continue;
                };
                let mut path = prefix.clone();
                path.0.extend(segments.iter().cloned());
                if let Some(found) = lookup(values, &segments).and_then(|n| n.to_found(&path)) {
                    out.push(Site::whole(Format::Helm, found));
                }
            }
            (Some(_), None) => problems.push(Problem {
                line: root.get("metadata").map_or(root.line, |m| m.line),
                message: format!(
                    "Flux v1 annotation registry.fluxcd.io/{alias} without tag.fluxcd.io/{alias}: \
                     a repository value holding NAME:TAG beside a registry is not rewritten"
                ),
                about: ProblemAbout::FluxObject,
            }),
        }
    }
    let mut sibling = |m: &Node, path: &Path| {
        let (Some(image), Some(tag)) = (m.get("image"), m.get("tag")) else {
            return;
        };
        if !matches!(image.kind, NodeKind::Scalar { .. }) || image.is_null() {
            return;
        }
        let at = |key: &str, node: Option<&Node>| -> Option<Found> {
            let mut p = path.clone();
            p.push(Segment::Key(key.to_string()));
            node.filter(|n| !n.is_null()).and_then(|n| n.to_found(&p))
        };
        let parts = Parts::Split {
            registry: at("registry", m.get("registry")),
            name: at("image", Some(image)),
            tag: at("tag", Some(tag)),
            digest: None,
        };
        if let Parts::Split { name: Some(_), .. } = &parts {
            out.push(Site {
                format: Format::Helm,
                policy: None,
                keys: None,
                line: tag.line,
                parts,
            });
        }
    };
    sibling(values, &prefix);
    for (k, v) in values.as_mapping().unwrap_or_default() {
        if let Some(key) = k.as_str() {
            let mut p = prefix.clone();
            p.push(Segment::Key(key.to_string()));
            sibling(v, &p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::scan::parse_documents;

    fn root(text: &str) -> Node {
        parse_documents(text).unwrap().remove(0).root.unwrap()
    }

    #[test]
    fn filters_read_as_fluxd_reads_them() {
        assert_eq!(
            TagFilter::parse("semver:~3.1"),
            TagFilter::Semver("~3.1".into())
        );
        assert_eq!(
            TagFilter::parse("regex:^3.10.*"),
            TagFilter::Regex("^3.10.*".into())
        );
        assert_eq!(TagFilter::parse("regexp:^a"), TagFilter::Regex("^a".into()));
        assert_eq!(
            TagFilter::parse("glob:1.21.*"),
            TagFilter::Glob("1.21.*".into())
        );
        assert_eq!(TagFilter::parse("dev-*"), TagFilter::Glob("dev-*".into()));
        let glob = TagFilter::Glob("1.21.*".into()).pattern().unwrap();
        let re = regex::Regex::new(&glob).unwrap();
        assert!(re.is_match("1.21.5-r0"));
        assert!(!re.is_match("1.210") && !re.is_match("x1.21.5"));
        assert_eq!(TagFilter::Glob("*".into()).pattern(), None);
        assert!(!TagFilter::Semver("~1".into()).by_build_time());
        assert!(TagFilter::All.by_build_time());
    }

    #[test]
    fn a_workload_with_both_prefixes_and_a_lock() {
        let w = read(&root(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: podinfo\n  namespace: demo\n  \
             annotations:\n    flux.weave.works/automated: \"true\"\n    fluxcd.io/tag.init: regex:^3.10.*\n    \
             fluxcd.io/tag.podinfod: semver:~3.1\n    fluxcd.io/locked: 'true'\n    \
             fluxcd.io/locked_msg: '\"Halt updates for now\"'\n    fluxcd.io/locked_user: Jo <jo@example.com>\n\
             spec:\n  template:\n    spec:\n      initContainers:\n      - name: init\n        image: alpine:3.10.1\n      \
             containers:\n      - name: podinfod\n        image: stefanprodan/podinfo:3.1.0\n",
        ))
        .unwrap()
        .unwrap();
        assert_eq!(w.id(), "demo:deployment/podinfo");
        assert!(w.automated);
        assert_eq!(
            w.lock.as_ref().unwrap().reason(),
            "locked: Halt updates for now (by Jo <jo@example.com>)"
        );
        assert_eq!(w.filter("podinfod"), TagFilter::Semver("~3.1".into()));
        assert_eq!(w.filter("other"), TagFilter::All);
        let names: Vec<&str> = w.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["init", "podinfod"]);
    }

    #[test]
    fn unannotated_or_other_kinds_are_not_workloads() {
        assert_eq!(
            read(&root("kind: Deployment\nmetadata: {name: a}\n")).unwrap(),
            None
        );
        assert_eq!(
            read(&root(
                "kind: Service\nmetadata: {annotations: {fluxcd.io/automated: \"true\"}}\n"
            ))
            .unwrap(),
            None
        );
        assert!(read(&root(
            "kind: Deployment\nmetadata: {annotations: {fluxcd.io/tag.a: [x]}}\n"
        ))
        .unwrap_err()
        .message
        .contains("fluxcd.io/tag.a"));
        assert_eq!(
            locked(&root(
                "kind: Deployment\nmetadata: {annotations: {fluxcd.io/locked: \"false\"}}\n"
            )),
            None
        );
    }

    #[test]
    fn older_helm_operator_releases_are_scanned_too() {
        let text = "apiVersion: flux.weave.works/v1beta1\nkind: HelmRelease\nmetadata:\n  \
                    name: ghost\n  annotations:\n    flux.weave.works/automated: \"true\"\n    \
                    flux.weave.works/tag.chart-image: glob:1.21.*\nspec:\n  values:\n    \
                    image: bitnami/ghost:1.21.5-r0\n";
        let scan = crate::manifest::scan_file(
            std::path::Path::new("ghost.yaml"),
            text,
            &Default::default(),
        )
        .unwrap();
        assert_eq!(scan.sites.len(), 1);
        assert_eq!(scan.sites[0].format, Format::Helm);
        let w = &scan.flux_v1[0];
        assert_eq!(w.id(), "default:helmrelease/ghost");
        assert_eq!(w.containers[0].name, CHART_IMAGE);
        assert_eq!(w.filter(CHART_IMAGE), TagFilter::Glob("1.21.*".into()));
        // A HelmRelease of another group is not the helm-operator's.
        assert!(!is_helm_operator_release(&root(
            "apiVersion: example.com/v1\nkind: HelmRelease\n"
        )));
    }

    #[test]
    fn helm_release_images_are_named_as_fluxd_names_them() {
        let r = root(
            "apiVersion: helm.fluxcd.io/v1\nkind: HelmRelease\nmetadata:\n  name: r\n  annotations:\n    \
             fluxcd.io/automated: \"true\"\n    repository.fluxcd.io/app: appImage\n    tag.fluxcd.io/app: appTag\n    \
             repository.fluxcd.io/whole: deep.ref\n\
             spec:\n  values:\n    image:\n      repository: bitnami/redis\n      tag: 4.0.11\n    \
             sub:\n      image: acme/sub\n      tag: 1.0.0\n    appImage: acme/app\n    appTag: 2.0.0\n    \
             deep:\n      ref: acme/deep:3.0.0\n",
        );
        let w = read(&r).unwrap().unwrap();
        let names: Vec<&str> = w.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["chart-image", "sub", "app", "whole"]);
        let mut sites = Vec::new();
        let mut problems = Vec::new();
        helm_sites(&r, &mut sites, &mut problems);
        assert!(problems.is_empty());
        let values: Vec<Vec<String>> = sites
            .iter()
            .map(|s| s.parts.scalars().iter().map(|f| f.value.clone()).collect())
            .collect();
        assert_eq!(
            values,
            [
                vec!["acme/app".to_string(), "2.0.0".into()],
                vec!["acme/deep:3.0.0".to_string()],
                vec!["acme/sub".to_string(), "1.0.0".into()],
            ]
        );
    }
}
