//! The repo's Flux objects taken together, as a cluster would see them: which
//! `ImageUpdateAutomation` governs each file (by its `update.path`), whether it is suspended,
//! which `ImagePolicy` a marker means when the same `NS:NAME` is declared in several cluster
//! trees, and the git settings (branch, author, message template, push branch) a commit of the
//! automation's files is made with. Discovery calls [`FluxObjects::collect`] and
//! [`FluxObjects::scope`]; delivery calls [`FluxObjects::delivery`].
//!
//! Without any ImageUpdateAutomation in the repo, markers are governed as before (any file);
//! scoping of same-named policies still applies. Where no rule picks one policy, the reference
//! is left alone and the run fails with an error naming both files: never a silent guess.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::config::{RegistryConfig, Watched};
use crate::flux_template::TemplateError;
use crate::manifest::flux_automation::{self, within, Automation};
use crate::manifest::kustomize_patch::{self, Kustomization, Tree};
use crate::manifest::scan::{self, Node};
use crate::manifest::{self, flux::GROUP, FluxPolicy};

/// An automation and the file declaring it.
#[derive(Debug, Clone)]
pub(crate) struct Declared {
    pub file: String,
    pub automation: Automation,
}

impl Declared {
    fn at(&self) -> String {
        format!("{}:{}", self.file, self.automation.line)
    }

    /// `NS/NAME (file:line)`, for messages.
    fn named(&self) -> String {
        format!("{} ({})", self.automation.id(), self.at())
    }
}

/// Why Flux leaves a marked reference alone, or which of the repo's automations or policies
/// governs a file is unclear. The text lands in the report as the reference's reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ScopeError {
    /// Two automations with the same `update.path` and different settings hold the file.
    #[error(
        "{file} is under two ImageUpdateAutomations with the same update.path and different \
         settings: {first} and {second}"
    )]
    SamePath {
        file: String,
        first: String,
        second: String,
    },
    #[error(
        "ImageUpdateAutomation {automation} is suspended (spec.suspend: true): Flux changes \
         nothing in {file}"
    )]
    Suspended { automation: String, file: String },
    /// No readable automation holds the file, and some automation cannot be read.
    #[error(
        "not updated: an ImageUpdateAutomation of the repo cannot be honoured ({})",
        broken.join("; ")
    )]
    Broken { broken: Vec<String> },
    /// `paths`: each automation and the path it updates.
    #[error(
        "outside every ImageUpdateAutomation's update.path ({}): Flux does not update it",
        paths.join(", ")
    )]
    OutsideUpdatePaths { paths: Vec<String> },
    #[error(
        "ImageUpdateAutomation {automation} does not select ImagePolicy {policy} (another \
         namespace, or not matched by policySelector.matchLabels): Flux does not update it"
    )]
    NotSelected { automation: String, policy: String },
    /// Several same-named policies (`declared`: `file:line` each) and no rule picks one.
    #[error(
        "ImagePolicy {policy} is declared more than once ({}) and nothing says which one \
         governs {file}: give the clusters separate ImageUpdateAutomations (update.path), or \
         keep one copy",
        declared.join(" and ")
    )]
    DeclaredTwice {
        policy: String,
        declared: Vec<String>,
        file: String,
    },
    #[error("no ImagePolicy {policy} governs {file}")]
    NoPolicy { policy: String, file: String },
}

/// Why the rewritten files cannot be committed as their ImageUpdateAutomation would
/// ([`FluxObjects::delivery`], [`commit_plan`]): nothing is committed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DeliveryError {
    #[error(transparent)]
    Scope(#[from] ScopeError),
    #[error(
        "the updates belong to ImageUpdateAutomations with different git settings, {first} and \
         {second}; Flux commits each on its own: run once per automation (paths: in \
         .image-updater.yaml) or give them the same checkout, push, author and messageTemplate"
    )]
    DifferentSettings { first: String, second: String },
    #[error(
        "ImageUpdateAutomation {automation} checks out branch {wanted:?}, but {branch:?} is \
         checked out: check out {wanted:?} (or run with --clone URL --branch {wanted})"
    )]
    OtherBranch {
        automation: String,
        wanted: String,
        branch: String,
    },
    /// The messageTemplate cannot be parsed or rendered; `line` is the file's line.
    #[error(
        "{file}:{line}: messageTemplate of ImageUpdateAutomation {automation}: {}",
        template.message
    )]
    Template {
        file: String,
        line: usize,
        automation: String,
        template: TemplateError,
    },
}

/// What an ImagePolicy says beyond its policy: its labels and digest reflection.
#[derive(Debug, Clone, Default)]
pub(crate) struct PolicyMeta {
    /// `spec.digestReflectionPolicy` is `Always` or `IfNotPresent`: write `tag@digest`.
    pub reflect_digest: bool,
    pub labels: BTreeMap<String, String>,
}

/// The Flux objects of a repo that decide scope and delivery.
#[derive(Debug, Clone, Default)]
pub(crate) struct FluxObjects {
    /// Readable automations, in file order.
    pub automations: Vec<Declared>,
    /// Automations that cannot be honoured: `file:line: why`.
    pub broken: Vec<String>,
    /// ImagePolicy metadata by `(file, line)`.
    policies: BTreeMap<(String, usize), PolicyMeta>,
    /// Each Flux governor's declaring file and line, by index into the governors.
    governor_files: BTreeMap<usize, (String, usize)>,
    /// Each Flux governor's namespace, when its file says.
    governor_namespaces: BTreeMap<usize, String>,
    /// What the repo's ImageRepositories need that CI does not have (`secretRef`, `provider`),
    /// with what to use instead: logged once a run ([`FluxObjects::apply_policy_settings`]).
    pub hints: Vec<String>,
    /// Flux governors (by index) that an overlay's patch makes unusable, and why.
    refused: BTreeMap<usize, String>,
    /// Overlay governors (by index): the file and line of the ImagePolicy they patch.
    overlay_base: BTreeMap<usize, (String, usize)>,
    /// Errors for the run's report: `(image, message)`.
    pub errors: Vec<(Option<String>, String)>,
}

