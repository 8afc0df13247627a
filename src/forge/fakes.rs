//! Stateful fakes of the six forge APIs (wiremock responders), shared by the forge unit
//! tests (`cfg(test)` in the library) and the integration tests (`tests/common/forges.rs`
//! includes this file).
//!
//! Each fake remembers its pull/merge requests, notes its calls, and checks every call against
//! the forge's documented API: method, path (GitLab's URL-encoded project path or numeric id),
//! query, auth header and JSON body. What a real forge would refuse is answered with that
//! forge's error shape (GitHub 422, GitLab, Gitea, Bitbucket Data Center and Azure DevOps 409,
//! Bitbucket Cloud 400 on a duplicate; 401; 404) and, when
//! the client is at fault, written down in `problems` for the test to assert empty.
//!
//! - [`GithubFake`]: REST v3 (`Authorization: Bearer`, `User-Agent`, `Accept: application/vnd.github+json`)
//!   and the GraphQL auto-merge mutation, repository `acme/infra`.
//! - [`GitlabFake`]: API v4 (`PRIVATE-TOKEN` or `Authorization: Bearer`), project `acme/platform/infra` = id 42.
//! - [`GiteaFake`]: API v1 (`Authorization: token`), repository `acme/infra`.
//! - [`BitbucketFake`]: Bitbucket Cloud API 2.0 (`Authorization: Bearer`), repository `acme/infra`.
//! - [`BitbucketDcFake`]: Bitbucket Data Center REST (`Authorization: Bearer`, versioned edits),
//!   repository `ACME/infra`.
//! - [`AzureFake`]: Azure DevOps REST 7.1 (`Authorization: Basic`, `api-version`), organization
//!   `acme`, project `platform`, repository `infra`.
//! - [`ForgeFake`]: any of the six, read in one shape, for scenarios run on every forge.
//!
//! Only external crates are used here, so the file compiles in both places.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{json, Map, Value};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Mount `responder` for every request to `server`.
pub async fn mount_fake<R: Respond + 'static>(server: &MockServer, responder: R) {
    Mock::given(wiremock::matchers::any())
        .respond_with(responder)
        .mount(server)
        .await;
}

// ---------------------------------------------------------------------------------------------
// Shared request plumbing
// ---------------------------------------------------------------------------------------------

/// What the fakes read from a request.
struct Call {
    method: String,
    /// The path as sent (percent-encoding kept).
    path: String,
    query: Vec<(String, String)>,
    headers: HashMap<String, String>,
    body: Value,
    /// Whether the body is absent, or JSON sent as `application/json`.
    body_ok: bool,
}

impl Call {
    fn of(req: &Request) -> Call {
        let headers = req
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_ascii_lowercase(),
                    v.to_str().unwrap_or("").to_string(),
                )
            })
            .collect::<HashMap<_, _>>();
        let body: Value = if req.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&req.body).unwrap_or(Value::String("<not JSON>".into()))
        };
        let json_type = headers
            .get("content-type")
            .is_some_and(|t| t.starts_with("application/json"));
        let body_ok =
            req.body.is_empty() || (json_type && body != Value::String("<not JSON>".into()));
        Call {
            method: req.method.to_string(),
            path: req.url.path().to_string(),
            query: req
                .url
                .query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
            headers,
            body,
            body_ok,
        }
    }

    fn q(&self, key: &str) -> Option<String> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    fn h(&self, key: &str) -> &str {
        self.headers.get(key).map_or("", String::as_str)
    }

    fn line(&self) -> String {
        let q: Vec<String> = self.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        if q.is_empty() {
            format!("{} {}", self.method, self.path)
        } else {
            format!("{} {}?{}", self.method, self.path, q.join("&"))
        }
    }

    /// Keys of the JSON object body outside `allowed`.
    fn unknown_keys(&self, allowed: &[&str]) -> Vec<String> {
        match &self.body {
            Value::Object(m) => m
                .keys()
                .filter(|k| !allowed.contains(&k.as_str()))
                .cloned()
                .collect(),
            _ => Vec::new(),
        }
    }

    fn str_field(&self, key: &str) -> Option<&str> {
        self.body.get(key).and_then(Value::as_str)
    }
}

/// Note a problem in `problems` unless the body has string fields `keys` and no key outside
/// `allowed`; also a body not sent as JSON.
fn check_body(problems: &mut Vec<String>, call: &Call, required: &[&str], allowed: &[&str]) {
    if !call.body_ok {
        problems.push(format!(
            "{}: body not sent as application/json (content-type {:?})",
            call.line(),
            call.h("content-type")
        ));
    }
    if !call.body.is_object() {
        problems.push(format!(
            "{}: body is not a JSON object: {}",
            call.line(),
            call.body
        ));
        return;
    }
    for k in required {
        if call.str_field(k).is_none_or(str::is_empty) {
            problems.push(format!("{}: body without {k}: {}", call.line(), call.body));
        }
    }
    let unknown = call.unknown_keys(allowed);
    if !unknown.is_empty() {
        problems.push(format!(
            "{}: undocumented keys {unknown:?}: {}",
            call.line(),
            call.body
        ));
    }
}

/// `list` without the items whose `field` names a branch in `hidden` (each such branch's count
/// goes down by one; at zero it shows again).
fn unhidden(hidden: &mut HashMap<String, usize>, list: Vec<Value>, field: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    let out = list
        .into_iter()
        .filter(|item| {
            let branch = item[field].as_str().unwrap_or_default().to_string();
            match hidden.get(&branch) {
                Some(n) if *n > 0 => {
                    if !seen.contains(&branch) {
                        seen.push(branch);
                    }
                    false
                }
                _ => true,
            }
        })
        .collect();
    for b in seen {
        if let Some(n) = hidden.get_mut(&b) {
            *n -= 1;
        }
    }
    out
}

