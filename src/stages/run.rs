//! Running the stages in config order: each stage's pass (the policies' picks for a first
//! stage, the upstream's soaked versions for a later one), its delivery (its own `mode`: one
//! commit, or a pull request per group), and its part of the report (`Report.stages`).
//!
//! History is read once, before anything is delivered: every stage decides on the base
//! branch as it was when the run began.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{ConfigError, DeliveryMode, Group};
use crate::deliver::{self, Delivered, FilePlan};
use crate::error::Error;
use crate::flux_repo::CommitPlan;
use crate::git::{self, GitErrorKind};
use crate::pipeline::{self, Command, Ctx, Outcome, Pass};
use crate::reference::ImageRef;
use crate::registry::created::{cached_facts, BuildTimeError, CreatedCache};
use crate::report::{ErrorEntry, Report, StageImage, StagePending, StageReport, Update};
use crate::resolve::{Lookups, RepoKey, TagCache};
use crate::select::{Change, FileId};
use crate::verbs::PlannedFile;
use crate::{discover, escape};

use super::history::{self, FileRules, Holding, Scanner, StageHistory};
use super::spec::{show_duration, Stage};
use super::{rfc3339, Promote};

/// The manifest annotation read for an image's build time when its config has none.
/// How far beyond the longest soak a shallow clone is deepened.
const DEEPEN_MARGIN: i64 = 86_400;
/// Build times read per image for `min_age`: a first stage passes over at most this many tags
/// too young before it holds the image.
const MIN_AGE_LOOKUPS: usize = 10;

/// The upstream's soak evidence of an image moving: name, version, and the committer time
/// and id of the commit that brought it (`None` past the history read).
type Evidence = (String, String, Option<(i64, String)>);

/// One stage's work: what it would change, and what waits.
struct StagePass {
    pass: Pass,
    /// Locks written by a backwards `promote`, and other files beyond the pass's.
    extra: Vec<PlannedFile>,
    pending: Vec<StagePending>,
    /// The upstream's soak evidence of each image moving.
    evidence: Vec<Evidence>,
    /// What was locked, for the summary.
    locked: Option<String>,
}

