//! Nothing we did not write is committed: a manifest `run` would rewrite whose work-tree bytes
//! differ from its blob in HEAD — modified, staged but not committed, untracked or added — is
//! left alone. It is not rewritten, not committed, not pushed; each of its updates is an error
//! naming the file (exit 1); every other file's updates are delivered; the user's edit stays
//! in the work tree (and the index) byte for byte.
//!
//! Against the real registry and a real git remote: a bare repository over `file://` and over
//! smart HTTP (`git-http-backend`) in commit mode, and the GitHub fake in pull-request mode.
//! Every user edit carries [`CANARY`]; no commit of any branch of the remote may hold it.
//! (Before the fix, each of these runs committed and pushed the user's edit along with ours,
//! or, for an edit staged and then undone in the work tree, replaced the staged content.)

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::forges::{mount_fake, output_text, run_async, run_in, seed_registry, GithubFake};
use common::{bare_repo_with_files, git, GitHttpServer, Registry};
use serde_json::Value;
use wiremock::MockServer;

const BIN: &str = env!("CARGO_BIN_EXE_image-updater");

/// In every edit the user makes; never in anything the remote receives.
const CANARY: &str = "uncommitted-canary-5e1f";

const FORGE_TOKEN: &str = "ghp-worktree-forge-token";

fn manifest(name: &str, image: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  template:\n    spec:\n      containers:\n        - name: {name}\n          image: registry.example.com/acme/{image} # pinned by CI\n"
    )
}

/// The manifests as committed: web in two files, api in one (the registry has web 1.2.0 and
/// api 2.4.2).
fn inputs() -> Vec<(&'static str, String)> {
    vec![
        ("apps/web.yaml", manifest("web", "web:1.0.0")),
        ("apps/more.yaml", manifest("more", "web:1.0.0")),
        ("apps/api.yaml", manifest("api", "api:v2.4.0")),
    ]
}

/// What `run` makes of an input.
fn updated(text: &str) -> String {
    text.replace("web:1.0.0", "web:1.2.0")
        .replace("api:v2.4.0", "api:2.4.2")
}

fn input(path: &str) -> String {
    inputs()
        .into_iter()
        .find(|(p, _)| *p == path)
        .map(|(_, t)| t)
        .unwrap()
}

/// A user's edit of `text`: a comment line on top and a changed value below.
fn user_edit(text: &str) -> String {
    format!("# {CANARY}: trying a change locally\n{text}")
        .replace("name: web\n", "name: web-local\n")
}

#[derive(Clone, Copy, Debug)]
enum Via {
    File,
    Http,
}

struct World {
    _registry: Registry,
    _tmp: tempfile::TempDir,
    _server: Option<GitHttpServer>,
    bare: PathBuf,
    work: PathBuf,
    base: String,
}

fn config(registry: &str, delivery: &str) -> String {
    format!(
        "registries:\n  - host: registry.example.com\n    api: \"{registry}\"\n    insecure: true\nimages:\n  - name: web\n    image: registry.example.com/acme/web\n    policy: {{ semver: \"^1.0\" }}\n  - name: api\n    image: registry.example.com/acme/api\n    policy: {{ semver: \"~2.4\" }}\ndelivery:\n{delivery}  commit:\n    author: {{ name: image-updater-test, email: bot@example.invalid }}\n    message: \"chore(images): {{{{ summary }}}}\"\n"
    )
}

/// The registry, a bare remote holding [`inputs`] and a config with `delivery` (lines indented
/// by two spaces), and a clone of it reached `via` file:// or smart HTTP.
fn world(via: Via, delivery: &str) -> World {
    let registry = Registry::start();
    seed_registry(&registry);
    let tmp = tempfile::tempdir().unwrap();
    let config = config(&registry.addr, delivery);
    let inputs = inputs();
    let mut files: Vec<(&str, &[u8])> = inputs.iter().map(|(p, t)| (*p, t.as_bytes())).collect();
    files.push((".image-updater.yaml", config.as_bytes()));
    let bare = bare_repo_with_files(&tmp.path().join("remote.git"), &files);
    let (server, url) = match via {
        Via::File => (None, format!("file://{}", bare.display())),
        Via::Http => {
            let server = GitHttpServer::start(tmp.path(), None);
            let url = server.url("remote.git");
            (Some(server), url)
        }
    };
    let work = common::clone(&url, &tmp.path().join("work"));
    let base = git(&bare, &["rev-parse", "main"]).trim().to_string();
    World {
        _registry: registry,
        _tmp: tmp,
        _server: server,
        bare,
        work,
        base,
    }
}

