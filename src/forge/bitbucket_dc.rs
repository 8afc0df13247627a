//! Bitbucket Data Center (and Server): REST API 1.0, `https://HOST/rest/api/1.0`.
//!
//! The repository is `PROJECT/repo_slug` (a personal repository: `~USER/repo_slug`); the
//! token (an HTTP access token) goes in `Authorization: Bearer`. Open pull requests are
//! listed by source ref (`at=refs/heads/BRANCH`, `direction=OUTGOING`, `state=OPEN`), page by
//! page (`start`, `isLastPage`). Drafts are the `draft` field (Bitbucket 8.18 and later).
//! Every edit carries the `version` it edits, read just before. Reviewers are users by name,
//! added one by one as participants with role `REVIEWER`. Bitbucket Data Center has no
//! labels or assignees, and no auto-merge this tool asks for: those settings are left out
//! with a warning. Closing is declining (`POST …/decline?version=N`), after a comment
//! (`text`). A second pull request for the same branches is refused with 409
//! (`DuplicatePullRequestException`).

use reqwest::header::{HeaderName, AUTHORIZATION};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use super::flow::{not_on, owner_and_name, Dialect, Drafts, Flow};
use super::http::{encode_segment, Api};
use super::{ForgeError, ForgeKind, NewPullRequest, PullRequest, Secret};

/// Page size of listings.
const PAGE: usize = 50;

/// Listings stop after this many pages.
const MAX_PAGES: usize = 20;

pub(crate) struct BitbucketDc {
    /// `/projects/KEY/repos/SLUG`, each segment encoded.
    repo: String,
    project: String,
    slug: String,
}

impl BitbucketDc {
    /// `api_url` is the API root (`https://HOST/rest/api/1.0`); `repository` is
    /// `PROJECT/repo_slug`.
    pub(crate) fn connect(
        api_url: &str,
        repository: &str,
        token: Secret,
    ) -> Result<Flow<BitbucketDc>, ForgeError> {
        let (project, slug) = owner_and_name(ForgeKind::BitbucketDc, repository)?;
        let repo = format!(
            "/projects/{}/repos/{}",
            encode_segment(project),
            encode_segment(slug)
        );
        let (project, slug) = (project.to_string(), slug.to_string());
        Flow::new(
            BitbucketDc {
                repo,
                project,
                slug,
            },
            api_url,
            token,
        )
    }

    /// A branch of this repository, as a ref of a create request.
    fn branch_ref(&self, branch: &str) -> Value {
        json!({
            "id": format!("refs/heads/{branch}"),
            "repository": { "slug": self.slug, "project": { "key": self.project } }
        })
    }

    /// The version of pull request `number` an edit must name.
    async fn version(&self, api: &Api, number: u64) -> Result<u64, ForgeError> {
        let p: Pull = api.json(Method::GET, &self.pull(number), &[], None).await?;
        Ok(p.version)
    }
}

impl Dialect for BitbucketDc {
    const KIND: ForgeKind = ForgeKind::BitbucketDc;
    const HEADERS: &'static [(&'static str, &'static str)] = &[("accept", "application/json")];
    const DRAFTS: Drafts = Drafts::Field;
    const PULLS: &'static str = "/pull-requests";
    const EDIT: Method = Method::PUT;
    const BODY: &'static str = "description";
    /// The state a declined pull request is in; declining is its own call ([`Dialect::close`]).
    const CLOSE: (&'static str, &'static str) = ("state", "DECLINED");

    type Pull = Pull;

    fn auth(&self, token: &Secret) -> (HeaderName, String) {
        (AUTHORIZATION, format!("Bearer {}", token.expose()))
    }

    fn repo(&self) -> &str {
        &self.repo
    }

    /// Bitbucket filters by one ref: the source branch; the flow matches the base.
    fn list_query(&self, head: &str, _base: Option<&str>) -> Vec<(&'static str, String)> {
        vec![
            ("at", format!("refs/heads/{head}")),
            ("direction", "OUTGOING".to_string()),
            ("state", "OPEN".to_string()),
        ]
    }

