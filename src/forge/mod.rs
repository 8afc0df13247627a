//! Pull and merge requests: the `Forge` contract, the one flow behind it, and one small
//! dialect module per forge.
//!
//! The pipeline hands plain data in ([`NewPullRequest`], titles, bodies, names) and gets plain
//! data back ([`PullRequest`]); which forge answers is decided once, by [`detect`], from the CI
//! environment, the remote's host and the config. Every forge runs the same flow (`flow.rs`:
//! find, create or adopt, update keeping the draft, label, review, assign, auto-merge, close),
//! spoken in its own REST dialect: [`github`] (REST v3, GraphQL for auto-merge; api.github.com
//! and GHES), [`gitlab`] (API v4; gitlab.com and self-managed), [`gitea`] (API v1; Gitea and
//! Forgejo), [`bitbucket`] (Bitbucket Cloud API 2.0), [`bitbucket_dc`] (Bitbucket Data Center
//! REST 1.0), [`azure`] (Azure DevOps Repos REST 7.1).
//!
//! Errors quote the forge's answer (status and message) and never the token: the token lives in
//! a [`Secret`] that prints as `***`, and every message is scrubbed of it before it leaves.

pub mod azure;
pub mod bitbucket;
pub mod bitbucket_dc;
pub mod detect;
#[cfg(test)]
#[allow(dead_code)]
pub(crate) mod fakes;
mod flow;
pub mod gitea;
pub mod github;
pub mod github_commit;
pub mod gitlab;
mod http;

use std::fmt;

use futures::future::BoxFuture;

pub use detect::{detect, resolve, ForgeConfig, Target};

pub use crate::secret::Secret;

/// Which forge API a repository lives behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ForgeKind {
    Github,
    Gitlab,
    /// Gitea and Forgejo (the same API).
    Gitea,
    /// Bitbucket Cloud (bitbucket.org).
    #[serde(rename = "bitbucket")]
    BitbucketCloud,
    /// Bitbucket Data Center and Server.
    #[serde(rename = "bitbucket-server")]
    BitbucketDc,
    /// Azure DevOps Repos (Services and Server).
    #[serde(rename = "azure-devops")]
    Azure,
}

impl ForgeKind {
    /// Every forge, in the order messages list them.
    pub const ALL: [ForgeKind; 6] = [
        ForgeKind::Github,
        ForgeKind::Gitlab,
        ForgeKind::Gitea,
        ForgeKind::BitbucketCloud,
        ForgeKind::BitbucketDc,
        ForgeKind::Azure,
    ];

    /// What `delivery.forge` accepts, for messages.
    pub const EXPECTED: &'static str =
        "github, gitlab, gitea (or forgejo), bitbucket, bitbucket-server (or bitbucket-dc, bitbucket-datacenter), azure-devops (or azure)";

    /// The forge's name for messages: `GitHub`, `GitLab`, `Gitea`, `Bitbucket Cloud`, ….
    pub fn name(self) -> &'static str {
        match self {
            ForgeKind::Github => "GitHub",
            ForgeKind::Gitlab => "GitLab",
            ForgeKind::Gitea => "Gitea",
            ForgeKind::BitbucketCloud => "Bitbucket Cloud",
            ForgeKind::BitbucketDc => "Bitbucket Data Center",
            ForgeKind::Azure => "Azure DevOps",
        }
    }
}

impl fmt::Display for ForgeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ForgeKind::Github => "github",
            ForgeKind::Gitlab => "gitlab",
            ForgeKind::Gitea => "gitea",
            ForgeKind::BitbucketCloud => "bitbucket",
            ForgeKind::BitbucketDc => "bitbucket-server",
            ForgeKind::Azure => "azure-devops",
        })
    }
}

impl std::str::FromStr for ForgeKind {
    type Err = String;

