//! The one pull-request flow every forge follows, spoken in each forge's [`Dialect`].
//!
//! Find the open pull request of a branch; open one, adopting the one that already exists when
//! the forge says "duplicate" (a lost race); update title and body keeping the draft state;
//! label it, ask for reviews and assignees, turn on auto-merge; comment and close. The steps
//! are the same on every forge; what differs is said by the dialect: API paths, field names,
//! how a draft is marked, the auth header, which answers mean "duplicate", and the few real
//! differences (label ids, user ids, GraphQL), which a dialect writes as its own requests.
//!
//! Adding a forge is one dialect file and one arm in [`super::detect`].

use std::future::Future;

use futures::future::BoxFuture;
use reqwest::header::HeaderName;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::http::Api;
use super::{split_reviewers, Forge, ForgeError, ForgeKind, NewPullRequest, PullRequest, Secret};

/// How a forge marks a draft.
pub(crate) enum Drafts {
    /// A `draft` field in the create request (GitHub); updates leave it alone.
    Field,
    /// A title prefix (GitLab `Draft: `, Gitea `WIP: `): added on create, kept on update.
    TitlePrefix(&'static str),
}

/// One forge's API: what the shared [`Flow`] needs to know to speak it.
///
/// The provided request methods are GitHub's REST shapes (Gitea shares most); a dialect whose
/// forge differs writes its own.
pub(crate) trait Dialect: Send + Sync + Sized + 'static {
    const KIND: ForgeKind;
    /// Fixed headers of every request, besides the token and the user agent.
    const HEADERS: &'static [(&'static str, &'static str)];
    const DRAFTS: Drafts;
    /// The pull requests below [`Dialect::repo`]: `/pulls`, GitLab `/merge_requests`.
    const PULLS: &'static str;
    /// The method that edits a pull request: `PATCH`, GitLab `PUT`.
    const EDIT: Method;
    /// The name of the description field: `body`, GitLab `description`.
    const BODY: &'static str;
    /// The field and value an edit closes with: `state: closed`, GitLab `state_event: close`.
    const CLOSE: (&'static str, &'static str);
    /// Query parameters every request carries (Azure DevOps: `api-version`).
    const QUERY: &'static [(&'static str, &'static str)] = &[];
    /// Whether a duplicate is looked up by head and base first, then by head alone (GitHub);
    /// otherwise by head alone, preferring the one with the same base.
    const ADOPT_BY_BASE_FIRST: bool = false;

    /// A pull request as the forge's API returns it.
    type Pull: DeserializeOwned + Send;

    /// The header that carries the token, and its value.
    fn auth(&self, token: &Secret) -> (HeaderName, String);

    /// The repository's path below the API root: `/repos/acme/infra`, `/projects/42`.
    fn repo(&self) -> &str;

