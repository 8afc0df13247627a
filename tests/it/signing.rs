//! Signed commits (`delivery.commit.sign`), checked with stock git: `run` against the real
//! registry pushes to a git remote (smart HTTP, or file://), and `git verify-commit` passes on
//! the pushed commits with the matching allowed-signers file (SSH) or GnuPG home (OpenPGP),
//! and fails with another key's. Keys come from `ssh-keygen` and `gpg` in temp dirs; the SSH
//! agent case runs a real `ssh-agent`.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use common::forges::{
    mount_fake, ok_report, output_text, pr_actions, run_async, run_in, seed_registry, GithubFake,
};
use common::{git, GitHttpServer, Registry};
use wiremock::MockServer;

const GIT_TOKEN: &str = "git-push-token-never-printed";
const FORGE_TOKEN: &str = "ghp-forge-token-never-printed";
const PASSPHRASE: &str = "signing-passphrase-never-printed";
/// The committer of the fixture's config.
const EMAIL: &str = "bot@example.invalid";

/// An SSH key pair made by `ssh-keygen` (`passphrase` empty: unencrypted): private key path
/// and the public key line.
fn ssh_key(dir: &Path, name: &str, passphrase: &str) -> (PathBuf, String) {
    ssh_key_of(dir, name, passphrase, &["-t", "ed25519"])
}

