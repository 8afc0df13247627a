//! Helm charts (issue 18) end to end, against a real registry holding OCI Helm charts and a
//! real HTTP chart repository ([`common::ChartRepo`]).
//!
//! `fixtures/charts/<case>/` holds one scenario per shape: `input/` (the infra repo),
//! `expected/` (the repo after `run`, byte for byte), `config.yaml` and `report.snap` (an insta
//! snapshot of the run's updates, skipped references and errors). In every file of a case,
//! `{{REGISTRY}}` stands for the registry's `127.0.0.1:PORT` and `{{CHARTS}}` for the chart
//! repository's `http://127.0.0.1:PORT`. For each case: `plan` writes nothing and reports what
//! `run` does; `run` (delivery `commit`) leaves the work tree equal to `expected/` and reports
//! `report.snap`; a second `run` changes nothing. `INSTA_UPDATE=always cargo test --test it
//! charts::` rewrites `expected/` and `report.snap` for review with `git diff`.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{git, remote_and_clone, ChartRepo, Registry};

const HELM_CONFIG: &str = "application/vnd.cncf.helm.config.v1+json";
const HELM_CHART: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";

/// A chart archive (`NAME/Chart.yaml` in a gzipped tar), built with `tar`.
fn chart_tgz(name: &str, version: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(name)).unwrap();
    std::fs::write(
        dir.path().join(name).join("Chart.yaml"),
        format!("apiVersion: v2\nname: {name}\nversion: {version}\ntype: application\n"),
    )
    .unwrap();
    let out = dir.path().join("chart.tgz");
    let status = Command::new(common::require_program("tar", "apt-get install -y tar"))
        .args(["-czf"])
        .arg(&out)
        .arg("-C")
        .arg(dir.path())
        .arg(name)
        .status()
        .unwrap();
    assert!(status.success(), "tar failed");
    std::fs::read(out).unwrap()
}

/// Push chart `name` at `version` as an OCI Helm chart to `repo` (`charts/NAME`): its
/// archive as the one layer, its metadata as a Helm config blob, tagged with the version.
fn push_chart(registry: &Registry, repo: &str, name: &str, version: &str) {
    let layer = chart_tgz(name, version);
    let layer_digest = registry.upload_blob(repo, &layer);
    let config = format!(r#"{{"name":"{name}","version":"{version}","apiVersion":"v2"}}"#);
    let config_digest = registry.upload_blob(repo, config.as_bytes());
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"{HELM_CONFIG}","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"{HELM_CHART}","digest":"{layer_digest}","size":{}}}]}}"#,
        config.len(),
        layer.len()
    );
    registry.put_manifest(
        repo,
        version,
        "application/vnd.oci.image.manifest.v1+json",
        &manifest,
    );
}

/// The registry and the chart repository every test shares the contents of.
struct Servers {
    registry: Registry,
    charts: ChartRepo,
}

impl Servers {
    fn start() -> Servers {
        let registry = Registry::start();
        for (name, versions) in [
            ("podinfo", &["6.0.0", "6.1.0", "6.2.0", "7.0.0"][..]),
            ("redis", &["17.0.0", "17.3.1", "18.0.0"][..]),
        ] {
            for v in versions {
                push_chart(&registry, &format!("charts/{name}"), name, v);
            }
        }
        let charts = ChartRepo::start();
        charts.put_index(&[
            ("podinfo", &["7.0.0", "6.3.0", "6.1.0", "6.0.0"]),
            ("web", &["2.0.0", "1.1.0", "1.0.0"]),
        ]);
        Servers { registry, charts }
    }

    /// `text` with the placeholders filled in.
    fn fill(&self, text: &str) -> String {
        text.replace("{{REGISTRY}}", &self.registry.addr)
            .replace("{{CHARTS}}", &self.charts.url)
    }

    /// `text` with the servers' addresses put back as placeholders.
    fn unfill(&self, text: &str) -> String {
        text.replace(&self.charts.url, "{{CHARTS}}")
            .replace(&self.registry.addr, "{{REGISTRY}}")
    }
}

