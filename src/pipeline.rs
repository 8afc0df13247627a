//! Executing a [`Request`] (`run`, `plan`, `scan`): the stages in order, with plain data
//! between them.
//!
//! ```text
//! discover ─► resolve ─► select ─► hold back ─► rewrite ─► deliver ─► report
//! ```
//!
//! 1. **discover** ([`crate::discover`]): read the files, find the references and the policy
//!    governing each; the watched images' tag lists are already being fetched meanwhile.
//! 2. **resolve** ([`crate::resolve`]): list each repository that occurs, once.
//! 3. **select** ([`crate::select`]): the policy picks each reference's tag: a change per file.
//! 4. **hold back**: a delivering `run` (and `plan`) leaves alone files with uncommitted
//!    changes.
//! 5. **rewrite** ([`crate::manifest`]): splice each file in memory, verified by re-parsing.
//! 6. **deliver** ([`crate::deliver`]): a commit, or pull requests; it says what landed.
//! 7. **report**: built from the passes' findings and what was delivered, with one summary line.
//!
//! A commit push that loses a race runs stages 1–5 again on the new tip (tag lists are not
//! fetched twice) and delivers again, up to [`deliver::PUSH_TRIES`] times.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use crate::config::{Config, ConfigError, DeliveryMode, Watched, Wildcard};
use crate::deliver::{self, Delivered, FilePlan};
use crate::discover::{self, Discovery, Occurrence};
use crate::env::Env;
use crate::error::Error;
use crate::reference::ImageRef;
use crate::registry::Registries;
use crate::report::{self, ErrorEntry, Reference, Report, ScanReport, Skipped};
use crate::resolve::{self, Lookups, RepoKey, TagCache};
use crate::select::{self, Change, FileId};
use crate::shard::Shard;
use crate::{escape, flux_repo, git, manifest, observe, outdated, parallel};

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
    /// `run --stage NAME`: only this promotion stage (issue 22).
    pub stage: Option<String>,
    /// `promote STAGE [IMAGE]`: a promotion asked for now (issue 22).
    pub promote: Option<crate::stages::Promote>,
    /// The environment, read once ([`Env::from_process`] for a real run): registry
    /// credentials and timing, forge detection, git credentials and host keys.
    pub env: Env,
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
    /// opened, updated or closed, or nothing written and why.
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

/// Run `run`, `plan` or `scan` on a work tree.
pub async fn execute(req: &Request) -> Result<Outcome, Error> {
    let ctx = Ctx::load(req)?;
    // Issue 22: with `stages:`, each stage runs and delivers on its own.
    if req.command != Command::Scan
        && (!ctx.config.stages.is_empty() || req.stage.is_some() || req.promote.is_some())
    {
        return crate::stages::execute(ctx).await;
    }
    // Open the work tree before touching anything, so a delivery that cannot happen fails first.
    let work_tree = open_for_delivery(&ctx)?;
    // `plan` compares with HEAD as `run` would, to show what `run` would leave alone; it reads
    // the repository and writes nothing. Outside a git work tree there is nothing to compare.
    let plan_tree = (req.command == Command::Plan
        && ctx.config.delivery.mode != DeliveryMode::None)
        .then(|| git::WorkTree::open(&req.root, &req.env).ok())
        .flatten();
    let committed_only = work_tree.as_ref().map(|(wt, _)| wt).or(plan_tree.as_ref());

    let mut outcome = Outcome::default();
    if req.command == Command::Scan {
        let pass = discover_pass(&ctx)?;
        outcome.scan = scan_report(&pass.found, pass.skipped);
        return Ok(outcome);
    }
    let mut tags = TagCache::new();
    let mut pass = full_pass(&ctx, &mut tags, committed_only).await?;
    // The diff is what `plan` shows; `run` reports its changes in the commit.
    if req.command == Command::Plan {
        outcome.diff = pass.diff();
    }
    // What changed in the app, for the messages of a delivering run only.
    let app = match &work_tree {
        Some((wt, _)) => app_changes(&ctx, wt, &pass).await,
        None => Default::default(),
    };
    let delivered = match (&work_tree, ctx.config.delivery.mode) {
        (Some((wt, base)), DeliveryMode::PullRequest) => {
            Some(deliver_pull_requests(&ctx, wt, base, &pass, &app).await)
        }
        (Some((wt, branch)), DeliveryMode::Commit) => Some(
            deliver_commit(&ctx, wt, branch, &mut tags, &mut pass, committed_only, &app).await?,
        ),
        // `plan`, `mode: none`: nothing is delivered (no work tree is opened for them).
        _ => None,
    };
    let branch = work_tree.as_ref().map(|(_, b)| b.as_str());
    let shares = pass.images;
    outcome.report = pass.into_report(delivered);
    outcome.summary = summary_line(
        req,
        ctx.config.delivery.mode,
        &outcome.report,
        shares,
        branch,
    );
    Ok(outcome)
}

