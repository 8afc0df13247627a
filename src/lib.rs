//! image-updater: watch registries for new image tags and rewrite a GitOps repo's manifests.
//!
//! The pipeline, stage by stage, with plain data between the stages:
//!
//! ```text
//! discover (manifest) ─► resolve (registry) ─► select (policy) ─► rewrite (manifest) ─► deliver (git)
//! ```
//!
//! [`execute`] runs it for `run`, `plan` and `scan`; [`list_tags`] serves `tags`.

mod argocd_objects; // argocd-image-updater: Applications as policies
pub mod ci;
pub mod cli;
pub mod config;
mod deliver;
mod discover;
pub mod escape;
pub mod forge;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod git;
mod http;
pub mod manifest;
pub mod observe;
mod parallel;
pub mod policy;
pub mod reference;
pub mod registry;
pub mod report;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use config::{Config, ConfigError, DeliveryMode, Watched};
use discover::{Discovery, Occurrence};
use manifest::edit::{write_all_atomic, Edit};
use policy::Policy;
use reference::ImageRef;
use registry::{layout::LayoutSource, Registries, TagSource};
use report::{ErrorEntry, Reference, Report, ScanReport, Skipped, TagsReport, Update};

/// What went wrong before any work could be done; each variant maps to an exit code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad config or bad arguments: exit 2, nothing touched.
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Usage(String),
    /// Something failed that is not the user's input: exit 1.
    #[error("{0}")]
    Failed(String),
}

impl Error {
    /// The process exit code of the product contract.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) | Error::Usage(_) => 2,
            Error::Failed(_) => 1,
        }
    }
}

/// Which of the repo-wide commands to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Rewrite and deliver.
    Run,
    /// Rewrite in memory only; report and diff.
    Plan,
    /// List references; resolve nothing.
    Scan,
}

/// This job's share of the images: `index` from 1 to `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = || format!("invalid shard {s:?}: expected I/N with 1 <= I <= N, e.g. 2/4");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u64 = i.trim().parse().map_err(|_| bad())?;
        let count: u64 = n.trim().parse().map_err(|_| bad())?;
        if index == 0 || count == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// Whether this shard handles the repository `canonical` (a stable hash, the same on every
    /// machine, so N jobs split the images without talking to each other).
    pub fn owns(&self, canonical: &str) -> bool {
        fnv1a(canonical.as_bytes()) % self.count == self.index - 1
    }
}

/// FNV-1a, 64 bit: a stable hash, the same on every machine and version.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A request for [`execute`].
#[derive(Debug, Clone)]
pub struct Request {
    pub command: Command,
    /// The work tree root.
    pub root: PathBuf,
    /// The config file; default `ROOT/.image-updater.yaml` (optional there).
    pub config: Option<PathBuf>,
    pub shard: Option<Shard>,
    /// Overrides the config's `delivery.mode`.
    pub mode: Option<DeliveryMode>,
}

/// What [`execute`] produced.
#[derive(Debug, Default)]
pub struct Outcome {
    pub report: Report,
    /// The unified diff of every rewritten file (for `plan`).
    pub diff: String,
    /// Every reference found (for `scan`).
    pub scan: ScanReport,
    /// What happened to the repository, in one line: committed and pushed, pull requests
    /// opened, updated or closed, or nothing written and why ([`summary_line`]).
    pub summary: String,
}

/// Load the config for `root`: an explicit file must exist; the default one may be absent.
/// The repository's own config may only name `ca_file` and `oci-layout:` paths inside `root`.
pub fn load_config(root: &Path, explicit: Option<&Path>) -> Result<(Config, PathBuf), Error> {
    let (file, required) = match explicit {
        Some(f) => (f.to_path_buf(), true),
        None => (root.join(".image-updater.yaml"), false),
    };
    let config = Config::load(&file, required)?;
    config.check_paths(&file, root)?;
    Ok((config, file))
}

/// How often `mode: commit` fetches, re-applies and pushes again after losing a race.
const PUSH_TRIES: usize = 3;

/// What one pass over the work tree found and would change.
struct Pass {
    report: Report,
    found: Discovery,
    /// Rewritten files: index into `found.sources`, new text.
    rewritten: Vec<(usize, String)>,
    /// The verified changes per rewritten file, update by update (for pull-request groups).
    planned: Vec<(usize, Vec<deliver::Change>)>,
    /// Policies whose images occur, resolved, and need no update: their open pull requests
    /// are no longer needed.
    current: Vec<String>,
    /// Images that occur, with a policy: how many, and how many of them belong to other
    /// shards (`--shard`).
    images: Shares,
}

/// Of the images that occur with a policy, how many there are and how many another shard
/// handles.
#[derive(Debug, Clone, Copy, Default)]
struct Shares {
    images: usize,
    others: usize,
}

/// The settings of a run, read once.
struct Ctx<'a> {
    req: &'a Request,
    config: Config,
    config_file: PathBuf,
    watched: Vec<Watched>,
    registries: Registries,
}

