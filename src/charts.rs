//! Helm charts as governed references (issue 18): a `charts:` entry of the config governs every
//! chart version the manifests write for its (repository, chart), with no markers.
//!
//! A chart is treated as an image whose tags are its versions, so the stages after discover
//! (select, rewrite, deliver, report) handle it as they handle images:
//! - the governor's image ([`chart_image`]) is, for a chart in an OCI registry, the
//!   repository `REGISTRY/PATH/CHART` (its tags are the chart's versions, listed by the
//!   registry client like any image's); for a chart in an HTTP repository it is
//!   `https://HOST/PATH/CHART`, whose versions come from the repository's `index.yaml`
//!   ([`list_http`], once per repository per run);
//! - each version scalar is a site whose only part is its tag ([`govern`]); a field holding
//!   a range (`^6`, `6.x`, `*`) is left alone with that reason.
//!
//! Flux HelmReleases are joined here with the HelmRepository their `sourceRef` names (read from
//! every scanned file); the other shapes name their repository themselves.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use crate::config::Watched;
use crate::discover::{Discovery, Occurrence};
use crate::manifest::charts::{is_range, ChartSite, ChartSource, HelmRepositoryObject};
use crate::manifest::{Parts, Site};
use crate::policy::Policy;
use crate::reference::ImageRef;
use crate::registry::chart_index::{self, IndexOptions};
use crate::registry::RegistryError;
use crate::resolve::{RepoKey, TagCache};

/// A `charts:` entry, compiled.
#[derive(Debug, Clone)]
pub struct ChartEntry {
    /// `charts[].name`: the policy name in reports.
    pub name: String,
    /// The chart as an image ([`chart_image`]).
    pub image: ImageRef,
    pub policy: Policy,
    /// Globs restricting where this chart is rewritten.
    pub files: Option<globset::GlobSet>,
}

/// Why a repository and chart name do not make a chart this tool can follow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChartNameError {
    #[error(
        "chart repository {0:?}: expected oci://REGISTRY/PATH or https://HOST/PATH (a \
         repository serving index.yaml)"
    )]
    Scheme(String),
    #[error("chart repository {0:?}: no host")]
    NoHost(String),
    #[error("chart name {0:?}: expected letters, digits, '.', '_' and '-'")]
    Chart(String),
    #[error("chart repository {repository:?}: {message}")]
    Reference { repository: String, message: String },
}

/// The image a chart is followed as: `REGISTRY/PATH/CHART` for `oci://REGISTRY/PATH`, and
/// `https://HOST/PATH/CHART` (scheme and host lower-cased, no trailing `/`) for an HTTP
/// repository. `schemeless_oci`: a repository without scheme is an OCI one (Argo CD writes
/// them so); otherwise it is an error.
pub fn chart_image(
    repository: &str,
    chart: &str,
    schemeless_oci: bool,
) -> Result<ImageRef, ChartNameError> {
    let repo = repository.trim();
    let chart = chart.trim();
    if chart.is_empty()
        || !chart
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(ChartNameError::Chart(chart.to_string()));
    }
    let (scheme, rest) = match repo.split_once("://") {
        Some((s, r)) => (s.to_ascii_lowercase(), r),
        None if schemeless_oci => ("oci".to_string(), repo),
        None => return Err(ChartNameError::Scheme(repo.to_string())),
    };
    let rest = rest.trim_end_matches('/');
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() {
        return Err(ChartNameError::NoHost(repo.to_string()));
    }
    match scheme.as_str() {
        "oci" => {
            ImageRef::parse(&format!("{rest}/{chart}")).map_err(|e| ChartNameError::Reference {
                repository: repo.to_string(),
                message: e.reason.to_string(),
            })
        }
        "http" | "https" => {
            if rest.contains(['?', '#', '@']) || rest.chars().any(char::is_whitespace) {
                return Err(ChartNameError::Reference {
                    repository: repo.to_string(),
                    message: "a repository URL has no user-info, query or fragment".into(),
                });
            }
            let path = &rest[host.len()..];
            let url = format!("{scheme}://{}{path}", host.to_ascii_lowercase());
            Ok(ImageRef {
                written_name: format!("{url}/{chart}"),
                registry: url,
                repository: chart.to_string(),
                tag: None,
                digest: None,
            })
        }
        _ => Err(ChartNameError::Scheme(repo.to_string())),
    }
}

/// An HTTP chart repository's URL, when `image` is a chart of one ([`chart_image`]).
fn http_repository(image: &ImageRef) -> Option<&str> {
    let r = image.registry.as_str();
    (r.starts_with("https://") || r.starts_with("http://")).then_some(r)
}

/// How a run reads HTTP chart indexes: the registry request timeout
/// (`IMAGE_UPDATER_REGISTRY_TIMEOUT`), `limits.response_bytes`, and the cache directory
/// `IMAGE_UPDATER_CHART_CACHE` when set.
pub(crate) fn index_options(env: &crate::env::Env, limits: &crate::config::Limits) -> IndexOptions {
    let registry = crate::registry::RegistryOptions::from_env(env.clone()).limited(limits);
    IndexOptions {
        request_timeout: registry.request_timeout,
        response_bytes: limits.response_bytes,
        cache_dir: env
            .get("IMAGE_UPDATER_CHART_CACHE")
            .filter(|d| !d.trim().is_empty())
            .map(std::path::PathBuf::from),
    }
}

