//! Delivery through git: commit exactly the files that were rewritten and push the branch.
//!
//! `git2` on the local work tree; no git binary is needed. Only the rewritten paths enter the
//! commit (built from HEAD's tree, not from whatever else happens to be staged), file modes
//! are kept, and credentials come from the environment ([`credentials`]). Only files whose
//! work-tree bytes are HEAD's are rewritten at all ([`WorkTree::uncommitted`]): a user's
//! uncommitted edit never enters a commit.

pub mod credentials;
pub mod hostkeys;
pub mod signing;

use std::path::{Path, PathBuf};

pub use git2::Oid;

use git2::{
    build::TreeUpdateBuilder, FileMode, PushOptions, RemoteCallbacks, Repository, Signature,
};

use crate::env::Env;

/// How long a push to a repository on this machine waits for another writer's lock on the
/// branch before calling the push refused.
const REF_LOCK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The reference naming a commit pushed and checked out whose files the work tree may not
/// have yet: set before the branch moves, removed once the files are written. A run stopped in
/// between leaves it, and the next run completes the work tree ([`WorkTree::unwritten`]).
const UNWRITTEN_REF: &str = "refs/image-updater/worktree";

/// Why a file's work-tree bytes are not simply HEAD's: a change of the user's, not committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uncommitted {
    /// The path is not in HEAD: untracked, or added and not committed.
    NotInHead,
    /// The index holds something other than HEAD's blob: staged and not committed.
    Staged,
    /// The work tree differs from HEAD's blob.
    Modified,
}

impl std::fmt::Display for Uncommitted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Uncommitted::NotInHead => "not in HEAD: untracked, or added and not committed",
            Uncommitted::Staged => "staged, not committed",
            Uncommitted::Modified => "modified, not committed",
        })
    }
}

/// A delivery failure; messages never hold a credential (URLs are redacted).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct GitError {
    pub kind: GitErrorKind,
    message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GitErrorKind {
    /// The remote refused the push because it moved on (not a fast-forward).
    Rejected,
    /// The branch to clone does not exist on the remote (its HEAD names a missing branch, or
    /// `--branch` does): the user must name one.
    NoBranch,
    Other,
}

impl GitError {
    fn new(context: &str, e: impl std::fmt::Display) -> GitError {
        GitError::plain(credentials::redact(&format!("{context}: {e}")))
    }

    /// The remote's branch moved on before our commit landed (a commit through the forge's
    /// API whose expected head is stale): retried as a rejected push is.
    pub fn rejected(message: String) -> GitError {
        GitError {
            kind: GitErrorKind::Rejected,
            message: credentials::redact(&message),
        }
    }

    /// A failure described by `message`.
    pub fn other(message: String) -> GitError {
        GitError::plain(credentials::redact(&message))
    }

    fn plain(message: String) -> GitError {
        GitError {
            kind: GitErrorKind::Other,
            message,
        }
    }
}

/// An open work tree.
pub struct WorkTree {
    repo: Repository,
    root: PathBuf,
    /// Held while this run works in the tree ([`WorkTree::lock_runs`]).
    run_lock: Option<std::fs::File>,
    /// The last commit made ([`WorkTree::commit_to_ref`]) and the pack of the objects it
    /// added, sent as it is when that commit is pushed to a repository on this machine.
    last_pack: std::cell::RefCell<Option<(Oid, Vec<u8>)>>,
    /// The run's environment: credentials and host keys for the remote.
    env: Env,
    /// Signs every commit made ([`WorkTree::set_signer`]); `None`: unsigned.
    signer: Option<signing::Signer>,
}

impl WorkTree {
    /// Open the repository whose work tree contains `path`; its remote is reached with the
    /// credentials and host keys `env` names.
    pub fn open(path: &Path, env: &Env) -> Result<WorkTree, GitError> {
        let repo = Repository::discover(path).map_err(|e| {
            GitError::new(
                &format!("{} is not in a git work tree", path.display()),
                e.message(),
            )
        })?;
        let root = repo
            .workdir()
            .ok_or_else(|| {
                GitError::plain(format!(
                    "{}: a bare repository has no work tree",
                    path.display()
                ))
            })?
            .canonicalize()
            .map_err(|e| GitError::new("work tree", e))?;
        Ok(WorkTree {
            repo,
            root,
            run_lock: None,
            last_pack: Default::default(),
            env: env.clone(),
            signer: None,
        })
    }

