//! Signed commits: the `gpgsig` header of every commit the run makes, as stock git writes it
//! and `git verify-commit` checks it (`delivery.commit.sign`).
//!
//! Two formats, both signed in-process so the static binary in a scratch image needs no
//! `ssh-keygen` or `gpg`:
//! - **SSH** (`gpg.format ssh`): an SSHSIG (OpenSSH's `PROTOCOL.sshsig`, namespace `git`,
//!   SHA-512) over the commit, made with the `ssh-key` crate from a private key, or by the SSH
//!   agent (`SSH_AUTH_SOCK`) with the key `IMAGE_UPDATER_SIGNING_PUBLIC_KEY` names.
//! - **OpenPGP**: a detached binary signature, ASCII-armoured, made with the `pgp` crate (rpgp)
//!   from an armoured secret key (Flux's `signingKey` secret holds one).
//!
//! The key (`IMAGE_UPDATER_SIGNING_KEY`) is its text or a path to it; its armour tells the
//! format; `IMAGE_UPDATER_SIGNING_PASSPHRASE` unlocks it. A key is loaded, unlocked and tried
//! once when the run starts, so a bad one stops the run before anything is touched. Neither
//! the key nor the passphrase ever appears in a message.

use std::io::{Read, Write};

use crate::config::Sign;
use crate::env::Env;
use crate::secret::Secret;

/// The private key: its text, or a path to a file holding it.
pub const KEY_VAR: &str = "IMAGE_UPDATER_SIGNING_KEY";
/// The passphrase of an encrypted key.
pub const PASSPHRASE_VAR: &str = "IMAGE_UPDATER_SIGNING_PASSPHRASE";
/// With `sign: ssh` and no key: the public key (text or path) of the agent's key to sign with.
pub const PUBLIC_KEY_VAR: &str = "IMAGE_UPDATER_SIGNING_PUBLIC_KEY";

/// The SSHSIG namespace git signs commits in.
const GIT_NAMESPACE: &str = "git";

const SSH_ARMOUR: &str = "-----BEGIN OPENSSH PRIVATE KEY-----";
const PGP_ARMOUR: &str = "-----BEGIN PGP PRIVATE KEY BLOCK-----";

/// What signs the run's commits.
pub struct Signer(Kind);

