//! "What changed in the app" end to end: images in the real registry whose config labels (or
//! manifest annotations) name `org.opencontainers.image.source` and `.revision`; a run that
//! delivers links the source and the compare view from the old revision to the new one in the
//! pull-request body (the forge fakes) and in the commit message (the remote). The registry
//! sits behind the counting [`FaultProxy`]: each tag is read once, old tags only when the new
//! image names a source, `plan` reads none, and a failed read costs the link, not the run.

use crate::common;

use std::path::{Path, PathBuf};

use common::forges::{
    fixture_remote, ok_report, pr_remote, run_async as run, run_in, Forge, ForgeFake,
};
use common::{git, Fault, FaultProxy, GitHttpServer, Registry};

const TOKEN: &str = "app-changes-token-never-printed";
const SOURCE: &str = "org.opencontainers.image.source";
const REVISION: &str = "org.opencontainers.image.revision";
const WEB_OLD: &str = "1111111111111111111111111111111111111111";
const WEB_NEW: &str = "2222222222222222222222222222222222222222";
const API_OLD: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const API_NEW: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// The `commit-basic` tags (web 1.0.0 -> 1.2.0, api v2.4.0 -> 2.4.2, db current), web's with
/// GitHub-shaped labels in the config, api's with a GitLab-shaped source in the manifest's
/// annotations (an scp-like git URL, normalised), db's plain.
fn seed_labelled(registry: &Registry) {
    let web = "https://github.com/acme/web.git";
    registry.push_labelled(
        "acme/web",
        "1.0.0",
        &[(SOURCE, web), (REVISION, WEB_OLD)],
        &[],
    );
    registry.push_image("acme/web", &["1.1.0"]);
    registry.push_labelled(
        "acme/web",
        "1.2.0",
        &[(SOURCE, web), (REVISION, WEB_NEW)],
        &[],
    );
    let api = "git@gitlab.example.com:platform/api.git";
    for (tag, rev) in [("v2.4.0", API_OLD), ("2.4.2", API_NEW)] {
        registry.push_labelled("acme/api", tag, &[], &[(SOURCE, api), (REVISION, rev)]);
    }
    registry.push_image("acme/db", &["2.0.0"]);
}

fn seed_plain(registry: &Registry) {
    registry.push_image("acme/web", &["1.0.0", "1.1.0", "1.2.0"]);
    registry.push_image("acme/api", &["v2.4.0", "2.4.2"]);
    registry.push_image("acme/db", &["2.0.0"]);
}

fn github_compare() -> String {
    format!("https://github.com/acme/web/compare/{WEB_OLD}...{WEB_NEW}")
}

fn gitlab_compare() -> String {
    format!("https://gitlab.example.com/platform/api/-/compare/{API_OLD}...{API_NEW}")
}

/// Whether request line `r` (`GET /v2/...`) reads the manifest of `repo:tag`.
fn reads_manifest(r: &str, repo: &str, tag: &str) -> bool {
    let line = format!("GET /v2/{repo}/manifests/{tag}");
    r == line || r.starts_with(&format!("{line}?"))
}

/// Manifest reads of `repo:tag` through the proxy.
fn manifest_reads(proxy: &FaultProxy, repo: &str, tag: &str) -> usize {
    proxy
        .requests()
        .iter()
        .filter(|r| reads_manifest(r, repo, tag))
        .count()
}

/// A bare remote with the `commit-basic` fixture in commit mode, pointing at `registry_addr`,
/// and a clone of it.
fn commit_repo(dir: &Path, registry_addr: &str) -> (PathBuf, PathBuf) {
    let bare = fixture_remote(dir, registry_addr, "  mode: commit\n");
    let work = common::clone(bare.to_str().unwrap(), &dir.join("work"));
    (bare, work)
}

