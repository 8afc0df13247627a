//! Which forge, which API URL, which repository, which token: decided once per run.
//!
//! Each of the three comes, first match wins, from the config (`delivery.forge`, `api_url`,
//! `repository`: they are set on purpose), then the CI environment the job runs in, then the
//! remote's URL. The CI environment speaks only for the forge the CI belongs to, and only
//! when the remote lives on that same host (a GitHub Actions job that `--clone`s a GitLab repo
//! talks to GitLab):
//!
//! | CI | detected by | API URL | repository |
//! |---|---|---|---|
//! | GitHub Actions | `GITHUB_ACTIONS=true` | `GITHUB_API_URL` (`GITHUB_GRAPHQL_URL`) | `GITHUB_REPOSITORY` |
//! | GitLab CI | `GITLAB_CI=true` | `CI_API_V4_URL` | `CI_PROJECT_ID`, else `CI_PROJECT_PATH` |
//! | Gitea / Forgejo Actions | `GITEA_ACTIONS=true` / `FORGEJO_ACTIONS=true` | `GITEA_API_URL`, `FORGEJO_API_URL`, else `*_SERVER_URL` + `/api/v1` | `GITEA_REPOSITORY`, `FORGEJO_REPOSITORY`, `GITHUB_REPOSITORY` |
//! | Bitbucket Pipelines | `BITBUCKET_BUILD_NUMBER` set | `https://api.bitbucket.org/2.0` | `BITBUCKET_REPO_FULL_NAME`, else `BITBUCKET_WORKSPACE`/`BITBUCKET_REPO_SLUG` |
//! | Azure Pipelines (Azure Repos) | `TF_BUILD=True`, `BUILD_REPOSITORY_PROVIDER` `TfsGit` or unset | `SYSTEM_COLLECTIONURI` | `SYSTEM_TEAMPROJECT`/`BUILD_REPOSITORY_NAME` |
//!
//! From the remote: `github.com` is GitHub (`https://api.github.com`), `gitlab.com` GitLab
//! (`/api/v4`), `codeberg.org` Forgejo (`/api/v1`), `bitbucket.org` Bitbucket Cloud
//! (`https://api.bitbucket.org/2.0`), `dev.azure.com` (and `ssh.dev.azure.com`,
//! `*.visualstudio.com`) Azure DevOps (the organization URL; repository `PROJECT/REPO` from
//! `…/PROJECT/_git/REPO`); another host needs `delivery.forge`, and then its API URL follows
//! the forge (`/api/v3` for GitHub Enterprise Server, `/rest/api/1.0` below the context
//! path for Bitbucket Data Center, whose `scm/PROJECT/repo` remotes name `PROJECT/repo`).
//!
//! The token: `IMAGE_UPDATER_FORGE_TOKEN`, else the forge's own variable — `GITHUB_TOKEN` (or
//! `GH_TOKEN`), `GITLAB_TOKEN`, `GITEA_TOKEN` (or `FORGEJO_TOKEN`; `GITHUB_TOKEN` inside Gitea
//! and Forgejo Actions), `BITBUCKET_ACCESS_TOKEN` (or `BITBUCKET_TOKEN`) for Bitbucket Cloud,
//! `BITBUCKET_ACCESS_TOKEN` (or `BITBUCKET_TOKEN`) for Bitbucket Data Center, `SYSTEM_ACCESSTOKEN`
//! (sent as `Bearer`) or `AZURE_DEVOPS_EXT_PAT` (a PAT, sent as `Basic`) for Azure DevOps. A token meant for one forge is never sent to another. GitLab's
//! `CI_JOB_TOKEN` cannot open merge requests: it gets an error that says what to use instead.

use super::azure::Azure;
use super::bitbucket::Bitbucket;
use super::bitbucket_dc::BitbucketDc;
use super::gitea::Gitea;
use super::github::Github;
use super::gitlab::Gitlab;
use super::{Forge, ForgeError, ForgeKind, Secret};

/// The config's say (`delivery.forge`, `delivery.api_url`, `delivery.repository`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForgeConfig {
    /// `None` is `auto`.
    pub forge: Option<ForgeKind>,
    pub api_url: Option<String>,
    /// `owner/name`, or a GitLab project path or numeric id.
    pub repository: Option<String>,
}

/// Where the forge API calls go, as decided by [`resolve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub kind: ForgeKind,
    /// The API root, without a trailing slash.
    pub api_url: String,
    pub repository: String,
    /// GitHub only: the GraphQL endpoint when the CI names it (`GITHUB_GRAPHQL_URL`).
    pub graphql_url: Option<String>,
    pub token: Secret,
    /// The variable the token came from, for messages.
    pub token_var: &'static str,
}