/// The settings of a run, read once.
pub(crate) struct Ctx<'a> {
    pub req: &'a Request,
    pub config: Config,
    pub config_file: PathBuf,
    watched: Vec<Watched>,
    /// `images: [{ image: "*" }]`: governs what no other entry governs.
    wildcard: Option<Wildcard>,
    /// `images: [{ image: "ghcr.io/acme/*" }]`: govern the repositories under them.
    prefixes: Vec<Wildcard>,
    pub registries: Registries,
    /// Issue 18: the `charts:` entries, and how HTTP chart indexes are read.
    charts: Vec<crate::charts::ChartEntry>,
    chart_index: crate::registry::chart_index::IndexOptions,
    /// A promotion stage's files (issue 22): references elsewhere are not looked at.
    pub only: Option<globset::GlobSet>,
}

impl<'a> Ctx<'a> {
    /// Check the root, load the config (with `--mode` applied) and set up the registries.
    fn load(req: &'a Request) -> Result<Ctx<'a>, Error> {
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
        let wildcard = config.wildcard(&config_file)?;
        let prefixes = config.prefixes(&config_file)?;
        let charts = config.charts(&config_file)?;
        let chart_index = crate::charts::index_options(&req.env, &config.limits);
        // Flux ImageRepository.spec.insecure hosts the config does not set.
        let flux_hosts = flux_repo::insecure_registries(root, &config);
        config.registries.extend(flux_hosts);
        let registries = Registries::new(&config.registries, &config.limits, root, req.env.clone());
        Ok(Ctx {
            req,
            config,
            config_file,
            watched,
            wildcard,
            prefixes,
            registries,
            chart_index,
            charts,
            only: None,
        })
    }

    /// Whether this job handles `image` (`--shard`).
    pub fn owns(&self, image: &ImageRef) -> bool {
        self.req
            .shard
            .is_none_or(|s| s.owns(&image.canonical_name()))
    }
}

/// For a delivering `run`: the work tree, taken for this run, and its checked-out branch
/// (the base); a stopped run's unwritten files completed first (`mode: commit`).
/// The work tree at `root` for a delivering command: its commits signed as `sign` says (a
/// key that cannot sign is a usage error, before any work), and taken for this run alone.
pub(crate) fn take_work_tree(
    root: &Path,
    env: &Env,
    sign: crate::config::Sign,
) -> Result<git::WorkTree, Error> {
    let mut wt = git::WorkTree::open(root, env).map_err(|e| Error::Usage(e.to_string()))?;
    if let Some(signer) = git::signing::Signer::from_env(sign, env)
        .map_err(|e| Error::Usage(format!("delivery.commit.sign: {e}")))?
    {
        wt.set_signer(signer);
    }
    wt.lock_runs().map_err(|e| Error::Failed(e.to_string()))?;
    Ok(wt)
}

fn open_for_delivery(ctx: &Ctx<'_>) -> Result<Option<(git::WorkTree, String)>, Error> {
    if ctx.req.command != Command::Run || ctx.config.delivery.mode == DeliveryMode::None {
        return Ok(None);
    }
    open_work_tree(ctx, &[ctx.config.delivery.mode]).map(Some)
}

/// The work tree for a delivering run, taken, and its branch (the base), ready for the
/// delivery `modes` it will see (a promotion's stages may mix them): a commit run stopped
/// half-way is completed, and the forge and its token are settled before any registry is
/// asked (exit 2).
pub(crate) fn open_work_tree(
    ctx: &Ctx<'_>,
    modes: &[DeliveryMode],
) -> Result<(git::WorkTree, String), Error> {
    let req = ctx.req;
    let wt = take_work_tree(&req.root, &req.env, ctx.config.delivery.commit.sign)?;
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
    if modes.contains(&DeliveryMode::Commit) {
        deliver::commit::complete_stopped_run(&wt, &branch)
            .map_err(|e| Error::Failed(e.to_string()))?;
    }
    if modes.contains(&DeliveryMode::PullRequest) {
        deliver::pull_request::check_forge(&ctx.config.delivery, &wt, &req.env)
            .map_err(|e| Error::Config(ConfigError::from_message(&ctx.config_file, e)))?;
    }
    Ok((wt, branch))
}

/// What one pass over the work tree found and would change.
pub(crate) struct Pass {
    pub found: Discovery,
    /// Files, markers and references left alone, with why.
    pub skipped: Vec<Skipped>,
    pub errors: Vec<ErrorEntry>,
    /// The files rewritten in memory, in file order.
    pub rewritten: Vec<Rewritten>,
    /// Policies whose images occur, resolved, and need no update: their open pull requests
    /// are no longer needed.
    pub current: Vec<String>,
    /// Images that occur, with a policy: how many, and how many of them belong to other
    /// shards (`--shard`).
    images: Shares,
    /// References no policy governs that have a newer tag.
    pub outdated: Vec<report::Outdated>,
}

/// One file rewritten in memory: its new text and the verified changes that made it,
/// update by update (for pull-request groups).
pub(crate) struct Rewritten {
    pub file: FileId,
    pub text: String,
    pub changes: Vec<Change>,
}

/// Of the images that occur with a policy, how many there are and how many another shard
/// handles.
#[derive(Debug, Clone, Copy, Default)]
struct Shares {
    images: usize,
    others: usize,
}

impl Pass {
    /// The rewritten files, as delivery takes them.
    pub fn plan(&self) -> Vec<FilePlan<'_>> {
        self.rewritten
            .iter()
            .map(|r| {
                let src = r.file.source(&self.found);
                FilePlan {
                    path: &src.path,
                    rel: &src.rel,
                    text: &src.text,
                    new_text: &r.text,
                    changes: &r.changes,
                }
            })
            .collect()
    }

