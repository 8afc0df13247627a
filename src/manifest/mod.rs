//! Manifest formats: where image references live in YAML files and how they are rewritten.
//!
//! Discovery returns [`Found`] values carrying the exact byte span of each scalar, so that a
//! rewrite is a splice of the original bytes ([`edit::apply_edits`]) and never a reserialisation.
//! [`sites::scan_file`] is the one entry point per file: it returns every [`Site`] (an image
//! reference, possibly spread over several scalars) in every format, plus the Flux image
//! policies the file declares.
//!
//! [`scan`] holds the generic YAML walking; [`k8s`], [`markers`], [`kustomize`], [`helm`],
//! [`compose`], [`argocd`], [`flux`], [`ci_yaml`] and [`image_volume`] the formats;
//! [`dockerfile`] a line-based format of its own; [`edit`] the splicing, verification and
//! atomic writes; and [`files`] which files are read at all.

pub mod argocd;
pub mod argocd_annotations;
pub mod argocd_crd;
pub mod argocd_writeback;
pub mod charts; // issue 18: Helm chart versions
pub mod ci_yaml;
pub mod compose;
pub mod dockerfile;
pub mod edit;
pub mod files;
pub mod flux;
pub mod flux_automation; // issue 16: Flux ImageUpdateAutomation objects
pub mod flux_v1; // issue 21: Flux v1 annotations as policies
pub mod helm;
pub mod image_volume;
pub mod k8s;
pub mod kustomize;
pub mod kustomize_patch; // issue 16: overlays patching Flux ImagePolicies
pub mod locks; // issue 21: lock entries and Flux v1 lock annotations, written byte-exactly
pub mod markers;
pub mod scan;
pub mod sites;

use std::fmt;
use std::ops::Range;

pub use flux::{FluxPolicy, FluxPolicyKind, FluxRepository, FluxSortOrder};
pub use sites::scan_file;

/// Splice `edits` into the text of the file at `path`: a Dockerfile's references with
/// [`dockerfile::apply_edits`], a YAML file's scalars with [`edit::apply_edits`]. Both verify
/// the result by scanning it again.
pub fn apply_file_edits(
    path: &std::path::Path,
    text: &str,
    edits: &[edit::Edit],
) -> Result<String, ManifestError> {
    if dockerfile::is_dockerfile(path) {
        dockerfile::apply_edits(text, edits)
    } else {
        edit::apply_edits(text, edits)
    }
}

/// Whether the file at `path` is read whatever its bytes hold: its references are not
/// written under an `image` key (a Dockerfile's `FROM`, a workflow's `container:`).
pub fn always_scanned(path: &std::path::Path) -> bool {
    dockerfile::is_dockerfile(path)
        || ci_yaml::is_github_workflow(path)
        || ci_yaml::is_gitlab_ci(path)
}

/// One image reference (or part of one) found in a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// 1-based line of the scalar
    pub line: usize,
    /// Byte range of the whole scalar token in the file, quotes included
    pub span: Range<usize>,
    /// The decoded scalar value (e.g. "ghcr.io/acme/web:1.2.0")
    pub value: String,
    /// Where it sits, for messages: e.g. `spec.template.spec.containers[0].image`
    pub path: String,
}

/// Which format a [`Site`] was found by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Format {
    /// `image:` of a Kubernetes container (`containers`, `initContainers`, `ephemeralContainers`).
    K8s,
    /// A Flux setter marker comment (`# {"$imagepolicy": "NS:NAME[:field]"}`).
    Marker,
    /// A kustomization's `images:` entry.
    Kustomize,
    /// Helm values (`values*.yaml`, a HelmRelease's `spec.values`, an Argo CD `valuesObject`).
    Helm,
    /// docker-compose `services.*.image`.
    Compose,
    /// An Argo CD Application's `kustomize.images` or `helm.parameters`.
    ArgoCd,
    /// A Dockerfile's (or Containerfile's) `FROM` image, or the ARG default a `FROM` uses.
    Dockerfile,
    /// A GitHub Actions workflow's job `container`, `services.*.image`, `uses: docker://`.
    GitHubActions,
    /// A GitLab CI pipeline's `image` and `services`.
    GitLabCi,
    /// A Kubernetes image volume's `volumes[].image.reference`.
    ImageVolume,
    /// Issue 18: a Flux HelmRelease's `spec.chart.spec.version`.
    HelmRelease,
    /// Issue 18: a Flux OCIRepository's `spec.ref.tag` (or `semver`).
    OciRepository,
    /// Issue 18: an Argo CD Application source's `targetRevision` for a Helm chart.
    ArgoCdChart,
    /// Issue 18: a kustomization's `helmCharts[].version`.
    KustomizeHelmChart,
    /// Issue 18: a `Chart.yaml`'s `dependencies[].version`.
    ChartDependency,
}

