//! `mode: pull-request`: one branch and one pull/merge request per group of updates (per
//! image, or all together), never two for the same branch.
//!
//! For each group: the group's edits are applied to the files as the base has them, committed
//! on top of the base as the tip of the group's branch, and force-pushed when the content
//! differs from what the remote branch holds; then the open pull request whose head is that
//! branch is found and updated, or created. A policy whose image needs no update any more
//! (someone merged by hand) gets its open pull request closed with a comment saying why.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::PathBuf;

use super::app_changes::{self, AppChanges};
use super::{error, Delivered, FilePlan, PUSH_TRIES};
use crate::config::{Delivery, Group};
use crate::env::Env;
use crate::forge::{self, Forge, ForgeError, NewPullRequest};
use crate::git::{GitError, GitErrorKind, Oid, WorkTree};
use crate::manifest::edit::Edit;
use crate::report::{ErrorEntry, PullRequest, Update};
use crate::select::Change;
use crate::template::{branch_needs_updates, commit_message_with, fill_template, render_branch};

/// A marker in every body this tool writes, to tell its pull requests from people's.
pub const BODY_MARKER: &str = "<!-- image-updater -->";

/// A group of updates that travel in one pull request.
struct Batch {
    /// The group's name for templates: the policy name, or `all`.
    name: String,
    updates: Vec<Update>,
    /// Per file: the new content with only this group's edits.
    contents: Vec<(PathBuf, Vec<u8>)>,
}

/// The group a change travels in.
fn group_of(group: Group, change: &Change) -> String {
    match group {
        Group::PerImage => change.update.policy.clone(),
        Group::All => "all".to_string(),
    }
}

/// Split the plan into groups and build each group's file contents; a group whose files
/// cannot be built is an error in `errors`, and is left out.
fn batches(plan: &[FilePlan<'_>], group: Group, errors: &mut Vec<ErrorEntry>) -> Vec<Batch> {
    // group name -> file -> changes
    let mut by_group: BTreeMap<String, BTreeMap<usize, Vec<&Change>>> = BTreeMap::new();
    for (i, f) in plan.iter().enumerate() {
        for change in f.changes {
            by_group
                .entry(group_of(group, change))
                .or_default()
                .entry(i)
                .or_default()
                .push(change);
        }
    }
    let mut out = Vec::new();
    'groups: for (name, files) in by_group {
        let mut batch = Batch {
            name,
            updates: Vec::new(),
            contents: Vec::new(),
        };
        for (i, changes) in files {
            let f = &plan[i];
            let edits: Vec<Edit> = changes
                .iter()
                .flat_map(|c| c.edits.iter().cloned())
                .collect();
            let path = std::path::Path::new(f.rel);
            // A group holding every change of the file takes the file's new text as planned
            // (it may hold changes beyond scalar edits: a lock's inserted lines, `set`).
            let whole = changes.len() == f.changes.len();
            let built = if whole {
                Ok(f.new_text.to_string())
            } else {
                crate::manifest::apply_file_edits(path, f.text, &edits)
            };
            match built {
                Ok(text) => batch
                    .contents
                    .push((PathBuf::from(f.rel), text.into_bytes())),
                Err(e) => {
                    errors.push(ErrorEntry {
                        image: None,
                        file: Some(f.rel.to_string()),
                        message: format!("{}: not rewritten for {}: {e}", f.rel, batch.name),
                    });
                    continue 'groups;
                }
            }
            batch
                .updates
                .extend(changes.iter().map(|c| c.update.clone()));
        }
        out.push(batch);
    }
    out
}

/// The default body: a table of the updates and the marker. Names and paths are Markdown
/// code spans or escaped text ([`crate::escape`]): none can leave its cell.
fn table(updates: &[Update]) -> String {
    use crate::escape::md_code;
    let mut rows: BTreeMap<(String, String, String), Vec<String>> = BTreeMap::new();
    for u in updates {
        rows.entry((u.image.clone(), u.from.clone(), u.to.clone()))
            .or_default()
            .push(format!("{}:{}", u.file, u.line));
    }
    let mut out = String::from("| Image | From | To | Files |\n|---|---|---|---|\n");
    for ((image, from, to), files) in rows {
        let files: Vec<String> = files.iter().map(|f| md_code(f)).collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            md_code(&image),
            md_code(&from),
            md_code(&to),
            files.join(", ")
        );
    }
    out
}

