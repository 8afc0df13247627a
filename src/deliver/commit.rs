//! `mode: commit`: one commit with every rewritten file, on top of the branch, pushed; then
//! the branch moved and the files written. A run stopped at any point leaves the work tree as
//! it was or complete, the remote without half a commit, and the next run finishes the job
//! ([`complete_stopped_run`]).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::app_changes::AppChanges;
use super::{all_updates, error, Delivered, FilePlan};
use crate::config::{CommitConfig, Delivery, Via};
use crate::env::Env;
use crate::flux_repo::CommitPlan;
use crate::forge::github_commit::{ApiCommitError, ApiCommits};
use crate::forge::Target;
use crate::git::{GitError, Oid, WorkTree};
use crate::manifest::edit::{remove_stale_temps, write_all_atomic};
use crate::report::ErrorEntry;
use crate::template::commit_message_with;

/// The reference a commit waits under while it is pushed.
const PENDING_REF: &str = "refs/image-updater/pending";

/// Why a stopped run could not be completed ([`complete_stopped_run`]).
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoppedRunError {
    /// The work tree's state could not be read, or its branch not moved.
    #[error(transparent)]
    Git(#[from] GitError),
    /// A file HEAD holds could not be written to the work tree.
    #[error("{}: a stopped run left it behind {head}, and it could not be written: {source}", path.display())]
    Write {
        path: PathBuf,
        head: Oid,
        #[source]
        source: std::io::Error,
    },
}

/// Finish what a run stopped between moving the branch and writing the files left undone:
/// write HEAD's bytes to the files it did not reach ([`WorkTree::unwritten`]).
pub(crate) fn complete_stopped_run(wt: &WorkTree, branch: &str) -> Result<(), StoppedRunError> {
    let files = wt.unwritten()?;
    if !files.is_empty() {
        let head = wt.head()?;
        let paths: Vec<PathBuf> = files.iter().map(|(p, _)| p.clone()).collect();
        wt.advance(branch, head, &paths)?;
        let abs: Vec<PathBuf> = paths.iter().map(|p| wt.root().join(p)).collect();
        let list: Vec<(&Path, &[u8])> = abs
            .iter()
            .zip(&files)
            .map(|(a, (_, bytes))| (a.as_path(), bytes.as_slice()))
            .collect();
        for (path, result) in paths.iter().zip(write_all_atomic(&list)) {
            result.map_err(|source| StoppedRunError::Write {
                path: path.clone(),
                head,
                source,
            })?;
        }
        tracing::info!(
            "wrote {} file(s) of {head} that a stopped run left unwritten",
            files.len()
        );
    }
    wt.mark_written();
    Ok(())
}

/// Commit the rewritten files of `plan` on top of HEAD, push the commit, and only then move
/// the branch and write the files. A work tree behind its own HEAD (stopped before the files
/// were written, noted by [`WorkTree::mark_unwritten`]) is completed without a new commit.
/// `dirs` are the directories the run read files in: a stopped run's temporary files there
/// are taken away first. A push the remote rejects (someone pushed first) is an
/// [`crate::git::GitErrorKind::Rejected`] error: [`catch_up`], compute the edits again, and
/// deliver again. With `api` (`commit.via: api`) GitHub makes the commit
/// ([`commit_via_api`]) and the work tree fetches it. Our own message (not an
/// ImageUpdateAutomation's) says what changed in the app (`app`, [`super::app_changes`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn deliver(
    config: &CommitConfig,
    flux: &CommitPlan,
    wt: &WorkTree,
    branch: &str,
    dirs: &BTreeSet<&Path>,
    plan: &[FilePlan<'_>],
    api: Option<&Target>,
    app: &AppChanges,
) -> Result<Delivered, GitError> {
    for dir in dirs {
        remove_stale_temps(dir);
    }
    let mut delivered = Delivered {
        updates: all_updates(plan),
        ..Delivered::default()
    };
    if plan.is_empty() {
        return Ok(delivered);
    }
    let parent = wt.head()?;
    let files: Vec<&Path> = plan.iter().map(|f| f.path).collect();
    let contents: Vec<(PathBuf, Vec<u8>)> = wt
        .relative_all(&files)?
        .into_iter()
        .zip(plan)
        .map(|(rel, f)| (rel, f.new_text.as_bytes().to_vec()))
        .collect();
    let paths: Vec<PathBuf> = contents.iter().map(|(p, _)| p.clone()).collect();
    // An ImageUpdateAutomation governing the files names the author and message (Flux).
    let author = match &flux.author {
        Some((name, email)) => (name.as_str(), email.as_str()),
        None => (config.author.name.as_str(), config.author.email.as_str()),
    };
    let message = flux.message.clone().unwrap_or_else(|| {
        commit_message_with(
            &config.message,
            &delivered.updates,
            config.signoff.then_some(&config.author),
            &super::app_changes::commit_text(&delivered.updates, app),
        )
    });
    if let Some(to) = &flux.push_to {
        return to_push_branch(wt, parent, &contents, author, &message, to, api, delivered);
    }
    if !wt.holds_files(parent, &contents) {
        let oid = match api {
            Some(target) => commit_via_api(wt, target, branch, parent, false, &contents, &message)?,
            None => {
                let oid = wt.commit_to_ref(parent, PENDING_REF, &contents, author, &message)?;
                let pushed = wt.push_ref(PENDING_REF, branch, false);
                wt.delete_ref(PENDING_REF);
                pushed?;
                oid
            }
        };
        delivered.commit = Some(oid.to_string());
        let followed = wt
            .mark_unwritten(oid)
            .and_then(|()| wt.advance(branch, oid, &paths));
        if let Err(e) = followed {
            // The updates are delivered: say so, and what is left for the next run.
            delivered.errors.push(error(format!(
                "{oid} was pushed to {branch}, but this work tree could not follow it ({e}); \
                 the next run brings it up to date"
            )));
            return Ok(delivered);
        }
    } else {
        // HEAD already has these files (a run stopped before it wrote them): bring the index
        // in line too, then write them below.
        wt.advance(branch, parent, &paths)?;
    }
    let files: Vec<(&Path, &[u8])> = plan
        .iter()
        .map(|f| (f.path, f.new_text.as_bytes()))
        .collect();
    let written = write_all_atomic(&files);
    if written.iter().all(Result::is_ok) {
        wt.mark_written();
    }
    for (f, result) in plan.iter().zip(written) {
        if let Err(e) = result {
            delivered.errors.push(ErrorEntry {
                image: None,
                file: Some(f.rel.to_string()),
                message: format!(
                    "{}: committed and pushed, but the work tree could not be written: {e}",
                    f.rel
                ),
            });
        }
    }
    Ok(delivered)
}

/// Commit `contents` for an automation whose `push.branch` is not the checked-out branch: on
/// top of that branch as the remote has it (Flux works on the push branch when it exists),
/// else on `head`; the checked-out branch and the work tree do not move. When the push branch
/// already holds these files nothing is delivered.
#[allow(clippy::too_many_arguments)]
fn to_push_branch(
    wt: &WorkTree,
    head: Oid,
    contents: &[(PathBuf, Vec<u8>)],
    author: (&str, &str),
    message: &str,
    push_to: &str,
    api: Option<&Target>,
    mut delivered: Delivered,
) -> Result<Delivered, GitError> {
    const PENDING: &str = "refs/image-updater/pending-push-branch";
    let remote = wt.fetch(push_to)?;
    let parent = remote.unwrap_or(head);
    if wt.holds_files(parent, contents) {
        delivered.updates.clear();
        return Ok(delivered);
    }
    let oid = match api {
        Some(target) => commit_via_api(
            wt,
            target,
            push_to,
            parent,
            remote.is_none(),
            contents,
            message,
        )?,
        None => {
            let oid = wt.commit_to_ref(parent, PENDING, contents, author, message)?;
            let pushed = wt.push_ref(PENDING, push_to, false);
            wt.delete_ref(PENDING);
            pushed?;
            oid
        }
    };
    delivered.commit = Some(oid.to_string());
    Ok(delivered)
}

/// The forge target `commit.via: api` commits through (GitHub only); `None` for `via: git`.
pub(crate) fn api_target(
    delivery: &Delivery,
    wt: &WorkTree,
    env: &Env,
) -> Result<Option<Target>, String> {
    if delivery.commit.via != Via::Api {
        return Ok(None);
    }
    let cfg = crate::forge::ForgeConfig {
        forge: delivery.forge,
        api_url: delivery.api_url.clone(),
        repository: delivery.repository.clone(),
    };
    let remote = wt.remote_url().map_err(|e| e.to_string())?;
    let lookup = |k: &str| env.raw(k).map(str::to_string);
    let target = crate::forge::resolve(&lookup, &remote, &cfg)
        .map_err(|e| format!("delivery.commit.via: api: {e}"))?;
    // Refuse a forge without the API before anything is committed.
    ApiCommits::connect(&target).map_err(|e| e.to_string())?;
    Ok(Some(target))
}

/// Commit `contents` on `branch` (whose head must be `parent`; created there first when
/// `create`) through GitHub's API, then fetch the new commit so the work tree can follow it.
/// A branch that moved meanwhile is a [`crate::git::GitErrorKind::Rejected`] error, as a rejected push is.
pub(crate) fn commit_via_api(
    wt: &WorkTree,
    target: &Target,
    branch: &str,
    parent: Oid,
    create: bool,
    contents: &[(PathBuf, Vec<u8>)],
    message: &str,
) -> Result<Oid, GitError> {
    // The pipeline runs on an async runtime that this synchronous stage must not block on:
    // the calls run on a thread of their own, with a runtime of their own.
    let made = std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| ApiCommitError::Failed(format!("starting the API client: {e}")))?;
            rt.block_on(async {
                let api = ApiCommits::connect(target).map_err(ApiCommitError::from)?;
                if create {
                    api.reset_branch(branch, &parent.to_string()).await?;
                }
                api.commit(branch, &parent.to_string(), message, contents)
                    .await
            })
        })
        .join()
        .unwrap_or_else(|_| Err(ApiCommitError::Failed("the API client stopped".into())))
    });
    let oid = match made {
        Ok(oid) => oid,
        Err(ApiCommitError::Moved(m)) => return Err(GitError::rejected(m)),
        Err(ApiCommitError::Failed(m)) => return Err(GitError::other(m)),
    };
    let fetched = wt.fetch(branch)?;
    match fetched {
        Some(f) if f.to_string() == oid => {
            tracing::info!("GitHub committed {oid} on {branch}");
            Ok(f)
        }
        other => Err(GitError::other(format!(
            "GitHub committed {oid} on {branch}, but fetching {branch} gave {}",
            other.map_or_else(|| "nothing".to_string(), |o| o.to_string())
        ))),
    }
}

/// After a rejected push: take what the remote's `branch` holds now (fast-forward to it).
pub(crate) fn catch_up(wt: &WorkTree, branch: &str) -> Result<(), GitError> {
    match wt.fetch(branch)? {
        Some(oid) => wt.fast_forward(branch, oid),
        None => Ok(()),
    }
}
