//! One registry's HTTP: TLS settings, the scheme (HTTPS; plain HTTP only after it for an
//! `insecure` host), at most `max_concurrency` requests in flight, at most
//! `requests_per_second` started, and retries.
//!
//! Retries: on 429, 502, 503, 504, connection failures and resets, timeouts, bodies cut
//! short and JSON that does not parse; with exponential backoff and jitter, or after the
//! response's `Retry-After` (seconds or an HTTP date) when it is within
//! [`Options::max_retry_after`]; at most [`Options::max_attempts`] attempts. Every request
//! has a timeout, and nothing runs or waits past the run's deadline.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};

use crate::http::{read_body, BodyError};
use crate::secret::Secret;
use reqwest::{Method, StatusCode, Url};
use tokio::sync::{Mutex, Semaphore};
use tokio::time::Instant;

/// Limits and timing shared by every registry of a run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The longest one request (connect, headers and body) may take.
    pub request_timeout: Duration,
    /// When the run gives up on registries altogether.
    pub deadline: Instant,
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// The first backoff; it doubles per attempt (up to 16 times this), with jitter.
    pub backoff_base: Duration,
    /// A `Retry-After` longer than this is not waited for: the request fails at once.
    pub max_retry_after: Duration,
    /// The longest answer read (`limits.response_bytes`); a longer one fails the request.
    pub response_bytes: u64,
    /// Tags listed at most per repository (`limits.tags_per_repository`).
    pub tags_per_repository: usize,
}

/// A complete response.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// The URL that answered (after redirects).
    pub url: Url,
    /// What the request carried that must never be quoted: a server may echo the
    /// `Authorization` header, a token or a password back in its error body.
    pub secrets: Secrets,
}

/// The secret parts of a request; each is blanked out in every shape an echo may give it
/// ([`Secret::scrub`]).
#[derive(Debug, Clone, Default)]
pub struct Secrets(Vec<Secret>);