/// The body of a pull request: the template (or the default text) with the table, what changed
/// in the app (`app`, already Markdown: `{{ app_changes }}` in a template, else after it) and
/// the marker. The values a template takes from the updates (names from the repo's policies)
/// are Markdown-escaped first: the template's author writes the markup, the values do not.
fn body(template: Option<&str>, updates: &[Update], branch: &str, app: &str) -> String {
    let table = table(updates);
    let text = match template {
        Some(t) => {
            let md = crate::escape::md_text;
            let escaped: Vec<Update> = updates
                .iter()
                .map(|u| Update {
                    policy: md(&u.policy),
                    image: md(&u.image),
                    file: md(&u.file),
                    from: md(&u.from),
                    to: md(&u.to),
                    ..u.clone()
                })
                .collect();
            let filled = fill_template(t, &escaped).replace("{{ table }}", &table);
            if t.contains("{{ app_changes }}") {
                filled.replace("{{ app_changes }}", app)
            } else if app.is_empty() {
                filled
            } else {
                format!("{}\n\n{app}", filled.trim_end())
            }
        }
        None if app.is_empty() => format!("Image updates found by image-updater.\n\n{table}"),
        None => format!("Image updates found by image-updater.\n\n{table}\n{app}"),
    };
    format!(
        "{}\n\n{BODY_MARKER}\n<!-- branch: {branch} -->\n",
        text.trim_end()
    )
}