fn run_bin(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(common::test_bin());
    cmd.args(args).env("NO_COLOR", "1");
    for v in [
        "IMAGE_UPDATER_GIT_TOKEN",
        "GITHUB_TOKEN",
        "GITHUB_ACTIONS",
        "GITLAB_CI",
        "IMAGE_UPDATER_CONFIG",
        "IMAGE_UPDATER_OUTPUT",
        "IMAGE_UPDATER_CHART_CACHE",
    ] {
        cmd.env_remove(v);
    }
    cmd.envs(env.iter().copied());
    cmd.output().unwrap()
}

fn text_tree(servers: &Servers, dir: &Path) -> Vec<(String, Vec<u8>)> {
    common::fixtures::tree(dir)
        .into_iter()
        .map(|(p, b)| {
            let filled = servers.fill(&String::from_utf8(b).expect("fixtures are UTF-8"));
            (p, filled.into_bytes())
        })
        .collect()
}

/// Run one case; what went wrong (empty when it passed).
fn run_case(servers: &Servers, case: &Path, update: bool) -> Vec<String> {
    let mut failures = Vec::new();
    let config = servers.fill(&std::fs::read_to_string(case.join("config.yaml")).unwrap());
    let input = text_tree(servers, &case.join("input"));
    let mut files = input.clone();
    files.push((".image-updater.yaml".into(), config.into_bytes()));
    let (_tmp, bare, work) = remote_and_clone(&files);
    let work_s = work.to_str().unwrap();
    let repo_tree = |dir: &Path| {
        let mut t = common::fixtures::tree(dir);
        t.retain(|(p, _)| p != ".image-updater.yaml");
        t
    };
    let head = || {
        git(&bare, &["rev-parse", "refs/heads/main"])
            .trim()
            .to_string()
    };
    let head0 = head();

    let plan = run_bin(&["plan", work_s, "--output", "json"], &[]);
    let plan_json: Option<serde_json::Value> = serde_json::from_slice(&plan.stdout).ok();
    if plan.status.code() != Some(0) || plan_json.is_none() {
        failures.push(format!("plan failed:\n{}", common::output_text(&plan)));
    }
    if repo_tree(&work) != input {
        failures.push("plan wrote to the work tree".into());
    }

    let run = run_bin(&["run", work_s, "--output", "json"], &[]);
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
    if let Some(p) = &plan_json {
        if p["updates"] != run_json["updates"] {
            failures.push(format!(
                "plan and run report different updates:\nplan: {}\nrun: {}",
                p["updates"], run_json["updates"]
            ));
        }
    }
    let got = repo_tree(&work);
    if update {
        let expected = case.join("expected");
        let _ = std::fs::remove_dir_all(&expected);
        for (p, b) in &got {
            let path = expected.join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, servers.unfill(&String::from_utf8_lossy(b))).unwrap();
        }
    }
    let want = text_tree(servers, &case.join("expected"));
    if got != want {
        for ((p, a), (_, b)) in got.iter().zip(&want).filter(|(a, b)| a != b) {
            failures.push(format!(
                "after run, {p} differs:\n--- got\n{}\n--- expected\n{}",
                String::from_utf8_lossy(a),
                String::from_utf8_lossy(b)
            ));
        }
        if got.len() != want.len() {
            failures.push("after run, the file lists differ".into());
        }
    }
    let report = servers.unfill(&common::fixtures::report_lines(&run_json));
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(case);
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        settings.bind(|| insta::assert_snapshot!("report", report));
    }));
    if checked.is_err() {
        failures.push("the report differs from report.snap (the diff is above)".into());
    }
    let changed = got != input;
    if changed != (head() != head0) {
        failures.push(format!(
            "files changed: {changed}, but the remote moved: {}",
            !changed
        ));
    }
    let again = run_bin(&["run", work_s, "--output", "json"], &[]);
    match serde_json::from_slice::<serde_json::Value>(&again.stdout) {
        Ok(j) if j["updates"].as_array().is_some_and(|u| u.is_empty()) => {}
        _ => failures.push(format!(
            "the second run was not a no-op:\n{}",
            common::output_text(&again)
        )),
    }
    failures
}

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/charts")
}

