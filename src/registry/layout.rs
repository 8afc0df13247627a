//! An OCI image layout tree as a registry: the offline default for demos and tests.
//!
//! The tree holds one image layout directory per repository (`ROOT/acme/web/index.json`,
//! `ROOT/acme/web/oci-layout`); the tags are the `org.opencontainers.image.ref.name`
//! annotations of `index.json`'s manifests. A layout directory named directly
//! (`oci-layout:PATH` with an empty repository) is read as one repository.

use std::path::{Path, PathBuf};

use futures::future::BoxFuture;
use serde::Deserialize;

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
            self.read(repository).map_err(|message| RegistryError {
                registry: self.host.clone(),
                repository: repository.to_string(),
                message,
            })
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

    #[test]
    fn ref_names() {
        assert_eq!(tag_of_ref_name("1.0"), "1.0");
        assert_eq!(tag_of_ref_name("a.io/b:1.0"), "1.0");
        assert_eq!(tag_of_ref_name("localhost:5000/b"), "localhost:5000/b");
    }
}
