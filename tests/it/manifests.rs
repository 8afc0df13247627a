//! Every manifest format and every byte-preservation rule, end to end through the built
//! binary: one driver test runs each scenario of `fixtures/manifests/<case>/`.
//!
//! A case holds `input/` (the infra repo), `expected/` (the repo after `run`, byte for byte),
//! `config.yaml` (the `.image-updater.yaml`, with `{{LAYOUT}}` for the registry directory),
//! `tags.txt` (lines `registry/repository tag tag...`: what the registry holds) and
//! `report.snap` (an insta snapshot: the run's updates with any digest written, skipped
//! references and errors, one a line).
//!
//! The registry is an OCI image layout tree built from `tags.txt` in the work tree, kept out
//! of git (`LAYOUT/<registry>/<repository>/index.json`, `LAYOUT` being `.registry`: the
//! repo's config may only name paths inside the repo), so config says
//! `api: "oci-layout:{{LAYOUT}}/<registry>"` per host. The repo is a real git clone of a bare
//! remote served over smart HTTP. For each case: `plan --output json` writes nothing and reports what
//! `run` then does; `run` (delivery `commit`) leaves the work tree equal to `expected/`, pushes
//! that commit, and reports `report.snap`; a second `run` changes nothing. Every case runs
//! even when an earlier one fails; the failures are reported together.
//!
//! `INSTA_UPDATE=always cargo test --test it manifests::` writes `expected/` and `report.snap`
//! from what the binary does, for review with `git diff` (insta's one switch for every golden
//! file); otherwise a changed report is left as `report.snap.new` for `cargo insta review`.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{bare_repo_with_files, clone, git, GitHttpServer};

const BIN: &str = env!("CARGO_BIN_EXE_image-updater");

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/manifests")
}

/// Build the OCI image layout tree for `tags.txt` under `layout`: one layout directory per
/// repository, its tags as `org.opencontainers.image.ref.name` annotations.
fn build_layout(tags_txt: &str, layout: &Path) {
    for line in tags_txt.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let repo = words.next().unwrap();
        let tags: Vec<&str> = words.collect();
        common::write_oci_layout(&layout.join(repo), &tags);
    }
}

fn run_bin(args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env("NO_COLOR", "1");
    for v in [
        "IMAGE_UPDATER_GIT_TOKEN",
        "GITHUB_TOKEN",
        "GITLAB_TOKEN",
        "CI_JOB_TOKEN",
        "GITEA_TOKEN",
        "IMAGE_UPDATER_CONFIG",
        "IMAGE_UPDATER_OUTPUT",
        "GITHUB_OUTPUT",
        "GITHUB_STEP_SUMMARY",
    ] {
        cmd.env_remove(v);
    }
    cmd.output().unwrap()
}

/// Compare two trees; every difference, described.
fn tree_diff(got: &[(String, Vec<u8>)], want: &[(String, Vec<u8>)]) -> Vec<String> {
    let mut out = Vec::new();
    let names = |t: &[(String, Vec<u8>)]| t.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>();
    if names(got) != names(want) {
        out.push(format!(
            "file lists differ: got {:?}, expected {:?}",
            names(got),
            names(want)
        ));
        return out;
    }
    for ((p, a), (_, b)) in got.iter().zip(want) {
        if a != b {
            out.push(format!(
                "{p} differs:\n--- got\n{:?}\n--- expected\n{:?}",
                String::from_utf8_lossy(a),
                String::from_utf8_lossy(b)
            ));
        }
    }
    out
}

