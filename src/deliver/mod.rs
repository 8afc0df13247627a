//! The deliver stage: put the rewritten files where the config says — one commit pushed to
//! the branch ([`commit`], `mode: commit`), or a branch and a pull request per group of
//! updates ([`pull_request`], `mode: pull-request`) — and say what landed ([`Delivered`]).
//! The pipeline builds the report from that; nothing here edits the report. Both say what
//! changed in the app each update brings, when its images name their source ([`app_changes`]).

pub(crate) mod app_changes;
pub(crate) mod commit;
pub(crate) mod pull_request;

use std::path::Path;

use crate::report::{ErrorEntry, PullRequest, Update};
use crate::select::Change;

/// How often a push is tried when a concurrent push wins: `mode: commit` fetches, computes
/// the edits again on the new tip and pushes again; a pull-request branch is fetched and
/// pushed again.
pub(crate) const PUSH_TRIES: usize = 3;

/// One rewritten file, as delivery needs it.
pub(crate) struct FilePlan<'a> {
    /// Where it is on disk.
    pub path: &'a Path,
    /// Its path relative to the work tree root, as the report names it.
    pub rel: &'a str,
    /// Its text as found.
    pub text: &'a str,
    /// Its text with every change applied.
    pub new_text: &'a str,
    /// Each update with the edits that make it.
    pub changes: &'a [Change],
}

/// What a delivery landed, and what went wrong on the way.
#[derive(Debug, Default)]
pub(crate) struct Delivered {
    /// The updates that are now on the branch or in a pull request, in the plan's order.
    pub updates: Vec<Update>,
    /// The commit pushed to the branch (`mode: commit`).
    pub commit: Option<String>,
    /// The pull requests created, updated, left unchanged or closed.
    pub pull_requests: Vec<PullRequest>,
    pub errors: Vec<ErrorEntry>,
}

impl Delivered {
    /// Nothing landed, because of `message`.
    pub fn nothing(message: String) -> Delivered {
        Delivered {
            errors: vec![error(message)],
            ..Delivered::default()
        }
    }
}

/// Every update of `plan`, in order.
fn all_updates(plan: &[FilePlan<'_>]) -> Vec<Update> {
    plan.iter()
        .flat_map(|f| f.changes.iter().map(|c| c.update.clone()))
        .collect()
}

/// An error about the delivery as a whole (no image, no file).
fn error(message: String) -> ErrorEntry {
    ErrorEntry {
        image: None,
        file: None,
        message,
    }
}
