//! Secret canaries: a distinctive token in every credential slot, servers that echo them
//! back, and a scan of everything the tool printed or wrote.
//!
//! Slots: registry credentials from the environment (`credentials: {username_env,
//! password_env}`), Docker `config.json` auths, a registry bearer token, the forge token
//! (`IMAGE_UPDATER_FORGE_TOKEN` and `GITHUB_TOKEN`), the git token (`IMAGE_UPDATER_GIT_TOKEN`)
//! and an SSH key's text (`IMAGE_UPDATER_SSH_KEY`). Servers: registries that answer 401/500
//! with the request's `Authorization` (and the decoded Basic credentials) in the error body,
//! one that redirects to another host with the credentials in the URL, and a forge that echoes
//! its token in 401 and 500 bodies. Scanned: stdout (the JSON report), stderr at `-v`,
//! every commit message and branch name in the remote, and the pull-request titles and bodies
//! the forge received. Also: no credentials are sent to the other host of a redirect.

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use base64::Engine;
use common::forges::{mount_fake, GithubFake};
use common::{bare_repo_with_files, clone, git, GitHttpServer};
use wiremock::MockServer;

const BIN: &str = env!("CARGO_BIN_EXE_image-updater");

const ENV_USER: &str = "cnry-reg-env-user-7f3a";
const ENV_PASS: &str = "cnry-reg-env-pass-91bc";
const DOCKER_USER: &str = "cnry-docker-user-0a0a";
const DOCKER_PASS: &str = "cnry-docker-pass-4d2e";
const REDIRECT_PASS: &str = "cnry-redirect-pass-55aa";
const BEARER: &str = "cnry-bearer-token-c0de";
const FORGE_TOKEN: &str = "cnry-forge-token-beef";
const GH_TOKEN: &str = "cnry-github-token-b0b0";
const GIT_TOKEN: &str = "cnry-git-token-f00d";
const SSH_SECRET: &str = "cnry-ssh-key-1234";

fn ssh_key() -> String {
    format!(
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA{SSH_SECRET}AAAA\n-----END OPENSSH PRIVATE KEY-----\n"
    )
}

/// Every canary, with the encodings a leak could take (Basic's base64, URL encoding).
fn canaries() -> Vec<String> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut out: Vec<String> = [
        ENV_USER,
        ENV_PASS,
        DOCKER_USER,
        DOCKER_PASS,
        REDIRECT_PASS,
        BEARER,
        FORGE_TOKEN,
        GH_TOKEN,
        GIT_TOKEN,
        SSH_SECRET,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for pair in [
        format!("{ENV_USER}:{ENV_PASS}"),
        format!("{DOCKER_USER}:{DOCKER_PASS}"),
        format!("{DOCKER_USER}:{REDIRECT_PASS}"),
        format!("x-access-token:{GIT_TOKEN}"),
    ] {
        out.push(b64(&pair));
    }
    out
}

/// A request an echo server saw.
#[derive(Debug, Clone)]
struct Seen {
    line: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Everything it sent, as text: what a careless server would echo.
    fn dump(&self) -> String {
        let mut s = self.line.clone();
        for (k, v) in &self.headers {
            s.push_str(&format!("; {k}: {v}"));
            if k.eq_ignore_ascii_case("authorization") {
                if let Some(b) = v.strip_prefix("Basic ") {
                    if let Ok(d) = base64::engine::general_purpose::STANDARD.decode(b) {
                        s.push_str(&format!(" (decoded: {})", String::from_utf8_lossy(&d)));
                    }
                }
            }
        }
        s
    }
}

/// How an echo server answers: status, extra headers, body.
type Answer = (u16, Vec<(String, String)>, String);

