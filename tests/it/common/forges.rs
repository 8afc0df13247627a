//! The forge fakes (defined beside the forge code, in `src/forge/fakes.rs`, so the unit tests
//! use the same ones) and the repository and run helpers the pull-request tests share.
//!
//! What the fakes check and answer is described in that file.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

#[path = "../../../src/forge/fakes.rs"]
mod fakes;
pub use fakes::*;

use super::{bare_repo_with_files, Registry};

/// Every variable that could steer a run's forge, token or git credentials from outside.
const CLEARED_ENV: [&str; 52] = [
    "IMAGE_UPDATER_GIT_TOKEN",
    "IMAGE_UPDATER_FORGE_TOKEN",
    "IMAGE_UPDATER_SSH_KEY",
    "IMAGE_UPDATER_SSH_KNOWN_HOSTS",
    "IMAGE_UPDATER_SSH_INSECURE_ACCEPT_HOST",
    "IMAGE_UPDATER_CONFIG",
    "IMAGE_UPDATER_OUTPUT",
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "GITLAB_TOKEN",
    "CI_JOB_TOKEN",
    "GITEA_TOKEN",
    "FORGEJO_TOKEN",
    "GITHUB_ACTIONS",
    "GITHUB_API_URL",
    "GITHUB_REPOSITORY",
    "GITHUB_GRAPHQL_URL",
    "GITHUB_SERVER_URL",
    "GITHUB_OUTPUT",
    "GITHUB_STEP_SUMMARY",
    "GITLAB_CI",
    "CI_API_V4_URL",
    "CI_PROJECT_ID",
    "CI_PROJECT_PATH",
    "CI_SERVER_HOST",
    "GITEA_ACTIONS",
    "FORGEJO_ACTIONS",
    "GITEA_SERVER_URL",
    "FORGEJO_SERVER_URL",
    "GITEA_API_URL",
    "FORGEJO_API_URL",
    "GITEA_REPOSITORY",
    "FORGEJO_REPOSITORY",
    "CI_SERVER_URL",
    "SSH_AUTH_SOCK",
    "BITBUCKET_ACCESS_TOKEN",
    "BITBUCKET_TOKEN",
    "BITBUCKET_BUILD_NUMBER",
    "BITBUCKET_WORKSPACE",
    "BITBUCKET_REPO_SLUG",
    "BITBUCKET_REPO_FULL_NAME",
    "TF_BUILD",
    "SYSTEM_ACCESSTOKEN",
    "SYSTEM_COLLECTIONURI",
    "SYSTEM_TEAMPROJECT",
    "BUILD_REPOSITORY_NAME",
    "BUILD_REPOSITORY_PROVIDER",
    "BUILD_REPOSITORY_URI",
    "AZURE_DEVOPS_EXT_PAT",
    "IMAGE_UPDATER_SIGNING_KEY",
    "IMAGE_UPDATER_SIGNING_PASSPHRASE",
    "IMAGE_UPDATER_SIGNING_PUBLIC_KEY",
];

// ---------------------------------------------------------------------------------------------
// Repository and run helpers
// ---------------------------------------------------------------------------------------------

/// The fixture directory `fixtures/<case>`.
pub fn fixture(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(case)
}

