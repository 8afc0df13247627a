//! CI pipelines that run in containers, read with the YAML span scanner like every other
//! format:
//!
//! - GitHub Actions workflows (`.github/workflows/*.yml`/`.yaml`): `jobs.*.container` (a
//!   string), `jobs.*.container.image`, `jobs.*.services.*.image`, and
//!   `jobs.*.steps[].uses: docker://IMAGE` (the reference after `docker://`).
//! - GitLab CI (`.gitlab-ci.yml`/`.yaml`, and the files it includes by path, see
//!   [`gitlab_included`]): `image` (a string) and `image.name`, and each `services` entry (a
//!   string or its `name`), at the top level and in every job (`default` and hidden `.jobs`
//!   too).
//!
//! A value set by an expression or a variable (`${{ matrix.image }}`,
//! `$CI_REGISTRY_IMAGE:$TAG`) is no reference: it is a [`Problem`], skipped with why.

use std::collections::HashSet;
use std::path::{Component, Path as FsPath, PathBuf};

use super::scan::{Node, Path, Segment};
use super::{Format, Found, Parts, Problem, ProblemAbout, Site};

/// Whether `path` (relative to the repository) is a GitHub Actions workflow:
/// `.github/workflows/*.yml` or `*.yaml`.
pub fn is_github_workflow(path: &FsPath) -> bool {
    let parts: Vec<&str> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => s.to_str(),
            _ => None,
        })
        .collect();
    let n = parts.len();
    n >= 3
        && parts[n - 3] == ".github"
        && parts[n - 2] == "workflows"
        && (parts[n - 1].ends_with(".yml") || parts[n - 1].ends_with(".yaml"))
}

/// Whether the file is a GitLab CI pipeline: `.gitlab-ci.yml` (or `.yaml`).
pub fn is_gitlab_ci(path: &FsPath) -> bool {
    path.file_name()
        .is_some_and(|n| n == ".gitlab-ci.yml" || n == ".gitlab-ci.yaml")
}

/// Where sites and problems go.
pub struct Out<'a> {
    /// The sites found.
    pub sites: &'a mut Vec<Site>,
    /// Values that are no reference, with why.
    pub problems: &'a mut Vec<Problem>,
}

/// `found`, unless its value is set by a CI variable or expression (then a problem).
fn literal(found: Found, out: &mut Out) -> Option<Found> {
    if !found.value.contains('$') {
        return Some(found);
    }
    out.problems.push(Problem {
        line: found.line,
        message: format!(
            "{} {:?} is set by a CI variable or expression, so it is not rewritten",
            found.path, found.value
        ),
        about: ProblemAbout::Reference,
    });
    None
}

/// The local files a GitLab pipeline document includes: `include: PATH`, `include: [PATH,
/// {local: PATH}]`, `include: {local: PATH}`, as globs relative to the repository root (a
/// leading `/` is the root). Remote URLs, `project:`, `template:` and `component:` includes,
/// and paths holding variables, are not files of this repository.
fn local_includes(root: &Node) -> Vec<String> {
    let Some(include) = root.get("include") else {
        return Vec::new();
    };
    let items: Vec<&Node> = match include.as_sequence() {
        Some(items) => items.iter().collect(),
        None => vec![include],
    };
    items
        .into_iter()
        .filter_map(|item| match item.as_str() {
            Some(path) => Some(path),
            None => item.get("local").and_then(Node::as_str),
        })
        .filter(|p| !p.contains("://") && !p.contains('$') && !p.trim().is_empty())
        .map(|p| p.trim().trim_start_matches('/').to_owned())
        .collect()
}

/// The pipeline files among `files` (relative to the repository root): `.gitlab-ci.yml` at
/// the root, and every file it includes by path, and those files' includes in turn. `read`
/// gives a file's text (`None` when it cannot be read). Globs (`ci/*.yml`, `**`) match as
/// GitLab's do; an include that names no file in `files` is ignored.
pub fn gitlab_included(
    files: &[PathBuf],
    read: impl Fn(&FsPath) -> Option<String>,
) -> HashSet<PathBuf> {
    let mut out = HashSet::new();
    let mut queue: Vec<PathBuf> = files
        .iter()
        .filter(|f| f.parent() == Some(FsPath::new("")) && is_gitlab_ci(f))
        .cloned()
        .collect();
    while let Some(file) = queue.pop() {
        if !out.insert(file.clone()) {
            continue;
        }
        let Some(text) = read(&file) else { continue };
        let Ok(docs) = super::scan::parse_documents(&text) else {
            continue;
        };
        for pattern in docs
            .iter()
            .filter_map(|d| d.root.as_ref())
            .flat_map(local_includes)
        {
            let Ok(glob) = globset::GlobBuilder::new(&pattern)
                .literal_separator(true)
                .build()
            else {
                continue;
            };
            let glob = glob.compile_matcher();
            queue.extend(
                files
                    .iter()
                    .filter(|f| !out.contains(*f) && glob.is_match(f))
                    .cloned(),
            );
        }
    }
    out
}

