//! `mode: pull-request` over each kind of git remote — file://, smart HTTP behind Basic auth
//! (`IMAGE_UPDATER_GIT_TOKEN`), and SSH (`IMAGE_UPDATER_SSH_KEY` with the host key checked
//! against `IMAGE_UPDATER_SSH_KNOWN_HOSTS`) — against the stateful GitHub fake.
//!
//! Each runs the same story: the first run force-pushes a branch per image and opens their pull
//! requests; the second finds both, pushes nothing and opens nothing; then another process
//! pushes a different commit to our web branch (a lost race), and the next run fetches it,
//! sees the content differs, force-pushes ours over it and updates the same pull request.

use crate::common;

use std::path::{Path, PathBuf};

use common::forges::{
    expect_actions, mount_fake, ok_report, pr_actions, pr_remote, run_async, seed_registry,
    GithubFake,
};
use common::{git, GitHttpServer, Registry, SshServer};
use wiremock::MockServer;

const FORGE_TOKEN: &str = "ghp-forge-token-never-printed";
const GIT_TOKEN: &str = "git-push-token-never-printed";

struct Setup {
    _tmp: tempfile::TempDir,
    bare: PathBuf,
    work: PathBuf,
    registry: Registry,
    _server: MockServer,
    fake: GithubFake,
}

/// The registry, the GitHub fake, and a bare repo below `root` (or a temp dir) with a clone.
async fn setup(root: Option<&Path>) -> Setup {
    let registry = Registry::start();
    seed_registry(&registry);
    let server = MockServer::start().await;
    let fake = GithubFake::new(FORGE_TOKEN);
    mount_fake(&server, fake.clone()).await;
    let tmp = tempfile::tempdir().unwrap();
    let bare = pr_remote(
        root.unwrap_or(tmp.path()),
        &registry.addr,
        &format!(
            "  mode: pull-request\n  forge: github\n  api_url: {}\n  repository: acme/infra\n",
            server.uri()
        ),
    );
    let work = common::clone(
        &format!("file://{}", bare.display()),
        &tmp.path().join("work"),
    );
    Setup {
        _tmp: tmp,
        bare,
        work,
        registry,
        _server: server,
        fake,
    }
}

/// Another process moves `branch` of the bare repo to a commit of its own on top of it:
/// `apps/web.yaml` with web at 1.1.0 (what a slower, older run would have written).
fn rival_push(bare: &Path, branch: &str, scratch: &Path) -> String {
    let rival = common::clone(&format!("file://{}", bare.display()), scratch);
    git(&rival, &["checkout", "-q", branch]);
    let web = rival.join("apps/web.yaml");
    let text = std::fs::read_to_string(&web)
        .unwrap()
        .replace("acme/web:1.2.0", "acme/web:1.1.0");
    std::fs::write(&web, text).unwrap();
    git(&rival, &["commit", "-qam", "a rival's commit"]);
    git(&rival, &["push", "-q", "origin", branch]);
    git(bare, &["rev-parse", branch]).trim().to_string()
}

fn tip(bare: &Path, branch: &str) -> String {
    git(bare, &["rev-parse", branch]).trim().to_string()
}

