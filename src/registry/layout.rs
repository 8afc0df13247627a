//! An OCI image layout tree as a registry: the offline default for demos and tests.
//!
//! The tree holds one image layout directory per repository (`ROOT/acme/web/index.json`,
//! `ROOT/acme/web/oci-layout`); the tags are the `org.opencontainers.image.ref.name`
//! annotations of `index.json`'s manifests. A layout directory named directly
//! (`oci-layout:PATH` with an empty repository) is read as one repository.
//!
//! A tag's digest is its `index.json` descriptor's; its platforms come from the blob that
//! descriptor points to (`blobs/<alg>/<hex>`): an index's entries, or an image's config.
//!
//! A layout may come from the repository being updated, so nothing in it is trusted: every
//! file is read through [`read_regular_file`] (regular files only, each under a cap named
//! below) and only inside the layout (a symlink leading out of it is refused), a digest
//! must be `sha256:` and 64 lowercase hex digits (or `sha512:` and 128) before it becomes a
//! path under `blobs/`, and a blob must hash to its digest. Whether the layout itself may
//! lie outside the repository is the config's business (`Config::check_paths`).

use std::path::{Path, PathBuf};

use futures::future::BoxFuture;
use serde::Deserialize;
use sha2::Digest as _;

use super::media::{
    config_platform, first_platform_digest, manifest_annotations, parse_manifest, BadManifest,
    Manifest,
};
use super::{ImageDocument, RegistryError, TagSource};
use crate::manifest::files::{read_regular_file, ReadError};

const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The largest `index.json` read: 4 MiB, some 15,000 tagged descriptors.
pub const MAX_INDEX_JSON: u64 = 4 * 1024 * 1024;
/// The largest `oci-layout` marker read (it holds `{"imageLayoutVersion":"1.0.0"}`): 64 KiB.
pub const MAX_LAYOUT_MARKER: u64 = 64 * 1024;
/// The largest manifest or index blob read: 4 MiB, as registries cap manifests.
pub const MAX_MANIFEST_BLOB: u64 = 4 * 1024 * 1024;
/// The largest image config blob read: 4 MiB.
pub const MAX_CONFIG_BLOB: u64 = 4 * 1024 * 1024;

/// Why a layout did not give a repository's tags, or a tag's digest or platforms.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// A file of the layout could not be read (missing, too big, not a regular file, a
    /// symlink leading out of the layout).
    #[error("{0}")]
    Read(#[source] ReadError),
    #[error("{} is not an OCI image layout (no oci-layout file)", .0.display())]
    NotLayout(PathBuf),
    #[error("{}: not an OCI layout marker ({source}); expected {expected}", path.display())]
    BadMarker {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
        expected: &'static str,
    },
    #[error("{}: not a valid OCI index: {source}", path.display())]
    BadIndex {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("no tag {tag} in {}", index.display())]
    NoTag { tag: String, index: PathBuf },
    #[error("{}: tag {tag}: its descriptor has no digest", index.display())]
    NoDigest { tag: String, index: PathBuf },
    #[error("{}: tag {tag}: {source}", index.display())]
    TagDigest {
        tag: String,
        index: PathBuf,
        #[source]
        source: BadDigest,
    },
    /// A blob whose content does not hash to its digest.
    #[error("{}: its content does not match its digest {digest} ({actual})", path.display())]
    Mismatch {
        path: PathBuf,
        digest: String,
        /// `alg:hex` of what the content hashes to.
        actual: String,
    },
    #[error(transparent)]
    Manifest(#[from] BadManifest),
    /// An image manifest (at `blob`) whose config digest is not a digest.
    #[error("{}: config: {source}", blob.display())]
    ConfigDigest {
        blob: PathBuf,
        #[source]
        source: BadDigest,
    },
    #[error(transparent)]
    Digest(#[from] BadDigest),
}

/// A digest that is not `sha256:` and 64 lowercase hex digits, nor `sha512:` and 128.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "digest {digest:?} is not a digest: expected sha256: and 64 lowercase hex digits (or sha512: and 128)"
)]
pub struct BadDigest {
    /// The text given, cut at 200 characters.
    pub digest: String,
}

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