    /// Take the work tree for this run, or fail at once when another run has it.
    ///
    /// Race: two runs in one work tree at once (a cron job overlapping itself) share the
    /// index, the branch, the pending ref and the files: one would remove the other's
    /// half-written temporary files as stale, or push the other's pending commit and move its
    /// branch to its own. So the second run stops before touching anything, saying why, and
    /// the next run picks up what is left. The lock is an advisory `flock` on
    /// `.git/image-updater.lock`: the system drops it when its process ends, even killed.
    pub fn lock_runs(&mut self) -> Result<(), GitError> {
        let path = self.repo.path().join("image-updater.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| GitError::new(&path.display().to_string(), e))?;
        #[cfg(unix)]
        {
            use rustix::fs::{flock, FlockOperation};
            match flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => {}
                Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                    return Err(GitError::plain(format!(
                        "another image-updater run is working in {} (it holds {}): this run stops without touching anything; the next run picks up whatever is left",
                        self.root.display(),
                        path.display()
                    )))
                }
                Err(e) => return Err(GitError::new(&format!("locking {}", path.display()), e)),
            }
        }
        self.run_lock = Some(file);
        Ok(())
    }

    /// Sign every commit this work tree makes from now on (`delivery.commit.sign`).
    pub fn set_signer(&mut self, signer: signing::Signer) {
        self.signer = Some(signer);
    }

    /// The checked-out branch's short name.
    pub fn current_branch(&self) -> Result<String, GitError> {
        let head = self
            .repo
            .head()
            .map_err(|e| GitError::new("reading HEAD", e.message()))?;
        if !head.is_branch() {
            return Err(GitError::plain(
                "HEAD is detached: check out the branch to update (CI checkouts: fetch with the branch, e.g. actions/checkout with ref)".into(),
            ));
        }
        Ok(head.shorthand().unwrap_or_default().to_string())
    }

    /// Remove the lock files a stopped run of ours can leave (ref, index and packed-refs
    /// locks, held for milliseconds while a run is alive). A lock still there after two
    /// seconds belongs to no live writer; it is removed, and named in the returned list.
    pub fn clear_stale_locks(&self, branch: &str) -> Vec<PathBuf> {
        let git = self.repo.path();
        let locks: Vec<PathBuf> = [
            "index.lock".to_string(),
            "HEAD.lock".to_string(),
            "packed-refs.lock".to_string(),
            format!("refs/heads/{branch}.lock"),
            format!("refs/remotes/origin/{branch}.lock"),
            "refs/image-updater/pending.lock".to_string(),
            format!("{UNWRITTEN_REF}.lock"),
        ]
        .iter()
        .map(|l| git.join(l))
        .filter(|p| p.exists())
        .collect();
        if locks.is_empty() {
            return locks;
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while std::time::Instant::now() < deadline && locks.iter().any(|p| p.exists()) {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        locks
            .into_iter()
            .filter(|p| p.exists() && std::fs::remove_file(p).is_ok())
            .collect()
    }

    /// The commit HEAD points at.
    pub fn head(&self) -> Result<Oid, GitError> {
        self.repo
            .head()
            .and_then(|h| h.peel_to_commit())
            .map(|c| c.id())
            .map_err(|e| GitError::new("reading HEAD commit", e.message()))
    }

    /// Commit `contents` (repo-relative path, bytes) on top of `parent` as the tip of
    /// `branch`, moving it there whatever it held before; neither HEAD nor the work tree
    /// changes. For pull-request branches.
    pub fn commit_to_branch(
        &self,
        parent: Oid,
        branch: &str,
        contents: &[(PathBuf, Vec<u8>)],
        author: (&str, &str),
        message: &str,
    ) -> Result<Oid, GitError> {
        self.commit_to_ref(
            parent,
            &format!("refs/heads/{branch}"),
            contents,
            author,
            message,
        )
    }

    /// Commit `contents` on top of `parent` and point the reference `refname` at it; neither
    /// HEAD, the index nor the work tree changes.
    ///
    /// The blobs, trees and commit are made in memory and stored as one pack, not as a loose
    /// file each: on the benchmark's 2,406 changed files that is what makes committing and a
    /// local push cheap (the pack is kept and sent as it is, [`WorkTree::send_objects`]).
    pub fn commit_to_ref(
        &self,
        parent: Oid,
        refname: &str,
        contents: &[(PathBuf, Vec<u8>)],
        author: (&str, &str),
        message: &str,
    ) -> Result<Oid, GitError> {
        let (oid, pack) = self.build_commit(parent, contents, author, message)?;
        let objects = self.repo.path().join("objects");
        self.repo
            .odb()
            .and_then(|odb| write_pack(&odb, &pack))
            .map_err(|e| {
                // On a full disk libgit2 can fail without saying why.
                let why = match e.message() {
                    "" | "no error" | "Write error" => "no reason given (out of disk space?)",
                    m => m,
                };
                GitError::new(
                    &format!("storing the commit's objects in {}", objects.display()),
                    why,
                )
            })?;
        // On a full disk libgit2 can return the id of a commit it failed to store, without
        // an error: say what happened rather than "target OID doesn't exist" below.
        if !self.repo.odb().is_ok_and(|odb| odb.exists(oid)) {
            return Err(GitError::plain(format!(
                "writing the commit: {oid} was not stored in {} (out of disk space?)",
                objects.display()
            )));
        }
        self.repo
            .reference(refname, oid, true, "image-updater: commit")
            .map_err(|e| GitError::new(&format!("moving {refname}"), e.message()))?;
        *self.last_pack.borrow_mut() = Some((oid, pack));
        Ok(oid)
    }

    /// The commit of `contents` on top of `parent`, made in memory, and the pack of the
    /// objects it adds; nothing is written to the repository.
    fn build_commit(
        &self,
        parent: Oid,
        contents: &[(PathBuf, Vec<u8>)],
        author: (&str, &str),
        message: &str,
    ) -> Result<(Oid, Vec<u8>), GitError> {
        // A second handle on the repository, whose object database writes to memory first.
        let scratch = Repository::open(self.repo.path())
            .map_err(|e| GitError::new("opening the repository", e.message()))?;
        let odb = scratch
            .odb()
            .map_err(|e| GitError::new("opening the object database", e.message()))?;
        odb.add_new_mempack_backend(1000)
            .map_err(|e| GitError::new("opening the object database", e.message()))?;
        let parent = scratch
            .find_commit(parent)
            .map_err(|e| GitError::new("reading the base commit", e.message()))?;
        let tree = tree_with(&scratch, &parent, contents)?;
        let sig = Signature::now(author.0, author.1)
            .map_err(|e| GitError::new("commit author", e.message()))?;
        let oid = match &self.signer {
            None => scratch.commit(None, &sig, &sig, message, &tree, &[&parent]),
            Some(signer) => {
                let content = scratch
                    .commit_create_buffer(&sig, &sig, message, &tree, &[&parent])
                    .map_err(|e| GitError::new("committing", e.message()))?;
                let signature = signer.sign(&content).map_err(|e| {
                    GitError::plain(format!("signing the commit ({}): {e}", signer.describe()))
                })?;
                let content = std::str::from_utf8(&content)
                    .map_err(|e| GitError::new("signing the commit", e))?;
                scratch.commit_signed(content, &signature, Some("gpgsig"))
            }
        }
        .map_err(|e| GitError::new("committing", e.message()))?;
        let pack = pack_of(&scratch, oid, &[parent.id()])
            .map_err(|e| GitError::new("packing the commit", e.message()))?;
        Ok((oid, pack))
    }

    /// Remove the reference `refname`, if it exists.
    pub fn delete_ref(&self, refname: &str) {
        if let Ok(mut r) = self.repo.find_reference(refname) {
            let _ = r.delete();
        }
    }

    /// Move the checked-out `branch` to `oid` (a commit on top of it) and set the index entries
    /// of `paths` to that commit's; the work tree is written by the caller.
    pub fn advance(&self, branch: &str, oid: Oid, paths: &[PathBuf]) -> Result<(), GitError> {
        let commit = self
            .repo
            .find_commit(oid)
            .map_err(|e| GitError::new("reading the new commit", e.message()))?;
        self.repo
            .reference(
                &format!("refs/heads/{branch}"),
                oid,
                true,
                "image-updater: commit",
            )
            .map_err(|e| GitError::new(&format!("moving {branch}"), e.message()))?;
        let tree = commit
            .tree()
            .map_err(|e| GitError::new("reading the new commit's tree", e.message()))?;
        self.stage_from_tree(&tree, paths)
            .map_err(|e| GitError::new("updating the index", e.message()))
    }

    /// Set the index entries of `paths` to `tree`'s, written once. Looked up path by path
    /// (libgit2's pathspec reset matches every index entry against every path: quadratic).
    /// The entries get no stat data, so git hashes those files again before it calls them
    /// clean; a work tree not yet written shows as changed, never as clean.
    fn stage_from_tree(&self, tree: &git2::Tree<'_>, paths: &[PathBuf]) -> Result<(), git2::Error> {
        let mut index = self.repo.index()?;
        for path in paths {
            let entry = tree.get_path(path)?;
            let zero = git2::IndexTime::new(0, 0);
            let path_bytes = path.to_string_lossy().replace('\\', "/").into_bytes();
            index.add(&git2::IndexEntry {
                ctime: zero,
                mtime: zero,
                dev: 0,
                ino: 0,
                mode: entry.filemode() as u32,
                uid: 0,
                gid: 0,
                file_size: 0,
                id: entry.id(),
                flags: path_bytes.len().min(0xfff) as u16,
                flags_extended: 0,
                path: path_bytes,
            })?;
        }
        index.write()
    }

    /// Whether `commit` holds every file of `contents` with exactly those bytes.
    pub fn holds_files(&self, commit: Oid, contents: &[(PathBuf, Vec<u8>)]) -> bool {
        let Ok(tree) = self.repo.find_commit(commit).and_then(|c| c.tree()) else {
            return false;
        };
        contents.iter().all(|(path, bytes)| {
            let want = Oid::hash_object(git2::ObjectType::Blob, bytes);
            matches!((tree.get_path(path), want), (Ok(e), Ok(w)) if e.id() == w)
        })
    }

    /// Whether the pull-request branch tip `commit` already proposes exactly `contents` on top
    /// of `base`'s history: every file holds those bytes, and since the branch left `base`
    /// nothing else changed (a rival commit adding another file does not count as ours). Such
    /// a branch needs no push, even if `base` has moved on elsewhere.
    pub fn holds(&self, commit: Oid, base: Oid, contents: &[(PathBuf, Vec<u8>)]) -> bool {
        if !self.holds_files(commit, contents) {
            return false;
        }
        let Ok(tree) = self.repo.find_commit(commit).and_then(|c| c.tree()) else {
            return false;
        };
        let Ok(fork) = self.repo.merge_base(commit, base) else {
            return false;
        };
        let Ok(fork_tree) = self.repo.find_commit(fork).and_then(|c| c.tree()) else {
            return false;
        };
        let Ok(diff) = self
            .repo
            .diff_tree_to_tree(Some(&fork_tree), Some(&tree), None)
        else {
            return false;
        };
        diff.deltas().all(|d| {
            let path = d.new_file().path().or(d.old_file().path());
            path.is_some_and(|p| contents.iter().any(|(c, _)| c == p))
        })
    }

    /// For each file (its path relative to the work tree's root, and the bytes read from the
    /// work tree), whether it holds a change of the user's that is not committed: None when
    /// HEAD's blob and the index entry are exactly these bytes, else why not.
    ///
    /// Cheap on a large repository: a hash of each given file's bytes (on every core) and a
    /// look-up of its path in HEAD's tree and in the index; nothing else is read or hashed.
    /// The comparison is byte for byte, so a file that a checkout filter (`core.autocrlf`,
    /// `.gitattributes` `eol`) rewrites counts as modified.
    pub fn uncommitted(
        &self,
        files: &[(PathBuf, &[u8])],
    ) -> Result<Vec<Option<Uncommitted>>, GitError> {
        let tree = self
            .repo
            .head()
            .and_then(|h| h.peel_to_tree())
            .map_err(|e| GitError::new("reading HEAD's tree", e.message()))?;
        let mut index = self
            .repo
            .index()
            .map_err(|e| GitError::new("reading the index", e.message()))?;
        // Another process may have staged something since this handle first read the index.
        index
            .read(false)
            .map_err(|e| GitError::new("reading the index", e.message()))?;
        let hashes = crate::parallel::map_in_order(files, crate::parallel::cores(), |(_, b)| {
            Oid::hash_object(git2::ObjectType::Blob, b)
        });
        files
            .iter()
            .zip(hashes)
            .map(|((path, _), hash)| {
                let hash = hash.map_err(|e| GitError::new("hashing", e.message()))?;
                let committed = match tree.get_path(path) {
                    Ok(e) if e.kind() == Some(git2::ObjectType::Blob) => e.id(),
                    _ => return Ok(Some(Uncommitted::NotInHead)),
                };
                match index.get_path(path, 0) {
                    Some(e) if e.id == committed => {}
                    _ => return Ok(Some(Uncommitted::Staged)),
                }
                Ok((hash != committed).then_some(Uncommitted::Modified))
            })
            .collect()
    }

    /// The work tree's root (canonical).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Note that the pushed commit `oid` is about to be checked out and its files written
    /// ([`WorkTree::unwritten`]); call before moving the branch to it.
    pub fn mark_unwritten(&self, oid: Oid) -> Result<(), GitError> {
        self.repo
            .reference(UNWRITTEN_REF, oid, true, "image-updater: files to write")
            .map(|_| ())
            .map_err(|e| GitError::new(&format!("writing {UNWRITTEN_REF}"), e.message()))
    }

    /// The work tree has every file of the checked-out commit: drop the note.
    pub fn mark_written(&self) {
        self.delete_ref(UNWRITTEN_REF);
    }

    /// The files a stopped run did not write: when [`WorkTree::mark_unwritten`] names HEAD,
    /// each file HEAD's commit changed whose work-tree bytes are still its parent's (and whose
    /// index entry is the parent's or HEAD's) — path relative to the root, HEAD's bytes. Any
    /// other file (a user's edit since) is not ours to complete. A note that names another
    /// commit (the run stopped before the branch moved) is dropped.
    pub fn unwritten(&self) -> Result<Vec<(PathBuf, Vec<u8>)>, GitError> {
        let Ok(marked) = self.repo.refname_to_id(UNWRITTEN_REF) else {
            return Ok(Vec::new());
        };
        if self.head().ok() != Some(marked) {
            self.mark_written();
            return Ok(Vec::new());
        }
        let failed = |e: git2::Error| GitError::new("reading the last commit", e.message());
        let commit = self.repo.find_commit(marked).map_err(failed)?;
        let Ok(parent) = commit.parent(0) else {
            return Ok(Vec::new());
        };
        let (new_tree, old_tree) = (
            commit.tree().map_err(failed)?,
            parent.tree().map_err(failed)?,
        );
        let diff = self
            .repo
            .diff_tree_to_tree(Some(&old_tree), Some(&new_tree), None)
            .map_err(failed)?;
        let index = self.repo.index().map_err(failed)?;
        let mut out = Vec::new();
        for delta in diff.deltas() {
            let (old, new) = (delta.old_file(), delta.new_file());
            let Some(path) = new
                .path()
                .filter(|_| delta.status() == git2::Delta::Modified)
            else {
                continue;
            };
            let abs = self.root.join(path);
            if std::fs::symlink_metadata(&abs).map_or(true, |m| !m.is_file()) {
                continue;
            }
            let staged = index.get_path(path, 0).map(|e| e.id);
            if staged != Some(old.id()) && staged != Some(new.id()) {
                continue;
            }
            let Ok(bytes) = std::fs::read(&abs) else {
                continue;
            };
            if Oid::hash_object(git2::ObjectType::Blob, &bytes).ok() != Some(old.id()) {
                continue;
            }
            let blob = self.repo.find_blob(new.id()).map_err(failed)?;
            out.push((path.to_path_buf(), blob.content().to_vec()));
        }
        Ok(out)
    }

    /// The URL of `origin`.
    pub fn remote_url(&self) -> Result<String, GitError> {
        Ok(self.remote()?.url().unwrap_or_default().to_string())
    }

    fn remote(&self) -> Result<git2::Remote<'_>, GitError> {
        self.repo
            .find_remote("origin")
            .map_err(|e| GitError::new("finding remote origin", e.message()))
    }

    /// Push `branch` to the same name on `origin`; `force` replaces whatever is there.
    /// A refusal because the remote moved on is [`GitErrorKind::Rejected`].
    pub fn push(&self, branch: &str, force: bool) -> Result<(), GitError> {
        self.push_ref(&format!("refs/heads/{branch}"), branch, force)
    }

    /// Push the local reference `src` to `branch` on `origin`.
    pub fn push_ref(&self, src: &str, branch: &str, force: bool) -> Result<(), GitError> {
        let url = self.remote_url()?;
        let started = std::time::Instant::now();
        let pushed = match local_repository(&url) {
            Some(path) => self.push_local(src, branch, force, &path),
            None => self.push_network(src, branch, force),
        };
        log_request(
            "push",
            &url,
            &format!("{src} -> {branch}"),
            started,
            &pushed,
        );
        pushed
    }

    /// [`WorkTree::push_ref`] to a repository on this machine (`file://` or a path).
    ///
    /// Race: libgit2's local transport moves the remote's branch without checking that it
    /// still holds what it held when the push began, so of two runs pushing at once the later
    /// one replaced the other's commit (a lost commit, and a run reporting a commit the remote
    /// does not have). Here the objects go into the remote's object store as a pack, then the
    /// branch is moved by compare-and-swap under git's ref lock, as `git receive-pack` does on
    /// a server: a branch moved meanwhile is [`GitErrorKind::Rejected`].
    fn push_local(
        &self,
        src: &str,
        branch: &str,
        force: bool,
        path: &Path,
    ) -> Result<(), GitError> {
        let new = self
            .repo
            .refname_to_id(src)
            .map_err(|e| GitError::new(&format!("reading {src}"), e.message()))?;
        let shown = path.display().to_string();
        let remote = Repository::open(path)
            .map_err(|e| GitError::new(&format!("opening {shown}"), e.message()))?;
        if !remote.is_bare() {
            return Err(GitError::plain(format!(
                "pushing {branch} to {shown}: a repository with a work tree cannot be pushed to"
            )));
        }
        self.send_objects(&remote, new)
            .map_err(|e| GitError::new(&format!("pushing {branch} to {shown}"), e.message()))?;
        let dst = format!("refs/heads/{branch}");
        let cas = || {
            let current = match remote.refname_to_id(&dst) {
                Ok(oid) => Some(oid),
                Err(e) if e.code() == git2::ErrorCode::NotFound => None,
                Err(e) => return Err(e),
            };
            match current {
                Some(old) if old == new => Ok(true),
                Some(old) if !force && !remote.graph_descendant_of(new, old)? => Ok(false),
                Some(old) => remote
                    .reference_matching(&dst, new, true, old, "image-updater: push")
                    .map(|_| true),
                None => remote
                    .reference(&dst, new, false, "image-updater: push")
                    .map(|_| true),
            }
        };
        // Another push holding the branch's lock holds it for the moment it takes to write
        // one file, which a loaded machine can stretch to a second: wait for it, as git's
        // `core.filesRefLockTimeout` does, before calling the push refused.
        let mut wait = std::time::Duration::from_millis(1);
        let deadline = std::time::Instant::now() + REF_LOCK_TIMEOUT;
        let moved = loop {
            match cas() {
                Err(e)
                    if e.code() == git2::ErrorCode::Locked
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(std::time::Duration::from_millis(100));
                }
                other => break other,
            }
        };
        let rejected = |why: &str| GitError {
            kind: GitErrorKind::Rejected,
            ..GitError::new(
                &format!("push to {shown} rejected"),
                format!("{dst}: {why}"),
            )
        };
        match moved {
            Ok(true) => {}
            Ok(false) => return Err(rejected("not a fast-forward")),
            Err(e)
                if matches!(
                    e.code(),
                    git2::ErrorCode::Modified | git2::ErrorCode::Exists
                ) =>
            {
                return Err(rejected(e.message()))
            }
            Err(e) if e.code() == git2::ErrorCode::Locked => {
                return Err(GitError::plain(credentials::redact(&format!(
                    "pushing {branch} to {shown}: {} has been there for {} s: another git \
                     process is moving the branch, or one stopped and left it; remove the \
                     file if no git process is at work on {shown}",
                    path.join(format!("{dst}.lock")).display(),
                    REF_LOCK_TIMEOUT.as_secs()
                ))))
            }
            Err(e) => {
                return Err(GitError::new(
                    &format!("pushing {branch} to {shown}"),
                    e.message(),
                ))
            }
        }
        // As after any push, the remote-tracking branch follows.
        let _ = self.repo.reference(
            &format!("refs/remotes/origin/{branch}"),
            new,
            true,
            "image-updater: push",
        );
        Ok(())
    }

    /// Copy into `remote` (a repository on this machine) the objects of the commit `new` and
    /// its history that it lacks, as one pack: the pack made with the commit when the remote
    /// has the commit's parents, else a pack made here.
    fn send_objects(&self, remote: &Repository, new: Oid) -> Result<(), git2::Error> {
        if remote.find_commit(new).is_ok() {
            return Ok(());
        }
        let parents = self.repo.find_commit(new)?.parent_ids().collect::<Vec<_>>();
        if let Some((oid, pack)) = &*self.last_pack.borrow() {
            if *oid == new && parents.iter().all(|p| remote.find_commit(*p).is_ok()) {
                return write_pack(&remote.odb()?, pack);
            }
        }
        // What both sides have is not sent: the remote's branches, ours that it has, and the
        // parents of the commit (the head it was made on).
        let theirs = remote.references()?.flatten().filter_map(|r| r.target());
        let ours = self
            .repo
            .references_glob("refs/remotes/origin/*")?
            .flatten()
            .filter_map(|r| r.target());
        let known: Vec<Oid> = theirs
            .chain(ours)
            .chain(parents)
            .filter(|oid| self.repo.find_commit(*oid).is_ok() && remote.find_commit(*oid).is_ok())
            .collect();
        write_pack(&remote.odb()?, &pack_of(&self.repo, new, &known)?)
    }

    /// [`WorkTree::push_ref`] over the network: the server checks and moves the branch.
    fn push_network(&self, src: &str, branch: &str, force: bool) -> Result<(), GitError> {
        let mut remote = self.remote()?;
        let url = remote.url().unwrap_or_default().to_string();
        let rejected = std::cell::RefCell::new(None::<String>);
        let accepted = std::cell::Cell::new(false);
        let dst = format!("refs/heads/{branch}");
        let refusal = Refusal::default();
        let mut callbacks = callbacks_noting(&url, &self.env, refusal.clone());
        callbacks.push_update_reference(|refname, status| {
            match status {
                Some(msg) => *rejected.borrow_mut() = Some(format!("{refname}: {msg}")),
                None => accepted.set(accepted.get() || refname == dst),
            }
            Ok(())
        });
        let mut opts = PushOptions::new();
        opts.remote_callbacks(callbacks);
        // Pack with every core (libgit2's default is one thread).
        opts.packbuilder_parallelism(0);
        let plus = if force { "+" } else { "" };
        let spec = format!("{plus}{src}:refs/heads/{branch}");
        let result = remote.push(&[spec.as_str()], Some(&mut opts));
        drop(opts);
        if let Err(e) = result {
            if accepted.get() && rejected.borrow().is_none() {
                // The remote took the commit; only libgit2's own bookkeeping afterwards (the
                // remote-tracking ref, its log) failed, e.g. on a full disk. The push is done.
                tracing::warn!(
                    "pushed {branch} to {url}, then: {}",
                    credentials::redact(e.message())
                );
                return Ok(());
            }
            let why = refusal
                .borrow()
                .clone()
                .unwrap_or_else(|| e.message().to_string());
            let mut err = GitError::new(&format!("pushing {branch} to {url}"), why);
            if e.code() == git2::ErrorCode::NotFastForward {
                err.kind = GitErrorKind::Rejected;
            }
            return Err(err);
        }
        if let Some(r) = rejected.into_inner() {
            let mut err = GitError::new(&format!("push to {url} rejected"), r);
            err.kind = GitErrorKind::Rejected;
            return Err(err);
        }
        Ok(())
    }

    /// Fetch `branch` from `origin`; the commit it points at there, or None when it does not
    /// exist there.
    pub fn fetch(&self, branch: &str) -> Result<Option<Oid>, GitError> {
        let started = std::time::Instant::now();
        let url = self.remote_url()?;
        let fetched = self.fetch_branch(branch);
        log_request("fetch", &url, branch, started, &fetched);
        fetched
    }

    fn fetch_branch(&self, branch: &str) -> Result<Option<Oid>, GitError> {
        let mut remote = self.remote()?;
        let url = remote.url().unwrap_or_default().to_string();
        let refusal = Refusal::default();
        let exists = {
            let conn = remote
                .connect_auth(
                    git2::Direction::Fetch,
                    Some(callbacks_noting(&url, &self.env, refusal.clone())),
                    None,
                )
                .map_err(|e| {
                    let why = refusal
                        .borrow()
                        .clone()
                        .unwrap_or_else(|| e.message().to_string());
                    GitError::new(&format!("connecting to {url}"), why)
                })?;
            let want = format!("refs/heads/{branch}");
            let list = conn
                .list()
                .map_err(|e| GitError::new(&format!("listing {url}"), e.message()))?;
            list.iter().any(|h| h.name() == want)
        };
        if !exists {
            return Ok(None);
        }
        let mut opts = git2::FetchOptions::new();
        opts.remote_callbacks(callbacks(&url, &self.env));
        let tracking = format!("refs/remotes/origin/{branch}");
        let spec = format!("+refs/heads/{branch}:{tracking}");
        remote
            .fetch(&[spec.as_str()], Some(&mut opts), None)
            .map_err(|e| GitError::new(&format!("fetching {branch} from {url}"), e.message()))?;
        self.repo
            .refname_to_id(&tracking)
            .map(Some)
            .map_err(|e| GitError::new("reading the fetched branch", e.message()))
    }

    /// Move the checked-out `branch` forward to `to` and update the work tree, refusing
    /// (never forcing) when the branch has commits of its own or local changes are in the way.
    pub fn fast_forward(&self, branch: &str, to: Oid) -> Result<(), GitError> {
        let head = self.head()?;
        if head == to {
            return Ok(());
        }
        let ancestor = self
            .repo
            .graph_descendant_of(to, head)
            .map_err(|e| GitError::new("comparing commits", e.message()))?;
        if !ancestor {
            return Err(GitError::plain(format!(
                "{branch} has commits that origin/{branch} does not: cannot fast-forward; nothing was forced"
            )));
        }
        let target = self
            .repo
            .find_object(to, None)
            .map_err(|e| GitError::new("reading the fetched commit", e.message()))?;
        let mut checkout = git2::build::CheckoutBuilder::new();
        checkout.safe();
        self.repo
            .checkout_tree(&target, Some(&mut checkout))
            .map_err(|e| {
                GitError::new(
                    &format!("updating the work tree to origin/{branch}"),
                    e.message(),
                )
            })?;
        self.repo
            .reference(
                &format!("refs/heads/{branch}"),
                to,
                true,
                "image-updater: fast-forward",
            )
            .map_err(|e| GitError::new("fast-forwarding", e.message()))?;
        Ok(())
    }

    /// Each of `files`' paths relative to the work tree's root, symlinks resolved (a link's
    /// target is what a commit changes). Each directory is resolved once, not once per file.
    pub fn relative_all(&self, files: &[&Path]) -> Result<Vec<PathBuf>, GitError> {
        let mut dirs: std::collections::HashMap<&Path, PathBuf> = Default::default();
        let mut out = Vec::with_capacity(files.len());
        for file in files {
            let failed = |e| GitError::new(&file.display().to_string(), e);
            // A file about to be created (argocd-image-updater's override file) is no link.
            let link = match std::fs::symlink_metadata(file) {
                Ok(meta) => meta.is_symlink(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
                Err(e) => return Err(failed(e)),
            };
            let abs = match (link, file.parent(), file.file_name()) {
                (false, Some(dir), Some(name)) => match dirs.get(dir) {
                    Some(d) => d.join(name),
                    None => {
                        let d = dir.canonicalize().map_err(failed)?;
                        let abs = d.join(name);
                        dirs.insert(dir, d);
                        abs
                    }
                },
                _ => file.canonicalize().map_err(failed)?,
            };
            let rel = abs.strip_prefix(&self.root).map_err(|_| {
                GitError::plain(format!(
                    "{} is outside the work tree {}",
                    file.display(),
                    self.root.display()
                ))
            })?;
            out.push(rel.to_path_buf());
        }
        Ok(out)
    }
}