/// [`unhidden`] for GitHub's and Gitea's pulls, whose branch is `head.ref`.
fn unhidden_ref(hidden: &mut HashMap<String, usize>, list: Vec<Value>) -> Vec<Value> {
    let flat: Vec<Value> = list
        .into_iter()
        .map(|mut p| {
            p["__head"] = p["head"]["ref"].clone();
            p
        })
        .collect();
    unhidden(hidden, flat, "__head")
        .into_iter()
        .map(|mut p| {
            if let Some(m) = p.as_object_mut() {
                m.remove("__head");
            }
            p
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// GitHub
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
pub struct GithubState {
    pub prs: Vec<Value>,
    pub comments: Vec<(u64, String)>,
    pub labels: Vec<(u64, Vec<String>)>,
    pub reviewers: Vec<(u64, Vec<String>)>,
    pub assignees: Vec<(u64, Vec<String>)>,
    /// Numbers of the pull requests whose auto-merge was enabled (GraphQL).
    pub auto_merge: Vec<u64>,
    pub calls: Vec<String>,
    pub problems: Vec<String>,
    /// Head branches left out of the next N listings that would show them.
    pub hidden: HashMap<String, usize>,
    /// How long a listing takes to answer (a busy forge): concurrent runs that both look
    /// before either opens a pull request both try to open it. The answer is what the
    /// listing found when it arrived.
    pub list_delay: Duration,
}

/// GitHub's REST API for the repository `acme/infra`.
#[derive(Clone)]
pub struct GithubFake {
    state: Arc<Mutex<GithubState>>,
    token: String,
}

pub fn github_pr_json(number: u64, head: &str, base: &str, title: &str, body: &str) -> Value {
    json!({
        "url": format!("https://api.github.example/repos/acme/infra/pulls/{number}"),
        "id": 1000 + number,
        "number": number,
        "node_id": format!("PR_{number}"),
        "html_url": format!("https://github.example/acme/infra/pull/{number}"),
        "state": "open",
        "locked": false,
        "draft": false,
        "title": title,
        "body": body,
        "user": {"login": "image-updater[bot]", "id": 1, "type": "Bot"},
        "labels": [],
        "merged_at": null,
        "head": {"ref": head, "label": format!("acme:{head}"), "sha": "0"},
        "base": {"ref": base, "label": format!("acme:{base}"), "sha": "0"},
    })
}

impl GithubFake {
    pub fn new(token: &str) -> GithubFake {
        GithubFake {
            state: Arc::default(),
            token: token.to_string(),
        }
    }

    pub fn state(&self) -> MutexGuard<'_, GithubState> {
        self.state.lock().unwrap()
    }

    /// Open a pull request as someone else would (e.g. a concurrent run).
    pub fn open(&self, head: &str, base: &str, title: &str, body: &str) -> u64 {
        let mut s = self.state();
        let number = s.prs.len() as u64 + 1;
        s.prs.push(github_pr_json(number, head, base, title, body));
        number
    }

    /// A pull request from a fork (`contributor/infra`) whose head branch has the given name:
    /// GitHub lists it under `head=contributor:BRANCH`, never under `head=acme:BRANCH`.
    pub fn open_from_fork(&self, head: &str, base: &str, title: &str) -> u64 {
        let mut s = self.state();
        let number = s.prs.len() as u64 + 1;
        let mut pr = github_pr_json(number, head, base, title, "a contributor's change");
        pr["head"]["label"] = json!(format!("contributor:{head}"));
        pr["user"] = json!({"login": "contributor", "id": 500, "type": "User"});
        s.prs.push(pr);
        number
    }
}

impl Respond for GithubFake {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let call = Call::of(req);
        let mut gh = self.state.lock().unwrap();
        gh.calls.push(call.line());
        if call.h("authorization") != format!("Bearer {}", self.token) {
            return ResponseTemplate::new(401).set_body_json(json!({
                "message": "Bad credentials",
                "documentation_url": "https://docs.github.com/rest",
                "status": "401"
            }));
        }
        if call.h("user-agent").is_empty() {
            gh.problems
                .push(format!("{} without User-Agent", call.line()));
            return ResponseTemplate::new(403).set_body_json(json!({
                "message": "Request forbidden by administrative rules. Please make sure your request has a User-Agent header"
            }));
        }
        if !call.h("accept").contains("application/vnd.github+json") {
            gh.problems.push(format!(
                "{} with Accept {:?}",
                call.line(),
                call.h("accept")
            ));
        }
        let q = |k: &str| call.q(k);
        let body = &call.body;
        let segs: Vec<&str> = call.path.trim_start_matches('/').split('/').collect();
        match (call.method.as_str(), segs.as_slice()) {
            ("GET", ["repos", "acme", "infra", "pulls"]) => {
                let head = q("head").unwrap_or_default();
                if !head.starts_with("acme:") {
                    gh.problems
                        .push(format!("{}: head must be owner:branch", call.line()));
                }
                if q("state").as_deref() != Some("open") {
                    gh.problems
                        .push(format!("{}: list without state=open", call.line()));
                }
                let list: Vec<Value> = gh
                    .prs
                    .iter()
                    .filter(|p| p["state"] == "open")
                    .filter(|p| p["head"]["label"] == head.as_str())
                    .filter(|p| q("base").is_none_or(|b| p["base"]["ref"] == b.as_str()))
                    .cloned()
                    .collect();
                let list = unhidden_ref(&mut gh.hidden, list);
                ResponseTemplate::new(200)
                    .set_body_json(Value::Array(list))
                    .set_delay(gh.list_delay)
            }
            ("POST", ["repos", "acme", "infra", "pulls"]) => {
                let mut problems = Vec::new();
                check_body(
                    &mut problems,
                    &call,
                    &["title", "head", "base"],
                    &[
                        "title",
                        "head",
                        "head_repo",
                        "base",
                        "body",
                        "maintainer_can_modify",
                        "draft",
                        "issue",
                    ],
                );
                gh.problems.extend(problems);
                let head = call.str_field("head").unwrap_or_default().to_string();
                let label = format!("acme:{head}");
                if gh
                    .prs
                    .iter()
                    .any(|p| p["state"] == "open" && p["head"]["label"] == label.as_str())
                {
                    return ResponseTemplate::new(422).set_body_json(json!({
                        "message": "Validation Failed",
                        "errors": [{"resource": "PullRequest", "code": "custom",
                                    "message": format!("A pull request already exists for acme:{head}.")}],
                        "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
                        "status": "422"
                    }));
                }
                let number = gh.prs.len() as u64 + 1;
                let mut pr = github_pr_json(
                    number,
                    &head,
                    call.str_field("base").unwrap_or_default(),
                    call.str_field("title").unwrap_or_default(),
                    call.str_field("body").unwrap_or_default(),
                );
                pr["draft"] = json!(body["draft"].as_bool().unwrap_or(false));
                gh.prs.push(pr.clone());
                ResponseTemplate::new(201).set_body_json(pr)
            }
            ("PATCH", ["repos", "acme", "infra", "pulls", n]) => {
                let mut problems = Vec::new();
                check_body(
                    &mut problems,
                    &call,
                    &[],
                    &["title", "body", "state", "base", "maintainer_can_modify"],
                );
                gh.problems.extend(problems);
                let n: u64 = n.parse().unwrap_or(0);
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
            ("POST", ["repos", "acme", "infra", "issues", n, field @ ("labels" | "assignees")]) => {
                let names: Vec<String> = body[*field]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|l| l.as_str().unwrap_or("?").to_string())
                    .collect();
                let n: u64 = n.parse().unwrap_or(0);
                if *field == "labels" {
                    gh.labels.push((n, names));
                    ResponseTemplate::new(200).set_body_json(json!([]))
                } else {
                    gh.assignees.push((n, names));
                    let pr = gh.prs.iter().find(|p| p["number"] == n).cloned();
                    ResponseTemplate::new(201).set_body_json(pr.unwrap_or(json!({})))
                }
            }
            ("POST", ["repos", "acme", "infra", "pulls", n, "requested_reviewers"]) => {
                let r = body["reviewers"].as_array().cloned().unwrap_or_default();
                gh.reviewers.push((
                    n.parse().unwrap_or(0),
                    r.iter()
                        .map(|l| l.as_str().unwrap_or("?").to_string())
                        .collect(),
                ));
                ResponseTemplate::new(201).set_body_json(json!({}))
            }
            ("POST", ["graphql"]) => {
                let mut problems = Vec::new();
                check_body(&mut problems, &call, &["query"], &["query", "variables"]);
                let query = call.str_field("query").unwrap_or_default();
                if !query.contains("enablePullRequestAutoMerge") {
                    problems.push(format!("{}: unexpected query {query:?}", call.line()));
                }
                gh.problems.extend(problems);
                let vars = &call.body["variables"];
                let node = vars["pullRequestId"].as_str().unwrap_or_default();
                let Some(n) = gh
                    .prs
                    .iter()
                    .find(|p| p["node_id"] == node)
                    .map(|p| p["number"].as_u64().unwrap_or(0))
                else {
                    return ResponseTemplate::new(200).set_body_json(json!({
                        "data": {"enablePullRequestAutoMerge": null},
                        "errors": [{"type": "NOT_FOUND", "message":
                            format!("Could not resolve to a node with the global id of '{node}'")}]
                    }));
                };
                if !matches!(
                    vars["mergeMethod"].as_str(),
                    Some("MERGE" | "SQUASH" | "REBASE")
                ) {
                    let line = format!("{}: merge method {}", call.line(), vars["mergeMethod"]);
                    gh.problems.push(line);
                }
                gh.auto_merge.push(n);
                ResponseTemplate::new(200).set_body_json(json!({
                    "data": {"enablePullRequestAutoMerge": {"pullRequest": {"number": n,
                        "autoMergeRequest": {"enabledAt": "2024-05-01T10:00:00Z"}}}}
                }))
            }
            ("POST", ["repos", "acme", "infra", "issues", n, "comments"]) => {
                let mut problems = Vec::new();
                check_body(&mut problems, &call, &["body"], &["body"]);
                gh.problems.extend(problems);
                gh.comments.push((
                    n.parse().unwrap_or(0),
                    call.str_field("body").unwrap_or_default().to_string(),
                ));
                ResponseTemplate::new(201).set_body_json(json!({"id": 1}))
            }
            _ => {
                gh.problems.push(format!("unexpected {}", call.line()));
                ResponseTemplate::new(404).set_body_json(json!({"message": "Not Found"}))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// GitLab
// ---------------------------------------------------------------------------------------------

/// The users the GitLab fake knows: (id, username).
pub const GITLAB_USERS: [(u64, &str); 3] = [(11, "alice"), (12, "bob"), (13, "carol")];

#[derive(Default)]
pub struct GitlabState {
    pub mrs: Vec<Value>,
    /// (iid, body) of every note.
    pub notes: Vec<(u64, String)>,
    /// iids whose auto-merge was asked for.
    pub auto_merge: Vec<u64>,
    pub calls: Vec<String>,
    pub problems: Vec<String>,
    /// Source branches left out of the next N listings (a listing that lags behind a
    /// concurrent create).
    pub hidden: HashMap<String, usize>,
    /// How long a listing takes to answer, as [`GithubState::list_delay`].
    pub list_delay: Duration,
}

/// GitLab's API v4 for the project `acme/platform/infra`, id 42.
#[derive(Clone)]
pub struct GitlabFake {
    state: Arc<Mutex<GitlabState>>,
    token: String,
}

fn gitlab_user(id: u64) -> Value {
    let name = GITLAB_USERS
        .iter()
        .find(|(i, _)| *i == id)
        .map_or("ghost", |(_, n)| *n);
    json!({
        "id": id, "username": name, "name": name, "state": "active",
        "avatar_url": null, "web_url": format!("https://gitlab.example.com/{name}")
    })
}

fn gitlab_is_draft(title: &str) -> bool {
    let t = title.to_ascii_lowercase();
    ["draft:", "[draft]", "(draft)", "draft "]
        .iter()
        .any(|p| t.starts_with(p))
}

fn gitlab_mr(iid: u64, source: &str, target: &str, title: &str, description: &str) -> Value {
    json!({
        "id": 5000 + iid,
        "iid": iid,
        "project_id": 42,
        "title": title,
        "description": description,
        "state": "opened",
        "created_at": "2024-05-01T10:00:00.000Z",
        "updated_at": "2024-05-01T10:00:00.000Z",
        "merged_by": null,
        "merged_at": null,
        "closed_by": null,
        "closed_at": null,
        "target_branch": target,
        "source_branch": source,
        "source_project_id": 42,
        "target_project_id": 42,
        "author": {"id": 99, "username": "project_42_bot", "name": "image-updater"},
        "assignees": [],
        "assignee": null,
        "reviewers": [],
        "labels": [],
        "draft": gitlab_is_draft(title),
        "work_in_progress": gitlab_is_draft(title),
        "merge_when_pipeline_succeeds": false,
        "detailed_merge_status": "mergeable",
        "sha": "0000000000000000000000000000000000000000",
        "references": {"short": format!("!{iid}"), "relative": format!("!{iid}"),
                       "full": format!("acme/platform/infra!{iid}")},
        "web_url": format!("https://gitlab.example.com/acme/platform/infra/-/merge_requests/{iid}"),
    })
}

impl GitlabFake {
    pub fn new(token: &str) -> GitlabFake {
        GitlabFake {
            state: Arc::default(),
            token: token.to_string(),
        }
    }

    pub fn state(&self) -> MutexGuard<'_, GitlabState> {
        self.state.lock().unwrap()
    }

    /// Open an MR as someone else would (e.g. a concurrent run).
    pub fn open(&self, source: &str, target: &str, title: &str, description: &str) -> u64 {
        let mut s = self.state();
        let iid = s.mrs.len() as u64 + 1;
        s.mrs
            .push(gitlab_mr(iid, source, target, title, description));
        iid
    }

    /// An MR from a fork (project 77) whose source branch has the given name: GitLab lists
    /// it under `source_branch=` too, but it is not ours.
    pub fn open_from_fork(&self, source: &str, target: &str, title: &str) -> u64 {
        let mut s = self.state();
        let iid = s.mrs.len() as u64 + 1;
        let mut mr = gitlab_mr(iid, source, target, title, "a contributor's change");
        mr["source_project_id"] = json!(77);
        mr["author"] = json!({"id": 500, "username": "contributor", "name": "A Contributor"});
        s.mrs.push(mr);
        iid
    }
}

impl Respond for GitlabFake {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let call = Call::of(req);
        let mut gl = self.state.lock().unwrap();
        gl.calls.push(call.line());
        let authed = call.h("private-token") == self.token
            || call.h("authorization") == format!("Bearer {}", self.token);
        if !authed {
            return ResponseTemplate::new(401)
                .set_body_json(json!({"message": "401 Unauthorized"}));
        }
        if call.h("user-agent").is_empty() {
            gl.problems
                .push(format!("{} without User-Agent", call.line()));
        }
        let not_found = |what: &str| {
            ResponseTemplate::new(404)
                .set_body_json(json!({ "message": format!("404 {what} Not Found") }))
        };
        let Some(rest) = call.path.strip_prefix("/api/v4/") else {
            gl.problems
                .push(format!("outside /api/v4: {}", call.line()));
            return not_found("");
        };
        let segs: Vec<&str> = rest.split('/').collect();
        if segs.as_slice() == ["users"] && call.method == "GET" {
            let name = call.q("username").unwrap_or_default();
            if name.is_empty() {
                gl.problems
                    .push(format!("{}: user lookup without username", call.line()));
            }
            let found: Vec<Value> = GITLAB_USERS
                .iter()
                .filter(|(_, n)| *n == name)
                .map(|(id, _)| gitlab_user(*id))
                .collect();
            return ResponseTemplate::new(200).set_body_json(found);
        }
        let ["projects", project, rest @ ..] = segs.as_slice() else {
            gl.problems.push(format!("unexpected {}", call.line()));
            return not_found("");
        };
        // The project path must come URL-encoded as one segment (`acme%2Fplatform%2Finfra`).
        if !matches!(
            *project,
            "42" | "acme%2Fplatform%2Finfra" | "acme%2fplatform%2finfra"
        ) {
            gl.problems
                .push(format!("{}: unknown project {project:?}", call.line()));
            return not_found("Project");
        }
        match (call.method.as_str(), rest) {
            ("GET", ["merge_requests"]) => {
                if call.q("state").as_deref() != Some("opened") {
                    gl.problems
                        .push(format!("{}: list without state=opened", call.line()));
                }
                let source = call.q("source_branch");
                if source.is_none() {
                    gl.problems
                        .push(format!("{}: list without source_branch", call.line()));
                }
                let target = call.q("target_branch");
                let list: Vec<Value> = gl
                    .mrs
                    .iter()
                    .filter(|m| call.q("state").is_none_or(|s| m["state"] == s.as_str()))
                    .filter(|m| {
                        source
                            .as_ref()
                            .is_none_or(|s| m["source_branch"] == s.as_str())
                    })
                    .filter(|m| {
                        target
                            .as_ref()
                            .is_none_or(|t| m["target_branch"] == t.as_str())
                    })
                    .cloned()
                    .collect();
                let list = unhidden(&mut gl.hidden, list, "source_branch");
                ResponseTemplate::new(200)
                    .set_body_json(list)
                    .set_delay(gl.list_delay)
            }
            ("POST", ["merge_requests"]) => {
                let mut problems = Vec::new();
                check_body(
                    &mut problems,
                    &call,
                    &["source_branch", "target_branch", "title"],
                    &[
                        "source_branch",
                        "target_branch",
                        "title",
                        "description",
                        "assignee_id",
                        "assignee_ids",
                        "reviewer_ids",
                        "labels",
                        "milestone_id",
                        "remove_source_branch",
                        "allow_collaboration",
                        "squash",
                        "target_project_id",
                    ],
                );
                gl.problems.extend(problems);
                let source = call.str_field("source_branch").unwrap_or_default();
                let target = call.str_field("target_branch").unwrap_or_default();
                if let Some(dup) = gl.mrs.iter().find(|m| {
                    m["state"] == "opened"
                        && m["source_project_id"] == 42
                        && m["source_branch"] == source
                        && m["target_branch"] == target
                }) {
                    return ResponseTemplate::new(409).set_body_json(json!({
                        "message": [format!(
                            "Another open merge request already exists for this source branch: !{}",
                            dup["iid"]
                        )]
                    }));
                }
                let iid = gl.mrs.len() as u64 + 1;
                let mr = gitlab_mr(
                    iid,
                    source,
                    target,
                    call.str_field("title").unwrap_or_default(),
                    call.str_field("description").unwrap_or_default(),
                );
                gl.mrs.push(mr.clone());
                ResponseTemplate::new(201).set_body_json(mr)
            }
            (m @ ("GET" | "PUT"), ["merge_requests", iid]) => {
                let mut problems = Vec::new();
                if m == "PUT" {
                    check_body(
                        &mut problems,
                        &call,
                        &[],
                        &[
                            "title",
                            "description",
                            "state_event",
                            "labels",
                            "add_labels",
                            "remove_labels",
                            "assignee_id",
                            "assignee_ids",
                            "reviewer_ids",
                            "target_branch",
                            "remove_source_branch",
                            "squash",
                            "discussion_locked",
                            "milestone_id",
                            "allow_collaboration",
                        ],
                    );
                    if call.body.as_object().is_some_and(Map::is_empty) {
                        problems.push(format!("{}: an empty update", call.line()));
                    }
                }
                gl.problems.extend(problems);
                let iid: u64 = iid.parse().unwrap_or(0);
                let Some(mr) = gl.mrs.iter_mut().find(|m| m["iid"] == iid) else {
                    return ResponseTemplate::new(404)
                        .set_body_json(json!({"message": "404 Not found"}));
                };
                if m == "GET" {
                    return ResponseTemplate::new(200).set_body_json(mr.clone());
                }
                let b = &call.body;
                if let Some(t) = b["title"].as_str() {
                    mr["title"] = json!(t);
                    mr["draft"] = json!(gitlab_is_draft(t));
                    mr["work_in_progress"] = json!(gitlab_is_draft(t));
                }
                if let Some(d) = b["description"].as_str() {
                    mr["description"] = json!(d);
                }
                match b["state_event"].as_str() {
                    Some("close") => mr["state"] = json!("closed"),
                    Some("reopen") => mr["state"] = json!("opened"),
                    Some(other) => {
                        let line = format!("{}: state_event {other:?}", call.line());
                        gl.problems.push(line);
                        return ResponseTemplate::new(400).set_body_json(
                            json!({"error": "state_event does not have a valid value"}),
                        );
                    }
                    None => {}
                }
                if let Some(add) = b["add_labels"].as_str() {
                    let mut labels: Vec<Value> =
                        mr["labels"].as_array().cloned().unwrap_or_default();
                    for l in add.split(',').map(str::trim).filter(|l| !l.is_empty()) {
                        if !labels.iter().any(|x| x == l) {
                            labels.push(json!(l));
                        }
                    }
                    mr["labels"] = Value::Array(labels);
                }
                for (ids, field) in [("reviewer_ids", "reviewers"), ("assignee_ids", "assignees")] {
                    if let Some(list) = b[ids].as_array() {
                        mr[field] = Value::Array(
                            list.iter()
                                .map(|i| gitlab_user(i.as_u64().unwrap_or(0)))
                                .collect(),
                        );
                    }
                }
                ResponseTemplate::new(200).set_body_json(mr.clone())
            }
            ("PUT", ["merge_requests", iid, "merge"]) => {
                let mut problems = Vec::new();
                check_body(
                    &mut problems,
                    &call,
                    &[],
                    &[
                        "merge_when_pipeline_succeeds",
                        "auto_merge",
                        "merge_commit_message",
                        "squash_commit_message",
                        "squash",
                        "should_remove_source_branch",
                        "sha",
                    ],
                );
                let auto = call.body["merge_when_pipeline_succeeds"] == json!(true)
                    || call.body["auto_merge"] == json!(true);
                if !auto {
                    problems.push(format!(
                        "{}: a merge now, not when the pipeline succeeds",
                        call.line()
                    ));
                }
                gl.problems.extend(problems);
                let iid: u64 = iid.parse().unwrap_or(0);
                let Some(mr) = gl.mrs.iter_mut().find(|m| m["iid"] == iid) else {
                    return ResponseTemplate::new(404)
                        .set_body_json(json!({"message": "404 Not found"}));
                };
                mr["merge_when_pipeline_succeeds"] = json!(true);
                let mr = mr.clone();
                gl.auto_merge.push(iid);
                ResponseTemplate::new(200).set_body_json(mr)
            }
            ("POST", ["merge_requests", iid, "notes"]) => {
                let mut problems = Vec::new();
                check_body(
                    &mut problems,
                    &call,
                    &["body"],
                    &[
                        "body",
                        "internal",
                        "created_at",
                        "merge_request_diff_head_sha",
                    ],
                );
                gl.problems.extend(problems);
                let iid: u64 = iid.parse().unwrap_or(0);
                if !gl.mrs.iter().any(|m| m["iid"] == iid) {
                    return ResponseTemplate::new(404)
                        .set_body_json(json!({"message": "404 Not found"}));
                }
                let body = call.str_field("body").unwrap_or_default().to_string();
                gl.notes.push((iid, body.clone()));
                ResponseTemplate::new(201).set_body_json(json!({
                    "id": 700 + gl.notes.len(), "type": null, "body": body,
                    "author": {"id": 99, "username": "project_42_bot"},
                    "created_at": "2024-05-01T10:00:00.000Z", "system": false,
                    "noteable_id": 5000 + iid, "noteable_type": "MergeRequest",
                    "noteable_iid": iid, "resolvable": false, "internal": false
                }))
            }
            _ => {
                gl.problems.push(format!("unexpected {}", call.line()));
                not_found("")
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Gitea / Forgejo
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
pub struct GiteaState {
    pub pulls: Vec<Value>,
    /// The repository's labels (id, name); `dependencies` exists from the start.
    pub labels: Vec<(u64, String)>,
    /// (index, label ids) of every label call.
    pub issue_labels: Vec<(u64, Vec<u64>)>,
    pub reviewers: Vec<(u64, Vec<String>)>,
    pub comments: Vec<(u64, String)>,
    /// (index, merge style) of every scheduled merge.
    pub auto_merge: Vec<(u64, String)>,
    pub calls: Vec<String>,
    pub problems: Vec<String>,
    /// Head branches left out of the next N listings.
    pub hidden: HashMap<String, usize>,
    /// How long a listing of pull requests takes to answer, as [`GithubState::list_delay`].
    pub list_delay: Duration,
}

/// Gitea's (and Forgejo's) API v1 for the repository `acme/infra`.
#[derive(Clone)]
pub struct GiteaFake {
    state: Arc<Mutex<GiteaState>>,
    token: String,
}

fn gitea_user(login: &str) -> Value {
    json!({"id": login.len() as u64 + 100, "login": login, "login_name": "", "full_name": login,
           "email": format!("{login}@noreply.example.com"), "username": login})
}

fn gitea_ref(branch: &str) -> Value {
    json!({"label": branch, "ref": branch, "sha": "0000000000000000000000000000000000000000",
           "repo_id": 1, "repo": {"id": 1, "name": "infra", "full_name": "acme/infra"}})
}

fn gitea_pull(index: u64, head: &str, base: &str, title: &str, body: &str) -> Value {
    json!({
        "id": 300 + index,
        "url": format!("https://git.example.com/acme/infra/pulls/{index}"),
        "number": index,
        "user": gitea_user("image-updater"),
        "title": title,
        "body": body,
        "labels": [],
        "milestone": null,
        "assignee": null,
        "assignees": null,
        "requested_reviewers": null,
        "state": "open",
        "draft": title.to_ascii_lowercase().starts_with("wip:"),
        "is_locked": false,
        "comments": 0,
        "html_url": format!("https://git.example.com/acme/infra/pulls/{index}"),
        "diff_url": format!("https://git.example.com/acme/infra/pulls/{index}.diff"),
        "patch_url": format!("https://git.example.com/acme/infra/pulls/{index}.patch"),
        "mergeable": true,
        "merged": false,
        "merged_at": null,
        "merge_commit_sha": null,
        "merged_by": null,
        "allow_maintainer_edit": false,
        "base": gitea_ref(base),
        "head": gitea_ref(head),
        "merge_base": "0000000000000000000000000000000000000000",
        "due_date": null,
        "created_at": "2024-05-01T10:00:00Z",
        "updated_at": "2024-05-01T10:00:00Z",
        "closed_at": null,
        "pin_order": 0
    })
}

fn gitea_error(status: u16, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "message": message,
        "url": "https://git.example.com/api/swagger"
    }))
}

impl GiteaFake {
    pub fn new(token: &str) -> GiteaFake {
        let fake = GiteaFake {
            state: Arc::default(),
            token: token.to_string(),
        };
        fake.state().labels.push((1, "dependencies".into()));
        fake
    }

    pub fn state(&self) -> MutexGuard<'_, GiteaState> {
        self.state.lock().unwrap()
    }

    /// Open a pull request as someone else would.
    pub fn open(&self, head: &str, base: &str, title: &str, body: &str) -> u64 {
        let mut s = self.state();
        let index = s.pulls.len() as u64 + 1;
        s.pulls.push(gitea_pull(index, head, base, title, body));
        index
    }

    /// A pull request from a fork (`contributor/infra`, repo id 2) whose head branch has the
    /// given name: Gitea lists it with the others, but it is not ours.
    pub fn open_from_fork(&self, head: &str, base: &str, title: &str) -> u64 {
        let mut s = self.state();
        let index = s.pulls.len() as u64 + 1;
        let mut p = gitea_pull(index, head, base, title, "a contributor's change");
        p["head"]["label"] = json!(format!("contributor:{head}"));
        p["head"]["repo_id"] = json!(2);
        p["head"]["repo"] = json!({"id": 2, "name": "infra", "full_name": "contributor/infra"});
        p["user"] = gitea_user("contributor");
        s.pulls.push(p);
        index
    }

    fn page_of(call: &Call, problems: &mut Vec<String>, items: Vec<Value>) -> Vec<Value> {
        let page: usize = call.q("page").and_then(|p| p.parse().ok()).unwrap_or(1);
        let limit: usize = call.q("limit").and_then(|p| p.parse().ok()).unwrap_or(30);
        if page == 0 || limit == 0 || limit > 50 {
            problems.push(format!("{}: page {page}, limit {limit}", call.line()));
        }
        items
            .into_iter()
            .skip((page.max(1) - 1) * limit.max(1))
            .take(limit.max(1))
            .collect()
    }
}

impl Respond for GiteaFake {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let call = Call::of(req);
        let mut gt = self.state.lock().unwrap();
        gt.calls.push(call.line());
        if call.h("authorization") != format!("token {}", self.token) {
            return gitea_error(401, "token is required");
        }
        if call.h("user-agent").is_empty() {
            gt.problems
                .push(format!("{} without User-Agent", call.line()));
        }
        let Some(rest) = call.path.strip_prefix("/api/v1/repos/acme/infra") else {
            gt.problems.push(format!("unexpected {}", call.line()));
            return gitea_error(404, "not found");
        };
        let segs: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
        let mut problems = Vec::new();
        let answer = match (call.method.as_str(), segs.as_slice()) {
            ("GET", [""]) => ResponseTemplate::new(200).set_body_json(json!({
                "id": 1, "name": "infra", "full_name": "acme/infra",
                "owner": gitea_user("acme"), "default_branch": "main",
                "has_pull_requests": true, "allow_merge_commits": true, "allow_rebase": true,
                "allow_rebase_explicit": true, "allow_squash_merge": true,
                "allow_fast_forward_only_merge": false, "default_merge_style": "squash",
                "html_url": "https://git.example.com/acme/infra"
            })),
            ("GET", ["pulls"]) => {
                if call.q("state").as_deref() != Some("open") {
                    problems.push(format!("{}: list without state=open", call.line()));
                }
                let all: Vec<Value> = gt
                    .pulls
                    .iter()
                    .filter(|p| {
                        call.q("state")
                            .is_none_or(|s| s == "all" || p["state"] == s.as_str())
                    })
                    .cloned()
                    .collect();
                let page = Self::page_of(&call, &mut problems, all);
                let total = page.len();
                let page = unhidden_ref(&mut gt.hidden, page);
                ResponseTemplate::new(200)
                    .insert_header("x-total-count", total.to_string().as_str())
                    .set_body_json(page)
                    .set_delay(gt.list_delay)
            }
            ("POST", ["pulls"]) => {
                check_body(
                    &mut problems,
                    &call,
                    &["head", "base", "title"],
                    &[
                        "head",
                        "base",
                        "title",
                        "body",
                        "assignee",
                        "assignees",
                        "labels",
                        "milestone",
                        "due_date",
                        "reviewers",
                        "team_reviewers",
                    ],
                );
                let head = call.str_field("head").unwrap_or_default();
                let base = call.str_field("base").unwrap_or_default();
                if let Some(dup) = gt.pulls.iter().find(|p| {
                    p["state"] == "open"
                        && p["head"]["repo_id"] == 1
                        && p["head"]["ref"] == head
                        && p["base"]["ref"] == base
                }) {
                    let n = &dup["number"];
                    gitea_error(409, &format!(
                        "pull request already exists for these targets [id: {}, issue_id: {n}, head_repo_id: 1, base_repo_id: 1, head_branch: {head}, base_branch: {base}]",
                        dup["id"]
                    ))
                } else {
                    let index = gt.pulls.len() as u64 + 1;
                    let p = gitea_pull(
                        index,
                        head,
                        base,
                        call.str_field("title").unwrap_or_default(),
                        call.str_field("body").unwrap_or_default(),
                    );
                    gt.pulls.push(p.clone());
                    ResponseTemplate::new(201).set_body_json(p)
                }
            }
            (m @ ("GET" | "PATCH"), ["pulls", n]) => {
                if m == "PATCH" {
                    check_body(
                        &mut problems,
                        &call,
                        &[],
                        &[
                            "title",
                            "body",
                            "state",
                            "base",
                            "assignee",
                            "assignees",
                            "labels",
                            "milestone",
                            "due_date",
                            "unset_due_date",
                            "allow_maintainer_edit",
                        ],
                    );
                }
                let n: u64 = n.parse().unwrap_or(0);
                match gt.pulls.iter_mut().find(|p| p["number"] == n) {
                    None => gitea_error(404, "not found"),
                    Some(p) if m == "GET" => ResponseTemplate::new(200).set_body_json(p.clone()),
                    Some(p) => {
                        let b = &call.body;
                        if let Some(t) = b["title"].as_str() {
                            p["title"] = json!(t);
                            p["draft"] = json!(t.to_ascii_lowercase().starts_with("wip:"));
                        }
                        if let Some(t) = b["body"].as_str() {
                            p["body"] = json!(t);
                        }
                        match b["state"].as_str() {
                            Some(s @ ("open" | "closed")) => p["state"] = json!(s),
                            Some(other) => {
                                problems.push(format!("{}: state {other:?}", call.line()))
                            }
                            None => {}
                        }
                        // Gitea answers an edit with 201 Created.
                        ResponseTemplate::new(201).set_body_json(p.clone())
                    }
                }
            }
            ("POST", ["pulls", n, "requested_reviewers"]) => {
                check_body(&mut problems, &call, &[], &["reviewers", "team_reviewers"]);
                let names: Vec<String> = call.body["reviewers"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|v| v.as_str().unwrap_or("?").to_string())
                    .collect();
                gt.reviewers.push((n.parse().unwrap_or(0), names.clone()));
                let reviews: Vec<Value> = names
                    .iter()
                    .map(|r| json!({"id": 1, "user": gitea_user(r), "state": "REQUEST_REVIEW", "body": ""}))
                    .collect();
                ResponseTemplate::new(201).set_body_json(reviews)
            }
            ("POST", ["pulls", n, "merge"]) => {
                check_body(
                    &mut problems,
                    &call,
                    &["Do"],
                    &[
                        "Do",
                        "MergeCommitID",
                        "MergeMessageField",
                        "MergeTitleField",
                        "delete_branch_after_merge",
                        "force_merge",
                        "head_commit_id",
                        "merge_when_checks_succeed",
                    ],
                );
                let style = call.str_field("Do").unwrap_or_default().to_string();
                if !matches!(
                    style.as_str(),
                    "merge"
                        | "rebase"
                        | "rebase-merge"
                        | "squash"
                        | "fast-forward-only"
                        | "manually-merged"
                ) {
                    problems.push(format!("{}: merge style {style:?}", call.line()));
                }
                if call.body["merge_when_checks_succeed"] != json!(true) {
                    problems.push(format!(
                        "{}: a merge now, not when checks succeed",
                        call.line()
                    ));
                }
                gt.auto_merge.push((n.parse().unwrap_or(0), style));
                ResponseTemplate::new(200)
            }
            ("GET", ["labels"]) => {
                let all: Vec<Value> = gt
                    .labels
                    .iter()
                    .map(|(id, name)| {
                        json!({"id": id, "name": name, "exclusive": false, "is_archived": false,
                                             "color": "ededed", "description": "", "url": ""})
                    })
                    .collect();
                let page = Self::page_of(&call, &mut problems, all);
                ResponseTemplate::new(200).set_body_json(page)
            }
            ("POST", ["labels"]) => {
                check_body(
                    &mut problems,
                    &call,
                    &["name", "color"],
                    &["name", "color", "description", "exclusive", "is_archived"],
                );
                let name = call.str_field("name").unwrap_or_default().to_string();
                let color = call.str_field("color").unwrap_or_default();
                let hex = color.trim_start_matches('#');
                if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    problems.push(format!("{}: colour {color:?}", call.line()));
                }
                if gt.labels.iter().any(|(_, n)| *n == name) {
                    gitea_error(422, "label already exists")
                } else {
                    let id = gt.labels.len() as u64 + 1;
                    gt.labels.push((id, name.clone()));
                    ResponseTemplate::new(201).set_body_json(json!({
                        "id": id, "name": name, "color": hex, "description": "", "exclusive": false
                    }))
                }
            }
            ("POST", ["issues", n, "labels"]) => {
                check_body(&mut problems, &call, &[], &["labels"]);
                let ids: Vec<u64> = call.body["labels"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .filter_map(Value::as_u64)
                    .collect();
                for id in &ids {
                    if !gt.labels.iter().any(|(l, _)| l == id) {
                        problems.push(format!("{}: unknown label id {id}", call.line()));
                    }
                }
                let n: u64 = n.parse().unwrap_or(0);
                gt.issue_labels.push((n, ids.clone()));
                let attached: Vec<Value> = gt
                    .labels
                    .iter()
                    .filter(|(id, _)| ids.contains(id))
                    .map(|(id, name)| json!({"id": id, "name": name, "color": "ededed"}))
                    .collect();
                if let Some(p) = gt.pulls.iter_mut().find(|p| p["number"] == n) {
                    p["labels"] = Value::Array(attached.clone());
                }
                ResponseTemplate::new(200).set_body_json(attached)
            }
            (m @ ("GET" | "PATCH"), ["issues", n]) => {
                if m == "PATCH" {
                    check_body(
                        &mut problems,
                        &call,
                        &[],
                        &[
                            "title",
                            "body",
                            "state",
                            "assignee",
                            "assignees",
                            "milestone",
                            "due_date",
                            "unset_due_date",
                            "ref",
                        ],
                    );
                }
                let n: u64 = n.parse().unwrap_or(0);
                match gt.pulls.iter_mut().find(|p| p["number"] == n) {
                    None => gitea_error(404, "not found"),
                    Some(p) => {
                        if m == "PATCH" {
                            if let Some(list) = call.body["assignees"].as_array() {
                                let users: Vec<Value> = list
                                    .iter()
                                    .map(|u| gitea_user(u.as_str().unwrap_or("?")))
                                    .collect();
                                p["assignee"] = users.first().cloned().unwrap_or(Value::Null);
                                p["assignees"] = Value::Array(users);
                            }
                        }
                        let issue = json!({
                            "id": p["id"], "number": n, "title": p["title"], "body": p["body"],
                            "user": p["user"], "labels": p["labels"], "state": p["state"],
                            "assignee": p["assignee"], "assignees": p["assignees"],
                            "html_url": p["html_url"],
                            "pull_request": {"merged": false, "draft": p["draft"], "html_url": p["html_url"]}
                        });
                        ResponseTemplate::new(if m == "PATCH" { 201 } else { 200 })
                            .set_body_json(issue)
                    }
                }
            }
            ("POST", ["issues", n, "comments"]) => {
                check_body(&mut problems, &call, &["body"], &["body"]);
                let n: u64 = n.parse().unwrap_or(0);
                let body = call.str_field("body").unwrap_or_default().to_string();
                gt.comments.push((n, body.clone()));
                ResponseTemplate::new(201).set_body_json(json!({
                    "id": 900 + gt.comments.len(), "body": body, "user": gitea_user("image-updater"),
                    "html_url": format!("https://git.example.com/acme/infra/pulls/{n}#issuecomment-1"),
                    "issue_url": format!("https://git.example.com/acme/infra/issues/{n}"),
                    "created_at": "2024-05-01T10:00:00Z", "updated_at": "2024-05-01T10:00:00Z"
                }))
            }
            _ => {
                problems.push(format!("unexpected {}", call.line()));
                gitea_error(404, "not found")
            }
        };
        gt.problems.extend(problems);
        answer
    }
}

// ---------------------------------------------------------------------------------------------
// Bitbucket Cloud, Bitbucket Data Center, Azure DevOps: one state shape
// ---------------------------------------------------------------------------------------------

/// The users the Bitbucket and Azure DevOps fakes know: (name, Bitbucket Cloud account uuid,
/// Azure DevOps identity id).
pub const USERS: [(&str, &str, &str); 3] = [
    (
        "alice",
        "{7a1c0de0-0000-4000-8000-00000000a11c}",
        "3f1b2c4d-0000-4000-8000-00000000a11c",
    ),
    (
        "bob",
        "{7a1c0de0-0000-4000-8000-000000000b0b}",
        "3f1b2c4d-0000-4000-8000-000000000b0b",
    ),
    (
        "carol",
        "{7a1c0de0-0000-4000-8000-0000000ca201}",
        "3f1b2c4d-0000-4000-8000-0000000ca201",
    ),
];

/// The Azure DevOps identity of the token (the pull requests' creator).
pub const AZURE_BOT_ID: &str = "9b0e0000-0000-4000-8000-0000000000b0";

/// The name of the user with this Bitbucket uuid or Azure DevOps id.
fn user_named(id: &str) -> Option<&'static str> {
    USERS
        .iter()
        .find(|(_, u, a)| *u == id || a.eq_ignore_ascii_case(id))
        .map(|(n, _, _)| *n)
}

/// What the Bitbucket Cloud, Bitbucket Data Center and Azure DevOps fakes hold.
#[derive(Default)]
pub struct PullState {
    /// The pull requests, in the forge's own JSON.
    pub pulls: Vec<Value>,
    pub comments: Vec<(u64, String)>,
    /// (number, label names) of every label call (Azure DevOps).
    pub labels: Vec<(u64, Vec<String>)>,
    /// (number, user names) of every reviewer call.
    pub reviewers: Vec<(u64, Vec<String>)>,
    /// Numbers of the pull requests whose auto-merge (Azure DevOps: auto-complete) was set.
    pub auto_merge: Vec<u64>,
    pub calls: Vec<String>,
    pub problems: Vec<String>,
    /// Source branches left out of the next N listings that would show them.
    pub hidden: HashMap<String, usize>,
    /// How long a listing takes to answer, as [`GithubState::list_delay`].
    pub list_delay: Duration,
    /// The auth scheme of every call (`Basic`, `Bearer`), in order (Azure DevOps).
    pub schemes: Vec<String>,
}

/// [`unhidden`] for items whose branch is at JSON `pointer`.
fn unhidden_at(hidden: &mut HashMap<String, usize>, list: Vec<Value>, pointer: &str) -> Vec<Value> {
    let flat: Vec<Value> = list
        .into_iter()
        .map(|mut p| {
            let b = p.pointer(pointer).cloned().unwrap_or(Value::Null);
            let b = b.as_str().unwrap_or_default();
            p["__head"] = json!(b.strip_prefix("refs/heads/").unwrap_or(b));
            p
        })
        .collect();
    unhidden(hidden, flat, "__head")
        .into_iter()
        .map(|mut p| {
            if let Some(m) = p.as_object_mut() {
                m.remove("__head");
            }
            p
        })
        .collect()
}

/// The value of `key = "…"` in a Bitbucket Cloud query (`\"` and `\\` unescaped).
fn bbql_value(q: &str, key: &str) -> Option<String> {
    let start = q.find(&format!("{key} = \""))? + key.len() + 4;
    let mut out = String::new();
    let mut chars = q[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return Some(out),
            c => out.push(c),
        }
    }
    None
}