    /// The unified diff of every rewritten file.
    pub fn diff(&self) -> String {
        self.rewritten
            .iter()
            .map(|r| {
                let src = r.file.source(&self.found);
                // A file to be created (Argo CD's write-back file) is diffed against nothing.
                let old = if src.created { "" } else { src.text.as_str() };
                unified_diff(&src.rel, old, &r.text)
            })
            .collect()
    }

    /// The report: what was found, and what was delivered. Without a delivery (`plan`, or
    /// `mode: none`) every update counts.
    pub fn into_report(self, delivered: Option<Delivered>) -> Report {
        let mut report = Report {
            skipped: self.skipped,
            errors: self.errors,
            outdated: self.outdated,
            ..Report::new()
        };
        match delivered {
            None => {
                report.updates = self
                    .rewritten
                    .into_iter()
                    .flat_map(|r| r.changes.into_iter().map(|c| c.update))
                    .collect();
            }
            Some(d) => {
                report.updates = d.updates;
                report.commit = d.commit;
                report.pull_requests = d.pull_requests;
                report.errors.extend(d.errors);
            }
        }
        report
    }
}

/// Discover: read the files and find their references.
pub(crate) fn discover_pass(ctx: &Ctx<'_>) -> Result<Pass, Error> {
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
    let mut files = manifest::files::discover_files(root, &opts)
        .map_err(|e| Error::Config(ConfigError::from_message(&ctx.config_file, e)))?;
    // A promotion stage (issue 22) parses only its own files; the others are still read for
    // the repo's Flux objects, as files outside `paths` are.
    if let Some(only) = &ctx.only {
        let (inside, outside) = std::mem::take(&mut files.files)
            .into_iter()
            .partition(|f| only.is_match(f));
        files.files = inside;
        files.outside_paths.extend(outside);
        files.outside_paths.sort();
    }
    let mut found = discover::discover_with_prefixes(
        root,
        &files,
        &ctx.config.scan_options(),
        &ctx.watched,
        &ctx.prefixes,
    );
    crate::charts::govern(&mut found, &ctx.charts);
    // A promotion stage (issue 22) looks only at the references in its own files.
    if let Some(only) = &ctx.only {
        let sources = &found.sources;
        found
            .occurrences
            .retain(|o| only.is_match(&sources[o.file].rel));
    }
    if let Some(w) = &ctx.wildcard {
        outdated::govern_unwatched(&mut found, w);
    }
    // Locked images (config `locks:`, Flux v1 `fluxcd.io/locked`) are left alone.
    crate::locks::mark_locked(&mut found, &ctx.config.locks);
    tracing::info!(
        files = files.files.len(),
        with_references = found.sources.len(),
        references = found.occurrences.len(),
        skipped_files = found.skipped.len(),
        ms = observe::ms_since(started),
        "discover: files walked and parsed"
    );
    let mut skipped = found.skipped.clone();
    if ctx.req.command != Command::Scan {
        // References left alone are reported as skipped, with the reason.
        for o in &found.occurrences {
            if let Some(reason) = &o.reason {
                skipped.push(Skipped {
                    image: Some(select::written(o)),
                    file: FileId::of(o).source(&found).rel.clone(),
                    line: o.site.line,
                    reason: reason.clone(),
                    kind: report::SkipKind::Reference,
                });
            }
        }
    }
    skipped.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    // Flux automations that cannot be honoured, ambiguous ImagePolicies.
    // What the repo's Argo CD objects ask for and cannot be honoured.
    let errors = found
        .flux
        .errors
        .iter()
        .map(|(image, message)| ErrorEntry {
            image: image.clone(),
            file: None,
            message: message.clone(),
        })
        .chain(found.errors.iter().cloned())
        .collect();
    Ok(Pass {
        found,
        skipped,
        errors,
        rewritten: Vec::new(),
        current: Vec::new(),
        images: Shares::default(),
        outdated: Vec::new(),
    })
}

