//! The benchmark's synthetic world, generated deterministically: an infra repo of Kubernetes
//! manifests (Deployments, StatefulSets, kustomizations, Helm values, Flux-marked files and
//! Flux image objects, invalid Helm templates, and files that hold no image at all) and the
//! tags of its repositories, written straight into the distribution registry's filesystem
//! layout (`docker/registry/v2/...`), which is how thousands of tags get there in seconds.
//!
//! The same size gives the same bytes on every machine: one seeded PRNG, no clock, no
//! environment. [`generate`] also returns what a correct `plan` must report (the number of
//! updates), computed from the generated data rather than by running the tool.
//!
//! Shared by the `bench-gen` binary (`bench/src/main.rs`) and the CI smoke test
//! (`tests/bench_smoke.rs`, through `#[path]`), so both see the same world.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::Path;

use sha2::{Digest as _, Sha256};

/// The registry host written in the manifests; the config points it at the real registry.
pub const HOST: &str = "registry.bench.example";

/// One benchmark size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    pub name: &'static str,
    pub files: usize,
    pub clusters: usize,
    pub repositories: usize,
    pub tags: usize,
}

pub const S: Size = Size {
    name: "S",
    files: 200,
    clusters: 4,
    repositories: 20,
    tags: 50,
};
pub const M: Size = Size {
    name: "M",
    files: 5_000,
    clusters: 50,
    repositories: 300,
    tags: 500,
};
pub const L: Size = Size {
    name: "L",
    files: 20_000,
    clusters: 200,
    repositories: 1_000,
    tags: 2_000,
};

impl Size {
    pub fn by_name(name: &str) -> Option<Size> {
        [S, M, L]
            .into_iter()
            .find(|s| s.name.eq_ignore_ascii_case(name))
    }
}

/// How much of the registry layout each tag gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagLayout {
    /// `_manifests/tags/<tag>/current/link`: the tag lists and resolves to the repository's
    /// manifest (3 inodes a tag).
    Linked,
    /// Only the `_manifests/tags/<tag>` directory: the tag lists (what `tags/list` reads)
    /// but does not resolve (1 inode a tag; for L, whose 2 million tags would otherwise
    /// take 6 million inodes).
    ListOnly,
}

/// What was generated, and what a correct `plan` reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// YAML files written (the config not counted).
    pub files: usize,
    /// Files holding no image text at all (a pre-filter need not parse them).
    pub files_without_images: usize,
    /// Invalid Helm templates (parsed, reported as skipped).
    pub templates: usize,
    /// Image references in parseable files, all governed by a policy.
    pub references: usize,
    /// References whose tag is behind the best the policy allows: `plan`'s update count.
    pub expected_updates: usize,
    /// Files holding at least one update: what `run` rewrites.
    pub files_changed: usize,
    /// Distinct repositories referenced (all of them: one tag list each).
    pub repositories: usize,
    /// Tags written into the registry, over all repositories.
    pub tags: usize,
    /// Bytes of YAML written.
    pub bytes: usize,
}

/// A tiny deterministic PRNG (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Tag `i` of a repository: mostly versions `MAJOR.MINOR.PATCH` counting up, with cosign
/// signatures, commit tags and `latest` mixed in (every policy must skip those).
fn tag(i: usize) -> (String, Option<(u64, u64, u64)>) {
    match i % 50 {
        17 => (
            format!(
                "sha-{:07x}",
                (i as u64).wrapping_mul(0x9e37_79b9) & 0xfff_ffff
            ),
            None,
        ),
        33 => (format!("sha256-{:064x}.sig", i), None),
        49 if i == 49 => ("latest".to_string(), None),
        _ => {
            let v = (1 + i as u64 / 100, (i as u64 / 10) % 10, i as u64 % 10);
            (format!("{}.{}.{}", v.0, v.1, v.2), Some(v))
        }
    }
}

