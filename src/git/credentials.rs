//! Credentials for git remotes, from the environment, and the redaction that keeps them out
//! of every message.
//!
//! HTTPS: a token from `IMAGE_UPDATER_GIT_TOKEN`, else `GITHUB_TOKEN`, `GITLAB_TOKEN`,
//! `CI_JOB_TOKEN`, `GITEA_TOKEN`; the user name is the one in the URL, else the forge's
//! convention (`x-access-token`; `oauth2` for `GITLAB_TOKEN`, `gitlab-ci-token` for
//! `CI_JOB_TOKEN`). SSH: `IMAGE_UPDATER_SSH_KEY` (a key file's path, or the key text itself),
//! else the agent. Each kind is offered once: libgit2 calls back again after a refusal, and
//! answering twice with the same secret would loop.

use git2::{Cred, CredentialType};

use crate::env::Env;
use crate::secret::Secret;

const TOKEN_VARS: [&str; 5] = [
    "IMAGE_UPDATER_GIT_TOKEN",
    "GITHUB_TOKEN",
    "GITLAB_TOKEN",
    "CI_JOB_TOKEN",
    "GITEA_TOKEN",
];

pub struct Provider {
    token: Option<(Secret, &'static str)>,
    /// A key file path, or the key itself (PEM / OpenSSH text).
    ssh_key: Option<String>,
    tried_token: bool,
    tried_ssh: bool,
    tried_agent: bool,
}

impl Provider {
    /// The credentials `env` offers (empty variables count as unset).
    pub fn from_env(env: &Env) -> Provider {
        let token = TOKEN_VARS
            .iter()
            .find_map(|v| env.get(v).map(|t| (Secret::new(t), *v)));
        Provider {
            token,
            ssh_key: env.get("IMAGE_UPDATER_SSH_KEY").map(str::to_string),
            tried_token: false,
            tried_ssh: false,
            tried_agent: false,
        }
    }

    /// The libgit2 credentials callback.
    pub fn get(
        &mut self,
        _url: &str,
        user: Option<&str>,
        allowed: CredentialType,
    ) -> Result<Cred, git2::Error> {
        if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) && !self.tried_token {
            self.tried_token = true;
            if let Some((token, var)) = &self.token {
                let default_user = default_user(var);
                return Cred::userpass_plaintext(user.unwrap_or(default_user), token.expose());
            }
            return Err(git2::Error::from_str(
                "the remote asks for credentials: set IMAGE_UPDATER_GIT_TOKEN (or GITHUB_TOKEN, GITLAB_TOKEN, GITEA_TOKEN)",
            ));
        }
        if allowed.contains(CredentialType::USERNAME) {
            return Cred::username(user.unwrap_or("git"));
        }
        if allowed.contains(CredentialType::SSH_KEY) {
            let user = user.unwrap_or("git");
            if let (Some(key), false) = (&self.ssh_key, self.tried_ssh) {
                self.tried_ssh = true;
                if key.trim_start().starts_with("-----BEGIN") {
                    return Cred::ssh_key_from_memory(user, None, key, None);
                }
                return Cred::ssh_key(user, None, std::path::Path::new(key), None);
            }
            if !self.tried_agent {
                self.tried_agent = true;
                return Cred::ssh_key_from_agent(user);
            }
        }
        Err(git2::Error::from_str("the remote refused the credentials"))
    }
}

/// The user name each forge expects beside a token on HTTPS: GitHub's `x-access-token`,
/// GitLab's `oauth2` (and `gitlab-ci-token` for the job token); Gitea takes any name.
fn default_user(var: &str) -> &'static str {
    match var {
        "CI_JOB_TOKEN" => "gitlab-ci-token",
        "GITLAB_TOKEN" => "oauth2",
        _ => "x-access-token",
    }
}

/// Remove the user-info part of every URL in `s` (`https://user:secret@host` -> `https://***@host`).
///
/// The user-info runs to the last `@` before the end of the URL (whitespace or a quote), so a
/// password holding `@`, `%2F` or even a raw `/` (`https://bot:pa/ss@host/x`) is covered too.
/// Text after a `/` is user-info only when a `:` precedes that `/` (`user:pa/ss@`), so a path
/// holding `@` (`https://host/a@b`) keeps its host.
pub fn redact(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '\'' | '"' | '<' | '>' | '`'))
            .unwrap_or(tail.len());
        let url = &tail[..end];
        let userinfo_end = url.rfind('@').filter(|&at| match url[..at].find('/') {
            None => true,
            Some(slash) => url[..slash].contains(':'),
        });
        match userinfo_end {
            Some(at) => {
                out.push_str("***");
                out.push_str(&url[at..]);
            }
            None => out.push_str(url),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_from_the_env_snapshot() {
        let env = Env::from_pairs([
            ("IMAGE_UPDATER_GIT_TOKEN", ""),
            ("GITLAB_TOKEN", "glpat"),
            ("CI_JOB_TOKEN", "job"),
            ("IMAGE_UPDATER_SSH_KEY", "/keys/id"),
        ]);
        let p = Provider::from_env(&env);
        assert_eq!(p.token, Some((Secret::new("glpat"), "GITLAB_TOKEN")));
        assert_eq!(p.ssh_key.as_deref(), Some("/keys/id"));
        let none = Provider::from_env(&Env::default());
        assert!(none.token.is_none() && none.ssh_key.is_none());
    }

    #[test]
    fn redacts_userinfo() {
        assert_eq!(
            redact("pushing to https://bot:s3cret@example.com/a.git failed"),
            "pushing to https://***@example.com/a.git failed"
        );
        assert_eq!(redact("http://example.com/x"), "http://example.com/x");
        assert_eq!(redact("a ssh://git@h:22/r b"), "a ssh://***@h:22/r b");
        assert_eq!(redact("no url"), "no url");
        // Passwords that look like URL syntax: a raw `/`, `@`, an encoded `/`.
        for pass in ["pa/ss", "p@ss", "pa%2Fss", "a/b@c%2Fd"] {
            let text = format!("cloning 'https://bot:{pass}@h.example:8443/r.git' failed");
            let r = redact(&text);
            assert_eq!(
                r, "cloning 'https://***@h.example:8443/r.git' failed",
                "{pass}"
            );
        }
        assert_eq!(
            redact("see https://h.example/a@b"),
            "see https://h.example/a@b"
        );
    }
}
