//! The whole run with one registry stalled and one down: their images are reported in
//! `errors`, exit 1, within the run's registry deadline; the image on the working registry is
//! still updated, committed and pushed, and nothing reflects the images whose lookup failed.

use crate::common;

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
    let (_servers, config) = three_registries(60, "acme/api", "acme/db");
    let tmp = tempfile::tempdir().unwrap();
    let (code, report, said, took, bare) = run_on(
        tmp.path(),
        &[
            ("deploy.yaml", DEPLOY.as_bytes()),
            (".image-updater.yaml", config.as_bytes()),
        ],
        "4",
    );
    assert_eq!(code, Some(1), "{said}");
    assert!(
        took < Duration::from_secs(15),
        "deadline 4 s, took {took:?}"
    );

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

/// Configured images that occur nowhere in the repo: their tag lists are started while the
/// files are read, then cancelled unread once it is clear nothing uses them. A dead or
/// stalled registry behind them neither fails the run nor holds it up.
#[test]
fn registries_of_images_that_occur_nowhere_neither_fail_nor_hold_up_the_run() {
    let (_servers, config) = three_registries(120, "acme/unused-api", "acme/unused-db");
    let deploy = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n    - name: web\n      image: good.test/acme/web:1.0.0\n";
    let tmp = tempfile::tempdir().unwrap();
    let (code, report, said, took, bare) = run_on(
        tmp.path(),
        &[
            ("pod.yaml", deploy.as_bytes()),
            (".image-updater.yaml", config.as_bytes()),
        ],
        "120",
    );
    assert_eq!(code, Some(0), "{said}");
    // Not a speed check: waiting for the stalled list would take the 120 s stall.
    assert!(
        took < Duration::from_secs(60),
        "waited {took:?} on an unused image"
    );
    assert_eq!(report["errors"], serde_json::json!([]), "{report}");
    assert_eq!(report["updates"].as_array().unwrap().len(), 1, "{report}");
    assert_eq!(
        git(&bare, &["show", "main:pod.yaml"]),
        deploy.replace(":1.0.0", ":1.1.0")
    );
}

/// `run --output json` on a fresh clone of a bare remote holding `files`, with the registry
/// deadline `deadline` (seconds): (exit code, report, everything printed, time taken, remote).
fn run_on(
    tmp: &std::path::Path,
    files: &[(&str, &[u8])],
    deadline: &str,
) -> (
    Option<i32>,
    serde_json::Value,
    String,
    Duration,
    std::path::PathBuf,
) {
    let bare = bare_repo_with_files(&tmp.join("remote.git"), files);
    let work = common::clone(&format!("file://{}", bare.display()), &tmp.join("work"));
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_image-updater"))
        .args(["run", work.to_str().unwrap(), "--output", "json"])
        .env("IMAGE_UPDATER_REGISTRY_DEADLINE", deadline)
        .env("IMAGE_UPDATER_REGISTRY_ATTEMPTS", "2")
        .env("HOME", tmp)
        .env_remove("DOCKER_CONFIG")
        .output()
        .unwrap();
    let took = started.elapsed();
    let said = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report = serde_json::from_slice(&out.stdout).expect(&said);
    (out.status.code(), report, said, took, bare)
}

/// A working registry (`good.test`, acme/web 1.0.0 and 1.1.0), one whose tag lists stall for
/// `stall` seconds (`slow.test`, acme/api) and a dead one (`dead.test`); the config watching
/// good.test/acme/web, slow.test/`api` and dead.test/`db`, committing. The servers live as
/// long as the first value.
fn three_registries(stall: u64, api: &str, db: &str) -> ((Registry, Registry, FaultProxy), String) {
    let good = Registry::start();
    good.push_image("acme/web", &["1.0.0", "1.1.0"]);
    let slow_registry = Registry::start();
    slow_registry.push_image("acme/api", &["1.0.0", "1.5.0"]);
    let slow = FaultProxy::start(&slow_registry.addr);
    slow.inject(
        "/tags/list",
        vec![Fault::Stall(Duration::from_secs(stall)); 20],
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
  - {{ name: api, image: slow.test/{api}, policy: {{ semver: '^1' }} }}
  - {{ name: db, image: dead.test/{db}, policy: {{ semver: '^1' }} }}
delivery:
  mode: commit
",
        good.addr, slow.addr
    );
    ((good, slow_registry, slow), config)
}
