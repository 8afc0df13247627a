//! fluxctl's verbs, for CI and for people: `set IMAGE:TAG` (what `fluxctl release
//! --update-image` did: push a build just made, or roll back), `lock IMAGE` and
//! `unlock IMAGE`. Each is one explicit change to the work tree — references spliced
//! byte-exactly as `run` does, a lock written beside what governs the image
//! ([`crate::manifest::locks`]) — delivered the way `run` delivers (`mode: commit`,
//! `pull-request`, or `none`: nothing written, the diff shown).
//!
//! `set` works on every reference of the image, governed by a policy or not; the tag must
//! exist in the registry, else nothing is written. A `set` that moves a reference to a lower
//! version also locks the image (unless `--no-lock`): the next scheduled run would otherwise
//! undo the rollback at once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::config::{Config, DeliveryMode};
use crate::deliver::{self, Delivered, FilePlan};
use crate::discover::{self, Discovery};
use crate::env::Env;
use crate::error::Error;
use crate::flux_repo::CommitPlan;
use crate::git::{GitErrorKind, WorkTree};
use crate::locks::now_rfc3339;
use crate::manifest::{self, locks};
use crate::pipeline::{load_config, unified_diff, Outcome};
use crate::reference::ImageRef;
use crate::registry::Registries;
use crate::report::{Report, Update};
use crate::select::{Change, FileId};
use crate::{escape, flux_repo};

/// Which verb, with its arguments as given.
#[derive(Debug, Clone)]
pub enum Verb {
    /// `set IMAGE:TAG [--files GLOB] [--no-lock]`
    Set {
        image: String,
        files: Option<String>,
        no_lock: bool,
    },
    /// `lock IMAGE [--reason TEXT]`
    Lock {
        image: String,
        reason: Option<String>,
    },
    /// `unlock IMAGE`
    Unlock { image: String },
}

/// A request for [`execute_verb`].
#[derive(Debug, Clone)]
pub struct VerbRequest {
    pub verb: Verb,
    /// The work tree root.
    pub root: PathBuf,
    /// The config file; default `ROOT/.image-updater.yaml` (optional there).
    pub config: Option<PathBuf>,
    /// Overrides the config's `delivery.mode`.
    pub mode: Option<DeliveryMode>,
    pub env: Env,
}

/// The arguments, checked before any work (a bad one is a usage error, exit 2).
struct Args {
    image: ImageRef,
    /// `set`'s tag.
    tag: Option<String>,
    files: Option<globset::GlobMatcher>,
    no_lock: bool,
    /// `Some` to lock (with the reason), for `lock`.
    reason: Option<String>,
    unlock: bool,
}

impl Args {
    fn parse(verb: &Verb) -> Result<Args, Error> {
        let image_of = |s: &str, with_tag: bool| {
            let image = ImageRef::parse(s).map_err(|e| Error::Usage(e.to_string()))?;
            if image.digest.is_some() {
                return Err(Error::Usage(format!(
                    "{}: give a tag, not a digest",
                    escape::text_line(s)
                )));
            }
            if with_tag != image.tag.is_some() {
                return Err(Error::Usage(if with_tag {
                    format!("{}: expected IMAGE:TAG", escape::text_line(s))
                } else {
                    format!("{}: expected IMAGE without a tag", escape::text_line(s))
                }));
            }
            Ok(image)
        };
        let mut args = Args {
            image: image_of("scratch", false)?,
            tag: None,
            files: None,
            no_lock: false,
            reason: None,
            unlock: false,
        };
        match verb {
            Verb::Set {
                image,
                files,
                no_lock,
            } => {
                args.image = image_of(image, true)?;
                args.tag = args.image.tag.clone();
                args.no_lock = *no_lock;
                if let Some(g) = files {
                    let glob = globset::GlobBuilder::new(g)
                        .literal_separator(true)
                        .build()
                        .map_err(|e| Error::Usage(format!("--files {g:?}: {e}")))?;
                    args.files = Some(glob.compile_matcher());
                }
            }
            Verb::Lock { image, reason } => {
                args.image = image_of(image, false)?;
                args.reason = Some(reason.clone().unwrap_or_default());
            }
            Verb::Unlock { image } => {
                args.image = image_of(image, false)?;
                args.unlock = true;
            }
        }
        Ok(args)
    }

