//! Which files are manifests: every `*.yaml`/`*.yml` under the root that `.gitignore` does
//! not ignore, narrowed by the config's `paths` globs and then its `exclude` globs.
//!
//! Globs are compiled once per call and matched against `/`-separated paths relative to the
//! root; `*` does not cross `/`, `**` does. A glob naming a directory (`clusters/prod`) also
//! selects everything below it.

use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use ignore::WalkBuilder;

use super::ManifestError;

/// The manifest files to read under `root`, as paths relative to root, sorted: every
/// *.yaml/*.yml not ignored by .gitignore (honoured even if root is not the top of a git repo
/// or there is no .git), skipping .git/. If `paths` is non-empty, only files matching one of
/// those globs (relative to root, e.g. "clusters/**", "apps/*/deploy.yaml"); then drop files
/// matching any `exclude` glob. Bad globs -> an error quoting the glob.
///
/// Hidden files and directories other than `.git` are included (a `.flux/` folder is as
/// much a part of the repo as any other). Malformed lines in ignore files are skipped, as git
/// does; I/O errors while walking are returned.
pub fn discover(
    root: &Path,
    paths: &[String],
    exclude: &[String],
) -> Result<Vec<PathBuf>, ManifestError> {
    let include = glob_set(paths)?;
    let exclude = glob_set(exclude)?;

    let walker = WalkBuilder::new(root)
        .hidden(false)
        .require_git(false)
        .follow_links(false)
        .filter_entry(|entry| entry.file_name() != ".git")
        .build();

    let mut files = Vec::new();
    for entry in walker {
        let entry = match entry {
            Ok(entry) => entry,
            Err(err) if err.io_error().is_some() => {
                return Err(ManifestError::Walk {
                    message: err.to_string(),
                })
            }
            // A bad pattern in some .gitignore: git ignores such lines, so do we.
            Err(_) => continue,
        };
        if !entry.file_type().is_some_and(|t| t.is_file()) || !is_yaml(entry.path()) {
            continue;
        }
        let Ok(rel) = entry.path().strip_prefix(root) else {
            continue;
        };
        let rel_str = slash_path(rel);
        if include.as_ref().is_some_and(|set| !set.is_match(&rel_str)) {
            continue;
        }
        if exclude.as_ref().is_some_and(|set| set.is_match(&rel_str)) {
            continue;
        }
        files.push(rel.to_path_buf());
    }
    files.sort();
    Ok(files)
}

fn is_yaml(path: &Path) -> bool {
    path.extension()
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
        discover(root, &own(paths), &own(exclude))
            .unwrap()
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
    fn bad_globs_are_quoted_in_the_error() {
        let dir = tree(FILES);
        let err = discover(dir.path(), &["apps/[".to_string()], &[]).unwrap_err();
        assert!(matches!(&err, ManifestError::Glob { glob, .. } if glob == "apps/["));
        assert!(err.to_string().contains("apps/["), "{err}");
        let err = discover(dir.path(), &[], &["{a,".to_string()]).unwrap_err();
        assert!(err.to_string().contains("{a,"), "{err}");
    }
}