/// The repo's kustomizations, by directory, and a reader of its files.
struct RepoTree<'a> {
    root: &'a Path,
    by_dir: BTreeMap<String, Kustomization>,
}

impl Tree for RepoTree<'_> {
    fn kustomization(&self, dir: &str) -> Option<&Kustomization> {
        self.by_dir.get(dir)
    }

    fn text(&self, file: &str) -> Option<String> {
        std::fs::read_to_string(self.root.join(file)).ok()
    }
}

/// The git settings an automation commits with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FluxDelivery {
    /// `NS/NAME` and where it is declared, for messages.
    pub automation: String,
    /// The branch it checks out, if it says.
    pub checkout_branch: Option<String>,
    /// The branch pushed to (`push.branch`, else the refspec's branch), if not the checked-out one.
    pub push_branch: Option<String>,
    /// `(name, email)`, when it gives an email.
    pub author: Option<(String, String)>,
    /// `messageTemplate` and where it is (`file`, line).
    pub message_template: Option<(String, String, usize)>,
}

/// Whether the bytes may hold a Flux image object.
fn may_hold_flux(text: &str) -> bool {
    text.contains(GROUP)
}

/// The Flux image objects of files read for nothing else (those the config's `paths` leave
/// out): policies are read from the whole repo, only rewriting is limited by `paths`.
#[derive(Debug, Default)]
pub(crate) struct ImageObjects {
    /// ImagePolicies, with the file declaring each.
    pub policies: Vec<(String, FluxPolicy)>,
    /// ImageRepositories.
    pub repositories: Vec<manifest::FluxRepository>,
    /// Flux objects that cannot be read: the file and why.
    pub problems: Vec<(String, manifest::Problem)>,
}

/// Read the ImagePolicies and ImageRepositories of `files` (relative to `root`). Files that
/// cannot be read or parsed, or hold no Flux image object, are passed over: they are not
/// manifests this run reads.
pub(crate) fn image_objects(root: &Path, files: &[PathBuf]) -> ImageObjects {
    let mut out = ImageObjects::default();
    for rel in files {
        let Ok(text) = std::fs::read_to_string(root.join(rel)) else {
            continue;
        };
        if !may_hold_flux(&text) {
            continue;
        }
        let Ok(docs) = scan::parse_documents(&text) else {
            continue;
        };
        let rel = rel.to_string_lossy().replace('\\', "/");
        for node in docs.iter().filter_map(|d| d.root.as_ref()) {
            match manifest::flux::read(node) {
                Ok(Some(manifest::flux::FluxObject::Policy(p))) => {
                    out.policies.push((rel.clone(), p))
                }
                Ok(Some(manifest::flux::FluxObject::Repository(r))) => out.repositories.push(r),
                Ok(None) => {}
                Err(problem) => out.problems.push((rel.clone(), problem)),
            }
        }
    }
    out
}

impl FluxObjects {
    /// Read every ImageUpdateAutomation and ImagePolicy's metadata from `files` (relative to
    /// `root`). A file that cannot be read or parsed is left to the manifest scan, which
    /// reports it.
    pub(crate) fn collect(root: &Path, files: &[PathBuf]) -> FluxObjects {
        let mut out = FluxObjects::default();
        for rel in files {
            let Ok(text) = std::fs::read_to_string(root.join(rel)) else {
                continue;
            };
            if !may_hold_flux(&text) {
                continue;
            }
            let Ok(docs) = scan::parse_documents(&text) else {
                continue;
            };
            let rel = rel.to_string_lossy().replace('\\', "/");
            for root in docs.iter().filter_map(|d| d.root.as_ref()) {
                out.read_object(&rel, root);
            }
        }
        out
    }

    fn read_object(&mut self, rel: &str, root: &Node) {
        match flux_automation::read(root) {
            Ok(Some(automation)) => {
                self.automations.push(Declared {
                    file: rel.to_string(),
                    automation,
                });
                return;
            }
            Ok(None) => {}
            Err(p) => {
                let message = format!("{rel}:{}: {}", p.line, p.message);
                self.broken.push(message.clone());
                self.errors.push((None, message));
                return;
            }
        }
        let (api, kind) = scan::api_version_kind(root);
        if scan::in_group(api, GROUP) && kind == Some("ImagePolicy") {
            let labels = root
                .get_path(&["metadata", "labels"])
                .and_then(Node::as_mapping)
                .unwrap_or_default()
                .iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
                .collect();
            let reflect = root.get_path(&["spec", "digestReflectionPolicy"]);
            let reflect_digest = match reflect.and_then(Node::as_str) {
                None | Some("Never") => false,
                Some("Always" | "IfNotPresent") => true,
                Some(other) => {
                    let line = reflect.map_or(root.line, |n| n.line);
                    self.errors.push((
                        None,
                        format!(
                            "{rel}:{line}: digestReflectionPolicy {other:?} is not Always, \
                             IfNotPresent or Never"
                        ),
                    ));
                    false
                }
            };
            self.policies.insert(
                (rel.to_string(), root.line),
                PolicyMeta {
                    reflect_digest,
                    labels,
                },
            );
        }
        if scan::in_group(api, GROUP) && kind == Some("ImageRepository") {
            if let Some(hint) = credentials_hint(rel, root) {
                self.hints.push(hint);
            }
        }
    }

    /// Note that governor `index` is the ImagePolicy declared at `file`:`line`.
    pub(crate) fn note_governor(
        &mut self,
        index: usize,
        file: &str,
        line: usize,
        namespace: Option<&str>,
    ) {
        self.governor_files.insert(index, (file.to_string(), line));
        if let Some(ns) = namespace {
            self.governor_namespaces.insert(index, ns.to_string());
        }
    }

