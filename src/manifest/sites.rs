//! [`scan_file`]: every image reference in one file, in every format, as [`Site`]s.
//!
//! Which formats apply:
//! - Kubernetes containers, Flux markers, Argo CD Applications, Flux HelmRelease
//!   `spec.values` and Flux image objects: in every file;
//! - kustomize `images:`: in `kustomization.yaml`/`.yml`/`Kustomization` files and in any
//!   document of kind `Kustomization` (`kustomize.config.k8s.io`);
//! - Helm values shapes: in `values*.yaml`/`.yml` files (and the places above);
//! - compose `services.*.image`: in `compose*.y(a)ml` and `docker-compose*.y(a)ml` files;
//! - Kubernetes image volumes (`volumes[].image.reference`): in every file;
//! - GitHub Actions jobs: in `.github/workflows/*.y(a)ml`; GitLab CI jobs: in `.gitlab-ci.yml`;
//! - Dockerfile `FROM` lines: in Dockerfiles and Containerfiles, which are not YAML and are
//!   read by [`dockerfile::scan`] alone.
//!
//! No two sites share a scalar. A marker wins over every format: a scalar with a marker is
//! part of a [`Format::Marker`] site, and a format site sharing a scalar with a marker site is
//! dropped. Between formats the first one claiming a scalar keeps it, in the order k8s,
//! kustomize, compose, argocd, helm, except that sites of configured keys (`images[].helm`)
//! may share the scalars they only read (a registry, a repository); two of them writing one
//! scalar (a tag, a digest) are both dropped and reported as a [`super::Problem`]. Field markers (`:name`, `:tag`, `:digest`) naming the
//! same policy in the same mapping make one [`Parts::Split`] site (a kustomize entry's
//! `newName` and `newTag`, a Helm `image:`'s `repository` and `tag`).

use std::collections::{HashMap, HashSet};
use std::path::Path as FsPath;

use super::flux::{self, FluxObject};
use super::markers::{self, MarkerField};
use super::scan::{self, Path};
use super::{
    argocd, ci_yaml, compose, dockerfile, helm, image_volume, k8s, kustomize, FileScan, Format,
    ManifestError, Parts, ScanOptions, Site,
};

/// Scan one file. `path` is the file's path relative to the repository: its name recognises
/// kustomization, values, compose, GitLab CI files and Dockerfiles, and its last folders
/// (`.github/workflows/`) GitHub Actions workflows. Errors when the text is not YAML or is a
/// Go template (a Dockerfile is never an error).
pub fn scan_file(path: &FsPath, text: &str, opts: &ScanOptions) -> Result<FileScan, ManifestError> {
    scan_file_as(path, text, opts, false)
}