/// The tree of `base` with `contents` written over it in `repo`, modes kept.
fn tree_with<'r>(
    repo: &'r Repository,
    base: &git2::Commit<'_>,
    contents: &[(PathBuf, Vec<u8>)],
) -> Result<git2::Tree<'r>, GitError> {
    let base_tree = base
        .tree()
        .map_err(|e| GitError::new("reading a tree", e.message()))?;
    let mut update = TreeUpdateBuilder::new();
    for (rel, bytes) in contents {
        let blob = repo.blob(bytes).map_err(|e| {
            GitError::new(
                &format!("writing the blob of {}", rel.display()),
                e.message(),
            )
        })?;
        let mode = match base_tree.get_path(rel) {
            Ok(entry) if entry.filemode() == i32::from(FileMode::BlobExecutable) => {
                FileMode::BlobExecutable
            }
            _ => FileMode::Blob,
        };
        update.upsert(rel, blob, mode);
    }
    let tree_oid = update
        .create_updated(repo, &base_tree)
        .map_err(|e| GitError::new("building the tree", e.message()))?;
    if tree_oid == base_tree.id() {
        return Err(GitError::plain(
            "nothing to commit: the files equal the base".into(),
        ));
    }
    repo.find_tree(tree_oid)
        .map_err(|e| GitError::new("tree", e.message()))
}

