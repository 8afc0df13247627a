//! Delivery through git: commit exactly the files that were rewritten and push the branch.
//!
//! `git2` on the local work tree; no git binary is needed. Only the rewritten paths enter the
//! commit (built from HEAD's tree, not from whatever else happens to be staged), file modes
//! are kept, and credentials come from the environment ([`credentials`]).

pub mod credentials;

use std::path::{Path, PathBuf};

use git2::{
    build::TreeUpdateBuilder, FileMode, PushOptions, RemoteCallbacks, Repository, Signature,
};

/// A delivery failure; messages never hold a credential (URLs are redacted).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct GitError(String);

impl GitError {
    fn new(context: &str, e: impl std::fmt::Display) -> GitError {
        GitError(credentials::redact(&format!("{context}: {e}")))
    }
}

/// The commit that was made and where it went.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub commit: String,
    pub branch: String,
    pub remote: String,
}

/// An open work tree.
pub struct WorkTree {
    repo: Repository,
    root: PathBuf,
}

impl WorkTree {
    /// Open the repository whose work tree contains `path`.
    pub fn open(path: &Path) -> Result<WorkTree, GitError> {
        let repo = Repository::discover(path).map_err(|e| {
            GitError::new(
                &format!("{} is not in a git work tree", path.display()),
                e.message(),
            )
        })?;
        let root = repo
            .workdir()
            .ok_or_else(|| {
                GitError(format!(
                    "{}: a bare repository has no work tree",
                    path.display()
                ))
            })?
            .canonicalize()
            .map_err(|e| GitError::new("work tree", e))?;
        Ok(WorkTree { repo, root })
    }

    /// The checked-out branch's short name.
    pub fn current_branch(&self) -> Result<String, GitError> {
        let head = self
            .repo
            .head()
            .map_err(|e| GitError::new("reading HEAD", e.message()))?;
        if !head.is_branch() {
            return Err(GitError(
                "HEAD is detached: check out the branch to update (CI checkouts: fetch with the branch, e.g. actions/checkout with ref)".into(),
            ));
        }
        Ok(head.shorthand().unwrap_or_default().to_string())
    }

    /// Commit `files` (absolute paths inside the work tree, already written) on the checked-out
    /// branch and push it to `origin`. `base`, when given, must be the checked-out branch.
    pub fn commit_and_push(
        &self,
        files: &[PathBuf],
        author: (&str, &str),
        message: &str,
        base: Option<&str>,
    ) -> Result<Delivered, GitError> {
        let branch = self.current_branch()?;
        if let Some(b) = base {
            if b != branch {
                return Err(GitError(format!(
                    "delivery.base is {b:?} but {branch:?} is checked out: check out {b:?} first"
                )));
            }
        }
        let parent = self
            .repo
            .head()
            .and_then(|h| h.peel_to_commit())
            .map_err(|e| GitError::new("reading HEAD commit", e.message()))?;
        let oid = self.commit(files, author, message)?;
        if let Err(e) = self.push(&branch) {
            // An unpushed commit would never be pushed: the next run finds the files current.
            // Take it back, so a failed delivery leaves the branch and index as they were.
            self.undo_commit(&parent, files)?;
            return Err(e);
        }
        Ok(Delivered {
            commit: oid.to_string(),
            branch,
            remote: "origin".into(),
        })
    }