/// [`scan_file`], reading the file as a GitLab CI pipeline also when `gitlab_ci` says so
/// (a file `.gitlab-ci.yml` includes, see [`ci_yaml::gitlab_included`]).
pub fn scan_file_as(
    path: &FsPath,
    text: &str,
    opts: &ScanOptions,
    gitlab_ci: bool,
) -> Result<FileScan, ManifestError> {
    if dockerfile::is_dockerfile(path) {
        return Ok(dockerfile::scan(text));
    }
    let docs = scan::parse_documents(text)?;
    let kustomization_file = kustomize::is_kustomization_file(path);
    let values_file = helm::is_values_file(path);
    let compose_file = compose::is_compose_file(path);
    let github_workflow = ci_yaml::is_github_workflow(path);
    let gitlab_ci = gitlab_ci || ci_yaml::is_gitlab_ci(path);
    let chart_yaml = opts.charts && super::charts::is_chart_yaml(path);

    let mut scan = FileScan::default();
    let mut format_sites: Vec<Site> = Vec::new();
    for doc in &docs {
        let Some(root) = &doc.root else { continue };
        if opts.charts {
            // Issue 18: chart versions and Flux HelmRepositories.
            super::charts::scan(
                root,
                chart_yaml,
                &mut scan.charts,
                &mut scan.helm_repositories,
            );
        }
        let mut containers = Vec::new();
        k8s::images_in(root, &mut containers);
        format_sites.extend(containers.into_iter().map(|f| Site::whole(Format::K8s, f)));
        if kustomize::is_kustomization(root, kustomization_file) {
            kustomize::sites(root, &mut format_sites);
        }
        if compose_file {
            compose::sites(root, &mut format_sites);
        }
        image_volume::sites(root, &mut format_sites);
        let mut ci = ci_yaml::Out {
            sites: &mut format_sites,
            problems: &mut scan.problems,
        };
        if github_workflow {
            ci_yaml::github_sites(root, &mut ci);
        }
        if gitlab_ci {
            ci_yaml::gitlab_sites(root, &mut ci);
        }
        argocd::sites(root, opts, &mut format_sites);
        // argocd-image-updater: the Application's annotations, read as policies.
        {
            use super::argocd_crd::{self, ArgoObject};
            match super::argocd_annotations::read(root) {
                Ok(Some(app)) => scan.argocd_apps.push(Ok(ArgoObject::Annotated(app))),
                Ok(None) => scan
                    .argocd_apps
                    .extend(argocd_crd::application(root).map(|a| Ok(ArgoObject::Application(a)))),
                Err(e) => scan.argocd_apps.push(Err(e)),
            }
            if let Some(u) = argocd_crd::read(root).transpose() {
                scan.argocd_apps.push(u.map(ArgoObject::Updater));
            }
        }
        // Issue 21: Flux v1 annotations, and the helm-operator's image paths (claimed first).
        match super::flux_v1::read(root) {
            Ok(Some(w)) => scan.flux_v1.push(w),
            Ok(None) => {}
            Err(problem) => scan.problems.push(problem),
        }
        super::flux_v1::helm_sites(root, &mut format_sites, &mut scan.problems);
        if values_file {
            helm::values_sites(root, &Path::default(), &opts.helm, &mut format_sites);
        }
        if let Some(values) = helm::helm_release_values(root) {
            let prefix = scan::path_of(&["spec", "values"]);
            helm::values_sites(values, &prefix, &opts.helm, &mut format_sites);
        }
        match flux::read(root) {
            Ok(Some(FluxObject::Policy(p))) => scan.flux_policies.push(p),
            Ok(Some(FluxObject::Repository(r))) => scan.flux_repositories.push(r),
            Ok(None) => {}
            Err(problem) => scan.problems.push(problem),
        }
    }
    flux::join(&mut scan.flux_policies, &scan.flux_repositories);

    let scalars = markers::collect(&docs);
    let (bound, problems) = markers::find(text, &scalars);
    scan.problems.extend(problems);
    scan.problems.sort_by_key(|p| p.line);

    // Marker sites: whole markers alone, field markers grouped by (mapping, policy).
    let mut sites: Vec<Site> = Vec::new();
    let mut groups: HashMap<(usize, super::PolicyRef), Vec<usize>> = HashMap::new();
    for b in bound {
        let value = &scalars.values[b.value];
        let found = value.found.clone();
        if b.marker.field == MarkerField::Whole {
            sites.push(Site {
                policy: Some(b.marker.policy),
                ..Site::whole(Format::Marker, found)
            });
            continue;
        }
        let key = (value.parent, b.marker.policy.clone());
        let candidates = groups.entry(key).or_default();
        let slot_free = |site: &Site| match &site.parts {
            Parts::Split {
                name, tag, digest, ..
            } => match b.marker.field {
                MarkerField::Name => name.is_none(),
                MarkerField::Tag => tag.is_none(),
                MarkerField::Digest => digest.is_none(),
                MarkerField::Whole => false,
            },
            _ => false,
        };
        let index = match candidates.iter().copied().find(|&i| slot_free(&sites[i])) {
            Some(i) => i,
            None => {
                sites.push(Site {
                    format: Format::Marker,
                    policy: Some(b.marker.policy),
                    keys: None,
                    line: 0,
                    parts: Parts::Split {
                        registry: None,
                        name: None,
                        tag: None,
                        digest: None,
                    },
                });
                candidates.push(sites.len() - 1);
                sites.len() - 1
            }
        };
        if let Parts::Split {
            name, tag, digest, ..
        } = &mut sites[index].parts
        {
            let slot = match b.marker.field {
                MarkerField::Name => name,
                MarkerField::Tag => tag,
                _ => digest,
            };
            *slot = Some(found);
        }
    }
    for site in &mut sites {
        site.line = site.parts.report_line();
    }

    let mut claimed: HashSet<usize> = sites
        .iter()
        .flat_map(|s| s.parts.scalars())
        .map(|f| f.span.start)
        .collect();
    let format_sites = shared_keys(format_sites, &mut claimed, &mut scan.problems);
    // Scalars that configured key sites only read (a registry, a repository): other configured
    // key sites may read them too (`global.imageRegistry`).
    let mut read_only: HashSet<usize> = HashSet::new();
    for site in format_sites {
        let starts: Vec<usize> = site.parts.scalars().iter().map(|f| f.span.start).collect();
        let (written, read) = written_and_read(&site);
        let taken = if site.keys.is_some() {
            written.iter().any(|s| claimed.contains(s))
                || read
                    .iter()
                    .any(|s| claimed.contains(s) && !read_only.contains(s))
        } else {
            starts.iter().any(|s| claimed.contains(s))
        };
        if taken {
            continue;
        }
        if site.keys.is_some() {
            read_only.extend(read);
        }
        claimed.extend(starts);
        sites.push(site);
    }
    scan.problems.sort_by_key(|p| p.line);
    sites.sort_by_key(|s| s.parts.scalars().first().map_or(0, |f| f.span.start));
    scan.sites = sites;
    Ok(scan)
}

