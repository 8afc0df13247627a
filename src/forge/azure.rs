//! Azure DevOps Repos (REST API 7.1, `https://dev.azure.com/ORGANIZATION`).
//!
//! The API URL is the organization (collection) URL; the repository is `PROJECT/REPO`. Azure
//! Pipelines' `System.AccessToken` (an OAuth token) goes in `Authorization: Bearer`; a personal
//! access token (Code: read & write) in `Authorization: Basic` as the password of an empty
//! user. Every request carries `api-version=7.1`. Open pull requests are listed by
//! `searchCriteria.sourceRefName` and `searchCriteria.status=active`. Drafts are `isDraft`.
//! Labels (pull request tags) are added by name; reviewers are identities by id (a GUID),
//! put one by one with no vote; assignees do not exist (left out with a warning). Auto-merge
//! is auto-complete, set by the pull request's creator (the token's identity). Closing is
//! `status: abandoned`, after a comment thread. A second pull request for the same branches
//! is refused with 409 (`TF401179`).

use base64::Engine as _;
use reqwest::header::{HeaderName, AUTHORIZATION};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use super::flow::{not_on, owner_and_name, Dialect, Drafts, Flow};
use super::http::{encode_segment, Api};
use super::{ForgeError, ForgeKind, NewPullRequest, PullRequest, Secret};

/// The REST API version every request names.
const API_VERSION: &str = "7.1";

/// The most pull requests one listing asks for (one branch has one open, forks aside).
const TOP: &str = "100";

pub(crate) struct Azure {
    /// `/PROJECT/_apis/git/repositories/REPO`, each segment encoded.
    repo: String,
    /// Whether the token is an OAuth token (`Bearer`) rather than a PAT (`Basic`).
    bearer: bool,
}

impl Azure {
    /// `api_url` is the organization URL (`https://dev.azure.com/ORG`); `repository` is
    /// `PROJECT/REPO`; `bearer` for an OAuth token (`System.AccessToken`), else a PAT.
    pub(crate) fn connect(
        api_url: &str,
        repository: &str,
        token: Secret,
        bearer: bool,
    ) -> Result<Flow<Azure>, ForgeError> {
        let (project, name) = owner_and_name(ForgeKind::Azure, repository)?;
        let repo = format!(
            "/{}/_apis/git/repositories/{}",
            encode_segment(project),
            encode_segment(name)
        );
        Flow::new(Azure { repo, bearer }, api_url, token)
    }
}

/// `refs/heads/BRANCH`.
fn head_ref(branch: &str) -> String {
    format!("refs/heads/{branch}")
}

impl Dialect for Azure {
    const KIND: ForgeKind = ForgeKind::Azure;
    const HEADERS: &'static [(&'static str, &'static str)] = &[("accept", "application/json")];
    const DRAFTS: Drafts = Drafts::Field;
    const PULLS: &'static str = "/pullrequests";
    const EDIT: Method = Method::PATCH;
    const BODY: &'static str = "description";
    const CLOSE: (&'static str, &'static str) = ("status", "abandoned");
    const QUERY: &'static [(&'static str, &'static str)] = &[("api-version", API_VERSION)];

    type Pull = Pull;