/// One pack of the objects reachable from the commit `new` and not from `known` (commits
/// `repo` has); deltas searched on every core.
fn pack_of(repo: &Repository, new: Oid, known: &[Oid]) -> Result<Vec<u8>, git2::Error> {
    let mut walk = repo.revwalk()?;
    walk.push(new)?;
    for oid in known {
        walk.hide(*oid)?;
    }
    let mut pack = repo.packbuilder()?;
    pack.set_threads(0);
    pack.insert_walk(&mut walk)?;
    let mut buf = git2::Buf::new();
    pack.write_buf(&mut buf)?;
    Ok(buf.to_vec())
}

/// Index `pack` into the object database `odb`.
fn write_pack(odb: &git2::Odb<'_>, pack: &[u8]) -> Result<(), git2::Error> {
    let mut writer = odb.packwriter()?;
    std::io::Write::write_all(&mut writer, pack)
        .map_err(|e| git2::Error::from_str(&e.to_string()))?;
    writer.commit()?;
    Ok(())
}

/// The repository on this machine that `url` names, as libgit2 decides it: a `file://` URL
/// (percent-decoded) or an existing directory; None for a network remote.
fn local_repository(url: &str) -> Option<PathBuf> {
    if let Some(rest) = url.strip_prefix("file://") {
        let rest = rest.strip_prefix("localhost").unwrap_or(rest);
        let bytes: Vec<u8> = percent_encoding::percent_decode_str(rest).collect();
        return Some(PathBuf::from(String::from_utf8_lossy(&bytes).into_owned()));
    }
    let path = Path::new(url);
    path.is_dir().then(|| path.to_path_buf())
}

