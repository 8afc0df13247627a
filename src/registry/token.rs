//! The registry's challenge (`WWW-Authenticate`) and its answer: Basic credentials, or a
//! Bearer token from the realm's token service, anonymous or with credentials (an identity
//! token is exchanged by OAuth2's `refresh_token` grant, as Docker does).
//!
//! Tokens are cached per scope (each [`Authorizer`] serves one registry) until shortly before
//! they expire; a 401 with a cached token drops it and fetches a new one once. Once a
//! registry has challenged, later repositories get their token before the first request.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use reqwest::{Method, Url};
use tokio::time::Instant;

use super::auth::{Credential, Found};
use super::transport::{Request, Response, Transport, TransportError};
use crate::secret::Secret;

/// What a registry asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parse the challenges of a 401 (`WWW-Authenticate` may repeat); Bearer is preferred.
pub fn parse_challenges(resp: &Response) -> Option<Challenge> {
    let mut found = None;
    for v in resp.headers.get_all("www-authenticate") {
        let Ok(v) = v.to_str() else { continue };
        match parse_challenge(v) {
            Some(c @ Challenge::Bearer { .. }) => return Some(c),
            Some(c) => found = Some(c),
            None => {}
        }
    }
    found
}

/// One `WWW-Authenticate` value: `Bearer realm="…",service="…",scope="…"` or `Basic realm=…`.
pub fn parse_challenge(value: &str) -> Option<Challenge> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = parse_params(rest);
    let get = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    Some(Challenge::Bearer {
        realm: get("realm")?,
        service: get("service"),
        scope: get("scope"),
    })
}

/// `k=v, k="quoted, with commas"` pairs.
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if chars.next().is_none() {
            return out;
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            val.push(n);
                        }
                    }
                    '"' => break,
                    c => val.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                val.push(c);
                chars.next();
            }
        }
        out.push((key.trim().to_string(), val.trim().to_string()));
    }
}

/// Why no token was had from the registry's token service.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the registry's token realm {realm:?} is not a URL: {source}")]
    RealmNotUrl {
        realm: String,
        #[source]
        source: url::ParseError,
    },
    /// The request to the token service failed.
    #[error("token service {host}: {source}")]
    Request {
        host: String,
        #[source]
        source: TransportError,
    },
    /// 401 or 403 with credentials from `from`.
    #[error(
        "authentication failed (HTTP {status}): the token service {realm} refused the credentials from {from}"
    )]
    Refused {
        status: u16,
        realm: String,
        from: String,
    },
    /// 401 or 403 without credentials.
    #[error(
        "authentication required (HTTP {status}): the token service {realm} refused anonymous access; configure credentials"
    )]
    Anonymous { status: u16, realm: String },
    /// Another non-success answer; `text` is what it said ([`Response::error_text`]).
    #[error("token service {realm} answered HTTP {status}: {text}")]
    Status {
        realm: String,
        status: reqwest::StatusCode,
        text: String,
    },
    #[error("token service {realm}: unreadable answer: {source}")]
    Unreadable {
        realm: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("token service {realm}: the answer holds no token")]
    NoToken { realm: String },
}

struct Token {
    value: Secret,
    expires: Instant,
}

/// Answers one registry's challenges.
pub struct Authorizer {
    found: Option<Found>,
    challenge: std::sync::Mutex<Option<Challenge>>,
    /// One slot per scope, each locked while its token is fetched (so it is fetched once).
    tokens: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Token>>>>>,
    /// Token requests made, for tests.
    pub fetched: std::sync::atomic::AtomicU64,
}

impl Authorizer {
    pub fn new(found: Option<Found>) -> Authorizer {
        Authorizer {
            found,
            challenge: Default::default(),
            tokens: Default::default(),
            fetched: Default::default(),
        }
    }

    /// Where the credentials came from, if any.
    pub fn source(&self) -> Option<&str> {
        self.found.as_ref().map(|f| f.source.as_str())
    }

    fn slot(&self, scope: &str) -> Arc<tokio::sync::Mutex<Option<Token>>> {
        self.tokens
            .lock()
            .expect("token map poisoned")
            .entry(scope.to_string())
            .or_default()
            .clone()
    }

