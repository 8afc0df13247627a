//! A programmable HTTP/1.1 server for attacks: each answer is computed from the request by a
//! closure, and may be a body streamed without end, a body that never comes, or a redirect.
//! Every request is recorded with its headers, so a test can see what reached which host.

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use super::http::{read_headers, read_line};

/// A request the server saw.
#[derive(Debug, Clone)]
pub struct HostileRequest {
    pub method: String,
    /// The request target: path and query.
    pub target: String,
    pub headers: Vec<(String, String)>,
    /// The body (`Content-Length` bytes; a token POST's form, a forge call's JSON).
    pub body: Vec<u8>,
}

impl HostileRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
}

/// A body written piece by piece until `write` returns false or the client goes away.
pub type Stream = Box<dyn FnMut(&mut dyn Write) -> std::io::Result<bool> + Send>;

/// What the server answers.
pub enum Reply {
    /// Status, extra headers and a complete body (sent with its `Content-Length`).
    Full(u16, Vec<(String, String)>, Vec<u8>),
    /// Status, extra headers (a `Content-Length` among them, or none: the body then ends
    /// when the connection closes) and a streamed body.
    Stream(u16, Vec<(String, String)>, Stream),
    /// Read the request, then say nothing until the client gives up.
    Silence,
}

impl Reply {
    pub fn json(status: u16, body: impl Into<String>) -> Reply {
        Reply::Full(
            status,
            vec![("Content-Type".into(), "application/json".into())],
            body.into().into_bytes(),
        )
    }

    pub fn redirect(status: u16, location: &str) -> Reply {
        Reply::Full(status, vec![("Location".into(), location.into())], vec![])
    }
}

type Handler = dyn Fn(&HostileRequest, u16) -> Reply + Send + Sync;

pub struct HostileServer {
    pub port: u16,
    pub addr: String,
    seen: Arc<Mutex<Vec<HostileRequest>>>,
}

impl HostileServer {
    /// Serve on a free loopback port; `answer` gets the request and the server's own port.
    pub fn start(answer: impl Fn(&HostileRequest, u16) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let answer: Arc<Handler> = Arc::new(answer);
        let recorded = Arc::clone(&seen);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (seen, answer) = (Arc::clone(&recorded), Arc::clone(&answer));
                std::thread::spawn(move || {
                    let _ = serve(stream, port, &seen, &*answer);
                });
            }
        });
        HostileServer {
            port,
            addr: format!("127.0.0.1:{port}"),
            seen,
        }
    }

    /// Every request seen so far, in order.
    pub fn seen(&self) -> Vec<HostileRequest> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(
    stream: TcpStream,
    port: u16,
    seen: &Mutex<Vec<HostileRequest>>,
    answer: &Handler,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    loop {
        let line = read_line(&mut reader)?;
        if line.is_empty() {
            return Ok(());
        }
        let headers = read_headers(&mut reader)?;
        let mut parts = line.split_whitespace();
        let mut req = HostileRequest {
            method: parts.next().unwrap_or("").to_string(),
            target: parts.next().unwrap_or("/").to_string(),
            headers,
            body: Vec::new(),
        };
        if let Some(n) = req
            .header("content-length")
            .and_then(|v| v.trim().parse::<usize>().ok())
        {
            req.body = vec![0u8; n];
            std::io::Read::read_exact(&mut reader, &mut req.body)?;
        }
        seen.lock().unwrap().push(req.clone());
        let mut out = stream.try_clone()?;
        match answer(&req, port) {
            Reply::Full(status, headers, body) => {
                let mut head = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", body.len());
                for (k, v) in headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                out.write_all(head.as_bytes())?;
                if req.method != "HEAD" {
                    out.write_all(&body)?;
                }
                out.flush()?;
            }
            Reply::Stream(status, headers, mut write) => {
                let mut head = format!("HTTP/1.1 {status} X\r\nConnection: close\r\n");
                for (k, v) in headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                out.write_all(head.as_bytes())?;
                while write(&mut out)? {}
                out.flush()?;
                return Ok(());
            }
            Reply::Silence => {
                // Hold the connection open until the client closes it.
                let mut sink = [0u8; 1024];
                while std::io::Read::read(&mut reader, &mut sink)? > 0 {}
                return Ok(());
            }
        }
    }
}
