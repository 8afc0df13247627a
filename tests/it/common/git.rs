//! git over smart HTTP: a tiny threaded HTTP/1.1 server running `git-http-backend` as CGI,
//! optionally behind Basic auth; and git CLI helpers isolated from the user's git config.

use super::http::{header_value, is_chunked, read_headers, read_line, ChunkedReader};
use super::require_program;
use base64::Engine as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const AUTHOR_NAME: &str = "Test";
const AUTHOR_EMAIL: &str = "test@example.invalid";

/// What a request to [`GitHttpServer`] carried in its `Authorization` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeenAuth {
    /// No `Authorization` header.
    None,
    /// Basic credentials matching the server's.
    Valid,
    /// An `Authorization` header that did not match (or credentials on a server without any).
    Invalid,
}

/// One request [`GitHttpServer`] received.
#[derive(Debug, Clone)]
pub struct GitRequest {
    pub method: String,
    /// Path and query, e.g. "/git/repo.git/info/refs?service=git-receive-pack".
    pub path: String,
    pub auth: SeenAuth,
    /// The user name of the Basic credentials, valid or not.
    pub user: Option<String>,
    /// "chunked", "length N", or "none".
    pub body: String,
    /// The `Content-Encoding` of the body, e.g. "gzip" (git gzips large upload-pack requests).
    pub content_encoding: Option<String>,
}

impl std::fmt::Display for GitRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let auth = match self.auth {
            SeenAuth::None => "none",
            SeenAuth::Valid => "valid",
            SeenAuth::Invalid => "invalid",
        };
        write!(
            f,
            "{} {} auth={auth} body={}",
            self.method, self.path, self.body
        )?;
        match &self.content_encoding {
            Some(encoding) => write!(f, " encoding={encoding}"),
            None => Ok(()),
        }
    }
}

struct Shared {
    project_root: PathBuf,
    backend: PathBuf,
    credentials: Option<(String, String)>,
    requests: Mutex<Vec<GitRequest>>,
    log: Mutex<String>,
    stop: AtomicBool,
    active: AtomicUsize,
    gate: Mutex<PushGate>,
    gate_moved: Condvar,
}

/// Pushes held back in groups ([`GitHttpServer::hold_pushes`]).
#[derive(Default)]
struct PushGate {
    /// How many pushes each group waits for; 0 when there is no gate.
    group: usize,
    /// Groups still to come after the one filling now.
    more: usize,
    /// Pushes of the group filling now.
    arrived: usize,
    /// Counts the groups let through, so a push waits for its own group only.
    opened: u64,
    /// Groups let through because their deadline passed, not because they filled.
    timed_out: usize,
}

/// How long a held push waits for the rest of its group before it goes on anyway.
const GATE_TIMEOUT: Duration = Duration::from_secs(15);

