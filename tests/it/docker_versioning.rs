//! `versioning: docker` (issue 18), as Renovate's docker versioning: the current tag's suffix
//! is kept (`1.25.0-alpine` moves only to `-alpine` tags) and so is its precision (`1.26`
//! moves to `1.27`, never `1.27.3`), a `v` prefix is kept, a `policy.semver` range still
//! restricts (judged on the numbers: `1.25` as 1.25.0), and `latest` is never chosen. `run`
//! rewrites a repo byte for byte, and `tags --versioning docker --current TAG` shows the same
//! choice. Against the real registry and a git remote.

use crate::common;
use common::{image_updater, output_json as json, output_text as text, Registry};

const DEPLOY: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: edge
spec:
  template:
    spec:
      containers:
        - name: proxy          # suffix and three parts kept; ^1 holds it below 2
          image: {{REGISTRY}}/library/nginx:1.25.0-alpine
        - name: proxy-minor    # two parts kept
          image: {{REGISTRY}}/library/nginx:1.26
        - name: tool           # the v prefix kept, ~1.4 on the numbers
          image: {{REGISTRY}}/acme/tool:v1.4.2
        - name: node           # one part and the suffix kept
          image: {{REGISTRY}}/library/node:18-alpine
        - name: cache          # latest: not a version, left alone
          image: {{REGISTRY}}/library/redis:latest
";

