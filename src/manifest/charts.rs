//! Helm chart versions in manifests (issue 18): where a chart's version is written, and which
//! chart repository and chart it names, so that a `charts:` entry can govern it.
//!
//! The shapes, each found in any document of any file (`Chart.yaml` dependencies only in
//! files named `Chart.yaml`):
//! - Flux `HelmRelease` (`helm.toolkit.fluxcd.io`) `spec.chart.spec.version`, the chart named
//!   by `spec.chart.spec.chart` in the `HelmRepository` its `sourceRef` names (joined later,
//!   by `crate::charts`, since the HelmRepository usually lives in another file);
//! - Flux `HelmRepository` (`source.toolkit.fluxcd.io`): its name, namespace and `spec.url`;
//! - Flux `OCIRepository` `spec.ref.tag` (or `spec.ref.semver`, a range: left alone), the
//!   artifact being `spec.url` (what a HelmRelease's `spec.chartRef` points at);
//! - Argo CD `Application` `spec.source.targetRevision` and `spec.sources[].targetRevision`
//!   of a source with `chart:` and `repoURL:`;
//! - kustomize `helmCharts[].version` (with `name:` and `repo:`);
//! - `Chart.yaml` `dependencies[].version` (with `name:` and `repository:`).
//!
//! Each is a [`ChartSite`]: the version scalar (its exact span, for the usual splice) and
//! where the chart lives. Nothing here resolves or decides anything.

use std::path::Path as FsPath;

use super::scan::{path_of, Node, Path, Segment};
use super::{Format, Found};

/// Where a chart version's chart lives, as the manifest says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChartSource {
    /// The repository URL (`oci://…`, `https://…`, or an Argo CD OCI repo without scheme)
    /// and the chart's name in it.
    Direct {
        /// The repository as written.
        repository: String,
        /// The chart name.
        chart: String,
    },
    /// A whole OCI artifact URL (`oci://REGISTRY/PATH/CHART`): a Flux OCIRepository's `url`.
    Artifact {
        /// The URL as written.
        url: String,
    },
    /// A Flux HelmRelease's chart in the HelmRepository its `sourceRef` names.
    HelmRepository {
        /// The HelmRepository's name.
        name: String,
        /// Its namespace: the sourceRef's, else the HelmRelease's own; `None` when neither
        /// says.
        namespace: Option<String>,
        /// The chart name.
        chart: String,
    },
}

/// One chart version in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartSite {
    /// Which shape found it ([`Format::HelmRelease`], [`Format::OciRepository`], ...).
    pub format: Format,
    /// The version scalar.
    pub version: Found,
    /// Where the chart lives.
    pub source: ChartSource,
}

/// A Flux HelmRepository declared in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelmRepositoryObject {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`, when written.
    pub namespace: Option<String>,
    /// `spec.url`.
    pub url: String,
}

/// Whether `path` names a Helm chart's `Chart.yaml`.
pub fn is_chart_yaml(path: &FsPath) -> bool {
    path.file_name().is_some_and(|n| n == "Chart.yaml")
}

/// The chart sites and HelmRepository objects of one document, appended to `sites` and
/// `repositories`. `chart_yaml`: the file is a `Chart.yaml`.
pub fn scan(
    root: &Node,
    chart_yaml: bool,
    sites: &mut Vec<ChartSite>,
    repositories: &mut Vec<HelmRepositoryObject>,
) {
    let api = root.get("apiVersion").and_then(Node::as_str).unwrap_or("");
    let kind = root.get("kind").and_then(Node::as_str).unwrap_or("");
    let group = api.split('/').next().unwrap_or("");
    match (group, kind) {
        ("helm.toolkit.fluxcd.io", "HelmRelease") => helm_release(root, sites),
        ("source.toolkit.fluxcd.io", "HelmRepository") => {
            if let Some(r) = helm_repository(root) {
                repositories.push(r);
            }
        }
        ("source.toolkit.fluxcd.io", "OCIRepository") => oci_repository(root, sites),
        ("argoproj.io", "Application") => argo_application(root, sites),
        _ => {}
    }
    if root.get("helmCharts").is_some() && (kind.is_empty() || kind == "Kustomization") {
        entries(
            root,
            "helmCharts",
            ("name", "repo", "version"),
            Format::KustomizeHelmChart,
            sites,
        );
    }
    if chart_yaml {
        entries(
            root,
            "dependencies",
            ("name", "repository", "version"),
            Format::ChartDependency,
            sites,
        );
    }
}