/// Run every stage (or `--stage`, or `promote`'s) on the work tree.
pub(crate) async fn execute(mut ctx: Ctx<'_>) -> Result<Outcome, Error> {
    let req = ctx.req;
    let stages = Stage::compile(&ctx.config.stages, &ctx.config_file)?;
    if stages.is_empty() {
        return Err(Error::Usage(format!(
            "{} has no stages: --stage and promote need a stages: list",
            ctx.config_file.display()
        )));
    }
    let all_names = stages
        .iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let find = |name: &str| {
        stages.iter().position(|s| s.name == name).ok_or_else(|| {
            Error::Usage(format!(
                "no stage {}; the stages are {all_names}",
                escape::text_line(name)
            ))
        })
    };
    let selected: Vec<usize> = match (&req.promote, &req.stage) {
        (Some(p), _) => {
            let i = find(&p.stage)?;
            if stages[i].from.is_none() {
                return Err(Error::Usage(format!(
                    "stage {} has no from: there is no upstream to promote from (set moves it)",
                    stages[i].name
                )));
            }
            vec![i]
        }
        (None, Some(n)) => vec![find(n)?],
        (None, None) => (0..stages.len()).collect(),
    };
    let mode_of = |s: &Stage| req.mode.or(s.mode).unwrap_or(ctx.config.delivery.mode);
    let modes: Vec<DeliveryMode> = selected.iter().map(|i| mode_of(&stages[*i])).collect();
    let work_tree =
        match req.command == Command::Run && modes.iter().any(|m| *m != DeliveryMode::None) {
            true => Some(pipeline::open_work_tree(&ctx, &modes)?),
            false => None,
        };
    let plan_tree = (req.command == Command::Plan)
        .then(|| git::WorkTree::open(&req.root, &req.env).ok())
        .flatten();
    let committed_only = work_tree.as_ref().map(|(wt, _)| wt).or(plan_tree.as_ref());
    let now = now_secs(&req.env);

    // The repo's policies: their names, and the images markers holding only a tag name; the
    // stages' files only are parsed.
    let every_path: Vec<String> = stages.iter().flat_map(|s| s.paths.clone()).collect();
    ctx.only = Some(
        crate::config::glob_set(&every_path)
            .map_err(|e| Error::Config(ConfigError::from_message(&ctx.config_file, e)))?,
    );
    let everything = pipeline::discover_pass(&ctx)?;
    let governors = &everything.found.governors;
    let known: Vec<&str> = governors.iter().map(|g| g.name.as_str()).collect();
    for s in &stages {
        s.check_together(&known, &ctx.config_file)?;
    }
    let fallback: HashMap<String, ImageRef> = governors
        .iter()
        .map(|g| (g.name.clone(), g.image.clone()))
        .collect();
    let mut names: HashMap<String, String> = HashMap::new();
    for o in &everything.found.occurrences {
        if let Some(g) = o.governor {
            names
                .entry(o.image.canonical_name())
                .or_insert_with(|| governors[g].name.clone());
        }
    }
    drop(everything);

    let mut notes = Vec::new();
    let needs_history = selected.iter().any(|i| stages[*i].from.is_some());
    let history = read_history(&ctx, &stages, needs_history, now, &fallback, &mut notes)?;

    let mut tags = TagCache::new();
    let mut created = CreatedCache::new();
    let mut report = Report::new();
    let mut outcome = Outcome::default();
    let mut lines = Vec::new();
    for (i, stage) in stages.iter().enumerate() {
        let mut sr = StageReport {
            name: stage.name.clone(),
            from: stage.from.map(|f| stages[f].name.clone()),
            soak: (stage.soak > 0).then(|| show_duration(stage.soak)),
            images: held_images(history.as_ref(), i, &names),
            pending: Vec::new(),
        };
        let Some(at) = selected.iter().position(|s| *s == i) else {
            report.stages.push(sr);
            continue;
        };
        let mode = modes[at];
        ctx.only = Some(stage.globs.clone());
        let mut tries = 1;
        let (sp, delivered) = loop {
            let sp = match stage.from {
                None => {
                    first_stage(&ctx, stage, &mut tags, &mut created, now, committed_only).await?
                }
                Some(up) => {
                    let h = history.as_ref().ok_or_else(|| {
                        Error::Usage("stages with from need a git work tree".into())
                    })?;
                    let args = Later {
                        ctx: &ctx,
                        stages: &stages,
                        index: i,
                        upstream: up,
                        history: h,
                        now,
                        promote: req.promote.as_ref(),
                    };
                    later_stage(&args, &mut created, committed_only).await?
                }
            };
            let owned = owned_plan(&sp.pass, &sp.extra);
            if req.command == Command::Plan || mode == DeliveryMode::None {
                outcome.diff.push_str(&sp.pass.diff());
                for f in &sp.extra {
                    let old = if f.created { "" } else { f.text.as_str() };
                    outcome
                        .diff
                        .push_str(&pipeline::unified_diff(&f.rel, old, &f.new_text));
                }
                break (sp, None);
            }
            let Some((wt, branch)) = &work_tree else {
                break (sp, None);
            };
            if owned.is_empty() {
                break (sp, Some(Delivered::default()));
            }
            let plan = plan_refs(&owned);
            let updates: Vec<Update> = owned
                .iter()
                .flat_map(|f| f.changes.iter().map(|c| c.update.clone()))
                .collect();
            let app = pipeline::app_changes_of(&ctx, wt, &updates).await;
            match mode {
                DeliveryMode::PullRequest => {
                    let upstream = sr
                        .from
                        .as_ref()
                        .and_then(|f| report.stages.iter().find(|s| &s.name == f));
                    let at = history.as_ref().map_or(now, |h| h.head_time);
                    let body = promotion_body(&sr, upstream, &sp, at);
                    let d = deliver_prs(&ctx, stage, wt, branch, &owned, &body, &app).await;
                    break (sp, Some(d));
                }
                _ => {
                    let message = stage_message(&ctx, stage, &stages, &sp, req.promote.as_ref());
                    let how = CommitPlan {
                        message: Some(message),
                        ..CommitPlan::default()
                    };
                    let api = match deliver::commit::api_target(&ctx.config.delivery, wt, &req.env)
                    {
                        Ok(api) => api,
                        Err(e) => break (sp, Some(Delivered::nothing(e))),
                    };
                    let dirs: BTreeSet<&Path> =
                        plan.iter().filter_map(|p| p.path.parent()).collect();
                    let commit = &ctx.config.delivery.commit;
                    match deliver::commit::deliver(
                        commit,
                        &how,
                        wt,
                        branch,
                        &dirs,
                        &plan,
                        api.as_ref(),
                        &app,
                    ) {
                        Ok(d) => break (sp, Some(d)),
                        Err(e)
                            if e.kind == GitErrorKind::Rejected && tries < deliver::PUSH_TRIES =>
                        {
                            tracing::info!("push rejected, fetching and trying again: {e}");
                            tries += 1;
                            deliver::commit::catch_up(wt, branch)
                                .map_err(|e| Error::Failed(e.to_string()))?;
                        }
                        Err(e) => break (sp, Some(Delivered::nothing(e.to_string()))),
                    }
                }
            }
        };
        // What moved, and what the stage holds now.
        let moved: Vec<Update> = match &delivered {
            Some(d) => d
                .updates
                .iter()
                .filter(|u| !u.to.is_empty())
                .cloned()
                .collect(),
            None => sp
                .pass
                .rewritten
                .iter()
                .flat_map(|r| r.changes.iter().map(|c| c.update.clone()))
                .collect(),
        };
        let landed = delivered
            .as_ref()
            .is_some_and(|d| d.commit.is_some() || !d.pull_requests.is_empty());
        let mut seen = HashSet::new();
        for u in &moved {
            if seen.insert((u.policy.clone(), u.to.clone())) {
                sr.pending.push(StagePending {
                    name: u.policy.clone(),
                    version: u.to.clone(),
                    reason: if landed { "promoted" } else { "ready" }.to_string(),
                });
            }
        }
        if let Some(c) = delivered.as_ref().and_then(|d| d.commit.clone()) {
            for u in &moved {
                if let Some(img) = sr.images.iter_mut().find(|m| m.image == u.image) {
                    img.version = u.to.clone();
                    img.since = Some(rfc3339(now));
                    img.commit = Some(c.clone());
                }
            }
        }
        sr.pending.extend(sp.pending);
        lines.push(stage_line(
            stage,
            mode,
            req.command,
            &moved,
            delivered.as_ref(),
            sp.locked.as_deref(),
        ));
        let part = sp.pass.into_report(delivered);
        report
            .updates
            .extend(part.updates.into_iter().filter(|u| !u.to.is_empty()));
        report.skipped.extend(part.skipped);
        report.errors.extend(part.errors);
        report.outdated.extend(part.outdated);
        if part.commit.is_some() {
            report.commit = part.commit;
        }
        report.pull_requests.extend(part.pull_requests);
        report.stages.push(sr);
    }
    report
        .skipped
        .sort_by(|a, b| (&a.file, a.line, &a.reason).cmp(&(&b.file, b.line, &b.reason)));
    report.skipped.dedup();
    let mut seen = HashSet::new();
    report.errors.retain(|e| seen.insert(e.message.clone()));
    let mut summary = lines.join("; ");
    for n in &notes {
        summary.push_str("; ");
        summary.push_str(n);
    }
    if !report.errors.is_empty() {
        let n = report.errors.len();
        summary.push_str(&format!("; {n} error{}", if n == 1 { "" } else { "s" }));
    }
    outcome.summary = summary;
    outcome.report = report;
    Ok(outcome)
}