/// Discover, resolve, select and rewrite in memory. With `committed_only` (a delivering `run`,
/// or `plan`), a file whose work-tree bytes are not HEAD's is left alone ([`hold_back_uncommitted`]).
pub(crate) async fn full_pass(
    ctx: &Ctx<'_>,
    tags: &mut TagCache,
    committed_only: Option<&git::WorkTree>,
) -> Result<Pass, Error> {
    let (pass, changes, resolved) = select_pass(ctx, tags).await?;
    Ok(finish_pass(pass, changes, resolved, committed_only))
}

/// The policies' picks, per file, before anything is held back or rewritten: discover,
/// resolve and select. Also the policies whose images resolved.
pub(crate) async fn select_pass(
    ctx: &Ctx<'_>,
    tags: &mut TagCache,
) -> Result<(Pass, BTreeMap<FileId, Vec<Change>>, Vec<String>), Error> {
    // discover, while the configured images' tag lists are fetched (those of images that turn
    // out not to occur are cancelled unread).
    let started = std::time::Instant::now();
    let counted = observe::Snapshot::now();
    let prefetch = resolve::prefetch(
        &ctx.registries,
        ctx.watched.iter().map(|g| &g.image).filter(|i| ctx.owns(i)),
        tags,
    );
    let mut pass = discover_pass(ctx)?;
    let found = &pass.found;
    let governed = || {
        found
            .occurrences
            .iter()
            .filter(|o| o.reason.is_none())
            .filter_map(|o| o.governor.map(|g| (o, &found.governors[g])))
    };
    let occurring: HashSet<&ImageRef> = governed().map(|(_, g)| &g.image).collect();
    pass.images = Shares {
        images: occurring.len(),
        others: occurring.iter().filter(|i| !ctx.owns(i)).count(),
    };

    // resolve: only the watched repositories that occur, each once, all at once.
    let live: Vec<(&Occurrence, &Watched)> =
        governed().filter(|(_, g)| ctx.owns(&g.image)).collect();
    // The references no policy governs, for `outdated`: their repositories are listed too,
    // once each; one that cannot be listed is a warning, not an error of the run.
    let unwatched = match ctx.config.outdated_report() {
        true => outdated::candidates(found, |i| ctx.owns(i)),
        false => Vec::new(),
    };
    let images: Vec<&ImageRef> = live
        .iter()
        .map(|(_, g)| &g.image)
        .chain(unwatched.iter().map(|o| &o.image))
        .collect();
    crate::charts::list_http(&images, tags, &ctx.chart_index).await;
    resolve::resolve(&ctx.registries, prefetch, &images, tags, counted, started).await;
    let governed_repos: HashSet<RepoKey> =
        live.iter().map(|(_, g)| RepoKey::of(&g.image)).collect();
    for e in resolve::failures(tags) {
        match &e.image {
            Some(name) if !governed_repos.iter().any(|k| k.as_str() == name) => {
                tracing::warn!("outdated: {}", e.message)
            }
            _ => pass.errors.push(e),
        }
    }
    pass.outdated = outdated::report(found, &unwatched, tags);

    // select
    let started = std::time::Instant::now();
    let mut lookups = Lookups::new(&ctx.registries);
    let selection = select::select_all(&mut lookups, found, &live, tags).await;
    let changes = selection.changes;
    pass.skipped.extend(selection.held);
    pass.errors.extend(selection.errors);
    pass.errors.dedup();
    tracing::info!(
        references = selection.references,
        tags_ranked = selection.ranked,
        updates = changes.values().map(Vec::len).sum::<usize>(),
        errors = pass.errors.len(),
        ms = observe::ms_since(started),
        "select: candidates ranked"
    );
    Ok((pass, changes, selection.resolved))
}