fn text<'a>(node: &'a Node, keys: &[&str]) -> Option<&'a str> {
    node.get_path(keys)
        .and_then(Node::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The version scalar at `keys`, when it holds a non-empty scalar.
fn version_at(node: &Node, keys: &[&str], path: &Path) -> Option<Found> {
    let v = node.get_path(keys)?;
    if v.is_null() || v.as_str().is_none_or(|s| s.trim().is_empty()) {
        return None;
    }
    let mut full = path.clone();
    full.0
        .extend(keys.iter().map(|k| Segment::Key((*k).to_owned())));
    v.to_found(&full)
}

fn helm_release(root: &Node, sites: &mut Vec<ChartSite>) {
    let Some(spec) = root.get_path(&["spec", "chart", "spec"]) else {
        return;
    };
    let (Some(chart), Some(kind), Some(name)) = (
        text(spec, &["chart"]),
        text(spec, &["sourceRef", "kind"]),
        text(spec, &["sourceRef", "name"]),
    ) else {
        return;
    };
    if kind != "HelmRepository" {
        return;
    }
    let Some(version) = version_at(spec, &["version"], &path_of(&["spec", "chart", "spec"])) else {
        return;
    };
    let namespace = text(spec, &["sourceRef", "namespace"])
        .or_else(|| text(root, &["metadata", "namespace"]))
        .map(str::to_string);
    sites.push(ChartSite {
        format: Format::HelmRelease,
        version,
        source: ChartSource::HelmRepository {
            name: name.to_string(),
            namespace,
            chart: chart.to_string(),
        },
    });
}

fn helm_repository(root: &Node) -> Option<HelmRepositoryObject> {
    Some(HelmRepositoryObject {
        name: text(root, &["metadata", "name"])?.to_string(),
        namespace: text(root, &["metadata", "namespace"]).map(str::to_string),
        url: text(root, &["spec", "url"])?.to_string(),
    })
}

fn oci_repository(root: &Node, sites: &mut Vec<ChartSite>) {
    let Some(url) = text(root, &["spec", "url"]) else {
        return;
    };
    let base = path_of(&["spec", "ref"]);
    let Some(r) = root.get_path(&["spec", "ref"]) else {
        return;
    };
    // `semver` wins over `tag` in Flux: a range, which the chart entry then leaves alone.
    let version = version_at(r, &["semver"], &base).or_else(|| version_at(r, &["tag"], &base));
    if let Some(version) = version {
        sites.push(ChartSite {
            format: Format::OciRepository,
            version,
            source: ChartSource::Artifact {
                url: url.to_string(),
            },
        });
    }
}

fn argo_application(root: &Node, sites: &mut Vec<ChartSite>) {
    let mut one = |source: &Node, path: Path| {
        let (Some(chart), Some(repo)) = (text(source, &["chart"]), text(source, &["repoURL"]))
        else {
            return;
        };
        if let Some(version) = version_at(source, &["targetRevision"], &path) {
            sites.push(ChartSite {
                format: Format::ArgoCdChart,
                version,
                source: ChartSource::Direct {
                    repository: repo.to_string(),
                    chart: chart.to_string(),
                },
            });
        }
    };
    if let Some(source) = root.get_path(&["spec", "source"]) {
        one(source, path_of(&["spec", "source"]));
    }
    if let Some(list) = root
        .get_path(&["spec", "sources"])
        .and_then(Node::as_sequence)
    {
        for (i, source) in list.iter().enumerate() {
            let mut path = path_of(&["spec", "sources"]);
            path.push(Segment::Index(i));
            one(source, path);
        }
    }
}

/// `root[list][]` entries naming a chart by `keys` (name, repository, version).
fn entries(
    root: &Node,
    list: &str,
    keys: (&str, &str, &str),
    format: Format,
    sites: &mut Vec<ChartSite>,
) {
    let Some(items) = root.get(list).and_then(Node::as_sequence) else {
        return;
    };
    for (i, item) in items.iter().enumerate() {
        let (Some(chart), Some(repo)) = (text(item, &[keys.0]), text(item, &[keys.1])) else {
            continue;
        };
        let mut path = path_of(&[list]);
        path.push(Segment::Index(i));
        if let Some(version) = version_at(item, &[keys.2], &path) {
            sites.push(ChartSite {
                format,
                version,
                source: ChartSource::Direct {
                    repository: repo.to_string(),
                    chart: chart.to_string(),
                },
            });
        }
    }
}

/// Whether a version field holds a range or a wildcard rather than one version (`^6`,
/// `>=1.0`, `~1.2`, `6.x`, `*`, `1.0 - 2.0`, `>=1 <2`, `1 || 2`): such a field is left alone.
pub fn is_range(version: &str) -> bool {
    let v = version.trim();
    if v.is_empty() {
        return false;
    }
    if v.contains(['^', '~', '>', '<', '=', '*', '|', ',', ' ']) {
        return true;
    }
    let core = v.trim_start_matches(['v', 'V']);
    let core = core.split(['-', '+']).next().unwrap_or(core);
    core.split('.').any(|part| part == "x" || part == "X")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::scan::parse_documents;

    fn scan_text(text: &str, chart_yaml: bool) -> (Vec<ChartSite>, Vec<HelmRepositoryObject>) {
        let mut sites = Vec::new();
        let mut repos = Vec::new();
        for doc in parse_documents(text).unwrap() {
            if let Some(root) = &doc.root {
                scan(root, chart_yaml, &mut sites, &mut repos);
            }
        }
        (sites, repos)
    }

    #[test]
    fn ranges_are_told_from_versions() {
        for r in [
            "^6",
            ">=1.0",
            "~1.2.0",
            "6.x",
            "6.X.1",
            "*",
            ">=1 <2",
            "1 || 2",
            "1.0 - 2.0",
        ] {
            assert!(is_range(r), "{r}");
        }
        for v in [
            "6.0.0",
            "v1.2.3",
            "1.2.3-rc.1",
            "1.0.0+build.x",
            "0.1",
            "xylophone",
        ] {
            assert!(!is_range(v), "{v}");
        }
    }

    #[test]
    fn every_shape_is_found_with_its_span_and_source() {
        let text = "\
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata: {name: podinfo, namespace: apps}
spec:
  chart:
    spec:
      chart: podinfo
      version: \"6.0.0\" # pinned
      sourceRef: {kind: HelmRepository, name: podinfo}
---
apiVersion: source.toolkit.fluxcd.io/v1
kind: HelmRepository
metadata: {name: podinfo, namespace: apps}
spec: {type: oci, url: oci://ghcr.io/stefanprodan/charts}
---
apiVersion: source.toolkit.fluxcd.io/v1beta2
kind: OCIRepository
metadata: {name: podinfo}
spec:
  url: oci://ghcr.io/stefanprodan/charts/podinfo
  ref:
    tag: 6.1.0
---
apiVersion: argoproj.io/v1alpha1
kind: Application
spec:
  sources:
    - repoURL: ghcr.io/acme/charts
      chart: web
      targetRevision: 1.0.0
    - repoURL: https://github.com/acme/config
      targetRevision: main
      path: web
---
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
helmCharts:
  - name: redis
    repo: https://charts.example.com
    version: 17.0.0
";
        let (sites, repos) = scan_text(text, false);
        let got: Vec<(Format, &str, usize, &str)> = sites
            .iter()
            .map(|s| {
                (
                    s.format,
                    s.version.value.as_str(),
                    s.version.line,
                    s.version.path.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (Format::HelmRelease, "6.0.0", 8, "spec.chart.spec.version"),
                (Format::OciRepository, "6.1.0", 22, "spec.ref.tag"),
                (
                    Format::ArgoCdChart,
                    "1.0.0",
                    30,
                    "spec.sources[0].targetRevision"
                ),
                (
                    Format::KustomizeHelmChart,
                    "17.0.0",
                    40,
                    "helmCharts[0].version"
                ),
            ]
        );
        assert_eq!(&text[sites[0].version.span.clone()], "\"6.0.0\"");
        assert_eq!(
            sites[0].source,
            ChartSource::HelmRepository {
                name: "podinfo".into(),
                namespace: Some("apps".into()),
                chart: "podinfo".into()
            }
        );
        assert_eq!(
            repos,
            [HelmRepositoryObject {
                name: "podinfo".into(),
                namespace: Some("apps".into()),
                url: "oci://ghcr.io/stefanprodan/charts".into()
            }]
        );
    }

    #[test]
    fn chart_yaml_dependencies_only_in_chart_yaml_and_semver_refs_are_found_as_written() {
        let deps = "apiVersion: v2\nname: app\ndependencies:\n  - name: redis\n    repository: oci://r.test/charts\n    version: 17.0.0\n  - name: local\n    repository: file://../local\n    version: 0.1.0\n";
        assert_eq!(scan_text(deps, false).0.len(), 0);
        let (sites, _) = scan_text(deps, true);
        assert_eq!(sites.len(), 2);
        assert_eq!(sites[0].format, Format::ChartDependency);
        let oci = "apiVersion: source.toolkit.fluxcd.io/v1\nkind: OCIRepository\nmetadata: {name: x}\nspec:\n  url: oci://r.test/c/x\n  ref: {semver: \"^6\"}\n";
        let (sites, _) = scan_text(oci, false);
        assert_eq!(sites[0].version.value, "^6");
    }
}