    /// The `Authorization` header for a request in `scope`, as far as the registry's
    /// challenge is known (none before the first challenge).
    pub async fn authorization(
        &self,
        transport: &Transport,
        scope: &str,
    ) -> Result<Option<String>, TokenError> {
        let challenge = self.challenge.lock().expect("poisoned").clone();
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(self.basic_header()),
            Some(Challenge::Bearer {
                realm,
                service,
                scope: asked,
            }) => {
                let slot = self.slot(scope);
                let mut held = slot.lock().await;
                if let Some(t) = held.as_ref() {
                    if t.expires > Instant::now() {
                        return Ok(Some(format!("Bearer {}", t.value.expose())));
                    }
                }
                // The challenge's own scope only when it was about this scope's repository.
                let want = asked
                    .filter(|a| a.starts_with(&format!("{}:", scope.trim_end_matches(":pull"))))
                    .unwrap_or_else(|| scope.to_string());
                let token = self
                    .fetch(transport, &realm, service.as_deref(), &want)
                    .await?;
                let header = format!("Bearer {}", token.value.expose());
                *held = Some(token);
                Ok(Some(header))
            }
        }
    }

    /// Learn from a 401: remember its challenge and drop the token for `scope`. True when
    /// another attempt can succeed where this one did not.
    pub async fn unauthorized(&self, resp: &Response, scope: &str, sent: bool) -> bool {
        let Some(challenge) = parse_challenges(resp) else {
            return false;
        };
        *self.challenge.lock().expect("poisoned") = Some(challenge.clone());
        match challenge {
            Challenge::Basic => !sent && self.basic_header().is_some(),
            Challenge::Bearer { .. } => {
                // No token yet, or one the registry no longer takes (expired early, revoked):
                // fetch a new one. The caller retries once, so a refusal is not looped on.
                *self.slot(scope).lock().await = None;
                true
            }
        }
    }

    fn basic_header(&self) -> Option<String> {
        match &self.found.as_ref()?.credential {
            Credential::Basic { username, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{}", password.expose()))
            )),
            Credential::IdentityToken(_) => None,
        }
    }

    async fn fetch(
        &self,
        transport: &Transport,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<Token, TokenError> {
        self.fetched
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut url = Url::parse(realm).map_err(|source| TokenError::RealmNotUrl {
            realm: realm.to_string(),
            source,
        })?;
        let req = match self.found.as_ref().map(|f| &f.credential) {
            Some(Credential::IdentityToken(refresh)) => {
                let mut form = vec![
                    ("grant_type", "refresh_token".to_string()),
                    ("refresh_token", refresh.expose().to_string()),
                    ("client_id", "image-updater".to_string()),
                    ("scope", scope.to_string()),
                ];
                if let Some(s) = service {
                    form.push(("service", s.to_string()));
                }
                (url.to_string(), Method::POST, Some(form))
            }
            other => {
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(s) = service {
                        q.append_pair("service", s);
                    }
                    q.append_pair("scope", scope);
                    if let Some(Credential::Basic { username, .. }) = other {
                        q.append_pair("account", username);
                    }
                }
                (url.to_string(), Method::GET, None)
            }
        };
        let (target, method, form) = req;
        let mut request = Request::get(&target);
        request.method = method;
        request.form = form;
        request.expect_json = true;
        if let Some(h) = self.basic_header() {
            request = request.header("authorization", &h);
        }
        let resp = transport
            .execute(&request)
            .await
            .map_err(|source| TokenError::Request {
                host: url.host_str().unwrap_or_default().to_string(),
                source,
            })?;
        let realm_short = format!("{}{}", resp.url.host_str().unwrap_or(""), resp.url.path());
        if resp.status == 401 || resp.status == 403 {
            let status = resp.status.as_u16();
            return Err(match self.source() {
                Some(src) => TokenError::Refused {
                    status,
                    realm: realm_short,
                    from: src.to_string(),
                },
                None => TokenError::Anonymous {
                    status,
                    realm: realm_short,
                },
            });
        }
        if !resp.status.is_success() {
            return Err(TokenError::Status {
                realm: realm_short,
                status: resp.status,
                text: resp.error_text(),
            });
        }
        #[derive(serde::Deserialize)]
        struct Answer {
            #[serde(default)]
            token: Option<String>,
            #[serde(default)]
            access_token: Option<String>,
            #[serde(default)]
            expires_in: Option<u64>,
        }
        let a: Answer =
            serde_json::from_slice(&resp.body).map_err(|source| TokenError::Unreadable {
                realm: realm_short.clone(),
                source,
            })?;
        let value = a
            .token
            .filter(|t| !t.is_empty())
            .or(a.access_token)
            .filter(|t| !t.is_empty())
            .ok_or(TokenError::NoToken { realm: realm_short })?;
        // The spec's default lifetime is 60 s; renew a little early.
        let life = a.expires_in.unwrap_or(60).max(1);
        let keep = Duration::from_secs(life.saturating_sub((life / 10).max(1)).max(1));
        Ok(Token {
            value: Secret::new(value),
            expires: Instant::now() + keep,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/nginx:pull,push".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"bearer realm=http://x/token"#),
            Some(Challenge::Bearer {
                realm: "http://x/token".into(),
                service: None,
                scope: None
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge(r#"Bearer service="x""#), None);
    }
}
