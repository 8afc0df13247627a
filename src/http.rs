//! HTTP rules every client of the crate keeps (registries, token services, forge APIs):
//! which redirects are followed, how much of an answer is read, and how a server's error
//! answer is quoted in a message ([`error_text`]).
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

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::redirect::{Attempt, Policy};
use reqwest::Url;
use serde_json::Value;

/// Redirect hops followed at most within one origin.
pub const MAX_REDIRECTS: usize = 10;

/// The default of `limits.response_bytes`: 32 MiB per answer.
pub const DEFAULT_RESPONSE_BYTES: u64 = 32 * 1024 * 1024;

/// What a URL query or form encodes: everything but the unreserved characters.
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The longest stretch of a non-JSON error body quoted in a message, in characters.
const BODY_QUOTE: usize = 300;

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

/// Percent-encode what a URL query would: everything but unreserved characters, upper-case hex.
pub fn percent_encode(s: &str) -> String {
    utf8_percent_encode(s, QUERY).to_string()
}

/// `%XX` escapes decoded once; an invalid escape is kept as it is, and a result that is no
/// UTF-8 leaves `s` unchanged.
pub fn percent_decode(s: &str) -> String {
    percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .unwrap_or_else(|_| s.to_string())
}

/// What a server said in an error answer, for a message: the JSON shapes
/// [`response_message`] knows, else the body itself, trimmed and cut at 300 characters.
pub fn error_text(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    response_message(&text).unwrap_or_else(|| excerpt(&text))
}

/// The human part of a JSON error body. A registry's `{errors: [{code, message}]}` envelope
/// (`CODE: message; …`); GitHub `{message, errors: [{message}|{code, field}]}`, GitLab
/// `{message: "…" | ["…"] | {field: ["…"]}}` or `{error, error_description}`, Gitea
/// `{message}` or a list of binding errors. `None` when the body is not JSON or says nothing.
pub fn response_message(text: &str) -> Option<String> {
    let v: Value = serde_json::from_str(text).ok()?;
    let mut parts = Vec::new();
    match &v {
        Value::Object(o) if is_registry_envelope(o) => {
            if let Some(Value::Array(errs)) = o.get("errors") {
                let items: Vec<String> = errs.iter().filter_map(registry_error).collect();
                if !items.is_empty() {
                    return Some(items.join("; "));
                }
            }
        }
        Value::Object(o) => {
            if let Some(m) = o.get("message") {
                flatten(m, "", &mut parts);
            }
            for key in ["error", "error_description"] {
                if let Some(m) = o.get(key) {
                    flatten(m, "", &mut parts);
                }
            }
            if let Some(Value::Array(errs)) = o.get("errors") {
                let mut details = Vec::new();
                for e in errs {
                    match e {
                        Value::Object(eo) => {
                            if let Some(Value::String(m)) = eo.get("message") {
                                details.push(m.clone());
                            } else {
                                let field = eo.get("field").and_then(Value::as_str).unwrap_or("");
                                let code = eo.get("code").and_then(Value::as_str).unwrap_or("");
                                details.push(format!("{field} {code}").trim().to_string());
                            }
                        }
                        other => flatten(other, "", &mut details),
                    }
                }
                details.retain(|d| !d.is_empty());
                if !details.is_empty() {
                    parts.push(format!("({})", details.join("; ")));
                }
            }
        }
        other => flatten(other, "", &mut parts),
    }
    parts.retain(|p| !p.is_empty());
    if parts.is_empty() {
        None
    } else {
        Some(parts.join(" "))
    }
}

fn flatten(v: &Value, prefix: &str, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(format!("{prefix}{s}")),
        Value::Array(a) => {
            for x in a {
                flatten(x, prefix, out);
            }
        }
        Value::Object(o) => {
            if let Some(Value::String(m)) = o.get("message") {
                out.push(format!("{prefix}{m}"));
                return;
            }
            for (k, x) in o {
                flatten(x, &format!("{prefix}{k} "), out);
            }
        }
        Value::Null => {}
        other => out.push(format!("{prefix}{other}")),
    }
}

