//! Where a registry's credentials come from, first match wins:
//!
//! 1. the config's `registries[].credentials` (names of environment variables);
//! 2. Docker's `config.json` (`$DOCKER_CONFIG/config.json`, default `~/.docker/config.json`):
//!    a `credHelpers` entry for the host, then an `auths` entry holding credentials (`auth`,
//!    `username`/`password` or `identitytoken`), then the `credsStore`; helpers are run as
//!    Docker runs them (`docker-credential-<name> get`, the server on stdin);
//! 3. in GitHub Actions (`GITHUB_ACTIONS=true`), `GITHUB_TOKEN` for `ghcr.io`;
//! 4. in GitLab CI, `CI_REGISTRY_USER`/`CI_REGISTRY_PASSWORD` for `$CI_REGISTRY`.
//!
//! The environment is passed in as an [`Env`] snapshot, so tests never touch the process's.
//! Secrets are held in [`Secret`], which never prints.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde::Deserialize;

use super::same_host;
use crate::config::Credentials;
pub use crate::env::Env;
use crate::manifest::files::read_regular_file;

pub use crate::secret::Secret;

/// What to present to a registry or its token service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// Username and password (or a token used as a password).
    Basic { username: String, password: Secret },
    /// An OAuth2 refresh token (Docker's `identitytoken`), exchanged at the token service.
    IdentityToken(Secret),
}

/// A credential and where it was found (for messages; never the secret itself).
#[derive(Debug, Clone)]
pub struct Found {
    pub credential: Credential,
    pub source: String,
}

/// The key Docker stores Docker Hub credentials under, and sends to helpers for it.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// Look up the credentials for `host`: `Ok(None)` means anonymous.
pub fn lookup(
    host: &str,
    configured: Option<&Credentials>,
    env: &Env,
) -> Result<Option<Found>, String> {
    if let Some(c) = configured {
        let user = env.get(&c.username_env).ok_or_else(|| {
            format!(
                "credentials.username_env names ${} but it is not set",
                c.username_env
            )
        })?;
        let password = env.get(&c.password_env).ok_or_else(|| {
            format!(
                "credentials.password_env names ${} but it is not set",
                c.password_env
            )
        })?;
        return Ok(Some(Found {
            credential: Credential::Basic {
                username: user.to_string(),
                password: Secret::new(password),
            },
            source: format!("${} and ${}", c.username_env, c.password_env),
        }));
    }
    if let Some(found) = docker_config(host, env)? {
        return Ok(Some(found));
    }
    if env.get("GITHUB_ACTIONS") == Some("true") && same_host(host, "ghcr.io") {
        if let Some(token) = env.get("GITHUB_TOKEN") {
            return Ok(Some(Found {
                credential: Credential::Basic {
                    username: env.get("GITHUB_ACTOR").unwrap_or("x-access-token").into(),
                    password: Secret::new(token),
                },
                source: "$GITHUB_TOKEN".into(),
            }));
        }
    }
    if let (Some(registry), Some(user), Some(password)) = (
        env.get("CI_REGISTRY"),
        env.get("CI_REGISTRY_USER"),
        env.get("CI_REGISTRY_PASSWORD"),
    ) {
        if same_host(registry, host) {
            return Ok(Some(Found {
                credential: Credential::Basic {
                    username: user.into(),
                    password: Secret::new(password),
                },
                source: "$CI_REGISTRY_USER and $CI_REGISTRY_PASSWORD".into(),
            }));
        }
    }
    Ok(None)
}