/// A pull-request run on GitHub: both pull requests' bodies and commits link the source and the
/// compare view (GitHub's shape for web, GitLab's for api); each tag read once.
#[tokio::test(flavor = "multi_thread")]
async fn pull_requests_link_the_app_changes() {
    let registry = Registry::start();
    seed_labelled(&registry);
    let proxy = FaultProxy::start(&registry.addr);
    let (fake, server) = ForgeFake::start(Forge::Github, TOKEN).await;
    let tmp = tempfile::tempdir().unwrap();
    let bare = pr_remote(
        tmp.path(),
        &proxy.addr,
        &Forge::Github.delivery(&server.uri(), ""),
    );
    let git_server = GitHttpServer::start(tmp.path(), None);
    let work = common::clone(
        &format!("{}/remote.git", git_server.base_url),
        &tmp.path().join("work"),
    );

    // `plan` asks the registry for no image config.
    let before = proxy.requests().len();
    let o = common::image_updater(&["plan", work.to_str().unwrap(), "--output", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", common::output_text(&o));
    let plan_reads: Vec<String> = proxy.requests()[before..]
        .iter()
        .filter(|r| r.contains("/manifests/") || r.contains("/blobs/"))
        .cloned()
        .collect();
    assert!(plan_reads.is_empty(), "{plan_reads:#?}");

    let before = proxy.requests().len();
    let o = run(&work, &[("GITHUB_TOKEN", TOKEN)]).await;
    let report = ok_report(&o, &[TOKEN]);
    assert!(report["errors"].as_array().unwrap().is_empty(), "{report}");
    assert!(fake.problems().is_empty(), "{:#?}", fake.problems());

    let web = fake.pr("image-updater/web");
    assert!(
        web.body.contains("### What changed in the app"),
        "{}",
        web.body
    );
    assert!(
        web.body.contains(&format!(
            "[github.com/acme/web](https://github.com/acme/web) · [compare 1111111...2222222]({})",
            github_compare()
        )),
        "{}",
        web.body
    );
    let api = fake.pr("image-updater/api");
    assert!(
        api.body.contains(&format!(
            "[gitlab.example.com/platform/api](https://gitlab.example.com/platform/api) · [compare aaaaaaa...bbbbbbb]({})",
            gitlab_compare()
        )),
        "{}",
        api.body
    );
    let web_msg = git(&bare, &["log", "-1", "--format=%B", "image-updater/web"]);
    assert!(
        web_msg.contains(&format!(
            "What changed in the app:\n- web 1.0.0 -> 1.2.0\n  source: https://github.com/acme/web\n  compare: {}\n",
            github_compare()
        )),
        "{web_msg}"
    );
    let api_msg = git(&bare, &["log", "-1", "--format=%B", "image-updater/api"]);
    assert!(
        api_msg.contains(&format!("  compare: {}\n", gitlab_compare())),
        "{api_msg}"
    );

    // One manifest and one config read per tag, old and new; the tag between is not read.
    let run_requests = proxy.requests()[before..].to_vec();
    for (repo, tag) in [
        ("acme/web", "1.0.0"),
        ("acme/web", "1.2.0"),
        ("acme/api", "v2.4.0"),
        ("acme/api", "2.4.2"),
    ] {
        let reads = run_requests
            .iter()
            .filter(|r| reads_manifest(r, repo, tag))
            .count();
        assert_eq!(reads, 1, "{repo}:{tag}: {run_requests:#?}");
    }
    let blobs = run_requests
        .iter()
        .filter(|r| r.contains("/blobs/"))
        .count();
    assert_eq!(blobs, 4, "one config per tag: {run_requests:#?}");
    assert_eq!(manifest_reads(&proxy, "acme/web", "1.1.0"), 0);
}

/// Images without labels: no section, no error, and no old tag read (the new image names no
/// source, so there is nothing to compare).
#[test]
fn images_without_labels_get_no_links_and_no_error() {
    let registry = Registry::start();
    seed_plain(&registry);
    let proxy = FaultProxy::start(&registry.addr);
    let tmp = tempfile::tempdir().unwrap();
    let (bare, work) = commit_repo(tmp.path(), &proxy.addr);
    let o = run_in(&work, &[]);
    let report = ok_report(&o, &[]);
    assert!(report["errors"].as_array().unwrap().is_empty(), "{report}");
    assert!(report["commit"].is_string(), "{report}");
    let msg = git(&bare, &["log", "-1", "--format=%B", "main"]);
    assert!(!msg.contains("What changed in the app"), "{msg}");
    assert!(msg.starts_with("chore(images): update "), "{msg}");
    assert_eq!(manifest_reads(&proxy, "acme/web", "1.2.0"), 1);
    assert_eq!(manifest_reads(&proxy, "acme/api", "2.4.2"), 1);
    assert_eq!(manifest_reads(&proxy, "acme/web", "1.0.0"), 0);
    assert_eq!(manifest_reads(&proxy, "acme/api", "v2.4.0"), 0);
}

/// Commit mode links too; a config that cannot be read (the registry answers 404 for the
/// blob) and a manifest that cannot be read (500s, retried and given up) cost their links,
/// with a warning, and the run still delivers with exit 0.
#[test]
fn a_failed_lookup_costs_the_link_not_the_run() {
    let registry = Registry::start();
    seed_labelled(&registry);
    let proxy = FaultProxy::start(&registry.addr);
    // api's new config blob is gone; web's old manifest fails every time.
    let missing = registry.push_labelled(
        "acme/api",
        "2.4.2",
        &[
            (SOURCE, "https://gitlab.com/platform/api"),
            (REVISION, API_NEW),
        ],
        &[],
    );
    proxy.inject(
        &format!("/v2/acme/api/blobs/{missing}"),
        vec![Fault::Status(404, None); 20],
    );
    proxy.inject(
        "/v2/acme/web/manifests/1.0.0",
        vec![Fault::Status(500, None); 20],
    );
    let tmp = tempfile::tempdir().unwrap();
    let (bare, work) = commit_repo(tmp.path(), &proxy.addr);
    let o = run_in(&work, &[("IMAGE_UPDATER_REGISTRY_ATTEMPTS", "2")]);
    let report = ok_report(&o, &[]);
    assert!(report["errors"].as_array().unwrap().is_empty(), "{report}");
    assert!(
        !report["updates"].as_array().unwrap().is_empty(),
        "{report}"
    );
    let msg = git(&bare, &["log", "-1", "--format=%B", "main"]);
    // web: the old revision is unknown, so the new commit is linked instead of a compare.
    assert!(
        msg.contains(&format!(
            "- web 1.0.0 -> 1.2.0\n  source: https://github.com/acme/web\n  commit: https://github.com/acme/web/commit/{WEB_NEW}\n"
        )),
        "{msg}"
    );
    assert!(!msg.contains("- api "), "{msg}");
    assert!(!msg.contains("compare"), "{msg}");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("registry.example.com/acme/api:2.4.2 could not be read"),
        "{stderr}"
    );
}

/// Label values from a hostile image build: nothing that is not a plain http(s) repository
/// URL is linked, and nothing breaks out of the body's Markdown.
#[tokio::test(flavor = "multi_thread")]
async fn hostile_labels_make_no_link() {
    let registry = Registry::start();
    let evil = "javascript:alert(1)//github.com/acme/web";
    registry.push_labelled("acme/web", "1.0.0", &[(SOURCE, evil), (REVISION, "a")], &[]);
    registry.push_image("acme/web", &["1.1.0"]);
    registry.push_labelled(
        "acme/web",
        "1.2.0",
        &[(SOURCE, evil), (REVISION, "b)\n[x](javascript:alert(2))")],
        &[],
    );
    registry.push_labelled(
        "acme/api",
        "v2.4.0",
        &[
            (SOURCE, "https://github.com/acme/api\n# pwned"),
            (REVISION, "c"),
        ],
        &[],
    );
    registry.push_labelled(
        "acme/api",
        "2.4.2",
        &[
            (SOURCE, "https://github.com/acme/api\n# pwned"),
            (REVISION, "d"),
        ],
        &[],
    );
    registry.push_image("acme/db", &["2.0.0"]);
    let (fake, server) = ForgeFake::start(Forge::Github, TOKEN).await;
    let tmp = tempfile::tempdir().unwrap();
    pr_remote(
        tmp.path(),
        &registry.addr,
        &Forge::Github.delivery(&server.uri(), ""),
    );
    let git_server = GitHttpServer::start(tmp.path(), None);
    let work = common::clone(
        &format!("{}/remote.git", git_server.base_url),
        &tmp.path().join("work"),
    );
    let o = run(&work, &[("GITHUB_TOKEN", TOKEN)]).await;
    let report = ok_report(&o, &[TOKEN]);
    assert!(report["errors"].as_array().unwrap().is_empty(), "{report}");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("which is not a plain http(s) repository URL: not linked"),
        "the labels were read and refused: {stderr}"
    );
    for pr in fake.prs() {
        assert!(!pr.body.contains("What changed"), "{}", pr.body);
        assert!(!pr.body.contains("javascript"), "{}", pr.body);
        assert!(!pr.body.contains("pwned"), "{}", pr.body);
    }
}

