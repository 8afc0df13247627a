//! A paging front for the real registry. Debian's distribution 2.8 returns every tag at once
//! and ignores `n`/`last`; registries such as Distribution 3, Harbor and GHCR page. This
//! front forwards every request to the real registry and, for `tags/list`, serves the
//! registry's own list sorted and cut into pages of at most `min(n, cap)` tags after `last`,
//! with a `Link: <...>; rel="next"` header, as the distribution spec describes.

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use super::http::{read_headers, read_line};
use super::{http_request, wait_until_for};

pub struct PagingFront {
    pub addr: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl PagingFront {
    /// Front `upstream` (`127.0.0.1:PORT`), never serving more than `cap` tags a page.
    pub fn start(upstream: &str, cap: usize) -> PagingFront {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the paging front");
        let addr = listener.local_addr().unwrap().to_string();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (seen, upstream) = (requests.clone(), upstream.to_string());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (seen, upstream) = (seen.clone(), upstream.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, &upstream, cap, &seen);
                });
            }
        });
        let probe = addr.clone();
        wait_until_for(
            "the paging front",
            std::time::Duration::from_secs(10),
            || TcpStream::connect(&probe).is_ok(),
        );
        PagingFront { addr, requests }
    }

    /// The request lines seen, in order.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn query_param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

fn serve(
    stream: TcpStream,
    upstream: &str,
    cap: usize,
    seen: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let line = read_line(&mut reader)?;
    let headers = read_headers(&mut reader)?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    seen.lock().unwrap().push(format!("{method} {target}"));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let forward: Vec<(&str, &str)> = headers
        .iter()
        .filter(|(k, _)| {
            k.eq_ignore_ascii_case("authorization") || k.eq_ignore_ascii_case("accept")
        })
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut out = stream;
    if method == "GET" && path.ends_with("/tags/list") {
        let full = http_request(upstream, "GET", path, &forward, b"");
        if full.status != 200 {
            return respond(&mut out, full.status, &[], &full.body);
        }
        let v: serde_json::Value = serde_json::from_slice(&full.body).unwrap();
        let mut tags: Vec<String> = v["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        tags.sort();
        let n = query_param(query, "n")
            .and_then(|n| n.parse().ok())
            .unwrap_or(cap)
            .min(cap);
        let after: Vec<String> = match query_param(query, "last") {
            Some(last) => tags.into_iter().filter(|t| t.as_str() > last).collect(),
            None => tags,
        };
        let page: Vec<String> = after.iter().take(n).cloned().collect();
        let mut extra = Vec::new();
        if after.len() > n {
            extra.push(format!(
                "Link: <{path}?n={n}&last={}>; rel=\"next\"",
                page.last().unwrap()
            ));
        }
        let body = serde_json::json!({"name": v["name"], "tags": page}).to_string();
        return respond(&mut out, 200, &extra, body.as_bytes());
    }
    let r = http_request(upstream, method, target, &forward, b"");
    let extra: Vec<String> = r
        .headers
        .iter()
        .filter(|(k, _)| {
            k.eq_ignore_ascii_case("www-authenticate") || k.eq_ignore_ascii_case("content-type")
        })
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    respond(&mut out, r.status, &extra, &r.body)
}

fn respond(
    out: &mut TcpStream,
    status: u16,
    headers: &[String],
    body: &[u8],
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    out.write_all(body)?;
    out.flush()
}
