//! The whole run with one registry stalled and one down: their images are reported in
//! `errors`, exit 1, within the run's registry deadline; the image on the working registry is
//! still updated, committed and pushed, and nothing reflects the images whose lookup failed.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{bare_repo_with_files, git, Fault, FaultProxy, Registry};

const DEPLOY: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      containers:
        - name: web
          image: good.test/acme/web:1.0.0
        - name: api
          image: slow.test/acme/api:1.0.0
        - name: db
          image: dead.test/acme/db:1.0.0
";

#[test]
fn stalled_and_dead_registries_fail_only_their_images_within_the_deadline() {
    let good = Registry::start();
    good.push_image("acme/web", &["1.0.0", "1.1.0"]);
    let slow_registry = Registry::start();
    slow_registry.push_image("acme/api", &["1.0.0", "1.5.0"]);
    let slow = FaultProxy::start(&slow_registry.addr);
    slow.inject(
        "/tags/list",
        vec![Fault::Stall(Duration::from_secs(60)); 20],
    );

    let config = format!(
        "registries:
  - host: good.test
    api: http://{}
  - host: slow.test
    api: http://{}
  - host: dead.test
    api: http://127.0.0.1:1
images:
  - {{ name: web, image: good.test/acme/web, policy: {{ semver: '^1' }} }}
  - {{ name: api, image: slow.test/acme/api, policy: {{ semver: '^1' }} }}
  - {{ name: db, image: dead.test/acme/db, policy: {{ semver: '^1' }} }}
delivery:
  mode: commit
",
        good.addr, slow.addr
    );
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repo_with_files(
        &tmp.path().join("remote.git"),
        &[
            ("deploy.yaml", DEPLOY.as_bytes()),
            (".image-updater.yaml", config.as_bytes()),
        ],
    );
    let work = common::clone(
        &format!("file://{}", bare.display()),
        &tmp.path().join("work"),
    );

    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_image-updater"))
        .args(["run", work.to_str().unwrap(), "--output", "json"])
        .env("IMAGE_UPDATER_REGISTRY_DEADLINE", "4")
        .env("IMAGE_UPDATER_REGISTRY_ATTEMPTS", "2")
        .env("HOME", tmp.path())
        .env_remove("DOCKER_CONFIG")
        .output()
        .unwrap();
    let took = started.elapsed();
    let said = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        took < Duration::from_secs(15),
        "deadline 4 s, took {took:?}"
    );

    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect(&said);
    let errors = report["errors"].to_string();
    assert!(errors.contains("slow.test/acme/api"), "{errors}");
    assert!(errors.contains("deadline"), "{errors}");
    assert!(errors.contains("dead.test/acme/db"), "{errors}");
    let updates = report["updates"].as_array().unwrap();
    assert_eq!(updates.len(), 1, "{report}");
    assert_eq!(updates[0]["to"], "1.1.0");

    let pushed = git(&bare, &["show", "main:deploy.yaml"]);
    assert_eq!(
        pushed,
        DEPLOY.replace("good.test/acme/web:1.0.0", "good.test/acme/web:1.1.0")
    );
}