/// The chart sites and HelmRepositories the discover stage read, by file.
#[derive(Debug, Default)]
pub(crate) struct Found {
    /// Each site with the index of its file in `Discovery::sources`.
    pub sites: Vec<(usize, ChartSite)>,
    pub repositories: Vec<HelmRepositoryObject>,
}

/// The chart a site names, as an image; `None` when it names none this tool can follow (a
/// `file://` dependency, a HelmRepository not in the repo).
fn site_image(site: &ChartSite, repositories: &[HelmRepositoryObject]) -> Option<ImageRef> {
    match &site.source {
        ChartSource::Direct { repository, chart } => {
            // Argo CD writes OCI repositories without a scheme; elsewhere one is needed.
            let schemeless = site.format == crate::manifest::Format::ArgoCdChart;
            chart_image(repository, chart, schemeless).ok()
        }
        ChartSource::Artifact { url } => {
            let rest = url.trim().strip_prefix("oci://")?.trim_end_matches('/');
            let (repo, chart) = rest.rsplit_once('/')?;
            chart_image(&format!("oci://{repo}"), chart, false).ok()
        }
        ChartSource::HelmRepository {
            name,
            namespace,
            chart,
        } => {
            let named = |r: &&HelmRepositoryObject| r.name == *name;
            let same_ns = |r: &&HelmRepositoryObject| r.namespace == *namespace;
            let repo = repositories
                .iter()
                .filter(named)
                .find(same_ns)
                .or_else(|| {
                    // A namespace written on one side only: the name alone, when unambiguous.
                    let mut by_name = repositories
                        .iter()
                        .filter(named)
                        .filter(|r| r.namespace.is_none() || namespace.is_none());
                    by_name.next().filter(|_| by_name.next().is_none())
                })?;
            chart_image(&repo.url, chart, false).ok()
        }
    }
}

/// Turn the chart sites of `found` into occurrences governed by `entries`: one governor per
/// entry that governs something, appended to `found.governors`. A site no entry names is
/// left out (as an image no policy names would be reported, a chart is only followed when
/// asked); one whose file the entry's `files` exclude, or whose field holds a range, is kept
/// with the reason it is left alone.
pub(crate) fn govern(found: &mut Discovery, entries: &[ChartEntry]) {
    let sites = std::mem::take(&mut found.charts.sites);
    if entries.is_empty() || sites.is_empty() {
        return;
    }
    let names: Vec<String> = entries.iter().map(|e| e.image.canonical_name()).collect();
    let mut governor_of: HashMap<usize, usize> = HashMap::new();
    for (file, site) in sites {
        let Some(image) = site_image(&site, &found.charts.repositories) else {
            continue;
        };
        let name = image.canonical_name();
        let rel = found.sources[file].rel.as_str();
        let mut matching = (0..entries.len()).filter(|&i| names[i] == name).peekable();
        let Some(&first) = matching.peek() else {
            continue;
        };
        let admitted =
            matching.find(|&i| entries[i].files.as_ref().is_none_or(|g| g.is_match(rel)));
        let entry = admitted.unwrap_or(first);
        let version = site.version.value.clone();
        let reason = if admitted.is_none() {
            Some("no policy for this file (charts[].files excludes it)".to_string())
        } else if is_range(&version) {
            Some(format!(
                "the chart version {version:?} is a range, resolved by the tool that reads it: \
                 left alone"
            ))
        } else {
            None
        };
        let governor = *governor_of.entry(entry).or_insert_with(|| {
            let e = &entries[entry];
            found.governors.push(Watched {
                name: e.name.clone(),
                namespace: None,
                flux: false,
                image: e.image.clone(),
                policy: e.policy.clone(),
                files: e.files.clone(),
                helm_keys: 0..0,
                pin_digest: false,
                platforms: Vec::new(),
                newest_build: false,
                rule: None,
            });
            found.governors.len() - 1
        });
        let parts = Parts::Split {
            registry: None,
            name: None,
            tag: Some(site.version.clone()),
            digest: None,
        };
        found.occurrences.push(Occurrence {
            file,
            site: Site {
                format: site.format,
                policy: None,
                keys: None,
                line: site.version.line,
                parts,
            },
            image: ImageRef {
                tag: Some(version),
                ..entries[entry].image.clone()
            },
            governor: Some(governor),
            reason,
        });
    }
    // Occurrences in file order, then line order, as the image formats give them.
    found.occurrences.sort_by_key(|o| {
        (
            o.file,
            o.site.line,
            o.site.parts.scalars().first().map(|f| f.span.start),
        )
    });
}

