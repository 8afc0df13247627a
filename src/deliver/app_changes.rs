//! "What changed in the app": for each update, the source repository of the image and the
//! compare view from the old image's revision to the new one, read from the
//! `org.opencontainers.image.source` and `org.opencontainers.image.revision` labels of the
//! image config (or the manifest's or index's annotations), for the pull-request body and the
//! commit message.
//!
//! Bounded and harmless: [`look_up`] reads each distinct (repository, tag) once (one manifest
//! and one config, [`crate::registry::created::image_facts`]; a multi-platform tag is described
//! by its index's annotations and its first platform's image), the new tags first and the old
//! tags only of images whose new tag names a source; at most [`MAX_UPDATES`] updates get links
//! (beyond that, none, said once in the log). A lookup that fails gives no link and a log line,
//! never an error of the run. It runs only for a delivering `run`; `plan` asks nothing more.
//!
//! The label values come from whoever built the image: only an `http(s)` URL made of plain
//! host and path characters is ever linked ([`source_repository`]), and only a revision of
//! plain characters ([`revision`]); anything else gives no link. The URL shape follows the
//! source's host ([`shape_of`]): `github.com` is GitHub (`/compare/OLD...NEW`), `gitlab.com`
//! and hosts whose name holds `gitlab` are GitLab (`/-/compare/OLD...NEW`), the delivery
//! forge's own host is that forge (GitHub, GitLab, or Gitea/Forgejo `/compare/OLD...NEW`), and
//! `codeberg.org` is Forgejo; on another host only the source repository is linked.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use futures::StreamExt as _;

use crate::config::Delivery;
use crate::env::Env;
use crate::escape::{md_code, md_link, md_text, text_line};
use crate::forge::ForgeKind;
use crate::git::WorkTree;
use crate::reference::ImageRef;
use crate::registry::created::{image_facts, ImageFacts};
use crate::registry::Registries;
use crate::report::Update;

/// The label (or annotation) naming the image's source repository.
pub const SOURCE: &str = "org.opencontainers.image.source";
/// The label (or annotation) naming the source revision the image was built from.
pub const REVISION: &str = "org.opencontainers.image.revision";
/// The most updates of one run that get links.
pub const MAX_UPDATES: usize = 50;
/// Lookups in flight at once (the registry's own limits apply below this).
const CONCURRENCY: usize = 8;

/// How a forge's web pages are laid out, as far as compare views and commits go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `/O/R/compare/OLD...NEW`, `/O/R/commit/REV`.
    Github,
    /// `/G/P/-/compare/OLD...NEW`, `/G/P/-/commit/REV` (nested groups too).
    Gitlab,
    /// Gitea and Forgejo: `/O/R/compare/OLD...NEW`, `/O/R/commit/REV`.
    Gitea,
}

/// The forge the delivery talks to: a source on its host has its shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForgeHint {
    /// The host name (no port), lower case.
    pub host: String,
    pub kind: ForgeKind,
}

/// The links of one update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppChange {
    /// The source repository's web URL (`https://github.com/acme/web`).
    pub source: String,
    /// The old image's revision, when it names one.
    pub from_revision: Option<String>,
    /// The new image's revision, when it names one.
    pub to_revision: Option<String>,
    /// The compare view from the old revision to the new one.
    pub compare: Option<String>,
    /// The new revision's commit, when there is no compare view (the old image names no
    /// revision, or the same one).
    pub commit: Option<String>,
}

/// The links of a run's updates, by [`key`].
pub type AppChanges = HashMap<(String, String, String), AppChange>;

/// What an update's links are found by: its image, old and new tag.
pub fn key(u: &Update) -> (String, String, String) {
    (u.image.clone(), u.from.clone(), u.to.clone())
}

/// A source URL in its plain parts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SourceUrl {
    /// `http` or `https`.
    scheme: &'static str,
    /// `host` or `host:port`, lower case.
    host: String,
    /// The path segments, `.git` and slashes taken off.
    segments: Vec<String>,
}

impl SourceUrl {
    /// The host without its port.
    fn hostname(&self) -> &str {
        self.host.split(':').next().unwrap_or_default()
    }
}