/// Seconds since the epoch: `SOURCE_DATE_EPOCH` when set, else the clock.
fn now_secs(env: &crate::env::Env) -> i64 {
    crate::registry::created::parse_rfc3339(&crate::locks::now_rfc3339(env)).map_or(0, |t| t.0)
}

/// Read each stage's holdings from history; a shallow clone is deepened first (said in
/// `notes`). `None` outside a git work tree when no stage needs history.
fn read_history(
    ctx: &Ctx<'_>,
    stages: &[Stage],
    needed: bool,
    now: i64,
    fallback: &HashMap<String, ImageRef>,
    notes: &mut Vec<String>,
) -> Result<Option<StageHistory>, Error> {
    let root = &ctx.req.root;
    let mut repo = match git2::Repository::discover(root) {
        Ok(r) => r,
        Err(_) if !needed => return Ok(None),
        Err(e) => {
            return Err(Error::Usage(format!(
                "{}: stages with from read the history of a git work tree: {}",
                root.display(),
                e.message()
            )))
        }
    };
    let git_err = |e: git2::Error| Error::Failed(format!("reading the history: {}", e.message()));
    let mut boundary = history::shallow_boundary(&repo);
    if !boundary.is_empty() && needed {
        let soak = stages.iter().map(|s| s.soak).max().unwrap_or(0);
        let head = repo.head().map_err(git_err)?;
        let branch = head.shorthand().unwrap_or("HEAD").to_string();
        let remote = head
            .name()
            .ok()
            .and_then(|n| repo.branch_upstream_remote(n).ok())
            .and_then(|b| b.as_str().ok().map(str::to_string))
            .unwrap_or_else(|| "origin".into());
        drop(head);
        match history::deepen(root, &remote, &branch, now - soak - DEEPEN_MARGIN) {
            Ok(note) => {
                tracing::warn!("{note}");
                notes.push(note);
            }
            Err(e) => {
                tracing::warn!("the clone is shallow and could not be deepened: {e}");
                notes.push(format!(
                    "the clone is shallow and could not be deepened: {e}"
                ));
            }
        }
        repo = git2::Repository::discover(root).map_err(git_err)?;
        boundary = history::shallow_boundary(&repo);
    }
    let config = &ctx.config;
    let set = |globs: &[String]| -> Result<Option<globset::GlobSet>, Error> {
        if globs.is_empty() {
            return Ok(None);
        }
        crate::config::glob_set(globs)
            .map(Some)
            .map_err(|e| Error::Config(ConfigError::from_message(&ctx.config_file, e)))
    };
    let rules = FileRules {
        paths: set(&config.paths)?,
        exclude: set(&config.exclude)?,
        max_size: config
            .max_file_size
            .unwrap_or(crate::manifest::files::DEFAULT_MAX_FILE_SIZE),
    };
    let opts = config.scan_options();
    let head = match repo.head().and_then(|h| h.peel_to_commit()) {
        Ok(c) => c.id(),
        Err(_) if !needed => return Ok(None),
        Err(e) => return Err(git_err(e)),
    };
    let started = std::time::Instant::now();
    let mut scanner = Scanner::new(&repo, stages, &rules, &opts, fallback);
    let h = history::walk(&mut scanner, &repo, head, &boundary).map_err(git_err)?;
    tracing::info!(
        commits = h.commits,
        ms = crate::observe::ms_since(started),
        "stages: first-parent history read"
    );
    Ok(Some(h))
}

