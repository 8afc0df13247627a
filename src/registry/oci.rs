//! A registry speaking the OCI distribution API v2.
//!
//! The requests are made here, on `reqwest`, and not through an OCI client crate such as
//! `oci-client`: tag listing must read the `Link` header, which its `Client::list_tags` hides,
//! and every request — token requests included — must go through the same retries,
//! `Retry-After` handling, timeouts, deadline and per-registry limits, which its `Client` has
//! no hook for; it also cannot exchange Docker identity tokens. The media types are ours too
//! ([`super::media`]).
//!
//! - Tags: `GET /v2/<repo>/tags/list?n=1000`, then the `Link: <…>; rel="next"` page, or, without
//!   a `Link`, `last=<last tag>` while pages come back full; a page that brings nothing new
//!   ends the listing (a registry that ignores `n` sends everything in one page).
//! - Digest: `HEAD /v2/<repo>/manifests/<tag>` with the index and manifest media types;
//!   `Docker-Content-Digest`, else `GET` and the SHA-256 of the body.
//! - Platforms: an index's entries; for a single image, its config's `os/arch[/variant]`.
//! - Auth: see [`super::token`]; credentials from [`super::auth`], looked up on first use.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use futures::future::BoxFuture;
use reqwest::{Method, Url};
use tokio::sync::OnceCell;

use super::auth::{lookup, Env};
use super::media::{
    config_platform, first_platform_digest, manifest_annotations, parse_manifest, sha256_digest,
    BadManifest, Manifest, ACCEPT_MANIFESTS,
};
use super::token::{Authorizer, TokenError};
use super::transport::{Options, Request, Response, Settings, Transport, TransportError};
use super::{same_host, ImageDocument, RegistryError, TagSource};
use crate::config::RegistryConfig;

/// Tags asked for per page.
pub const PAGE: usize = 1000;
/// Pages read at most for one repository (ten million tags at full pages).
const MAX_PAGES: usize = 10_000;

/// Docker Hub's API endpoint: `docker.io` and its aliases are served there.
pub const DOCKER_HUB_ENDPOINT: &str = "registry-1.docker.io";

/// The largest `registries[].ca_file` read: 1 MiB, some 500 PEM certificates (the whole
/// Mozilla root store is about 220 KiB).
pub const MAX_CA_FILE: u64 = 1024 * 1024;

/// Default requests in flight and requests started per second: Docker Hub's documented
/// limits are low, so 4 and 10 there; elsewhere 8 in flight and no pacing (a registry that
/// limits says so with 429 and `Retry-After`, which are honoured). Pacing at 50 a second
/// made a 300-repository run wait 6 s doing nothing (BENCHMARKS.md).
pub fn default_limits(host: &str) -> (usize, Option<f64>) {
    if same_host(host, "docker.io") {
        (4, Some(10.0))
    } else {
        (8, None)
    }
}

/// Where to send requests for `host`: the `api` override (a `host[:port]`, optionally with
/// an explicit `http://` or `https://`), else the host itself, Docker Hub's aliases going to
/// [`DOCKER_HUB_ENDPOINT`]. Returns the endpoint and the scheme the override names, if any.
pub fn endpoint(host: &str, api: Option<&str>) -> (String, Option<&'static str>) {
    if let Some(api) = api {
        let (scheme, rest) = if let Some(r) = api.strip_prefix("https://") {
            (Some("https"), r)
        } else if let Some(r) = api.strip_prefix("http://") {
            (Some("http"), r)
        } else {
            (None, api)
        };
        return (rest.trim_end_matches('/').to_string(), scheme);
    }
    if same_host(host, "docker.io") {
        return (DOCKER_HUB_ENDPOINT.to_string(), None);
    }
    (host.to_string(), None)
}

/// Why a registry's settings cannot be used; every request to it fails with this.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SetupError {
    #[error("ca_file {0}")]
    CaFile(#[source] crate::manifest::files::ReadError),
    #[error("ca_file {}: not a PEM certificate bundle: {source}", path.display())]
    CaNotPem {
        path: std::path::PathBuf,
        #[source]
        source: Arc<reqwest::Error>,
    },
    #[error("ca_file {}: no PEM certificate in it", .0.display())]
    CaEmpty(std::path::PathBuf),
    #[error("registries[].requests_per_second must be a positive number, not {0}")]
    Rate(f64),
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// Credentials named in the config or the environment that cannot be read.
    #[error("{0}")]
    Credentials(String),
    #[error("credential lookup failed: {0}")]
    Lookup(String),
}