    /// The group name (pull-request branch `{{ name }}`): the verb and the image's last
    /// path segment, apart from `run`'s per-policy branches.
    fn group(&self) -> String {
        let short = self.image.repository.rsplit('/').next().unwrap_or_default();
        let verb = if self.tag.is_some() {
            "set"
        } else if self.unlock {
            "unlock"
        } else {
            "lock"
        };
        format!("{verb}-{short}")
    }
}

/// One file the verb changes: its text as found and as it will be, and the changes.
struct Planned {
    path: PathBuf,
    rel: String,
    text: String,
    new_text: String,
    changes: Vec<Change>,
    /// Not in the work tree yet (a config created for its `locks:`).
    created: bool,
}

/// What a verb would change.
struct Prepared {
    files: Vec<Planned>,
    /// The `set` updates, for the report.
    updates: Vec<Update>,
    /// Where the lock was written or removed, and what (`None`: no lock changed).
    lock: Option<String>,
    message: String,
}

/// Run `set`, `lock` or `unlock` on a work tree and deliver the change.
pub async fn execute_verb(req: &VerbRequest) -> Result<Outcome, Error> {
    let args = Args::parse(&req.verb)?;
    if !req.root.is_dir() {
        return Err(Error::Usage(format!(
            "{} is not a directory",
            req.root.display()
        )));
    }
    let (mut config, config_file) = load_config(&req.root, req.config.as_deref())?;
    if let Some(mode) = req.mode {
        config.delivery.mode = mode;
    }
    let mode = config.delivery.mode;
    let work_tree = open_for_delivery(req, &config)?;
    let mut tries = 1;
    loop {
        let prepared = prepare(req, &args, &config, &config_file).await?;
        let mut outcome = Outcome::default();
        let delivered = match &work_tree {
            None => None,
            Some(_) if prepared.files.is_empty() => None,
            Some((wt, branch)) => {
                check_committed(wt, &prepared)?;
                let plan = plans(&prepared);
                match mode {
                    DeliveryMode::Commit => {
                        let dirs: BTreeSet<&Path> =
                            plan.iter().filter_map(|p| p.path.parent()).collect();
                        let how = CommitPlan {
                            message: Some(prepared.message.clone()),
                            ..CommitPlan::default()
                        };
                        match deliver::commit::deliver(
                            &config.delivery.commit,
                            &how,
                            wt,
                            branch,
                            &dirs,
                            &plan,
                            None,
                            &Default::default(),
                        ) {
                            Ok(d) => Some(d),
                            Err(e)
                                if e.kind == GitErrorKind::Rejected
                                    && tries < deliver::PUSH_TRIES =>
                            {
                                tracing::info!("push rejected, fetching and trying again: {e}");
                                tries += 1;
                                deliver::commit::catch_up(wt, branch)
                                    .map_err(|e| Error::Failed(e.to_string()))?;
                                continue;
                            }
                            Err(e) => Some(Delivered::nothing(e.to_string())),
                        }
                    }
                    DeliveryMode::PullRequest => Some(
                        deliver::pull_request::deliver(
                            &config.delivery,
                            wt,
                            branch,
                            &plan,
                            &[],
                            &req.env,
                            &Default::default(),
                        )
                        .await,
                    ),
                    DeliveryMode::None => None,
                }
            }
        };
        if mode == DeliveryMode::None {
            outcome.diff = prepared
                .files
                .iter()
                .map(|f| {
                    let old = if f.created { "" } else { f.text.as_str() };
                    unified_diff(&f.rel, old, &f.new_text)
                })
                .collect();
        }
        outcome.summary = summary(
            &args,
            mode,
            &prepared,
            delivered.as_ref(),
            work_tree.as_ref(),
        );
        outcome.report = report(prepared.updates, delivered);
        return Ok(outcome);
    }
}