/// Read a source label: `https://host/o/r`, `http://…`, `git@host:o/r.git`,
/// `ssh://git@host/o/r.git`, `git://…`, `git+https://…`; user info, query, fragment, a `.git`
/// suffix and trailing slashes are dropped. `None` for anything else: another scheme
/// (`javascript:`, `file:`, `data:`), a host or path with characters a plain URL does not
/// hold, whitespace or control characters anywhere, `.` or `..` segments, no path.
fn parse_source(raw: &str) -> Option<SourceUrl> {
    let raw = raw.trim();
    if raw.is_empty() || raw.len() > 512 || raw.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return None;
    }
    let (scheme, authority, path) = match raw.split_once("://") {
        Some((scheme, rest)) => {
            let written = scheme.to_ascii_lowercase();
            let scheme = match written.as_str() {
                "http" => "http",
                "https" | "git+https" | "ssh" | "git+ssh" | "ssh+git" | "git" => "https",
                _ => return None,
            };
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            // A port is the web's only on a web URL.
            let web = matches!(written.as_str(), "http" | "https" | "git+https");
            let authority = if web {
                authority
            } else {
                authority.split(':').next().unwrap_or_default()
            };
            (scheme, authority, path)
        }
        None => {
            // scp-like: user@host:path.
            let (before, path) = raw.split_once(':')?;
            let (_, host) = before.rsplit_once('@')?;
            ("https", host, path)
        }
    };
    let host = authority.to_ascii_lowercase();
    let (name, port) = match host.split_once(':') {
        Some((n, p)) => (n, Some(p)),
        None => (host.as_str(), None),
    };
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && !name.starts_with(['.', '-'])
        && !name.ends_with(['.', '-']);
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    if !name_ok || !port_ok {
        return None;
    }
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let path = path.trim_matches('/');
    let path = path
        .strip_suffix(".git")
        .unwrap_or(path)
        .trim_end_matches('/');
    if path.is_empty() {
        return None;
    }
    let segments: Vec<String> = path.split('/').map(str::to_string).collect();
    let plain = |s: &String| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b))
    };
    if !segments.iter().all(plain) {
        return None;
    }
    Some(SourceUrl {
        scheme,
        host,
        segments,
    })
}

/// The shape of the forge at `host`, if it is known: see the module doc.
pub fn shape_of(host: &str, hint: Option<&ForgeHint>) -> Option<Shape> {
    let host = host.to_ascii_lowercase();
    match host.as_str() {
        "github.com" | "www.github.com" => return Some(Shape::Github),
        "gitlab.com" => return Some(Shape::Gitlab),
        "codeberg.org" => return Some(Shape::Gitea),
        h if h.contains("gitlab") => return Some(Shape::Gitlab),
        _ => {}
    }
    match hint {
        Some(h) if h.host.eq_ignore_ascii_case(&host) => match h.kind {
            ForgeKind::Github => Some(Shape::Github),
            ForgeKind::Gitlab => Some(Shape::Gitlab),
            ForgeKind::Gitea => Some(Shape::Gitea),
            _ => None,
        },
        _ => None,
    }
}

/// The source repository's web URL and its shape: GitHub and Gitea repositories are the first
/// two path segments (`https://github.com/o/r/tree/main/x` is `o/r`), GitLab projects the
/// segments before `-` (nested groups kept); on a host of unknown shape the whole path.
pub fn source_repository(raw: &str, hint: Option<&ForgeHint>) -> Option<(String, Option<Shape>)> {
    let url = parse_source(raw)?;
    let shape = shape_of(url.hostname(), hint);
    let segments: &[String] = match shape {
        Some(Shape::Github | Shape::Gitea) if url.segments.len() >= 2 => &url.segments[..2],
        Some(Shape::Gitlab) => {
            let end = url
                .segments
                .iter()
                .position(|s| s == "-")
                .unwrap_or(url.segments.len());
            if end < 2 {
                return None;
            }
            &url.segments[..end]
        }
        Some(_) => return None,
        None => &url.segments,
    };
    Some((
        format!("{}://{}/{}", url.scheme, url.host, segments.join("/")),
        shape,
    ))
}

/// A revision label's value when it is plain: 1 to 128 of `A-Z a-z 0-9 . _ -`, not starting
/// with `.` or `-`, no `..` (a commit id, or a tag name).
pub fn revision(raw: &str) -> Option<String> {
    let r = raw.trim();
    let ok = (1..=128).contains(&r.len())
        && r.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && !r.starts_with(['.', '-'])
        && !r.contains("..");
    ok.then(|| r.to_string())
}