/// git smart HTTP on 127.0.0.1:<free port>: requests under `/git/` run
/// `git-http-backend` with `GIT_PROJECT_ROOT=<project_root>`. Stops on drop.
pub struct GitHttpServer {
    /// "http://127.0.0.1:PORT/git"; a repo `<root>/x.git` is at `{base_url}/x.git`.
    pub base_url: String,
    /// "127.0.0.1:PORT".
    pub addr: String,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl GitHttpServer {
    /// Serve the repositories below `project_root`; with `credentials`, every request needs
    /// `Authorization: Basic` for them (else 401 with `WWW-Authenticate: Basic realm="git"`).
    pub fn start(project_root: &Path, credentials: Option<(&str, &str)>) -> GitHttpServer {
        let backend = find_http_backend();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind git HTTP server");
        let addr = listener.local_addr().expect("local addr").to_string();
        let shared = Arc::new(Shared {
            project_root: project_root.to_path_buf(),
            backend,
            credentials: credentials.map(|(u, p)| (u.to_string(), p.to_string())),
            requests: Mutex::new(Vec::new()),
            log: Mutex::new(String::new()),
            stop: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            gate: Mutex::new(PushGate::default()),
            gate_moved: Condvar::new(),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if shared.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let shared = Arc::clone(&shared);
                    shared.active.fetch_add(1, Ordering::SeqCst);
                    std::thread::spawn(move || {
                        if let Err(e) = handle_connection(stream, &shared) {
                            shared.log_line(&format!("connection error: {e}"));
                        }
                        shared.active.fetch_sub(1, Ordering::SeqCst);
                    });
                }
            })
        };
        GitHttpServer {
            base_url: format!("http://{addr}/git"),
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// The URL of repository `name` (e.g. "repo.git") below the project root.
    pub fn url(&self, name: &str) -> String {
        format!("{}/{name}", self.base_url)
    }

    /// [`GitHttpServer::url`] with the server's credentials in it (`http://user:pass@...`).
    pub fn url_with_credentials(&self, name: &str) -> String {
        match &self.shared.credentials {
            None => self.url(name),
            Some((user, password)) => {
                format!("http://{user}:{password}@{}/git/{name}", self.addr)
            }
        }
    }

    /// The requests so far, one line each: "METHOD /path?query auth=none|valid|invalid
    /// body=none|chunked|length N[ encoding=gzip]".
    pub fn requests(&self) -> Vec<String> {
        self.request_log().iter().map(|r| r.to_string()).collect()
    }

    /// The requests so far, structured.
    pub fn request_log(&self) -> Vec<GitRequest> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Hold the next `groups * group` pushes (`POST .../git-receive-pack`) in groups: each
    /// push waits until `group` pushes have arrived, then they go on together. Concurrent
    /// clients that each read the refs before any of them updated one so really collide at the
    /// server, and two clients pushing the same branches one after the other move in lockstep,
    /// colliding on every branch. A group that does not fill within 15 s goes on anyway and is
    /// counted ([`GitHttpServer::gate_timeouts`]).
    pub fn hold_pushes(&self, group: usize, groups: usize) {
        let mut gate = self.shared.gate.lock().unwrap();
        gate.group = if groups == 0 { 0 } else { group };
        gate.more = groups.saturating_sub(1);
        gate.arrived = 0;
    }

    /// How many groups of [`GitHttpServer::hold_pushes`] went on when their time ran out.
    pub fn gate_timeouts(&self) -> usize {
        self.shared.gate.lock().unwrap().timed_out
    }

    /// What the server and `git-http-backend` wrote to stderr (for assertion messages).
    pub fn log(&self) -> String {
        self.shared.log.lock().unwrap().clone()
    }

    /// Wait (up to `timeout`) until no request is in flight, and none has started for 100 ms.
    /// A client killed mid-push leaves `git receive-pack` at work on the server: it still
    /// moves the objects it received out of quarantine, and a `git fsck` meanwhile sees half
    /// of them.
    pub fn wait_idle(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut quiet_since = Instant::now();
        while Instant::now() < deadline {
            if self.shared.active.load(Ordering::SeqCst) > 0 {
                quiet_since = Instant::now();
            } else if quiet_since.elapsed() >= Duration::from_millis(100) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for GitHttpServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor blocked in accept().
        let _ = TcpStream::connect(&self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        // Let in-flight requests (and their git-http-backend children) finish.
        self.wait_idle(Duration::from_secs(10));
    }
}

impl Shared {
    /// Wait at the push gate, if one is set ([`GitHttpServer::hold_pushes`]).
    fn pass_push_gate(&self) {
        let mut gate = self.gate.lock().unwrap();
        if gate.group == 0 {
            return;
        }
        gate.arrived += 1;
        let mine = gate.opened;
        if gate.arrived < gate.group {
            let deadline = Instant::now() + GATE_TIMEOUT;
            while gate.opened == mine {
                let now = Instant::now();
                if now >= deadline {
                    gate.timed_out += 1;
                    break;
                }
                gate = self
                    .gate_moved
                    .wait_timeout(gate, deadline - now)
                    .unwrap()
                    .0;
            }
            if gate.opened != mine {
                return;
            }
        }
        // This group is full (or out of time): let it go, and set up the next one.
        gate.opened += 1;
        gate.arrived = 0;
        if gate.more == 0 {
            gate.group = 0;
        } else {
            gate.more -= 1;
        }
        self.gate_moved.notify_all();
    }

    fn log_line(&self, line: &str) {
        let mut log = self.log.lock().unwrap();
        log.push_str(line);
        log.push('\n');
    }

    fn check_auth(&self, header: Option<&str>) -> (SeenAuth, Option<String>) {
        let Some(header) = header else {
            return (SeenAuth::None, None);
        };
        let decoded = header
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
            .and_then(|(_, b64)| {
                base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .ok()
            })
            .and_then(|bytes| String::from_utf8(bytes).ok());
        let Some((user, password)) = decoded.as_deref().and_then(|d| d.split_once(':')) else {
            return (SeenAuth::Invalid, None);
        };
        let valid = self
            .credentials
            .as_ref()
            .is_some_and(|(u, p)| u == user && p == password);
        let seen = if valid {
            SeenAuth::Valid
        } else {
            SeenAuth::Invalid
        };
        (seen, Some(user.to_string()))
    }
}

fn find_http_backend() -> PathBuf {
    require_program("git", "apt-get install git");
    if let Some(explicit) = std::env::var_os("GIT_HTTP_BACKEND") {
        return PathBuf::from(explicit);
    }
    let debian = PathBuf::from("/usr/lib/git-core/git-http-backend");
    if debian.is_file() {
        return debian;
    }
    if let Ok(out) = Command::new("git").arg("--exec-path").output() {
        let exec_path = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let candidate = Path::new(&exec_path).join("git-http-backend");
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "git-http-backend not found in /usr/lib/git-core or `git --exec-path`: install it with \
         `apt-get install git` (or run `scripts/install-test-deps.sh`), or set GIT_HTTP_BACKEND"
    );
}

/// One request per connection; the response ends with `Connection: close`.
fn handle_connection(stream: TcpStream, shared: &Shared) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    stream.set_write_timeout(Some(Duration::from_secs(120)))?;
    let mut out = stream.try_clone()?;
    let mut reader = BufReader::new(stream);

    let request_line = read_line(&mut reader)?;
    let mut parts = request_line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return respond(&mut out, "400 Bad Request", &[], b"bad request line\n");
    };
    let (method, target) = (method.to_string(), target.to_string());
    let headers = read_headers(&mut reader)?;

    let chunked = is_chunked(&headers);
    let length: Option<u64> = header_value(&headers, "Content-Length").and_then(|v| v.parse().ok());
    let (auth, user) = shared.check_auth(header_value(&headers, "Authorization"));
    shared.requests.lock().unwrap().push(GitRequest {
        method: method.clone(),
        path: target.clone(),
        auth,
        user: user.clone(),
        body: match (chunked, length) {
            (true, _) => "chunked".to_string(),
            (false, Some(n)) => format!("length {n}"),
            (false, None) => "none".to_string(),
        },
        content_encoding: header_value(&headers, "Content-Encoding").map(str::to_string),
    });

    let mut body: Box<dyn Read + Send> = if chunked {
        Box::new(ChunkedReader::new(reader))
    } else {
        Box::new(reader.take(length.unwrap_or(0)))
    };
    let expects_continue =
        header_value(&headers, "Expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));

    if shared.credentials.is_some() && auth != SeenAuth::Valid {
        // Read the body the client already sent, so closing doesn't reset the connection
        // before it reads the 401.
        if !expects_continue {
            let _ = io::copy(&mut body, &mut io::sink());
        }
        return respond(
            &mut out,
            "401 Unauthorized",
            &[("WWW-Authenticate", "Basic realm=\"git\"")],
            b"authentication required\n",
        );
    }

    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let Some(path_info) = path.strip_prefix("/git/") else {
        let _ = io::copy(&mut body, &mut io::sink());
        return respond(&mut out, "404 Not Found", &[], b"not under /git/\n");
    };
    if method == "POST" && path_info.ends_with("/git-receive-pack") {
        shared.pass_push_gate();
    }
    if expects_continue {
        out.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }

    let mut cgi = Command::new(&shared.backend);
    for var in [
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_CONFIG_PARAMETERS",
        "GIT_CONFIG_COUNT",
        "GIT_NAMESPACE",
    ] {
        cgi.env_remove(var);
    }
    cgi.env("GIT_PROJECT_ROOT", &shared.project_root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .env("SERVER_SOFTWARE", "image-updater-test-harness")
        .env("REQUEST_METHOD", &method)
        .env("SCRIPT_NAME", "/git")
        .env("PATH_INFO", format!("/{path_info}"))
        .env("QUERY_STRING", query)
        .env("REMOTE_ADDR", "127.0.0.1");
    if auth == SeenAuth::Valid {
        cgi.env("REMOTE_USER", user.as_deref().unwrap_or_default());
        cgi.env("AUTH_TYPE", "Basic");
    }
    if let Some(content_type) = header_value(&headers, "Content-Type") {
        cgi.env("CONTENT_TYPE", content_type);
    }
    if let (false, Some(n)) = (chunked, length) {
        // Without CONTENT_LENGTH (chunked bodies) git-http-backend reads stdin to EOF.
        cgi.env("CONTENT_LENGTH", n.to_string());
    }
    // The other request headers as HTTP_*: Content-Encoding (gzip bodies), Git-Protocol
    // (protocol v2), User-Agent, ...
    for (name, value) in &headers {
        let lower = name.to_ascii_lowercase();
        if matches!(
            lower.as_str(),
            "authorization" | "content-type" | "content-length" | "transfer-encoding" | "expect"
        ) {
            continue;
        }
        cgi.env(
            format!("HTTP_{}", name.to_ascii_uppercase().replace('-', "_")),
            value,
        );
    }
    let has_body = chunked || length.is_some_and(|n| n > 0);
    let mut child = cgi
        .stdin(if has_body {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;

    // Body in, response out and stderr collected concurrently: the backend may answer while
    // it still reads (side-band progress), and pipes are small.
    let feeder = child.stdin.take().map(|mut stdin| {
        std::thread::spawn(move || {
            let copied = io::copy(&mut body, &mut stdin);
            drop(stdin);
            copied
        })
    });
    let stderr = child.stderr.take().map(|mut err| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            text
        })
    });

    let mut cgi_out = BufReader::new(child.stdout.take().expect("piped stdout"));
    let relayed = relay_cgi_response(&mut cgi_out, &mut out);
    let _ = out.shutdown(Shutdown::Both);
    let status = child.wait()?;
    if let Some(feeder) = feeder {
        match feeder.join() {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => shared.log_line(&format!("{method} {target}: request body: {e}")),
            Err(_) => shared.log_line(&format!("{method} {target}: body thread panicked")),
        }
    }
    if let Some(text) = stderr.and_then(|t| t.join().ok()) {
        if !text.is_empty() {
            shared.log_line(&format!(
                "{method} {target}: git-http-backend: {}",
                text.trim_end()
            ));
        }
    }
    if !status.success() {
        shared.log_line(&format!(
            "{method} {target}: git-http-backend exited with {status}"
        ));
    }
    relayed
}

/// CGI headers (`Status:` becomes the status line; others are relayed), then the body streamed
/// as it comes: as is when the backend gave a Content-Length, else with
/// `Transfer-Encoding: chunked` (libgit2 fails on bodies delimited only by closing).
fn relay_cgi_response(cgi_out: &mut impl BufRead, out: &mut impl Write) -> io::Result<()> {
    let cgi_headers = read_headers(cgi_out)?;
    let mut status = "200 OK".to_string();
    let mut head = String::new();
    for (name, value) in &cgi_headers {
        if name.eq_ignore_ascii_case("Status") {
            status = value.clone();
        } else {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    let chunked = header_value(&cgi_headers, "Content-Length").is_none();
    if chunked {
        head.push_str("Transfer-Encoding: chunked\r\n");
    }
    out.write_all(format!("HTTP/1.1 {status}\r\n{head}Connection: close\r\n\r\n").as_bytes())?;
    if !chunked {
        io::copy(cgi_out, out)?;
        return out.flush();
    }
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match cgi_out.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        out.write_all(format!("{n:x}\r\n").as_bytes())?;
        out.write_all(&buf[..n])?;
        out.write_all(b"\r\n")?;
        // Flush per chunk: the client may wait on this data (side-band progress, v2 rounds).
        out.flush()?;
    }
    out.write_all(b"0\r\n\r\n")?;
    out.flush()
}

fn respond(
    out: &mut TcpStream,
    status: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {status}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    out.write_all(head.as_bytes())?;
    out.write_all(body)?;
    out.flush()?;
    let _ = out.shutdown(Shutdown::Write);
    Ok(())
}

/// A `git` command isolated from the user's and the system's config, that never prompts.
fn git_command(dir: &Path) -> Command {
    require_program("git", "apt-get install git");
    let mut cmd = Command::new("git");
    cmd.current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env_remove("GIT_ASKPASS")
        .env_remove("SSH_ASKPASS")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .stdin(Stdio::null());
    cmd
}

/// Run git with `args` in `dir`; stdout on success, or an error with the exit status, stdout
/// and stderr.
pub fn try_git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let Output {
        status,
        stdout,
        stderr,
    } = git_command(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run git {args:?} in {}: {e}", dir.display()));
    let stdout = String::from_utf8_lossy(&stdout).into_owned();
    if status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "git {args:?} in {} failed with {status}\nstdout:\n{stdout}\nstderr:\n{}",
            dir.display(),
            String::from_utf8_lossy(&stderr)
        ))
    }
}