/// The story every remote kind goes through; `env` holds the git credentials for the remote.
async fn two_runs_and_a_lost_race(s: &Setup, env: &[(&str, &str)]) {
    let mut env = env.to_vec();
    env.push(("GITHUB_TOKEN", FORGE_TOKEN));
    let secrets = [FORGE_TOKEN, GIT_TOKEN];
    let main_before = tip(&s.bare, "main");

    // 1: created, one branch and pull request per image; main untouched.
    let r = ok_report(&run_async(&s.work, &env).await, &secrets);
    assert_eq!(
        pr_actions(&r),
        expect_actions(&[
            ("image-updater/api", 1, "created"),
            ("image-updater/web", 2, "created")
        ])
    );
    assert_eq!(tip(&s.bare, "main"), main_before);
    assert_eq!(tip(&s.bare, "image-updater/web~1"), main_before);
    assert!(git(&s.bare, &["show", "image-updater/web:apps/web.yaml"]).contains("acme/web:1.2.0"));
    let web_tip = tip(&s.bare, "image-updater/web");
    let api_tip = tip(&s.bare, "image-updater/api");

    // 2: again: found, unchanged, nothing pushed, no second pull request.
    let r = ok_report(&run_async(&s.work, &env).await, &secrets);
    assert_eq!(
        pr_actions(&r),
        expect_actions(&[
            ("image-updater/api", 1, "unchanged"),
            ("image-updater/web", 2, "unchanged")
        ])
    );
    assert_eq!(tip(&s.bare, "image-updater/web"), web_tip);
    assert_eq!(tip(&s.bare, "image-updater/api"), api_tip);
    assert_eq!(s.fake.state().prs.len(), 2);

    // 3: a rival commit lands on our web branch: ours is force-pushed over it and the same
    // pull request is reported updated.
    let scratch = s.work.parent().unwrap().join("rival");
    let rival = rival_push(&s.bare, "image-updater/web", &scratch);
    assert_ne!(rival, web_tip);
    let r = ok_report(&run_async(&s.work, &env).await, &secrets);
    assert_eq!(
        pr_actions(&r),
        expect_actions(&[
            ("image-updater/api", 1, "unchanged"),
            ("image-updater/web", 2, "updated")
        ])
    );
    let now = tip(&s.bare, "image-updater/web");
    assert_ne!(now, rival, "the rival commit was replaced");
    assert_eq!(
        tip(&s.bare, "image-updater/web~1"),
        main_before,
        "ours sits on the base again, not on the rival's commit"
    );
    assert!(git(&s.bare, &["show", "image-updater/web:apps/web.yaml"]).contains("acme/web:1.2.0"));
    assert_eq!(tip(&s.bare, "image-updater/api"), api_tip);
    let gh = s.fake.state();
    assert_eq!(gh.prs.len(), 2, "never a second pull request");
    assert!(gh.problems.is_empty(), "{:#?}", gh.problems);
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_requests_over_a_file_remote() {
    let s = setup(None).await;
    two_runs_and_a_lost_race(&s, &[]).await;
}

/// Smart HTTP behind Basic auth: the push carries `x-access-token` and the git token, which
/// never shows; an unchanged run does not push.
#[tokio::test(flavor = "multi_thread")]
async fn pull_requests_over_smart_http_with_a_token() {
    let root = tempfile::tempdir().unwrap();
    let http = GitHttpServer::start(root.path(), Some(("x-access-token", GIT_TOKEN)));
    let s = setup(Some(root.path())).await;
    git(
        &s.work,
        &["remote", "set-url", "origin", &http.url("remote.git")],
    );

    // Without a git token (the forge's GITHUB_TOKEN is offered, and the server does not take
    // it) the branch cannot be fetched or pushed, and no pull request is opened.
    let o = run_async(&s.work, &[("GITHUB_TOKEN", FORGE_TOKEN)]).await;
    common::forges::assert_no_secret(&o, &[FORGE_TOKEN]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        common::forges::output_text(&o)
    );
    assert!(s.fake.state().prs.is_empty());
    assert_eq!(
        git(
            &s.bare,
            &["for-each-ref", "--format=%(refname)", "refs/heads"]
        )
        .trim(),
        "refs/heads/main"
    );

    let pushes_before = http
        .request_log()
        .iter()
        .filter(|r| r.method == "POST" && r.path.contains("git-receive-pack"))
        .count();
    two_runs_and_a_lost_race(&s, &[("IMAGE_UPDATER_GIT_TOKEN", GIT_TOKEN)]).await;
    let pushes: Vec<_> = http
        .request_log()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.contains("git-receive-pack"))
        .skip(pushes_before)
        .collect();
    // Run 1 pushes api and web, run 2 nothing, run 3 web again.
    assert_eq!(pushes.len(), 3, "{:#?}", http.requests());
    for p in &pushes {
        assert_eq!(p.auth, common::SeenAuth::Valid, "{p}");
        assert_eq!(p.user.as_deref(), Some("x-access-token"), "{p}");
    }
}

/// SSH with the key from the environment (a path, and the key text) and the host key checked.
#[tokio::test(flavor = "multi_thread")]
async fn pull_requests_over_ssh_with_a_key() {
    let sshd = SshServer::start();
    let s = setup(None).await;
    git(
        &s.work,
        &["remote", "set-url", "origin", &sshd.url(&s.bare)],
    );
    let key = sshd.client_key.to_str().unwrap().to_string();
    let known = sshd.known_hosts.to_str().unwrap().to_string();

    // An unknown host key: refused before anything is pushed or opened.
    let empty = s.work.parent().unwrap().join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let o = run_async(
        &s.work,
        &[
            ("GITHUB_TOKEN", FORGE_TOKEN),
            ("IMAGE_UPDATER_SSH_KEY", &key),
            ("IMAGE_UPDATER_SSH_KNOWN_HOSTS", empty.to_str().unwrap()),
        ],
    )
    .await;
    let text = common::forges::output_text(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    // The first contact in this mode is a fetch, whose error is libgit2's "unknown remote ssh
    // hostkey" rather than the push's explanation (which names IMAGE_UPDATER_SSH_KNOWN_HOSTS).
    assert!(
        text.contains("host key") || text.contains("hostkey"),
        "{text}"
    );
    assert!(s.fake.state().prs.is_empty());

    two_runs_and_a_lost_race(
        &s,
        &[
            ("IMAGE_UPDATER_SSH_KEY", &key),
            ("IMAGE_UPDATER_SSH_KNOWN_HOSTS", &known),
        ],
    )
    .await;

    // The key as text, as CI secrets hold it: a newer tag moves the same pull request.
    s.registry.push_image("acme/web", &["1.2.1"]);
    let key_text = std::fs::read_to_string(&sshd.client_key).unwrap();
    let o = run_async(
        &s.work,
        &[
            ("GITHUB_TOKEN", FORGE_TOKEN),
            ("IMAGE_UPDATER_SSH_KEY", &key_text),
            ("IMAGE_UPDATER_SSH_KNOWN_HOSTS", &known),
        ],
    )
    .await;
    common::forges::assert_no_secret(&o, &["PRIVATE KEY"]);
    let r = ok_report(&o, &[FORGE_TOKEN]);
    assert_eq!(
        pr_actions(&r),
        expect_actions(&[
            ("image-updater/api", 1, "unchanged"),
            ("image-updater/web", 2, "updated")
        ]),
        "sshd log:\n{}",
        sshd.log()
    );
    assert!(git(&s.bare, &["show", "image-updater/web:apps/web.yaml"]).contains("acme/web:1.2.1"));
}
