//! `delivery.commit.via: api` on GitHub: commits made by GitHub itself through GraphQL's
//! `createCommitOnBranch`, so GitHub signs them and shows them as verified, with no key here.
//!
//! The mutation appends one commit to a branch whose head must still be `expectedHeadOid` (a
//! branch that moved is [`ApiCommitError::Moved`], retried like a rejected push), with every
//! rewritten file as a `fileChanges.additions` entry (path and base64 contents). GitHub makes
//! the token's owner the author; the config's author is not used. Pull-request branches are
//! first created (`createRef`) or reset (`updateRef` with `force`) to the base commit, then
//! committed on.

use std::path::PathBuf;

use base64::Engine as _;
use reqwest::header::AUTHORIZATION;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use super::detect::Target;
use super::github::graphql_url_for;
use super::http::Api;
use super::{ForgeError, ForgeKind, Secret};

const COMMIT: &str = "mutation($input: CreateCommitOnBranchInput!) { \
createCommitOnBranch(input: $input) { commit { oid url } } }";

const BRANCH: &str = "query($owner: String!, $name: String!, $ref: String!) { \
repository(owner: $owner, name: $name) { id ref(qualifiedName: $ref) { id target { oid } } } }";

const CREATE_REF: &str =
    "mutation($input: CreateRefInput!) { createRef(input: $input) { ref { id } } }";

const UPDATE_REF: &str =
    "mutation($input: UpdateRefInput!) { updateRef(input: $input) { ref { id } } }";

/// Why a commit through the API did not land.
#[derive(Debug)]
pub enum ApiCommitError {
    /// The branch no longer points at the expected head: someone pushed first.
    Moved(String),
    Failed(String),
}

impl std::fmt::Display for ApiCommitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiCommitError::Moved(m) | ApiCommitError::Failed(m) => f.write_str(m),
        }
    }
}

impl From<ForgeError> for ApiCommitError {
    fn from(e: ForgeError) -> ApiCommitError {
        // GitHub: "Expected branch to point to \"<oid>\" but it did not. Pull and try again."
        if e.message().contains("Expected branch to point to") {
            ApiCommitError::Moved(e.to_string())
        } else {
            ApiCommitError::Failed(e.to_string())
        }
    }
}

/// A GitHub repository's commits, made through GraphQL.
pub struct ApiCommits {
    api: Api,
    graphql_url: String,
    owner: String,
    name: String,
}

impl ApiCommits {
    /// For the forge `target` resolves to; only GitHub has this API.
    pub fn connect(target: &Target) -> Result<ApiCommits, ForgeError> {
        if target.kind != ForgeKind::Github {
            return Err(ForgeError::setup(format!(
                "delivery.commit.via is api, which only GitHub has, but the forge is {}: use via: git",
                target.kind.name()
            )));
        }
        let (owner, name) = super::flow::owner_and_name(ForgeKind::Github, &target.repository)?;
        let graphql_url = target
            .graphql_url
            .clone()
            .unwrap_or_else(|| graphql_url_for(&target.api_url));
        Ok(ApiCommits {
            owner: owner.to_string(),
            name: name.to_string(),
            api: Api::new(
                ForgeKind::Github,
                &target.api_url,
                target.token.clone(),
                bearer(&target.token),
                &[("accept", "application/vnd.github+json")],
            )?,
            graphql_url: graphql_url.trim_end_matches('/').to_string(),
        })
    }

    /// Append one commit holding `files` (repo-relative path, bytes) to `branch`, whose head
    /// must be `expected_head`; its message is `message` (first line the headline). The new
    /// commit's id.
    pub async fn commit(
        &self,
        branch: &str,
        expected_head: &str,
        message: &str,
        files: &[(PathBuf, Vec<u8>)],
    ) -> Result<String, ApiCommitError> {
        let (headline, body) = match message.split_once('\n') {
            Some((h, b)) => (h.trim_end(), b.trim()),
            None => (message.trim_end(), ""),
        };
        let b64 = base64::engine::general_purpose::STANDARD;
        let additions: Vec<Value> = files
            .iter()
            .map(|(path, bytes)| {
                json!({
                    "path": path.to_string_lossy().replace('\\', "/"),
                    "contents": b64.encode(bytes),
                })
            })
            .collect();
        let mut msg = json!({ "headline": headline });
        if !body.is_empty() {
            msg["body"] = json!(body);
        }
        let input = json!({
            "branch": {
                "repositoryNameWithOwner": format!("{}/{}", self.owner, self.name),
                "branchName": branch,
            },
            "message": msg,
            "expectedHeadOid": expected_head,
            "fileChanges": { "additions": additions },
        });
        let data = self.graphql(COMMIT, json!({ "input": input })).await?;
        data.pointer("/createCommitOnBranch/commit/oid")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| {
                ApiCommitError::Failed(format!(
                    "GitHub API createCommitOnBranch on {branch}: no commit in the answer"
                ))
            })
    }

    /// Point `branch` at `oid`, creating it or moving it there whatever it held (a pull
    /// request's branch, started again from the base).
    pub async fn reset_branch(&self, branch: &str, oid: &str) -> Result<(), ApiCommitError> {
        let qualified = format!("refs/heads/{branch}");
        let data = self
            .graphql(
                BRANCH,
                json!({ "owner": self.owner, "name": self.name, "ref": qualified }),
            )
            .await?;
        let repo = data
            .get("repository")
            .filter(|r| !r.is_null())
            .ok_or_else(|| {
                ApiCommitError::Failed(format!(
                    "GitHub API: repository {}/{} not found (or the token cannot see it)",
                    self.owner, self.name
                ))
            })?;
        let reference = repo.get("ref").filter(|r| !r.is_null());
        match reference {
            Some(r) if r.pointer("/target/oid").and_then(Value::as_str) == Some(oid) => Ok(()),
            Some(r) => {
                let ref_id = r.get("id").and_then(Value::as_str).unwrap_or_default();
                self.graphql(
                    UPDATE_REF,
                    json!({ "input": { "refId": ref_id, "oid": oid, "force": true } }),
                )
                .await
                .map(|_| ())
            }
            None => {
                let repo_id = repo.get("id").and_then(Value::as_str).unwrap_or_default();
                self.graphql(
                    CREATE_REF,
                    json!({ "input": { "repositoryId": repo_id, "name": qualified, "oid": oid } }),
                )
                .await
                .map(|_| ())
            }
        }
    }

    /// One GraphQL call: its `data`, or an error quoting GitHub's messages.
    async fn graphql(&self, query: &str, variables: Value) -> Result<Value, ApiCommitError> {
        let body = json!({ "query": query, "variables": variables });
        let answer: Answer = self
            .api
            .json(Method::POST, &self.graphql_url, &[], Some(&body))
            .await?;
        if !answer.errors.is_empty() {
            let msgs: Vec<String> = answer.errors.into_iter().map(|e| e.message).collect();
            return Err(self
                .api
                .error(
                    Some(200),
                    &Method::POST,
                    &self.graphql_url,
                    &format!("GraphQL: {}", msgs.join("; ")),
                )
                .into());
        }
        Ok(answer.data.unwrap_or(Value::Null))
    }
}