/// The span starts of the scalars a site's update writes (its tag and digest) and of those
/// it only reads (registry, repository), for a split site; every scalar is written otherwise.
fn written_and_read(site: &Site) -> (Vec<usize>, Vec<usize>) {
    let start = |f: &Option<super::Found>| f.as_ref().map(|f| f.span.start);
    match &site.parts {
        Parts::Split {
            registry,
            name,
            tag,
            digest,
        } => (
            [start(tag), start(digest)].into_iter().flatten().collect(),
            [start(registry), start(name)]
                .into_iter()
                .flatten()
                .collect(),
        ),
        parts => (
            parts.scalars().iter().map(|f| f.span.start).collect(),
            Vec::new(),
        ),
    }
}

/// Drop the configured key sites (`images[].helm`) that write the same scalar as another
/// one: two entries naming one tag (or digest) key path cannot both set it, and neither is
/// guessed. Each such scalar is reported once, as a [`Problem`]. Entries sharing only what
/// they read (a `registry` or `repository` path) are all kept. The shared scalars join
/// `claimed`: no built-in shape takes them over.
fn shared_keys(
    sites: Vec<Site>,
    claimed: &mut HashSet<usize>,
    problems: &mut Vec<super::Problem>,
) -> Vec<Site> {
    let mut writers: HashMap<usize, Vec<usize>> = HashMap::new();
    for (i, site) in sites.iter().enumerate() {
        if site.keys.is_some() {
            for start in written_and_read(site).0 {
                writers.entry(start).or_default().push(i);
            }
        }
    }
    let mut dropped: HashSet<usize> = HashSet::new();
    let mut shared: Vec<(usize, &Vec<usize>)> = writers
        .iter()
        .filter(|(_, w)| w.len() > 1)
        .map(|(s, w)| (*s, w))
        .collect();
    shared.sort();
    for (start, who) in shared {
        let Some(found) = sites[who[0]]
            .parts
            .scalars()
            .into_iter()
            .find(|f| f.span.start == start)
        else {
            continue;
        };
        problems.push(super::Problem {
            line: found.line,
            message: format!(
                "{} images[].helm entries name the key path {}: which image it belongs to is \
                 ambiguous, so it is left alone (give each image its own key path)",
                who.len(),
                found.path
            ),
            about: super::ProblemAbout::Reference,
        });
        dropped.extend(who.iter().copied());
        claimed.insert(start);
    }
    sites
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !dropped.contains(i))
        .map(|(_, s)| s)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{FluxPolicyKind, Found, HelmKeys, PolicyRef};

    fn scan(name: &str, text: &str) -> FileScan {
        scan_file(FsPath::new(name), text, &ScanOptions::default()).unwrap()
    }

    type Row = (String, Option<String>, Vec<(String, String)>, usize);

    /// (format, policy name, [(path, value)], line) per site, checking spans against the text.
    fn summary(text: &str, scan: &FileScan) -> Vec<Row> {
        scan.sites
            .iter()
            .map(|s| {
                let parts: Vec<(String, String)> = s
                    .parts
                    .scalars()
                    .into_iter()
                    .map(|f: &Found| {
                        let token = &text[f.span.clone()];
                        assert!(token.contains(f.value.as_str()), "{token:?} vs {f:?}");
                        assert_eq!(scan::line_at(text, f.span.start), f.line);
                        (f.path.clone(), f.value.clone())
                    })
                    .collect();
                (
                    s.format.to_string(),
                    s.policy.as_ref().map(|p| p.name.clone()),
                    parts,
                    s.line,
                )
            })
            .collect()
    }

    fn one(path: &str, value: &str) -> Vec<(String, String)> {
        vec![(path.into(), value.into())]
    }

    #[test]
    fn marker_on_a_container_is_one_marker_site() {
        let text = "\
kind: Deployment
spec:
  template:
    spec:
      containers:
        - name: web
          image: ghcr.io/acme/web:1.0 # {\"$imagepolicy\": \"flux-system:web\"}
        - name: side
          image: nginx:1.25
";
        let s = scan("deploy.yaml", text);
        assert_eq!(
            summary(text, &s),
            [
                (
                    "marker".into(),
                    Some("web".into()),
                    one(
                        "spec.template.spec.containers[0].image",
                        "ghcr.io/acme/web:1.0"
                    ),
                    7
                ),
                (
                    "k8s".into(),
                    None,
                    one("spec.template.spec.containers[1].image", "nginx:1.25"),
                    9
                ),
            ]
        );
        assert_eq!(
            s.sites[0].policy,
            Some(PolicyRef {
                namespace: "flux-system".into(),
                name: "web".into()
            })
        );
        assert!(s.problems.is_empty());
    }

    #[test]
    fn flux_kustomization_name_and_tag_markers_make_one_site() {
        // As in Flux's own test data.
        let text = "\
# This is not intended to be a working kustomization
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- unimportant.yaml
images:
- name: container
  newName: replaced # {\"$imagepolicy\": \"automation-ns:policy:name\"}
  newTag: v1 # {\"$imagepolicy\": \"automation-ns:policy:tag\"}
- name: other
  newTag: v2
";
        let s = scan("kustomization.yaml", text);
        assert_eq!(
            summary(text, &s),
            [
                (
                    "marker".into(),
                    Some("policy".into()),
                    vec![
                        ("images[0].newName".into(), "replaced".into()),
                        ("images[0].newTag".into(), "v1".into())
                    ],
                    9
                ),
                (
                    "kustomize".into(),
                    None,
                    vec![
                        ("images[1].name".into(), "other".into()),
                        ("images[1].newTag".into(), "v2".into())
                    ],
                    11
                ),
            ]
        );
        match &s.sites[0].parts {
            Parts::Split {
                registry: None,
                name: Some(n),
                tag: Some(t),
                digest: None,
            } => assert_eq!((n.value.as_str(), t.value.as_str()), ("replaced", "v1")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn helm_release_values_with_and_without_markers() {
        let text = "\
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata: {name: podinfo, namespace: apps}
spec:
  chart:
    spec: {chart: podinfo, version: 6.x}
  values:
    image:
      repository: ghcr.io/stefanprodan/podinfo # {\"$imagepolicy\": \"flux-system:podinfo:name\"}
      tag: 6.5.0 # {\"$imagepolicy\": \"flux-system:podinfo:tag\"}
    redis:
      image:
        registry: docker.io
        repository: bitnami/redis
        tag: 7.2.4 # {\"$imagepolicy\": \"flux-system:redis:tag\"}
    cache:
      image:
        repository: memcached
        tag: 1.6
";
        let s = scan("release.yaml", text);
        let sum = summary(text, &s);
        assert_eq!(sum.len(), 3, "{sum:#?}");
        assert_eq!(
            sum[0],
            (
                "marker".into(),
                Some("podinfo".into()),
                vec![
                    (
                        "spec.values.image.repository".into(),
                        "ghcr.io/stefanprodan/podinfo".into()
                    ),
                    ("spec.values.image.tag".into(), "6.5.0".into())
                ],
                10
            )
        );
        // Only the marked tag: the Helm shape around it is dropped, not rewritten twice.
        assert_eq!(
            sum[1],
            (
                "marker".into(),
                Some("redis".into()),
                one("spec.values.redis.image.tag", "7.2.4"),
                15
            )
        );
        assert_eq!(
            sum[2],
            (
                "helm".into(),
                None,
                vec![
                    (
                        "spec.values.cache.image.repository".into(),
                        "memcached".into()
                    ),
                    ("spec.values.cache.image.tag".into(), "1.6".into())
                ],
                19
            )
        );
    }

    #[test]
    fn values_files_only_by_name_and_containers_are_not_doubled() {
        let text = "\
image:
  repository: ghcr.io/acme/web
  tag: \"1.2\"
initContainers:
  - name: wait
    image: busybox:1.36
sidecar:
  image: envoyproxy/envoy:v1.29
";
        let s = scan("charts/web/values-prod.yaml", text);
        let formats: Vec<(String, usize)> = summary(text, &s)
            .into_iter()
            .map(|(f, _, _, line)| (f, line))
            .collect();
        assert_eq!(
            formats,
            [("helm".into(), 3), ("k8s".into(), 6), ("helm".into(), 8)]
        );
        let s = scan("charts/web/defaults.yaml", text);
        assert_eq!(s.sites.len(), 1, "only the container outside values files");
    }

    #[test]
    fn configured_helm_keys_are_used_in_values_and_releases() {
        let text = "app:\n  ver: 15.4\n  image: {repository: acme/app, tag: 1.0}\n";
        let opts = ScanOptions {
            helm: vec![HelmKeys {
                tag: Some("app.ver".into()),
                ..Default::default()
            }],
            ..Default::default()
        };
        let s = scan_file(FsPath::new("values.yaml"), text, &opts).unwrap();
        assert_eq!(s.sites.len(), 2);
        assert_eq!(s.sites[0].keys, Some(0));
        assert_eq!(s.sites[0].line, 2);
        assert_eq!(s.sites[1].keys, None);
    }

    #[test]
    fn configured_keys_share_what_they_read_but_not_what_they_write() {
        let text = "\
global:
  imageRegistry: registry.example.com
web:
  repository: acme/web
  tag: 1.0.0
api:
  repository: acme/api
  tag: 2.0.0
";
        let keys = |repo: &str, tag: &str| HelmKeys {
            registry: Some("global.imageRegistry".into()),
            repository: Some(repo.into()),
            tag: Some(tag.into()),
            ..Default::default()
        };
        let opts = ScanOptions {
            helm: vec![
                keys("web.repository", "web.tag"),
                keys("api.repository", "api.tag"),
                keys("api.repository", "web.tag"),
            ],
            ..Default::default()
        };
        let s = scan_file(FsPath::new("values.yaml"), text, &opts).unwrap();
        // Entries 0 and 2 both write web.tag: neither is kept; entry 1 shares the registry.
        let kept: Vec<Option<usize>> = s.sites.iter().map(|s| s.keys).collect();
        assert_eq!(kept, [Some(1)], "{:#?}", s.sites);
        assert_eq!(s.problems.len(), 1, "{:?}", s.problems);
        assert_eq!(s.problems[0].line, 5);
        assert!(
            s.problems[0]
                .message
                .starts_with("2 images[].helm entries name the key path web.tag"),
            "{}",
            s.problems[0].message
        );
        // Without the third entry, both images are found, sharing the registry scalar.
        let opts = ScanOptions {
            helm: opts.helm[..2].to_vec(),
            ..Default::default()
        };
        let s = scan_file(FsPath::new("values.yaml"), text, &opts).unwrap();
        let kept: Vec<Option<usize>> = s.sites.iter().map(|s| s.keys).collect();
        assert_eq!(kept, [Some(0), Some(1)]);
        assert!(s.problems.is_empty());
    }

    #[test]
    fn compose_by_file_name() {
        let text =
            "services:\n  web:\n    image: ghcr.io/acme/web:1.0\n  db:\n    image: 'postgres:16'\n";
        let s = scan("deploy/docker-compose.prod.yml", text);
        assert_eq!(
            summary(text, &s),
            [
                (
                    "compose".into(),
                    None,
                    one("services.web.image", "ghcr.io/acme/web:1.0"),
                    3
                ),
                (
                    "compose".into(),
                    None,
                    one("services.db.image", "postgres:16"),
                    5
                ),
            ]
        );
        assert!(scan("services.yaml", text).sites.is_empty());
    }

    #[test]
    fn argocd_sites_in_any_file() {
        let text = "\
apiVersion: argoproj.io/v1alpha1
kind: Application
spec:
  source:
    kustomize:
      images: [\"ghcr.io/acme/web=ghcr.io/acme/web:1.0\"]
";
        let s = scan("apps/web.yaml", text);
        assert_eq!(s.sites.len(), 1);
        assert_eq!(s.sites[0].format, Format::ArgoCd);
        assert!(
            matches!(&s.sites[0].parts, Parts::Override { prefix, .. } if prefix == "ghcr.io/acme/web=")
        );
    }

    #[test]
    fn flux_objects_problems_and_marker_names() {
        let text = "\
apiVersion: image.toolkit.fluxcd.io/v1beta2
kind: ImageRepository
metadata: {name: web, namespace: flux-system}
spec: {image: ghcr.io/acme/web}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: {name: web, namespace: flux-system}
spec:
  imageRepositoryRef: {name: web}
  policy: {semver: {range: '^1.x'}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: {name: broken}
spec: {imageRepositoryRef: {name: web}}
---
kind: ConfigMap
data:
  WEB_IMAGE: ghcr.io/acme/web:1.0 # {\"$imagepolicy\": \"flux-system:web\"}
  BAD: x # {\"$imagepolicy\": \"web\"}
";
        let s = scan("flux.yaml", text);
        assert_eq!(s.flux_repositories.len(), 1);
        assert_eq!(s.flux_policies.len(), 1);
        let p = &s.flux_policies[0];
        assert_eq!(p.image.as_deref(), Some("ghcr.io/acme/web"));
        assert_eq!(p.kind, FluxPolicyKind::Semver("^1.x".into()));
        assert_eq!(p.line, 6);
        let lines: Vec<usize> = s.problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [13, 21]);
        assert_eq!(
            summary(text, &s),
            [(
                "marker".into(),
                Some("web".into()),
                one("data.WEB_IMAGE", "ghcr.io/acme/web:1.0"),
                20
            )]
        );
    }

    #[test]
    fn repeated_field_markers_split_into_sites() {
        let text = "\
a:
  tag: v1 # {\"$imagepolicy\": \"ns:p:tag\"}
  other: v2 # {\"$imagepolicy\": \"ns:p:tag\"}
  digest: sha256:00 # {\"$imagepolicy\": \"ns:p:digest\"}
b:
  tag: v3 # {\"$imagepolicy\": \"ns:p:tag\"}
";
        let s = scan("x.yaml", text);
        let parts: Vec<usize> = s.sites.iter().map(|s| s.parts.scalars().len()).collect();
        assert_eq!(parts, [2, 1, 1]);
        assert_eq!(s.sites[0].line, 2);
        assert_eq!(s.sites[1].line, 3);
    }

    #[test]
    fn templates_and_invalid_yaml_are_errors() {
        let opts = ScanOptions::default();
        assert!(matches!(
            scan_file(
                FsPath::new("values.yaml"),
                "image: {{ .Values.x }}\n",
                &opts
            ),
            Err(ManifestError::Template { .. })
        ));
        assert!(matches!(
            scan_file(FsPath::new("a.yaml"), "a: [\n", &opts),
            Err(ManifestError::Yaml { .. })
        ));
        assert_eq!(scan("a.yaml", "").sites, []);
    }

    #[test]
    fn format_names() {
        let names: Vec<String> = [
            Format::K8s,
            Format::Marker,
            Format::Kustomize,
            Format::Helm,
            Format::Compose,
            Format::ArgoCd,
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(
            names,
            ["k8s", "marker", "kustomize", "helm", "compose", "argocd"]
        );
    }

    #[test]
    fn scan_then_splice_keeps_every_other_byte() {
        use crate::manifest::edit::{apply_edits, Edit};
        // BOM, CRLF, tabs and non-ASCII in comments, an anchor and its alias, a block scalar,
        // `...`, a plain number tag, and no final newline.
        let text = "\u{feff}# Werte für die Produktion\t(prod)\r\n---\r\nimage: &web ghcr.io/acme/web:1.0 # größer\r\ncopy: *web\r\nnotes: |\r\n  image: ghcr.io/acme/web:1.0\r\ndb:\r\n  image:\r\n    repository: postgres\r\n    tag: 15.4\t# chart wants a number\r\n...\r\n";
        let text = text.trim_end_matches("\r\n");
        let s = scan("values.yaml", text);
        assert_eq!(s.sites.len(), 2, "{:#?}", s.sites);
        let mut edits = Vec::new();
        for site in &s.sites {
            match &site.parts {
                Parts::Whole(f) => edits.push(Edit {
                    span: f.span.clone(),
                    new_value: "ghcr.io/acme/web:1.1".into(),
                }),
                Parts::Split { tag: Some(t), .. } => edits.push(Edit {
                    span: t.span.clone(),
                    new_value: "16.0".into(),
                }),
                other => panic!("{other:?}"),
            }
        }
        let out = apply_edits(text, &edits).unwrap();
        let expected = text
            .replacen("&web ghcr.io/acme/web:1.0", "&web ghcr.io/acme/web:1.1", 1)
            .replace("tag: 15.4", "tag: \"16.0\"");
        assert_eq!(out, expected);
        // The block scalar's look-alike and the alias are untouched.
        assert!(out.contains("  image: ghcr.io/acme/web:1.0\r\n"));
        assert!(out.contains("copy: *web\r\n"));
        assert!(out.ends_with("..."));
    }
}