/// Run `run`, `plan` or `scan` on a work tree.
pub async fn execute(req: &Request) -> Result<Outcome, Error> {
    let root = &req.root;
    if !root.is_dir() {
        return Err(Error::Usage(format!(
            "{} is not a directory",
            root.display()
        )));
    }
    let (mut config, config_file) = load_config(root, req.config.as_deref())?;
    if let Some(mode) = req.mode {
        config.delivery.mode = mode;
    }
    let watched = config.watched(&config_file)?;
    let registries = Registries::new(&config.registries, &config.limits, root);
    let ctx = Ctx {
        req,
        config,
        config_file,
        watched,
        registries,
    };
    // Open the work tree before touching anything, so a delivery that cannot happen fails first.
    let work_tree = if req.command == Command::Run && ctx.config.delivery.mode != DeliveryMode::None
    {
        let mut wt = git::WorkTree::open(root).map_err(|e| Error::Usage(e.to_string()))?;
        wt.lock_runs().map_err(|e| Error::Failed(e.to_string()))?;
        let branch = wt
            .current_branch()
            .map_err(|e| Error::Usage(e.to_string()))?;
        for lock in wt.clear_stale_locks(&branch) {
            tracing::warn!("removed {}, left by a run that was stopped", lock.display());
        }
        if let Some(b) = ctx.config.delivery.base.as_deref().filter(|b| *b != branch) {
            return Err(Error::Usage(format!(
                "delivery.base is {b:?} but {branch:?} is checked out: check out {b:?} first"
            )));
        }
        if ctx.config.delivery.mode == DeliveryMode::Commit {
            complete_stopped_run(&wt, &branch).map_err(Error::Failed)?;
        }
        Some((wt, branch))
    } else {
        None
    };
    // `plan` compares with HEAD as `run` would, to show what `run` would leave alone; it reads
    // the repository and writes nothing. Outside a git work tree there is nothing to compare.
    let plan_tree =
        if req.command == Command::Plan && ctx.config.delivery.mode != DeliveryMode::None {
            git::WorkTree::open(root).ok()
        } else {
            None
        };
    let committed_only = work_tree.as_ref().map(|(wt, _)| wt).or(plan_tree.as_ref());

    let mut tags = TagCache::new();
    let mut outcome = Outcome::default();
    if req.command == Command::Scan {
        let pass = discover_pass(&ctx)?;
        outcome.scan = scan_report(&pass.found, pass.report.skipped);
        return Ok(outcome);
    }
    let mut pass = full_pass(&ctx, &mut tags, committed_only).await?;
    // The diff is what `plan` shows; `run` reports its changes in the commit.
    if req.command == Command::Plan {
        for (file, new_text) in &pass.rewritten {
            let src = &pass.found.sources[*file];
            // argocd-image-updater: a file to be created is diffed against nothing.
            let old = if src.created { "" } else { src.text.as_str() };
            outcome
                .diff
                .push_str(&unified_diff(&src.rel, old, new_text));
        }
    }
    let started = std::time::Instant::now();
    let counted = observe::Snapshot::now();
    if let (Some((wt, base)), DeliveryMode::PullRequest) = (&work_tree, ctx.config.delivery.mode) {
        observe::waiting(Some(
            "pull requests: pushing branches, calling the forge".into(),
        ));
        let plan: Vec<deliver::FilePlan<'_>> = pass
            .planned
            .iter()
            .map(|(file, changes)| deliver::FilePlan {
                rel: &pass.found.sources[*file].rel,
                text: &pass.found.sources[*file].text,
                changes,
            })
            .collect();
        deliver::pull_requests(
            &ctx.config.delivery,
            wt,
            base,
            &plan,
            &pass.current,
            &mut pass.report,
        )
        .await;
        let count = |action: &str| {
            pass.report
                .pull_requests
                .iter()
                .filter(|p| p.action == action)
                .count()
        };
        tracing::info!(
            calls = observe::Snapshot::now().since(counted).forge_calls,
            created = count("created"),
            updated = count("updated"),
            unchanged = count("unchanged"),
            closed = count("closed"),
            ms = observe::ms_since(started),
            "deliver: branches pushed and forge called"
        );
    } else if let Some((wt, branch)) = &work_tree {
        observe::waiting(Some(format!("committing and pushing to {branch}")));
        let mut tries = 1;
        loop {
            match deliver_commit(&ctx, wt, branch, &mut pass) {
                Ok(()) => break,
                Err(e) if e.kind == git::GitErrorKind::Rejected && tries < PUSH_TRIES => {
                    // Someone pushed first: take their work and compute the edits again on it.
                    tracing::info!("push rejected, fetching and trying again: {e}");
                    tries += 1;
                    let synced = wt.fetch(branch).and_then(|remote| match remote {
                        Some(oid) => wt.fast_forward(branch, oid),
                        None => Ok(()),
                    });
                    if let Err(e) = synced {
                        pass.report.updates.clear();
                        pass.report.errors.push(error_entry(None, e.to_string()));
                        break;
                    }
                    pass = full_pass(&ctx, &mut tags, committed_only).await?;
                }
                Err(e) => {
                    pass.report.updates.clear();
                    pass.report.errors.push(error_entry(None, e.to_string()));
                    break;
                }
            }
        }
        tracing::info!(
            commit = pass.report.commit.as_deref().map(short_id),
            files = pass.rewritten.len(),
            tries,
            ms = observe::ms_since(started),
            "deliver: commit and push"
        );
    }
    let branch = work_tree.as_ref().map(|(_, b)| b.as_str());
    outcome.summary = summary_line(
        req,
        ctx.config.delivery.mode,
        &pass.report,
        pass.images,
        branch,
    );
    outcome.report = pass.report;
    Ok(outcome)
}