fn bearer(token: &Secret) -> (reqwest::header::HeaderName, String) {
    (AUTHORIZATION, format!("Bearer {}", token.expose()))
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    data: Option<Value>,
    #[serde(default)]
    errors: Vec<GraphqlError>,
}

#[derive(Deserialize)]
struct GraphqlError {
    message: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use wiremock::matchers::{body_partial_json, header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const TOKEN: &str = "ghp-api-commit-token";

    fn target(server: &MockServer, kind: ForgeKind) -> Target {
        Target {
            kind,
            api_url: server.uri(),
            repository: "acme/infra".into(),
            graphql_url: None,
            token: Secret::new(TOKEN),
            token_var: "GITHUB_TOKEN",
        }
    }

    #[tokio::test]
    async fn commit_sends_the_documented_input() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/graphql"))
            .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
            .and(body_partial_json(json!({ "variables": { "input": {
                "branch": { "repositoryNameWithOwner": "acme/infra", "branchName": "main" },
                "message": { "headline": "chore: bump", "body": "Signed-off-by: a <a@b>" },
                "expectedHeadOid": "abc123",
                "fileChanges": { "additions": [
                    { "path": "apps/web.yaml", "contents": "aW1hZ2U6IHdlYjoy" }
                ] }
            } } })))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "data": { "createCommitOnBranch": { "commit": { "oid": "def456", "url": "u" } } }
            })))
            .expect(1)
            .mount(&server)
            .await;
        let api = ApiCommits::connect(&target(&server, ForgeKind::Github)).unwrap();
        let oid = api
            .commit(
                "main",
                "abc123",
                "chore: bump\n\nSigned-off-by: a <a@b>\n",
                &[(PathBuf::from("apps/web.yaml"), b"image: web:2".to_vec())],
            )
            .await
            .unwrap();
        assert_eq!(oid, "def456");
    }

    #[tokio::test]
    async fn a_moved_branch_is_moved_and_the_token_never_shows() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/graphql"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "data": { "createCommitOnBranch": null },
                "errors": [{ "message": format!("Expected branch to point to \"abc\" but it did not. Pull and try again. {TOKEN}") }]
            })))
            .mount(&server)
            .await;
        let api = ApiCommits::connect(&target(&server, ForgeKind::Github)).unwrap();
        let e = api.commit("main", "abc", "m", &[]).await.unwrap_err();
        assert!(matches!(e, ApiCommitError::Moved(_)), "{e:?}");
        assert!(!e.to_string().contains(TOKEN), "{e}");
    }

    #[tokio::test]
    async fn reset_creates_a_missing_branch_and_forces_an_existing_one() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(body_partial_json(
                json!({ "variables": { "ref": "refs/heads/new" } }),
            ))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "data": { "repository": { "id": "R_1", "ref": null } }
            })))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(body_partial_json(json!({ "variables": { "input": {
                "repositoryId": "R_1", "name": "refs/heads/new", "oid": "base"
            } } })))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "data": { "createRef": { "ref": { "id": "REF_2" } } }
            })))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(body_partial_json(
                json!({ "variables": { "ref": "refs/heads/old" } }),
            ))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "data": { "repository": { "id": "R_1", "ref": { "id": "REF_9", "target": { "oid": "other" } } } }
            })))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(body_partial_json(json!({ "variables": { "input": {
                "refId": "REF_9", "oid": "base", "force": true
            } } })))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "data": { "updateRef": { "ref": { "id": "REF_9" } } }
            })))
            .expect(1)
            .mount(&server)
            .await;
        let api = ApiCommits::connect(&target(&server, ForgeKind::Github)).unwrap();
        api.reset_branch("new", "base").await.unwrap();
        api.reset_branch("old", "base").await.unwrap();
    }

    #[tokio::test]
    async fn other_forges_are_refused() {
        let server = MockServer::start().await;
        let e = ApiCommits::connect(&target(&server, ForgeKind::Gitlab))
            .err()
            .unwrap();
        assert!(e.to_string().contains("only GitHub"), "{e}");
    }
}
