//! The CNCF distribution registry (`docker-registry serve CONFIG`, distribution 2.8) on a free
//! port with its storage in a temp dir, and a tiny OCI image pusher speaking the distribution
//! HTTP API directly.

use super::http::{try_http_request, HttpResponse};
use super::{require_program, wait_until_for};
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A running registry; killed (and its storage removed) on drop.
pub struct Registry {
    /// "127.0.0.1:PORT".
    pub addr: String,
    credentials: Option<(String, String)>,
    child: Child,
    log_path: PathBuf,
    // Dropped after `child` is killed (see `Drop`).
    dir: tempfile::TempDir,
}

impl Registry {
    /// Push one image under `tag` whose config says it was built at `created` (RFC 3339).
    pub fn push_built(&self, repo: &str, tag: &str, created: &str) {
        let layer = format!("layer of {repo}:{tag}");
        let layer_digest = self.upload_blob(repo, layer.as_bytes());
        let config = format!(
            r#"{{"created":"{created}","architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{layer_digest}"]}}}}"#
        );
        let config_digest = self.upload_blob(repo, config.as_bytes());
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer_digest}","size":{}}}]}}"#,
            config.len(),
            layer.len()
        );
        self.put_manifest(
            repo,
            tag,
            "application/vnd.oci.image.manifest.v1+json",
            &manifest,
        );
    }

    /// Push one image under `tag` whose config carries `labels` (`config.Labels`) and whose
    /// manifest carries `annotations`, as `docker build --label` and `buildx --annotation`
    /// write them; returns the config blob's digest.
    pub fn push_labelled(
        &self,
        repo: &str,
        tag: &str,
        labels: &[(&str, &str)],
        annotations: &[(&str, &str)],
    ) -> String {
        let object = |pairs: &[(&str, &str)]| {
            let fields: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("{}:{}", json_string(k), json_string(v)))
                .collect();
            format!("{{{}}}", fields.join(","))
        };
        let layer = format!("layer of {repo}:{tag}");
        let layer_digest = self.upload_blob(repo, layer.as_bytes());
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","config":{{"Labels":{}}},"rootfs":{{"type":"layers","diff_ids":["{layer_digest}"]}}}}"#,
            object(labels)
        );
        let config_digest = self.upload_blob(repo, config.as_bytes());
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"{OCI_CONFIG}","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"{OCI_LAYER_TAR}","digest":"{layer_digest}","size":{}}}],"annotations":{}}}"#,
            config.len(),
            layer.len(),
            object(annotations)
        );
        self.put_manifest(repo, tag, OCI_MANIFEST, &manifest);
        config_digest
    }

    /// An anonymous registry.
    pub fn start() -> Registry {
        Self::start_inner(None)
    }

    /// A registry that requires HTTP Basic auth for `user`/`password` (bcrypt htpasswd file).
    pub fn start_with_basic_auth(user: &str, password: &str) -> Registry {
        Self::start_inner(Some((user.to_string(), password.to_string())))
    }

    fn start_inner(credentials: Option<(String, String)>) -> Registry {
        let program = require_program("docker-registry", "apt-get install docker-registry");
        let dir = tempfile::Builder::new()
            .prefix("registry-")
            .tempdir()
            .expect("create registry temp dir");
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage).expect("create registry storage dir");

        let auth = match &credentials {
            None => String::new(),
            Some((user, password)) => {
                let htpasswd = require_program("htpasswd", "apt-get install apache2-utils");
                let file = dir.path().join("htpasswd");
                let out = Command::new(htpasswd)
                    .arg("-Bbc")
                    .arg(&file)
                    .arg(user)
                    .arg(password)
                    .output()
                    .expect("run htpasswd");
                assert!(
                    out.status.success(),
                    "htpasswd -Bbc failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                format!(
                    "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                    file.display()
                )
            }
        };

        let (addr, child, log_path) = launch(&program, dir.path(), &storage, &auth, None);
        Registry {
            addr,
            credentials,
            child,
            log_path,
            dir,
        }
    }

    /// Stop the registry and start it again on the same storage, on a new port, with
    /// `auth_yaml` (a top-level `auth:` block, or empty for none) and, with `tls`
    /// (certificate and key PEM files), serving HTTPS. Push first: [`Registry::request`]
    /// speaks plain HTTP with Basic credentials only.
    pub fn restart_with(&mut self, auth_yaml: &str, tls: Option<(&Path, &Path)>) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let program = require_program("docker-registry", "apt-get install docker-registry");
        let storage = self.storage_dir();
        let (addr, child, log_path) = launch(&program, self.dir.path(), &storage, auth_yaml, tls);
        self.addr = addr;
        self.child = child;
        self.log_path = log_path;
        self.credentials = None;
    }

    /// The registry's log so far (stdout and stderr), for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_else(|e| format!("<no log: {e}>"))
    }

    /// The Basic credentials the registry requires, if any.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.credentials
            .as_ref()
            .map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// Where the registry stores blobs and repositories (`docker/registry/v2/...` below it).
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// Push a tiny OCI image under each tag: one small layer (a real tar holding one file), a
    /// config blob distinct per tag (so each tag gets a distinct manifest digest) and an OCI
    /// image manifest at `/v2/<repo>/manifests/<tag>`. Uses the Basic credentials if the
    /// registry has them. Returns the manifest digest ("sha256:...") per tag.
    pub fn push_image(&self, repo: &str, tags: &[&str]) -> Vec<String> {
        self.push_image_salted(repo, tags, "")
    }

    /// [`Registry::push_image`] with `salt` mixed into each config, so pushing the same tag
    /// again with another salt moves the tag to a new digest.
    pub fn push_image_salted(&self, repo: &str, tags: &[&str], salt: &str) -> Vec<String> {
        let layer = tiny_tar("hello.txt", format!("hello from {repo}\n").as_bytes());
        let layer_digest = sha256_digest(&layer);
        self.upload_blob(repo, &layer);

        tags.iter()
            .map(|tag| {
                let config = format!(
                    r#"{{"architecture":"amd64","os":"linux","config":{{"Labels":{{"org.opencontainers.image.version":{tag},"test.salt":{salt}}}}},"rootfs":{{"type":"layers","diff_ids":["{layer_digest}"]}}}}"#,
                    tag = json_string(tag),
                    salt = json_string(salt),
                );
                let config_digest = sha256_digest(config.as_bytes());
                self.upload_blob(repo, config.as_bytes());

                let manifest = format!(
                    r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"{OCI_CONFIG}","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"{OCI_LAYER_TAR}","digest":"{layer_digest}","size":{}}}]}}"#,
                    config.len(),
                    layer.len(),
                );
                let digest = sha256_digest(manifest.as_bytes());
                let path = format!("/v2/{repo}/manifests/{tag}");
                let response = self.request(
                    "PUT",
                    &path,
                    &[("Content-Type", OCI_MANIFEST)],
                    manifest.as_bytes(),
                );
                self.expect_status(&response, 201, "PUT", &path);
                if let Some(answered) = response.header("Docker-Content-Digest") {
                    assert_eq!(
                        answered, digest,
                        "registry computed another manifest digest for {repo}:{tag}"
                    );
                }
                digest
            })
            .collect()
    }

    /// Push a multi-platform image under `tag`: per platform (`os/arch[/variant]`) an OCI
    /// image manifest whose config names that platform, then an OCI index of them with their
    /// platforms and an attestation entry (`unknown/unknown`, as buildx adds). Returns the
    /// index digest and the image manifest digests.
    pub fn push_index(&self, repo: &str, tag: &str, platforms: &[&str]) -> (String, Vec<String>) {
        self.push_multi(repo, tag, platforms, false)
    }

    /// [`Registry::push_index`] with Docker's media types: a manifest list of schema 2
    /// manifests (no attestation entry).
    pub fn push_docker_list(
        &self,
        repo: &str,
        tag: &str,
        platforms: &[&str],
    ) -> (String, Vec<String>) {
        self.push_multi(repo, tag, platforms, true)
    }

    fn push_multi(
        &self,
        repo: &str,
        tag: &str,
        platforms: &[&str],
        docker: bool,
    ) -> (String, Vec<String>) {
        let (manifest_type, config_type, layer_type, index_type) = if docker {
            (
                "application/vnd.docker.distribution.manifest.v2+json",
                "application/vnd.docker.container.image.v1+json",
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "application/vnd.docker.distribution.manifest.list.v2+json",
            )
        } else {
            (OCI_MANIFEST, OCI_CONFIG, OCI_LAYER_TAR, OCI_INDEX)
        };
        let layer = tiny_tar("hello.txt", format!("hello from {repo}:{tag}\n").as_bytes());
        let layer_digest = self.upload_blob(repo, &layer);
        let mut entries = Vec::new();
        let mut digests = Vec::new();
        for platform in platforms {
            let mut parts = platform.split('/');
            let (os, arch) = (parts.next().unwrap(), parts.next().unwrap());
            let variant = parts
                .next()
                .map(|v| format!(r#","variant":{}"#, json_string(v)))
                .unwrap_or_default();
            let config = format!(
                r#"{{"architecture":{},"os":{}{variant},"config":{{"Labels":{{"tag":{}}}}},"rootfs":{{"type":"layers","diff_ids":["{layer_digest}"]}}}}"#,
                json_string(arch),
                json_string(os),
                json_string(tag),
            );
            let config_digest = self.upload_blob(repo, config.as_bytes());
            let manifest = format!(
                r#"{{"schemaVersion":2,"mediaType":"{manifest_type}","config":{{"mediaType":"{config_type}","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"{layer_type}","digest":"{layer_digest}","size":{}}}]}}"#,
                config.len(),
                layer.len()
            );
            let digest = self.put_manifest(
                repo,
                &sha256_digest(manifest.as_bytes()),
                manifest_type,
                &manifest,
            );
            entries.push(format!(
                r#"{{"mediaType":"{manifest_type}","digest":"{digest}","size":{},"platform":{{"architecture":{},"os":{}{variant}}}}}"#,
                manifest.len(),
                json_string(arch),
                json_string(os),
            ));
            digests.push(digest);
        }
        if !docker {
            // An attestation manifest, as buildx attaches: not a platform.
            let config = r#"{"architecture":"unknown","os":"unknown","rootfs":{"type":"layers","diff_ids":[]}}"#;
            let config_digest = self.upload_blob(repo, config.as_bytes());
            let manifest = format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"{OCI_CONFIG}","digest":"{config_digest}","size":{}}},"layers":[]}}"#,
                config.len()
            );
            let digest = self.put_manifest(
                repo,
                &sha256_digest(manifest.as_bytes()),
                OCI_MANIFEST,
                &manifest,
            );
            entries.push(format!(
                r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{digest}","size":{},"platform":{{"architecture":"unknown","os":"unknown"}},"annotations":{{"vnd.docker.reference.type":"attestation-manifest"}}}}"#,
                manifest.len()
            ));
        }
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"{index_type}","manifests":[{}]}}"#,
            entries.join(",")
        );
        let digest = self.put_manifest(repo, tag, index_type, &index);
        (digest, digests)
    }

    /// PUT a manifest under `reference` (a tag or its digest); returns its digest.
    pub fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &str,
    ) -> String {
        let path = format!("/v2/{repo}/manifests/{reference}");
        let response = self.request(
            "PUT",
            &path,
            &[("Content-Type", media_type)],
            body.as_bytes(),
        );
        self.expect_status(&response, 201, "PUT", &path);
        let digest = sha256_digest(body.as_bytes());
        if let Some(answered) = response.header("Docker-Content-Digest") {
            assert_eq!(
                answered, digest,
                "registry computed another digest for {repo}:{reference}"
            );
        }
        digest
    }

    /// Upload one blob (monolithic: POST to start, PUT with `digest=`); returns its digest.
    pub fn upload_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = sha256_digest(bytes);
        let start = format!("/v2/{repo}/blobs/uploads/");
        let response = self.request("POST", &start, &[], &[]);
        self.expect_status(&response, 202, "POST", &start);
        let location = response
            .header("Location")
            .unwrap_or_else(|| panic!("POST {start}: 202 without a Location header"));
        let mut target = location_path(location);
        target.push(if target.contains('?') { '&' } else { '?' });
        target.push_str("digest=");
        target.push_str(&digest);
        let response = self.request(
            "PUT",
            &target,
            &[("Content-Type", "application/octet-stream")],
            bytes,
        );
        self.expect_status(&response, 201, "PUT", &target);
        digest
    }

    /// One request to the registry, with the Basic credentials if it has them.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> HttpResponse {
        let auth = self.credentials.as_ref().map(|(user, password)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            )
        });
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        if let Some(auth) = &auth {
            all.push(("Authorization", auth));
        }
        try_http_request(&self.addr, method, path, &all, body).unwrap_or_else(|e| {
            panic!(
                "{method} http://{}{path} failed: {e}\nregistry log:\n{}",
                self.addr,
                self.log()
            )
        })
    }

    fn expect_status(&self, response: &HttpResponse, want: u16, method: &str, path: &str) {
        assert_eq!(
            response.status,
            want,
            "{method} http://{}{path} answered {} {}\nregistry log:\n{}",
            self.addr,
            response.status,
            response.text(),
            self.log()
        );
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `docker-registry serve` on a free port (retrying if the port is taken meanwhile).
fn launch(
    program: &Path,
    dir: &Path,
    storage: &Path,
    auth: &str,
    tls: Option<(&Path, &Path)>,
) -> (String, Child, PathBuf) {
    let tls_yaml = match tls {
        None => String::new(),
        Some((cert, key)) => format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            cert.display(),
            key.display()
        ),
    };
    let mut last_failure = String::new();
    for _ in 0..5 {
        let port = super::free_port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{tls_yaml}{auth}",
                storage.display()
            ),
        )
        .expect("write registry config");
        let log_path = dir.join(format!("registry-{port}.log"));
        let log = File::create(&log_path).expect("create registry log");
        let mut child = Command::new(program)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
        match wait_ready(&mut child, &addr, &log_path, tls.is_some()) {
            Ok(()) => return (addr, child, log_path),
            Err(failure) => {
                let _ = child.kill();
                let _ = child.wait();
                last_failure = failure;
            }
        }
    }
    panic!("docker-registry did not start: {last_failure}");
}