    /// The query that lists open pull requests with head branch `head` (and base `base`).
    fn list_query(&self, head: &str, base: Option<&str>) -> Vec<(&'static str, String)>;

    /// The path of the comments of pull request `number`, below [`Dialect::repo`].
    fn comments(number: u64) -> String;

    /// The create request for `pr`, with `title` already marked as a draft where titles do so.
    fn create_body(&self, pr: &NewPullRequest, title: &str, draft: bool) -> serde_json::Value;

    /// Whether a refused create means "one is open for this branch already".
    fn is_duplicate(e: &ForgeError) -> bool;

    /// Whether a refused create means "drafts are not available here": then it is retried
    /// as a ready pull request.
    fn drafts_refused(_e: &ForgeError) -> bool {
        false
    }

    /// The forge's answer in plain data.
    fn read(p: Self::Pull) -> PullRequest;

    /// Whether the pull request's head branch lives in the repository itself, not in a fork:
    /// a contributor's pull request is never ours to update or close.
    fn own(_p: &Self::Pull) -> bool {
        true
    }

    /// The path of pull request `number`.
    fn pull(&self, number: u64) -> String {
        format!("{}{}/{number}", self.repo(), Self::PULLS)
    }

    /// The open pull requests `query` lists (one call; Gitea pages).
    fn list(
        &self,
        api: &Api,
        path: &str,
        query: &[(&str, &str)],
    ) -> impl Future<Output = Result<Vec<Self::Pull>, ForgeError>> + Send {
        api.json(Method::GET, path, query, None)
    }

    /// Edit pull request `number` with the fields of `req` (title and description, or the
    /// close field): [`Dialect::EDIT`] on [`Dialect::pull`]. Bitbucket Data Center also sends
    /// the version it edits.
    fn edit(
        &self,
        api: &Api,
        number: u64,
        req: serde_json::Value,
    ) -> impl Future<Output = Result<Self::Pull, ForgeError>> + Send {
        let path = self.pull(number);
        async move { api.json(Self::EDIT, &path, &[], Some(&req)).await }
    }

    /// Comment `text` on pull request `number`: `{"body": text}` to [`Dialect::comments`].
    fn comment(
        &self,
        api: &Api,
        number: u64,
        text: &str,
    ) -> impl Future<Output = Result<(), ForgeError>> + Send {
        let path = format!("{}{}", self.repo(), Self::comments(number));
        let body = json!({ "body": text });
        async move { api.send(Method::POST, &path, Some(&body)).await }
    }

    /// Close pull request `number` unmerged: an edit with [`Dialect::CLOSE`]; Bitbucket
    /// declines instead.
    fn close(&self, api: &Api, number: u64) -> impl Future<Output = Result<(), ForgeError>> + Send {
        let (field, value) = Self::CLOSE;
        let edit = self.edit(api, number, json!({ field: value }));
        async move { edit.await.map(|_| ()) }
    }

    /// Add `labels` (not empty) by name.
    fn add_labels(
        &self,
        api: &Api,
        number: u64,
        labels: &[String],
    ) -> impl Future<Output = Result<(), ForgeError>> + Send {
        let path = format!("{}/issues/{number}/labels", self.repo());
        async move {
            api.send(Method::POST, &path, Some(&json!({ "labels": labels })))
                .await
        }
    }

    /// Request reviews from users and teams (`org/team`).
    fn request_reviewers(
        &self,
        api: &Api,
        number: u64,
        reviewers: &[String],
    ) -> impl Future<Output = Result<(), ForgeError>> + Send {
        let path = format!("{}/pulls/{number}/requested_reviewers", self.repo());
        let (users, teams) = split_reviewers(reviewers);
        async move {
            if users.is_empty() && teams.is_empty() {
                return Ok(());
            }
            let mut body = json!({ "reviewers": users });
            if !teams.is_empty() {
                body["team_reviewers"] = json!(teams);
            }
            api.send(Method::POST, &path, Some(&body)).await
        }
    }

    /// Add `assignees` (not empty) by username.
    fn add_assignees(
        &self,
        api: &Api,
        number: u64,
        assignees: &[String],
    ) -> impl Future<Output = Result<(), ForgeError>> + Send {
        let path = format!("{}/issues/{number}/assignees", self.repo());
        async move {
            api.send(
                Method::POST,
                &path,
                Some(&json!({ "assignees": assignees })),
            )
            .await
        }
    }

    /// Have the forge merge `pr` once its checks pass.
    fn enable_auto_merge(
        &self,
        api: &Api,
        pr: &PullRequest,
    ) -> impl Future<Output = Result<(), ForgeError>> + Send;
}

/// The pull-request flow against one repository of one forge.
pub(crate) struct Flow<D> {
    pub(super) api: Api,
    pub(super) dialect: D,
}

impl<D: Dialect> Flow<D> {
    /// A client for `api_url` (the API root) speaking `dialect`, authenticated with `token`.
    pub(crate) fn new(dialect: D, api_url: &str, token: Secret) -> Result<Flow<D>, ForgeError> {
        let auth = dialect.auth(&token);
        let api = Api::new(D::KIND, api_url, token, auth, D::HEADERS)?.with_query(D::QUERY);
        Ok(Flow { api, dialect })
    }

    /// Our open pull requests with head `head` (and base `base`).
    async fn list_open(
        &self,
        head: &str,
        base: Option<&str>,
    ) -> Result<Vec<PullRequest>, ForgeError> {
        let query = self.dialect.list_query(head, base);
        let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let path = format!("{}{}", self.dialect.repo(), D::PULLS);
        let pulls = self.dialect.list(&self.api, &path, &query).await?;
        Ok(pulls
            .into_iter()
            .filter(D::own)
            .map(D::read)
            .filter(|p| p.state == "open" && p.head == head)
            .filter(|p| base.is_none_or(|b| p.base == b))
            .collect())
    }

    pub(crate) async fn find_open(
        &self,
        head: &str,
        base: &str,
    ) -> Result<Option<PullRequest>, ForgeError> {
        Ok(self.list_open(head, Some(base)).await?.into_iter().next())
    }

    async fn post(&self, pr: &NewPullRequest, draft: bool) -> Result<PullRequest, ForgeError> {
        let title = match D::DRAFTS {
            Drafts::TitlePrefix(prefix) if draft => format!("{prefix}{}", pr.title),
            _ => pr.title.clone(),
        };
        let body = self.dialect.create_body(pr, &title, draft);
        let path = format!("{}{}", self.dialect.repo(), D::PULLS);
        let p: D::Pull = self.api.json(Method::POST, &path, &[], Some(&body)).await?;
        Ok(D::read(p))
    }

