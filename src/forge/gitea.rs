//! Gitea and Forgejo (API v1, `https://HOST/api/v1`).
//!
//! Open pull requests are listed page by page and matched by head branch. Drafts are titles
//! starting with `WIP:` (Gitea's default work-in-progress prefix). Labels are attached by id:
//! names are looked up in the repository's labels, and missing ones are created, as GitHub and
//! GitLab do on their own. Auto-merge uses the repository's default merge style. A duplicate
//! is 409.

use reqwest::header::{HeaderName, AUTHORIZATION};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use super::flow::{owner_and_name, Dialect, Drafts, Flow};
use super::http::{encode_segment, Api};
use super::{strip_draft_prefix, ForgeError, ForgeKind, NewPullRequest, PullRequest, Secret};

const DRAFT_PREFIXES: [&str; 2] = ["wip:", "[wip]"];

/// Page size of listings (Gitea's default maximum).
const PAGE: usize = 50;

/// Listings stop after this many pages.
const MAX_PAGES: usize = 40;

/// The colour of labels this tool creates.
const LABEL_COLOR: &str = "#ededed";

pub(crate) struct Gitea {
    /// `/repos/OWNER/NAME`, each segment encoded.
    repo: String,
}

impl Gitea {
    /// `api_url` is the API root (`https://HOST/api/v1`); `repository` is `owner/name`.
    pub(crate) fn connect(
        api_url: &str,
        repository: &str,
        token: Secret,
    ) -> Result<Flow<Gitea>, ForgeError> {
        let (owner, name) = owner_and_name(ForgeKind::Gitea, repository)?;
        let repo = format!("/repos/{}/{}", encode_segment(owner), encode_segment(name));
        Flow::new(Gitea { repo }, api_url, token)
    }

    /// The merge style auto-merge uses: the repository's default, else the first it allows.
    async fn merge_style(&self, api: &Api) -> Result<String, ForgeError> {
        let repo: Repo = api.json(Method::GET, &self.repo, &[], None).await?;
        if let Some(s) = repo.default_merge_style.filter(|s| !s.is_empty()) {
            return Ok(s);
        }
        let allowed = [
            (repo.allow_merge_commits, "merge"),
            (repo.allow_rebase, "rebase"),
            (repo.allow_rebase_explicit, "rebase-merge"),
            (repo.allow_squash_merge, "squash"),
        ];
        Ok(allowed
            .iter()
            .find(|(ok, _)| *ok == Some(true))
            .map_or("merge", |(_, s)| s)
            .to_string())
    }
}

/// Every item of a paginated listing (`page`/`limit`), up to [`MAX_PAGES`] pages.
async fn all_pages<T: DeserializeOwned>(
    api: &Api,
    path: &str,
    query: &[(&str, &str)],
) -> Result<Vec<T>, ForgeError> {
    let mut all = Vec::new();
    let limit = PAGE.to_string();
    for page in 1..=MAX_PAGES {
        let page = page.to_string();
        let mut q = query.to_vec();
        q.push(("page", &page));
        q.push(("limit", &limit));
        let items: Vec<T> = api.json(Method::GET, path, &q, None).await?;
        let n = items.len();
        all.extend(items);
        if n < PAGE {
            break;
        }
    }
    Ok(all)
}

impl Dialect for Gitea {
    const KIND: ForgeKind = ForgeKind::Gitea;
    const HEADERS: &'static [(&'static str, &'static str)] = &[("accept", "application/json")];
    const DRAFTS: Drafts = Drafts::TitlePrefix("WIP: ");
    const PULLS: &'static str = "/pulls";
    const EDIT: Method = Method::PATCH;
    const BODY: &'static str = "body";
    const CLOSE: (&'static str, &'static str) = ("state", "closed");

    type Pull = Pull;

    fn auth(&self, token: &Secret) -> (HeaderName, String) {
        (AUTHORIZATION, format!("token {}", token.expose()))
    }

    fn repo(&self) -> &str {
        &self.repo
    }

    /// Gitea filters by state only: the flow matches head and base.
    fn list_query(&self, _head: &str, _base: Option<&str>) -> Vec<(&'static str, String)> {
        vec![("state", "open".to_string())]
    }

