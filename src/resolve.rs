//! The resolve stage: what the registries say about the watched images. Each repository's
//! tag list is fetched once per run (started while the files are still being read, see
//! [`prefetch`]), hostile or broken tags are dropped before any policy sees them
//! ([`valid_tags`]), and digests and platforms of single tags are looked up on demand, each
//! once ([`Lookups`]).

use std::collections::HashMap;
use std::sync::Arc;

use crate::observe;
use crate::policy;
use crate::reference::ImageRef;
use crate::registry::created::NewestBuildError;
use crate::registry::{Prefetch, Registries, RegistryError};
use crate::report::ErrorEntry;

/// A registry repository, by canonical name (`registry/repository`): the key of every
/// per-repository result of this stage.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct RepoKey(String);

impl RepoKey {
    /// The repository `image` lives in.
    pub fn of(image: &ImageRef) -> RepoKey {
        RepoKey(image.canonical_name())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RepoKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A repository's valid tags, or why they could not be listed.
pub(crate) type Tags = Result<Arc<Vec<String>>, RegistryError>;

/// Tag lists fetched this run, by repository: a retry (after a lost push race) asks no
/// registry twice.
pub(crate) type TagCache = HashMap<RepoKey, Tags>;

/// Start listing the repositories of `images` not in `cache` in the background, while the
/// files are read and parsed: the one waits on registries, the other on the cores. Lists
/// never taken by [`resolve`] are cancelled unread.
pub(crate) fn prefetch<'a>(
    registries: &Registries,
    images: impl IntoIterator<Item = &'a ImageRef>,
    cache: &TagCache,
) -> Prefetch {
    registries.prefetch(
        images
            .into_iter()
            .filter(|i| !cache.contains_key(&RepoKey::of(i))),
    )
}

/// List the repositories of `images` (the watched images that occur) not in `cache` yet,
/// all at once, taking what `prefetch` started; each result lands in `cache`.
pub(crate) async fn resolve(
    registries: &Registries,
    mut prefetch: Prefetch,
    images: &[&ImageRef],
    cache: &mut TagCache,
    counted: observe::Snapshot,
    started: std::time::Instant,
) {
    let wanted: HashMap<RepoKey, &ImageRef> = images
        .iter()
        .map(|i| (RepoKey::of(i), *i))
        .filter(|(key, _)| !cache.contains_key(key))
        .collect();
    let names: Vec<String> = wanted.keys().map(|k| k.0.clone()).collect();
    observe::listing_needed(&names);
    let late: Vec<&ImageRef> = wanted
        .iter()
        .filter(|(key, _)| !prefetch.started(key.as_str()))
        .map(|(_, image)| *image)
        .collect();
    let (early, late) = futures::join!(
        prefetch.take(names.iter().cloned()),
        registries.resolve_all(late),
    );
    drop(prefetch);
    cache.extend(
        early
            .into_iter()
            .chain(late)
            .map(|(name, r)| (RepoKey(name), r.map(|list| Arc::new(valid_tags(list).0)))),
    );
    let sent = observe::Snapshot::now().since(counted);
    tracing::info!(
        repositories = wanted.len(),
        failed = wanted
            .keys()
            .filter(|k| cache.get(*k).is_some_and(Result::is_err))
            .count(),
        requests = sent.registry_requests,
        pages = sent.tag_pages,
        bytes = sent.registry_bytes,
        retries = sent.registry_retries,
        waited_ms = sent.registry_waited_us / 1000,
        ms = observe::ms_since(started),
        "resolve: repositories listed"
    );
}

/// One error per repository in `cache` that could not be listed, by repository name.
pub(crate) fn failures(cache: &TagCache) -> Vec<ErrorEntry> {
    let mut failed: Vec<(&RepoKey, String)> = cache
        .iter()
        .filter_map(|(key, r)| r.as_ref().err().map(|e| (key, e.to_string())))
        .collect();
    failed.sort();
    failed
        .into_iter()
        .map(|(key, message)| ErrorEntry {
            image: Some(key.0.clone()),
            file: None,
            message,
        })
        .collect()
}

/// The tags that are valid OCI tags, and the others: hostile or broken tags never reach a
/// policy, a manifest, a branch name or a message.
pub(crate) fn valid_tags(list: Vec<String>) -> (Vec<String>, Vec<String>) {
    list.into_iter().partition(|t| policy::is_oci_tag(t))
}

/// A repository and a tag.
type RepoTag = (RepoKey, String);

/// Digests and platforms looked up this run, by repository and tag: each manifest once.
pub(crate) struct Lookups<'a> {
    registries: &'a Registries,
    digests: HashMap<RepoTag, Result<String, RegistryError>>,
    platforms: HashMap<RepoTag, Result<Option<Vec<String>>, RegistryError>>,
    /// Build times read for newest-build.
    created: crate::registry::created::CreatedCache,
}