/// The report: the `set` updates (a lock is no update: the summary line names it).
fn report(updates: Vec<Update>, delivered: Option<Delivered>) -> Report {
    let mut report = Report::new();
    match delivered {
        None => report.updates = updates,
        Some(d) => {
            report.updates = d.updates.into_iter().filter(|u| !u.to.is_empty()).collect();
            report.commit = d.commit;
            report.pull_requests = d.pull_requests;
            report.errors = d.errors;
        }
    }
    report
}

/// What happened, in one line.
fn summary(
    args: &Args,
    mode: DeliveryMode,
    prepared: &Prepared,
    delivered: Option<&Delivered>,
    work_tree: Option<&(WorkTree, String)>,
) -> String {
    let name = args.image.canonical_name();
    let image = escape::text_line(&name);
    let mut line = match (&args.tag, prepared.files.is_empty()) {
        (Some(tag), true) => format!("set: every reference of {image} is at {tag} already"),
        (None, true) if args.unlock => format!("unlock: {image} is not locked"),
        (None, true) => format!("lock: {image} is locked already"),
        _ => match (mode, delivered) {
            (DeliveryMode::None, _) => "report only: nothing written (mode: none)".to_string(),
            (_, Some(d)) if d.commit.is_some() => format!(
                "Committed and pushed {} to {}",
                d.commit.as_deref().map_or("", |c| c.get(..7).unwrap_or(c)),
                escape::text_line(work_tree.map_or("the branch", |(_, b)| b.as_str()))
            ),
            (DeliveryMode::PullRequest, Some(d)) if !d.pull_requests.is_empty() => {
                let p = &d.pull_requests[0];
                format!("pull request {}: {}", p.action, escape::text_line(&p.url))
            }
            _ => "nothing delivered".to_string(),
        },
    };
    if let Some(lock) = &prepared.lock {
        line.push_str(&format!("; {}", escape::text_line(lock)));
    }
    if let Some(n) = delivered.map(|d| d.errors.len()).filter(|n| *n > 0) {
        line.push_str(&format!("; {n} error{}", if n == 1 { "" } else { "s" }));
    }
    line
}

/// The planned files as delivery takes them.
fn plans(prepared: &Prepared) -> Vec<FilePlan<'_>> {
    prepared
        .files
        .iter()
        .map(|f| FilePlan {
            path: &f.path,
            rel: &f.rel,
            text: &f.text,
            new_text: &f.new_text,
            changes: &f.changes,
        })
        .collect()
}

/// For a delivering mode: the work tree, taken for this command, and its branch.
fn open_for_delivery(
    req: &VerbRequest,
    config: &Config,
) -> Result<Option<(WorkTree, String)>, Error> {
    if config.delivery.mode == DeliveryMode::None {
        return Ok(None);
    }
    // Signed like `run`'s commits, and one command at a time in this work tree.
    let wt = crate::pipeline::take_work_tree(&req.root, &req.env, config.delivery.commit.sign)?;
    let branch = wt
        .current_branch()
        .map_err(|e| Error::Usage(e.to_string()))?;
    if let Some(b) = config.delivery.base.as_deref().filter(|b| *b != branch) {
        return Err(Error::Usage(format!(
            "delivery.base is {b:?} but {branch:?} is checked out: check out {b:?} first"
        )));
    }
    if config.delivery.mode == DeliveryMode::Commit {
        for lock in wt.clear_stale_locks(&branch) {
            tracing::warn!("removed {}, left by a run that was stopped", lock.display());
        }
        deliver::commit::complete_stopped_run(&wt, &branch)
            .map_err(|e| Error::Failed(e.to_string()))?;
    }
    Ok(Some((wt, branch)))
}

/// A file to be changed must hold what HEAD holds: a user's uncommitted change is never
/// committed or overwritten (a usage error: commit or discard it first).
fn check_committed(wt: &WorkTree, prepared: &Prepared) -> Result<(), Error> {
    let files: Vec<&Planned> = prepared.files.iter().filter(|f| !f.created).collect();
    let paths: Vec<&Path> = files.iter().map(|f| f.path.as_path()).collect();
    let rels = wt
        .relative_all(&paths)
        .map_err(|e| Error::Usage(e.to_string()))?;
    let list: Vec<(PathBuf, &[u8])> = rels
        .into_iter()
        .zip(&files)
        .map(|(r, f)| (r, f.text.as_bytes()))
        .collect();
    let states = wt
        .uncommitted(&list)
        .map_err(|e| Error::Failed(e.to_string()))?;
    for (f, state) in files.iter().zip(states) {
        if let Some(s) = state {
            return Err(Error::Usage(format!(
                "{} has uncommitted changes in the work tree ({s}); commit or discard them, \
                 then run again",
                escape::text_line(&f.rel)
            )));
        }
    }
    Ok(())
}

