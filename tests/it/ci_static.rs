//! The static musl binary, built once here (its own target directory, so the build does not
//! wait on the one running these tests), run where the scratch image runs it: an empty root
//! holding only the binary, a CA bundle and /tmp, with no network, as user 65532 — `--version`,
//! `plan` on the demo (the same output as the host build), and `run --clone` of a file://
//! repository (clone, commit, push with no git binary and no shell). Then the release image
//! built from it with buildah (Containerfile) and run the same way.

use crate::ci_common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Instant;

use ci_common::{copy_tree, demo_repo, git, repo, run_ok, tool};

fn musl_target() -> String {
    format!("{}-unknown-linux-musl", std::env::consts::ARCH)
}

/// The release binary for the musl target, built on first use (the release profile costs no
/// more CPU than the debug one here, and it is what ships); a stripped copy of it.
fn static_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let target = musl_target();
        let musl_gcc = tool("musl-gcc", "apt-get install musl-tools");
        let sysroot = run_ok(Command::new("rustc").args(["--print", "sysroot"]));
        let sysroot = PathBuf::from(String::from_utf8(sysroot.stdout).unwrap().trim());
        assert!(
            sysroot.join("lib/rustlib").join(&target).is_dir(),
            "the Rust target {target} is not installed: rustup target add {target} (scripts/install-test-deps.sh does it)"
        );
        let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .unwrap()
            .join("ci-static");
        let cc_var = format!("CC_{}", target.replace('-', "_"));
        let started = Instant::now();
        run_ok(
            Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .current_dir(repo())
                .args(["build", "--release", "--locked", "--bin", "image-updater"])
                .args(["--target", &target])
                .arg("--target-dir")
                .arg(&target_dir)
                .env(&cc_var, &musl_gcc),
        );
        eprintln!(
            "musl build (incremental if {} existed): {:.0?}",
            target_dir.display(),
            started.elapsed()
        );
        let built = target_dir.join(&target).join("release/image-updater");
        let stripped = target_dir.join("image-updater-stripped");
        std::fs::copy(&built, &stripped).unwrap();
        run_ok(Command::new("strip").arg(&stripped));
        eprintln!(
            "static binary: {} bytes stripped",
            std::fs::metadata(&stripped).unwrap().len()
        );
        stripped
    })
}

/// Whether an ELF file asks for a program interpreter (PT_INTERP): a static one does not.
fn has_interpreter(elf: &[u8]) -> bool {
    assert_eq!(&elf[..4], b"\x7fELF");
    assert_eq!(elf[4], 2, "64-bit");
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum).any(|i| {
        let p = phoff + i * phentsize;
        u32::from_le_bytes(elf[p..p + 4].try_into().unwrap()) == 3
    })
}

fn chown_65532(path: &Path) {
    run_ok(Command::new("chown").args(["-R", "65532:65532"]).arg(path));
}

/// Run `args` in `root` as 65532:65532, in new network and PID namespaces (no network at
/// all), with nothing of this environment but TMPDIR.
fn in_root(root: &Path, args: &[&str]) -> Output {
    let unshare = tool("unshare", "apt-get install util-linux");
    let chroot = tool("chroot", "apt-get install coreutils");
    Command::new(unshare)
        .args(["--net", "--pid", "--fork", "--kill-child"])
        .arg(chroot)
        .arg("--userspec=65532:65532")
        .arg(root)
        .args(args)
        .env_clear()
        .env("TMPDIR", "/tmp")
        .output()
        .unwrap()
}

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// The host build's `plan` of the demo at `demo`.
fn host_plan(demo: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_image-updater"))
        .arg("plan")
        .arg(demo)
        .env_clear()
        .output()
        .unwrap();
    ok(&out, "host plan")
}

