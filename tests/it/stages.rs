//! Promotion through stages (issue 22) against the real registry and real git remotes, with
//! history built from backdated commits (`GIT_COMMITTER_DATE`): soak times, a break in the
//! upstream's history, `together`, `min_age`, `run --stage`, shallow clones, and pull requests
//! for the last stage against the forge fakes.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{json, Value};

use crate::common;
use crate::common::{git, output_text, Registry};

const HOUR: i64 = 3600;

/// A repository with stages, its remote and the registry its images live in.
pub(crate) struct Scenario {
    pub _tmp: tempfile::TempDir,
    pub registry: Registry,
    pub bare: PathBuf,
    pub work: PathBuf,
    /// When the scenario was built (seconds since the epoch); commits are backdated from it.
    pub now: i64,
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `secs` as RFC 3339 UTC.
pub(crate) fn rfc3339(secs: i64) -> String {
    let out = Command::new("date")
        .args(["-u", "-d", &format!("@{secs}"), "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A Deployment running `image`.
pub(crate) fn deployment(name: &str, image: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  template:\n    spec:\n      containers:\n        - name: {name}\n          image: {image}\n"
    )
}

/// A repository whose config has `images` (web and api, semver `*`), `delivery` lines and
/// `stages`; the registry holds each `(repo, tag, hours since it was built)`.
pub(crate) fn scenario(delivery: &str, stages: &str, built: &[(&str, &str, i64)]) -> Scenario {
    let registry = Registry::start();
    let now = now();
    for (repo, tag, hours) in built {
        registry.push_built(repo, tag, &rfc3339(now - hours * HOUR));
    }
    let addr = &registry.addr;
    let config = format!(
        "registries:\n  - {{ host: \"{addr}\", insecure: true }}\nimages:\n  - {{ name: web, image: {addr}/acme/web, policy: {{ semver: \"*\" }} }}\n  - {{ name: api, image: {addr}/acme/api, policy: {{ semver: \"*\" }} }}\ndelivery:\n{delivery}stages:\n{stages}"
    );
    let (tmp, bare, work) =
        common::remote_and_clone(&[(".image-updater.yaml".to_string(), config)]);
    Scenario {
        _tmp: tmp,
        registry,
        bare,
        work,
        now,
    }
}

impl Scenario {
    /// Commit, `hours` ago, each `(stage, image, tag)` as `clusters/STAGE/IMAGE.yaml`, and push.
    pub fn commit(&self, hours: i64, files: &[(&str, &str, &str)]) -> String {
        for (stage, name, tag) in files {
            let path = self.work.join(format!("clusters/{stage}/{name}.yaml"));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let image = format!("{}/acme/{name}:{tag}", self.registry.addr);
            std::fs::write(&path, deployment(name, &image)).unwrap();
        }
        git(&self.work, &["add", "--all"]);
        let date = format!("{} +0000", self.now - hours * HOUR);
        let out = Command::new("git")
            .current_dir(&self.work)
            .args(["commit", "--quiet", "-m", &format!("change, {hours}h ago")])
            .env("GIT_COMMITTER_DATE", &date)
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", output_text(&out));
        git(&self.work, &["push", "--quiet", "origin", "main"]);
        git(&self.work, &["rev-parse", "HEAD"]).trim().to_string()
    }

    /// The tag `clusters/STAGE/IMAGE.yaml` holds on the remote's main.
    pub fn remote_tag(&self, stage: &str, name: &str) -> String {
        let text = git(
            &self.bare,
            &["show", &format!("main:clusters/{stage}/{name}.yaml")],
        );
        let line = text.lines().find(|l| l.contains("image:")).unwrap();
        line.rsplit(':').next().unwrap().trim().to_string()
    }

    /// The remote's last commit message.
    pub fn last_message(&self) -> String {
        git(&self.bare, &["log", "-1", "--format=%B", "main"])
    }

    /// `image-updater ARGS --output json` in the work tree's parent, with `env`.
    pub fn run(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
        let mut cmd = Command::new(common::test_bin());
        cmd.args(args)
            .args(["--output", "json"])
            .env("NO_COLOR", "1");
        for v in [
            "IMAGE_UPDATER_GIT_TOKEN",
            "GITHUB_TOKEN",
            "GITHUB_ACTIONS",
            "GITHUB_ACTOR",
            "GITLAB_CI",
            "GITLAB_USER_LOGIN",
            "IMAGE_UPDATER_CONFIG",
            "IMAGE_UPDATER_OUTPUT",
            "IMAGE_UPDATER_MODE",
            "IMAGE_UPDATER_STAGE",
            "GITHUB_STEP_SUMMARY",
            "GITHUB_OUTPUT",
        ] {
            cmd.env_remove(v);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    pub fn work(&self) -> &str {
        self.work.to_str().unwrap()
    }
}

/// The stage named `name` of a JSON report.
pub(crate) fn stage<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["stages"]
        .as_array()
        .unwrap_or_else(|| panic!("no stages: {report:#}"))
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no stage {name}: {report:#}"))
}

/// `(name, version, reason)` of a stage's pending entries.
pub(crate) fn pending(report: &Value, name: &str) -> Vec<(String, String, String)> {
    stage(report, name)["pending"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["version"].as_str().unwrap().to_string(),
                p["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Push `repo:tag` with a config without `created` and the manifest annotation
/// `org.opencontainers.image.created: created`.
fn push_annotated(registry: &Registry, repo: &str, tag: &str, created: &str) {
    let layer = format!("layer of {repo}:{tag}");
    let layer_digest = registry.upload_blob(repo, layer.as_bytes());
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{layer_digest}"]}}}}"#
    );
    let config_digest = registry.upload_blob(repo, config.as_bytes());
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer_digest}","size":{}}}],"annotations":{{"org.opencontainers.image.created":"{created}"}}}}"#,
        config.len(),
        layer.len()
    );
    registry.put_manifest(
        repo,
        tag,
        "application/vnd.oci.image.manifest.v1+json",
        &manifest,
    );
}

pub(crate) const DEV_STAGING: &str = "  - { name: dev, paths: [\"clusters/dev/**\"] }\n  - { name: staging, paths: [\"clusters/staging/**\"], from: dev, soak: 24h }\n";

fn built_all() -> Vec<(&'static str, &'static str, i64)> {
    vec![
        ("acme/web", "1.1.0", 900),
        ("acme/web", "1.2.0", 800),
        ("acme/web", "1.3.0", 700),
        ("acme/api", "2.0.0", 900),
        ("acme/api", "2.1.0", 800),
    ]
}

#[test]
fn a_version_younger_than_the_soak_waits_and_an_older_one_is_promoted() {
    let s = scenario("  mode: commit\n", DEV_STAGING, &built_all());
    s.commit(
        72,
        &[
            ("dev", "web", "1.1.0"),
            ("dev", "api", "2.0.0"),
            ("staging", "web", "1.1.0"),
            ("staging", "api", "2.0.0"),
        ],
    );
    let web_at = s.commit(30, &[("dev", "web", "1.3.0")]);
    s.commit(2, &[("dev", "api", "2.1.0")]);

    let o = s.run(&["run", s.work()], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let report = common::output_json(&o);
    // web has soaked 30h of 24h: promoted; api only 2h: waits.
    assert_eq!(s.remote_tag("staging", "web"), "1.3.0");
    assert_eq!(s.remote_tag("staging", "api"), "2.0.0");
    let updates: Vec<(&str, &str, &str)> = report["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["policy"].as_str().unwrap(),
                u["file"].as_str().unwrap(),
                u["to"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(updates, [("web", "clusters/staging/web.yaml", "1.3.0")]);
    let message = s.last_message();
    assert!(
        message.starts_with("chore(images): promote web 1.3.0 to staging"),
        "{message}"
    );
    assert!(message.contains(&rfc3339(s.now - 30 * HOUR)), "{message}");
    assert!(message.contains(&web_at[..7]), "{message}");
    let waits = pending(&report, "staging");
    assert!(
        waits.contains(&("web".into(), "1.3.0".into(), "promoted".into())),
        "{waits:?}"
    );
    assert!(
        waits.contains(&(
            "api".into(),
            "2.1.0".into(),
            format!("soaking until {}", rfc3339(s.now - 2 * HOUR + 24 * HOUR))
        )),
        "{waits:?}"
    );
    // The picture's data: what dev holds and since when, with the commit that brought it.
    let dev = stage(&report, "dev");
    assert_eq!(dev["from"], Value::Null);
    let web = dev["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "web")
        .unwrap();
    assert_eq!(web["version"], "1.3.0");
    assert_eq!(web["since"], json!(rfc3339(s.now - 30 * HOUR)));
    assert_eq!(web["commit"], json!(web_at));
    assert_eq!(stage(&report, "staging")["from"], "dev");

    // A second run has nothing to promote.
    let o = s.run(&["run", s.work()], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    assert_eq!(common::output_json(&o)["updates"], json!([]));
}

#[test]
fn a_break_in_the_upstream_history_restarts_the_clock_and_run_stage_handles_one_stage() {
    let s = scenario("  mode: commit\n", DEV_STAGING, &built_all());
    s.commit(
        72,
        &[
            ("dev", "web", "1.2.0"),
            ("dev", "api", "2.1.0"),
            ("staging", "web", "1.1.0"),
            ("staging", "api", "2.1.0"),
        ],
    );
    s.commit(50, &[("dev", "web", "1.3.0")]);
    let back = s.commit(10, &[("dev", "web", "1.2.0")]);

    let o = s.run(&["run", s.work(), "--stage", "staging"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let report = common::output_json(&o);
    // 1.2.0 was in dev 72h ago, but left it for 1.3.0: its clock starts at its return.
    assert_eq!(s.remote_tag("staging", "web"), "1.1.0");
    assert_eq!(
        pending(&report, "staging"),
        [(
            "web".to_string(),
            "1.2.0".to_string(),
            format!("soaking until {}", rfc3339(s.now - 10 * HOUR + 24 * HOUR))
        )]
    );
    let dev_web = &stage(&report, "dev")["images"][1];
    assert_eq!(dev_web["name"], "web");
    assert_eq!(dev_web["since"], json!(rfc3339(s.now - 10 * HOUR)));
    assert_eq!(dev_web["commit"], json!(back));
    // --stage staging left dev alone, though the policy would move it to 1.3.0.
    assert_eq!(s.remote_tag("dev", "web"), "1.2.0");
    assert!(stage(&report, "dev")["pending"]
        .as_array()
        .unwrap()
        .is_empty());

    let o = s.run(&["run", s.work(), "--stage", "qa"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", output_text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no stage qa; the stages are dev, staging"));
}

#[test]
fn together_holds_back_a_partial_set_and_moves_a_whole_one_in_one_commit() {
    let stages = format!(
        "{DEV_STAGING}  - {{ name: prod, paths: [\"clusters/prod/**\"], from: staging, soak: 24h, together: [web, api] }}\n"
    );
    let s = scenario("  mode: commit\n", &stages, &built_all());
    s.commit(
        100,
        &[
            ("dev", "web", "1.3.0"),
            ("dev", "api", "2.1.0"),
            ("staging", "web", "1.2.0"),
            ("staging", "api", "2.0.0"),
            ("prod", "web", "1.1.0"),
            ("prod", "api", "2.0.0"),
        ],
    );
    // staging: web soaked (30h), api not (3h).
    s.commit(30, &[("staging", "web", "1.3.0")]);
    s.commit(3, &[("staging", "api", "2.1.0")]);

    let o = s.run(&["run", s.work(), "--stage", "prod"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let report = common::output_json(&o);
    assert_eq!(s.remote_tag("prod", "web"), "1.1.0");
    assert_eq!(s.remote_tag("prod", "api"), "2.0.0");
    let waits = pending(&report, "prod");
    let web = waits.iter().find(|p| p.0 == "web").unwrap();
    assert_eq!(web.1, "1.3.0");
    assert!(
        web.2.starts_with("together: waits for api soaking until"),
        "{waits:?}"
    );
    assert_eq!(report["updates"], json!([]));

    // Once api has soaked too, both move, in one commit.
    let s2 = {
        let s2 = scenario("  mode: commit\n", &stages, &built_all());
        s2.commit(
            100,
            &[
                ("dev", "web", "1.3.0"),
                ("dev", "api", "2.1.0"),
                ("staging", "web", "1.2.0"),
                ("staging", "api", "2.0.0"),
                ("prod", "web", "1.1.0"),
                ("prod", "api", "2.0.0"),
            ],
        );
        s2.commit(30, &[("staging", "web", "1.3.0")]);
        s2.commit(26, &[("staging", "api", "2.1.0")]);
        s2
    };
    let before = git(&s2.bare, &["rev-list", "--count", "main"]);
    let o = s2.run(&["run", s2.work(), "--stage", "prod"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    assert_eq!(s2.remote_tag("prod", "web"), "1.3.0");
    assert_eq!(s2.remote_tag("prod", "api"), "2.1.0");
    let after = git(&s2.bare, &["rev-list", "--count", "main"]);
    assert_eq!(
        after.trim().parse::<u32>().unwrap(),
        before.trim().parse::<u32>().unwrap() + 1
    );
    let message = s2.last_message();
    assert!(
        message.starts_with("chore(images): promote api 2.1.0, web 1.3.0 to prod"),
        "{message}"
    );
}

#[test]
fn min_age_passes_over_images_built_too_recently_and_reports_missing_times() {
    let stages = "  - { name: dev, paths: [\"clusters/dev/**\"], min_age: 1h }\n";
    let s = scenario(
        "  mode: commit\n",
        stages,
        &[
            ("acme/web", "1.1.0", 500),
            // Built now: too young.
            ("acme/web", "1.3.0", 0),
        ],
    );
    // 1.2.0's config has no `created`; its manifest's annotation says 3h ago.
    push_annotated(&s.registry, "acme/web", "1.2.0", &rfc3339(s.now - 3 * HOUR));
    // api's newest tag has no build time at all.
    s.registry
        .push_built("acme/api", "2.0.0", &rfc3339(s.now - 500 * HOUR));
    s.registry.push_image("acme/api", &["2.1.0"]);
    s.commit(72, &[("dev", "web", "1.1.0"), ("dev", "api", "2.0.0")]);

    let o = s.run(&["run", s.work()], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let report = common::output_json(&o);
    // 1.3.0 is too young: the policy's next best, 1.2.0 (3h old by its annotation), is taken.
    assert_eq!(s.remote_tag("dev", "web"), "1.2.0");
    assert_eq!(s.remote_tag("dev", "api"), "2.0.0");
    let waits = pending(&report, "dev");
    let web = waits
        .iter()
        .find(|p| p.0 == "web" && p.1 == "1.3.0")
        .unwrap();
    assert!(web.2.starts_with("min_age 1h: built "), "{waits:?}");
    let api = waits.iter().find(|p| p.0 == "api").unwrap();
    assert_eq!(api.1, "2.1.0");
    assert!(api.2.starts_with("min_age: no build time ("), "{waits:?}");
    assert!(api.2.ends_with("not guessed"), "{waits:?}");
}

#[test]
fn a_shallow_clone_is_deepened_and_says_so_and_too_little_history_is_an_error() {
    let s = scenario("  mode: commit\n", DEV_STAGING, &built_all());
    s.commit(
        100,
        &[
            ("dev", "web", "1.3.0"),
            ("dev", "api", "2.0.0"),
            ("staging", "web", "1.1.0"),
            ("staging", "api", "2.0.0"),
        ],
    );
    s.commit(30, &[("dev", "api", "2.1.0")]);
    // A commit of now, outside the stages' files: the clone's only commit.
    std::fs::write(s.work.join("README.md"), "notes\n").unwrap();
    git(&s.work, &["add", "README.md"]);
    git(&s.work, &["commit", "--quiet", "-m", "notes"]);
    git(&s.work, &["push", "--quiet", "origin", "main"]);

    let shallow = s._tmp.path().join("shallow");
    git(
        s._tmp.path(),
        &[
            "clone",
            "--quiet",
            "--depth",
            "1",
            &format!("file://{}", s.bare.display()),
            shallow.to_str().unwrap(),
        ],
    );
    git(&shallow, &["config", "user.name", "Test"]);
    git(&shallow, &["config", "user.email", "test@example.invalid"]);
    assert!(shallow.join(".git/shallow").exists());
    let o = s.run(
        &["run", shallow.to_str().unwrap(), "--stage", "staging"],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("the clone was shallow: history fetched back to"),
        "{}",
        output_text(&o)
    );
    // web has been in dev 100h, api 30h: both promoted on the deepened history, which
    // reaches back past the soak (48h: the longest soak and a day) but not to 100h.
    assert_eq!(s.remote_tag("staging", "web"), "1.3.0");
    assert_eq!(s.remote_tag("staging", "api"), "2.1.0");
    let report = common::output_json(&o);
    let dev = stage(&report, "dev");
    let web = dev["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "web")
        .unwrap();
    assert_eq!(web["since"], Value::Null, "{report:#}");

    // A shallow clone that cannot be deepened: a clear error, nothing promoted.
    let s = scenario("  mode: commit\n", DEV_STAGING, &built_all());
    s.commit(
        100,
        &[
            ("dev", "web", "1.3.0"),
            ("dev", "api", "2.0.0"),
            ("staging", "web", "1.1.0"),
            ("staging", "api", "2.0.0"),
        ],
    );
    s.commit(2, &[("dev", "api", "2.1.0"), ("staging", "api", "2.1.0")]);
    std::fs::write(s.work.join("README.md"), "notes\n").unwrap();
    git(&s.work, &["add", "README.md"]);
    git(&s.work, &["commit", "--quiet", "-m", "notes"]);
    git(&s.work, &["push", "--quiet", "origin", "main"]);
    let shallow = s._tmp.path().join("shallow");
    git(
        s._tmp.path(),
        &[
            "clone",
            "--quiet",
            "--depth",
            "1",
            &format!("file://{}", s.bare.display()),
            shallow.to_str().unwrap(),
        ],
    );
    git(&shallow, &["remote", "remove", "origin"]);
    let o = s.run(
        &["plan", shallow.to_str().unwrap(), "--stage", "staging"],
        &[],
    );
    assert_eq!(o.status.code(), Some(1), "{}", output_text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("could not be deepened"), "{stderr}");
    assert!(stderr.contains("where the history ends"), "{stderr}");
    assert!(stderr.contains("nothing promoted"), "{stderr}");
    assert_eq!(s.remote_tag("staging", "web"), "1.1.0");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_last_stage_opens_one_pull_request_per_group_with_the_soak_evidence() {
    use common::forges::{Forge, ForgeFake};
    const TOKEN: &str = "forge-test-token-stages";
    let (fake, server) = ForgeFake::start(Forge::Github, TOKEN).await;
    let delivery = Forge::Github.delivery(&server.uri(), "");
    let stages = "  - { name: dev, paths: [\"clusters/dev/**\"], mode: commit }\n  - { name: staging, paths: [\"clusters/staging/**\"], from: dev, soak: 24h, mode: commit }\n  - { name: prod, paths: [\"clusters/prod/**\"], from: staging, soak: 48h, together: [web, api] }\n";
    let s = scenario(&delivery, stages, &built_all());
    s.commit(
        200,
        &[
            ("dev", "web", "1.3.0"),
            ("dev", "api", "2.1.0"),
            ("staging", "web", "1.1.0"),
            ("staging", "api", "2.0.0"),
            ("prod", "web", "1.1.0"),
            ("prod", "api", "2.0.0"),
        ],
    );
    let evidence = s.commit(
        60,
        &[("staging", "web", "1.3.0"), ("staging", "api", "2.1.0")],
    );
    let main_before = git(&s.bare, &["rev-parse", "main"]);
    let work = s.work.clone();
    let run = |args: Vec<String>| {
        let work = work.clone();
        tokio::task::spawn_blocking(move || {
            let mut cmd = Command::new(common::test_bin());
            cmd.args(&args)
                .arg(&work)
                .args(["--output", "json"])
                .env("GITHUB_TOKEN", TOKEN);
            for v in [
                "IMAGE_UPDATER_CONFIG",
                "IMAGE_UPDATER_MODE",
                "GITHUB_ACTIONS",
                "GITHUB_STEP_SUMMARY",
                "GITHUB_OUTPUT",
            ] {
                cmd.env_remove(v);
            }
            cmd.output().unwrap()
        })
    };
    let o = run(vec!["run".into(), "--stage".into(), "prod".into()])
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let report = common::output_json(&o);
    // One pull request for the group, on the stage's branch; main untouched.
    let prs = fake.prs();
    assert_eq!(prs.len(), 1, "{prs:?}");
    assert_eq!(prs[0].head, "image-updater/prod-web-api");
    assert_eq!(prs[0].base, "main");
    assert!(
        prs[0].body.contains("Promotion to prod from staging"),
        "{}",
        prs[0].body
    );
    // The soak evidence: the upstream commit, when it landed there (minutes, UTC), how long
    // it has been held; the stages drawn, and mermaid's own parser accepts the drawing.
    let landed = rfc3339(s.now - 60 * HOUR)[..16].replace('T', " ");
    assert!(prs[0].body.contains(&landed), "{landed}: {}", prs[0].body);
    assert!(prs[0].body.contains(&evidence[..12]), "{}", prs[0].body);
    assert!(prs[0].body.contains("### Stages"), "{}", prs[0].body);
    common::mermaid::assert_parses(&prs[0].body);
    assert_eq!(git(&s.bare, &["rev-parse", "main"]), main_before);
    let shown = git(
        &s.bare,
        &["show", "image-updater/prod-web-api:clusters/prod/web.yaml"],
    );
    assert!(shown.contains("acme/web:1.3.0"), "{shown}");
    let shown = git(
        &s.bare,
        &["show", "image-updater/prod-web-api:clusters/prod/api.yaml"],
    );
    assert!(shown.contains("acme/api:2.1.0"), "{shown}");
    assert_eq!(report["pull_requests"][0]["action"], "created");
    let waits = pending(&report, "prod");
    assert!(
        waits.contains(&("web".into(), "1.3.0".into(), "promoted".into())),
        "{waits:?}"
    );
    assert!(!String::from_utf8_lossy(&o.stdout).contains(TOKEN));
}

#[test]
fn bad_stages_are_config_errors_naming_the_line() {
    let s = scenario(
        "  mode: commit\n",
        "  - { name: dev, paths: [\"clusters/dev/**\"] }\n  - { name: prod, paths: [\"clusters/prod/**\"], from: staging }\n",
        &[],
    );
    let o = s.run(&["plan", s.work()], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", output_text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains(".image-updater.yaml:10:")
            && stderr.contains("from \"staging\" is not a stage"),
        "{stderr}"
    );
    let s = scenario(
        "  mode: commit\n",
        "  - { name: dev, paths: [\"clusters/dev/**\"] }\n  - { name: prod, paths: [\"clusters/prod/**\"], from: dev, together: [web, db] }\n",
        &[],
    );
    let o = s.run(&["plan", s.work()], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", output_text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("together names \"db\""));
}