/// Why a repository or tag of a registry could not be read.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Manifest(#[from] BadManifest),
    /// A non-success answer, in words ([`OciSource::refusal`]).
    #[error("{0}")]
    Refused(String),
    /// The image config blob `digest` could not be read.
    #[error("config {digest}: {reason}")]
    Config { digest: String, reason: String },
    #[error(
        "more than {0} tags (limits.tags_per_repository); stopped listing. \
         Raise limits.tags_per_repository if this repository really holds that many"
    )]
    TooManyTags(usize),
    #[error("tag list is not valid JSON: {0}")]
    TagList(#[source] serde_json::Error),
    #[error("the tag list's next-page Link {0:?} is not a URL")]
    BadLink(String),
    #[error(
        "the tag list's next page is on another host ({to}), not {from}; refused: \
         this registry's credentials are not sent there and its tags are not used"
    )]
    LinkElsewhere { to: String, from: String },
    #[error("more than {MAX_PAGES} pages of tags; giving up on a listing that does not end")]
    EndlessListing,
}

pub struct OciSource {
    /// The host as written in manifests, for messages and credentials.
    host: String,
    /// The host queried.
    endpoint: String,
    transport: Result<Transport, SetupError>,
    credentials: Option<crate::config::Credentials>,
    env: Arc<Env>,
    auth: OnceCell<Result<Authorizer, SetupError>>,
}

