//! `mode: pull-request` on GitLab, end to end: the real registry, a real git remote over
//! file://, and a stateful fake of GitLab's merge requests API v4 ([`common::forges::GitlabFake`])
//! that checks every call's method, path (the project path URL-encoded, or the numeric id),
//! query, `PRIVATE-TOKEN` header and JSON body, and answers in GitLab's shapes (409 on a
//! duplicate merge request).

use crate::common;

use common::forges::{
    assert_refused_without_leak, expect_actions, ok_report, output_text, pr_actions, pr_remote,
    run_async as run, seed_registry, GitlabFake, GITLAB_USERS,
};
use common::{git, Registry};
use serde_json::Value;
use wiremock::MockServer;

const TOKEN: &str = "glpat-test-token-never-printed";
const JOB_TOKEN: &str = "glcbt-job-token-never-printed";

fn user_ids(list: &Value) -> Vec<u64> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_u64().unwrap())
        .collect()
}

fn id_of(name: &str) -> u64 {
    GITLAB_USERS.iter().find(|(_, n)| *n == name).unwrap().0
}

/// Four runs against one stateful GitLab: two draft merge requests are created with labels,
/// reviewers and assignees; the second run changes nothing; a newer tag moves the same MR
/// (its draft prefix kept); a hand merge closes it with a note. Then a create that loses a
/// race (a concurrent run's MR not yet listed) answers 409 and the existing MR is used.
#[tokio::test(flavor = "multi_thread")]
async fn gitlab_merge_requests_are_created_kept_moved_and_closed() {
    let registry = Registry::start();
    seed_registry(&registry);
    let server = MockServer::start().await;
    let fake = GitlabFake::new(TOKEN);
    common::forges::mount_fake(&server, fake.clone()).await;

    let tmp = tempfile::tempdir().unwrap();
    let bare = pr_remote(
        tmp.path(),
        &registry.addr,
        &format!(
            "  mode: pull-request\n  forge: gitlab\n  api_url: {}/api/v4\n  repository: acme/platform/infra\n  pull_request: {{ labels: [dependencies, images], reviewers: [alice], assignees: [bob], draft: true }}\n",
            server.uri()
        ),
    );
    let work = common::clone(
        &format!("file://{}", bare.display()),
        &tmp.path().join("work"),
    );
    let main_before = git(&bare, &["rev-parse", "main"]);
    let env = [("GITLAB_TOKEN", TOKEN)];

    // 1: two draft merge requests, with labels, a reviewer and an assignee.
    let r = ok_report(&run(&work, &env).await, &[TOKEN]);
    assert_eq!(
        pr_actions(&r),
        expect_actions(&[
            ("image-updater/api", 1, "created"),
            ("image-updater/web", 2, "created")
        ])
    );
    let urls: Vec<&str> = r["pull_requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["url"].as_str().unwrap())
        .collect();
    assert!(
        urls.contains(&"https://gitlab.example.com/acme/platform/infra/-/merge_requests/2"),
        "{urls:?}"
    );
    assert_eq!(git(&bare, &["rev-parse", "main"]), main_before);
    assert_eq!(
        git(&bare, &["rev-parse", "image-updater/web~1"]),
        main_before
    );
    assert!(git(&bare, &["show", "image-updater/web:apps/web.yaml"]).contains("acme/web:1.2.0"));
    {
        let gl = fake.state();
        assert!(gl.problems.is_empty(), "{:#?}", gl.problems);
        assert_eq!(gl.mrs.len(), 2);
        let web = &gl.mrs[1];
        assert_eq!(web["source_branch"], "image-updater/web");
        assert_eq!(web["target_branch"], "main");
        assert_eq!(web["title"], "Draft: chore(images): update web to 1.2.0");
        assert_eq!(web["draft"], true);
        let description = web["description"].as_str().unwrap();
        assert!(
            description.contains("| `registry.example.com/acme/web` | `1.0.0` | `1.2.0` |"),
            "{description}"
        );
        assert!(
            description.contains("<!-- image-updater -->"),
            "{description}"
        );
        for mr in &gl.mrs {
            assert_eq!(mr["labels"], serde_json::json!(["dependencies", "images"]));
            assert_eq!(user_ids(&mr["reviewers"]), [id_of("alice")]);
            assert_eq!(user_ids(&mr["assignees"]), [id_of("bob")]);
        }
        // Every call named the project by its URL-encoded path.
        assert!(
            gl.calls
                .iter()
                .filter(|c| c.contains("/projects/"))
                .all(|c| c.contains("/api/v4/projects/acme%2Fplatform%2Finfra/")),
            "{:#?}",
            gl.calls
        );
        assert!(gl.auto_merge.is_empty());
    }
    let web_tip = git(&bare, &["rev-parse", "image-updater/web"]);

    // 2: nothing new: both unchanged, nothing pushed, nothing written to GitLab.
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
        let gl = fake.state();
        let writes: Vec<&String> = gl.calls[before..]
            .iter()
            .filter(|c| !c.starts_with("GET "))
            .collect();
        assert!(writes.is_empty(), "an unchanged run wrote: {writes:#?}");
        assert_eq!(gl.mrs.len(), 2);
    }

    // 3: a newer web tag: the same MR moves to it and stays a draft.
    registry.push_image("acme/web", &["1.2.1"]);
    let r = ok_report(&run(&work, &env).await, &[TOKEN]);
    assert_eq!(
        pr_actions(&r),
        expect_actions(&[
            ("image-updater/api", 1, "unchanged"),
            ("image-updater/web", 2, "updated")
        ])
    );
    assert_ne!(git(&bare, &["rev-parse", "image-updater/web"]), web_tip);
    assert!(git(&bare, &["show", "image-updater/web:apps/web.yaml"]).contains("acme/web:1.2.1"));
    {
        let gl = fake.state();
        assert!(gl.problems.is_empty(), "{:#?}", gl.problems);
        assert_eq!(gl.mrs.len(), 2, "never a second merge request");
        assert_eq!(
            gl.mrs[1]["title"],
            "Draft: chore(images): update web to 1.2.1"
        );
        assert!(gl.mrs[1]["description"]
            .as_str()
            .unwrap()
            .contains("| `1.0.0` | `1.2.1` |"));
    }

    // 4: web's update merged by hand: its MR is closed with a note saying why.
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
        let gl = fake.state();
        assert!(gl.problems.is_empty(), "{:#?}", gl.problems);
        assert_eq!(gl.mrs[1]["state"], "closed");
        assert_eq!(gl.mrs[0]["state"], "opened");
        assert!(
            gl.notes
                .iter()
                .any(|(iid, body)| *iid == 2 && body.contains("no longer needed")),
            "{:?}",
            gl.notes
        );
        // The note comes before the close.
        let note = gl
            .calls
            .iter()
            .position(|c| c.starts_with("POST ") && c.ends_with("/merge_requests/2/notes"));
        let close = gl
            .calls
            .iter()
            .rposition(|c| c.starts_with("PUT ") && c.ends_with("/merge_requests/2"));
        assert!(note < close, "{:#?}", gl.calls);
    }

    // 5: a newer tag again, but a concurrent run opened web's MR a moment ago and the listing
    // does not show it yet: the create gets GitLab's 409 and that MR is used, not a second one.
    registry.push_image("acme/web", &["1.2.2"]);
    let rival = fake.open(
        "image-updater/web",
        "main",
        "Draft: chore(images): update web to 1.2.2",
        "opened by a concurrent run",
    );
    fake.state().hidden.insert("image-updater/web".into(), 1);
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
    let gl = fake.state();
    assert!(gl.problems.is_empty(), "{:#?}", gl.problems);
    assert_eq!(
        gl.mrs.len(),
        3,
        "no merge request beside the concurrent one"
    );
    assert!(
        gl.calls
            .iter()
            .any(|c| c.starts_with("POST ") && c.ends_with("/merge_requests")),
        "the create was tried: {:#?}",
        gl.calls
    );
    assert!(git(&bare, &["show", "image-updater/web:apps/web.yaml"]).contains("acme/web:1.2.2"));
}

