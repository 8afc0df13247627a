//! `mode: pull-request` end to end on every forge: the real registry, a real git remote over
//! smart HTTP (as production pushes), and a stateful fake of the forge's API ([`common::forges::ForgeFake`]: GitHub REST
//! v3, GitLab API v4, Gitea API v1, Bitbucket Cloud API 2.0, Bitbucket Data Center REST, Azure
//! DevOps REST 7.1) that checks every call's method, path, query, auth header and JSON body and
//! answers in that forge's shapes (GitHub 422, Bitbucket Cloud 400, the others 409 on a
//! duplicate). Each scenario runs once per forge; a failure names the forge. What a forge does
//! not have (labels, assignees, auto-merge on Bitbucket; assignees on Azure DevOps) is left out
//! with a warning, and the scenarios check exactly that.

use crate::common;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::Path;

use common::forges::{
    assert_refused_without_leak, expect_actions, fixture, ok_report, output_text, pr_actions,
    pr_remote, run_async as run, seed_registry, Forge, ForgeFake, GitlabFake,
};
use common::{git, GitHttpServer, Registry};
use futures::FutureExt;
use wiremock::MockServer;

const TOKEN: &str = "forge-test-token-never-printed";
const JOB_TOKEN: &str = "glcbt-job-token-never-printed";

/// Run `scenario` for each of the six forges (all of them, even after a failure) and fail
/// naming the forges it failed on.
async fn on_every_forge<F, Fut>(scenario: F)
where
    F: Fn(Forge) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut failed = Vec::new();
    for forge in Forge::ALL {
        if let Err(panic) = AssertUnwindSafe(scenario(forge)).catch_unwind().await {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failed.push(format!("{}: {why}", forge.name()));
        }
    }
    assert!(failed.is_empty(), "failed on:\n{}", failed.join("\n\n"));
}

/// A registry with the `commit-basic` tags, the forge's fake, and a clone of a remote whose
/// config has `delivery` (given the fake's URI).
struct Setup {
    registry: Registry,
    fake: ForgeFake,
    /// Keeps the fake served.
    server: MockServer,
    bare: std::path::PathBuf,
    work: std::path::PathBuf,
    /// The remote's URL: smart HTTP, as production pushes.
    url: String,
    /// Serves the remote.
    _git: GitHttpServer,
    tmp: tempfile::TempDir,
}

async fn setup(forge: Forge, delivery: impl Fn(&str) -> String) -> Setup {
    let registry = Registry::start();
    seed_registry(&registry);
    let (fake, server) = ForgeFake::start(forge, TOKEN).await;
    let tmp = tempfile::tempdir().unwrap();
    let bare = pr_remote(tmp.path(), &registry.addr, &delivery(&server.uri()));
    let git = GitHttpServer::start(tmp.path(), None);
    let url = format!("{}/remote.git", git.base_url);
    let work = common::clone(&url, &tmp.path().join("work"));
    Setup {
        registry,
        fake,
        server,
        bare,
        work,
        url,
        _git: git,
        tmp,
    }
}

/// The web page of pull request `n` as the fake reports it.
fn pr_url(forge: Forge, n: u64) -> String {
    match forge {
        Forge::Github => format!("https://github.example/acme/infra/pull/{n}"),
        Forge::Gitlab => {
            format!("https://gitlab.example.com/acme/platform/infra/-/merge_requests/{n}")
        }
        Forge::Gitea => format!("https://git.example.com/acme/infra/pulls/{n}"),
        Forge::BitbucketCloud => format!("https://bitbucket.example/acme/infra/pull-requests/{n}"),
        Forge::BitbucketDc => {
            format!("https://bitbucket.example.com/projects/ACME/repos/infra/pull-requests/{n}")
        }
        Forge::Azure => {
            format!("https://dev.azure.example/acme/platform/_git/infra/pullrequest/{n}")
        }
    }
}

