//! Where tags come from: the `TagSource` contract, its implementations, and the resolver
//! that lists every distinct repository once per run, all of them concurrently.
//!
//! Each registry host gets one source (one HTTP client, its own concurrency and rate limits,
//! its own token cache); the resolver fans out over distinct repositories and collects a
//! result per repository, so one failing registry never stops the others. Every request
//! of a run shares one deadline ([`RegistryOptions::deadline`]).
//!
//! - [`oci`]: the distribution API over HTTP; [`transport`] (retries, limits, TLS),
//!   [`token`] (challenges and tokens), [`auth`] (where credentials come from).
//! - [`layout`]: an OCI image layout tree on disk.
//! - [`media`]: manifest media types and platforms, shared by both.

pub mod auth;
pub mod chart_index; // issue 18: HTTP Helm chart repositories
pub mod created; // argocd-image-updater: newest-build
pub mod layout;
pub mod media;
pub mod oci;
pub mod token;
pub mod transport;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::config::{is_layout, Limits, RegistryConfig};
use crate::reference::ImageRef;
pub use auth::Env;

/// A failure to read one repository from its registry. Never carries a secret.
#[derive(Debug, Clone)]
pub struct RegistryError {
    pub registry: String,
    pub repository: String,
    /// The whole account: what was being done, and the cause's own words.
    pub message: String,
    /// The typed cause (a transport, token, manifest or layout error), when there is one.
    pub source: Option<std::sync::Arc<dyn std::error::Error + Send + Sync>>,
}

impl std::fmt::Display for RegistryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}: {}",
            self.registry, self.repository, self.message
        )
    }
}

impl std::error::Error for RegistryError {
    /// The typed cause itself (not the `Arc` holding it), so callers can downcast it.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl RegistryError {
    /// `cause`, while doing `context` (`tag 1.2.0`) in `repository` of `registry`.
    pub(crate) fn caused<E: std::error::Error + Send + Sync + 'static>(
        registry: &str,
        repository: &str,
        context: Option<&str>,
        cause: E,
    ) -> RegistryError {
        RegistryError {
            registry: registry.to_string(),
            repository: repository.to_string(),
            message: match context {
                Some(c) => format!("{c}: {cause}"),
                None => cause.to_string(),
            },
            source: Some(std::sync::Arc::new(cause)),
        }
    }
}

/// Something that lists the tags of a repository and describes its tagged manifests.
pub trait TagSource: Send + Sync {
    /// All tags of `repository` (a path such as `acme/web`), in the order the source gives them.
    fn list_tags<'a>(
        &'a self,
        repository: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, RegistryError>>;

    /// The digest (`sha256:…`) of the manifest `tag` points to; for a multi-platform tag,
    /// the digest of the index (the one to pin).
    fn digest<'a>(
        &'a self,
        repository: &'a str,
        tag: &'a str,
    ) -> BoxFuture<'a, Result<String, RegistryError>>;

    /// The platforms (`os/arch[/variant]`) `tag` provides: an index's entries (attestations
    /// left out), or the single platform of an image's config. `None` when the manifest
    /// says nothing about platforms (an artifact, a config without `os`/`architecture`).
    fn platforms<'a>(
        &'a self,
        repository: &'a str,
        tag: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<String>>, RegistryError>>;

    /// The manifest `tag` points to, as [`created`] reads it: its annotations and, when it is
    /// one image, its config blob (argocd-image-updater's newest-build reads `created`; the
    /// app-change links read the `org.opencontainers.image.*` labels). One manifest and one
    /// config request; for an index, also its first platform's manifest (whose annotations
    /// fill in what the index's do not say) and that image's config.
    fn image_config<'a>(
        &'a self,
        repository: &'a str,
        tag: &'a str,
    ) -> BoxFuture<'a, Result<ImageDocument, RegistryError>>;
}

/// What [`TagSource::image_config`] reads of a tag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageDocument {
    /// The manifest's (or the index's) `annotations` with string values.
    pub annotations: std::collections::BTreeMap<String, String>,
    /// The image config blob: of the image the tag names, or of an index's first platform;
    /// `None` for an artifact.
    pub config: Option<Vec<u8>>,
    /// Whether the tag names an index (a multi-platform image): then `config` is one
    /// platform's, not the tag's own.
    pub index: bool,
}

