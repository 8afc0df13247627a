//! The S benchmark as a CI smoke test: the synthetic repo and registry content of
//! `scripts/bench.sh S` (the same generator, `bench/src/gen.rs`), one `plan` against the real
//! registry. It checks correctness — the update count the generator computed, no errors, one
//! tag-list request per repository and no manifest request — and prints the figures. It never
//! asserts a time: timings on shared CI machines are noise (BENCHMARKS.md has the measured ones).

use crate::common;
#[path = "../../bench/src/gen.rs"]
mod gen;

use std::process::Command;
use std::time::Instant;

#[test]
fn bench_s_plan_finds_every_expected_update_with_one_listing_per_repository() {
    let registry = common::Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let storage = registry.storage_dir();
    let api = format!("http://{}", registry.addr);
    let started = Instant::now();
    let summary = gen::generate(
        gen::S,
        &repo,
        Some((storage.as_path(), gen::TagLayout::Linked)),
        &api,
    )
    .expect("generate the S benchmark");
    let generated = started.elapsed();

    let requests_before = registry_requests(&registry.log()).len();
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_image-updater"))
        .args(["plan", "--output", "json"])
        .arg(&repo)
        .output()
        .expect("run image-updater plan");
    let wall = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "plan failed: {stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("plan --output json prints JSON");
    let count = |key: &str| report[key].as_array().map_or(0, Vec::len);
    assert_eq!(count("errors"), 0, "errors: {}", report["errors"]);
    assert_eq!(
        count("updates"),
        summary.expected_updates,
        "the generator expects {} updates; plan reported {}",
        summary.expected_updates,
        report["updates"]
    );
    let mut files: Vec<&str> = report["updates"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| u["file"].as_str())
        .collect();
    files.sort_unstable();
    files.dedup();
    assert_eq!(files.len(), summary.files_changed);
    // Every invalid template is skipped with its reason; no file without image text is.
    let skipped_files = report["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "file")
        .count();
    assert_eq!(skipped_files, summary.templates, "{}", report["skipped"]);

    let log = registry.log();
    let requests: Vec<&str> = registry_requests(&log)
        .into_iter()
        .skip(requests_before)
        .collect();
    let tag_lists: Vec<&&str> = requests
        .iter()
        .filter(|r| r.contains("/tags/list"))
        .collect();
    let mut listed: Vec<&str> = tag_lists
        .iter()
        .filter_map(|r| r.split_whitespace().nth(1))
        .map(|p| p.split('?').next().unwrap_or(p))
        .collect();
    listed.sort_unstable();
    listed.dedup();
    assert_eq!(
        tag_lists.len(),
        summary.repositories,
        "one tag-list request per repository: {tag_lists:#?}"
    );
    assert_eq!(listed.len(), summary.repositories);
    assert!(
        !requests.iter().any(|r| r.contains("/manifests/")),
        "no policy needs a digest, so no manifest request: {requests:#?}"
    );

    eprintln!(
        "bench S: {} files ({} without image text, {} templates), {} references, {} updates in {} files; \
         {} repositories x {} tags; generated in {generated:?}; plan {wall:?} wall (debug or release as built), \
         {} HTTP requests ({} tag lists)",
        summary.files,
        summary.files_without_images,
        summary.templates,
        summary.references,
        summary.expected_updates,
        summary.files_changed,
        summary.repositories,
        summary.tags / summary.repositories,
        requests.len(),
        tag_lists.len(),
    );
}

/// The request lines (`GET /v2/... HTTP/1.1`) of the registry's access log, in order.
fn registry_requests(log: &str) -> Vec<&str> {
    log.lines()
        .filter_map(|l| {
            let start = l.find("\"GET /v2/").or_else(|| l.find("\"HEAD /v2/"))?;
            let rest = &l[start + 1..];
            Some(&rest[..rest.find('"')?])
        })
        .collect()
}