impl Format {
    /// The name shown in reports: `k8s`, `marker`, `kustomize`, `helm`, `compose`, `argocd`,
    /// `dockerfile`, `github-actions`, `gitlab-ci`, `image-volume`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::K8s => "k8s",
            Format::Marker => "marker",
            Format::Kustomize => "kustomize",
            Format::Helm => "helm",
            Format::Compose => "compose",
            Format::ArgoCd => "argocd",
            Format::Dockerfile => "dockerfile",
            Format::GitHubActions => "github-actions",
            Format::GitLabCi => "gitlab-ci",
            Format::ImageVolume => "image-volume",
            Format::HelmRelease => "helmrelease",
            Format::OciRepository => "ocirepository",
            Format::ArgoCdChart => "argocd-chart",
            Format::KustomizeHelmChart => "kustomize-helmchart",
            Format::ChartDependency => "chart-dependency",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The policy a Flux marker names: `NS:NAME` of `# {"$imagepolicy": "NS:NAME[:field]"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PolicyRef {
    /// The namespace part (Flux's ImagePolicy namespace).
    pub namespace: String,
    /// The policy name: an `images[].name`, or a Flux ImagePolicy's name.
    pub name: String,
}

/// One image reference in a file, possibly spread over several scalars.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// The format that found it; [`Format::Marker`] whenever a marker names its policy.
    pub format: Format,
    /// The policy named by the file itself (a Flux marker); `None` otherwise.
    pub policy: Option<PolicyRef>,
    /// Index of the [`ScanOptions::helm`] entry (for [`Format::Helm`]) or
    /// [`ScanOptions::argocd_helm_params`] entry (for [`Format::ArgoCd`]) whose key paths found
    /// it, when configured keys found it; `None` for the built-in shapes.
    pub keys: Option<usize>,
    /// 1-based line for reports: the tag scalar's line if any, else the first scalar's.
    pub line: usize,
    /// The scalars holding the reference.
    pub parts: Parts,
}

impl Site {
    /// A whole reference (`repo:tag`) in one scalar, found by `format`, no policy named.
    pub fn whole(format: Format, found: Found) -> Site {
        Site {
            format,
            policy: None,
            keys: None,
            line: found.line,
            parts: Parts::Whole(found),
        }
    }
}

/// The scalars of a [`Site`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parts {
    /// One scalar holding `name[:tag][@digest]` (containers, compose, whole-reference markers,
    /// `image: "repo:tag"` in Helm values). Rewrite it with the whole new reference.
    Whole(Found),
    /// Separate scalars; any may be absent. `name` is the repository (the full name when
    /// `registry` is `None`). Rewrite each present part with its new value.
    ///
    /// For [`Format::Kustomize`], `name` is the entry's `newName` when it has one, else its
    /// `name`, which is kustomize's match key: rewrite only a `newName`, never the `name` key
    /// (check `name.path` ends in `.newName`). `tag` is `newTag`, `digest` is `digest`.
    Split {
        /// `registry` (Helm), when written separately.
        registry: Option<Found>,
        /// The repository (or the full name without tag).
        name: Option<Found>,
        /// The tag.
        tag: Option<Found>,
        /// The digest (`sha256:...`).
        digest: Option<Found>,
    },
    /// An override string that prefixes a reference, as Argo CD's `kustomize.images` entries
    /// `name=newName:tag` (prefix `name=`) or `name:tag` (empty prefix). The reference is
    /// `scalar.value[prefix.len()..]`; rewrite the scalar with `prefix + new reference`.
    Override {
        /// The whole scalar.
        scalar: Found,
        /// What precedes the reference in the value (`"name="` or `""`).
        prefix: String,
    },
}

impl Parts {
    /// Every scalar of the site, in source order.
    pub fn scalars(&self) -> Vec<&Found> {
        let mut v: Vec<&Found> = match self {
            Parts::Whole(f) => vec![f],
            Parts::Override { scalar, .. } => vec![scalar],
            Parts::Split {
                registry,
                name,
                tag,
                digest,
            } => [registry, name, tag, digest]
                .into_iter()
                .flatten()
                .collect(),
        };
        v.sort_by_key(|f| f.span.start);
        v
    }

    /// The tag scalar if split, else the single scalar (the scalar to point reports at).
    fn report_line(&self) -> usize {
        match self {
            Parts::Split { tag: Some(t), .. } => t.line,
            _ => self.scalars().first().map_or(0, |f| f.line),
        }
    }
}

/// Key paths that name the parts of one image in Helm values (`image.registry`,
/// `image.repository`, `image.tag`, `image.digest`), from `images[].helm` in the config; for
/// Argo CD `helm.parameters` they are parameter names. Paths are `.`-separated keys, with
/// `[N]` for sequence items (`sidecars[0].image.tag`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HelmKeys {
    /// Path of the registry host.
    pub registry: Option<String>,
    /// Path of the repository.
    pub repository: Option<String>,
    /// Path of the tag.
    pub tag: Option<String>,
    /// Path of the digest.
    pub digest: Option<String>,
    /// Path of one key holding the whole reference (`ghcr.io/acme/web:1.2.3`), as Argo CD Image
    /// Updater's `helm.image-spec` names it; when given, the other paths are not used.
    pub spec: Option<String>,
}

/// What [`scan_file`] looks for beyond the built-in shapes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanOptions {
    /// Helm values key paths, from the config's `images[].helm`.
    pub helm: Vec<HelmKeys>,
    /// Argo CD `helm.parameters` names, from the config's `images[].helm`.
    pub argocd_helm_params: Vec<HelmKeys>,
    /// Issue 18: look for chart versions ([`charts`]); set when the config has `charts:`.
    pub charts: bool,
}

/// Something in a file worth reporting that is not a site: a marker that is malformed or
/// attached to nothing, a Flux object that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line.
    pub line: usize,
    /// What is wrong, for the report's `skipped` reason.
    pub message: String,
    /// What it is about.
    pub about: ProblemAbout,
}

/// What a [`Problem`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemAbout {
    /// An image policy marker comment.
    Marker,
    /// A Flux ImagePolicy or ImageRepository object.
    FluxObject,
    /// An image reference that cannot be followed (a Dockerfile `FROM` whose ARG has no
    /// default, say).
    Reference,
}

/// Everything [`scan_file`] found in one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileScan {
    /// Image references, in source order; no two share a scalar.
    pub sites: Vec<Site>,
    /// Flux ImagePolicy objects declared in the file (image joined from an ImageRepository in
    /// the same file; see [`flux::join`] for the others).
    pub flux_policies: Vec<FluxPolicy>,
    /// Flux ImageRepository objects declared in the file.
    pub flux_repositories: Vec<FluxRepository>,
    /// Markers and Flux objects that could not be used, with why.
    pub problems: Vec<Problem>,
    /// Argo CD Applications with Image Updater annotations, or why their annotations cannot
    /// be honoured (argocd-image-updater; read by `crate::argocd_objects`).
    pub argocd_apps: Vec<Result<argocd_crd::ArgoObject, argocd_annotations::AnnotationError>>,
    /// Workloads and HelmReleases with Flux v1 annotations (issue 21; read by
    /// `crate::flux_v1`).
    pub flux_v1: Vec<flux_v1::Workload>,
    /// Issue 18: chart versions ([`charts`]), when [`ScanOptions::charts`] asks for them.
    pub charts: Vec<charts::ChartSite>,
    /// Issue 18: Flux HelmRepository objects, when [`ScanOptions::charts`] asks for them.
    pub helm_repositories: Vec<charts::HelmRepositoryObject>,
}

/// Everything that can go wrong while reading, locating or rewriting manifests.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The text is not valid YAML.
    #[error("invalid YAML at line {line}, column {column}: {message}")]
    Yaml {
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column (in characters) of the problem.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// The text parses, but only because a Go template's `{{ ... }}` reads as nested flow
    /// mappings: it is a template (Helm, say), not a manifest.
    #[error("not a plain YAML manifest: template braces `{{{{` at line {line}, column {column}")]
    Template {
        /// 1-based line of the `{{`.
        line: usize,
        /// 1-based column of the `{{`.
        column: usize,
    },
    /// A mapping holds the same key twice. Readers disagree on which value counts (the last,
    /// the first, or an error), so the file is left alone rather than half-rewritten.
    #[error(
        "duplicate mapping key {key} at line {line}, column {column} (first at line \
         {first_line}): which value counts is ambiguous, so the file is left alone"
    )]
    DuplicateKey {
        /// 1-based line of the second occurrence.
        line: usize,
        /// 1-based column of the second occurrence.
        column: usize,
        /// The key, quoted, and shortened when long.
        key: String,
        /// 1-based line of the first occurrence.
        first_line: usize,
    },
    /// An edit that cannot be applied (overlapping, out of range, not on a scalar, ...).
    #[error("cannot apply edit at bytes {start}..{end}: {reason}")]
    BadEdit {
        /// Start byte of the edit's span.
        start: usize,
        /// End byte of the edit's span.
        end: usize,
        /// Why it was refused.
        reason: String,
    },
    /// The spliced text does not parse to the original document with only the edited scalars
    /// changed; nothing should be written.
    #[error("edit verification failed at line {line}: {detail}")]
    Verify {
        /// 1-based line, in the edited text, where the difference shows.
        line: usize,
        /// What differed.
        detail: String,
    },
    /// A `paths`/`exclude` glob does not compile.
    #[error("invalid glob {glob:?}: {message}")]
    Glob {
        /// The glob as written.
        glob: String,
        /// Why it is invalid.
        message: String,
    },
    /// Walking the directory tree failed.
    #[error("cannot list manifest files: {message}")]
    Walk {
        /// The walker's message, including the path involved.
        message: String,
    },
}

impl ManifestError {
    /// The error for the key `again`, equal to the earlier key `first` of the same mapping.
    pub(crate) fn duplicate_key(again: &scan::Node, first: &scan::Node) -> ManifestError {
        const SHOWN: usize = 60;
        let value = again.as_str().unwrap_or_default();
        let mut key = format!("{:?}", value.chars().take(SHOWN).collect::<String>());
        if value.chars().nth(SHOWN).is_some() {
            key.push_str(&format!(
                " (first {SHOWN} of {} characters)",
                value.chars().count()
            ));
        }
        ManifestError::DuplicateKey {
            line: again.line,
            column: again.column,
            key,
            first_line: first.line,
        }
    }

    /// The 1-based line the error points at, when it points at one.
    pub fn line(&self) -> Option<usize> {
        match self {
            ManifestError::Yaml { line, .. }
            | ManifestError::Template { line, .. }
            | ManifestError::DuplicateKey { line, .. }
            | ManifestError::Verify { line, .. } => Some(*line),
            ManifestError::BadEdit { .. }
            | ManifestError::Glob { .. }
            | ManifestError::Walk { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_say_where_and_what() {
        let err = k8s::find_container_images("a: [\n").unwrap_err();
        assert!(err.line().is_some());
        let text = err.to_string();
        assert!(text.contains("line") && text.contains("column"), "{text}");
        let glob = ManifestError::Glob {
            glob: "a/[".into(),
            message: "unclosed".into(),
        };
        assert_eq!(glob.line(), None);
        assert!(glob.to_string().contains("\"a/[\""));
    }
}
#[cfg(test)]
mod proptests;