/// Hold back what is not committed, and rewrite the files in memory: `changes` are the
/// updates per file, `resolved` the policies whose images resolved (those without an
/// update are current).
pub(crate) fn finish_pass(
    mut pass: Pass,
    mut changes: BTreeMap<FileId, Vec<Change>>,
    resolved: Vec<String>,
    committed_only: Option<&git::WorkTree>,
) -> Pass {
    let found = &pass.found;
    // hold back
    let held = match committed_only {
        Some(wt) => hold_back_uncommitted(wt, found, &mut changes, &mut pass.errors),
        None => HashSet::new(),
    };

    // rewrite: every file in memory, on every core (each splice is verified by parsing the
    // result again); a file whose edit does not verify is left alone.
    let started = std::time::Instant::now();
    let changes: Vec<(FileId, Vec<Change>)> = changes.into_iter().collect();
    let results = parallel::map_in_order(&changes, parallel::cores(), |(file, list)| {
        let edits: Vec<manifest::edit::Edit> =
            list.iter().flat_map(|c| c.edits.iter().cloned()).collect();
        let src = file.source(found);
        manifest::apply_file_edits(&src.path, &src.text, &edits)
    });
    let mut rewritten = Vec::new();
    for ((file, changes), result) in changes.into_iter().zip(results) {
        match result {
            Ok(text) => rewritten.push(Rewritten {
                file,
                text,
                changes,
            }),
            Err(e) => {
                let rel = &file.source(found).rel;
                pass.errors.push(ErrorEntry {
                    image: None,
                    file: Some(rel.clone()),
                    message: format!("{rel}: not rewritten: {e}"),
                })
            }
        }
    }
    let updated: HashSet<&str> = rewritten
        .iter()
        .flat_map(|r| r.changes.iter().map(|c| c.update.policy.as_str()))
        .collect();
    tracing::info!(
        files = rewritten.len(),
        updates = rewritten.iter().map(|r| r.changes.len()).sum::<usize>(),
        ms = observe::ms_since(started),
        "rewrite: files rewritten in memory and verified"
    );
    let current: Vec<String> = resolved
        .into_iter()
        .filter(|n| !updated.contains(n.as_str()) && !held.contains(n))
        .collect();
    pass.current = current;
    pass.rewritten = rewritten;
    pass
}

