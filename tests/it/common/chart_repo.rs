//! An HTTP Helm chart repository for the chart tests (issue 18): a tiny HTTP/1.1 server on a
//! free loopback port serving files put into it (`index.yaml`, chart archives), with an
//! `ETag` (the body's SHA-256) and a fixed `Last-Modified`; it answers `If-None-Match` with
//! the current ETag by `304 Not Modified`, and records every request with its headers.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// One request the server saw.
#[derive(Debug, Clone)]
pub struct ChartRepoRequest {
    pub method: String,
    pub path: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The status answered.
    pub status: u16,
}

impl ChartRepoRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

type Files = Arc<Mutex<HashMap<String, Vec<u8>>>>;

/// A running chart repository; stopped on drop.
pub struct ChartRepo {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    files: Files,
    seen: Arc<Mutex<Vec<ChartRepoRequest>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The `Last-Modified` of every file.
pub const LAST_MODIFIED: &str = "Sun, 06 Dec 2026 12:00:00 GMT";

fn etag(body: &[u8]) -> String {
    format!(
        "\"{}\"",
        super::sha256_digest(body).trim_start_matches("sha256:")
    )
}

impl ChartRepo {
    pub fn start() -> ChartRepo {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let files: Files = Default::default();
        let seen: Arc<Mutex<Vec<ChartRepoRequest>>> = Default::default();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (files, seen, stop) = (files.clone(), seen.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(s) = stream {
                        if let Some(r) = serve(s, &files) {
                            seen.lock().unwrap().push(r);
                        }
                    }
                }
            })
        };
        ChartRepo {
            url,
            files,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// Serve `body` at `path` (`/index.yaml`).
    pub fn put(&self, path: &str, body: &[u8]) {
        self.files
            .lock()
            .unwrap()
            .insert(path.to_string(), body.to_vec());
    }

    /// Serve an `index.yaml` listing `charts` (name, versions).
    pub fn put_index(&self, charts: &[(&str, &[&str])]) {
        let mut index = String::from("apiVersion: v1\nentries:\n");
        for (name, versions) in charts {
            index.push_str(&format!("  {name}:\n"));
            for v in *versions {
                index.push_str(&format!(
                    "    - apiVersion: v2\n      name: {name}\n      version: {v}\n      \
                     created: \"2026-12-06T12:00:00Z\"\n      digest: {}\n      urls:\n        \
                     - {name}-{v}.tgz\n",
                    super::sha256_digest(format!("{name}-{v}").as_bytes())
                        .trim_start_matches("sha256:")
                ));
            }
        }
        index.push_str("generated: \"2026-12-06T12:00:00Z\"\n");
        self.put("/index.yaml", index.as_bytes());
    }

    /// Every request seen so far, in order.
    pub fn requests(&self) -> Vec<ChartRepoRequest> {
        self.seen.lock().unwrap().clone()
    }

    /// Forget the requests seen so far.
    pub fn clear_requests(&self) {
        self.seen.lock().unwrap().clear();
    }
}

impl Drop for ChartRepo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.url.trim_start_matches("http://"));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Answer one connection (one request; `Connection: close`).
fn serve(stream: TcpStream, files: &Files) -> Option<ChartRepoRequest> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut words = line.split_whitespace();
    let (method, path) = (words.next()?.to_string(), words.next()?.to_string());
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let body = files.lock().unwrap().get(&path).cloned();
    let mut out = stream;
    let status = match body {
        None => {
            let _ = out.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found",
            );
            404
        }
        Some(body) => {
            let tag = etag(&body);
            let matched = headers
                .iter()
                .any(|(k, v)| k == "if-none-match" && v == &tag);
            if matched {
                let _ = write!(
                    out,
                    "HTTP/1.1 304 Not Modified\r\nETag: {tag}\r\nLast-Modified: {LAST_MODIFIED}\r\n\
                     Connection: close\r\n\r\n"
                );
                304
            } else {
                let _ = write!(
                    out,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/x-yaml\r\nContent-Length: {}\r\n\
                     ETag: {tag}\r\nLast-Modified: {LAST_MODIFIED}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                if method != "HEAD" {
                    let _ = out.write_all(&body);
                }
                200
            }
        }
    };
    let _ = out.flush();
    Some(ChartRepoRequest {
        method,
        path,
        headers,
        status,
    })
}