impl Target {
    /// The forge client for this target.
    pub fn connect(&self) -> Result<Box<dyn Forge>, ForgeError> {
        let (api, repo, token) = (&self.api_url, &self.repository, self.token.clone());
        Ok(match self.kind {
            ForgeKind::Github => {
                let gh = Github::connect(api, repo, token)?;
                match &self.graphql_url {
                    Some(g) => Box::new(gh.with_graphql_url(g)),
                    None => Box::new(gh),
                }
            }
            ForgeKind::Gitlab => Box::new(Gitlab::connect(api, repo, token)?),
            ForgeKind::Gitea => Box::new(Gitea::connect(api, repo, token)?),
            ForgeKind::BitbucketCloud => Box::new(Bitbucket::connect(api, repo, token)?),
            ForgeKind::BitbucketDc => Box::new(BitbucketDc::connect(api, repo, token)?),
            ForgeKind::Azure => {
                let oauth = self.token_var == "SYSTEM_ACCESSTOKEN";
                Box::new(Azure::connect(api, repo, token, oauth)?)
            }
        })
    }
}

/// Pick the forge, its API URL, the repository and the token, and build the client.
pub fn detect(
    env: &dyn Fn(&str) -> Option<String>,
    remote_url: &str,
    cfg: &ForgeConfig,
) -> Result<Box<dyn Forge>, ForgeError> {
    resolve(env, remote_url, cfg)?.connect()
}