    /// `github`, `gitlab`, `gitea` (or `forgejo`), `bitbucket`, `bitbucket-server` (or
    /// `bitbucket-dc`, `bitbucket-datacenter`), `azure-devops` (or `azure`), any case.
    fn from_str(s: &str) -> Result<ForgeKind, String> {
        match s.to_ascii_lowercase().as_str() {
            "github" => Ok(ForgeKind::Github),
            "gitlab" => Ok(ForgeKind::Gitlab),
            "gitea" | "forgejo" => Ok(ForgeKind::Gitea),
            "bitbucket" | "bitbucket-cloud" => Ok(ForgeKind::BitbucketCloud),
            "bitbucket-dc" | "bitbucket-server" | "bitbucket-datacenter" => {
                Ok(ForgeKind::BitbucketDc)
            }
            "azure" | "azure-devops" => Ok(ForgeKind::Azure),
            other => Err(format!(
                "unknown forge {other:?}: expected {}",
                ForgeKind::EXPECTED
            )),
        }
    }
}

/// An open (or just closed) pull/merge request as the forge reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PullRequest {
    /// GitHub and Gitea: the PR number; GitLab: the MR's `iid` (the `!7` in the UI).
    pub number: u64,
    /// The web page of the PR (not its API URL).
    pub url: String,
    /// The head (source) branch name, without an owner prefix.
    pub head: String,
    /// The base (target) branch name.
    pub base: String,
    /// The title without the forge's draft prefix (`Draft: `, `WIP: `): compare it to the one
    /// you would write.
    pub title: String,
    /// The body (GitLab: description); empty when the forge has none.
    pub body: String,
    /// `open`, `closed` or `merged` on every forge (GitLab's `opened` is `open`; `locked` stays).
    pub state: String,
    /// Whether the PR is a draft.
    pub draft: bool,
    /// GitHub's GraphQL node id (needed for auto-merge); `None` elsewhere.
    pub node_id: Option<String>,
}

/// What to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPullRequest {
    pub head: String,
    pub base: String,
    pub title: String,
    pub body: String,
    pub draft: bool,
}

/// A forge API call that failed: the HTTP status (if the forge answered) and a message that
/// quotes the forge's answer. Never contains the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ForgeError {
    status: Option<u16>,
    message: String,
}

impl ForgeError {
    pub fn new(status: Option<u16>, message: impl Into<String>) -> ForgeError {
        ForgeError {
            status,
            message: message.into(),
        }
    }

    /// The HTTP status the forge answered with; `None` for transport and setup errors.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn setup(message: impl Into<String>) -> ForgeError {
        ForgeError::new(None, message)
    }
}

/// A forge that hosts pull/merge requests: dyn-compatible, so delivery holds whichever
/// [`detect`] picked. Implemented once, by the shared flow, for every forge's dialect.
///
/// Every method takes plain data and makes the fewest calls that do the job; empty lists of
/// labels, reviewers or assignees make no call at all.
pub trait Forge: Send + Sync {
    fn kind(&self) -> ForgeKind;

