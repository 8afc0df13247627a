//! The composite action (action.yml) executed step by step as the Actions runner does it:
//! `${{ }}` expressions evaluated into each step's `env:`, `bash --noprofile --norc -eo
//! pipefail` on the `run:` script, fresh `GITHUB_OUTPUT` / `GITHUB_STEP_SUMMARY` /
//! `GITHUB_ENV` / `GITHUB_PATH` files per step, read back afterwards. The release download
//! comes from a local server standing in for `GITHUB_SERVER_URL`, holding a tarball of the
//! binary built for these tests and its SHA256SUMS.

use crate::ci_common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use ci_common::{demo_repo, git, repo, runner_arch, FileServer};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// One step as it ran.
#[derive(Debug)]
struct StepRun {
    id: String,
    success: bool,
    stdout: String,
    stderr: String,
    summary: String,
}

/// The whole action as it ran.
#[derive(Debug)]
struct ActionRun {
    steps: Vec<StepRun>,
    /// The action's outputs (only when every step succeeded).
    outputs: BTreeMap<String, String>,
}

impl ActionRun {
    fn step(&self, id: &str) -> &StepRun {
        self.steps
            .iter()
            .find(|s| s.id == id)
            .unwrap_or_else(|| panic!("step {id} did not run: {self:#?}"))
    }
    fn log(&self) -> String {
        self.steps
            .iter()
            .map(|s| format!("[{}] {}\n{}", s.id, s.stdout, s.stderr))
            .collect()
    }
}

/// `${{ a.b.c }}` expressions: property paths into `ctx` only, which is all action.yml uses.
fn eval(text: &str, ctx: &Value) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${{") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("}}").expect("closed expression") + start;
        let expr = rest[start + 3..end].trim();
        assert!(
            expr.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)),
            "the test runner evaluates property paths only, not {expr:?}"
        );
        let mut v = ctx;
        for key in expr.split('.') {
            v = v.get(key).unwrap_or(&Value::Null);
        }
        match v {
            Value::Null => {}
            Value::String(s) => out.push_str(s),
            other => out.push_str(&other.to_string()),
        }
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}

/// `name=value` and `name<<DELIMITER … DELIMITER` entries of a file command.
fn file_command_entries(text: &str) -> Vec<(String, String)> {
    let mut entries = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.is_empty() {
            continue;
        }
        if let Some((name, delimiter)) = line.split_once("<<") {
            let mut value = Vec::new();
            for l in lines.by_ref() {
                if l == delimiter {
                    break;
                }
                value.push(l);
            }
            entries.push((name.to_string(), value.join("\n")));
        } else {
            let (name, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("not a file command entry: {line:?}"));
            entries.push((name.to_string(), value.to_string()));
        }
    }
    entries
}