// --- Bitbucket Cloud ---------------------------------------------------------------------------

/// Bitbucket Cloud's API 2.0 for the repository `acme/infra` (`Authorization: Bearer`).
#[derive(Clone)]
pub struct BitbucketFake {
    state: Arc<Mutex<PullState>>,
    token: String,
}

fn bitbucket_repo(full_name: &str) -> Value {
    json!({"type": "repository", "full_name": full_name, "name": "infra",
           "uuid": if full_name == "acme/infra" { "{b1}" } else { "{b2}" }})
}

fn bitbucket_pull(id: u64, source: &str, dest: &str, title: &str, description: &str) -> Value {
    json!({
        "type": "pullrequest",
        "id": id,
        "title": title,
        "description": description,
        "state": "OPEN",
        "draft": false,
        "author": {"type": "user", "display_name": "image-updater", "uuid": "{bot}"},
        "source": {"branch": {"name": source}, "commit": {"hash": "0000000"}, "repository": bitbucket_repo("acme/infra")},
        "destination": {"branch": {"name": dest}, "commit": {"hash": "0000000"}, "repository": bitbucket_repo("acme/infra")},
        "reviewers": [],
        "participants": [],
        "close_source_branch": false,
        "comment_count": 0,
        "links": {
            "self": {"href": format!("https://api.bitbucket.example/2.0/repositories/acme/infra/pullrequests/{id}")},
            "html": {"href": format!("https://bitbucket.example/acme/infra/pull-requests/{id}")}
        },
        "created_on": "2024-05-01T10:00:00.000000+00:00",
        "updated_on": "2024-05-01T10:00:00.000000+00:00"
    })
}