/// One repository: its path, the policy range, the best tag that range allows, and the
/// versions below it a manifest may hold.
struct Repo {
    path: String,
    range: &'static str,
    best: String,
    behind: Vec<String>,
}

fn repos(size: Size) -> Vec<Repo> {
    (0..size.repositories)
        .map(|r| {
            let path = format!("team{}/svc{r}", r % 10);
            // A third follow `^1` (the newest 1.x), the rest the newest of all.
            let caret = r % 3 == 0;
            let range = if caret { "^1" } else { ">=1.0.0" };
            let mut versions: Vec<((u64, u64, u64), String)> = (0..size.tags)
                .filter_map(|i| {
                    let (t, v) = tag(i);
                    v.map(|v| (v, t))
                })
                .filter(|(v, _)| !caret || v.0 == 1)
                .collect();
            versions.sort();
            let (_, best) = versions.pop().expect("every repository has versions");
            Repo {
                path,
                range,
                best,
                behind: versions.into_iter().map(|(_, t)| t).collect(),
            }
        })
        .collect()
}

/// The tag a manifest holds: the best (already current) two times in five, else one behind.
fn current(rng: &mut Rng, repo: &Repo) -> String {
    if rng.below(5) < 2 || repo.behind.is_empty() {
        repo.best.clone()
    } else {
        repo.behind[rng.below(repo.behind.len())].clone()
    }
}

/// Writes files and counts what a correct run must find.
struct Writer<'a> {
    root: &'a Path,
    summary: Summary,
}

impl Writer<'_> {
    fn file(&mut self, rel: &str, text: &str) -> io::Result<()> {
        let path = self.root.join(rel);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        fs::write(&path, text)?;
        self.summary.files += 1;
        self.summary.bytes += text.len();
        Ok(())
    }
}

/// A reference to `repo` in a file, counted.
fn reference(sum: &mut Summary, changed: &mut bool, repo: &Repo, tag: &str) -> String {
    sum.references += 1;
    if tag != repo.best {
        sum.expected_updates += 1;
        *changed = true;
    }
    format!("{HOST}/{}", repo.path)
}

const LABELS: &str =
    "      labels:\n        app.kubernetes.io/part-of: bench\n        tier: backend\n";

/// A container list of `n` containers, each `(name, repo, tag, marker)`.
fn containers(out: &mut String, indent: &str, list: &[(String, String, Option<String>)]) {
    for (i, (image, tag, marker)) in list.iter().enumerate() {
        let _ = write!(
            out,
            "{indent}- name: c{i}\n{indent}  image: {image}:{tag}{}\n{indent}  ports:\n{indent}    - containerPort: {}\n{indent}  resources:\n{indent}    requests: {{cpu: 100m, memory: 128Mi}}\n",
            marker.as_deref().map(|m| format!(" # {{\"$imagepolicy\": \"{m}\"}}")).unwrap_or_default(),
            8080 + i
        );
    }
}

/// Generate `size` into `repo_dir` (the infra repo's work tree, config included) and, when
/// given, `storage` (the registry's `rootdirectory`). `api` is where the config sends
/// registry requests (`http://127.0.0.1:PORT`).
pub fn generate(
    size: Size,
    repo_dir: &Path,
    storage: Option<(&Path, TagLayout)>,
    api: &str,
) -> io::Result<Summary> {
    generate_with(size, repo_dir, storage, api, false)
}

/// Charts in the registry when [`generate_with`] is asked for them: one per this many
/// image repositories (20 for M), each with as many versions as an image has tags.
const REPOSITORIES_PER_CHART: usize = 15;

