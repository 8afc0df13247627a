//! `mode: pull-request` on Gitea and Forgejo, end to end: the real registry, a real git remote
//! over file://, and a stateful fake of Gitea's API v1 ([`common::forges::GiteaFake`]) that
//! checks every call's method, path, query (`state=open`, `page`, `limit`), the
//! `Authorization: token …` header and the JSON body, and answers in Gitea's shapes (201 on an
//! edit, 409 on a duplicate pull request).

use crate::common;

use common::forges::{
    assert_refused_without_leak, expect_actions, mount_fake, ok_report, output_text, pr_actions,
    pr_remote, run_async as run, seed_registry, GiteaFake,
};
use common::{git, Registry};
use wiremock::MockServer;

const TOKEN: &str = "gitea-test-token-never-printed";

/// Four runs against one stateful Gitea: two pull requests are created, labelled (an existing
/// label by id, a missing one created first), with a reviewer, an assignee and auto-merge in
/// the repository's default style; the second run changes nothing; a newer tag moves the same
/// pull request; a hand merge closes it with a comment. Then a create that loses a race is
/// answered 409 and the existing pull request is used.
#[tokio::test(flavor = "multi_thread")]
async fn gitea_pull_requests_are_created_kept_moved_and_closed() {
    let registry = Registry::start();
    seed_registry(&registry);
    let server = MockServer::start().await;
    let fake = GiteaFake::new(TOKEN);
    mount_fake(&server, fake.clone()).await;

    let tmp = tempfile::tempdir().unwrap();
    let bare = pr_remote(
        tmp.path(),
        &registry.addr,
        &format!(
            "  mode: pull-request\n  forge: gitea\n  api_url: {}/api/v1\n  repository: acme/infra\n  pull_request: {{ labels: [dependencies, images], reviewers: [alice], assignees: [bob], auto_merge: true }}\n",
            server.uri()
        ),
    );
    let work = common::clone(
        &format!("file://{}", bare.display()),
        &tmp.path().join("work"),
    );
    let main_before = git(&bare, &["rev-parse", "main"]);
    let env = [("GITEA_TOKEN", TOKEN)];

    // 1: two pull requests with labels, reviewer, assignee and auto-merge.
    let r = ok_report(&run(&work, &env).await, &[TOKEN]);
    assert_eq!(
        pr_actions(&r),
        expect_actions(&[
            ("image-updater/api", 1, "created"),
            ("image-updater/web", 2, "created")
        ])
    );
    assert_eq!(git(&bare, &["rev-parse", "main"]), main_before);
    assert!(git(&bare, &["show", "image-updater/web:apps/web.yaml"]).contains("acme/web:1.2.0"));
    {
        let gt = fake.state();
        assert!(gt.problems.is_empty(), "{:#?}", gt.problems);
        assert_eq!(gt.pulls.len(), 2);
        let web = &gt.pulls[1];
        assert_eq!(web["head"]["ref"], "image-updater/web");
        assert_eq!(web["base"]["ref"], "main");
        assert_eq!(web["title"], "chore(images): update web to 1.2.0");
        assert!(web["body"]
            .as_str()
            .unwrap()
            .contains("<!-- image-updater -->"));
        assert_eq!(
            gt.labels,
            [(1, "dependencies".to_string()), (2, "images".to_string())],
            "the missing label is created once"
        );
        assert_eq!(gt.issue_labels, [(1, vec![1, 2]), (2, vec![1, 2])]);
        assert_eq!(
            gt.reviewers,
            [
                (1, vec!["alice".to_string()]),
                (2, vec!["alice".to_string()])
            ]
        );
        for p in &gt.pulls {
            assert_eq!(p["assignees"][0]["login"], "bob", "{p}");
        }
        assert_eq!(
            gt.auto_merge,
            [(1, "squash".to_string()), (2, "squash".to_string())],
            "the repository's default merge style"
        );
    }
    let web_tip = git(&bare, &["rev-parse", "image-updater/web"]);

    // 2: nothing new: unchanged, nothing pushed, nothing written.
    let before = fake.state().calls.len();
    let r = ok_report(&run(&work, &env).await, &[TOKEN]);
    assert_eq!(
        pr_actions(&r),
        expect_actions(&[
            ("image-updater/api", 1, "unchanged"),
            ("image-updater/web", 2, "unchanged")
        ])
    );
    assert_eq!(git(&bare, &["rev-parse", "image-updater/web"]), web_tip);
    {
        let gt = fake.state();
        let writes: Vec<&String> = gt.calls[before..]
            .iter()
            .filter(|c| !c.starts_with("GET "))
            .collect();
        assert!(writes.is_empty(), "an unchanged run wrote: {writes:#?}");
        assert!(
            gt.calls[before..]
                .iter()
                .filter(|c| c.contains("/pulls?"))
                .all(|c| c.contains("state=open") && c.contains("page=1") && c.contains("limit=")),
            "{:#?}",
            gt.calls
        );
    }

    // 3: a newer tag: the same pull request moves to it.
    registry.push_image("acme/web", &["1.2.1"]);
    let r = ok_report(&run(&work, &env).await, &[TOKEN]);
    assert_eq!(
        pr_actions(&r),
        expect_actions(&[
            ("image-updater/api", 1, "unchanged"),
            ("image-updater/web", 2, "updated")
        ])
    );
    assert!(git(&bare, &["show", "image-updater/web:apps/web.yaml"]).contains("acme/web:1.2.1"));
    {
        let gt = fake.state();
        assert!(gt.problems.is_empty(), "{:#?}", gt.problems);
        assert_eq!(gt.pulls.len(), 2, "never a second pull request");
        assert_eq!(gt.pulls[1]["title"], "chore(images): update web to 1.2.1");
        assert_eq!(
            gt.auto_merge.len(),
            2,
            "auto-merge is set once, at creation"
        );
    }

    // 4: merged by hand: closed with a comment.
    let web_path = work.join("apps/web.yaml");
    let merged = std::fs::read_to_string(&web_path)
        .unwrap()
        .replace("acme/web:1.0.0", "acme/web:1.2.1");
    std::fs::write(&web_path, merged).unwrap();
    git(&work, &["commit", "-qam", "bump web by hand"]);
    git(&work, &["push", "-q", "origin", "main"]);
    let r = ok_report(&run(&work, &env).await, &[TOKEN]);
    assert_eq!(
        pr_actions(&r),
        expect_actions(&[
            ("image-updater/api", 1, "unchanged"),
            ("image-updater/web", 2, "closed")
        ])
    );
    {
        let gt = fake.state();
        assert!(gt.problems.is_empty(), "{:#?}", gt.problems);
        assert_eq!(gt.pulls[1]["state"], "closed");
        assert_eq!(gt.pulls[0]["state"], "open");
        assert!(
            gt.comments
                .iter()
                .any(|(n, c)| *n == 2 && c.contains("no longer needed")),
            "{:?}",
            gt.comments
        );
    }

    // 5: a concurrent run opened web's next pull request and the listing lags: the create is
    // answered 409 and that pull request is used.
    registry.push_image("acme/web", &["1.2.2"]);
    let rival = fake.open(
        "image-updater/web",
        "main",
        "chore(images): update web to 1.2.2",
        "opened by a concurrent run",
    );
    // Gitea lists every open pull request: api's lookup and web's own both miss it.
    fake.state().hidden.insert("image-updater/web".into(), 2);
    let o = run(&work, &env).await;
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
    let gt = fake.state();
    assert!(gt.problems.is_empty(), "{:#?}", gt.problems);
    assert_eq!(
        gt.pulls.len(),
        3,
        "no pull request beside the concurrent one"
    );
    assert!(gt
        .calls
        .iter()
        .any(|c| c == "POST /api/v1/repos/acme/infra/pulls"));
}