#[test]
fn every_chart_fixture() {
    let update = std::env::var("INSTA_UPDATE").is_ok_and(|v| v == "always");
    let only = std::env::var("FIXTURE").ok();
    let servers = Servers::start();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .filter(|p| only.as_deref().is_none_or(|o| p.ends_with(o)))
        .collect();
    cases.sort();
    assert!(
        only.is_some() || cases.len() >= 9,
        "expected at least 9 chart scenarios, found {}",
        cases.len()
    );
    let mut failed = Vec::new();
    for case in &cases {
        let failures = run_case(&servers, case, update);
        if !failures.is_empty() {
            let name = case.file_name().unwrap().to_string_lossy().into_owned();
            failed.push(format!("## {name}\n{}", failures.join("\n")));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} chart cases failed:\n\n{}",
        failed.len(),
        cases.len(),
        failed.join("\n\n")
    );
}

/// A repo with three files naming two charts of one HTTP repository (and one chart of the
/// registry), and its config.
fn http_repo_files(servers: &Servers, extra_config: &str) -> Vec<(String, String)> {
    let release = |name: &str, chart: &str, version: &str| {
        format!(
            "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: {name}\n  namespace: apps\nspec:\n  chart:\n    spec:\n      chart: {chart}\n      version: {version}\n      sourceRef:\n        kind: HelmRepository\n        name: charts\n"
        )
    };
    let config = format!(
        "registries:\n  - {{ host: \"{reg}\", insecure: true }}\ncharts:\n  - name: podinfo\n    repository: {url}\n    chart: podinfo\n    policy: {{ semver: \"^6\" }}\n  - name: web\n    repository: {url}/\n    chart: web\n    policy: {{ semver: \"^1\" }}\n  - name: redis\n    repository: oci://{reg}/charts\n    chart: redis\n    policy: {{ semver: \"^17\" }}\n{extra_config}delivery:\n  mode: none\n",
        url = servers.charts.url,
        reg = servers.registry.addr,
    );
    vec![
        (".image-updater.yaml".into(), config),
        (
            "sources/charts.yaml".into(),
            format!(
                "apiVersion: source.toolkit.fluxcd.io/v1\nkind: HelmRepository\nmetadata:\n  name: charts\n  namespace: apps\nspec:\n  url: {}\n",
                servers.charts.url
            ),
        ),
        ("apps/podinfo.yaml".into(), release("podinfo", "podinfo", "6.0.0")),
        ("apps/web.yaml".into(), release("web", "web", "1.0.0")),
        (
            "apps/kustomization.yaml".into(),
            format!(
                "helmCharts:\n  - name: redis\n    repo: oci://{}/charts\n    version: 17.0.0\n  - name: web\n    repo: {}\n    version: 1.0.0\n",
                servers.registry.addr, servers.charts.url
            ),
        ),
    ]
}

