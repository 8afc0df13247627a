//! Authentication against the real distribution registry in `auth: token` mode, with a token
//! service the test runs: the same Bearer challenge Docker Hub and GHCR send. Anonymous pull
//! tokens, credentials from the config's environment variables, Docker's `config.json`
//! (`auths`, `credHelpers`, `credsStore` with helper scripts), GitHub Actions and GitLab CI.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{bare_env, block_on, registries, test_options, Registry, TokenIssuer};
use image_updater::registry::Env;

const HOST: &str = "registry.test";

/// A token-auth registry holding `public/app` (anonymous pull) and `private/app`;
/// the token service knows alice.
fn token_registry() -> (Registry, TokenIssuer) {
    let mut registry = Registry::start();
    registry.push_image("public/app", &["1.0.0", "1.1.0"]);
    registry.push_image("private/app", &["2.0.0", "2.1.0"]);
    let issuer = TokenIssuer::start(&[("alice", "s3cret-pw")], &["public/app"]);
    registry.restart_with(&issuer.registry_auth_yaml(), None);
    (registry, issuer)
}

fn config(registry: &Registry, extra: &str) -> String {
    format!(
        "registries:\n  - host: {HOST}\n    api: http://{}\n{extra}",
        registry.addr
    )
}

fn list(yaml: &str, env: Env, repo: &str) -> Result<Vec<String>, String> {
    let regs = registries(yaml, test_options(env));
    block_on(async { regs.source(HOST).list_tags(repo).await }).map_err(|e| e.to_string())
}

#[test]
fn registry_challenges_and_an_anonymous_pull_token_is_fetched_once_per_scope() {
    let (registry, issuer) = token_registry();
    let probe = common::http_request(&registry.addr, "GET", "/v2/public/app/tags/list", &[], b"");
    assert_eq!(probe.status, 401);
    assert!(
        probe
            .header("www-authenticate")
            .unwrap()
            .starts_with("Bearer realm="),
        "{:?}",
        probe.headers
    );

    let regs = registries(&config(&registry, ""), test_options(bare_env()));
    let source = regs.source(HOST);
    block_on(async {
        let mut tags = source.list_tags("public/app").await.unwrap();
        tags.sort();
        assert_eq!(tags, ["1.0.0", "1.1.0"]);
        // The same scope again, and a manifest in it: the cached token serves.
        source.list_tags("public/app").await.unwrap();
        let d = source.digest("public/app", "1.1.0").await.unwrap();
        assert!(d.starts_with("sha256:"), "{d}");
    });
    let seen = issuer.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].scope, "repository:public/app:pull");
    assert_eq!(seen[0].user, None);
    assert!(seen[0].granted);
}

#[test]
fn private_repository_wants_credentials_and_says_so() {
    let (registry, issuer) = token_registry();
    // Anonymous: the token grants nothing, the registry refuses: a clear message.
    let e = list(&config(&registry, ""), bare_env(), "private/app").unwrap_err();
    assert!(e.contains("authentication required (HTTP 401)"), "{e}");
    assert!(e.contains(HOST), "{e}");

    // Credentials from the config's environment variables.
    let yaml = config(
        &registry,
        "    credentials: { username_env: REG_USER, password_env: REG_PASS }\n",
    );
    let mut env = bare_env();
    env.set("REG_USER", "alice");
    env.set("REG_PASS", "s3cret-pw");
    let mut tags = list(&yaml, env, "private/app").unwrap();
    tags.sort();
    assert_eq!(tags, ["2.0.0", "2.1.0"]);
    assert!(issuer
        .requests()
        .iter()
        .any(|r| r.user.as_deref() == Some("alice") && r.granted));

    // A wrong password: the token service refuses, the message names where the
    // credentials came from and never the password.
    let mut env = bare_env();
    env.set("REG_USER", "alice");
    env.set("REG_PASS", "wrong-pw-123");
    let e = list(&yaml, env, "private/app").unwrap_err();
    assert!(e.contains("authentication failed (HTTP 401)"), "{e}");
    assert!(e.contains("$REG_USER"), "{e}");
    assert!(!e.contains("wrong-pw-123"), "{e}");
}

