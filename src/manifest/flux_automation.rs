//! Flux `ImageUpdateAutomation` objects (`image.toolkit.fluxcd.io`, v1beta1, v1beta2 and v1,
//! which share these fields) read as the repo's own delivery settings: the branch checked out
//! and pushed, the commit author and message template, the directory it updates, whether it is
//! suspended, and which ImagePolicies it uses. Fields this tool cannot honour the way Flux does
//! are a [`Problem`] naming the line, never silently ignored.

use std::collections::BTreeMap;

use super::flux::GROUP;
use super::scan::{self, Node};
use super::{Problem, ProblemAbout};

/// A Flux ImageUpdateAutomation, as the repo declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Automation {
    /// `metadata.namespace`, when the file says.
    pub namespace: Option<String>,
    /// `metadata.name`.
    pub name: String,
    /// 1-based line of the object.
    pub line: usize,
    /// `spec.git.checkout.ref.branch`.
    pub checkout_branch: Option<String>,
    /// `spec.git.commit.author.name`.
    pub author_name: Option<String>,
    /// `spec.git.commit.author.email`.
    pub author_email: Option<String>,
    /// `spec.git.commit.messageTemplate` and the line of its first character (for a `|` or
    /// `>` block scalar, the parser's line is already that of the first content line).
    pub message_template: Option<(String, usize)>,
    /// `spec.git.push.branch`.
    pub push_branch: Option<String>,
    /// `spec.git.push.refspec`, reduced to the branch it pushes to (`SRC:refs/heads/B`).
    pub push_refspec_branch: Option<String>,
    /// `spec.update.path`, normalised: relative to the repo root, no `./`, no trailing `/`;
    /// empty for the whole repo.
    pub update_path: String,
    /// `spec.suspend`.
    pub suspend: bool,
    /// `spec.policySelector.matchLabels`; `None` selects every ImagePolicy of the namespace.
    pub policy_selector: Option<BTreeMap<String, String>>,
}

impl Automation {
    /// `NS/NAME` (or `NAME`), as reports name it.
    pub fn id(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }

    /// Whether the automation's `update.path` holds `file` (repo-relative, `/`-separated).
    pub fn covers(&self, file: &str) -> bool {
        within(&self.update_path, file)
    }

    /// Whether `labels` (an ImagePolicy's `metadata.labels`) pass the `policySelector`.
    pub fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        self.policy_selector
            .as_ref()
            .is_none_or(|want| want.iter().all(|(k, v)| labels.get(k) == Some(v)))
    }
}

/// Whether `dir` (normalised, empty for the root) is `file` or one of its ancestors.
pub fn within(dir: &str, file: &str) -> bool {
    dir.is_empty()
        || file == dir
        || file
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// A repo-relative path as Flux writes it (`./clusters/dev/`, `clusters/dev`, `.`, `/`)
/// reduced to `clusters/dev` (empty for the root); `None` when it leaves the repo (`..`).
pub fn normalise_path(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

fn str_at<'a>(node: &'a Node, keys: &[&str]) -> Option<&'a str> {
    node.get_path(keys)
        .filter(|n| !n.is_null())
        .and_then(Node::as_str)
}