impl<'a> Lookups<'a> {
    pub fn new(registries: &'a Registries) -> Lookups<'a> {
        Lookups {
            registries,
            digests: HashMap::new(),
            platforms: HashMap::new(),
            created: Default::default(),
        }
    }

    /// The digest `tag` of `image`'s repository points to.
    pub async fn digest(&mut self, image: &ImageRef, tag: &str) -> Result<String, RegistryError> {
        let key = (RepoKey::of(image), tag.to_string());
        if let Some(r) = self.digests.get(&key) {
            return r.clone();
        }
        let r = self
            .registries
            .source(&image.registry)
            .digest(&image.repository, tag)
            .await;
        self.digests.insert(key, r.clone());
        r
    }

    /// Of `candidates` (tags of `image`'s repository), the one whose image was built last
    /// (Argo CD Image Updater's newest-build): one manifest and config read per candidate.
    pub async fn newest_build(
        &mut self,
        image: &ImageRef,
        candidates: &[String],
    ) -> Result<Option<String>, NewestBuildError> {
        let source = self.registries.source(&image.registry);
        crate::registry::created::newest_build(
            source.as_ref(),
            &image.canonical_name(),
            &image.repository,
            candidates,
            &mut self.created,
        )
        .await
    }

    /// The platforms `tag` of `image`'s repository provides.
    pub async fn platforms(
        &mut self,
        image: &ImageRef,
        tag: &str,
    ) -> Result<Option<Vec<String>>, RegistryError> {
        let key = (RepoKey::of(image), tag.to_string());
        if let Some(r) = self.platforms.get(&key) {
            return r.clone();
        }
        let r = self
            .registries
            .source(&image.registry)
            .platforms(&image.repository, tag)
            .await;
        self.platforms.insert(key, r.clone());
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_tags_are_set_apart() {
        let (valid, invalid) = valid_tags(vec![
            "1.2.0".into(),
            "v1\n::error::x".into(),
            "-bad".into(),
            "latest".into(),
        ]);
        assert_eq!(valid, ["1.2.0", "latest"]);
        assert_eq!(invalid, ["v1\n::error::x", "-bad"]);
    }

    #[test]
    fn failures_are_one_per_repository_in_name_order() {
        let err = |repo: &str| RegistryError {
            registry: "r.test".into(),
            repository: repo.into(),
            message: "401".into(),
            source: None,
        };
        let image = |s: &str| ImageRef::parse(s).unwrap();
        let mut cache = TagCache::new();
        cache.insert(RepoKey::of(&image("r.test/b")), Err(err("b")));
        cache.insert(RepoKey::of(&image("r.test/ok")), Ok(Arc::new(vec![])));
        cache.insert(RepoKey::of(&image("r.test/a")), Err(err("a")));
        let f = failures(&cache);
        let names: Vec<_> = f.iter().map(|e| e.image.as_deref().unwrap()).collect();
        assert_eq!(names, ["r.test/a", "r.test/b"]);
        assert_eq!(f[0].message, "r.test: a: 401");
    }
}
