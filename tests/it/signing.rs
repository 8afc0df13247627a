//! Signed commits (`delivery.commit.sign`), checked with stock git: `run` against the real
//! registry pushes to a git remote (smart HTTP, or file://), and `git verify-commit` passes on
//! the pushed commits with the matching allowed-signers file (SSH) or GnuPG home (OpenPGP),
//! and fails with another key's. Keys come from `ssh-keygen` and `gpg` in temp dirs; the SSH
//! agent case runs a real `ssh-agent`.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use common::forges::{
    fixture_remote, mount_fake, ok_report, output_text, pr_actions, run_async, run_in,
    seed_registry, GithubFake,
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
    common::require_program("ssh-keygen", "apt-get install -y openssh-client");
    let path = dir.join(name);
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", passphrase, "-C", name, "-f"])
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

/// A bare remote with the `commit-basic` fixture and `delivery_lines`, and a clone of it.
fn remote_and_clone(dir: &Path, registry: &Registry, delivery_lines: &str) -> (PathBuf, PathBuf) {
    let bare = fixture_remote(dir, &registry.addr, delivery_lines);
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
        "  mode: commit\n  commit:\n    author: { name: image-updater-test, email: bot@example.invalid }\n    sign: ssh\n",
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
            "  mode: pull-request\n  forge: github\n  api_url: {}\n  repository: acme/infra\n  commit:\n    author: {{ name: image-updater-test, email: bot@example.invalid }}\n",
            server.uri()
        ),
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
        common::wait_until(std::time::Duration::from_secs(10), || socket.exists());
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
        "  mode: commit\n  commit:\n    author: { name: image-updater-test, email: bot@example.invalid }\n    sign: ssh\n",
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
        "  mode: commit\n  commit:\n    author: { name: image-updater-test, email: bot@example.invalid }\n    sign: openpgp\n",
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
        "  mode: commit\n  commit:\n    sign: gpg\n",
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