fn bitbucket_error(status: u16, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .set_body_json(json!({"type": "error", "error": {"message": message}}))
}

impl BitbucketFake {
    pub fn new(token: &str) -> BitbucketFake {
        BitbucketFake {
            state: Arc::default(),
            token: token.to_string(),
        }
    }

    pub fn state(&self) -> MutexGuard<'_, PullState> {
        self.state.lock().unwrap()
    }

    pub fn open(&self, head: &str, base: &str, title: &str, body: &str) -> u64 {
        let mut s = self.state();
        let id = s.pulls.len() as u64 + 1;
        s.pulls.push(bitbucket_pull(id, head, base, title, body));
        id
    }

    /// A pull request from the fork `contributor/infra`: listed with ours, not ours.
    pub fn open_from_fork(&self, head: &str, base: &str, title: &str) -> u64 {
        let mut s = self.state();
        let id = s.pulls.len() as u64 + 1;
        let mut p = bitbucket_pull(id, head, base, title, "a contributor's change");
        p["source"]["repository"] = bitbucket_repo("contributor/infra");
        s.pulls.push(p);
        id
    }
}

impl Respond for BitbucketFake {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let call = Call::of(req);
        let mut bb = self.state.lock().unwrap();
        bb.calls.push(call.line());
        if call.h("authorization") != format!("Bearer {}", self.token) {
            return bitbucket_error(
                401,
                "Token is invalid, expired, or not supported for this endpoint.",
            );
        }
        if call.h("user-agent").is_empty() {
            bb.problems
                .push(format!("{} without User-Agent", call.line()));
        }
        let Some(rest) = call
            .path
            .strip_prefix("/2.0/repositories/acme/infra/pullrequests")
        else {
            bb.problems.push(format!("unexpected {}", call.line()));
            return bitbucket_error(404, "Resource not found");
        };
        let segs: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
        let mut problems = Vec::new();
        let answer = match (call.method.as_str(), segs.as_slice()) {
            ("GET", [""]) => {
                let q = call.q("q").unwrap_or_default();
                let source = bbql_value(&q, "source.branch.name");
                if source.is_none() || bbql_value(&q, "state").as_deref() != Some("OPEN") {
                    problems.push(format!(
                        "{}: not filtered by source branch and state OPEN",
                        call.line()
                    ));
                }
                let dest = bbql_value(&q, "destination.branch.name");
                let pagelen: usize = call.q("pagelen").and_then(|p| p.parse().ok()).unwrap_or(10);
                if pagelen == 0 || pagelen > 50 {
                    problems.push(format!("{}: pagelen {pagelen}", call.line()));
                }
                let list: Vec<Value> = bb
                    .pulls
                    .iter()
                    .filter(|p| p["state"] == "OPEN")
                    .filter(|p| {
                        source
                            .as_deref()
                            .is_none_or(|s| p["source"]["branch"]["name"] == s)
                    })
                    .filter(|p| {
                        dest.as_deref()
                            .is_none_or(|d| p["destination"]["branch"]["name"] == d)
                    })
                    .cloned()
                    .collect();
                let list = unhidden_at(&mut bb.hidden, list, "/source/branch/name");
                ResponseTemplate::new(200)
                    .set_body_json(
                        json!({"pagelen": pagelen, "page": 1, "size": list.len(), "values": list}),
                    )
                    .set_delay(bb.list_delay)
            }
            ("POST", [""]) => {
                check_body(
                    &mut problems,
                    &call,
                    &["title"],
                    &[
                        "title",
                        "description",
                        "source",
                        "destination",
                        "reviewers",
                        "close_source_branch",
                        "draft",
                        "summary",
                    ],
                );
                let source = call.body["source"]["branch"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let dest = call.body["destination"]["branch"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                if source.is_empty() || dest.is_empty() {
                    problems.push(format!(
                        "{}: no source or destination branch: {}",
                        call.line(),
                        call.body
                    ));
                }
                if bb.pulls.iter().any(|p| {
                    p["state"] == "OPEN"
                        && p["source"]["branch"]["name"] == source.as_str()
                        && p["source"]["repository"]["full_name"] == "acme/infra"
                }) {
                    bitbucket_error(
                        400,
                        &format!("There is already an open pull request from {source}."),
                    )
                } else {
                    let id = bb.pulls.len() as u64 + 1;
                    let mut p = bitbucket_pull(
                        id,
                        &source,
                        &dest,
                        call.str_field("title").unwrap_or_default(),
                        call.str_field("description").unwrap_or_default(),
                    );
                    p["draft"] = json!(call.body["draft"].as_bool().unwrap_or(false));
                    bb.pulls.push(p.clone());
                    ResponseTemplate::new(201).set_body_json(p)
                }
            }
            (m @ ("GET" | "PUT"), [n]) => {
                if m == "PUT" {
                    check_body(
                        &mut problems,
                        &call,
                        &[],
                        &[
                            "title",
                            "description",
                            "reviewers",
                            "destination",
                            "close_source_branch",
                            "draft",
                        ],
                    );
                }
                let n: u64 = n.parse().unwrap_or(0);
                let body = call.body.clone();
                let mut named = None;
                let answer = match bb.pulls.iter_mut().find(|p| p["id"] == n) {
                    None => bitbucket_error(404, "Resource not found"),
                    Some(p) if m == "GET" => ResponseTemplate::new(200).set_body_json(p.clone()),
                    Some(p) if p["state"] != "OPEN" => {
                        bitbucket_error(400, "Only open pull requests can be updated")
                    }
                    Some(p) => {
                        for key in ["title", "description"] {
                            if let Some(v) = body[key].as_str() {
                                p[key] = json!(v);
                            }
                        }
                        if let Some(list) = body["reviewers"].as_array() {
                            let mut names = Vec::new();
                            let mut accounts = Vec::new();
                            for r in list {
                                let uuid = r["uuid"].as_str().unwrap_or_default();
                                match user_named(uuid) {
                                    Some(name) => {
                                        names.push(name.to_string());
                                        accounts.push(json!({"type": "user", "uuid": uuid, "display_name": name}));
                                    }
                                    None => problems
                                        .push(format!("{}: unknown reviewer {r}", call.line())),
                                }
                            }
                            p["reviewers"] = Value::Array(accounts);
                            named = Some(names);
                        }
                        ResponseTemplate::new(200).set_body_json(p.clone())
                    }
                };
                if let Some(names) = named {
                    bb.reviewers.retain(|(k, _)| *k != n);
                    bb.reviewers.push((n, names));
                }
                answer
            }
            ("POST", [n, "decline"]) => {
                if !call.body.is_null() && call.body != json!({}) {
                    problems.push(format!(
                        "{}: decline with a body {}",
                        call.line(),
                        call.body
                    ));
                }
                let n: u64 = n.parse().unwrap_or(0);
                match bb.pulls.iter_mut().find(|p| p["id"] == n) {
                    None => bitbucket_error(404, "Resource not found"),
                    Some(p) => {
                        p["state"] = json!("DECLINED");
                        ResponseTemplate::new(200).set_body_json(p.clone())
                    }
                }
            }
            ("POST", [n, "comments"]) => {
                check_body(&mut problems, &call, &[], &["content", "inline", "parent"]);
                let text = call.body["content"]["raw"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                if text.is_empty() {
                    problems.push(format!(
                        "{}: comment without content.raw: {}",
                        call.line(),
                        call.body
                    ));
                }
                let n: u64 = n.parse().unwrap_or(0);
                bb.comments.push((n, text.clone()));
                ResponseTemplate::new(201).set_body_json(json!({"type": "pullrequest_comment", "id": 700 + bb.comments.len(), "content": {"raw": text, "markup": "markdown"}}))
            }
            _ => {
                problems.push(format!("unexpected {}", call.line()));
                bitbucket_error(404, "Resource not found")
            }
        };
        bb.problems.extend(problems);
        answer
    }
}

// --- Bitbucket Data Center ---------------------------------------------------------------------

/// Bitbucket Data Center's REST API for the repository `ACME/infra` (repository id 1;
/// `Authorization: Bearer`).
#[derive(Clone)]
pub struct BitbucketDcFake {
    state: Arc<Mutex<PullState>>,
    token: String,
}

fn bitbucket_dc_ref(branch: &str, repo_id: u64) -> Value {
    let (key, slug) = if repo_id == 1 {
        ("ACME", "infra")
    } else {
        ("~CONTRIBUTOR", "infra")
    };
    json!({"id": format!("refs/heads/{branch}"), "displayId": branch, "latestCommit": "0000000000000000000000000000000000000000",
           "repository": {"id": repo_id, "slug": slug, "name": slug, "project": {"key": key}}})
}

fn bitbucket_dc_pull(id: u64, from: &str, to: &str, title: &str, description: &str) -> Value {
    json!({
        "id": id,
        "version": 0,
        "title": title,
        "description": description,
        "state": "OPEN",
        "open": true,
        "closed": false,
        "draft": false,
        "locked": false,
        "createdDate": 1714557600000u64,
        "updatedDate": 1714557600000u64,
        "fromRef": bitbucket_dc_ref(from, 1),
        "toRef": bitbucket_dc_ref(to, 1),
        "author": {"user": {"name": "image-updater", "slug": "image-updater"}, "role": "AUTHOR", "approved": false, "status": "UNAPPROVED"},
        "reviewers": [],
        "participants": [],
        "links": {"self": [{"href": format!("https://bitbucket.example.com/projects/ACME/repos/infra/pull-requests/{id}")}]}
    })
}

fn bitbucket_dc_error(status: u16, message: &str, exception: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(
        json!({"errors": [{"context": null, "message": message, "exceptionName": exception}]}),
    )
}

impl BitbucketDcFake {
    pub fn new(token: &str) -> BitbucketDcFake {
        BitbucketDcFake {
            state: Arc::default(),
            token: token.to_string(),
        }
    }

    pub fn state(&self) -> MutexGuard<'_, PullState> {
        self.state.lock().unwrap()
    }

    pub fn open(&self, head: &str, base: &str, title: &str, body: &str) -> u64 {
        let mut s = self.state();
        let id = s.pulls.len() as u64 + 1;
        s.pulls.push(bitbucket_dc_pull(id, head, base, title, body));
        id
    }

    /// A pull request from a personal fork (repository id 2): not one of this repository's
    /// outgoing pull requests.
    pub fn open_from_fork(&self, head: &str, base: &str, title: &str) -> u64 {
        let mut s = self.state();
        let id = s.pulls.len() as u64 + 1;
        let mut p = bitbucket_dc_pull(id, head, base, title, "a contributor's change");
        p["fromRef"] = bitbucket_dc_ref(head, 2);
        s.pulls.push(p);
        id
    }

    /// The 409 to answer an edit naming `version` when `p` is at another one.
    fn out_of_date(p: &Value, version: Option<u64>) -> Option<ResponseTemplate> {
        let current = p["version"].as_u64().unwrap_or(0);
        (version != Some(current)).then(|| {
            ResponseTemplate::new(409).set_body_json(json!({"errors": [{"context": null,
                "message": "You are attempting to modify a pull request based on out-of-date information.",
                "exceptionName": "com.atlassian.bitbucket.pull.PullRequestOutOfDateException",
                "currentVersion": current}]}))
        })
    }
}

impl Respond for BitbucketDcFake {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let call = Call::of(req);
        let mut dc = self.state.lock().unwrap();
        dc.calls.push(call.line());
        if call.h("authorization") != format!("Bearer {}", self.token) {
            return bitbucket_dc_error(
                401,
                "Authentication failed. Please check your credentials and try again.",
                "com.atlassian.bitbucket.auth.IncorrectPasswordAuthenticationException",
            );
        }
        if call.h("user-agent").is_empty() {
            dc.problems
                .push(format!("{} without User-Agent", call.line()));
        }
        let Some(rest) = call
            .path
            .strip_prefix("/rest/api/1.0/projects/ACME/repos/infra/pull-requests")
        else {
            dc.problems.push(format!("unexpected {}", call.line()));
            return bitbucket_dc_error(
                404,
                "Repository ACME/infra does not exist.",
                "com.atlassian.bitbucket.repository.NoSuchRepositoryException",
            );
        };
        let segs: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
        let mut problems = Vec::new();
        let not_found = |n: &str| {
            bitbucket_dc_error(
                404,
                &format!("Pull request {n} does not exist in ACME/infra."),
                "com.atlassian.bitbucket.pull.NoSuchPullRequestException",
            )
        };
        let answer = match (call.method.as_str(), segs.as_slice()) {
            ("GET", [""]) => {
                let at = call.q("at").unwrap_or_default();
                if !at.starts_with("refs/heads/")
                    || call.q("direction").as_deref() != Some("OUTGOING")
                    || call.q("state").as_deref() != Some("OPEN")
                {
                    problems.push(format!(
                        "{}: not listed by source ref, OUTGOING, OPEN",
                        call.line()
                    ));
                }
                let limit: usize = call.q("limit").and_then(|p| p.parse().ok()).unwrap_or(25);
                let start: usize = call.q("start").and_then(|p| p.parse().ok()).unwrap_or(0);
                let all: Vec<Value> = dc
                    .pulls
                    .iter()
                    .filter(|p| {
                        p["state"] == "OPEN"
                            && p["fromRef"]["repository"]["id"] == 1
                            && p["fromRef"]["id"] == at.as_str()
                    })
                    .cloned()
                    .collect();
                let total = all.len();
                let page: Vec<Value> = all.into_iter().skip(start).take(limit.max(1)).collect();
                let last = start + page.len() >= total;
                let n = page.len();
                let page = unhidden_at(&mut dc.hidden, page, "/fromRef/id");
                let mut body = json!({"size": n, "limit": limit, "start": start, "isLastPage": last, "values": page});
                if !last {
                    body["nextPageStart"] = json!(start + n);
                }
                ResponseTemplate::new(200)
                    .set_body_json(body)
                    .set_delay(dc.list_delay)
            }
            ("POST", [""]) => {
                check_body(
                    &mut problems,
                    &call,
                    &["title"],
                    &[
                        "title",
                        "description",
                        "fromRef",
                        "toRef",
                        "reviewers",
                        "draft",
                        "state",
                        "open",
                        "closed",
                        "locked",
                    ],
                );
                let from = call.body["fromRef"]["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let to = call.body["toRef"]["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                for (which, r) in [
                    ("fromRef", &call.body["fromRef"]),
                    ("toRef", &call.body["toRef"]),
                ] {
                    if !r["id"]
                        .as_str()
                        .unwrap_or_default()
                        .starts_with("refs/heads/")
                        || r["repository"]["slug"] != "infra"
                        || r["repository"]["project"]["key"] != "ACME"
                    {
                        problems.push(format!("{}: {which} {r}", call.line()));
                    }
                }
                let branch = |r: &str| r.strip_prefix("refs/heads/").unwrap_or(r).to_string();
                if let Some(dup) = dc.pulls.iter().find(|p| {
                    p["state"] == "OPEN"
                        && p["fromRef"]["repository"]["id"] == 1
                        && p["fromRef"]["id"] == from.as_str()
                        && p["toRef"]["id"] == to.as_str()
                }) {
                    ResponseTemplate::new(409).set_body_json(json!({"errors": [{"context": null,
                        "message": "Only one pull request may be open for a given source and target branch",
                        "exceptionName": "com.atlassian.bitbucket.pull.DuplicatePullRequestException",
                        "existingPullRequest": dup}]}))
                } else {
                    let id = dc.pulls.len() as u64 + 1;
                    let mut p = bitbucket_dc_pull(
                        id,
                        &branch(&from),
                        &branch(&to),
                        call.str_field("title").unwrap_or_default(),
                        call.str_field("description").unwrap_or_default(),
                    );
                    p["draft"] = json!(call.body["draft"].as_bool().unwrap_or(false));
                    dc.pulls.push(p.clone());
                    ResponseTemplate::new(201).set_body_json(p)
                }
            }
            (m @ ("GET" | "PUT"), [n]) => {
                if m == "PUT" {
                    check_body(
                        &mut problems,
                        &call,
                        &[],
                        &[
                            "title",
                            "description",
                            "version",
                            "reviewers",
                            "toRef",
                            "draft",
                        ],
                    );
                }
                let version = call.body["version"].as_u64();
                let body = call.body.clone();
                match dc
                    .pulls
                    .iter_mut()
                    .find(|p| p["id"].as_u64() == n.parse().ok())
                {
                    None => not_found(n),
                    Some(p) if m == "GET" => ResponseTemplate::new(200).set_body_json(p.clone()),
                    Some(p) => match Self::out_of_date(p, version) {
                        Some(refused) => {
                            problems.push(format!(
                                "{}: version {version:?}, at {}",
                                call.line(),
                                p["version"]
                            ));
                            refused
                        }
                        None => {
                            for key in ["title", "description"] {
                                if let Some(v) = body[key].as_str() {
                                    p[key] = json!(v);
                                }
                            }
                            p["version"] = json!(p["version"].as_u64().unwrap_or(0) + 1);
                            ResponseTemplate::new(200).set_body_json(p.clone())
                        }
                    },
                }
            }
            ("POST", [n, "decline"]) => {
                let version = call.q("version").and_then(|v| v.parse().ok());
                match dc
                    .pulls
                    .iter_mut()
                    .find(|p| p["id"].as_u64() == n.parse().ok())
                {
                    None => not_found(n),
                    Some(p) => match Self::out_of_date(p, version) {
                        Some(refused) => {
                            problems.push(format!(
                                "{}: version {version:?}, at {}",
                                call.line(),
                                p["version"]
                            ));
                            refused
                        }
                        None => {
                            p["state"] = json!("DECLINED");
                            p["open"] = json!(false);
                            p["closed"] = json!(true);
                            p["version"] = json!(p["version"].as_u64().unwrap_or(0) + 1);
                            ResponseTemplate::new(200).set_body_json(p.clone())
                        }
                    },
                }
            }
            ("POST", [n, "comments"]) => {
                check_body(
                    &mut problems,
                    &call,
                    &["text"],
                    &["text", "parent", "anchor", "severity", "state"],
                );
                let text = call.str_field("text").unwrap_or_default().to_string();
                dc.comments.push((n.parse().unwrap_or(0), text.clone()));
                ResponseTemplate::new(201).set_body_json(
                    json!({"id": 800 + dc.comments.len(), "version": 0, "text": text}),
                )
            }
            ("POST", [n, "participants"]) => {
                check_body(
                    &mut problems,
                    &call,
                    &["role"],
                    &["user", "role", "status", "approved", "lastReviewedCommit"],
                );
                let name = call.body["user"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                if call.str_field("role") != Some("REVIEWER") {
                    problems.push(format!("{}: role {:?}", call.line(), call.body["role"]));
                }
                let n: u64 = n.parse().unwrap_or(0);
                if !USERS.iter().any(|(u, _, _)| *u == name) {
                    bitbucket_dc_error(
                        404,
                        &format!("User {name} does not exist."),
                        "com.atlassian.bitbucket.user.NoSuchUserException",
                    )
                } else {
                    if let Some(p) = dc.pulls.iter_mut().find(|p| p["id"] == n) {
                        let reviewers = p["reviewers"].as_array_mut().unwrap();
                        reviewers.push(json!({"user": {"name": name, "slug": name}, "role": "REVIEWER", "approved": false, "status": "UNAPPROVED"}));
                    }
                    dc.reviewers.push((n, vec![name.clone()]));
                    ResponseTemplate::new(200).set_body_json(json!({"user": {"name": name, "slug": name}, "role": "REVIEWER", "approved": false, "status": "UNAPPROVED"}))
                }
            }
            _ => {
                problems.push(format!("unexpected {}", call.line()));
                not_found("?")
            }
        };
        dc.problems.extend(problems);
        answer
    }
}

// --- Azure DevOps ------------------------------------------------------------------------------

/// Azure DevOps' REST API 7.1 for the repository `infra` of project `platform` in the
/// organization `acme` (`Authorization: Basic` of an empty user and a PAT, or `Bearer` and an
/// OAuth token, each scheme noted in [`PullState::schemes`]; every request names
/// `api-version=7.1`).
#[derive(Clone)]
pub struct AzureFake {
    state: Arc<Mutex<PullState>>,
    token: String,
}

fn azure_pull(id: u64, source: &str, target: &str, title: &str, description: &str) -> Value {
    json!({
        "pullRequestId": id,
        "codeReviewId": id,
        "status": "active",
        "createdBy": {"id": AZURE_BOT_ID, "displayName": "Project Collection Build Service (acme)", "uniqueName": "build@acme"},
        "creationDate": "2024-05-01T10:00:00.000Z",
        "title": title,
        "description": description,
        "sourceRefName": format!("refs/heads/{source}"),
        "targetRefName": format!("refs/heads/{target}"),
        "mergeStatus": "succeeded",
        "isDraft": false,
        "mergeId": "00000000-0000-0000-0000-000000000000",
        "reviewers": [],
        "labels": [],
        "url": format!("https://dev.azure.example/acme/6ce954b1-0000-4000-8000-000000000001/_apis/git/repositories/2f3d0000-0000-4000-8000-000000000002/pullRequests/{id}"),
        "repository": {
            "id": "2f3d0000-0000-4000-8000-000000000002",
            "name": "infra",
            "url": "https://dev.azure.example/acme/6ce954b1-0000-4000-8000-000000000001/_apis/git/repositories/2f3d0000-0000-4000-8000-000000000002",
            "project": {"id": "6ce954b1-0000-4000-8000-000000000001", "name": "platform", "state": "wellFormed"},
            "webUrl": "https://dev.azure.example/acme/platform/_git/infra"
        },
        "supportsIterations": true
    })
}

fn azure_error(status: u16, message: &str, type_key: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "$id": "1", "innerException": null, "message": message,
        "typeName": format!("Microsoft.TeamFoundation.Git.Server.{type_key}, Microsoft.TeamFoundation.Git.Server"),
        "typeKey": type_key, "errorCode": 0, "eventId": 3000
    }))
}