/// A commit id as `git log --oneline` shows it.
fn short_id(oid: &str) -> &str {
    oid.get(..7).unwrap_or(oid)
}

/// What happened to the repository, in one line, for the end of the output: committed and
/// pushed (with the short id), pull requests opened, updated or closed, or nothing written
/// and why; with `--shard`, how many images belonged to the other shards.
fn summary_line(
    req: &Request,
    mode: DeliveryMode,
    report: &Report,
    shares: Shares,
    branch: Option<&str>,
) -> String {
    let mut line = match (req.command, mode) {
        (Command::Scan, _) => String::new(),
        (Command::Plan, _) => "plan: nothing written".to_string(),
        (Command::Run, DeliveryMode::None) => "report only: nothing written (mode: none)".into(),
        (Command::Run, DeliveryMode::Commit) => match &report.commit {
            Some(c) => format!(
                "Committed and pushed {} to {}",
                short_id(c),
                escape::text_line(branch.unwrap_or("the branch"))
            ),
            None if report.updates.is_empty() && report.errors.is_empty() => {
                "run: nothing to commit, every image is current".into()
            }
            None => "run: nothing committed".into(),
        },
        (Command::Run, DeliveryMode::PullRequest) => {
            let count = |action: &str| {
                report
                    .pull_requests
                    .iter()
                    .filter(|p| p.action == action)
                    .count()
            };
            let (opened, updated, closed, unchanged) = (
                count("created"),
                count("updated"),
                count("closed"),
                count("unchanged"),
            );
            let mut l =
                format!("pull requests: {opened} opened, {updated} updated, {closed} closed");
            if unchanged > 0 {
                l.push_str(&format!(", {unchanged} unchanged"));
            }
            l
        }
    };
    if let Some(shard) = req.shard {
        line.push_str(&format!(
            "; shard {}/{}: {} of {} images belong to other shards",
            shard.index, shard.count, shares.others, shares.images
        ));
    }
    if !report.errors.is_empty() {
        let n = report.errors.len();
        line.push_str(&format!("; {n} error{}", if n == 1 { "" } else { "s" }));
    }
    line
}

/// The reference a commit waits under while it is pushed.
const PENDING_REF: &str = "refs/image-updater/pending";