/// Leave alone every file with updates whose bytes in the work tree are not HEAD's blob (or
/// whose index entry is not): a user's change, not committed — modified, staged, untracked or
/// added. It is not rewritten, so nothing of it is committed, pushed or overwritten; each of
/// its updates becomes an error naming the file. The rest is delivered as usual. Only the
/// files with updates are compared (a hash each), never the whole repository. Returns the
/// policies whose updates were held back (their pull requests are not closed as current).
pub(crate) fn hold_back_uncommitted(
    wt: &git::WorkTree,
    found: &Discovery,
    changes: &mut BTreeMap<FileId, Vec<Change>>,
    errors: &mut Vec<ErrorEntry>,
) -> HashSet<String> {
    // A file to be created has nothing uncommitted to keep.
    let files: Vec<FileId> = changes
        .keys()
        .copied()
        .filter(|f| !f.source(found).created)
        .collect();
    if files.is_empty() {
        return HashSet::new();
    }
    let paths: Vec<&Path> = files
        .iter()
        .map(|f| f.source(found).path.as_path())
        .collect();
    let states = wt.relative_all(&paths).and_then(|rels| {
        let list: Vec<(PathBuf, &[u8])> = rels
            .into_iter()
            .zip(&files)
            .map(|(rel, f)| (rel, f.source(found).text.as_bytes()))
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
        let rel = &file.source(found).rel;
        for Change { update: u, .. } in changes.remove(&file).unwrap_or_default() {
            errors.push(ErrorEntry {
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

/// The source links of the updates `pass` would deliver ([`deliver::app_changes`]).
async fn app_changes(
    ctx: &Ctx<'_>,
    wt: &git::WorkTree,
    pass: &Pass,
) -> deliver::app_changes::AppChanges {
    let updates: Vec<report::Update> = pass
        .rewritten
        .iter()
        .flat_map(|r| r.changes.iter().map(|c| c.update.clone()))
        .collect();
    app_changes_of(ctx, wt, &updates).await
}

/// The source links of `updates` ([`deliver::app_changes`]), for `run` and each stage.
pub(crate) async fn app_changes_of(
    ctx: &Ctx<'_>,
    wt: &git::WorkTree,
    updates: &[report::Update],
) -> deliver::app_changes::AppChanges {
    if updates.is_empty() {
        return Default::default();
    }
    let started = std::time::Instant::now();
    let hint = deliver::app_changes::hint(&ctx.config.delivery, wt, &ctx.req.env);
    let app = deliver::app_changes::look_up(&ctx.registries, updates, hint.as_ref()).await;
    tracing::info!(
        updates = updates.len(),
        linked = app.len(),
        ms = observe::ms_since(started),
        "deliver: app changes looked up"
    );
    app
}

/// Deliver as `mode: pull-request`: a branch and a pull request per group.
async fn deliver_pull_requests(
    ctx: &Ctx<'_>,
    wt: &git::WorkTree,
    base: &str,
    pass: &Pass,
    app: &deliver::app_changes::AppChanges,
) -> Delivered {
    let started = std::time::Instant::now();
    let counted = observe::Snapshot::now();
    observe::waiting(Some(
        "pull requests: pushing branches, calling the forge".into(),
    ));
    let delivered = deliver::pull_request::deliver(
        &ctx.config.delivery,
        wt,
        base,
        &pass.plan(),
        &pass.current,
        &ctx.req.env,
        app,
    )
    .await;
    let count = |action: &str| {
        delivered
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
    delivered
}

/// Deliver as `mode: commit`. When someone pushed first, take their work, compute the edits
/// again on it (`pass` is replaced) and try again.
async fn deliver_commit(
    ctx: &Ctx<'_>,
    wt: &git::WorkTree,
    branch: &str,
    tags: &mut TagCache,
    pass: &mut Pass,
    committed_only: Option<&git::WorkTree>,
    app: &deliver::app_changes::AppChanges,
) -> Result<Delivered, Error> {
    let started = std::time::Instant::now();
    observe::waiting(Some(format!("committing and pushing to {branch}")));
    let api = match deliver::commit::api_target(&ctx.config.delivery, wt, &ctx.req.env) {
        Ok(api) => api,
        Err(e) => return Ok(Delivered::nothing(e)),
    };
    let mut tries = 1;
    let delivered = loop {
        // A run stopped while writing left its temporary files beside the files it read.
        let dirs: BTreeSet<&Path> = pass
            .found
            .sources
            .iter()
            .filter_map(|s| s.path.parent())
            .collect();
        let commit = &ctx.config.delivery.commit;
        let plan = pass.plan();
        // An ImageUpdateAutomation's push branch, author and message (Flux).
        let mut flux = match flux_repo::commit_plan(&pass.found, &plan, branch, &ctx.config_file) {
            Ok(settings) => settings.unwrap_or_default(),
            Err(e) => break Delivered::nothing(e.to_string()),
        };
        // Issue 21: updates Flux v1 annotations govern get the message fluxd wrote.
        if flux.message.is_none() {
            flux.message =
                crate::flux_v1::commit_message(&pass.found.governors, &plan, &ctx.config_file);
        }
        match deliver::commit::deliver(commit, &flux, wt, branch, &dirs, &plan, api.as_ref(), app) {
            Ok(delivered) => break delivered,
            Err(e) if e.kind == git::GitErrorKind::Rejected && tries < deliver::PUSH_TRIES => {
                tracing::info!("push rejected, fetching and trying again: {e}");
                tries += 1;
                if let Err(e) = deliver::commit::catch_up(wt, branch) {
                    break Delivered::nothing(e.to_string());
                }
                *pass = full_pass(ctx, tags, committed_only).await?;
            }
            Err(e) => break Delivered::nothing(e.to_string()),
        }
    };
    tracing::info!(
        commit = delivered.commit.as_deref().map(short_id),
        files = pass.rewritten.len(),
        tries,
        ms = observe::ms_since(started),
        "deliver: commit and push"
    );
    Ok(delivered)
}

/// A commit id as `git log --oneline` shows it.
pub(crate) fn short_id(oid: &str) -> &str {
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

/// Every reference found, for `scan`.
fn scan_report(d: &Discovery, skipped: Vec<Skipped>) -> ScanReport {
    ScanReport {
        version: 1,
        references: d
            .occurrences
            .iter()
            .map(|o| Reference {
                file: FileId::of(o).source(d).rel.clone(),
                line: o.site.line,
                format: o.site.format.as_str().to_string(),
                image: o.image.canonical_name(),
                tag: o.image.tag.clone(),
                digest: o.image.digest.clone(),
                policy: o.governor.map(|p| d.governors[p].name.clone()),
                rule: o.governor.and_then(|p| d.governors[p].rule.clone()),
                reason: o.reason.clone(),
                // The ImageUpdateAutomation holding the file (Flux).
                automation: d.flux.automation_name(&FileId::of(o).source(d).rel),
            })
            .collect(),
        skipped,
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{PullRequest, Update};

    fn update(policy: &str, file: &str) -> Update {
        Update {
            policy: policy.into(),
            image: format!("ghcr.io/acme/{policy}"),
            file: file.into(),
            line: 3,
            from: "1.0.0".into(),
            to: "1.1.0".into(),
            digest: None,
            note: None,
        }
    }

    fn error(message: &str) -> ErrorEntry {
        ErrorEntry {
            image: None,
            file: None,
            message: message.into(),
        }
    }

    /// A pass that rewrote one file per entry of `files`, with those updates.
    fn pass(files: Vec<Vec<Update>>) -> Pass {
        Pass {
            found: Discovery {
                sources: Vec::new(),
                occurrences: Vec::new(),
                governors: Vec::new(),
                skipped: Vec::new(),
                flux: Default::default(),
                errors: Vec::new(),
                charts: Default::default(),
            },
            skipped: Vec::new(),
            errors: vec![error("ghcr.io/acme/db: 401")],
            rewritten: files
                .into_iter()
                .enumerate()
                .map(|(i, updates)| Rewritten {
                    file: FileId::nth(i),
                    text: String::new(),
                    changes: updates
                        .into_iter()
                        .map(|update| Change {
                            edits: Vec::new(),
                            update,
                        })
                        .collect(),
                })
                .collect(),
            current: Vec::new(),
            images: Shares::default(),
            outdated: Vec::new(),
        }
    }

    #[test]
    fn without_a_delivery_every_update_is_reported_in_file_order() {
        let p = pass(vec![
            vec![update("web", "a.yaml"), update("api", "a.yaml")],
            vec![update("web", "b.yaml")],
        ]);
        let report = p.into_report(None);
        let files: Vec<_> = report
            .updates
            .iter()
            .map(|u| (u.policy.as_str(), u.file.as_str()))
            .collect();
        assert_eq!(
            files,
            [("web", "a.yaml"), ("api", "a.yaml"), ("web", "b.yaml")]
        );
        assert_eq!(report.errors, [error("ghcr.io/acme/db: 401")]);
        assert_eq!(report.version, 1);
    }

    #[test]
    fn the_report_lists_what_was_delivered_and_its_errors_after_the_passes() {
        let p = pass(vec![vec![update("web", "a.yaml"), update("api", "a.yaml")]]);
        let pr = PullRequest {
            branch: "image-updater/api".into(),
            number: 7,
            url: "https://forge.test/pr/7".into(),
            action: "created".into(),
        };
        let report = p.into_report(Some(Delivered {
            updates: vec![update("api", "a.yaml")],
            commit: None,
            pull_requests: vec![pr.clone()],
            errors: vec![error("pull request for image-updater/web: 502")],
        }));
        assert_eq!(report.updates, [update("api", "a.yaml")]);
        assert_eq!(report.pull_requests, [pr]);
        assert_eq!(
            report.errors,
            [
                error("ghcr.io/acme/db: 401"),
                error("pull request for image-updater/web: 502")
            ]
        );
    }

    #[test]
    fn summary_says_what_happened_to_the_repository() {
        let req = Request {
            command: Command::Run,
            root: PathBuf::from("."),
            config: None,
            shard: Some("2/3".parse().unwrap()),
            mode: None,
            stage: None,
            promote: None,
            env: Env::default(),
        };
        let mut report = Report::new();
        report.commit = Some("0123456789abcdef".into());
        let shares = Shares {
            images: 5,
            others: 3,
        };
        assert_eq!(
            summary_line(&req, DeliveryMode::Commit, &report, shares, Some("main")),
            "Committed and pushed 0123456 to main; shard 2/3: 3 of 5 images belong to other shards"
        );
        report.commit = None;
        report.errors.push(error("x"));
        let req = Request { shard: None, ..req };
        assert_eq!(
            summary_line(&req, DeliveryMode::Commit, &report, shares, Some("main")),
            "run: nothing committed; 1 error"
        );
    }
}