impl Secrets {
    /// The `Authorization` value, its credential (a bearer token, or Basic's base64 and the
    /// `user:password` in it, and each half), and form fields that are secrets.
    pub fn of(req: &Request<'_>) -> Secrets {
        let mut out: Vec<String> = Vec::new();
        if let Some(v) = req
            .headers
            .get(reqwest::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        {
            out.push(v.to_string());
            if let Some((scheme, cred)) = v.split_once(' ') {
                let cred = cred.trim();
                out.push(cred.to_string());
                if scheme.eq_ignore_ascii_case("basic") {
                    use base64::Engine;
                    let decoded = base64::engine::general_purpose::STANDARD
                        .decode(cred)
                        .ok()
                        .and_then(|d| String::from_utf8(d).ok());
                    if let Some(pair) = decoded {
                        if let Some((user, password)) = pair.split_once(':') {
                            out.push(user.to_string());
                            out.push(password.to_string());
                        }
                        out.push(pair);
                    }
                }
            }
        }
        for (k, v) in req.form.iter().flatten() {
            if matches!(*k, "password" | "refresh_token" | "access_token") {
                out.push(v.clone());
            }
        }
        // Short values (a user `git`, say) would blank out ordinary words; they are no secret.
        out.retain(|s| s.len() >= 6);
        out.sort();
        out.dedup();
        Secrets(out.into_iter().map(Secret::new).collect())
    }

    /// `text` with every secret replaced by `***`.
    pub fn scrub(&self, text: &str) -> String {
        crate::secret::scrub_all(&self.0, text)
    }
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The registry's error text: the `errors` envelope's codes and messages, else the body;
    /// whatever the request carried in secret is blanked out.
    pub fn error_text(&self) -> String {
        self.secrets.scrub(&crate::http::error_text(&self.body))
    }
}

/// What to send.
pub struct Request<'a> {
    pub method: Method,
    /// A path with query below the endpoint (`/v2/...`), or an absolute URL.
    pub target: &'a str,
    pub headers: HeaderMap,
    /// Form fields for a POST.
    pub form: Option<Vec<(&'a str, String)>>,
    /// A 200 whose body is not JSON is retried (a cut-off body through a proxy).
    pub expect_json: bool,
}

impl<'a> Request<'a> {
    pub fn get(target: &'a str) -> Request<'a> {
        Request {
            method: Method::GET,
            target,
            headers: HeaderMap::new(),
            form: None,
            expect_json: false,
        }
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Request<'a> {
        if let Ok(mut v) = HeaderValue::from_str(value) {
            if name.eq_ignore_ascii_case("authorization") {
                v.set_sensitive(true);
            }
            self.headers.insert(name, v);
        }
        self
    }
}

/// Spaces request starts at most `1/rate` apart.
struct Pacer {
    interval: Option<Duration>,
    next: Mutex<Instant>,
}

impl Pacer {
    async fn wait(&self) {
        let Some(interval) = self.interval else {
            return;
        };
        let slot = {
            let mut next = self.next.lock().await;
            let slot = (*next).max(Instant::now());
            *next = slot + interval;
            slot
        };
        let wait = slot.saturating_duration_since(Instant::now());
        if wait >= Duration::from_millis(1) {
            crate::observe::Counters::waited(wait);
            tracing::debug!(
                wait_ms = crate::observe::ms(wait),
                "waiting for registries[].requests_per_second"
            );
        }
        tokio::time::sleep_until(slot).await;
    }
}

pub struct Transport {
    client: reqwest::Client,
    endpoint: String,
    /// Schemes to try, in order; two only for an insecure host (`https`, then `http`).
    schemes: Vec<&'static str>,
    working: AtomicUsize,
    limit: Semaphore,
    pacer: Pacer,
    options: Arc<Options>,
    /// Requests sent (attempts), for tests and debugging.
    pub sent: AtomicU64,
}

/// TLS and pacing settings of one registry.
pub struct Settings {
    pub endpoint: String,
    pub schemes: Vec<&'static str>,
    pub accept_invalid_certs: bool,
    pub extra_roots: Vec<reqwest::Certificate>,
    pub max_concurrency: usize,
    pub requests_per_second: Option<f64>,
}

/// Why a request got no usable answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    /// The HTTP client could not be built (TLS settings, say).
    #[error("cannot set up HTTP: {}", chain(.0))]
    Setup(#[source] Arc<reqwest::Error>),
    /// The request failed in a way no retry mends: TLS refused, an answer over the size
    /// limit, a redirect refused, the run's deadline passed.
    #[error("{0}")]
    Fatal(String),
    /// A retryable answer whose `Retry-After` is longer than this run waits.
    #[error(
        "{what}; the registry asks to retry after {after_secs}s, longer than the {max_secs}s this run waits"
    )]
    RetryAfterTooLong {
        what: String,
        after_secs: u64,
        max_secs: u64,
    },
    /// Every attempt failed; `last` says how the last one did.
    #[error("{last} (gave up after {attempts} attempts)")]
    GaveUp { last: String, attempts: u32 },
    /// The run's deadline leaves no time for another attempt.
    #[error("{last} (the run's registry deadline leaves no time for attempt {next})")]
    OutOfTime { last: String, next: u32 },
}

enum Failure {
    /// Worth another attempt.
    Transient(String),
    /// Not worth another attempt.
    Fatal(String),
}