    async fn list(
        &self,
        api: &Api,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Vec<Pull>, ForgeError> {
        all_pages(api, path, query).await
    }

    fn comments(number: u64) -> String {
        format!("/issues/{number}/comments")
    }

    fn create_body(&self, pr: &NewPullRequest, title: &str, _draft: bool) -> Value {
        json!({
            "head": pr.head,
            "base": pr.base,
            "title": title,
            "body": pr.body,
        })
    }

    /// "pull request already exists for these targets".
    fn is_duplicate(e: &ForgeError) -> bool {
        e.status() == Some(409)
    }

    fn read(p: Pull) -> PullRequest {
        let (title, prefixed) = strip_draft_prefix(&p.title, &DRAFT_PREFIXES);
        PullRequest {
            number: p.number,
            url: p.html_url,
            head: p.head.r#ref,
            base: p.base.r#ref,
            draft: p.draft.unwrap_or(prefixed),
            title: title.to_string(),
            body: p.body.unwrap_or_default(),
            state: if p.merged {
                "merged".to_string()
            } else {
                p.state
            },
            node_id: None,
        }
    }

    /// The listing holds pull requests from forks too, whose head branch may have our name.
    fn own(p: &Pull) -> bool {
        match (p.head.repo_id, p.base.repo_id) {
            (Some(h), Some(b)) => h == b,
            _ => true,
        }
    }

    async fn add_labels(
        &self,
        api: &Api,
        number: u64,
        labels: &[String],
    ) -> Result<(), ForgeError> {
        let labels_path = format!("{}/labels", self.repo);
        let existing: Vec<Label> = all_pages(api, &labels_path, &[]).await?;
        let mut ids = Vec::new();
        for name in labels {
            let id = match existing.iter().find(|l| &l.name == name) {
                Some(l) => l.id,
                None => {
                    let made: Label = api
                        .json(
                            Method::POST,
                            &labels_path,
                            &[],
                            Some(&json!({ "name": name, "color": LABEL_COLOR })),
                        )
                        .await?;
                    made.id
                }
            };
            ids.push(id);
        }
        let path = format!("{}/issues/{number}/labels", self.repo);
        api.send(Method::POST, &path, Some(&json!({ "labels": ids })))
            .await
    }

    /// Editing an issue replaces its assignees: keep the ones it has.
    async fn add_assignees(
        &self,
        api: &Api,
        number: u64,
        assignees: &[String],
    ) -> Result<(), ForgeError> {
        let wanted: Vec<&str> = assignees
            .iter()
            .map(|a| a.trim().trim_start_matches('@'))
            .filter(|a| !a.is_empty())
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let path = format!("{}/issues/{number}", self.repo);
        let issue: Issue = api.json(Method::GET, &path, &[], None).await?;
        let mut all: Vec<String> = issue
            .assignees
            .unwrap_or_default()
            .into_iter()
            .map(|u| u.login)
            .collect();
        let before = all.len();
        for w in wanted {
            if !all.iter().any(|a| a.eq_ignore_ascii_case(w)) {
                all.push(w.to_string());
            }
        }
        if all.len() == before {
            return Ok(());
        }
        api.send(Method::PATCH, &path, Some(&json!({ "assignees": all })))
            .await
    }

    async fn enable_auto_merge(&self, api: &Api, pr: &PullRequest) -> Result<(), ForgeError> {
        let style = self.merge_style(api).await?;
        let body = json!({ "Do": style, "merge_when_checks_succeed": true });
        let path = format!("{}/merge", self.pull(pr.number));
        api.send(Method::POST, &path, Some(&body)).await
    }
}

#[derive(Deserialize)]
pub(crate) struct Pull {
    number: u64,
    html_url: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    body: Option<String>,
    state: String,
    #[serde(default)]
    draft: Option<bool>,
    #[serde(default)]
    merged: bool,
    head: Ref,
    base: Ref,
}

#[derive(Deserialize)]
struct Ref {
    r#ref: String,
    /// The repository the branch lives in.
    #[serde(default)]
    repo_id: Option<u64>,
}

#[derive(Deserialize)]
struct Label {
    id: u64,
    name: String,
}

#[derive(Deserialize)]
struct Issue {
    #[serde(default)]
    assignees: Option<Vec<UserRef>>,
}

#[derive(Deserialize)]
struct UserRef {
    login: String,
}

#[derive(Deserialize)]
struct Repo {
    #[serde(default)]
    default_merge_style: Option<String>,
    #[serde(default)]
    allow_merge_commits: Option<bool>,
    #[serde(default)]
    allow_rebase: Option<bool>,
    #[serde(default)]
    allow_rebase_explicit: Option<bool>,
    #[serde(default)]
    allow_squash_merge: Option<bool>,
}

#[cfg(test)]
mod tests {
    use serde_json::Value;
    use wiremock::matchers::{any, body_json, header, method, path, query_param};
    use wiremock::{Mock, MockBuilder, MockServer, ResponseTemplate};