/// List the charts of HTTP repositories among `images` not in `cache` yet: each repository's
/// `index.yaml` is fetched once (all repositories at once), and each chart's versions land in
/// `cache` under the chart's image, as a registry's tags would. A repository that cannot be
/// read, or an index without the chart, is an error for each of its charts.
pub(crate) async fn list_http(images: &[&ImageRef], cache: &mut TagCache, options: &IndexOptions) {
    let mut wanted: BTreeMap<String, Vec<&ImageRef>> = BTreeMap::new();
    let mut seen = HashSet::new();
    for image in images {
        let Some(repo) = http_repository(image) else {
            continue;
        };
        let key = RepoKey::of(image);
        if cache.contains_key(&key) || !seen.insert(key) {
            continue;
        }
        wanted.entry(repo.to_string()).or_default().push(image);
    }
    if wanted.is_empty() {
        return;
    }
    let client = match reqwest::Client::builder()
        .redirect(crate::http::redirect_policy(|_| false))
        .user_agent(concat!("image-updater/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("chart repositories: no HTTP client: {e}");
            return;
        }
    };
    let fetches = wanted.keys().map(|repo| {
        let client = &client;
        async move {
            let started = std::time::Instant::now();
            let r = chart_index::fetch(client, repo, options).await;
            tracing::debug!(
                repository = repo.as_str(),
                ms = crate::observe::ms_since(started),
                "chart index read"
            );
            r
        }
    });
    let results = futures::future::join_all(fetches).await;
    for ((repo, charts), result) in wanted.into_iter().zip(results) {
        for image in charts {
            let listed = match &result {
                Ok(index) => match index.get(&image.repository) {
                    Some(versions) => Ok(Arc::new(crate::resolve::valid_tags(versions.clone()).0)),
                    None => Err(RegistryError {
                        registry: repo.clone(),
                        repository: image.repository.clone(),
                        message: format!(
                            "the repository's index.yaml has no chart {:?}",
                            image.repository
                        ),
                        source: None,
                    }),
                },
                Err(e) => Err(RegistryError {
                    registry: repo.clone(),
                    repository: image.repository.clone(),
                    message: format!("reading the chart index: {e}"),
                    source: None,
                }),
            };
            cache.insert(RepoKey::of(image), listed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_named_as_images() {
        let oci = chart_image("oci://ghcr.io/stefanprodan/charts/", "podinfo", false).unwrap();
        assert_eq!(oci.canonical_name(), "ghcr.io/stefanprodan/charts/podinfo");
        let hub = chart_image("oci://registry-1.docker.io/bitnamicharts", "redis", false).unwrap();
        assert_eq!(hub.canonical_name(), "docker.io/bitnamicharts/redis");
        let argo = chart_image("ghcr.io/stefanprodan/charts", "podinfo", true).unwrap();
        assert_eq!(argo.canonical_name(), oci.canonical_name());
        let http = chart_image("HTTPS://Charts.Example.com/stable/", "web", false).unwrap();
        assert_eq!(
            http.canonical_name(),
            "https://charts.example.com/stable/web"
        );
        assert_eq!(
            http_repository(&http),
            Some("https://charts.example.com/stable")
        );
        assert_eq!(http_repository(&oci), None);
    }

    #[test]
    fn a_helm_release_finds_its_helm_repository_by_name_and_namespace() {
        let repo = |name: &str, ns: Option<&str>, url: &str| HelmRepositoryObject {
            name: name.into(),
            namespace: ns.map(Into::into),
            url: url.into(),
        };
        let repos = [
            repo("charts", Some("a"), "oci://r.test/a"),
            repo("charts", Some("b"), "https://c.test/b"),
            repo("solo", None, "oci://r.test/solo"),
        ];
        let site = |name: &str, ns: Option<&str>| ChartSite {
            format: crate::manifest::Format::HelmRelease,
            version: crate::manifest::Found {
                line: 1,
                span: 0..1,
                value: "1.0.0".into(),
                path: String::new(),
            },
            source: ChartSource::HelmRepository {
                name: name.into(),
                namespace: ns.map(Into::into),
                chart: "web".into(),
            },
        };
        let name = |s: ChartSite| site_image(&s, &repos).map(|i| i.canonical_name());
        assert_eq!(
            name(site("charts", Some("b"))).as_deref(),
            Some("https://c.test/b/web")
        );
        assert_eq!(
            name(site("charts", Some("a"))).as_deref(),
            Some("r.test/a/web")
        );
        // No namespace on the release: two HelmRepositories of that name, so neither.
        assert_eq!(name(site("charts", None)), None);
        // A namespace on one side only, one HelmRepository of that name: that one.
        assert_eq!(
            name(site("solo", Some("x"))).as_deref(),
            Some("r.test/solo/web")
        );
        assert_eq!(name(site("missing", Some("a"))), None);
    }

    #[test]
    fn repositories_this_tool_cannot_follow_say_why() {
        let err = |r: &str, c: &str| chart_image(r, c, false).unwrap_err().to_string();
        assert!(err("s3://bucket/charts", "x").contains("expected oci://"));
        assert!(err("ghcr.io/acme", "x").contains("expected oci://"));
        assert!(err("oci://", "x").contains("no host"));
        assert!(err("https://c.test", "a/b").contains("chart name"));
        assert!(err("https://u:p@c.test", "x").contains("no user-info"));
        assert!(err("oci://Bad Host/x", "x").contains("chart repository"));
    }
}
