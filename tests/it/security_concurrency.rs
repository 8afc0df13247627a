//! Two runs started at once against one remote — a cron job overlapping itself, two shards of
//! one CI job, a re-run pipeline — end with every update delivered once: no lost commit, no
//! empty commit, no duplicate pull request.
//!
//! Each iteration gets a fresh bare repository and two clones of it; both runs are spawned
//! together, then awaited. The clones reach the remote one of three ways ([`Via`]): over smart
//! HTTP (`git-http-backend`, whose ref updates are compare-and-swap, as on any git server)
//! with the pushes held until both runs' have arrived ([`GitHttpServer::hold_pushes`]), so
//! they surely collide; over smart HTTP as the machine's timing falls; and over `file://`,
//! where the runs write the remote repository themselves.
//!
//! - [`commit_mode_races_deliver_every_update_once`]: the same images in both runs (the loser
//!   finds nothing left to do and makes no empty commit), disjoint images (`--shard 1/2` and
//!   `2/2`: the loser fetches, re-applies its edits on the winner's commit — one file is
//!   edited by both — and pushes again), and overlapping ones (all images against one shard).
//!   After each: the branch holds every update, each made by exactly one commit, the commit of
//!   the run that reports it; no empty commit, no merge, nothing pushed over another run's
//!   commit; both runs exit 0; both work trees clean and on the branch. (Over `file://` the
//!   later push used to replace the earlier one's commit: libgit2's local transport moved the
//!   branch without a compare-and-swap.)
//! - [`github_races_open_one_pull_request_per_branch`] and its GitLab and Gitea siblings: two
//!   runs in pull-request mode against the stateful fake of the forge (which checks for a
//!   duplicate and records a new request under one lock, answering GitHub's 422, GitLab's and
//!   Gitea's 409 as they do): exactly one request ever opened per branch, each branch holding
//!   exactly its image's update on top of the base, the base untouched, both runs exit 0 and
//!   report the same request numbers. With the pushes held, both runs push every branch in
//!   lockstep and the fake lists slowly, so both also try to open every request. (The run
//!   whose branch push lost used to fail with exit 1, though its change was on the branch.)
//! - [`a_push_waits_for_a_branch_lock_another_writer_holds`] and
//!   [`a_branch_lock_left_behind_is_named`]: over `file://` a run meets the other writer's
//!   lock on the branch directly; it waits for it (as git does), and names a lock that stays.
//! - [`two_runs_in_one_work_tree_never_corrupt_it`]: two runs at once in the same work tree
//!   (cron overlap on one machine): one does the job, the other stops at once saying another
//!   run is at work, and the next run has nothing left to do. (They used to remove each
//!   other's temporary files and share the pending commit's reference.)

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::forges::{output_text, run_command, Forge, ForgeFake};
use common::{bare_repo_with_files, git, try_git, GitHttpServer, Registry};
use serde_json::Value;

/// Iterations of the commit-mode race: three kinds by three ways to the remote, twice over.
const COMMIT_ITERATIONS: usize = 18;
/// Iterations of the pull-request race on GitHub; GitLab and Gitea get [`PR_ITERATIONS_OTHER`].
const PR_ITERATIONS_GITHUB: usize = 10;
const PR_ITERATIONS_OTHER: usize = 6;
/// Iterations of two runs in one work tree.
const SAME_TREE_ITERATIONS: usize = 10;

const FORGE_TOKEN: &str = "forge-token-never-printed";

/// How slowly the forge fakes list requests in gated pull-request races (a busy forge): wide
/// enough for both runs to look before either opens. Not a wait for anything: the outcome
/// must be the same whatever the interleaving.
const LIST_DELAY: Duration = Duration::from_millis(150);

/// The watched images (`registry.example.com/acme/NAME`) and the file each one lives in.
/// `api` and `mail` share a file, and fall in different shards of two.
const IMAGES: [(&str, &str); 4] = [
    ("web", "apps/web.yaml"),
    ("api", "apps/shared.yaml"),
    ("queue", "apps/queue.yaml"),
    ("mail", "apps/shared.yaml"),
];