/// Whether `call` is a write to pull request `n` (or its issue).
fn writes_to(call: &str, n: u64) -> bool {
    let call = call
        .split('?')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    !call.starts_with("get ")
        && [
            format!("/pulls/{n}"),
            format!("/issues/{n}"),
            format!("/merge_requests/{n}"),
            format!("/pullrequests/{n}"),
            format!("/pull-requests/{n}"),
        ]
        .iter()
        .any(|p| call.contains(&format!("{p}/")) || call.ends_with(p.as_str()))
}

/// Whether `call` (as a fake notes it) opens a pull request.
fn creates(call: &str) -> bool {
    let path = call.split('?').next().unwrap_or_default();
    call.starts_with("POST ")
        && [
            "/pulls",
            "/merge_requests",
            "/pullrequests",
            "/pull-requests",
        ]
        .iter()
        .any(|p| path.ends_with(p))
}

/// Whether `call` comments on pull request `n`.
fn comments_on(call: &str, n: u64) -> bool {
    let path = call.split('?').next().unwrap_or_default();
    call.starts_with("POST ")
        && [
            format!("/issues/{n}/comments"),
            format!("/{n}/notes"),
            format!("/pullrequests/{n}/comments"),
            format!("/pull-requests/{n}/comments"),
            format!("/pullRequests/{n}/threads"),
        ]
        .iter()
        .any(|p| path.ends_with(p.as_str()))
}

/// Whether `call` closes (Bitbucket: declines) pull request `n`.
fn closes(call: &str, n: u64) -> bool {
    let path = call.split('?').next().unwrap_or_default();
    let edit = (call.starts_with("PATCH ") || call.starts_with("PUT "))
        && [
            format!("/pulls/{n}"),
            format!("/merge_requests/{n}"),
            format!("/pullrequests/{n}"),
        ]
        .iter()
        .any(|p| path.ends_with(p.as_str()));
    edit || (call.starts_with("POST ") && path.ends_with(&format!("/{n}/decline")))
}

/// Five runs against one stateful forge: two draft pull requests are created with labels,
/// a reviewer, an assignee and auto-merge; the second run changes nothing; a stranger's commit
/// on our branch is pushed over; a newer tag moves the same pull request (still a draft); a
/// hand merge closes it with a comment; then a create that loses a race (a concurrent run's
/// pull request not yet listed) is refused as a duplicate and the existing one is used.
#[tokio::test(flavor = "multi_thread")]
async fn pull_requests_are_created_kept_moved_closed_and_adopted() {
    on_every_forge(lifecycle).await;
}

