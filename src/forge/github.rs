//! GitHub (api.github.com and GitHub Enterprise Server, `https://HOST/api/v3`): REST v3 for
//! pull requests, labels, reviewers and assignees; GraphQL for auto-merge, which REST lacks.
//!
//! Drafts are a `draft` field; a repository without drafts refuses one with 422, and the pull
//! request is opened ready instead. A duplicate is 422 "already exists".

use reqwest::header::{HeaderName, AUTHORIZATION};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use super::flow::{owner_and_name, Dialect, Drafts, Flow};
use super::http::Api;
use super::{ForgeError, ForgeKind, NewPullRequest, PullRequest, Secret};

const MERGE_METHODS: [&str; 3] = ["MERGE", "SQUASH", "REBASE"];

const AUTO_MERGE: &str = "mutation($pullRequestId: ID!, $mergeMethod: PullRequestMergeMethod) { \
enablePullRequestAutoMerge(input: {pullRequestId: $pullRequestId, mergeMethod: $mergeMethod}) \
{ pullRequest { number autoMergeRequest { enabledAt } } } }";

pub(crate) struct Github {
    /// `/repos/OWNER/NAME`.
    repo: String,
    owner: String,
    graphql_url: String,
}

impl Github {
    /// `api_url` as `GITHUB_API_URL` gives it (`https://api.github.com`, `https://HOST/api/v3`);
    /// `repository` is `owner/name`.
    pub(crate) fn connect(
        api_url: &str,
        repository: &str,
        token: Secret,
    ) -> Result<Flow<Github>, ForgeError> {
        let (owner, name) = owner_and_name(ForgeKind::Github, repository)?;
        let dialect = Github {
            repo: format!("/repos/{owner}/{name}"),
            owner: owner.to_string(),
            graphql_url: graphql_url_for(api_url.trim()),
        };
        Flow::new(dialect, api_url, token)
    }

    async fn graphql(&self, api: &Api, query: &str, variables: Value) -> Result<(), ForgeError> {
        let body = json!({ "query": query, "variables": variables });
        let answer: GraphqlAnswer = api
            .json(Method::POST, &self.graphql_url, &[], Some(&body))
            .await?;
        if answer.errors.is_empty() {
            return Ok(());
        }
        let msgs: Vec<String> = answer.errors.into_iter().map(|e| e.message).collect();
        Err(api.error(
            Some(200),
            &Method::POST,
            &self.graphql_url,
            &format!("GraphQL: {}", msgs.join("; ")),
        ))
    }
}

impl Flow<Github> {
    /// Use this GraphQL endpoint (`GITHUB_GRAPHQL_URL`) instead of the one derived from the API URL.
    pub(crate) fn with_graphql_url(mut self, url: &str) -> Flow<Github> {
        self.dialect.graphql_url = url.trim_end_matches('/').to_string();
        self
    }
}

/// `https://api.github.com` → `https://api.github.com/graphql`;
/// `https://HOST/api/v3` → `https://HOST/api/graphql` (GitHub Enterprise Server).
pub fn graphql_url_for(api_url: &str) -> String {
    let base = api_url.trim_end_matches('/');
    match base.strip_suffix("/v3") {
        Some(root) if root.ends_with("/api") => format!("{root}/graphql"),
        _ => format!("{base}/graphql"),
    }
}