impl OciSource {
    /// The source for `host`; `root` resolves `ca_file`. Problems with the settings (an
    /// unreadable `ca_file`, say) become errors of every request, not panics.
    pub fn new(
        host: &str,
        cfg: Option<&RegistryConfig>,
        root: &Path,
        options: Arc<Options>,
        env: Arc<Env>,
    ) -> OciSource {
        let (endpoint, explicit) = endpoint(host, cfg.and_then(|c| c.api()));
        let insecure = cfg.is_some_and(|c| c.insecure);
        let schemes = match explicit {
            Some(s) => vec![s],
            None if insecure => vec!["https", "http"],
            None => vec!["https"],
        };
        let (conc, rps) = default_limits(host);
        let transport = (|| {
            let extra_roots = match cfg.and_then(|c| c.ca_file()) {
                None => vec![],
                Some(f) => {
                    let path = root.join(f);
                    let pem = crate::manifest::files::read_regular_file(
                        &path,
                        MAX_CA_FILE,
                        "a PEM CA bundle",
                    )
                    .map_err(SetupError::CaFile)?;
                    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                        SetupError::CaNotPem {
                            path: path.clone(),
                            source: Arc::new(e),
                        }
                    })?;
                    if certs.is_empty() {
                        return Err(SetupError::CaEmpty(path));
                    }
                    certs
                }
            };
            let rps = match cfg.and_then(|c| c.requests_per_second) {
                Some(r) if !(r.is_finite() && r > 0.0) => return Err(SetupError::Rate(r)),
                Some(r) => Some(r),
                None => rps,
            };
            Transport::new(
                Settings {
                    endpoint: endpoint.clone(),
                    schemes,
                    accept_invalid_certs: insecure,
                    extra_roots,
                    max_concurrency: cfg.and_then(|c| c.max_concurrency).unwrap_or(conc),
                    requests_per_second: rps,
                },
                options,
            )
            .map_err(SetupError::from)
        })();
        OciSource {
            host: host.to_string(),
            endpoint,
            transport,
            credentials: cfg.and_then(|c| c.credentials.clone()),
            env,
            auth: OnceCell::new(),
        }
    }

    /// The URL of the first tag page of `repository` (for tests of the endpoint mapping).
    #[cfg(test)]
    pub(crate) fn tags_url(&self, repository: &str) -> String {
        let base = match &self.transport {
            Ok(t) => t.base(),
            Err(_) => format!("https://{}", self.endpoint),
        };
        format!("{base}/v2/{repository}/tags/list?n={PAGE}")
    }

    fn error<E: std::error::Error + Send + Sync + 'static>(
        &self,
        repository: &str,
        context: Option<&str>,
        cause: E,
    ) -> RegistryError {
        RegistryError::caused(&self.host, repository, context, cause)
    }

    async fn authorizer(&self) -> Result<&Authorizer, SetupError> {
        let init = || async {
            let host = self.host.clone();
            let endpoint = self.endpoint.clone();
            let creds = self.credentials.clone();
            let env = self.env.clone();
            tokio::task::spawn_blocking(move || -> Result<Authorizer, SetupError> {
                let found =
                    match lookup(&host, creds.as_ref(), &env).map_err(SetupError::Credentials)? {
                        Some(f) => Some(f),
                        None if !same_host(&host, &endpoint) => {
                            lookup(&endpoint, None, &env).map_err(SetupError::Credentials)?
                        }
                        None => None,
                    };
                Ok(Authorizer::new(found))
            })
            .await
            .unwrap_or_else(|e| Err(SetupError::Lookup(e.to_string())))
        };
        self.auth
            .get_or_init(init)
            .await
            .as_ref()
            .map_err(Clone::clone)
    }

    /// One request in `repository`'s pull scope, answering the registry's challenge once.
    async fn send(
        &self,
        repository: &str,
        method: Method,
        target: &str,
        accept: &str,
        expect_json: bool,
    ) -> Result<Response, OciError> {
        let transport = self.transport.as_ref().map_err(Clone::clone)?;
        let auth = self.authorizer().await?;
        let scope = format!("repository:{repository}:pull");
        let mut round = 0;
        loop {
            let header = auth.authorization(transport, &scope).await?;
            let mut req = Request::get(target).header("accept", accept);
            req.method = method.clone();
            req.expect_json = expect_json;
            if let Some(h) = &header {
                req = req.header("authorization", h);
            }
            let resp = transport.execute(&req).await?;
            if resp.status == 401
                && round == 0
                && auth.unauthorized(&resp, &scope, header.is_some()).await
            {
                round += 1;
                continue;
            }
            return Ok(resp);
        }
    }

    /// What a non-success answer means, in words.
    async fn refusal(&self, resp: &Response) -> OciError {
        let text = resp.error_text();
        let detail = if text.is_empty() {
            String::new()
        } else {
            format!(": {text}")
        };
        let code = resp.status.as_u16();
        OciError::Refused(match code {
            401 => match self.authorizer().await.ok().and_then(|a| a.source()) {
                Some(src) => format!(
                    "authentication failed (HTTP 401): the registry refused the credentials from {src}{detail}"
                ),
                None => format!(
                    "authentication required (HTTP 401): no credentials found for {} (registries[].credentials, Docker config.json, CI environment){detail}",
                    self.host
                ),
            },
            403 => format!("access denied (HTTP 403){detail}"),
            404 => format!("not found (HTTP 404){detail}"),
            _ => format!("the registry answered HTTP {}{detail}", resp.status),
        })
    }

    async fn tags(&self, repository: &str) -> Result<Vec<String>, OciError> {
        let transport = self.transport.as_ref().map_err(Clone::clone)?;
        let limit = transport.tags_per_repository();
        let first = format!("/v2/{repository}/tags/list?n={PAGE}");
        let mut target = first.clone();
        let mut tags: Vec<String> = Vec::new();
        let mut seen = HashSet::new();
        for _ in 0..MAX_PAGES {
            let resp = self
                .send(repository, Method::GET, &target, "application/json", true)
                .await?;
            if !resp.status.is_success() {
                return Err(self.refusal(&resp).await);
            }
            // Parsed against what is left of the limit, so a huge page stops at the limit
            // instead of being held whole as strings.
            let room = limit.saturating_sub(tags.len());
            let page = parse_tag_page(&resp.body, room).map_err(|e| match e {
                PageError::TooMany => OciError::TooManyTags(limit),
                PageError::Json(e) => OciError::TagList(e),
            })?;
            let n = page.len();
            let last = page.last().cloned();
            let before = tags.len();
            tags.extend(page.into_iter().filter(|t| seen.insert(t.clone())));
            if tags.len() == before {
                return Ok(tags);
            }
            target = match (self.next_link(&resp)?, last) {
                (Some(next), _) => next,
                (None, Some(last)) if n == PAGE => {
                    format!("{first}&last={}", crate::http::percent_encode(&last))
                }
                _ => return Ok(tags),
            };
            if tags.len() >= limit {
                return Err(OciError::TooManyTags(limit));
            }
        }
        Err(OciError::EndlessListing)
    }

    /// The `rel="next"` target of a response's `Link` header, as a path below the endpoint.
    /// A link to another scheme, host or port is refused: credentials for this registry must
    /// not go there, and tags from there are not this repository's.
    fn next_link(&self, resp: &Response) -> Result<Option<String>, OciError> {
        let Some(raw) = resp
            .headers
            .get_all("link")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .find(|part| {
                part.split(';').skip(1).any(|p| {
                    let p = p.trim().replace(' ', "");
                    p.eq_ignore_ascii_case("rel=\"next\"") || p.eq_ignore_ascii_case("rel=next")
                })
            })
        else {
            return Ok(None);
        };
        let unreadable = || OciError::BadLink(raw.trim().to_string());
        let url = raw.split(';').next().unwrap_or("").trim();
        let url = url
            .strip_prefix('<')
            .and_then(|u| u.strip_suffix('>'))
            .ok_or_else(unreadable)?;
        let resolved: Url = resp.url.join(url).map_err(|_| unreadable())?;
        if !crate::http::same_origin(&resolved, &resp.url) {
            return Err(OciError::LinkElsewhere {
                to: crate::http::display_url(&resolved),
                from: crate::http::display_url(&resp.url),
            });
        }
        Ok(Some(match resolved.query() {
            Some(q) => format!("{}?{q}", resolved.path()),
            None => resolved.path().to_string(),
        }))
    }

    async fn manifest_digest(&self, repository: &str, tag: &str) -> Result<String, OciError> {
        let target = format!("/v2/{repository}/manifests/{tag}");
        let head = self
            .send(repository, Method::HEAD, &target, ACCEPT_MANIFESTS, false)
            .await?;
        if head.status.is_success() {
            if let Some(d) = head.header("docker-content-digest") {
                return Ok(d.trim().to_string());
            }
        } else if head.status != 405 {
            return Err(self.refusal(&head).await);
        }
        let get = self
            .send(repository, Method::GET, &target, ACCEPT_MANIFESTS, true)
            .await?;
        if !get.status.is_success() {
            return Err(self.refusal(&get).await);
        }
        Ok(match get.header("docker-content-digest") {
            Some(d) => d.trim().to_string(),
            None => sha256_digest(&get.body),
        })
    }

    async fn manifest_platforms(
        &self,
        repository: &str,
        tag: &str,
    ) -> Result<Option<Vec<String>>, OciError> {
        let target = format!("/v2/{repository}/manifests/{tag}");
        let resp = self
            .send(repository, Method::GET, &target, ACCEPT_MANIFESTS, true)
            .await?;
        if !resp.status.is_success() {
            return Err(self.refusal(&resp).await);
        }
        match parse_manifest(&resp.body, resp.header("content-type"))? {
            Manifest::Index(platforms) => Ok(Some(platforms)),
            Manifest::Other => Ok(None),
            Manifest::Image { config_digest } => {
                let target = format!("/v2/{repository}/blobs/{config_digest}");
                let resp = self
                    .send(repository, Method::GET, &target, "*/*", true)
                    .await?;
                if !resp.status.is_success() {
                    return Err(OciError::Config {
                        reason: self.refusal(&resp).await.to_string(),
                        digest: config_digest,
                    });
                }
                Ok(config_platform(&resp.body).map(|p| vec![p]))
            }
        }
    }

    /// The annotations of the manifest `tag` names and the config blob of its image
    /// (newest-build orders by its `created`; app-change links read its labels).
    async fn config_blob(&self, repository: &str, tag: &str) -> Result<ImageDocument, OciError> {
        let target = format!("/v2/{repository}/manifests/{tag}");
        let resp = self
            .send(repository, Method::GET, &target, ACCEPT_MANIFESTS, true)
            .await?;
        if !resp.status.is_success() {
            return Err(self.refusal(&resp).await);
        }
        let mut doc = ImageDocument {
            annotations: manifest_annotations(&resp.body),
            ..ImageDocument::default()
        };
        let config_digest = match parse_manifest(&resp.body, resp.header("content-type"))? {
            Manifest::Image { config_digest } => config_digest,
            Manifest::Other => return Ok(doc),
            Manifest::Index(_) => {
                // A multi-platform tag: its first platform's image describes it.
                doc.index = true;
                let Some(digest) = first_platform_digest(&resp.body) else {
                    return Ok(doc);
                };
                let target = format!("/v2/{repository}/manifests/{digest}");
                let resp = self
                    .send(repository, Method::GET, &target, ACCEPT_MANIFESTS, true)
                    .await?;
                if !resp.status.is_success() {
                    return Err(self.refusal(&resp).await);
                }
                for (k, v) in manifest_annotations(&resp.body) {
                    doc.annotations.entry(k).or_insert(v);
                }
                match parse_manifest(&resp.body, resp.header("content-type"))? {
                    Manifest::Image { config_digest } => config_digest,
                    _ => return Ok(doc),
                }
            }
        };
        let target = format!("/v2/{repository}/blobs/{config_digest}");
        let resp = self
            .send(repository, Method::GET, &target, "*/*", true)
            .await?;
        if !resp.status.is_success() {
            return Err(OciError::Config {
                reason: self.refusal(&resp).await.to_string(),
                digest: config_digest,
            });
        }
        doc.config = Some(resp.body.to_vec());
        Ok(doc)
    }
}

