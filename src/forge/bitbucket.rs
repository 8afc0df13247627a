//! Bitbucket Cloud (API 2.0, `https://api.bitbucket.org/2.0`).
//!
//! The repository is `workspace/repo_slug`; the token (a repository, project or workspace
//! access token) goes in `Authorization: Bearer`. Open pull requests are listed with a `q`
//! filter on the source branch and state, page by page (`next`). Drafts are the `draft` field.
//! Reviewers are accounts named by uuid (`{…}`, braces optional in the config): the pull
//! request is edited with its reviewers plus the new ones. Bitbucket Cloud has no labels,
//! assignees or auto-merge in its API: those settings are left out with a warning. Closing
//! is declining (`POST …/decline`), after a comment (`content.raw`). A create that finds a pull
//! request open for the branch is refused with 400.

use reqwest::header::{HeaderName, AUTHORIZATION};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use super::flow::{not_on, owner_and_name, Dialect, Drafts, Flow};
use super::http::{encode_segment, Api};
use super::{ForgeError, ForgeKind, NewPullRequest, PullRequest, Secret};

/// Page size of listings (Bitbucket Cloud's maximum for pull requests is 50).
const PAGE: &str = "50";

/// Listings stop after this many pages.
const MAX_PAGES: usize = 20;

pub(crate) struct Bitbucket {
    /// `/repositories/WORKSPACE/SLUG`, each segment encoded.
    repo: String,
}

impl Bitbucket {
    /// `api_url` is the API root (`https://api.bitbucket.org/2.0`); `repository` is
    /// `workspace/repo_slug`.
    pub(crate) fn connect(
        api_url: &str,
        repository: &str,
        token: Secret,
    ) -> Result<Flow<Bitbucket>, ForgeError> {
        let (workspace, slug) = owner_and_name(ForgeKind::BitbucketCloud, repository)?;
        let repo = format!(
            "/repositories/{}/{}",
            encode_segment(workspace),
            encode_segment(slug)
        );
        Flow::new(Bitbucket { repo }, api_url, token)
    }
}

/// A string literal of Bitbucket's query language.
fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// An account uuid as Bitbucket writes it: in braces.
pub(crate) fn uuid(reviewer: &str) -> String {
    let r = reviewer
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}');
    format!("{{{r}}}")
}

impl Dialect for Bitbucket {
    const KIND: ForgeKind = ForgeKind::BitbucketCloud;
    const HEADERS: &'static [(&'static str, &'static str)] = &[("accept", "application/json")];
    const DRAFTS: Drafts = Drafts::Field;
    const PULLS: &'static str = "/pullrequests";
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

    fn list_query(&self, head: &str, base: Option<&str>) -> Vec<(&'static str, String)> {
        let mut q = format!("source.branch.name = {} AND state = \"OPEN\"", quoted(head));
        if let Some(b) = base {
            q.push_str(&format!(" AND destination.branch.name = {}", quoted(b)));
        }
        vec![("q", q), ("pagelen", PAGE.to_string())]
    }

