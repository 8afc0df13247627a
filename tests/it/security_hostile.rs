//! Hostile servers (issue 14): a registry whose next page lives on another host, forges that
//! redirect their API to another host, answers without end, listings without end, servers
//! that never answer, and credentials whose text looks like URL syntax. Every server runs on
//! 127.0.0.1; the real distribution registry stands behind the fronts where one is needed.

use crate::common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::forges::{output_text, pr_remote, run_command, seed_registry};
use common::{http_request, HostileServer, Registry, Reply};

/// The end of a run: exit code, stdout, stderr and its peak RSS in KiB.
struct Ended {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    peak_rss_kib: i64,
}

impl Ended {
    fn all(&self) -> String {
        format!(
            "exit {:?}, peak RSS {} KiB\n--- stdout\n{}--- stderr\n{}",
            self.code, self.peak_rss_kib, self.stdout, self.stderr
        )
    }
}

/// Wait for `child` (started by [`measured`]), reading its output; kill its process group if
/// it is still running after `guard` (a hang is a failure here, never a wait of CI's whole
/// budget). The peak RSS is what GNU time measured of the run itself: the wait4 of a child
/// spawned straight from this (large, multi-threaded) test process would count the test's
/// own memory, which exec carries into the child's high-water mark.
fn finish((mut child, rss_file): (Child, tempfile::TempPath), guard: Duration) -> Ended {
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let o = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let e = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > guard {
            // SAFETY: kill(2) on the process group the child leads; no memory is touched.
            unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
            let _ = child.wait();
            panic!(
                "the run did not end within {guard:?}; killed\n--- stderr\n{}",
                e.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let rss = std::fs::read_to_string(&rss_file).unwrap_or_default();
    Ended {
        code: status.code(),
        stdout: o.join().unwrap(),
        stderr: e.join().unwrap(),
        peak_rss_kib: rss
            .trim()
            .lines()
            .last()
            .unwrap_or("")
            .parse()
            .unwrap_or_else(|_| {
                panic!("GNU time wrote no peak RSS ({rss:?}); install it: apt-get install time")
            }),
    }
}

/// `cmd`, run under GNU time (`/usr/bin/time`, Debian's package `time`) in a process group of
/// its own, its output piped; with the file time writes the peak RSS (KiB) to.
fn measured(cmd: &Command) -> (Child, tempfile::TempPath) {
    let time = common::require_program("time", "apt-get install time");
    let rss = tempfile::NamedTempFile::new().unwrap().into_temp_path();
    let mut timed = Command::new(time);
    timed
        .args(["-f", "%M", "-o"])
        .arg(&*rss)
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => timed.env(k, v),
            None => timed.env_remove(k),
        };
    }
    std::os::unix::process::CommandExt::process_group(&mut timed, 0);
    (timed.spawn().unwrap(), rss)
}

/// A work tree (not a git repo: `plan` reads files only) watching `HOST/acme/web` at 1.0.0.
fn plan_tree(dir: &Path, host: &str, extra_config: &str) {
    std::fs::write(
        dir.join(".image-updater.yaml"),
        format!(
            "registries:\n  - host: {host}\n    insecure: true\n    credentials: {{ username_env: REG_USER, password_env: REG_PASS }}\n\
             images:\n  - {{ name: web, image: {host}/acme/web, policy: {{ semver: '^1' }} }}\n{extra_config}"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("deploy.yaml"),
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{ name: web }}\nspec:\n  template:\n    spec:\n      containers:\n        - name: web\n          image: {host}/acme/web:1.0.0\n"
        ),
    )
    .unwrap();
}

/// `plan DIR --output json` with registry credentials in the environment (the config's
/// `REG_USER`/`REG_PASS`, unless `env` sets others), started under [`measured`].
fn plan(dir: &Path, env: &[(&str, &str)]) -> (Child, tempfile::TempPath) {
    let mut cmd = Command::new(common::test_bin());
    cmd.args(["plan", dir.to_str().unwrap(), "--output", "json"])
        .env("NO_COLOR", "1")
        .env("HOME", dir)
        .env("REG_USER", USER)
        .env("REG_PASS", PASS)
        .env_remove("DOCKER_CONFIG")
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITLAB_CI")
        .env_remove("IMAGE_UPDATER_REGISTRY_DEADLINE")
        .env_remove("IMAGE_UPDATER_LOG");
    cmd.envs(env.iter().copied());
    measured(&cmd)
}

fn report(e: &Ended) -> serde_json::Value {
    serde_json::from_str(&e.stdout).unwrap_or_else(|err| panic!("not JSON ({err}):\n{}", e.all()))
}