/// Why a tag page was not read.
enum PageError {
    /// More tags than the room left under `limits.tags_per_repository`.
    TooMany,
    Json(serde_json::Error),
}

/// The `tags` of a tag-list page (`{"name": …, "tags": [...] | null}`), at most `room` of
/// them: one more is [`PageError::TooMany`], found while parsing.
fn parse_tag_page(body: &[u8], room: usize) -> Result<Vec<String>, PageError> {
    use serde::de::{DeserializeSeed, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use std::fmt;

    const TOO_MANY: &str = "image-updater: too many tags";

    struct Page(usize);
    struct Tags(usize);

    impl<'de> DeserializeSeed<'de> for Page {
        type Value = Vec<String>;
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
    }
    impl<'de> Visitor<'de> for Page {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a tag list object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut tags = Vec::new();
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if key == "tags" {
                    tags = map.next_value_seed(Tags(self.0))?;
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(tags)
        }
    }
    impl<'de> DeserializeSeed<'de> for Tags {
        type Value = Vec<String>;
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_option(self)
        }
    }
    impl<'de> Visitor<'de> for Tags {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list of tags or null")
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_seq(self)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(tag) = seq.next_element::<String>()? {
                if out.len() >= self.0 {
                    return Err(A::Error::custom(TOO_MANY));
                }
                out.push(tag);
            }
            Ok(out)
        }
    }

    let mut de = serde_json::Deserializer::from_slice(body);
    let tags = Page(room).deserialize(&mut de).and_then(|t| {
        de.end()?;
        Ok(t)
    });
    tags.map_err(|e| {
        if e.to_string().starts_with(TOO_MANY) {
            PageError::TooMany
        } else {
            PageError::Json(e)
        }
    })
}