/// Read the repository and work out the change (nothing is written).
async fn prepare(
    req: &VerbRequest,
    args: &Args,
    config: &Config,
    config_file: &Path,
) -> Result<Prepared, Error> {
    let found = discover_all(&req.root, config, config_file)?;
    let group = args.group();
    let name = args.image.canonical_name();
    let mut files: BTreeMap<String, Planned> = BTreeMap::new();
    let mut updates = Vec::new();
    let mut backwards = None;
    if let Some(tag) = &args.tag {
        let matching: Vec<&discover::Occurrence> = found
            .occurrences
            .iter()
            .filter(|o| o.image.canonical_name() == name)
            .filter(|o| !FileId::of(o).source(&found).created)
            .filter(|o| {
                args.files
                    .as_ref()
                    .is_none_or(|g| g.is_match(&FileId::of(o).source(&found).rel))
            })
            .collect();
        if matching.is_empty() {
            return Err(Error::Usage(format!(
                "no reference to {} found{}",
                escape::text_line(&name),
                if args.files.is_some() {
                    " in the files --files selects"
                } else {
                    ""
                }
            )));
        }
        let registries = registries(req, config);
        let digest = check_tag(
            &registries,
            &args.image,
            tag,
            matching.iter().any(|o| o.image.digest.is_some()),
        )
        .await?;
        for occ in matching {
            let current = occ.image.tag.as_deref();
            let new_digest = occ.image.digest.as_ref().and(digest.as_deref());
            if current == Some(tag.as_str()) && occ.image.digest.as_deref() == new_digest {
                continue;
            }
            let edits = discover::edits_for(occ, &occ.image, tag, new_digest);
            if edits.is_empty() {
                continue;
            }
            let src = FileId::of(occ).source(&found);
            let back = current.is_some_and(|c| lower_version(tag, c));
            if back {
                backwards.get_or_insert_with(|| current.unwrap_or_default().to_string());
            }
            let update = Update {
                policy: group.clone(),
                image: name.clone(),
                file: src.rel.clone(),
                line: occ.site.line,
                from: current
                    .or(occ.image.digest.as_deref())
                    .unwrap_or_default()
                    .to_string(),
                to: tag.clone(),
                digest: new_digest.map(str::to_string),
                note: back.then(|| "rollback: a lower version".to_string()),
            };
            updates.push(update.clone());
            files
                .entry(src.rel.clone())
                .or_insert_with(|| Planned {
                    path: src.path.clone(),
                    rel: src.rel.clone(),
                    text: src.text.clone(),
                    new_text: String::new(),
                    changes: Vec::new(),
                    created: false,
                })
                .changes
                .push(Change { edits, update });
        }
        for f in files.values_mut() {
            let edits: Vec<manifest::edit::Edit> = f
                .changes
                .iter()
                .flat_map(|c| c.edits.iter().cloned())
                .collect();
            f.new_text = manifest::apply_file_edits(&f.path, &f.text, &edits).map_err(|e| {
                Error::Failed(format!("{}: not rewritten: {e}", escape::text_line(&f.rel)))
            })?;
        }
    }
    // The lock: asked for, or a rollback's.
    let reason = match (&args.reason, &backwards, &args.tag) {
        (Some(r), _, _) => Some(r.clone()),
        (None, Some(from), Some(tag)) if !args.no_lock => Some(format!(
            "rolled back from {from} to {tag} by image-updater set"
        )),
        _ => None,
    };
    let mut lock = None;
    if reason.is_some() || args.unlock {
        let since = now_rfc3339(&req.env);
        lock = write_lock(
            &found,
            &req.root,
            config_file,
            &name,
            reason.as_deref(),
            &since,
            &group,
            &mut files,
        )?;
    }
    let files: Vec<Planned> = files
        .into_values()
        .filter(|f| f.new_text != f.text || f.created)
        .collect();
    let message = commit_message(
        config,
        args,
        &updates,
        &name,
        reason.as_deref(),
        lock.is_some(),
    );
    Ok(Prepared {
        files,
        updates,
        lock,
        message,
    })
}