fn whole(node: &Node, path: &Path, format: Format, out: &mut Out) {
    if node.is_null() {
        return;
    }
    if let Some(found) = node.to_found(path).and_then(|f| literal(f, out)) {
        out.sites.push(Site::whole(format, found));
    }
}

fn key(k: &Node) -> String {
    k.as_str().unwrap_or("?").to_owned()
}

/// The sites of a GitHub Actions workflow document.
pub fn github_sites(root: &Node, out: &mut Out) {
    const F: Format = Format::GitHubActions;
    let Some(jobs) = root.get("jobs").and_then(Node::as_mapping) else {
        return;
    };
    for (name, job) in jobs {
        let mut path = Path(vec![Segment::Key("jobs".into()), Segment::Key(key(name))]);
        if let Some(container) = job.get("container") {
            path.push(Segment::Key("container".into()));
            match container.get("image") {
                Some(image) => {
                    path.push(Segment::Key("image".into()));
                    whole(image, &path, F, out);
                    path.pop();
                }
                None => whole(container, &path, F, out),
            }
            path.pop();
        }
        if let Some(services) = job.get("services").and_then(Node::as_mapping) {
            for (service, spec) in services {
                if let Some(image) = spec.get("image") {
                    let mut p = path.clone();
                    p.push(Segment::Key("services".into()));
                    p.push(Segment::Key(key(service)));
                    p.push(Segment::Key("image".into()));
                    whole(image, &p, F, out);
                }
            }
        }
        let Some(steps) = job.get("steps").and_then(Node::as_sequence) else {
            continue;
        };
        for (i, step) in steps.iter().enumerate() {
            let Some(uses) = step.get("uses") else {
                continue;
            };
            let Some(value) = uses.as_str() else { continue };
            if !value.starts_with("docker://") {
                continue;
            }
            let mut p = path.clone();
            p.push(Segment::Key("steps".into()));
            p.push(Segment::Index(i));
            p.push(Segment::Key("uses".into()));
            if let Some(scalar) = uses.to_found(&p).and_then(|f| literal(f, out)) {
                out.sites.push(Site {
                    format: F,
                    policy: None,
                    keys: None,
                    line: scalar.line,
                    parts: Parts::Override {
                        scalar,
                        prefix: "docker://".into(),
                    },
                });
            }
        }
    }
}

/// Top-level keys of a GitLab pipeline that are not jobs (`default` is not a job, but holds
/// `image` and `services` as one).
const GITLAB_GLOBAL: [&str; 5] = ["variables", "stages", "include", "workflow", "spec"];

/// The sites of a GitLab CI pipeline document.
pub fn gitlab_sites(root: &Node, out: &mut Out) {
    gitlab_job(root, &Path::default(), out);
    let Some(entries) = root.as_mapping() else {
        return;
    };
    for (name, job) in entries {
        let name = key(name);
        if GITLAB_GLOBAL.contains(&name.as_str()) || job.as_mapping().is_none() {
            continue;
        }
        if matches!(name.as_str(), "image" | "services") {
            continue;
        }
        gitlab_job(job, &Path(vec![Segment::Key(name)]), out);
    }
}