/// Clone `url` into `dir` (for `--clone`), checking out `branch` or the remote's default.
///
/// Over the network the clone is shallow (the last commit only): a run needs no history, and
/// pushes and the race retry work on top of it. libgit2's local transport cannot clone
/// shallow, so `file://` URLs and paths get the whole history.
pub fn clone(url: &str, branch: Option<&str>, dir: &Path, env: &Env) -> Result<WorkTree, GitError> {
    let mut fetch = git2::FetchOptions::new();
    fetch.remote_callbacks(callbacks(url, env));
    let shallow = url.contains("://") && !url.starts_with("file://")
        || hostkeys::ssh_host_port(url).is_some();
    if shallow {
        fetch.depth(1);
    }
    tracing::info!(
        "cloning {}{}",
        credentials::redact(url),
        if shallow { " (shallow, depth 1)" } else { "" }
    );
    let mut builder = git2::build::RepoBuilder::new();
    builder.fetch_options(fetch);
    if let Some(b) = branch {
        builder.branch(b);
    }
    let started = std::time::Instant::now();
    let cloned = builder.clone(url, dir);
    log_request("clone", url, branch.unwrap_or("HEAD"), started, &cloned);
    let repo = match cloned {
        Ok(repo) => repo,
        Err(e) => {
            // A `--branch` the remote does not have: say which it has.
            if let Some(b) = branch {
                if let Ok(branches) = remote_branches(url, env) {
                    if !branches.iter().any(|x| x == b) {
                        return Err(no_branch(
                            url,
                            &format!("--branch {b:?} is not a branch of the remote"),
                            &branches,
                        ));
                    }
                }
            }
            return Err(GitError::new(&format!("cloning {url}"), e.message()));
        }
    };
    // The remote's HEAD may name a branch it does not have: the clone is then an empty,
    // unborn tree, and reading it would find nothing. That is an error, not "no updates".
    if repo.head().is_err() {
        let named = repo
            .find_reference("HEAD")
            .ok()
            .and_then(|h| h.symbolic_target().ok().flatten().map(str::to_string))
            .unwrap_or_else(|| "HEAD".into());
        let branches: Vec<String> = repo
            .branches(Some(git2::BranchType::Remote))
            .map(|list| {
                list.flatten()
                    .filter_map(|(b, _)| b.name().ok().flatten().map(str::to_string))
                    .filter_map(|n| n.strip_prefix("origin/").map(str::to_string))
                    .filter(|n| n != "HEAD")
                    .collect()
            })
            .unwrap_or_default();
        let why = match branch {
            Some(b) => format!("--branch {b:?} could not be checked out"),
            None => format!("the remote's HEAD names {named}, which it does not have"),
        };
        return Err(no_branch(url, &why, &branches));
    }
    WorkTree::open(dir, env)
}