/// Inside Forgejo (or Gitea) Actions the forge, API URL, repository and token come from the
/// job's environment (`FORGEJO_ACTIONS`, `GITHUB_SERVER_URL`, `GITHUB_REPOSITORY`,
/// `GITHUB_TOKEN`); a draft is a `WIP:` title, kept as it is on the next run.
#[tokio::test(flavor = "multi_thread")]
async fn forgejo_actions_environment_and_drafts() {
    let registry = Registry::start();
    seed_registry(&registry);
    let server = MockServer::start().await;
    let fake = GiteaFake::new(TOKEN);
    mount_fake(&server, fake.clone()).await;

    let tmp = tempfile::tempdir().unwrap();
    let bare = pr_remote(
        tmp.path(),
        &registry.addr,
        "  mode: pull-request\n  pull_request: { draft: true }\n",
    );
    let work = common::clone(
        &format!("file://{}", bare.display()),
        &tmp.path().join("work"),
    );
    let uri = server.uri();
    let env = [
        ("GITHUB_ACTIONS", "true"),
        ("FORGEJO_ACTIONS", "true"),
        ("GITHUB_SERVER_URL", uri.as_str()),
        ("GITHUB_REPOSITORY", "acme/infra"),
        ("GITHUB_TOKEN", TOKEN),
    ];
    let r = ok_report(&run(&work, &env).await, &[TOKEN]);
    assert_eq!(
        pr_actions(&r),
        expect_actions(&[
            ("image-updater/api", 1, "created"),
            ("image-updater/web", 2, "created")
        ])
    );
    {
        let gt = fake.state();
        assert!(gt.problems.is_empty(), "{:#?}", gt.problems);
        assert_eq!(
            gt.pulls[1]["title"],
            "WIP: chore(images): update web to 1.2.0"
        );
        assert!(gt.issue_labels.is_empty() && gt.reviewers.is_empty() && gt.auto_merge.is_empty());
    }
    let r = ok_report(&run(&work, &env).await, &[TOKEN]);
    assert_eq!(
        pr_actions(&r),
        expect_actions(&[
            ("image-updater/api", 1, "unchanged"),
            ("image-updater/web", 2, "unchanged")
        ])
    );
    assert_eq!(fake.state().pulls.len(), 2);
}

