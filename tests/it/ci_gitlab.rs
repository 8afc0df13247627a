//! The GitLab component's job run as a GitLab runner would run it: inputs interpolated,
//! `variables:` expanded against the predefined variables, the `script:` in a POSIX shell with
//! `image-updater` on PATH (the binary built for these tests) and the project "cloned" from a
//! file:// URL standing in for CI_PROJECT_URL. Checks the dotenv and JSON artifacts, and that
//! `parallel:` jobs split the images between them, each update made by exactly one job.

use crate::ci_common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use ci_common::{demo_repo, git, repo, split_documents};
use serde_json::Value;

/// `$VAR` and `${VAR}` expanded from `vars`, as GitLab expands job variables.
fn expand(value: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        let braced = chars.peek() == Some(&'{');
        if braced {
            chars.next();
        }
        let mut name = String::new();
        while let Some(&n) = chars.peek() {
            if n.is_ascii_alphanumeric() || n == '_' {
                name.push(n);
                chars.next();
            } else {
                break;
            }
        }
        if braced {
            assert_eq!(chars.next(), Some('}'), "unclosed ${{ in {value}");
        }
        out.push_str(vars.get(&name).map(String::as_str).unwrap_or(""));
    }
    out
}

struct JobRun {
    success: bool,
    log: String,
    variables: BTreeMap<String, String>,
}