enum Kind {
    SshKey(Box<ssh_key::PrivateKey>),
    SshAgent {
        socket: String,
        public: ssh_key::PublicKey,
    },
    OpenPgp {
        key: Box<pgp::composed::SignedSecretKey>,
        passphrase: Option<Secret>,
    },
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Signer {
    /// The signer `sign` asks for, from the variables of `env`; `None` when commits stay
    /// unsigned (`none`, or `auto` with no key). A key that is missing, unreadable, of the
    /// other format, locked without its passphrase or unable to sign is an error saying which
    /// variable to fix.
    pub fn from_env(sign: Sign, env: &Env) -> Result<Option<Signer>, String> {
        let key = env.get(KEY_VAR);
        let passphrase = env.get(PASSPHRASE_VAR).map(Secret::new);
        let kind = match (sign, key) {
            (Sign::None, _) | (Sign::Auto, None) => return Ok(None),
            (Sign::Openpgp, None) => {
                return Err(format!(
                    "delivery.commit.sign is openpgp but {KEY_VAR} is not set: set it to the armoured secret key (-----BEGIN PGP PRIVATE KEY BLOCK-----) or a path to it"
                ))
            }
            (Sign::Ssh, None) => agent_signer(env)?,
            (sign, Some(value)) => {
                let text = key_text(KEY_VAR, value)?;
                let found = if text.contains(SSH_ARMOUR) {
                    Sign::Ssh
                } else if text.contains(PGP_ARMOUR) {
                    Sign::Openpgp
                } else {
                    return Err(format!(
                        "{KEY_VAR} holds no key this can sign with: expected an OpenSSH private key ({SSH_ARMOUR}) or an armoured OpenPGP secret key ({PGP_ARMOUR})"
                    ));
                };
                if sign != Sign::Auto && sign != found {
                    return Err(format!(
                        "delivery.commit.sign is {} but {KEY_VAR} holds an {} key",
                        sign.name(),
                        found.name()
                    ));
                }
                if found == Sign::Ssh {
                    ssh_key_signer(&text, passphrase.as_ref())?
                } else {
                    pgp_signer(&text, passphrase)?
                }
            }
        };
        let signer = Signer(kind);
        // Try the key once: a wrong passphrase or an agent without the key shows now.
        signer
            .sign(b"image-updater: signing key check\n")
            .map_err(|e| format!("{}: {e}", signer.describe()))?;
        tracing::info!("signing commits: {}", signer.describe());
        Ok(Some(signer))
    }

    /// What signs, for messages: format and public fingerprint only.
    pub fn describe(&self) -> String {
        match &self.0 {
            Kind::SshKey(k) => format!(
                "SSH key {} from {KEY_VAR}",
                k.public_key().fingerprint(Default::default())
            ),
            Kind::SshAgent { public, .. } => format!(
                "SSH key {} in the SSH agent",
                public.fingerprint(Default::default())
            ),
            Kind::OpenPgp { key, .. } => format!(
                "OpenPGP key {} from {KEY_VAR}",
                hex_upper(pgp_fingerprint(key).as_bytes())
            ),
        }
    }

    /// The armoured signature of `payload` (a commit as `git cat-file` shows it, without its
    /// `gpgsig` header), ending without a newline: the `gpgsig` header's value.
    pub fn sign(&self, payload: &[u8]) -> Result<String, String> {
        let armoured = match &self.0 {
            Kind::SshKey(key) => key
                .sign(GIT_NAMESPACE, ssh_key::HashAlg::Sha512, payload)
                .and_then(|sig| sig.to_pem(ssh_key::LineEnding::LF))
                .map_err(|e| format!("SSH signing failed: {e}"))?,
            Kind::SshAgent { socket, public } => agent_sign(socket, public, payload)?,
            Kind::OpenPgp { key, passphrase } => pgp_sign(key, passphrase.as_ref(), payload)?,
        };
        Ok(armoured.trim_end().to_string())
    }
}

/// The key text a variable holds: the text itself when it carries armour, else the contents
/// of the file it names. The text is never quoted back.
fn key_text(var: &str, value: &str) -> Result<String, String> {
    // Key text: an armoured key, or a public key line (`ssh-ed25519`, `ssh-rsa`,
    // `ecdsa-sha2-nistp256`, `sk-ssh-ed25519@openssh.com`, …); anything else is a path.
    let text = value.trim_start();
    if [
        "-----BEGIN",
        "ssh-",
        "ecdsa-sha2-",
        "sk-ssh-",
        "sk-ecdsa-sha2-",
    ]
    .iter()
    .any(|p| text.starts_with(p))
    {
        return Ok(value.to_string());
    }
    if value.contains('\n') {
        return Err(format!(
            "{var} is neither a key (no -----BEGIN armour) nor a path to a file"
        ));
    }
    std::fs::read_to_string(value).map_err(|e| format!("{var}: reading {value}: {e}"))
}

fn ssh_key_signer(text: &str, passphrase: Option<&Secret>) -> Result<Kind, String> {
    let key = ssh_key::PrivateKey::from_openssh(text.trim())
        .map_err(|e| format!("{KEY_VAR}: not a readable OpenSSH private key: {e}"))?;
    let key = if key.is_encrypted() {
        let Some(pass) = passphrase else {
            return Err(format!(
                "{KEY_VAR}: the SSH key is encrypted: set {PASSPHRASE_VAR} to its passphrase"
            ));
        };
        key.decrypt(pass.expose()).map_err(|_| {
            format!(
                "{KEY_VAR}: the SSH key does not open with {PASSPHRASE_VAR} (wrong passphrase?)"
            )
        })?
    } else {
        key
    };
    Ok(Kind::SshKey(Box::new(key)))
}

fn pgp_signer(text: &str, passphrase: Option<Secret>) -> Result<Kind, String> {
    use pgp::composed::Deserializable;
    let (key, _) = pgp::composed::SignedSecretKey::from_string(text.trim())
        .map_err(|e| format!("{KEY_VAR}: not a readable OpenPGP secret key: {e}"))?;
    Ok(Kind::OpenPgp {
        key: Box::new(key),
        passphrase,
    })
}

/// The primary key's fingerprint.
fn pgp_fingerprint(key: &pgp::composed::SignedSecretKey) -> pgp::types::Fingerprint {
    use pgp::types::KeyDetails;
    key.primary_key.fingerprint()
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// A detached OpenPGP signature of `payload`, by the newest subkey marked for signing, else
/// the primary key (as gpg chooses).
fn pgp_sign(
    key: &pgp::composed::SignedSecretKey,
    passphrase: Option<&Secret>,
    payload: &[u8],
) -> Result<String, String> {
    use pgp::composed::{ArmorOptions, DetachedSignature};
    use pgp::types::{Password, PublicKeyTrait, SecretKeyTrait};
    let password = passphrase
        .map(|p| Password::from(p.expose()))
        .unwrap_or_else(Password::empty);
    let signing_subkey = key
        .secret_subkeys
        .iter()
        .filter(|sk| sk.signatures.iter().any(|s| s.key_flags().sign()))
        .max_by_key(|sk| *sk.key.public_key().created_at());
    let signed = match signing_subkey {
        Some(sk) => DetachedSignature::sign_binary_data(
            rand::rngs::OsRng,
            &sk.key,
            &password,
            sk.key.hash_alg(),
            payload,
        ),
        None => DetachedSignature::sign_binary_data(
            rand::rngs::OsRng,
            &key.primary_key,
            &password,
            key.primary_key.hash_alg(),
            payload,
        ),
    };
    let sig = signed.map_err(|e| {
        if passphrase.is_none() {
            format!("OpenPGP signing failed: {e} (is the key encrypted? set {PASSPHRASE_VAR})")
        } else {
            format!("OpenPGP signing failed: {e} (wrong {PASSPHRASE_VAR}?)")
        }
    })?;
    sig.to_armored_string(ArmorOptions::default())
        .map_err(|e| format!("OpenPGP signing failed: {e}"))
}

// --- The SSH agent (draft-miller-ssh-agent): list identities, sign a request. ---

const SSH_AGENT_FAILURE: u8 = 5;
const SSH_AGENTC_REQUEST_IDENTITIES: u8 = 11;
const SSH_AGENT_IDENTITIES_ANSWER: u8 = 12;
const SSH_AGENTC_SIGN_REQUEST: u8 = 13;
const SSH_AGENT_SIGN_RESPONSE: u8 = 14;
/// Ask an RSA key for `rsa-sha2-512` (what `ssh-keygen -Y sign` uses), not SHA-1.
const SSH_AGENT_RSA_SHA2_512: u32 = 4;

/// The agent's key to sign with: the one `IMAGE_UPDATER_SIGNING_PUBLIC_KEY` names, or the
/// agent's only key.
fn agent_signer(env: &Env) -> Result<Kind, String> {
    let Some(socket) = env.get("SSH_AUTH_SOCK") else {
        return Err(format!(
            "delivery.commit.sign is ssh but neither {KEY_VAR} nor an SSH agent (SSH_AUTH_SOCK) is there"
        ));
    };
    let keys = agent_identities(socket)?;
    let public = match env.get(PUBLIC_KEY_VAR) {
        Some(value) => {
            let text = key_text(PUBLIC_KEY_VAR, value)?;
            let wanted = ssh_key::PublicKey::from_openssh(text.trim()).map_err(|e| {
                format!("{PUBLIC_KEY_VAR}: not an OpenSSH public key (TYPE BASE64 [COMMENT]): {e}")
            })?;
            keys.into_iter()
                .find(|k| k.key_data() == wanted.key_data())
                .ok_or_else(|| {
                    format!(
                        "the SSH agent does not hold the key {PUBLIC_KEY_VAR} names ({}): ssh-add it",
                        wanted.fingerprint(Default::default())
                    )
                })?
        }
        None => match keys.len() {
            1 => keys.into_iter().next().expect("one key"),
            0 => {
                return Err(
                    "the SSH agent holds no key: ssh-add one, or set IMAGE_UPDATER_SIGNING_KEY"
                        .into(),
                )
            }
            n => {
                return Err(format!(
                "the SSH agent holds {n} keys: set {PUBLIC_KEY_VAR} to the public key to sign with"
            ))
            }
        },
    };
    Ok(Kind::SshAgent {
        socket: socket.to_string(),
        public,
    })
}

/// One request to the agent and its answer (type byte and body).
fn agent_call(socket: &str, request: &[u8]) -> Result<(u8, Vec<u8>), String> {
    #[cfg(unix)]
    {
        let fail = |e: std::io::Error| format!("SSH agent at {socket}: {e}");
        let mut s = std::os::unix::net::UnixStream::connect(socket).map_err(fail)?;
        s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .map_err(fail)?;
        let mut msg = (request.len() as u32).to_be_bytes().to_vec();
        msg.extend_from_slice(request);
        s.write_all(&msg).map_err(fail)?;
        let mut len = [0u8; 4];
        s.read_exact(&mut len).map_err(fail)?;
        let len = u32::from_be_bytes(len) as usize;
        if len == 0 || len > 256 * 1024 {
            return Err(format!("SSH agent at {socket}: answer of {len} bytes"));
        }
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).map_err(fail)?;
        let kind = body.remove(0);
        Ok((kind, body))
    }
    #[cfg(not(unix))]
    {
        let _ = request;
        Err(format!(
            "SSH agent at {socket}: agents are reached over Unix sockets only"
        ))
    }
}

fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

/// Read an SSH `string` off the front of `buf`.
fn take_string<'a>(buf: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = u32::from_be_bytes(buf.get(..4)?.try_into().ok()?) as usize;
    let s = buf.get(4..4 + len)?;
    *buf = &buf[4 + len..];
    Some(s)
}