/// Run the composite action at `action_dir` with `inputs`, the `github` context and the
/// runner's environment `env`, in `workspace`.
fn run_action(
    action_dir: &Path,
    inputs: &[(&str, &str)],
    github: Value,
    env: &BTreeMap<String, String>,
    workspace: &Path,
    scratch: &Path,
) -> ActionRun {
    let action = &ci_common::yaml_documents(&action_dir.join("action.yml"))[0];
    assert_eq!(action["runs"]["using"], "composite");
    let mut ctx = json!({ "github": github, "inputs": {}, "steps": {} });
    let declared = action["inputs"].as_object().unwrap();
    for (name, spec) in declared {
        let default = spec["default"].as_str().unwrap_or("");
        ctx["inputs"][name] = Value::String(eval(default, &ctx));
    }
    for (name, value) in inputs {
        assert!(
            declared.contains_key(*name),
            "action.yml has no input {name}"
        );
        ctx["inputs"][*name] = Value::String(value.to_string());
    }
    let mut added_env: BTreeMap<String, String> = BTreeMap::new();
    let mut added_path: Vec<String> = Vec::new();
    let mut runs = Vec::new();
    for (i, step) in action["runs"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        assert!(step.get("if").is_none(), "the test runner has no `if:`");
        assert_eq!(step["shell"], "bash");
        let id = step["id"].as_str().unwrap_or("").to_string();
        let files: BTreeMap<&str, PathBuf> = [
            "GITHUB_OUTPUT",
            "GITHUB_STEP_SUMMARY",
            "GITHUB_ENV",
            "GITHUB_PATH",
        ]
        .into_iter()
        .map(|k| {
            let p = scratch.join(format!("{k}-{i}"));
            std::fs::write(&p, "").unwrap();
            (k, p)
        })
        .collect();
        let script = scratch.join(format!("step-{i}.sh"));
        std::fs::write(&script, step["run"].as_str().unwrap()).unwrap();
        let mut cmd = Command::new("bash");
        cmd.args(["--noprofile", "--norc", "-eo", "pipefail"])
            .arg(&script)
            .current_dir(workspace)
            .env_clear()
            .envs(env)
            .envs(&added_env)
            .envs(files.iter().map(|(k, p)| (*k, p.as_os_str())));
        if !added_path.is_empty() {
            let mut path = added_path.clone();
            path.reverse();
            path.push(env["PATH"].clone());
            cmd.env("PATH", path.join(":"));
        }
        if let Some(step_env) = step["env"].as_object() {
            for (k, v) in step_env {
                cmd.env(k, eval(v.as_str().expect("env values are strings"), &ctx));
            }
        }
        let out = cmd.output().expect("bash runs");
        let read = |k: &str| std::fs::read_to_string(&files[k]).unwrap();
        let outputs: serde_json::Map<String, Value> = file_command_entries(&read("GITHUB_OUTPUT"))
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        if !id.is_empty() {
            ctx["steps"][&id] = json!({ "outputs": outputs });
        }
        added_env.extend(file_command_entries(&read("GITHUB_ENV")));
        added_path.extend(read("GITHUB_PATH").lines().map(str::to_string));
        runs.push(StepRun {
            id,
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            summary: read("GITHUB_STEP_SUMMARY"),
        });
        if !out.status.success() {
            return ActionRun {
                steps: runs,
                outputs: BTreeMap::new(),
            };
        }
    }
    let outputs = action["outputs"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, spec)| (k.clone(), eval(spec["value"].as_str().unwrap(), &ctx)))
        .collect();
    ActionRun {
        steps: runs,
        outputs,
    }
}

fn target() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "x86_64-unknown-linux-musl",
        "aarch64" => "aarch64-unknown-linux-musl",
        other => panic!("no release target for {other}"),
    }
}

/// A release `version` of `owner/repo` under `srv`, as GitHub serves release assets: the
/// binary built for these tests in `image-updater-TARGET.tar.gz`, and SHA256SUMS (its line
/// replaced by `bad_sum` when given).
fn publish_release(srv: &Path, repository: &str, version: &str, bad_sum: Option<&str>) {
    let dir = srv.join(repository).join("releases/download").join(version);
    std::fs::create_dir_all(&dir).unwrap();
    let stage = dir.join("stage");
    std::fs::create_dir(&stage).unwrap();
    std::fs::copy(
        env!("CARGO_BIN_EXE_image-updater"),
        stage.join("image-updater"),
    )
    .unwrap();
    // As the release does; and a debug build's symbols would make every test gzip 200 MB.
    ci_common::run_ok(Command::new("strip").arg(stage.join("image-updater")));
    let asset = format!("image-updater-{}.tar.gz", target());
    ci_common::run_ok(
        Command::new("tar")
            .arg("-czf")
            .arg(dir.join(&asset))
            .arg("-C")
            .arg(&stage)
            .arg("image-updater"),
    );
    std::fs::remove_dir_all(&stage).unwrap();
    let sum = match bad_sum {
        Some(s) => s.to_string(),
        None => format!(
            "{:x}",
            Sha256::digest(std::fs::read(dir.join(&asset)).unwrap())
        ),
    };
    let other = format!("{:x}", Sha256::digest(b"another asset"));
    std::fs::write(
        dir.join("SHA256SUMS"),
        format!("{other}  image-updater-other.tar.gz\n{sum}  {asset}\n"),
    )
    .unwrap();
}