/// The `oci-layout` file: required to hold a version, which is not otherwise used.
#[derive(Deserialize)]
struct Marker {
    #[serde(rename = "imageLayoutVersion")]
    _version: String,
}

impl LayoutSource {
    /// `host` names the registry in messages; `root` is the layout tree.
    pub fn new(host: &str, root: &Path) -> LayoutSource {
        LayoutSource {
            host: host.to_string(),
            root: root.to_path_buf(),
        }
    }

    fn read(&self, repository: &str) -> Result<Vec<String>, LayoutError> {
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

    /// The digest `tag`'s descriptor names, checked to be a digest.
    fn tag_digest(&self, repository: &str, tag: &str) -> Result<(PathBuf, String), LayoutError> {
        let (dir, index) = self.index(repository)?;
        let index_path = dir.join("index.json");
        let found = index
            .manifests
            .iter()
            .find(|m| {
                m.annotations
                    .get(REF_NAME)
                    .is_some_and(|r| tag_of_ref_name(r) == tag)
            })
            .ok_or_else(|| LayoutError::NoTag {
                tag: tag.to_string(),
                index: index_path.clone(),
            })?;
        if found.digest.is_empty() {
            return Err(LayoutError::NoDigest {
                tag: tag.to_string(),
                index: index_path,
            });
        }
        check_digest(&found.digest).map_err(|source| LayoutError::TagDigest {
            tag: tag.to_string(),
            index: index_path.clone(),
            source,
        })?;
        Ok((dir, found.digest.clone()))
    }

    /// The blob `digest` (already checked by [`check_digest`]) names, capped at `limit`, and
    /// checked to hash to it.
    fn blob(
        &self,
        dir: &Path,
        digest: &str,
        limit: u64,
        expected: &str,
    ) -> Result<Vec<u8>, LayoutError> {
        let (alg, hex) = check_digest(digest)?;
        let path = blob_path(dir, alg, hex);
        let bytes = self
            .read_file(&path, limit, expected)
            .map_err(LayoutError::Read)?;
        let actual = match alg {
            "sha256" => hex_of(&sha2::Sha256::digest(&bytes)),
            _ => hex_of(&sha2::Sha512::digest(&bytes)),
        };
        if actual != hex {
            return Err(LayoutError::Mismatch {
                path,
                digest: digest.to_string(),
                actual: format!("{alg}:{actual}"),
            });
        }
        Ok(bytes)
    }

    fn platforms_of(
        &self,
        repository: &str,
        tag: &str,
    ) -> Result<Option<Vec<String>>, LayoutError> {
        let (dir, digest) = self.tag_digest(repository, tag)?;
        let manifest = self.blob(&dir, &digest, MAX_MANIFEST_BLOB, "an OCI manifest or index")?;
        match parse_manifest(&manifest, None)? {
            Manifest::Index(p) => Ok(Some(p)),
            Manifest::Other => Ok(None),
            Manifest::Image { config_digest } => {
                check_digest(&config_digest).map_err(|source| {
                    let (alg, hex) = check_digest(&digest).unwrap_or_default();
                    LayoutError::ConfigDigest {
                        blob: blob_path(&dir, alg, hex),
                        source,
                    }
                })?;
                let config = self.blob(&dir, &config_digest, MAX_CONFIG_BLOB, "an image config")?;
                Ok(config_platform(&config).map(|p| vec![p]))
            }
        }
    }

    /// The annotations of the manifest `tag` names and the config blob of its image
    /// (newest-build orders by its `created`; app-change links read its labels).
    fn config_of(&self, repository: &str, tag: &str) -> Result<ImageDocument, LayoutError> {
        let (dir, digest) = self.tag_digest(repository, tag)?;
        let manifest = self.blob(&dir, &digest, MAX_MANIFEST_BLOB, "an OCI manifest or index")?;
        let mut doc = ImageDocument {
            annotations: manifest_annotations(&manifest),
            ..ImageDocument::default()
        };
        // A multi-platform tag: its first platform's image describes it.
        let (digest, manifest) = match parse_manifest(&manifest, None)? {
            Manifest::Index(_) => {
                doc.index = true;
                let Some(first) = first_platform_digest(&manifest) else {
                    return Ok(doc);
                };
                let image = self.blob(&dir, &first, MAX_MANIFEST_BLOB, "an OCI manifest")?;
                for (k, v) in manifest_annotations(&image) {
                    doc.annotations.entry(k).or_insert(v);
                }
                (first, image)
            }
            _ => (digest, manifest),
        };
        let Manifest::Image { config_digest } = parse_manifest(&manifest, None)? else {
            return Ok(doc);
        };
        check_digest(&config_digest).map_err(|source| {
            let (alg, hex) = check_digest(&digest).unwrap_or_default();
            LayoutError::ConfigDigest {
                blob: blob_path(&dir, alg, hex),
                source,
            }
        })?;
        doc.config = Some(self.blob(&dir, &config_digest, MAX_CONFIG_BLOB, "an image config")?);
        Ok(doc)
    }

    fn index(&self, repository: &str) -> Result<(PathBuf, Index), LayoutError> {
        let dir = if repository.is_empty() {
            self.root.clone()
        } else {
            self.root.join(repository)
        };
        let marker = dir.join("oci-layout");
        let expected = r#"an OCI layout marker ({"imageLayoutVersion": "1.0.0"})"#;
        let bytes = match self.read_file(&marker, MAX_LAYOUT_MARKER, expected) {
            Ok(b) => b,
            Err(e) if e.io == Some(std::io::ErrorKind::NotFound) => {
                return Err(LayoutError::NotLayout(dir))
            }
            Err(e) => return Err(LayoutError::Read(e)),
        };
        serde_json::from_slice::<Marker>(&bytes).map_err(|source| LayoutError::BadMarker {
            path: marker.clone(),
            source,
            expected,
        })?;
        let path = dir.join("index.json");
        let bytes = self
            .read_file(&path, MAX_INDEX_JSON, "an OCI image index (JSON)")
            .map_err(LayoutError::Read)?;
        let index: Index = serde_json::from_slice(&bytes)
            .map_err(|source| LayoutError::BadIndex { path, source })?;
        Ok((dir, index))
    }

    /// `path`, a file of the layout, through the bounded reader; a symlink on the way that
    /// leads out of the layout's directory is refused before anything is opened.
    fn read_file(&self, path: &Path, limit: u64, expected: &str) -> Result<Vec<u8>, ReadError> {
        if let (Ok(root), Ok(target)) = (
            std::fs::canonicalize(&self.root),
            std::fs::canonicalize(path),
        ) {
            if !target.starts_with(&root) {
                return Err(ReadError {
                    path: path.to_path_buf(),
                    reason: format!(
                        "a symlink leading out of the layout {} (to {}), not followed; expected {expected} inside it",
                        self.root.display(),
                        target.display()
                    ),
                    io: None,
                });
            }
        }
        read_regular_file(path, limit, expected)
    }

    fn error<E: std::error::Error + Send + Sync + 'static>(
        &self,
        repository: &str,
        context: Option<&str>,
        cause: E,
    ) -> RegistryError {
        RegistryError::caused(&self.host, repository, context, cause)
    }
}

