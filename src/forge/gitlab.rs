//! GitLab (gitlab.com and self-managed, API v4): merge requests of a project named by its
//! numeric id or its path (`group/sub/app`, sent URL-encoded).
//!
//! GitLab has no draft flag on create or update: a draft is a title starting with `Draft:`,
//! so the prefix is added on create, kept on update, and stripped from the titles reported.
//! Reviewers and assignees are set by user id, resolved from usernames through `/users`.
//! A duplicate is 409 (or 422 "already exists").

use reqwest::header::HeaderName;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use super::flow::{Dialect, Drafts, Flow};
use super::http::{encode_segment, Api};
use super::{strip_draft_prefix, ForgeError, ForgeKind, NewPullRequest, PullRequest, Secret};

/// The title prefixes GitLab reads as "draft".
const DRAFT_PREFIXES: [&str; 5] = ["draft:", "[draft]", "(draft)", "wip:", "[wip]"];

pub(crate) struct Gitlab {
    /// `/projects/ID` or `/projects/GROUP%2FAPP`.
    repo: String,
}

impl Gitlab {
    /// `api_url` as `CI_API_V4_URL` gives it (`https://gitlab.com/api/v4`); `project` is the
    /// numeric project id or the project path (`group/sub/app`).
    pub(crate) fn connect(
        api_url: &str,
        project: &str,
        token: Secret,
    ) -> Result<Flow<Gitlab>, ForgeError> {
        let project = project.trim().trim_matches('/').trim_end_matches(".git");
        if project.is_empty() {
            return Err(ForgeError::setup(
                "GitLab project must be a numeric id or a path such as group/app",
            ));
        }
        let repo = format!("/projects/{}", encode_segment(project));
        Flow::new(Gitlab { repo }, api_url, token)
    }

    /// User ids for usernames; the names GitLab does not know come back separately.
    async fn user_ids(
        &self,
        api: &Api,
        names: &[String],
    ) -> Result<(Vec<u64>, Vec<String>), ForgeError> {
        let mut ids = Vec::new();
        let mut missing = Vec::new();
        for name in names {
            let name = name.trim().trim_start_matches('@');
            if name.is_empty() {
                continue;
            }
            let users: Vec<User> = api
                .json(Method::GET, "/users", &[("username", name)], None)
                .await?;
            match users
                .into_iter()
                .find(|u| u.username.eq_ignore_ascii_case(name))
            {
                Some(u) => ids.push(u.id),
                None => missing.push(name.to_string()),
            }
        }
        Ok((ids, missing))
    }