/// The commit message: `set`'s from the config's template; a lock's and an unlock's say so.
fn commit_message(
    config: &Config,
    args: &Args,
    updates: &[Update],
    image: &str,
    reason: Option<&str>,
    locked: bool,
) -> String {
    let commit = &config.delivery.commit;
    let mut message = if args.tag.is_some() {
        crate::template::commit_message(&commit.message, updates, None)
            .trim_end()
            .to_string()
    } else if args.unlock {
        format!("chore(images): unlock {image}")
    } else {
        format!("chore(images): lock {image}")
    };
    if let (true, Some(r)) = (locked, reason.filter(|r| !r.is_empty())) {
        if args.tag.is_some() {
            message.push_str(&format!("\n\nLocked {image}: {r}"));
        } else {
            message.push_str(&format!("\n\n{r}"));
        }
    }
    if commit.signoff {
        message.push_str(&format!(
            "\n\nSigned-off-by: {} <{}>",
            commit.author.name, commit.author.email
        ));
    }
    message + "\n"
}

/// Discover every reference of the work tree, as `run` would read it.
fn discover_all(root: &Path, config: &Config, config_file: &Path) -> Result<Discovery, Error> {
    let watched = config.watched(config_file)?;
    let opts = manifest::files::DiscoverOptions {
        paths: config.paths.clone(),
        exclude: config.exclude.clone(),
        max_file_size: config
            .max_file_size
            .unwrap_or(manifest::files::DEFAULT_MAX_FILE_SIZE),
    };
    let files = manifest::files::discover_files(root, &opts)
        .map_err(|e| Error::Config(crate::config::ConfigError::from_message(config_file, e)))?;
    Ok(discover::discover(
        root,
        &files,
        &config.scan_options(),
        &watched,
    ))
}

/// The registries as `run` sets them up (the repo's Flux `insecure` hosts included).
fn registries(req: &VerbRequest, config: &Config) -> Registries {
    let mut hosts = config.registries.clone();
    hosts.extend(flux_repo::insecure_registries(&req.root, config));
    Registries::new(&hosts, &config.limits, &req.root, req.env.clone())
}

/// Check that `tag` of `image` is in the registry (an error naming it when not: nothing is
/// written); with `digest`, the digest it points at.
async fn check_tag(
    registries: &Registries,
    image: &ImageRef,
    tag: &str,
    digest: bool,
) -> Result<Option<String>, Error> {
    let name = image.canonical_name();
    let source = registries.source(&image.registry);
    let tags = source.list_tags(&image.repository).await.map_err(|e| {
        Error::Failed(format!(
            "{}: {e}; nothing written",
            escape::text_line(&name)
        ))
    })?;
    if !tags.iter().any(|t| t == tag) {
        return Err(Error::Failed(format!(
            "{}: the registry has no tag {}; nothing written",
            escape::text_line(&name),
            escape::text_line(tag)
        )));
    }
    if !digest {
        return Ok(None);
    }
    let d = source.digest(&image.repository, tag).await.map_err(|e| {
        Error::Failed(format!(
            "{}:{tag}: {e}; nothing written",
            escape::text_line(&name)
        ))
    })?;
    Ok(Some(d))
}

/// Whether `new` is a lower version than `current` (both read leniently: a `v` prefix, one
/// to three numbers, a pre-release); tags that are not versions are never lower.
pub(crate) fn lower_version(new: &str, current: &str) -> bool {
    match (lenient(new), lenient(current)) {
        (Some(a), Some(b)) => a < b,
        _ => false,
    }
}