impl Dialect for Github {
    const KIND: ForgeKind = ForgeKind::Github;
    const HEADERS: &'static [(&'static str, &'static str)] = &[
        ("accept", "application/vnd.github+json"),
        ("x-github-api-version", "2022-11-28"),
    ];
    const DRAFTS: Drafts = Drafts::Field;
    const PULLS: &'static str = "/pulls";
    const EDIT: Method = Method::PATCH;
    const BODY: &'static str = "body";
    const CLOSE: (&'static str, &'static str) = ("state", "closed");
    const ADOPT_BY_BASE_FIRST: bool = true;

    type Pull = Pull;

    fn auth(&self, token: &Secret) -> (HeaderName, String) {
        (AUTHORIZATION, format!("Bearer {}", token.expose()))
    }

    fn repo(&self) -> &str {
        &self.repo
    }

    fn list_query(&self, head: &str, base: Option<&str>) -> Vec<(&'static str, String)> {
        let mut query = vec![
            ("state", "open".to_string()),
            ("head", format!("{}:{head}", self.owner)),
        ];
        query.extend(base.map(|b| ("base", b.to_string())));
        query
    }

    fn comments(number: u64) -> String {
        format!("/issues/{number}/comments")
    }

    fn create_body(&self, pr: &NewPullRequest, title: &str, draft: bool) -> Value {
        json!({
            "title": title,
            "head": pr.head,
            "base": pr.base,
            "body": pr.body,
            "draft": draft,
        })
    }

    fn is_duplicate(e: &ForgeError) -> bool {
        e.status() == Some(422) && e.message().contains("already exists")
    }

    fn drafts_refused(e: &ForgeError) -> bool {
        e.status() == Some(422)
            && e.message()
                .contains("Draft pull requests are not supported")
    }

    fn read(p: Pull) -> PullRequest {
        PullRequest {
            number: p.number,
            url: p.html_url,
            head: p.head.r#ref,
            base: p.base.r#ref,
            title: p.title,
            body: p.body.unwrap_or_default(),
            state: if p.merged_at.is_some() {
                "merged".to_string()
            } else {
                p.state
            },
            draft: p.draft,
            node_id: p.node_id,
        }
    }

    async fn enable_auto_merge(&self, api: &Api, pr: &PullRequest) -> Result<(), ForgeError> {
        let node_id = match &pr.node_id {
            Some(id) => id.clone(),
            None => {
                let p: Pull = api
                    .json(Method::GET, &self.pull(pr.number), &[], None)
                    .await?;
                p.node_id.ok_or_else(|| {
                    ForgeError::setup(format!(
                        "GitHub did not give the node id of pull request #{}",
                        pr.number
                    ))
                })?
            }
        };
        // The repository may allow only some merge methods; GitHub says which are refused
        // ("Merge method merge commits are not allowed on this repository"), so try the next.
        let mut last = None;
        for method in MERGE_METHODS {
            let vars = json!({ "pullRequestId": node_id, "mergeMethod": method });
            match self.graphql(api, AUTO_MERGE, vars).await {
                Ok(()) => return Ok(()),
                Err(e) if e.message().contains("Merge method") => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.expect("at least one merge method was tried"))
    }
}

#[derive(Deserialize)]
pub(crate) struct Pull {
    number: u64,
    html_url: String,
    #[serde(default)]
    node_id: Option<String>,
    #[serde(default)]
    title: String,
    #[serde(default)]
    body: Option<String>,
    state: String,
    #[serde(default)]
    draft: bool,
    #[serde(default)]
    merged_at: Option<String>,
    head: Ref,
    base: Ref,
}

#[derive(Deserialize)]
struct Ref {
    r#ref: String,
}

#[derive(Deserialize)]
struct GraphqlAnswer {
    #[serde(default)]
    errors: Vec<GraphqlError>,
}

#[derive(Deserialize)]
struct GraphqlError {
    message: String,
}

#[cfg(test)]
mod tests {
    use wiremock::matchers::{
        body_json, header, method, path, query_param, query_param_is_missing,
    };
    use wiremock::{Mock, MockBuilder, MockServer, ResponseTemplate};

    use super::*;

    const TOKEN: &str = "ghp_TESTTOKEN123456";

    fn gh(m: MockBuilder) -> MockBuilder {
        m.and(header("authorization", format!("Bearer {TOKEN}").as_str()))
            .and(header("accept", "application/vnd.github+json"))
            .and(header("x-github-api-version", "2022-11-28"))
            .and(header("user-agent", super::super::http::USER_AGENT))
    }

    fn forge(server: &MockServer) -> Flow<Github> {
        Github::connect(&server.uri(), "acme/infra", Secret::new(TOKEN)).unwrap()
    }