fn agent_identities(socket: &str) -> Result<Vec<ssh_key::PublicKey>, String> {
    let (kind, body) = agent_call(socket, &[SSH_AGENTC_REQUEST_IDENTITIES])?;
    if kind != SSH_AGENT_IDENTITIES_ANSWER {
        return Err(format!(
            "SSH agent at {socket}: listing keys was refused (answer {kind})"
        ));
    }
    let bad = || format!("SSH agent at {socket}: a malformed list of keys");
    let mut rest = body.as_slice();
    let count = u32::from_be_bytes(
        rest.get(..4)
            .ok_or_else(bad)?
            .try_into()
            .map_err(|_| bad())?,
    );
    rest = &rest[4..];
    let mut keys = Vec::new();
    for _ in 0..count {
        let blob = take_string(&mut rest).ok_or_else(bad)?;
        take_string(&mut rest).ok_or_else(bad)?; // comment
                                                 // Keys this cannot use (certificates, security keys of unknown kinds) are passed over.
        if let Ok(key) = ssh_key::PublicKey::from_bytes(blob) {
            keys.push(key);
        }
    }
    Ok(keys)
}

/// An SSHSIG of `payload` whose signature the agent makes.
fn agent_sign(socket: &str, public: &ssh_key::PublicKey, payload: &[u8]) -> Result<String, String> {
    let hash = ssh_key::HashAlg::Sha512;
    let data = ssh_key::SshSig::signed_data(GIT_NAMESPACE, hash, payload)
        .map_err(|e| format!("SSH signing failed: {e}"))?;
    let blob = public
        .to_bytes()
        .map_err(|e| format!("SSH signing failed: {e}"))?;
    let flags = match public.algorithm() {
        ssh_key::Algorithm::Rsa { .. } => SSH_AGENT_RSA_SHA2_512,
        _ => 0,
    };
    let mut req = vec![SSH_AGENTC_SIGN_REQUEST];
    put_string(&mut req, &blob);
    put_string(&mut req, &data);
    req.extend_from_slice(&flags.to_be_bytes());
    let (kind, body) = agent_call(socket, &req)?;
    match kind {
        SSH_AGENT_SIGN_RESPONSE => {}
        SSH_AGENT_FAILURE => {
            return Err(format!(
                "the SSH agent at {socket} refused to sign with {}",
                public.fingerprint(Default::default())
            ))
        }
        k => return Err(format!("SSH agent at {socket}: unexpected answer {k}")),
    }
    let mut rest = body.as_slice();
    let sig = take_string(&mut rest)
        .ok_or_else(|| format!("SSH agent at {socket}: a malformed signature"))?;
    let sig = ssh_key::Signature::try_from(sig)
        .map_err(|e| format!("SSH agent at {socket}: a malformed signature: {e}"))?;
    ssh_key::SshSig::new(public.key_data().clone(), GIT_NAMESPACE, hash, sig)
        .and_then(|s| s.to_pem(ssh_key::LineEnding::LF))
        .map_err(|e| format!("SSH signing failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh Ed25519 key in OpenSSH armour.
    fn ed25519() -> String {
        let key = ssh_key::PrivateKey::random(&mut rand::rngs::OsRng, ssh_key::Algorithm::Ed25519)
            .unwrap();
        key.to_openssh(ssh_key::LineEnding::LF).unwrap().to_string()
    }

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn no_key_and_auto_or_none_signs_nothing() {
        let key = ed25519();
        assert!(Signer::from_env(Sign::Auto, &env(&[])).unwrap().is_none());
        assert!(
            Signer::from_env(Sign::None, &env(&[(KEY_VAR, key.as_str())]))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn auto_tells_ssh_from_the_armour_and_signs_an_sshsig() {
        let key = ed25519();
        let s = Signer::from_env(Sign::Auto, &env(&[(KEY_VAR, key.as_str())]))
            .unwrap()
            .unwrap();
        let sig = s.sign(b"tree 0\n\nmsg\n").unwrap();
        assert!(sig.starts_with("-----BEGIN SSH SIGNATURE-----\n"), "{sig}");
        assert!(sig.ends_with("-----END SSH SIGNATURE-----"), "{sig}");
        let parsed: ssh_key::SshSig = sig.parse().unwrap();
        assert_eq!(parsed.namespace(), "git");
        let public = ssh_key::PrivateKey::from_openssh(&key).unwrap();
        public
            .public_key()
            .verify("git", b"tree 0\n\nmsg\n", &parsed)
            .unwrap();
        assert!(public
            .public_key()
            .verify("git", b"tree 1\n\nmsg\n", &parsed)
            .is_err());
    }

    #[test]
    fn openpgp_asked_for_an_ssh_key_is_an_error() {
        let key = ed25519();
        let e = Signer::from_env(Sign::Openpgp, &env(&[(KEY_VAR, key.as_str())])).unwrap_err();
        assert!(e.contains("holds an ssh key"), "{e}");
        let e = Signer::from_env(Sign::Openpgp, &env(&[])).unwrap_err();
        assert!(e.contains(KEY_VAR), "{e}");
    }

    #[test]
    fn a_path_is_read_and_garbage_is_refused_without_quoting_it() {
        let key = ed25519();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key");
        std::fs::write(&p, &key).unwrap();
        assert!(
            Signer::from_env(Sign::Ssh, &env(&[(KEY_VAR, p.to_str().unwrap())]))
                .unwrap()
                .is_some()
        );
        let e = Signer::from_env(Sign::Auto, &env(&[(KEY_VAR, "s3cr3t\nmore")])).unwrap_err();
        assert!(!e.contains("s3cr3t"), "{e}");
        let missing = dir.path().join("nope");
        let e = Signer::from_env(Sign::Auto, &env(&[(KEY_VAR, missing.to_str().unwrap())]))
            .unwrap_err();
        assert!(e.contains("reading"), "{e}");
    }

    #[test]
    fn ssh_without_key_or_agent_says_what_to_set() {
        let e = Signer::from_env(Sign::Ssh, &env(&[])).unwrap_err();
        assert!(e.contains("SSH_AUTH_SOCK"), "{e}");
    }
}