/// `image` and `services` of one job (or of the top level).
fn gitlab_job(job: &Node, path: &Path, out: &mut Out) {
    const F: Format = Format::GitLabCi;
    let name_of = |node: &Node, path: &Path, out: &mut Out| {
        let mut p = path.clone();
        match node.get("name") {
            Some(name) => {
                p.push(Segment::Key("name".into()));
                whole(name, &p, F, out);
            }
            None if node.as_str().is_some() => whole(node, &p, F, out),
            None => {}
        }
    };
    if let Some(image) = job.get("image") {
        let mut p = path.clone();
        p.push(Segment::Key("image".into()));
        name_of(image, &p, out);
    }
    if let Some(services) = job.get("services").and_then(Node::as_sequence) {
        for (i, service) in services.iter().enumerate() {
            let mut p = path.clone();
            p.push(Segment::Key("services".into()));
            p.push(Segment::Index(i));
            name_of(service, &p, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::scan::parse_documents;

    fn summary(text: &str, f: fn(&Node, &mut Out)) -> Vec<(String, String, usize)> {
        let docs = parse_documents(text).unwrap();
        let (mut sites, mut problems) = (Vec::new(), Vec::new());
        let mut out = Out {
            sites: &mut sites,
            problems: &mut problems,
        };
        f(docs[0].root.as_ref().unwrap(), &mut out);
        for p in problems {
            assert!(p.message.contains("$"), "{p:?}");
        }
        sites
            .into_iter()
            .map(|s| {
                let f = s.parts.scalars()[0].clone();
                assert_eq!(crate::manifest::scan::line_at(text, f.span.start), f.line);
                (f.path, f.value, s.line)
            })
            .collect()
    }

    #[test]
    fn file_names() {
        assert!(is_github_workflow(FsPath::new(".github/workflows/ci.yml")));
        assert!(is_github_workflow(FsPath::new(
            "sub/.github/workflows/a.yaml"
        )));
        assert!(!is_github_workflow(FsPath::new(".github/dependabot.yml")));
        assert!(!is_github_workflow(FsPath::new("workflows/ci.yml")));
        assert!(is_gitlab_ci(FsPath::new(".gitlab-ci.yml")));
        assert!(!is_gitlab_ci(FsPath::new("gitlab-ci.yml")));
    }

    #[test]
    fn gitlab_includes_by_path_nested_and_globbed() {
        let files: Vec<PathBuf> = [
            ".gitlab-ci.yml",
            "ci/build.yml",
            "ci/jobs/a.yml",
            "ci/jobs/b.yaml",
            "ci/jobs/deep/c.yml",
            "ci/unused.yml",
            "sub/.gitlab-ci.yml",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        let read = |p: &FsPath| {
            Some(
                match p.to_str().unwrap() {
                    ".gitlab-ci.yml" => {
                        "include:\n  - local: /ci/build.yml\n  - https://x/y.yml\n  - \
                         project: a/b\n    file: c.yml\n  - template: Auto-DevOps.gitlab-ci.yml\n"
                    }
                    "ci/build.yml" => "include: 'ci/jobs/*.yml'\n",
                    "ci/jobs/a.yml" => "include: {local: '$CI_X/a.yml'}\n",
                    _ => "a: [\n",
                }
                .to_owned(),
            )
        };
        let mut got: Vec<String> = gitlab_included(&files, read)
            .into_iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        got.sort();
        assert_eq!(got, [".gitlab-ci.yml", "ci/build.yml", "ci/jobs/a.yml"]);
    }

    #[test]
    fn github_actions() {
        let text = "\
on: push
jobs:
  a:
    runs-on: ubuntu-latest
    container: node:20.1
    services:
      db:
        image: postgres:15.4   # pinned
      cache: {image: 'redis:7.2'}
    steps:
      - uses: actions/checkout@v4
      - uses: \"docker://alpine:3.19\"
      - run: echo
  b:
    container:
      image: ghcr.io/acme/build:1.0
      credentials: {username: x}
";
        assert_eq!(
            summary(text, github_sites),
            [
                ("jobs.a.container".into(), "node:20.1".into(), 5),
                ("jobs.a.services.db.image".into(), "postgres:15.4".into(), 8),
                ("jobs.a.services.cache.image".into(), "redis:7.2".into(), 9),
                (
                    "jobs.a.steps[1].uses".into(),
                    "docker://alpine:3.19".into(),
                    12
                ),
                (
                    "jobs.b.container.image".into(),
                    "ghcr.io/acme/build:1.0".into(),
                    16
                ),
            ]
        );
    }

    #[test]
    fn gitlab_ci() {
        let text = "\
image: ruby:3.2
services: [postgres:15]
variables: {image: not-this:1}
default:
  image: {name: ruby:3.3, entrypoint: ['']}
test:
  image: python:3.12-slim
  services:
    - name: redis:7.2
      alias: cache
    - docker:24-dind
.hidden:
  image:
";
        assert_eq!(
            summary(text, gitlab_sites),
            [
                ("image".into(), "ruby:3.2".into(), 1),
                ("services[0]".into(), "postgres:15".into(), 2),
                ("default.image.name".into(), "ruby:3.3".into(), 5),
                ("test.image".into(), "python:3.12-slim".into(), 7),
                ("test.services[0].name".into(), "redis:7.2".into(), 9),
                ("test.services[1]".into(), "docker:24-dind".into(), 11),
            ]
        );
    }
}