impl AzureFake {
    pub fn new(token: &str) -> AzureFake {
        AzureFake {
            state: Arc::default(),
            token: token.to_string(),
        }
    }

    pub fn state(&self) -> MutexGuard<'_, PullState> {
        self.state.lock().unwrap()
    }

    pub fn open(&self, head: &str, base: &str, title: &str, body: &str) -> u64 {
        let mut s = self.state();
        let id = s.pulls.len() as u64 + 1;
        s.pulls.push(azure_pull(id, head, base, title, body));
        id
    }

    /// A pull request from a fork (`forkSource` set): listed with ours, not ours.
    pub fn open_from_fork(&self, head: &str, base: &str, title: &str) -> u64 {
        let mut s = self.state();
        let id = s.pulls.len() as u64 + 1;
        let mut p = azure_pull(id, head, base, title, "a contributor's change");
        p["forkSource"] = json!({"name": format!("refs/heads/{head}"), "repository": {"id": "f0f0", "name": "infra-fork"}});
        p["createdBy"] = json!({"id": "c0c0", "displayName": "A Contributor"});
        s.pulls.push(p);
        id
    }
}

impl Respond for AzureFake {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        use base64::Engine as _;
        let call = Call::of(req);
        let mut az = self.state.lock().unwrap();
        az.calls.push(call.line());
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(":{}", self.token));
        let auth = call.h("authorization").to_string();
        if auth != format!("Basic {basic}") && auth != format!("Bearer {}", self.token) {
            return azure_error(
                401,
                "TF400813: The user '' is not authorized to access this resource.",
                "UnauthorizedRequestException",
            );
        }
        if call.h("user-agent").is_empty() {
            az.problems
                .push(format!("{} without User-Agent", call.line()));
        }
        let scheme = auth.split(' ').next().unwrap_or_default().to_string();
        az.schemes.push(scheme);
        if call.q("api-version").as_deref() != Some("7.1") {
            az.problems
                .push(format!("{}: api-version is not 7.1", call.line()));
            return azure_error(
                400,
                "No api-version was supplied for the request.",
                "VssVersionNotSpecifiedException",
            );
        }
        let lower = call.path.to_ascii_lowercase();
        let Some(rest) =
            lower.strip_prefix("/acme/platform/_apis/git/repositories/infra/pullrequests")
        else {
            az.problems.push(format!("unexpected {}", call.line()));
            return azure_error(404, "TF401019: The Git repository with name or identifier infra does not exist or you do not have permissions for the operation you are attempting.", "GitRepositoryNotFoundException");
        };
        // Ids keep their case: take them from the path as sent.
        let sent = &call.path[call.path.len() - rest.len()..];
        let segs: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
        let sent_segs: Vec<&str> = sent.trim_start_matches('/').split('/').collect();
        let mut problems = Vec::new();
        let not_found = |n: &str| {
            azure_error(
                404,
                &format!("TF401180: The requested pull request {n} was not found."),
                "GitPullRequestNotFoundException",
            )
        };
        let answer = match (call.method.as_str(), segs.as_slice()) {
            ("GET", [""]) => {
                let source = call.q("searchCriteria.sourceRefName");
                if source.is_none() || call.q("searchCriteria.status").as_deref() != Some("active")
                {
                    problems.push(format!(
                        "{}: not listed by source ref and status active",
                        call.line()
                    ));
                }
                let target = call.q("searchCriteria.targetRefName");
                let list: Vec<Value> = az
                    .pulls
                    .iter()
                    .filter(|p| p["status"] == "active")
                    .filter(|p| source.as_deref().is_none_or(|s| p["sourceRefName"] == s))
                    .filter(|p| target.as_deref().is_none_or(|t| p["targetRefName"] == t))
                    .cloned()
                    .collect();
                let list = unhidden_at(&mut az.hidden, list, "/sourceRefName");
                ResponseTemplate::new(200)
                    .set_body_json(json!({"value": list, "count": list.len()}))
                    .set_delay(az.list_delay)
            }
            ("POST", [""]) => {
                check_body(
                    &mut problems,
                    &call,
                    &["sourceRefName", "targetRefName", "title"],
                    &[
                        "sourceRefName",
                        "targetRefName",
                        "title",
                        "description",
                        "isDraft",
                        "reviewers",
                        "labels",
                        "workItemRefs",
                        "completionOptions",
                        "mergeOptions",
                        "forkSource",
                    ],
                );
                let source = call
                    .str_field("sourceRefName")
                    .unwrap_or_default()
                    .to_string();
                let target = call
                    .str_field("targetRefName")
                    .unwrap_or_default()
                    .to_string();
                if !source.starts_with("refs/heads/") || !target.starts_with("refs/heads/") {
                    problems.push(format!("{}: refs {source:?} {target:?}", call.line()));
                }
                if az.pulls.iter().any(|p| {
                    p["status"] == "active"
                        && p["forkSource"].is_null()
                        && p["sourceRefName"] == source.as_str()
                        && p["targetRefName"] == target.as_str()
                }) {
                    azure_error(409, "TF401179: An active pull request for the source and target branch already exists.", "GitPullRequestExistsException")
                } else {
                    let id = az.pulls.len() as u64 + 1;
                    let branch = |r: &str| r.strip_prefix("refs/heads/").unwrap_or(r).to_string();
                    let mut p = azure_pull(
                        id,
                        &branch(&source),
                        &branch(&target),
                        call.str_field("title").unwrap_or_default(),
                        call.str_field("description").unwrap_or_default(),
                    );
                    p["isDraft"] = json!(call.body["isDraft"].as_bool().unwrap_or(false));
                    az.pulls.push(p.clone());
                    ResponseTemplate::new(201).set_body_json(p)
                }
            }
            (m @ ("GET" | "PATCH"), [n]) => {
                if m == "PATCH" {
                    check_body(
                        &mut problems,
                        &call,
                        &[],
                        &[
                            "title",
                            "description",
                            "status",
                            "isDraft",
                            "autoCompleteSetBy",
                            "completionOptions",
                            "mergeOptions",
                            "targetRefName",
                        ],
                    );
                }
                let body = call.body.clone();
                let id: u64 = n.parse().unwrap_or(0);
                let mut auto = false;
                let answer = match az.pulls.iter_mut().find(|p| p["pullRequestId"] == id) {
                    None => not_found(n),
                    Some(p) if m == "GET" => ResponseTemplate::new(200).set_body_json(p.clone()),
                    Some(p) => {
                        for key in ["title", "description"] {
                            if let Some(v) = body[key].as_str() {
                                p[key] = json!(v);
                            }
                        }
                        match body["status"].as_str() {
                            Some(s @ ("abandoned" | "active" | "completed")) => {
                                p["status"] = json!(s)
                            }
                            Some(other) => {
                                problems.push(format!("{}: status {other:?}", call.line()))
                            }
                            None => {}
                        }
                        if let Some(by) = body.get("autoCompleteSetBy") {
                            if by["id"] != p["createdBy"]["id"] {
                                problems.push(format!(
                                    "{}: auto-complete set by {by}, not the creator",
                                    call.line()
                                ));
                            }
                            p["autoCompleteSetBy"] = by.clone();
                            auto = true;
                        }
                        ResponseTemplate::new(200).set_body_json(p.clone())
                    }
                };
                if auto {
                    az.auto_merge.push(id);
                }
                answer
            }
            ("POST", [n, "threads"]) => {
                check_body(
                    &mut problems,
                    &call,
                    &[],
                    &[
                        "comments",
                        "status",
                        "properties",
                        "threadContext",
                        "pullRequestThreadContext",
                    ],
                );
                let text = call.body["comments"][0]["content"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                if text.is_empty() {
                    problems.push(format!(
                        "{}: thread without a comment: {}",
                        call.line(),
                        call.body
                    ));
                }
                az.comments.push((n.parse().unwrap_or(0), text.clone()));
                ResponseTemplate::new(200).set_body_json(json!({"id": 900 + az.comments.len(), "status": call.body["status"], "comments": [{"id": 1, "parentCommentId": 0, "content": text, "commentType": "text"}]}))
            }
            ("POST", [n, "labels"]) => {
                check_body(&mut problems, &call, &["name"], &["name"]);
                let name = call.str_field("name").unwrap_or_default().to_string();
                let id: u64 = n.parse().unwrap_or(0);
                if let Some(p) = az.pulls.iter_mut().find(|p| p["pullRequestId"] == id) {
                    p["labels"]
                        .as_array_mut()
                        .unwrap()
                        .push(json!({"id": format!("label-{name}"), "name": name, "active": true}));
                }
                az.labels.push((id, vec![name.clone()]));
                ResponseTemplate::new(200).set_body_json(
                    json!({"id": format!("label-{name}"), "name": name, "active": true}),
                )
            }
            ("PUT", [n, "reviewers", _]) => {
                check_body(
                    &mut problems,
                    &call,
                    &[],
                    &["vote", "isRequired", "isFlagged", "hasDeclined", "id"],
                );
                let reviewer = sent_segs[2];
                let id: u64 = n.parse().unwrap_or(0);
                match user_named(reviewer) {
                    None => azure_error(
                        400,
                        &format!("The identity {reviewer} could not be found."),
                        "IdentityNotFoundException",
                    ),
                    Some(name) => {
                        if let Some(p) = az.pulls.iter_mut().find(|p| p["pullRequestId"] == id) {
                            p["reviewers"]
                                .as_array_mut()
                                .unwrap()
                                .push(json!({"id": reviewer, "displayName": name, "vote": 0}));
                        }
                        az.reviewers.push((id, vec![name.to_string()]));
                        ResponseTemplate::new(200).set_body_json(
                            json!({"id": reviewer, "displayName": name, "vote": call.body["vote"]}),
                        )
                    }
                }
            }
            _ => {
                problems.push(format!("unexpected {}", call.line()));
                not_found("?")
            }
        };
        az.problems.extend(problems);
        answer
    }
}

