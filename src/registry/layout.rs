//! An OCI image layout tree as a registry: the offline default for demos and tests.
//!
//! The tree holds one image layout directory per repository (`ROOT/acme/web/index.json`,
//! `ROOT/acme/web/oci-layout`); the tags are the `org.opencontainers.image.ref.name`
//! annotations of `index.json`'s manifests. A layout directory named directly
//! (`oci-layout:PATH` with an empty repository) is read as one repository.
//!
//! A tag's digest is its `index.json` descriptor's; its platforms come from the blob that
//! descriptor points to (`blobs/<alg>/<hex>`): an index's entries, or an image's config.

use std::path::{Path, PathBuf};

use futures::future::BoxFuture;
use serde::Deserialize;

use super::media::{config_platform, parse_manifest, Manifest};
use super::{RegistryError, TagSource};

const REF_NAME: &str = "org.opencontainers.image.ref.name";

pub struct LayoutSource {
    host: String,
    root: PathBuf,
}

#[derive(Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct Descriptor {
    #[serde(default)]
    digest: String,
    #[serde(default)]
    annotations: std::collections::HashMap<String, String>,
}

impl LayoutSource {
    /// `host` names the registry in messages; `root` is the layout tree.
    pub fn new(host: &str, root: &Path) -> LayoutSource {
        LayoutSource {
            host: host.to_string(),
            root: root.to_path_buf(),
        }
    }

    fn read(&self, repository: &str) -> Result<Vec<String>, String> {
        let (_, index) = self.index(repository)?;
        let mut tags: Vec<String> = index
            .manifests
            .iter()
            .filter_map(|m| m.annotations.get(REF_NAME))
            .map(|r| tag_of_ref_name(r).to_string())
            .collect();
        tags.sort();
        tags.dedup();
        Ok(tags)
    }

    /// The digest `tag`'s descriptor names.
    fn tag_digest(&self, repository: &str, tag: &str) -> Result<(PathBuf, String), String> {
        let (dir, index) = self.index(repository)?;
        let found = index
            .manifests
            .iter()
            .find(|m| {
                m.annotations
                    .get(REF_NAME)
                    .is_some_and(|r| tag_of_ref_name(r) == tag)
            })
            .ok_or_else(|| format!("no tag {tag} in {}", dir.join("index.json").display()))?;
        if found.digest.is_empty() {
            return Err(format!("tag {tag}: its descriptor has no digest"));
        }
        Ok((dir, found.digest.clone()))
    }

    fn blob(dir: &Path, digest: &str) -> Result<Vec<u8>, String> {
        let (alg, hex) = digest
            .split_once(':')
            .ok_or_else(|| format!("malformed digest {digest:?}"))?;
        let path = dir.join("blobs").join(alg).join(hex);
        std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))
    }

    fn platforms_of(&self, repository: &str, tag: &str) -> Result<Option<Vec<String>>, String> {
        let (dir, digest) = self.tag_digest(repository, tag)?;
        match parse_manifest(&Self::blob(&dir, &digest)?, None)? {
            Manifest::Index(p) => Ok(Some(p)),
            Manifest::Other => Ok(None),
            Manifest::Image { config_digest } => {
                Ok(config_platform(&Self::blob(&dir, &config_digest)?).map(|p| vec![p]))
            }
        }
    }

    fn index(&self, repository: &str) -> Result<(PathBuf, Index), String> {
        let dir = if repository.is_empty() {
            self.root.clone()
        } else {
            self.root.join(repository)
        };
        let marker = dir.join("oci-layout");
        if !marker.is_file() {
            return Err(format!(
                "{} is not an OCI image layout (no oci-layout file)",
                dir.display()
            ));
        }
        let path = dir.join("index.json");
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let index: Index = serde_json::from_slice(&bytes)
            .map_err(|e| format!("{}: not a valid OCI index: {e}", path.display()))?;
        Ok((dir, index))
    }

    fn error(&self, repository: &str, message: String) -> RegistryError {
        RegistryError {
            registry: self.host.clone(),
            repository: repository.to_string(),
            message,
        }
    }
}

/// A ref name is usually a bare tag, but some tools store a whole reference
/// (`example.com/app:1.0`); take its tag then.
fn tag_of_ref_name(r: &str) -> &str {
    match r.rfind(':') {
        Some(i) if r[..i].contains('/') && !r[i + 1..].contains('/') => &r[i + 1..],
        _ => r,
    }
}

