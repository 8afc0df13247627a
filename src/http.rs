//! HTTP rules every client of the crate keeps (registries, token services, forge APIs):
//! which redirects are followed, and how much of an answer is read.
//!
//! - **Redirects** are followed only within one origin (scheme, host and port), at most
//!   [`MAX_REDIRECTS`] times. reqwest strips only the standard credential headers
//!   (`Authorization`, `Cookie`) on a cross-host redirect; a forge's `PRIVATE-TOKEN` or any
//!   other header we set would travel on. So a redirect to another origin is refused with an
//!   error naming where it pointed (user-info removed), except for a registry blob download,
//!   which registries legitimately send to storage elsewhere, and which then carries no
//!   credential (reqwest drops `Authorization`, the only one a registry request has).
//! - **Bodies** are read up to a cap (`limits.response_bytes`); a longer answer is an error,
//!   found from `Content-Length` before reading or while streaming, never after buffering it.

use std::fmt;

use reqwest::redirect::{Attempt, Policy};
use reqwest::Url;

/// Redirect hops followed at most within one origin.
pub const MAX_REDIRECTS: usize = 10;

/// The default of `limits.response_bytes`: 32 MiB per answer.
pub const DEFAULT_RESPONSE_BYTES: u64 = 32 * 1024 * 1024;

/// Whether `a` and `b` share scheme, host and port (the port a scheme implies included).
pub fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme().eq_ignore_ascii_case(b.scheme())
        && a.host_str().map(str::to_ascii_lowercase) == b.host_str().map(str::to_ascii_lowercase)
        && a.port_or_known_default() == b.port_or_known_default()
}

/// `url` as it may be printed: no user-info, no query (which may hold an `account=` or a
/// token), no fragment.
pub fn display_url(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

/// A redirect to another origin, refused.
#[derive(Debug)]
pub struct CrossOriginRedirect {
    pub from: String,
    pub to: String,
}

impl fmt::Display for CrossOriginRedirect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "redirected from {} to another host ({}); not followed, so no credential goes there",
            self.from, self.to
        )
    }
}

impl std::error::Error for CrossOriginRedirect {}

/// The redirect policy of a client: same-origin hops only, unless `cross_origin_ok` says the
/// first URL of the chain may be sent elsewhere.
pub fn redirect_policy(cross_origin_ok: fn(&Url) -> bool) -> Policy {
    Policy::custom(move |attempt: Attempt| {
        let Some(first) = attempt.previous().first().cloned() else {
            return attempt.follow();
        };
        if attempt.previous().len() > MAX_REDIRECTS {
            return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
        }
        let last = attempt.previous().last().cloned().unwrap_or(first.clone());
        if same_origin(attempt.url(), &last) || cross_origin_ok(&first) {
            attempt.follow()
        } else {
            let err = CrossOriginRedirect {
                from: display_url(&last),
                to: display_url(attempt.url()),
            };
            attempt.error(err)
        }
    })
}

/// Why a body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// Longer than the cap; `declared` when `Content-Length` said so up front.
    TooLarge {
        limit: u64,
        declared: Option<u64>,
    },
    Read(reqwest::Error),
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::TooLarge {
                limit,
                declared: Some(n),
            } => write!(
                f,
                "the answer is {n} bytes, over the limit of {limit} (limits.response_bytes)"
            ),
            BodyError::TooLarge { limit, .. } => write!(
                f,
                "the answer is over the limit of {limit} bytes (limits.response_bytes); stopped reading"
            ),
            BodyError::Read(e) => write!(f, "{e}"),
        }
    }
}

/// The whole body of `resp`, or an error as soon as it is known to exceed `limit` bytes.
pub async fn read_body(mut resp: reqwest::Response, limit: u64) -> Result<Vec<u8>, BodyError> {
    let declared = resp.content_length();
    if let Some(n) = declared.filter(|n| *n > limit) {
        return Err(BodyError::TooLarge {
            limit,
            declared: Some(n),
        });
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(0).min(1 << 20) as usize);
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Read)? {
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(BodyError::TooLarge {
                limit,
                declared: None,
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let u = |s: &str| Url::parse(s).unwrap();
        assert!(same_origin(
            &u("https://a.example/x"),
            &u("https://A.example:443/y")
        ));
        assert!(!same_origin(
            &u("https://a.example/"),
            &u("http://a.example/")
        ));
        assert!(!same_origin(
            &u("http://127.0.0.1:1/"),
            &u("http://127.0.0.1:2/")
        ));
        assert!(!same_origin(
            &u("https://a.example/"),
            &u("https://b.example/")
        ));
    }

    #[test]
    fn urls_print_without_userinfo_or_query() {
        let u = Url::parse("https://bot:pa%2Fss@h.example:8443/token?account=bot&x=1#f").unwrap();
        assert_eq!(display_url(&u), "https://h.example:8443/token");
    }
}
