//! Bounded reads and paths that stay in the repository (issue 14, items 4 and 5), through the
//! built binary.
//!
//! Every file a run reads besides manifests (the config, `registries[].ca_file`, an OCI
//! layout's `oci-layout`, `index.json` and blobs) is read only when it is a regular file under
//! a cap: a FIFO ends the run promptly with an error naming it, `/dev/zero` or a huge sparse
//! file is an error with bounded memory. The repository's own config may only name `ca_file`
//! and `oci-layout:` paths inside the repository (absolute paths, `..` and symlinks out are
//! exit 2 at the key's line and column); a config given with `--config` from outside may name
//! any path. A descriptor digest that is not a digest never becomes a path under `blobs/`.
//!
//! Every child runs under a 4 GiB address-space limit and is killed after [`HANG`]: a hang
//! or an unbounded read fails the test instead of stopping CI.

use crate::common;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{write_oci_layout, Registry, TestCa};

const BIN: &str = env!("CARGO_BIN_EXE_image-updater");

/// A run that takes longer than this hangs (the runs here take well under a second).
const HANG: Duration = Duration::from_secs(60);

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      containers:
        - name: web
          image: ghcr.io/acme/web:1.0.0
";

/// `ghcr.io` served from the layout tree `registry/` of the repo.
const CONFIG: &str = "registries:
  - host: ghcr.io
    api: oci-layout:registry/ghcr.io
images:
  - name: web
    image: ghcr.io/acme/web
    policy: { semver: \"^1.0\" }
";

/// One finished run.
struct Ran {
    code: Option<i32>,
    out: String,
}

/// Run the binary in `cwd` under a 4 GiB address-space limit; kill it and fail after [`HANG`].
fn run(args: &[&str], cwd: &Path) -> Ran {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("ulimit -v 4194304; exec \"$0\" \"$@\"")
        .arg(BIN)
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .env("HOME", cwd)
        .env_remove("IMAGE_UPDATER_CONFIG")
        .env_remove("IMAGE_UPDATER_OUTPUT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().expect("spawn image-updater");
    let readers: Vec<_> = [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ]
    .into_iter()
    .map(|mut r| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = r.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        })
    })
    .collect();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > HANG {
            let _ = child.kill();
            let _ = child.wait();
            panic!("image-updater {args:?} hung: killed after {HANG:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out: Vec<String> = readers.into_iter().map(|t| t.join().unwrap()).collect();
    Ran {
        code: status.code(),
        out: format!("--- stdout\n{}\n--- stderr\n{}", out[0], out[1]),
    }
}

/// `plan --output json` of `repo`, with `more` arguments.
fn plan(repo: &Path, more: &[&str]) -> Ran {
    let mut args = vec!["plan", repo.to_str().unwrap(), "--output", "json"];
    args.extend_from_slice(more);
    run(&args, repo.parent().unwrap())
}

/// A temp dir holding `repo/` (a Deployment of `ghcr.io/acme/web:1.0.0`, `config` as its
/// `.image-updater.yaml` unless empty, and a layout with tags 1.0.0 and 1.2.0 under
/// `registry/ghcr.io`) and `elsewhere/`, a layout tree outside the repo with the same tags.
struct Setup {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    repo: PathBuf,
}

impl Setup {
    fn new(config: &str) -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().canonicalize().unwrap();
        let repo = dir.join("repo");
        std::fs::create_dir_all(repo.join("apps")).unwrap();
        std::fs::write(repo.join("apps/web.yaml"), DEPLOYMENT).unwrap();
        if !config.is_empty() {
            std::fs::write(repo.join(".image-updater.yaml"), config).unwrap();
        }
        write_oci_layout(&repo.join("registry/ghcr.io/acme/web"), &["1.0.0", "1.2.0"]);
        write_oci_layout(&dir.join("elsewhere/ghcr.io/acme/web"), &["1.0.0", "1.2.0"]);
        Setup {
            _tmp: tmp,
            dir,
            repo,
        }
    }

    /// The repo's layout directory for `acme/web`.
    fn layout(&self) -> PathBuf {
        self.repo.join("registry/ghcr.io/acme/web")
    }
}

