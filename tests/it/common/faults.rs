//! A fault-injecting HTTP proxy in front of the real registry. Each request is forwarded
//! (method, path, `Authorization`, `Accept`) and answered with the registry's status,
//! headers and body, unless a fault was queued for a path containing some text: then the
//! next queued fault answers instead. It counts what it saw: requests, the most in flight
//! at once, and when each started — so tests can check retries and limits where they
//! happen, on the wire.

use std::collections::VecDeque;
use std::io::{BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::http::{read_headers, read_line};
use super::{try_http_request, wait_until_for};

/// What to do instead of forwarding.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status (and `Retry-After`, if given) and a small error body.
    Status(u16, Option<String>),
    /// Close the connection without answering.
    Close,
    /// Wait this long, then close without answering.
    Stall(Duration),
    /// Forward, but send only half the body (with the full `Content-Length`), then close.
    Truncate,
    /// Forward, but replace the body with half of it (a complete response of broken JSON).
    HalfJson,
    /// Forward without the `Docker-Content-Digest` header.
    NoDigestHeader,
}

#[derive(Default)]
struct Shared {
    faults: Mutex<Vec<(String, VecDeque<Fault>)>>,
    requests: Mutex<Vec<(Instant, String)>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    delay: Mutex<Duration>,
}

pub struct FaultProxy {
    pub addr: String,
    shared: Arc<Shared>,
}

impl FaultProxy {
    pub fn start(upstream: &str) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fault proxy");
        let addr = listener.local_addr().unwrap().to_string();
        let shared = Arc::new(Shared::default());
        let (s, upstream) = (shared.clone(), upstream.to_string());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (s, upstream) = (s.clone(), upstream.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, &upstream, &s);
                });
            }
        });
        let probe = addr.clone();
        wait_until_for("the fault proxy", Duration::from_secs(10), || {
            TcpStream::connect(&probe).is_ok()
        });
        FaultProxy { addr, shared }
    }

    /// Answer the next requests whose path contains `path_part` with `faults`, in order.
    pub fn inject(&self, path_part: &str, faults: impl IntoIterator<Item = Fault>) {
        self.shared
            .faults
            .lock()
            .unwrap()
            .push((path_part.to_string(), faults.into_iter().collect()));
    }

    /// Hold every forwarded request this long before forwarding (makes concurrency visible).
    pub fn set_delay(&self, d: Duration) {
        *self.shared.delay.lock().unwrap() = d;
    }

    /// Request lines (`GET /v2/...`) seen, in arrival order.
    pub fn requests(&self) -> Vec<String> {
        self.shared
            .requests
            .lock()
            .unwrap()
            .iter()
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// When each request arrived.
    pub fn arrivals(&self) -> Vec<Instant> {
        self.shared
            .requests
            .lock()
            .unwrap()
            .iter()
            .map(|(t, _)| *t)
            .collect()
    }

    /// The most requests that were in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// Count of requests whose line contains `part`.
    pub fn count(&self, part: &str) -> usize {
        self.requests().iter().filter(|r| r.contains(part)).count()
    }
}

struct InFlight<'a>(&'a Shared);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

fn serve(stream: TcpStream, upstream: &str, shared: &Shared) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    loop {
        // Keep-alive: serve requests on this connection until the client closes it.
        let Ok(line) = read_line(&mut reader) else {
            return Ok(());
        };
        let headers = read_headers(&mut reader)?;
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        let _guard = InFlight(shared);
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let mut parts = line.split_whitespace();
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
        shared
            .requests
            .lock()
            .unwrap()
            .push((Instant::now(), format!("{method} {target}")));
        let fault = {
            let mut faults = shared.faults.lock().unwrap();
            faults
                .iter_mut()
                .find(|(p, q)| target.contains(p.as_str()) && !q.is_empty())
                .and_then(|(_, q)| q.pop_front())
        };
        let mut out = stream.try_clone()?;
        match fault {
            Some(Fault::Status(code, retry_after)) => {
                let mut extra = Vec::new();
                if let Some(r) = retry_after {
                    extra.push(format!("Retry-After: {r}"));
                }
                let body = format!(
                    r#"{{"errors":[{{"code":"TOOMANYREQUESTS","message":"injected {code}"}}]}}"#
                );
                respond(&mut out, code, &extra, body.as_bytes(), None, method)?;
                continue;
            }
            Some(Fault::Close) => {
                let _ = out.shutdown(Shutdown::Both);
                return Ok(());
            }
            Some(Fault::Stall(d)) => {
                std::thread::sleep(d);
                let _ = out.shutdown(Shutdown::Both);
                return Ok(());
            }
            _ => {}
        }
        let delay = *shared.delay.lock().unwrap();
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        let forward: Vec<(&str, &str)> = headers
            .iter()
            .filter(|(k, _)| {
                k.eq_ignore_ascii_case("authorization") || k.eq_ignore_ascii_case("accept")
            })
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let r = match try_http_request(upstream, method, target, &forward, b"") {
            Ok(r) => r,
            Err(_) => {
                let _ = out.shutdown(Shutdown::Both);
                return Ok(());
            }
        };
        let strip_digest = matches!(fault, Some(Fault::NoDigestHeader));
        let extra: Vec<String> = r
            .headers
            .iter()
            .filter(|(k, _)| {
                let hop = [
                    "content-length",
                    "connection",
                    "transfer-encoding",
                    "keep-alive",
                ]
                .iter()
                .any(|h| k.eq_ignore_ascii_case(h));
                let stripped = strip_digest && k.eq_ignore_ascii_case("docker-content-digest");
                !hop && !stripped
            })
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        match fault {
            Some(Fault::Truncate) => {
                let half = &r.body[..r.body.len() / 2];
                respond(&mut out, r.status, &extra, half, Some(r.body.len()), method)?;
                let _ = out.shutdown(Shutdown::Both);
                return Ok(());
            }
            Some(Fault::HalfJson) => {
                let half = &r.body[..r.body.len() / 2];
                respond(&mut out, r.status, &extra, half, None, method)?;
            }
            _ => respond(&mut out, r.status, &extra, &r.body, None, method)?,
        }
    }
}

fn respond(
    out: &mut TcpStream,
    status: u16,
    headers: &[String],
    body: &[u8],
    claimed_len: Option<usize>,
    method: &str,
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n",
        claimed_len.unwrap_or(body.len())
    );
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    if method != "HEAD" {
        out.write_all(body)?;
    }
    out.flush()
}