#[test]
#[ignore = "system group (root, buildah, musl target): scripts/test.sh runs it, or: cargo test --test it -- --ignored"]
fn the_static_binary_runs_in_an_empty_root() {
    let bin = static_binary();
    assert!(
        !has_interpreter(&std::fs::read(bin).unwrap()),
        "{} is dynamically linked",
        bin.display()
    );

    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir_all(root.join("etc/ssl/certs")).unwrap();
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    run_ok(Command::new("chmod").arg("1777").arg(root.join("tmp")));
    std::fs::copy(bin, root.join("image-updater")).unwrap();
    std::fs::copy(
        "/etc/ssl/certs/ca-certificates.crt",
        root.join("etc/ssl/certs/ca-certificates.crt"),
    )
    .expect("a CA bundle: apt-get install ca-certificates");
    copy_tree(&repo().join("examples/demo"), &root.join("demo"));
    let (_work, origin) = demo_repo(&tmp.path().join("repos"));
    let before = git(&origin, &["rev-parse", "main"]);
    copy_tree(&origin, &root.join("infra.git"));
    chown_65532(&root.join("infra.git"));
    let mut entries: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(
        entries,
        ["demo", "etc", "image-updater", "infra.git", "tmp"]
    );

    let version = ok(
        &in_root(&root, &["/image-updater", "--version"]),
        "--version",
    );
    assert_eq!(
        version,
        format!("image-updater {}\n", env!("CARGO_PKG_VERSION"))
    );

    let plan = ok(
        &in_root(&root, &["/image-updater", "plan", "/demo"]),
        "plan",
    );
    assert_eq!(plan, host_plan(&root.join("demo")));
    assert!(plan.contains("updates:"), "{plan}");

    let run = in_root(
        &root,
        &[
            "/image-updater",
            "run",
            "--clone",
            "file:///infra.git",
            "--branch",
            "main",
        ],
    );
    let out = ok(&run, "run --clone");
    assert!(out.contains("Committed and pushed"), "{out}");
    let after = git(&root.join("infra.git"), &["rev-parse", "main"]);
    assert_ne!(after, before);
    let changed = git(
        &root.join("infra.git"),
        &["diff", "--name-only", &before, &after],
    );
    assert!(changed.contains("clusters/prod/web.yaml"), "{changed}");
}

/// buildah with its own storage, so tests and machines never share images.
struct Buildah {
    storage: tempfile::TempDir,
    program: PathBuf,
}

impl Buildah {
    fn new() -> Buildah {
        Buildah {
            storage: tempfile::tempdir().unwrap(),
            program: tool("buildah", "apt-get install buildah"),
        }
    }
    fn run(&self, args: &[&str]) -> String {
        let s = self.storage.path();
        let out = run_ok(
            Command::new(&self.program)
                .arg("--root")
                .arg(s.join("root"))
                .arg("--runroot")
                .arg(s.join("runroot"))
                .args(["--storage-driver", "vfs"])
                .args(args),
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }
}

#[test]
#[ignore = "system group (root, buildah, musl target): scripts/test.sh runs it, or: cargo test --test it -- --ignored"]
fn the_release_image_is_the_binary_on_scratch_running_as_65532() {
    let bin = static_binary();
    let tmp = tempfile::tempdir().unwrap();
    let context = tmp.path().join("context");
    run_ok(
        Command::new(repo().join("scripts/container-context.sh"))
            .arg(&context)
            .arg(bin),
    );
    let buildah = Buildah::new();
    let tag = "localhost/image-updater:test";
    let containerfile = repo().join("Containerfile");
    buildah.run(&[
        "bud",
        "--quiet",
        "--arch",
        std::env::consts::ARCH.replace("x86_64", "amd64").as_str(),
        "-t",
        tag,
        "-f",
        containerfile.to_str().unwrap(),
        context.to_str().unwrap(),
    ]);
    let config = buildah.run(&[
        "inspect",
        "--type",
        "image",
        "--format",
        "{{.OCIv1.Config.User}} {{.OCIv1.Config.Entrypoint}}",
        tag,
    ]);
    assert_eq!(config, "65532:65532 [/image-updater]");
    eprintln!(
        "image size: {}",
        buildah.run(&["images", "--format", "{{.Size}}", tag])
    );

    let container = buildah.run(&["from", "--quiet", tag]);
    let mount = PathBuf::from(buildah.run(&["mount", &container]));
    let mut files = Vec::new();
    let mut stack = vec![mount.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                files.push(e.path().strip_prefix(&mount).unwrap().display().to_string());
            }
        }
    }
    files.sort();
    assert_eq!(
        files,
        ["etc/ssl/certs/ca-certificates.crt", "image-updater"],
        "nothing but the binary and the CA bundle"
    );
    use std::os::unix::fs::PermissionsExt;
    let tmp_mode = std::fs::metadata(mount.join("tmp"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        tmp_mode & 0o7777,
        0o1777,
        "/tmp is writable by the image's user"
    );

    let version = ok(
        &in_root(&mount, &["/image-updater", "--version"]),
        "--version in the image",
    );
    assert_eq!(
        version,
        format!("image-updater {}\n", env!("CARGO_PKG_VERSION"))
    );
    copy_tree(&repo().join("examples/demo"), &mount.join("demo"));
    let plan = ok(
        &in_root(&mount, &["/image-updater", "plan", "/demo"]),
        "plan in the image",
    );
    assert_eq!(plan, host_plan(&mount.join("demo")));

    buildah.run(&["umount", &container]);
    buildah.run(&["rm", &container]);
    buildah.run(&["rmi", "--force", tag]);
}