/// The messages of the report's errors, joined.
fn errors(e: &Ended) -> String {
    report(e)["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["message"].as_str().unwrap_or("").to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

const USER: &str = "cnry-hostile-user";
const PASS: &str = "cnry-hostile-pass";

/// Item 1: the real registry behind Basic auth, fronted by a server that adds a `Link` to the
/// first tag page naming another host. The run refuses that page, naming the registry; the
/// other host sees no request at all (so no credential), and its tag 1.9.0 is not used.
#[test]
fn a_next_page_link_to_another_host_is_refused_and_gets_nothing() {
    let registry = Registry::start_with_basic_auth(USER, PASS);
    registry.push_image("acme/web", &["1.0.0", "1.1.0"]);
    let evil = HostileServer::start(|req, _| {
        let body = if req.path().ends_with("/tags/list") {
            r#"{"name":"acme/web","tags":["1.9.0"]}"#
        } else {
            "{}"
        };
        Reply::json(200, body)
    });
    let (upstream, evil_port) = (registry.addr.clone(), evil.port);
    let front = HostileServer::start(move |req, _| {
        let forward: Vec<(&str, &str)> = req
            .headers
            .iter()
            .filter(|(k, _)| {
                k.eq_ignore_ascii_case("authorization") || k.eq_ignore_ascii_case("accept")
            })
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let r = http_request(&upstream, &req.method, &req.target, &forward, b"");
        let mut headers: Vec<(String, String)> = r
            .headers
            .iter()
            .filter(|(k, _)| {
                k.eq_ignore_ascii_case("www-authenticate") || k.eq_ignore_ascii_case("content-type")
            })
            .cloned()
            .collect();
        if r.status == 200 && req.path().ends_with("/tags/list") {
            headers.push((
                "Link".into(),
                format!("<http://127.0.0.1:{evil_port}/v2/acme/web/tags/list?n=1000&last=1.1.0>; rel=\"next\""),
            ));
        }
        Reply::Full(r.status, headers, r.body)
    });
    let tmp = tempfile::tempdir().unwrap();
    plan_tree(tmp.path(), &front.addr, "");
    let ended = finish(
        plan(tmp.path(), &[("REG_USER", USER), ("REG_PASS", PASS)]),
        Duration::from_secs(120),
    );
    assert!(
        evil.seen().is_empty(),
        "the other host was contacted: {:?}",
        evil.seen()
    );
    assert_eq!(ended.code, Some(1), "{}", ended.all());
    let msg = errors(&ended);
    assert!(
        msg.contains(&front.addr) && msg.contains("another host"),
        "the error names the registry and the refusal: {}",
        ended.all()
    );
    assert!(!ended.stdout.contains("1.9.0"), "{}", ended.all());
    assert!(
        front
            .seen()
            .iter()
            .any(|r| r.header("authorization").is_some()),
        "the front (the registry) did get the credentials: {:?}",
        front.seen()
    );
}

/// Item 2: each forge's API answers every call with a redirect to another host, which
/// records what reaches it. Nothing does: not GitLab's `PRIVATE-TOKEN`, not a Bearer token,
/// not even the request. The run fails (exit 1) and says where the redirect pointed.
#[test]
fn forge_tokens_never_follow_a_redirect_to_another_host() {
    let registry = Registry::start();
    seed_registry(&registry);
    for (forge, token_var, api_path) in [
        ("gitlab", "GITLAB_TOKEN", "/api/v4"),
        ("github", "GITHUB_TOKEN", ""),
        ("gitea", "GITEA_TOKEN", "/api/v1"),
    ] {
        let token = format!("cnry-{forge}-redirect-token-9d1f");
        let elsewhere = HostileServer::start(|_, _| Reply::json(200, "[]"));
        let target = elsewhere.port;
        let api = HostileServer::start(move |req, _| {
            Reply::redirect(307, &format!("http://127.0.0.1:{target}{}", req.target))
        });
        let tmp = tempfile::tempdir().unwrap();
        let bare = pr_remote(
            tmp.path(),
            &registry.addr,
            &format!(
                "  mode: pull-request\n  forge: {forge}\n  api_url: http://{}{api_path}\n  repository: acme/infra\n",
                api.addr
            ),
        );
        let work = common::clone(
            &format!("file://{}", bare.display()),
            &tmp.path().join("work"),
        );
        let o = run_command(&work, &[(token_var, token.as_str())])
            .output()
            .unwrap();
        let all = output_text(&o);
        assert!(
            elsewhere.seen().is_empty(),
            "{forge}: a request reached the other host: {:?}",
            elsewhere.seen()
        );
        assert_eq!(o.status.code(), Some(1), "{forge}: {all}");
        assert!(
            !all.contains(&token),
            "{forge}: the token was printed: {all}"
        );
        assert!(
            all.contains("another host") && all.contains(&elsewhere.addr),
            "{forge}: the refusal names where the redirect pointed: {all}"
        );
        assert!(
            !api.seen().is_empty(),
            "{forge}: the forge was not called: {all}"
        );
    }
}

/// A tag-list body of `bytes` bytes: `{"name":"acme/web","tags":["1.0.0","t0000001",...]}`,
/// written in 64 KiB pieces, never held whole.
fn endless_tag_body(bytes: u64) -> common::HostileStream {
    let mut written = 0u64;
    let mut n = 0u64;
    Box::new(move |out: &mut dyn Write| {
        if written == 0 {
            let head = br#"{"name":"acme/web","tags":["1.0.0""#;
            out.write_all(head)?;
            written += head.len() as u64;
        }
        let mut chunk = String::with_capacity(70_000);
        while chunk.len() < 65_536 {
            n += 1;
            chunk.push_str(&format!(",\"t{n:010}\""));
        }
        out.write_all(chunk.as_bytes())?;
        written += chunk.len() as u64;
        if written >= bytes {
            out.write_all(b"]}")?;
            return Ok(false);
        }
        Ok(true)
    })
}

/// A registry host answering `/v2/` and streaming a 500 MB tag list, with or without a
/// `Content-Length`.
fn huge_tag_list(declared: bool) -> HostileServer {
    const SIZE: u64 = 500 * 1000 * 1000;
    HostileServer::start(move |req, _| {
        if !req.path().ends_with("/tags/list") {
            return Reply::json(200, "{}");
        }
        let mut headers = vec![("Content-Type".to_string(), "application/json".to_string())];
        if declared {
            headers.push(("Content-Length".into(), (SIZE + 2).to_string()));
        }
        Reply::Stream(200, headers, endless_tag_body(SIZE))
    })
}

/// Item 4: a 500 MB tag list ends with an error naming the registry and the limit, well under
/// 200 MB of memory (it took 1 GB before), whether or not its size is announced.
#[test]
fn a_500_mb_tag_list_ends_with_an_error_in_bounded_memory() {
    for declared in [true, false] {
        let server = huge_tag_list(declared);
        let tmp = tempfile::tempdir().unwrap();
        plan_tree(tmp.path(), &server.addr, "");
        let ended = finish(plan(tmp.path(), &[]), Duration::from_secs(120));
        println!(
            "500 MB tag list (Content-Length {}): peak RSS {} KiB",
            if declared { "sent" } else { "absent" },
            ended.peak_rss_kib
        );
        assert_eq!(ended.code, Some(1), "{}", ended.all());
        let msg = errors(&ended);
        assert!(
            msg.contains(&server.addr) && msg.contains("limits.response_bytes"),
            "{}",
            ended.all()
        );
        assert!(ended.peak_rss_kib < 200 * 1024, "{}", ended.all());
    }
}

/// Item 4: a listing without end (each page 1,000 new tags and a link to the next) stops at
/// `limits.tags_per_repository` with an error, in bounded memory (it took 3 GB before). A
/// lowered limit stops it sooner, and within the limit the same listing is read whole.
#[test]
fn endless_pagination_stops_at_the_tag_limit() {
    let server = HostileServer::start(|req, _| {
        if !req.path().ends_with("/tags/list") {
            return Reply::json(200, "{}");
        }
        let page: u64 = req
            .target
            .split("page=")
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let tags: Vec<String> = (0..1000).map(|i| format!("1.{page}.{i}")).collect();
        let body = serde_json::json!({"name": "acme/web", "tags": tags}).to_string();
        Reply::Full(
            200,
            vec![
                ("Content-Type".into(), "application/json".into()),
                (
                    "Link".into(),
                    format!(
                        "</v2/acme/web/tags/list?n=1000&page={}>; rel=\"next\"",
                        page + 1
                    ),
                ),
            ],
            body.into_bytes(),
        )
    });
    for (limits, pages) in [("", 100), ("limits: { tags_per_repository: 5000 }\n", 5)] {
        let tmp = tempfile::tempdir().unwrap();
        plan_tree(tmp.path(), &server.addr, limits);
        let before = server.seen().len();
        let ended = finish(plan(tmp.path(), &[]), Duration::from_secs(300));
        println!(
            "endless pagination ({limits:?}): peak RSS {} KiB",
            ended.peak_rss_kib
        );
        assert_eq!(ended.code, Some(1), "{}", ended.all());
        assert!(
            errors(&ended).contains("limits.tags_per_repository")
                && errors(&ended).contains(&server.addr),
            "{}",
            ended.all()
        );
        let listed = server.seen()[before..]
            .iter()
            .filter(|r| r.path().ends_with("/tags/list"))
            .count();
        assert_eq!(listed, pages, "{}", ended.all());
        assert!(ended.peak_rss_kib < 200 * 1024, "{}", ended.all());
    }
}

/// Item 8: a registry that accepts connections and never answers. With `limits.run_seconds: 3`
/// the run ends with an error naming the registry and the deadline, instead of waiting
/// timeout × attempts (30 s × 5 by default).
#[test]
fn a_registry_that_never_answers_ends_at_the_run_deadline() {
    let server = HostileServer::start(|_, _| Reply::Silence);
    let tmp = tempfile::tempdir().unwrap();
    plan_tree(tmp.path(), &server.addr, "limits: { run_seconds: 3 }\n");
    let start = Instant::now();
    // The guard is far above 3 s (a loaded machine) and far below 150 s (no deadline).
    let ended = finish(plan(tmp.path(), &[]), Duration::from_secs(60));
    println!("never answering: ended after {:?}", start.elapsed());
    assert_eq!(ended.code, Some(1), "{}", ended.all());
    let msg = errors(&ended);
    assert!(
        msg.contains(&server.addr) && msg.contains("deadline"),
        "{}",
        ended.all()
    );
}

/// Item 7: the registry user name travels in the token request's `account=`; a token
/// service that fails (and is retried) must not bring it into debug or trace logs.
#[test]
fn the_registry_user_stays_out_of_debug_and_trace_logs() {
    let user = "cnry-account-user-71e0";
    let server = HostileServer::start(|req, port| {
        if req.path() == "/token" {
            return Reply::json(
                503,
                r#"{"errors":[{"code":"UNAVAILABLE","message":"later"}]}"#,
            );
        }
        Reply::Full(
            401,
            vec![(
                "WWW-Authenticate".into(),
                format!("Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"svc\""),
            )],
            b"{}".to_vec(),
        )
    });
    for env in [
        vec![("IMAGE_UPDATER_LOG", "debug")],
        vec![("IMAGE_UPDATER_LOG", "trace")],
    ] {
        let tmp = tempfile::tempdir().unwrap();
        plan_tree(tmp.path(), &server.addr, "");
        let mut env = env.clone();
        env.extend([("REG_USER", user), ("REG_PASS", "cnry-account-pass-71e0")]);
        env.push(("IMAGE_UPDATER_REGISTRY_ATTEMPTS", "2"));
        let ended = finish(plan(tmp.path(), &env), Duration::from_secs(120));
        assert_eq!(ended.code, Some(1), "{}", ended.all());
        assert!(
            ended.stderr.contains("retrying"),
            "the retry is logged: {}",
            ended.all()
        );
        assert!(
            server.seen().iter().any(|r| r.target.contains(user)),
            "the token service did get the account: {:?}",
            server.seen()
        );
        let all = ended.all();
        assert!(!all.contains(user), "the user name leaked: {all}");
        assert!(
            !all.contains("cnry-account-pass"),
            "the password leaked: {all}"
        );
    }
}

/// Item 7: a remote URL whose password looks like URL syntax (a raw `/`, an `@`, an encoded
/// `%2F`), refused by a real git smart-HTTP server: the error names the remote without it.
#[test]
fn url_shaped_passwords_in_a_remote_url_are_never_printed() {
    let tmp = tempfile::tempdir().unwrap();
    common::bare_repo_with_files(&tmp.path().join("infra.git"), &[("a.yaml", b"a: 1\n")]);
    let server = common::GitHttpServer::start(tmp.path(), Some(("bot", "the-right-password")));
    for pass in ["cnry/pa/ss-8e1", "cnry@pa@ss-8e1", "cnry%2Fpa%40ss-8e1"] {
        let url = format!("http://bot:{pass}@{}/git/infra.git", server.addr);
        let o = Command::new(common::test_bin())
            .args(["plan", "--clone", &url, "--output", "json"])
            .env("NO_COLOR", "1")
            .env("IMAGE_UPDATER_LOG", "trace")
            .env_remove("IMAGE_UPDATER_GIT_TOKEN")
            .env_remove("GITHUB_TOKEN")
            .env_remove("GITLAB_TOKEN")
            .env_remove("GITEA_TOKEN")
            .output()
            .unwrap();
        let all = output_text(&o);
        assert_ne!(o.status.code(), Some(0), "{all}");
        let decoded = pass.replace("%2F", "/").replace("%40", "@");
        for shape in [pass, decoded.as_str(), "pa/ss-8e1", "pa@ss-8e1", "ss-8e1"] {
            assert!(!all.contains(shape), "{shape:?} of {pass:?} leaked: {all}");
        }
    }
}