const CONFIG: &str = "\
registries:
  - { host: \"{{REGISTRY}}\", insecure: true }
outdated: false
images:
  - name: nginx
    image: {{REGISTRY}}/library/nginx
    versioning: docker
    policy: { semver: \"^1\" }
  - name: tool
    image: {{REGISTRY}}/acme/tool
    versioning: docker
    policy: { semver: \"~1.4\" }
  - name: node
    image: {{REGISTRY}}/library/node
    versioning: docker
  - name: redis
    image: {{REGISTRY}}/library/redis
    versioning: docker
";

const NGINX: &[&str] = &[
    "1.25.0-alpine",
    "1.25.3-alpine",
    "1.27.2-alpine",
    "2.0.0-alpine",
    "1.27.3",
    "1.27",
    "1.26",
    "1.27.1-bookworm",
    "latest",
    "stable-alpine",
];

fn registry() -> Registry {
    let registry = Registry::start();
    for (repo, tags) in [
        ("library/nginx", NGINX),
        (
            "acme/tool",
            &["v1.4.2", "v1.4.3", "v1.5.0", "v2.0.0", "1.4.9", "main"][..],
        ),
        (
            "library/node",
            &[
                "18",
                "20",
                "22",
                "22.1.0",
                "18-alpine",
                "20-alpine",
                "23-alpine",
                "latest",
            ],
        ),
        ("library/redis", &["7.2", "7.4", "8.0", "latest"]),
    ] {
        registry.push_image(repo, tags);
    }
    registry
}

#[test]
fn run_keeps_suffix_precision_and_prefix_and_the_range_still_restricts() {
    let registry = registry();
    let addr = &registry.addr;
    let fill = |s: &str| s.replace("{{REGISTRY}}", addr);
    let (_tmp, bare, work) = common::remote_and_clone(&[
        ("apps/deploy.yaml".to_string(), fill(DEPLOY)),
        (".image-updater.yaml".to_string(), fill(CONFIG)),
    ]);
    let work_s = work.to_str().unwrap();
    let run = image_updater(&["run", work_s, "--output", "json"]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let report = json(&run);
    let moves: Vec<(&str, &str, &str)> = report["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["policy"].as_str().unwrap(),
                u["from"].as_str().unwrap(),
                u["to"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        moves,
        [
            ("nginx", "1.25.0-alpine", "1.27.2-alpine"),
            ("nginx", "1.26", "1.27"),
            ("tool", "v1.4.2", "v1.4.3"),
            ("node", "18-alpine", "23-alpine"),
        ],
        "{report:#}"
    );
    let want = fill(DEPLOY)
        .replace("nginx:1.25.0-alpine", "nginx:1.27.2-alpine")
        .replace("nginx:1.26\n", "nginx:1.27\n")
        .replace("tool:v1.4.2", "tool:v1.4.3")
        .replace("node:18-alpine", "node:23-alpine");
    assert_eq!(
        std::fs::read_to_string(work.join("apps/deploy.yaml")).unwrap(),
        want
    );
    let head = common::git(&bare, &["rev-parse", "refs/heads/main"]);
    assert_eq!(report["commit"].as_str(), Some(head.trim()));
    let again = json(&image_updater(&["run", work_s, "--output", "json"]));
    assert_eq!(again["updates"], serde_json::json!([]), "{again}");
}

#[test]
fn tags_with_docker_versioning_shows_the_same_choice() {
    let registry = registry();
    let image = format!("{}/library/nginx", registry.addr);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cfg.yaml");
    std::fs::write(
        &config,
        format!(
            "registries:\n  - {{ host: \"{}\", insecure: true }}\n",
            registry.addr
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let tags = |extra: &[&str]| {
        let mut args = vec!["--config", config, "tags", image.as_str()];
        args.extend(extra);
        image_updater(&args)
    };
    // The run's choice for 1.25.0-alpine under ^1.
    let o = tags(&[
        "--versioning",
        "docker",
        "--current",
        "1.25.0-alpine",
        "--semver",
        "^1",
        "-v",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    // Candidates best first, the pick marked; then the dropped tags (in the registry's
    // order), each with why; then the pick and the run's move.
    assert_eq!(
        lines[..3],
        ["* 1.27.2-alpine", "  1.25.3-alpine", "  1.25.0-alpine"],
        "{out}"
    );
    let mut dropped = lines[3..lines.len() - 2].to_vec();
    dropped.sort();
    assert_eq!(
        dropped,
        [
            "- 1.26  (not of the current tag's shape (3 parts, suffix -alpine))",
            "- 1.27  (not of the current tag's shape (3 parts, suffix -alpine))",
            "- 1.27.1-bookworm  (not of the current tag's shape (3 parts, suffix -alpine))",
            "- 1.27.3  (not of the current tag's shape (3 parts, suffix -alpine))",
            "- 2.0.0-alpine  (outside range ^1 (read as 2.0.0))",
            "- latest  (not a version)",
            "- stable-alpine  (not a version)",
        ],
        "{out}"
    );
    assert_eq!(
        lines[lines.len() - 2..],
        [
            "latest: 1.27.2-alpine",
            "current: 1.25.0-alpine -> 1.27.2-alpine"
        ],
        "{out}"
    );
    // Precision kept, as JSON.
    let o = tags(&[
        "--versioning",
        "docker",
        "--current",
        "1.26",
        "--output",
        "json",
    ]);
    assert_eq!(
        json(&o),
        serde_json::json!({
            "image": image, "candidates": ["1.27", "1.26"], "latest": "1.27",
            "current": "1.26", "update": "1.27"
        })
    );
    // Already the newest of its shape: stays.
    let o = tags(&["--versioning", "docker", "--current", "1.27"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).ends_with("current: 1.27 (stays)\n"),
        "{}",
        text(&o)
    );
    // Semver versioning with a current tag: any precision and suffix may replace it.
    let o = tags(&["--current", "1.26", "--output", "json"]);
    assert_eq!(json(&o)["update"], "1.27.3", "{}", text(&o));
    // Docker versioning needs the current tag, and a kind that reads versions.
    for (args, want) in [
        (&["--versioning", "docker"][..], "--current"),
        (
            &[
                "--versioning",
                "docker",
                "--current",
                "1.26",
                "--numerical",
                "asc",
            ],
            "not numerical",
        ),
    ] {
        let o = tags(args);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(text(&o).contains(want), "{want}: {}", text(&o));
    }
}