    pub(crate) async fn create(&self, pr: &NewPullRequest) -> Result<PullRequest, ForgeError> {
        let created = match self.post(pr, pr.draft).await {
            Err(e) if pr.draft && D::drafts_refused(&e) => self.post(pr, false).await,
            other => other,
        };
        match created {
            Err(e) if D::is_duplicate(&e) => self.adopt(pr).await?.ok_or(e),
            other => other,
        }
    }

    /// The open pull request a refused duplicate create means: forges allow one open pull
    /// request per head branch (Gitea: per head and base), whatever its base.
    async fn adopt(&self, pr: &NewPullRequest) -> Result<Option<PullRequest>, ForgeError> {
        if D::ADOPT_BY_BASE_FIRST {
            if let Some(p) = self.find_open(&pr.head, &pr.base).await? {
                return Ok(Some(p));
            }
        }
        let mut found = self.list_open(&pr.head, None).await?;
        let pick = found.iter().position(|p| p.base == pr.base).unwrap_or(0);
        Ok((pick < found.len()).then(|| found.swap_remove(pick)))
    }

    pub(crate) async fn update(
        &self,
        number: u64,
        title: &str,
        body: &str,
    ) -> Result<PullRequest, ForgeError> {
        let path = self.dialect.pull(number);
        let title = match D::DRAFTS {
            Drafts::Field => title.to_string(),
            Drafts::TitlePrefix(prefix) => {
                let current: D::Pull = self.api.json(Method::GET, &path, &[], None).await?;
                if D::read(current).draft {
                    format!("{prefix}{title}")
                } else {
                    title.to_string()
                }
            }
        };
        let req = json!({ "title": title, D::BODY: body });
        let p = self.dialect.edit(&self.api, number, req).await?;
        Ok(D::read(p))
    }

    pub(crate) async fn add_labels(
        &self,
        number: u64,
        labels: &[String],
    ) -> Result<(), ForgeError> {
        if labels.is_empty() {
            return Ok(());
        }
        self.dialect.add_labels(&self.api, number, labels).await
    }

    pub(crate) async fn request_reviewers(
        &self,
        number: u64,
        reviewers: &[String],
    ) -> Result<(), ForgeError> {
        if reviewers.is_empty() {
            return Ok(());
        }
        self.dialect
            .request_reviewers(&self.api, number, reviewers)
            .await
    }

    pub(crate) async fn add_assignees(
        &self,
        number: u64,
        assignees: &[String],
    ) -> Result<(), ForgeError> {
        if assignees.is_empty() {
            return Ok(());
        }
        self.dialect
            .add_assignees(&self.api, number, assignees)
            .await
    }

    pub(crate) async fn enable_auto_merge(&self, pr: &PullRequest) -> Result<(), ForgeError> {
        self.dialect.enable_auto_merge(&self.api, pr).await
    }

    pub(crate) async fn close(&self, number: u64, comment: &str) -> Result<(), ForgeError> {
        if !comment.is_empty() {
            self.dialect.comment(&self.api, number, comment).await?;
        }
        self.dialect.close(&self.api, number).await
    }
}

/// The `dyn`-compatible face of the flow that delivery holds.
impl<D: Dialect> Forge for Flow<D> {
    fn kind(&self) -> ForgeKind {
        D::KIND
    }

    fn find_open<'a>(
        &'a self,
        head: &'a str,
        base: &'a str,
    ) -> BoxFuture<'a, Result<Option<PullRequest>, ForgeError>> {
        Box::pin(Flow::find_open(self, head, base))
    }

    fn create<'a>(
        &'a self,
        pr: &'a NewPullRequest,
    ) -> BoxFuture<'a, Result<PullRequest, ForgeError>> {
        Box::pin(Flow::create(self, pr))
    }

    fn update<'a>(
        &'a self,
        number: u64,
        title: &'a str,
        body: &'a str,
    ) -> BoxFuture<'a, Result<PullRequest, ForgeError>> {
        Box::pin(Flow::update(self, number, title, body))
    }

    fn add_labels<'a>(
        &'a self,
        number: u64,
        labels: &'a [String],
    ) -> BoxFuture<'a, Result<(), ForgeError>> {
        Box::pin(Flow::add_labels(self, number, labels))
    }

    fn request_reviewers<'a>(
        &'a self,
        number: u64,
        reviewers: &'a [String],
    ) -> BoxFuture<'a, Result<(), ForgeError>> {
        Box::pin(Flow::request_reviewers(self, number, reviewers))
    }

    fn add_assignees<'a>(
        &'a self,
        number: u64,
        assignees: &'a [String],
    ) -> BoxFuture<'a, Result<(), ForgeError>> {
        Box::pin(Flow::add_assignees(self, number, assignees))
    }

    fn enable_auto_merge<'a>(
        &'a self,
        pr: &'a PullRequest,
    ) -> BoxFuture<'a, Result<(), ForgeError>> {
        Box::pin(Flow::enable_auto_merge(self, pr))
    }

    fn close<'a>(&'a self, number: u64, comment: &'a str) -> BoxFuture<'a, Result<(), ForgeError>> {
        Box::pin(Flow::close(self, number, comment))
    }
}