/// The links of an update whose new image names `source` (and `to_revision`), and whose old
/// image names `from_revision`: `None` when the source is not a plain http(s) URL.
pub fn app_change(
    source: &str,
    from_revision: Option<&str>,
    to_revision: Option<&str>,
    hint: Option<&ForgeHint>,
) -> Option<AppChange> {
    let (source, shape) = source_repository(source, hint)?;
    let from = from_revision.and_then(revision);
    let to = to_revision.and_then(revision);
    let (compare_path, commit_path) = match shape {
        Some(Shape::Gitlab) => ("/-/compare/", "/-/commit/"),
        Some(Shape::Github | Shape::Gitea) => ("/compare/", "/commit/"),
        None => ("", ""),
    };
    let mut change = AppChange {
        source: source.clone(),
        from_revision: from.clone(),
        to_revision: to.clone(),
        compare: None,
        commit: None,
    };
    if let (Some(_), Some(to)) = (shape, &to) {
        match &from {
            Some(from) if from != to => {
                change.compare = Some(format!("{source}{compare_path}{from}...{to}"))
            }
            _ => change.commit = Some(format!("{source}{commit_path}{to}")),
        }
    }
    Some(change)
}

/// The forge of the delivery, to recognise sources on its host: `delivery.forge` (else, for
/// pull requests, the forge found from the CI and the remote) at the remote's host.
pub(crate) fn hint(delivery: &Delivery, wt: &WorkTree, env: &Env) -> Option<ForgeHint> {
    let remote = wt.remote_url().ok()?;
    let host = remote_host(&remote)?;
    let kind = delivery.forge.or_else(|| {
        let cfg = crate::forge::ForgeConfig {
            forge: delivery.forge,
            api_url: delivery.api_url.clone(),
            repository: delivery.repository.clone(),
        };
        let lookup = |k: &str| env.raw(k).map(str::to_string);
        crate::forge::resolve(&lookup, &remote, &cfg)
            .ok()
            .map(|t| t.kind)
    })?;
    Some(ForgeHint { host, kind })
}

/// The host name (no port) of a git remote URL (`https://`, `ssh://`, `user@host:path`).
fn remote_host(remote: &str) -> Option<String> {
    let authority = match remote.split_once("://") {
        Some((_, rest)) => rest.split('/').next()?,
        None => remote.split_once(':')?.0,
    };
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = host.split(':').next()?.to_ascii_lowercase();
    (!host.is_empty()).then_some(host)
}

/// The links of `updates` (the first [`MAX_UPDATES`] distinct ones): each new tag read once,
/// then the old tag of each whose new image names a source. Never fails: a tag that cannot be
/// read gives no link and a log line.
pub(crate) async fn look_up(
    registries: &Registries,
    updates: &[Update],
    hint: Option<&ForgeHint>,
) -> AppChanges {
    let mut seen = HashSet::new();
    let mut wanted: Vec<((String, String, String), ImageRef)> = Vec::new();
    for u in updates {
        let k = key(u);
        if seen.contains(&k) {
            continue;
        }
        seen.insert(k.clone());
        match ImageRef::parse(&u.image) {
            Ok(image) => wanted.push((k, image)),
            Err(e) => tracing::debug!("app changes: {}: {e}", u.image),
        }
    }
    if wanted.len() > MAX_UPDATES {
        tracing::info!(
            "app changes: {} updates, source links are looked up for the first {MAX_UPDATES} only",
            wanted.len()
        );
        wanted.truncate(MAX_UPDATES);
    }
    let new_tags = wanted
        .iter()
        .map(|((_, _, to), image)| (image, to.as_str()));
    let new = read_all(registries, new_tags).await;
    let sourced: Vec<&((String, String, String), ImageRef)> = wanted
        .iter()
        .filter(|((_, _, to), image)| {
            new.get(&(image.canonical_name(), to.clone()))
                .is_some_and(|f| f.get(SOURCE).is_some())
        })
        .collect();
    let old_tags = sourced
        .iter()
        .filter(|((_, from, _), _)| crate::policy::is_oci_tag(from))
        .map(|((_, from, _), image)| (image, from.as_str()));
    let old = read_all(registries, old_tags).await;
    let mut out = AppChanges::new();
    for (k, image) in sourced {
        let (_, from, to) = k;
        let canonical = image.canonical_name();
        let Some(new) = new.get(&(canonical.clone(), to.clone())) else {
            continue;
        };
        let source = new.get(SOURCE).unwrap_or_default();
        let from_rev = old
            .get(&(canonical.clone(), from.clone()))
            .and_then(|f| f.get(REVISION));
        match app_change(source, from_rev, new.get(REVISION), hint) {
            Some(change) => {
                out.insert(k.clone(), change);
            }
            None => tracing::warn!(
                "app changes: {canonical}:{to} names source {}, which is not a plain http(s) repository URL: not linked",
                text_line(source)
            ),
        }
    }
    out
}