    /// Add, for each kustomization that renders a repo ImagePolicy some overlay patches, that
    /// policy as the kustomization renders it: a governor declared at the kustomization's file
    /// (so it governs the overlay's tree). `policies` are the repo's ImagePolicies (joined
    /// with their repositories) and the files declaring them; `governor` turns one into a
    /// governor. A policy a patch cannot be applied to is still added, refused: a marker it
    /// governs is left alone with the patch's file and line, and the run fails.
    pub(crate) fn add_overlay_policies<E: std::fmt::Display>(
        &mut self,
        root: &Path,
        files: &[PathBuf],
        policies: &[(String, FluxPolicy)],
        governors: &mut Vec<Watched>,
        governor: impl Fn(&FluxPolicy) -> Result<Watched, E>,
    ) {
        if policies.is_empty() {
            return;
        }
        let mut tree = RepoTree {
            root,
            by_dir: BTreeMap::new(),
        };
        for rel in files {
            let rel = rel.to_string_lossy().replace('\\', "/");
            if !kustomize_patch::is_kustomization_file(&rel) {
                continue;
            }
            let Some(text) = tree.text(&rel) else {
                continue;
            };
            let Ok(docs) = scan::parse_documents(&text) else {
                continue;
            };
            if let Some(node) = docs.first().and_then(|d| d.root.as_ref()) {
                let k = Kustomization::read(&rel, node);
                tree.by_dir.entry(k.dir.clone()).or_insert(k);
            }
        }
        let mut found: Vec<(String, usize, kustomize_patch::Rendered)> = Vec::new();
        for k in tree.by_dir.values() {
            for r in kustomize_patch::render(k, &tree, policies) {
                found.push((k.file.clone(), k.dir.len(), r));
            }
        }
        // Only policies some overlay patches change are split by tree; a copy identical to
        // the policy in a tree holding the policy's own file adds nothing.
        let patched: BTreeSet<usize> = found
            .iter()
            .filter(|(_, _, r)| r.patched || r.policy.is_err())
            .map(|(_, _, r)| r.base)
            .collect();
        for (file, _, r) in found {
            if !patched.contains(&r.base) {
                continue;
            }
            let (base_file, base) = &policies[r.base];
            let dir = file.rsplit_once('/').map_or("", |(d, _)| d);
            if r.policy.as_ref().is_ok_and(|p| p == base) && within(dir, base_file) {
                continue;
            }
            let (made, why) = match &r.policy {
                Ok(p) => match governor(p) {
                    Ok(w) => (Some(w), None),
                    Err(why) => (governor(base).ok(), Some(format!("{file}: {why}"))),
                },
                Err(why) => (governor(base).ok(), Some(why.to_string())),
            };
            let Some(w) = made else { continue };
            let index = governors.len();
            self.note_governor(index, &file, 1, base.namespace.as_deref());
            self.overlay_base
                .insert(index, (base_file.clone(), base.line));
            if let Some(why) = why {
                self.refused.insert(
                    index,
                    format!(
                        "ImagePolicy {} as {file} renders it is refused: {why}",
                        w.name
                    ),
                );
            }
            governors.push(w);
        }
    }

    /// Let each Flux governor whose ImagePolicy sets `digestReflectionPolicy: Always` or
    /// `IfNotPresent` write `tag@sha256:…` (a whole-reference marker) or fill a `:digest`
    /// marker, as Flux does; and log the credential hints, once a run.
    pub(crate) fn apply_policy_settings(&self, governors: &mut [Watched]) {
        for (index, key) in &self.governor_files {
            let base = self.overlay_base.get(index).unwrap_or(key);
            if self.policies.get(base).is_some_and(|m| m.reflect_digest) {
                if let Some(w) = governors.get_mut(*index) {
                    w.pin_digest = true;
                }
            }
        }
        static SAID: std::sync::Mutex<BTreeSet<String>> = std::sync::Mutex::new(BTreeSet::new());
        let mut said = SAID
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for hint in &self.hints {
            if said.insert(hint.clone()) {
                tracing::warn!("{hint}");
            }
        }
    }

    /// The file declaring Flux governor `index`, if it is one.
    pub(crate) fn governor_file(&self, index: usize) -> Option<&str> {
        self.governor_files.get(&index).map(|(f, _)| f.as_str())
    }

    fn labels_of(&self, index: usize) -> BTreeMap<String, String> {
        self.governor_files
            .get(&index)
            .and_then(|k| self.policies.get(k))
            .map(|m| m.labels.clone())
            .unwrap_or_default()
    }

    /// The automation whose `update.path` holds `file`: the most specific one. An error when
    /// two with the same path both hold it.
    pub(crate) fn automation_for(&self, file: &str) -> Result<Option<&Declared>, ScopeError> {
        let mut best: Option<&Declared> = None;
        for d in self
            .automations
            .iter()
            .filter(|d| d.automation.covers(file))
        {
            match best {
                Some(b) if b.automation.update_path.len() > d.automation.update_path.len() => {}
                Some(b) if b.automation.update_path == d.automation.update_path => {
                    if !same_git_settings(&b.automation, &d.automation)
                        || b.automation.suspend != d.automation.suspend
                    {
                        return Err(ScopeError::SamePath {
                            file: file.to_string(),
                            first: b.named(),
                            second: d.named(),
                        });
                    }
                }
                _ => best = Some(d),
            }
        }
        Ok(best)
    }

    /// Whether the repo declares any automation (readable or not).
    fn has_automations(&self) -> bool {
        !self.automations.is_empty() || !self.broken.is_empty()
    }

    /// Why a reference in `file` that a Flux marker governs is left alone, if it is: outside
    /// every automation's `update.path`, under a suspended one, or the repo's automations
    /// cannot be read.
    fn left_alone(&self, file: &str) -> Result<Option<&Declared>, ScopeError> {
        let found = self.automation_for(file)?;
        match found {
            Some(d) if d.automation.suspend => Err(ScopeError::Suspended {
                automation: d.named(),
                file: file.to_string(),
            }),
            Some(d) => Ok(Some(d)),
            None if !self.broken.is_empty() => Err(ScopeError::Broken {
                broken: self.broken.clone(),
            }),
            None if self.has_automations() => Err(ScopeError::OutsideUpdatePaths {
                paths: self
                    .automations
                    .iter()
                    .map(|d| {
                        format!(
                            "{} updates {}",
                            d.automation.id(),
                            if d.automation.update_path.is_empty() {
                                "./"
                            } else {
                                &d.automation.update_path
                            }
                        )
                    })
                    .collect(),
            }),
            None => Ok(None),
        }
    }