// ---------------------------------------------------------------------------------------------
// Any of them, for scenarios that run on every forge
// ---------------------------------------------------------------------------------------------

/// Which forge a scenario runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forge {
    Github,
    Gitlab,
    Gitea,
    BitbucketCloud,
    BitbucketDc,
    Azure,
}

impl Forge {
    pub const ALL: [Forge; 6] = [
        Forge::Github,
        Forge::Gitlab,
        Forge::Gitea,
        Forge::BitbucketCloud,
        Forge::BitbucketDc,
        Forge::Azure,
    ];

    /// The name `delivery.forge` takes.
    pub fn name(self) -> &'static str {
        match self {
            Forge::Github => "github",
            Forge::Gitlab => "gitlab",
            Forge::Gitea => "gitea",
            Forge::BitbucketCloud => "bitbucket",
            Forge::BitbucketDc => "bitbucket-server",
            Forge::Azure => "azure-devops",
        }
    }

    /// The API root of this forge's fake served at `uri`.
    pub fn api_url(self, uri: &str) -> String {
        match self {
            Forge::Github => uri.to_string(),
            Forge::Gitlab => format!("{uri}/api/v4"),
            Forge::Gitea => format!("{uri}/api/v1"),
            Forge::BitbucketCloud => format!("{uri}/2.0"),
            Forge::BitbucketDc => format!("{uri}/rest/api/1.0"),
            Forge::Azure => format!("{uri}/acme"),
        }
    }

    /// The repository (GitLab: project path; Azure DevOps: project/repository) the fake serves.
    pub fn repository(self) -> &'static str {
        match self {
            Forge::Gitlab => "acme/platform/infra",
            Forge::Github | Forge::Gitea | Forge::BitbucketCloud => "acme/infra",
            Forge::BitbucketDc => "ACME/infra",
            Forge::Azure => "platform/infra",
        }
    }

    /// The forge's own token variable.
    pub fn token_env(self) -> &'static str {
        match self {
            Forge::Github => "GITHUB_TOKEN",
            Forge::Gitlab => "GITLAB_TOKEN",
            Forge::Gitea => "GITEA_TOKEN",
            Forge::BitbucketCloud => "BITBUCKET_ACCESS_TOKEN",
            Forge::BitbucketDc => "BITBUCKET_ACCESS_TOKEN",
            // A PAT, sent as Basic (Azure Pipelines' SYSTEM_ACCESSTOKEN is sent as Bearer).
            Forge::Azure => "AZURE_DEVOPS_EXT_PAT",
        }
    }

    /// How a draft's title starts on this forge (the others mark drafts with a field).
    pub fn draft_prefix(self) -> &'static str {
        match self {
            Forge::Gitlab => "Draft: ",
            Forge::Gitea => "WIP: ",
            _ => "",
        }
    }

    /// The message the fake answers a wrong token with (401).
    pub fn refusal(self) -> &'static str {
        match self {
            Forge::Github => "Bad credentials",
            Forge::Gitlab => "401 Unauthorized",
            Forge::Gitea => "token is required",
            Forge::BitbucketCloud => "Token is invalid",
            Forge::BitbucketDc => "Authentication failed",
            Forge::Azure => "TF400813",
        }
    }

    /// How the config names the user called `name` as a reviewer: the name, a Bitbucket Cloud
    /// account uuid, an Azure DevOps identity id.
    pub fn reviewer(self, name: &str) -> String {
        let user = USERS.iter().find(|(n, _, _)| *n == name);
        match (self, user) {
            (Forge::BitbucketCloud, Some((_, uuid, _))) => uuid.to_string(),
            (Forge::Azure, Some((_, _, id))) => id.to_string(),
            _ => name.to_string(),
        }
    }

    /// Whether the forge has pull request labels.
    pub fn has_labels(self) -> bool {
        !matches!(self, Forge::BitbucketCloud | Forge::BitbucketDc)
    }

    /// Whether the forge has pull request assignees.
    pub fn has_assignees(self) -> bool {
        matches!(self, Forge::Github | Forge::Gitlab | Forge::Gitea)
    }

    /// Whether the forge merges a pull request once its checks pass, when asked.
    pub fn has_auto_merge(self) -> bool {
        !matches!(self, Forge::BitbucketCloud | Forge::BitbucketDc)
    }

    /// `delivery:` lines pointing a run at this forge's fake on `uri`, then `extra` lines.
    pub fn delivery(self, uri: &str, extra: &str) -> String {
        format!(
            "  mode: pull-request\n  forge: {}\n  api_url: {}\n  repository: {}\n{extra}",
            self.name(),
            self.api_url(uri),
            self.repository()
        )
    }
}