/// In GitLab CI the API URL and the numeric project id come from `CI_API_V4_URL` and
/// `CI_PROJECT_ID`; `GITLAB_TOKEN` is used for the API (not the job token), and auto-merge
/// asks GitLab to merge when the pipeline succeeds.
#[tokio::test(flavor = "multi_thread")]
async fn gitlab_ci_environment_numeric_project_and_auto_merge() {
    let registry = Registry::start();
    seed_registry(&registry);
    let server = MockServer::start().await;
    let fake = GitlabFake::new(TOKEN);
    common::forges::mount_fake(&server, fake.clone()).await;

    let tmp = tempfile::tempdir().unwrap();
    let bare = pr_remote(
        tmp.path(),
        &registry.addr,
        "  mode: pull-request\n  group: all\n  branch: \"deps/images\"\n  pull_request: { auto_merge: true, title: \"Update {{ count }} images\" }\n",
    );
    let work = common::clone(
        &format!("file://{}", bare.display()),
        &tmp.path().join("work"),
    );
    let api = format!("{}/api/v4", server.uri());
    let env = [
        ("GITLAB_CI", "true"),
        ("CI_API_V4_URL", api.as_str()),
        ("CI_PROJECT_ID", "42"),
        ("CI_PROJECT_PATH", "acme/platform/infra"),
        ("CI_SERVER_HOST", "127.0.0.1"),
        ("CI_JOB_TOKEN", JOB_TOKEN),
        ("GITLAB_TOKEN", TOKEN),
    ];
    let r = ok_report(&run(&work, &env).await, &[TOKEN, JOB_TOKEN]);
    assert_eq!(
        pr_actions(&r),
        expect_actions(&[("deps/images", 1, "created")])
    );
    {
        let gl = fake.state();
        assert!(gl.problems.is_empty(), "{:#?}", gl.problems);
        assert_eq!(gl.mrs.len(), 1);
        assert_eq!(gl.mrs[0]["title"], "Update 3 images");
        assert_eq!(gl.mrs[0]["draft"], false);
        assert_eq!(gl.auto_merge, [1]);
        assert!(
            gl.calls
                .iter()
                .filter(|c| c.contains("/projects/"))
                .all(|c| c.contains("/api/v4/projects/42/")),
            "{:#?}",
            gl.calls
        );
    }
    let show = git(&bare, &["show", "deps/images:apps/web.yaml"]);
    assert!(show.contains("acme/web:1.2.0"), "{show}");

    // Again: unchanged, and auto-merge is not asked for twice.
    let r = ok_report(&run(&work, &env).await, &[TOKEN, JOB_TOKEN]);
    assert_eq!(
        pr_actions(&r),
        expect_actions(&[("deps/images", 1, "unchanged")])
    );
    let gl = fake.state();
    assert_eq!(gl.auto_merge, [1]);
    assert_eq!(gl.mrs.len(), 1);
}