/// [`generate`]; with `charts` (issue 18), every tenth file is a Flux HelmRelease instead,
/// naming one of the charts `charts/chartN` of the same registry through one HelmRepository
/// (`type: oci`), each chart a `charts:` entry of the config and a repository of tags in the
/// storage, so that `plan` lists and selects chart versions as it does image tags.
pub fn generate_with(
    size: Size,
    repo_dir: &Path,
    storage: Option<(&Path, TagLayout)>,
    api: &str,
    charts: bool,
) -> io::Result<Summary> {
    let repos = repos(size);
    let charts: Vec<Repo> = if charts {
        repos
            .iter()
            .step_by(REPOSITORIES_PER_CHART)
            .enumerate()
            .map(|(i, r)| Repo {
                path: format!("charts/chart{i}"),
                range: r.range,
                best: r.best.clone(),
                behind: r.behind.clone(),
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut rng = Rng(0x5eed_0000 + size.files as u64);
    let mut w = Writer {
        root: repo_dir,
        summary: Summary {
            repositories: repos.len() + charts.len(),
            ..Summary::default()
        },
    };

    // The config: every repository watched under its own name.
    let mut config = format!(
        "# Generated by bench-gen {name}: {files} files, {r} repositories x {t} tags.\nregistries:\n  - host: {HOST}\n    api: {api}\nimages:\n",
        name = size.name,
        files = size.files,
        r = size.repositories,
        t = size.tags,
    );
    for (i, repo) in repos.iter().enumerate() {
        let _ = writeln!(
            config,
            "  - name: svc{i}\n    image: {HOST}/{}\n    policy: {{ semver: \"{}\" }}",
            repo.path, repo.range
        );
    }
    if !charts.is_empty() {
        config.push_str("charts:\n");
    }
    for (i, chart) in charts.iter().enumerate() {
        let _ = writeln!(
            config,
            "  - name: chart{i}\n    repository: oci://{HOST}/charts\n    chart: chart{i}\n    policy: {{ semver: \"{}\" }}",
            chart.range
        );
    }
    config.push_str(
        "delivery:\n  mode: commit\n  commit:\n    author: { name: bench, email: bench@example.invalid }\n",
    );
    fs::create_dir_all(repo_dir)?;
    fs::write(repo_dir.join(".image-updater.yaml"), config)?;

    // Flux image objects for the first few repositories; markers below name them.
    let flux = repos.len().min(5);
    let mut objects = String::new();
    for (i, repo) in repos.iter().take(flux).enumerate() {
        let _ = write!(
            objects,
            "---\napiVersion: image.toolkit.fluxcd.io/v1beta2\nkind: ImageRepository\nmetadata:\n  name: flux{i}\n  namespace: flux-system\nspec:\n  image: {HOST}/{}\n  interval: 5m\n---\napiVersion: image.toolkit.fluxcd.io/v1beta2\nkind: ImagePolicy\nmetadata:\n  name: flux{i}\n  namespace: flux-system\nspec:\n  imageRepositoryRef:\n    name: flux{i}\n  policy:\n    semver:\n      range: \"{}\"\n",
            repo.path, repo.range
        );
    }
    w.file("flux-system/image-automation.yaml", &objects)?;
    if !charts.is_empty() {
        w.file(
            "flux-system/helm-repository.yaml",
            &format!("apiVersion: source.toolkit.fluxcd.io/v1\nkind: HelmRepository\nmetadata:\n  name: charts\n  namespace: flux-system\nspec:\n  type: oci\n  interval: 10m\n  url: oci://{HOST}/charts\n"),
        )?;
    }

    for k in 1..size.files {
        let cluster = format!("clusters/c{:03}", k % size.clusters);
        let kind = rng.below(100);
        let mut changed = false;
        let mut sum = std::mem::take(&mut w.summary);
        let pick = |rng: &mut Rng| &repos[rng.below(repos.len())];
        let (rel, text) = match kind {
            // Issue 18: every tenth file a HelmRelease of one of the charts.
            _ if !charts.is_empty() && k % 10 == 0 => {
                let c = rng.below(charts.len());
                let chart = &charts[c];
                let v = current(&mut rng, chart);
                reference(&mut sum, &mut changed, chart, &v);
                let text = format!(
                    "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: release{k}\n  namespace: ns{}\nspec:\n  interval: 10m\n  chart:\n    spec:\n      chart: chart{c}\n      version: \"{v}\"\n      sourceRef:\n        kind: HelmRepository\n        name: charts\n        namespace: flux-system\n  values:\n    replicaCount: 2\n",
                    k % 17
                );
                (format!("{cluster}/helmreleases/release{k}.yaml"), text)
            }
            // Deployments and StatefulSets: one to three containers, sometimes an init container.
            0..=39 => {
                let (kind, dir) = if kind < 30 {
                    ("Deployment", "deployments")
                } else {
                    ("StatefulSet", "statefulsets")
                };
                let mut list = Vec::new();
                for _ in 0..1 + rng.below(3) {
                    let repo = pick(&mut rng);
                    let t = current(&mut rng, repo);
                    list.push((reference(&mut sum, &mut changed, repo, &t), t, None));
                }
                let mut text = format!(
                    "apiVersion: apps/v1\nkind: {kind}\nmetadata:\n  name: app{k}\n  namespace: ns{}\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {{app: app{k}}}\n  template:\n    metadata:\n{LABELS}    spec:\n      containers:\n",
                    k % 17
                );
                containers(&mut text, "        ", &list);
                if rng.below(4) == 0 {
                    let repo = pick(&mut rng);
                    let t = current(&mut rng, repo);
                    let image = reference(&mut sum, &mut changed, repo, &t);
                    text.push_str("      initContainers:\n");
                    containers(&mut text, "        ", &[(image, t, None)]);
                }
                (format!("{cluster}/{dir}/app{k}.yaml"), text)
            }
            // Flux-marked Deployments: the marker names a config image or a Flux ImagePolicy.
            40..=45 => {
                let r = rng.below(repos.len());
                let repo = &repos[r];
                let t = current(&mut rng, repo);
                let image = reference(&mut sum, &mut changed, repo, &t);
                let marker = if r < flux && rng.below(2) == 0 {
                    format!("flux-system:flux{r}")
                } else {
                    format!("flux-system:svc{r}")
                };
                let mut text = format!(
                    "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: marked{k}\nspec:\n  template:\n    spec:\n      containers:\n",
                );
                containers(&mut text, "        ", &[(image, t, Some(marker))]);
                (format!("{cluster}/marked/app{k}.yaml"), text)
            }
            // Kustomizations with an `images:` list.
            46..=53 => {
                let mut text = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../../base\nimages:\n".to_string();
                let mut seen = Vec::new();
                for _ in 0..1 + rng.below(3) {
                    let r = rng.below(repos.len());
                    if seen.contains(&r) {
                        continue;
                    }
                    seen.push(r);
                    let t = current(&mut rng, &repos[r]);
                    let image = reference(&mut sum, &mut changed, &repos[r], &t);
                    let _ = write!(text, "  - name: {image}\n    newTag: \"{t}\"\n");
                }
                (format!("{cluster}/overlays/o{k}/kustomization.yaml"), text)
            }
            // Helm values: `image: {repository, tag}` beside other settings.
            54..=61 => {
                let repo = pick(&mut rng);
                let t = current(&mut rng, repo);
                let image = reference(&mut sum, &mut changed, repo, &t);
                let text = format!(
                    "replicaCount: 2\nimage:\n  repository: {image}\n  tag: \"{t}\"\n  pullPolicy: IfNotPresent\nservice:\n  type: ClusterIP\n  port: 80\ningress:\n  enabled: false\nresources: {{}}\nnodeSelector: {{}}\n"
                );
                (format!("{cluster}/releases/r{k}/values.yaml"), text)
            }
            // Invalid Helm templates: hold image text, do not parse; skipped with a reason.
            62..=64 => {
                sum.templates += 1;
                let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ include \"chart.fullname\" . }}\nspec:\n  template:\n    spec:\n      containers:\n        - name: main\n          image: \"{{ .Values.image.repository }}:{{ .Values.image.tag }}\"\n{{- with .Values.resources }}\n          resources: {{- toYaml . | nindent 12 }}\n{{- end }}\n"
                .to_string();
                (format!("charts/chart{}/templates/t{k}.yaml", k % 40), text)
            }
            // Everything else holds no image: Services, ConfigMaps, RBAC, namespaces.
            _ => {
                sum.files_without_images += 1;
                let text = match kind % 4 {
                    0 => format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: svc{k}\n  namespace: ns{}\nspec:\n  selector: {{app: app{k}}}\n  ports:\n    - port: 80\n      targetPort: 8080\n", k % 17),
                    1 => format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg{k}\ndata:\n  LOG_LEVEL: info\n  FEATURE_FLAGS: \"a,b,c\"\n  settings.json: |\n    {{\"retries\": 3, \"timeout\": \"30s\", \"endpoint\": \"https://api.example.com/v{k}\"}}\n"),
                    2 => format!("apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: role{k}\nrules:\n  - apiGroups: [\"\"]\n    resources: [pods, services, configmaps]\n    verbs: [get, list, watch]\n"),
                    _ => format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ns{k}\n  labels:\n    team: t{}\n    environment: production\n", k % 10),
                };
                (format!("{cluster}/config/c{k}.yaml"), text)
            }
        };
        if changed {
            sum.files_changed += 1;
        }
        w.summary = sum;
        w.file(&rel, &text)?;
    }

    if let Some((storage, layout)) = storage {
        for repo in repos.iter().chain(&charts) {
            w.summary.tags += write_repository(storage, &repo.path, size.tags, layout)?;
        }
    }
    Ok(w.summary)
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn put(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::write(path, bytes)
}

/// One repository in the registry's storage: a real image (config blob and OCI manifest),
/// and `tags` tags pointing at it. Returns the number of tags written.
fn write_repository(
    storage: &Path,
    repo: &str,
    tags: usize,
    layout: TagLayout,
) -> io::Result<usize> {
    let v2 = storage.join("docker/registry/v2");
    let blob = |bytes: &[u8]| -> io::Result<String> {
        let hex = sha256_hex(bytes);
        put(
            &v2.join(format!("blobs/sha256/{}/{hex}/data", &hex[..2])),
            bytes,
        )?;
        Ok(hex)
    };
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Labels":{{"repo":"{repo}"}}}},"rootfs":{{"type":"layers","diff_ids":[]}}}}"#
    );
    let config_hex = blob(config.as_bytes())?;
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{config_hex}","size":{}}},"layers":[]}}"#,
        config.len()
    );
    let manifest_hex = blob(manifest.as_bytes())?;
    let base = v2.join("repositories").join(repo);
    let link = format!("sha256:{manifest_hex}");
    put(
        &base.join(format!("_layers/sha256/{config_hex}/link")),
        format!("sha256:{config_hex}").as_bytes(),
    )?;
    put(
        &base.join(format!("_manifests/revisions/sha256/{manifest_hex}/link")),
        link.as_bytes(),
    )?;
    let tags_dir = base.join("_manifests/tags");
    for i in 0..tags {
        let (t, _) = tag(i);
        let dir = tags_dir.join(&t);
        match layout {
            TagLayout::Linked => put(&dir.join("current/link"), link.as_bytes())?,
            TagLayout::ListOnly => fs::create_dir_all(&dir)?,
        }
    }
    Ok(tags)
}

impl Summary {
    /// `key=value` lines, for scripts.
    pub fn to_lines(&self) -> String {
        format!(
            "files={}\nfiles_without_images={}\ntemplates={}\nreferences={}\nexpected_updates={}\nfiles_changed={}\nrepositories={}\ntags={}\nbytes={}\n",
            self.files,
            self.files_without_images,
            self.templates,
            self.references,
            self.expected_updates,
            self.files_changed,
            self.repositories,
            self.tags,
            self.bytes
        )
    }
}
