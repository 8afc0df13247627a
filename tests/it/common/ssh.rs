//! git over SSH: Debian's OpenSSH server (`sshd`) on 127.0.0.1 and a free port, with a host
//! key and a client key generated for the test, the client key authorised, and a known_hosts
//! file naming the server's host key. Repositories are addressed by absolute path:
//! `ssh://USER@127.0.0.1:PORT/abs/path/repo.git`.

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, require_program, wait_until_for};

pub struct SshServer {
    pub port: u16,
    /// The authorised client's private key.
    pub client_key: PathBuf,
    /// A known_hosts file holding the server's host key for `[127.0.0.1]:PORT`.
    pub known_hosts: PathBuf,
    /// The user to log in as (the one running the tests).
    pub user: String,
    dir: tempfile::TempDir,
    child: Child,
}

fn keygen(path: &Path) {
    let status = Command::new(require_program(
        "ssh-keygen",
        "apt-get install openssh-client",
    ))
    .args(["-q", "-t", "ed25519", "-N", "", "-f"])
    .arg(path)
    .status()
    .expect("run ssh-keygen");
    assert!(status.success(), "ssh-keygen failed");
}

fn sshd_path() -> PathBuf {
    let sbin = PathBuf::from("/usr/sbin/sshd");
    if sbin.exists() {
        return sbin;
    }
    require_program("sshd", "apt-get install openssh-server")
}

impl SshServer {
    pub fn start() -> SshServer {
        let sshd = sshd_path();
        let dir = tempfile::tempdir().expect("temp dir");
        let host_key = dir.path().join("host_key");
        let client_key = dir.path().join("client_key");
        keygen(&host_key);
        keygen(&client_key);
        let authorized = dir.path().join("authorized_keys");
        std::fs::copy(client_key.with_extension("pub"), &authorized).unwrap();
        // sshd wants its privilege-separation directory.
        std::fs::create_dir_all("/run/sshd").expect("create /run/sshd (run the tests as root)");
        let user = std::env::var("USER")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "root".into());
        for _ in 0..5 {
            let port = free_port();
            let config = dir.path().join("sshd_config");
            std::fs::write(
                &config,
                format!(
                    "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nPidFile {}\n",
                    host_key.display(),
                    authorized.display(),
                    dir.path().join("sshd.pid").display()
                ),
            )
            .unwrap();
            let log = dir.path().join("sshd.log");
            let mut child = Command::new(&sshd)
                .arg("-D")
                .arg("-f")
                .arg(&config)
                .arg("-E")
                .arg(&log)
                .stdin(Stdio::null())
                .spawn()
                .expect("start sshd");
            let mut up = false;
            wait_until_for("sshd to answer", Duration::from_secs(20), || {
                if let Ok(Some(_)) = child.try_wait() {
                    return true;
                }
                if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut banner = [0u8; 8];
                    up = s.read_exact(&mut banner).is_ok() && banner.starts_with(b"SSH-2.0");
                    return up;
                }
                false
            });
            if !up {
                let _ = child.kill();
                let _ = child.wait();
                continue;
            }
            let host_pub = std::fs::read_to_string(host_key.with_extension("pub")).unwrap();
            let mut parts = host_pub.split_whitespace();
            let (kind, key) = (parts.next().unwrap(), parts.next().unwrap());
            let known_hosts = dir.path().join("known_hosts");
            std::fs::write(&known_hosts, format!("[127.0.0.1]:{port} {kind} {key}\n")).unwrap();
            return SshServer {
                port,
                client_key,
                known_hosts,
                user,
                dir,
                child,
            };
        }
        panic!("sshd did not start on 5 ports");
    }

    /// The URL of the repository at the absolute path `repo`.
    pub fn url(&self, repo: &Path) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}",
            self.user,
            self.port,
            repo.display()
        )
    }

    /// `GIT_SSH_COMMAND` for the git CLI to use this server's key and known_hosts.
    pub fn git_ssh_command(&self) -> String {
        format!(
            "ssh -i {} -o IdentitiesOnly=yes -o UserKnownHostsFile={} -o StrictHostKeyChecking=yes",
            self.client_key.display(),
            self.known_hosts.display()
        )
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