    fn auth(&self, token: &Secret) -> (HeaderName, String) {
        if self.bearer {
            return (AUTHORIZATION, format!("Bearer {}", token.expose()));
        }
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!(":{}", token.expose()));
        (AUTHORIZATION, format!("Basic {basic}"))
    }

    fn repo(&self) -> &str {
        &self.repo
    }

    fn list_query(&self, head: &str, base: Option<&str>) -> Vec<(&'static str, String)> {
        let mut q = vec![
            ("searchCriteria.sourceRefName", head_ref(head)),
            ("searchCriteria.status", "active".to_string()),
        ];
        if let Some(b) = base {
            q.push(("searchCriteria.targetRefName", head_ref(b)));
        }
        q.push(("$top", TOP.to_string()));
        q
    }

    async fn list(
        &self,
        api: &Api,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Vec<Pull>, ForgeError> {
        let list: List = api.json(Method::GET, path, query, None).await?;
        Ok(list.value)
    }

    fn comments(number: u64) -> String {
        format!("/pullRequests/{number}/threads")
    }

    /// A thread of one comment, closed: it says something, it asks nothing.
    async fn comment(&self, api: &Api, number: u64, text: &str) -> Result<(), ForgeError> {
        let path = format!("{}{}", self.repo, Self::comments(number));
        let body = json!({
            "comments": [{ "parentCommentId": 0, "content": text, "commentType": "text" }],
            "status": "closed",
        });
        api.send(Method::POST, &path, Some(&body)).await
    }

    fn create_body(&self, pr: &NewPullRequest, title: &str, draft: bool) -> Value {
        json!({
            "sourceRefName": head_ref(&pr.head),
            "targetRefName": head_ref(&pr.base),
            "title": title,
            "description": pr.body,
            "isDraft": draft,
        })
    }

    /// "TF401179: An active pull request for the source and target branch already exists."
    fn is_duplicate(e: &ForgeError) -> bool {
        e.status() == Some(409)
    }

    fn read(p: Pull) -> PullRequest {
        let url = web_url(&p);
        PullRequest {
            number: p.pull_request_id,
            url,
            head: branch(&p.source_ref_name),
            base: branch(&p.target_ref_name),
            title: p.title,
            body: p.description.unwrap_or_default(),
            state: match p.status.as_str() {
                "active" => "open",
                "completed" => "merged",
                _ => "closed",
            }
            .to_string(),
            draft: p.is_draft.unwrap_or(false),
            node_id: None,
        }
    }

    /// A pull request from a fork names its source repository.
    fn own(p: &Pull) -> bool {
        p.fork_source.is_none()
    }

    async fn add_labels(
        &self,
        api: &Api,
        number: u64,
        labels: &[String],
    ) -> Result<(), ForgeError> {
        let path = format!("{}/pullRequests/{number}/labels", self.repo);
        for name in labels.iter().map(|l| l.trim()).filter(|l| !l.is_empty()) {
            api.send(Method::POST, &path, Some(&json!({ "name": name })))
                .await?;
        }
        Ok(())
    }

    /// Each reviewer (an identity id) is put with no vote yet.
    async fn request_reviewers(
        &self,
        api: &Api,
        number: u64,
        reviewers: &[String],
    ) -> Result<(), ForgeError> {
        for id in reviewers.iter().map(|r| r.trim()).filter(|r| !r.is_empty()) {
            let path = format!(
                "{}/pullRequests/{number}/reviewers/{}",
                self.repo,
                encode_segment(id)
            );
            api.send(Method::PUT, &path, Some(&json!({ "vote": 0 })))
                .await?;
        }
        Ok(())
    }

    async fn add_assignees(&self, _: &Api, _: u64, _: &[String]) -> Result<(), ForgeError> {
        not_on(Self::KIND, "assignees", "assignees")
    }

    /// Auto-complete, set by whoever created the pull request: the token's identity.
    async fn enable_auto_merge(&self, api: &Api, pr: &PullRequest) -> Result<(), ForgeError> {
        let path = self.pull(pr.number);
        let current: Pull = api.json(Method::GET, &path, &[], None).await?;
        let Some(by) = current.created_by.map(|c| c.id) else {
            return Err(ForgeError::new(
                None,
                format!(
                    "Azure DevOps pull request {} names no creator to set auto-complete by",
                    pr.number
                ),
            ));
        };
        let body = json!({ "autoCompleteSetBy": { "id": by } });
        api.send(Method::PATCH, &path, Some(&body)).await
    }
}

/// `refs/heads/BRANCH` without `refs/heads/`.
fn branch(r: &str) -> String {
    r.strip_prefix("refs/heads/").unwrap_or(r).to_string()
}

/// The pull request's web page: the repository's web URL, else the organization and project
/// of its API URL.
fn web_url(p: &Pull) -> String {
    let n = p.pull_request_id;
    match &p.repository {
        Some(Repository {
            web_url: Some(w), ..
        }) => format!("{}/pullrequest/{n}", w.trim_end_matches('/')),
        Some(Repository { name, .. }) => match p.url.split_once("/_apis/") {
            Some((project, _)) => {
                format!("{project}/_git/{}/pullrequest/{n}", encode_segment(name))
            }
            None => p.url.clone(),
        },
        None => p.url.clone(),
    }
}

#[derive(Deserialize)]
struct List {
    #[serde(default)]
    value: Vec<Pull>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Pull {
    pull_request_id: u64,
    #[serde(default)]
    url: String,
    #[serde(default)]
    title: String,
    description: Option<String>,
    status: String,
    is_draft: Option<bool>,
    source_ref_name: String,
    target_ref_name: String,
    repository: Option<Repository>,
    fork_source: Option<Value>,
    created_by: Option<Identity>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Repository {
    #[serde(default)]
    name: String,
    web_url: Option<String>,
}

#[derive(Deserialize)]
struct Identity {
    id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pat_is_basic_with_an_empty_user_and_an_oauth_token_bearer() {
        let pat = Azure {
            repo: String::new(),
            bearer: false,
        };
        let (name, value) = pat.auth(&Secret::new("pat"));
        assert_eq!(name, AUTHORIZATION);
        assert_eq!(value, "Basic OnBhdA==");
        let oauth = Azure {
            repo: String::new(),
            bearer: true,
        };
        assert_eq!(oauth.auth(&Secret::new("oauth")).1, "Bearer oauth");
    }

    #[test]
    fn web_url_without_repository_web_url_follows_the_api_url() {
        let p: Pull = serde_json::from_value(json!({
            "pullRequestId": 7, "status": "active", "title": "t",
            "url": "https://dev.azure.com/acme/0f3a/_apis/git/repositories/9c1/pullRequests/7",
            "sourceRefName": "refs/heads/a", "targetRefName": "refs/heads/main",
            "repository": {"name": "infra"}
        }))
        .unwrap();
        assert_eq!(
            web_url(&p),
            "https://dev.azure.com/acme/0f3a/_git/infra/pullrequest/7"
        );
    }
}
