//! Building the library's registry sources the way a run does, from config YAML, with a
//! given environment and fast retry timing, and running their futures from plain tests.

use std::path::Path;
use std::time::Duration;

use image_updater::config::Config;
use image_updater::registry::{Env, Registries, RegistryOptions};

/// Options for tests: the given environment, 50 ms backoff, 2 s per request, 60 s deadline.
pub fn test_options(env: Env) -> RegistryOptions {
    let mut o = RegistryOptions::from_env(env);
    o.backoff_base = Duration::from_millis(50);
    o.request_timeout = Duration::from_secs(2);
    o.deadline = Duration::from_secs(60);
    o
}

/// The registries of a config's `registries:` YAML.
pub fn registries(yaml: &str, options: RegistryOptions) -> Registries {
    let cfg = Config::parse(Path::new("test.yaml"), yaml).expect("test config parses");
    Registries::with_options(&cfg.registries, Path::new("/"), options)
}

/// Run a future to completion on a fresh multi-threaded runtime.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

/// An environment with only a PATH (for credential helpers) and HOME pointing nowhere.
pub fn bare_env() -> Env {
    Env::from_pairs([
        ("PATH", "/usr/bin:/bin"),
        ("HOME", "/nonexistent-home-for-tests"),
    ])
}

/// Where a test's layout tree sits in a work tree, as the repository's config names it
/// (`api: oci-layout:.registry/<host>`): the repository's own config may only name paths
/// inside the repository.
pub const LAYOUT_IN_REPO: &str = ".registry";

/// The directory [`LAYOUT_IN_REPO`] in the work tree `work`, kept out of git (listed in
/// `.git/info/exclude`, so `git status` stays clean): write layouts below it.
pub fn layout_in_work_tree(work: &Path) -> std::path::PathBuf {
    use std::io::Write as _;
    let exclude = work.join(".git/info/exclude");
    std::fs::create_dir_all(exclude.parent().unwrap()).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&exclude)
        .unwrap();
    writeln!(f, "/{LAYOUT_IN_REPO}/").unwrap();
    work.join(LAYOUT_IN_REPO)
}

/// Write an OCI image layout for one repository in `dir`: `index.json` listing `tags` as
/// `org.opencontainers.image.ref.name` annotations (made-up digests, counting from 1), and
/// `oci-layout`. What a registry entry `api: oci-layout:PATH` reads.
pub fn write_oci_layout<T: AsRef<str>>(dir: &Path, tags: &[T]) {
    std::fs::create_dir_all(dir).unwrap();
    let manifests: Vec<serde_json::Value> = tags
        .iter()
        .enumerate()
        .map(|(i, tag)| {
            serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": format!("sha256:{:064x}", i + 1),
                "size": 417,
                "annotations": { "org.opencontainers.image.ref.name": tag.as_ref() },
            })
        })
        .collect();
    let index = serde_json::json!({ "schemaVersion": 2, "manifests": manifests });
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}
