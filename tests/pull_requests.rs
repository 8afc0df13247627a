//! `mode: pull-request` end to end: the real registry, a real git remote over file://, and a
//! stateful fake of the GitHub REST API (wiremock) that checks every call's method, path,
//! headers and body and answers in GitHub's shapes, 422 on a duplicate included. Four runs:
//! create, unchanged, a newer tag moves the same pull request, and a hand-merged update closes it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use common::{bare_repo_with_files, git, Registry};
use serde_json::{json, Value};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const BIN: &str = env!("CARGO_BIN_EXE_image-updater");
const TOKEN: &str = "ghp-test-token-never-printed";

#[derive(Default)]
struct Github {
    prs: Vec<Value>,
    comments: Vec<(u64, String)>,
    labels: Vec<(u64, Vec<String>)>,
    reviewers: Vec<(u64, Vec<String>)>,
    problems: Vec<String>,
}

#[derive(Clone, Default)]
struct Fake(Arc<Mutex<Github>>);

fn pr_json(number: u64, head: &str, base: &str, title: &str, body: &str) -> Value {
    json!({
        "number": number,
        "node_id": format!("PR_{number}"),
        "html_url": format!("https://github.example/acme/infra/pull/{number}"),
        "state": "open",
        "draft": false,
        "title": title,
        "body": body,
        "merged_at": null,
        "head": {"ref": head, "label": format!("acme:{head}"), "sha": "0"},
        "base": {"ref": base, "label": format!("acme:{base}"), "sha": "0"},
    })
}

impl Respond for Fake {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut gh = self.0.lock().unwrap();
        let h = |name: &str| {
            req.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        if h("authorization") != format!("Bearer {TOKEN}") {
            return ResponseTemplate::new(401).set_body_json(json!({"message": "Bad credentials"}));
        }
        if h("user-agent").is_empty() {
            gh.problems.push(format!(
                "{} {} without User-Agent",
                req.method,
                req.url.path()
            ));
            return ResponseTemplate::new(403)
                .set_body_json(json!({"message": "User-Agent required"}));
        }
        if !h("accept").contains("application/vnd.github+json") {
            gh.problems.push(format!(
                "{} {} with Accept {:?}",
                req.method,
                req.url.path(),
                h("accept")
            ));
        }
        let path = req.url.path().to_string();
        let query: Vec<(String, String)> = req
            .url
            .query_pairs()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let q = |k: &str| query.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone());
        let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (req.method.as_str(), segs.as_slice()) {
            ("GET", ["repos", "acme", "infra", "pulls"]) => {
                let head = q("head").unwrap_or_default();
                let list: Vec<Value> = gh
                    .prs
                    .iter()
                    .filter(|p| p["state"] == "open")
                    .filter(|p| format!("acme:{}", p["head"]["ref"].as_str().unwrap()) == head)
                    .filter(|p| q("base").is_none_or(|b| p["base"]["ref"] == b.as_str()))
                    .cloned()
                    .collect();
                if q("state").as_deref() != Some("open") {
                    gh.problems
                        .push(format!("list without state=open: {query:?}"));
                }
                ResponseTemplate::new(200).set_body_json(Value::Array(list))
            }
            ("POST", ["repos", "acme", "infra", "pulls"]) => {
                let head = body["head"].as_str().unwrap_or_default().to_string();
                for key in ["title", "head", "base", "body"] {
                    if !body[key].is_string() {
                        gh.problems.push(format!("create without {key}: {body}"));
                    }
                }
                if gh
                    .prs
                    .iter()
                    .any(|p| p["state"] == "open" && p["head"]["ref"] == head.as_str())
                {
                    return ResponseTemplate::new(422).set_body_json(json!({
                        "message": "Validation Failed",
                        "errors": [{"resource": "PullRequest", "code": "custom",
                                    "message": format!("A pull request already exists for acme:{head}.")}],
                    }));
                }
                let number = gh.prs.len() as u64 + 1;
                let pr = pr_json(
                    number,
                    &head,
                    body["base"].as_str().unwrap_or_default(),
                    body["title"].as_str().unwrap_or_default(),
                    body["body"].as_str().unwrap_or_default(),
                );
                gh.prs.push(pr.clone());
                ResponseTemplate::new(201).set_body_json(pr)
            }
            ("PATCH", ["repos", "acme", "infra", "pulls", n]) => {
                let n: u64 = n.parse().unwrap();
                let Some(pr) = gh.prs.iter_mut().find(|p| p["number"] == n) else {
                    return ResponseTemplate::new(404)
                        .set_body_json(json!({"message": "Not Found"}));
                };
                for key in ["title", "body", "state"] {
                    if let Some(v) = body.get(key) {
                        pr[key] = v.clone();
                    }
                }
                ResponseTemplate::new(200).set_body_json(pr.clone())
            }
            ("POST", ["repos", "acme", "infra", "issues", n, "labels"]) => {
                let labels = body["labels"].as_array().cloned().unwrap_or_default();
                gh.labels.push((
                    n.parse().unwrap(),
                    labels
                        .iter()
                        .map(|l| l.as_str().unwrap().to_string())
                        .collect(),
                ));
                ResponseTemplate::new(200).set_body_json(json!([]))
            }
            ("POST", ["repos", "acme", "infra", "pulls", n, "requested_reviewers"]) => {
                let r = body["reviewers"].as_array().cloned().unwrap_or_default();
                gh.reviewers.push((
                    n.parse().unwrap(),
                    r.iter().map(|l| l.as_str().unwrap().to_string()).collect(),
                ));
                ResponseTemplate::new(201).set_body_json(json!({}))
            }
            ("POST", ["repos", "acme", "infra", "issues", n, "comments"]) => {
                gh.comments.push((
                    n.parse().unwrap(),
                    body["body"].as_str().unwrap_or_default().to_string(),
                ));
                ResponseTemplate::new(201).set_body_json(json!({"id": 1}))
            }
            (m, _) => {
                gh.problems.push(format!("unexpected {m} {path}"));
                ResponseTemplate::new(404).set_body_json(json!({"message": "Not Found"}))
            }
        }
    }
}