/// Run the component's job with `inputs` (the rest default) and the predefined `ci` variables.
fn run_job(inputs: &[(&str, &str)], ci: &BTreeMap<String, String>, project_dir: &Path) -> JobRun {
    let text = std::fs::read_to_string(repo().join("templates/image-updater.yml")).unwrap();
    let docs = split_documents(&text);
    let header: Value = serde_saphyr::from_str(&docs[0]).unwrap();
    let mut job = docs[1].clone();
    for (name, spec) in header["spec"]["inputs"].as_object().unwrap() {
        let value = inputs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.to_string())
            .unwrap_or_else(|| spec["default"].as_str().unwrap().to_string());
        job = job.replace(&format!("$[[ inputs.{name} ]]"), &value);
    }
    let jobs: Value = serde_saphyr::from_str(&job).unwrap();
    let job = &jobs["image-updater"];
    assert_eq!(job["variables"]["GIT_STRATEGY"], "none");
    let mut variables = BTreeMap::new();
    for (k, v) in job["variables"].as_object().unwrap() {
        variables.insert(k.clone(), expand(v.as_str().unwrap(), ci));
    }
    let script: Vec<&str> = job["script"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let bin_dir = project_dir.join(".bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let link = bin_dir.join("image-updater");
    if !link.exists() {
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_image-updater"), &link).unwrap();
    }
    let out = Command::new("sh")
        .args(["-e", "-c", &script.join("\n")])
        .current_dir(project_dir)
        .env_clear()
        .env(
            "PATH",
            format!("{}:/usr/local/bin:/usr/bin:/bin", bin_dir.display()),
        )
        .envs(ci)
        .envs(&variables)
        .output()
        .unwrap();
    JobRun {
        success: out.status.success(),
        log: format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        variables,
    }
}

/// GitLab's predefined variables for a scheduled pipeline of the project at `origin`.
fn predefined(origin: &Path, project_dir: &Path) -> BTreeMap<String, String> {
    let url = origin.display().to_string();
    [
        ("CI", "true".to_string()),
        ("GITLAB_CI", "true".into()),
        ("CI_PIPELINE_SOURCE", "schedule".into()),
        ("CI_PROJECT_DIR", project_dir.display().to_string()),
        (
            "CI_PROJECT_URL",
            format!("file://{}", url.trim_end_matches(".git")),
        ),
        ("CI_PROJECT_PATH", "acme/infra".into()),
        ("CI_PROJECT_ID", "42".into()),
        ("CI_SERVER_URL", "http://127.0.0.1:9".into()),
        ("CI_API_V4_URL", "http://127.0.0.1:9/api/v4".into()),
        ("CI_DEFAULT_BRANCH", "main".into()),
        ("CI_COMMIT_BRANCH", "main".into()),
        ("IMAGE_UPDATER_TOKEN", "glpat-test-token".into()),
        ("GIT_CONFIG_NOSYSTEM", "1".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn dotenv(path: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}

#[test]
fn the_component_job_updates_the_branch_and_leaves_dotenv_and_json_artifacts() {
    let tmp = tempfile::tempdir().unwrap();
    let (_work, origin) = demo_repo(tmp.path());
    let before = git(&origin, &["rev-parse", "main"]);
    let project_dir = tmp.path().join("builds/acme/infra");
    std::fs::create_dir_all(&project_dir).unwrap();
    let ci = predefined(&origin, &project_dir);

    let run = run_job(&[], &ci, &project_dir);
    assert!(run.success, "{}", run.log);
    // The token variable named by the input, expanded into GITLAB_TOKEN for git and the API.
    assert_eq!(run.variables["GITLAB_TOKEN"], "glpat-test-token");
    assert_eq!(run.variables["IMAGE_UPDATER_BRANCH"], "main");
    assert!(!run.log.contains("glpat-test-token"), "{}", run.log);

    let head = git(&origin, &["rev-parse", "main"]);
    assert_ne!(head, before, "pushed: {}", run.log);
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(project_dir.join("image-updater-report.json")).unwrap(),
    )
    .unwrap();
    let count = report["updates"].as_array().unwrap().len();
    assert!(count > 0);
    let env = dotenv(&project_dir.join("image-updater.env"));
    assert_eq!(env["IMAGE_UPDATER_UPDATED"], "true");
    assert_eq!(env["IMAGE_UPDATER_COUNT"], count.to_string());
    assert_eq!(env["IMAGE_UPDATER_COMMIT"], head);
    assert_eq!(env["IMAGE_UPDATER_PULL_REQUEST_URL"], "");
    // GitLab's dotenv rules: KEY=VALUE lines, no quotes, no spaces around `=`.
    for line in std::fs::read_to_string(project_dir.join("image-updater.env"))
        .unwrap()
        .lines()
    {
        assert!(
            !line.contains('"') && !line.contains(" ="),
            "not dotenv: {line}"
        );
    }

    // Again: nothing newer, nothing pushed.
    let run = run_job(&[], &ci, &project_dir);
    assert!(run.success, "{}", run.log);
    assert_eq!(git(&origin, &["rev-parse", "main"]), head);
    let env = dotenv(&project_dir.join("image-updater.env"));
    assert_eq!(env["IMAGE_UPDATER_UPDATED"], "false");
    assert_eq!(env["IMAGE_UPDATER_COMMIT"], "");
}

#[test]
fn parallel_jobs_share_the_images_each_update_made_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (_work, origin) = demo_repo(tmp.path());
    let project_dir = tmp.path().join("build");
    std::fs::create_dir_all(&project_dir).unwrap();
    let ci = predefined(&origin, &project_dir);
    let updates = |ci: &BTreeMap<String, String>| -> Vec<(String, u64)> {
        let run = run_job(&[("command", "plan")], ci, &project_dir);
        assert!(run.success, "{}", run.log);
        let report: Value = serde_json::from_str(
            &std::fs::read_to_string(project_dir.join("image-updater-report.json")).unwrap(),
        )
        .unwrap();
        report["updates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| {
                (
                    u["file"].as_str().unwrap().to_string(),
                    u["line"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let mut all = updates(&ci);
    all.sort();
    assert!(all.len() > 1);
    for total in [2, 3] {
        let mut shared = Vec::new();
        for index in 1..=total {
            let mut ci = ci.clone();
            ci.insert("CI_NODE_INDEX".into(), index.to_string());
            ci.insert("CI_NODE_TOTAL".into(), total.to_string());
            shared.extend(updates(&ci));
        }
        shared.sort();
        assert_eq!(shared, all, "{total} jobs");
    }
}