/// Finish what a run stopped between moving the branch and writing the files left undone:
/// write HEAD's bytes to the files it did not reach ([`git::WorkTree::unwritten`]).
fn complete_stopped_run(wt: &git::WorkTree, branch: &str) -> Result<(), String> {
    let files = wt.unwritten().map_err(|e| e.to_string())?;
    if !files.is_empty() {
        let head = wt.head().map_err(|e| e.to_string())?;
        let paths: Vec<PathBuf> = files.iter().map(|(p, _)| p.clone()).collect();
        wt.advance(branch, head, &paths)
            .map_err(|e| e.to_string())?;
        let abs: Vec<PathBuf> = paths.iter().map(|p| wt.root().join(p)).collect();
        let list: Vec<(&Path, &[u8])> = abs
            .iter()
            .zip(&files)
            .map(|(a, (_, bytes))| (a.as_path(), bytes.as_slice()))
            .collect();
        for (path, result) in paths.iter().zip(write_all_atomic(&list)) {
            result.map_err(|e| {
                format!(
                    "{}: a stopped run left it behind {head}, and it could not be written: {e}",
                    path.display()
                )
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

/// Commit the rewritten files on top of HEAD, push the commit, and only then move the branch
/// and write the files. A run stopped at any point leaves the work tree as it was or complete,
/// the remote without half a commit, and the next run finishes the job: a work tree behind its
/// own HEAD (stopped before the files were written, noted by [`git::WorkTree::mark_unwritten`])
/// is completed without a new commit ([`complete_stopped_run`]).
fn deliver_commit(
    ctx: &Ctx<'_>,
    wt: &git::WorkTree,
    branch: &str,
    pass: &mut Pass,
) -> Result<(), git::GitError> {
    // A run stopped while writing left its temporary files: take them away.
    let dirs: std::collections::BTreeSet<&Path> = pass
        .found
        .sources
        .iter()
        .filter_map(|s| s.path.parent())
        .collect();
    for dir in dirs {
        manifest::edit::remove_stale_temps(dir);
    }
    if pass.rewritten.is_empty() {
        return Ok(());
    }
    let parent = wt.head()?;
    let files: Vec<&Path> = pass
        .rewritten
        .iter()
        .map(|(file, _)| pass.found.sources[*file].path.as_path())
        .collect();
    let contents: Vec<(PathBuf, Vec<u8>)> = wt
        .relative_all(&files)?
        .into_iter()
        .zip(&pass.rewritten)
        .map(|(rel, (_, new_text))| (rel, new_text.clone().into_bytes()))
        .collect();
    let paths: Vec<PathBuf> = contents.iter().map(|(p, _)| p.clone()).collect();
    if !wt.holds_files(parent, &contents) {
        let c = &ctx.config.delivery.commit;
        let message = commit_message(
            &c.message,
            &pass.report.updates,
            c.signoff.then_some(&c.author),
        );
        let oid = wt.commit_to_ref(
            parent,
            PENDING_REF,
            &contents,
            (&c.author.name, &c.author.email),
            &message,
        )?;
        let pushed = wt.push_ref(PENDING_REF, branch, false);
        wt.delete_ref(PENDING_REF);
        pushed?;
        pass.report.commit = Some(oid.to_string());
        let followed = wt
            .mark_unwritten(oid)
            .and_then(|()| wt.advance(branch, oid, &paths));
        if let Err(e) = followed {
            // The updates are delivered: say so, and what is left for the next run.
            pass.report.errors.push(error_entry(
                None,
                format!(
                    "{oid} was pushed to {branch}, but this work tree could not follow it ({e}); \
                     the next run brings it up to date"
                ),
            ));
            return Ok(());
        }
    } else {
        // HEAD already has these files (a run stopped before it wrote them): bring the index
        // in line too, then write them below.
        wt.advance(branch, parent, &paths)?;
    }
    let files: Vec<(&Path, &[u8])> = pass
        .rewritten
        .iter()
        .map(|(file, text)| (pass.found.sources[*file].path.as_path(), text.as_bytes()))
        .collect();
    let written = write_all_atomic(&files);
    if written.iter().all(Result::is_ok) {
        wt.mark_written();
    }
    for ((file, _), result) in pass.rewritten.iter().zip(written) {
        let src = &pass.found.sources[*file];
        if let Err(e) = result {
            pass.report.errors.push(ErrorEntry {
                image: None,
                file: Some(src.rel.clone()),
                message: format!(
                    "{}: committed and pushed, but the work tree could not be written: {e}",
                    src.rel
                ),
            });
        }
    }
    Ok(())
}

fn error_entry(image: Option<String>, message: String) -> ErrorEntry {
    ErrorEntry {
        image,
        file: None,
        message,
    }
}

/// Tag lists fetched this run, by canonical repository name: a retry asks no registry twice.
type TagCache = HashMap<String, Result<Arc<Vec<String>>, registry::RegistryError>>;

/// Discover: read the files and find their references.
fn discover_pass(ctx: &Ctx<'_>) -> Result<Pass, Error> {
    let root = &ctx.req.root;
    let opts = manifest::files::DiscoverOptions {
        paths: ctx.config.paths.clone(),
        exclude: ctx.config.exclude.clone(),
        max_file_size: ctx
            .config
            .max_file_size
            .unwrap_or(manifest::files::DEFAULT_MAX_FILE_SIZE),
    };
    let started = std::time::Instant::now();
    let files = manifest::files::discover_files(root, &opts)
        .map_err(|e| Error::Config(ConfigError::from_message(&ctx.config_file, e)))?;
    let found = discover::discover(root, &files, &ctx.config.scan_options(), &ctx.watched);
    tracing::info!(
        files = files.files.len(),
        with_references = found.sources.len(),
        references = found.occurrences.len(),
        skipped_files = found.skipped.len(),
        ms = observe::ms_since(started),
        "discover: files walked and parsed"
    );
    let mut report = Report::new();
    report.skipped = found.skipped.clone();
    report.errors.extend(found.errors.iter().cloned()); // argocd-image-updater refusals
    if ctx.req.command != Command::Scan {
        // References left alone are reported as skipped, with the reason.
        for o in &found.occurrences {
            if let Some(reason) = &o.reason {
                report.skipped.push(Skipped {
                    image: Some(written(o)),
                    file: found.sources[o.file].rel.clone(),
                    line: o.site.line,
                    reason: reason.clone(),
                    kind: report::SkipKind::Reference,
                });
            }
        }
    }
    report
        .skipped
        .sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    Ok(Pass {
        report,
        found,
        rewritten: Vec::new(),
        planned: Vec::new(),
        current: Vec::new(),
        images: Shares::default(),
    })
}

/// A reference as the manifest writes it (parts put together).
fn written(o: &Occurrence) -> String {
    match &o.site.parts {
        manifest::Parts::Whole(f) => f.value.clone(),
        _ => o.image.to_string(),
    }
}

/// Discover, resolve, select and rewrite in memory. With `committed_only` (a delivering `run`,
/// or `plan`), a file whose work-tree bytes are not HEAD's is left alone ([`hold_back_uncommitted`]).
async fn full_pass(
    ctx: &Ctx<'_>,
    tags: &mut TagCache,
    committed_only: Option<&git::WorkTree>,
) -> Result<Pass, Error> {
    // The configured images' tag lists are fetched while the files are read and parsed: the
    // one waits on registries, the other on the cores. Lists of images that turn out not to
    // occur are cancelled unread.
    let owned = |image: &ImageRef| {
        ctx.req
            .shard
            .is_none_or(|s| s.owns(&image.canonical_name()))
    };
    let started = std::time::Instant::now();
    let counted = observe::Snapshot::now();
    let mut prefetch = ctx.registries.prefetch(
        ctx.watched
            .iter()
            .map(|g| &g.image)
            .filter(|i| owned(i) && !tags.contains_key(&i.canonical_name())),
    );
    let mut pass = discover_pass(ctx)?;
    let Pass {
        report,
        found,
        rewritten,
        planned,
        current,
        images,
    } = &mut pass;
    let governors = &found.governors;
    let occurring: HashSet<&ImageRef> = found
        .occurrences
        .iter()
        .filter(|o| o.reason.is_none())
        .filter_map(|o| o.governor.map(|g| &governors[g].image))
        .collect();
    *images = Shares {
        images: occurring.len(),
        others: occurring.iter().filter(|i| !owned(i)).count(),
    };

    // resolve: only the watched repositories that occur, each once, all at once.
    let live: Vec<(&Occurrence, &Watched)> = found
        .occurrences
        .iter()
        .filter(|o| o.reason.is_none())
        .filter_map(|o| o.governor.map(|g| (o, &governors[g])))
        .filter(|(_, g)| owned(&g.image))
        .collect();
    let wanted: HashMap<String, &ImageRef> = live
        .iter()
        .map(|(_, g)| (g.image.canonical_name(), &g.image))
        .filter(|(name, _)| !tags.contains_key(name))
        .collect();
    observe::listing_needed(wanted.keys());
    let late: Vec<&ImageRef> = wanted
        .iter()
        .filter(|(name, _)| !prefetch.started(name))
        .map(|(_, image)| *image)
        .collect();
    let (early, late) = futures::join!(
        prefetch.take(wanted.keys().cloned()),
        ctx.registries.resolve_all(late),
    );
    drop(prefetch);
    tags.extend(
        early
            .into_iter()
            .chain(late)
            .map(|(name, r)| (name, r.map(|list| Arc::new(valid_tags(list).0)))),
    );
    let sent = observe::Snapshot::now().since(counted);
    tracing::info!(
        repositories = wanted.len(),
        failed = wanted
            .keys()
            .filter(|n| tags.get(*n).is_some_and(Result::is_err))
            .count(),
        requests = sent.registry_requests,
        pages = sent.tag_pages,
        bytes = sent.registry_bytes,
        retries = sent.registry_retries,
        waited_ms = sent.registry_waited_us / 1000,
        ms = observe::ms_since(started),
        "resolve: repositories listed"
    );
    let mut failed: Vec<(&String, String)> = tags
        .iter()
        .filter_map(|(name, r)| r.as_ref().err().map(|e| (name, e.to_string())))
        .collect();
    failed.sort();
    for (name, message) in failed {
        report.errors.push(error_entry(Some(name.clone()), message));
    }

    // select
    let started = std::time::Instant::now();
    let mut lookups = Lookups::default();
    let mut edits: BTreeMap<usize, Vec<(Vec<Edit>, Update)>> = BTreeMap::new();
    let mut resolved: Vec<&str> = Vec::new();
    for (occ, g) in live {
        let Some(Ok(list)) = tags.get(&g.image.canonical_name()) else {
            continue;
        };
        resolved.push(&g.name);
        match select(ctx, &mut lookups, occ, g, list).await {
            Ok(Some(Selected::Update(site_edits, update))) => {
                edits.entry(occ.file).or_default().push((
                    site_edits,
                    Update {
                        file: found.sources[occ.file].rel.clone(),
                        ..update
                    },
                ));
            }
            Ok(Some(Selected::Held(reason))) => report.skipped.push(Skipped {
                image: Some(written(occ)),
                file: found.sources[occ.file].rel.clone(),
                line: occ.site.line,
                reason,
                kind: report::SkipKind::Reference,
            }),
            Ok(None) => {}
            Err(message) => report
                .errors
                .push(error_entry(Some(g.image.canonical_name()), message)),
        }
    }
    report.errors.dedup();
    tracing::info!(
        references = resolved.len(),
        tags_ranked = lookups.ranked,
        updates = edits.values().map(Vec::len).sum::<usize>(),
        errors = report.errors.len(),
        ms = observe::ms_since(started),
        "select: candidates ranked"
    );
    let held = match committed_only {
        Some(wt) => hold_back_uncommitted(wt, found, &mut edits, report),
        None => HashSet::new(),
    };

    // rewrite: every file in memory, on every core (each splice is verified by parsing the
    // result again); a file whose edit does not verify is left alone.
    let started = std::time::Instant::now();
    let edits: Vec<_> = edits.into_iter().collect();
    let results = parallel::map_in_order(&edits, parallel::cores(), |(file, list)| {
        let file_edits: Vec<Edit> = list.iter().flat_map(|(e, _)| e.iter().cloned()).collect();
        let src = &found.sources[*file];
        manifest::apply_file_edits(&src.path, &src.text, &file_edits)
    });
    for ((file, list), result) in edits.into_iter().zip(results) {
        let src = &found.sources[file];
        match result {
            Ok(new_text) => {
                report.updates.extend(list.iter().map(|(_, u)| u.clone()));
                rewritten.push((file, new_text));
                planned.push((file, list));
            }
            Err(e) => report.errors.push(ErrorEntry {
                image: None,
                file: Some(src.rel.clone()),
                message: format!("{}: not rewritten: {e}", src.rel),
            }),
        }
    }
    tracing::info!(
        files = rewritten.len(),
        updates = report.updates.len(),
        ms = observe::ms_since(started),
        "rewrite: files rewritten in memory and verified"
    );
    resolved.sort();
    resolved.dedup();
    current.extend(
        resolved
            .into_iter()
            .filter(|n| !report.updates.iter().any(|u| u.policy == *n) && !held.contains(*n))
            .map(str::to_string),
    );
    Ok(pass)
}

/// Leave alone every file with updates whose bytes in the work tree are not HEAD's blob (or
/// whose index entry is not): a user's change, not committed — modified, staged, untracked or
/// added. It is not rewritten, so nothing of it is committed, pushed or overwritten; each of
/// its updates becomes an error naming the file. The rest is delivered as usual. Only the
/// files with updates are compared (a hash each), never the whole repository. Returns the
/// policies whose updates were held back (their pull requests are not closed as current).
fn hold_back_uncommitted(
    wt: &git::WorkTree,
    found: &Discovery,
    edits: &mut BTreeMap<usize, Vec<(Vec<Edit>, Update)>>,
    report: &mut Report,
) -> HashSet<String> {
    // argocd-image-updater: a file to be created has nothing uncommitted to keep.
    let files: Vec<usize> = edits
        .keys()
        .copied()
        .filter(|f| !found.sources[*f].created)
        .collect();
    if files.is_empty() {
        return HashSet::new();
    }
    let paths: Vec<&Path> = files
        .iter()
        .map(|f| found.sources[*f].path.as_path())
        .collect();
    let states = wt.relative_all(&paths).and_then(|rels| {
        let list: Vec<(PathBuf, &[u8])> = rels
            .into_iter()
            .zip(&files)
            .map(|(rel, f)| (rel, found.sources[*f].text.as_bytes()))
            .collect();
        wt.uncommitted(&list)
    });
    let why: Vec<Option<String>> = match states {
        Ok(states) => states
            .into_iter()
            .map(|s| {
                s.map(|s| {
                    format!(
                        "has uncommitted changes in the work tree ({s}); commit or discard \
                         them, then run again"
                    )
                })
            })
            .collect(),
        // Nothing can be shown to be committed: nothing is rewritten.
        Err(e) => vec![Some(format!("could not be compared with HEAD ({e})")); files.len()],
    };
    let mut held = HashSet::new();
    for (file, why) in files.into_iter().zip(why) {
        let Some(why) = why else { continue };
        let rel = &found.sources[file].rel;
        for (_, u) in edits.remove(&file).unwrap_or_default() {
            report.errors.push(ErrorEntry {
                image: Some(u.image.clone()),
                file: Some(rel.clone()),
                message: format!(
                    "{rel}:{}: {} {} -> {} not applied: {rel} {why}",
                    u.line, u.image, u.from, u.to
                ),
            });
            held.insert(u.policy);
        }
    }
    held
}

/// The tags that are valid OCI tags, and the others: hostile or broken tags never reach a
/// policy, a manifest, a branch name or a message.
fn valid_tags(list: Vec<String>) -> (Vec<String>, Vec<String>) {
    list.into_iter().partition(|t| policy::is_oci_tag(t))
}

/// Whether `d` is a digest this tool will write: `sha256:` and 64 lowercase hex digits.
fn is_digest(d: &str) -> bool {
    d.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')))
}

/// A repository (canonical name) and a tag.
type RepoTag = (String, String);

/// Digests and platforms looked up this run, by repository and tag: each manifest once.
#[derive(Default)]
struct Lookups {
    /// Each policy's best tag: its repository's list is ranked once, not once a reference.
    best: HashMap<(bool, Option<String>, String), Option<String>>,
    /// Tags ranked, over every policy ranked (for the `select` line at `-v`).
    ranked: usize,
    digests: HashMap<RepoTag, Result<String, String>>,
    /// argocd-image-updater: build times read for newest-build.
    created: registry::created::CreatedCache,
    platforms: HashMap<RepoTag, Result<Option<Vec<String>>, String>>,
}

impl Lookups {
    async fn digest(
        &mut self,
        ctx: &Ctx<'_>,
        image: &ImageRef,
        tag: &str,
    ) -> Result<String, String> {
        let key = (image.canonical_name(), tag.to_string());
        if let Some(r) = self.digests.get(&key) {
            return r.clone();
        }
        let r = ctx
            .registries
            .source(&image.registry)
            .digest(&image.repository, tag)
            .await
            .map_err(|e| e.to_string());
        self.digests.insert(key, r.clone());
        r
    }

    async fn platforms(
        &mut self,
        ctx: &Ctx<'_>,
        image: &ImageRef,
        tag: &str,
    ) -> Result<Option<Vec<String>>, String> {
        let key = (image.canonical_name(), tag.to_string());
        if let Some(r) = self.platforms.get(&key) {
            return r.clone();
        }
        let r = ctx
            .registries
            .source(&image.registry)
            .platforms(&image.repository, tag)
            .await
            .map_err(|e| e.to_string());
        self.platforms.insert(key, r.clone());
        r
    }
}

/// Whether `have` (an index's platforms) covers every platform of `want`; a wanted platform
/// without a variant is covered by any variant of it.
fn covers(have: &[String], want: &[String]) -> bool {
    want.iter().all(|w| {
        have.iter()
            .any(|h| h == w || (w.matches('/').count() == 1 && h.starts_with(&format!("{w}/"))))
    })
}

/// The edits and the update that move `occ` on, or None when it is current.
/// What [`select`] decided for one reference that moves or is held.
enum Selected {
    /// Rewrite it: the splices, and the update to report.
    Update(Vec<Edit>, Update),
    /// Keep it, and report why in `skipped` (a lower version offered for a tag the policy
    /// does not accept: never a silent downgrade).
    Held(String),
}

async fn select(
    ctx: &Ctx<'_>,
    lookups: &mut Lookups,
    occ: &Occurrence,
    g: &Watched,
    tags: &[String],
) -> Result<Option<Selected>, String> {
    let current = occ.image.tag.as_deref();
    // Platforms narrow the candidates: from the best down, the first that covers them all.
    let mut narrowed = Vec::new();
    let candidates: &[String] = if g.platforms.is_empty() {
        // Only the best tag matters to `update_from`: rank the list once per policy.
        let key = (g.flux, g.namespace.clone(), g.name.clone());
        let ranked = &mut lookups.ranked;
        let best = lookups.best.entry(key).or_insert_with(|| {
            *ranked += tags.len();
            g.policy.select(tags).latest
        });
        narrowed.extend(best.iter().cloned());
        &narrowed
    } else {
        lookups.ranked += tags.len();
        for tag in g.policy.select(tags).candidates {
            if Some(tag.as_str()) == current {
                narrowed.push(tag);
                break;
            }
            let have = lookups.platforms(ctx, &g.image, &tag).await?;
            if have.is_some_and(|h| covers(&h, &g.platforms)) {
                narrowed.push(tag);
                break;
            }
        }
        &narrowed
    };
    // argocd-image-updater: newest-build takes the candidate built last, whatever its name.
    let change = if g.newest_build {
        let source = ctx.registries.source(&g.image.registry);
        let newest = registry::created::newest_build(
            source.as_ref(),
            &g.image.canonical_name(),
            &g.image.repository,
            &g.policy.select(tags).candidates,
            &mut lookups.created,
        )
        .await?;
        newest
            .filter(|n| Some(n.as_str()) != current)
            .map(|to| policy::Change {
                to,
                reason: policy::ChangeReason::Newer,
            })
    } else {
        g.policy.update_from(current, candidates)
    };
    if change.is_none() {
        if let Some(why) = g.policy.held(current, candidates) {
            return Ok(Some(Selected::Held(why)));
        }
    }
    let pin = g.pin_digest || g.policy.followed_tag().is_some() || occ.image.digest.is_some();
    let Some(target) = change
        .as_ref()
        .map(|c| c.to.clone())
        .or(current.map(str::to_string))
    else {
        return Ok(None);
    };
    let digest = if pin {
        let d = lookups.digest(ctx, &g.image, &target).await?;
        if !is_digest(&d) {
            return Err(format!(
                "the registry gave {:?} as the digest of {target}, which is not sha256:<64 hex>",
                d.escape_debug().to_string()
            ));
        }
        Some(d)
    } else {
        None
    };
    if change.is_none() && (digest.is_none() || digest == occ.image.digest) {
        return Ok(None);
    }
    let edits = discover::edits_for(occ, &g.image, &target, digest.as_deref());
    if edits.is_empty() {
        return Ok(None);
    }
    Ok(Some(Selected::Update(
        edits,
        Update {
            policy: g.name.clone(),
            image: g.image.canonical_name(),
            file: String::new(),
            line: occ.site.line,
            from: current
                .or(occ.image.digest.as_deref())
                .unwrap_or_default()
                .to_string(),
            to: target,
            digest,
            note: match change.map(|c| c.reason) {
                None => Some("the tag now points at another digest".into()),
                Some(policy::ChangeReason::Newer) => None,
                Some(other) => Some(other.to_string()),
            },
        },
    )))
}

fn scan_report(d: &Discovery, skipped: Vec<Skipped>) -> ScanReport {
    ScanReport {
        version: 1,
        references: d
            .occurrences
            .iter()
            .map(|o| Reference {
                file: d.sources[o.file].rel.clone(),
                line: o.site.line,
                format: o.site.format.as_str().to_string(),
                image: o.image.canonical_name(),
                tag: o.image.tag.clone(),
                digest: o.image.digest.clone(),
                policy: o.governor.map(|p| d.governors[p].name.clone()),
                reason: o.reason.clone(),
            })
            .collect(),
        skipped,
    }
}

/// Fill a template with the values of `updates`: with one update (or the first) its values fill
/// `{{ name }}`, `{{ image }}`, `{{ old_tag }}` and `{{ new_tag }}`; `{{ summary }}` and
/// `{{ count }}` describe all of them.
pub fn fill_template(template: &str, updates: &[Update]) -> String {
    let mut names: Vec<String> = Vec::new();
    let mut seen = HashSet::new();
    for u in updates {
        if seen.insert((&u.policy, &u.to)) {
            names.push(format!("{} to {}", u.policy, u.to));
        }
    }
    let summary = match names.len() {
        0 => "no updates".to_string(),
        1..=3 => format!("update {}", names.join(", ")),
        n => format!("update {n} images"),
    };
    let first = updates.first();
    let pick = |f: fn(&Update) -> &str| first.map(f).unwrap_or_default().to_string();
    template
        .replace("{{ name }}", &pick(|u| &u.policy))
        .replace("{{ image }}", &pick(|u| &u.image))
        .replace("{{ old_tag }}", &pick(|u| &u.from))
        .replace("{{ new_tag }}", &pick(|u| &u.to))
        .replace("{{ count }}", &updates.len().to_string())
        .replace("{{ summary }}", &summary)
}

/// A commit message from its template ([`fill_template`]); a commit with several updates lists
/// each in the body; `signoff` adds a `Signed-off-by:` trailer.
pub fn commit_message(
    template: &str,
    updates: &[Update],
    signoff: Option<&config::Author>,
) -> String {
    let subject = fill_template(template, updates);
    let mut body = String::new();
    if updates.len() > 1 {
        body.push_str("\n\n");
        for u in updates {
            body.push_str(&format!(
                "- {}: {} {} -> {} ({}:{})\n",
                u.policy, u.image, u.from, u.to, u.file, u.line
            ));
        }
    }
    let mut message = format!("{}{}", subject.trim_end(), body.trim_end());
    if let Some(a) = signoff {
        message.push_str(&format!("\n\nSigned-off-by: {} <{}>", a.name, a.email));
    }
    message + "\n"
}

/// A unified diff of one file with `a/` and `b/` prefixes, as `git diff` prints it. The path
/// is a [`escape::text_line`]: a file name cannot add a line of its own.
pub fn unified_diff(rel: &str, old: &str, new: &str) -> String {
    let rel = escape::text_line(rel);
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{rel}"), &format!("b/{rel}"))
        .to_string()
}

/// Where `tags` reads from.
pub enum TagInput {
    /// The registry of the image (or an `oci-layout:PATH` directory).
    Registry { config: Option<PathBuf> },
    /// One tag a line.
    Lines(String),
}

/// Why `image` (as given to `tags`) is a path on this machine and not an image: it starts
/// like a path (`/`, `./`, `../`, `~`), or names a directory holding an OCI image layout.
/// Said before any request, with the `oci-layout:` spelling that reads it.
fn local_path_hint(image: &str) -> Option<String> {
    let path = Path::new(image);
    let path_like = ["/", "./", "../", "~"].iter().any(|p| image.starts_with(p));
    let layout =
        path.is_dir() && (path.join("oci-layout").is_file() || path.join("index.json").is_file());
    (path_like || layout).then(|| {
        format!(
            "{image} is a path on this machine, not an image; an OCI image layout directory is \
             read with the oci-layout: prefix: tags oci-layout:{image}",
            image = escape::text_line(image)
        )
    })
}

/// List the tags of `image` passing `policy`, best first.
pub async fn list_tags(
    image: &str,
    policy: &Policy,
    input: TagInput,
    explain: bool,
) -> Result<TagsReport, Error> {
    let tags: Vec<String> = match input {
        TagInput::Lines(text) => text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect(),
        TagInput::Registry { config } => {
            if let Some(path) = image.strip_prefix("oci-layout:") {
                let src = LayoutSource::new("oci-layout", Path::new(path));
                src.list_tags("")
                    .await
                    .map_err(|e| Error::Failed(e.to_string()))?
            } else {
                if let Some(hint) = local_path_hint(image) {
                    return Err(Error::Usage(hint));
                }
                let r = ImageRef::parse(image).map_err(|e| Error::Usage(e.to_string()))?;
                // The config's paths (`oci-layout:`, `ca_file`) are its repo's: resolved from
                // the config file's directory, wherever the command is run from.
                let root = config
                    .as_deref()
                    .and_then(Path::parent)
                    .filter(|d| !d.as_os_str().is_empty())
                    .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
                let (cfg, _) = load_config(&root, config.as_deref())?;
                let registries = Registries::new(&cfg.registries, &cfg.limits, &root);
                let source: Arc<dyn TagSource> = registries.source(&r.registry);
                source
                    .list_tags(&r.repository)
                    .await
                    .map_err(|e| Error::Failed(e.to_string()))?
            }
        }
    };
    let (tags, invalid) = valid_tags(tags);
    let sel = policy.select(&tags);
    let dropped = if explain {
        let invalid = invalid.into_iter().map(|t| report::Dropped {
            tag: t.escape_debug().to_string(),
            why: "not a valid OCI tag".into(),
        });
        policy
            .explain(&tags)
            .into_iter()
            .filter_map(|v| match v.outcome {
                policy::Outcome::Dropped(why) => Some(report::Dropped { tag: v.tag, why }),
                policy::Outcome::Candidate { .. } => None,
            })
            .chain(invalid)
            .collect()
    } else {
        Vec::new()
    };
    Ok(TagsReport {
        image: image.to_string(),
        candidates: sel.candidates,
        latest: sel.latest,
        dropped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_partition() {
        assert!("0/2".parse::<Shard>().is_err());
        assert!("3/2".parse::<Shard>().is_err());
        assert!("x".parse::<Shard>().is_err());
        let shards: Vec<Shard> = (1..=3).map(|i| format!("{i}/3").parse().unwrap()).collect();
        for name in [
            "docker.io/library/nginx",
            "ghcr.io/acme/web",
            "quay.io/x/y",
            "a/b",
        ] {
            assert_eq!(shards.iter().filter(|s| s.owns(name)).count(), 1, "{name}");
        }
    }

    fn update(policy: &str, to: &str) -> Update {
        Update {
            policy: policy.into(),
            image: format!("ghcr.io/acme/{policy}"),
            file: "a.yaml".into(),
            line: 3,
            from: "1.0.0".into(),
            to: to.into(),
            digest: None,
            note: None,
        }
    }

    #[test]
    fn commit_message_templates() {
        let one = commit_message(
            "bump {{ name }} to {{ new_tag }}",
            &[update("web", "1.1.0")],
            None,
        );
        assert_eq!(one, "bump web to 1.1.0\n");
        let two = commit_message(
            "chore: {{ summary }}",
            &[update("web", "1.1.0"), update("api", "2.0.0")],
            None,
        );
        let signed = commit_message(
            "x",
            &[update("web", "1.1.0")],
            Some(&config::Author::default()),
        );
        assert_eq!(
            signed,
            "x\n\nSigned-off-by: image-updater <image-updater@example.invalid>\n"
        );
        assert!(
            two.starts_with("chore: update web to 1.1.0, api to 2.0.0\n\n- web:"),
            "{two}"
        );
    }
}
