//! The CI files checked by the tools their ecosystems use: action.yml and the workflows
//! against check-jsonschema's built-in GitHub schemas and audited by zizmor; the GitLab
//! component's job against GitLab's CI schema and its `spec:` header checked for consistency;
//! the Kubernetes CronJob's safety settings.

use crate::ci_common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use ci_common::{check_jsonschema, repo, run_ok, split_documents, yaml_documents, zizmor};

fn workflows() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join(".github/workflows"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    files.sort();
    assert!(
        files.iter().any(|f| f.ends_with("ci.yml"))
            && files.iter().any(|f| f.ends_with("release.yml")),
        "{files:?}"
    );
    files
}

#[test]
fn action_yml_matches_githubs_action_schema() {
    run_ok(
        Command::new(check_jsonschema())
            .args(["--builtin-schema", "vendor.github-actions"])
            .arg(repo().join("action.yml")),
    );
}

#[test]
fn workflows_match_githubs_workflow_schema() {
    run_ok(
        Command::new(check_jsonschema())
            .args(["--builtin-schema", "vendor.github-workflows"])
            .args(workflows()),
    );
}

#[test]
fn zizmor_finds_nothing_in_the_action_and_workflows() {
    // The auditor persona reports everything, down to informational findings.
    let out = run_ok(
        Command::new(zizmor())
            .args(["--offline", "--persona", "auditor", "--no-progress"])
            .arg(repo().join("action.yml"))
            .arg(repo().join(".github")),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("No findings"), "{stdout}");
}

#[test]
fn workflow_actions_are_pinned_by_commit() {
    for file in workflows() {
        let text = std::fs::read_to_string(&file).unwrap();
        for line in text.lines().filter(|l| {
            l.trim_start().starts_with("- uses:") || l.trim_start().starts_with("uses:")
        }) {
            let spec = line.split("uses:").nth(1).unwrap().trim();
            let (_, reference) = spec.split_once('@').unwrap_or_else(|| panic!("{line}"));
            let sha = reference.split_whitespace().next().unwrap();
            assert!(
                sha.len() == 40 && sha.chars().all(|c| c.is_ascii_hexdigit()),
                "{}: not pinned by commit: {line}",
                file.display()
            );
            assert!(
                reference.contains("# v"),
                "{}: say which version: {line}",
                file.display()
            );
        }
    }
}

/// The component's two documents: the `spec:` header and the job.
fn gitlab_template() -> (serde_json::Value, String) {
    let text = std::fs::read_to_string(repo().join("templates/image-updater.yml")).unwrap();
    let docs = split_documents(&text);
    assert_eq!(docs.len(), 2, "a spec header and the jobs");
    let header = serde_saphyr::from_str(&docs[0]).unwrap();
    (header, docs[1].clone())
}

/// The job document with every `$[[ inputs.X ]]` replaced by its default, as a plain include
/// without inputs gets it.
pub fn interpolate_defaults(header: &serde_json::Value, job: &str) -> String {
    let mut out = job.to_string();
    for (name, spec) in header["spec"]["inputs"].as_object().unwrap() {
        let default = match &spec["default"] {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        out = out.replace(&format!("$[[ inputs.{name} ]]"), &default);
    }
    assert!(
        !out.contains("$[["),
        "an input without a declaration: {out}"
    );
    out
}

#[test]
fn gitlab_component_jobs_match_gitlabs_ci_schema() {
    let (header, job) = gitlab_template();
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("job.yml");
    let plain = dir.path().join("job-with-defaults.yml");
    let spec = dir.path().join("spec.yml");
    std::fs::write(&raw, &job).unwrap();
    std::fs::write(&plain, interpolate_defaults(&header, &job)).unwrap();
    std::fs::write(&spec, serde_json::to_string(&header).unwrap()).unwrap();
    run_ok(
        Command::new(check_jsonschema())
            .args(["--builtin-schema", "vendor.gitlab-ci"])
            .args([&raw, &plain, &spec]),
    );
}

#[test]
fn gitlab_component_inputs_are_declared_described_and_used() {
    let (header, job) = gitlab_template();
    let inputs = header["spec"]["inputs"].as_object().unwrap();
    let declared: BTreeSet<&str> = inputs.keys().map(String::as_str).collect();
    let used: BTreeSet<&str> = job
        .split("$[[ inputs.")
        .skip(1)
        .map(|rest| rest.split(" ]]").next().unwrap())
        .collect();
    assert_eq!(declared, used);
    for (name, spec) in inputs {
        assert!(spec["description"].is_string(), "{name} has no description");
        assert!(
            !spec["default"].is_null(),
            "{name} has no default: a plain include needs one"
        );
        if let Some(options) = spec["options"].as_array() {
            assert!(
                options.contains(&spec["default"]),
                "{name}: default not among options"
            );
        }
    }
    // Inputs reach the script only as variables.
    let jobs: serde_json::Value = serde_saphyr::from_str(&job).unwrap();
    for script in jobs["image-updater"]["script"].as_array().unwrap() {
        assert!(
            !script.as_str().unwrap().contains("$[["),
            "input pasted into the script"
        );
    }
    // The default image is this version's.
    let image = inputs["image"]["default"].as_str().unwrap();
    assert!(
        image.ends_with(&format!(":{}-shell", env!("CARGO_PKG_VERSION"))),
        "{image} is not the image of version {}",
        env!("CARGO_PKG_VERSION")
    );
}

#[test]
fn the_cronjob_runs_unprivileged_read_only_and_never_twice_at_once() {
    let docs = yaml_documents(&repo().join("examples/kubernetes/cronjob.yaml"));
    let cron = docs
        .iter()
        .find(|d| d["kind"] == "CronJob")
        .expect("a CronJob");
    assert_eq!(cron["apiVersion"], "batch/v1");
    assert_eq!(cron["spec"]["concurrencyPolicy"], "Forbid");
    let pod = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    let c = &pod["containers"][0];
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["args"][0], "run");
    assert!(c["args"].as_array().unwrap().iter().any(|a| a == "--clone"));
    for kind in ["requests", "limits"] {
        assert!(c["resources"][kind]["memory"].is_string(), "{kind}.memory");
    }
    // The token comes from a Secret, never inline.
    let env = c["env"].as_array().unwrap();
    let token = env
        .iter()
        .find(|e| e["name"] == "IMAGE_UPDATER_GIT_TOKEN")
        .expect("a git token");
    assert!(token["valueFrom"]["secretKeyRef"]["name"].is_string());
    assert!(env
        .iter()
        .all(|e| e["value"].is_null() || !e["name"].as_str().unwrap().contains("TOKEN")));
    // /tmp (where --clone clones) is a writable emptyDir.
    let mount = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == "/tmp")
        .expect("/tmp mounted");
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    assert!(volume["emptyDir"].is_object());
    let image = c["image"].as_str().unwrap();
    assert!(
        image.ends_with(&format!(":{}", env!("CARGO_PKG_VERSION"))),
        "{image}"
    );
}