/// The images each `--shard I/2` handles (checked against the binary's hash first).
const SHARD_1: [&str; 2] = ["queue", "mail"];
const SHARD_2: [&str; 2] = ["web", "api"];

fn deployment(name: &str, init: bool) -> String {
    let init = if init {
        format!("      initContainers:\n        - name: migrate\n          image: \"registry.example.com/acme/{name}:1.0.0\"   # quoted\n")
    } else {
        String::new()
    };
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  template:\n    spec:\n{init}      containers:\n        - name: {name}\n          image: registry.example.com/acme/{name}:1.0.0 # keep this comment\n"
    )
}

/// The manifests as the base holds them: (path, text).
fn inputs() -> Vec<(&'static str, String)> {
    vec![
        (
            "apps/web.yaml",
            format!("# web\n{}", deployment("web", true)),
        ),
        ("apps/queue.yaml", deployment("queue", false)),
        (
            "apps/shared.yaml",
            format!(
                "# two images in one file\n{}---\n{}",
                deployment("api", false),
                deployment("mail", true)
            ),
        ),
    ]
}

/// `text` with the images `updated` moved from 1.0.0 to 1.1.0.
fn with_updates(text: &str, updated: &[&str]) -> String {
    updated.iter().fold(text.to_string(), |t, name| {
        t.replace(&format!("acme/{name}:1.0.0"), &format!("acme/{name}:1.1.0"))
    })
}

/// Every update a run can make: (policy, file, line), sorted.
fn all_updates() -> Vec<(String, String, u64)> {
    let mut out = Vec::new();
    for (file, text) in inputs() {
        for (i, line) in text.lines().enumerate() {
            for (name, _) in IMAGES {
                if line.contains(&format!("acme/{name}:1.0.0")) {
                    out.push((name.to_string(), file.to_string(), i as u64 + 1));
                }
            }
        }
    }
    out.sort();
    out
}

fn config(registry: &str, delivery: &str) -> String {
    let mut images = String::new();
    for (name, _) in IMAGES {
        images.push_str(&format!(
            "  - name: {name}\n    image: registry.example.com/acme/{name}\n    policy: {{ semver: \"^1.0\" }}\n"
        ));
    }
    format!(
        "registries:\n  - host: registry.example.com\n    api: \"{registry}\"\n    insecure: true\nimages:\n{images}delivery:\n{delivery}  commit:\n    author: {{ name: image-updater-test, email: bot@example.invalid }}\n    message: \"chore(images): {{{{ summary }}}}\"\n"
    )
}

/// The real registry with 1.0.0 and 1.1.0 of every image; panics (saying how to install it)
/// when `docker-registry` is missing.
fn registry() -> Registry {
    let registry = Registry::start();
    for (name, _) in IMAGES {
        registry.push_image(&format!("acme/{name}"), &["1.0.0", "1.1.0"]);
    }
    registry
}

/// The shards split the images as [`SHARD_1`] and [`SHARD_2`] say.
fn check_shards() {
    for (index, names) in [(1, SHARD_1), (2, SHARD_2)] {
        let shard: image_updater::Shard = format!("{index}/2").parse().unwrap();
        for name in names {
            assert!(
                shard.owns(&format!("registry.example.com/acme/{name}")),
                "{name} is not in shard {index}/2: pick other image names"
            );
        }
    }
}

/// For commit-mode runs: the registry, a temporary directory, its `remotes` directory served
/// over smart HTTP, and the config (commit mode).
fn commit_mode_world() -> (Registry, tempfile::TempDir, PathBuf, GitHttpServer, String) {
    let registry = registry();
    let tmp = tempfile::tempdir().unwrap();
    let remotes = tmp.path().join("remotes");
    std::fs::create_dir_all(&remotes).unwrap();
    let server = GitHttpServer::start(&remotes, None);
    let config = config(&registry.addr, "  mode: commit\n");
    (registry, tmp, remotes, server, config)
}

/// One iteration's remote: the bare repository, the URL its clones use, and the base commit.
struct Remote {
    bare: PathBuf,
    url: String,
    base: String,
}