/// The Docker config file: `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
pub fn docker_config_path(env: &Env) -> Option<PathBuf> {
    if let Some(dir) = env.get("DOCKER_CONFIG") {
        return Some(Path::new(dir).join("config.json"));
    }
    env.get("HOME")
        .map(|h| Path::new(h).join(".docker").join("config.json"))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DockerConfig {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(default)]
    cred_helpers: HashMap<String, String>,
    #[serde(default)]
    creds_store: Option<String>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

/// Docker's key normalisation: drop the scheme and any path (`https://index.docker.io/v1/`
/// is `index.docker.io`).
fn key_host(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

/// The largest Docker `config.json` read (1 MiB): a FIFO, a device or a huge file there is an
/// error naming it, never a hang or a read without end.
pub const MAX_DOCKER_CONFIG: u64 = 1024 * 1024;

fn docker_config(host: &str, env: &Env) -> Result<Option<Found>, String> {
    let Some(path) = docker_config_path(env) else {
        return Ok(None);
    };
    let text = match read_regular_file(&path, MAX_DOCKER_CONFIG, "a Docker config.json") {
        Ok(t) => t,
        Err(e) if e.io == Some(std::io::ErrorKind::NotFound) => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let cfg: DockerConfig = serde_json::from_slice(&text)
        .map_err(|e| format!("{}: not a valid Docker config: {e}", path.display()))?;
    let server = if same_host(host, "docker.io") {
        DOCKER_HUB_KEY.to_string()
    } else {
        host.to_string()
    };
    if let Some((_, helper)) = cfg
        .cred_helpers
        .iter()
        .find(|(k, _)| same_host(key_host(k), host))
    {
        return run_helper(helper, &server, env)
            .map_err(|e| format!("credHelpers in {}: {e}", path.display()));
    }
    for (key, entry) in &cfg.auths {
        if !same_host(key_host(key), host) {
            continue;
        }
        let source = format!("auths[{key:?}] in {}", path.display());
        if let Some(token) = entry.identitytoken.as_deref().filter(|t| !t.is_empty()) {
            return Ok(Some(Found {
                credential: Credential::IdentityToken(Secret::new(token)),
                source,
            }));
        }
        if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| format!("{source}: `auth` is not base64 of user:password"))?;
            let (user, password) = decoded
                .split_once(':')
                .ok_or_else(|| format!("{source}: `auth` is not base64 of user:password"))?;
            return Ok(Some(Found {
                credential: Credential::Basic {
                    username: user.into(),
                    password: Secret::new(password),
                },
                source,
            }));
        }
        if let (Some(u), Some(p)) = (&entry.username, &entry.password) {
            return Ok(Some(Found {
                credential: Credential::Basic {
                    username: u.clone(),
                    password: Secret::new(p.clone()),
                },
                source,
            }));
        }
    }
    if let Some(store) = cfg.creds_store.as_deref().filter(|s| !s.is_empty()) {
        return run_helper(store, &server, env)
            .map_err(|e| format!("credsStore in {}: {e}", path.display()));
    }
    Ok(None)
}

#[derive(Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// Run `docker-credential-<name> get` with `server` on stdin; `Ok(None)` when the helper
/// has no credentials for it.
fn run_helper(name: &str, server: &str, env: &Env) -> Result<Option<Found>, String> {
    let program = format!("docker-credential-{name}");
    let path = env
        .get("PATH")
        .and_then(|p| {
            std::env::split_paths(p)
                .map(|d| d.join(&program))
                .find(|c| c.is_file())
        })
        .ok_or_else(|| format!("{program} not found on PATH"))?;
    let mut child = Command::new(&path)
        .arg("get")
        .env_clear()
        .envs(env.vars())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(server.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{program}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        if stdout
            .to_ascii_lowercase()
            .contains("credentials not found")
        {
            return Ok(None);
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let said: String = format!("{} {}", stdout.trim(), stderr.trim())
            .trim()
            .chars()
            .take(200)
            .collect();
        return Err(format!("{program} get failed ({}): {said}", out.status));
    }
    let answer: HelperAnswer = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("{program} get answered something else than JSON: {e}"))?;
    let source = program.clone();
    if answer.secret.is_empty() {
        return Ok(None);
    }
    let credential = if answer.username == "<token>" {
        Credential::IdentityToken(Secret::new(answer.secret))
    } else {
        Credential::Basic {
            username: answer.username,
            password: Secret::new(answer.secret),
        }
    };
    Ok(Some(Found { credential, source }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_with_config(dir: &Path, json: &str) -> Env {
        std::fs::write(dir.join("config.json"), json).unwrap();
        Env::from_pairs([("DOCKER_CONFIG", dir.to_str().unwrap())])
    }

    #[test]
    fn secrets_never_print() {
        let c = Credential::Basic {
            username: "u".into(),
            password: Secret::new("hunter2"),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn config_env_first_and_missing_variable_named() {
        let creds = Credentials {
            username_env: "U".into(),
            password_env: "P".into(),
        };
        let env = Env::from_pairs([("U", "me"), ("P", "pw")]);
        let found = lookup("r.example", Some(&creds), &env).unwrap().unwrap();
        assert_eq!(
            found.credential,
            Credential::Basic {
                username: "me".into(),
                password: Secret::new("pw")
            }
        );
        let e = lookup("r.example", Some(&creds), &Env::from_pairs([("U", "me")])).unwrap_err();
        assert!(e.contains("$P"), "{e}");
    }

    #[test]
    fn auths_forms_and_docker_hub_key() {
        let t = tempfile::tempdir().unwrap();
        let auth = base64::engine::general_purpose::STANDARD.encode("hub:pw1");
        let env = env_with_config(
            t.path(),
            &format!(
                r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{auth}"}},
                "r.example:5000":{{"username":"u2","password":"pw2"}},
                "https://id.example/v2/":{{"identitytoken":"refresh"}}}}}}"#
            ),
        );
        let hub = lookup("docker.io", None, &env).unwrap().unwrap();
        assert_eq!(
            hub.credential,
            Credential::Basic {
                username: "hub".into(),
                password: Secret::new("pw1")
            }
        );
        let r = lookup("r.example:5000", None, &env).unwrap().unwrap();
        assert!(matches!(r.credential, Credential::Basic { ref username, .. } if username == "u2"));
        let id = lookup("id.example", None, &env).unwrap().unwrap();
        assert_eq!(
            id.credential,
            Credential::IdentityToken(Secret::new("refresh"))
        );
        assert!(lookup("other.example", None, &env).unwrap().is_none());
    }

    #[test]
    fn ci_environments() {
        let env = Env::from_pairs([
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_TOKEN", "ghs_x"),
            ("CI_REGISTRY", "registry.gitlab.example"),
            ("CI_REGISTRY_USER", "gitlab-ci-token"),
            ("CI_REGISTRY_PASSWORD", "glpw"),
        ]);
        let gh = lookup("ghcr.io", None, &env).unwrap().unwrap();
        assert_eq!(gh.source, "$GITHUB_TOKEN");
        let gl = lookup("registry.gitlab.example", None, &env)
            .unwrap()
            .unwrap();
        assert!(gl.source.contains("CI_REGISTRY_USER"));
        assert!(lookup("quay.io", None, &env).unwrap().is_none());
        let outside = Env::from_pairs([("GITHUB_TOKEN", "ghs_x")]);
        assert!(lookup("ghcr.io", None, &outside).unwrap().is_none());
    }

    /// A Docker config.json that is a FIFO (it used to block the run for good), or larger
    /// than its cap, is an error naming the file; nothing hangs and nothing is read whole.
    #[test]
    fn a_docker_config_that_is_a_fifo_or_too_big_is_an_error() {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("config.json");
        let made = Command::new("mkfifo").arg(&file).status().unwrap();
        assert!(made.success(), "mkfifo");
        let env = Env::from_pairs([("DOCKER_CONFIG", t.path().to_str().unwrap())]);
        let e = lookup("r.example", None, &env).unwrap_err();
        assert!(e.contains("config.json") && e.contains("FIFO"), "{e}");
        std::fs::remove_file(&file).unwrap();
        let big = format!("{{\"auths\": {{}}, \"pad\": \"{}\"}}", "x".repeat(2 << 20));
        let env = env_with_config(t.path(), &big);
        let e = lookup("r.example", None, &env).unwrap_err();
        assert!(
            e.contains("config.json") && e.contains("over the limit"),
            "{e}"
        );
    }

    #[test]
    fn broken_docker_config_is_an_error() {
        let t = tempfile::tempdir().unwrap();
        let env = env_with_config(t.path(), "{nope");
        let e = lookup("r.example", None, &env).unwrap_err();
        assert!(e.contains("config.json"), "{e}");
    }

    #[test]
    fn key_hosts() {
        assert_eq!(key_host("https://index.docker.io/v1/"), "index.docker.io");
        assert_eq!(key_host("r.example:5000"), "r.example:5000");
    }
}