    async fn list(
        &self,
        api: &Api,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Vec<Pull>, ForgeError> {
        let mut all = Vec::new();
        let limit = PAGE.to_string();
        let mut start = 0u64;
        for _ in 0..MAX_PAGES {
            let from = start.to_string();
            let mut q = query.to_vec();
            q.push(("limit", &limit));
            q.push(("start", &from));
            let mut page: Page = api.json(Method::GET, path, &q, None).await?;
            all.append(&mut page.values);
            match page.next_page_start {
                Some(next) if !page.is_last_page && next > start => start = next,
                _ => break,
            }
        }
        Ok(all)
    }

    /// An edit names the version it edits.
    async fn edit(&self, api: &Api, number: u64, mut req: Value) -> Result<Pull, ForgeError> {
        req["version"] = json!(self.version(api, number).await?);
        api.json(Method::PUT, &self.pull(number), &[], Some(&req))
            .await
    }

    fn comments(number: u64) -> String {
        format!("/pull-requests/{number}/comments")
    }

    async fn comment(&self, api: &Api, number: u64, text: &str) -> Result<(), ForgeError> {
        let path = format!("{}{}", self.repo, Self::comments(number));
        api.send(Method::POST, &path, Some(&json!({ "text": text })))
            .await
    }

    async fn close(&self, api: &Api, number: u64) -> Result<(), ForgeError> {
        let version = self.version(api, number).await?.to_string();
        let path = format!("{}/decline", self.pull(number));
        let _: Value = api
            .json(
                Method::POST,
                &path,
                &[("version", &version)],
                Some(&json!({})),
            )
            .await?;
        Ok(())
    }

    fn create_body(&self, pr: &NewPullRequest, title: &str, draft: bool) -> Value {
        let mut body = json!({
            "title": title,
            "description": pr.body,
            "fromRef": self.branch_ref(&pr.head),
            "toRef": self.branch_ref(&pr.base),
        });
        if draft {
            body["draft"] = json!(true);
        }
        body
    }

    /// "Only one pull request may be open for a given source and target branch".
    fn is_duplicate(e: &ForgeError) -> bool {
        e.status() == Some(409)
    }

    fn read(p: Pull) -> PullRequest {
        PullRequest {
            number: p.id,
            url: p
                .links
                .self_
                .into_iter()
                .next()
                .map(|l| l.href)
                .unwrap_or_default(),
            head: p.from_ref.branch(),
            base: p.to_ref.branch(),
            title: p.title,
            body: p.description.unwrap_or_default(),
            state: match p.state.as_str() {
                "OPEN" => "open",
                "MERGED" => "merged",
                _ => "closed",
            }
            .to_string(),
            draft: p.draft.unwrap_or(false),
            node_id: None,
        }
    }

    /// A pull request from a fork has another source repository.
    fn own(p: &Pull) -> bool {
        match (&p.from_ref.repository, &p.to_ref.repository) {
            (Some(f), Some(t)) => f.id == t.id,
            _ => true,
        }
    }

    async fn add_labels(&self, _: &Api, _: u64, _: &[String]) -> Result<(), ForgeError> {
        not_on(Self::KIND, "labels", "labels")
    }

    /// Each reviewer becomes a participant with role `REVIEWER`.
    async fn request_reviewers(
        &self,
        api: &Api,
        number: u64,
        reviewers: &[String],
    ) -> Result<(), ForgeError> {
        let path = format!("{}/participants", self.pull(number));
        for name in reviewers
            .iter()
            .map(|r| r.trim().trim_start_matches('@'))
            .filter(|r| !r.is_empty())
        {
            let body = json!({ "user": { "name": name }, "role": "REVIEWER" });
            api.send(Method::POST, &path, Some(&body)).await?;
        }
        Ok(())
    }

    async fn add_assignees(&self, _: &Api, _: u64, _: &[String]) -> Result<(), ForgeError> {
        not_on(Self::KIND, "assignees", "assignees")
    }

    async fn enable_auto_merge(&self, _: &Api, _: &PullRequest) -> Result<(), ForgeError> {
        not_on(Self::KIND, "auto-merge", "auto_merge")
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page {
    #[serde(default)]
    values: Vec<Pull>,
    #[serde(default = "yes")]
    is_last_page: bool,
    next_page_start: Option<u64>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Pull {
    id: u64,
    #[serde(default)]
    version: u64,
    #[serde(default)]
    title: String,
    description: Option<String>,
    state: String,
    draft: Option<bool>,
    from_ref: Ref,
    to_ref: Ref,
    #[serde(default)]
    links: Links,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Ref {
    id: String,
    display_id: Option<String>,
    repository: Option<Repository>,
}

impl Ref {
    fn branch(self) -> String {
        self.display_id.unwrap_or_else(|| {
            self.id
                .strip_prefix("refs/heads/")
                .unwrap_or(&self.id)
                .to_string()
        })
    }
}

#[derive(Deserialize)]
struct Repository {
    id: u64,
}

#[derive(Deserialize, Default)]
struct Links {
    #[serde(rename = "self", default)]
    self_: Vec<Link>,
}

#[derive(Deserialize)]
struct Link {
    href: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_name_branches() {
        let r = Ref {
            id: "refs/heads/image-updater/web".into(),
            display_id: None,
            repository: None,
        };
        assert_eq!(r.branch(), "image-updater/web");
    }
}
