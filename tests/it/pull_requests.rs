//! `mode: pull-request` end to end: the real registry, a real git remote over file://, and a
//! stateful fake of the GitHub REST API (wiremock) that checks every call's method, path,
//! headers and body and answers in GitHub's shapes, 422 on a duplicate included. Four runs:
//! create, unchanged, a newer tag moves the same pull request, and a hand-merged update closes it.

use crate::common;

use common::forges::{
    fixture, ok_report, pr_actions as actions, pr_remote, run_async, seed_registry, GithubFake,
};
use common::{git, Registry};
use wiremock::MockServer;

const TOKEN: &str = "ghp-test-token-never-printed";

async fn run(work: &std::path::Path) -> serde_json::Value {
    ok_report(&run_async(work, &[("GITHUB_TOKEN", TOKEN)]).await, &[TOKEN])
}

#[tokio::test(flavor = "multi_thread")]
async fn github_pull_requests_are_created_kept_moved_and_closed() {
    let registry = Registry::start();
    seed_registry(&registry);
    let server = MockServer::start().await;
    let fake = GithubFake::new(TOKEN);
    common::forges::mount_fake(&server, fake.clone()).await;

    let tmp = tempfile::tempdir().unwrap();
    let bare = pr_remote(
        tmp.path(),
        &registry.addr,
        &format!(
            "  mode: pull-request\n  forge: github\n  api_url: {}\n  repository: acme/infra\n  pull_request: {{ labels: [dependencies], reviewers: [alice] }}\n",
            server.uri()
        ),
    );
    let url = format!("file://{}", bare.display());
    let work = common::clone(&url, &tmp.path().join("work"));
    let main_before = git(&bare, &["rev-parse", "main"]);

    // 1: two pull requests, one per image, with labels and reviewers; main untouched.
    let r = run(&work).await;
    assert_eq!(
        actions(&r),
        [
            ("image-updater/api".into(), 1, "created".into()),
            ("image-updater/web".into(), 2, "created".into())
        ]
    );
    assert_eq!(
        git(&bare, &["rev-parse", "main"]),
        main_before,
        "the base is not pushed to"
    );
    assert_eq!(
        git(&work, &["status", "--porcelain"]),
        "",
        "the work tree is not written"
    );
    let web_file = git(&bare, &["show", "image-updater/web:apps/web.yaml"]);
    assert_eq!(
        web_file.as_bytes(),
        std::fs::read(fixture("commit-basic/expected/apps/web.yaml")).unwrap()
    );
    let multi_on_web = git(&bare, &["show", "image-updater/web:apps/multi.yaml"]);
    assert_eq!(
        multi_on_web.as_bytes(),
        std::fs::read(fixture("commit-basic/input/apps/multi.yaml")).unwrap(),
        "the web branch holds only web's update"
    );
    assert_eq!(
        git(&bare, &["rev-parse", "image-updater/web~1"]),
        main_before,
        "branched from the base"
    );
    {
        let gh = fake.state();
        assert!(gh.problems.is_empty(), "{:?}", gh.problems);
        assert_eq!(gh.prs.len(), 2);
        let web = gh
            .prs
            .iter()
            .find(|p| p["head"]["ref"] == "image-updater/web")
            .unwrap();
        assert_eq!(web["base"]["ref"], "main");
        assert_eq!(web["title"], "chore(images): update web to 1.2.0");
        let body = web["body"].as_str().unwrap();
        assert!(body.contains("| `registry.example.com/acme/web` | `1.0.0` | `1.2.0` | `apps/web.yaml:11`, `apps/web.yaml:14` |"), "{body}");
        assert!(body.contains("<!-- image-updater -->"), "{body}");
        assert_eq!(gh.labels.len(), 2);
        assert_eq!(gh.labels[0].1, ["dependencies"]);
        assert_eq!(gh.reviewers[0].1, ["alice"]);
    }
    let web_tip = git(&bare, &["rev-parse", "image-updater/web"]);

    // 2: nothing new: the same two, unchanged, nothing pushed.
    let r = run(&work).await;
    assert_eq!(
        actions(&r),
        [
            ("image-updater/api".into(), 1, "unchanged".into()),
            ("image-updater/web".into(), 2, "unchanged".into())
        ]
    );
    assert_eq!(git(&bare, &["rev-parse", "image-updater/web"]), web_tip);
    assert_eq!(fake.state().prs.len(), 2, "never a second pull request");

    // 2b: someone adds a commit of their own to our web branch (our files untouched): it is
    // not ours to propose, so the branch is force-pushed back to exactly our change.
    let rival = common::clone(&url, &tmp.path().join("rival"));
    git(&rival, &["checkout", "-q", "image-updater/web"]);
    std::fs::write(rival.join("rogue.txt"), "not ours\n").unwrap();
    git(&rival, &["add", "rogue.txt"]);
    git(&rival, &["commit", "-qm", "rogue"]);
    git(&rival, &["push", "-q", "origin", "image-updater/web"]);
    let r = run(&work).await;
    assert_eq!(
        actions(&r),
        [
            ("image-updater/api".into(), 1, "unchanged".into()),
            ("image-updater/web".into(), 2, "updated".into())
        ]
    );
    let files = git(
        &bare,
        &["ls-tree", "-r", "--name-only", "image-updater/web"],
    );
    assert!(!files.contains("rogue.txt"), "{files}");
    assert_eq!(
        git(&bare, &["rev-parse", "image-updater/web~1"]),
        main_before
    );
    assert_eq!(fake.state().prs.len(), 2);

    // 3: a newer web tag: the same pull request moves to it.
    registry.push_image("acme/web", &["1.2.1"]);
    let r = run(&work).await;
    assert_eq!(
        actions(&r),
        [
            ("image-updater/api".into(), 1, "unchanged".into()),
            ("image-updater/web".into(), 2, "updated".into())
        ]
    );
    assert!(git(&bare, &["show", "image-updater/web:apps/web.yaml"]).contains("acme/web:1.2.1"));
    {
        let gh = fake.state();
        assert_eq!(gh.prs.len(), 2);
        assert_eq!(gh.prs[1]["title"], "chore(images): update web to 1.2.1");
    }

    // 4: someone merges web's update by hand: our web pull request is closed, saying why.
    let web_path = work.join("apps/web.yaml");
    let merged = std::fs::read_to_string(&web_path)
        .unwrap()
        .replace("acme/web:1.0.0", "acme/web:1.2.1");
    std::fs::write(&web_path, merged).unwrap();
    git(&work, &["commit", "-qam", "bump web by hand"]);
    git(&work, &["push", "-q", "origin", "main"]);
    let r = run(&work).await;
    assert_eq!(
        actions(&r),
        [
            ("image-updater/api".into(), 1, "unchanged".into()),
            ("image-updater/web".into(), 2, "closed".into())
        ]
    );
    let gh = fake.state();
    assert_eq!(gh.prs[1]["state"], "closed");
    assert!(
        gh.comments
            .iter()
            .any(|(n, c)| *n == 2 && c.contains("no longer needed")),
        "{:?}",
        gh.comments
    );
    assert!(gh.problems.is_empty(), "{:?}", gh.problems);
}