fn lenient(tag: &str) -> Option<semver::Version> {
    let t = tag.strip_prefix('v').unwrap_or(tag);
    let (core, rest) = match t.find(['-', '+']) {
        Some(i) => t.split_at(i),
        None => (t, ""),
    };
    let mut parts: Vec<&str> = core.split('.').collect();
    if parts.is_empty()
        || parts.len() > 3
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    while parts.len() < 3 {
        parts.push("0");
    }
    semver::Version::parse(&format!("{}{rest}", parts.join("."))).ok()
}

/// Write (`reason` given) or remove the lock of `image` on top of `files`' planned texts: on
/// the Flux v1 workloads running it, else in the config's `locks:`. Says what it did, or
/// `None` when nothing changed.
#[allow(clippy::too_many_arguments)]
fn write_lock(
    found: &Discovery,
    root: &Path,
    config_file: &Path,
    image: &str,
    reason: Option<&str>,
    since: &str,
    group: &str,
    files: &mut BTreeMap<String, Planned>,
) -> Result<Option<String>, Error> {
    let failed = |rel: &str, e: locks::LockEditError| {
        Error::Usage(format!("{}:{}", escape::text_line(rel), e))
    };
    let lock_change = |rel: &str, line: usize| Change {
        edits: Vec::new(),
        update: Update {
            policy: group.to_string(),
            image: image.to_string(),
            file: rel.to_string(),
            line,
            from: String::new(),
            to: String::new(),
            digest: None,
            note: Some(match reason {
                Some(r) => crate::locks::locked_reason(Some(r)),
                None => "unlocked".into(),
            }),
        },
    };
    // Flux v1 workloads running the image, in discovery order.
    let mut workloads = Vec::new();
    for src in found.sources.iter().filter(|s| !s.created) {
        let has_flux = locks::FLUX_V1_PREFIXES.iter().any(|p| src.text.contains(p));
        if !has_flux {
            continue;
        }
        let list = locks::flux_workloads(&src.text).map_err(|e| failed(&src.rel, e))?;
        if list.iter().any(|w| w.runs(image)) {
            workloads.push(src);
        }
    }
    let mut touched = Vec::new();
    let any_workload = !workloads.is_empty();
    for src in workloads {
        let planned = files.entry(src.rel.clone()).or_insert_with(|| Planned {
            path: src.path.clone(),
            rel: src.rel.clone(),
            text: src.text.clone(),
            new_text: src.text.clone(),
            changes: Vec::new(),
            created: false,
        });
        let mut text = planned.new_text.clone();
        let count = locks::flux_workloads(&text)
            .map_err(|e| failed(&src.rel, e))?
            .len();
        for i in 0..count {
            let list = locks::flux_workloads(&text).map_err(|e| failed(&src.rel, e))?;
            let w = &list[i];
            if !w.runs(image) {
                continue;
            }
            let next = match reason {
                Some(r) => w.lock(&text, r),
                None => w.unlock(&text),
            }
            .map_err(|e| failed(&src.rel, e))?;
            if next != text {
                let line = manifest::scan::line_at(&text, w.span.start);
                planned.changes.push(lock_change(&src.rel, line));
                touched.push(format!("{} in {}", w.name, src.rel));
                text = next;
            }
        }
        planned.new_text = text;
    }
    if !touched.is_empty() {
        let verb = if reason.is_some() {
            "locked"
        } else {
            "unlocked"
        };
        return Ok(Some(format!("{verb} {image} on {}", touched.join(", "))));
    }
    if any_workload {
        // Its workloads hold the lock (or are free of it) already.
        return Ok(None);
    }
    // The config's `locks:`.
    let rel = match in_root(root, config_file) {
        Some(r) => r,
        None => {
            return Err(Error::Usage(format!(
                "the lock of {image} goes in the config's locks:, but {} is outside the \
                 repository (--config): it would not be committed",
                config_file.display()
            )))
        }
    };
    let (text, created) = match std::fs::read_to_string(config_file) {
        Ok(t) => (t, false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (String::new(), true),
        Err(e) => return Err(Error::Failed(format!("{}: {e}", config_file.display()))),
    };
    let new_text = match reason {
        Some(r) => locks::config_lock(&text, image, r, since),
        None => locks::config_unlock(&text, image),
    }
    .map_err(|e| failed(&rel, e))?;
    let Some(new_text) = new_text else {
        return Ok(None);
    };
    let line = new_text
        .lines()
        .position(|l| l.starts_with("locks:"))
        .map_or(1, |i| i + 1);
    files.insert(
        rel.clone(),
        Planned {
            path: config_file.to_path_buf(),
            rel: rel.clone(),
            text,
            new_text,
            changes: vec![lock_change(&rel, line)],
            created,
        },
    );
    let verb = if reason.is_some() {
        "locked"
    } else {
        "unlocked"
    };
    Ok(Some(format!("{verb} {image} in {rel}")))
}

/// One file a promotion changes (issue 22, `crate::stages`): where it is, its text as found
/// and as it will be, and the changes.
pub(crate) struct PlannedFile {
    pub path: PathBuf,
    pub rel: String,
    pub text: String,
    pub new_text: String,
    pub changes: Vec<Change>,
    /// Not in the work tree yet (a config created for its `locks:`).
    pub created: bool,
}

/// Lock `image` on top of `files` (a promotion's rewritten files), as a `set` that rolls back
/// does: on the Flux v1 workloads running it, else in the config's `locks:`. Returns the files
/// with the lock's edits added, and what was locked (`None`: it was locked already).
#[allow(clippy::too_many_arguments)]
pub(crate) fn lock_with(
    found: &Discovery,
    root: &Path,
    config_file: &Path,
    image: &str,
    reason: &str,
    since: &str,
    group: &str,
    files: Vec<PlannedFile>,
) -> Result<(Vec<PlannedFile>, Option<String>), Error> {
    let mut planned: BTreeMap<String, Planned> = files
        .into_iter()
        .map(|f| {
            (
                f.rel.clone(),
                Planned {
                    path: f.path,
                    rel: f.rel,
                    text: f.text,
                    new_text: f.new_text,
                    changes: f.changes,
                    created: f.created,
                },
            )
        })
        .collect();
    let lock = write_lock(
        found,
        root,
        config_file,
        image,
        Some(reason),
        since,
        group,
        &mut planned,
    )?;
    let files = planned
        .into_values()
        .map(|p| PlannedFile {
            path: p.path,
            rel: p.rel,
            text: p.text,
            new_text: p.new_text,
            changes: p.changes,
            created: p.created,
        })
        .collect();
    Ok((files, lock))
}

/// `file`'s path relative to `root` (both resolved), when it is inside.
fn in_root(root: &Path, file: &Path) -> Option<String> {
    let root = std::fs::canonicalize(root).ok()?;
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let dir = std::fs::canonicalize(dir).ok()?;
    let rel = dir.join(file.file_name()?);
    let rel = rel.strip_prefix(&root).ok()?;
    Some(rel.to_string_lossy().replace('\\', "/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_versions_are_read_leniently_and_other_tags_never_are() {
        assert!(lower_version("1.0.0", "1.1.0"));
        assert!(lower_version("v1.9", "v1.10.0"));
        assert!(lower_version("1.2.0-rc.1", "1.2.0"));
        assert!(!lower_version("1.2.0", "1.1.9"));
        assert!(!lower_version("1.1.0", "1.1.0"));
        assert!(!lower_version("main-abc", "1.0.0"));
        assert!(!lower_version("1.0.0", "latest"));
    }

    #[test]
    fn arguments_are_checked_before_any_work() {
        let set = |image: &str, files: Option<&str>| {
            Args::parse(&Verb::Set {
                image: image.into(),
                files: files.map(String::from),
                no_lock: false,
            })
        };
        assert!(set("ghcr.io/acme/web:1.2.0", Some("apps/**")).is_ok());
        for bad in [
            set("ghcr.io/acme/web", None),
            set("ghcr.io/acme/web:1", Some("a/[")),
            set(&format!("ghcr.io/acme/web@sha256:{}", "a".repeat(64)), None),
        ] {
            assert_eq!(bad.err().map(|e| e.exit_code()), Some(2));
        }
        let lock = Args::parse(&Verb::Lock {
            image: "nginx".into(),
            reason: None,
        })
        .unwrap();
        assert_eq!(lock.group(), "lock-nginx");
        assert_eq!(lock.reason.as_deref(), Some(""));
    }
}