/// The branches of the remote at `url`, by asking it (`git ls-remote --heads`).
fn remote_branches(url: &str, env: &Env) -> Result<Vec<String>, git2::Error> {
    let mut remote = git2::Remote::create_detached(url)?;
    let conn = remote.connect_auth(git2::Direction::Fetch, Some(callbacks(url, env)), None)?;
    let mut names: Vec<String> = conn
        .list()?
        .iter()
        .filter_map(|h| h.name().strip_prefix("refs/heads/").map(str::to_string))
        .collect();
    names.sort();
    Ok(names)
}

/// A clone with no branch to read: `why`, the remote's branches, and what to do.
fn no_branch(url: &str, why: &str, branches: &[String]) -> GitError {
    let listed = if branches.is_empty() {
        "it has no branches (an empty repository): there is nothing to read".to_string()
    } else {
        let shown: Vec<&str> = branches.iter().take(20).map(String::as_str).collect();
        let more = branches.len().saturating_sub(shown.len());
        format!(
            "its branches: {}{}; name one with --branch (IMAGE_UPDATER_BRANCH)",
            shown.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        )
    };
    GitError {
        kind: GitErrorKind::NoBranch,
        ..GitError::new(&format!("cloning {url}"), format!("{why}; {listed}"))
    }
}