fn mkfifo(path: &Path) {
    let _ = std::fs::remove_file(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let ok = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(ok.success(), "mkfifo {}", path.display());
}

/// A sparse file of 6 GiB: more than the 4 GiB the child may map, were it read whole.
fn sparse(path: &Path) {
    let _ = std::fs::remove_file(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let f = std::fs::File::create(path).unwrap();
    f.set_len(6 << 30).unwrap();
}

fn assert_failed_with(ran: &Ran, code: i32, needles: &[&str]) {
    assert_eq!(ran.code, Some(code), "{}", ran.out);
    for n in needles {
        assert!(ran.out.contains(n), "no {n:?} in:\n{}", ran.out);
    }
    assert!(!ran.out.contains("panicked"), "{}", ran.out);
}

/// The update 1.0.0 -> 1.2.0 was planned.
fn assert_planned(ran: &Ran) {
    assert_eq!(ran.code, Some(0), "{}", ran.out);
    assert!(
        ran.out.contains("\"to\": \"1.2.0\"") || ran.out.contains("\"to\":\"1.2.0\""),
        "{}",
        ran.out
    );
}

/// A config that writes a FIFO where a run reads would hang it forever on a plain read.
#[test]
fn fifo_as_index_json_ends_the_run_with_an_error_naming_it() {
    let s = Setup::new(CONFIG);
    mkfifo(&s.layout().join("index.json"));
    let ran = plan(&s.repo, &[]);
    assert_failed_with(&ran, 1, &["index.json", "FIFO", "not a regular file"]);
}

#[test]
fn fifo_as_the_oci_layout_marker_is_an_error_naming_it() {
    let s = Setup::new(CONFIG);
    mkfifo(&s.layout().join("oci-layout"));
    let ran = plan(&s.repo, &[]);
    assert_failed_with(&ran, 1, &["oci-layout", "FIFO"]);
}

/// `index.json` naming tag 1.2.0 at `digest` (and 1.0.0 at another digest).
fn index_with(layout: &Path, digest: &str) {
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json",
             "digest": format!("sha256:{:064x}", 1), "size": 2,
             "annotations": {"org.opencontainers.image.ref.name": "1.0.0"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json",
             "digest": digest, "size": 2,
             "annotations": {"org.opencontainers.image.ref.name": "1.2.0"}},
        ]
    });
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
}

/// With `platforms`, a tag's manifest blob is read: a FIFO there is an error, not a hang.
#[test]
fn fifo_as_a_blob_ends_the_run_with_an_error_naming_it() {
    let s = Setup::new(&format!("{CONFIG}    platforms: [linux/amd64]\n"));
    let hex = format!("{:064x}", 2);
    index_with(&s.layout(), &format!("sha256:{hex}"));
    mkfifo(&s.layout().join("blobs/sha256").join(&hex));
    let ran = plan(&s.repo, &[]);
    assert_failed_with(&ran, 1, &[&format!("blobs/sha256/{hex}"), "FIFO"]);
}

/// A digest is checked before it becomes a path under `blobs/`.
#[test]
fn descriptor_digest_with_a_path_in_it_is_refused_naming_index_json() {
    let s = Setup::new(&format!("{CONFIG}    platforms: [linux/amd64]\n"));
    // Something for the traversal to find, were it followed.
    std::fs::create_dir_all(s.repo.join("registry/ghcr.io/etc")).unwrap();
    std::fs::write(s.repo.join("registry/ghcr.io/etc/passwd"), "root:x:0:0\n").unwrap();
    index_with(&s.layout(), "sha256:../../../../etc/passwd");
    let ran = plan(&s.repo, &[]);
    assert_failed_with(
        &ran,
        1,
        &[
            "index.json",
            "tag 1.2.0",
            "is not a digest",
            "64 lowercase hex",
        ],
    );
    assert!(!ran.out.contains("root:x"), "{}", ran.out);
}

#[test]
fn dev_zero_or_a_huge_sparse_file_as_index_json_is_an_error_in_bounded_memory() {
    let s = Setup::new(CONFIG);
    let index = s.layout().join("index.json");
    std::fs::remove_file(&index).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &index).unwrap();
    let ran = plan(&s.repo, &[]);
    assert_failed_with(&ran, 1, &["index.json", "/dev/zero", "not followed"]);

    sparse(&index);
    let ran = plan(&s.repo, &[]);
    assert_failed_with(
        &ran,
        1,
        &[
            "index.json",
            "6442450944 bytes, over the limit of 4194304 bytes",
        ],
    );
}