/// Run git with `args` in `dir`, panic with its stderr on failure, return its stdout.
#[track_caller]
pub fn git(dir: &Path, args: &[&str]) -> String {
    try_git(dir, args).unwrap_or_else(|e| panic!("{e}"))
}

/// A temporary directory holding a bare repository `remote.git` with `files` on `main`, and
/// `work`, a clone of it over file://: (the directory, the bare repository, the clone).
pub fn remote_and_clone<B: AsRef<[u8]>>(
    files: &[(String, B)],
) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_ref()))
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repo_with_files(&tmp.path().join("remote.git"), &refs);
    let work = clone(
        &format!("file://{}", bare.display()),
        &tmp.path().join("work"),
    );
    (tmp, bare, work)
}

/// Create a bare repository at `path` (with `http.receivepack=true`) whose branch `main` (also
/// its HEAD) holds one commit by "Test <test@example.invalid>" with `files` (relative path ->
/// contents). Returns `path`.
pub fn bare_repo_with_files(path: &Path, files: &[(&str, &[u8])]) -> PathBuf {
    std::fs::create_dir_all(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    git(
        path,
        &["init", "--quiet", "--bare", "--initial-branch=main"],
    );
    git(path, &["config", "http.receivepack", "true"]);

    let work = tempfile::Builder::new()
        .prefix("seed-")
        .tempdir()
        .expect("create seed work tree");
    let work = work.path();
    git(work, &["init", "--quiet", "--initial-branch=main"]);
    for (relative, contents) in files {
        let file = work.join(relative);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).expect("create seed dirs");
        }
        std::fs::write(&file, contents).unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
    }
    git(work, &["add", "--all"]);
    let name = format!("user.name={AUTHOR_NAME}");
    let email = format!("user.email={AUTHOR_EMAIL}");
    git(
        work,
        &[
            "-c",
            &name,
            "-c",
            &email,
            "commit",
            "--quiet",
            "--allow-empty",
            "-m",
            "Initial commit",
        ],
    );
    let bare = path.to_str().expect("UTF-8 repo path");
    git(work, &["push", "--quiet", bare, "main:refs/heads/main"]);
    path.to_path_buf()
}

/// `git clone url dir` (git CLI) with `user.name`/`user.email` set in the clone; returns `dir`.
pub fn clone(url: &str, dir: &Path) -> PathBuf {
    let parent = dir.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(parent).expect("create clone parent dir");
    let target = dir.to_str().expect("UTF-8 clone path");
    git(parent, &["clone", "--quiet", url, target]);
    git(dir, &["config", "user.name", AUTHOR_NAME]);
    git(dir, &["config", "user.email", AUTHOR_EMAIL]);
    dir.to_path_buf()
}
