//! Policies by prefix (issue 18): `images: [{ image: "REGISTRY/acme/*" }]` governs every
//! repository under the prefix, each with its own tag list (listed once) and pick; an exact
//! entry beats a prefix, a longer prefix beats a shorter one, and `image: "*"` governs only
//! what nothing else does. `scan` names the governing rule. A `*` anywhere but at the end is a
//! config error naming the file and line. Against the real registry and a git remote; trees
//! compared byte for byte.

use crate::common;
use common::{image_updater, output_json as json, output_text as text, Registry};

use std::path::Path;

/// A registry holding `images` (repository, tags), and a clone of a remote holding `files` and
/// `config` (`{{REGISTRY}}` filled in everywhere).
struct Scenario {
    tmp: tempfile::TempDir,
    registry: Registry,
    bare: std::path::PathBuf,
    work: std::path::PathBuf,
}

fn scenario(images: &[(&str, &[&str])], files: &[(&str, &str)], config: &str) -> Scenario {
    let registry = Registry::start();
    for (repo, tags) in images {
        registry.push_image(repo, tags);
    }
    let fill = |s: &str| s.replace("{{REGISTRY}}", &registry.addr);
    let mut all: Vec<(String, String)> = files
        .iter()
        .map(|(p, t)| (p.to_string(), fill(t)))
        .collect();
    all.push((".image-updater.yaml".into(), fill(config)));
    let (tmp, bare, work) = common::remote_and_clone(&all);
    Scenario {
        tmp,
        registry,
        bare,
        work,
    }
}

/// How many tag lists the registry was asked for, by repository.
fn tag_lists(registry: &Registry) -> Vec<(String, usize)> {
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for line in registry.log().lines() {
        if let Some(at) = line.find("\"GET /v2/") {
            let path = &line[at + "\"GET /v2/".len()..];
            if let Some(end) = path.find("/tags/list") {
                *counts.entry(path[..end].to_string()).or_default() += 1;
            }
        }
    }
    counts.into_iter().collect()
}

fn read(work: &Path, rel: &str) -> String {
    std::fs::read_to_string(work.join(rel)).unwrap()
}

/// `(policy, image without the registry, from, to)` of each update, in report order.
fn updates(report: &serde_json::Value, addr: &str) -> Vec<(String, String, String, String)> {
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_string();
    report["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                s(&u["policy"]),
                s(&u["image"]).replace(&format!("{addr}/"), ""),
                s(&u["from"]),
                s(&u["to"]),
            )
        })
        .collect()
}

const SHOP: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop
spec:
  template:
    spec:
      containers:
        - name: web
          image: {{REGISTRY}}/acme/web:1.0.0
        - name: api
          image: \"{{REGISTRY}}/acme/api:1.0.0\"  # quoted
        - name: worker
          image: {{REGISTRY}}/acme/worker:1.0.0
        - name: tool
          image: {{REGISTRY}}/other/tool:1.0.0
      initContainers:
        - name: migrate
          image: {{REGISTRY}}/acme/web:1.1.0
";