/// The runner's environment for a job in `root`.
fn runner_env(root: &Path, server: &FileServer, action_path: &Path) -> BTreeMap<String, String> {
    let temp = root.join("runner-temp");
    std::fs::create_dir_all(&temp).unwrap();
    [
        ("PATH", std::env::var("PATH").unwrap()),
        ("HOME", root.join("home").display().to_string()),
        ("CI", "true".into()),
        ("GITHUB_ACTIONS", "true".into()),
        ("GITHUB_WORKSPACE", root.join("ws").display().to_string()),
        ("GITHUB_SERVER_URL", server.url()),
        ("GITHUB_REPOSITORY", "acme/infra".into()),
        ("GITHUB_ACTION_PATH", action_path.display().to_string()),
        ("RUNNER_OS", "Linux".into()),
        ("RUNNER_ARCH", runner_arch().into()),
        ("RUNNER_TEMP", temp.display().to_string()),
        // Git (for pushes over file://) must not read the machine's config.
        ("GIT_CONFIG_NOSYSTEM", "1".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The action checked out as the runner does: `_actions/OWNER/REPO/REF`.
fn checkout_action(root: &Path, reference: &str) -> PathBuf {
    let dir = root.join("_actions/acme/image-updater").join(reference);
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["action.yml", "Cargo.toml"] {
        std::fs::copy(repo().join(f), dir.join(f)).unwrap();
    }
    dir
}

#[test]
fn installs_the_release_and_runs_with_outputs_summary_and_annotations() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let version = format!("v{}", env!("CARGO_PKG_VERSION"));
    let srv = root.join("srv");
    publish_release(&srv, "acme/image-updater", &version, None);
    let server = FileServer::start(srv);
    // Pinned by commit: the context names neither ref nor repository (as in composite
    // actions), so both come from the checkout's path and the version from its Cargo.toml.
    let action = checkout_action(root, "0123456789abcdef0123456789abcdef01234567");
    let env = runner_env(root, &server, &action);
    let ws = root.join("ws");
    let (work, origin) = demo_repo(&ws);
    let scratch = root.join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let github = json!({ "token": "ghs_test", "action_ref": "", "action_repository": "" });

    let run = run_action(
        &action,
        &[("path", "infra")],
        github.clone(),
        &env,
        &ws,
        &scratch,
    );
    let log = run.log();
    assert!(run.steps.iter().all(|s| s.success), "{log}");
    assert!(
        run.step("install").stdout.contains(&format!(
            "Downloading {}/acme/image-updater/releases/download/{version}/image-updater-{}.tar.gz",
            server.url(),
            target()
        )),
        "{log}"
    );
    assert!(
        run.step("install").stdout.contains(": OK"),
        "checksum verified: {log}"
    );

    let head = git(&origin, &["rev-parse", "main"]);
    let report_path = root.join("runner-temp/image-updater-report.json");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    let count = report["updates"].as_array().unwrap().len();
    assert!(count >= 4, "{report}");
    assert_eq!(report["commit"], head.as_str());
    let expected: BTreeMap<String, String> = [
        ("updated", "true".to_string()),
        ("count", count.to_string()),
        ("commit", head.clone()),
        ("pull-request-url", String::new()),
        ("report", report_path.display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(run.outputs, expected, "{log}");
    assert_eq!(git(&work, &["rev-parse", "HEAD"]), head);

    let summary = &run.step("run").summary;
    assert!(summary.starts_with("## image-updater\n"), "{summary}");
    assert!(
        summary.contains("| web | `registry.example.com/acme/web` | `clusters/prod/web.yaml:18` | `1.2.0` | `1.3.1` |"),
        "{summary}"
    );
    assert!(summary.contains(&format!("Commit: `{head}`")), "{summary}");
    // Annotations point at the file in the repository, under the `path` input.
    let stderr = &run.step("run").stderr;
    assert!(
        stderr.contains("::warning file=infra/charts/web/templates/deployment.yaml,line=4,title=image-updater%3A file skipped::not a plain YAML manifest"),
        "{stderr}"
    );
    assert!(
        stderr.contains("::notice file=infra/clusters/prod/web.yaml,line=31,"),
        "{stderr}"
    );

    // A second run: nothing newer, no commit, no second download.
    let run = run_action(&action, &[("path", "infra")], github, &env, &ws, &scratch);
    let log = run.log();
    assert!(run.steps.iter().all(|s| s.success), "{log}");
    assert!(!run.step("install").stdout.contains("Downloading"), "{log}");
    assert_eq!(run.outputs["updated"], "false");
    assert_eq!(run.outputs["count"], "0");
    assert_eq!(run.outputs["commit"], "");
    assert_eq!(git(&origin, &["rev-parse", "main"]), head);
}

#[test]
fn a_download_that_does_not_match_its_checksum_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let srv = root.join("srv");
    publish_release(&srv, "acme/image-updater", "v9.9.9", Some(&"0".repeat(64)));
    let server = FileServer::start(srv);
    let action = checkout_action(root, "v9.9.9");
    let env = runner_env(root, &server, &action);
    let ws = root.join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    let scratch = root.join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let github =
        json!({ "token": "t", "action_ref": "v9.9.9", "action_repository": "acme/image-updater" });

    let run = run_action(&action, &[], github, &env, &ws, &scratch);
    let install = run.step("install");
    assert!(!install.success, "{}", run.log());
    assert!(
        install.stdout.contains("FAILED") || install.stderr.contains("FAILED"),
        "{}",
        run.log()
    );
    assert_eq!(run.steps.len(), 1, "nothing runs after a failed install");
    let dir = root.join(format!("runner-temp/image-updater/v9.9.9/{}", target()));
    assert!(
        !dir.join("image-updater").exists(),
        "the unverified binary is not unpacked"
    );
}

#[test]
fn inputs_reach_the_shell_only_as_environment_variables() {
    let action = &ci_common::yaml_documents(&repo().join("action.yml"))[0];
    for step in action["runs"]["steps"].as_array().unwrap() {
        let script = step["run"].as_str().unwrap();
        assert!(!script.contains("${{"), "an expression in run: {script}");
    }

    // Shell syntax in inputs stays data: the binary gets it as arguments and refuses them.
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let version = format!("v{}", env!("CARGO_PKG_VERSION"));
    let srv = root.join("srv");
    publish_release(&srv, "acme/image-updater", &version, None);
    let server = FileServer::start(srv);
    let action = checkout_action(root, &version);
    let env = runner_env(root, &server, &action);
    let ws = root.join("ws");
    demo_repo(&ws);
    let scratch = root.join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let github =
        json!({ "token": "t", "action_ref": version, "action_repository": "acme/image-updater" });
    let pwned = root.join("pwned");
    let attack = format!("$(touch {0}) `touch {0}`; touch {0}", pwned.display());
    for inputs in [
        vec![("path", "infra"), ("args", attack.as_str())],
        vec![("path", attack.as_str())],
        vec![("config", attack.as_str())],
        vec![("command", attack.as_str())],
    ] {
        let run = run_action(&action, &inputs, github.clone(), &env, &ws, &scratch);
        assert!(!run.step("run").success, "{inputs:?}: {}", run.log());
        assert!(!pwned.exists(), "{inputs:?} ran a command: {}", run.log());
    }
}