impl Transport {
    pub fn new(s: Settings, options: Arc<Options>) -> Result<Transport, TransportError> {
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("image-updater/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(options.request_timeout.min(Duration::from_secs(10)))
            .redirect(crate::http::redirect_policy(is_blob))
            .tls_danger_accept_invalid_certs(s.accept_invalid_certs);
        if !s.extra_roots.is_empty() {
            builder = builder.tls_certs_merge(s.extra_roots);
        }
        let client = builder
            .build()
            .map_err(|e| TransportError::Setup(Arc::new(e)))?;
        let interval = s
            .requests_per_second
            .filter(|r| r.is_finite() && *r > 0.0)
            .map(|r| Duration::from_secs_f64(1.0 / r));
        Ok(Transport {
            client,
            endpoint: s.endpoint,
            schemes: s.schemes,
            working: AtomicUsize::new(0),
            limit: Semaphore::new(s.max_concurrency.max(1)),
            pacer: Pacer {
                interval,
                next: Mutex::new(Instant::now()),
            },
            options,
            sent: AtomicU64::new(0),
        })
    }

    /// Tags listed at most per repository (`limits.tags_per_repository`).
    pub fn tags_per_repository(&self) -> usize {
        self.options.tags_per_repository
    }

    /// The base URL in use (`https://host`), for building absolute URLs in tests.
    pub fn base(&self) -> String {
        format!(
            "{}://{}",
            self.schemes[self.working.load(Ordering::Relaxed)],
            self.endpoint
        )
    }

    /// Send `req`, retrying as the module doc says. A non-retryable status (401, 404, …)
    /// is an `Ok` response; the caller decides what it means.
    pub async fn execute(&self, req: &Request<'_>) -> Result<Response, TransportError> {
        let o = &self.options;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let outcome = self.attempt(req).await;
            let (wait, last, cause) = match outcome {
                Ok(resp) if is_retryable(resp.status) => {
                    let what = format!(
                        "HTTP {}{}",
                        resp.status,
                        match resp.error_text() {
                            t if t.is_empty() => String::new(),
                            t => format!(": {t}"),
                        }
                    );
                    match retry_after(&resp.headers) {
                        Some(after) if after > o.max_retry_after => {
                            return Err(TransportError::RetryAfterTooLong {
                                what,
                                after_secs: after.as_secs(),
                                max_secs: o.max_retry_after.as_secs(),
                            });
                        }
                        Some(after) => (after, what, "Retry-After"),
                        None => (self.backoff(attempt), what, "backoff"),
                    }
                }
                Ok(resp) => {
                    if resp.status.is_success() && req.target.contains("/tags/list") {
                        crate::observe::Counters::add(&crate::observe::COUNTERS.tag_pages, 1);
                    }
                    return Ok(resp);
                }
                Err(Failure::Fatal(m)) => return Err(TransportError::Fatal(m)),
                Err(Failure::Transient(m)) => (self.backoff(attempt), m, "backoff"),
            };
            if attempt >= o.max_attempts {
                return Err(TransportError::GaveUp {
                    last,
                    attempts: attempt,
                });
            }
            if Instant::now() + wait >= o.deadline {
                return Err(TransportError::OutOfTime {
                    last,
                    next: attempt + 1,
                });
            }
            let url = self.shown(req.target);
            crate::observe::Counters::add(&crate::observe::COUNTERS.registry_retries, 1);
            crate::observe::Counters::waited(wait);
            tracing::debug!(
                url = %url,
                attempt,
                wait_ms = crate::observe::ms(wait),
                wait_for = cause,
                "retrying: {last}"
            );
            crate::observe::waiting(Some(format!(
                "retrying {url} in {:.1}s ({cause}) after {last}",
                wait.as_secs_f64()
            )));
            tokio::time::sleep(wait).await;
            crate::observe::waiting(None);
        }
    }

