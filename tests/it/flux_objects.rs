//! A Flux repo gets what its own objects say, with no config of ours (issue 16): the
//! `ImageUpdateAutomation`'s update.path, push branch, author, messageTemplate and suspend,
//! and `ImagePolicy` objects scoped by cluster tree. Fixtures under `fixtures/flux/` are built
//! from the Flux docs' examples; each runs through `plan` and `run` against the real registry
//! and a git remote, and the trees are compared byte for byte.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::forges::{files_of, fixture, output_text, run_in};
use common::{bare_repo_with_files, clone, git, Registry};

/// A bare repo `dir/remote.git` holding `fixtures/flux/CASE/input` with `{{REGISTRY}}` filled in.
fn remote(dir: &Path, case: &str, registry: &str) -> PathBuf {
    let files: Vec<(String, Vec<u8>)> = files_of(&fixture(&format!("flux/{case}/input")))
        .into_iter()
        .map(|(p, b)| (p, fill(&b, registry)))
        .collect();
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_slice()))
        .collect();
    bare_repo_with_files(&dir.join("remote.git"), &refs)
}

fn fill(bytes: &[u8], registry: &str) -> Vec<u8> {
    String::from_utf8(bytes.to_vec())
        .unwrap()
        .replace("{{REGISTRY}}", registry)
        .into_bytes()
}

/// The expected tree of CASE, `{{REGISTRY}}` filled in.
fn expected(case: &str, registry: &str) -> Vec<(String, Vec<u8>)> {
    files_of(&fixture(&format!("flux/{case}/expected")))
        .into_iter()
        .map(|(p, b)| (p, fill(&b, registry)))
        .collect()
}

/// The files of `dir` but `.git`.
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    files_of(dir)
        .into_iter()
        .filter(|(p, _)| !p.starts_with(".git/") && !p.starts_with(".git\\"))
        .collect()
}

fn cli(args: &[&str]) -> Output {
    let mut cmd = Command::new(common::test_bin());
    cmd.args(args)
        .env("NO_COLOR", "1")
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITLAB_CI");
    cmd.output().unwrap()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", output_text(o)))
}