/// What [`detect`] decides, without building a client.
pub fn resolve(
    env: &dyn Fn(&str) -> Option<String>,
    remote_url: &str,
    cfg: &ForgeConfig,
) -> Result<Target, ForgeError> {
    let var = |name: &str| {
        env(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let remote = Remote::parse(remote_url);
    let ci = Ci::detect(&var).filter(|ci| match (&remote, &ci.host) {
        (Some(r), Some(h)) => r.hostname().eq_ignore_ascii_case(h),
        _ => true,
    });

    let kind =
        cfg.forge
            .or(ci.as_ref().map(|c| c.kind))
            .or(remote.as_ref().and_then(Remote::known_kind))
            .ok_or_else(|| {
                ForgeError::setup(format!(
                "cannot tell which forge hosts {}: set delivery.forge ({}) and delivery.api_url",
                remote.as_ref().map_or_else(|| format!("{remote_url:?}"), Remote::display),
                ForgeKind::EXPECTED
            ))
            })?;
    let ci = ci.filter(|c| c.kind == kind);

    let (api_url, graphql_url) = match (&cfg.api_url, &ci) {
        (Some(u), _) => (u.clone(), None),
        (None, Some(c)) if c.api_url.is_some() => {
            (c.api_url.clone().unwrap_or_default(), c.graphql_url.clone())
        }
        _ => match &remote {
            Some(r) => (r.api_url(kind), None),
            None => {
                return Err(ForgeError::setup(format!(
                    "no {} API URL: set delivery.api_url (the remote {remote_url:?} names no host)",
                    kind.name()
                )))
            }
        },
    };

    let repository = match (&cfg.repository, &ci, &remote) {
        (Some(r), _, _) => r.clone(),
        (None, Some(c), remote) if c.repository.is_some() => {
            // The job's own repository, unless the remote is another one on the same host.
            let from_ci = c.repository.clone().unwrap_or_default();
            match (remote, &c.repository_path) {
                (Some(r), Some(path)) if !r.repository(kind).eq_ignore_ascii_case(path) => {
                    r.repository(kind)
                }
                _ => from_ci,
            }
        }
        (None, _, Some(r)) if !r.repository(kind).is_empty() => r.repository(kind),
        _ => {
            return Err(ForgeError::setup(format!(
                "no {} repository: set delivery.repository",
                kind.name()
            )))
        }
    };

    let (token, token_var) = token(kind, &var)?;
    Ok(Target {
        kind,
        api_url: api_url.trim_end_matches('/').to_string(),
        repository,
        graphql_url,
        token,
        token_var,
    })
}

fn token(
    kind: ForgeKind,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<(Secret, &'static str), ForgeError> {
    let in_gitea_actions = [var("GITEA_ACTIONS"), var("FORGEJO_ACTIONS")]
        .iter()
        .any(|v| v.as_deref() == Some("true"));
    let candidates: &[&'static str] = match kind {
        ForgeKind::Github => &["IMAGE_UPDATER_FORGE_TOKEN", "GITHUB_TOKEN", "GH_TOKEN"],
        ForgeKind::Gitlab => &["IMAGE_UPDATER_FORGE_TOKEN", "GITLAB_TOKEN"],
        ForgeKind::Gitea if in_gitea_actions => &[
            "IMAGE_UPDATER_FORGE_TOKEN",
            "GITEA_TOKEN",
            "FORGEJO_TOKEN",
            "GITHUB_TOKEN",
        ],
        ForgeKind::Gitea => &["IMAGE_UPDATER_FORGE_TOKEN", "GITEA_TOKEN", "FORGEJO_TOKEN"],
        ForgeKind::BitbucketCloud => &[
            "IMAGE_UPDATER_FORGE_TOKEN",
            "BITBUCKET_ACCESS_TOKEN",
            "BITBUCKET_TOKEN",
        ],
        ForgeKind::BitbucketDc => &[
            "IMAGE_UPDATER_FORGE_TOKEN",
            "BITBUCKET_ACCESS_TOKEN",
            "BITBUCKET_TOKEN",
        ],
        ForgeKind::Azure => &[
            "IMAGE_UPDATER_FORGE_TOKEN",
            "SYSTEM_ACCESSTOKEN",
            "AZURE_DEVOPS_EXT_PAT",
        ],
    };
    let found = candidates
        .iter()
        .find_map(|name| var(name).map(|v| (v, *name)));
    let job_token = if kind == ForgeKind::Gitlab {
        var("CI_JOB_TOKEN")
    } else {
        None
    };
    match (found, job_token) {
        (Some((t, name)), Some(job)) if t == job => Err(ForgeError::setup(format!(
            "{name} holds GitLab's CI_JOB_TOKEN, which cannot open merge requests: create a project access token (role Developer, scope api) and put it in GITLAB_TOKEN or IMAGE_UPDATER_FORGE_TOKEN"
        ))),
        (Some((t, name)), _) => Ok((Secret::new(t), name)),
        (None, Some(_)) => Err(ForgeError::setup(
            "only GitLab's CI_JOB_TOKEN is set, and it cannot open merge requests: create a project access token (role Developer, scope api) and put it in GITLAB_TOKEN or IMAGE_UPDATER_FORGE_TOKEN",
        )),
        (None, None) => Err(ForgeError::setup(format!(
            "no token for the {} API: set {}",
            kind.name(),
            candidates.join(" or ")
        ))),
    }
}

/// What the CI environment says about the forge it belongs to.
struct Ci {
    kind: ForgeKind,
    /// The forge's host name (no port), to check the remote lives there.
    host: Option<String>,
    api_url: Option<String>,
    graphql_url: Option<String>,
    /// The repository to use (GitLab: the numeric project id when given).
    repository: Option<String>,
    /// The repository's path, to compare with the remote's.
    repository_path: Option<String>,
}

impl Ci {
    fn detect(var: &dyn Fn(&str) -> Option<String>) -> Option<Ci> {
        let is = |name: &str| var(name).as_deref() == Some("true");
        let first = |names: &[&str]| names.iter().find_map(|n| var(n));
        if is("GITEA_ACTIONS") || is("FORGEJO_ACTIONS") {
            let server = first(&[
                "GITEA_SERVER_URL",
                "FORGEJO_SERVER_URL",
                "GITHUB_SERVER_URL",
            ]);
            let api_url = first(&["GITEA_API_URL", "FORGEJO_API_URL"])
                .or_else(|| {
                    server
                        .as_ref()
                        .map(|s| format!("{}/api/v1", s.trim_end_matches('/')))
                })
                .or_else(|| var("GITHUB_API_URL"));
            let repository = first(&[
                "GITEA_REPOSITORY",
                "FORGEJO_REPOSITORY",
                "GITHUB_REPOSITORY",
            ]);
            return Some(Ci {
                kind: ForgeKind::Gitea,
                host: server.as_deref().and_then(url_host),
                api_url,
                graphql_url: None,
                repository_path: repository.clone(),
                repository,
            });
        }
        if is("GITLAB_CI") {
            let api_url = var("CI_API_V4_URL").or_else(|| {
                var("CI_SERVER_URL").map(|s| format!("{}/api/v4", s.trim_end_matches('/')))
            });
            let path = var("CI_PROJECT_PATH");
            return Some(Ci {
                kind: ForgeKind::Gitlab,
                host: var("CI_SERVER_HOST")
                    .or_else(|| var("CI_SERVER_URL").as_deref().and_then(url_host)),
                api_url,
                graphql_url: None,
                repository: var("CI_PROJECT_ID").or_else(|| path.clone()),
                repository_path: path,
            });
        }
        if var("BITBUCKET_BUILD_NUMBER").is_some() {
            let repository = var("BITBUCKET_REPO_FULL_NAME").or_else(|| {
                Some(format!(
                    "{}/{}",
                    var("BITBUCKET_WORKSPACE")?,
                    var("BITBUCKET_REPO_SLUG")?
                ))
            });
            return Some(Ci {
                kind: ForgeKind::BitbucketCloud,
                host: Some("bitbucket.org".to_string()),
                api_url: Some(BITBUCKET_API.to_string()),
                graphql_url: None,
                repository_path: repository.clone(),
                repository,
            });
        }
        let azure_repos = var("BUILD_REPOSITORY_PROVIDER").is_none_or(|p| p == "TfsGit");
        if var("TF_BUILD").is_some_and(|v| v.eq_ignore_ascii_case("true")) && azure_repos {
            let collection = var("SYSTEM_COLLECTIONURI");
            let repository = Some(format!(
                "{}/{}",
                var("SYSTEM_TEAMPROJECT")?,
                var("BUILD_REPOSITORY_NAME")?
            ));
            return Some(Ci {
                kind: ForgeKind::Azure,
                host: collection
                    .as_deref()
                    .or(var("BUILD_REPOSITORY_URI").as_deref())
                    .and_then(url_host)
                    .map(|h| azure_host(&h).to_string()),
                api_url: collection.map(|c| c.trim_end_matches('/').to_string()),
                graphql_url: None,
                repository_path: repository.clone(),
                repository,
            });
        }
        if is("GITHUB_ACTIONS") {
            let repository = var("GITHUB_REPOSITORY");
            return Some(Ci {
                kind: ForgeKind::Github,
                host: Some(
                    var("GITHUB_SERVER_URL")
                        .as_deref()
                        .and_then(url_host)
                        .unwrap_or_else(|| "github.com".to_string()),
                ),
                api_url: var("GITHUB_API_URL"),
                graphql_url: var("GITHUB_GRAPHQL_URL"),
                repository_path: repository.clone(),
                repository,
            });
        }
        None
    }
}

/// Bitbucket Cloud's API root.
const BITBUCKET_API: &str = "https://api.bitbucket.org/2.0";

/// Azure DevOps' web host for its SSH host: a remote on `ssh.dev.azure.com` lives on
/// `dev.azure.com`.
fn azure_host(host: &str) -> &str {
    if host == "ssh.dev.azure.com" {
        "dev.azure.com"
    } else {
        host
    }
}

/// The host name (no port, no credentials) of an `http(s)://` URL.
fn url_host(url: &str) -> Option<String> {
    reqwest::Url::parse(url)
        .ok()?
        .host_str()
        .map(|h| h.to_ascii_lowercase())
}

/// A git remote URL, reduced to what locates the forge: no credentials kept.
#[derive(Debug, PartialEq, Eq)]
struct Remote {
    /// `http` for `http://` remotes; `https` for everything else (`https://`, SSH, `git://`).
    scheme: &'static str,
    /// `host` or `host:port` (the port only for `http(s)://` remotes, where it is the web's).
    host: String,
    /// The repository path: `owner/name` or `group/sub/name`, without `.git`.
    path: String,
}

impl Remote {
    fn parse(url: &str) -> Option<Remote> {
        let url = url.trim();
        let (scheme, host, path) = if let Some((scheme, rest)) = url.split_once("://") {
            let scheme = scheme.to_ascii_lowercase();
            if !matches!(
                scheme.as_str(),
                "http" | "https" | "ssh" | "git" | "git+ssh" | "ssh+git"
            ) {
                return None;
            }
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            let host = if scheme.starts_with("http") {
                host.to_string()
            } else {
                strip_port(host).to_string()
            };
            let scheme = if scheme == "http" { "http" } else { "https" };
            (scheme, host, path)
        } else {
            // scp-like: [user@]host:path (a colon before any slash, not a Windows drive).
            let (before, path) = url.split_once(':')?;
            if before.contains('/') || before.len() < 2 {
                return None;
            }
            let host = before.rsplit_once('@').map_or(before, |(_, h)| h);
            ("https", host.to_string(), path)
        };
        if host.is_empty() {
            return None;
        }
        let path = path
            .trim_matches('/')
            .trim_end_matches(".git")
            .trim_end_matches('/')
            .to_string();
        Some(Remote {
            scheme,
            host: host.to_ascii_lowercase(),
            path,
        })
    }

    fn hostname(&self) -> &str {
        azure_host(strip_port(&self.host))
    }

    /// Azure DevOps: the collection (`ORG` on dev.azure.com, `tfs/Collection` on a server)
    /// and `PROJECT/REPO` of a path `…/PROJECT/_git/REPO` (SSH: `v3/ORG/PROJECT/REPO`).
    fn azure_parts(&self) -> Option<(String, String)> {
        let segs: Vec<&str> = self.path.split('/').collect();
        if let Some(i) = segs.iter().position(|s| *s == "_git") {
            let (project, repo) = (segs.get(i.checked_sub(1)?)?, segs.get(i + 1)?);
            let collection = segs[..i - 1].join("/");
            return Some((collection, format!("{project}/{repo}")));
        }
        match segs.as_slice() {
            ["v3", org, project, repo] => Some((org.to_string(), format!("{project}/{repo}"))),
            _ => None,
        }
    }

    /// The repository as the forge's API names it: the path, except Azure DevOps
    /// (`PROJECT/REPO`) and Bitbucket Data Center (`PROJECT/repo` of `scm/PROJECT/repo`).
    fn repository(&self, kind: ForgeKind) -> String {
        match kind {
            ForgeKind::Azure => self
                .azure_parts()
                .map_or_else(|| self.path.clone(), |(_, r)| r),
            ForgeKind::BitbucketDc => match self.path.rsplit_once("scm/") {
                Some((_, r)) => r.to_string(),
                None => self.path.clone(),
            },
            _ => self.path.clone(),
        }
    }

    fn known_kind(&self) -> Option<ForgeKind> {
        match self.hostname() {
            "github.com" | "www.github.com" => Some(ForgeKind::Github),
            "gitlab.com" => Some(ForgeKind::Gitlab),
            "codeberg.org" => Some(ForgeKind::Gitea),
            "bitbucket.org" => Some(ForgeKind::BitbucketCloud),
            "dev.azure.com" => Some(ForgeKind::Azure),
            h if h.ends_with(".visualstudio.com") => Some(ForgeKind::Azure),
            _ => None,
        }
    }

    fn api_url(&self, kind: ForgeKind) -> String {
        let root = format!("{}://{}", self.scheme, self.host);
        match kind {
            ForgeKind::Github if matches!(self.hostname(), "github.com" | "www.github.com") => {
                "https://api.github.com".to_string()
            }
            ForgeKind::Github => format!("{root}/api/v3"),
            ForgeKind::Gitlab => format!("{root}/api/v4"),
            ForgeKind::Gitea => format!("{root}/api/v1"),
            ForgeKind::BitbucketCloud if self.hostname() == "bitbucket.org" => {
                BITBUCKET_API.to_string()
            }
            ForgeKind::BitbucketCloud => format!("{root}/2.0"),
            // `https://HOST/CONTEXT/scm/PROJECT/repo.git`; SSH remotes have no context path.
            ForgeKind::BitbucketDc => match self.path.rsplit_once("scm/") {
                Some((context, _)) => format!("{root}/{context}rest/api/1.0"),
                None => format!("{root}/rest/api/1.0"),
            },
            ForgeKind::Azure => {
                let collection = self.azure_parts().map(|(c, _)| c).unwrap_or_default();
                let host = azure_host(strip_port(&self.host));
                if collection.is_empty() || host.ends_with(".visualstudio.com") {
                    format!("{}://{host}", self.scheme)
                } else {
                    format!("{}://{host}/{collection}", self.scheme)
                }
            }
        }
    }

    fn display(&self) -> String {
        format!("{}/{}", self.host, self.path)
    }
}

fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((h, port)) if !h.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k: &str| map.get(k).cloned()
    }

    fn auto() -> ForgeConfig {
        ForgeConfig::default()
    }

    #[test]
    fn github_actions() {
        let e = env(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_SERVER_URL", "https://github.com"),
            ("GITHUB_API_URL", "https://api.github.com"),
            ("GITHUB_GRAPHQL_URL", "https://api.github.com/graphql"),
            ("GITHUB_REPOSITORY", "acme/infra"),
            ("GITHUB_TOKEN", "ghs_abc123"),
        ]);
        let t = resolve(&e, "https://github.com/acme/infra", &auto()).unwrap();
        assert_eq!(t.kind, ForgeKind::Github);
        assert_eq!(t.api_url, "https://api.github.com");
        assert_eq!(
            t.graphql_url.as_deref(),
            Some("https://api.github.com/graphql")
        );
        assert_eq!(t.repository, "acme/infra");
        assert_eq!(
            (t.token.expose(), t.token_var),
            ("ghs_abc123", "GITHUB_TOKEN")
        );
        assert!(!format!("{t:?}").contains("ghs_abc123"));
        assert_eq!(
            detect(&e, "https://github.com/acme/infra", &auto())
                .unwrap()
                .kind(),
            ForgeKind::Github
        );
    }

    #[test]
    fn github_enterprise_actions_and_remote() {
        let e = env(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_SERVER_URL", "https://ghe.example.com"),
            ("GITHUB_API_URL", "https://ghe.example.com/api/v3"),
            ("GITHUB_REPOSITORY", "acme/infra"),
            ("IMAGE_UPDATER_FORGE_TOKEN", "pat"),
            ("GITHUB_TOKEN", "ghs"),
        ]);
        let t = resolve(&e, "git@ghe.example.com:acme/infra.git", &auto()).unwrap();
        assert_eq!(t.api_url, "https://ghe.example.com/api/v3");
        assert_eq!(t.token_var, "IMAGE_UPDATER_FORGE_TOKEN");
        // Outside CI, the remote and the config say the same.
        let e = env(&[("GITHUB_TOKEN", "ghs")]);
        let cfg = ForgeConfig {
            forge: Some(ForgeKind::Github),
            ..auto()
        };
        let t = resolve(&e, "https://ghe.example.com/acme/infra.git", &cfg).unwrap();
        assert_eq!(t.api_url, "https://ghe.example.com/api/v3");
        assert_eq!(t.repository, "acme/infra");
    }

    #[test]
    fn gitlab_ci_uses_the_project_id_and_the_api_url() {
        let e = env(&[
            ("GITLAB_CI", "true"),
            ("CI_SERVER_HOST", "gitlab.example.com"),
            ("CI_API_V4_URL", "https://gitlab.example.com/api/v4"),
            ("CI_PROJECT_ID", "42"),
            ("CI_PROJECT_PATH", "acme/platform/infra"),
            ("CI_JOB_TOKEN", "job-token"),
            ("GITLAB_TOKEN", "glpat-x"),
        ]);
        let remote = "https://gitlab-ci-token:job-token@gitlab.example.com/acme/platform/infra.git";
        let t = resolve(&e, remote, &auto()).unwrap();
        assert_eq!(t.kind, ForgeKind::Gitlab);
        assert_eq!(t.api_url, "https://gitlab.example.com/api/v4");
        assert_eq!(t.repository, "42");
        assert_eq!(t.token.expose(), "glpat-x");
    }

    #[test]
    fn gitlab_ci_job_token_alone_says_what_to_use() {
        let e = env(&[
            ("GITLAB_CI", "true"),
            ("CI_SERVER_HOST", "gitlab.com"),
            ("CI_API_V4_URL", "https://gitlab.com/api/v4"),
            ("CI_PROJECT_ID", "42"),
            ("CI_JOB_TOKEN", "secret-job-token"),
        ]);
        let e1 = resolve(&e, "https://gitlab.com/acme/infra.git", &auto()).unwrap_err();
        assert!(e1.message().contains("CI_JOB_TOKEN"), "{e1}");
        assert!(e1.message().contains("project access token"), "{e1}");
        assert!(
            e1.message()
                .contains("GITLAB_TOKEN or IMAGE_UPDATER_FORGE_TOKEN"),
            "{e1}"
        );
        assert!(!e1.message().contains("secret-job-token"));
        // Copying the job token into IMAGE_UPDATER_FORGE_TOKEN does not get past it.
        let e = env(&[
            ("GITLAB_CI", "true"),
            ("CI_JOB_TOKEN", "secret-job-token"),
            ("IMAGE_UPDATER_FORGE_TOKEN", "secret-job-token"),
            ("CI_PROJECT_ID", "42"),
            ("CI_API_V4_URL", "https://gitlab.com/api/v4"),
        ]);
        let e2 = resolve(&e, "https://gitlab.com/acme/infra.git", &auto()).unwrap_err();
        assert!(
            e2.message()
                .contains("IMAGE_UPDATER_FORGE_TOKEN holds GitLab's CI_JOB_TOKEN"),
            "{e2}"
        );
        assert!(!e2.message().contains("secret-job-token"));
    }

    #[test]
    fn gitea_and_forgejo_actions() {
        let e = env(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITEA_ACTIONS", "true"),
            ("GITHUB_SERVER_URL", "https://git.example.com"),
            ("GITHUB_REPOSITORY", "acme/infra"),
            ("GITHUB_TOKEN", "gitea-actions-token"),
        ]);
        let t = resolve(&e, "https://git.example.com/acme/infra", &auto()).unwrap();
        assert_eq!(t.kind, ForgeKind::Gitea);
        assert_eq!(t.api_url, "https://git.example.com/api/v1");
        assert_eq!(t.repository, "acme/infra");
        assert_eq!(t.token_var, "GITHUB_TOKEN");

        let e = env(&[
            ("FORGEJO_ACTIONS", "true"),
            ("FORGEJO_SERVER_URL", "https://codeberg.org"),
            ("FORGEJO_REPOSITORY", "acme/infra"),
            ("FORGEJO_TOKEN", "fj"),
        ]);
        let t = resolve(&e, "https://codeberg.org/acme/infra.git", &auto()).unwrap();
        assert_eq!(
            (t.kind, t.api_url.as_str()),
            (ForgeKind::Gitea, "https://codeberg.org/api/v1")
        );
    }

    #[test]
    fn remote_hosts_outside_ci() {
        let tok = env(&[
            ("GITHUB_TOKEN", "a"),
            ("GITLAB_TOKEN", "b"),
            ("GITEA_TOKEN", "c"),
        ]);
        let t = resolve(&tok, "git@github.com:acme/infra.git", &auto()).unwrap();
        assert_eq!(
            (t.kind, t.api_url.as_str(), t.repository.as_str()),
            (ForgeKind::Github, "https://api.github.com", "acme/infra")
        );
        let t = resolve(
            &tok,
            "ssh://git@gitlab.com:2222/acme/platform/infra.git",
            &auto(),
        )
        .unwrap();
        assert_eq!(
            (t.kind, t.api_url.as_str(), t.repository.as_str()),
            (
                ForgeKind::Gitlab,
                "https://gitlab.com/api/v4",
                "acme/platform/infra"
            )
        );
        assert_eq!(t.token.expose(), "b");
        let t = resolve(&tok, "https://codeberg.org/acme/infra.git", &auto()).unwrap();
        assert_eq!((t.kind, t.token.expose()), (ForgeKind::Gitea, "c"));
    }

    #[test]
    fn unknown_hosts_need_config_and_never_echo_credentials() {
        let tok = env(&[("GITEA_TOKEN", "c")]);
        let e = resolve(
            &tok,
            "https://bot:hunter2@git.example.com/acme/infra.git",
            &auto(),
        )
        .unwrap_err();
        assert!(e.message().contains("set delivery.forge"), "{e}");
        assert!(e.message().contains("git.example.com/acme/infra"), "{e}");
        assert!(!e.message().contains("hunter2"), "{e}");
        let cfg = ForgeConfig {
            forge: Some(ForgeKind::Gitea),
            ..auto()
        };
        let t = resolve(
            &tok,
            "http://bot:hunter2@127.0.0.1:3000/acme/infra.git",
            &cfg,
        )
        .unwrap();
        assert_eq!(t.api_url, "http://127.0.0.1:3000/api/v1");
        assert_eq!(t.repository, "acme/infra");
    }

    #[test]
    fn config_wins_over_ci_and_remote() {
        let e = env(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_API_URL", "https://api.github.com"),
            ("GITHUB_REPOSITORY", "acme/infra"),
            ("GITHUB_TOKEN", "ghs"),
        ]);
        let cfg = ForgeConfig {
            forge: Some(ForgeKind::Github),
            api_url: Some("http://127.0.0.1:8080/".into()),
            repository: Some("test/repo".into()),
        };
        let t = resolve(&e, "https://github.com/acme/infra", &cfg).unwrap();
        assert_eq!(t.api_url, "http://127.0.0.1:8080");
        assert_eq!(t.repository, "test/repo");
        assert_eq!(t.graphql_url, None);
    }

    #[test]
    fn a_clone_of_another_forge_ignores_the_ci_it_runs_in() {
        // A GitHub Actions job that clones a GitLab repo talks to GitLab, with GitLab's token.
        let e = env(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_API_URL", "https://api.github.com"),
            ("GITHUB_REPOSITORY", "acme/ops"),
            ("GITHUB_TOKEN", "ghs"),
            ("GITLAB_TOKEN", "glpat"),
        ]);
        let t = resolve(&e, "https://gitlab.com/acme/infra.git", &auto()).unwrap();
        assert_eq!(t.kind, ForgeKind::Gitlab);
        assert_eq!(t.api_url, "https://gitlab.com/api/v4");
        assert_eq!(
            (t.repository.as_str(), t.token.expose()),
            ("acme/infra", "glpat")
        );
        // Another repo on the same host: the remote names the repository.
        let t = resolve(&e, "https://github.com/acme/infra.git", &auto()).unwrap();
        assert_eq!(
            (t.kind, t.repository.as_str()),
            (ForgeKind::Github, "acme/infra")
        );
        assert_eq!(t.api_url, "https://api.github.com");
    }

    #[test]
    fn tokens_are_never_sent_to_another_forge() {
        let e = env(&[("GITHUB_TOKEN", "ghs")]);
        let err = resolve(&e, "https://gitlab.com/acme/infra.git", &auto()).unwrap_err();
        assert!(
            err.message().contains(
                "no token for the GitLab API: set IMAGE_UPDATER_FORGE_TOKEN or GITLAB_TOKEN"
            ),
            "{err}"
        );
    }

    #[test]
    fn local_remotes_need_config() {
        let e = env(&[("GITHUB_TOKEN", "ghs")]);
        assert!(resolve(&e, "/srv/git/infra.git", &auto()).is_err());
        let cfg = ForgeConfig {
            forge: Some(ForgeKind::Github),
            api_url: Some("http://127.0.0.1:1".into()),
            repository: None,
        };
        let err = resolve(&e, "file:///srv/git/infra.git", &cfg).unwrap_err();
        assert!(err.message().contains("set delivery.repository"), "{err}");
        let cfg = ForgeConfig {
            repository: Some("acme/infra".into()),
            ..cfg
        };
        assert!(detect(&e, "file:///srv/git/infra.git", &cfg).is_ok());
    }

    #[test]
    fn bad_api_urls_are_setup_errors() {
        let e = env(&[("GITHUB_TOKEN", "ghs_secret_value")]);
        let cfg = ForgeConfig {
            forge: Some(ForgeKind::Github),
            api_url: Some("https://x:ghs_secret_value@ghe.example.com/api/v3".into()),
            repository: Some("acme/infra".into()),
        };
        let err = detect(&e, "", &cfg).err().unwrap();
        assert!(
            err.message().contains("must not carry credentials"),
            "{err}"
        );
        assert!(!err.message().contains("ghs_secret_value"));
        let cfg = ForgeConfig {
            api_url: Some("ftp://ghe.example.com".into()),
            ..cfg
        };
        assert!(detect(&e, "", &cfg).is_err());
    }

    #[test]
    fn bitbucket_pipelines() {
        let e = env(&[
            ("BITBUCKET_BUILD_NUMBER", "17"),
            ("BITBUCKET_WORKSPACE", "acme"),
            ("BITBUCKET_REPO_SLUG", "infra"),
            ("BITBUCKET_ACCESS_TOKEN", "bbat"),
        ]);
        let t = resolve(&e, "git@bitbucket.org:acme/infra.git", &auto()).unwrap();
        assert_eq!(t.kind, ForgeKind::BitbucketCloud);
        assert_eq!(t.api_url, "https://api.bitbucket.org/2.0");
        assert_eq!(t.repository, "acme/infra");
        assert_eq!(
            (t.token.expose(), t.token_var),
            ("bbat", "BITBUCKET_ACCESS_TOKEN")
        );
        // Outside Pipelines the remote says Bitbucket Cloud; without a token, it says which.
        let e = env(&[("GITHUB_TOKEN", "ghs")]);
        let err = resolve(&e, "https://bitbucket.org/acme/infra.git", &auto()).unwrap_err();
        assert!(
            err.message().contains(
                "no token for the Bitbucket Cloud API: set IMAGE_UPDATER_FORGE_TOKEN or BITBUCKET_ACCESS_TOKEN or BITBUCKET_TOKEN"
            ),
            "{err}"
        );
    }

    #[test]
    fn azure_pipelines() {
        let e = env(&[
            ("TF_BUILD", "True"),
            ("SYSTEM_COLLECTIONURI", "https://dev.azure.com/acme/"),
            ("SYSTEM_TEAMPROJECT", "platform"),
            ("BUILD_REPOSITORY_NAME", "infra"),
            ("BUILD_REPOSITORY_PROVIDER", "TfsGit"),
            ("SYSTEM_ACCESSTOKEN", "oauth"),
        ]);
        let remote = "https://acme@dev.azure.com/acme/platform/_git/infra";
        let t = resolve(&e, remote, &auto()).unwrap();
        assert_eq!(t.kind, ForgeKind::Azure);
        assert_eq!(t.api_url, "https://dev.azure.com/acme");
        assert_eq!(t.repository, "platform/infra");
        assert_eq!(t.token_var, "SYSTEM_ACCESSTOKEN");
        // A GitHub repository built by Azure Pipelines is GitHub's.
        let e = env(&[
            ("TF_BUILD", "True"),
            ("BUILD_REPOSITORY_PROVIDER", "GitHub"),
            ("GITHUB_TOKEN", "ghs"),
        ]);
        let t = resolve(&e, "https://github.com/acme/infra.git", &auto()).unwrap();
        assert_eq!(t.kind, ForgeKind::Github);
    }

    #[test]
    fn azure_and_bitbucket_dc_remotes() {
        let e = env(&[("AZURE_DEVOPS_EXT_PAT", "pat"), ("BITBUCKET_TOKEN", "bbdc")]);
        for (remote, api, repo) in [
            (
                "git@ssh.dev.azure.com:v3/acme/platform/infra",
                "https://dev.azure.com/acme",
                "platform/infra",
            ),
            (
                "https://acme.visualstudio.com/platform/_git/infra",
                "https://acme.visualstudio.com",
                "platform/infra",
            ),
        ] {
            let t = resolve(&e, remote, &auto()).unwrap();
            assert_eq!(
                (t.kind, t.api_url.as_str(), t.repository.as_str()),
                (ForgeKind::Azure, api, repo),
                "{remote}"
            );
        }
        let cfg = ForgeConfig {
            forge: Some(ForgeKind::Azure),
            ..auto()
        };
        let t = resolve(
            &e,
            "https://tfs.example.com/tfs/Main/platform/_git/infra",
            &cfg,
        )
        .unwrap();
        assert_eq!(t.api_url, "https://tfs.example.com/tfs/Main");
        assert_eq!(t.repository, "platform/infra");
        let cfg = ForgeConfig {
            forge: Some(ForgeKind::BitbucketDc),
            ..auto()
        };
        let t = resolve(
            &e,
            "https://git.example.com/bitbucket/scm/OPS/infra.git",
            &cfg,
        )
        .unwrap();
        assert_eq!(t.api_url, "https://git.example.com/bitbucket/rest/api/1.0");
        assert_eq!(
            (t.repository.as_str(), t.token.expose()),
            ("OPS/infra", "bbdc")
        );
        let t = resolve(&e, "ssh://git@git.example.com:7999/ops/infra.git", &cfg).unwrap();
        assert_eq!(t.api_url, "https://git.example.com/rest/api/1.0");
        assert_eq!(t.repository, "ops/infra");
    }

    #[test]
    fn remote_parsing() {
        let r = Remote::parse("https://user:pw@Git.Example.com:8443/a/b/c.git/").unwrap();
        assert_eq!(
            (r.scheme, r.host.as_str(), r.path.as_str()),
            ("https", "git.example.com:8443", "a/b/c")
        );
        let r = Remote::parse("ssh://git@host:22/a/b.git").unwrap();
        assert_eq!((r.host.as_str(), r.path.as_str()), ("host", "a/b"));
        let r = Remote::parse("git@host:a/b").unwrap();
        assert_eq!((r.host.as_str(), r.path.as_str()), ("host", "a/b"));
        assert_eq!(Remote::parse("/srv/repo.git"), None);
        assert_eq!(Remote::parse("file:///srv/repo.git"), None);
        assert_eq!(Remote::parse("C:\\repo"), None);
        assert_eq!(Remote::parse("../repo"), None);
    }
}