#[test]
fn a_token_the_registry_no_longer_takes_is_refreshed_on_401() {
    let (registry, issuer) = token_registry();
    // Clients are told 300 s, but the registry takes the JWT for ~2 s only (its `exp` is
    // 58 s ago, and the registry allows 60 s of leeway).
    issuer.set_lifetimes(300, -58);
    let regs = registries(&config(&registry, ""), test_options(bare_env()));
    let source = regs.source(HOST);
    block_on(async {
        source.list_tags("public/app").await.unwrap();
        // Let the JWT expire (the registry checks `exp` with whole seconds).
        tokio::time::sleep(std::time::Duration::from_millis(3500)).await;
        let tags = source.list_tags("public/app").await.unwrap();
        assert_eq!(tags.len(), 2);
    });
    let seen = issuer.requests();
    assert_eq!(
        seen.len(),
        2,
        "one token, then a new one after the 401: {seen:?}"
    );
}

fn write_script(dir: &Path, name: &str, body: &str) {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A Docker config dir with `config.json`, a bin dir with credential helpers, and the env.
fn docker_env(config_json: &str) -> (tempfile::TempDir, Env) {
    let t = tempfile::tempdir().unwrap();
    let conf = t.path().join("docker");
    let bin = t.path().join("bin");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(conf.join("config.json"), config_json).unwrap();
    let log = t.path().join("helper.log");
    // Helpers as Docker runs them: `get`, the server on stdin, JSON on stdout.
    for (name, user, secret) in [
        ("docker-credential-testhelper", "alice", "s3cret-pw"),
        ("docker-credential-teststore", "alice", "s3cret-pw"),
        ("docker-credential-tokenstore", "<token>", "refresh-abc"),
    ] {
        write_script(
            &bin,
            name,
            &format!(
                r#"[ "$1" = get ] || exit 3
read -r server
echo "{name} $server" >> {log}
if [ "$server" = "{HOST}" ]; then
  printf '{{"ServerURL":"%s","Username":"{user}","Secret":"{secret}"}}' "$server"
else
  echo "credentials not found in native keychain"; exit 1
fi
"#,
                log = log.display()
            ),
        );
    }
    let env = Env::from_pairs([
        ("DOCKER_CONFIG", conf.to_str().unwrap().to_string()),
        ("PATH", format!("{}:/usr/bin:/bin", bin.display())),
        ("HOME", "/nonexistent".to_string()),
    ]);
    (t, env)
}

fn helper_log(t: &tempfile::TempDir) -> String {
    std::fs::read_to_string(t.path().join("helper.log")).unwrap_or_default()
}

#[test]
fn docker_config_auths_in_every_form() {
    let (registry, issuer) = token_registry();
    issuer.add_refresh_token("refresh-abc", "alice");
    let yaml = config(&registry, "");
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode("alice:s3cret-pw");
    for (case, json) in [
        (
            "auth",
            format!(r#"{{"auths":{{"{HOST}":{{"auth":"{b64}"}}}}}}"#),
        ),
        (
            "username/password",
            format!(
                r#"{{"auths":{{"https://{HOST}/v2/":{{"username":"alice","password":"s3cret-pw"}}}}}}"#
            ),
        ),
        (
            "identitytoken",
            format!(r#"{{"auths":{{"{HOST}":{{"identitytoken":"refresh-abc"}}}}}}"#),
        ),
    ] {
        let (_t, env) = docker_env(&json);
        let tags = list(&yaml, env, "private/app").unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(tags.len(), 2, "{case}");
    }
    // The identity token was exchanged with OAuth2's refresh_token grant (a POST).
    assert!(
        issuer
            .requests()
            .iter()
            .any(|r| r.method == "POST" && r.user.as_deref() == Some("alice") && r.granted),
        "{:?}",
        issuer.requests()
    );
}

#[test]
fn docker_config_helpers_and_store() {
    let (registry, issuer) = token_registry();
    issuer.add_refresh_token("refresh-abc", "alice");
    let yaml = config(&registry, "");

    // credHelpers for this host wins over the store.
    let (t, env) = docker_env(&format!(
        r#"{{"credHelpers":{{"{HOST}":"testhelper"}},"credsStore":"nonexistent"}}"#
    ));
    assert_eq!(list(&yaml, env, "private/app").unwrap().len(), 2);
    assert_eq!(
        helper_log(&t).trim(),
        format!("docker-credential-testhelper {HOST}")
    );

    // credsStore, with an empty auths entry (as Docker Desktop writes them).
    let (t, env) = docker_env(&format!(
        r#"{{"auths":{{"{HOST}":{{}}}},"credsStore":"teststore"}}"#
    ));
    assert_eq!(list(&yaml, env, "private/app").unwrap().len(), 2);
    assert!(helper_log(&t).contains("docker-credential-teststore registry.test"));

    // A store answering with an identity token (`<token>` as the username).
    let (_t, env) = docker_env(r#"{"credsStore":"tokenstore"}"#);
    assert_eq!(list(&yaml, env, "private/app").unwrap().len(), 2);

    // A store without credentials for the host: anonymous, and the public repo still lists.
    let (_t, env) =
        docker_env(r#"{"credHelpers":{"other.test":"testhelper"},"credsStore":"testhelper"}"#);
    let other = format!(
        "registries:\n  - host: other.test\n    api: http://{}\n",
        registry.addr
    );
    let regs = registries(&other, test_options(env));
    let tags = block_on(async { regs.source("other.test").list_tags("public/app").await });
    assert_eq!(tags.unwrap().len(), 2);

    // A helper that is not installed: the error says which.
    let (_t, env) = docker_env(&format!(r#"{{"credHelpers":{{"{HOST}":"missing"}}}}"#));
    let e = list(&yaml, env, "private/app").unwrap_err();
    assert!(
        e.contains("docker-credential-missing not found on PATH"),
        "{e}"
    );
}

#[test]
fn ci_environments_provide_credentials() {
    let (registry, _issuer) = {
        let mut registry = Registry::start();
        registry.push_image("acme/app", &["3.0.0"]);
        let issuer = TokenIssuer::start(
            &[
                ("x-access-token", "ghs_token"),
                ("gitlab-ci-token", "glcbt-xyz"),
            ],
            &[],
        );
        registry.restart_with(&issuer.registry_auth_yaml(), None);
        (registry, issuer)
    };
    // GitHub Actions: GITHUB_TOKEN for ghcr.io (here served by the test registry via `api`).
    let yaml = format!(
        "registries:\n  - host: ghcr.io\n    api: http://{}\n",
        registry.addr
    );
    let mut env = bare_env();
    env.set("GITHUB_ACTIONS", "true");
    env.set("GITHUB_TOKEN", "ghs_token");
    let regs = registries(&yaml, test_options(env));
    let r = block_on(async { regs.source("ghcr.io").list_tags("acme/app").await });
    assert_eq!(r.unwrap(), ["3.0.0"]);
    // Outside GitHub Actions the token is not used.
    let mut env = bare_env();
    env.set("GITHUB_TOKEN", "ghs_token");
    let regs = registries(&yaml, test_options(env));
    let r = block_on(async { regs.source("ghcr.io").list_tags("acme/app").await });
    assert!(r.is_err());

    // GitLab CI: CI_REGISTRY_USER / CI_REGISTRY_PASSWORD for $CI_REGISTRY.
    let yaml = format!(
        "registries:\n  - host: gitlab.test:5050\n    api: http://{}\n",
        registry.addr
    );
    let mut env = bare_env();
    env.set("CI_REGISTRY", "gitlab.test:5050");
    env.set("CI_REGISTRY_USER", "gitlab-ci-token");
    env.set("CI_REGISTRY_PASSWORD", "glcbt-xyz");
    let regs = registries(&yaml, test_options(env));
    let r = block_on(async { regs.source("gitlab.test:5050").list_tags("acme/app").await });
    assert_eq!(r.unwrap(), ["3.0.0"]);
}