/// A tiny HTTP/1.1 server whose answers are computed from the request; it records each one.
struct Echo {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Echo {
    fn start(answer: impl Fn(&Seen, u16) -> Answer + Send + Sync + 'static) -> Echo {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(answer);
        let s2 = Arc::clone(&seen);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let seen = Arc::clone(&s2);
                let answer = Arc::clone(&answer);
                std::thread::spawn(move || {
                    let _ = serve(stream, port, &seen, &*answer);
                });
            }
        });
        Echo { port, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(
    stream: TcpStream,
    port: u16,
    seen: &Mutex<Vec<Seen>>,
    answer: &dyn Fn(&Seen, u16) -> Answer,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut stream = stream;
    {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut headers = Vec::new();
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            reader.read_line(&mut h)?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let mut body = vec![0; len];
        reader.read_exact(&mut body)?;
        let req = Seen {
            line: line.trim_end().to_string(),
            headers,
        };
        seen.lock().unwrap().push(req.clone());
        let (status, extra, body) = answer(&req, port);
        let mut out = format!(
            "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nContent-Type: application/json\r\nConnection: close\r\n",
            body.len()
        );
        for (k, v) in extra {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        out.push_str(&body);
        stream.write_all(out.as_bytes())?;
    }
    Ok(())
}

/// A registry error body carrying everything the client sent.
fn echo_error(req: &Seen) -> String {
    serde_json::json!({
        "errors": [{ "code": "UNKNOWN", "message": format!("you sent {}", req.dump()) }],
        "debug": req.dump(),
    })
    .to_string()
}

fn basic_challenge() -> Vec<(String, String)> {
    vec![("WWW-Authenticate".into(), "Basic realm=\"echo\"".into())]
}

struct Servers {
    /// Env credentials; its token endpoint refuses them, quoting them.
    env_creds: Echo,
    /// Docker config credentials; 500 quoting the Authorization header.
    docker: Echo,
    /// Redirects an authenticated request to `other`, credentials in the URL.
    redirect: Echo,
    /// The other host of the redirect: must never see an Authorization header.
    other: Arc<Echo>,
    /// Anonymous bearer token, echoed back in a 401.
    bearer: Echo,
}

fn servers() -> Servers {
    let env_creds = Echo::start(|req, port| {
        if req.line.contains("/token") {
            return (401, vec![], echo_error(req));
        }
        let challenge = format!(
            "Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"echo\",scope=\"repository:acme/a:pull\""
        );
        (
            401,
            vec![("WWW-Authenticate".into(), challenge)],
            echo_error(req),
        )
    });
    let docker = Echo::start(|req, _| match req.header("authorization") {
        None => (401, basic_challenge(), echo_error(req)),
        Some(_) => (500, vec![], echo_error(req)),
    });
    let other = Arc::new(Echo::start(|req, _| (500, vec![], echo_error(req))));
    let other_port = other.port;
    let redirect = Echo::start(move |req, _| match req.header("authorization") {
        None => (401, basic_challenge(), echo_error(req)),
        Some(auth) => {
            let path = req.line.split_whitespace().nth(1).unwrap_or("/");
            let leak = auth.replace(' ', "%20");
            (
                307,
                vec![(
                    "Location".into(),
                    format!("http://localhost:{other_port}{path}?leak={leak}&pass={REDIRECT_PASS}"),
                )],
                String::new(),
            )
        }
    });
    let bearer = Echo::start(|req, port| {
        if req.line.contains("/token") {
            let body =
                serde_json::json!({"token": BEARER, "access_token": BEARER, "expires_in": 300});
            return (200, vec![], body.to_string());
        }
        let challenge = format!(
            "Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"echo\",scope=\"repository:acme/e:pull\""
        );
        (
            401,
            vec![("WWW-Authenticate".into(), challenge)],
            echo_error(req),
        )
    });
    Servers {
        env_creds,
        docker,
        redirect,
        other,
        bearer,
    }
}

const DEPLOY: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: all
spec:
  template:
    spec:
      containers:
        - name: a
          image: 127.0.0.1:PA/acme/a:1.0.0
        - name: b
          image: 127.0.0.1:PB/acme/b:1.0.0
        - name: c
          image: 127.0.0.1:PC/acme/c:1.0.0
        - name: e
          image: 127.0.0.1:PE/acme/e:1.0.0
        - name: web
          image: ghcr.io/acme/web:1.0.0
";

/// The layout serving `ghcr.io`, in the work tree `work` (the repo's config may only name
/// paths inside the repo); the config names it `common::LAYOUT_IN_REPO`.
fn write_layout(work: &Path) {
    let dir = common::layout_in_work_tree(work).join("ghcr.io/acme/web");
    common::write_oci_layout(&dir, &["1.0.0", "1.2.0"]);
}

fn config(s: &Servers, layout: &Path, delivery: &str) -> String {
    let mut c = format!(
        "registries:
  - host: 127.0.0.1:{pa}
    insecure: true
    credentials: {{ username_env: CANARY_REG_USER, password_env: CANARY_REG_PASS }}
  - {{ host: 127.0.0.1:{pb}, insecure: true }}
  - {{ host: 127.0.0.1:{pc}, insecure: true }}
  - {{ host: 127.0.0.1:{pe}, insecure: true }}
  - {{ host: ghcr.io, api: \"oci-layout:{layout}/ghcr.io\" }}
images:
",
        pa = s.env_creds.port,
        pb = s.docker.port,
        pc = s.redirect.port,
        pe = s.bearer.port,
        layout = layout.display()
    );
    for (name, port) in [
        ("a", s.env_creds.port),
        ("b", s.docker.port),
        ("c", s.redirect.port),
        ("e", s.bearer.port),
    ] {
        c.push_str(&format!(
            "  - {{ name: {name}, image: 127.0.0.1:{port}/acme/{name}, policy: {{ semver: '^1' }} }}\n"
        ));
    }
    c.push_str("  - { name: web, image: ghcr.io/acme/web, policy: { semver: '^1' } }\n");
    c.push_str(delivery);
    c
}

fn deploy(s: &Servers) -> String {
    DEPLOY
        .replace("PA", &s.env_creds.port.to_string())
        .replace("PB", &s.docker.port.to_string())
        .replace("PC", &s.redirect.port.to_string())
        .replace("PE", &s.bearer.port.to_string())
}

fn docker_config(dir: &Path, s: &Servers) -> PathBuf {
    let b64 =
        |u: &str, p: &str| base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
    let d = dir.join("docker");
    std::fs::create_dir_all(&d).unwrap();
    let cfg = serde_json::json!({"auths": {
        format!("127.0.0.1:{}", s.docker.port): {"auth": b64(DOCKER_USER, DOCKER_PASS)},
        format!("127.0.0.1:{}", s.redirect.port): {"auth": b64(DOCKER_USER, REDIRECT_PASS)},
        format!("localhost:{}", s.other.port): {"auth": b64("someone-else", "not-a-canary")},
    }});
    std::fs::write(d.join("config.json"), cfg.to_string()).unwrap();
    d
}

fn run(work: &Path, env: &[(&str, &str)]) -> Output {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    run_logged(work, &env, &["-v"])
}

/// Every place a canary might surface, each with its name.
fn leaks(places: &[(&str, String)]) -> Vec<String> {
    let mut out = Vec::new();
    for (what, text) in places {
        for c in canaries() {
            if text.contains(&c) {
                out.push(format!("{c} leaked into {what}:\n{text}"));
            }
        }
    }
    out
}

fn no_auth_across_redirect(s: &Servers) -> Vec<String> {
    s.other
        .seen()
        .iter()
        .filter(|r| r.header("authorization").is_some())
        .map(|r| {
            format!(
                "credentials sent across a redirect to another host: {}",
                r.dump()
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_leaks_from_any_slot() {
    let s = servers();
    let tmp = tempfile::tempdir().unwrap();
    let layout = Path::new(common::LAYOUT_IN_REPO);
    let docker = docker_config(tmp.path(), &s);

    // A GitHub fake that accepts the forge token, and one that echoes it in its errors.
    let gh = MockServer::start().await;
    let fake = GithubFake::new(FORGE_TOKEN);
    mount_fake(&gh, fake.clone()).await;
    let echo_forge = Echo::start(|req, _| {
        let status = if req.line.starts_with("GET") {
            500
        } else {
            401
        };
        (
            status,
            vec![],
            serde_json::json!({"message": format!("Bad credentials: {}", req.dump())}).to_string(),
        )
    });

    // The remote over smart HTTP, behind Basic auth with the git token.
    let projects = tmp.path().join("projects");
    let mut problems = Vec::new();
    for (round, api) in [
        (
            "echoing forge",
            format!("http://127.0.0.1:{}", echo_forge.port),
        ),
        ("accepting forge", gh.uri()),
    ] {
        let delivery = format!(
            "delivery:\n  mode: pull-request\n  forge: github\n  api_url: {api}\n  repository: acme/infra\n  commit:\n    author: {{ name: bot, email: bot@example.invalid }}\n"
        );
        let name = format!("r{}.git", round.len());
        let bare = bare_repo_with_files(
            &projects.join(&name),
            &[
                ("apps/deploy.yaml", deploy(&s).as_bytes()),
                (
                    ".image-updater.yaml",
                    config(&s, layout, &delivery).as_bytes(),
                ),
            ],
        );
        let server = GitHttpServer::start(&projects, Some(("x-access-token", GIT_TOKEN)));
        let work = clone(
            &format!("file://{}", bare.display()),
            &tmp.path().join(format!("work-{}", round.len())),
        );
        write_layout(&work);
        git(&work, &["remote", "set-url", "origin", &server.url(&name)]);
        let key = ssh_key();
        let env = [
            ("CANARY_REG_USER", ENV_USER),
            ("CANARY_REG_PASS", ENV_PASS),
            ("DOCKER_CONFIG", docker.to_str().unwrap()),
            ("IMAGE_UPDATER_FORGE_TOKEN", FORGE_TOKEN),
            ("GITHUB_TOKEN", GH_TOKEN),
            ("IMAGE_UPDATER_GIT_TOKEN", GIT_TOKEN),
            ("IMAGE_UPDATER_SSH_KEY", key.as_str()),
            ("IMAGE_UPDATER_LOG", "debug"),
        ];
        let work2 = work.clone();
        let env2: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let out = tokio::task::spawn_blocking(move || {
            let env: Vec<(&str, &str)> =
                env2.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            run(&work2, &env)
        })
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let report: serde_json::Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("{round}: no JSON report ({e}):\n{stdout}\n{stderr}"));
        // The registries all failed, each with an error; the layout image was delivered.
        let errors = report["errors"].to_string();
        for port in [
            s.env_creds.port,
            s.docker.port,
            s.redirect.port,
            s.bearer.port,
        ] {
            assert!(
                errors.contains(&format!("127.0.0.1:{port}")),
                "{round}: no error for the registry on port {port}:\n{stdout}\n{stderr}"
            );
        }
        let log = git(&bare, &["log", "--all", "--format=%H %s%n%b"]);
        let branches = git(&bare, &["branch", "--list", "--all"]);
        let mut places = vec![
            ("stdout", stdout.clone()),
            ("stderr", stderr.clone()),
            ("commit messages", log),
            ("branch names", branches),
            ("the git server's log", server.log()),
        ];
        if round == "accepting forge" {
            let prs = fake.state().prs.clone();
            assert!(
                !prs.is_empty(),
                "no pull request opened:\n{stdout}\n{stderr}"
            );
            places.push(("pull requests", serde_json::to_string(&prs).unwrap()));
        } else {
            assert!(
                echo_forge
                    .seen()
                    .iter()
                    .any(|r| r.dump().contains(FORGE_TOKEN)),
                "the echoing forge was not called with the forge token"
            );
        }
        for l in leaks(&places) {
            problems.push(format!("{round}: {l}"));
        }
    }
    // Each credential was really sent where it belongs (else the test proves nothing).
    let sent = |e: &Echo, secret: &str| {
        e.seen().iter().any(|r| {
            r.header("authorization").is_some_and(|a| {
                a.contains(secret)
                    || a.strip_prefix("Basic ")
                        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                        .is_some_and(|d| String::from_utf8_lossy(&d).contains(secret))
            })
        })
    };
    assert!(sent(&s.env_creds, ENV_PASS), "env credentials never sent");
    assert!(
        sent(&s.docker, DOCKER_PASS),
        "docker credentials never sent"
    );
    assert!(
        sent(&s.redirect, REDIRECT_PASS),
        "redirect host's credentials never sent"
    );
    assert!(sent(&s.bearer, BEARER), "bearer token never used");
    problems.extend(no_auth_across_redirect(&s));
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

/// `run WORK --output json` with `log_args` (`-v`, `-vv`, `--log-format json`), no
/// `IMAGE_UPDATER_LOG` (the log the user asks for with the flags alone), no credential from
/// the surrounding environment, and `env`.
fn run_logged(work: &Path, env: &[(String, String)], log_args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(["run", work.to_str().unwrap(), "--output", "json"])
        .args(log_args)
        .env("NO_COLOR", "1")
        .env("HOME", work.parent().unwrap())
        .env_remove("IMAGE_UPDATER_LOG")
        .env_remove("IMAGE_UPDATER_LOG_FORMAT");
    for v in [
        "IMAGE_UPDATER_GIT_TOKEN",
        "IMAGE_UPDATER_FORGE_TOKEN",
        "IMAGE_UPDATER_SSH_KEY",
        "GITHUB_TOKEN",
        "GH_TOKEN",
        "GITLAB_TOKEN",
        "CI_JOB_TOKEN",
        "GITEA_TOKEN",
        "GITHUB_ACTIONS",
        "GITLAB_CI",
        "GITHUB_OUTPUT",
        "GITHUB_STEP_SUMMARY",
        "SSH_AUTH_SOCK",
        "DOCKER_CONFIG",
    ] {
        cmd.env_remove(v);
    }
    cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    cmd.output().unwrap()
}

/// The canary runs again with every request logged: `-vv` as text, and `-vv` as JSON lines
/// (`--log-format json`). The request lines (registry, forge, git), the lines quoting the
/// echoing servers' errors and the stage lines are all scanned.
#[tokio::test(flavor = "multi_thread")]
async fn no_secret_leaks_at_vv_or_in_json_logs() {
    let s = servers();
    let tmp = tempfile::tempdir().unwrap();
    let docker = docker_config(tmp.path(), &s);
    let gh = MockServer::start().await;
    let fake = GithubFake::new(FORGE_TOKEN);
    mount_fake(&gh, fake.clone()).await;
    let echo_forge = Echo::start(|req, _| {
        (
            401,
            vec![],
            serde_json::json!({"message": format!("Bad credentials: {}", req.dump())}).to_string(),
        )
    });
    let projects = tmp.path().join("projects");
    let server = GitHttpServer::start(&projects, Some(("x-access-token", GIT_TOKEN)));
    let mut problems = Vec::new();
    let rounds: [(&str, &[&str], String); 4] = [
        (
            "-vv, echoing forge",
            &["-vv"],
            format!("http://127.0.0.1:{}", echo_forge.port),
        ),
        ("-vv, accepting forge", &["-vv"], gh.uri()),
        (
            "JSON logs, echoing forge",
            &["-vv", "--log-format", "json"],
            format!("http://127.0.0.1:{}", echo_forge.port),
        ),
        (
            "JSON logs, accepting forge",
            &["-vv", "--log-format", "json"],
            gh.uri(),
        ),
    ];
    for (n, (round, log_args, api)) in rounds.into_iter().enumerate() {
        let delivery = format!(
            "delivery:\n  mode: pull-request\n  forge: github\n  api_url: {api}\n  repository: acme/infra\n  commit:\n    author: {{ name: bot, email: bot@example.invalid }}\n"
        );
        let name = format!("logged-{n}.git");
        let bare = bare_repo_with_files(
            &projects.join(&name),
            &[
                ("apps/deploy.yaml", deploy(&s).as_bytes()),
                (
                    ".image-updater.yaml",
                    config(&s, Path::new(common::LAYOUT_IN_REPO), &delivery).as_bytes(),
                ),
            ],
        );
        let work = clone(
            &format!("file://{}", bare.display()),
            &tmp.path().join(format!("logged-work-{n}")),
        );
        write_layout(&work);
        git(&work, &["remote", "set-url", "origin", &server.url(&name)]);
        let env: Vec<(String, String)> = [
            ("CANARY_REG_USER", ENV_USER.to_string()),
            ("CANARY_REG_PASS", ENV_PASS.to_string()),
            ("DOCKER_CONFIG", docker.to_str().unwrap().to_string()),
            ("IMAGE_UPDATER_FORGE_TOKEN", FORGE_TOKEN.to_string()),
            ("GITHUB_TOKEN", GH_TOKEN.to_string()),
            ("IMAGE_UPDATER_GIT_TOKEN", GIT_TOKEN.to_string()),
            ("IMAGE_UPDATER_SSH_KEY", ssh_key()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let (work2, args): (PathBuf, Vec<String>) = (
            work.clone(),
            log_args.iter().map(|a| a.to_string()).collect(),
        );
        let out = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run_logged(&work2, &env, &args)
        })
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        serde_json::from_str::<serde_json::Value>(&stdout)
            .unwrap_or_else(|e| panic!("{round}: no JSON report ({e}):\n{stdout}\n{stderr}"));
        // The log holds what it must, or the scan proves nothing: the registry requests, the
        // echoing registries' errors, the forge's calls, the git requests, the stages.
        for needle in [
            "tags/list",
            "tags not listed",
            "you sent GET",
            "GitHub API",
            "git push",
            "resolve: repositories listed",
        ] {
            assert!(
                stderr.contains(needle),
                "{round}: no {needle:?} in the log:\n{stderr}"
            );
        }
        if log_args.contains(&"json") {
            for line in stderr.lines().filter(|l| !l.is_empty()) {
                assert!(
                    serde_json::from_str::<serde_json::Value>(line).is_ok(),
                    "{round}: not one JSON object a line: {line}"
                );
            }
        }
        let places = vec![
            ("stdout", stdout),
            ("stderr", stderr),
            (
                "commit messages",
                git(&bare, &["log", "--all", "--format=%H %s%n%b"]),
            ),
            ("branch names", git(&bare, &["branch", "--list", "--all"])),
        ];
        for l in leaks(&places) {
            problems.push(format!("{round}: {l}"));
        }
    }
    assert!(
        !fake.state().prs.is_empty(),
        "no pull request opened by the accepting forge's rounds"
    );
    problems.extend(no_auth_across_redirect(&s));
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}