    /// The Flux governor a marker in `file` naming `NS:NAME` means, among `candidates`
    /// (indices of Flux governors with that namespace and name), as the cluster sees it.
    fn pick(
        &self,
        file: &str,
        automation: Option<&Declared>,
        candidates: &[usize],
        what: &str,
    ) -> Result<usize, ScopeError> {
        let mut left: Vec<usize> = candidates.to_vec();
        if let Some(d) = automation {
            let a = &d.automation;
            // An automation uses the ImagePolicies of its own namespace that its selector picks.
            left.retain(|&g| {
                let same_ns = match (&a.namespace, self.governor_namespaces.get(&g)) {
                    (Some(a), Some(p)) => a == p,
                    _ => true,
                };
                same_ns && a.selects(&self.labels_of(g))
            });
            if left.is_empty() {
                return Err(ScopeError::NotSelected {
                    automation: d.named(),
                    policy: what.to_string(),
                });
            }
            if left.len() > 1 && !a.update_path.is_empty() {
                let under: Vec<usize> = left
                    .iter()
                    .copied()
                    .filter(|&g| {
                        self.governor_file(g)
                            .is_some_and(|f| within(&a.update_path, f))
                    })
                    .collect();
                if under.len() == 1 {
                    return Ok(under[0]);
                }
                if under.len() > 1 {
                    left = under;
                }
            }
        }
        if left.len() == 1 {
            return Ok(left[0]);
        }
        // The nearest enclosing directory holding exactly one of them.
        let mut dir = file.rsplit_once('/').map_or("", |(d, _)| d);
        loop {
            let here: Vec<usize> = left
                .iter()
                .copied()
                .filter(|&g| self.governor_file(g).is_some_and(|f| within(dir, f)))
                .collect();
            match here.len() {
                0 => {}
                1 => return Ok(here[0]),
                _ => {
                    let mut files: Vec<String> = here
                        .iter()
                        .filter_map(|&g| self.governor_files.get(&g))
                        .map(|(f, l)| format!("{f}:{l}"))
                        .collect();
                    files.sort();
                    return Err(ScopeError::DeclaredTwice {
                        policy: what.to_string(),
                        declared: files,
                        file: file.to_string(),
                    });
                }
            }
            if dir.is_empty() {
                break;
            }
            dir = dir.rsplit_once('/').map_or("", |(d, _)| d);
        }
        Err(ScopeError::NoPolicy {
            policy: what.to_string(),
            file: file.to_string(),
        })
    }

    /// Decide, for every reference a Flux marker ties to a Flux ImagePolicy, which of the
    /// repo's same-named policies governs it and whether an automation lets it change.
    /// References left alone get their reason; ambiguities are also run errors.
    pub(crate) fn scope(
        &mut self,
        occurrences: &mut [crate::discover::Occurrence],
        rel_of: impl Fn(usize) -> String,
        governors: &[Watched],
    ) {
        for occ in occurrences.iter_mut() {
            let (Some(r), Some(g)) = (&occ.site.policy, occ.governor) else {
                continue;
            };
            if !governors[g].flux {
                continue;
            }
            let file = rel_of(occ.file);
            // Our config overrides: an images[] entry for the same image (whose files admit
            // this one) governs the marked reference instead of the repo's ImagePolicy.
            let image = governors[g].image.canonical_name();
            if let Some(c) = governors.iter().position(|w| {
                !w.flux
                    && w.image.canonical_name() == image
                    && w.files.as_ref().is_none_or(|f| f.is_match(&file))
            }) {
                occ.governor = Some(c);
                continue;
            }
            let what = format!("{}:{}", r.namespace, r.name);
            let automation = match self.left_alone(&file) {
                Ok(a) => a,
                Err(why) => {
                    occ.reason = Some(why.to_string());
                    continue;
                }
            };
            let candidates: Vec<usize> = governors
                .iter()
                .enumerate()
                .filter(|(_, w)| {
                    w.flux
                        && w.name == r.name
                        && w.namespace.as_ref().is_none_or(|n| *n == r.namespace)
                })
                .map(|(i, _)| i)
                .collect();
            match self.pick(&file, automation, &candidates, &what) {
                Ok(chosen) if self.refused.contains_key(&chosen) => {
                    let why = self.refused[&chosen].clone();
                    let e = (Some(governors[chosen].image.canonical_name()), why.clone());
                    if !self.errors.contains(&e) {
                        self.errors.push(e);
                    }
                    occ.reason = Some(why);
                }
                Ok(chosen) => occ.governor = Some(chosen),
                Err(why) => {
                    let why_text = why.to_string();
                    if matches!(why, ScopeError::DeclaredTwice { .. }) {
                        let e = (Some(governors[g].image.canonical_name()), why_text.clone());
                        if !self.errors.contains(&e) {
                            self.errors.push(e);
                        }
                    }
                    occ.reason = Some(why_text);
                }
            }
        }
    }

    /// The automation governing `file`, as `scan` names it (`NS/NAME`), if any.
    pub(crate) fn automation_name(&self, file: &str) -> Option<String> {
        self.automation_for(file)
            .ok()
            .flatten()
            .map(|d| d.automation.id())
    }