/// One pull/merge request as any of the fakes holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pr {
    pub number: u64,
    pub head: String,
    pub base: String,
    /// As the forge stores it: with GitLab's `Draft: ` or Gitea's `WIP: ` prefix.
    pub title: String,
    pub body: String,
    pub open: bool,
    pub draft: bool,
    pub labels: Vec<String>,
    pub reviewers: Vec<String>,
    pub assignees: Vec<String>,
}

/// The fake of one forge, read in one shape.
#[derive(Clone)]
pub enum ForgeFake {
    Github(GithubFake),
    Gitlab(GitlabFake),
    Gitea(GiteaFake),
    BitbucketCloud(BitbucketFake),
    BitbucketDc(BitbucketDcFake),
    Azure(AzureFake),
}

/// The strings of a JSON array (of strings, or of objects' `key`); none for anything else.
fn names(list: &Value, key: Option<&str>) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| match key {
            Some(k) => v[k].as_str(),
            None => v.as_str(),
        })
        .map(str::to_string)
        .collect()
}

/// Everything logged for `number` in `log`, in order.
fn logged(log: &[(u64, Vec<String>)], number: u64) -> Vec<String> {
    log.iter()
        .filter(|(n, _)| *n == number)
        .flat_map(|(_, v)| v.clone())
        .collect()
}