    use super::*;

    const TOKEN: &str = "gitea_TESTTOKEN123456";

    fn gt(m: MockBuilder) -> MockBuilder {
        m.and(header("authorization", format!("token {TOKEN}").as_str()))
            .and(header("user-agent", super::super::http::USER_AGENT))
    }

    fn forge(server: &MockServer) -> Flow<Gitea> {
        Gitea::connect(
            &format!("{}/api/v1", server.uri()),
            "acme/infra",
            Secret::new(TOKEN),
        )
        .unwrap()
    }

    fn pull(number: u64, head: &str, title: &str, body: &str) -> Value {
        json!({
            "id": 500 + number,
            "url": format!("https://git.example.com/acme/infra/pulls/{number}"),
            "number": number,
            "user": {"id": 1, "login": "image-updater"},
            "title": title,
            "body": body,
            "labels": [],
            "assignees": null,
            "state": "open",
            "is_locked": false,
            "html_url": format!("https://git.example.com/acme/infra/pulls/{number}"),
            "mergeable": true,
            "merged": false,
            "merged_at": null,
            "base": {"label": "main", "ref": "main", "sha": "def", "repo_id": 1},
            "head": {"label": head, "ref": head, "sha": "abc", "repo_id": 1},
        })
    }

    fn new_pr(draft: bool) -> NewPullRequest {
        NewPullRequest {
            head: "image-updater/web".into(),
            base: "main".into(),
            title: "chore(images): update web to 1.3.1".into(),
            body: "| image | from | to |".into(),
            draft,
        }
    }

    fn assert_no_token(e: &ForgeError) {
        assert!(!e.to_string().contains(TOKEN), "token leaked: {e}");
        assert!(!format!("{e:?}").contains(TOKEN), "token leaked: {e:?}");
    }

    #[tokio::test]
    async fn find_open_pages_through_open_pulls_and_matches_the_head() {
        let server = MockServer::start().await;
        let page1: Vec<Value> = (1..=50)
            .map(|n| pull(n, &format!("other/{n}"), "t", "b"))
            .collect();
        gt(Mock::given(method("GET")))
            .and(path("/api/v1/repos/acme/infra/pulls"))
            .and(query_param("state", "open"))
            .and(query_param("page", "1"))
            .and(query_param("limit", "50"))
            .respond_with(ResponseTemplate::new(200).set_body_json(page1))
            .expect(1)
            .mount(&server)
            .await;
        gt(Mock::given(method("GET")))
            .and(path("/api/v1/repos/acme/infra/pulls"))
            .and(query_param("state", "open"))
            .and(query_param("page", "2"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([pull(
                51,
                "image-updater/web",
                "WIP: bump",
                "b"
            )])))
            .expect(1)
            .mount(&server)
            .await;
        let pr = forge(&server)
            .find_open("image-updater/web", "main")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(pr.number, 51);
        assert_eq!(pr.title, "bump");
        assert!(pr.draft);
        assert_eq!(pr.url, "https://git.example.com/acme/infra/pulls/51");
    }

    #[tokio::test]
    async fn find_open_skips_pulls_from_forks_with_the_same_branch_name() {
        let server = MockServer::start().await;
        let mut fork = pull(4, "image-updater/web", "a contributor's", "b");
        fork["head"]["repo_id"] = json!(2);
        fork["head"]["label"] = json!("contributor:image-updater/web");
        gt(Mock::given(method("GET")))
            .and(path("/api/v1/repos/acme/infra/pulls"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!([fork, pull(5, "image-updater/web", "ours", "b")])),
            )
            .mount(&server)
            .await;
        let pr = forge(&server)
            .find_open("image-updater/web", "main")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((pr.number, pr.title.as_str()), (5, "ours"));
    }

    #[tokio::test]
    async fn create_posts_the_documented_body() {
        let server = MockServer::start().await;
        gt(Mock::given(method("POST")))
            .and(path("/api/v1/repos/acme/infra/pulls"))
            .and(body_json(json!({
                "head": "image-updater/web",
                "base": "main",
                "title": "WIP: chore(images): update web to 1.3.1",
                "body": "| image | from | to |",
            })))
            .respond_with(ResponseTemplate::new(201).set_body_json(pull(
                2,
                "image-updater/web",
                "WIP: chore(images): update web to 1.3.1",
                "| image | from | to |",
            )))
            .expect(1)
            .mount(&server)
            .await;
        let pr = forge(&server).create(&new_pr(true)).await.unwrap();
        assert_eq!((pr.number, pr.draft), (2, true));
        assert_eq!(pr.title, "chore(images): update web to 1.3.1");
    }

