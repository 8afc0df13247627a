//! Manifest media types and the little of a manifest that tag selection needs: whether it is
//! an index (and which platforms it covers) or a single image (and where its config is).
//!
//! Shared by the registry source and the OCI layout source, so both answer `platforms` alike.
//!
//! The media types are written out here, as the OCI image spec and Docker's manifest v2
//! spec name them, rather than taken from `oci-client`: these six strings were all this
//! crate used of it, and it brought 32 crates into the build for them.

use serde::Deserialize;

/// An OCI image index (a multi-platform image).
pub const OCI_IMAGE_INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// A Docker manifest list (Docker's multi-platform image).
pub const IMAGE_MANIFEST_LIST_MEDIA_TYPE: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
/// An OCI image manifest (one platform).
pub const OCI_IMAGE_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// A Docker image manifest, schema 2 (one platform).
pub const IMAGE_MANIFEST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// An OCI image config.
pub const IMAGE_CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// A Docker image config.
pub const IMAGE_DOCKER_CONFIG_MEDIA_TYPE: &str = "application/vnd.docker.container.image.v1+json";

/// The `Accept` header for manifest requests: indexes first, so a multi-platform tag answers
/// with its index (whose digest is the one to pin), then single-platform manifests.
pub const ACCEPT_MANIFESTS: &str = concat!(
    "application/vnd.oci.image.index.v1+json, ",
    "application/vnd.docker.distribution.manifest.list.v2+json, ",
    "application/vnd.oci.image.manifest.v1+json, ",
    "application/vnd.docker.distribution.manifest.v2+json"
);

/// What a manifest is, as far as platforms go.
#[derive(Debug, PartialEq, Eq)]
pub enum Manifest {
    /// An OCI index or Docker manifest list: the platforms of its entries, as
    /// `os/arch[/variant]`, in index order, without attestation entries (`unknown/unknown`).
    Index(Vec<String>),
    /// A single image manifest whose config (an image config) is at this digest.
    Image { config_digest: String },
    /// Something else (an artifact, a config that is not an image config).
    Other,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<Vec<Entry>>,
    #[serde(default)]
    config: Option<Descriptor>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    platform: Option<Platform>,
    #[serde(default)]
    digest: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    #[serde(default)]
    media_type: Option<String>,
    digest: String,
}

#[derive(Deserialize)]
struct Platform {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    variant: Option<String>,
}

impl Platform {
    fn name(&self) -> Option<String> {
        if self.os.is_empty() || self.architecture.is_empty() {
            return None;
        }
        if self.os == "unknown" && self.architecture == "unknown" {
            return None;
        }
        Some(match self.variant.as_deref() {
            Some(v) if !v.is_empty() => format!("{}/{}/{v}", self.os, self.architecture),
            _ => format!("{}/{}", self.os, self.architecture),
        })
    }
}

/// A manifest that does not read as JSON.
#[derive(Debug, thiserror::Error)]
#[error("manifest is not valid JSON: {0}")]
pub struct BadManifest(#[source] pub serde_json::Error);

/// Read a manifest; `content_type` is the response's media type when known (the body's
/// `mediaType` wins when present).
pub fn parse_manifest(body: &[u8], content_type: Option<&str>) -> Result<Manifest, BadManifest> {
    let raw: Raw = serde_json::from_slice(body).map_err(BadManifest)?;
    let media = raw
        .media_type
        .as_deref()
        .or(content_type)
        .map(|m| m.split(';').next().unwrap_or(m).trim().to_string());
    let is_index = match media.as_deref() {
        Some(OCI_IMAGE_INDEX_MEDIA_TYPE) | Some(IMAGE_MANIFEST_LIST_MEDIA_TYPE) => true,
        Some(OCI_IMAGE_MEDIA_TYPE) | Some(IMAGE_MANIFEST_MEDIA_TYPE) => false,
        _ => raw.manifests.is_some(),
    };
    if is_index {
        let mut out: Vec<String> = Vec::new();
        for p in raw.manifests.unwrap_or_default() {
            if let Some(name) = p.platform.as_ref().and_then(Platform::name) {
                if !out.contains(&name) {
                    out.push(name);
                }
            }
        }
        return Ok(Manifest::Index(out));
    }
    match raw.config {
        Some(c)
            if matches!(
                c.media_type.as_deref(),
                None | Some(IMAGE_CONFIG_MEDIA_TYPE) | Some(IMAGE_DOCKER_CONFIG_MEDIA_TYPE)
            ) =>
        {
            Ok(Manifest::Image {
                config_digest: c.digest,
            })
        }
        _ => Ok(Manifest::Other),
    }
}

/// The `annotations` of a manifest or index whose values are strings (others are left out);
/// empty when it has none or does not read as JSON.
pub fn manifest_annotations(body: &[u8]) -> std::collections::BTreeMap<String, String> {
    #[derive(Deserialize)]
    struct Annotated {
        #[serde(default)]
        annotations: Option<std::collections::BTreeMap<String, serde_json::Value>>,
    }
    serde_json::from_slice::<Annotated>(body)
        .ok()
        .and_then(|a| a.annotations)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| match v {
            serde_json::Value::String(s) => Some((k, s)),
            _ => None,
        })
        .collect()
}