    async fn list(
        &self,
        api: &Api,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Vec<Pull>, ForgeError> {
        let mut all = Vec::new();
        let mut page: Page = api.json(Method::GET, path, query, None).await?;
        for _ in 1..MAX_PAGES {
            all.append(&mut page.values);
            match page.next.take() {
                Some(next) => page = api.json(Method::GET, &next, &[], None).await?,
                None => return Ok(all),
            }
        }
        all.append(&mut page.values);
        Ok(all)
    }

    fn comments(number: u64) -> String {
        format!("/pullrequests/{number}/comments")
    }

    async fn comment(&self, api: &Api, number: u64, text: &str) -> Result<(), ForgeError> {
        let path = format!("{}{}", self.repo, Self::comments(number));
        let body = json!({ "content": { "raw": text } });
        api.send(Method::POST, &path, Some(&body)).await
    }

    async fn close(&self, api: &Api, number: u64) -> Result<(), ForgeError> {
        let path = format!("{}/decline", self.pull(number));
        api.send(Method::POST, &path, None).await
    }

    fn create_body(&self, pr: &NewPullRequest, title: &str, draft: bool) -> Value {
        let mut body = json!({
            "title": title,
            "description": pr.body,
            "source": { "branch": { "name": pr.head } },
            "destination": { "branch": { "name": pr.base } },
        });
        if draft {
            body["draft"] = json!(true);
        }
        body
    }

    /// A pull request open for the branch already: 400 (the lookup that follows tells).
    fn is_duplicate(e: &ForgeError) -> bool {
        e.status() == Some(400)
    }

    fn read(p: Pull) -> PullRequest {
        PullRequest {
            number: p.id,
            url: p.links.html.map(|h| h.href).unwrap_or_default(),
            head: p.source.branch.name,
            base: p.destination.branch.name,
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
        match (&p.source.repository, &p.destination.repository) {
            (Some(s), Some(d)) => s.full_name.eq_ignore_ascii_case(&d.full_name),
            _ => true,
        }
    }

    async fn add_labels(&self, _: &Api, _: u64, _: &[String]) -> Result<(), ForgeError> {
        not_on(Self::KIND, "labels", "labels")
    }

    /// Editing a pull request replaces its reviewers: keep the ones it has.
    async fn request_reviewers(
        &self,
        api: &Api,
        number: u64,
        reviewers: &[String],
    ) -> Result<(), ForgeError> {
        let path = self.pull(number);
        let current: Pull = api.json(Method::GET, &path, &[], None).await?;
        let mut all: Vec<String> = current.reviewers.iter().map(|r| r.uuid.clone()).collect();
        let before = all.len();
        for r in reviewers.iter().filter(|r| !r.trim().is_empty()) {
            let id = uuid(r);
            if !all.contains(&id) {
                all.push(id);
            }
        }
        if all.len() == before {
            return Ok(());
        }
        let list: Vec<Value> = all.iter().map(|u| json!({ "uuid": u })).collect();
        let body = json!({ "title": current.title, "reviewers": list });
        api.send(Method::PUT, &path, Some(&body)).await
    }

    async fn add_assignees(&self, _: &Api, _: u64, _: &[String]) -> Result<(), ForgeError> {
        not_on(Self::KIND, "assignees", "assignees")
    }

    async fn enable_auto_merge(&self, _: &Api, _: &PullRequest) -> Result<(), ForgeError> {
        not_on(Self::KIND, "auto-merge", "auto_merge")
    }
}

#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    values: Vec<Pull>,
    next: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct Pull {
    id: u64,
    #[serde(default)]
    title: String,
    description: Option<String>,
    state: String,
    draft: Option<bool>,
    source: End,
    destination: End,
    #[serde(default)]
    links: Links,
    #[serde(default)]
    reviewers: Vec<Account>,
}

#[derive(Deserialize)]
struct End {
    branch: Branch,
    repository: Option<Repository>,
}

#[derive(Deserialize)]
struct Branch {
    name: String,
}

#[derive(Deserialize)]
struct Repository {
    full_name: String,
}

#[derive(Deserialize, Default)]
struct Links {
    html: Option<Link>,
}

#[derive(Deserialize)]
struct Link {
    href: String,
}

#[derive(Deserialize)]
struct Account {
    uuid: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_are_quoted() {
        assert_eq!(quoted(r#"a"b\c"#), r#""a\"b\\c""#);
        let b = Bitbucket { repo: "/r".into() };
        let q = b.list_query("image-updater/web", Some("main"));
        assert_eq!(
            q[0].1,
            "source.branch.name = \"image-updater/web\" AND state = \"OPEN\" AND destination.branch.name = \"main\""
        );
    }

    #[test]
    fn uuids_get_braces() {
        assert_eq!(uuid("abc-1"), "{abc-1}");
        assert_eq!(uuid(" {abc-1} "), "{abc-1}");
    }
}