/// `text` trimmed, quoted (escapes and all) and cut at 300 characters.
pub fn quote(text: &str) -> String {
    let t = text.trim();
    match t.char_indices().nth(BODY_QUOTE) {
        Some((i, _)) => format!("{:?}…", &t[..i]),
        None => format!("{t:?}"),
    }
}

/// `text` trimmed and cut at 300 characters (`…` when cut), unquoted.
fn excerpt(text: &str) -> String {
    let text = text.trim();
    let mut short: String = text.chars().take(BODY_QUOTE).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    short
}

/// The OCI distribution error envelope: `errors` and none of the forges' top-level keys.
fn is_registry_envelope(o: &serde_json::Map<String, Value>) -> bool {
    matches!(o.get("errors"), Some(Value::Array(_)))
        && !["message", "error", "error_description"]
            .iter()
            .any(|k| o.contains_key(*k))
}

/// One item of a registry's `errors`: `CODE: message`, or whichever of the two it has.
fn registry_error(item: &Value) -> Option<String> {
    let text = |k: &str| {
        item.get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    match (text("code"), text("message")) {
        (c, m) if c.is_empty() && m.is_empty() => None,
        (c, m) if m.is_empty() => Some(c),
        (c, m) if c.is_empty() => Some(m),
        (c, m) => Some(format!("{c}: {m}")),
    }
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

    #[test]
    fn messages_of_each_forge_shape() {
        let gh = r#"{"message":"Validation Failed","errors":[{"resource":"PullRequest","code":"custom","message":"A pull request already exists for acme:b."}],"documentation_url":"x"}"#;
        assert_eq!(
            response_message(gh).unwrap(),
            "Validation Failed (A pull request already exists for acme:b.)"
        );
        let gh_field = r#"{"message":"Validation Failed","errors":[{"resource":"PullRequest","field":"base","code":"invalid"}]}"#;
        assert_eq!(
            response_message(gh_field).unwrap(),
            "Validation Failed (base invalid)"
        );
        let gl = r#"{"message":["Another open merge request already exists for this source branch: !38"]}"#;
        assert_eq!(
            response_message(gl).unwrap(),
            "Another open merge request already exists for this source branch: !38"
        );
        let gl_obj = r#"{"message":{"title":["is too long"]}}"#;
        assert_eq!(response_message(gl_obj).unwrap(), "title is too long");
        let gl_err = r#"{"error":"invalid_token","error_description":"Token was revoked."}"#;
        assert_eq!(
            response_message(gl_err).unwrap(),
            "invalid_token Token was revoked."
        );
        let gitea_binding =
            r#"[{"fieldNames":["Head"],"classification":"RequiredError","message":"Required"}]"#;
        assert_eq!(response_message(gitea_binding).unwrap(), "Required");
        assert_eq!(response_message("<html>"), None);
    }

    /// Registry envelopes read as `CODE: message; …`; a body that is no JSON is quoted as
    /// it is, trimmed and cut at 300 characters.
    #[test]
    fn error_text_of_registries_and_plain_bodies() {
        let reg = br#"{"errors":[{"code":"DENIED","message":"no"},{"code":"UNAUTHORIZED","message":"login","detail":{}}]}"#;
        assert_eq!(error_text(reg), "DENIED: no; UNAUTHORIZED: login");
        assert_eq!(error_text(br#"{"errors":[{"code":"UNKNOWN"}]}"#), "UNKNOWN");
        assert_eq!(error_text(br#"{"errors":[]}"#), r#"{"errors":[]}"#);
        assert_eq!(error_text(b"  bad gateway \n"), "bad gateway");
        let long = "x".repeat(400);
        assert_eq!(error_text(long.as_bytes()), format!("{}…", "x".repeat(300)));
        assert_eq!(
            error_text(br#"{"message":"Bad credentials"}"#),
            "Bad credentials"
        );
        assert_eq!(quote(" a\"b "), r#""a\"b""#);
        assert_eq!(quote(&long), format!("{:?}…", "x".repeat(300)));
    }
}