    /// The git settings to commit `files` (the rewritten ones) with: those of the automation
    /// governing them. `None` when no automation governs any, or when the config file sets
    /// `delivery:` (ours overrides). An error when the files belong to automations with
    /// different settings (Flux would make one commit each).
    pub(crate) fn delivery(
        &self,
        files: &[&str],
        config_file: &Path,
    ) -> Result<Option<FluxDelivery>, DeliveryError> {
        if config_sets_delivery(config_file) {
            return Ok(None);
        }
        let mut chosen: Option<&Declared> = None;
        for file in files {
            let Some(d) = self.automation_for(file)? else {
                continue;
            };
            match chosen {
                None => chosen = Some(d),
                Some(c) if same_git_settings(&c.automation, &d.automation) => {}
                Some(c) => {
                    return Err(DeliveryError::DifferentSettings {
                        first: c.named(),
                        second: d.named(),
                    })
                }
            }
        }
        Ok(chosen.map(|d| {
            let a = &d.automation;
            FluxDelivery {
                automation: format!("{} ({})", a.id(), d.at()),
                checkout_branch: a.checkout_branch.clone(),
                push_branch: a
                    .push_branch
                    .clone()
                    .or_else(|| a.push_refspec_branch.clone()),
                author: a
                    .author_email
                    .clone()
                    .map(|email| (a.author_name.clone().unwrap_or_default(), email)),
                message_template: a
                    .message_template
                    .clone()
                    .map(|(t, line)| (t, d.file.clone(), line)),
            }
        }))
    }
}

/// How a commit of an automation's files is made, when an automation governs them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CommitPlan {
    /// A branch other than the checked-out one to push the commit to (`push.branch`).
    pub push_to: Option<String>,
    /// `(name, email)` from `commit.author`.
    pub author: Option<(String, String)>,
    /// The rendered `messageTemplate`.
    pub message: Option<String>,
}

/// The commit settings for the rewritten files of `found` (`planned`: file index and its
/// changes), when an ImageUpdateAutomation governs them and the config does not set
/// `delivery:`. An error (nothing is committed) when the automation checks out another
/// branch than `branch`, when the files belong to automations with different settings, or
/// when its messageTemplate cannot be rendered (the error names the file and line).
pub(crate) fn commit_plan(
    found: &crate::discover::Discovery,
    planned: &[crate::deliver::FilePlan<'_>],
    branch: &str,
    config_file: &Path,
) -> Result<Option<CommitPlan>, DeliveryError> {
    let files: Vec<&str> = planned.iter().map(|f| f.rel).collect();
    let Some(d) = found.flux.delivery(&files, config_file)? else {
        return Ok(None);
    };
    if let Some(b) = d.checkout_branch.as_deref().filter(|b| *b != branch) {
        return Err(DeliveryError::OtherBranch {
            automation: d.automation,
            wanted: b.to_string(),
            branch: branch.to_string(),
        });
    }
    let message = match &d.message_template {
        None => None,
        Some((template, file, line)) => {
            let at = |e: TemplateError| DeliveryError::Template {
                file: file.clone(),
                line: line + e.line - 1,
                automation: d.automation.clone(),
                template: e,
            };
            let parsed = crate::flux_template::Template::parse(template).map_err(at)?;
            let name = d
                .automation
                .split(' ')
                .next()
                .unwrap_or_default()
                .to_string();
            let data = template_data(planned, &name);
            Some(parsed.render(&data).map_err(at)?)
        }
    };
    Ok(Some(CommitPlan {
        push_to: d.push_branch.filter(|p| p != branch),
        author: d.author,
        message,
    }))
}

/// The data Flux gives a messageTemplate: `.AutomationObject` (`NS/NAME`), and `.Changed`
/// with `.Changes` (each `.OldValue`, `.NewValue`, `.Setter`), `.FileChanges` (file → object
/// → changes) and `.Objects` (object → changes); objects have `.Kind`, `.Name`,
/// `.Namespace` and `.APIVersion`. Maps are ordered as Go's `range` visits them.
fn template_data(
    planned: &[crate::deliver::FilePlan<'_>],
    automation: &str,
) -> crate::flux_template::Value {
    use crate::flux_template::Value;
    type Object = (String, String, String, String);
    let mut all: Vec<Value> = Vec::new();
    let mut by_file: BTreeMap<String, BTreeMap<Object, Vec<Value>>> = BTreeMap::new();
    let mut by_object: BTreeMap<Object, Vec<Value>> = BTreeMap::new();
    for file in planned {
        let docs = scan::parse_documents(file.text).unwrap_or_default();
        for crate::select::Change { edits, update } in file.changes {
            for edit in edits {
                let (object, old) = docs
                    .iter()
                    .filter_map(|d| d.root.as_ref())
                    .find_map(|root| {
                        scalar_at(root, &edit.span).map(|old| (identity(root), old.to_string()))
                    })
                    .unwrap_or_default();
                let change = Value::Struct {
                    shown: format!("{{{old} {} {}}}", edit.new_value, update.policy),
                    fields: vec![
                        ("OldValue", Value::Str(old)),
                        ("NewValue", Value::Str(edit.new_value.clone())),
                        ("Setter", Value::Str(update.policy.clone())),
                    ],
                };
                all.push(change.clone());
                by_file
                    .entry(file.rel.to_string())
                    .or_default()
                    .entry(object.clone())
                    .or_default()
                    .push(change.clone());
                by_object.entry(object).or_default().push(change);
            }
        }
    }
    let object_value = |(api, kind, name, ns): &Object| Value::Struct {
        shown: format!("{{{{{api} {kind}}} {{{name} {ns}}}}}"),
        fields: vec![
            ("APIVersion", Value::Str(api.clone())),
            ("Kind", Value::Str(kind.clone())),
            ("Name", Value::Str(name.clone())),
            ("Namespace", Value::Str(ns.clone())),
        ],
    };
    let objects = |m: BTreeMap<Object, Vec<Value>>| {
        Value::Map(
            m.into_iter()
                .map(|(o, c)| (object_value(&o), Value::List(c)))
                .collect(),
        )
    };
    Value::Struct {
        shown: String::new(),
        fields: vec![
            ("AutomationObject", Value::Str(automation.to_string())),
            (
                "Changed",
                Value::Struct {
                    shown: String::new(),
                    fields: vec![
                        ("Changes", Value::List(all)),
                        (
                            "FileChanges",
                            Value::Map(
                                by_file
                                    .into_iter()
                                    .map(|(f, m)| (Value::Str(f), objects(m)))
                                    .collect(),
                            ),
                        ),
                        ("Objects", objects(by_object)),
                    ],
                },
            ),
        ],
    }
}

/// `(apiVersion, kind, name, namespace)` of a document, as Flux identifies objects.
fn identity(root: &Node) -> (String, String, String, String) {
    let s = |keys: &[&str]| {
        root.get_path(keys)
            .and_then(Node::as_str)
            .unwrap_or_default()
            .to_string()
    };
    (
        s(&["apiVersion"]),
        s(&["kind"]),
        s(&["metadata", "name"]),
        s(&["metadata", "namespace"]),
    )
}

/// The decoded value of the scalar whose token is `span`, under `node`.
fn scalar_at<'a>(node: &'a Node, span: &std::ops::Range<usize>) -> Option<&'a str> {
    match &node.kind {
        scan::NodeKind::Scalar { value, .. } if node.span == *span => Some(value),
        scan::NodeKind::Mapping(entries) => entries
            .iter()
            .find_map(|(k, v)| scalar_at(k, span).or_else(|| scalar_at(v, span))),
        scan::NodeKind::Sequence(items) => items.iter().find_map(|i| scalar_at(i, span)),
        _ => None,
    }
}