    fn commit(
        &self,
        files: &[PathBuf],
        author: (&str, &str),
        message: &str,
    ) -> Result<git2::Oid, GitError> {
        let repo = &self.repo;
        let head = repo
            .head()
            .and_then(|h| h.peel_to_commit())
            .map_err(|e| GitError::new("reading HEAD commit", e.message()))?;
        let base_tree = head
            .tree()
            .map_err(|e| GitError::new("reading HEAD tree", e.message()))?;
        let mut update = TreeUpdateBuilder::new();
        let mut index = repo
            .index()
            .map_err(|e| GitError::new("opening the index", e.message()))?;
        for file in files {
            let rel = self.relative(file)?;
            let bytes =
                std::fs::read(file).map_err(|e| GitError::new(&file.display().to_string(), e))?;
            let blob = repo
                .blob(&bytes)
                .map_err(|e| GitError::new("writing a blob", e.message()))?;
            let mode = match base_tree.get_path(&rel) {
                Ok(entry) if entry.filemode() == i32::from(FileMode::BlobExecutable) => {
                    FileMode::BlobExecutable
                }
                _ => FileMode::Blob,
            };
            update.upsert(&rel, blob, mode);
            index
                .add_path(&rel)
                .map_err(|e| GitError::new(&format!("staging {}", rel.display()), e.message()))?;
        }
        let tree_oid = update
            .create_updated(repo, &base_tree)
            .map_err(|e| GitError::new("building the tree", e.message()))?;
        if tree_oid == base_tree.id() {
            return Err(GitError("nothing to commit: the files equal HEAD".into()));
        }
        let tree = repo
            .find_tree(tree_oid)
            .map_err(|e| GitError::new("tree", e.message()))?;
        let sig = Signature::now(author.0, author.1)
            .map_err(|e| GitError::new("commit author", e.message()))?;
        let oid = repo
            .commit(Some("HEAD"), &sig, &sig, message, &tree, &[&head])
            .map_err(|e| GitError::new("committing", e.message()))?;
        index
            .write()
            .map_err(|e| GitError::new("writing the index", e.message()))?;
        Ok(oid)
    }

    /// Move the checked-out branch back to `parent` and reset the index entries of `files`.
    fn undo_commit(&self, parent: &git2::Commit<'_>, files: &[PathBuf]) -> Result<(), GitError> {
        let mut head = self
            .repo
            .head()
            .map_err(|e| GitError::new("reading HEAD", e.message()))?;
        head.set_target(parent.id(), "image-updater: take back an unpushed commit")
            .map_err(|e| GitError::new("taking back the commit", e.message()))?;
        let rels = files
            .iter()
            .map(|f| self.relative(f))
            .collect::<Result<Vec<_>, _>>()?;
        self.repo
            .reset_default(Some(parent.as_object()), rels.iter())
            .map_err(|e| GitError::new("resetting the index", e.message()))
    }

    fn push(&self, branch: &str) -> Result<(), GitError> {
        let mut remote = self
            .repo
            .find_remote("origin")
            .map_err(|e| GitError::new("finding remote origin", e.message()))?;
        let url = remote.url().unwrap_or_default().to_string();
        let rejected = std::cell::RefCell::new(None::<String>);
        let mut callbacks = RemoteCallbacks::new();
        let mut creds = credentials::Provider::from_env();
        callbacks.credentials(move |url, user, allowed| creds.get(url, user, allowed));
        callbacks.push_update_reference(|refname, status| {
            if let Some(msg) = status {
                *rejected.borrow_mut() = Some(format!("{refname}: {msg}"));
            }
            Ok(())
        });
        let mut opts = PushOptions::new();
        opts.remote_callbacks(callbacks);
        let spec = format!("refs/heads/{branch}:refs/heads/{branch}");
        remote
            .push(&[spec.as_str()], Some(&mut opts))
            .map_err(|e| GitError::new(&format!("pushing {branch} to {url}"), e.message()))?;
        drop(opts);
        if let Some(r) = rejected.into_inner() {
            return Err(GitError::new(&format!("push to {url} rejected"), r));
        }
        Ok(())
    }

    fn relative(&self, file: &Path) -> Result<PathBuf, GitError> {
        let abs = file
            .canonicalize()
            .map_err(|e| GitError::new(&file.display().to_string(), e))?;
        abs.strip_prefix(&self.root)
            .map(Path::to_path_buf)
            .map_err(|_| {
                GitError(format!(
                    "{} is outside the work tree {}",
                    file.display(),
                    self.root.display()
                ))
            })
    }
}

/// Clone `url` into `dir` (for `--clone`), checking out `branch` or the remote's default.
pub fn clone(url: &str, branch: Option<&str>, dir: &Path) -> Result<WorkTree, GitError> {
    let mut callbacks = RemoteCallbacks::new();
    let mut creds = credentials::Provider::from_env();
    callbacks.credentials(move |url, user, allowed| creds.get(url, user, allowed));
    let mut fetch = git2::FetchOptions::new();
    fetch.remote_callbacks(callbacks);
    let mut builder = git2::build::RepoBuilder::new();
    builder.fetch_options(fetch);
    if let Some(b) = branch {
        builder.branch(b);
    }
    builder
        .clone(url, dir)
        .map_err(|e| GitError::new(&format!("cloning {url}"), e.message()))?;
    WorkTree::open(dir)
}