async fn lifecycle(forge: Forge) {
    let s = setup(forge, |uri| {
        forge.delivery(
            uri,
            &format!("  pull_request: {{ labels: [dependencies, images], reviewers: [\"{}\"], assignees: [bob], draft: true, auto_merge: true }}\n", forge.reviewer("alice")),
        )
    })
    .await;
    let (fake, bare, work) = (&s.fake, &s.bare, &s.work);
    let env = [(forge.token_env(), TOKEN)];
    let draft = forge.draft_prefix();
    let main_before = git(bare, &["rev-parse", "main"]);

    // 1: two pull requests, one per image, with labels, reviewer, assignee and auto-merge;
    // main untouched.
    let o = run(work, &env).await;
    let r = ok_report(&o, &[TOKEN]);
    assert_eq!(
        pr_actions(&r),
        expect_actions(&[
            ("image-updater/api", 1, "created"),
            ("image-updater/web", 2, "created")
        ])
    );
    // What the forge does not have is said, not done.
    let stderr = String::from_utf8_lossy(&o.stderr);
    for (has, setting) in [
        (forge.has_labels(), "delivery.pull_request.labels"),
        (forge.has_assignees(), "delivery.pull_request.assignees"),
        (forge.has_auto_merge(), "delivery.pull_request.auto_merge"),
    ] {
        assert_eq!(
            stderr.contains(&format!("{setting} is not applied")),
            !has,
            "{setting}:\n{stderr}"
        );
    }
    let urls: Vec<&str> = r["pull_requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["url"].as_str().unwrap())
        .collect();
    assert!(urls.contains(&pr_url(forge, 2).as_str()), "{urls:?}");
    assert_eq!(
        git(bare, &["rev-parse", "main"]),
        main_before,
        "the base is not pushed to"
    );
    assert_eq!(
        git(work, &["status", "--porcelain"]),
        "",
        "the work tree is not written"
    );
    let web_file = git(bare, &["show", "image-updater/web:apps/web.yaml"]);
    assert_eq!(
        web_file.as_bytes(),
        std::fs::read(fixture("commit-basic/expected/apps/web.yaml")).unwrap()
    );
    let multi_on_web = git(bare, &["show", "image-updater/web:apps/multi.yaml"]);
    assert_eq!(
        multi_on_web.as_bytes(),
        std::fs::read(fixture("commit-basic/input/apps/multi.yaml")).unwrap(),
        "the web branch holds only web's update"
    );
    assert_eq!(
        git(bare, &["rev-parse", "image-updater/web~1"]),
        main_before,
        "branched from the base"
    );
    assert!(fake.problems().is_empty(), "{:#?}", fake.problems());
    let prs = fake.prs();
    assert_eq!(prs.len(), 2);
    let web = fake.pr("image-updater/web");
    assert_eq!(web.base, "main");
    assert_eq!(
        web.title,
        format!("{draft}chore(images): update web to 1.2.0")
    );
    assert!(web.draft);
    assert!(web.body.contains("| `registry.example.com/acme/web` | `1.0.0` | `1.2.0` | `apps/web.yaml:11`, `apps/web.yaml:14` |"), "{}", web.body);
    assert!(web.body.contains("<!-- image-updater -->"), "{}", web.body);
    let none: &[&str] = &[];
    for pr in &prs {
        let labels: &[&str] = if forge.has_labels() {
            &["dependencies", "images"]
        } else {
            none
        };
        assert_eq!(pr.labels, labels, "{pr:?}");
        assert_eq!(pr.reviewers, ["alice"], "{pr:?}");
        let assignees: &[&str] = if forge.has_assignees() {
            &["bob"]
        } else {
            none
        };
        assert_eq!(pr.assignees, assignees, "{pr:?}");
    }
    let merged: &[u64] = if forge.has_auto_merge() { &[1, 2] } else { &[] };
    assert_eq!(fake.auto_merge(), merged);
    match fake {
        ForgeFake::Gitlab(gl) => {
            // Every call named the project by its URL-encoded path.
            let gl = gl.state();
            assert!(
                gl.calls
                    .iter()
                    .filter(|c| c.contains("/projects/"))
                    .all(|c| c.contains("/api/v4/projects/acme%2Fplatform%2Finfra/")),
                "{:#?}",
                gl.calls
            );
        }
        ForgeFake::Gitea(gt) => {
            let gt = gt.state();
            assert_eq!(
                gt.labels,
                [(1, "dependencies".to_string()), (2, "images".to_string())],
                "the missing label is created once"
            );
            assert_eq!(gt.issue_labels, [(1, vec![1, 2]), (2, vec![1, 2])]);
            assert_eq!(
                gt.auto_merge,
                [(1, "squash".to_string()), (2, "squash".to_string())],
                "the repository's default merge style"
            );
        }
        ForgeFake::Azure(az) => {
            // Every call named the API version and the repository by project and name, and
            // sent the PAT as Basic.
            let az = az.state();
            assert!(az.schemes.iter().all(|s| s == "Basic"), "{:?}", az.schemes);
            assert!(
                az.calls.iter().all(|c| c.contains("api-version=7.1")
                    && c.contains("/acme/platform/_apis/git/repositories/infra/")),
                "{:#?}",
                az.calls
            );
        }
        ForgeFake::BitbucketDc(dc) => {
            // Reviewers are participants with role REVIEWER, one call each.
            assert_eq!(
                dc.state().reviewers,
                [
                    (1, vec!["alice".to_string()]),
                    (2, vec!["alice".to_string()])
                ]
            );
        }
        ForgeFake::Github(_) | ForgeFake::BitbucketCloud(_) => {}
    }
    let web_tip = git(bare, &["rev-parse", "image-updater/web"]);

    // 2: nothing new: both unchanged, nothing pushed, nothing written to the forge.
    let before = fake.calls().len();
    let r = ok_report(&run(work, &env).await, &[TOKEN]);
    assert_eq!(
        pr_actions(&r),
        expect_actions(&[
            ("image-updater/api", 1, "unchanged"),
            ("image-updater/web", 2, "unchanged")
        ])
    );
    assert_eq!(git(bare, &["rev-parse", "image-updater/web"]), web_tip);
    let calls = fake.calls();
    let writes: Vec<&String> = calls[before..]
        .iter()
        .filter(|c| !c.starts_with("GET "))
        .collect();
    assert!(writes.is_empty(), "an unchanged run wrote: {writes:#?}");
    assert_eq!(fake.prs().len(), 2, "never a second pull request");
    if forge == Forge::Gitea {
        assert!(
            calls[before..]
                .iter()
                .filter(|c| c.contains("/pulls?"))
                .all(|c| c.contains("state=open") && c.contains("page=1") && c.contains("limit=")),
            "{calls:#?}"
        );
    }

    // 2b: someone adds a commit of their own to our web branch (our files untouched): it is
    // not ours to propose, so the branch is force-pushed back to exactly our change.
    let rival = common::clone(&s.url, &s.tmp.path().join("rival"));
    git(&rival, &["checkout", "-q", "image-updater/web"]);
    std::fs::write(rival.join("rogue.txt"), "not ours\n").unwrap();
    git(&rival, &["add", "rogue.txt"]);
    git(&rival, &["commit", "-qm", "rogue"]);
    git(&rival, &["push", "-q", "origin", "image-updater/web"]);
    let r = ok_report(&run(work, &env).await, &[TOKEN]);
    assert_eq!(
        pr_actions(&r),
        expect_actions(&[
            ("image-updater/api", 1, "unchanged"),
            ("image-updater/web", 2, "updated")
        ])
    );
    let files = git(bare, &["ls-tree", "-r", "--name-only", "image-updater/web"]);
    assert!(!files.contains("rogue.txt"), "{files}");
    assert_eq!(
        git(bare, &["rev-parse", "image-updater/web~1"]),
        main_before
    );
    assert_eq!(fake.prs().len(), 2);

    // 3: a newer web tag: the same pull request moves to it and stays a draft.
    s.registry.push_image("acme/web", &["1.2.1"]);
    let r = ok_report(&run(work, &env).await, &[TOKEN]);
    assert_eq!(
        pr_actions(&r),
        expect_actions(&[
            ("image-updater/api", 1, "unchanged"),
            ("image-updater/web", 2, "updated")
        ])
    );
    assert_ne!(git(bare, &["rev-parse", "image-updater/web"]), web_tip);
    assert!(git(bare, &["show", "image-updater/web:apps/web.yaml"]).contains("acme/web:1.2.1"));
    assert!(fake.problems().is_empty(), "{:#?}", fake.problems());
    assert_eq!(fake.prs().len(), 2, "never a second pull request");
    let web = fake.pr("image-updater/web");
    assert_eq!(
        web.title,
        format!("{draft}chore(images): update web to 1.2.1")
    );
    assert!(web.draft, "{web:?}");
    assert!(web.body.contains("| `1.0.0` | `1.2.1` |"), "{}", web.body);
    assert_eq!(
        fake.auto_merge(),
        merged,
        "auto-merge is set once, at creation"
    );

    // 4: someone merges web's update by hand: our web pull request is closed, saying why.
    let web_path = work.join("apps/web.yaml");
    let merged = std::fs::read_to_string(&web_path)
        .unwrap()
        .replace("acme/web:1.0.0", "acme/web:1.2.1");
    std::fs::write(&web_path, merged).unwrap();
    git(work, &["commit", "-qam", "bump web by hand"]);
    git(work, &["push", "-q", "origin", "main"]);
    let r = ok_report(&run(work, &env).await, &[TOKEN]);
    assert_eq!(
        pr_actions(&r),
        expect_actions(&[
            ("image-updater/api", 1, "unchanged"),
            ("image-updater/web", 2, "closed")
        ])
    );
    assert!(fake.problems().is_empty(), "{:#?}", fake.problems());
    let prs = fake.prs();
    assert!(!prs[1].open, "{:?}", prs[1]);
    assert!(prs[0].open, "{:?}", prs[0]);
    let comments = fake.comments();
    assert!(
        comments
            .iter()
            .any(|(n, c)| *n == 2 && c.contains("no longer needed")),
        "{comments:?}"
    );
    // The comment comes before the close.
    let calls = fake.calls();
    let comment = calls.iter().position(|c| comments_on(c, 2));
    let close = calls.iter().rposition(|c| closes(c, 2));
    assert!(comment.is_some() && comment < close, "{calls:#?}");

    // 5: a newer tag again, but a concurrent run opened web's pull request a moment ago and the
    // listing does not show it yet: the create is refused as a duplicate and that pull request
    // is used, not a second one.
    s.registry.push_image("acme/web", &["1.2.2"]);
    let rival = fake.open(
        "image-updater/web",
        "main",
        &format!("{draft}chore(images): update web to 1.2.2"),
        "opened by a concurrent run",
    );
    // Gitea lists every open pull request: api's lookup and web's own both miss it; the others
    // list by branch, so only web's lookup does.
    let lagging = if forge == Forge::Gitea { 2 } else { 1 };
    fake.hide("image-updater/web", lagging);
    let o = run(work, &env).await;
    let r = ok_report(&o, &[TOKEN]);
    assert_eq!(
        pr_actions(&r),
        expect_actions(&[
            ("image-updater/api", 1, "unchanged"),
            ("image-updater/web", rival, "created")
        ]),
        "{}",
        output_text(&o)
    );
    assert!(fake.problems().is_empty(), "{:#?}", fake.problems());
    assert_eq!(
        fake.prs().len(),
        3,
        "no pull request beside the concurrent one"
    );
    assert!(
        fake.calls().iter().any(|c| creates(c)),
        "the create was tried: {:#?}",
        fake.calls()
    );
    assert!(git(bare, &["show", "image-updater/web:apps/web.yaml"]).contains("acme/web:1.2.2"));
}

/// Inside the forge's own CI the API URL, repository and token come from the job's
/// environment (GitHub Actions; GitLab CI with the numeric `CI_PROJECT_ID` and `GITLAB_TOKEN`,
/// not the job token; Forgejo Actions with `GITHUB_*` names; Azure Pipelines with
/// `SYSTEM_COLLECTIONURI`, `SYSTEM_TEAMPROJECT`, `BUILD_REPOSITORY_NAME` and
/// `SYSTEM_ACCESSTOKEN`; Bitbucket Pipelines with `BITBUCKET_WORKSPACE`/`BITBUCKET_REPO_SLUG`
/// and an access token, the API URL from the config since Pipelines names none; Bitbucket Data
/// Center has no CI of its own: the config names forge, API and repository, the token is
/// `BITBUCKET_TOKEN`); one grouped pull request with a templated title gets auto-merge where
/// the forge has it, asked for once.
#[tokio::test(flavor = "multi_thread")]
async fn ci_environment_names_api_repository_and_token() {
    on_every_forge(ci_environment).await;
}

async fn ci_environment(forge: Forge) {
    let s = setup(forge, |uri| {
        let grouped = "  group: all\n  branch: \"deps/images\"\n  pull_request: { auto_merge: true, title: \"Update {{ count }} images\" }\n";
        match forge {
            Forge::BitbucketCloud => format!(
                "  mode: pull-request\n  api_url: {}\n{grouped}",
                forge.api_url(uri)
            ),
            Forge::BitbucketDc => forge.delivery(uri, grouped),
            _ => format!("  mode: pull-request\n{grouped}"),
        }
    })
    .await;
    // A remote on 127.0.0.1 would name the repository itself (its host is the forge's, as
    // in production): here the job's environment must name it, so the remote is local.
    let file_url = format!("file://{}", s.bare.display());
    git(&s.work, &["remote", "set-url", "origin", &file_url]);
    let uri = s.server.uri();
    let api = forge.api_url(&uri);
    let graphql = format!("{uri}/graphql");
    let collection = format!("{api}/");
    let env: Vec<(&str, &str)> = match forge {
        Forge::Github => vec![
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_SERVER_URL", &uri),
            ("GITHUB_API_URL", &api),
            ("GITHUB_GRAPHQL_URL", &graphql),
            ("GITHUB_REPOSITORY", "acme/infra"),
            ("GITHUB_TOKEN", TOKEN),
        ],
        Forge::Gitlab => vec![
            ("GITLAB_CI", "true"),
            ("CI_API_V4_URL", &api),
            ("CI_PROJECT_ID", "42"),
            ("CI_PROJECT_PATH", "acme/platform/infra"),
            ("CI_SERVER_HOST", "127.0.0.1"),
            ("CI_JOB_TOKEN", JOB_TOKEN),
            ("GITLAB_TOKEN", TOKEN),
        ],
        Forge::Gitea => vec![
            ("GITHUB_ACTIONS", "true"),
            ("FORGEJO_ACTIONS", "true"),
            ("GITHUB_SERVER_URL", &uri),
            ("GITHUB_REPOSITORY", "acme/infra"),
            ("GITHUB_TOKEN", TOKEN),
        ],
        Forge::BitbucketCloud => vec![
            ("BITBUCKET_BUILD_NUMBER", "7"),
            ("BITBUCKET_WORKSPACE", "acme"),
            ("BITBUCKET_REPO_SLUG", "infra"),
            ("BITBUCKET_ACCESS_TOKEN", TOKEN),
        ],
        Forge::BitbucketDc => vec![("BITBUCKET_TOKEN", TOKEN)],
        Forge::Azure => vec![
            ("TF_BUILD", "True"),
            ("SYSTEM_COLLECTIONURI", &collection),
            ("SYSTEM_TEAMPROJECT", "platform"),
            ("BUILD_REPOSITORY_NAME", "infra"),
            ("BUILD_REPOSITORY_PROVIDER", "TfsGit"),
            ("SYSTEM_ACCESSTOKEN", TOKEN),
        ],
    };
    let fake = &s.fake;
    let r = ok_report(&run(&s.work, &env).await, &[TOKEN, JOB_TOKEN]);
    assert_eq!(
        pr_actions(&r),
        expect_actions(&[("deps/images", 1, "created")])
    );
    assert!(fake.problems().is_empty(), "{:#?}", fake.problems());
    let prs = fake.prs();
    assert_eq!(prs.len(), 1);
    assert_eq!(prs[0].title, "Update 3 images");
    assert!(!prs[0].draft);
    let merged: &[u64] = if forge.has_auto_merge() { &[1] } else { &[] };
    assert_eq!(fake.auto_merge(), merged);
    if forge == Forge::Gitlab {
        let calls = fake.calls();
        assert!(
            calls
                .iter()
                .filter(|c| c.contains("/projects/"))
                .all(|c| c.contains("/api/v4/projects/42/")),
            "{calls:#?}"
        );
    }
    if let ForgeFake::Azure(az) = fake {
        // Azure Pipelines' System.AccessToken is an OAuth token: sent as Bearer.
        let schemes = az.state().schemes.clone();
        assert!(schemes.iter().all(|s| s == "Bearer"), "{schemes:?}");
    }
    let show = git(&s.bare, &["show", "deps/images:apps/web.yaml"]);
    assert!(show.contains("acme/web:1.2.0"), "{show}");

    // Again: unchanged, and auto-merge is not asked for twice.
    let r = ok_report(&run(&s.work, &env).await, &[TOKEN, JOB_TOKEN]);
    assert_eq!(
        pr_actions(&r),
        expect_actions(&[("deps/images", 1, "unchanged")])
    );
    assert_eq!(fake.auto_merge(), merged);
    assert_eq!(fake.prs().len(), 1);
}

/// A draft alone is marked the forge's way (GitHub's and Bitbucket's `draft` field, Azure
/// DevOps' `isDraft`, GitLab's `Draft:`, Gitea's `WIP:` title), kept as it is on the next run, and nothing else is asked for: no labels,
/// reviewers, assignees or auto-merge.
#[tokio::test(flavor = "multi_thread")]
async fn drafts_alone_are_marked_the_forge_way() {
    on_every_forge(drafts_alone).await;
}

async fn drafts_alone(forge: Forge) {
    let s = setup(forge, |uri| {
        forge.delivery(uri, "  pull_request: { draft: true }\n")
    })
    .await;
    let (fake, env) = (&s.fake, [(forge.token_env(), TOKEN)]);
    let r = ok_report(&run(&s.work, &env).await, &[TOKEN]);
    assert_eq!(
        pr_actions(&r),
        expect_actions(&[
            ("image-updater/api", 1, "created"),
            ("image-updater/web", 2, "created")
        ])
    );
    assert!(fake.problems().is_empty(), "{:#?}", fake.problems());
    let web = fake.pr("image-updater/web");
    assert_eq!(
        web.title,
        format!("{}chore(images): update web to 1.2.0", forge.draft_prefix())
    );
    assert!(web.draft);
    for pr in fake.prs() {
        assert!(
            pr.labels.is_empty() && pr.reviewers.is_empty() && pr.assignees.is_empty(),
            "{pr:?}"
        );
    }
    assert!(fake.auto_merge().is_empty());
    let r = ok_report(&run(&s.work, &env).await, &[TOKEN]);
    assert_eq!(
        pr_actions(&r),
        expect_actions(&[
            ("image-updater/api", 1, "unchanged"),
            ("image-updater/web", 2, "unchanged")
        ])
    );
    assert_eq!(fake.prs().len(), 2);
}

/// A contributor's pull request from a fork whose head branch is named like ours: not ours,
/// so left alone (no title, body or comment written), and ours is created beside it.
#[tokio::test(flavor = "multi_thread")]
async fn fork_pull_request_with_our_branch_name_is_left_alone() {
    on_every_forge(fork_left_alone).await;
}

async fn fork_left_alone(forge: Forge) {
    let s = setup(forge, |uri| forge.delivery(uri, "")).await;
    let fake = &s.fake;
    let fork = fake.open_from_fork("image-updater/web", "main", "Contributor: web tweaks");
    let env = [(forge.token_env(), TOKEN)];
    let r = ok_report(&run(&s.work, &env).await, &[TOKEN]);
    assert_eq!(
        pr_actions(&r),
        expect_actions(&[
            ("image-updater/api", 2, "created"),
            ("image-updater/web", 3, "created")
        ])
    );
    let r = ok_report(&run(&s.work, &env).await, &[TOKEN]);
    assert_eq!(
        pr_actions(&r),
        expect_actions(&[
            ("image-updater/api", 2, "unchanged"),
            ("image-updater/web", 3, "unchanged")
        ])
    );
    assert!(fake.problems().is_empty(), "{:#?}", fake.problems());
    let theirs = &fake.prs()[fork as usize - 1];
    assert_eq!(theirs.title, "Contributor: web tweaks");
    assert_eq!(theirs.body, "a contributor's change");
    assert!(theirs.open);
    let calls = fake.calls();
    let touched: Vec<&String> = calls.iter().filter(|c| writes_to(c, fork)).collect();
    assert!(
        touched.is_empty(),
        "the fork's pull request was written: {touched:#?}"
    );
}

/// A token the forge refuses: exit 1, the error quotes the forge's answer (status and
/// message), and neither the wrong token nor the right one is printed.
#[tokio::test(flavor = "multi_thread")]
async fn refused_token_is_quoted_not_printed() {
    on_every_forge(refused_token).await;
}

async fn refused_token(forge: Forge) {
    let s = setup(forge, |uri| forge.delivery(uri, "")).await;
    let wrong = "wrong-token-value-never-printed";
    let o = run(&s.work, &[(forge.token_env(), wrong)]).await;
    assert_refused_without_leak(&o, &[wrong, TOKEN], forge.refusal());
    assert!(s.fake.problems().is_empty(), "{:#?}", s.fake.problems());
}

/// GitLab CI with only `CI_JOB_TOKEN`: it cannot open merge requests, so the run stops with
/// an error that names the token to use instead; exit 2 before any registry request, nothing
/// pushed, GitLab not called.
#[tokio::test(flavor = "multi_thread")]
async fn gitlab_job_token_alone_is_refused_with_what_to_use() {
    let registry = Registry::start();
    seed_registry(&registry);
    let server = MockServer::start().await;
    let fake = GitlabFake::new(TOKEN);
    common::forges::mount_fake(&server, fake.clone()).await;

    let tmp = tempfile::tempdir().unwrap();
    let bare = pr_remote(tmp.path(), &registry.addr, "  mode: pull-request\n");
    let work = common::clone(
        &format!("file://{}", bare.display()),
        &tmp.path().join("work"),
    );
    let api = format!("{}/api/v4", server.uri());
    let env = [
        ("GITLAB_CI", "true"),
        ("CI_API_V4_URL", api.as_str()),
        ("CI_PROJECT_ID", "42"),
        ("CI_SERVER_HOST", "127.0.0.1"),
        ("CI_JOB_TOKEN", JOB_TOKEN),
    ];
    let asked = registry.log().len();
    let o = run(&work, &env).await;
    let all = output_text(&o);
    assert_eq!(o.status.code(), Some(2), "{all}");
    assert!(!all.contains(JOB_TOKEN), "the job token leaked:\n{all}");
    assert!(all.contains("CI_JOB_TOKEN"), "{all}");
    assert!(all.contains("project access token"), "{all}");
    assert!(all.contains("GITLAB_TOKEN"), "{all}");
    let log = registry.log();
    assert!(
        !log[asked..].contains("/v2/"),
        "the registry was asked:\n{log}"
    );
    assert_eq!(
        git(
            Path::new(&bare),
            &["for-each-ref", "--format=%(refname)", "refs/heads"]
        )
        .trim(),
        "refs/heads/main",
        "nothing pushed"
    );
    assert!(fake.state().calls.is_empty(), "{:#?}", fake.state().calls);
}

/// No token for the forge the run is pointed at: exit 2, naming the variables to set, before
/// any registry request; nothing pushed, the forge not called.
#[tokio::test(flavor = "multi_thread")]
async fn missing_token_is_a_config_error_before_any_registry_request() {
    on_every_forge(missing_token).await;
}

async fn missing_token(forge: Forge) {
    let s = setup(forge, |uri| forge.delivery(uri, "")).await;
    let asked = s.registry.log().len();
    // Another forge's token is never taken for this one's.
    let other = if forge == Forge::Github {
        "GITLAB_TOKEN"
    } else {
        "GITHUB_TOKEN"
    };
    let o = run(&s.work, &[(other, TOKEN)]).await;
    let all = output_text(&o);
    assert_eq!(o.status.code(), Some(2), "{all}");
    assert!(!all.contains(TOKEN), "a token leaked:\n{all}");
    assert!(all.contains(".image-updater.yaml"), "{all}");
    assert!(all.contains("no token for the"), "{all}");
    assert!(all.contains(forge.token_env()), "{all}");
    let log = s.registry.log();
    assert!(
        !log[asked..].contains("/v2/"),
        "the registry was asked:\n{log}"
    );
    assert!(s.fake.calls().is_empty(), "{:#?}", s.fake.calls());
    assert_eq!(
        git(
            &s.bare,
            &["for-each-ref", "--format=%(refname)", "refs/heads"]
        )
        .trim(),
        "refs/heads/main",
        "nothing pushed"
    );
}