/// The note of an update a Flux ImagePolicy makes from `current` to a lower version
/// `target`: Flux's documented revert (the range was narrowed below the current tag, or the
/// tag is gone), named as a downgrade with its reason. `None` when it is not one.
pub(crate) fn revert_note(flux: bool, current: Option<&str>, target: &str) -> Option<String> {
    let current = current?;
    (flux && lower_version(target, current)).then(|| {
        format!(
            "downgrade: the Flux ImagePolicy no longer selects {current}, and Flux reverts to \
             its latest tag {target}"
        )
    })
}

/// Whether `a`'s leading version numbers (after an optional `v`) rank below `b`'s.
fn lower_version(a: &str, b: &str) -> bool {
    let numbers = |t: &str| -> Option<Vec<u64>> {
        let t = t.strip_prefix(['v', 'V']).unwrap_or(t);
        let end = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let parts: Option<Vec<u64>> = t[..end]
            .split('.')
            .filter(|p| !p.is_empty())
            .map(|p| p.parse().ok())
            .collect();
        parts.filter(|p| !p.is_empty())
    };
    match (numbers(a), numbers(b)) {
        (Some(a), Some(b)) => a < b,
        _ => false,
    }
}

/// What an ImageRepository at `rel` needs that a CI job cannot read, and what to use instead.
fn credentials_hint(rel: &str, root: &Node) -> Option<String> {
    let name = root
        .get_path(&["metadata", "name"])
        .and_then(Node::as_str)
        .unwrap_or("?");
    let image = root
        .get_path(&["spec", "image"])
        .and_then(Node::as_str)
        .unwrap_or("its image");
    let secret = root
        .get_path(&["spec", "secretRef", "name"])
        .and_then(Node::as_str);
    let provider = root
        .get_path(&["spec", "provider"])
        .and_then(Node::as_str)
        .filter(|p| *p != "generic");
    let at = format!("{rel}:{}", root.line);
    let instead = "give this job the registry's credentials instead: registries[].credentials \
                   (username_env/password_env) in .image-updater.yaml, or ~/.docker/config.json \
                   ($DOCKER_CONFIG) with auths or a docker-credential helper";
    match (secret, provider) {
        (_, Some(p)) => {
            let helper = match p {
                "aws" => "docker-credential-ecr-login",
                "gcp" => "docker-credential-gcr",
                "azure" => "docker-credential-acr-env",
                _ => "a docker credential helper",
            };
            Some(format!(
                "ImageRepository {name} ({at}) logs in to {image} with provider {p}, the \
                 cluster's workload identity, which this job does not have: use {helper} \
                 (credHelpers in ~/.docker/config.json) or {instead}"
            ))
        }
        (Some(s), None) => Some(format!(
            "ImageRepository {name} ({at}) reads credentials for {image} from the Secret {s} \
             in the cluster, which this job cannot read: {instead}"
        )),
        (None, None) => None,
    }
}

fn same_git_settings(a: &Automation, b: &Automation) -> bool {
    a.checkout_branch == b.checkout_branch
        && a.push_branch == b.push_branch
        && a.push_refspec_branch == b.push_refspec_branch
        && a.author_name == b.author_name
        && a.author_email == b.author_email
        && a.message_template.as_ref().map(|t| &t.0) == b.message_template.as_ref().map(|t| &t.0)
}

/// Whether the config file exists and its top-level `delivery:` says how commits are made
/// (mode, branches, author, message, …). Settings of the way there only — the forge
/// (`forge`, `api_url`, `repository`) and `commit.sign` / `commit.via` — leave an
/// automation's git settings in force: `commit.via: api` commits to its push branch.
pub(crate) fn config_sets_delivery(config_file: &Path) -> bool {
    const TRANSPORT: [&str; 4] = ["forge", "api_url", "repository", "commit"];
    const COMMIT_TRANSPORT: [&str; 2] = ["sign", "via"];
    let only = |node: &scan::Node, keys: &[&str]| {
        node.as_mapping().is_some_and(|entries| {
            entries
                .iter()
                .all(|(k, _)| k.as_str().is_some_and(|k| keys.contains(&k)))
        })
    };
    std::fs::read_to_string(config_file)
        .ok()
        .and_then(|t| scan::parse_documents(&t).ok())
        .and_then(|docs| docs.into_iter().next())
        .and_then(|d| d.root)
        .and_then(|r| r.get("delivery").cloned())
        .is_some_and(|d| {
            let transport_only =
                only(&d, &TRANSPORT) && d.get("commit").is_none_or(|c| only(c, &COMMIT_TRANSPORT));
            !transport_only
        })
}