impl TagSource for LayoutSource {
    fn list_tags<'a>(
        &'a self,
        repository: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, RegistryError>> {
        Box::pin(async move { self.read(repository).map_err(|m| self.error(repository, m)) })
    }

    fn digest<'a>(
        &'a self,
        repository: &'a str,
        tag: &'a str,
    ) -> BoxFuture<'a, Result<String, RegistryError>> {
        Box::pin(async move {
            self.tag_digest(repository, tag)
                .map(|(_, d)| d)
                .map_err(|m| self.error(repository, m))
        })
    }

    fn platforms<'a>(
        &'a self,
        repository: &'a str,
        tag: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<String>>, RegistryError>> {
        Box::pin(async move {
            self.platforms_of(repository, tag)
                .map_err(|m| self.error(repository, m))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(dir: &Path, refs: &[&str]) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        let manifests: Vec<String> = refs
            .iter()
            .map(|r| {
                format!(
                    r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{}","size":1,"annotations":{{"{REF_NAME}":"{r}"}}}}"#,
                    "0".repeat(64)
                )
            })
            .collect();
        std::fs::write(
            dir.join("index.json"),
            format!(
                r#"{{"schemaVersion":2,"manifests":[{}]}}"#,
                manifests.join(",")
            ),
        )
        .unwrap();
    }

    #[tokio::test]
    async fn lists_ref_names_of_a_repository() {
        let t = tempfile::tempdir().unwrap();
        layout(
            &t.path().join("acme/web"),
            &["1.0.0", "1.2.0", "example.com/acme/web:2.0.0"],
        );
        let s = LayoutSource::new("ghcr.io", t.path());
        assert_eq!(
            s.list_tags("acme/web").await.unwrap(),
            ["1.0.0", "1.2.0", "2.0.0"]
        );
        let direct = LayoutSource::new("oci-layout", &t.path().join("acme/web"));
        assert_eq!(direct.list_tags("").await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn missing_layout_names_the_path() {
        let t = tempfile::tempdir().unwrap();
        let e = LayoutSource::new("ghcr.io", t.path())
            .list_tags("acme/nope")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("acme/nope"), "{e}");
        assert!(e.message.contains("not an OCI image layout"), "{e}");
    }

    fn put_blob(dir: &Path, bytes: &[u8]) -> String {
        let digest = crate::registry::media::sha256_digest(bytes);
        let p = dir.join("blobs/sha256");
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(p.join(&digest["sha256:".len()..]), bytes).unwrap();
        digest
    }

    #[tokio::test]
    async fn digests_and_platforms_of_an_index_and_an_image() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("acme/web");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        let config = put_blob(
            &dir,
            br#"{"os":"linux","architecture":"arm64","variant":"v8"}"#,
        );
        let image = put_blob(
            &dir,
            format!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":1}},"layers":[]}}"#
            )
            .as_bytes(),
        );
        let index = put_blob(
            &dir,
            format!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
                {{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{image}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}},
                {{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{image}","size":1,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}}]}}"#
            )
            .as_bytes(),
        );
        std::fs::write(
            dir.join("index.json"),
            format!(
                r#"{{"schemaVersion":2,"manifests":[
                {{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"{index}","size":1,"annotations":{{"{REF_NAME}":"2.0.0"}}}},
                {{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{image}","size":1,"annotations":{{"{REF_NAME}":"1.0.0"}}}}]}}"#
            ),
        )
        .unwrap();
        let s = LayoutSource::new("ghcr.io", t.path());
        assert_eq!(s.digest("acme/web", "2.0.0").await.unwrap(), index);
        assert_eq!(s.digest("acme/web", "1.0.0").await.unwrap(), image);
        assert_eq!(
            s.platforms("acme/web", "2.0.0").await.unwrap(),
            Some(vec![
                "linux/amd64".to_string(),
                "linux/arm64/v8".to_string()
            ])
        );
        assert_eq!(
            s.platforms("acme/web", "1.0.0").await.unwrap(),
            Some(vec!["linux/arm64/v8".to_string()])
        );
        let e = s.digest("acme/web", "9.9.9").await.unwrap_err();
        assert!(e.message.contains("no tag 9.9.9"), "{e}");
    }

    #[test]
    fn ref_names() {
        assert_eq!(tag_of_ref_name("1.0"), "1.0");
        assert_eq!(tag_of_ref_name("a.io/b:1.0"), "1.0");
        assert_eq!(tag_of_ref_name("localhost:5000/b"), "localhost:5000/b");
    }
}