    /// Add users (by name) to the MR's reviewers or assignees, keeping those already there:
    /// GitLab replaces the whole list on update.
    async fn add_users(
        &self,
        api: &Api,
        iid: u64,
        names: &[String],
        people: People,
    ) -> Result<(), ForgeError> {
        if names.iter().all(|n| n.trim().is_empty()) {
            return Ok(());
        }
        let (ids, missing) = self.user_ids(api, names).await?;
        if !ids.is_empty() {
            let path = self.pull(iid);
            let mr: MergeRequest = api.json(Method::GET, &path, &[], None).await?;
            let (field, current) = match people {
                People::Reviewers => ("reviewer_ids", mr.reviewers),
                People::Assignees => ("assignee_ids", mr.assignees),
            };
            let mut all: Vec<u64> = current.iter().map(|u| u.id).collect();
            let before = all.len();
            for id in ids {
                if !all.contains(&id) {
                    all.push(id);
                }
            }
            if all.len() != before {
                let _: MergeRequest = api
                    .json(Method::PUT, &path, &[], Some(&json!({ field: all })))
                    .await?;
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = missing.iter().map(|m| format!("{m:?}")).collect();
        Err(ForgeError::new(
            None,
            format!("GitLab has no user named {}", names.join(", ")),
        ))
    }
}

/// Which list of people [`Gitlab::add_users`] adds to.
enum People {
    Reviewers,
    Assignees,
}

impl Dialect for Gitlab {
    const KIND: ForgeKind = ForgeKind::Gitlab;
    const HEADERS: &'static [(&'static str, &'static str)] = &[("accept", "application/json")];
    const DRAFTS: Drafts = Drafts::TitlePrefix("Draft: ");
    const PULLS: &'static str = "/merge_requests";
    const EDIT: Method = Method::PUT;
    const BODY: &'static str = "description";
    const CLOSE: (&'static str, &'static str) = ("state_event", "close");

    type Pull = MergeRequest;

    fn auth(&self, token: &Secret) -> (HeaderName, String) {
        (
            HeaderName::from_static("private-token"),
            token.expose().to_string(),
        )
    }

    fn repo(&self) -> &str {
        &self.repo
    }

    fn list_query(&self, head: &str, base: Option<&str>) -> Vec<(&'static str, String)> {
        let mut query = vec![
            ("state", "opened".to_string()),
            ("source_branch", head.to_string()),
        ];
        query.extend(base.map(|b| ("target_branch", b.to_string())));
        query
    }

    fn comments(number: u64) -> String {
        format!("/merge_requests/{number}/notes")
    }

    fn create_body(&self, pr: &NewPullRequest, title: &str, _draft: bool) -> Value {
        json!({
            "source_branch": pr.head,
            "target_branch": pr.base,
            "title": title,
            "description": pr.body,
            "remove_source_branch": true,
        })
    }

    /// "Another open merge request already exists for this source branch".
    fn is_duplicate(e: &ForgeError) -> bool {
        e.status() == Some(409)
            || (e.status() == Some(422) && e.message().contains("already exists"))
    }

    fn read(mr: MergeRequest) -> PullRequest {
        let draft = mr
            .draft
            .or(mr.work_in_progress)
            .unwrap_or_else(|| strip_draft_prefix(&mr.title, &DRAFT_PREFIXES).1);
        let title = if draft {
            strip_draft_prefix(&mr.title, &DRAFT_PREFIXES).0.to_string()
        } else {
            mr.title
        };
        let state = match mr.state.as_str() {
            "opened" => "open".to_string(),
            _ => mr.state,
        };
        PullRequest {
            number: mr.iid,
            url: mr.web_url,
            head: mr.source_branch,
            base: mr.target_branch,
            title,
            body: mr.description.unwrap_or_default(),
            state,
            draft,
            node_id: None,
        }
    }

    /// `source_branch=` also matches MRs from forks whose branch has that name.
    fn own(mr: &MergeRequest) -> bool {
        match (mr.source_project_id, mr.target_project_id) {
            (Some(s), Some(t)) => s == t,
            _ => true,
        }
    }

    async fn add_labels(&self, api: &Api, iid: u64, labels: &[String]) -> Result<(), ForgeError> {
        let body = json!({ "add_labels": labels.join(",") });
        let _: MergeRequest = api
            .json(Method::PUT, &self.pull(iid), &[], Some(&body))
            .await?;
        Ok(())
    }

    async fn request_reviewers(
        &self,
        api: &Api,
        iid: u64,
        reviewers: &[String],
    ) -> Result<(), ForgeError> {
        self.add_users(api, iid, reviewers, People::Reviewers).await
    }

    async fn add_assignees(
        &self,
        api: &Api,
        iid: u64,
        assignees: &[String],
    ) -> Result<(), ForgeError> {
        self.add_users(api, iid, assignees, People::Assignees).await
    }

    async fn enable_auto_merge(&self, api: &Api, pr: &PullRequest) -> Result<(), ForgeError> {
        // `merge_when_pipeline_succeeds` for every GitLab; `auto_merge` is its name since 17.11.
        let body = json!({ "merge_when_pipeline_succeeds": true, "auto_merge": true });
        let path = format!("{}/merge", self.pull(pr.number));
        api.send(Method::PUT, &path, Some(&body)).await
    }
}

#[derive(Deserialize)]
pub(crate) struct MergeRequest {
    iid: u64,
    web_url: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    description: Option<String>,
    state: String,
    source_branch: String,
    target_branch: String,
    #[serde(default)]
    source_project_id: Option<u64>,
    #[serde(default)]
    target_project_id: Option<u64>,
    #[serde(default)]
    draft: Option<bool>,
    #[serde(default)]
    work_in_progress: Option<bool>,
    #[serde(default)]
    reviewers: Vec<User>,
    #[serde(default)]
    assignees: Vec<User>,
}

#[derive(Deserialize)]
struct User {
    id: u64,
    #[serde(default)]
    username: String,
}

#[cfg(test)]
mod tests {
    use serde_json::Value;
    use wiremock::matchers::{
        any, body_json, header, method, path, query_param, query_param_is_missing,
    };
    use wiremock::{Mock, MockBuilder, MockServer, ResponseTemplate};

    use super::*;

    const TOKEN: &str = "glpat-TESTTOKEN123456";
    const MRS: &str = "/api/v4/projects/acme%2Fplatform%2Finfra/merge_requests";

    fn gl(m: MockBuilder) -> MockBuilder {
        m.and(header("private-token", TOKEN))
            .and(header("user-agent", super::super::http::USER_AGENT))
    }

    fn forge(server: &MockServer) -> Flow<Gitlab> {
        Gitlab::connect(
            &format!("{}/api/v4", server.uri()),
            "acme/platform/infra",
            Secret::new(TOKEN),
        )
        .unwrap()
    }

    fn mr(iid: u64, source: &str, title: &str, description: &str) -> Value {
        json!({
            "id": 10_000 + iid,
            "iid": iid,
            "project_id": 42,
            "title": title,
            "description": description,
            "state": "opened",
            "created_at": "2024-01-01T00:00:00Z",
            "target_branch": "main",
            "source_branch": source,
            "author": {"id": 1, "username": "image-updater-bot"},
            "assignees": [],
            "reviewers": [],
            "labels": [],
            "draft": title.starts_with("Draft:"),
            "work_in_progress": title.starts_with("Draft:"),
            "merge_when_pipeline_succeeds": false,
            "detailed_merge_status": "mergeable",
            "sha": "abc",
            "web_url": format!("https://gitlab.example.com/acme/platform/infra/-/merge_requests/{iid}"),
        })
    }

    fn new_mr(draft: bool) -> NewPullRequest {
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
    async fn find_open_by_source_and_target_branch() {
        let server = MockServer::start().await;
        gl(Mock::given(method("GET")))
            .and(path(MRS))
            .and(query_param("state", "opened"))
            .and(query_param("source_branch", "image-updater/web"))
            .and(query_param("target_branch", "main"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([mr(
                3,
                "image-updater/web",
                "Draft: bump web",
                "body"
            )])))
            .expect(1)
            .mount(&server)
            .await;
        let pr = forge(&server)
            .find_open("image-updater/web", "main")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(pr.number, 3);
        assert_eq!(pr.state, "open");
        assert_eq!(pr.title, "bump web");
        assert!(pr.draft);
        assert_eq!(
            pr.url,
            "https://gitlab.example.com/acme/platform/infra/-/merge_requests/3"
        );
    }

    #[tokio::test]
    async fn find_open_skips_merge_requests_from_forks() {
        let server = MockServer::start().await;
        let mut fork = mr(4, "image-updater/web", "a contributor's", "b");
        fork["source_project_id"] = json!(77);
        fork["target_project_id"] = json!(42);
        let mut ours = mr(5, "image-updater/web", "ours", "b");
        ours["source_project_id"] = json!(42);
        ours["target_project_id"] = json!(42);
        gl(Mock::given(method("GET")))
            .and(path(MRS))
            .and(query_param("source_branch", "image-updater/web"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([fork.clone(), ours])))
            .expect(1)
            .mount(&server)
            .await;
        let pr = forge(&server)
            .find_open("image-updater/web", "main")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((pr.number, pr.title.as_str()), (5, "ours"));
        // Only a fork's MR open: none of ours.
        let server = MockServer::start().await;
        gl(Mock::given(method("GET")))
            .and(path(MRS))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([fork])))
            .mount(&server)
            .await;
        assert_eq!(
            forge(&server)
                .find_open("image-updater/web", "main")
                .await
                .unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn numeric_project_ids_are_used_as_they_are() {
        let server = MockServer::start().await;
        gl(Mock::given(method("GET")))
            .and(path("/api/v4/projects/42/merge_requests"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
            .expect(1)
            .mount(&server)
            .await;
        let f = Gitlab::connect(
            &format!("{}/api/v4", server.uri()),
            "42",
            Secret::new(TOKEN),
        )
        .unwrap();
        assert_eq!(f.find_open("b", "main").await.unwrap(), None);
    }

    #[tokio::test]
    async fn create_posts_the_documented_body_with_a_draft_prefix() {
        let server = MockServer::start().await;
        gl(Mock::given(method("POST")))
            .and(path(MRS))
            .and(body_json(json!({
                "source_branch": "image-updater/web",
                "target_branch": "main",
                "title": "Draft: chore(images): update web to 1.3.1",
                "description": "| image | from | to |",
                "remove_source_branch": true,
            })))
            .respond_with(ResponseTemplate::new(201).set_body_json(mr(
                4,
                "image-updater/web",
                "Draft: chore(images): update web to 1.3.1",
                "| image | from | to |",
            )))
            .expect(1)
            .mount(&server)
            .await;
        let pr = forge(&server).create(&new_mr(true)).await.unwrap();
        assert_eq!(pr.number, 4);
        assert_eq!(pr.title, "chore(images): update web to 1.3.1");
        assert!(pr.draft);
    }

    #[tokio::test]
    async fn create_conflict_409_returns_the_existing_mr() {
        let server = MockServer::start().await;
        gl(Mock::given(method("POST")))
            .and(path(MRS))
            .respond_with(ResponseTemplate::new(409).set_body_json(json!({
                "message": ["Another open merge request already exists for this source branch: !3"]
            })))
            .expect(1)
            .mount(&server)
            .await;
        gl(Mock::given(method("GET")))
            .and(path(MRS))
            .and(query_param("state", "opened"))
            .and(query_param("source_branch", "image-updater/web"))
            .and(query_param_is_missing("target_branch"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([mr(
                3,
                "image-updater/web",
                "old",
                "old"
            )])))
            .expect(1)
            .mount(&server)
            .await;
        assert_eq!(
            forge(&server).create(&new_mr(false)).await.unwrap().number,
            3
        );
    }

    #[tokio::test]
    async fn unauthorized_quotes_the_message_not_the_token() {
        let server = MockServer::start().await;
        Mock::given(any())
            .respond_with(
                ResponseTemplate::new(401).set_body_json(json!({"message": "401 Unauthorized"})),
            )
            .mount(&server)
            .await;
        let e = forge(&server).find_open("b", "main").await.unwrap_err();
        assert_eq!(e.status(), Some(401));
        assert!(e.message().contains("401 Unauthorized"), "{e}");
        assert!(
            e.message()
                .starts_with("GitLab API GET /projects/acme%2Fplatform%2Finfra/merge_requests"),
            "{e}"
        );
        assert_no_token(&e);
    }

    #[tokio::test]
    async fn project_not_found() {
        let server = MockServer::start().await;
        Mock::given(any())
            .respond_with(
                ResponseTemplate::new(404)
                    .set_body_json(json!({"message": "404 Project Not Found"})),
            )
            .mount(&server)
            .await;
        let e = forge(&server).create(&new_mr(false)).await.unwrap_err();
        assert_eq!(e.status(), Some(404));
        assert!(e.message().contains("404 Project Not Found"), "{e}");
        assert_no_token(&e);
    }

    #[tokio::test]
    async fn update_keeps_the_draft_prefix() {
        let server = MockServer::start().await;
        gl(Mock::given(method("GET")))
            .and(path(format!("{MRS}/3")))
            .respond_with(ResponseTemplate::new(200).set_body_json(mr(3, "h", "Draft: old", "old")))
            .expect(1)
            .mount(&server)
            .await;
        gl(Mock::given(method("PUT")))
            .and(path(format!("{MRS}/3")))
            .and(body_json(
                json!({"title": "Draft: new", "description": "new body"}),
            ))
            .respond_with(ResponseTemplate::new(200).set_body_json(mr(
                3,
                "h",
                "Draft: new",
                "new body",
            )))
            .expect(1)
            .mount(&server)
            .await;
        let pr = forge(&server).update(3, "new", "new body").await.unwrap();
        assert_eq!(
            (pr.title.as_str(), pr.body.as_str(), pr.draft),
            ("new", "new body", true)
        );
    }

    #[tokio::test]
    async fn labels_go_through_add_labels() {
        let server = MockServer::start().await;
        gl(Mock::given(method("PUT")))
            .and(path(format!("{MRS}/3")))
            .and(body_json(json!({"add_labels": "dependencies,images"})))
            .respond_with(ResponseTemplate::new(200).set_body_json(mr(3, "h", "t", "b")))
            .expect(1)
            .mount(&server)
            .await;
        let f = forge(&server);
        f.add_labels(3, &["dependencies".into(), "images".into()])
            .await
            .unwrap();
        f.add_labels(3, &[]).await.unwrap();
    }

    #[tokio::test]
    async fn reviewers_and_assignees_are_resolved_to_ids_and_kept() {
        let server = MockServer::start().await;
        gl(Mock::given(method("GET")))
            .and(path("/api/v4/users"))
            .and(query_param("username", "alice"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([
                {"id": 11, "username": "alice", "name": "Alice", "state": "active"}
            ])))
            .expect(2)
            .mount(&server)
            .await;
        let mut current = mr(3, "h", "t", "b");
        current["reviewers"] = json!([{"id": 7, "username": "carol"}]);
        current["assignees"] = json!([{"id": 8, "username": "dave"}]);
        gl(Mock::given(method("GET")))
            .and(path(format!("{MRS}/3")))
            .respond_with(ResponseTemplate::new(200).set_body_json(current.clone()))
            .expect(2)
            .mount(&server)
            .await;
        gl(Mock::given(method("PUT")))
            .and(path(format!("{MRS}/3")))
            .and(body_json(json!({"reviewer_ids": [7, 11]})))
            .respond_with(ResponseTemplate::new(200).set_body_json(current.clone()))
            .expect(1)
            .mount(&server)
            .await;
        gl(Mock::given(method("PUT")))
            .and(path(format!("{MRS}/3")))
            .and(body_json(json!({"assignee_ids": [8, 11]})))
            .respond_with(ResponseTemplate::new(200).set_body_json(current))
            .expect(1)
            .mount(&server)
            .await;
        let f = forge(&server);
        f.request_reviewers(3, &["@alice".into()]).await.unwrap();
        f.add_assignees(3, &["alice".into()]).await.unwrap();
        f.request_reviewers(3, &[]).await.unwrap();
    }

    #[tokio::test]
    async fn unknown_users_are_named() {
        let server = MockServer::start().await;
        gl(Mock::given(method("GET")))
            .and(path("/api/v4/users"))
            .and(query_param("username", "ghost"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
            .expect(1)
            .mount(&server)
            .await;
        let e = forge(&server)
            .request_reviewers(3, &["ghost".into()])
            .await
            .unwrap_err();
        assert!(e.message().contains("no user named \"ghost\""), "{e}");
    }

    #[tokio::test]
    async fn auto_merge_sets_merge_when_pipeline_succeeds() {
        let server = MockServer::start().await;
        let mut merging = mr(3, "h", "t", "b");
        merging["merge_when_pipeline_succeeds"] = json!(true);
        gl(Mock::given(method("PUT")))
            .and(path(format!("{MRS}/3/merge")))
            .and(body_json(
                json!({"merge_when_pipeline_succeeds": true, "auto_merge": true}),
            ))
            .respond_with(ResponseTemplate::new(200).set_body_json(merging))
            .expect(1)
            .mount(&server)
            .await;
        let f = forge(&server);
        let pr = Gitlab::read(serde_json::from_value(mr(3, "h", "t", "b")).unwrap());
        f.enable_auto_merge(&pr).await.unwrap();
    }

    #[tokio::test]
    async fn auto_merge_refused_quotes_gitlab() {
        let server = MockServer::start().await;
        gl(Mock::given(method("PUT")))
            .and(path(format!("{MRS}/3/merge")))
            .respond_with(
                ResponseTemplate::new(405)
                    .set_body_json(json!({"message": "405 Method Not Allowed"})),
            )
            .mount(&server)
            .await;
        let pr = Gitlab::read(serde_json::from_value(mr(3, "h", "t", "b")).unwrap());
        let e = forge(&server).enable_auto_merge(&pr).await.unwrap_err();
        assert_eq!(e.status(), Some(405));
        assert!(e.message().contains("405 Method Not Allowed"), "{e}");
    }

    #[tokio::test]
    async fn close_adds_a_note_then_closes() {
        let server = MockServer::start().await;
        gl(Mock::given(method("POST")))
            .and(path(format!("{MRS}/3/notes")))
            .and(body_json(json!({"body": "main already has web 1.3.1"})))
            .respond_with(
                ResponseTemplate::new(201)
                    .set_body_json(json!({"id": 1, "body": "main already has web 1.3.1"})),
            )
            .expect(1)
            .mount(&server)
            .await;
        let mut closed = mr(3, "h", "t", "b");
        closed["state"] = json!("closed");
        gl(Mock::given(method("PUT")))
            .and(path(format!("{MRS}/3")))
            .and(body_json(json!({"state_event": "close"})))
            .respond_with(ResponseTemplate::new(200).set_body_json(closed))
            .expect(1)
            .mount(&server)
            .await;
        forge(&server)
            .close(3, "main already has web 1.3.1")
            .await
            .unwrap();
    }
}