/// Registry settings for the hosts of `ImageRepository` objects with `spec.insecure: true`
/// that the config does not already set: plain HTTP or unverified TLS for that host, as Flux
/// does. Every file `exclude` does not leave out is read, whatever `paths` selects (Flux
/// objects are read from the whole repo).
pub(crate) fn insecure_registries(
    root: &Path,
    config: &crate::config::Config,
) -> Vec<RegistryConfig> {
    let opts = manifest::files::DiscoverOptions {
        paths: Vec::new(),
        exclude: config.exclude.clone(),
        max_file_size: config
            .max_file_size
            .unwrap_or(manifest::files::DEFAULT_MAX_FILE_SIZE),
    };
    let Ok(files) = manifest::files::discover_files(root, &opts) else {
        return Vec::new();
    };
    let mut hosts: Vec<String> = Vec::new();
    for rel in &files.files {
        let Ok(text) = std::fs::read_to_string(root.join(rel)) else {
            continue;
        };
        if !may_hold_flux(&text) || !text.contains("insecure") {
            continue;
        }
        let Ok(docs) = scan::parse_documents(&text) else {
            continue;
        };
        for node in docs.iter().filter_map(|d| d.root.as_ref()) {
            let (api, kind) = scan::api_version_kind(node);
            if !scan::in_group(api, GROUP) || kind != Some("ImageRepository") {
                continue;
            }
            let insecure = node.get_path(&["spec", "insecure"]).and_then(Node::as_str);
            let image = node.get_path(&["spec", "image"]).and_then(Node::as_str);
            if let (Some("true"), Some(image)) = (insecure, image) {
                if let Ok(r) = crate::reference::ImageRef::parse(image) {
                    if !hosts.contains(&r.registry) {
                        hosts.push(r.registry);
                    }
                }
            }
        }
    }
    hosts
        .into_iter()
        .filter(|h| {
            !config
                .registries
                .iter()
                .any(|r| r.host.eq_ignore_ascii_case(h))
        })
        .map(|host| RegistryConfig {
            host,
            api: None,
            insecure: true,
            ca_file: None,
            credentials: None,
            max_concurrency: None,
            requests_per_second: None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objects(files: &[(&str, &str)]) -> FluxObjects {
        let mut out = FluxObjects::default();
        for (rel, text) in files {
            for d in scan::parse_documents(text).unwrap() {
                if let Some(root) = &d.root {
                    out.read_object(rel, root);
                }
            }
        }
        out
    }

    fn automation(name: &str, path: &str, extra: &str) -> String {
        format!(
            "apiVersion: image.toolkit.fluxcd.io/v1beta2\nkind: ImageUpdateAutomation\n\
             metadata: {{name: {name}, namespace: flux-system}}\nspec:\n  update: {{path: {path}}}\n{extra}"
        )
    }

    #[test]
    fn the_most_specific_automation_governs_a_file() {
        let root = automation("all", "./", "");
        let dev = automation("dev", "./clusters/dev", "  suspend: true\n");
        let objs = objects(&[("a.yaml", &root), ("clusters/dev/auto.yaml", &dev)]);
        let name = |f: &str| {
            objs.automation_for(f)
                .unwrap()
                .map(|d| d.automation.name.clone())
        };
        assert_eq!(name("clusters/dev/app.yaml").as_deref(), Some("dev"));
        assert_eq!(name("clusters/prod/app.yaml").as_deref(), Some("all"));
        let why = objs
            .left_alone("clusters/dev/app.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            why.contains("suspended") && why.contains("clusters/dev/auto.yaml:1"),
            "{why}"
        );
    }

    #[test]
    fn a_file_outside_every_update_path_is_left_alone_with_the_paths() {
        let dev = automation("dev", "./clusters/dev", "");
        let objs = objects(&[("clusters/dev/auto.yaml", &dev)]);
        assert!(objs.left_alone("clusters/dev/x.yaml").unwrap().is_some());
        let why = objs
            .left_alone("clusters/prod/x.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            why.contains("flux-system/dev updates clusters/dev"),
            "{why}"
        );
        let none = objects(&[]);
        assert!(none.left_alone("anything.yaml").unwrap().is_none());
    }

    #[test]
    fn same_named_policies_are_picked_by_tree_or_refused_naming_both_files() {
        let mut objs = objects(&[]);
        objs.note_governor(3, "clusters/dev/flux-system/policy.yaml", 1, None);
        objs.note_governor(4, "clusters/prod/flux-system/policy.yaml", 7, None);
        let c = [3, 4];
        assert_eq!(
            objs.pick("clusters/prod/apps/web.yaml", None, &c, "fs:web"),
            Ok(4)
        );
        assert_eq!(
            objs.pick("clusters/dev/web.yaml", None, &c, "fs:web"),
            Ok(3)
        );
        let e = objs.pick("apps/web.yaml", None, &c, "fs:web").unwrap_err();
        assert!(matches!(e, ScopeError::DeclaredTwice { .. }), "{e:?}");
        let why = e.to_string();
        assert!(
            why.contains("clusters/dev/flux-system/policy.yaml:1")
                && why.contains("clusters/prod/flux-system/policy.yaml:7"),
            "{why}"
        );
        // The automation's update.path decides when the tree alone does not.
        let auto = automation("prod", "./clusters/prod", "");
        let a = objects(&[("clusters/auto.yaml", &auto)]);
        let d = &a.automations[0];
        assert_eq!(objs.pick("apps/web.yaml", Some(d), &c, "fs:web"), Ok(4));
    }

    #[test]
    fn the_policy_selector_filters_by_labels() {
        let auto = automation("a", "./", "  policySelector: {matchLabels: {team: web}}\n");
        let policy = "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\n\
                      metadata: {name: web, labels: {team: web}}\n---\n\
                      apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\n\
                      metadata: {name: db}\n";
        let mut objs = objects(&[("auto.yaml", &auto), ("p.yaml", policy)]);
        objs.note_governor(0, "p.yaml", 1, None);
        objs.note_governor(1, "p.yaml", 5, None);
        let d = objs.automations[0].clone();
        assert_eq!(objs.pick("x.yaml", Some(&d), &[0], "fs:web"), Ok(0));
        let why = objs
            .pick("x.yaml", Some(&d), &[1], "fs:db")
            .unwrap_err()
            .to_string();
        assert!(why.contains("policySelector"), "{why}");
    }

    #[test]
    fn delivery_takes_the_automation_settings_unless_the_config_sets_delivery() {
        let auto = automation(
            "a",
            "./clusters/dev",
            "  git:\n    checkout: {ref: {branch: main}}\n    push: {branch: auto}\n    \
             commit: {author: {name: bot, email: bot@example.com}, messageTemplate: 'x'}\n",
        );
        let objs = objects(&[("clusters/dev/auto.yaml", &auto)]);
        let tmp = tempfile::tempdir().unwrap();
        let config = tmp.path().join(".image-updater.yaml");
        let d = objs
            .delivery(&["clusters/dev/app.yaml"], &config)
            .unwrap()
            .unwrap();
        assert_eq!(d.push_branch.as_deref(), Some("auto"));
        assert_eq!(d.checkout_branch.as_deref(), Some("main"));
        assert_eq!(d.author, Some(("bot".into(), "bot@example.com".into())));
        assert_eq!(
            d.message_template,
            Some(("x".into(), "clusters/dev/auto.yaml".into(), 9))
        );
        assert_eq!(objs.delivery(&["other.yaml"], &config), Ok(None));
        std::fs::write(&config, "registries: []\n").unwrap();
        assert!(objs
            .delivery(&["clusters/dev/app.yaml"], &config)
            .unwrap()
            .is_some());
        std::fs::write(&config, "delivery: {mode: commit}\n").unwrap();
        assert_eq!(objs.delivery(&["clusters/dev/app.yaml"], &config), Ok(None));
        std::fs::write(
            &config,
            "delivery: {commit: {via: api, author: {name: x, email: y}}}\n",
        )
        .unwrap();
        assert_eq!(objs.delivery(&["clusters/dev/app.yaml"], &config), Ok(None));
        // The forge and how commits travel leave the automation's settings in force.
        std::fs::write(
            &config,
            "delivery:\n  forge: github\n  api_url: https://x\n  repository: a/b\n  commit: {via: api, sign: ssh}\n",
        )
        .unwrap();
        assert_eq!(
            objs.delivery(&["clusters/dev/app.yaml"], &config)
                .unwrap()
                .and_then(|d| d.push_branch),
            Some("auto".to_string())
        );
    }

    #[test]
    fn automations_with_different_settings_in_one_commit_are_refused() {
        let dev = automation("dev", "./dev", "  git: {push: {branch: a}}\n");
        let prod = automation("prod", "./prod", "  git: {push: {branch: b}}\n");
        let objs = objects(&[("dev/a.yaml", &dev), ("prod/a.yaml", &prod)]);
        let none = Path::new("no-such-config.yaml");
        let why = objs
            .delivery(&["dev/x.yaml", "prod/x.yaml"], none)
            .unwrap_err()
            .to_string();
        assert_eq!(
            why,
            "the updates belong to ImageUpdateAutomations with different git settings, \
             flux-system/dev (dev/a.yaml:1) and flux-system/prod (prod/a.yaml:1); Flux commits \
             each on its own: run once per automation (paths: in .image-updater.yaml) or give \
             them the same checkout, push, author and messageTemplate"
        );
        assert!(objs.delivery(&["dev/x.yaml"], none).unwrap().is_some());
    }

    #[test]
    fn a_revert_to_a_lower_version_is_named_a_downgrade_only_for_flux() {
        let note = revert_note(true, Some("2.0.0"), "1.0.1").unwrap();
        assert!(
            note.starts_with("downgrade:") && note.contains("2.0.0"),
            "{note}"
        );
        assert_eq!(revert_note(false, Some("2.0.0"), "1.0.1"), None);
        assert_eq!(revert_note(true, Some("latest"), "1.0.1"), None);
        assert_eq!(revert_note(true, Some("1.0.0"), "1.0.1"), None);
        assert_eq!(revert_note(true, None, "1.0.1"), None);
        assert!(revert_note(true, Some("v1.10.0"), "v1.9.3").is_some());
    }

    #[test]
    fn cluster_credentials_are_named_with_what_to_use_instead() {
        let text = "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\n\
                    metadata: {name: a}\nspec: {image: x/a, secretRef: {name: regcred}}\n---\n\
                    apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\n\
                    metadata: {name: b}\nspec: {image: x/b, provider: aws}\n---\n\
                    apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\n\
                    metadata: {name: c}\nspec: {image: x/c, provider: generic}\n";
        let objs = objects(&[("repos.yaml", text)]);
        assert_eq!(objs.hints.len(), 2, "{:?}", objs.hints);
        assert!(
            objs.hints[0].contains("repos.yaml:1")
                && objs.hints[0].contains("regcred")
                && objs.hints[0].contains("username_env"),
            "{}",
            objs.hints[0]
        );
        assert!(
            objs.hints[1].contains("docker-credential-ecr-login"),
            "{}",
            objs.hints[1]
        );
    }

    #[test]
    fn digest_reflection_pins_the_policy_and_bad_values_are_errors() {
        let text = "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\n\
                    metadata: {name: a}\nspec: {digestReflectionPolicy: IfNotPresent}\n---\n\
                    apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\n\
                    metadata: {name: b}\nspec:\n  digestReflectionPolicy: Sometimes\n";
        let objs = objects(&[("p.yaml", text)]);
        assert!(objs.policies[&("p.yaml".to_string(), 1)].reflect_digest);
        assert!(!objs.policies[&("p.yaml".to_string(), 6)].reflect_digest);
        assert_eq!(objs.errors.len(), 1);
        assert!(
            objs.errors[0].1.starts_with("p.yaml:10:"),
            "{:?}",
            objs.errors
        );
    }

    #[test]
    fn a_broken_automation_is_an_error_and_holds_flux_updates() {
        let bad = automation(
            "bad",
            "./x",
            "  git: {push: {refspec: 'HEAD:refs/for/main'}}\n",
        );
        let objs = objects(&[("bad.yaml", &bad)]);
        assert_eq!(objs.errors.len(), 1);
        assert!(
            objs.errors[0].1.starts_with("bad.yaml:6:"),
            "{:?}",
            objs.errors
        );
        let why = objs.left_alone("x/app.yaml").unwrap_err().to_string();
        assert!(why.contains("cannot be honoured"), "{why}");
    }
}