/// A contributor's pull request from a fork whose head branch is named like ours is in Gitea's
/// list of open pull requests; it is not ours: left alone, and ours is created beside it.
#[tokio::test(flavor = "multi_thread")]
async fn gitea_fork_pull_request_with_our_branch_name_is_left_alone() {
    let registry = Registry::start();
    seed_registry(&registry);
    let server = MockServer::start().await;
    let fake = GiteaFake::new(TOKEN);
    mount_fake(&server, fake.clone()).await;
    let fork = fake.open_from_fork("image-updater/web", "main", "Contributor: web tweaks");

    let tmp = tempfile::tempdir().unwrap();
    let bare = pr_remote(
        tmp.path(),
        &registry.addr,
        &format!(
            "  mode: pull-request\n  forge: gitea\n  api_url: {}/api/v1\n  repository: acme/infra\n",
            server.uri()
        ),
    );
    let work = common::clone(
        &format!("file://{}", bare.display()),
        &tmp.path().join("work"),
    );
    let env = [("GITEA_TOKEN", TOKEN)];
    let r = ok_report(&run(&work, &env).await, &[TOKEN]);
    assert_eq!(
        pr_actions(&r),
        expect_actions(&[
            ("image-updater/api", 2, "created"),
            ("image-updater/web", 3, "created")
        ])
    );
    let r = ok_report(&run(&work, &env).await, &[TOKEN]);
    assert_eq!(
        pr_actions(&r),
        expect_actions(&[
            ("image-updater/api", 2, "unchanged"),
            ("image-updater/web", 3, "unchanged")
        ])
    );
    let gt = fake.state();
    assert!(gt.problems.is_empty(), "{:#?}", gt.problems);
    let theirs = &gt.pulls[fork as usize - 1];
    assert_eq!(theirs["title"], "Contributor: web tweaks");
    assert_eq!(theirs["body"], "a contributor's change");
    let touched: Vec<&String> = gt
        .calls
        .iter()
        .filter(|c| {
            !c.starts_with("GET ")
                && (c.contains(&format!("/pulls/{fork}")) || c.contains(&format!("/issues/{fork}")))
        })
        .collect();
    assert!(
        touched.is_empty(),
        "the fork's pull request was written: {touched:#?}"
    );
}

/// A token the forge refuses: exit 1, the error quotes the forge's answer (status and
/// message), and neither the wrong token nor the right one is printed.
#[tokio::test(flavor = "multi_thread")]
async fn gitea_refused_token_is_quoted_not_printed() {
    let registry = Registry::start();
    seed_registry(&registry);
    let server = MockServer::start().await;
    let fake = GiteaFake::new(TOKEN);
    mount_fake(&server, fake.clone()).await;
    let tmp = tempfile::tempdir().unwrap();
    let bare = pr_remote(
        tmp.path(),
        &registry.addr,
        &format!(
            "  mode: pull-request\n  forge: gitea\n  api_url: {}/api/v1\n  repository: acme/infra\n",
            server.uri()
        ),
    );
    let work = common::clone(
        &format!("file://{}", bare.display()),
        &tmp.path().join("work"),
    );
    let wrong = "wrong-token-value-never-printed";
    let o = run(&work, &[("GITEA_TOKEN", wrong)]).await;
    assert_refused_without_leak(&o, &[wrong, TOKEN], "token is required");
    assert!(fake.state().problems.is_empty());
}