/// The digest of an index's first entry for a real platform (attestations and entries without
/// a platform left out), when it is a well-formed `sha256:`/`sha512:` digest: the image whose
/// labels a multi-platform tag is described by.
pub fn first_platform_digest(body: &[u8]) -> Option<String> {
    let raw: Raw = serde_json::from_slice(body).ok()?;
    let well_formed = |d: &str| match d.split_once(':') {
        Some(("sha256", hex)) => hex.len() == 64,
        Some(("sha512", hex)) => hex.len() == 128,
        _ => false,
    } && d
        .split_once(':')
        .is_some_and(|(_, hex)| hex.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')));
    raw.manifests?
        .into_iter()
        .find(|e| e.platform.as_ref().and_then(Platform::name).is_some())
        .map(|e| e.digest)
        .filter(|d| well_formed(d))
}

/// The `os/arch[/variant]` of an image config, if it names one.
pub fn config_platform(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<Platform>(body).ok()?.name()
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    let hash = sha2::Sha256::digest(bytes);
    let mut out = String::with_capacity(71);
    out.push_str("sha256:");
    for b in hash {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_platforms_skip_attestations() {
        let body = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:a","size":1,"platform":{"os":"linux","architecture":"amd64"}},
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:b","size":1,"platform":{"os":"linux","architecture":"arm","variant":"v7"}},
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:c","size":1,"platform":{"os":"unknown","architecture":"unknown"}}]}"#;
        assert_eq!(
            parse_manifest(body, None).unwrap(),
            Manifest::Index(vec!["linux/amd64".into(), "linux/arm/v7".into()])
        );
    }

    #[test]
    fn docker_list_by_content_type_and_single_images() {
        let list = br#"{"schemaVersion":2,"manifests":[{"digest":"sha256:a","platform":{"os":"linux","architecture":"arm64","variant":"v8"}}]}"#;
        assert_eq!(
            parse_manifest(list, Some(IMAGE_MANIFEST_LIST_MEDIA_TYPE)).unwrap(),
            Manifest::Index(vec!["linux/arm64/v8".into()])
        );
        let image = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:cfg","size":2}}"#;
        assert_eq!(
            parse_manifest(image, None).unwrap(),
            Manifest::Image {
                config_digest: "sha256:cfg".into()
            }
        );
        let artifact = br#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.cncf.helm.config.v1+json","digest":"sha256:x","size":2}}"#;
        assert_eq!(parse_manifest(artifact, None).unwrap(), Manifest::Other);
        assert!(parse_manifest(b"{", None).is_err());
    }

    #[test]
    fn accept_header_names_the_manifest_types_indexes_first() {
        let types = [
            OCI_IMAGE_INDEX_MEDIA_TYPE,
            IMAGE_MANIFEST_LIST_MEDIA_TYPE,
            OCI_IMAGE_MEDIA_TYPE,
            IMAGE_MANIFEST_MEDIA_TYPE,
        ];
        assert_eq!(ACCEPT_MANIFESTS, types.join(", "));
    }

    #[test]
    fn first_platform_of_an_index() {
        let d = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        let body = format!(
            r#"{{"manifests":[{{"digest":"{}","platform":{{"os":"unknown","architecture":"unknown"}}}},{{"digest":"{}"}},{{"digest":"{}","platform":{{"os":"linux","architecture":"arm64"}}}},{{"digest":"{}","platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#,
            d('a'),
            d('b'),
            d('c'),
            d('d')
        );
        assert_eq!(first_platform_digest(body.as_bytes()), Some(d('c')));
        let bad = br#"{"manifests":[{"digest":"sha256:../../x","platform":{"os":"linux","architecture":"amd64"}}]}"#;
        assert_eq!(first_platform_digest(bad), None);
        assert_eq!(first_platform_digest(br#"{"config":{}}"#), None);
    }

    #[test]
    fn annotations_of_manifests_and_indexes() {
        let body = br#"{"schemaVersion":2,"manifests":[],"annotations":{"org.opencontainers.image.revision":"abc","n":1}}"#;
        let a = manifest_annotations(body);
        assert_eq!(a.len(), 1);
        assert_eq!(a["org.opencontainers.image.revision"], "abc");
        assert!(manifest_annotations(br#"{"schemaVersion":2}"#).is_empty());
        assert!(manifest_annotations(b"{").is_empty());
    }

    #[test]
    fn config_platforms() {
        assert_eq!(
            config_platform(br#"{"os":"linux","architecture":"amd64","rootfs":{}}"#).as_deref(),
            Some("linux/amd64")
        );
        assert_eq!(config_platform(br#"{"foo":1}"#), None);
    }
}