/// Push each group's branch and open or update its pull request; close the pull requests of
/// `current` policies (images that need no update now) that are still open. The forge is
/// found from the remote and `env` ([`forge::detect`]). Bodies and commit messages say what
/// changed in the app (`app`, [`super::app_changes`]).
pub(crate) async fn deliver(
    delivery: &Delivery,
    wt: &WorkTree,
    base: &str,
    plan: &[FilePlan<'_>],
    current: &[String],
    env: &Env,
    app: &AppChanges,
) -> Delivered {
    let forge = match connect(delivery, wt, env) {
        Ok(f) => f,
        Err(message) => return Delivered::nothing(message),
    };
    let api = match super::commit::api_target(delivery, wt, env) {
        Ok(api) => api,
        Err(message) => return Delivered::nothing(message),
    };
    let base_oid = match wt.head() {
        Ok(o) => o,
        Err(e) => return Delivered::nothing(e.to_string()),
    };
    let mut delivered = Delivered::default();
    let mut landed: HashSet<String> = HashSet::new();
    for batch in batches(plan, delivery.group, &mut delivered.errors) {
        let branch = render_branch(&delivery.branch, &batch.name, &batch.updates);
        match one(
            delivery,
            wt,
            forge.as_ref(),
            api.as_ref(),
            base,
            base_oid,
            &branch,
            &batch,
            app,
        )
        .await
        {
            Ok(pr) => {
                delivered.pull_requests.push(pr);
                landed.insert(batch.name);
            }
            Err(message) => delivered
                .errors
                .push(error(format!("pull request for {branch}: {message}"))),
        }
    }
    delivered.updates = plan
        .iter()
        .flat_map(|f| f.changes)
        .filter(|c| landed.contains(&group_of(delivery.group, c)))
        .map(|c| c.update.clone())
        .collect();
    // Close what is no longer needed: only where the branch name can be known without an
    // update (the template uses no update values).
    if delivery.group == Group::PerImage && !branch_needs_updates(&delivery.branch) {
        for name in current {
            let branch = render_branch(&delivery.branch, name, &[]);
            match forge.find_open(&branch, base).await {
                Ok(Some(pr)) if pr.body.contains(BODY_MARKER) => {
                    // A Markdown comment: the names come from the repo.
                    let comment = format!(
                        "{} already has the newest tag that policy {} allows, so this pull request is no longer needed. Closed by image-updater.",
                        crate::escape::md_text(base),
                        crate::escape::md_code(name)
                    );
                    match forge.close(pr.number, &comment).await {
                        Ok(()) => delivered.pull_requests.push(PullRequest {
                            branch,
                            number: pr.number,
                            url: pr.url,
                            action: "closed".into(),
                        }),
                        Err(e) => delivered
                            .errors
                            .push(error(format!("closing #{}: {e}", pr.number))),
                    }
                }
                Ok(_) => {}
                Err(e) => delivered
                    .errors
                    .push(error(format!("looking up {branch}: {e}"))),
            }
        }
    }
    delivered
}

/// Decide the forge, its API URL, the repository and the token, and build the client, without
/// calling the forge: what `run` checks before any registry is asked, so that a forge it cannot
/// talk to (no token for it, no way to tell which it is) stops the run first.
pub(crate) fn check_forge(delivery: &Delivery, wt: &WorkTree, env: &Env) -> Result<(), String> {
    connect(delivery, wt, env).map(|_| ())
}

fn connect(delivery: &Delivery, wt: &WorkTree, env: &Env) -> Result<Box<dyn Forge>, String> {
    let cfg = forge::ForgeConfig {
        forge: delivery.forge,
        api_url: delivery.api_url.clone(),
        repository: delivery.repository.clone(),
    };
    let remote = wt.remote_url().map_err(|e| e.to_string())?;
    let lookup = |k: &str| env.raw(k).map(str::to_string);
    forge::detect(&lookup, &remote, &cfg).map_err(|e| e.to_string())
}

/// Why one group's pull request could not be delivered: a git step (commit, fetch, push) or
/// a forge API call, each in its own words.
#[derive(Debug, thiserror::Error)]
enum BatchError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Forge(#[from] ForgeError),
}

#[allow(clippy::too_many_arguments)]
async fn one(
    delivery: &Delivery,
    wt: &WorkTree,
    forge: &dyn Forge,
    api: Option<&forge::Target>,
    base: &str,
    base_oid: Oid,
    branch: &str,
    batch: &Batch,
    app: &AppChanges,
) -> Result<PullRequest, BatchError> {
    let c = &delivery.commit;
    let message = commit_message_with(
        &c.message,
        &batch.updates,
        c.signoff.then_some(&c.author),
        &app_changes::commit_text(&batch.updates, app),
    );
    let pushed = match api {
        Some(target) => via_api(wt, target, base_oid, branch, batch, &message)?,
        None => push_branch(delivery, wt, base_oid, branch, batch, &message)?,
    };
    let title = match &delivery.pull_request.title {
        Some(t) => fill_template(t, &batch.updates),
        None => message.lines().next().unwrap_or_default().to_string(),
    };
    let body = body(
        delivery.pull_request.body.as_deref(),
        &batch.updates,
        branch,
        &app_changes::markdown(&batch.updates, app),
    );
    let found = forge.find_open(branch, base).await?;
    let p = &delivery.pull_request;
    let (pr, action) = match found {
        None => {
            let pr = forge
                .create(&NewPullRequest {
                    head: branch.to_string(),
                    base: base.to_string(),
                    title: title.clone(),
                    body: body.clone(),
                    draft: p.draft,
                })
                .await?;
            forge.add_labels(pr.number, &p.labels).await?;
            forge.request_reviewers(pr.number, &p.reviewers).await?;
            forge.add_assignees(pr.number, &p.assignees).await?;
            if p.auto_merge {
                forge.enable_auto_merge(&pr).await?;
            }
            (pr, "created")
        }
        Some(pr) if pr.title != title || pr.body.trim() != body.trim() => {
            let pr = forge.update(pr.number, &title, &body).await?;
            (pr, "updated")
        }
        Some(pr) if pushed => (pr, "updated"),
        Some(pr) => (pr, "unchanged"),
    };
    Ok(PullRequest {
        branch: branch.to_string(),
        number: pr.number,
        url: pr.url,
        action: action.into(),
    })
}

/// `commit.via: api`: unless the remote branch already proposes exactly this change, start it
/// again at the base and have GitHub commit the group's files on it
/// ([`crate::deliver::commit::commit_via_api`]); whether it moved.
fn via_api(
    wt: &WorkTree,
    target: &forge::Target,
    base_oid: Oid,
    branch: &str,
    batch: &Batch,
    message: &str,
) -> Result<bool, GitError> {
    for attempt in 1..=PUSH_TRIES {
        let remote = wt.fetch(branch)?;
        if remote.is_some_and(|r| wt.holds(r, base_oid, &batch.contents)) {
            return Ok(false);
        }
        match super::commit::commit_via_api(
            wt,
            target,
            branch,
            base_oid,
            true,
            &batch.contents,
            message,
        ) {
            Ok(_) => return Ok(true),
            Err(e) if e.kind == GitErrorKind::Rejected && attempt < PUSH_TRIES => {
                tracing::info!("{branch} moved while GitHub committed, trying again: {e}");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// Commit the group's files on the base as the tip of `branch` and force-push it, unless the
/// remote branch already proposes exactly this change; whether it was pushed.
fn push_branch(
    delivery: &Delivery,
    wt: &WorkTree,
    base_oid: Oid,
    branch: &str,
    batch: &Batch,
    message: &str,
) -> Result<bool, GitError> {
    let c = &delivery.commit;
    wt.commit_to_branch(
        base_oid,
        branch,
        &batch.contents,
        (&c.author.name, &c.author.email),
        message,
    )?;
    // Race: two runs at once (a cron job overlapping itself, a re-run pipeline) push the same
    // branch. The other run may create or move it between our fetch and our push; the server
    // then refuses our push, as the branch no longer holds what it held when we looked. Fetch
    // again: a branch that now proposes exactly our change is delivered; else push over it.
    let mut pushed = false;
    for attempt in 1..=PUSH_TRIES {
        let remote = wt.fetch(branch)?;
        if remote.is_some_and(|r| wt.holds(r, base_oid, &batch.contents)) {
            break;
        }
        match wt.push(branch, true) {
            Ok(()) => {
                pushed = true;
                break;
            }
            Err(e) if e.kind == GitErrorKind::Rejected && attempt < PUSH_TRIES => {
                tracing::info!("push of {branch} rejected, fetching and trying again: {e}");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(pushed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(policy: &str, to: &str, file: &str) -> Update {
        Update {
            policy: policy.into(),
            image: format!("ghcr.io/acme/{policy}"),
            file: file.into(),
            line: 3,
            from: "1.0.0".into(),
            to: to.into(),
            digest: None,
            note: None,
        }
    }

    #[test]
    fn body_has_table_and_marker() {
        let u = vec![
            update("web", "1.2.0", "a.yaml"),
            update("web", "1.2.0", "b.yaml"),
        ];
        let b = body(None, &u, "image-updater/web", "");
        assert!(
            b.contains("| `ghcr.io/acme/web` | `1.0.0` | `1.2.0` | `a.yaml:3`, `b.yaml:3` |"),
            "{b}"
        );
        assert!(b.contains(BODY_MARKER));
        let custom = body(Some("Bump {{ name }}\n\n{{ table }}"), &u, "x", "");
        assert!(custom.starts_with("Bump web\n\n| Image |"), "{custom}");
    }

    #[test]
    fn body_says_what_changed_in_the_app() {
        let u = vec![update("web", "1.2.0", "a.yaml")];
        let app = "### What changed in the app\n\n- `web`: [x](https://github.com/a/b)\n";
        let b = body(None, &u, "x", app);
        assert!(
            b.contains("| `a.yaml:3` |\n\n### What changed in the app\n\n- `web`"),
            "{b}"
        );
        assert!(
            b.ends_with(&format!("{BODY_MARKER}\n<!-- branch: x -->\n")),
            "{b}"
        );
        let placed = body(Some("{{ app_changes }}\n\n{{ table }}"), &u, "x", app);
        assert!(placed.starts_with("### What changed"), "{placed}");
        let after = body(Some("Bump {{ name }}"), &u, "x", app);
        assert!(after.starts_with("Bump web\n\n### What changed"), "{after}");
        assert_eq!(
            body(Some("Bump"), &u, "x", ""),
            body(Some("Bump"), &u, "x", "\n")
        );
    }

    #[test]
    fn body_keeps_hostile_names_in_their_cells() {
        let mut u = update("web", "1.2.0", "a|b <script>\n::error::x.yaml");
        u.policy = "web\n# heading <img>".into();
        let b = body(Some("Bump {{ name }}\n\n{{ table }}"), &[u], "x", "");
        assert!(
            b.contains("| `ghcr.io/acme/web` | `1.0.0` | `1.2.0` | a\\|b &lt;script&gt;\\\\n::error::x.yaml:3 |\n"),
            "{b}"
        );
        assert!(
            b.starts_with("Bump web\\\\n\\# heading &lt;img&gt;\n\n"),
            "{b}"
        );
    }

    #[test]
    fn groups_are_per_policy_or_one() {
        let c = Change {
            edits: Vec::new(),
            update: update("web", "1.2.0", "a.yaml"),
        };
        assert_eq!(group_of(Group::PerImage, &c), "web");
        assert_eq!(group_of(Group::All, &c), "all");
    }
}