    fn pull(number: u64, head: &str, title: &str, body: &str) -> Value {
        json!({
            "url": format!("https://api.github.com/repos/acme/infra/pulls/{number}"),
            "id": 1000 + number,
            "node_id": format!("PR_kw{number}"),
            "html_url": format!("https://github.com/acme/infra/pull/{number}"),
            "number": number,
            "state": "open",
            "locked": false,
            "title": title,
            "user": {"login": "image-updater[bot]", "id": 1},
            "body": body,
            "labels": [],
            "draft": false,
            "merged_at": null,
            "head": {"label": format!("acme:{head}"), "ref": head, "sha": "abc"},
            "base": {"label": "acme:main", "ref": "main", "sha": "def"},
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
    async fn find_open_lists_by_owner_head_and_base() {
        let server = MockServer::start().await;
        gh(Mock::given(method("GET")))
            .and(path("/repos/acme/infra/pulls"))
            .and(query_param("state", "open"))
            .and(query_param("head", "acme:image-updater/web"))
            .and(query_param("base", "main"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([pull(
                7,
                "image-updater/web",
                "t",
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
        assert_eq!(pr.number, 7);
        assert_eq!(pr.url, "https://github.com/acme/infra/pull/7");
        assert_eq!(pr.head, "image-updater/web");
        assert_eq!(pr.base, "main");
        assert_eq!(pr.state, "open");
        assert_eq!(pr.node_id.as_deref(), Some("PR_kw7"));
    }

    #[tokio::test]
    async fn find_open_none() {
        let server = MockServer::start().await;
        gh(Mock::given(method("GET")))
            .and(path("/repos/acme/infra/pulls"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
            .expect(1)
            .mount(&server)
            .await;
        assert_eq!(forge(&server).find_open("b", "main").await.unwrap(), None);
    }

    #[tokio::test]
    async fn create_posts_the_documented_body() {
        let server = MockServer::start().await;
        gh(Mock::given(method("POST")))
            .and(path("/repos/acme/infra/pulls"))
            .and(body_json(json!({
                "title": "chore(images): update web to 1.3.1",
                "head": "image-updater/web",
                "base": "main",
                "body": "| image | from | to |",
                "draft": true,
            })))
            .respond_with(ResponseTemplate::new(201).set_body_json(pull(
                8,
                "image-updater/web",
                "chore(images): update web to 1.3.1",
                "| image | from | to |",
            )))
            .expect(1)
            .mount(&server)
            .await;
        let pr = forge(&server).create(&new_pr(true)).await.unwrap();
        assert_eq!(pr.number, 8);
        assert_eq!(pr.title, "chore(images): update web to 1.3.1");
    }

    #[tokio::test]
    async fn create_duplicate_422_returns_the_existing_pr() {
        let server = MockServer::start().await;
        gh(Mock::given(method("POST")))
            .and(path("/repos/acme/infra/pulls"))
            .respond_with(ResponseTemplate::new(422).set_body_json(json!({
                "message": "Validation Failed",
                "errors": [{"resource": "PullRequest", "code": "custom",
                            "message": "A pull request already exists for acme:image-updater/web."}],
                "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
                "status": "422"
            })))
            .expect(1)
            .mount(&server)
            .await;
        gh(Mock::given(method("GET")))
            .and(path("/repos/acme/infra/pulls"))
            .and(query_param("head", "acme:image-updater/web"))
            .and(query_param("base", "main"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([pull(
                5,
                "image-updater/web",
                "old",
                "old body"
            )])))
            .expect(1)
            .mount(&server)
            .await;
        let pr = forge(&server).create(&new_pr(false)).await.unwrap();
        assert_eq!(pr.number, 5);
    }

    #[tokio::test]
    async fn create_duplicate_against_another_base_is_found_too() {
        let server = MockServer::start().await;
        gh(Mock::given(method("POST")))
            .and(path("/repos/acme/infra/pulls"))
            .respond_with(ResponseTemplate::new(422).set_body_json(json!({
                "message": "Validation Failed",
                "errors": [{"resource": "PullRequest", "code": "custom",
                            "message": "A pull request already exists for acme:image-updater/web."}]
            })))
            .mount(&server)
            .await;
        gh(Mock::given(method("GET")))
            .and(path("/repos/acme/infra/pulls"))
            .and(query_param("base", "main"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
            .expect(1)
            .mount(&server)
            .await;
        let mut other = pull(6, "image-updater/web", "t", "b");
        other["base"]["ref"] = json!("release");
        gh(Mock::given(method("GET")))
            .and(path("/repos/acme/infra/pulls"))
            .and(query_param_is_missing("base"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([other])))
            .expect(1)
            .mount(&server)
            .await;
        let pr = forge(&server).create(&new_pr(false)).await.unwrap();
        assert_eq!((pr.number, pr.base.as_str()), (6, "release"));
    }

    #[tokio::test]
    async fn create_retries_without_draft_where_drafts_are_unsupported() {
        let server = MockServer::start().await;
        gh(Mock::given(method("POST")))
            .and(path("/repos/acme/infra/pulls"))
            .and(wiremock::matchers::body_partial_json(
                json!({"draft": true}),
            ))
            .respond_with(ResponseTemplate::new(422).set_body_json(json!({
                "message": "Validation Failed",
                "errors": [{"resource": "PullRequest", "code": "custom",
                            "message": "Draft pull requests are not supported in this repository."}]
            })))
            .expect(1)
            .mount(&server)
            .await;
        gh(Mock::given(method("POST")))
            .and(path("/repos/acme/infra/pulls"))
            .and(wiremock::matchers::body_partial_json(
                json!({"draft": false}),
            ))
            .respond_with(ResponseTemplate::new(201).set_body_json(pull(
                9,
                "image-updater/web",
                "t",
                "b",
            )))
            .expect(1)
            .mount(&server)
            .await;
        assert_eq!(
            forge(&server).create(&new_pr(true)).await.unwrap().number,
            9
        );
    }

    #[tokio::test]
    async fn unauthorized_quotes_the_message_not_the_token() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(401).set_body_json(json!({
                "message": "Bad credentials",
                "documentation_url": "https://docs.github.com/rest",
                "status": "401"
            })))
            .mount(&server)
            .await;
        let e = forge(&server).create(&new_pr(false)).await.unwrap_err();
        assert_eq!(e.status(), Some(401));
        assert!(e.message().contains("Bad credentials"), "{e}");
        assert!(e.message().contains("POST /repos/acme/infra/pulls"), "{e}");
        assert_no_token(&e);
    }

    #[tokio::test]
    async fn a_token_echoed_by_the_forge_is_scrubbed() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(400).set_body_json(json!({
                "message": format!("Problems parsing token {TOKEN}")
            })))
            .mount(&server)
            .await;
        let e = forge(&server).find_open("h", "main").await.unwrap_err();
        assert!(e.message().contains("Problems parsing token ***"), "{e}");
        assert_no_token(&e);
    }

    #[tokio::test]
    async fn not_found_is_an_error_with_status() {
        let server = MockServer::start().await;
        Mock::given(method("PATCH"))
            .respond_with(ResponseTemplate::new(404).set_body_json(json!({
                "message": "Not Found",
                "documentation_url": "https://docs.github.com/rest/pulls/pulls#update-a-pull-request"
            })))
            .mount(&server)
            .await;
        let e = forge(&server).update(99, "t", "b").await.unwrap_err();
        assert_eq!(e.status(), Some(404));
        assert!(e.message().contains("Not Found"), "{e}");
        assert_no_token(&e);
    }

    #[tokio::test]
    async fn update_patches_title_and_body() {
        let server = MockServer::start().await;
        gh(Mock::given(method("PATCH")))
            .and(path("/repos/acme/infra/pulls/7"))
            .and(body_json(json!({"title": "new", "body": "new body"})))
            .respond_with(ResponseTemplate::new(200).set_body_json(pull(7, "h", "new", "new body")))
            .expect(1)
            .mount(&server)
            .await;
        let pr = forge(&server).update(7, "new", "new body").await.unwrap();
        assert_eq!((pr.title.as_str(), pr.body.as_str()), ("new", "new body"));
    }

    #[tokio::test]
    async fn labels_reviewers_assignees() {
        let server = MockServer::start().await;
        gh(Mock::given(method("POST")))
            .and(path("/repos/acme/infra/issues/7/labels"))
            .and(body_json(json!({"labels": ["dependencies", "images"]})))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([
                {"id": 1, "name": "dependencies", "color": "ededed"},
                {"id": 2, "name": "images", "color": "ededed"}
            ])))
            .expect(1)
            .mount(&server)
            .await;
        gh(Mock::given(method("POST")))
            .and(path("/repos/acme/infra/pulls/7/requested_reviewers"))
            .and(body_json(
                json!({"reviewers": ["alice"], "team_reviewers": ["platform"]}),
            ))
            .respond_with(ResponseTemplate::new(201).set_body_json(pull(7, "h", "t", "b")))
            .expect(1)
            .mount(&server)
            .await;
        gh(Mock::given(method("POST")))
            .and(path("/repos/acme/infra/issues/7/assignees"))
            .and(body_json(json!({"assignees": ["bob"]})))
            .respond_with(ResponseTemplate::new(201).set_body_json(pull(7, "h", "t", "b")))
            .expect(1)
            .mount(&server)
            .await;
        let f = forge(&server);
        f.add_labels(7, &["dependencies".into(), "images".into()])
            .await
            .unwrap();
        f.request_reviewers(7, &["alice".into(), "acme/platform".into()])
            .await
            .unwrap();
        f.add_assignees(7, &["bob".into()]).await.unwrap();
        // Empty lists make no call (the server would answer 404 to anything unexpected).
        f.add_labels(7, &[]).await.unwrap();
        f.request_reviewers(7, &[]).await.unwrap();
        f.add_assignees(7, &[]).await.unwrap();
    }

    #[tokio::test]
    async fn reviewer_refused_quotes_github() {
        let server = MockServer::start().await;
        gh(Mock::given(method("POST")))
            .and(path("/repos/acme/infra/pulls/7/requested_reviewers"))
            .respond_with(ResponseTemplate::new(422).set_body_json(json!({
                "message": "Reviews may only be requested from collaborators. One or more of the users or teams you specified is not a collaborator of the acme/infra repository.",
                "documentation_url": "https://docs.github.com/rest/pulls/review-requests"
            })))
            .mount(&server)
            .await;
        let e = forge(&server)
            .request_reviewers(7, &["mallory".into()])
            .await
            .unwrap_err();
        assert_eq!(e.status(), Some(422));
        assert!(e.message().contains("only be requested from collaborators"));
    }

    #[tokio::test]
    async fn auto_merge_uses_graphql_with_the_node_id() {
        let server = MockServer::start().await;
        gh(Mock::given(method("POST")))
            .and(path("/graphql"))
            .and(body_json(json!({
                "query": AUTO_MERGE,
                "variables": {"pullRequestId": "PR_kw7", "mergeMethod": "MERGE"}
            })))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "data": {"enablePullRequestAutoMerge": {"pullRequest": {"number": 7,
                    "autoMergeRequest": {"enabledAt": "2024-01-01T00:00:00Z"}}}}
            })))
            .expect(1)
            .mount(&server)
            .await;
        let f = forge(&server);
        let pr = PullRequest {
            number: 7,
            url: String::new(),
            head: "h".into(),
            base: "main".into(),
            title: "t".into(),
            body: String::new(),
            state: "open".into(),
            draft: false,
            node_id: Some("PR_kw7".into()),
        };
        f.enable_auto_merge(&pr).await.unwrap();
    }

    #[tokio::test]
    async fn auto_merge_fetches_the_node_id_and_falls_back_to_an_allowed_method() {
        let server = MockServer::start().await;
        gh(Mock::given(method("GET")))
            .and(path("/repos/acme/infra/pulls/7"))
            .respond_with(ResponseTemplate::new(200).set_body_json(pull(7, "h", "t", "b")))
            .expect(1)
            .mount(&server)
            .await;
        gh(Mock::given(method("POST")))
            .and(path("/graphql"))
            .and(wiremock::matchers::body_partial_json(json!({"variables": {"mergeMethod": "MERGE"}})))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "data": {"enablePullRequestAutoMerge": null},
                "errors": [{"type": "UNPROCESSABLE", "path": ["enablePullRequestAutoMerge"],
                            "message": "Merge method merge commits are not allowed on this repository"}]
            })))
            .expect(1)
            .mount(&server)
            .await;
        gh(Mock::given(method("POST")))
            .and(path("/graphql"))
            .and(wiremock::matchers::body_partial_json(
                json!({"variables": {"pullRequestId": "PR_kw7", "mergeMethod": "SQUASH"}}),
            ))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "data": {"enablePullRequestAutoMerge": {"pullRequest": {"number": 7}}}
            })))
            .expect(1)
            .mount(&server)
            .await;
        let pr = PullRequest {
            number: 7,
            url: String::new(),
            head: "h".into(),
            base: "main".into(),
            title: "t".into(),
            body: String::new(),
            state: "open".into(),
            draft: false,
            node_id: None,
        };
        forge(&server).enable_auto_merge(&pr).await.unwrap();
    }

    #[tokio::test]
    async fn auto_merge_not_allowed_is_quoted() {
        let server = MockServer::start().await;
        gh(Mock::given(method("POST")))
            .and(path("/graphql"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "data": {"enablePullRequestAutoMerge": null},
                "errors": [{"type": "UNPROCESSABLE",
                            "message": "Pull request Auto merge is not allowed for this repository"}]
            })))
            .expect(1)
            .mount(&server)
            .await;
        let pr = PullRequest {
            number: 7,
            url: String::new(),
            head: "h".into(),
            base: "main".into(),
            title: "t".into(),
            body: String::new(),
            state: "open".into(),
            draft: false,
            node_id: Some("PR_kw7".into()),
        };
        let e = forge(&server).enable_auto_merge(&pr).await.unwrap_err();
        assert!(e.message().contains("Auto merge is not allowed"), "{e}");
        assert_no_token(&e);
    }

    #[tokio::test]
    async fn close_comments_then_closes() {
        let server = MockServer::start().await;
        gh(Mock::given(method("POST")))
            .and(path("/repos/acme/infra/issues/7/comments"))
            .and(body_json(json!({"body": "main already has web 1.3.1"})))
            .respond_with(
                ResponseTemplate::new(201)
                    .set_body_json(json!({"id": 1, "body": "main already has web 1.3.1"})),
            )
            .expect(1)
            .mount(&server)
            .await;
        let mut closed = pull(7, "h", "t", "b");
        closed["state"] = json!("closed");
        gh(Mock::given(method("PATCH")))
            .and(path("/repos/acme/infra/pulls/7"))
            .and(body_json(json!({"state": "closed"})))
            .respond_with(ResponseTemplate::new(200).set_body_json(closed))
            .expect(1)
            .mount(&server)
            .await;
        forge(&server)
            .close(7, "main already has web 1.3.1")
            .await
            .unwrap();
    }

    #[test]
    fn graphql_urls() {
        assert_eq!(
            graphql_url_for("https://api.github.com"),
            "https://api.github.com/graphql"
        );
        assert_eq!(
            graphql_url_for("https://ghe.example.com/api/v3/"),
            "https://ghe.example.com/api/graphql"
        );
    }

    #[test]
    fn repository_must_be_owner_slash_name() {
        let e = Github::connect("https://api.github.com", "infra", Secret::new(TOKEN))
            .err()
            .unwrap();
        assert!(e.message().contains("owner/name"));
    }

    #[tokio::test]
    async fn transport_errors_name_the_call() {
        // Nothing listens on port 9 of localhost.
        let f = Github::connect("http://127.0.0.1:9", "acme/infra", Secret::new(TOKEN)).unwrap();
        let e = f.find_open("h", "main").await.unwrap_err();
        assert_eq!(e.status(), None);
        assert!(
            e.message()
                .starts_with("GitHub API GET /repos/acme/infra/pulls"),
            "{e}"
        );
        assert_no_token(&e);
    }
}