/// GitLab CI with only `CI_JOB_TOKEN`: it cannot open merge requests, so the run stops with
/// an error that names the token to use instead; exit 1, nothing pushed, GitLab not called.
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
    let o = run(&work, &env).await;
    let all = output_text(&o);
    assert_eq!(o.status.code(), Some(1), "{all}");
    assert!(!all.contains(JOB_TOKEN), "the job token leaked:\n{all}");
    assert!(all.contains("CI_JOB_TOKEN"), "{all}");
    assert!(all.contains("project access token"), "{all}");
    assert!(all.contains("GITLAB_TOKEN"), "{all}");
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        report["pull_requests"].as_array().unwrap().is_empty(),
        "{report}"
    );
    assert_eq!(
        git(
            &bare,
            &["for-each-ref", "--format=%(refname)", "refs/heads"]
        )
        .trim(),
        "refs/heads/main",
        "nothing pushed"
    );
    assert!(fake.state().calls.is_empty(), "{:#?}", fake.state().calls);
}

/// A contributor's MR from a fork whose source branch happens to be named like ours is listed by
/// `source_branch=` too; it is not ours: left alone (no title, description or note written),
/// and our own MR is created beside it.
#[tokio::test(flavor = "multi_thread")]
async fn gitlab_fork_merge_request_with_our_branch_name_is_left_alone() {
    let registry = Registry::start();
    seed_registry(&registry);
    let server = MockServer::start().await;
    let fake = GitlabFake::new(TOKEN);
    common::forges::mount_fake(&server, fake.clone()).await;
    let fork = fake.open_from_fork("image-updater/web", "main", "Contributor: web tweaks");

    let tmp = tempfile::tempdir().unwrap();
    let bare = pr_remote(
        tmp.path(),
        &registry.addr,
        &format!(
            "  mode: pull-request\n  forge: gitlab\n  api_url: {}/api/v4\n  repository: acme/platform/infra\n",
            server.uri()
        ),
    );
    let work = common::clone(
        &format!("file://{}", bare.display()),
        &tmp.path().join("work"),
    );
    let env = [("GITLAB_TOKEN", TOKEN)];
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
    let gl = fake.state();
    assert!(gl.problems.is_empty(), "{:#?}", gl.problems);
    let theirs = &gl.mrs[fork as usize - 1];
    assert_eq!(theirs["title"], "Contributor: web tweaks");
    assert_eq!(theirs["description"], "a contributor's change");
    assert_eq!(theirs["state"], "opened");
    let touched: Vec<&String> = gl
        .calls
        .iter()
        .filter(|c| !c.starts_with("GET ") && c.contains(&format!("/merge_requests/{fork}")))
        .collect();
    assert!(
        touched.is_empty(),
        "the fork's MR was written: {touched:#?}"
    );
}

/// A token the forge refuses: exit 1, the error quotes the forge's answer (status and
/// message), and neither the wrong token nor the right one is printed.
#[tokio::test(flavor = "multi_thread")]
async fn gitlab_refused_token_is_quoted_not_printed() {
    let registry = Registry::start();
    seed_registry(&registry);
    let server = MockServer::start().await;
    let fake = GitlabFake::new(TOKEN);
    common::forges::mount_fake(&server, fake.clone()).await;
    let tmp = tempfile::tempdir().unwrap();
    let bare = pr_remote(
        tmp.path(),
        &registry.addr,
        &format!(
            "  mode: pull-request\n  forge: gitlab\n  api_url: {}/api/v4\n  repository: acme/platform/infra\n",
            server.uri()
        ),
    );
    let work = common::clone(
        &format!("file://{}", bare.display()),
        &tmp.path().join("work"),
    );
    let wrong = "wrong-token-value-never-printed";
    let o = run(&work, &[("GITLAB_TOKEN", wrong)]).await;
    assert_refused_without_leak(&o, &[wrong, TOKEN], "401 Unauthorized");
    assert!(fake.state().problems.is_empty());
}
