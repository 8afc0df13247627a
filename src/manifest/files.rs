//! Which files are manifests: every `*.yaml`/`*.yml` (and kustomize's extensionless
//! `Kustomization`, and Dockerfiles: see [`super::dockerfile::is_dockerfile`]) under the root
//! that `.gitignore` does not ignore, narrowed by the config's `paths` globs and then its
//! `exclude` globs.
//!
//! Globs are compiled once per call and matched against `/`-separated paths relative to the
//! root; `*` does not cross `/`, `**` does. A glob naming a directory (`clusters/prod`) also
//! selects everything below it.
//!
//! [`discover_files`] also reports what it leaves out and why: files over a size bound, and
//! symlinks that point outside the root (never followed), are broken, or point at a file that
//! is scanned under its own name.
//!
//! [`read_regular_file`] is the one bounded reader for the other files a run reads (the
//! config, a registry's `ca_file`, an OCI layout's `index.json`, `oci-layout` and blobs):
//! regular files only, never a FIFO, device, socket or directory, and never more than a cap.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use ignore::WalkBuilder;

use super::ManifestError;

/// The default bound on a manifest's size: 10 MiB.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 10 * 1024 * 1024;

/// What [`discover_files`] reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoverOptions {
    /// Globs selecting files (all YAML files when empty).
    pub paths: Vec<String>,
    /// Globs leaving files out.
    pub exclude: Vec<String>,
    /// Files larger than this many bytes are skipped.
    pub max_file_size: u64,
}

impl Default for DiscoverOptions {
    fn default() -> Self {
        DiscoverOptions {
            paths: Vec::new(),
            exclude: Vec::new(),
            max_file_size: DEFAULT_MAX_FILE_SIZE,
        }
    }
}

/// The result of [`discover_files`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovered {
    /// Files to read, relative to the root, sorted.
    pub files: Vec<PathBuf>,
    /// Files selected by the globs but not read, relative to the root, with the reason; sorted.
    pub skipped: Vec<(PathBuf, String)>,
    /// YAML files the `paths` globs leave out (and `exclude` does not), relative to the root,
    /// sorted: read only for the Flux image objects they declare (ImagePolicy,
    /// ImageRepository, ImageUpdateAutomation), never rewritten. Regular files within the size
    /// bound only.
    pub outside_paths: Vec<PathBuf>,
}

