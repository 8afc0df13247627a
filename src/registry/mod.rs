//! Where tags come from: the `TagSource` contract, its implementations, and the resolver
//! that lists every distinct repository once per run, all of them concurrently.
//!
//! Each registry host gets one source (one HTTP client, one concurrency limit); the resolver
//! fans out over distinct repositories and collects a result per repository, so one failing
//! registry never stops the others.

pub mod layout;
pub mod oci;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::config::{is_layout, RegistryConfig};
use crate::reference::ImageRef;

/// A failure to list one repository's tags. Never carries a secret.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{registry}: {repository}: {message}")]
pub struct RegistryError {
    pub registry: String,
    pub repository: String,
    pub message: String,
}

/// Something that lists the tags of a repository.
pub trait TagSource: Send + Sync {
    /// All tags of `repository` (a path such as `acme/web`), in the order the source gives them.
    fn list_tags<'a>(
        &'a self,
        repository: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, RegistryError>>;
}

/// The sources for every host of a run, built from the config's `registries`.
pub struct Registries {
    config: Vec<RegistryConfig>,
    root: std::path::PathBuf,
    built: std::sync::Mutex<HashMap<String, Arc<dyn TagSource>>>,
}

impl Registries {
    /// `root` is the repo root: `oci-layout:` and `ca_file` paths are relative to it.
    pub fn new(config: &[RegistryConfig], root: &Path) -> Registries {
        Registries {
            config: config.to_vec(),
            root: root.to_path_buf(),
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
        let source: Arc<dyn TagSource> = match cfg.and_then(|c| c.api.as_deref()) {
            Some(api) if is_layout(api) => Arc::new(layout::LayoutSource::new(
                host,
                &self.root.join(&api["oci-layout:".len()..]),
            )),
            _ => Arc::new(oci::OciSource::new(host, cfg, &self.root)),
        };
        built.insert(host.to_string(), source.clone());
        source
    }

    /// List the tags of every distinct repository in `images`, concurrently; one result per
    /// canonical name (`registry/repository`).
    pub async fn resolve_all<'a>(
        &self,
        images: impl IntoIterator<Item = &'a ImageRef>,
    ) -> HashMap<String, Result<Arc<Vec<String>>, RegistryError>> {
        let mut seen = HashMap::new();
        for img in images {
            seen.entry(img.canonical_name())
                .or_insert_with(|| (img.registry.clone(), img.repository.clone()));
        }
        let jobs = seen.into_iter().map(|(name, (host, repo))| {
            let source = self.source(&host);
            async move {
                let result = source.list_tags(&repo).await.map(Arc::new);
                (name, result)
            }
        });
        futures::future::join_all(jobs).await.into_iter().collect()
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