    #[tokio::test]
    async fn create_conflict_409_returns_the_existing_pull() {
        let server = MockServer::start().await;
        gt(Mock::given(method("POST")))
            .and(path("/api/v1/repos/acme/infra/pulls"))
            .respond_with(ResponseTemplate::new(409).set_body_json(json!({
                "message": "pull request already exists for these targets [id: 3, issue_id: 7, head_repo_id: 1, base_repo_id: 1, head_branch: image-updater/web, base_branch: main]",
                "url": "https://git.example.com/api/swagger"
            })))
            .expect(1)
            .mount(&server)
            .await;
        gt(Mock::given(method("GET")))
            .and(path("/api/v1/repos/acme/infra/pulls"))
            .and(query_param("state", "open"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([pull(
                3,
                "image-updater/web",
                "old",
                "old"
            )])))
            .expect(1)
            .mount(&server)
            .await;
        assert_eq!(
            forge(&server).create(&new_pr(false)).await.unwrap().number,
            3
        );
    }

    #[tokio::test]
    async fn unauthorized_quotes_the_message_not_the_token() {
        let server = MockServer::start().await;
        Mock::given(any())
            .respond_with(ResponseTemplate::new(401).set_body_json(json!({
                "message": "user does not exist [uid: 0, name: ]",
                "url": "https://git.example.com/api/swagger"
            })))
            .mount(&server)
            .await;
        let e = forge(&server).create(&new_pr(false)).await.unwrap_err();
        assert_eq!(e.status(), Some(401));
        assert!(e.message().contains("user does not exist"), "{e}");
        assert_no_token(&e);
    }

    #[tokio::test]
    async fn not_found_is_an_error_with_status() {
        let server = MockServer::start().await;
        Mock::given(any())
            .respond_with(ResponseTemplate::new(404).set_body_json(json!({
                "errors": null, "message": "not found", "url": "https://git.example.com/api/swagger"
            })))
            .mount(&server)
            .await;
        let e = forge(&server).update(9, "t", "b").await.unwrap_err();
        assert_eq!(e.status(), Some(404));
        assert!(
            e.message()
                .contains("GET /repos/acme/infra/pulls/9: 404 Not Found: not found"),
            "{e}"
        );
        assert_no_token(&e);
    }

    #[tokio::test]
    async fn update_keeps_the_wip_prefix() {
        let server = MockServer::start().await;
        gt(Mock::given(method("GET")))
            .and(path("/api/v1/repos/acme/infra/pulls/2"))
            .respond_with(ResponseTemplate::new(200).set_body_json(pull(2, "h", "WIP: old", "old")))
            .expect(1)
            .mount(&server)
            .await;
        gt(Mock::given(method("PATCH")))
            .and(path("/api/v1/repos/acme/infra/pulls/2"))
            .and(body_json(json!({"title": "WIP: new", "body": "new body"})))
            // Gitea answers an edit with 201.
            .respond_with(
                ResponseTemplate::new(201).set_body_json(pull(2, "h", "WIP: new", "new body")),
            )
            .expect(1)
            .mount(&server)
            .await;
        let pr = forge(&server).update(2, "new", "new body").await.unwrap();
        assert_eq!(
            (pr.title.as_str(), pr.body.as_str(), pr.draft),
            ("new", "new body", true)
        );
    }