/// The algorithm and hex of `digest` when it is `sha256:` and 64 lowercase hex digits or
/// `sha512:` and 128: the only digests that become a path under `blobs/`. Anything else
/// (`sha256:../../etc/passwd`, an empty or uppercase hex, another algorithm) is an error.
pub fn check_digest(digest: &str) -> Result<(&str, &str), BadDigest> {
    let ok = |hex: &str, len: usize| {
        hex.len() == len && hex.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
    };
    match digest.split_once(':') {
        Some((alg @ "sha256", hex)) if ok(hex, 64) => Ok((alg, hex)),
        Some((alg @ "sha512", hex)) if ok(hex, 128) => Ok((alg, hex)),
        _ => Err(BadDigest {
            digest: digest.chars().take(200).collect(),
        }),
    }
}

fn blob_path(dir: &Path, alg: &str, hex: &str) -> PathBuf {
    dir.join("blobs").join(alg).join(hex)
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
        Box::pin(async move {
            self.read(repository)
                .map_err(|e| self.error(repository, None, e))
        })
    }

    fn digest<'a>(
        &'a self,
        repository: &'a str,
        tag: &'a str,
    ) -> BoxFuture<'a, Result<String, RegistryError>> {
        Box::pin(async move {
            self.tag_digest(repository, tag)
                .map(|(_, d)| d)
                .map_err(|e| self.error(repository, None, e))
        })
    }

    fn platforms<'a>(
        &'a self,
        repository: &'a str,
        tag: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<String>>, RegistryError>> {
        Box::pin(async move {
            self.platforms_of(repository, tag)
                .map_err(|e| self.error(repository, None, e))
        })
    }

    fn image_config<'a>(
        &'a self,
        repository: &'a str,
        tag: &'a str,
    ) -> BoxFuture<'a, Result<ImageDocument, RegistryError>> {
        Box::pin(async move {
            self.config_of(repository, tag)
                .map_err(|e| self.error(repository, None, e))
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
        // The typed cause travels with it.
        let cause = std::error::Error::source(&e).expect("a source");
        assert!(
            matches!(
                cause.downcast_ref::<LayoutError>(),
                Some(LayoutError::NotLayout(_))
            ),
            "{cause:?}"
        );
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
        // The image's config; the index's is its first platform's, marked as an index.
        let one = s.image_config("acme/web", "1.0.0").await.unwrap();
        assert!(!one.index);
        assert_eq!(
            one.config.as_deref(),
            Some(&br#"{"os":"linux","architecture":"arm64","variant":"v8"}"#[..])
        );
        let multi = s.image_config("acme/web", "2.0.0").await.unwrap();
        assert!(multi.index);
        assert_eq!(multi.config, one.config);
    }

    #[test]
    fn only_sha256_and_sha512_hex_digests_name_blobs() {
        let h64 = "a".repeat(64);
        assert_eq!(
            check_digest(&format!("sha256:{h64}")),
            Ok(("sha256", h64.as_str()))
        );
        let h128 = "0".repeat(128);
        assert!(check_digest(&format!("sha512:{h128}")).is_ok());
        for bad in [
            "sha256:../../../../etc/passwd".to_string(),
            format!("sha256:{}", "A".repeat(64)),
            format!("sha256:{}", "a".repeat(63)),
            format!("sha512:{h64}"),
            format!("md5:{}", "a".repeat(32)),
            format!("sha256:{}/x", "a".repeat(62)),
            "sha256:".into(),
            h64.clone(),
        ] {
            let e = check_digest(&bad).unwrap_err().to_string();
            assert!(e.contains("is not a digest"), "{bad}: {e}");
        }
    }

    #[tokio::test]
    async fn a_blob_that_does_not_hash_to_its_digest_is_an_error() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("acme/web");
        layout(&dir, &["1.0.0"]);
        let hex = "0".repeat(64);
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("blobs/sha256").join(&hex), "{}").unwrap();
        let e = LayoutSource::new("ghcr.io", t.path())
            .platforms("acme/web", "1.0.0")
            .await
            .unwrap_err();
        assert!(e.message.contains("does not match its digest"), "{e}");
        assert!(e.message.contains(&hex), "{e}");
    }

    #[tokio::test]
    async fn a_bad_oci_layout_marker_is_an_error_naming_it() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("acme/web");
        layout(&dir, &["1.0.0"]);
        std::fs::write(dir.join("oci-layout"), "not json").unwrap();
        let e = LayoutSource::new("ghcr.io", t.path())
            .list_tags("acme/web")
            .await
            .unwrap_err();
        assert!(
            e.message.contains("oci-layout: not an OCI layout marker"),
            "{e}"
        );
    }

    #[test]
    fn ref_names() {
        assert_eq!(tag_of_ref_name("1.0"), "1.0");
        assert_eq!(tag_of_ref_name("a.io/b:1.0"), "1.0");
        assert_eq!(tag_of_ref_name("localhost:5000/b"), "localhost:5000/b");
    }
}
