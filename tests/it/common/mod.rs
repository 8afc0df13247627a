//! Shared harness for the integration tests: real servers started on 127.0.0.1, on free
//! ports, in temp dirs, polled until ready and killed on `Drop`.
//!
//! - [`Registry`]: the CNCF distribution registry (`docker-registry`), anonymous or with
//!   Basic auth, restartable with token auth or TLS ([`Registry::restart_with`]), plus
//!   [`Registry::push_image`] and [`Registry::push_index`] to put tiny OCI images under tags.
//! - [`GitHttpServer`]: git smart HTTP (`git-http-backend` as CGI behind a tiny HTTP/1.1
//!   server), optionally behind Basic auth, recording the requests it saw, and holding pushes
//!   back until several have arrived ([`GitHttpServer::hold_pushes`]) so concurrent ones collide.
//! - [`bare_repo_with_files`], [`clone`], [`git`]: the git CLI, isolated from the user's and
//!   the system's git config.
//! - [`TokenIssuer`]: a token service for the registry's `auth: token` mode (ES256 JWTs).
//! - [`TestCa`]: a CA and a server certificate for 127.0.0.1, for the registry behind TLS.
//! - [`FaultProxy`]: a proxy before the registry that injects 429s, 503s, resets, stalls and
//!   cut-off bodies, and counts requests, concurrency and arrival times.
//! - [`forges`]: stateful fakes of the GitHub, GitLab and Gitea APIs, and the helpers of the
//!   pull-request tests (a remote holding a fixture, a run with a clean environment).
//! - [`mermaid`]: mermaid's own parser (and renderer) in headless chromium, over every
//!   ```` ```mermaid ```` block of a Markdown text ([`mermaid::assert_parses`]).
//! - [`free_port`], [`wait_until`], [`http_request`]: the small pieces the above are built on.
//!
//! Everything is blocking std code; tests are plain `#[test]` functions. A program that is
//! missing makes the test panic with the command that installs it — never a silent skip.
#![allow(dead_code, unused_imports)]

pub mod chart_repo;
mod faults;
pub mod fixtures;
pub mod forges;
mod git;
mod hostile;
mod http;
pub mod mermaid;
mod paging;
mod registry;
mod sources;
mod ssh;
mod tls;
mod token;

pub use chart_repo::ChartRepo;
pub use faults::{Fault, FaultProxy};
pub use git::{
    bare_repo_with_files, clone, git, remote_and_clone, try_git, GitHttpServer, GitRequest,
    SeenAuth,
};
pub use hostile::{HostileRequest, HostileServer, Reply, Stream as HostileStream};
pub use http::{http_request, try_http_request, HttpResponse};
pub use paging::PagingFront;
pub use registry::{sha256_digest, Registry};
pub use sources::{
    bare_env, block_on, layout_in_work_tree, registries, test_options, write_oci_layout,
    LAYOUT_IN_REPO,
};
pub use ssh::SshServer;
pub use tls::TestCa;
pub use token::{TokenIssuer, TokenRequest};

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The binary under test; `IMAGE_UPDATER_TEST_BIN` may name an older build, to check that a
/// regression test fails where the bug was.
pub fn test_bin() -> String {
    std::env::var("IMAGE_UPDATER_TEST_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_image-updater").to_string())
}

/// A port on 127.0.0.1 that was free a moment ago (bind to port 0, read it, release it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0 to find a free port")
        .port()
}

/// When [`wait_until`] gives up: a timeout from now, or a fixed instant.
pub trait IntoDeadline {
    fn into_deadline(self) -> Instant;
}

impl IntoDeadline for Duration {
    fn into_deadline(self) -> Instant {
        Instant::now() + self
    }
}

impl IntoDeadline for Instant {
    fn into_deadline(self) -> Instant {
        self
    }
}

/// Poll `condition` (every 20 ms, backing off to 200 ms) until it returns true; panic with a
/// message naming `what` if `deadline` (a `Duration` from now, or an `Instant`) passes first.
#[track_caller]
pub fn wait_until(deadline: impl IntoDeadline, condition: impl FnMut() -> bool) {
    wait_until_for("a condition", deadline, condition);
}

/// [`wait_until`] with a description of what is awaited, for the panic message.
#[track_caller]
pub fn wait_until_for(
    what: &str,
    deadline: impl IntoDeadline,
    mut condition: impl FnMut() -> bool,
) {
    let start = Instant::now();
    let deadline = deadline.into_deadline();
    let mut pause = Duration::from_millis(20);
    loop {
        if condition() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {:.1?} waiting for {what}", start.elapsed());
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// Find `program` on PATH, or panic saying how to install it.
#[track_caller]
pub fn require_program(program: &str, install_hint: &str) -> PathBuf {
    if let Some(found) = find_on_path(program) {
        return found;
    }
    panic!(
        "{program} not found on PATH: install it with `{install_hint}` (or run `scripts/install-test-deps.sh`)"
    );
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Deterministic pseudo-random bytes (xorshift64*), e.g. for incompressible test files.
pub fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The built binary run with `args`, without the CI, token and setting variables of the
/// environment the tests run in.
pub fn image_updater(args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(test_bin());
    cmd.args(args).env("NO_COLOR", "1");
    for v in [
        "IMAGE_UPDATER_GIT_TOKEN",
        "GITHUB_TOKEN",
        "GITHUB_ACTIONS",
        "GITLAB_CI",
        "IMAGE_UPDATER_CONFIG",
        "IMAGE_UPDATER_OUTPUT",
    ] {
        cmd.env_remove(v);
    }
    cmd.output().unwrap()
}

/// A command's exit code, stdout and stderr, for a failure message.
pub fn output_text(o: &std::process::Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A command's stdout as JSON; a failure shows the whole output.
pub fn output_json(o: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", output_text(o)))
}