/// The manifest files to read under `root` (which names count: see the module doc), as paths
/// relative to root, sorted: those not ignored by .gitignore (honoured even if root is not
/// the top of a git repo or there is no .git), skipping .git/. If `paths` is non-empty, only
/// files matching one of those globs (relative to root, e.g. "clusters/**",
/// "apps/*/deploy.yaml"); then files matching any `exclude` glob are dropped. Bad globs -> an
/// error quoting the glob. Hidden files and directories other than `.git` are included (a
/// `.flux/` folder is as much a part of the repo as any other). Malformed lines in ignore
/// files are skipped, as git does; I/O errors while walking are returned.
///
/// What is left out is reported, with why:
///
/// - a file over `max_file_size` bytes;
/// - a symlink whose target is outside `root` (it is never followed), or broken;
/// - a symlink to a file that is itself in `files` (it is scanned once, under its own name).
///
/// A symlink to a file inside the root that is not otherwise selected is read under the
/// link's name (writes go through the link to the target). Symlinked directories are not
/// descended into.
pub fn discover_files(root: &Path, opts: &DiscoverOptions) -> Result<Discovered, ManifestError> {
    let include = glob_set(&opts.paths)?;
    let exclude = glob_set(&opts.exclude)?;
    let canonical_root = fs::canonicalize(root).map_err(|e| ManifestError::Walk {
        message: format!("{}: {e}", root.display()),
    })?;

    let walker = WalkBuilder::new(root)
        .hidden(false)
        .require_git(false)
        .follow_links(false)
        .filter_entry(|entry| entry.file_name() != ".git")
        .build();

    let mut out = Discovered::default();
    // Links to files inside the root: (link, target relative to the root).
    let mut links: Vec<(PathBuf, PathBuf)> = Vec::new();
    for entry in walker {
        let entry = match entry {
            Ok(entry) => entry,
            Err(err) if err.io_error().is_some() => {
                return Err(ManifestError::Walk {
                    message: err.to_string(),
                })
            }
            Err(_) => continue,
        };
        let Some(file_type) = entry.file_type() else {
            continue;
        };
        if !(file_type.is_file() || file_type.is_symlink())
            || !(is_yaml(entry.path()) || super::dockerfile::is_dockerfile(entry.path()))
        {
            continue;
        }
        let Ok(rel) = entry.path().strip_prefix(root) else {
            continue;
        };
        let rel_str = slash_path(rel);
        if exclude.as_ref().is_some_and(|set| set.is_match(&rel_str)) {
            continue;
        }
        if include.as_ref().is_some_and(|set| !set.is_match(&rel_str)) {
            if file_type.is_file()
                && is_yaml(entry.path())
                && too_big(entry.path(), opts.max_file_size).is_none()
            {
                out.outside_paths.push(rel.to_path_buf());
            }
            continue;
        }
        let rel = rel.to_path_buf();
        if file_type.is_symlink() {
            let target = match fs::canonicalize(entry.path()) {
                Ok(t) => t,
                Err(e) => {
                    out.skipped
                        .push((rel, format!("symlink that cannot be resolved: {e}")));
                    continue;
                }
            };
            let Ok(target_rel) = target.strip_prefix(&canonical_root) else {
                out.skipped.push((
                    rel,
                    "symlink to a path outside the repository, not followed".into(),
                ));
                continue;
            };
            if target_rel
                .components()
                .next()
                .is_some_and(|c| c.as_os_str() == ".git")
            {
                out.skipped
                    .push((rel, "symlink into .git, not followed".into()));
                continue;
            }
            if !target.is_file() {
                continue;
            }
            if let Some(reason) = too_big(&target, opts.max_file_size) {
                out.skipped.push((rel, reason));
                continue;
            }
            links.push((rel, target_rel.to_path_buf()));
            continue;
        }
        if let Some(reason) = too_big(entry.path(), opts.max_file_size) {
            out.skipped.push((rel, reason));
            continue;
        }
        out.files.push(rel);
    }
    let real: HashSet<PathBuf> = out.files.iter().cloned().collect();
    for (link, target) in links {
        if real.contains(&target) {
            let reason = format!(
                "symlink to {}, which is scanned itself",
                slash_path(&target)
            );
            out.skipped.push((link, reason));
        } else {
            out.files.push(link);
        }
    }
    out.files.sort();
    out.skipped.sort();
    out.outside_paths.sort();
    Ok(out)
}

/// Why [`read_regular_file`] did not read a file: the path, and what was wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct ReadError {
    pub path: PathBuf,
    /// What was found, and what was expected instead.
    pub reason: String,
    /// The I/O error's kind when opening or reading failed (`NotFound`, say).
    pub io: Option<std::io::ErrorKind>,
}

/// Read `path` whole when it is a regular file (symlinks followed) of at most `limit` bytes.
/// `expected` names what it should hold ("a PEM CA bundle") for the error.
///
/// A FIFO, socket, device or directory is refused without reading it, and never blocks the
/// run: the type is checked before the file is opened, the open is non-blocking (and takes no
/// controlling terminal), and the opened handle's type and size are checked again, so a path
/// swapped in between is caught too. At most `limit + 1` bytes are read, whatever size the
/// file claims, so neither a huge sparse file nor one that grows while read can make memory
/// grow past the cap.
pub fn read_regular_file(path: &Path, limit: u64, expected: &str) -> Result<Vec<u8>, ReadError> {
    use std::io::Read as _;
    let fail = |reason: String, io: Option<std::io::ErrorKind>| ReadError {
        path: path.to_path_buf(),
        reason,
        io,
    };
    let io_fail = |e: std::io::Error| fail(format!("{e}; expected {expected}"), Some(e.kind()));
    let check = |meta: &fs::Metadata| {
        if !meta.is_file() {
            return Err(fail(
                format!(
                    "{}, not a regular file; expected {expected}",
                    file_kind(&meta.file_type())
                ),
                None,
            ));
        }
        if meta.len() > limit {
            return Err(fail(too_large(meta.len(), limit, expected), None));
        }
        Ok(meta.len())
    };
    check(&fs::metadata(path).map_err(io_fail)?)?;
    let mut options = fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        let flags = rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOCTTY;
        options.custom_flags(flags.bits() as i32);
    }
    let file = options.open(path).map_err(io_fail)?;
    let len = check(&file.metadata().map_err(io_fail)?)?;
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io_fail)?;
    if bytes.len() as u64 > limit {
        return Err(fail(
            format!(
                "grew while being read: {}",
                too_large(limit + 1, limit, expected)
            ),
            None,
        ));
    }
    Ok(bytes)
}