/// Say, once per call, that `kind` has no `what` (labels, assignees, auto-merge), so the
/// setting that asked for it is left out; the pull request itself is delivered.
pub(crate) fn not_on(kind: ForgeKind, what: &str, setting: &str) -> Result<(), ForgeError> {
    tracing::warn!(
        "{} pull requests have no {what}: delivery.pull_request.{setting} is not applied",
        kind.name()
    );
    Ok(())
}

/// `owner/name` split in two, or an error naming the forge.
pub(crate) fn owner_and_name(
    kind: ForgeKind,
    repository: &str,
) -> Result<(&str, &str), ForgeError> {
    repository
        .trim_matches('/')
        .split_once('/')
        .filter(|(o, r)| !o.is_empty() && !r.is_empty() && !r.contains('/'))
        .map(|(o, r)| (o, r.trim_end_matches(".git")))
        .ok_or_else(|| {
            ForgeError::setup(format!(
                "{} repository must be owner/name, not {repository:?}",
                kind.name()
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::super::fakes::{Forge as Which, ForgeFake};
    use super::super::{
        azure::Azure, bitbucket::Bitbucket, bitbucket_dc::BitbucketDc, gitea::Gitea,
        github::Github, gitlab::Gitlab,
    };
    use super::*;

    const TOKEN: &str = "flow_TESTTOKEN123456";

    /// The client of `forge` for its fake served at `uri`.
    fn client(forge: Which, uri: &str) -> Box<dyn Forge> {
        let (api, repo) = (forge.api_url(uri), forge.repository());
        let token = Secret::new(TOKEN);
        match forge {
            Which::Github => Box::new(Github::connect(&api, repo, token).unwrap()),
            Which::Gitlab => Box::new(Gitlab::connect(&api, repo, token).unwrap()),
            Which::Gitea => Box::new(Gitea::connect(&api, repo, token).unwrap()),
            Which::BitbucketCloud => Box::new(Bitbucket::connect(&api, repo, token).unwrap()),
            Which::BitbucketDc => Box::new(BitbucketDc::connect(&api, repo, token).unwrap()),
            Which::Azure => Box::new(Azure::connect(&api, repo, token, false).unwrap()),
        }
    }

    /// What delivery does for one branch: find, then create or update or leave alone.
    async fn ensure(f: &dyn Forge, pr: &NewPullRequest) -> (&'static str, u64) {
        match f.find_open(&pr.head, &pr.base).await.unwrap() {
            None => ("created", f.create(pr).await.unwrap().number),
            Some(found) if found.title == pr.title && found.body == pr.body => {
                ("unchanged", found.number)
            }
            Some(found) => {
                let u = f.update(found.number, &pr.title, &pr.body).await.unwrap();
                ("updated", u.number)
            }
        }
    }

    #[tokio::test]
    async fn runs_create_then_keep_then_update_the_same_pull_request_on_every_forge() {
        for forge in Which::ALL {
            let (fake, server) = ForgeFake::start(forge, TOKEN).await;
            let f = client(forge, &server.uri());
            assert_eq!(f.kind().to_string(), forge.name());
            let mut pr = NewPullRequest {
                head: "image-updater/web".into(),
                base: "main".into(),
                title: "chore(images): update web to 1.3.1".into(),
                body: "| image | from | to |".into(),
                draft: true,
            };
            assert_eq!(ensure(&*f, &pr).await, ("created", 1), "{forge:?}");
            // The draft marker does not make the title look changed.
            assert_eq!(ensure(&*f, &pr).await, ("unchanged", 1), "{forge:?}");
            pr.title = "chore(images): update web to 1.4.0".into();
            assert_eq!(ensure(&*f, &pr).await, ("updated", 1), "{forge:?}");
            pr.body = "| web | 1.3.1 | 1.4.0 |".into();
            assert_eq!(ensure(&*f, &pr).await, ("updated", 1), "{forge:?}");
            // A racing create for the same branch gets the one pull request back.
            assert_eq!(f.create(&pr).await.unwrap().number, 1, "{forge:?}");
            let prs = fake.prs();
            assert_eq!(prs.len(), 1, "{forge:?}: {prs:#?}");
            let draft = forge.draft_prefix();
            assert_eq!(prs[0].title, format!("{draft}{}", pr.title), "{forge:?}");
            assert_eq!(prs[0].body, pr.body, "{forge:?}");
            assert!(prs[0].draft, "{forge:?}: the draft stays a draft");
            assert!(
                fake.problems().is_empty(),
                "{forge:?}: {:#?}",
                fake.problems()
            );
        }
    }
}