/// [`ssh_key`] of another type: `kind` is `ssh-keygen`'s `-t` (and `-b`) arguments.
fn ssh_key_of(dir: &Path, name: &str, passphrase: &str, kind: &[&str]) -> (PathBuf, String) {
    common::require_program("ssh-keygen", "apt-get install -y openssh-client");
    let path = dir.join(name);
    let out = Command::new("ssh-keygen")
        .arg("-q")
        .args(kind)
        .args(["-N", passphrase, "-C", name, "-f"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    (path, public.trim().to_string())
}

/// An allowed-signers file naming `public` for the fixture's committer.
fn allowed_signers(dir: &Path, public: &str) -> PathBuf {
    let file = dir.join("allowed_signers");
    std::fs::write(&file, format!("{EMAIL} namespaces=\"git\" {public}\n")).unwrap();
    file
}

/// `git verify-commit REV` in `repo` for SSH signatures, against `allowed`.
fn verify_ssh(repo: &Path, allowed: &Path, rev: &str) -> Result<String, String> {
    let allowed = format!("gpg.ssh.allowedSignersFile={}", allowed.display());
    verify_commit(repo, &[], &["-c", "gpg.format=ssh", "-c", &allowed], rev)
}

/// `git [config] verify-commit -v REV` in `repo` with `env`: its stdout and stderr, as `Ok`
/// when it passed.
fn verify_commit(
    repo: &Path,
    env: &[(&str, &Path)],
    config: &[&str],
    rev: &str,
) -> Result<String, String> {
    let out = Command::new("git")
        .current_dir(repo)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(config)
        .args(["verify-commit", "-v", rev])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

/// The commit object `rev` of `repo`, as git stores it.
fn commit_object(repo: &Path, rev: &str) -> String {
    git(repo, &["cat-file", "commit", rev])
}

/// A bare remote with the `commit-basic` fixture, `delivery_lines` in place of its
/// `mode: commit` and `commit_lines` (indented by four spaces) added to its `commit:` block,
/// and a clone of it.
fn remote_and_clone(
    dir: &Path,
    registry: &Registry,
    delivery_lines: &str,
    commit_lines: &str,
) -> (PathBuf, PathBuf) {
    let message = "    message: \"chore(images): {{ summary }}\"\n";
    let config = std::fs::read_to_string(common::forges::fixture("commit-basic/config.yaml"))
        .unwrap()
        .replace("{{REGISTRY}}", &registry.addr)
        .replace(
            "delivery:\n  mode: commit\n",
            &format!("delivery:\n{delivery_lines}"),
        )
        .replace(message, &format!("{message}{commit_lines}"));
    assert!(config.contains(commit_lines), "{config}");
    let mut files = common::forges::files_of(&common::forges::fixture("commit-basic/input"));
    files.push((".image-updater.yaml".into(), config.into_bytes()));
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_slice()))
        .collect();
    let bare = common::bare_repo_with_files(&dir.join("remote.git"), &refs);
    let work = common::clone(&format!("file://{}", bare.display()), &dir.join("work"));
    (bare, work)
}

/// `mode: commit` over smart HTTP with an SSH key given as a path: the pushed commit carries an
/// SSHSIG that stock git verifies with the key's allowed-signers line, and not with another
/// key's; the commit's content is what an unsigned run pushes.
#[test]
fn ssh_signed_commit_pushed_over_smart_http_verifies() {
    let registry = Registry::start();
    seed_registry(&registry);
    let root = tempfile::tempdir().unwrap();
    let http = GitHttpServer::start(root.path(), Some(("x-access-token", GIT_TOKEN)));
    let (bare, work) = remote_and_clone(
        root.path(),
        &registry,
        "  mode: commit\n",
        "    sign: ssh\n",
    );
    git(
        &work,
        &["remote", "set-url", "origin", &http.url("remote.git")],
    );
    let keys = tempfile::tempdir().unwrap();
    let (key, public) = ssh_key(keys.path(), "signer", "");
    let (_, other) = ssh_key(keys.path(), "other", "");
    let before = git(&bare, &["rev-parse", "main"]);

    let o = run_in(
        &work,
        &[
            ("IMAGE_UPDATER_GIT_TOKEN", GIT_TOKEN),
            ("IMAGE_UPDATER_SIGNING_KEY", key.to_str().unwrap()),
        ],
    );
    let report = ok_report(&o, &[GIT_TOKEN]);
    let pushed = git(&bare, &["rev-parse", "main"]).trim().to_string();
    assert_ne!(pushed, before.trim(), "{}", output_text(&o));
    assert_eq!(report["commit"].as_str(), Some(pushed.as_str()));
    let object = commit_object(&bare, "main");
    assert!(
        object.contains("\ngpgsig -----BEGIN SSH SIGNATURE-----\n"),
        "{object}"
    );
    let ok = verify_ssh(&bare, &allowed_signers(keys.path(), &public), "main")
        .unwrap_or_else(|e| panic!("verify-commit failed: {e}\n{object}"));
    assert!(ok.contains("Good \"git\" signature"), "{ok}");
    let wrong = keys.path().join("wrong");
    std::fs::create_dir(&wrong).unwrap();
    assert!(
        verify_ssh(&bare, &allowed_signers(&wrong, &other), "main").is_err(),
        "another key's allowed-signers file must not verify"
    );
    // The signed commit holds exactly the fixture's expected files, on top of the old main.
    assert_eq!(
        git(&bare, &["rev-parse", "main~1"]).trim(),
        before.trim(),
        "one commit"
    );
    assert_eq!(
        git(&bare, &["show", "main:apps/web.yaml"]).as_bytes(),
        std::fs::read(common::forges::fixture(
            "commit-basic/expected/apps/web.yaml"
        ))
        .unwrap()
    );
    // The work tree followed the signed commit.
    assert_eq!(git(&work, &["rev-parse", "HEAD"]).trim(), pushed);
    assert_eq!(git(&work, &["status", "--porcelain"]), "");
}

/// `mode: pull-request` against the GitHub fake, with an encrypted SSH key given as its text
/// and `sign: auto`: every branch's tip verifies; the passphrase never shows.
#[tokio::test(flavor = "multi_thread")]
async fn ssh_signed_pull_request_branches_verify() {
    let registry = Registry::start();
    seed_registry(&registry);
    let server = MockServer::start().await;
    let fake = GithubFake::new(FORGE_TOKEN);
    mount_fake(&server, fake.clone()).await;
    let root = tempfile::tempdir().unwrap();
    let (bare, work) = remote_and_clone(
        root.path(),
        &registry,
        &format!(
            "  mode: pull-request\n  forge: github\n  api_url: {}\n  repository: acme/infra\n",
            server.uri()
        ),
        "",
    );
    let keys = tempfile::tempdir().unwrap();
    let (key, public) = ssh_key(keys.path(), "signer", PASSPHRASE);
    let key_text = std::fs::read_to_string(&key).unwrap();

    // Without the passphrase the key does not open: a usage error, nothing pushed.
    let o = run_async(
        &work,
        &[
            ("GITHUB_TOKEN", FORGE_TOKEN),
            ("IMAGE_UPDATER_SIGNING_KEY", key_text.as_str()),
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(2), "{}", output_text(&o));
    assert!(
        output_text(&o).contains("IMAGE_UPDATER_SIGNING_PASSPHRASE"),
        "{}",
        output_text(&o)
    );
    assert!(!output_text(&o).contains("OPENSSH PRIVATE KEY"));
    assert!(fake.state().prs.is_empty());

    let o = run_async(
        &work,
        &[
            ("GITHUB_TOKEN", FORGE_TOKEN),
            ("IMAGE_UPDATER_SIGNING_KEY", key_text.as_str()),
            ("IMAGE_UPDATER_SIGNING_PASSPHRASE", PASSPHRASE),
        ],
    )
    .await;
    let report = ok_report(&o, &[FORGE_TOKEN, PASSPHRASE]);
    assert_eq!(pr_actions(&report).len(), 2, "{report}");
    let allowed = allowed_signers(keys.path(), &public);
    for branch in ["image-updater/web", "image-updater/api"] {
        verify_ssh(&bare, &allowed, branch)
            .unwrap_or_else(|e| panic!("{branch}: {e}\n{}", commit_object(&bare, branch)));
    }
    assert!(
        fake.state().problems.is_empty(),
        "{:#?}",
        fake.state().problems
    );
}

/// A running `ssh-agent`, stopped when dropped.
struct Agent {
    child: Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Agent {
    fn start() -> Agent {
        common::require_program("ssh-agent", "apt-get install -y openssh-client");
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // The socket file appears when the agent binds, a moment before it listens: wait
        // until it takes a connection, or `ssh-add` may be refused.
        common::wait_until(std::time::Duration::from_secs(10), || {
            std::os::unix::net::UnixStream::connect(&socket).is_ok()
        });
        Agent {
            child,
            socket,
            _dir: dir,
        }
    }

    fn add(&self, key: &Path) {
        let out = Command::new("ssh-add")
            .arg(key)
            .env("SSH_AUTH_SOCK", &self.socket)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `sign: ssh` with no key variable: the agent signs with the key
/// `IMAGE_UPDATER_SIGNING_PUBLIC_KEY` chooses among two; a key the agent lacks is a usage error.
#[test]
fn ssh_agent_signs_with_the_chosen_key() {
    let registry = Registry::start();
    seed_registry(&registry);
    let root = tempfile::tempdir().unwrap();
    let (bare, work) = remote_and_clone(
        root.path(),
        &registry,
        "  mode: commit\n",
        "    sign: ssh\n",
    );
    let keys = tempfile::tempdir().unwrap();
    let (first, _) = ssh_key(keys.path(), "first", "");
    let (chosen, public) = ssh_key(keys.path(), "chosen", "");
    let (_, absent) = ssh_key(keys.path(), "absent", "");
    let agent = Agent::start();
    agent.add(&first);
    agent.add(&chosen);
    let sock = agent.socket.to_str().unwrap();
    let before = git(&bare, &["rev-parse", "main"]);

    // Two keys and none chosen; then a key the agent does not hold.
    let o = run_in(&work, &[("SSH_AUTH_SOCK", sock)]);
    assert_eq!(o.status.code(), Some(2), "{}", output_text(&o));
    assert!(output_text(&o).contains("IMAGE_UPDATER_SIGNING_PUBLIC_KEY"));
    let o = run_in(
        &work,
        &[
            ("SSH_AUTH_SOCK", sock),
            ("IMAGE_UPDATER_SIGNING_PUBLIC_KEY", absent.as_str()),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", output_text(&o));
    assert!(
        output_text(&o).contains("does not hold"),
        "{}",
        output_text(&o)
    );
    assert_eq!(git(&bare, &["rev-parse", "main"]), before, "nothing pushed");

    let pubfile = chosen.with_extension("pub");
    let o = run_in(
        &work,
        &[
            ("SSH_AUTH_SOCK", sock),
            (
                "IMAGE_UPDATER_SIGNING_PUBLIC_KEY",
                pubfile.to_str().unwrap(),
            ),
        ],
    );
    ok_report(&o, &[]);
    verify_ssh(&bare, &allowed_signers(keys.path(), &public), "main")
        .unwrap_or_else(|e| panic!("{e}\n{}", commit_object(&bare, "main")));
}

/// The agent signs with ECDSA (P-256, P-384) and RSA keys too (RSA asked for `rsa-sha2-512`,
/// as `ssh-keygen -Y sign` does): stock git verifies each commit with the key's
/// allowed-signers line.
#[test]
fn ssh_agent_signs_with_ecdsa_and_rsa_keys() {
    let registry = Registry::start();
    seed_registry(&registry);
    let keys = tempfile::tempdir().unwrap();
    for (name, kind) in [
        ("ecdsa-p256", &["-t", "ecdsa", "-b", "256"][..]),
        ("ecdsa-p384", &["-t", "ecdsa", "-b", "384"][..]),
        ("rsa-3072", &["-t", "rsa", "-b", "3072"][..]),
    ] {
        let root = tempfile::tempdir().unwrap();
        let (bare, work) = remote_and_clone(
            root.path(),
            &registry,
            "  mode: commit\n",
            "    sign: ssh\n",
        );
        let (key, public) = ssh_key_of(keys.path(), name, "", kind);
        let agent = Agent::start();
        agent.add(&key);
        let o = run_in(
            &work,
            &[
                ("SSH_AUTH_SOCK", agent.socket.to_str().unwrap()),
                ("IMAGE_UPDATER_SIGNING_PUBLIC_KEY", public.as_str()),
            ],
        );
        let report = ok_report(&o, &[]);
        assert!(report["commit"].is_string(), "{name}: {report}");
        let allowed = allowed_signers(root.path(), &public);
        verify_ssh(&bare, &allowed, "main")
            .unwrap_or_else(|e| panic!("{name}: {e}\n{}", commit_object(&bare, "main")));
        // And not with another key's line.
        let (_, other) = ssh_key(root.path(), "other", "");
        let wrong = root.path().join("wrong");
        std::fs::create_dir(&wrong).unwrap();
        assert!(
            verify_ssh(&bare, &allowed_signers(&wrong, &other), "main").is_err(),
            "{name}: verified with another key"
        );
    }
}

/// A temp `GNUPGHOME` with a fresh key for the fixture's committer (`passphrase` may be
/// empty); returns the home and the armoured secret key.
fn gpg_key(passphrase: &str) -> (tempfile::TempDir, String) {
    common::require_program("gpg", "apt-get install -y gnupg");
    let home = tempfile::tempdir().unwrap();
    let gpg = |args: &[&str]| {
        let out = Command::new("gpg")
            .env("GNUPGHOME", home.path())
            .args([
                "--batch",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                passphrase,
            ])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "gpg {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    gpg(&[
        "--quick-gen-key",
        &format!("Image Updater Test <{EMAIL}>"),
        "default",
        "default",
        "never",
    ]);
    let armoured = gpg(&["--armor", "--export-secret-keys", EMAIL]);
    assert!(
        armoured.contains("BEGIN PGP PRIVATE KEY BLOCK"),
        "{armoured}"
    );
    (home, armoured)
}

fn verify_gpg(repo: &Path, home: &Path, rev: &str) -> Result<String, String> {
    verify_commit(repo, &[("GNUPGHOME", home)], &[], rev)
}

/// `sign: openpgp` with a passphrase-protected key (as Flux's `signingKey` secret holds):
/// the pushed commit verifies with the key's GnuPG home and not with another's; a wrong
/// passphrase stops the run before anything is pushed, and is never printed.
#[test]
fn openpgp_signed_commit_verifies_with_gpg() {
    let registry = Registry::start();
    seed_registry(&registry);
    let root = tempfile::tempdir().unwrap();
    let http = GitHttpServer::start(root.path(), Some(("x-access-token", GIT_TOKEN)));
    let (bare, work) = remote_and_clone(
        root.path(),
        &registry,
        "  mode: commit\n",
        "    sign: openpgp\n",
    );
    git(
        &work,
        &["remote", "set-url", "origin", &http.url("remote.git")],
    );
    let (home, key) = gpg_key(PASSPHRASE);
    let (other_home, _) = gpg_key("");
    let before = git(&bare, &["rev-parse", "main"]);

    let o = run_in(
        &work,
        &[
            ("IMAGE_UPDATER_GIT_TOKEN", GIT_TOKEN),
            ("IMAGE_UPDATER_SIGNING_KEY", key.as_str()),
            ("IMAGE_UPDATER_SIGNING_PASSPHRASE", "not-the-passphrase"),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", output_text(&o));
    assert!(!output_text(&o).contains("not-the-passphrase"));
    assert!(!output_text(&o).contains("PGP PRIVATE KEY"));
    assert_eq!(git(&bare, &["rev-parse", "main"]), before, "nothing pushed");

    let o = run_in(
        &work,
        &[
            ("IMAGE_UPDATER_GIT_TOKEN", GIT_TOKEN),
            ("IMAGE_UPDATER_SIGNING_KEY", key.as_str()),
            ("IMAGE_UPDATER_SIGNING_PASSPHRASE", PASSPHRASE),
        ],
    );
    ok_report(&o, &[GIT_TOKEN, PASSPHRASE]);
    let object = commit_object(&bare, "main");
    assert!(
        object.contains("\ngpgsig -----BEGIN PGP SIGNATURE-----\n"),
        "{object}"
    );
    let ok = verify_gpg(&bare, home.path(), "main")
        .unwrap_or_else(|e| panic!("verify-commit failed: {e}\n{object}"));
    assert!(ok.contains("Good signature"), "{ok}");
    assert!(
        verify_gpg(&bare, other_home.path(), "main").is_err(),
        "another keyring must not verify"
    );
}

/// Config and key errors are usage errors (exit 2) that name what to fix: an unknown `sign`
/// value (with the file and line), `openpgp` with no key, and a key variable of the wrong kind.
#[test]
fn bad_signing_settings_stop_the_run() {
    let registry = Registry::start();
    seed_registry(&registry);
    let root = tempfile::tempdir().unwrap();
    let (bare, work) = remote_and_clone(
        root.path(),
        &registry,
        "  mode: commit\n",
        "    sign: gpg\n",
    );
    let before = git(&bare, &["rev-parse", "main"]);
    let o = run_in(&work, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", output_text(&o));
    let text = output_text(&o);
    assert!(text.contains(".image-updater.yaml"), "{text}");
    assert!(text.contains("gpg"), "{text}");

    let config = work.join(".image-updater.yaml");
    let yaml = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, yaml.replace("sign: gpg", "sign: openpgp")).unwrap();
    git(&work, &["commit", "-qam", "sign with openpgp"]);
    let o = run_in(&work, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", output_text(&o));
    assert!(output_text(&o).contains("IMAGE_UPDATER_SIGNING_KEY"));

    let keys = tempfile::tempdir().unwrap();
    let (key, _) = ssh_key(keys.path(), "signer", "");
    let o = run_in(
        &work,
        &[("IMAGE_UPDATER_SIGNING_KEY", key.to_str().unwrap())],
    );
    assert_eq!(o.status.code(), Some(2), "{}", output_text(&o));
    assert!(
        output_text(&o).contains("holds an ssh key"),
        "{}",
        output_text(&o)
    );
    assert_eq!(git(&bare, &["rev-parse", "main"]), before, "nothing pushed");
}

// ---------------------------------------------------------------------------------------------
// `commit.via: api`: GitHub makes the commit (createCommitOnBranch)
// ---------------------------------------------------------------------------------------------

/// GitHub's GraphQL commit API over a bare repository: checks each call's documented shape
/// (bearer token, `CreateCommitOnBranchInput` with `branch.repositoryNameWithOwner` and
/// `branchName`, `message.headline`, a 40-hex `expectedHeadOid`, `fileChanges.additions` of
/// `{path, contents}` with base64 contents; `CreateRefInput`, `UpdateRefInput` with `force`)
/// and makes the commit in the bare repository as GitHub would, refusing a stale head with
/// GitHub's message. Problems with a request are collected, and answered as GraphQL errors.
#[derive(Clone)]
struct CommitApiFake {
    bare: PathBuf,
    token: String,
    calls: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    problems: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// The committer GitHub's API commits are made by.
const WEB_FLOW: &str = "GitHub";

impl CommitApiFake {
    fn new(bare: &Path, token: &str) -> CommitApiFake {
        CommitApiFake {
            bare: bare.to_path_buf(),
            token: token.to_string(),
            calls: Default::default(),
            problems: Default::default(),
        }
    }

    async fn mount(&self, server: &MockServer) {
        for op in [
            "createCommitOnBranch",
            "createRef(",
            "updateRef(",
            "ref(qualifiedName",
        ] {
            wiremock::Mock::given(wiremock::matchers::method("POST"))
                .and(wiremock::matchers::path("/graphql"))
                .and(wiremock::matchers::body_string_contains(op))
                .respond_with(self.clone())
                .with_priority(1)
                .mount(server)
                .await;
        }
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    fn problems(&self) -> Vec<String> {
        self.problems.lock().unwrap().clone()
    }

    fn git(&self, args: &[&str], env: &[(&str, &str)], stdin: Option<&[u8]>) -> String {
        use std::io::Write;
        let mut child = Command::new("git")
            .current_dir(&self.bare)
            .envs(env.iter().copied())
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.unwrap_or_default())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    fn head(&self, branch: &str) -> Option<String> {
        try_rev(&self.bare, &format!("refs/heads/{branch}"))
    }

    /// Commit `additions` on `branch` (whose head is `parent`) as GitHub's web flow.
    fn commit(
        &self,
        branch: &str,
        parent: &str,
        message: &str,
        additions: &[(String, Vec<u8>)],
    ) -> String {
        let index = tempfile::NamedTempFile::new().unwrap();
        let idx = index.path().to_str().unwrap();
        let env = [("GIT_INDEX_FILE", idx)];
        self.git(&["read-tree", parent], &env, None);
        for (path, bytes) in additions {
            let blob = self.git(&["hash-object", "-w", "--stdin"], &[], Some(bytes));
            self.git(
                &[
                    "update-index",
                    "--add",
                    "--cacheinfo",
                    &format!("100644,{blob},{path}"),
                ],
                &env,
                None,
            );
        }
        let tree = self.git(&["write-tree"], &env, None);
        let who = [
            ("GIT_AUTHOR_NAME", "token-owner"),
            ("GIT_AUTHOR_EMAIL", "token-owner@users.noreply.example"),
            ("GIT_COMMITTER_NAME", WEB_FLOW),
            ("GIT_COMMITTER_EMAIL", "noreply@github.example"),
        ];
        let oid = self.git(
            &["commit-tree", &tree, "-p", parent, "-F", "-"],
            &who,
            Some(message.as_bytes()),
        );
        self.git(
            &["update-ref", &format!("refs/heads/{branch}"), &oid, parent],
            &[],
            None,
        );
        oid
    }

    fn answer(&self, req: &wiremock::Request) -> Result<serde_json::Value, String> {
        use base64::Engine as _;
        use serde_json::json;
        let auth = req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        if auth != Some(format!("Bearer {}", self.token).as_str()) {
            return Err("no bearer token".into());
        }
        if req.headers.get("user-agent").is_none() {
            return Err("no User-Agent".into());
        }
        let body: serde_json::Value =
            serde_json::from_slice(&req.body).map_err(|e| e.to_string())?;
        let query = body["query"].as_str().ok_or("no query")?;
        let vars = &body["variables"];
        let input = &vars["input"];
        let is_oid = |v: &serde_json::Value| {
            v.as_str()
                .is_some_and(|s| s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        };
        if query.contains("createCommitOnBranch(input: $input)") {
            self.calls
                .lock()
                .unwrap()
                .push("createCommitOnBranch".into());
            if input["branch"]["repositoryNameWithOwner"] != "acme/infra" {
                return Err(format!(
                    "branch.repositoryNameWithOwner: {}",
                    input["branch"]
                ));
            }
            let branch = input["branch"]["branchName"]
                .as_str()
                .ok_or("no branch.branchName")?;
            let headline = input["message"]["headline"]
                .as_str()
                .ok_or("no message.headline")?;
            if headline.is_empty() || headline.contains('\n') {
                return Err(format!("message.headline {headline:?}"));
            }
            if !is_oid(&input["expectedHeadOid"]) {
                return Err(format!("expectedHeadOid {}", input["expectedHeadOid"]));
            }
            let expected = input["expectedHeadOid"].as_str().unwrap();
            if input["fileChanges"]
                .get("deletions")
                .is_some_and(|d| !d.as_array().is_some_and(Vec::is_empty))
            {
                return Err("unexpected deletions".into());
            }
            let mut additions = Vec::new();
            for a in input["fileChanges"]["additions"]
                .as_array()
                .ok_or("no fileChanges.additions")?
            {
                let path = a["path"].as_str().ok_or("addition without path")?;
                let contents = a["contents"].as_str().ok_or("addition without contents")?;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(contents)
                    .map_err(|e| format!("contents of {path} not base64: {e}"))?;
                additions.push((path.to_string(), bytes));
            }
            if additions.is_empty() {
                return Err("no additions".into());
            }
            let current = self.head(branch);
            if current.as_deref() != Some(expected) {
                return Ok(json!({
                    "data": { "createCommitOnBranch": null },
                    "errors": [{ "type": "STALE_DATA", "message": format!("Expected branch to point to \"{expected}\" but it did not. Pull and try again.") }]
                }));
            }
            let mut message = headline.to_string();
            if let Some(b) = input["message"]["body"].as_str() {
                message.push_str("\n\n");
                message.push_str(b);
            }
            let oid = self.commit(branch, expected, &message, &additions);
            return Ok(
                json!({ "data": { "createCommitOnBranch": { "commit": { "oid": oid, "url": format!("https://github.example/acme/infra/commit/{oid}") } } } }),
            );
        }
        if query.contains("ref(qualifiedName: $ref)") {
            if vars["owner"] != "acme" || vars["name"] != "infra" {
                return Err(format!("repository {} {}", vars["owner"], vars["name"]));
            }
            let qualified = vars["ref"].as_str().ok_or("no ref")?;
            let branch = qualified
                .strip_prefix("refs/heads/")
                .ok_or("ref not qualified")?;
            let reference = self
                .head(branch)
                .map(|oid| json!({ "id": format!("REF_{branch}"), "target": { "oid": oid } }));
            return Ok(json!({ "data": { "repository": { "id": "R_infra", "ref": reference } } }));
        }
        if query.contains("createRef(input: $input)") {
            self.calls.lock().unwrap().push("createRef".into());
            let name = input["name"].as_str().ok_or("no name")?;
            if input["repositoryId"] != "R_infra"
                || !name.starts_with("refs/heads/")
                || !is_oid(&input["oid"])
            {
                return Err(format!("CreateRefInput {input}"));
            }
            self.git(
                &[
                    "update-ref",
                    name,
                    input["oid"].as_str().unwrap(),
                    &"0".repeat(40),
                ],
                &[],
                None,
            );
            return Ok(
                json!({ "data": { "createRef": { "ref": { "id": format!("REF_{}", &name[11..]) } } } }),
            );
        }
        if query.contains("updateRef(input: $input)") {
            self.calls.lock().unwrap().push("updateRef".into());
            let branch = input["refId"]
                .as_str()
                .and_then(|r| r.strip_prefix("REF_"))
                .ok_or("unknown refId")?;
            if input["force"] != true || !is_oid(&input["oid"]) {
                return Err(format!("UpdateRefInput {input}"));
            }
            self.git(
                &[
                    "update-ref",
                    &format!("refs/heads/{branch}"),
                    input["oid"].as_str().unwrap(),
                ],
                &[],
                None,
            );
            return Ok(
                json!({ "data": { "updateRef": { "ref": { "id": format!("REF_{branch}") } } } }),
            );
        }
        Err(format!("unexpected query {query}"))
    }
}

impl wiremock::Respond for CommitApiFake {
    fn respond(&self, req: &wiremock::Request) -> wiremock::ResponseTemplate {
        match self.answer(req) {
            Ok(v) => wiremock::ResponseTemplate::new(200).set_body_json(v),
            Err(problem) => {
                self.problems.lock().unwrap().push(problem.clone());
                wiremock::ResponseTemplate::new(200)
                    .set_body_json(serde_json::json!({ "errors": [{ "message": problem }] }))
            }
        }
    }
}

fn try_rev(repo: &Path, rev: &str) -> Option<String> {
    common::try_git(repo, &["rev-parse", "--verify", "-q", rev])
        .ok()
        .map(|s| s.trim().to_string())
}

/// `mode: commit` with `via: api`: GitHub's API makes the one commit on main (its committer,
/// not a push of ours), the work tree follows it, and a second run calls nothing. A branch
/// that moved before the API call (a rival's push) is refused as stale, caught up, and the
/// commit made on the new head.
#[tokio::test(flavor = "multi_thread")]
async fn commit_via_the_github_api() {
    let registry = Registry::start();
    seed_registry(&registry);
    let server = MockServer::start().await;
    let root = tempfile::tempdir().unwrap();
    let (bare, work) = remote_and_clone(
        root.path(),
        &registry,
        &format!(
            "  mode: commit\n  forge: github\n  api_url: {}\n  repository: acme/infra\n",
            server.uri()
        ),
        "    via: api\n",
    );
    let fake = CommitApiFake::new(&bare, FORGE_TOKEN);
    fake.mount(&server).await;
    // Someone else pushes to main after our clone: our first call names a stale head.
    let rival = common::clone(
        &format!("file://{}", bare.display()),
        &root.path().join("rival"),
    );
    std::fs::write(rival.join("NOTES.md"), "a rival's change\n").unwrap();
    git(&rival, &["add", "NOTES.md"]);
    git(&rival, &["commit", "-qm", "a rival's commit"]);
    git(&rival, &["push", "-q", "origin", "main"]);
    let before = git(&bare, &["rev-parse", "main"]).trim().to_string();

    let o = run_async(&work, &[("GITHUB_TOKEN", FORGE_TOKEN)]).await;
    let report = ok_report(&o, &[FORGE_TOKEN]);
    assert_eq!(fake.problems(), Vec::<String>::new(), "{}", output_text(&o));
    assert_eq!(
        fake.calls(),
        ["createCommitOnBranch", "createCommitOnBranch"],
        "a stale head, then the commit on the caught-up head"
    );
    let main = git(&bare, &["rev-parse", "main"]).trim().to_string();
    assert_eq!(report["commit"].as_str(), Some(main.as_str()), "{report}");
    assert_eq!(git(&bare, &["rev-parse", "main~1"]).trim(), before);
    assert_eq!(
        git(&bare, &["log", "-1", "--format=%cn", "main"]).trim(),
        WEB_FLOW
    );
    for f in ["apps/web.yaml", "apps/multi.yaml"] {
        assert_eq!(
            git(&bare, &["show", &format!("main:{f}")]).as_bytes(),
            std::fs::read(common::forges::fixture(&format!(
                "commit-basic/expected/{f}"
            )))
            .unwrap(),
            "{f}"
        );
    }
    assert_eq!(git(&work, &["rev-parse", "HEAD"]).trim(), main);
    assert_eq!(git(&work, &["status", "--porcelain"]), "");

    // Nothing newer: no call.
    let o = run_async(&work, &[("GITHUB_TOKEN", FORGE_TOKEN)]).await;
    ok_report(&o, &[FORGE_TOKEN]);
    assert_eq!(fake.calls().len(), 2);
}

/// `via: api` with a Flux `ImageUpdateAutomation` whose `push.branch` is not the checked-out
/// branch: the push branch, absent at first, is created at main's head (`createRef`) and GitHub
/// commits the update on it with the automation's message; main and the work tree stay as
/// they were; a second run, with the push branch already holding the update, calls nothing.
#[tokio::test(flavor = "multi_thread")]
async fn via_api_commits_to_a_flux_push_branch() {
    let registry = Registry::start();
    registry.push_image(
        "stefanprodan/podinfo",
        &["5.0.0", "5.0.1", "5.0.3", "5.1.0"],
    );
    let server = MockServer::start().await;
    let root = tempfile::tempdir().unwrap();
    let fixture = |part: &str| common::forges::fixture(&format!("flux/push-branch/{part}"));
    let fill = |b: &[u8]| {
        String::from_utf8(b.to_vec())
            .unwrap()
            .replace("{{REGISTRY}}", &registry.addr)
            .into_bytes()
    };
    let mut files: Vec<(String, Vec<u8>)> = common::forges::files_of(&fixture("input"))
        .into_iter()
        .map(|(p, b)| (p, fill(&b)))
        .collect();
    // Only the delivery is ours; the policies and the push branch are the automation's.
    files.push((
        ".image-updater.yaml".into(),
        format!(
            "delivery:\n  forge: github\n  api_url: {}\n  repository: acme/infra\n  commit:\n    via: api\n",
            server.uri()
        )
        .into_bytes(),
    ));
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_slice()))
        .collect();
    let bare = common::bare_repo_with_files(&root.path().join("remote.git"), &refs);
    let work = common::clone(
        &format!("file://{}", bare.display()),
        &root.path().join("work"),
    );
    let fake = CommitApiFake::new(&bare, FORGE_TOKEN);
    fake.mount(&server).await;
    let main = git(&bare, &["rev-parse", "main"]).trim().to_string();
    assert_eq!(try_rev(&bare, "refs/heads/image-updates"), None);

    let o = run_async(&work, &[("GITHUB_TOKEN", FORGE_TOKEN)]).await;
    let report = ok_report(&o, &[FORGE_TOKEN]);
    assert!(fake.problems().is_empty(), "{:#?}", fake.problems());
    assert_eq!(fake.calls(), ["createRef", "createCommitOnBranch"]);
    let tip = git(&bare, &["rev-parse", "image-updates"])
        .trim()
        .to_string();
    assert_eq!(report["commit"].as_str(), Some(tip.as_str()), "{report}");
    assert_eq!(git(&bare, &["rev-parse", "image-updates~1"]).trim(), main);
    assert_eq!(
        git(&bare, &["rev-parse", "main"]).trim(),
        main,
        "main untouched"
    );
    assert_eq!(
        git(&bare, &["log", "-1", "--format=%cn", "image-updates"]).trim(),
        WEB_FLOW
    );
    assert!(
        git(&bare, &["log", "-1", "--format=%B", "image-updates"])
            .starts_with("Automated image update\n\nAutomation name: flux-system/flux-system\n"),
        "the automation's messageTemplate"
    );
    for (path, expected) in common::forges::files_of(&fixture("expected")) {
        assert_eq!(
            git(&bare, &["show", &format!("image-updates:{path}")]).as_bytes(),
            fill(&expected),
            "{path}"
        );
    }
    assert_eq!(git(&work, &["rev-parse", "HEAD"]).trim(), main);
    assert_eq!(
        git(&work, &["status", "--porcelain"]),
        "",
        "the work tree is not written"
    );

    // The push branch already holds the update: no call, nothing moves.
    let o = run_async(&work, &[("GITHUB_TOKEN", FORGE_TOKEN)]).await;
    ok_report(&o, &[FORGE_TOKEN]);
    assert_eq!(fake.calls().len(), 2);
    assert_eq!(git(&bare, &["rev-parse", "image-updates"]).trim(), tip);
}

/// `mode: pull-request` with `via: api`: each branch is created at the base (`createRef`) and
/// GitHub commits the group's files on it; the pull requests open as usual; a second run
/// calls no mutation; after a newer tag the existing branch is reset (`updateRef`, forced) and
/// committed on again.
#[tokio::test(flavor = "multi_thread")]
async fn pull_request_branches_via_the_github_api() {
    let registry = Registry::start();
    seed_registry(&registry);
    let server = MockServer::start().await;
    let root = tempfile::tempdir().unwrap();
    let (bare, work) = remote_and_clone(
        root.path(),
        &registry,
        &format!(
            "  mode: pull-request\n  forge: github\n  api_url: {}\n  repository: acme/infra\n",
            server.uri()
        ),
        "    via: api\n",
    );
    let api_fake = CommitApiFake::new(&bare, FORGE_TOKEN);
    api_fake.mount(&server).await;
    let fake = GithubFake::new(FORGE_TOKEN);
    mount_fake(&server, fake.clone()).await;
    let base = git(&bare, &["rev-parse", "main"]).trim().to_string();

    let o = run_async(&work, &[("GITHUB_TOKEN", FORGE_TOKEN)]).await;
    let report = ok_report(&o, &[FORGE_TOKEN]);
    assert!(api_fake.problems().is_empty(), "{:#?}", api_fake.problems());
    assert_eq!(
        pr_actions(&report),
        common::forges::expect_actions(&[
            ("image-updater/api", 1, "created"),
            ("image-updater/web", 2, "created")
        ])
    );
    assert_eq!(
        api_fake.calls(),
        [
            "createRef",
            "createCommitOnBranch",
            "createRef",
            "createCommitOnBranch"
        ]
    );
    for branch in ["image-updater/api", "image-updater/web"] {
        assert_eq!(
            git(&bare, &["rev-parse", &format!("{branch}~1")]).trim(),
            base
        );
        assert_eq!(
            git(&bare, &["log", "-1", "--format=%cn", branch]).trim(),
            WEB_FLOW
        );
    }
    assert_eq!(
        git(&bare, &["rev-parse", "main"]).trim(),
        base,
        "the base is left alone"
    );

    let o = run_async(&work, &[("GITHUB_TOKEN", FORGE_TOKEN)]).await;
    let report = ok_report(&o, &[FORGE_TOKEN]);
    assert_eq!(
        api_fake.calls().len(),
        4,
        "no mutation when nothing changed"
    );
    assert!(
        pr_actions(&report).iter().all(|(_, _, a)| a == "unchanged"),
        "{report}"
    );

    registry.push_image("acme/web", &["1.3.0"]);
    let o = run_async(&work, &[("GITHUB_TOKEN", FORGE_TOKEN)]).await;
    let report = ok_report(&o, &[FORGE_TOKEN]);
    assert_eq!(
        &api_fake.calls()[4..],
        ["updateRef", "createCommitOnBranch"]
    );
    assert!(
        git(&bare, &["show", "image-updater/web:apps/web.yaml"]).contains("acme/web:1.3.0"),
        "{report}"
    );
    assert_eq!(
        git(&bare, &["rev-parse", "image-updater/web~1"]).trim(),
        base
    );
    assert!(api_fake.problems().is_empty(), "{:#?}", api_fake.problems());
    assert!(
        fake.state().problems.is_empty(),
        "{:#?}",
        fake.state().problems
    );
}

/// `via: api` on another forge is refused before anything is committed.
#[test]
fn via_api_on_another_forge_is_refused() {
    let registry = Registry::start();
    seed_registry(&registry);
    let root = tempfile::tempdir().unwrap();
    let (bare, work) = remote_and_clone(
        root.path(),
        &registry,
        "  mode: commit\n  forge: gitlab\n  api_url: http://127.0.0.1:9/api/v4\n  repository: acme/infra\n",
        "    via: api\n",
    );
    let before = git(&bare, &["rev-parse", "main"]);
    let o = run_in(&work, &[("GITLAB_TOKEN", FORGE_TOKEN)]);
    assert_eq!(o.status.code(), Some(1), "{}", output_text(&o));
    assert!(
        output_text(&o).contains("only GitHub"),
        "{}",
        output_text(&o)
    );
    assert_eq!(git(&bare, &["rev-parse", "main"]), before);
    assert_eq!(git(&work, &["status", "--porcelain"]), "");
}