/// A bare repository `NAME.git` below the server's root with the manifests and `config`.
fn remote(server: &GitHttpServer, root: &Path, name: &str, config: &str) -> Remote {
    let inputs = inputs();
    let mut files: Vec<(&str, &[u8])> = inputs.iter().map(|(p, t)| (*p, t.as_bytes())).collect();
    files.push((".image-updater.yaml", config.as_bytes()));
    let bare = bare_repo_with_files(&root.join(format!("{name}.git")), &files);
    let base = git(&bare, &["rev-parse", "main"]).trim().to_string();
    Remote {
        bare,
        url: server.url(&format!("{name}.git")),
        base,
    }
}

/// Start both commands, then wait for both: they run at the same time.
fn race(mut a: Command, mut b: Command) -> (Output, Output) {
    for c in [&mut a, &mut b] {
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
    }
    let a = a.spawn().expect("start the first run");
    let b = b.spawn().expect("start the second run");
    // Both pipes are drained at once: a run blocked on a full pipe would never end.
    let a = std::thread::spawn(move || a.wait_with_output().unwrap());
    let b = b.wait_with_output().unwrap();
    (a.join().unwrap(), b)
}

fn report(o: &Output) -> Result<Value, String> {
    serde_json::from_slice(&o.stdout).map_err(|e| format!("not JSON ({e}):\n{}", output_text(o)))
}