/// Timing and retry limits of a run's registry requests, and the environment credentials
/// are read from.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// The longest one request may take (`IMAGE_UPDATER_REGISTRY_TIMEOUT`, seconds; 30).
    pub request_timeout: Duration,
    /// The longest all registry work of the run may take, from [`Registries::new`]
    /// (`IMAGE_UPDATER_REGISTRY_DEADLINE`, seconds; else `limits.run_seconds`, 300).
    pub deadline: Duration,
    /// Attempts per request, the first included (`IMAGE_UPDATER_REGISTRY_ATTEMPTS`; 5).
    pub max_attempts: u32,
    /// The first retry's backoff; it doubles per attempt, with jitter (500 ms).
    pub backoff_base: Duration,
    /// The longest `Retry-After` waited for; a longer one fails the request at once (60 s).
    pub max_retry_after: Duration,
    /// The longest answer read (`limits.response_bytes`, 32 MiB).
    pub response_bytes: u64,
    /// Tags listed at most per repository (`limits.tags_per_repository`, 100,000).
    pub tags_per_repository: usize,
    /// Where credentials and the Docker config are looked up.
    pub env: Env,
}

impl RegistryOptions {
    /// The defaults, with the `IMAGE_UPDATER_REGISTRY_*` variables of `env` applied.
    pub fn from_env(env: Env) -> RegistryOptions {
        let secs = |k: &str, d: f64| {
            Duration::from_secs_f64(
                env.get(k)
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    .filter(|v| v.is_finite() && *v > 0.0)
                    .unwrap_or(d),
            )
        };
        RegistryOptions {
            request_timeout: secs("IMAGE_UPDATER_REGISTRY_TIMEOUT", 30.0),
            deadline: secs(
                "IMAGE_UPDATER_REGISTRY_DEADLINE",
                Limits::default().run_seconds as f64,
            ),
            max_attempts: env
                .get("IMAGE_UPDATER_REGISTRY_ATTEMPTS")
                .and_then(|v| v.trim().parse().ok())
                .filter(|n| *n > 0)
                .unwrap_or(5),
            backoff_base: Duration::from_millis(500),
            max_retry_after: Duration::from_secs(60),
            response_bytes: Limits::default().response_bytes,
            tags_per_repository: Limits::default().tags_per_repository,
            env,
        }
    }

    /// These options under the config's `limits`; `IMAGE_UPDATER_REGISTRY_DEADLINE`, when
    /// set, still wins over `run_seconds`.
    pub fn limited(mut self, limits: &Limits) -> RegistryOptions {
        self.response_bytes = limits.response_bytes;
        self.tags_per_repository = limits.tags_per_repository;
        if self.env.get("IMAGE_UPDATER_REGISTRY_DEADLINE").is_none() {
            self.deadline = Duration::from_secs(limits.run_seconds);
        }
        self
    }
}

impl Default for RegistryOptions {
    /// The defaults, with no environment variables at all (no credentials from the
    /// environment, no Docker config): a run passes its [`Env`] to [`RegistryOptions::from_env`].
    fn default() -> Self {
        RegistryOptions::from_env(Env::default())
    }
}

/// The sources for every host of a run, built from the config's `registries`.
pub struct Registries {
    config: Vec<RegistryConfig>,
    root: std::path::PathBuf,
    options: Arc<transport::Options>,
    env: Arc<Env>,
    built: std::sync::Mutex<HashMap<String, Arc<dyn TagSource>>>,
}

impl Registries {
    /// `root` is the repo root: `oci-layout:` and `ca_file` paths are relative to it.
    /// Options from the run's environment `env` under the config's `limits`; the deadline
    /// starts now.
    pub fn new(config: &[RegistryConfig], limits: &Limits, root: &Path, env: Env) -> Registries {
        Registries::with_options(config, root, RegistryOptions::from_env(env).limited(limits))
    }

    /// [`Registries::new`] with explicit options; the deadline starts now.
    pub fn with_options(
        config: &[RegistryConfig],
        root: &Path,
        options: RegistryOptions,
    ) -> Registries {
        let timing = transport::Options {
            request_timeout: options.request_timeout,
            deadline: tokio::time::Instant::now() + options.deadline,
            max_attempts: options.max_attempts.max(1),
            backoff_base: options.backoff_base,
            max_retry_after: options.max_retry_after,
            response_bytes: options.response_bytes,
            tags_per_repository: options.tags_per_repository,
        };
        Registries {
            config: config.to_vec(),
            root: root.to_path_buf(),
            options: Arc::new(timing),
            env: Arc::new(options.env),
            built: Default::default(),
        }
    }