/// The fenced `yaml` blocks of the README's "Running in CI" section.
fn readme_ci_examples() -> Vec<String> {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let section = readme
        .split("\n## Running in CI\n")
        .nth(1)
        .expect("README has a Running in CI section");
    let section = section.split("\n## ").next().unwrap();
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for line in section.lines() {
        let trimmed = line.trim_start();
        match &mut current {
            None if trimmed == "```yaml" => {
                current = Some((line.len() - trimmed.len(), String::new()))
            }
            Some(_) if trimmed == "```" => blocks.push(current.take().unwrap().1),
            Some((indent, text)) => {
                text.push_str(line.get(*indent..).unwrap_or(""));
                text.push('\n');
            }
            None => {}
        }
    }
    blocks
}

#[test]
fn the_readmes_ci_examples_are_valid_workflows_and_pipelines() {
    let blocks = readme_ci_examples();
    let dir = tempfile::tempdir().unwrap();
    let workflows: Vec<&String> = blocks
        .iter()
        .filter(|b| b.contains("\non:\n") && b.contains("\njobs:\n"))
        .collect();
    let pipelines: Vec<&String> = blocks
        .iter()
        .filter(|b| b.contains("include:") && !b.starts_with("# azure-pipelines.yml\n"))
        .collect();
    assert!(
        !workflows.is_empty() && !pipelines.is_empty(),
        "{blocks:#?}"
    );
    let named = |file: &str| -> Vec<&String> {
        blocks
            .iter()
            .filter(|b| b.starts_with(&format!("# {file}\n")))
            .collect()
    };
    let (bitbucket, azure) = (
        named("bitbucket-pipelines.yml"),
        named("azure-pipelines.yml"),
    );
    assert!(
        bitbucket.len() == 1 && azure.len() == 1,
        "one Bitbucket Pipelines and one Azure Pipelines example: {blocks:#?}"
    );
    for (kind, list) in [
        ("github-workflows", &workflows),
        ("gitlab-ci", &pipelines),
        ("bitbucket-pipelines", &bitbucket),
        ("azure-pipelines", &azure),
    ] {
        for (i, block) in list.iter().enumerate() {
            let file = dir.path().join(format!("{kind}-{i}.yml"));
            std::fs::write(&file, block).unwrap();
            let mut cmd = Command::new(check_jsonschema());
            // Azure Pipelines' schema has patterns only Python's regex dialect reads.
            if kind == "azure-pipelines" {
                cmd.args(["--regex-variant", "python"]);
            }
            run_ok(
                cmd.args(["--builtin-schema", &format!("vendor.{kind}")])
                    .arg(&file),
            );
        }
    }
    // The workflow asks for what it needs and nothing more.
    let workflow: serde_json::Value = serde_saphyr::from_str(workflows[0]).unwrap();
    assert_eq!(
        workflow["permissions"],
        serde_json::json!({ "contents": "write", "pull-requests": "write" })
    );
    assert!(workflow["on"]["schedule"].is_array());
    assert!(workflow["on"]["repository_dispatch"].is_object());
    // Bitbucket's and Azure's hand the API token to the run and push with it.
    assert!(bitbucket[0].contains("IMAGE_UPDATER_GIT_TOKEN=\"$BITBUCKET_ACCESS_TOKEN\""));
    let azure: serde_json::Value = serde_saphyr::from_str(azure[0]).unwrap();
    assert_eq!(
        azure["steps"][1]["env"]["SYSTEM_ACCESSTOKEN"],
        "$(System.AccessToken)"
    );
    // Its `uses:` names this version.
    assert!(workflows[0].contains(&format!(
        "uses: image-updater/image-updater@v{}",
        env!("CARGO_PKG_VERSION")
    )));
}