/// Read `root` as an ImageUpdateAutomation. `Ok(None)` when it is not one; a [`Problem`] when
/// it is one whose settings cannot be honoured as Flux would.
pub fn read(root: &Node) -> Result<Option<Automation>, Problem> {
    let (api, kind) = scan::api_version_kind(root);
    if !scan::in_group(api, GROUP) || kind != Some("ImageUpdateAutomation") {
        return Ok(None);
    }
    let name = str_at(root, &["metadata", "name"]).unwrap_or_default();
    let problem = |line: usize, what: String| Problem {
        line,
        message: format!("ImageUpdateAutomation {name}: {what}"),
        about: ProblemAbout::FluxObject,
    };
    if name.is_empty() {
        return Err(problem(root.line, "no metadata.name".into()));
    }
    let line_of = |keys: &[&str]| root.get_path(keys).map_or(root.line, |n| n.line);
    if let Some(strategy) = str_at(root, &["spec", "update", "strategy"]) {
        if strategy != "Setters" {
            return Err(problem(
                line_of(&["spec", "update", "strategy"]),
                format!("update.strategy {strategy:?} is not Setters, the only strategy Flux has"),
            ));
        }
    }
    let raw_path = str_at(root, &["spec", "update", "path"]).unwrap_or(".");
    let update_path = normalise_path(raw_path).ok_or_else(|| {
        problem(
            line_of(&["spec", "update", "path"]),
            format!("update.path {raw_path:?} leaves the repository"),
        )
    })?;
    let suspend = match root.get_path(&["spec", "suspend"]).and_then(Node::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(problem(
                line_of(&["spec", "suspend"]),
                format!("suspend is {other:?}, expected true or false"),
            ))
        }
    };
    let policy_selector = match root.get_path(&["spec", "policySelector"]) {
        None => None,
        Some(sel) if sel.is_null() => None,
        Some(sel) => {
            if sel.get("matchExpressions").is_some() {
                return Err(problem(
                    sel.line,
                    "policySelector.matchExpressions is not read; use matchLabels".into(),
                ));
            }
            let mut labels = BTreeMap::new();
            for (k, v) in sel
                .get("matchLabels")
                .and_then(Node::as_mapping)
                .unwrap_or_default()
            {
                match (k.as_str(), v.as_str()) {
                    (Some(k), Some(v)) => {
                        labels.insert(k.to_string(), v.to_string());
                    }
                    _ => {
                        return Err(problem(
                            k.line,
                            "policySelector.matchLabels must map strings to strings".into(),
                        ))
                    }
                }
            }
            Some(labels)
        }
    };
    let push_refspec_branch = match str_at(root, &["spec", "git", "push", "refspec"]) {
        None => None,
        Some(spec) => {
            let dst = spec
                .trim_start_matches('+')
                .rsplit(':')
                .next()
                .unwrap_or("");
            match dst.strip_prefix("refs/heads/").filter(|b| !b.is_empty()) {
                Some(b) => Some(b.to_string()),
                None => {
                    return Err(problem(
                        line_of(&["spec", "git", "push", "refspec"]),
                        format!(
                            "push.refspec {spec:?} does not push to a branch (refs/heads/NAME); \
                             only branch destinations can be pushed"
                        ),
                    ))
                }
            }
        }
    };
    let template = root
        .get_path(&["spec", "git", "commit", "messageTemplate"])
        .filter(|n| !n.is_null());
    Ok(Some(Automation {
        namespace: str_at(root, &["metadata", "namespace"]).map(str::to_owned),
        name: name.to_string(),
        line: root.line,
        checkout_branch: str_at(root, &["spec", "git", "checkout", "ref", "branch"])
            .map(str::to_owned),
        author_name: str_at(root, &["spec", "git", "commit", "author", "name"]).map(str::to_owned),
        author_email: str_at(root, &["spec", "git", "commit", "author", "email"])
            .map(str::to_owned),
        message_template: template.and_then(|n| n.as_str().map(|s| (s.to_string(), n.line))),
        push_branch: str_at(root, &["spec", "git", "push", "branch"]).map(str::to_owned),
        push_refspec_branch,
        update_path,
        suspend,
        policy_selector,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::scan::parse_documents;

    fn read_all(text: &str) -> Vec<Result<Option<Automation>, Problem>> {
        parse_documents(text)
            .unwrap()
            .iter()
            .filter_map(|d| d.root.as_ref())
            .map(read)
            .collect()
    }

    // The example of Flux's image automation guide.
    const GUIDE: &str = "\
apiVersion: image.toolkit.fluxcd.io/v1beta2
kind: ImageUpdateAutomation
metadata:
  name: flux-system
  namespace: flux-system
spec:
  interval: 30m
  sourceRef:
    kind: GitRepository
    name: flux-system
  git:
    checkout:
      ref:
        branch: main
    commit:
      author:
        email: fluxcdbot@users.noreply.github.com
        name: fluxcdbot
      messageTemplate: '{{range .Changed.Changes}}{{print .OldValue}} -> {{println .NewValue}}{{end}}'
    push:
      branch: image-updates
  update:
    path: ./clusters/my-cluster
    strategy: Setters
  policySelector:
    matchLabels:
      app: podinfo
";

    #[test]
    fn reads_the_guide_example() {
        let all = read_all(GUIDE);
        let Ok(Some(a)) = &all[0] else {
            panic!("{all:?}")
        };
        assert_eq!(a.id(), "flux-system/flux-system");
        assert_eq!(a.checkout_branch.as_deref(), Some("main"));
        assert_eq!(a.author_name.as_deref(), Some("fluxcdbot"));
        assert_eq!(
            a.author_email.as_deref(),
            Some("fluxcdbot@users.noreply.github.com")
        );
        let (template, line) = a.message_template.clone().unwrap();
        assert!(template.starts_with("{{range .Changed.Changes}}"));
        assert_eq!(line, 19);
        assert_eq!(a.push_branch.as_deref(), Some("image-updates"));
        assert_eq!(a.update_path, "clusters/my-cluster");
        assert!(!a.suspend);
        assert!(a.covers("clusters/my-cluster/apps/podinfo.yaml"));
        assert!(!a.covers("clusters/my-cluster-2/podinfo.yaml"));
        assert!(!a.covers("clusters/other/podinfo.yaml"));
        let mut labels = BTreeMap::new();
        assert!(!a.selects(&labels));
        labels.insert("app".to_string(), "podinfo".to_string());
        assert!(a.selects(&labels));
    }

    #[test]
    fn paths_normalise_and_defaults_apply() {
        assert_eq!(normalise_path("./").as_deref(), Some(""));
        assert_eq!(normalise_path(".").as_deref(), Some(""));
        assert_eq!(normalise_path("./a//b/").as_deref(), Some("a/b"));
        assert_eq!(normalise_path("a/../b").as_deref(), Some("b"));
        assert_eq!(normalise_path("../x"), None);
        let text = "\
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageUpdateAutomation
metadata: {name: all}
spec:
  suspend: true
  git: {push: {refspec: 'refs/heads/main:refs/heads/auto'}}
";
        let all = read_all(text);
        let Ok(Some(a)) = &all[0] else { panic!() };
        assert_eq!(a.update_path, "");
        assert!(a.covers("anything/at/all.yaml"));
        assert!(a.suspend);
        assert_eq!(a.push_refspec_branch.as_deref(), Some("auto"));
        assert!(a.selects(&BTreeMap::new()));
    }

    #[test]
    fn settings_that_cannot_be_honoured_are_problems_with_their_line() {
        let text = "\
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageUpdateAutomation
metadata: {name: a}
spec:
  update: {path: ./x, strategy: Other}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageUpdateAutomation
metadata: {name: b}
spec:
  git:
    push:
      refspec: HEAD:refs/for/main
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageUpdateAutomation
metadata: {name: c}
spec:
  policySelector:
    matchExpressions: [{key: app, operator: In, values: [x]}]
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageUpdateAutomation
metadata: {name: d}
spec: {update: {path: ../elsewhere}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: {name: e}
";
        let all = read_all(text);
        let e = all[0].as_ref().unwrap_err();
        assert!(e.message.contains("\"Other\""), "{e:?}");
        assert_eq!(e.line, 5);
        let e = all[1].as_ref().unwrap_err();
        assert!(e.message.contains("refs/for/main"), "{e:?}");
        assert_eq!(e.line, 13);
        let e = all[2].as_ref().unwrap_err();
        assert!(e.message.contains("matchExpressions"), "{e:?}");
        assert_eq!(e.line, 20);
        let e = all[3].as_ref().unwrap_err();
        assert!(e.message.contains("leaves the repository"), "{e:?}");
        assert_eq!(all[4], Ok(None));
    }
}
