//! SSH host key checking against a `known_hosts` file: the key a server presents must be
//! listed for that host (and port), or the connection is refused. Unknown hosts are refused
//! unless `IMAGE_UPDATER_SSH_INSECURE_ACCEPT_HOST=1` says otherwise (for throwaway setups).
//!
//! The file is `IMAGE_UPDATER_SSH_KNOWN_HOSTS`, else `~/.ssh/known_hosts`. Entries are
//! `host[,host...] keytype base64key`, with `[host]:port` for ports other than 22; a leading
//! `@cert-authority` or `@revoked` marker and hashed host names (`|1|...`) are not supported and
//! such lines are passed over.

use base64::Engine as _;

use crate::env::Env;

/// The outcome of looking a presented key up.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Listed for this host.
    Known,
    /// The host is listed, with other keys: possibly an impostor.
    Mismatch,
    /// The host is not listed at all.
    Unknown,
}

/// Where the known hosts are read from, by `env`.
pub fn known_hosts_path(env: &Env) -> Option<std::path::PathBuf> {
    env.raw("IMAGE_UPDATER_SSH_KNOWN_HOSTS")
        .map(Into::into)
        .or_else(|| {
            env.raw("HOME")
                .map(|h| std::path::Path::new(h).join(".ssh/known_hosts"))
        })
}

/// Whether `env` says to accept hosts missing from known_hosts
/// (`IMAGE_UPDATER_SSH_INSECURE_ACCEPT_HOST=1`).
pub fn accepts_unknown_hosts(env: &Env) -> bool {
    env.raw("IMAGE_UPDATER_SSH_INSECURE_ACCEPT_HOST") == Some("1")
}

/// Look `key` (the SSH wire-format public key blob) up for `host` and `port` in `text`.
pub fn check(text: &str, host: &str, port: u16, key: &[u8]) -> Verdict {
    let wanted = if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    };
    let mut listed = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('@') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(hosts), Some(_kind), Some(b64)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if !hosts.split(',').any(|h| h.eq_ignore_ascii_case(&wanted)) {
            continue;
        }
        listed = true;
        if base64::engine::general_purpose::STANDARD
            .decode(b64)
            .is_ok_and(|k| k == key)
        {
            return Verdict::Known;
        }
    }
    if listed {
        Verdict::Mismatch
    } else {
        Verdict::Unknown
    }
}

/// Host and port of an SSH remote URL (`ssh://user@host:port/path` or `user@host:path`).
pub fn ssh_host_port(url: &str) -> Option<(String, u16)> {
    if let Some(rest) = url.strip_prefix("ssh://") {
        let authority = rest.split('/').next()?;
        let hostport = authority.rsplit('@').next()?;
        if let Some(h) = hostport.strip_prefix('[') {
            let (host, after) = h.split_once(']')?;
            let port = after
                .strip_prefix(':')
                .map_or(Some(22), |p| p.parse().ok())?;
            return Some((host.to_string(), port));
        }
        return Some(match hostport.split_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().ok()?),
            None => (hostport.to_string(), 22),
        });
    }
    if url.contains("://") {
        return None;
    }
    // scp-like: user@host:path
    let (before, _) = url.split_once(':')?;
    Some((before.rsplit('@').next()?.to_string(), 22))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hosts_and_insecure_flag_come_from_the_env_snapshot() {
        let named = Env::from_pairs([("IMAGE_UPDATER_SSH_KNOWN_HOSTS", "/k"), ("HOME", "/h")]);
        assert_eq!(known_hosts_path(&named), Some("/k".into()));
        let home = Env::from_pairs([("HOME", "/h")]);
        assert_eq!(known_hosts_path(&home), Some("/h/.ssh/known_hosts".into()));
        assert_eq!(known_hosts_path(&Env::default()), None);
        assert!(!accepts_unknown_hosts(&home));
        let insecure = Env::from_pairs([("IMAGE_UPDATER_SSH_INSECURE_ACCEPT_HOST", "1")]);
        assert!(accepts_unknown_hosts(&insecure));
        let other = Env::from_pairs([("IMAGE_UPDATER_SSH_INSECURE_ACCEPT_HOST", "true")]);
        assert!(!accepts_unknown_hosts(&other));
    }

    #[test]
    fn known_mismatch_unknown() {
        let key = b"\x00\x00\x00\x0bssh-ed25519KEYBYTES";
        let b64 = base64::engine::general_purpose::STANDARD.encode(key);
        let text = format!(
            "# comment\n[127.0.0.1]:2222 ssh-ed25519 {b64}\nexample.com,other ssh-ed25519 AAAA\n"
        );
        assert_eq!(check(&text, "127.0.0.1", 2222, key), Verdict::Known);
        assert_eq!(check(&text, "127.0.0.1", 22, key), Verdict::Unknown);
        assert_eq!(check(&text, "example.com", 22, key), Verdict::Mismatch);
        assert_eq!(check(&text, "OTHER", 22, key), Verdict::Mismatch);
    }

    #[test]
    fn hosts_and_ports_of_urls() {
        assert_eq!(
            ssh_host_port("ssh://git@h.example:2222/r.git"),
            Some(("h.example".into(), 2222))
        );
        assert_eq!(
            ssh_host_port("ssh://h.example/r.git"),
            Some(("h.example".into(), 22))
        );
        assert_eq!(
            ssh_host_port("git@github.com:acme/infra.git"),
            Some(("github.com".into(), 22))
        );
        assert_eq!(
            ssh_host_port("ssh://root@[::1]:22/x"),
            Some(("::1".into(), 22))
        );
        assert_eq!(ssh_host_port("https://x/y"), None);
    }
}