/// What stage `i` holds, by the names of the policies governing each image.
fn held_images(
    history: Option<&StageHistory>,
    i: usize,
    names: &HashMap<String, String>,
) -> Vec<StageImage> {
    let Some(h) = history else { return Vec::new() };
    let mut out: Vec<StageImage> = h.stages[i]
        .iter()
        .filter_map(|(image, holding)| {
            let name = names.get(image)?.clone();
            Some(match holding {
                Holding::Held { version, since, .. } => StageImage {
                    name,
                    image: image.clone(),
                    version: version.clone(),
                    since: since.map(|(t, _)| rfc3339(t)),
                    commit: since.map(|(_, c)| c.to_string()),
                },
                Holding::Mixed(vs) => StageImage {
                    name,
                    image: image.clone(),
                    version: vs.join(", "),
                    since: None,
                    commit: None,
                },
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.name, &a.image).cmp(&(&b.name, &b.image)));
    out
}

/// A first stage: the policies' picks in its files; with `min_age`, a tag whose image is too
/// young is passed over (the next best is tried), and one whose build time cannot be read
/// holds its image.
async fn first_stage(
    ctx: &Ctx<'_>,
    stage: &Stage,
    tags: &mut TagCache,
    created: &mut CreatedCache,
    now: i64,
    committed_only: Option<&git::WorkTree>,
) -> Result<StagePass, Error> {
    let mut pending: Vec<StagePending> = Vec::new();
    let mut held: HashSet<String> = HashSet::new();
    let mut looked: HashMap<String, usize> = HashMap::new();
    let (pass, mut changes, resolved) = loop {
        let (pass, changes, resolved) = pipeline::select_pass(ctx, tags).await?;
        let Some(min_age) = stage.min_age else {
            break (pass, changes, resolved);
        };
        let picks: BTreeSet<(String, String, String)> = changes
            .values()
            .flatten()
            .map(|c| {
                (
                    c.update.image.clone(),
                    c.update.to.clone(),
                    c.update.policy.clone(),
                )
            })
            .filter(|(image, _, _)| !held.contains(image))
            .collect();
        let mut again = false;
        for (image, tag, policy) in picks {
            let count = looked.entry(image.clone()).or_default();
            *count += 1;
            match build_time(ctx, &image, &tag, created).await {
                Ok(t) if now - t < min_age => {
                    pending.push(StagePending {
                        name: policy,
                        version: tag.clone(),
                        reason: format!(
                            "min_age {}: built {}, a candidate from {}",
                            show_duration(min_age),
                            rfc3339(t),
                            rfc3339(t + min_age)
                        ),
                    });
                    if *count >= MIN_AGE_LOOKUPS {
                        held.insert(image);
                        continue;
                    }
                    // Pass the tag over: the policy picks again from the others.
                    if let Ok(r) = ImageRef::parse(&image) {
                        if let Some(Ok(list)) = tags.get_mut(&RepoKey::of(&r)) {
                            *list = Arc::new(list.iter().filter(|t| **t != tag).cloned().collect());
                        }
                    }
                    again = true;
                }
                Ok(_) => {}
                Err(e) => {
                    pending.push(StagePending {
                        name: policy,
                        version: tag,
                        reason: format!("min_age: no build time ({e}); not guessed"),
                    });
                    held.insert(image);
                }
            }
        }
        if !again {
            break (pass, changes, resolved);
        }
    };
    for list in changes.values_mut() {
        list.retain(|c| !held.contains(&c.update.image));
    }
    changes.retain(|_, l| !l.is_empty());
    let pass = pipeline::finish_pass(pass, changes, resolved, committed_only);
    Ok(StagePass {
        pass,
        extra: Vec::new(),
        pending,
        evidence: Vec::new(),
        locked: None,
    })
}

/// The build time of `tag` of `image` (canonical), read once per run: its image config's
/// `created`, else its manifest's `org.opencontainers.image.created` annotation. A missing
/// or unreadable time is an error, never a guess.
async fn build_time(
    ctx: &Ctx<'_>,
    image: &str,
    tag: &str,
    cache: &mut CreatedCache,
) -> Result<i64, BuildTimeError> {
    let img = ImageRef::parse(image).map_err(|_| BuildTimeError::NoCreated)?;
    let source = ctx.registries.source(&img.registry);
    cached_facts(source.as_ref(), image, &img.repository, tag, cache)
        .await
        .and_then(|f| f.created_or_annotated())
        .map(|t| t.0)
}

/// What a later stage's pass needs.
struct Later<'a, 'c> {
    ctx: &'a Ctx<'c>,
    stages: &'a [Stage],
    index: usize,
    upstream: usize,
    history: &'a StageHistory,
    now: i64,
    promote: Option<&'a Promote>,
}

/// Whether an image moves into a later stage, and why not.
enum Decision {
    Ready {
        version: String,
        since: Option<(i64, String)>,
        /// The stage's version, when the move is to a lower one.
        backwards: Option<String>,
        forced: bool,
    },
    Wait(String, String),
    Current,
}

/// A later stage: each image moves to the version its upstream holds, once soaked (or
/// `promote`d), all of a `together` group at once.
async fn later_stage(
    a: &Later<'_, '_>,
    created: &mut CreatedCache,
    committed_only: Option<&git::WorkTree>,
) -> Result<StagePass, Error> {
    let ctx = a.ctx;
    let stage = &a.stages[a.index];
    let up = &a.stages[a.upstream];
    let mut pass = pipeline::discover_pass(ctx)?;
    let found = &pass.found;
    // The references this stage may move, by image: governed, and not locked (`promote`
    // moves a locked image too, as `set` does).
    let mut by_image: BTreeMap<String, (String, Vec<usize>)> = BTreeMap::new();
    for (k, o) in found.occurrences.iter().enumerate() {
        let Some(g) = o.governor else { continue };
        let locked = o.reason.as_deref().is_some_and(|r| r.starts_with("locked"));
        if o.reason.is_some() && !(locked && a.promote.is_some()) {
            continue;
        }
        by_image
            .entry(o.image.canonical_name())
            .or_insert_with(|| (found.governors[g].name.clone(), Vec::new()))
            .1
            .push(k);
    }
    if let Some(want) = a.promote.and_then(|p| p.image.as_deref()) {
        by_image.retain(|image, (name, _)| {
            name == want || crate::manifest::locks::same_image(image, want)
        });
        if by_image.is_empty() {
            return Err(Error::Usage(format!(
                "promote: no reference of {} in the files of stage {}",
                escape::text_line(want),
                stage.name
            )));
        }
    }
    let force = a.promote.is_some_and(|p| p.force);
    let mut decisions: BTreeMap<String, Decision> = BTreeMap::new();
    for image in by_image.keys() {
        let own = match a.history.stages[a.index].get(image) {
            Some(Holding::Held { version, .. }) => Some(version.clone()),
            _ => None,
        };
        let d = match a.history.stages[a.upstream].get(image) {
            None => continue,
            Some(Holding::Mixed(vs)) => Decision::Wait(
                String::new(),
                format!("{} holds several versions ({})", up.name, vs.join(", ")),
            ),
            Some(Holding::Held {
                version,
                since,
                at_least,
            }) => {
                if own.as_deref() == Some(version.as_str()) {
                    Decision::Current
                } else {
                    let soaked = match since {
                        Some((t, _)) => a.now - t >= stage.soak,
                        None => a.now - at_least >= stage.soak,
                    };
                    let backwards = own
                        .as_deref()
                        .filter(|c| crate::verbs::lower_version(version, c))
                        .map(str::to_string);
                    if since.is_none() && !soaked && !force && backwards.is_none() {
                        let end = a.history.ended.map(|(c, t)| (c.to_string(), t));
                        return Err(Error::Failed(format!(
                            "stage {}: {} has held {image} {version} at least since {}, where the \
                             history ends{}; the soak of {} needs history back to {}: fetch \
                             more (git fetch --shallow-since={}) or clone without --depth; \
                             nothing promoted",
                            stage.name,
                            up.name,
                            rfc3339(*at_least),
                            end.map(|(c, _)| format!(" (commit {})", pipeline::short_id(&c)))
                                .unwrap_or_default(),
                            show_duration(stage.soak),
                            rfc3339(a.now - stage.soak),
                            rfc3339(a.now - stage.soak - DEEPEN_MARGIN),
                        )));
                    }
                    match (&backwards, a.promote) {
                        (Some(c), None) => Decision::Wait(
                            version.clone(),
                            format!(
                                "{} holds {version}, lower than {c}: promote {} moves it back",
                                up.name, stage.name
                            ),
                        ),
                        _ if !soaked && !force => Decision::Wait(
                            version.clone(),
                            match since {
                                Some((t, _)) => {
                                    format!("soaking until {}", rfc3339(t + stage.soak))
                                }
                                None => "soaking".to_string(),
                            },
                        ),
                        _ => Decision::Ready {
                            version: version.clone(),
                            since: since.map(|(t, c)| (t, c.to_string())),
                            backwards: backwards.clone(),
                            forced: force && !soaked,
                        },
                    }
                }
            }
        };
        let d = match (&d, stage.min_age) {
            (Decision::Ready { version, .. }, Some(min_age)) if !force => {
                let version = version.clone();
                match build_time(ctx, image, &version, created).await {
                    Ok(t) if a.now - t < min_age => Decision::Wait(
                        version,
                        format!(
                            "min_age {}: built {}, a candidate from {}",
                            show_duration(min_age),
                            rfc3339(t),
                            rfc3339(t + min_age)
                        ),
                    ),
                    Err(e) => Decision::Wait(
                        version,
                        format!("min_age: no build time ({e}); not guessed"),
                    ),
                    Ok(_) => d,
                }
            }
            _ => d,
        };
        decisions.insert(image.clone(), d);
    }
    // `together`: the group moves only when every member present is ready or current.
    if !stage.together.is_empty() {
        let members: Vec<&String> = by_image
            .iter()
            .filter(|(_, (n, _))| stage.together.contains(n))
            .map(|(i, _)| i)
            .collect();
        let waiting: Vec<String> = members
            .iter()
            .filter_map(|i| match decisions.get(*i) {
                Some(Decision::Wait(_, why)) => Some(format!("{} {why}", by_image[*i].0)),
                None => Some(format!("{} not held by {}", by_image[*i].0, up.name)),
                _ => None,
            })
            .collect();
        let moving = members
            .iter()
            .any(|i| matches!(decisions.get(*i), Some(Decision::Ready { .. })));
        if moving && !waiting.is_empty() {
            for i in &members {
                if let Some(Decision::Ready { version, .. }) = decisions.get(*i) {
                    let v = version.clone();
                    decisions.insert(
                        (*i).clone(),
                        Decision::Wait(v, format!("together: waits for {}", waiting.join("; "))),
                    );
                }
            }
        }
    }
    let mut pending = Vec::new();
    let mut evidence = Vec::new();
    let mut changes: BTreeMap<FileId, Vec<Change>> = BTreeMap::new();
    let mut lookups = Lookups::new(&ctx.registries);
    let mut errors = Vec::new();
    let mut backwards_images = Vec::new();
    for (image, d) in &decisions {
        let (name, occs) = &by_image[image];
        match d {
            Decision::Current => {}
            Decision::Wait(version, why) => {
                pending.push(StagePending {
                    name: name.clone(),
                    version: version.clone(),
                    reason: why.clone(),
                });
                if a.promote.is_some() {
                    errors.push(ErrorEntry {
                        image: Some(image.clone()),
                        file: None,
                        message: format!(
                            "promote {}: {name} not promoted: {why}{}",
                            stage.name,
                            if why.starts_with("soaking") {
                                " (--force promotes it now)"
                            } else {
                                ""
                            }
                        ),
                    });
                }
            }
            Decision::Ready {
                version,
                since,
                backwards,
                forced,
            } => {
                evidence.push((name.clone(), version.clone(), since.clone()));
                if let Some(from) = backwards {
                    backwards_images.push((image.clone(), from.clone(), version.clone()));
                }
                for &k in occs {
                    let occ = &found.occurrences[k];
                    let Some(g) = occ.governor else { continue };
                    let governor = &found.governors[g];
                    let digest = match occ.image.digest.is_some() || governor.pin_digest {
                        true => match lookups.digest(&governor.image, version).await {
                            Ok(d) => Some(d),
                            Err(e) => {
                                errors.push(ErrorEntry {
                                    image: Some(image.clone()),
                                    file: None,
                                    message: e.to_string(),
                                });
                                continue;
                            }
                        },
                        false => None,
                    };
                    let edits =
                        discover::edits_for(occ, &governor.image, version, digest.as_deref());
                    if edits.is_empty() {
                        continue;
                    }
                    let src = FileId::of(occ).source(found);
                    let note = match (backwards, forced) {
                        (Some(_), _) => Some("rollback: a lower version".to_string()),
                        (None, true) => Some("promoted with --force: soak not over".to_string()),
                        _ => None,
                    };
                    let update = Update {
                        policy: name.clone(),
                        image: image.clone(),
                        file: src.rel.clone(),
                        line: occ.site.line,
                        from: occ
                            .image
                            .tag
                            .clone()
                            .or(occ.image.digest.clone())
                            .unwrap_or_default(),
                        to: version.clone(),
                        digest,
                        note,
                    };
                    changes
                        .entry(FileId::of(occ))
                        .or_default()
                        .push(Change { edits, update });
                }
            }
        }
    }
    pass.errors.extend(errors);
    let pass = pipeline::finish_pass(pass, changes, Vec::new(), committed_only);
    // A promotion backwards locks the image, as `set` does.
    let mut extra = Vec::new();
    let mut locked = None;
    if let (Some(p), false) = (a.promote, backwards_images.is_empty()) {
        let mut files: Vec<PlannedFile> = take_rewritten(&pass);
        for (image, from, to) in &backwards_images {
            let reason = format!(
                "rolled back from {from} to {to} by image-updater promote {} ({}){}",
                stage.name,
                who_asked(&ctx.req.env, &ctx.req.root),
                p.reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            );
            let since = crate::locks::now_rfc3339(&ctx.req.env);
            let (next, what) = crate::verbs::lock_with(
                &pass.found,
                &ctx.req.root,
                &ctx.config_file,
                image,
                &reason,
                &since,
                &format!("promote-{}", stage.name),
                files,
            )?;
            files = next;
            if what.is_some() {
                locked = what;
            }
        }
        // The files the pass rewrote stay with the pass; the rest (the lock) travel beside.
        let rewritten: HashSet<String> = pass
            .rewritten
            .iter()
            .map(|r| r.file.source(&pass.found).rel.clone())
            .collect();
        for f in files {
            if rewritten.contains(&f.rel) {
                extra_merge(&pass, f, &mut extra);
            } else {
                extra.push(f);
            }
        }
    }
    Ok(StagePass {
        pass,
        extra,
        pending,
        evidence,
        locked,
    })
}

/// The pass's rewritten files as planned files (for adding a lock on top).
fn take_rewritten(pass: &Pass) -> Vec<PlannedFile> {
    pass.rewritten
        .iter()
        .map(|r| {
            let src = r.file.source(&pass.found);
            PlannedFile {
                path: src.path.clone(),
                rel: src.rel.clone(),
                text: src.text.clone(),
                new_text: r.text.clone(),
                changes: Vec::new(),
                created: src.created,
            }
        })
        .collect()
}

/// A rewritten file the lock changed too (a Flux v1 workload): the lock's text replaces the
/// pass's, with the lock's changes.
fn extra_merge(pass: &Pass, f: PlannedFile, extra: &mut Vec<PlannedFile>) {
    let unchanged = pass
        .rewritten
        .iter()
        .any(|r| r.file.source(&pass.found).rel == f.rel && r.text == f.new_text);
    if !unchanged {
        extra.push(f);
    }
}

/// Who asked for a promotion: the CI system's user, else git's `user.name`.
fn who_asked(env: &crate::env::Env, root: &Path) -> String {
    for key in [
        "GITHUB_ACTOR",
        "GITLAB_USER_LOGIN",
        "BUILD_REQUESTEDFOR",
        "BITBUCKET_STEP_TRIGGERER_UUID",
        "GITEA_ACTOR",
    ] {
        if let Some(v) = env.get(key).filter(|v| !v.trim().is_empty()) {
            return v.trim().to_string();
        }
    }
    git2::Repository::discover(root)
        .and_then(|r| r.config())
        .and_then(|c| {
            let name = c.get_string("user.name")?;
            Ok(match c.get_string("user.email") {
                Ok(e) => format!("{name} <{e}>"),
                Err(_) => name,
            })
        })
        .unwrap_or_else(|_| "unknown".to_string())
}

/// A file a stage delivers: the pass's rewritten files, then the extra ones; an extra file
/// replacing a rewritten one (a lock on the same workload) takes its place.
struct Owned {
    path: PathBuf,
    rel: String,
    text: String,
    new_text: String,
    changes: Vec<Change>,
}

fn owned_plan(pass: &Pass, extra: &[PlannedFile]) -> Vec<Owned> {
    let mut out: Vec<Owned> = pass
        .rewritten
        .iter()
        .map(|r| {
            let src = r.file.source(&pass.found);
            Owned {
                path: src.path.clone(),
                rel: src.rel.clone(),
                text: src.text.clone(),
                new_text: r.text.clone(),
                changes: r.changes.clone(),
            }
        })
        .collect();
    for f in extra {
        match out.iter_mut().find(|o| o.rel == f.rel) {
            Some(o) => {
                o.new_text = f.new_text.clone();
                o.changes.extend(f.changes.iter().cloned());
            }
            None => out.push(Owned {
                path: f.path.clone(),
                rel: f.rel.clone(),
                text: f.text.clone(),
                new_text: f.new_text.clone(),
                changes: f.changes.clone(),
            }),
        }
    }
    out
}

fn plan_refs(owned: &[Owned]) -> Vec<FilePlan<'_>> {
    owned
        .iter()
        .map(|o| FilePlan {
            path: &o.path,
            rel: &o.rel,
            text: &o.text,
            new_text: &o.new_text,
            changes: &o.changes,
        })
        .collect()
}

/// The commit message of a stage: the config's for a first stage; for a later one, what it
/// promotes, from where, the soak evidence, and for `promote` who asked and why.
fn stage_message(
    ctx: &Ctx<'_>,
    stage: &Stage,
    stages: &[Stage],
    sp: &StagePass,
    promote: Option<&Promote>,
) -> String {
    let commit = &ctx.config.delivery.commit;
    let updates: Vec<Update> = sp
        .pass
        .rewritten
        .iter()
        .flat_map(|r| r.changes.iter().map(|c| c.update.clone()))
        .collect();
    let Some(up) = stage.from else {
        return crate::template::commit_message(
            &commit.message,
            &updates,
            commit.signoff.then_some(&commit.author),
        );
    };
    let moved: Vec<String> = sp
        .evidence
        .iter()
        .map(|(n, v, _)| format!("{n} {v}"))
        .collect();
    let mut m = format!(
        "chore(images): promote {} to {}\n\nFrom {}",
        moved.join(", "),
        stage.name,
        stages[up].name
    );
    if stage.soak > 0 {
        m.push_str(&format!(", soak {}", show_duration(stage.soak)));
    }
    m.push_str(":\n");
    for (n, v, since) in &sp.evidence {
        match since {
            Some((t, c)) => m.push_str(&format!(
                "- {n} {v}: held by {} since {} (commit {})\n",
                stages[up].name,
                rfc3339(*t),
                pipeline::short_id(c)
            )),
            None => m.push_str(&format!(
                "- {n} {v}: held by {} since before the history read\n",
                stages[up].name
            )),
        }
    }
    if let Some(p) = promote {
        m.push_str(&format!(
            "\nPromoted by {}{}\n",
            who_asked(&ctx.req.env, &ctx.req.root),
            p.reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        ));
        if p.force {
            m.push_str("Soak ignored (--force).\n");
        }
    }
    if let Some(l) = &sp.locked {
        m.push_str(&format!("\n{l}\n"));
    }
    if commit.signoff {
        m.push_str(&format!(
            "\nSigned-off-by: {} <{}>\n",
            commit.author.name, commit.author.email
        ));
    }
    m
}

/// A promotion pull request's body: the stages drawn ([`crate::report::stages_markdown_at`])
/// for the upstream and this stage, what moves marked `ready`, and the soak evidence (the
/// upstream commit, when it landed, how long it has been held), counted up to `at`, the base
/// branch head's committer time, so the body changes only when the base does.
fn promotion_body(
    stage: &StageReport,
    upstream: Option<&StageReport>,
    sp: &StagePass,
    at: i64,
) -> String {
    let mut this = stage.clone();
    let mut seen = HashSet::new();
    let moving = sp.pass.rewritten.iter().flat_map(|r| r.changes.iter());
    for u in moving.map(|c| &c.update) {
        if seen.insert((u.policy.clone(), u.to.clone())) {
            this.pending.push(StagePending {
                name: u.policy.clone(),
                version: u.to.clone(),
                reason: "ready".into(),
            });
        }
    }
    this.pending.extend(sp.pending.iter().cloned());
    let mut out = format!("Promotion to {}", escape::md_text(&stage.name));
    if let Some(from) = &stage.from {
        out.push_str(&format!(" from {}", escape::md_text(from)));
    }
    out.push_str(".\n\n");
    let shown: Vec<StageReport> = upstream.cloned().into_iter().chain([this]).collect();
    out.push_str(&crate::report::stages_markdown_at(&shown, at));
    out
}

/// Deliver a stage as pull requests: one per group (a `together` set, else each image, or
/// all with `group: all`), on branches named after the stage.
async fn deliver_prs(
    ctx: &Ctx<'_>,
    stage: &Stage,
    wt: &git::WorkTree,
    base: &str,
    owned: &[Owned],
    evidence: &str,
    app: &deliver::app_changes::AppChanges,
) -> Delivered {
    let group_of = |u: &Update| -> String {
        if ctx.config.delivery.group == Group::All {
            "all".to_string()
        } else if stage.together.contains(&u.policy) {
            stage.together.join("-")
        } else {
            u.policy.clone()
        }
    };
    let mut groups: BTreeMap<String, Vec<(usize, Vec<Change>)>> = BTreeMap::new();
    for (i, f) in owned.iter().enumerate() {
        let mut per: BTreeMap<String, Vec<Change>> = BTreeMap::new();
        for c in &f.changes {
            per.entry(group_of(&c.update)).or_default().push(c.clone());
        }
        for (g, cs) in per {
            groups.entry(g).or_default().push((i, cs));
        }
    }
    let mut delivered = Delivered::default();
    for (group, files) in groups {
        let mut sub = Vec::new();
        for (i, changes) in files {
            let f = &owned[i];
            let new_text = if changes.len() == f.changes.len() {
                Ok(f.new_text.clone())
            } else {
                let edits: Vec<_> = changes
                    .iter()
                    .flat_map(|c| c.edits.iter().cloned())
                    .collect();
                crate::manifest::apply_file_edits(&f.path, &f.text, &edits)
                    .map_err(|e| e.to_string())
            };
            match new_text {
                Ok(new_text) => sub.push(Owned {
                    path: f.path.clone(),
                    rel: f.rel.clone(),
                    text: f.text.clone(),
                    new_text,
                    changes,
                }),
                Err(e) => delivered.errors.push(ErrorEntry {
                    image: None,
                    file: Some(f.rel.clone()),
                    message: format!("{}: not rewritten for {group}: {e}", f.rel),
                }),
            }
        }
        let mut delivery = ctx.config.delivery.clone();
        delivery.group = Group::All;
        delivery.branch = delivery
            .branch
            .replace("{{ name }}", &format!("{}-{group}", stage.name));
        let body = delivery
            .pull_request
            .body
            .clone()
            .unwrap_or_else(|| "Image updates found by image-updater.\n\n{{ table }}".into());
        delivery.pull_request.body = Some(format!("{body}\n\n{}", evidence.replace("{{", "{ {")));
        let d = deliver::pull_request::deliver(
            &delivery,
            wt,
            base,
            &plan_refs(&sub),
            &[],
            &ctx.req.env,
            app,
        )
        .await;
        delivered.updates.extend(d.updates);
        delivered.pull_requests.extend(d.pull_requests);
        delivered.errors.extend(d.errors);
    }
    delivered
}

/// One stage's part of the summary line.
fn stage_line(
    stage: &Stage,
    mode: DeliveryMode,
    command: Command,
    moved: &[Update],
    delivered: Option<&Delivered>,
    locked: Option<&str>,
) -> String {
    let mut names: Vec<String> = Vec::new();
    for u in moved {
        let n = format!("{} {}", u.policy, u.to);
        if !names.contains(&n) {
            names.push(n);
        }
    }
    let what = if names.is_empty() {
        "nothing to promote".to_string()
    } else {
        names.join(", ")
    };
    let how = match (command, mode, delivered) {
        (_, _, _) if names.is_empty() => String::new(),
        (Command::Plan, _, _) | (_, DeliveryMode::None, _) => " (nothing written)".into(),
        (_, _, Some(d)) if d.commit.is_some() => format!(
            " committed {}",
            d.commit
                .as_deref()
                .map(pipeline::short_id)
                .unwrap_or_default()
        ),
        (_, _, Some(d)) if !d.pull_requests.is_empty() => format!(
            " in {}",
            d.pull_requests
                .iter()
                .map(|p| format!("pull request {} ({})", p.number, p.action))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => " (not delivered)".into(),
    };
    let mut line = format!(
        "{}: {}{how}",
        escape::text_line(&stage.name),
        escape::text_line(&what)
    );
    if let Some(l) = locked {
        line.push_str(&format!(", {}", escape::text_line(l)));
    }
    line
}