fn moves(report: &serde_json::Value) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = report["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["file"].as_str().unwrap().to_string(),
                u["from"].as_str().unwrap().to_string(),
                u["to"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

/// The message of commit `rev` in `repo`, byte for byte.
fn message(repo: &Path, rev: &str) -> String {
    let raw = git(repo, &["cat-file", "commit", rev]);
    raw.split_once("\n\n").unwrap().1.to_string()
}

#[test]
fn dev_and_prod_policies_of_the_same_name_each_govern_their_own_cluster() {
    let registry = Registry::start();
    registry.push_image("stefanprodan/podinfo", &["1.0.0", "1.0.1", "2.0.0"]);
    let tmp = tempfile::tempdir().unwrap();
    let bare = remote(tmp.path(), "multi-cluster", &registry.addr);
    let work = clone(bare.to_str().unwrap(), &tmp.path().join("work"));

    // plan: dev's ">=1.0.0" gives 2.0.0, prod's "~1.0" gives 1.0.1 (before: 2.0.0 for both);
    // apps/base is under no automation's update.path and stays.
    let o = cli(&["plan", work.to_str().unwrap(), "--output", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let report = json(&o);
    assert_eq!(
        moves(&report),
        [
            (
                "clusters/dev/apps/podinfo-deployment.yaml".to_string(),
                "1.0.0".to_string(),
                "2.0.0".to_string()
            ),
            (
                "clusters/prod/apps/podinfo-deployment.yaml".to_string(),
                "1.0.0".to_string(),
                "1.0.1".to_string()
            ),
        ],
        "{report}"
    );
    let outside: Vec<&serde_json::Value> = report["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["file"] == "apps/base/podinfo-deployment.yaml")
        .collect();
    assert_eq!(outside.len(), 1, "{report}");
    assert!(
        outside[0]["reason"]
            .as_str()
            .unwrap()
            .contains("outside every ImageUpdateAutomation's update.path"),
        "{report}"
    );

    // scan names the automation governing each file, in JSON and in text.
    let o = cli(&["scan", work.to_str().unwrap(), "--output", "json"]);
    let scan = json(&o);
    let automation_of = |file: &str| {
        scan["references"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["file"] == file)
            .map(|r| r["automation"].clone())
            .unwrap()
    };
    assert_eq!(
        automation_of("clusters/prod/apps/podinfo-deployment.yaml"),
        "flux-system/flux-system"
    );
    assert_eq!(
        automation_of("apps/base/podinfo-deployment.yaml"),
        serde_json::Value::Null
    );
    let o = cli(&["scan", work.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("podinfo (automation flux-system/flux-system)"),
        "{text}"
    );

    // run: one commit on main by the automation's author, with its message; the tree is
    // the expected one, byte for byte; a second run changes nothing.
    let o = run_in(&work, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    assert_eq!(tree(&work), expected("multi-cluster", &registry.addr));
    let author = git(&bare, &["log", "-1", "--format=%an <%ae>", "main"]);
    assert_eq!(
        author.trim(),
        "fluxcdbot <fluxcdbot@users.noreply.github.com>"
    );
    let r = &registry.addr;
    assert_eq!(
        message(&bare, "main"),
        format!(
            "{r}/stefanprodan/podinfo:1.0.0 -> {r}/stefanprodan/podinfo:2.0.0\n\
             {r}/stefanprodan/podinfo:1.0.0 -> {r}/stefanprodan/podinfo:1.0.1\n"
        )
    );
    let head = git(&bare, &["rev-parse", "main"]);
    let o = run_in(&work, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    assert_eq!(git(&bare, &["rev-parse", "main"]), head);
}

#[test]
fn push_branch_update_path_and_the_docs_message_template() {
    let registry = Registry::start();
    registry.push_image(
        "stefanprodan/podinfo",
        &["5.0.0", "5.0.1", "5.0.3", "5.1.0"],
    );
    let tmp = tempfile::tempdir().unwrap();
    let bare = remote(tmp.path(), "push-branch", &registry.addr);
    let work = clone(bare.to_str().unwrap(), &tmp.path().join("work"));
    let main_before = git(&bare, &["rev-parse", "main"]);

    let o = run_in(&work, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    // main is not touched, nor the work tree: the commit went to image-updates.
    assert_eq!(git(&bare, &["rev-parse", "main"]), main_before);
    let pushed = tmp.path().join("pushed");
    git(
        tmp.path(),
        &[
            "clone",
            "--quiet",
            "--branch",
            "image-updates",
            bare.to_str().unwrap(),
            pushed.to_str().unwrap(),
        ],
    );
    // update.path: staging/ holds a marker too, and is left as it was.
    assert_eq!(tree(&pushed), expected("push-branch", &registry.addr));
    assert_eq!(
        git(&bare, &["log", "-1", "--format=%an <%ae>", "image-updates"]).trim(),
        "fluxcdbot <fluxcdbot@users.noreply.github.com>"
    );
    let r = &registry.addr;
    assert_eq!(
        message(&bare, "image-updates"),
        format!(
            "Automated image update\n\
             \n\
             Automation name: flux-system/flux-system\n\
             \n\
             Files:\n\
             - clusters/my-cluster/podinfo-deployment.yaml\n\
             - clusters/my-cluster/podinfo-release.yaml\n\
             Objects:\n\
             - Deployment podinfo\n  Changes:\n    \
             - {r}/stefanprodan/podinfo:5.0.0 -> {r}/stefanprodan/podinfo:5.0.3\n\
             - HelmRelease podinfo\n  Changes:\n    \
             - 5.0.0 -> 5.0.3\n"
        )
    );
    // Again: the push branch already holds the update, nothing new is pushed.
    let tip = git(&bare, &["rev-parse", "image-updates"]);
    let o = run_in(&work, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    assert_eq!(git(&bare, &["rev-parse", "image-updates"]), tip);
    assert_eq!(git(&bare, &["rev-parse", "main"]), main_before);
}

/// The push-branch fixture with `from` replaced by `to` in its automation.
fn variant(dir: &Path, registry: &Registry, from: &str, to: &str) -> PathBuf {
    let bare = remote(dir, "push-branch", &registry.addr);
    let work = clone(bare.to_str().unwrap(), &dir.join("work"));
    let file = work.join("clusters/my-cluster/flux-system/podinfo-automation.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains(from), "{from}");
    std::fs::write(&file, text.replacen(from, to, 1)).unwrap();
    git(
        &work,
        &["commit", "--quiet", "-am", "change the automation"],
    );
    git(&work, &["push", "--quiet", "origin", "main"]);
    work
}

#[test]
fn a_suspended_automation_changes_nothing_it_governs() {
    let registry = Registry::start();
    registry.push_image("stefanprodan/podinfo", &["5.0.0", "5.0.3"]);
    let tmp = tempfile::tempdir().unwrap();
    let work = variant(
        tmp.path(),
        &registry,
        "  interval: 30m\n",
        "  interval: 30m\n  suspend: true\n",
    );
    let o = cli(&["plan", work.to_str().unwrap(), "--output", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let report = json(&o);
    assert_eq!(report["updates"], serde_json::json!([]), "{report}");
    let suspended = report["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["reason"].as_str().unwrap().contains("suspended"))
        .count();
    assert_eq!(suspended, 2, "{report}");
}

#[test]
fn an_unknown_template_function_is_an_error_naming_the_file_and_line() {
    let registry = Registry::start();
    registry.push_image("stefanprodan/podinfo", &["5.0.0", "5.0.3"]);
    let tmp = tempfile::tempdir().unwrap();
    let work = variant(
        tmp.path(),
        &registry,
        "Automation name: {{ .AutomationObject }}",
        "Automation name: {{ .AutomationObject | shout }}",
    );
    let bare = tmp.path().join("remote.git");
    let main_before = git(&bare, &["rev-parse", "main"]);
    let o = run_in(&work, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", output_text(&o));
    let text = output_text(&o);
    assert!(
        text.contains("clusters/my-cluster/flux-system/podinfo-automation.yaml:44:")
            && text.contains("shout")
            && text.contains("is not defined"),
        "{text}"
    );
    assert_eq!(git(&bare, &["rev-parse", "main"]), main_before);
    assert!(try_branch(&bare, "image-updates").is_none());
}

fn try_branch(bare: &Path, branch: &str) -> Option<String> {
    common::try_git(bare, &["rev-parse", "--verify", "--quiet", branch]).ok()
}

#[test]
fn two_copies_of_a_policy_with_no_rule_to_choose_are_an_error_naming_both_files() {
    let registry = Registry::start();
    registry.push_image("stefanprodan/podinfo", &["1.0.0", "1.0.1", "2.0.0"]);
    let tmp = tempfile::tempdir().unwrap();
    let bare = remote(tmp.path(), "multi-cluster", &registry.addr);
    let work = clone(bare.to_str().unwrap(), &tmp.path().join("work"));
    // Without the automations, apps/base's marker could mean either cluster's policy.
    for c in ["dev", "prod"] {
        let file = work.join(format!("clusters/{c}/flux-system/image-automation.yaml"));
        let text = std::fs::read_to_string(&file).unwrap();
        let cut = text
            .find("---\napiVersion: image.toolkit.fluxcd.io/v1beta2\nkind: ImageUpdateAutomation")
            .unwrap();
        std::fs::write(&file, &text[..cut]).unwrap();
    }
    let o = cli(&["plan", work.to_str().unwrap(), "--output", "json"]);
    assert_eq!(o.status.code(), Some(1), "{}", output_text(&o));
    let report = json(&o);
    // Each cluster's own file still gets its own policy.
    assert_eq!(
        moves(&report)
            .iter()
            .map(|(_, _, to)| to.as_str())
            .collect::<Vec<_>>(),
        ["2.0.0", "1.0.1"],
        "{report}"
    );
    let errors = report["errors"].to_string();
    assert!(
        errors.contains("clusters/dev/flux-system/image-automation.yaml:")
            && errors.contains("clusters/prod/flux-system/image-automation.yaml:")
            && errors.contains("apps/base/podinfo-deployment.yaml"),
        "{errors}"
    );
}

#[test]
fn narrowing_a_flux_range_below_the_current_tag_reverts_as_flux_does() {
    let registry = Registry::start();
    registry.push_image("stefanprodan/podinfo", &["1.0.0", "1.0.1", "2.0.0"]);
    let tmp = tempfile::tempdir().unwrap();
    let bare = remote(tmp.path(), "multi-cluster", &registry.addr);
    let work = clone(bare.to_str().unwrap(), &tmp.path().join("work"));
    // prod runs 2.0.0, and its policy is "~1.0": Flux moves it back to 1.0.1.
    let file = work.join("clusters/prod/apps/podinfo-deployment.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("podinfo:1.0.0 #", "podinfo:2.0.0 #")).unwrap();
    git(&work, &["commit", "--quiet", "-am", "prod on 2.0.0"]);
    git(&work, &["push", "--quiet", "origin", "main"]);

    let o = cli(&["plan", work.to_str().unwrap(), "--output", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let report = json(&o);
    let prod: Vec<&serde_json::Value> = report["updates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["file"] == "clusters/prod/apps/podinfo-deployment.yaml")
        .collect();
    assert_eq!(prod.len(), 1, "{report}");
    assert_eq!(
        (prod[0]["from"].as_str(), prod[0]["to"].as_str()),
        (Some("2.0.0"), Some("1.0.1"))
    );
    let note = prod[0]["note"].as_str().unwrap();
    assert!(
        note.starts_with("downgrade") && note.contains("reverts"),
        "{note}"
    );

    let o = run_in(&work, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    assert_eq!(tree(&work), expected("multi-cluster", &registry.addr));
}

#[test]
fn an_overlay_patching_the_policy_range_is_applied_or_refused_with_its_line() {
    let registry = Registry::start();
    registry.push_image("stefanprodan/podinfo", &["1.0.0", "1.0.1", "2.0.0"]);
    let tmp = tempfile::tempdir().unwrap();
    let bare = remote(tmp.path(), "overlay-patch", &registry.addr);
    let work = clone(bare.to_str().unwrap(), &tmp.path().join("work"));

    // staging renders the base ">=1.0.0", production's patch makes it "~1.0" (before: the
    // patch was skipped and production got 2.0.0); canary's patch holds an operation that
    // cannot be applied, so its policy is refused, naming the line.
    let o = cli(&["plan", work.to_str().unwrap(), "--output", "json"]);
    assert_eq!(o.status.code(), Some(1), "{}", output_text(&o));
    let report = json(&o);
    assert_eq!(
        moves(&report),
        [
            (
                "apps/production/kustomization.yaml".to_string(),
                "1.0.0".to_string(),
                "1.0.1".to_string()
            ),
            (
                "apps/staging/kustomization.yaml".to_string(),
                "1.0.0".to_string(),
                "2.0.0".to_string()
            ),
        ],
        "{report}"
    );
    let errors = report["errors"].to_string();
    assert!(
        errors.contains("apps/canary/kustomization.yaml:15:") && errors.contains("copy"),
        "{errors}"
    );

    // run delivers the two that can be, and the tree is the expected one, byte for byte.
    let o = run_in(&work, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", output_text(&o));
    assert_eq!(tree(&work), expected("overlay-patch", &registry.addr));
    let shown = git(&bare, &["show", "main:apps/production/kustomization.yaml"]);
    assert!(shown.contains("newTag: 1.0.1 #"), "{shown}");
}

#[test]
fn digest_reflection_writes_tag_at_digest_and_cluster_secrets_are_named_once() {
    let registry = Registry::start();
    let digests = registry.push_image("stefanprodan/podinfo", &["5.0.0", "5.0.3", "5.1.0"]);
    let tmp = tempfile::tempdir().unwrap();
    let bare = remote(tmp.path(), "push-branch", &registry.addr);
    let work = clone(bare.to_str().unwrap(), &tmp.path().join("work"));
    let file = work.join("clusters/my-cluster/flux-system/podinfo-automation.yaml");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replacen(
            "      range: 5.0.x\n",
            "      range: 5.0.x\n  digestReflectionPolicy: IfNotPresent\n",
            1,
        )
        .replacen(
            "  insecure: true\n",
            "  insecure: true\n  secretRef:\n    name: regcred\n",
            1,
        );
    std::fs::write(&file, text).unwrap();
    git(&work, &["commit", "--quiet", "-am", "reflect digests"]);

    let o = cli(&["plan", work.to_str().unwrap(), "--output", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let report = json(&o);
    let updates = report["updates"].as_array().unwrap();
    let whole = updates
        .iter()
        .find(|u| u["file"] == "clusters/my-cluster/podinfo-deployment.yaml")
        .unwrap();
    assert_eq!(whole["to"], "5.0.3", "{report}");
    assert_eq!(whole["digest"], digests[1].as_str(), "{report}");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(stderr.matches("Secret regcred").count(), 1, "{stderr}");
    assert!(stderr.contains("registries[].credentials"), "{stderr}");

    // The whole-reference marker gets tag@digest, as Flux writes it; the :tag one the tag.
    let o = cli(&["plan", work.to_str().unwrap()]);
    let diff = String::from_utf8_lossy(&o.stdout);
    let r = &registry.addr;
    assert!(
        diff.contains(&format!(
            "+        image: {r}/stefanprodan/podinfo:5.0.3@{} # {{\"$imagepolicy\": \"flux-system:podinfo\"}}",
            digests[1]
        )),
        "{diff}"
    );
    assert!(
        diff.contains("+      tag: 5.0.3 # {\"$imagepolicy\": \"flux-system:podinfo:tag\"}"),
        "{diff}"
    );
}

#[test]
fn an_images_entry_of_our_config_overrides_the_repo_policies_for_its_image() {
    let registry = Registry::start();
    registry.push_image("stefanprodan/podinfo", &["1.0.0", "1.0.1", "2.0.0"]);
    let tmp = tempfile::tempdir().unwrap();
    let bare = remote(tmp.path(), "multi-cluster", &registry.addr);
    let work = clone(bare.to_str().unwrap(), &tmp.path().join("work"));
    let r = &registry.addr;
    std::fs::write(
        work.join(".image-updater.yaml"),
        format!(
            "registries:\n  - {{ host: {r}, insecure: true }}\nimages:\n  - name: pinned\n    \
             image: {r}/stefanprodan/podinfo\n    policy: {{ semver: '~1.0' }}\n"
        ),
    )
    .unwrap();
    let o = cli(&["plan", work.to_str().unwrap(), "--output", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let report = json(&o);
    let got: Vec<(String, String)> = report["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["file"].as_str().unwrap().to_string(),
                format!(
                    "{} {}",
                    u["policy"].as_str().unwrap(),
                    u["to"].as_str().unwrap()
                ),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "apps/base/podinfo-deployment.yaml".to_string(),
                "pinned 1.0.1".to_string()
            ),
            (
                "clusters/dev/apps/podinfo-deployment.yaml".to_string(),
                "pinned 1.0.1".to_string()
            ),
            (
                "clusters/prod/apps/podinfo-deployment.yaml".to_string(),
                "pinned 1.0.1".to_string()
            ),
        ],
        "{report}"
    );
}