fn fixture(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(case)
}

fn files_of(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    p.strip_prefix(dir).unwrap().to_string_lossy().into_owned(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

fn run(work: &Path) -> Output {
    Command::new(BIN)
        .args(["run", work.to_str().unwrap(), "--output", "json"])
        .env("GITHUB_TOKEN", TOKEN)
        .env_remove("IMAGE_UPDATER_GIT_TOKEN")
        .env_remove("IMAGE_UPDATER_FORGE_TOKEN")
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITHUB_API_URL")
        .env_remove("GITLAB_CI")
        .output()
        .unwrap()
}

fn report(o: &Output) -> Value {
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!all.contains(TOKEN), "the token leaked:\n{all}");
    assert_eq!(o.status.code(), Some(0), "{all}");
    serde_json::from_slice(&o.stdout).unwrap()
}

fn actions(r: &Value) -> Vec<(String, u64, String)> {
    let mut v: Vec<(String, u64, String)> = r["pull_requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["branch"].as_str().unwrap().to_string(),
                p["number"].as_u64().unwrap(),
                p["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn github_pull_requests_are_created_kept_moved_and_closed() {
    let registry = Registry::start();
    for (repo, tags) in [
        ("acme/web", vec!["1.0.0", "1.1.0", "1.2.0"]),
        ("acme/api", vec!["v2.4.0", "2.4.2"]),
        ("acme/db", vec!["2.0.0"]),
    ] {
        registry.push_image(repo, &tags);
    }
    let server = MockServer::start().await;
    let fake = Fake::default();
    Mock::given(wiremock::matchers::any())
        .respond_with(fake.clone())
        .mount(&server)
        .await;

    let tmp = tempfile::tempdir().unwrap();
    let config = std::fs::read_to_string(fixture("commit-basic/config.yaml"))
        .unwrap()
        .replace("{{REGISTRY}}", &registry.addr)
        .replace(
            "delivery:\n  mode: commit\n",
            &format!(
                "delivery:\n  mode: pull-request\n  forge: github\n  api_url: {}\n  repository: acme/infra\n  pull_request: {{ labels: [dependencies], reviewers: [alice] }}\n",
                server.uri()
            ),
        );
    let mut files = files_of(&fixture("commit-basic/input"));
    files.push((".image-updater.yaml".into(), config.into_bytes()));
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_slice()))
        .collect();
    let bare = bare_repo_with_files(&tmp.path().join("remote.git"), &refs);
    let url = format!("file://{}", bare.display());
    let work = common::clone(&url, &tmp.path().join("work"));
    let main_before = git(&bare, &["rev-parse", "main"]);

    // 1: two pull requests, one per image, with labels and reviewers; main untouched.
    let w = work.clone();
    let r = report(&tokio::task::spawn_blocking(move || run(&w)).await.unwrap());
    assert_eq!(
        actions(&r),
        [
            ("image-updater/api".into(), 1, "created".into()),
            ("image-updater/web".into(), 2, "created".into())
        ]
    );
    assert_eq!(
        git(&bare, &["rev-parse", "main"]),
        main_before,
        "the base is not pushed to"
    );
    assert_eq!(
        git(&work, &["status", "--porcelain"]),
        "",
        "the work tree is not written"
    );
    let web_file = git(&bare, &["show", "image-updater/web:apps/web.yaml"]);
    assert_eq!(
        web_file.as_bytes(),
        std::fs::read(fixture("commit-basic/expected/apps/web.yaml")).unwrap()
    );
    let multi_on_web = git(&bare, &["show", "image-updater/web:apps/multi.yaml"]);
    assert_eq!(
        multi_on_web.as_bytes(),
        std::fs::read(fixture("commit-basic/input/apps/multi.yaml")).unwrap(),
        "the web branch holds only web's update"
    );
    assert_eq!(
        git(&bare, &["rev-parse", "image-updater/web~1"]),
        main_before,
        "branched from the base"
    );
    {
        let gh = fake.0.lock().unwrap();
        assert!(gh.problems.is_empty(), "{:?}", gh.problems);
        assert_eq!(gh.prs.len(), 2);
        let web = gh
            .prs
            .iter()
            .find(|p| p["head"]["ref"] == "image-updater/web")
            .unwrap();
        assert_eq!(web["base"]["ref"], "main");
        assert_eq!(web["title"], "chore(images): update web to 1.2.0");
        let body = web["body"].as_str().unwrap();
        assert!(body.contains("| `registry.example.com/acme/web` | `1.0.0` | `1.2.0` | `apps/web.yaml:11`, `apps/web.yaml:14` |"), "{body}");
        assert!(body.contains("<!-- image-updater -->"), "{body}");
        assert_eq!(gh.labels.len(), 2);
        assert_eq!(gh.labels[0].1, ["dependencies"]);
        assert_eq!(gh.reviewers[0].1, ["alice"]);
    }
    let web_tip = git(&bare, &["rev-parse", "image-updater/web"]);

    // 2: nothing new: the same two, unchanged, nothing pushed.
    let w = work.clone();
    let r = report(&tokio::task::spawn_blocking(move || run(&w)).await.unwrap());
    assert_eq!(
        actions(&r),
        [
            ("image-updater/api".into(), 1, "unchanged".into()),
            ("image-updater/web".into(), 2, "unchanged".into())
        ]
    );
    assert_eq!(git(&bare, &["rev-parse", "image-updater/web"]), web_tip);
    assert_eq!(
        fake.0.lock().unwrap().prs.len(),
        2,
        "never a second pull request"
    );

    // 3: a newer web tag: the same pull request moves to it.
    registry.push_image("acme/web", &["1.2.1"]);
    let w = work.clone();
    let r = report(&tokio::task::spawn_blocking(move || run(&w)).await.unwrap());
    assert_eq!(
        actions(&r),
        [
            ("image-updater/api".into(), 1, "unchanged".into()),
            ("image-updater/web".into(), 2, "updated".into())
        ]
    );
    assert_ne!(git(&bare, &["rev-parse", "image-updater/web"]), web_tip);
    assert!(git(&bare, &["show", "image-updater/web:apps/web.yaml"]).contains("acme/web:1.2.1"));
    {
        let gh = fake.0.lock().unwrap();
        assert_eq!(gh.prs.len(), 2);
        assert_eq!(gh.prs[1]["title"], "chore(images): update web to 1.2.1");
    }

    // 4: someone merges web's update by hand: our web pull request is closed, saying why.
    let web_path = work.join("apps/web.yaml");
    let merged = std::fs::read_to_string(&web_path)
        .unwrap()
        .replace("acme/web:1.0.0", "acme/web:1.2.1");
    std::fs::write(&web_path, merged).unwrap();
    git(&work, &["commit", "-qam", "bump web by hand"]);
    git(&work, &["push", "-q", "origin", "main"]);
    let w = work.clone();
    let r = report(&tokio::task::spawn_blocking(move || run(&w)).await.unwrap());
    assert_eq!(
        actions(&r),
        [
            ("image-updater/api".into(), 1, "unchanged".into()),
            ("image-updater/web".into(), 2, "closed".into())
        ]
    );
    let gh = fake.0.lock().unwrap();
    assert_eq!(gh.prs[1]["state"], "closed");
    assert!(
        gh.comments
            .iter()
            .any(|(n, c)| *n == 2 && c.contains("no longer needed")),
        "{:?}",
        gh.comments
    );
    assert!(gh.problems.is_empty(), "{:?}", gh.problems);
}