#[test]
fn one_prefix_line_governs_three_repositories_each_listed_once() {
    let s = scenario(
        &[
            ("acme/web", &["1.0.0", "1.1.0", "1.2.0", "2.0.0"]),
            ("acme/api", &["1.0.0", "1.0.5"]),
            ("acme/worker", &["1.0.0", "1.3.0", "1.4.0-rc.1"]),
            ("other/tool", &["1.0.0", "1.9.0"]),
        ],
        &[("apps/shop.yaml", SHOP)],
        "registries:\n  - { host: \"{{REGISTRY}}\", insecure: true }\n\
         outdated: false\n\
         images:\n  - name: acme\n    image: \"{{REGISTRY}}/acme/*\"\n    policy: { semver: \"^1\" }\n",
    );
    let work = s.work.to_str().unwrap();
    let addr = &s.registry.addr;
    let run = image_updater(&["run", work, "--output", "json"]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let report = json(&run);
    let u = |p: &str, i: &str, f: &str, t: &str| (p.into(), i.into(), f.into(), t.into());
    assert_eq!(
        updates(&report, addr),
        [
            u("acme/web", "acme/web", "1.0.0", "1.2.0"),
            u("acme/api", "acme/api", "1.0.0", "1.0.5"),
            u("acme/worker", "acme/worker", "1.0.0", "1.3.0"),
            u("acme/web", "acme/web", "1.1.0", "1.2.0"),
        ],
        "{report:#}"
    );
    assert_eq!(
        read(&s.work, "apps/shop.yaml"),
        SHOP.replace("{{REGISTRY}}", addr)
            .replace("acme/web:1.0.0", "acme/web:1.2.0")
            .replace("acme/web:1.1.0", "acme/web:1.2.0")
            .replace("acme/api:1.0.0", "acme/api:1.0.5")
            .replace("acme/worker:1.0.0", "acme/worker:1.3.0")
    );
    // One tag list per governed repository; the ungoverned one is not asked for.
    let lists = tag_lists(&s.registry);
    let lists: Vec<(&str, usize)> = lists.iter().map(|(n, c)| (n.as_str(), *c)).collect();
    assert_eq!(
        lists,
        [("acme/api", 1), ("acme/web", 1), ("acme/worker", 1)]
    );
    // Pushed, and a second run has nothing to do.
    let head = common::git(&s.bare, &["rev-parse", "refs/heads/main"]);
    assert_eq!(report["commit"].as_str(), Some(head.trim()), "{report}");
    let again = json(&image_updater(&["run", work, "--output", "json"]));
    assert_eq!(again["updates"], serde_json::json!([]), "{again}");
    drop(s.tmp);
}

const PRECEDENCE_CONFIG: &str = "\
registries:
  - { host: \"{{REGISTRY}}\", insecure: true }
outdated: false
images:
  - name: all
    image: \"*\"
    policy: { update: minor }
  - name: acme
    image: \"{{REGISTRY}}/acme/*\"
    policy: { semver: \"^1\" }
  - name: team
    image: \"{{REGISTRY}}/acme/team/*\"
    policy: { semver: \"~1.0\" }
  - name: web
    image: {{REGISTRY}}/acme/web
    policy: { semver: \"~1.0\" }
";

const PRECEDENCE: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop
spec:
  template:
    spec:
      containers:
        - name: web
          image: {{REGISTRY}}/acme/web:1.0.0
        - name: api
          image: {{REGISTRY}}/acme/api:1.0.0
        - name: worker
          image: {{REGISTRY}}/acme/team/worker:1.0.0
        - name: proxy
          image: {{REGISTRY}}/library/nginx:1.25.3
";

fn precedence() -> Scenario {
    scenario(
        &[
            ("acme/web", &["1.0.0", "1.0.3", "1.2.0", "2.0.0"]),
            ("acme/api", &["1.0.0", "1.2.0", "2.0.0"]),
            ("acme/team/worker", &["1.0.0", "1.0.2", "1.5.0"]),
            ("library/nginx", &["1.25.3", "1.27.1", "2.0.0"]),
        ],
        &[("apps/shop.yaml", PRECEDENCE)],
        PRECEDENCE_CONFIG,
    )
}

#[test]
fn exact_beats_prefix_longer_prefix_beats_shorter_and_star_is_weakest() {
    let s = precedence();
    let work = s.work.to_str().unwrap();
    let addr = &s.registry.addr;
    let run = image_updater(&["run", work, "--output", "json"]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let report = json(&run);
    let u = |p: String, i: &str, f: &str, t: &str| (p, i.into(), f.into(), t.into());
    assert_eq!(
        updates(&report, addr),
        [
            u("web".into(), "acme/web", "1.0.0", "1.0.3"),
            u("acme/api".into(), "acme/api", "1.0.0", "1.2.0"),
            u("team/worker".into(), "acme/team/worker", "1.0.0", "1.0.2"),
            u(
                format!("all/{addr}/library/nginx"),
                "library/nginx",
                "1.25.3",
                "1.27.1"
            ),
        ],
        "{report:#}"
    );
    assert_eq!(
        read(&s.work, "apps/shop.yaml"),
        PRECEDENCE
            .replace("{{REGISTRY}}", addr)
            .replace("web:1.0.0", "web:1.0.3")
            .replace("api:1.0.0", "api:1.2.0")
            .replace("worker:1.0.0", "worker:1.0.2")
            .replace("nginx:1.25.3", "nginx:1.27.1")
    );
}

#[test]
fn scan_names_the_rule_that_governs_each_reference() {
    let s = precedence();
    let work = s.work.to_str().unwrap();
    let addr = &s.registry.addr;
    let scan = json(&image_updater(&["scan", work, "--output", "json"]));
    let rows: Vec<(String, String, String)> = scan["references"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let s = |v: &serde_json::Value| v.as_str().unwrap_or("-").replace(addr.as_str(), "R");
            (s(&r["image"]), s(&r["policy"]), s(&r["rule"]))
        })
        .collect();
    let row = |i: &str, p: &str, r: &str| (i.to_string(), p.to_string(), r.to_string());
    assert_eq!(
        rows,
        [
            row("R/acme/web", "web", "-"),
            row("R/acme/api", "acme/api", "R/acme/*"),
            row("R/acme/team/worker", "team/worker", "R/acme/team/*"),
            row("R/library/nginx", "all/R/library/nginx", "*"),
        ],
        "{scan:#}"
    );
    // The text table says it too, in the POLICY column.
    let o = image_updater(&["scan", work]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8(o.stdout)
        .unwrap()
        .replace(addr.as_str(), "R");
    for want in [
        "acme/api (rule R/acme/*)",
        "team/worker (rule R/acme/team/*)",
        "all/R/library/nginx (rule *)",
    ] {
        assert!(out.contains(want), "{want}:\n{out}");
    }
    let web = out.lines().find(|l| l.contains("R/acme/web")).unwrap();
    assert!(web.trim_end().ends_with(" web"), "{web}");
    // scan asks the registry for nothing.
    assert_eq!(tag_lists(&s.registry), []);
}

#[test]
fn a_star_anywhere_but_the_last_segment_is_a_config_error_at_its_line() {
    for (image, line) in [
        ("{{REGISTRY}}/*/web", 5),
        ("{{REGISTRY}}/acme*", 5),
        ("{{REGISTRY}}/acme/**", 5),
    ] {
        let s = scenario(
            &[],
            &[("apps/shop.yaml", SHOP)],
            &format!(
                "registries:\n  - {{ host: \"{{{{REGISTRY}}}}\", insecure: true }}\n\
                 images:\n  - name: acme\n    image: \"{image}\"\n    policy: {{ semver: \"^1\" }}\n"
            ),
        );
        for cmd in ["scan", "plan"] {
            let o = image_updater(&[cmd, s.work.to_str().unwrap()]);
            let out = text(&o);
            assert_eq!(o.status.code(), Some(2), "{image}: {out}");
            assert!(
                out.contains(&format!(".image-updater.yaml:{line}:"))
                    && out.contains("'*' may only be the whole image"),
                "{image}: {out}"
            );
        }
    }
}
