//! What each stage holds, and since when, read from Git alone: the first-parent history of
//! the base branch, walked back from its tip. A stage holds a version of an image at a commit
//! when every reference to that image in the stage's files is at that version; it has held it
//! since the oldest commit of the unbroken run that ends at the tip, and the committer time of
//! that commit is the soak evidence.
//!
//! The tip's tree is read whole, once; each older commit only where it differs from its child
//! (a tree diff of our own, which skips subtrees with the same id and directories no stage can
//! own; libgit2's diff walked every entry), keeping a count of the references per
//! version, and a blob seen before is not scanned again: a thousand commits touching one file
//! cost a thousand small diffs and one scan per version of that file.
//!
//! Shallow clones ([`shallow_boundary`], [`deepen`]): the history ends at the clone's depth.
//! It is deepened with `git fetch --shallow-since`, bounded by the longest soak; where it still
//! ends too early to decide, the caller says so rather than guess.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::rc::Rc;

use git2::{ObjectType, Oid, Repository, Tree};

use crate::manifest::{self, ScanOptions};
use crate::reference::ImageRef;

use super::spec::Stage;

/// The most commits walked back; what lies beyond is treated as history that ends there.
pub const MAX_COMMITS: usize = 20_000;

/// Per stage: each image (canonical repository) and the versions its references hold.
pub type Holdings = Vec<BTreeMap<String, BTreeSet<String>>>;

/// A file's references: (image, version), interned ([`Scanner::name`]), in source order.
type FileRefs = Rc<Vec<(u32, u32)>>;
/// A stage and an image (canonical).
type Key = (usize, String);
/// How many references of each stage's files hold each version of each image:
/// (stage, image) -> version -> references; a version with none is not in the map.
type Counts = HashMap<(usize, u32), HashMap<u32, u32>>;

/// Which files count, beyond each stage's own globs.
pub struct FileRules {
    /// The config's `paths`, when given.
    pub paths: Option<globset::GlobSet>,
    pub exclude: Option<globset::GlobSet>,
    pub max_size: u64,
}

impl FileRules {
    fn admits(&self, rel: &str) -> bool {
        if self.exclude.as_ref().is_some_and(|e| e.is_match(rel)) {
            return false;
        }
        match &self.paths {
            Some(p) => p.is_match(rel),
            None => {
                rel.ends_with(".yaml")
                    || rel.ends_with(".yml")
                    || manifest::always_scanned(Path::new(rel))
            }
        }
    }
}

/// Reads the references of the stages' files at commits: the tip's whole tree once, then for
/// each older commit only the files that differ (a tree diff skips unchanged subtrees), each
/// blob scanned once.
pub struct Scanner<'a> {
    repo: &'a Repository,
    stages: &'a [Stage],
    rules: &'a FileRules,
    opts: &'a ScanOptions,
    /// A marker's policy name -> the image it watches (for markers holding only a tag).
    fallback: &'a HashMap<String, ImageRef>,
    /// The directories any stage glob can match below (the globs' literal directory parts).
    prefixes: Vec<String>,
    /// Image names and versions, interned.
    names: Vec<String>,
    ids: HashMap<String, u32>,
    blobs: HashMap<(Oid, String), FileRefs>,
}