impl TagSource for OciSource {
    fn list_tags<'a>(
        &'a self,
        repository: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, RegistryError>> {
        Box::pin(async move {
            self.tags(repository)
                .await
                .map_err(|e| self.error(repository, None, e))
        })
    }

    fn digest<'a>(
        &'a self,
        repository: &'a str,
        tag: &'a str,
    ) -> BoxFuture<'a, Result<String, RegistryError>> {
        Box::pin(async move {
            self.manifest_digest(repository, tag)
                .await
                .map_err(|e| self.error(repository, Some(&format!("tag {tag}")), e))
        })
    }

    fn platforms<'a>(
        &'a self,
        repository: &'a str,
        tag: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<String>>, RegistryError>> {
        Box::pin(async move {
            self.manifest_platforms(repository, tag)
                .await
                .map_err(|e| self.error(repository, Some(&format!("tag {tag}")), e))
        })
    }

    fn image_config<'a>(
        &'a self,
        repository: &'a str,
        tag: &'a str,
    ) -> BoxFuture<'a, Result<ImageDocument, RegistryError>> {
        Box::pin(async move {
            self.config_blob(repository, tag)
                .await
                .map_err(|m| self.error(repository, Some(&format!("tag {tag}")), m))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_urls_go_to_registry_1() {
        let options = Arc::new(Options {
            request_timeout: std::time::Duration::from_secs(1),
            deadline: tokio::time::Instant::now(),
            max_attempts: 1,
            backoff_base: std::time::Duration::from_millis(1),
            max_retry_after: std::time::Duration::from_secs(1),
            response_bytes: 1 << 20,
            tags_per_repository: 10,
        });
        let env = Arc::new(Env::default());
        for host in ["docker.io", "index.docker.io", "registry-1.docker.io"] {
            let s = OciSource::new(host, None, Path::new("/"), options.clone(), env.clone());
            assert_eq!(
                s.tags_url("library/nginx"),
                "https://registry-1.docker.io/v2/library/nginx/tags/list?n=1000"
            );
        }
        let (conc, rps) = default_limits("index.docker.io");
        assert!(conc <= 4 && rps.is_some_and(|r| r <= 10.0));
        assert_eq!(default_limits("ghcr.io"), (8, None));
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            endpoint("docker.io", None),
            ("registry-1.docker.io".into(), None)
        );
        assert_eq!(endpoint("index.docker.io", None).0, "registry-1.docker.io");
        assert_eq!(endpoint("ghcr.io", None), ("ghcr.io".into(), None));
        assert_eq!(
            endpoint("docker.io", Some("https://mirror.example/")),
            ("mirror.example".into(), Some("https"))
        );
        assert_eq!(
            endpoint("r.example", Some("http://127.0.0.1:5000")),
            ("127.0.0.1:5000".into(), Some("http"))
        );
    }
}