    /// `target` (a path below the endpoint, or a URL) as a URL fit to print ([`shown`]).
    fn shown(&self, target: &str) -> String {
        if target.starts_with("http://") || target.starts_with("https://") {
            shown(target)
        } else {
            shown(&format!("{}{target}", self.base()))
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let base = self.options.backoff_base * 2u32.pow(attempt.saturating_sub(1).min(4));
        // Equal jitter: half fixed, half random.
        let half = base / 2;
        half + half.mul_f64(fastrand::f64())
    }

    async fn attempt(&self, req: &Request<'_>) -> Result<Response, Failure> {
        let _permit = self.limit.acquire().await.expect("semaphore closed");
        self.pacer.wait().await;
        let first = self.working.load(Ordering::Relaxed);
        let absolute = req.target.starts_with("http://") || req.target.starts_with("https://");
        let order: Vec<usize> = if absolute {
            vec![first]
        } else {
            (first..self.schemes.len()).chain(0..first).collect()
        };
        let mut last = Failure::Fatal("no scheme to try".into());
        for (n, i) in order.iter().copied().enumerate() {
            let url = if absolute {
                req.target.to_string()
            } else {
                format!("{}://{}{}", self.schemes[i], self.endpoint, req.target)
            };
            let sent = Instant::now();
            let answer = self.once(req, &url).await;
            log_answer(req, &url, sent, &answer);
            match answer {
                Ok(r) => {
                    if !absolute {
                        self.working.store(i, Ordering::Relaxed);
                    }
                    return Ok(r);
                }
                // An insecure host: HTTPS did not connect, try plain HTTP next.
                Err((f, connect)) if connect && n + 1 < order.len() => last = f,
                Err((f, _)) => return Err(f),
            }
        }
        Err(last)
    }

    /// One request; the error says whether it failed to connect at all.
    async fn once(&self, req: &Request<'_>, url: &str) -> Result<Response, (Failure, bool)> {
        let o = &self.options;
        let now = Instant::now();
        if now >= o.deadline {
            return Err((
                Failure::Fatal("the run's registry deadline has passed".into()),
                false,
            ));
        }
        let left = o.deadline - now;
        let (timeout, by_deadline) = if left < o.request_timeout {
            (left, true)
        } else {
            (o.request_timeout, false)
        };
        let mut builder = self
            .client
            .request(req.method.clone(), url)
            .headers(req.headers.clone())
            .timeout(timeout);
        if let Some(form) = &req.form {
            builder = builder.form(form);
        }
        self.sent.fetch_add(1, Ordering::Relaxed);
        let secrets = Secrets::of(req);
        let work = async {
            let resp = builder.send().await.map_err(BodyError::Read)?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let url = resp.url().clone();
            let body = if req.method == Method::HEAD {
                Vec::new()
            } else {
                read_body(resp, o.response_bytes).await?
            };
            Ok::<_, BodyError>(Response {
                status,
                headers,
                body,
                url,
                secrets: secrets.clone(),
            })
        };
        let timed_out = || {
            if by_deadline {
                Failure::Fatal(format!(
                    "{} {}: the run's registry deadline passed while waiting for an answer",
                    req.method,
                    shown(url)
                ))
            } else {
                Failure::Transient(format!(
                    "{} {}: no complete answer within {}s",
                    req.method,
                    shown(url),
                    timeout.as_secs_f64()
                ))
            }
        };
        match tokio::time::timeout(timeout + Duration::from_millis(50), work).await {
            Err(_) => Err((timed_out(), false)),
            Ok(Err(e @ BodyError::TooLarge { .. })) => Err((
                Failure::Fatal(format!("{} {}: {e}", req.method, shown(url))),
                false,
            )),
            Ok(Err(BodyError::Read(e))) if e.is_timeout() => Err((timed_out(), false)),
            Ok(Err(BodyError::Read(e))) => {
                let (connect, fatal) = (e.is_connect(), e.is_builder() || e.is_redirect());
                // reqwest names the full URL, query and all (an `account=`); ours is shortened.
                // A failed redirect names its URL, which may carry what the server put there.
                let text = format!(
                    "{} {}: {}",
                    req.method,
                    shown(url),
                    secrets.scrub(&chain(&e.without_url()))
                );
                let lower = text.to_ascii_lowercase();
                if lower.contains("certificate") || lower.contains("unknownissuer") {
                    Err((
                        Failure::Fatal(format!(
                            "TLS certificate not trusted ({text}); set registries[].ca_file to the CA that signed it"
                        )),
                        connect,
                    ))
                } else if lower.contains("invalidcontenttype") || lower.contains("corrupt message")
                {
                    Err((
                        Failure::Fatal(format!(
                            "the registry does not answer TLS ({text}); if it serves plain HTTP, set registries[].insecure: true"
                        )),
                        connect,
                    ))
                } else if fatal {
                    Err((Failure::Fatal(text), false))
                } else {
                    Err((Failure::Transient(text), connect))
                }
            }
            Ok(Ok(r)) => {
                if req.expect_json
                    && r.status == StatusCode::OK
                    && serde_json::from_slice::<serde::de::IgnoredAny>(&r.body).is_err()
                {
                    return Err((
                        Failure::Transient(format!(
                            "{} {}: the answer is not complete JSON ({} bytes)",
                            req.method,
                            shown(url),
                            r.body.len()
                        )),
                        false,
                    ));
                }
                Ok(r)
            }
        }
    }
}

/// One line at `-vv` for each request sent: method, URL ([`shown`]: no user-info, no query),
/// status, time and size, or why it failed (scrubbed of what the request carried). The request
/// and the bytes read are counted for the `resolve` line at `-v`.
fn log_answer(
    req: &Request<'_>,
    url: &str,
    sent: Instant,
    answer: &Result<Response, (Failure, bool)>,
) {
    let ms = crate::observe::ms(sent.elapsed());
    crate::observe::Counters::add(&crate::observe::COUNTERS.registry_requests, 1);
    match answer {
        Ok(r) => {
            crate::observe::Counters::add(
                &crate::observe::COUNTERS.registry_bytes,
                r.body.len() as u64,
            );
            tracing::debug!(
                status = r.status.as_u16(),
                ms,
                bytes = r.body.len(),
                "{} {}",
                req.method,
                shown(url)
            );
        }
        Err((Failure::Transient(e) | Failure::Fatal(e), _)) => {
            tracing::debug!(ms, error = %e, "{} {}", req.method, shown(url));
        }
    }
}

/// A registry may send a blob download to storage on another host (a CDN, S3); nothing else.
fn is_blob(url: &Url) -> bool {
    url.path().contains("/blobs/")
}

/// `url` as printed in messages: user-info and query left out (see [`crate::http::display_url`]).
fn shown(url: &str) -> String {
    Url::parse(url)
        .map(|u| crate::http::display_url(&u))
        .unwrap_or_else(|_| url.split('?').next().unwrap_or("").to_string())
}

fn is_retryable(s: StatusCode) -> bool {
    matches!(s.as_u16(), 429 | 502 | 503 | 504)
}

/// `Retry-After` as a delay: delta-seconds or an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get("retry-after")?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// An error and its causes, one after the other.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string();
        if !msg.contains(&t) {
            msg.push_str(": ");
            msg.push_str(&t);
        }
        src = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A registry that echoes the request's credentials in its error body: they are blanked
    /// out of the error text (the Basic header, its base64, the user and password, encoded too).
    #[test]
    fn echoed_credentials_are_scrubbed_from_error_text() {
        let basic = "Basic dXNlci0xMjM0OmhvdW5kLXBhc3N3b3JkLTk5";
        let req = Request::get("/v2/").header("Authorization", basic);
        let secrets = Secrets::of(&req);
        let body = format!(
            r#"{{"errors":[{{"code":"DENIED","message":"you sent {basic}, i.e. user-1234:hound-password-99 (hound-password-99, %3Ahound-password-99)"}}]}}"#
        );
        let resp = Response {
            status: StatusCode::UNAUTHORIZED,
            headers: HeaderMap::new(),
            body: body.into_bytes(),
            url: Url::parse("http://r.example/v2/").unwrap(),
            secrets,
        };
        let text = resp.error_text();
        assert!(!text.contains("hound-password-99"), "{text}");
        assert!(!text.contains("dXNlci0xMjM0"), "{text}");
        assert!(!text.contains("user-1234"), "{text}");
        assert!(text.starts_with("DENIED: you sent ***"), "{text}");
        let bearer = Request::get("/v2/").header("Authorization", "Bearer tok.en-secret");
        assert_eq!(
            Secrets::of(&bearer).scrub("token tok.en-secret echoed"),
            "token *** echoed"
        );
    }