impl<'a> Scanner<'a> {
    pub fn new(
        repo: &'a Repository,
        stages: &'a [Stage],
        rules: &'a FileRules,
        opts: &'a ScanOptions,
        fallback: &'a HashMap<String, ImageRef>,
    ) -> Scanner<'a> {
        let prefixes = stages
            .iter()
            .flat_map(|s| s.paths.iter())
            .map(|g| {
                let lit = &g[..g.find(['*', '?', '[', '{']).unwrap_or(g.len())];
                lit[..lit.rfind('/').map_or(0, |i| i + 1)].to_string()
            })
            .collect();
        Scanner {
            repo,
            stages,
            rules,
            opts,
            fallback,
            prefixes,
            names: Vec::new(),
            ids: HashMap::new(),
            blobs: HashMap::new(),
        }
    }

    /// The name or version interned as `id`.
    fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }

    fn intern(&mut self, s: &str) -> u32 {
        if let Some(id) = self.ids.get(s) {
            return *id;
        }
        let id = self.names.len() as u32;
        self.names.push(s.to_string());
        self.ids.insert(s.to_string(), id);
        id
    }

    /// Whether a directory can hold files of a stage.
    fn descend(&self, dir: &str) -> bool {
        self.prefixes
            .iter()
            .any(|p| dir.starts_with(p.as_str()) || p.starts_with(dir))
    }

    /// Count (or take away) every reference of the stages' files in `tree` (at `dir`).
    fn count_tree(
        &mut self,
        tree: &Tree<'_>,
        dir: &str,
        counts: &mut Counts,
        add: bool,
    ) -> Result<(), git2::Error> {
        for entry in tree.iter() {
            let Ok(name) = entry.name() else { continue };
            self.count_entry(
                entry.id(),
                entry.kind(),
                &format!("{dir}{name}"),
                counts,
                add,
            )?;
        }
        Ok(())
    }

    /// Count (or take away) one tree entry at `rel`: a blob's references, a subtree's files.
    fn count_entry(
        &mut self,
        id: Oid,
        kind: Option<ObjectType>,
        rel: &str,
        counts: &mut Counts,
        add: bool,
    ) -> Result<(), git2::Error> {
        match kind {
            Some(ObjectType::Tree) => {
                let sub = format!("{rel}/");
                if self.descend(&sub) {
                    let t = self.repo.find_tree(id)?;
                    self.count_tree(&t, &sub, counts, add)?;
                }
            }
            Some(ObjectType::Blob) => self.count(counts, id, rel, add)?,
            _ => {}
        }
        Ok(())
    }

    /// Turn the counts of `child` into those of `parent` (both at `dir`): subtrees with the
    /// same id are skipped, and only the stages' directories are entered.
    fn diff(
        &mut self,
        parent: &Tree<'_>,
        child: &Tree<'_>,
        dir: &str,
        counts: &mut Counts,
    ) -> Result<(), git2::Error> {
        type Entries = BTreeMap<String, (Oid, Option<ObjectType>)>;
        let entries = |t: &Tree<'_>| -> Entries {
            t.iter()
                .filter_map(|e| Some((e.name().ok()?.to_string(), (e.id(), e.kind()))))
                .collect()
        };
        let (old, new) = (entries(parent), entries(child));
        let names: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
        for name in names {
            let (o, n) = (old.get(name), new.get(name));
            if o.map(|e| e.0) == n.map(|e| e.0) {
                continue;
            }
            let rel = format!("{dir}{name}");
            match (o, n) {
                (Some((oi, Some(ObjectType::Tree))), Some((ni, Some(ObjectType::Tree)))) => {
                    let sub = format!("{rel}/");
                    if self.descend(&sub) {
                        let (pt, ct) = (self.repo.find_tree(*oi)?, self.repo.find_tree(*ni)?);
                        self.diff(&pt, &ct, &sub, counts)?;
                    }
                }
                _ => {
                    if let Some((id, kind)) = n {
                        self.count_entry(*id, *kind, &rel, counts, false)?;
                    }
                    if let Some((id, kind)) = o {
                        self.count_entry(*id, *kind, &rel, counts, true)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Add (or take away) the references of blob `id` at `rel` to the stages owning `rel`.
    fn count(
        &mut self,
        counts: &mut Counts,
        id: Oid,
        rel: &str,
        add: bool,
    ) -> Result<(), git2::Error> {
        let owners: Vec<usize> = (0..self.stages.len())
            .filter(|i| self.stages[*i].globs.is_match(rel))
            .collect();
        if owners.is_empty() || !self.rules.admits(rel) {
            return Ok(());
        }
        let refs = self.blob(id, rel)?;
        for stage in owners {
            for (image, version) in refs.iter() {
                let versions = counts.entry((stage, *image)).or_default();
                if add {
                    *versions.entry(*version).or_default() += 1;
                } else if let Some(n) = versions.get_mut(version) {
                    *n -= 1;
                    if *n == 0 {
                        versions.remove(version);
                    }
                }
            }
        }
        Ok(())
    }

    /// The references of one file, in source order.
    fn blob(&mut self, id: Oid, rel: &str) -> Result<FileRefs, git2::Error> {
        let name = rel.rsplit('/').next().unwrap_or(rel).to_string();
        if let Some(found) = self.blobs.get(&(id, name.clone())) {
            return Ok(found.clone());
        }
        let blob = self.repo.find_blob(id)?;
        let mut found = Vec::new();
        if (blob.size() as u64) <= self.rules.max_size {
            if let Ok(text) = std::str::from_utf8(blob.content()) {
                if let Ok(scan) = manifest::sites::scan_file(Path::new(rel), text, self.opts) {
                    for site in &scan.sites {
                        let fallback = site
                            .policy
                            .as_ref()
                            .and_then(|p| self.fallback.get(&p.name));
                        let Ok(image) = crate::discover::current_reference(site, fallback) else {
                            continue;
                        };
                        if let Some(version) = image.tag.clone().or(image.digest.clone()) {
                            found.push((image.canonical_name(), version));
                        }
                    }
                }
            }
        }
        let refs: Vec<(u32, u32)> = found
            .iter()
            .map(|(i, v)| (self.intern(i), self.intern(v)))
            .collect();
        let refs = Rc::new(refs);
        self.blobs.insert((id, name), refs.clone());
        Ok(refs)
    }

    /// What each stage's files hold, from the counts: image -> versions.
    fn holdings_of(&self, counts: &Counts) -> Holdings {
        let mut out: Holdings = vec![BTreeMap::new(); self.stages.len()];
        for ((stage, image), versions) in counts {
            if versions.is_empty() {
                continue;
            }
            out[*stage].insert(
                self.name(*image).to_string(),
                versions.keys().map(|v| self.name(*v).to_string()).collect(),
            );
        }
        out
    }
}

/// How long a stage has held the version of an image its files hold at the tip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holding {
    /// Every reference is at `version`.
    Held {
        version: String,
        /// The committer time and id of the first-parent commit that brought it; `None` when
        /// the history ends (a shallow clone, [`MAX_COMMITS`]) while it is still held.
        since: Option<(i64, Oid)>,
        /// The committer time of the oldest commit read that holds it: it has been held at
        /// least since then.
        at_least: i64,
    },
    /// The references disagree: no one version is held.
    Mixed(Vec<String>),
}

/// Each stage's holdings at the tip and since when.
#[derive(Debug, Default)]
pub struct StageHistory {
    pub stages: Vec<BTreeMap<String, Holding>>,
    /// The history ended before every run was seen to start (shallow, or too long).
    pub ended: Option<(Oid, i64)>,
    /// Commits read.
    pub commits: usize,
    /// The committer time of the head the walk began at: what a promotion pull request's body
    /// counts "held for" up to, so that the body stays the same from run to run until the
    /// base branch moves.
    pub head_time: i64,
}

/// Walk the first-parent history back from `head` until every held version's run has begun.
pub fn walk(
    scanner: &mut Scanner<'_>,
    repo: &Repository,
    head: Oid,
    boundary: &HashSet<Oid>,
) -> Result<StageHistory, git2::Error> {
    let mut commit = repo.find_commit(head)?;
    let mut counts = Counts::new();
    scanner.count_tree(&commit.tree()?, "", &mut counts, true)?;
    let tip = scanner.holdings_of(&counts);
    // (stage, image) -> (version, oldest commit holding it, its committer time)
    let mut open: BTreeMap<(usize, String), (String, Oid, i64)> = BTreeMap::new();
    let head_time = commit.time().seconds();
    let mut history = StageHistory {
        head_time,
        stages: vec![BTreeMap::new(); tip.len()],
        ended: None,
        commits: 1,
    };
    let time = |c: &git2::Commit<'_>| c.committer().when().seconds();
    for (stage, images) in tip.iter().enumerate() {
        for (image, versions) in images {
            if versions.len() == 1 {
                let v = versions.iter().next().cloned().unwrap_or_default();
                open.insert((stage, image.clone()), (v, commit.id(), time(&commit)));
            } else {
                history.stages[stage].insert(
                    image.clone(),
                    Holding::Mixed(versions.iter().cloned().collect()),
                );
            }
        }
    }
    // The same keys, interned, to read `counts` as the walk goes back.
    let keys: Vec<(Key, (usize, u32), u32)> = open
        .iter()
        .filter_map(|(k, (v, _, _))| {
            Some((
                k.clone(),
                (k.0, *scanner.ids.get(&k.1)?),
                *scanner.ids.get(v)?,
            ))
        })
        .collect();
    let close = |history: &mut StageHistory,
                 key: &(usize, String),
                 v: &(String, Oid, i64),
                 complete: bool| {
        history.stages[key.0].insert(
            key.1.clone(),
            Holding::Held {
                version: v.0.clone(),
                since: complete.then_some((v.2, v.1)),
                at_least: v.2,
            },
        );
    };
    while !open.is_empty() {
        let at_boundary = boundary.contains(&commit.id()) || history.commits >= MAX_COMMITS;
        if commit.parent_count() == 0 || at_boundary {
            let complete = !at_boundary;
            if !complete {
                history.ended = Some((commit.id(), time(&commit)));
            }
            for (key, v) in std::mem::take(&mut open) {
                close(&mut history, &key, &v, complete);
            }
            break;
        }
        let parent = match commit.parent(0) {
            Ok(p) => p,
            Err(_) => {
                // The parent is not in the repository: the history ends here.
                history.ended = Some((commit.id(), time(&commit)));
                for (key, v) in std::mem::take(&mut open) {
                    close(&mut history, &key, &v, false);
                }
                break;
            }
        };
        // From the child's counts to the parent's: only the files that differ.
        scanner.diff(&parent.tree()?, &commit.tree()?, "", &mut counts)?;
        history.commits += 1;
        for (key, interned, version) in &keys {
            let Some(v) = open.get_mut(key) else { continue };
            let same = counts
                .get(interned)
                .is_some_and(|vs| vs.len() == 1 && vs.contains_key(version));
            if same {
                v.1 = parent.id();
                v.2 = time(&parent);
            } else if let Some(v) = open.remove(key) {
                close(&mut history, key, &v, true);
            }
        }
        commit = parent;
    }
    Ok(history)
}

/// The commits a shallow repository's history ends at (`.git/shallow`); empty when complete.
pub fn shallow_boundary(repo: &Repository) -> HashSet<Oid> {
    std::fs::read_to_string(repo.path().join("shallow"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| Oid::from_str(l.trim()).ok())
        .collect()
}

/// Deepen a shallow clone back to `since` (seconds since the epoch) with
/// `git fetch --shallow-since`, from the branch's remote. Says what it did, or why it could not.
pub fn deepen(root: &Path, remote: &str, branch: &str, since: i64) -> Result<String, String> {
    let date = crate::stages::rfc3339(since);
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(root)
        .args([
            "fetch",
            "--quiet",
            &format!("--shallow-since={date}"),
            remote,
            branch,
        ])
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .map_err(|e| format!("git fetch --shallow-since: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "git fetch --shallow-since={date} {remote} {branch}: {}",
            crate::escape::text_line(err.trim())
        ));
    }
    Ok(format!(
        "the clone was shallow: history fetched back to {date} (git fetch --shallow-since)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A repository whose first-parent history is `steps`: each a committer time and the
    /// dev file's image tag.
    fn repo_with(steps: &[(i64, &str)]) -> (tempfile::TempDir, Repository, Oid) {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let mut parent: Option<Oid> = None;
        for (t, tag) in steps {
            let text = format!(
                "apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n        - name: web\n          image: ghcr.io/acme/web:{tag}\n"
            );
            let blob = repo.blob(text.as_bytes()).unwrap();
            let mut dev = repo.treebuilder(None).unwrap();
            dev.insert("web.yaml", blob, 0o100644).unwrap();
            let dev = dev.write().unwrap();
            let mut clusters = repo.treebuilder(None).unwrap();
            clusters.insert("dev", dev, 0o040000).unwrap();
            let clusters = clusters.write().unwrap();
            let mut root = repo.treebuilder(None).unwrap();
            root.insert("clusters", clusters, 0o040000).unwrap();
            let tree = repo.find_tree(root.write().unwrap()).unwrap();
            let sig =
                git2::Signature::new("t", "t@example.invalid", &git2::Time::new(*t, 0)).unwrap();
            let parents: Vec<git2::Commit> = parent
                .iter()
                .map(|p| repo.find_commit(*p).unwrap())
                .collect();
            let refs: Vec<&git2::Commit> = parents.iter().collect();
            parent = Some(repo.commit(None, &sig, &sig, "c", &tree, &refs).unwrap());
        }
        let head = parent.unwrap();
        (dir, repo, head)
    }

    fn since(steps: &[(i64, &str)]) -> Holding {
        let (_dir, repo, head) = repo_with(steps);
        let file = Path::new("c.yaml");
        let config = crate::config::Config::parse(
            file,
            "stages:\n  - { name: dev, paths: ['clusters/dev/**'] }\n",
        )
        .unwrap();
        let stages = Stage::compile(&config.stages, file).unwrap();
        let rules = FileRules {
            paths: None,
            exclude: None,
            max_size: 1 << 20,
        };
        let opts = config.scan_options();
        let fallback = HashMap::new();
        let mut scanner = Scanner::new(&repo, &stages, &rules, &opts, &fallback);
        let h = walk(&mut scanner, &repo, head, &HashSet::new()).unwrap();
        h.stages[0]["ghcr.io/acme/web"].clone()
    }

    #[test]
    fn the_clock_starts_at_the_commit_that_brought_the_version() {
        let h = since(&[
            (100, "1.0.0"),
            (200, "1.1.0"),
            (300, "1.1.0"),
            (400, "1.1.0"),
        ]);
        assert!(
            matches!(h, Holding::Held { ref version, since: Some((200, _)), .. } if version == "1.1.0"),
            "{h:?}"
        );
    }

    #[test]
    fn a_break_restarts_the_clock() {
        let h = since(&[
            (100, "1.2.0"),
            (200, "1.3.0"),
            (300, "1.2.0"),
            (400, "1.2.0"),
        ]);
        assert!(
            matches!(
                h,
                Holding::Held {
                    since: Some((300, _)),
                    ..
                }
            ),
            "{h:?}"
        );
    }

    #[test]
    fn held_from_the_first_commit() {
        let h = since(&[(100, "1.2.0"), (200, "1.2.0")]);
        assert!(
            matches!(
                h,
                Holding::Held {
                    since: Some((100, _)),
                    at_least: 100,
                    ..
                }
            ),
            "{h:?}"
        );
    }
}