fn commit_world(via: Via) -> World {
    world(via, "  mode: commit\n")
}

fn report(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", output_text(o)))
}

/// The report's errors that concern `file`.
fn errors_for<'a>(r: &'a Value, file: &str) -> Vec<&'a Value> {
    r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["file"] == file)
        .collect()
}

/// The report says `file` was left alone because of uncommitted changes.
#[track_caller]
fn assert_held_back(o: &Output, file: &str) {
    let r = report(o);
    let errors = errors_for(&r, file);
    assert!(
        !errors.is_empty(),
        "no error names {file}:\n{}",
        output_text(o)
    );
    for e in errors {
        let m = e["message"].as_str().unwrap();
        assert!(
            m.contains(file)
                && m.contains("uncommitted changes in the work tree")
                && m.contains("commit or discard"),
            "{m}"
        );
    }
    assert!(
        r["updates"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["file"] != file),
        "an update of {file} is reported as made:\n{r}"
    );
}

/// The files of the report's updates, sorted.
fn updated_files(o: &Output) -> Vec<String> {
    let mut v: Vec<String> = report(o)["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["file"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

/// No commit on any branch of the remote holds the canary, in any file.
#[track_caller]
fn assert_remote_clean(bare: &Path) {
    let all = git(bare, &["log", "-p", "--all", "--format=%H %s"]);
    assert!(
        !all.contains(CANARY),
        "the user's edit reached the remote:\n{all}"
    );
}

/// `path` in the remote's commit `rev`, or None when it does not exist there.
fn remote_file(bare: &Path, rev: &str, path: &str) -> Option<String> {
    common::try_git(bare, &["show", &format!("{rev}:{path}")]).ok()
}

fn read(work: &Path, path: &str) -> String {
    std::fs::read_to_string(work.join(path)).unwrap()
}

/// A modified tracked manifest: left alone, the rest committed and pushed.
fn modified_tracked_file(via: Via) {
    let w = commit_world(via);
    let mine = user_edit(&input("apps/web.yaml"));
    std::fs::write(w.work.join("apps/web.yaml"), &mine).unwrap();

    let o = run_in(&w.work, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", output_text(&o));
    assert_held_back(&o, "apps/web.yaml");
    assert_eq!(updated_files(&o), ["apps/api.yaml", "apps/more.yaml"]);

    assert_remote_clean(&w.bare);
    let head = git(&w.bare, &["rev-parse", "main"]).trim().to_string();
    assert_ne!(head, w.base, "the other files' updates are pushed");
    assert_eq!(
        remote_file(&w.bare, "main", "apps/web.yaml").unwrap(),
        input("apps/web.yaml")
    );
    for f in ["apps/more.yaml", "apps/api.yaml"] {
        assert_eq!(
            remote_file(&w.bare, "main", f).unwrap(),
            updated(&input(f)),
            "{f}"
        );
    }
    assert_eq!(
        git(&w.bare, &["diff", "--name-only", &w.base, "main"]),
        "apps/api.yaml\napps/more.yaml\n"
    );
    assert_eq!(
        git(&w.work, &["rev-parse", "HEAD"]).trim(),
        head,
        "the work tree follows its commit"
    );
    assert_eq!(
        read(&w.work, "apps/web.yaml"),
        mine,
        "the user's edit is untouched"
    );
    assert_eq!(
        read(&w.work, "apps/more.yaml"),
        updated(&input("apps/more.yaml"))
    );
    assert_eq!(
        git(&w.work, &["status", "--porcelain"]),
        " M apps/web.yaml\n"
    );

    // Once the user commits (here: discards) the edit, the next run delivers the rest.
    git(&w.work, &["checkout", "--", "apps/web.yaml"]);
    let o = run_in(&w.work, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    assert_eq!(updated_files(&o), ["apps/web.yaml"]);
    assert_eq!(
        remote_file(&w.bare, "main", "apps/web.yaml").unwrap(),
        updated(&input("apps/web.yaml"))
    );
}

#[test]
fn a_modified_tracked_file_is_left_alone_over_file() {
    modified_tracked_file(Via::File);
}

#[test]
fn a_modified_tracked_file_is_left_alone_over_smart_http() {
    modified_tracked_file(Via::Http);
}

/// An edit staged (`git add`) but not committed: left alone, still staged.
fn staged_edit(via: Via) {
    let w = commit_world(via);
    let mine = user_edit(&input("apps/api.yaml"));
    std::fs::write(w.work.join("apps/api.yaml"), &mine).unwrap();
    git(&w.work, &["add", "apps/api.yaml"]);

    let o = run_in(&w.work, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", output_text(&o));
    assert_held_back(&o, "apps/api.yaml");
    assert_eq!(updated_files(&o), ["apps/more.yaml", "apps/web.yaml"]);

    assert_remote_clean(&w.bare);
    assert_eq!(
        remote_file(&w.bare, "main", "apps/api.yaml").unwrap(),
        input("apps/api.yaml")
    );
    assert_eq!(
        remote_file(&w.bare, "main", "apps/web.yaml").unwrap(),
        updated(&input("apps/web.yaml"))
    );
    assert_eq!(read(&w.work, "apps/api.yaml"), mine);
    assert_eq!(
        git(&w.work, &["show", ":apps/api.yaml"]),
        mine,
        "still staged"
    );
    assert_eq!(
        git(&w.work, &["status", "--porcelain"]),
        "M  apps/api.yaml\n"
    );
}

#[test]
fn a_staged_edit_is_left_alone_over_file() {
    staged_edit(Via::File);
}

#[test]
fn a_staged_edit_is_left_alone_over_smart_http() {
    staged_edit(Via::Http);
}

/// An edit staged and then undone in the work tree: the work tree matches HEAD, the index
/// does not. The staged content is the user's: it stays staged, and the file is left alone.
#[test]
fn a_staged_edit_undone_in_the_work_tree_stays_staged() {
    let w = commit_world(Via::File);
    let mine = user_edit(&input("apps/web.yaml"));
    std::fs::write(w.work.join("apps/web.yaml"), &mine).unwrap();
    git(&w.work, &["add", "apps/web.yaml"]);
    std::fs::write(w.work.join("apps/web.yaml"), input("apps/web.yaml")).unwrap();

    let o = run_in(&w.work, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", output_text(&o));
    assert_held_back(&o, "apps/web.yaml");
    assert_remote_clean(&w.bare);
    assert_eq!(
        remote_file(&w.bare, "main", "apps/web.yaml").unwrap(),
        input("apps/web.yaml")
    );
    assert_eq!(
        git(&w.work, &["show", ":apps/web.yaml"]),
        mine,
        "still staged"
    );
    assert_eq!(read(&w.work, "apps/web.yaml"), input("apps/web.yaml"));
}

/// A manifest not in HEAD — untracked, or added and not committed — is not committed.
fn untracked_manifest(via: Via) {
    let w = commit_world(via);
    let new = format!("# {CANARY}\n{}", manifest("new", "web:1.0.0"));
    std::fs::write(w.work.join("apps/new.yaml"), &new).unwrap();
    let added = format!("# {CANARY}\n{}", manifest("added", "api:v2.4.0"));
    std::fs::write(w.work.join("apps/added.yaml"), &added).unwrap();
    git(&w.work, &["add", "apps/added.yaml"]);

    let o = run_in(&w.work, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", output_text(&o));
    assert_held_back(&o, "apps/new.yaml");
    assert_held_back(&o, "apps/added.yaml");
    assert_eq!(
        updated_files(&o),
        ["apps/api.yaml", "apps/more.yaml", "apps/web.yaml"]
    );
    assert_remote_clean(&w.bare);
    assert_eq!(remote_file(&w.bare, "main", "apps/new.yaml"), None);
    assert_eq!(remote_file(&w.bare, "main", "apps/added.yaml"), None);
    assert_eq!(read(&w.work, "apps/new.yaml"), new);
    assert_eq!(read(&w.work, "apps/added.yaml"), added);
    assert_eq!(
        git(&w.work, &["status", "--porcelain"]),
        "A  apps/added.yaml\n?? apps/new.yaml\n"
    );
}

#[test]
fn an_untracked_manifest_is_not_committed_over_file() {
    untracked_manifest(Via::File);
}

#[test]
fn an_untracked_manifest_is_not_committed_over_smart_http() {
    untracked_manifest(Via::Http);
}

/// The user reverted our last commit in the work tree (not committed): that is their edit,
/// kept, not "completed" by writing our commit's content over it.
#[test]
fn a_revert_of_our_commit_in_the_work_tree_is_kept() {
    let w = commit_world(Via::File);
    let o = run_in(&w.work, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let head = git(&w.work, &["rev-parse", "HEAD"]);
    std::fs::write(w.work.join("apps/web.yaml"), input("apps/web.yaml")).unwrap();

    let o = run_in(&w.work, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", output_text(&o));
    assert_held_back(&o, "apps/web.yaml");
    assert_eq!(
        read(&w.work, "apps/web.yaml"),
        input("apps/web.yaml"),
        "the revert is kept"
    );
    assert_eq!(git(&w.work, &["rev-parse", "HEAD"]), head, "no commit");
    assert_eq!(
        git(&w.work, &["status", "--porcelain"]),
        " M apps/web.yaml\n"
    );
}

/// A run stopped after it moved the branch and before it wrote the files leaves the work tree
/// behind its own HEAD: the next run completes it (this is ours to finish, not a user's edit).
#[test]
fn a_work_tree_left_behind_by_a_stopped_run_is_completed() {
    let w = commit_world(Via::File);
    let o = run_in(&w.work, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let head = git(&w.work, &["rev-parse", "HEAD"]);
    // The state such a run leaves: the branch and the index at its commit (index entries
    // without stat data), the marker naming that commit, the files as they were.
    for (path, text) in inputs() {
        std::fs::write(w.work.join(path), text).unwrap();
        let blob = git(&w.work, &["rev-parse", &format!("HEAD:{path}")]);
        git(
            &w.work,
            &[
                "update-index",
                "--cacheinfo",
                &format!("100644,{},{path}", blob.trim()),
            ],
        );
    }
    git(
        &w.work,
        &["update-ref", "refs/image-updater/worktree", "HEAD"],
    );

    let o = run_in(&w.work, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    assert_eq!(git(&w.work, &["rev-parse", "HEAD"]), head, "no new commit");
    for (path, text) in inputs() {
        assert_eq!(read(&w.work, path), updated(&text), "{path}");
    }
    assert_eq!(git(&w.work, &["status", "--porcelain"]), "");
    assert!(
        common::try_git(
            &w.work,
            &["rev-parse", "--verify", "-q", "refs/image-updater/worktree"]
        )
        .is_err(),
        "the marker is gone once the work tree is complete"
    );
}

/// `plan` shows what `run` would do: the same errors, no update or diff for the file, and it
/// writes nothing.
#[test]
fn plan_reports_files_with_uncommitted_changes() {
    let w = commit_world(Via::File);
    let mine = user_edit(&input("apps/web.yaml"));
    std::fs::write(w.work.join("apps/web.yaml"), &mine).unwrap();
    let plan = |format: &str| {
        let mut cmd = Command::new(BIN);
        cmd.args(["plan", w.work.to_str().unwrap(), "--output", format])
            .env("NO_COLOR", "1");
        cmd.output().unwrap()
    };
    let o = plan("json");
    assert_eq!(o.status.code(), Some(1), "{}", output_text(&o));
    assert_held_back(&o, "apps/web.yaml");
    assert_eq!(updated_files(&o), ["apps/api.yaml", "apps/more.yaml"]);
    let text = plan("text");
    let out = String::from_utf8_lossy(&text.stdout);
    assert!(!out.contains("a/apps/web.yaml"), "{out}");
    assert!(out.contains("a/apps/more.yaml"), "{out}");
    assert_eq!(read(&w.work, "apps/web.yaml"), mine);
    assert_eq!(
        git(&w.work, &["status", "--porcelain"]),
        " M apps/web.yaml\n"
    );
    assert_eq!(git(&w.bare, &["rev-parse", "main"]).trim(), w.base);
}

/// Pull-request mode: each branch is cut from the base and holds only our edits of committed
/// files; an image whose update is held back keeps its open pull request (it is not "current").
#[tokio::test(flavor = "multi_thread")]
async fn pull_request_branches_hold_no_user_edits() {
    let server = MockServer::start().await;
    let fake = GithubFake::new(FORGE_TOKEN);
    mount_fake(&server, fake.clone()).await;
    let w = world(
        Via::File,
        &format!(
            "  mode: pull-request\n  forge: github\n  api_url: {}\n  repository: acme/infra\n",
            server.uri()
        ),
    );
    let env = [("GITHUB_TOKEN", FORGE_TOKEN)];
    let mine = user_edit(&input("apps/web.yaml"));
    std::fs::write(w.work.join("apps/web.yaml"), &mine).unwrap();
    let new = format!("# {CANARY}\n{}", manifest("new", "api:v2.4.0"));
    std::fs::write(w.work.join("apps/new.yaml"), &new).unwrap();
    let staged = user_edit(&input("apps/api.yaml")).replace("name: api\n", "name: api-local\n");
    std::fs::write(w.work.join("apps/api.yaml"), &staged).unwrap();
    git(&w.work, &["add", "apps/api.yaml"]);
    std::fs::write(w.work.join("apps/api.yaml"), input("apps/api.yaml")).unwrap();

    let o = run_async(&w.work, &env).await;
    assert_eq!(o.status.code(), Some(1), "{}", output_text(&o));
    assert_held_back(&o, "apps/web.yaml");
    assert_held_back(&o, "apps/new.yaml");
    assert_held_back(&o, "apps/api.yaml");
    assert_eq!(updated_files(&o), ["apps/more.yaml"]);
    assert_remote_clean(&w.bare);
    assert_eq!(
        git(&w.bare, &["rev-parse", "main"]).trim(),
        w.base,
        "the base is not pushed to"
    );
    let branches = git(
        &w.bare,
        &["for-each-ref", "--format=%(refname:short)", "refs/heads"],
    );
    assert_eq!(branches, "image-updater/web\nmain\n");
    assert_eq!(
        git(
            &w.bare,
            &["diff", "--name-only", "main", "image-updater/web"]
        ),
        "apps/more.yaml\n"
    );
    assert_eq!(
        remote_file(&w.bare, "image-updater/web", "apps/more.yaml").unwrap(),
        updated(&input("apps/more.yaml"))
    );
    assert_eq!(
        git(&w.bare, &["rev-parse", "image-updater/web~1"]).trim(),
        w.base
    );
    assert_eq!(read(&w.work, "apps/web.yaml"), mine);
    assert_eq!(read(&w.work, "apps/new.yaml"), new);
    assert_eq!(git(&w.work, &["show", ":apps/api.yaml"]), staged);
    {
        let gh = fake.state();
        assert!(gh.problems.is_empty(), "{:?}", gh.problems);
        assert_eq!(gh.prs.len(), 1);
        assert_eq!(gh.prs[0]["head"]["ref"], "image-updater/web");
    }
    let web_tip = git(&w.bare, &["rev-parse", "image-updater/web"]);

    // Now every web file has the user's edits: web's pull request stays open and its branch
    // as it was; nothing of the user's is pushed.
    let more = user_edit(&input("apps/more.yaml"));
    std::fs::write(w.work.join("apps/more.yaml"), &more).unwrap();
    let o = run_async(&w.work, &env).await;
    assert_eq!(o.status.code(), Some(1), "{}", output_text(&o));
    assert_held_back(&o, "apps/more.yaml");
    let r = report(&o);
    assert!(
        r["pull_requests"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["action"] != "closed"),
        "{r}"
    );
    assert_eq!(fake.state().prs[0]["state"], "open");
    assert_eq!(git(&w.bare, &["rev-parse", "image-updater/web"]), web_tip);
    assert_remote_clean(&w.bare);
    assert_eq!(read(&w.work, "apps/more.yaml"), more);
}