    /// The source serving `host` (as normalised by [`ImageRef`]); built once, then shared.
    pub fn source(&self, host: &str) -> Arc<dyn TagSource> {
        let mut built = self.built.lock().expect("registry map poisoned");
        if let Some(s) = built.get(host) {
            return s.clone();
        }
        let cfg = self.config.iter().find(|r| same_host(&r.host, host));
        let source: Arc<dyn TagSource> = match cfg.and_then(|c| c.api()) {
            Some(api) if is_layout(api) => Arc::new(layout::LayoutSource::new(
                host,
                &self.root.join(&api["oci-layout:".len()..]),
            )),
            _ => Arc::new(oci::OciSource::new(
                host,
                cfg,
                &self.root,
                self.options.clone(),
                self.env.clone(),
            )),
        };
        built.insert(host.to_string(), source.clone());
        source
    }

    /// Start listing the tags of every distinct repository in `images` on the runtime's
    /// workers and return at once, so the requests overlap other work (reading the repo).
    /// Needs a multi-threaded tokio runtime to make progress while the caller computes.
    pub fn prefetch<'a>(&self, images: impl IntoIterator<Item = &'a ImageRef>) -> Prefetch {
        let mut jobs = HashMap::new();
        for img in images {
            let name = img.canonical_name();
            jobs.entry(name.clone()).or_insert_with(|| {
                let source = self.source(&img.registry);
                let repository = img.repository.clone();
                let job =
                    tokio::spawn(async move { listed(&name, source.list_tags(&repository)).await });
                (img.clone(), job)
            });
        }
        Prefetch { jobs }
    }

    /// List the tags of every distinct repository in `images`, concurrently; one result per
    /// canonical name (`registry/repository`).
    pub async fn resolve_all<'a>(
        &self,
        images: impl IntoIterator<Item = &'a ImageRef>,
    ) -> HashMap<String, TagList> {
        let mut seen = HashMap::new();
        for img in images {
            seen.entry(img.canonical_name())
                .or_insert_with(|| (img.registry.clone(), img.repository.clone()));
        }
        let jobs = seen.into_iter().map(|(name, (host, repo))| {
            let source = self.source(&host);
            async move {
                let result = listed(&name, source.list_tags(&repo)).await;
                (name, result)
            }
        });
        futures::future::join_all(jobs).await.into_iter().collect()
    }
}

/// `listing`, the tag list of `name`, told to the progress line and logged at `-vv`
/// ([`crate::observe`]).
async fn listed(name: &str, listing: BoxFuture<'_, TagList>) -> TagList {
    let started = std::time::Instant::now();
    crate::observe::listing_started(name);
    let result = listing.await;
    let tags = match &result {
        Ok(list) => Ok(list.len()),
        Err(e) => Err(e.message.as_str()),
    };
    crate::observe::listing_ended(name, tags, started.elapsed());
    result
}

/// Tag lists being fetched in the background, by canonical name (see
/// [`Registries::prefetch`]). The ones never taken are cancelled when this is dropped.
pub struct Prefetch {
    jobs: HashMap<String, (ImageRef, tokio::task::JoinHandle<TagList>)>,
}

/// A repository's tags, or why they could not be listed.
pub type TagList = Result<Vec<String>, RegistryError>;

impl Prefetch {
    /// Whether the list of `name` (canonical) was started here.
    pub fn started(&self, name: &str) -> bool {
        self.jobs.contains_key(name)
    }

    /// Wait for the lists of `names` that were started here; one result per name found.
    pub async fn take(
        &mut self,
        names: impl IntoIterator<Item = String>,
    ) -> Vec<(String, TagList)> {
        let jobs: Vec<_> = names
            .into_iter()
            .filter_map(|name| self.jobs.remove_entry(&name))
            .collect();
        let waits = jobs.into_iter().map(|(name, (image, job))| async move {
            let result = match job.await {
                Ok(r) => r,
                Err(e) => Err(RegistryError {
                    registry: image.registry,
                    repository: image.repository,
                    message: format!("listing tags stopped: {e}"),
                    source: None,
                }),
            };
            (name, result)
        });
        futures::future::join_all(waits).await
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        for (_, job) in self.jobs.values() {
            job.abort();
        }
    }
}

/// Docker Hub goes by several names; everything else compares case-insensitively.
pub fn same_host(a: &str, b: &str) -> bool {
    fn norm(h: &str) -> String {
        let h = h.to_ascii_lowercase();
        match h.as_str() {
            "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
                "docker.io".to_string()
            }
            _ => h,
        }
    }
    norm(a) == norm(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_aliases_are_one_host() {
        assert!(same_host("index.docker.io", "docker.io"));
        assert!(same_host("DOCKER.IO", "registry-1.docker.io"));
        assert!(!same_host("ghcr.io", "docker.io"));
        assert!(same_host("Example.com:5000", "example.com:5000"));
    }
}