fn too_large(len: u64, limit: u64, expected: &str) -> String {
    format!("{len} bytes, over the limit of {limit} bytes for {expected}")
}

/// What a file that is not a regular file is, for messages.
fn file_kind(t: &fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
    }
    if t.is_dir() {
        "a directory"
    } else {
        "a special file"
    }
}

fn too_big(path: &Path, max: u64) -> Option<String> {
    let len = fs::metadata(path).ok()?.len();
    (len > max).then(|| format!("larger than {max} bytes ({len} bytes), not read"))
}

/// `*.yaml`, `*.yml`, and `Kustomization`, the one extensionless name kustomize reads.
fn is_yaml(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n == "Kustomization")
        || path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"))
}

fn slash_path(rel: &Path) -> String {
    let parts: Vec<_> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect();
    parts.join("/")
}

/// Compile `globs` (none -> `None`); each also matches everything below a directory it names.
fn glob_set(globs: &[String]) -> Result<Option<GlobSet>, ManifestError> {
    if globs.is_empty() {
        return Ok(None);
    }
    let mut builder = GlobSetBuilder::new();
    for glob in globs {
        let pattern = glob.trim_start_matches("./").trim_end_matches('/');
        let compile = |p: &str| {
            GlobBuilder::new(p)
                .literal_separator(true)
                .build()
                .map_err(|e| ManifestError::Glob {
                    glob: glob.clone(),
                    message: e.kind().to_string(),
                })
        };
        builder.add(compile(pattern)?);
        if !pattern.ends_with("**") {
            builder.add(compile(&format!("{pattern}/**"))?);
        }
    }
    builder.build().map(Some).map_err(|e| ManifestError::Glob {
        glob: globs.join(", "),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn tree(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for f in files {
            let p = dir.path().join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, "a: b\n").unwrap();
        }
        dir
    }

    fn names(root: &Path, paths: &[&str], exclude: &[&str]) -> Vec<String> {
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let opts = DiscoverOptions {
            paths: own(paths),
            exclude: own(exclude),
            ..DiscoverOptions::default()
        };
        discover_files(root, &opts)
            .unwrap()
            .files
            .iter()
            .map(|p| slash_path(p))
            .collect()
    }

    const FILES: &[&str] = &[
        "apps/web/deploy.yaml",
        "apps/web/kustomization.yml",
        "apps/web/README.md",
        "apps/api/deploy.yaml",
        "apps/api/charts/api/templates/deployment.yaml",
        "clusters/prod/web.YAML",
        "clusters/dev/web.yaml",
        "build/out.yaml",
        ".git/config.yaml",
        ".flux/sync.yaml",
        "notes.txt",
    ];

    #[test]
    fn gitignore_is_honoured_without_a_git_repo() {
        let dir = tree(FILES);
        fs::write(dir.path().join(".gitignore"), "build/\n[bad\n").unwrap();
        fs::write(dir.path().join("apps/.gitignore"), "api/charts/\n").unwrap();
        assert_eq!(
            names(dir.path(), &[], &[]),
            [
                ".flux/sync.yaml",
                "apps/api/deploy.yaml",
                "apps/web/deploy.yaml",
                "apps/web/kustomization.yml",
                "clusters/dev/web.yaml",
                "clusters/prod/web.YAML",
            ]
        );
    }

    #[test]
    fn extensionless_kustomization_is_a_manifest() {
        let dir = tree(&["base/Kustomization", "base/Makefile", "base/kustomization"]);
        assert_eq!(names(dir.path(), &[], &[]), ["base/Kustomization"]);
    }

    #[test]
    fn gitignore_of_an_enclosing_directory_applies_to_a_subdirectory_root() {
        let dir = tree(FILES);
        fs::write(dir.path().join(".gitignore"), "dev/\n").unwrap();
        assert_eq!(
            names(&dir.path().join("clusters"), &[], &[]),
            ["prod/web.YAML"]
        );
    }

    #[test]
    fn paths_then_exclude() {
        let dir = tree(FILES);
        assert_eq!(
            names(dir.path(), &["clusters/**", "apps/*/deploy.yaml"], &[]),
            [
                "apps/api/deploy.yaml",
                "apps/web/deploy.yaml",
                "clusters/dev/web.yaml",
                "clusters/prod/web.YAML",
            ]
        );
        assert_eq!(
            names(
                dir.path(),
                &["apps/**"],
                &["**/charts/*/templates/**", "apps/web/*.yml"]
            ),
            ["apps/api/deploy.yaml", "apps/web/deploy.yaml"]
        );
        // `*` does not cross directories; a directory name selects what is below it.
        assert_eq!(
            names(dir.path(), &["apps/*.yaml"], &[]),
            Vec::<String>::new()
        );
        assert_eq!(
            names(dir.path(), &["./clusters/prod"], &["clusters/dev/"]),
            ["clusters/prod/web.YAML"]
        );
    }

    #[test]
    fn files_outside_paths_are_listed_apart_but_excluded_ones_are_not() {
        let dir = tree(FILES);
        let opts = DiscoverOptions {
            paths: vec!["apps/**".into()],
            exclude: vec!["clusters/dev/**".into()],
            ..DiscoverOptions::default()
        };
        let found = discover_files(dir.path(), &opts).unwrap();
        let outside: Vec<String> = found.outside_paths.iter().map(|p| slash_path(p)).collect();
        assert_eq!(
            outside,
            [
                ".flux/sync.yaml",
                "build/out.yaml",
                "clusters/prod/web.YAML"
            ]
        );
        assert!(found.files.iter().all(|f| f.starts_with("apps")));
        // Without `paths`, nothing is outside them.
        let all = discover_files(dir.path(), &DiscoverOptions::default()).unwrap();
        assert!(all.outside_paths.is_empty());
    }

    /// A symlink committed into the repo that points into `.git` (hooks, config, objects) is
    /// never read or written through, though `.git` is inside the root.
    #[cfg(unix)]
    #[test]
    fn symlinks_into_dot_git_are_not_followed() {
        use std::os::unix::fs::symlink;
        let dir = tree(&["apps/web.yaml", ".git/config", ".git/hooks/x.yaml"]);
        let apps = dir.path().join("apps");
        symlink("../.git/hooks/x.yaml", apps.join("hook.yaml")).unwrap();
        symlink("../.git/config", apps.join("config.yaml")).unwrap();
        let got = discover_files(dir.path(), &DiscoverOptions::default()).unwrap();
        let files: Vec<String> = got.files.iter().map(|p| slash_path(p)).collect();
        assert_eq!(files, ["apps/web.yaml"]);
        let skipped: Vec<(String, &str)> = got
            .skipped
            .iter()
            .map(|(p, r)| (slash_path(p), r.as_str()))
            .collect();
        assert_eq!(
            skipped,
            [
                ("apps/config.yaml".into(), "symlink into .git, not followed"),
                ("apps/hook.yaml".into(), "symlink into .git, not followed"),
            ]
        );
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_and_size_bound() {
        use std::os::unix::fs::symlink;
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret.yaml"), "a: b\n").unwrap();
        let dir = tree(&["apps/web/deploy.yaml", "apps/big.yaml", "other/base.yml"]);
        fs::write(
            dir.path().join("apps/big.yaml"),
            "a: ".to_owned() + &"x".repeat(100),
        )
        .unwrap();
        let apps = dir.path().join("apps");
        symlink(outside.path().join("secret.yaml"), apps.join("out.yaml")).unwrap();
        symlink(apps.join("web/deploy.yaml"), apps.join("dup.yaml")).unwrap();
        symlink("../other/base.yml", apps.join("shared.yaml")).unwrap();
        symlink("missing.yaml", apps.join("broken.yaml")).unwrap();
        symlink(outside.path(), apps.join("outdir.yaml")).unwrap();
        let opts = DiscoverOptions {
            paths: vec!["apps/**".into()],
            max_file_size: 50,
            ..Default::default()
        };
        let got = discover_files(dir.path(), &opts).unwrap();
        let files: Vec<String> = got.files.iter().map(|p| slash_path(p)).collect();
        assert_eq!(files, ["apps/shared.yaml", "apps/web/deploy.yaml"]);
        let skipped: Vec<(String, &str)> = got
            .skipped
            .iter()
            .map(|(p, r)| (slash_path(p), r.as_str()))
            .collect();
        assert_eq!(skipped.len(), 5, "{skipped:?}");
        assert_eq!(skipped[0].0, "apps/big.yaml");
        assert!(skipped[0].1.contains("larger than 50 bytes (103 bytes)"));
        assert_eq!(skipped[1].0, "apps/broken.yaml");
        assert!(skipped[1].1.contains("cannot be resolved"));
        assert_eq!(
            skipped[2],
            (
                "apps/dup.yaml".into(),
                "symlink to apps/web/deploy.yaml, which is scanned itself"
            )
        );
        assert_eq!(
            skipped[3],
            (
                "apps/out.yaml".into(),
                "symlink to a path outside the repository, not followed"
            )
        );
        assert_eq!(skipped[4].0, "apps/outdir.yaml");
        // The default bound is 10 MiB.
        let all = discover_files(dir.path(), &DiscoverOptions::default()).unwrap();
        assert!(all.files.iter().any(|p| p.ends_with("big.yaml")));
    }

    #[cfg(unix)]
    #[test]
    fn read_regular_file_reads_only_regular_files_under_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let ok = dir.path().join("ok.json");
        fs::write(&ok, b"{}\n").unwrap();
        assert_eq!(read_regular_file(&ok, 3, "JSON").unwrap(), b"{}\n");
        let e = read_regular_file(&ok, 2, "an index").unwrap_err();
        assert_eq!(e.path, ok);
        assert!(
            e.to_string()
                .ends_with("ok.json: 3 bytes, over the limit of 2 bytes for an index"),
            "{e}"
        );
        // Through a symlink to a regular file is fine; to a device or a directory it is not.
        std::os::unix::fs::symlink(&ok, dir.path().join("link")).unwrap();
        assert!(read_regular_file(&dir.path().join("link"), 3, "JSON").is_ok());
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        for (path, kind) in [
            (
                fifo.as_path(),
                "a FIFO (named pipe), not a regular file; expected JSON",
            ),
            (
                Path::new("/dev/zero"),
                "a character device, not a regular file",
            ),
            (dir.path(), "a directory, not a regular file"),
        ] {
            let e = read_regular_file(path, 1 << 20, "JSON").unwrap_err();
            assert!(e.reason.contains(kind), "{e}");
            assert_eq!(e.io, None);
        }
        let e = read_regular_file(&dir.path().join("missing"), 1, "JSON").unwrap_err();
        assert_eq!(e.io, Some(std::io::ErrorKind::NotFound));
        // A huge sparse file is refused by its size, without reading it.
        let sparse = dir.path().join("sparse");
        fs::File::create(&sparse).unwrap().set_len(1 << 40).unwrap();
        let e = read_regular_file(&sparse, 1 << 20, "JSON").unwrap_err();
        assert!(e.reason.starts_with("1099511627776 bytes, over"), "{e}");
    }

    #[test]
    fn bad_globs_are_quoted_in_the_error() {
        let dir = tree(FILES);
        let with = |paths: &[&str], exclude: &[&str]| DiscoverOptions {
            paths: paths.iter().map(|s| s.to_string()).collect(),
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
            ..DiscoverOptions::default()
        };
        let err = discover_files(dir.path(), &with(&["apps/["], &[])).unwrap_err();
        assert!(matches!(&err, ManifestError::Glob { glob, .. } if glob == "apps/["));
        assert!(err.to_string().contains("apps/["), "{err}");
        let err = discover_files(dir.path(), &with(&[], &["{a,"])).unwrap_err();
        assert!(err.to_string().contains("{a,"), "{err}");
    }
}