/// A config naming `ca_file` for a host (nothing listens there: the file is read first).
fn ca_config(ca_file: &str) -> String {
    format!(
        "registries:
  - host: 127.0.0.1:9
    ca_file: {ca_file}
images:
  - name: web
    image: 127.0.0.1:9/acme/web
    policy: {{ semver: \"^1.0\" }}
"
    )
}

fn ca_setup(ca_file: &str) -> Setup {
    let s = Setup::new(&ca_config(ca_file));
    std::fs::write(
        s.repo.join("apps/web.yaml"),
        DEPLOYMENT.replace("ghcr.io/acme/web", "127.0.0.1:9/acme/web"),
    )
    .unwrap();
    s
}

#[test]
fn fifo_as_ca_file_ends_the_run_with_an_error_naming_it() {
    let s = ca_setup("certs/ca.pem");
    mkfifo(&s.repo.join("certs/ca.pem"));
    let ran = plan(&s.repo, &[]);
    assert_failed_with(
        &ran,
        1,
        &["ca_file", "certs/ca.pem", "FIFO", "PEM CA bundle"],
    );
}

#[test]
fn huge_sparse_ca_file_or_dev_zero_is_an_error_in_bounded_memory() {
    let s = ca_setup("certs/ca.pem");
    sparse(&s.repo.join("certs/ca.pem"));
    let ran = plan(&s.repo, &[]);
    assert_failed_with(
        &ran,
        1,
        &["ca_file", "certs/ca.pem", "over the limit of 1048576 bytes"],
    );

    // /dev/zero may only be named from a config outside the repo; it is still not read.
    let outside = s.dir.join("outside.yaml");
    std::fs::write(&outside, ca_config("/dev/zero")).unwrap();
    let ran = plan(&s.repo, &["--config", outside.to_str().unwrap()]);
    assert_failed_with(&ran, 1, &["ca_file /dev/zero", "a character device"]);
}

/// The repo's own config is hostile content: its paths stay in the repo. Each case names the
/// line and column of the offending value.
#[test]
fn repo_config_paths_outside_the_repo_are_refused_at_their_line_and_column() {
    let pem_outside = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    for (ca_or_api, value, why) in [
        ("ca_file", "../outside.pem", "'..' reaches outside"),
        (
            "ca_file",
            "/etc/ssl/certs/ca-certificates.crt",
            "absolute path",
        ),
        ("ca_file", "certs/../../outside.pem", "'..' reaches outside"),
        ("ca_file", ".git/config", ".git"),
        (
            "api",
            "oci-layout:../elsewhere/ghcr.io",
            "'..' reaches outside",
        ),
        ("api", "oci-layout:/tmp", "absolute path"),
    ] {
        let config = format!(
            "images:
  - name: web
    image: ghcr.io/acme/web
    policy: {{ semver: \"^1.0\" }}
registries:
  - host: ghcr.io
    {ca_or_api}: {value}
"
        );
        let s = Setup::new(&config);
        std::fs::write(s.dir.join("outside.pem"), pem_outside).unwrap();
        let ran = plan(&s.repo, &[]);
        let at = format!(".image-updater.yaml:7:{}:", 7 + ca_or_api.len());
        assert_failed_with(&ran, 2, &[&at, ca_or_api, value, why, "--config"]);
        // Nothing was touched, nothing planned.
        assert!(!ran.out.contains("\"updates\""), "{}", ran.out);
    }
}

#[test]
fn repo_config_paths_through_symlinks_out_of_the_repo_are_refused() {
    // A layout directory that is a symlink to the layout outside.
    let s = Setup::new(&CONFIG.replace("registry/ghcr.io", "linked"));
    std::os::unix::fs::symlink(s.dir.join("elsewhere/ghcr.io"), s.repo.join("linked")).unwrap();
    let ran = plan(&s.repo, &[]);
    assert_failed_with(
        &ran,
        2,
        &[
            ".image-updater.yaml:3:10:",
            "symlink leads outside the repository",
        ],
    );

    // A ca_file below a symlinked directory.
    let s = ca_setup("certs/ca.pem");
    std::os::unix::fs::symlink(&s.dir, s.repo.join("certs")).unwrap();
    std::fs::write(s.dir.join("ca.pem"), "not read").unwrap();
    let ran = plan(&s.repo, &[]);
    assert_failed_with(
        &ran,
        2,
        &[
            ".image-updater.yaml:3:14:",
            "symlink leads outside the repository",
        ],
    );

    // A link inside the layout out of it (to a layout elsewhere) is not followed either.
    let s = Setup::new(CONFIG);
    let index = s.layout().join("index.json");
    std::fs::remove_file(&index).unwrap();
    std::os::unix::fs::symlink(s.dir.join("elsewhere/ghcr.io/acme/web/index.json"), &index)
        .unwrap();
    let ran = plan(&s.repo, &[]);
    assert_failed_with(&ran, 1, &["index.json", "leading out of the layout"]);
}

/// A `--config` file inside the repo is the repo's config too, whatever it is called.
#[test]
fn an_explicit_config_inside_the_repo_is_still_held_to_the_repo() {
    let s = Setup::new("");
    let inside = s.repo.join("ci/updater.yaml");
    std::fs::create_dir_all(inside.parent().unwrap()).unwrap();
    std::fs::write(
        &inside,
        CONFIG.replace("registry/ghcr.io", "../elsewhere/ghcr.io"),
    )
    .unwrap();
    let ran = plan(&s.repo, &["--config", inside.to_str().unwrap()]);
    assert_failed_with(&ran, 2, &["ci/updater.yaml:3:10:", "'..' reaches outside"]);
}

/// The user chose a config outside the repo: its paths may be anywhere.
#[test]
fn an_explicit_config_outside_the_repo_may_name_outside_paths() {
    let s = Setup::new("");
    let outside = s.dir.join("updater.yaml");
    let abs = s.dir.join("elsewhere/ghcr.io");
    std::fs::write(
        &outside,
        CONFIG.replace("registry/ghcr.io", abs.to_str().unwrap()),
    )
    .unwrap();
    assert_planned(&plan(&s.repo, &["--config", outside.to_str().unwrap()]));
    // Relative paths still resolve against the repo root, so `..` reaches the same place.
    std::fs::write(
        &outside,
        CONFIG.replace("registry/ghcr.io", "../elsewhere/ghcr.io"),
    )
    .unwrap();
    assert_planned(&plan(&s.repo, &["--config", outside.to_str().unwrap()]));
}

/// The same outside `ca_file` the repo's config may not name, from an outside `--config`,
/// trusts a real registry behind TLS.
#[test]
fn an_outside_ca_file_from_an_outside_config_is_used() {
    let ca = TestCa::new();
    let mut registry = Registry::start();
    registry.push_image("acme/web", &["1.0.0", "1.2.0"]);
    registry.restart_with("", Some((&ca.cert_path, &ca.key_path)));
    let host = registry.addr.clone();
    let config = format!(
        "registries:
  - host: {host}
    ca_file: {}
images:
  - name: web
    image: {host}/acme/web
    policy: {{ semver: \"^1.0\" }}
",
        ca.ca_path.display()
    );
    let s = Setup::new("");
    std::fs::write(
        s.repo.join("apps/web.yaml"),
        DEPLOYMENT.replace("ghcr.io", &host),
    )
    .unwrap();
    let outside = s.dir.join("updater.yaml");
    std::fs::write(&outside, &config).unwrap();
    assert_planned(&plan(&s.repo, &["--config", outside.to_str().unwrap()]));
    // The same config in the repo is refused before any request.
    std::fs::write(s.repo.join(".image-updater.yaml"), &config).unwrap();
    let ran = plan(&s.repo, &[]);
    assert_failed_with(&ran, 2, &[".image-updater.yaml:3:14:", "absolute path"]);
}

/// A FIFO committed as the config would block a plain read forever.
#[test]
fn fifo_as_the_config_file_is_a_config_error() {
    let s = Setup::new("");
    mkfifo(&s.repo.join(".image-updater.yaml"));
    let ran = plan(&s.repo, &[]);
    assert_failed_with(
        &ran,
        2,
        &[".image-updater.yaml", "FIFO", "not a regular file"],
    );
}

/// `oci-layout:` is not an image reference: in a manifest it is skipped as invalid, in
/// `images[].image` it is a config error; only `registries[].api` (checked above) and the
/// `tags` command line name a layout.
#[test]
fn oci_layout_in_an_image_reference_reaches_no_directory() {
    let s = Setup::new("");
    std::fs::write(
        s.repo.join("apps/web.yaml"),
        DEPLOYMENT.replace(
            "ghcr.io/acme/web",
            "oci-layout:../elsewhere/ghcr.io/acme/web",
        ),
    )
    .unwrap();
    let ran = plan(&s.repo, &[]);
    assert_eq!(ran.code, Some(0), "{}", ran.out);
    assert!(ran.out.contains("invalid image reference"), "{}", ran.out);

    std::fs::write(
        s.repo.join(".image-updater.yaml"),
        CONFIG.replace(
            "image: ghcr.io/acme/web",
            "image: oci-layout:../elsewhere/ghcr.io/acme/web",
        ),
    )
    .unwrap();
    let ran = plan(&s.repo, &[]);
    assert_failed_with(
        &ran,
        2,
        &[".image-updater.yaml:6:12:", "invalid image reference"],
    );
}