/// A report's updates as (policy, file, line).
fn updates_of(r: &Value) -> Vec<(String, String, u64)> {
    r["updates"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|u| {
                    (
                        u["policy"].as_str().unwrap_or_default().to_string(),
                        u["file"].as_str().unwrap_or_default().to_string(),
                        u["line"].as_u64().unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn lost_races(o: &Output) -> usize {
    String::from_utf8_lossy(&o.stderr)
        .matches("push rejected")
        .count()
}

/// A work tree after its run: nothing uncommitted, no pending ref left, and its HEAD a commit
/// the remote's branch contains.
fn check_work_tree(work: &Path, bare: &Path, who: &str, problems: &mut Vec<String>) {
    let status = git(work, &["status", "--porcelain"]);
    if !status.is_empty() {
        problems.push(format!("{who}: the work tree is dirty:\n{status}"));
    }
    let pending = git(work, &["for-each-ref", "refs/image-updater"]);
    if !pending.is_empty() {
        problems.push(format!("{who}: a reference left behind: {pending}"));
    }
    let head = git(work, &["rev-parse", "HEAD"]).trim().to_string();
    if try_git(bare, &["merge-base", "--is-ancestor", &head, "main"]).is_err() {
        problems.push(format!(
            "{who}: HEAD {head} is not on the remote's main: a commit the remote never got"
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// commit mode
// ---------------------------------------------------------------------------------------------

/// Which images each of the two runs handles.
#[derive(Debug, Clone, Copy)]
enum Race {
    /// Both all the images: one commit; the loser finds nothing left.
    Same,
    /// `--shard 1/2` against `--shard 2/2`: two commits, the loser's on the winner's.
    Split,
    /// All the images against `--shard 1/2`: one commit or two, each update in one of them.
    Overlap,
}

impl Race {
    fn shards(self) -> [Option<&'static str>; 2] {
        match self {
            Race::Same => [None, None],
            Race::Split => [Some("1/2"), Some("2/2")],
            Race::Overlap => [None, Some("1/2")],
        }
    }
}

/// The images whose `+` lines the commit `c` of `bare` adds, sorted and deduplicated; and the
/// number of files it changes.
fn commit_changes(bare: &Path, c: &str) -> (Vec<String>, usize) {
    let files = git(
        bare,
        &["diff-tree", "--no-commit-id", "--name-only", "-r", c],
    );
    let patch = git(bare, &["show", "--format=", "--unified=0", c]);
    let mut names: Vec<String> = patch
        .lines()
        .filter(|l| l.starts_with('+') && !l.starts_with("+++"))
        .filter_map(|l| {
            IMAGES
                .iter()
                .find(|(n, _)| l.contains(&format!("acme/{n}:1.1.0")))
                .map(|(n, _)| n.to_string())
        })
        .collect();
    names.sort();
    names.dedup();
    (names, files.lines().count())
}

/// Everything wrong after one commit-mode race.
fn check_commit_race(r: &Remote, works: [&Path; 2], outs: [&Output; 2], kind: Race) -> Vec<String> {
    let mut problems = Vec::new();
    let mut reports = Vec::new();
    for (i, o) in outs.iter().enumerate() {
        if o.status.code() != Some(0) {
            problems.push(format!(
                "run {i} exited {:?}:\n{}",
                o.status.code(),
                output_text(o)
            ));
        }
        match report(o) {
            Ok(v) => reports.push(v),
            Err(e) => {
                problems.push(format!("run {i}: {e}"));
                return problems;
            }
        }
    }
    if let Err(e) = try_git(&r.bare, &["fsck", "--no-progress"]) {
        problems.push(format!("git fsck on the remote: {e}"));
    }

    // The branch holds every update.
    let names: Vec<&str> = IMAGES.iter().map(|(n, _)| *n).collect();
    for (file, text) in inputs() {
        let got = git(&r.bare, &["show", &format!("main:{file}")]);
        if got != with_updates(&text, &names) {
            problems.push(format!("the remote's {file} is\n{got}"));
        }
    }

    // Linear history on the base; no empty commit; each image changed by exactly one commit.
    if try_git(&r.bare, &["merge-base", "--is-ancestor", &r.base, "main"]).is_err() {
        problems.push("the base is no longer on main: history was rewritten".into());
    }
    let list = git(
        &r.bare,
        &["rev-list", "--parents", &format!("{}..main", r.base)],
    );
    let mut commits: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in list.lines() {
        let ids: Vec<&str> = line.split_whitespace().collect();
        if ids.len() != 2 {
            problems.push(format!("a merge or a root on main: {line}"));
        }
        let (changed, files) = commit_changes(&r.bare, ids[0]);
        if files == 0 || changed.is_empty() {
            problems.push(format!("an empty commit on main: {}", ids[0]));
        }
        commits.insert(ids[0].to_string(), changed);
    }
    for name in &names {
        let n = commits
            .values()
            .filter(|c| c.iter().any(|x| x == name))
            .count();
        if n != 1 {
            problems.push(format!("{name} was changed by {n} commits: {commits:?}"));
        }
    }

    // Each commit on main is the one a run reports, with that run's updates; no run reports a
    // commit that is not there (pushed over). Two runs that built the same commit (same parent,
    // files, message and second) both report it, and git holds it once: each update is still
    // delivered once.
    let mut claimed: BTreeMap<String, Vec<(String, String, u64)>> = BTreeMap::new();
    for (i, rep) in reports.iter().enumerate() {
        let mut ups = updates_of(rep);
        ups.sort();
        let Some(c) = rep["commit"].as_str() else {
            if !ups.is_empty() {
                problems.push(format!("run {i} reports updates without a commit: {rep}"));
            }
            continue;
        };
        let mut made: Vec<String> = ups.iter().map(|u| u.0.clone()).collect();
        made.dedup();
        match commits.get(c) {
            None => problems.push(format!(
                "run {i} reports commit {c}, which is not on main: lost"
            )),
            Some(changed) if *changed != made => problems.push(format!(
                "run {i} reports {made:?} in {c}, which changes {changed:?}"
            )),
            Some(_) => {}
        }
        match claimed.get(c) {
            Some(other) if *other != ups => problems.push(format!(
                "both runs report {c}, with different updates: {other:?} and {ups:?}"
            )),
            _ => {
                claimed.insert(c.to_string(), ups);
            }
        }
    }
    let reported: Vec<&String> = claimed.keys().collect();
    let on_main: Vec<&String> = commits.keys().collect();
    if reported != on_main {
        problems.push(format!(
            "the runs report commits {reported:?}, main has {on_main:?}"
        ));
    }
    let mut delivered: Vec<_> = claimed.into_values().flatten().collect();
    delivered.sort();
    if delivered != all_updates() {
        problems.push(format!(
            "updates reported, together: {delivered:?}\nexpected each once: {:?}",
            all_updates()
        ));
    }
    let expected_commits = match kind {
        Race::Same => 1..=1,
        Race::Split => 2..=2,
        Race::Overlap => 1..=2,
    };
    if !expected_commits.contains(&commits.len()) {
        problems.push(format!(
            "{} commits for a {kind:?} race: {commits:?}",
            commits.len()
        ));
    }
    for (i, w) in works.iter().enumerate() {
        check_work_tree(w, &r.bare, &format!("run {i}"), &mut problems);
    }
    problems
}

/// How the two runs reach the remote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// Smart HTTP, both pushes held until both have come.
    Gated,
    /// Smart HTTP, as the timing falls.
    Http,
    /// `file://`: the runs write the remote repository themselves.
    File,
}

#[test]
fn commit_mode_races_deliver_every_update_once() {
    check_shards();
    let (_registry, tmp, remotes, server, config) = commit_mode_world();

    let mut failures = Vec::new();
    let mut rejected = 0;
    for i in 0..COMMIT_ITERATIONS {
        let kind = [Race::Same, Race::Split, Race::Overlap][i % 3];
        let via = [Via::Gated, Via::Http, Via::File][(i / 3) % 3];
        let mut r = remote(&server, &remotes, &format!("commit-{i}"), &config);
        if via == Via::File {
            r.url = format!("file://{}", r.bare.display());
        }
        let dir = tmp.path().join(format!("commit-{i}"));
        let works = [
            common::clone(&r.url, &dir.join("a")),
            common::clone(&r.url, &dir.join("b")),
        ];
        // Alternate which run starts first.
        let mut shards = kind.shards();
        if i % 2 == 1 {
            shards.reverse();
        }
        let commands: Vec<Command> = works
            .iter()
            .zip(shards)
            .map(|(w, shard)| {
                let mut c = run_command(w, &[]);
                c.arg("-v");
                if let Some(s) = shard {
                    c.args(["--shard", s]);
                }
                c
            })
            .collect();
        let [a, b]: [Command; 2] = commands.try_into().unwrap();
        if via == Via::Gated {
            server.hold_pushes(2, 1);
        }
        let (oa, ob) = race(a, b);
        let lost = lost_races(&oa) + lost_races(&ob);
        rejected += lost;
        let mut problems = check_commit_race(&r, [&works[0], &works[1]], [&oa, &ob], kind);
        // Held together, both pushes were based on the base: exactly one lost.
        if via == Via::Gated && lost != 1 {
            problems.push(format!(
                "both pushes were held until both came, yet {lost} were rejected\n--- a\n{}\n--- b\n{}",
                output_text(&oa),
                output_text(&ob)
            ));
        }
        for p in problems {
            failures.push(format!("iteration {i} ({kind:?}, {via:?}): {p}"));
        }
    }
    assert_eq!(server.gate_timeouts(), 0, "a push gate timed out");
    eprintln!("{COMMIT_ITERATIONS} commit-mode races, {rejected} pushes rejected and retried");
    assert!(
        failures.is_empty(),
        "{} problems:\n{}\n--- git server log\n{}",
        failures.len(),
        failures.join("\n"),
        server.log()
    );
}

/// A push to a `file://` remote whose branch another writer holds locked (`main.lock`, as
/// git and libgit2 hold it while they move the branch) waits for the lock instead of giving up
/// at once. The lock is released only once the run's objects have reached the remote, that is
/// once the run is at the branch move; the run must then succeed with its commit on `main`.
/// (Runs used to spend their three tries within milliseconds and fail with "failed to lock
/// file": CI saw it when two pull-request runs pushed one branch on a loaded machine.)
#[test]
fn a_push_waits_for_a_branch_lock_another_writer_holds() {
    let (_registry, _tmp, r, work) = locked_remote();
    let lock = r.bare.join("refs/heads/main.lock");
    let packs = |bare: &Path| {
        std::fs::read_dir(bare.join("objects/pack"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let before = packs(&r.bare);
    let mut cmd = run_command(&work, &[]);
    cmd.arg("-v").stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().expect("start the run");
    let done = std::thread::spawn(move || child.wait_with_output().unwrap());
    // The run sends its objects, then moves the branch: wait for the objects.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while packs(&r.bare) == before && !done.is_finished() {
        assert!(
            std::time::Instant::now() < deadline,
            "the run sent nothing to the remote in 120 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(300));
    std::fs::remove_file(&lock).unwrap();
    let out = done.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let commit = report(&out).unwrap()["commit"]
        .as_str()
        .unwrap_or_else(|| panic!("no commit reported:\n{}", output_text(&out)))
        .to_string();
    let main = git(&r.bare, &["rev-parse", "main"]).trim().to_string();
    assert_eq!(main, commit, "the remote's main is not the run's commit");
    let mut problems = Vec::new();
    check_work_tree(&work, &r.bare, "the run", &mut problems);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A lock on `main` that never goes (a git process killed while it moved the branch) stops
/// the run after the wait with an error naming the lock file, and the branch is untouched.
#[test]
fn a_branch_lock_left_behind_is_named() {
    let (_registry, _tmp, r, work) = locked_remote();
    let out = run_command(&work, &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let text = output_text(&out);
    assert!(
        text.contains("refs/heads/main.lock has been there for 5 s")
            && text.contains("remove the file"),
        "the error does not name the lock:\n{text}"
    );
    assert_eq!(git(&r.bare, &["rev-parse", "main"]).trim(), r.base);
}

/// The registry, a temporary directory, a bare repository whose `main` is locked
/// (`refs/heads/main.lock` exists, as while git moves the branch), and its clone by `file://`.
fn locked_remote() -> (Registry, tempfile::TempDir, Remote, PathBuf) {
    let (registry, tmp, remotes, server, config) = commit_mode_world();
    let r = remote(&server, &remotes, "locked", &config);
    std::fs::write(r.bare.join("refs/heads/main.lock"), format!("{}\n", r.base)).unwrap();
    let work = common::clone(
        &format!("file://{}", r.bare.display()),
        &tmp.path().join("work"),
    );
    (registry, tmp, r, work)
}

// ---------------------------------------------------------------------------------------------
// pull-request mode
// ---------------------------------------------------------------------------------------------

/// How many times a request was asked to be opened (refused duplicates included).
fn creates(fake: &ForgeFake) -> usize {
    fake.calls()
        .iter()
        .filter(|c| {
            c.starts_with("POST ") && (c.ends_with("/pulls") || c.ends_with("/merge_requests"))
        })
        .count()
}

fn branch_of(name: &str) -> String {
    format!("image-updater/{name}")
}

/// Everything wrong after one pull-request race.
fn check_pr_race(
    r: &Remote,
    works: [&Path; 2],
    outs: [&Output; 2],
    fake: &ForgeFake,
) -> Vec<String> {
    let mut problems = Vec::new();
    // Every request ever opened: (head branch, number, open).
    let requests: Vec<(String, u64, bool)> = fake
        .prs()
        .into_iter()
        .map(|p| (p.head, p.number, p.open))
        .collect();
    for p in fake.problems() {
        problems.push(format!("the fake: {p}"));
    }
    // Exactly one request per branch, ever, and open.
    let mut numbers = BTreeMap::new();
    for (name, _) in IMAGES {
        let branch = branch_of(name);
        let mine: Vec<_> = requests.iter().filter(|(h, _, _)| *h == branch).collect();
        match mine.as_slice() {
            [(_, n, true)] => {
                numbers.insert(branch, *n);
            }
            other => problems.push(format!("{branch}: requests {other:?}, not one open")),
        }
    }
    if requests.len() != IMAGES.len() {
        problems.push(format!("{} requests opened: {requests:?}", requests.len()));
    }
    for (i, o) in outs.iter().enumerate() {
        let text = output_text(o);
        if text.contains(FORGE_TOKEN) {
            problems.push(format!("run {i} printed the token"));
        }
        if o.status.code() != Some(0) {
            problems.push(format!("run {i} exited {:?}:\n{text}", o.status.code()));
        }
        let rep = match report(o) {
            Ok(v) => v,
            Err(e) => {
                problems.push(format!("run {i}: {e}"));
                continue;
            }
        };
        let mut listed = BTreeMap::new();
        for p in rep["pull_requests"].as_array().into_iter().flatten() {
            let action = p["action"].as_str().unwrap_or_default();
            if !matches!(action, "created" | "updated" | "unchanged") {
                problems.push(format!("run {i}: {p}"));
            }
            listed.insert(
                p["branch"].as_str().unwrap_or_default().to_string(),
                p["number"].as_u64().unwrap_or_default(),
            );
        }
        if listed != numbers {
            problems.push(format!(
                "run {i} reports {listed:?}, the forge has {numbers:?}"
            ));
        }
        let mut ups = updates_of(&rep);
        ups.sort();
        if ups != all_updates() {
            problems.push(format!("run {i} reports the updates {ups:?}"));
        }
    }
    // Each branch: one commit on the base with exactly its image's update; the base untouched.
    if git(&r.bare, &["rev-parse", "main"]).trim() != r.base {
        problems.push("main was pushed to".into());
    }
    for (name, file) in IMAGES {
        let branch = branch_of(name);
        let parent = try_git(&r.bare, &["rev-parse", &format!("{branch}~1")]);
        if parent.as_deref().map(str::trim) != Ok(r.base.as_str()) {
            problems.push(format!(
                "{branch} is not one commit on the base: {parent:?}"
            ));
            continue;
        }
        let changed = git(&r.bare, &["diff", "--name-only", &r.base, &branch]);
        if changed.trim() != file {
            problems.push(format!("{branch} changes {changed:?}, not just {file}"));
        }
        let input = inputs().into_iter().find(|(p, _)| *p == file).unwrap().1;
        let got = git(&r.bare, &["show", &format!("{branch}:{file}")]);
        if got != with_updates(&input, &[name]) {
            problems.push(format!("{branch}'s {file} is\n{got}"));
        }
    }
    for (i, w) in works.iter().enumerate() {
        let status = git(w, &["status", "--porcelain"]);
        if !status.is_empty() {
            problems.push(format!("run {i}: the work tree was written:\n{status}"));
        }
    }
    problems
}

async fn pr_races(forge: Forge, iterations: usize) {
    let registry = registry();
    let tmp = tempfile::tempdir().unwrap();
    let remotes = tmp.path().join("remotes");
    std::fs::create_dir_all(&remotes).unwrap();
    let server = GitHttpServer::start(&remotes, None);

    let mut failures = Vec::new();
    let mut duplicates = 0;
    for i in 0..iterations {
        let via = [Via::Gated, Via::Http, Via::File][i % 3];
        let (fake, api) = ForgeFake::start(forge, FORGE_TOKEN).await;
        let delivery = forge.delivery(&api.uri(), "  pull_request: { labels: [dependencies] }\n");
        let config = config(&registry.addr, &delivery);
        let mut r = remote(&server, &remotes, &format!("pr-{i}"), &config);
        if via == Via::File {
            r.url = format!("file://{}", r.bare.display());
        }
        let dir = tmp.path().join(format!("pr-{i}"));
        let works = [
            common::clone(&r.url, &dir.join("a")),
            common::clone(&r.url, &dir.join("b")),
        ];
        let env = [(forge.token_env(), FORGE_TOKEN)];
        let a = run_command(&works[0], &env);
        let b = run_command(&works[1], &env);
        if via == Via::Gated {
            // Both runs push each branch (in the same order) together, so they move in
            // lockstep; a forge slow to list lets both look before either opens.
            server.hold_pushes(2, IMAGES.len());
            fake.slow_listings(LIST_DELAY);
        }
        let (oa, ob) = tokio::task::spawn_blocking(move || race(a, b))
            .await
            .unwrap();
        duplicates += creates(&fake).saturating_sub(IMAGES.len());
        for p in check_pr_race(&r, [&works[0], &works[1]], [&oa, &ob], &fake) {
            failures.push(format!("iteration {i} ({via:?}): {p}"));
        }
    }
    assert_eq!(server.gate_timeouts(), 0, "a push gate timed out");
    eprintln!(
        "{iterations} {forge:?} pull-request races, {duplicates} creates refused as duplicates"
    );
    assert!(
        failures.is_empty(),
        "{} problems:\n{}\n--- git server log\n{}",
        failures.len(),
        failures.join("\n"),
        server.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn github_races_open_one_pull_request_per_branch() {
    pr_races(Forge::Github, PR_ITERATIONS_GITHUB).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gitlab_races_open_one_merge_request_per_branch() {
    pr_races(Forge::Gitlab, PR_ITERATIONS_OTHER).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gitea_races_open_one_pull_request_per_branch() {
    pr_races(Forge::Gitea, PR_ITERATIONS_OTHER).await;
}

// ---------------------------------------------------------------------------------------------
// one work tree, two runs
// ---------------------------------------------------------------------------------------------

/// Everything wrong with a work tree and its remote that should hold every update in one
/// commit.
fn check_converged(r: &Remote, work: &Path, when: &str, problems: &mut Vec<String>) {
    let names: Vec<&str> = IMAGES.iter().map(|(n, _)| *n).collect();
    for (file, text) in inputs() {
        let want = with_updates(&text, &names);
        let remote = git(&r.bare, &["show", &format!("main:{file}")]);
        if remote != want {
            problems.push(format!("{when}, the remote's {file} is\n{remote}"));
        }
        let local = std::fs::read_to_string(work.join(file)).unwrap_or_default();
        if local != want {
            problems.push(format!("{when}, the work tree's {file} is\n{local}"));
        }
    }
    let count = git(
        &r.bare,
        &["rev-list", "--count", &format!("{}..main", r.base)],
    );
    if count.trim() != "1" {
        problems.push(format!("{when}, {} commits on main, not one", count.trim()));
    }
    let status = git(work, &["status", "--porcelain"]);
    if !status.is_empty() {
        problems.push(format!("{when}, the work tree is dirty:\n{status}"));
    }
    let head = git(work, &["rev-parse", "HEAD"]);
    let main = git(&r.bare, &["rev-parse", "main"]);
    if head != main {
        problems.push(format!(
            "{when}, HEAD is {} and the remote's main {}",
            head.trim(),
            main.trim()
        ));
    }
}

#[test]
fn two_runs_in_one_work_tree_never_corrupt_it() {
    let (_registry, tmp, remotes, server, config) = commit_mode_world();

    let mut failures = Vec::new();
    let mut failed_runs = 0;
    for i in 0..SAME_TREE_ITERATIONS {
        let r = remote(&server, &remotes, &format!("tree-{i}"), &config);
        let work = common::clone(&r.url, &tmp.path().join(format!("tree-{i}")));
        let (oa, ob) = race(run_command(&work, &[]), run_command(&work, &[]));
        // A run either does the job, or finds the other one at work and stops at once,
        // saying so; never both stop.
        let mut problems = Vec::new();
        let mut stopped = 0;
        for (n, o) in [&oa, &ob].iter().enumerate() {
            let text = output_text(o);
            match o.status.code() {
                Some(0) => match report(o) {
                    Ok(r) if r["errors"].as_array().is_some_and(|e| e.is_empty()) => {}
                    Ok(r) => problems.push(format!("run {n} reports errors: {r}")),
                    Err(e) => problems.push(format!("run {n}: {e}")),
                },
                Some(1) if text.contains("another image-updater run is working in") => {
                    stopped += 1;
                }
                other => problems.push(format!("run {n} exited {other:?}:\n{text}")),
            }
        }
        if stopped == 2 {
            problems.push("both runs stopped, each for the other".into());
        }
        failed_runs += stopped;
        if let Err(e) = try_git(&work, &["fsck", "--no-progress"]) {
            problems.push(format!("git fsck in the work tree: {e}"));
        }
        // The job is done, once: everything on the remote in one commit, the work tree clean
        // and on the remote's head; and the next run has nothing left to do.
        check_converged(&r, &work, "after the race", &mut problems);
        let next = run_command(&work, &[]).output().unwrap();
        match report(&next) {
            Ok(rep) if next.status.code() == Some(0) => {
                if !updates_of(&rep).is_empty() || !rep["commit"].is_null() {
                    problems.push(format!("the next run still had work: {rep}"));
                }
            }
            _ => problems.push(format!("the next run: {}", output_text(&next))),
        }
        check_converged(&r, &work, "after the next run", &mut problems);
        for p in problems {
            failures.push(format!("iteration {i}: {p}"));
        }
    }
    eprintln!(
        "{SAME_TREE_ITERATIONS} double runs in one work tree, {failed_runs} stopped for the other"
    );
    assert!(
        failures.is_empty(),
        "{} problems:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