/// The facts of each distinct tag, read at most [`CONCURRENCY`] at once; a tag that cannot
/// be read is left out (and logged).
async fn read_all<'a>(
    registries: &Registries,
    tags: impl Iterator<Item = (&'a ImageRef, &'a str)>,
) -> HashMap<(String, String), ImageFacts> {
    let mut distinct: Vec<(&ImageRef, &str)> = Vec::new();
    let mut seen = HashSet::new();
    for (image, tag) in tags {
        if seen.insert((image.canonical_name(), tag)) {
            distinct.push((image, tag));
        }
    }
    futures::stream::iter(distinct)
        .map(|(image, tag)| async move {
            let source = registries.source(&image.registry);
            let read = image_facts(source.as_ref(), &image.repository, tag).await;
            let key = (image.canonical_name(), tag.to_string());
            match read {
                Ok(facts) => Some((key, facts)),
                Err(e) => {
                    tracing::warn!(
                        "app changes: {}:{tag} could not be read, no source link for it: {e}",
                        key.0
                    );
                    None
                }
            }
        })
        .buffer_unordered(CONCURRENCY)
        .filter_map(|r| async move { r })
        .collect()
        .await
}

/// The distinct updates of `updates` that have links, in order.
fn linked<'a>(updates: &'a [Update], app: &'a AppChanges) -> Vec<(&'a Update, &'a AppChange)> {
    let mut seen = HashSet::new();
    updates
        .iter()
        .filter_map(|u| {
            let k = key(u);
            let change = app.get(&k)?;
            seen.insert(k).then_some((u, change))
        })
        .collect()
}

/// A revision as a link label shows it: a commit id's first 7 characters.
fn short(rev: &str) -> &str {
    if rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit()) {
        &rev[..7]
    } else {
        rev
    }
}

