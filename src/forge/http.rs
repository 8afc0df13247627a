//! The HTTP plumbing the forge modules share: one client per forge, the auth header, JSON in
//! and out, and errors that quote the forge's answer with the token scrubbed out.

use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{ForgeError, ForgeKind, Secret};
use crate::http::{quote, response_message};

/// The `User-Agent` of every request (GitHub refuses requests without one).
pub(crate) const USER_AGENT: &str = concat!("image-updater/", env!("CARGO_PKG_VERSION"));

/// How long the answer to one call may take.
const TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) struct Api {
    client: reqwest::Client,
    base: String,
    kind: ForgeKind,
    token: Secret,
    /// Query parameters every request carries.
    fixed_query: &'static [(&'static str, &'static str)],
}

impl Api {
    /// `base` is the API root (`https://api.github.com`, `https://host/api/v4`, …); `auth` the
    /// header that carries the token, `headers` the forge's fixed extra headers.
    pub(crate) fn new(
        kind: ForgeKind,
        base: &str,
        token: Secret,
        auth: (HeaderName, String),
        headers: &[(&'static str, &'static str)],
    ) -> Result<Api, ForgeError> {
        let base = base.trim().trim_end_matches('/').to_string();
        let parsed = reqwest::Url::parse(&base).map_err(|e| {
            ForgeError::setup(format!(
                "{} API URL {:?} is not a URL: {e}",
                kind.name(),
                token.scrub(&base)
            ))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ForgeError::setup(format!(
                "{} API URL {base:?} must start with https:// (or http://)",
                kind.name()
            )));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(ForgeError::setup(format!(
                "{} API URL must not carry credentials; put the token in IMAGE_UPDATER_FORGE_TOKEN",
                kind.name()
            )));
        }
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, HeaderValue::from_static(v));
        }
        let mut value = HeaderValue::from_str(&auth.1).map_err(|_| {
            ForgeError::setup(format!(
                "the {} token contains characters that cannot go in an HTTP header",
                kind.name()
            ))
        })?;
        value.set_sensitive(true);
        map.insert(auth.0, value);
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .default_headers(map)
            .timeout(TIMEOUT)
            .connect_timeout(Duration::from_secs(10))
            // The token header (`PRIVATE-TOKEN` on GitLab) would follow a redirect to any host.
            .redirect(crate::http::redirect_policy(|_| false))
            .build()
            .map_err(|e| ForgeError::setup(format!("cannot build an HTTP client: {e}")))?;
        Ok(Api {
            client,
            base,
            kind,
            token,
            fixed_query: &[],
        })
    }

    /// The same client, adding `query` to every request (Azure DevOps' `api-version`).
    pub(crate) fn with_query(mut self, query: &'static [(&'static str, &'static str)]) -> Api {
        self.fixed_query = query;
        self
    }

    /// Call `path` (relative to the API root, or an absolute URL) and decode the JSON answer.
    pub(crate) async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<T, ForgeError> {
        let (status, text) = self.call(method.clone(), path, query, body).await?;
        let text = if text.trim().is_empty() {
            "null"
        } else {
            &text
        };
        serde_json::from_str(text).map_err(|e| {
            self.error(
                Some(status),
                &method,
                path,
                &format!("unexpected answer ({e}): {}", quote(text)),
            )
        })
    }

    /// Call `path` and ignore what comes back, as long as it is a success.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(), ForgeError> {
        self.call(method, path, &[], body).await.map(|_| ())
    }

    /// One request: the status and body of a success, or an error quoting the forge's answer.
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<(u16, String), ForgeError> {
        let started = std::time::Instant::now();
        let result = self.call_once(method.clone(), path, query, body).await;
        crate::observe::Counters::add(&crate::observe::COUNTERS.forge_calls, 1);
        // One line at `-vv`: the path as errors show it (below the API root, no query), never
        // the token; an absolute URL (a next page) without user-info or query.
        let shown = match reqwest::Url::parse(path) {
            Ok(u) => crate::http::display_url(&u),
            Err(_) => path.split('?').next().unwrap_or_default().to_string(),
        };
        let shown = self.token.scrub(&shown);
        let ms = crate::observe::ms_since(started);
        match &result {
            Ok((status, text)) => tracing::debug!(
                status,
                ms,
                bytes = text.len(),
                "{} API {method} {shown}",
                self.kind.name()
            ),
            Err(e) => tracing::debug!(ms, error = %e, "{} API {method} {shown}", self.kind.name()),
        }
        result
    }

    async fn call_once(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<(u16, String), ForgeError> {
        let url = if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        };
        let mut req = self.client.request(method.clone(), &url);
        if !query.is_empty() {
            req = req.query(query);
        }
        if !self.fixed_query.is_empty() && !url.contains('?') {
            req = req.query(self.fixed_query);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| {
            let e = e.without_url();
            let mut msg = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                msg.push_str(": ");
                msg.push_str(&s.to_string());
                source = s.source();
            }
            self.error(None, &method, path, &msg)
        })?;
        let status = resp.status();
        let body = crate::http::read_body(resp, crate::http::DEFAULT_RESPONSE_BYTES)
            .await
            .map_err(|e| {
                self.error(
                    Some(status.as_u16()),
                    &method,
                    path,
                    &format!("reading the answer: {e}"),
                )
            })?;
        let text = String::from_utf8_lossy(&body).into_owned();
        if status.is_success() {
            Ok((status.as_u16(), text))
        } else {
            let reason = status.canonical_reason().unwrap_or("");
            let detail = match response_message(&text) {
                Some(m) => format!("{reason}: {m}"),
                None if text.trim().is_empty() => reason.to_string(),
                None => format!("{reason}: {}", quote(&text)),
            };
            Err(self.error(Some(status.as_u16()), &method, path, &detail))
        }
    }

    /// `GitHub API POST /repos/a/b/pulls: 422 Unprocessable Entity: Validation Failed (…)`.
    pub(crate) fn error(
        &self,
        status: Option<u16>,
        method: &Method,
        path: &str,
        detail: &str,
    ) -> ForgeError {
        let path = path.strip_prefix(&self.base).unwrap_or(path);
        let msg = match status {
            Some(s) => format!("{} API {method} {path}: {s} {detail}", self.kind.name()),
            None => format!("{} API {method} {path}: {detail}", self.kind.name()),
        };
        ForgeError::new(status, self.token.scrub(&msg))
    }
}

/// The bytes a path segment keeps as they are: RFC 3986's unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encode one path segment (a branch name, a GitLab project path).
pub(crate) fn encode_segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_encoded() {
        assert_eq!(encode_segment("group/sub/app"), "group%2Fsub%2Fapp");
        assert_eq!(encode_segment("a b+c"), "a%20b%2Bc");
        assert_eq!(encode_segment("Az09-._~"), "Az09-._~");
        assert_eq!(encode_segment("é%"), "%C3%A9%25");
    }
}