/// Run one case; the list of what went wrong (empty when it passed).
fn run_case(case: &Path, update: bool) -> Vec<String> {
    let mut failures = Vec::new();
    let tmp = tempfile::tempdir().unwrap();
    let read = |name: &str| std::fs::read_to_string(case.join(name)).unwrap_or_default();
    // The layout sits in the work tree (the repo's config may only name paths inside it).
    let config = read("config.yaml").replace("{{LAYOUT}}", common::LAYOUT_IN_REPO);

    let input = common::fixtures::tree(&case.join("input"));
    let mut files = input.clone();
    files.push((".image-updater.yaml".into(), config.into_bytes()));
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_slice()))
        .collect();
    let bare = bare_repo_with_files(&tmp.path().join("remote.git"), &refs);
    // Pushed over smart HTTP, as in production.
    let server = GitHttpServer::start(tmp.path(), None);
    let work = clone(
        &format!("{}/remote.git", server.base_url),
        &tmp.path().join("work"),
    );
    build_layout(&read("tags.txt"), &common::layout_in_work_tree(&work));
    let work_s = work.to_str().unwrap();
    let layout_dir = format!("{}/", common::LAYOUT_IN_REPO);
    let repo_tree = |dir: &Path| {
        let mut t = common::fixtures::tree(dir);
        t.retain(|(p, _)| p != ".image-updater.yaml" && !p.starts_with(&layout_dir));
        t
    };
    let remote_head = || {
        git(&bare, &["rev-parse", "refs/heads/main"])
            .trim()
            .to_string()
    };
    let head0 = remote_head();
    if let Some(d) = tree_diff(&repo_tree(&work), &input).first() {
        failures.push(format!(
            "the clone is not the input (git changed bytes?): {d}"
        ));
        return failures;
    }

    // plan: reports, writes nothing.
    let plan = run_bin(&["plan", work_s, "--output", "json"]);
    let plan_json: Option<serde_json::Value> = serde_json::from_slice(&plan.stdout).ok();
    if plan.status.code() != Some(0) || plan_json.is_none() {
        failures.push(format!("plan failed:\n{}", common::output_text(&plan)));
    }
    for d in tree_diff(&repo_tree(&work), &input) {
        failures.push(format!("plan wrote to the work tree: {d}"));
    }

    // run: rewrites, commits, pushes.
    let run = run_bin(&["run", work_s, "--output", "json"]);
    let Ok(run_json) = serde_json::from_slice::<serde_json::Value>(&run.stdout) else {
        failures.push(format!(
            "run printed no JSON report:\n{}",
            common::output_text(&run)
        ));
        return failures;
    };
    if run.status.code() != Some(0) {
        failures.push(format!(
            "run exited non-zero:\n{}",
            common::output_text(&run)
        ));
    }
    let got_report = common::fixtures::report_lines(&run_json);
    if let Some(plan_json) = &plan_json {
        if plan_json["updates"] != run_json["updates"] {
            failures.push(format!(
                "plan and run report different updates:\nplan: {}\nrun: {}",
                plan_json["updates"], run_json["updates"]
            ));
        }
    }
    let got_tree = repo_tree(&work);
    if update {
        let expected = case.join("expected");
        let _ = std::fs::remove_dir_all(&expected);
        for (p, b) in &got_tree {
            let path = expected.join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b).unwrap();
        }
    }
    for d in tree_diff(&got_tree, &common::fixtures::tree(&case.join("expected"))) {
        failures.push(format!("after run: {d}"));
    }
    // The report is an insta snapshot kept in the case's folder (`report.snap`).
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(case);
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        settings.bind(|| insta::assert_snapshot!("report", got_report));
    }));
    if checked.is_err() {
        failures.push(
            "the report differs from report.snap (the diff is above; `cargo insta review` takes it)"
                .into(),
        );
    }
    let changed = got_tree != input;
    let head1 = remote_head();
    if changed != (head1 != head0) {
        failures.push(format!(
            "files changed: {changed}, but the remote moved: {}",
            head1 != head0
        ));
    }
    if changed && run_json["commit"].as_str() != Some(head1.as_str()) {
        failures.push(format!(
            "the report's commit {} is not the remote head {head1}",
            run_json["commit"]
        ));
    }
    let status = git(&work, &["status", "--porcelain"]);
    if !status.trim().is_empty() {
        failures.push(format!("the work tree is not clean after run:\n{status}"));
    }

    // A second run finds nothing to do.
    let again = run_bin(&["run", work_s, "--output", "json"]);
    match serde_json::from_slice::<serde_json::Value>(&again.stdout) {
        Ok(j) if j["updates"].as_array().is_some_and(|u| u.is_empty()) => {}
        _ => failures.push(format!(
            "the second run was not a no-op:\n{}",
            common::output_text(&again)
        )),
    }
    if remote_head() != head1 {
        failures.push("the second run pushed a commit".into());
    }
    for d in tree_diff(&repo_tree(&work), &got_tree) {
        failures.push(format!("the second run changed files: {d}"));
    }
    failures
}

#[test]
fn every_manifest_fixture() {
    // `INSTA_UPDATE=always` (insta's own switch) rewrites the expected trees too.
    let update = std::env::var("INSTA_UPDATE").is_ok_and(|v| v == "always");
    let only = std::env::var("FIXTURE").ok();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .filter(|p| only.as_deref().is_none_or(|o| p.ends_with(o)))
        .collect();
    cases.sort();
    assert!(
        only.is_some() || cases.len() >= 40,
        "expected at least 40 scenarios, found {}",
        cases.len()
    );
    let mut failed = Vec::new();
    for case in &cases {
        for case_dir in ["input", "expected"] {
            assert!(
                case.join(case_dir).is_dir() || (update && case_dir == "expected"),
                "{} has no {case_dir}/",
                case.display()
            );
        }
        let failures = run_case(case, update);
        if !failures.is_empty() {
            let name = case.file_name().unwrap().to_string_lossy().into_owned();
            failed.push(format!("## {name}\n{}", failures.join("\n")));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} fixture cases failed:\n\n{}",
        failed.len(),
        cases.len(),
        failed.join("\n\n")
    );
}

/// `scan` lists every reference with its format and governing policy.
fn scan_text(case: &str) -> String {
    let dir = cases_dir().join(case);
    let tmp = tempfile::tempdir().unwrap();
    let config = std::fs::read_to_string(dir.join("config.yaml"))
        .unwrap()
        .replace("{{LAYOUT}}", common::LAYOUT_IN_REPO);
    let work = tmp.path().join("work");
    for (p, b) in common::fixtures::tree(&dir.join("input")) {
        let path = work.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b).unwrap();
    }
    std::fs::write(work.join(".image-updater.yaml"), config).unwrap();
    let out = run_bin(&["scan", work.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", common::output_text(&out));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn scan_shows_formats_and_policies() {
    for case in [
        "flux-objects-no-config-images",
        "mixed-repo-every-format",
        "unknown-marker-policy-skipped",
        "dockerfile-from-lines",
        "github-actions-workflows",
        "gitlab-ci-pipeline",
        "k8s-image-volumes",
    ] {
        insta::assert_snapshot!(format!("scan-{case}"), scan_text(case));
    }
}