fn write_files(dir: &Path, files: &[(String, String)]) {
    for (p, text) in files {
        let path = dir.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

fn updates(json: &serde_json::Value) -> Vec<String> {
    json["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            format!(
                "{}:{} {} {} {} -> {}",
                u["file"].as_str().unwrap(),
                u["line"],
                u["policy"].as_str().unwrap(),
                u["image"].as_str().unwrap(),
                u["from"].as_str().unwrap(),
                u["to"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn an_http_index_is_read_once_per_run_and_conditionally_with_a_cache() {
    let servers = Servers::start();
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path(), &http_repo_files(&servers, ""));
    let root = dir.path().to_str().unwrap();
    let url = &servers.charts.url;
    let reg = &servers.registry.addr;
    let want = [
        format!("apps/kustomization.yaml:4 redis {reg}/charts/redis 17.0.0 -> 17.3.1"),
        format!("apps/kustomization.yaml:7 web {url}/web 1.0.0 -> 1.1.0"),
        format!("apps/podinfo.yaml:10 podinfo {url}/podinfo 6.0.0 -> 6.3.0"),
        format!("apps/web.yaml:10 web {url}/web 1.0.0 -> 1.1.0"),
    ];

    // Three references to two charts of one repository: one GET of its index, unconditional.
    let plan = run_bin(&["plan", root, "--output", "json"], &[]);
    assert_eq!(
        plan.status.code(),
        Some(0),
        "{}",
        common::output_text(&plan)
    );
    assert_eq!(updates(&common::output_json(&plan)), want);
    let seen = servers.charts.requests();
    let paths: Vec<(&str, &str, u16)> = seen
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str(), r.status))
        .collect();
    assert_eq!(paths, [("GET", "/index.yaml", 200)]);
    assert_eq!(seen[0].header("if-none-match"), None);
    assert_eq!(seen[0].header("if-modified-since"), None);

    // With a cache directory: the first run keeps the index, the next asks conditionally and
    // is answered 304, and still finds the same updates.
    let cache = tempfile::tempdir().unwrap();
    let cache_env = [("IMAGE_UPDATER_CHART_CACHE", cache.path().to_str().unwrap())];
    for (run, status) in [(1, 200), (2, 304)] {
        servers.charts.clear_requests();
        let plan = run_bin(&["plan", root, "--output", "json"], &cache_env);
        assert_eq!(
            plan.status.code(),
            Some(0),
            "run {run}: {}",
            common::output_text(&plan)
        );
        assert_eq!(updates(&common::output_json(&plan)), want, "run {run}");
        let seen = servers.charts.requests();
        assert_eq!(seen.len(), 1, "run {run}: {seen:?}");
        assert_eq!(seen[0].status, status, "run {run}: {seen:?}");
        if run == 2 {
            let index = servers.charts.url.clone() + "/index.yaml";
            let tag = seen[0].header("if-none-match").expect("If-None-Match sent");
            assert!(tag.starts_with('"') && tag.len() == 66, "{tag} ({index})");
            assert_eq!(
                seen[0].header("if-modified-since"),
                Some(common::chart_repo::LAST_MODIFIED)
            );
        }
    }
}

#[test]
fn an_index_over_the_response_limit_is_an_error_naming_it() {
    let servers = Servers::start();
    let dir = tempfile::tempdir().unwrap();
    write_files(
        dir.path(),
        &http_repo_files(&servers, "limits: { response_bytes: 200 }\n"),
    );
    let plan = run_bin(
        &["plan", dir.path().to_str().unwrap(), "--output", "json"],
        &[],
    );
    let json = common::output_json(&plan);
    // The OCI chart still moves; the HTTP charts are errors naming the index and the limit.
    assert_eq!(updates(&json).len(), 1, "{}", common::output_text(&plan));
    let errors = json["errors"].to_string();
    assert!(
        errors.contains(&format!("{}/index.yaml", servers.charts.url))
            && errors.contains("limits.response_bytes"),
        "{errors}"
    );
    assert_eq!(servers.charts.requests().len(), 1);
}

#[test]
fn scan_lists_chart_references_with_their_format_names() {
    let servers = Servers::start();
    let case = cases_dir().join("argocd-sources-oci-and-http");
    let dir = tempfile::tempdir().unwrap();
    let mut files: Vec<(String, String)> = text_tree(&servers, &case.join("input"))
        .into_iter()
        .map(|(p, b)| (p, String::from_utf8(b).unwrap()))
        .collect();
    for extra in [
        "helmrelease-oci",
        "ocirepository-tag",
        "kustomize-helmcharts",
        "chart-dependencies",
    ] {
        for (p, b) in text_tree(&servers, &cases_dir().join(extra).join("input")) {
            files.push((format!("{extra}/{p}"), String::from_utf8(b).unwrap()));
        }
    }
    let config = servers.fill(
        "registries:\n  - { host: \"{{REGISTRY}}\", insecure: true }\ncharts:\n\
         - { name: podinfo, repository: \"oci://{{REGISTRY}}/charts\", chart: podinfo, policy: { semver: \"^6\" } }\n\
         - { name: redis, repository: \"oci://{{REGISTRY}}/charts\", chart: redis, policy: { semver: \"^17\" } }\n\
         - { name: web, repository: \"{{CHARTS}}\", chart: web, policy: { semver: \"^1\" } }\n",
    );
    files.push((".image-updater.yaml".into(), config));
    write_files(dir.path(), &files);
    let out = run_bin(
        &["scan", dir.path().to_str().unwrap(), "--output", "json"],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", common::output_text(&out));
    let json = common::output_json(&out);
    let refs = json["references"].as_array().unwrap();
    let mut formats: Vec<&str> = refs.iter().map(|r| r["format"].as_str().unwrap()).collect();
    // Each chart reference names its chart and the entry governing it; the git source of the
    // Argo CD Application and the file:// dependency are no chart references.
    let line = |r: &serde_json::Value| {
        format!(
            "{}:{} {} {} {}",
            r["file"].as_str().unwrap(),
            r["line"],
            r["format"].as_str().unwrap(),
            servers.unfill(r["image"].as_str().unwrap()),
            r["policy"].as_str().unwrap_or("-")
        )
    };
    let listed: Vec<String> = refs.iter().map(line).collect();
    assert_eq!(
        listed,
        [
            "argocd/app.yaml:9 argocd-chart {{CHARTS}}/web web",
            "argocd/app.yaml:14 argocd-chart {{REGISTRY}}/charts/redis redis",
            "chart-dependencies/charts/app/Chart.yaml:6 chart-dependency {{REGISTRY}}/charts/redis redis",
            "chart-dependencies/charts/app/Chart.yaml:10 chart-dependency {{CHARTS}}/web web",
            "helmrelease-oci/clusters/prod/podinfo.yaml:11 helmrelease {{REGISTRY}}/charts/podinfo podinfo",
            "kustomize-helmcharts/base/kustomization.yaml:6 kustomize-helmchart {{CHARTS}}/web web",
            "kustomize-helmcharts/base/kustomization.yaml:10 kustomize-helmchart {{REGISTRY}}/charts/redis redis",
            "ocirepository-tag/apps/podinfo.yaml:13 ocirepository {{REGISTRY}}/charts/podinfo podinfo",
        ]
    );
    formats.sort();
    formats.dedup();
    assert_eq!(
        formats,
        [
            "argocd-chart",
            "chart-dependency",
            "helmrelease",
            "kustomize-helmchart",
            "ocirepository"
        ]
    );
}

#[test]
fn bad_chart_entries_are_config_errors_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    for (config, line, what) in [
        (
            "charts:\n  - name: podinfo\n    chart: podinfo\n    policy: { semver: \"^6\" }\n",
            4,
            "repository",
        ),
        (
            "charts:\n  - name: podinfo\n    repository: s3://bucket/charts\n    chart: podinfo\n    policy: { semver: \"^6\" }\n",
            3,
            "expected oci://REGISTRY/PATH or https://HOST/PATH",
        ),
        (
            "charts:\n  - name: podinfo\n    repository: oci://ghcr.io/x\n    chart: podinfo\n    policy: { digest: latest }\n",
            5,
            "not a digest",
        ),
    ] {
        std::fs::write(dir.path().join(".image-updater.yaml"), config).unwrap();
        let out = run_bin(&["plan", dir.path().to_str().unwrap()], &[]);
        assert_eq!(out.status.code(), Some(2), "{}", common::output_text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!(".image-updater.yaml:{line}")) && err.contains(what),
            "{config}\n{err}"
        );
    }
}
