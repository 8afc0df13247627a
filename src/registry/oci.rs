//! A registry speaking the OCI distribution API v2, through `oci-client`.
//!
//! Anonymous and Basic credentials (Bearer challenges are answered by `oci-client` with them);
//! TLS verified unless the host is `insecure`, where unverified TLS is tried first and plain
//! HTTP after it, as Docker does for insecure registries; tag lists paged with `n`/`last`
//! until a short page; at most `max_concurrency` requests in flight per registry.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::future::BoxFuture;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use tokio::sync::Semaphore;

use super::{RegistryError, TagSource};
use crate::config::RegistryConfig;

/// Tags asked for per page.
const PAGE: usize = 1000;
/// Requests in flight per registry unless configured.
const DEFAULT_CONCURRENCY: usize = 8;

pub struct OciSource {
    /// The host as written in manifests, for messages.
    host: String,
    /// The host queried (the `api` override, or `host`).
    endpoint: String,
    /// Clients to try in order; more than one only for insecure hosts (TLS, then HTTP).
    clients: Vec<Client>,
    /// Index into `clients` of the one that last reached the registry.
    working: AtomicUsize,
    auth: Result<RegistryAuth, String>,
    limit: Semaphore,
}

impl OciSource {
    pub fn new(host: &str, cfg: Option<&RegistryConfig>, root: &Path) -> OciSource {
        let endpoint = cfg
            .and_then(|c| c.api.clone())
            .map(|a| {
                a.trim_start_matches("https://")
                    .trim_start_matches("http://")
                    .trim_end_matches('/')
                    .to_string()
            })
            .unwrap_or_else(|| host.to_string());
        let insecure = cfg.is_some_and(|c| c.insecure);
        let mut problems = Vec::new();
        let extra_roots = match cfg.and_then(|c| c.ca_file.as_ref()) {
            Some(f) => match std::fs::read(root.join(f)) {
                Ok(data) => vec![Certificate {
                    encoding: CertificateEncoding::Pem,
                    data,
                }],
                Err(e) => {
                    problems.push(format!("ca_file {}: {e}", f.display()));
                    vec![]
                }
            },
            None => vec![],
        };
        let make = |protocol: ClientProtocol, accept_invalid: bool| {
            Client::new(ClientConfig {
                protocol,
                accept_invalid_certificates: accept_invalid,
                extra_root_certificates: extra_roots.clone(),
                user_agent: concat!("image-updater/", env!("CARGO_PKG_VERSION")),
                connect_timeout: Some(std::time::Duration::from_secs(10)),
                read_timeout: Some(std::time::Duration::from_secs(30)),
                ..Default::default()
            })
        };
        let mut clients = vec![make(ClientProtocol::Https, insecure)];
        if insecure {
            clients.push(make(
                ClientProtocol::HttpsExcept(vec![endpoint.clone()]),
                true,
            ));
        }
        let auth = match cfg.and_then(|c| c.credentials.as_ref()) {
            None => Ok(RegistryAuth::Anonymous),
            Some(c) => match (
                std::env::var(&c.username_env),
                std::env::var(&c.password_env),
            ) {
                (Ok(u), Ok(p)) => Ok(RegistryAuth::Basic(u, p)),
                (Err(_), _) => Err(format!(
                    "credentials.username_env names ${} but it is not set",
                    c.username_env
                )),
                (_, Err(_)) => Err(format!(
                    "credentials.password_env names ${} but it is not set",
                    c.password_env
                )),
            },
        };
        let auth = match problems.pop() {
            Some(p) => Err(p),
            None => auth,
        };
        let limit = cfg
            .and_then(|c| c.max_concurrency)
            .unwrap_or(DEFAULT_CONCURRENCY)
            .max(1);
        OciSource {
            host: host.to_string(),
            endpoint,
            clients,
            working: AtomicUsize::new(0),
            auth,
            limit: Semaphore::new(limit),
        }
    }

    fn error(&self, repository: &str, message: String) -> RegistryError {
        RegistryError {
            registry: self.host.clone(),
            repository: repository.to_string(),
            message,
        }
    }

    async fn page(
        &self,
        reference: &Reference,
        auth: &RegistryAuth,
        last: Option<&str>,
    ) -> Result<Vec<String>, OciDistributionError> {
        let first = self.working.load(Ordering::Relaxed);
        let mut result = Err(OciDistributionError::GenericError(None));
        for i in (first..self.clients.len()).chain(0..first) {
            let _permit = self.limit.acquire().await.expect("semaphore closed");
            result = self.clients[i]
                .list_tags(reference, auth, Some(PAGE), last)
                .await
                .map(|r| r.tags);
            match &result {
                Err(e) if is_transport(e) => continue,
                _ => {
                    self.working.store(i, Ordering::Relaxed);
                    break;
                }
            }
        }
        result
    }

    fn explain(&self, e: &OciDistributionError) -> String {
        match e {
            OciDistributionError::UnauthorizedError { .. } => match &self.auth {
                Ok(RegistryAuth::Anonymous) => format!(
                    "authentication required (HTTP 401): configure registries[].credentials for {}",
                    self.host
                ),
                _ => "authentication failed (HTTP 401): the registry refused the configured credentials".to_string(),
            },
            OciDistributionError::RegistryError { envelope, .. } => {
                let errs: Vec<String> = envelope
                    .errors
                    .iter()
                    .map(|e| format!("{:?}: {}", e.code, e.message))
                    .collect();
                format!("the registry answered: {}", errs.join("; "))
            }
            OciDistributionError::ServerError { code, message, .. } => {
                format!("the registry answered HTTP {code}: {}", message.trim())
            }
            other => {
                // reqwest errors carry the URL but never credentials; add the cause chain.
                let mut msg = other.to_string();
                let mut src = std::error::Error::source(other);
                while let Some(s) = src {
                    msg.push_str(": ");
                    msg.push_str(&s.to_string());
                    src = s.source();
                }
                msg
            }
        }
    }
}

fn is_transport(e: &OciDistributionError) -> bool {
    matches!(e, OciDistributionError::RequestError(err) if err.is_connect() || err.is_request() || err.is_timeout())
}

impl TagSource for OciSource {
    fn list_tags<'a>(
        &'a self,
        repository: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, RegistryError>> {
        Box::pin(async move {
            let auth = self.auth.clone().map_err(|m| self.error(repository, m))?;
            let reference = Reference::with_tag(
                self.endpoint.clone(),
                repository.to_string(),
                "latest".to_string(),
            );
            let mut tags: Vec<String> = Vec::new();
            let mut seen = std::collections::HashSet::new();
            let mut last: Option<String> = None;
            loop {
                let page = self
                    .page(&reference, &auth, last.as_deref())
                    .await
                    .map_err(|e| self.error(repository, self.explain(&e)))?;
                let n = page.len();
                let next = page.last().cloned();
                let before = tags.len();
                tags.extend(page.into_iter().filter(|t| seen.insert(t.clone())));
                // Done when the page is short (the last one), longer than asked (the registry
                // ignores `n` and sent everything, as distribution 2.8 does), or brought nothing new.
                if n != PAGE || tags.len() == before {
                    break;
                }
                last = next;
            }
            Ok(tags)
        })
    }
}