/// The pull-request body's section: a heading and a line per update with links; empty when
/// none has any. Names and tags are code spans or escaped text; only checked URLs are linked.
pub fn markdown(updates: &[Update], app: &AppChanges) -> String {
    let rows = linked(updates, app);
    if rows.is_empty() {
        return String::new();
    }
    let mut out = String::from("### What changed in the app\n\n");
    for (u, c) in rows {
        let repo = c
            .source
            .split_once("://")
            .map_or(c.source.as_str(), |(_, r)| r);
        let mut line = format!(
            "- {} {} → {}: {}",
            md_code(&u.policy),
            md_code(&u.from),
            md_code(&u.to),
            md_link(&md_text(repo), &c.source)
        );
        match (&c.compare, &c.commit, &c.from_revision, &c.to_revision) {
            (Some(url), _, Some(from), Some(to)) => {
                let label = md_text(&format!("compare {}...{}", short(from), short(to)));
                let _ = write!(line, " · {}", md_link(&label, url));
            }
            (None, Some(url), _, Some(to)) => {
                let label = md_text(&format!("commit {}", short(to)));
                let _ = write!(line, " · {}", md_link(&label, url));
            }
            (_, _, _, Some(to)) => {
                let _ = write!(line, " · revision {}", md_code(to));
            }
            _ => {}
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The commit message's paragraph: a line per update with links, each URL on its own line;
/// empty when none has any.
pub fn commit_text(updates: &[Update], app: &AppChanges) -> String {
    let rows = linked(updates, app);
    if rows.is_empty() {
        return String::new();
    }
    let mut out = String::from("What changed in the app:\n");
    for (u, c) in rows {
        let _ = writeln!(
            out,
            "- {} {} -> {}",
            text_line(&u.policy),
            text_line(&u.from),
            text_line(&u.to)
        );
        let _ = writeln!(out, "  source: {}", c.source);
        if let Some(url) = &c.compare {
            let _ = writeln!(out, "  compare: {url}");
        } else if let Some(url) = &c.commit {
            let _ = writeln!(out, "  commit: {url}");
        } else if let Some(to) = &c.to_revision {
            let _ = writeln!(out, "  revision: {to}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "0123456789abcdef0123456789abcdef01234567";
    const NEW: &str = "fedcba9876543210fedcba9876543210fedcba98";

    fn update(policy: &str) -> Update {
        Update {
            policy: policy.into(),
            image: format!("ghcr.io/acme/{policy}"),
            file: "a.yaml".into(),
            line: 3,
            from: "1.0.0".into(),
            to: "1.1.0".into(),
            digest: None,
            note: None,
        }
    }

    fn gitea_hint() -> ForgeHint {
        ForgeHint {
            host: "git.example.com".into(),
            kind: ForgeKind::Gitea,
        }
    }

    #[test]
    fn compare_urls_per_forge_shape() {
        let c = app_change("https://github.com/acme/web", Some(OLD), Some(NEW), None).unwrap();
        assert_eq!(c.source, "https://github.com/acme/web");
        assert_eq!(
            c.compare.as_deref(),
            Some(format!("https://github.com/acme/web/compare/{OLD}...{NEW}").as_str())
        );
        assert_eq!(c.commit, None);
        let c = app_change(
            "https://gitlab.example/group/sub/proj",
            Some("v1"),
            Some("v2"),
            None,
        )
        .unwrap();
        assert_eq!(
            c.compare.as_deref(),
            Some("https://gitlab.example/group/sub/proj/-/compare/v1...v2")
        );
        let c = app_change(
            "https://gitlab.com/g/p/-/tree/main",
            Some("a1"),
            Some("b2"),
            None,
        )
        .unwrap();
        assert_eq!(
            c.compare.as_deref(),
            Some("https://gitlab.com/g/p/-/compare/a1...b2")
        );
        let hint = gitea_hint();
        let c = app_change(
            "https://git.example.com/acme/web",
            Some("a1"),
            Some("b2"),
            Some(&hint),
        )
        .unwrap();
        assert_eq!(
            c.compare.as_deref(),
            Some("https://git.example.com/acme/web/compare/a1...b2")
        );
        let c = app_change("https://codeberg.org/o/r", Some("a1"), Some("b2"), None).unwrap();
        assert_eq!(
            c.compare.as_deref(),
            Some("https://codeberg.org/o/r/compare/a1...b2")
        );
    }

    #[test]
    fn without_an_old_revision_the_new_commit_is_linked() {
        let c = app_change("https://github.com/acme/web", None, Some(NEW), None).unwrap();
        assert_eq!(c.compare, None);
        assert_eq!(
            c.commit.as_deref(),
            Some(format!("https://github.com/acme/web/commit/{NEW}").as_str())
        );
        let c = app_change("https://gitlab.com/g/p", Some("x"), Some("x"), None).unwrap();
        assert_eq!(
            c.commit.as_deref(),
            Some("https://gitlab.com/g/p/-/commit/x")
        );
        let c = app_change("https://github.com/acme/web", Some(OLD), None, None).unwrap();
        assert_eq!(
            (c.compare, c.commit),
            (None, None),
            "no new revision: the source only"
        );
    }

    #[test]
    fn an_unknown_host_links_the_source_only() {
        let c = app_change(
            "https://code.example.org/team/app",
            Some("a"),
            Some("b"),
            None,
        )
        .unwrap();
        assert_eq!(c.source, "https://code.example.org/team/app");
        assert_eq!((c.compare, c.commit), (None, None));
        assert_eq!(c.to_revision.as_deref(), Some("b"));
        // The delivery forge's host, but a forge whose shape is not known here.
        let hint = ForgeHint {
            host: "bitbucket.example.com".into(),
            kind: ForgeKind::BitbucketDc,
        };
        let c = app_change(
            "https://bitbucket.example.com/o/r",
            Some("a"),
            Some("b"),
            Some(&hint),
        )
        .unwrap();
        assert_eq!(c.compare, None);
    }

    #[test]
    fn source_urls_are_normalised() {
        let repo = |s: &str| source_repository(s, None).map(|(u, _)| u);
        for s in [
            "git@github.com:acme/web.git",
            "https://github.com/acme/web.git",
            "https://github.com/acme/web/",
            "https://github.com/acme/web.git/",
            "ssh://git@github.com/acme/web.git",
            "git+https://github.com/acme/web",
            "https://token:x-oauth@github.com/acme/web",
            "https://GitHub.com/acme/web/tree/main/sub?x=1#frag",
            "  https://github.com/acme/web  ",
        ] {
            assert_eq!(
                repo(s).as_deref(),
                Some("https://github.com/acme/web"),
                "{s}"
            );
        }
        assert_eq!(
            repo("http://127.0.0.1:3000/o/r").as_deref(),
            Some("http://127.0.0.1:3000/o/r")
        );
        assert_eq!(
            repo("ssh://git@gitlab.example:2222/g/p.git").as_deref(),
            Some("https://gitlab.example/g/p"),
            "an SSH port is not the web's"
        );
    }

    #[test]
    fn hostile_values_never_make_a_link() {
        for bad in [
            "javascript:alert(1)",
            "javascript://github.com/%0aalert(1)",
            "data:text/html,<script>alert(1)</script>",
            "file:///etc/passwd",
            "ftp://github.com/acme/web",
            "https://github.com/acme/web\n[x](javascript:alert(1))",
            "https://github.com/acme/web)[x](javascript:alert(1)",
            "https://github.com/acme/we b",
            "https://github.com/acme/<script>",
            "https://github.com/../etc",
            "https://gith\u{202e}ub.com/acme/web",
            "https://github.com",
            "https:///acme/web",
            "https://-x.com/a/b",
            "https://github.com/acme",
            "",
        ] {
            assert_eq!(source_repository(bad, None), None, "{bad:?}");
            assert_eq!(app_change(bad, Some(OLD), Some(NEW), None), None, "{bad:?}");
        }
        for bad in [
            "a\nb",
            "../x",
            "-x",
            ".x",
            "a b",
            "a/b",
            "a)b",
            "[x]",
            &"a".repeat(129),
        ] {
            assert_eq!(revision(bad), None, "{bad:?}");
        }
        assert_eq!(revision("v1.2.3_rc-1").as_deref(), Some("v1.2.3_rc-1"));
        // A hostile revision gives the source link and nothing more.
        let c = app_change(
            "https://github.com/acme/web",
            Some(OLD),
            Some("x)[y](javascript:alert(1)"),
            None,
        )
        .unwrap();
        assert_eq!((c.compare, c.commit, c.to_revision), (None, None, None));
    }

    #[test]
    fn markdown_and_commit_text() {
        let mut app = AppChanges::new();
        let web = update("web");
        app.insert(
            key(&web),
            app_change("https://github.com/acme/web", Some(OLD), Some(NEW), None).unwrap(),
        );
        let mut api = update("api");
        api.policy = "api|<b>\n# x".into();
        app.insert(
            key(&api),
            app_change("https://code.example.org/a/b", None, Some("v2"), None).unwrap(),
        );
        let none = update("db");
        let updates = [web.clone(), web, api, none];
        let md = markdown(&updates, &app);
        assert_eq!(
            md,
            format!(
                "### What changed in the app\n\n\
                 - `web` `1.0.0` → `1.1.0`: [github.com/acme/web](https://github.com/acme/web) · [compare 0123456...fedcba9](https://github.com/acme/web/compare/{OLD}...{NEW})\n\
                 - api\\|&lt;b&gt;\\\\n\\# x `1.0.0` → `1.1.0`: [code.example.org/a/b](https://code.example.org/a/b) · revision `v2`\n"
            )
        );
        let text = commit_text(&updates, &app);
        assert_eq!(
            text,
            format!(
                "What changed in the app:\n\
                 - web 1.0.0 -> 1.1.0\n  source: https://github.com/acme/web\n  compare: https://github.com/acme/web/compare/{OLD}...{NEW}\n\
                 - api|<b>\\n# x 1.0.0 -> 1.1.0\n  source: https://code.example.org/a/b\n  revision: v2\n"
            )
        );
        assert_eq!(markdown(&[update("db")], &app), "");
        assert_eq!(commit_text(&[], &app), "");
    }

    #[test]
    fn remote_hosts() {
        assert_eq!(
            remote_host("https://x@git.example.com:3000/o/r.git").as_deref(),
            Some("git.example.com")
        );
        assert_eq!(
            remote_host("git@github.com:o/r.git").as_deref(),
            Some("github.com")
        );
        assert_eq!(remote_host("ssh://git@h:22/o/r").as_deref(), Some("h"));
    }
}