    /// Passwords that look like URL syntax, sent in a Basic header, are blanked out in every
    /// shape an echo may take: raw, percent-encoded (either case, a space as `+`), decoded.
    #[test]
    fn url_shaped_passwords_are_scrubbed_in_every_encoding() {
        use base64::Engine;
        let cases = [
            (
                "pa/ss-word@1",
                ["pa%2Fss-word%401", "pa%2fss-word%401", "pa/ss-word@1"],
            ),
            (
                "pass%2Fword-2",
                ["pass%252Fword-2", "pass%2Fword-2", "pass/word-2"],
            ),
            (
                "p@ss word/3",
                ["p%40ss%20word%2F3", "p%40ss+word%2F3", "p%40ss%20word%2f3"],
            ),
        ];
        for (pass, shapes) in cases {
            let basic =
                base64::engine::general_purpose::STANDARD.encode(format!("someuser:{pass}"));
            let req = Request::get("/v2/").header("Authorization", &format!("Basic {basic}"));
            let secrets = Secrets::of(&req);
            for echo in std::iter::once(pass).chain(shapes) {
                let text = secrets.scrub(&format!("denied: password={echo};"));
                assert_eq!(text, "denied: password=***;", "{pass} as {echo}");
            }
        }
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        let later = std::time::SystemTime::now() + Duration::from_secs(30);
        h.insert(
            "retry-after",
            HeaderValue::from_str(&httpdate::fmt_http_date(later)).unwrap(),
        );
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(30),
            "{d:?}"
        );
        h.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }
}