/// One line at `-vv` for a request to a git remote: what, where (credentials left out), the
/// outcome and how long it took.
fn log_request<T, E: std::fmt::Display>(
    what: &str,
    url: &str,
    refs: &str,
    started: std::time::Instant,
    result: &Result<T, E>,
) {
    let ms = crate::observe::ms_since(started);
    let url = credentials::redact(url);
    match result {
        Ok(_) => tracing::debug!(url = %url, refs, ms, "git {what}: ok"),
        Err(e) => {
            let e = credentials::redact(&e.to_string());
            tracing::debug!(url = %url, refs, ms, error = %e, "git {what}: failed")
        }
    }
}

/// Callbacks for talking to the remote at `url`: credentials from the environment, and SSH
/// host keys checked against known_hosts ([`hostkeys`]); TLS is verified by libgit2.
fn callbacks(url: &str, env: &Env) -> RemoteCallbacks<'static> {
    callbacks_noting(url, env, Default::default())
}

/// A host key refusal, kept aside: libgit2 replaces the callback's message with its own.
type Refusal = std::rc::Rc<std::cell::RefCell<Option<String>>>;

/// [`callbacks`] that also note why a host key was refused in `refusal`.
fn callbacks_noting(url: &str, env: &Env, refusal: Refusal) -> RemoteCallbacks<'static> {
    let mut callbacks = RemoteCallbacks::new();
    let mut creds = credentials::Provider::from_env(env);
    let path = hostkeys::known_hosts_path(env);
    let accept_unknown = hostkeys::accepts_unknown_hosts(env);
    callbacks.credentials(move |url, user, allowed| creds.get(url, user, allowed));
    let port = hostkeys::ssh_host_port(url).map_or(22, |(_, p)| p);
    callbacks.certificate_check(move |cert, host| {
        use git2::CertificateCheckStatus::{CertificateOk, CertificatePassthrough};
        let Some(hostkey) = cert.as_hostkey() else {
            return Ok(CertificatePassthrough);
        };
        let Some(key) = hostkey.hostkey() else {
            return Err(git2::Error::from_str("the SSH server's host key could not be read"));
        };
        let text = path
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default();
        let shown = path.as_ref().map_or("(no known_hosts file)".into(), |p| p.display().to_string());
        let why = match hostkeys::check(&text, host, port, key) {
            hostkeys::Verdict::Known => return Ok(CertificateOk),
            hostkeys::Verdict::Unknown if accept_unknown => return Ok(CertificateOk),
            hostkeys::Verdict::Unknown => format!(
                "the SSH host key of {host} (port {port}) is not in {shown}: add it (ssh-keyscan -p {port} {host}) or point IMAGE_UPDATER_SSH_KNOWN_HOSTS at a file that has it"
            ),
            hostkeys::Verdict::Mismatch => format!(
                "the SSH host key of {host} (port {port}) differs from the one in {shown}: refusing to connect"
            ),
        };
        *refusal.borrow_mut() = Some(why.clone());
        Err(git2::Error::from_str(&why))
    });
    callbacks
}