    #[tokio::test]
    async fn labels_are_resolved_to_ids_and_missing_ones_created() {
        let server = MockServer::start().await;
        gt(Mock::given(method("GET")))
            .and(path("/api/v1/repos/acme/infra/labels"))
            .and(query_param("page", "1"))
            .and(query_param("limit", "50"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([
                {"id": 4, "name": "dependencies", "color": "ededed", "description": "", "exclusive": false},
                {"id": 5, "name": "bug", "color": "ee0701", "description": "", "exclusive": false}
            ])))
            .expect(1)
            .mount(&server)
            .await;
        gt(Mock::given(method("POST")))
            .and(path("/api/v1/repos/acme/infra/labels"))
            .and(body_json(json!({"name": "images", "color": "#ededed"})))
            .respond_with(ResponseTemplate::new(201).set_body_json(
                json!({"id": 9, "name": "images", "color": "ededed", "description": ""}),
            ))
            .expect(1)
            .mount(&server)
            .await;
        gt(Mock::given(method("POST")))
            .and(path("/api/v1/repos/acme/infra/issues/2/labels"))
            .and(body_json(json!({"labels": [4, 9]})))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([
                {"id": 4, "name": "dependencies"}, {"id": 9, "name": "images"}
            ])))
            .expect(1)
            .mount(&server)
            .await;
        let f = forge(&server);
        f.add_labels(2, &["dependencies".into(), "images".into()])
            .await
            .unwrap();
        f.add_labels(2, &[]).await.unwrap();
    }

    #[tokio::test]
    async fn reviewers_and_assignees() {
        let server = MockServer::start().await;
        gt(Mock::given(method("POST")))
            .and(path("/api/v1/repos/acme/infra/pulls/2/requested_reviewers"))
            .and(body_json(
                json!({"reviewers": ["alice"], "team_reviewers": ["platform"]}),
            ))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!([])))
            .expect(1)
            .mount(&server)
            .await;
        gt(Mock::given(method("GET")))
            .and(path("/api/v1/repos/acme/infra/issues/2"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "id": 7, "number": 2, "title": "t", "assignees": [{"id": 3, "login": "carol"}]
            })))
            .expect(1)
            .mount(&server)
            .await;
        gt(Mock::given(method("PATCH")))
            .and(path("/api/v1/repos/acme/infra/issues/2"))
            .and(body_json(json!({"assignees": ["carol", "bob"]})))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 7, "number": 2})))
            .expect(1)
            .mount(&server)
            .await;
        let f = forge(&server);
        f.request_reviewers(2, &["alice".into(), "acme/platform".into()])
            .await
            .unwrap();
        f.add_assignees(2, &["bob".into()]).await.unwrap();
        f.add_assignees(2, &[]).await.unwrap();
    }

    #[tokio::test]
    async fn auto_merge_uses_the_default_style_and_merge_when_checks_succeed() {
        let server = MockServer::start().await;
        gt(Mock::given(method("GET")))
            .and(path("/api/v1/repos/acme/infra"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "id": 1, "full_name": "acme/infra", "allow_merge_commits": false,
                "allow_rebase": true, "allow_squash_merge": true, "default_merge_style": "squash"
            })))
            .expect(1)
            .mount(&server)
            .await;
        gt(Mock::given(method("POST")))
            .and(path("/api/v1/repos/acme/infra/pulls/2/merge"))
            .and(body_json(
                json!({"Do": "squash", "merge_when_checks_succeed": true}),
            ))
            .respond_with(ResponseTemplate::new(200))
            .expect(1)
            .mount(&server)
            .await;
        let pr = Gitea::read(serde_json::from_value(pull(2, "h", "t", "b")).unwrap());
        forge(&server).enable_auto_merge(&pr).await.unwrap();
    }

    #[tokio::test]
    async fn auto_merge_refused_quotes_gitea() {
        let server = MockServer::start().await;
        gt(Mock::given(method("GET")))
            .and(path("/api/v1/repos/acme/infra"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"allow_rebase": true})))
            .mount(&server)
            .await;
        gt(Mock::given(method("POST")))
            .and(path("/api/v1/repos/acme/infra/pulls/2/merge"))
            .and(body_json(
                json!({"Do": "rebase", "merge_when_checks_succeed": true}),
            ))
            .respond_with(ResponseTemplate::new(405).set_body_json(json!({
                "message": "Please try again later", "url": "https://git.example.com/api/swagger"
            })))
            .expect(1)
            .mount(&server)
            .await;
        let pr = Gitea::read(serde_json::from_value(pull(2, "h", "t", "b")).unwrap());
        let e = forge(&server).enable_auto_merge(&pr).await.unwrap_err();
        assert_eq!(e.status(), Some(405));
        assert!(e.message().contains("Please try again later"), "{e}");
    }

    #[tokio::test]
    async fn close_comments_then_closes() {
        let server = MockServer::start().await;
        gt(Mock::given(method("POST")))
            .and(path("/api/v1/repos/acme/infra/issues/2/comments"))
            .and(body_json(json!({"body": "main already has web 1.3.1"})))
            .respond_with(
                ResponseTemplate::new(201)
                    .set_body_json(json!({"id": 1, "body": "main already has web 1.3.1"})),
            )
            .expect(1)
            .mount(&server)
            .await;
        let mut closed = pull(2, "h", "t", "b");
        closed["state"] = json!("closed");
        gt(Mock::given(method("PATCH")))
            .and(path("/api/v1/repos/acme/infra/pulls/2"))
            .and(body_json(json!({"state": "closed"})))
            .respond_with(ResponseTemplate::new(201).set_body_json(closed))
            .expect(1)
            .mount(&server)
            .await;
        forge(&server)
            .close(2, "main already has web 1.3.1")
            .await
            .unwrap();
    }
}