impl ForgeFake {
    /// A fresh fake of `forge`, accepting `token`, on a server of its own.
    pub async fn start(forge: Forge, token: &str) -> (ForgeFake, MockServer) {
        let server = MockServer::start().await;
        let fake = match forge {
            Forge::Github => ForgeFake::Github(GithubFake::new(token)),
            Forge::Gitlab => ForgeFake::Gitlab(GitlabFake::new(token)),
            Forge::Gitea => ForgeFake::Gitea(GiteaFake::new(token)),
            Forge::BitbucketCloud => ForgeFake::BitbucketCloud(BitbucketFake::new(token)),
            Forge::BitbucketDc => ForgeFake::BitbucketDc(BitbucketDcFake::new(token)),
            Forge::Azure => ForgeFake::Azure(AzureFake::new(token)),
        };
        match &fake {
            ForgeFake::Github(f) => mount_fake(&server, f.clone()).await,
            ForgeFake::Gitlab(f) => mount_fake(&server, f.clone()).await,
            ForgeFake::Gitea(f) => mount_fake(&server, f.clone()).await,
            ForgeFake::BitbucketCloud(f) => mount_fake(&server, f.clone()).await,
            ForgeFake::BitbucketDc(f) => mount_fake(&server, f.clone()).await,
            ForgeFake::Azure(f) => mount_fake(&server, f.clone()).await,
        }
        (fake, server)
    }

    /// Every pull request the forge holds, in the order they were opened.
    pub fn prs(&self) -> Vec<Pr> {
        match self {
            ForgeFake::Github(f) => {
                let s = f.state();
                s.prs
                    .iter()
                    .map(|p| {
                        let n = p["number"].as_u64().unwrap_or(0);
                        Pr {
                            number: n,
                            head: p["head"]["ref"].as_str().unwrap_or_default().into(),
                            base: p["base"]["ref"].as_str().unwrap_or_default().into(),
                            title: p["title"].as_str().unwrap_or_default().into(),
                            body: p["body"].as_str().unwrap_or_default().into(),
                            open: p["state"] == "open",
                            draft: p["draft"] == true,
                            labels: logged(&s.labels, n),
                            reviewers: logged(&s.reviewers, n),
                            assignees: logged(&s.assignees, n),
                        }
                    })
                    .collect()
            }
            ForgeFake::Gitlab(f) => f
                .state()
                .mrs
                .iter()
                .map(|m| Pr {
                    number: m["iid"].as_u64().unwrap_or(0),
                    head: m["source_branch"].as_str().unwrap_or_default().into(),
                    base: m["target_branch"].as_str().unwrap_or_default().into(),
                    title: m["title"].as_str().unwrap_or_default().into(),
                    body: m["description"].as_str().unwrap_or_default().into(),
                    open: m["state"] == "opened",
                    draft: m["draft"] == true,
                    labels: names(&m["labels"], None),
                    reviewers: names(&m["reviewers"], Some("username")),
                    assignees: names(&m["assignees"], Some("username")),
                })
                .collect(),
            ForgeFake::Gitea(f) => {
                let s = f.state();
                s.pulls
                    .iter()
                    .map(|p| {
                        let n = p["number"].as_u64().unwrap_or(0);
                        Pr {
                            number: n,
                            head: p["head"]["ref"].as_str().unwrap_or_default().into(),
                            base: p["base"]["ref"].as_str().unwrap_or_default().into(),
                            title: p["title"].as_str().unwrap_or_default().into(),
                            body: p["body"].as_str().unwrap_or_default().into(),
                            open: p["state"] == "open",
                            draft: p["draft"] == true,
                            labels: names(&p["labels"], Some("name")),
                            reviewers: logged(&s.reviewers, n),
                            assignees: names(&p["assignees"], Some("login")),
                        }
                    })
                    .collect()
            }
            ForgeFake::BitbucketCloud(f) => {
                let s = f.state();
                s.pulls
                    .iter()
                    .map(|p| {
                        let n = p["id"].as_u64().unwrap_or(0);
                        Pr {
                            number: n,
                            head: p["source"]["branch"]["name"]
                                .as_str()
                                .unwrap_or_default()
                                .into(),
                            base: p["destination"]["branch"]["name"]
                                .as_str()
                                .unwrap_or_default()
                                .into(),
                            title: p["title"].as_str().unwrap_or_default().into(),
                            body: p["description"].as_str().unwrap_or_default().into(),
                            open: p["state"] == "OPEN",
                            draft: p["draft"] == true,
                            labels: Vec::new(),
                            reviewers: names(&p["reviewers"], Some("display_name")),
                            assignees: Vec::new(),
                        }
                    })
                    .collect()
            }
            ForgeFake::BitbucketDc(f) => {
                let s = f.state();
                s.pulls
                    .iter()
                    .map(|p| {
                        let n = p["id"].as_u64().unwrap_or(0);
                        Pr {
                            number: n,
                            head: p["fromRef"]["displayId"]
                                .as_str()
                                .unwrap_or_default()
                                .into(),
                            base: p["toRef"]["displayId"].as_str().unwrap_or_default().into(),
                            title: p["title"].as_str().unwrap_or_default().into(),
                            body: p["description"].as_str().unwrap_or_default().into(),
                            open: p["state"] == "OPEN",
                            draft: p["draft"] == true,
                            labels: Vec::new(),
                            reviewers: logged(&s.reviewers, n),
                            assignees: Vec::new(),
                        }
                    })
                    .collect()
            }
            ForgeFake::Azure(f) => {
                let s = f.state();
                s.pulls
                    .iter()
                    .map(|p| {
                        let n = p["pullRequestId"].as_u64().unwrap_or(0);
                        let branch = |r: &Value| {
                            let r = r.as_str().unwrap_or_default();
                            r.strip_prefix("refs/heads/").unwrap_or(r).to_string()
                        };
                        Pr {
                            number: n,
                            head: branch(&p["sourceRefName"]),
                            base: branch(&p["targetRefName"]),
                            title: p["title"].as_str().unwrap_or_default().into(),
                            body: p["description"].as_str().unwrap_or_default().into(),
                            open: p["status"] == "active",
                            draft: p["isDraft"] == true,
                            labels: names(&p["labels"], Some("name")),
                            reviewers: names(&p["reviewers"], Some("displayName")),
                            assignees: Vec::new(),
                        }
                    })
                    .collect()
            }
        }
    }

    /// The pull request with head branch `head` opened last.
    pub fn pr(&self, head: &str) -> Pr {
        let prs = self.prs();
        prs.iter()
            .rev()
            .find(|p| p.head == head)
            .cloned()
            .unwrap_or_else(|| panic!("no pull request from {head}: {prs:#?}"))
    }

    /// (number, text) of every comment (GitLab: note).
    pub fn comments(&self) -> Vec<(u64, String)> {
        match self {
            ForgeFake::Github(f) => f.state().comments.clone(),
            ForgeFake::Gitlab(f) => f.state().notes.clone(),
            ForgeFake::Gitea(f) => f.state().comments.clone(),
            ForgeFake::BitbucketCloud(f) => f.state().comments.clone(),
            ForgeFake::BitbucketDc(f) => f.state().comments.clone(),
            ForgeFake::Azure(f) => f.state().comments.clone(),
        }
    }

    /// The numbers of the pull requests whose auto-merge was asked for, in order.
    pub fn auto_merge(&self) -> Vec<u64> {
        match self {
            ForgeFake::Github(f) => f.state().auto_merge.clone(),
            ForgeFake::Gitlab(f) => f.state().auto_merge.clone(),
            ForgeFake::Gitea(f) => f.state().auto_merge.iter().map(|(n, _)| *n).collect(),
            ForgeFake::BitbucketCloud(f) => f.state().auto_merge.clone(),
            ForgeFake::BitbucketDc(f) => f.state().auto_merge.clone(),
            ForgeFake::Azure(f) => f.state().auto_merge.clone(),
        }
    }

    /// Every call, as `METHOD /path?query`.
    pub fn calls(&self) -> Vec<String> {
        match self {
            ForgeFake::Github(f) => f.state().calls.clone(),
            ForgeFake::Gitlab(f) => f.state().calls.clone(),
            ForgeFake::Gitea(f) => f.state().calls.clone(),
            ForgeFake::BitbucketCloud(f) => f.state().calls.clone(),
            ForgeFake::BitbucketDc(f) => f.state().calls.clone(),
            ForgeFake::Azure(f) => f.state().calls.clone(),
        }
    }

    /// What the fake found wrong with the client's calls.
    pub fn problems(&self) -> Vec<String> {
        match self {
            ForgeFake::Github(f) => f.state().problems.clone(),
            ForgeFake::Gitlab(f) => f.state().problems.clone(),
            ForgeFake::Gitea(f) => f.state().problems.clone(),
            ForgeFake::BitbucketCloud(f) => f.state().problems.clone(),
            ForgeFake::BitbucketDc(f) => f.state().problems.clone(),
            ForgeFake::Azure(f) => f.state().problems.clone(),
        }
    }

    /// Open a pull request as someone else would (e.g. a concurrent run); its number.
    pub fn open(&self, head: &str, base: &str, title: &str, body: &str) -> u64 {
        match self {
            ForgeFake::Github(f) => f.open(head, base, title, body),
            ForgeFake::Gitlab(f) => f.open(head, base, title, body),
            ForgeFake::Gitea(f) => f.open(head, base, title, body),
            ForgeFake::BitbucketCloud(f) => f.open(head, base, title, body),
            ForgeFake::BitbucketDc(f) => f.open(head, base, title, body),
            ForgeFake::Azure(f) => f.open(head, base, title, body),
        }
    }

    /// A contributor's pull request from a fork whose head branch is named `head`.
    pub fn open_from_fork(&self, head: &str, base: &str, title: &str) -> u64 {
        match self {
            ForgeFake::Github(f) => f.open_from_fork(head, base, title),
            ForgeFake::Gitlab(f) => f.open_from_fork(head, base, title),
            ForgeFake::Gitea(f) => f.open_from_fork(head, base, title),
            ForgeFake::BitbucketCloud(f) => f.open_from_fork(head, base, title),
            ForgeFake::BitbucketDc(f) => f.open_from_fork(head, base, title),
            ForgeFake::Azure(f) => f.open_from_fork(head, base, title),
        }
    }

    /// Listings answer after `delay`, with what they found when they arrived.
    pub fn slow_listings(&self, delay: Duration) {
        match self {
            ForgeFake::Github(f) => f.state().list_delay = delay,
            ForgeFake::Gitlab(f) => f.state().list_delay = delay,
            ForgeFake::Gitea(f) => f.state().list_delay = delay,
            ForgeFake::BitbucketCloud(f) => f.state().list_delay = delay,
            ForgeFake::BitbucketDc(f) => f.state().list_delay = delay,
            ForgeFake::Azure(f) => f.state().list_delay = delay,
        }
    }

    /// Leave `branch` out of the next `listings` listings that would show it (a listing
    /// lagging behind a concurrent create).
    pub fn hide(&self, branch: &str, listings: usize) {
        let hidden = match self {
            ForgeFake::Github(f) => f.state().hidden.insert(branch.into(), listings),
            ForgeFake::Gitlab(f) => f.state().hidden.insert(branch.into(), listings),
            ForgeFake::Gitea(f) => f.state().hidden.insert(branch.into(), listings),
            ForgeFake::BitbucketCloud(f) => f.state().hidden.insert(branch.into(), listings),
            ForgeFake::BitbucketDc(f) => f.state().hidden.insert(branch.into(), listings),
            ForgeFake::Azure(f) => f.state().hidden.insert(branch.into(), listings),
        };
        assert!(hidden.is_none(), "{branch} was hidden already");
    }
}