    /// The open PR whose head branch is `head` and base branch is `base`, if there is one.
    fn find_open<'a>(
        &'a self,
        head: &'a str,
        base: &'a str,
    ) -> BoxFuture<'a, Result<Option<PullRequest>, ForgeError>>;

    /// Open a PR. When the forge says one already exists for that branch (GitHub 422, GitLab
    /// and Gitea 409, e.g. after a lost race), that one is found and returned: never a second.
    fn create<'a>(
        &'a self,
        pr: &'a NewPullRequest,
    ) -> BoxFuture<'a, Result<PullRequest, ForgeError>>;

    /// Set the title and body of PR `number`; its draft state is kept.
    fn update<'a>(
        &'a self,
        number: u64,
        title: &'a str,
        body: &'a str,
    ) -> BoxFuture<'a, Result<PullRequest, ForgeError>>;

    /// Add labels by name (existing labels stay). Gitea labels missing from the repo are created.
    fn add_labels<'a>(
        &'a self,
        number: u64,
        labels: &'a [String],
    ) -> BoxFuture<'a, Result<(), ForgeError>>;

    /// Request reviews from users (by username) and, on GitHub and Gitea, teams (`org/team`).
    fn request_reviewers<'a>(
        &'a self,
        number: u64,
        reviewers: &'a [String],
    ) -> BoxFuture<'a, Result<(), ForgeError>>;

    /// Add assignees by username (existing assignees stay).
    fn add_assignees<'a>(
        &'a self,
        number: u64,
        assignees: &'a [String],
    ) -> BoxFuture<'a, Result<(), ForgeError>>;

    /// Merge the PR once its checks pass: GitHub `enablePullRequestAutoMerge`, GitLab
    /// `merge_when_pipeline_succeeds`, Gitea `merge_when_checks_succeed`.
    fn enable_auto_merge<'a>(
        &'a self,
        pr: &'a PullRequest,
    ) -> BoxFuture<'a, Result<(), ForgeError>>;

    /// Comment on PR `number` (unless `comment` is empty), then close it.
    fn close<'a>(&'a self, number: u64, comment: &'a str) -> BoxFuture<'a, Result<(), ForgeError>>;
}

/// Split reviewers into users and team slugs: `org/team` and `@org/team` name a team.
pub(crate) fn split_reviewers(reviewers: &[String]) -> (Vec<String>, Vec<String>) {
    let mut users = Vec::new();
    let mut teams = Vec::new();
    for r in reviewers {
        let r = r.trim().trim_start_matches('@');
        if r.is_empty() {
            continue;
        }
        match r.split_once('/') {
            Some((_, team)) => teams.push(team.to_string()),
            None => users.push(r.to_string()),
        }
    }
    (users, teams)
}

/// `title` without a leading draft marker from `prefixes` (case-insensitive), and whether it had one.
pub(crate) fn strip_draft_prefix<'t>(title: &'t str, prefixes: &[&str]) -> (&'t str, bool) {
    for p in prefixes {
        if title.len() >= p.len()
            && title.is_char_boundary(p.len())
            && title[..p.len()].eq_ignore_ascii_case(p)
        {
            return (title[p.len()..].trim_start(), true);
        }
    }
    (title, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("ghp_supersecret");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(s.expose(), "ghp_supersecret");
        assert_eq!(s.scrub("a ghp_supersecret b"), "a *** b");
    }

    #[test]
    fn forge_kind_parses_and_prints() {
        assert_eq!("GitHub".parse::<ForgeKind>().unwrap(), ForgeKind::Github);
        assert_eq!("forgejo".parse::<ForgeKind>().unwrap(), ForgeKind::Gitea);
        assert!("sourcehut".parse::<ForgeKind>().is_err());
        for kind in ForgeKind::ALL {
            assert_eq!(kind.to_string().parse::<ForgeKind>().unwrap(), kind);
        }
        assert_eq!(
            "Bitbucket-DC".parse::<ForgeKind>().unwrap(),
            ForgeKind::BitbucketDc
        );
        assert_eq!("azure".parse::<ForgeKind>().unwrap(), ForgeKind::Azure);
        assert_eq!(ForgeKind::Gitlab.to_string(), "gitlab");
    }

    #[test]
    fn reviewers_split_into_users_and_teams() {
        let (u, t) = split_reviewers(&["alice".into(), "@acme/platform".into(), " ".into()]);
        assert_eq!(u, ["alice"]);
        assert_eq!(t, ["platform"]);
    }

    #[test]
    fn draft_prefixes_are_stripped() {
        assert_eq!(
            strip_draft_prefix("Draft: bump", &["draft:"]),
            ("bump", true)
        );
        assert_eq!(strip_draft_prefix("bump", &["draft:"]), ("bump", false));
        assert_eq!(strip_draft_prefix("é", &["ab"]), ("é", false));
    }
}