/// A multi-platform tag (an index with no annotations of its own) is described by its first
/// platform's image: its config labels give the link, read with the index, that manifest and
/// that config — once each.
#[test]
fn a_multi_platform_tag_is_described_by_its_first_platform() {
    const INDEX: &str = "application/vnd.oci.image.index.v1+json";
    const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    let registry = Registry::start();
    seed_labelled(&registry);
    // web 1.2.0 becomes an index of the linux/amd64 image pushed as `build-amd64`.
    registry.push_labelled(
        "acme/web",
        "build-amd64",
        &[(SOURCE, "https://github.com/acme/web"), (REVISION, WEB_NEW)],
        &[],
    );
    let image = registry.request(
        "GET",
        "/v2/acme/web/manifests/build-amd64",
        &[("Accept", MANIFEST)],
        &[],
    );
    assert_eq!(image.status, 200, "{}", image.text());
    let digest = common::sha256_digest(&image.body);
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{INDEX}","manifests":[{{"mediaType":"{MANIFEST}","digest":"{digest}","size":{},"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#,
        image.body.len()
    );
    registry.put_manifest("acme/web", "1.2.0", INDEX, &index);
    let proxy = FaultProxy::start(&registry.addr);
    let tmp = tempfile::tempdir().unwrap();
    let (bare, work) = commit_repo(tmp.path(), &proxy.addr);
    let report = ok_report(&run_in(&work, &[]), &[]);
    assert!(report["errors"].as_array().unwrap().is_empty(), "{report}");
    let msg = git(&bare, &["log", "-1", "--format=%B", "main"]);
    assert!(
        msg.contains(&format!(
            "- web 1.0.0 -> 1.2.0\n  source: https://github.com/acme/web\n  compare: {}\n",
            github_compare()
        )),
        "{msg}"
    );
    assert_eq!(manifest_reads(&proxy, "acme/web", "1.2.0"), 1);
    assert_eq!(manifest_reads(&proxy, "acme/web", &digest), 1);
}