/// Poll `GET /v2/` until it answers 200 or 401 (or, over TLS, 400: the answer to plain HTTP);
/// an error (with the log) if the process exits first, e.g. because another process took
/// the port.
fn wait_ready(child: &mut Child, addr: &str, log_path: &Path, tls: bool) -> Result<(), String> {
    let mut exited = None;
    wait_until_for(
        &format!("docker-registry to answer GET http://{addr}/v2/ with 200 or 401"),
        Duration::from_secs(30),
        || {
            if let Ok(Some(status)) = child.try_wait() {
                exited = Some(status);
                return true;
            }
            try_http_request(addr, "GET", "/v2/", &[], &[])
                .is_ok_and(|r| r.status == 200 || r.status == 401 || (tls && r.status == 400))
        },
    );
    match exited {
        None => Ok(()),
        Some(status) => Err(format!(
            "docker-registry exited with {status}; log:\n{}",
            std::fs::read_to_string(log_path).unwrap_or_default()
        )),
    }
}

/// The path-and-query of a Location header: distribution answers with an absolute URL
/// (`http://HOST/v2/...?_state=...`), other registries with a path.
fn location_path(location: &str) -> String {
    match location.split_once("://") {
        Some((_, rest)) => match rest.find('/') {
            Some(slash) => rest[slash..].to_string(),
            None => "/".to_string(),
        },
        None => location.to_string(),
    }
}

/// "sha256:<hex>" of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut out = String::from("sha256:");
    for byte in hash {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A ustar archive holding one regular file.
fn tiny_tar(name: &str, contents: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    let mut put =
        |offset: usize, field: &[u8]| header[offset..offset + field.len()].copy_from_slice(field);
    put(0, name.as_bytes());
    put(100, b"0000644\0");
    put(108, b"0000000\0");
    put(116, b"0000000\0");
    put(124, format!("{:011o}\0", contents.len()).as_bytes());
    put(136, b"00000000000\0");
    put(148, b"        ");
    put(156, b"0");
    put(257, b"ustar\0");
    put(263, b"00");
    let checksum: u32 = header.iter().map(|b| u32::from(*b)).sum();
    header[148..156].copy_from_slice(format!("{checksum:06o}\0 ").as_bytes());

    let mut tar = header.to_vec();
    tar.extend_from_slice(contents);
    tar.resize(tar.len().div_ceil(512) * 512 + 1024, 0);
    tar
}