/// Every file below `dir`, as (relative path, bytes), sorted.
pub fn files_of(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    p.strip_prefix(dir).unwrap().to_string_lossy().into_owned(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

/// Push the tags the `commit-basic` fixture resolves: web 1.2.0 and api 2.4.2 are updates,
/// db 2.0.0 is current.
pub fn seed_registry(registry: &Registry) {
    for (repo, tags) in [
        ("acme/web", vec!["1.0.0", "1.1.0", "1.2.0"]),
        ("acme/api", vec!["v2.4.0", "2.4.2"]),
        ("acme/db", vec!["2.0.0"]),
    ] {
        registry.push_image(repo, &tags);
    }
}

/// A bare repository holding the `commit-basic` fixture with `delivery_lines` (indented by
/// two spaces, one key a line) in place of its `mode: pull-request`. Returns the bare repo's path.
pub fn pr_remote(dir: &Path, registry_addr: &str, delivery_lines: &str) -> PathBuf {
    assert!(
        delivery_lines.contains("mode: pull-request"),
        "delivery lines must set the mode:\n{delivery_lines}"
    );
    fixture_remote(dir, registry_addr, delivery_lines)
}

/// A bare repository `dir/remote.git` holding the `commit-basic` fixture, its config pointing
/// at `registry_addr`, with `delivery_lines` in place of its `mode: commit`.
pub fn fixture_remote(dir: &Path, registry_addr: &str, delivery_lines: &str) -> PathBuf {
    let config = std::fs::read_to_string(fixture("commit-basic/config.yaml"))
        .unwrap()
        .replace("{{REGISTRY}}", registry_addr)
        .replace(
            "delivery:\n  mode: commit\n",
            &format!("delivery:\n{delivery_lines}"),
        );
    let mut files = files_of(&fixture("commit-basic/input"));
    files.push((".image-updater.yaml".into(), config.into_bytes()));
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_slice()))
        .collect();
    bare_repo_with_files(&dir.join("remote.git"), &refs)
}

/// The command `image-updater run WORK --output json` with a clean environment plus `env`
/// (more arguments may follow), not started.
pub fn run_command(work: &Path, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(super::test_bin());
    cmd.args(["run", work.to_str().unwrap(), "--output", "json"])
        .env("NO_COLOR", "1");
    for v in CLEARED_ENV {
        cmd.env_remove(v);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// [`run_command`], run to its end.
pub fn run_in(work: &Path, env: &[(&str, &str)]) -> Output {
    run_command(work, env).output().unwrap()
}

/// [`run_in`] off the async runtime (the fakes answer on it meanwhile).
pub async fn run_async(work: &Path, env: &[(&str, &str)]) -> Output {
    let work = work.to_path_buf();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        run_in(&work, &env)
    })
    .await
    .unwrap()
}

pub use super::output_text;

/// A run the forge refused: exit 1, the forge's answer (`needle`) quoted, none of `tokens`
/// printed, no pull request reported and no undelivered update reported.
pub fn assert_refused_without_leak(o: &Output, tokens: &[&str], needle: &str) {
    let all = output_text(o);
    assert_eq!(o.status.code(), Some(1), "{all}");
    assert!(
        tokens.iter().all(|t| !all.contains(t)),
        "a token leaked:\n{all}"
    );
    assert!(all.contains("401") && all.contains(needle), "{all}");
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        report["pull_requests"].as_array().unwrap().is_empty(),
        "{report}"
    );
    assert!(
        report["updates"].as_array().unwrap().is_empty(),
        "undelivered updates are not reported: {report}"
    );
}

/// Assert none of `secrets` appears in the run's output.
#[track_caller]
pub fn assert_no_secret(o: &Output, secrets: &[&str]) {
    let all = output_text(o);
    for s in secrets {
        assert!(!all.contains(s), "a secret leaked ({s}):\n{all}");
    }
}

/// The JSON report of a run that must have succeeded (exit 0) without leaking `secrets`.
#[track_caller]
pub fn ok_report(o: &Output, secrets: &[&str]) -> Value {
    assert_no_secret(o, secrets);
    assert_eq!(o.status.code(), Some(0), "{}", output_text(o));
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", output_text(o)))
}

/// The report's `pull_requests` as sorted (branch, number, action).
pub fn pr_actions(report: &Value) -> Vec<(String, u64, String)> {
    let mut v: Vec<(String, u64, String)> = report["pull_requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["branch"].as_str().unwrap().to_string(),
                p["number"].as_u64().unwrap(),
                p["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

/// `[(branch, number, action)]` from literals, for comparing with [`pr_actions`].
pub fn expect_actions(items: &[(&str, u64, &str)]) -> Vec<(String, u64, String)> {
    let mut v: Vec<(String, u64, String)> = items
        .iter()
        .map(|(b, n, a)| (b.to_string(), *n, a.to_string()))
        .collect();
    v.sort();
    v
}
