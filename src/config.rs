//! The `.image-updater.yaml` schema, how it is read, and the checks that make a bad config
//! fail before anything is touched.
//!
//! Every error names the file, the line and the column, and says what was expected there.
//! Unknown keys are errors (`deny_unknown_fields`), so a typo never silently disables a policy.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::{Location, Spanned};

use crate::forge::ForgeKind;
use crate::policy::{docker, Policy, PolicyError, PolicyKind, Versioning};
use crate::reference::ImageRef;

/// A config that was read and checked.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Globs of files to scan, relative to the repo root; empty means every YAML file.
    #[serde(deserialize_with = "null_as_empty")]
    pub paths: Vec<String>,
    /// Globs of files never to scan.
    #[serde(deserialize_with = "null_as_empty")]
    pub exclude: Vec<String>,
    #[serde(deserialize_with = "null_as_empty")]
    pub registries: Vec<RegistryConfig>,
    /// `images:` alone (no items) is an empty list.
    #[serde(deserialize_with = "null_as_empty")]
    pub images: Vec<ImageConfig>,
    /// Issue 18: Helm charts to keep up to date (`charts:`).
    #[serde(deserialize_with = "null_as_empty")]
    pub charts: Vec<ChartConfig>,
    pub delivery: Delivery,
    /// Files larger than this many bytes are skipped (default 10 MiB).
    pub max_file_size: Option<u64>,
    /// Bounds on what a run reads from registries and how long it waits for them.
    pub limits: Limits,
    /// Images held where they are (`image-updater lock`); every run leaves them alone.
    #[serde(deserialize_with = "null_as_empty")]
    pub locks: Vec<crate::locks::LockEntry>,
    /// Report references no policy governs that have a newer tag (`outdated`); default on.
    pub outdated: Option<bool>,
    /// Promotion stages, in order (issue 22): checked by [`crate::stages::Stage::compile`].
    #[serde(deserialize_with = "null_as_empty")]
    pub stages: Vec<crate::stages::StageConfig>,
}

/// `limits:` — what one run reads at most from registries, and how long it waits for them.
/// Going over one is an error naming the registry (exit 1); memory stays bounded by them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// The longest answer read from a registry or token service, in bytes (32 MiB).
    pub response_bytes: u64,
    /// Tags listed at most for one repository, over all pages (100,000).
    pub tags_per_repository: usize,
    /// The longest all registry work of a run may take, in seconds (300); retries included.
    pub run_seconds: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            response_bytes: crate::http::DEFAULT_RESPONSE_BYTES,
            tags_per_repository: 100_000,
            run_seconds: 300,
        }
    }
}

/// Per-host registry settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// The host as it appears in image references, with its port if any.
    pub host: String,
    /// Where to query instead of `host`: another `host[:port]` (a mirror), or
    /// `oci-layout:PATH`, an OCI image layout tree relative to the repo root.
    #[serde(default)]
    pub api: Option<Spanned<String>>,
    /// Plain HTTP or unverified TLS for this host only.
    #[serde(default)]
    pub insecure: bool,
    /// A PEM CA bundle to trust for this host, relative to the repo root.
    #[serde(default)]
    pub ca_file: Option<Spanned<PathBuf>>,
    #[serde(default)]
    pub credentials: Option<Credentials>,
    /// Requests in flight to this registry at once (default 4 for Docker Hub, 8 elsewhere).
    #[serde(default)]
    pub max_concurrency: Option<usize>,
    /// Requests started per second at most (default 10 for Docker Hub, 50 elsewhere).
    #[serde(default)]
    pub requests_per_second: Option<f64>,
}

impl RegistryConfig {
    /// `api` as written.
    pub fn api(&self) -> Option<&str> {
        self.api.as_ref().map(|a| a.value.as_str())
    }

    /// `ca_file` as written.
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca_file.as_ref().map(|f| f.value.as_path())
    }
}

/// Credentials are never written in the config: it names the environment variables holding them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub username_env: String,
    pub password_env: String,
}

/// One watched image and the policy that picks its tag. `image` is a repository (an exact
/// entry), a prefix ending in `/*` (every repository under it), or `*` (every image no other
/// entry governs).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageConfig {
    pub name: Spanned<String>,
    pub image: Spanned<String>,
    /// Required, except with `versioning: docker` (then: any newer tag of the current shape).
    #[serde(default)]
    pub policy: Option<Spanned<PolicySpec>>,
    /// How tags are read as versions: `semver` (default) or `docker` (suffix and precision of
    /// the current tag kept; [`crate::policy::docker`]).
    #[serde(default)]
    pub versioning: Option<Spanned<Versioning>>,
    /// Rank only tags this regex matches, by the value `extract` makes of them.
    #[serde(default)]
    pub filter: Option<Spanned<FilterSpec>>,
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub allow_downgrade: bool,
    /// Globs restricting where this image is rewritten; empty means everywhere.
    #[serde(default)]
    pub files: Vec<String>,
    /// Helm values key paths holding this image's parts (`image.repository`, `image.tag`, ...).
    #[serde(default)]
    pub helm: Vec<HelmKeysSpec>,
    /// Write `tag@sha256:<digest>`.
    #[serde(default)]
    pub pin_digest: bool,
    /// Only tags whose index covers each of these (`os/arch[/variant]`).
    #[serde(default)]
    pub platforms: Vec<String>,
}

/// Issue 18: one Helm chart (in an OCI registry or an HTTP chart repository) and the policy
/// that picks its version.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChartConfig {
    pub name: Spanned<String>,
    /// `oci://REGISTRY/PATH` or `https://HOST/PATH` (a repository serving `index.yaml`).
    pub repository: Spanned<String>,
    /// The chart's name in the repository.
    pub chart: Spanned<String>,
    pub policy: Spanned<PolicySpec>,
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub allow_downgrade: bool,
    /// Globs restricting where this chart is rewritten; empty means everywhere.
    #[serde(default)]
    pub files: Vec<String>,
}

impl Config {
    /// Issue 18: the `charts:` entries compiled; an error names the line of the key at fault.
    pub fn charts(&self, file: &Path) -> Result<Vec<crate::charts::ChartEntry>, ConfigError> {
        let mut out: Vec<crate::charts::ChartEntry> = Vec::new();
        for c in &self.charts {
            let name = c.name.value.trim();
            if name.is_empty() {
                return Err(ConfigError::at(
                    file,
                    &c.name.referenced,
                    "charts[].name must not be empty",
                ));
            }
            if out.iter().any(|e| e.name == name)
                || self.images.iter().any(|i| i.name.value.trim() == name)
            {
                return Err(ConfigError::at(
                    file,
                    &c.name.referenced,
                    format!(
                        "duplicate name {name:?}: each charts[].name must differ from every other \
                         charts[].name and images[].name"
                    ),
                ));
            }
            let image = crate::charts::chart_image(&c.repository.value, &c.chart.value, false)
                .map_err(|e| {
                    let at = match e {
                        crate::charts::ChartNameError::Chart(_) => &c.chart.referenced,
                        _ => &c.repository.referenced,
                    };
                    ConfigError::caused_at(file, at, e)
                })?;
            let at = &c.policy.referenced;
            let kind = c
                .policy
                .value
                .kind()
                .map_err(|e| ConfigError::caused_at(file, at, e))?;
            if matches!(kind, PolicyKind::Digest(_)) {
                return Err(ConfigError::at(
                    file,
                    at,
                    "charts[].policy: a chart version is a tag, not a digest: use semver, \
                     numerical, alphabetical or update",
                ));
            }
            let policy = Policy::new(kind, &c.exclude, c.allow_downgrade)
                .map_err(|e| ConfigError::caused_at(file, at, e))?;
            let files = entry_files(file, &c.name.referenced, &c.files, "charts")?;
            out.push(crate::charts::ChartEntry {
                name: name.to_string(),
                image,
                policy,
                files,
            });
        }
        Ok(out)
    }
}

/// Exactly one of the keys names the policy kind.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    #[serde(default)]
    pub semver: Option<String>,
    #[serde(default)]
    pub alphabetical: Option<String>,
    #[serde(default)]
    pub numerical: Option<String>,
    /// Follow one mutable tag (`latest`, `stable`).
    #[serde(default)]
    pub digest: Option<String>,
    /// Docker versioning within a level: `patch`, `minor` or `major`.
    #[serde(default)]
    pub update: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterSpec {
    pub pattern: String,
    #[serde(default)]
    pub extract: Option<String>,
}

/// Key paths in Helm values, dotted (`image.tag`, `images[0].tag`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HelmKeysSpec {
    #[serde(default)]
    pub registry: Option<String>,
    #[serde(default)]
    pub repository: Option<String>,
    #[serde(default)]
    pub tag: Option<String>,
    #[serde(default)]
    pub digest: Option<String>,
    /// One key holding the whole reference (`repo:tag`), as Argo CD Image Updater's
    /// `helm.image-spec` names it; not with the other keys.
    #[serde(default)]
    pub spec: Option<String>,
}

impl PolicySpec {
    /// The policy kind, or why the spec names none or several.
    pub fn kind(&self) -> Result<PolicyKind, PolicyError> {
        let mut kinds = Vec::new();
        if let Some(r) = &self.semver {
            kinds.push(Ok(PolicyKind::Semver(r.clone())));
        }
        if let Some(o) = &self.alphabetical {
            kinds.push(o.parse().map(PolicyKind::Alphabetical));
        }
        if let Some(o) = &self.numerical {
            kinds.push(o.parse().map(PolicyKind::Numerical));
        }
        if let Some(t) = &self.digest {
            kinds.push(Ok(PolicyKind::Digest(t.clone())));
        }
        if let Some(l) = &self.update {
            kinds.push(
                l.parse()
                    .map(PolicyKind::Update)
                    .map_err(PolicyError::InvalidLevel),
            );
        }
        match kinds.len() {
            0 => Err(PolicyError::NoKind),
            1 => kinds.pop().expect("one kind"),
            _ => Err(PolicyError::SeveralKinds),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Delivery {
    pub mode: DeliveryMode,
    /// The branch to update or to open pull requests against; default: the checked-out branch.
    pub base: Option<String>,
    /// Pull requests: one per image, or one for all updates.
    pub group: Group,
    /// Template of pull-request branch names: `{{ name }}`, `{{ image }}`, `{{ new_tag }}`,
    /// `{{ hash }}`; sanitised to a valid git ref.
    pub branch: String,
    pub commit: CommitConfig,
    pub pull_request: PullRequestConfig,
    /// `github`, `gitlab`, `gitea` (or `forgejo`), `bitbucket` (Cloud), `bitbucket-server` (Data
    /// Center), `azure-devops`, any case; `None` for `auto` (the default):
    /// from the CI environment, else the remote's host. Anything else is a config error.
    #[serde(deserialize_with = "forge_setting")]
    pub forge: Option<ForgeKind>,
    /// The forge's API base URL; default: from the CI environment, else the remote's host.
    pub api_url: Option<String>,
    /// `owner/name`, or a GitLab project path or id; default: CI environment, else the remote.
    pub repository: Option<String>,
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery {
            mode: DeliveryMode::default(),
            base: None,
            group: Group::default(),
            branch: "image-updater/{{ name }}".into(),
            commit: CommitConfig::default(),
            pull_request: PullRequestConfig::default(),
            forge: None,
            api_url: None,
            repository: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum DeliveryMode {
    /// Commit to the branch and push it.
    #[default]
    Commit,
    /// Push a branch per group and open or update a pull/merge request for it.
    PullRequest,
    /// Report only: write nothing.
    None,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Group {
    #[default]
    PerImage,
    All,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PullRequestConfig {
    /// Title template (as the commit message); default: the commit message's first line.
    pub title: Option<String>,
    /// Body template; `{{ table }}` is the Markdown table of the updates. Default: the table.
    pub body: Option<String>,
    pub labels: Vec<String>,
    pub reviewers: Vec<String>,
    pub assignees: Vec<String>,
    pub draft: bool,
    pub auto_merge: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CommitConfig {
    pub author: Author,
    /// Template: `{{ name }}`, `{{ image }}`, `{{ old_tag }}`, `{{ new_tag }}` take the values
    /// of a single update; `{{ count }}` and `{{ summary }}` describe the whole commit.
    pub message: String,
    /// Add a `Signed-off-by:` trailer with the author.
    pub signoff: bool,
    /// Sign each commit (`IMAGE_UPDATER_SIGNING_KEY`, [`crate::git::signing`]).
    pub sign: Sign,
    /// How commits are made: by git and pushed, or by the forge's API (GitHub only).
    pub via: Via,
}

/// `delivery.commit.sign`: which signature each commit carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sign {
    /// Sign when `IMAGE_UPDATER_SIGNING_KEY` is set, in the format its armour tells.
    #[default]
    Auto,
    /// An SSH signature (`gpg.format ssh`): from the key, else the SSH agent.
    Ssh,
    /// An OpenPGP signature from an armoured secret key.
    Openpgp,
    /// Never sign.
    None,
}

impl Sign {
    /// The name as the config spells it.
    pub fn name(self) -> &'static str {
        match self {
            Sign::Auto => "auto",
            Sign::Ssh => "ssh",
            Sign::Openpgp => "openpgp",
            Sign::None => "none",
        }
    }
}

/// `delivery.commit.via`: who makes the commits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Via {
    /// git, here, pushed to the remote.
    #[default]
    Git,
    /// GitHub's API (`createCommitOnBranch`): signed by GitHub, shown as verified.
    Api,
}

impl Default for CommitConfig {
    fn default() -> Self {
        CommitConfig {
            author: Author::default(),
            message: "chore(images): {{ summary }}".to_string(),
            signoff: false,
            sign: Sign::default(),
            via: Via::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Author {
    pub name: String,
    pub email: String,
}

impl Default for Author {
    fn default() -> Self {
        Author {
            name: "image-updater".to_string(),
            email: "image-updater@example.invalid".to_string(),
        }
    }
}

/// A config that cannot be used: the file, the line and column when known, what is wrong,
/// and the underlying error when there is one. The message names file, line and column
/// (`FILE:LINE:COLUMN: what`), or the file alone for the config as a whole.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read (missing, too big, not a regular file).
    #[error("{0}")]
    Read(#[source] crate::manifest::files::ReadError),
    /// A problem at a place in the file.
    #[error("{}:{line}:{column}: {message}", file.display())]
    At {
        file: PathBuf,
        line: u64,
        column: u64,
        message: String,
        #[source]
        source: Option<Cause>,
    },
    /// A problem of the config as a whole (a bad glob, say).
    #[error("{}: {message}", file.display())]
    File {
        file: PathBuf,
        message: String,
        #[source]
        source: Option<Cause>,
    },
}

/// The error underneath a [`ConfigError`]: a reference, policy, glob or YAML error.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

impl ConfigError {
    /// An error about the config as a whole (a bad glob, say), naming the file.
    pub fn from_message(file: &Path, msg: impl std::fmt::Display) -> Self {
        ConfigError::File {
            file: file.to_path_buf(),
            message: msg.to_string(),
            source: None,
        }
    }

    pub(crate) fn at(file: &Path, loc: &Location, msg: impl std::fmt::Display) -> Self {
        ConfigError::At {
            file: file.to_path_buf(),
            line: loc.line(),
            column: loc.column(),
            message: msg.to_string(),
            source: None,
        }
    }

    /// `error` at `loc`: its text is the message, and it is the source.
    fn caused_at(
        file: &Path,
        loc: &Location,
        error: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        ConfigError::at(file, loc, &error).with_source(error)
    }

    /// This error with `error` as its source.
    fn with_source(mut self, error: impl std::error::Error + Send + Sync + 'static) -> Self {
        match &mut self {
            ConfigError::At { source, .. } | ConfigError::File { source, .. } => {
                *source = Some(Box::new(error))
            }
            ConfigError::Read(_) => {}
        }
        self
    }
}

/// A watched image with its policy compiled: from the config, or from a Flux ImagePolicy
/// found in the repo.
#[derive(Debug, Clone)]
pub struct Watched {
    pub name: String,
    /// The Flux namespace of a policy read from an ImagePolicy; `None` for the config's.
    pub namespace: Option<String>,
    /// Whether it comes from a Flux ImagePolicy (it then governs only what its markers name).
    pub flux: bool,
    pub image: ImageRef,
    pub policy: Policy,
    /// Globs restricting where this image is rewritten.
    pub files: Option<globset::GlobSet>,
    /// Index of the first of this image's `helm` key sets in [`Config::scan_options`].
    pub helm_keys: std::ops::Range<usize>,
    /// Write `tag@digest`.
    pub pin_digest: bool,
    /// Platforms (`os/arch[/variant]`) a tag's index must cover.
    pub platforms: Vec<String>,
    /// argocd-image-updater's newest-build: of the tags the policy passes, the one whose image
    /// was built last wins (`crate::registry::created`).
    pub newest_build: bool,
    /// The `images[].image` of a prefix (`ghcr.io/acme/*`) or `*` entry this governor was made
    /// from, as written; `None` for every other governor.
    pub rule: Option<String>,
}

/// What an `images[].image` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImagePattern {
    /// One repository.
    Exact(ImageRef),
    /// Every repository whose canonical name starts with this (`ghcr.io/acme/`, always ending
    /// in `/`): from `ghcr.io/acme/*`, normalised as references are (`acme/*` is
    /// `docker.io/acme/`, `docker.io/*` is `docker.io/`).
    Prefix(String),
    /// `*`: every image no other entry governs.
    All,
}

impl ImagePattern {
    /// Read `images[].image`: `*` may only be the whole value or its last path segment.
    pub fn parse(image: &str) -> Result<ImagePattern, String> {
        if image == WILDCARD {
            return Ok(ImagePattern::All);
        }
        let rule = "'*' may only be the whole image (\"*\") or its last path segment \
                    (\"ghcr.io/acme/*\")";
        match image.strip_suffix("/*") {
            Some(base) if !base.contains('*') && !base.is_empty() => {
                // Two placeholder segments after the prefix: a one-segment Docker Hub path
                // never gets `library/` in front, and a lone host stays a host.
                let probe = format!("{base}/x/x");
                let r = ImageRef::parse(&probe).map_err(|e| {
                    format!("images[].image {image:?}: the prefix {base:?} is not a repository path: {}", e.reason)
                })?;
                if r.tag.is_some() || r.digest.is_some() {
                    return Err(format!(
                        "images[].image {image:?}: a prefix has no tag or digest"
                    ));
                }
                let name = r.canonical_name();
                let prefix = name.strip_suffix("x/x").unwrap_or(&name);
                Ok(ImagePattern::Prefix(prefix.to_string()))
            }
            _ if image.contains('*') => Err(format!("images[].image {image:?}: {rule}")),
            _ => ImageRef::parse(image)
                .map(ImagePattern::Exact)
                .map_err(|e| e.to_string()),
        }
    }

    /// Whether this pattern names `repository` (a canonical name), and how specifically:
    /// an exact name beats every prefix, a longer prefix a shorter one, and `*` is last.
    pub fn specificity(&self, repository: &str) -> Option<usize> {
        match self {
            ImagePattern::Exact(r) => (r.canonical_name() == repository).then_some(usize::MAX),
            ImagePattern::Prefix(p) => repository.starts_with(p.as_str()).then_some(p.len()),
            ImagePattern::All => Some(0),
        }
    }
}

impl ImageConfig {
    /// The entry's policy with its `exclude`, `allow_downgrade`, `filter` and `versioning`;
    /// an error names the line of the key at fault. With `versioning: docker` and no policy,
    /// any newer tag of the current tag's shape.
    fn compiled_policy(&self, file: &Path) -> Result<Policy, ConfigError> {
        let versioning = self
            .versioning
            .as_ref()
            .map(|v| v.value)
            .unwrap_or_default();
        let (kind, at) = match &self.policy {
            Some(p) => (
                p.value
                    .kind()
                    .map_err(|e| ConfigError::caused_at(file, &p.referenced, e))?,
                &p.referenced,
            ),
            None if versioning == Versioning::Docker => (
                PolicyKind::Update(docker::Level::Major),
                &self.name.referenced,
            ),
            None => {
                return Err(ConfigError::at(
                    file,
                    &self.name.referenced,
                    format!(
                        "images[] entry {:?} has no policy: give one of semver, alphabetical, \
                         numerical, digest, update (or versioning: docker)",
                        self.name.value
                    ),
                ))
            }
        };
        let mut policy = Policy::new(kind, &self.exclude, self.allow_downgrade)
            .map_err(|e| ConfigError::caused_at(file, at, e))?;
        if let Some(f) = &self.filter {
            policy = policy
                .with_filter(&f.value.pattern, f.value.extract.as_deref())
                .map_err(|e| ConfigError::caused_at(file, &f.referenced, e))?;
        }
        if let Some(v) = &self.versioning {
            policy = policy
                .with_versioning(v.value)
                .map_err(|e| ConfigError::caused_at(file, &v.referenced, e))?;
        }
        Ok(policy)
    }

    /// What `image` names, or an error at its line.
    fn pattern(&self, file: &Path) -> Result<ImagePattern, ConfigError> {
        ImagePattern::parse(&self.image.value)
            .map_err(|e| ConfigError::at(file, &self.image.referenced, e))
    }
}

impl Config {
    /// Read `file`; a missing file is an empty config when `required` is false. Only a
    /// regular file of at most [`MAX_CONFIG_FILE`] bytes is read (a FIFO never blocks).
    pub fn load(file: &Path, required: bool) -> Result<Config, ConfigError> {
        let expected = "an .image-updater.yaml config (YAML)";
        let bytes = match crate::manifest::files::read_regular_file(file, MAX_CONFIG_FILE, expected)
        {
            Ok(b) => b,
            Err(e) if e.io == Some(std::io::ErrorKind::NotFound) && !required => {
                return Ok(Config::default());
            }
            Err(e) => return Err(ConfigError::Read(e)),
        };
        let text = String::from_utf8(bytes).map_err(|e| {
            ConfigError::from_message(file, "stream did not contain valid UTF-8").with_source(e)
        })?;
        Config::parse(file, &text)
    }

    /// Refuse `ca_file` and `oci-layout:PATH` paths that leave `root` when `file` is the
    /// repository's own config (see [`config_from_repo`]): absolute paths, `..` components,
    /// paths into `.git`, and paths whose symlinks lead out of `root` are errors at the
    /// key's line and column. A config from outside the repository (`--config`) was chosen by
    /// whoever runs the tool and may name any path.
    pub fn check_paths(&self, file: &Path, root: &Path) -> Result<(), ConfigError> {
        if !config_from_repo(file, root) {
            return Ok(());
        }
        for r in &self.registries {
            if let Some(api) = &r.api {
                if let Some(path) = api.value.strip_prefix("oci-layout:") {
                    path_in_repo(Path::new(path), root).map_err(|e| {
                        ConfigError::at(
                            file,
                            &api.referenced,
                            format!("registries[{}].api {:?}: {e}", r.host, api.value),
                        )
                        .with_source(e)
                    })?;
                }
            }
            if let Some(ca) = &r.ca_file {
                path_in_repo(&ca.value, root).map_err(|e| {
                    ConfigError::at(
                        file,
                        &ca.referenced,
                        format!("registries[{}].ca_file {:?}: {e}", r.host, ca.value),
                    )
                    .with_source(e)
                })?;
            }
        }
        Ok(())
    }

    /// Parse config text; `file` is used in messages only.
    pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigError> {
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        serde_saphyr::from_str::<Config>(text).map_err(|e| match e.location() {
            // The location is ours to print, once: the library's message alone, without its
            // own `error: line L column C:` prefix and source snippet.
            Some(loc) => ConfigError::at(file, &loc, parse_message(&e)).with_source(e),
            None => ConfigError::from_message(file, first_line(&e.to_string())).with_source(e),
        })
    }

    /// Compile each image's reference, policy and globs; the first problem is an error.
    pub fn watched(&self, file: &Path) -> Result<Vec<Watched>, ConfigError> {
        let l = &self.limits;
        for (key, value) in [
            ("response_bytes", l.response_bytes),
            ("tags_per_repository", l.tags_per_repository as u64),
            ("run_seconds", l.run_seconds),
        ] {
            if value == 0 {
                return Err(ConfigError::from_message(
                    file,
                    format!("limits.{key} must be at least 1"),
                ));
            }
        }
        for (key, globs) in [("paths", &self.paths), ("exclude", &self.exclude)] {
            for g in globs {
                inside_repo(g).map_err(|e| {
                    ConfigError::from_message(file, format!("{key}: {e}")).with_source(e)
                })?;
            }
        }
        let mut out: Vec<Watched> = Vec::with_capacity(self.images.len());
        for (i, img) in self.images.iter().enumerate() {
            let name = img.name.value.trim();
            if name.is_empty() {
                return Err(ConfigError::at(
                    file,
                    &img.name.referenced,
                    "images[].name must not be empty",
                ));
            }
            if self.images[..i].iter().any(|o| o.name.value.trim() == name) {
                return Err(ConfigError::at(
                    file,
                    &img.name.referenced,
                    format!("duplicate image name {name:?}: each images[].name must be unique"),
                ));
            }
            // Prefix and `*` entries are compiled by `patterns`.
            let image = match img.pattern(file)? {
                ImagePattern::Exact(image) => image,
                _ => continue,
            };
            if image.tag.is_some() || image.digest.is_some() {
                return Err(ConfigError::at(
                    file,
                    &img.image.referenced,
                    format!(
                        "images[].image is the repository to watch, without a tag or digest; found {:?}",
                        img.image.value
                    ),
                ));
            }
            let policy = img.compiled_policy(file)?;
            for h in &img.helm {
                let parts = [&h.registry, &h.repository, &h.tag, &h.digest];
                if h.spec.is_some() && parts.iter().any(|p| p.is_some()) {
                    return Err(ConfigError::at(
                        file,
                        &img.name.referenced,
                        "images[].helm: spec names one key holding the whole reference; it \
                         cannot be given with registry, repository, tag or digest",
                    ));
                }
            }
            for p in &img.platforms {
                let parts: Vec<&str> = p.split('/').collect();
                if !(2..=3).contains(&parts.len()) || parts.iter().any(|x| x.is_empty()) {
                    return Err(ConfigError::at(
                        file,
                        &img.name.referenced,
                        format!("platform {p:?}: expected os/arch or os/arch/variant, e.g. linux/arm64/v8"),
                    ));
                }
            }
            let files = entry_files(file, &img.name.referenced, &img.files, "images")?;
            let start = out.last().map_or(0, |w: &Watched| w.helm_keys.end);
            out.push(Watched {
                name: name.to_string(),
                namespace: None,
                flux: false,
                image,
                policy,
                files,
                helm_keys: start..start + img.helm.len(),
                pin_digest: img.pin_digest,
                platforms: img.platforms.clone(),
                newest_build: false,
                rule: None,
            });
        }
        for r in &self.registries {
            if r.credentials.is_some() && r.api().is_some_and(is_layout) {
                return Err(ConfigError::from_message(
                    file,
                    format!(
                        "registries[{}]: credentials make no sense for an oci-layout api",
                        r.host
                    ),
                ));
            }
        }
        Ok(out)
    }
}

/// `images[].image` that governs every image no other entry governs.
pub const WILDCARD: &str = "*";

/// A prefix (`ghcr.io/acme/*`) or `image: "*"` entry, compiled: a [`Watched`] for each
/// repository it comes to govern.
#[derive(Debug, Clone)]
pub struct Wildcard {
    pub name: String,
    /// `images[].image` as written (`ghcr.io/acme/*`, `*`): the rule `scan` shows.
    pub image: String,
    /// What it governs: [`ImagePattern::Prefix`] or [`ImagePattern::All`].
    pub pattern: ImagePattern,
    pub policy: Policy,
    pub files: Option<globset::GlobSet>,
    pub pin_digest: bool,
    pub platforms: Vec<String>,
}

impl Wildcard {
    /// The entry as the governor of `image` (a repository, without tag): named `NAME/` and
    /// the part of the repository its `*` stands for — `NAME/REPOSITORY` for `*`
    /// (`all/docker.io/library/nginx`), `NAME/REST` for a prefix (`acme/web` for
    /// `ghcr.io/acme/web` under `ghcr.io/acme/*`) — so each repository has its own policy
    /// name (and pull request).
    pub fn govern(&self, image: ImageRef) -> Watched {
        let repository = image.canonical_name();
        let rest = match &self.pattern {
            ImagePattern::Prefix(p) => repository.strip_prefix(p.as_str()).unwrap_or(&repository),
            _ => &repository,
        };
        Watched {
            name: format!("{}/{rest}", self.name),
            namespace: None,
            flux: false,
            image,
            policy: self.policy.clone(),
            files: self.files.clone(),
            helm_keys: 0..0,
            pin_digest: self.pin_digest,
            platforms: self.platforms.clone(),
            newest_build: false,
            rule: Some(self.image.clone()),
        }
    }
}

/// Of `entries` (prefix entries), those governing `repository` (a canonical name): the ones
/// with the longest prefix it starts with, in config order (several when they share the
/// prefix, each with its own `files`). Exact entries are looked at before these, `*` after.
pub fn most_specific<'a>(entries: &'a [Wildcard], repository: &str) -> Vec<&'a Wildcard> {
    let best = entries
        .iter()
        .filter_map(|e| e.pattern.specificity(repository))
        .max();
    entries
        .iter()
        .filter(|e| best.is_some() && e.pattern.specificity(repository) == best)
        .collect()
}

impl Config {
    /// Whether the `outdated` report is on (`outdated: false` turns it off).
    pub fn outdated_report(&self) -> bool {
        self.outdated.unwrap_or(true)
    }

    /// The `image: "*"` entry compiled, if there is one; at most one, without `helm` keys.
    pub fn wildcard(&self, file: &Path) -> Result<Option<Wildcard>, ConfigError> {
        let mut all = self.patterns(file)?;
        all.retain(|w| w.pattern == ImagePattern::All);
        Ok(all.pop())
    }

    /// The prefix entries (`image: "ghcr.io/acme/*"`) compiled, in config order.
    pub fn prefixes(&self, file: &Path) -> Result<Vec<Wildcard>, ConfigError> {
        let mut all = self.patterns(file)?;
        all.retain(|w| matches!(w.pattern, ImagePattern::Prefix(_)));
        Ok(all)
    }

    /// Every prefix and `*` entry compiled, in config order: at most one `*`, none with
    /// `helm` keys, names unique among all entries.
    fn patterns(&self, file: &Path) -> Result<Vec<Wildcard>, ConfigError> {
        let mut found: Vec<Wildcard> = Vec::new();
        for (i, img) in self.images.iter().enumerate() {
            let pattern = img.pattern(file)?;
            if matches!(pattern, ImagePattern::Exact(_)) {
                continue;
            }
            let name = img.name.value.trim();
            if pattern == ImagePattern::All && found.iter().any(|w| w.pattern == pattern) {
                return Err(ConfigError::at(
                    file,
                    &img.image.referenced,
                    "only one images[] entry may have image \"*\"",
                ));
            }
            if name.is_empty() {
                return Err(ConfigError::at(
                    file,
                    &img.name.referenced,
                    "images[].name must not be empty",
                ));
            }
            if self
                .images
                .iter()
                .enumerate()
                .any(|(j, o)| j != i && o.name.value.trim() == name)
            {
                return Err(ConfigError::at(
                    file,
                    &img.name.referenced,
                    format!("duplicate image name {name:?}: each images[].name must be unique"),
                ));
            }
            if !img.helm.is_empty() {
                return Err(ConfigError::at(
                    file,
                    &img.name.referenced,
                    format!(
                        "images[].helm names one image's keys; it cannot be used with image {:?}",
                        img.image.value
                    ),
                ));
            }
            let policy = img.compiled_policy(file)?;
            let files = entry_files(file, &img.name.referenced, &img.files, "images")?;
            found.push(Wildcard {
                name: name.to_string(),
                image: img.image.value.clone(),
                pattern,
                policy,
                files,
                pin_digest: img.pin_digest,
                platforms: img.platforms.clone(),
            });
        }
        Ok(found)
    }
}

impl Config {
    /// What the manifest scanner looks for beyond the built-in shapes: every image's `helm`
    /// key paths, in config order (so [`Watched::helm_keys`] indexes them), both as Helm values
    /// paths and as Argo CD `helm.parameters` names.
    pub fn scan_options(&self) -> crate::manifest::ScanOptions {
        let keys: Vec<crate::manifest::HelmKeys> = self
            .images
            .iter()
            .flat_map(|i| &i.helm)
            .map(|h| crate::manifest::HelmKeys {
                registry: h.registry.clone(),
                repository: h.repository.clone(),
                tag: h.tag.clone(),
                digest: h.digest.clone(),
                spec: h.spec.clone(),
            })
            .collect();
        crate::manifest::ScanOptions {
            helm: keys.clone(),
            argocd_helm_params: keys,
            charts: !self.charts.is_empty(),
        }
    }
}

/// The largest config file read: 10 MiB, as a manifest (a thousand images take some 100 KiB).
pub const MAX_CONFIG_FILE: u64 = 10 * 1024 * 1024;

/// Whether `file` is the repository's own config: the default `ROOT/.image-updater.yaml`, or
/// a `--config` file inside `root` (by its path, or by where its symlinks lead). Its paths are
/// content of the repository, written by whoever can push to it, and must stay inside it.
pub fn config_from_repo(file: &Path, root: &Path) -> bool {
    let Ok(root) = std::fs::canonicalize(root) else {
        return true;
    };
    let absolute = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    // The directory it is in, symlinks resolved, and the file itself, symlinks resolved.
    let by_dir = match (absolute.parent(), absolute.file_name()) {
        (Some(dir), Some(name)) => std::fs::canonicalize(dir).ok().map(|d| d.join(name)),
        _ => None,
    };
    let by_target = std::fs::canonicalize(&absolute).ok();
    [Some(absolute), by_dir, by_target]
        .into_iter()
        .flatten()
        .any(|p| p.starts_with(&root))
}

/// Check that `path` (relative to `root`, from the repository's config) names something
/// inside `root`: not absolute, no `..`, not into `.git`, and no symlink on the way leading
/// out. A path that does not exist yet is checked as far as it exists (the read reports it
/// missing later).
fn path_in_repo(path: &Path, root: &Path) -> Result<(), PathError> {
    use std::path::Component;
    for c in path.components() {
        match c {
            Component::RootDir | Component::Prefix(_) => return Err(PathError::Absolute),
            Component::ParentDir => return Err(PathError::Parent),
            Component::Normal(n) if n == ".git" => return Err(PathError::IntoGit),
            _ => {}
        }
    }
    let Ok(root) = std::fs::canonicalize(root) else {
        return Ok(());
    };
    // The longest part of the path that exists, with its symlinks resolved.
    let mut existing = root.join(path);
    let resolved = loop {
        match std::fs::canonicalize(&existing) {
            Ok(p) => break Some(p),
            Err(_) if std::fs::symlink_metadata(&existing).is_ok() => {
                return Err(PathError::Unresolvable(existing))
            }
            Err(_) => {
                if !existing.pop() {
                    break None;
                }
            }
        }
    };
    let Some(resolved) = resolved else {
        return Ok(());
    };
    match resolved.strip_prefix(&root) {
        Err(_) => Err(PathError::SymlinkOutside(resolved)),
        Ok(rel) if rel.starts_with(".git") => Err(PathError::SymlinkIntoGit),
        Ok(_) => Ok(()),
    }
}

/// Why the repository's own config may not name a path.
const PATH_RULE: &str = "the repository's own config may only name paths inside the \
     repository and outside .git, relative to its root (a config given with --config from \
     outside the repository may name any path)";

/// A path in the repository's own config that names something outside the repository.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("an absolute path is not allowed: {PATH_RULE}")]
    Absolute,
    #[error("'..' reaches outside the repository: {PATH_RULE}")]
    Parent,
    #[error("a path into .git is not allowed: {PATH_RULE}")]
    IntoGit,
    #[error("{} cannot be resolved (a broken or looping symlink?)", .0.display())]
    Unresolvable(PathBuf),
    #[error("a symlink leads outside the repository (to {}): {PATH_RULE}", .0.display())]
    SymlinkOutside(PathBuf),
    #[error("a symlink leads into .git, which is not allowed: {PATH_RULE}")]
    SymlinkIntoGit,
}

/// Whether an api/image string names an OCI image layout directory.
pub fn is_layout(s: &str) -> bool {
    s.starts_with("oci-layout:")
}

/// Refuse a path glob that could name something outside the repository: globs are matched
/// against paths relative to the repo root, so an absolute glob or a `..` component is a
/// mistake (or an attempt to reach another checkout) and never silently matches nothing.
/// The `files:` of an `images[]` or `charts[]` (`list`) entry whose name is at `at`: each glob
/// inside the repo, compiled; `None` when there are none (every file).
fn entry_files(
    file: &Path,
    at: &Location,
    files: &[String],
    list: &str,
) -> Result<Option<globset::GlobSet>, ConfigError> {
    for g in files {
        inside_repo(g).map_err(|e| {
            ConfigError::at(file, at, format!("{list}[].files: {e}")).with_source(e)
        })?;
    }
    if files.is_empty() {
        return Ok(None);
    }
    glob_set(files)
        .map(Some)
        .map_err(|e| ConfigError::caused_at(file, at, e))
}

fn inside_repo(glob: &str) -> Result<(), GlobError> {
    if glob.starts_with('/') || glob.starts_with("~/") {
        return Err(GlobError::NotRelative(glob.to_string()));
    }
    if glob.split('/').any(|c| c == "..") {
        return Err(GlobError::Outside(glob.to_string()));
    }
    Ok(())
}

/// A path glob that cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GlobError {
    #[error("glob {0:?} is not relative to the repository root")]
    NotRelative(String),
    #[error("glob {0:?} reaches outside the repository ('..' is not allowed)")]
    Outside(String),
    #[error("invalid glob {glob:?}: {source}")]
    Invalid {
        glob: String,
        #[source]
        source: globset::Error,
    },
    /// The set of globs as a whole does not compile.
    #[error("{0}")]
    Set(#[source] globset::Error),
}

/// Compile globs (literal separators, so `*` stays within one directory and `**` crosses them).
pub fn glob_set(globs: &[String]) -> Result<globset::GlobSet, GlobError> {
    let mut b = globset::GlobSetBuilder::new();
    for g in globs {
        let glob = globset::GlobBuilder::new(g)
            .literal_separator(true)
            .build()
            .map_err(|source| GlobError::Invalid {
                glob: g.clone(),
                source,
            })?;
        b.add(glob);
    }
    b.build().map_err(GlobError::Set)
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

/// What the YAML reader says is wrong, without where: [`ConfigError::at`] adds the place.
fn parse_message(e: &serde_saphyr::Error) -> String {
    use serde_saphyr::MessageFormatter as _;
    let msg = serde_saphyr::DefaultMessageFormatter.format_message(e.without_snippet());
    first_line(&msg).to_string()
}

/// `delivery.forge`: a forge's name, or `auto` (also when empty) for `None`.
fn forge_setting<'de, D>(d: D) -> Result<Option<ForgeKind>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let name = Option::<String>::deserialize(d)?.unwrap_or_default();
    match name.to_ascii_lowercase().as_str() {
        "" | "auto" => Ok(None),
        other => other.parse().map(Some).map_err(|_| {
            serde::de::Error::custom(format!(
                "delivery.forge {name:?}: expected {} or auto",
                ForgeKind::EXPECTED
            ))
        }),
    }
}

/// A list that may be written empty: `key:` alone (null) reads as `[]`.
fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("cfg.yaml"), text)
    }

    #[test]
    fn globs_reaching_outside_the_repo_are_refused() {
        let img =
            "images:\n  - {name: w, image: ghcr.io/a/w, policy: {semver: '^1'}, files: [FILES]}\n";
        for (yaml, key) in [
            ("paths: ['../**']\n".to_string(), "paths"),
            ("paths: ['apps/../../x/**']\n".into(), "paths"),
            ("paths: ['/etc/**']\n".into(), "paths"),
            ("exclude: ['..']\n".into(), "exclude"),
            (img.replace("FILES", "'../other/*.yaml'"), "files"),
            (img.replace("FILES", "'/root/**'"), "files"),
        ] {
            let e = parse(&yaml)
                .unwrap()
                .watched(Path::new("cfg.yaml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(key) && e.contains("glob"), "{yaml}: {e}");
        }
        // Dots inside names are fine.
        let ok = "paths: ['apps/..x/**', 'a..b/*.yaml', '.flux/**']\n";
        assert!(parse(ok).unwrap().watched(Path::new("cfg.yaml")).is_ok());
    }

    #[cfg(unix)]
    #[test]
    fn repo_config_paths_stay_in_the_repo() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("repo");
        std::fs::create_dir_all(root.join("certs")).unwrap();
        std::os::unix::fs::symlink(t.path(), root.join("out")).unwrap();
        std::os::unix::fs::symlink("certs", root.join("in")).unwrap();
        std::os::unix::fs::symlink("missing", root.join("broken")).unwrap();
        for ok in [
            "certs/ca.pem",
            "in/ca.pem",
            "not/there/yet.pem",
            "",
            "a..b/c",
        ] {
            assert_eq!(path_in_repo(Path::new(ok), &root), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("/etc/ssl/ca.pem", "absolute"),
            ("../x.pem", "'..'"),
            ("certs/../../x.pem", "'..'"),
            (".git/config", ".git"),
            ("out/x.pem", "symlink leads outside"),
            ("out", "symlink leads outside"),
            ("broken/x.pem", "cannot be resolved"),
        ] {
            let e = path_in_repo(Path::new(bad), &root).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
        // The config's own place decides whether its paths are held to the repo.
        assert!(config_from_repo(&root.join(".image-updater.yaml"), &root));
        assert!(config_from_repo(&root.join("in/cfg.yaml"), &root));
        assert!(!config_from_repo(&t.path().join("cfg.yaml"), &root));
        // Named inside the repo, though a symlink leads out: still the repo's.
        assert!(config_from_repo(&root.join("out/cfg.yaml"), &root));
    }

    #[test]
    fn full_config_reads() {
        let c = parse(
            r#"
paths: ["clusters/**"]
exclude: ["**/charts/**"]
registries:
  - host: 127.0.0.1:5000
    insecure: true
    credentials: { username_env: U, password_env: P }
    max_concurrency: 2
    requests_per_second: 0.5
images:
  - name: web
    image: ghcr.io/acme/web
    policy: { semver: "^1.2" }
    exclude: ["*-debug"]
    files: ["clusters/prod/**"]
delivery:
  mode: none
  commit:
    author: { name: bot, email: bot@example.invalid }
    message: "bump {{ name }}"
"#,
        )
        .unwrap();
        assert_eq!(c.paths, ["clusters/**"]);
        assert_eq!(c.registries[0].max_concurrency, Some(2));
        assert_eq!(c.registries[0].requests_per_second, Some(0.5));
        assert_eq!(c.delivery.mode, DeliveryMode::None);
        assert_eq!(c.delivery.commit.author.name, "bot");
        let w = c.watched(Path::new("cfg.yaml")).unwrap();
        assert_eq!(w[0].image.canonical_name(), "ghcr.io/acme/web");
        assert!(w[0]
            .files
            .as_ref()
            .unwrap()
            .is_match("clusters/prod/a.yaml"));
    }

    #[test]
    fn empty_file_is_default() {
        let c = parse("").unwrap();
        assert_eq!(c.delivery.mode, DeliveryMode::Commit);
        assert!(c.images.is_empty());
    }

    #[test]
    fn unknown_key_names_file_line_column() {
        let e = parse("paths: []\nimagez: []\n").unwrap_err().to_string();
        assert!(e.starts_with("cfg.yaml:2:"), "{e}");
        assert!(e.contains("imagez"), "{e}");
    }

    #[test]
    fn unknown_nested_key_names_its_line() {
        let e = parse("images:\n  - name: a\n    image: x/y\n    polcy: {semver: '1'}\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("cfg.yaml:4:"), "{e}");
        assert!(e.contains("polcy"), "{e}");
    }

    #[test]
    fn bad_mode_is_an_error() {
        let e = parse("delivery:\n  mode: yolo\n").unwrap_err().to_string();
        assert!(e.starts_with("cfg.yaml:2:"), "{e}");
    }

    #[test]
    fn parse_errors_name_the_place_once() {
        for (yaml, want) in [
            (
                "images: 5\n",
                "cfg.yaml:1:9: expected sequence start",
            ),
            (
                "images:\n  - name: a\n    x: 1\n",
                "cfg.yaml:3:5: unknown field `x`, expected one of name, image, policy, versioning, filter, exclude, allow_downgrade, files, helm, pin_digest, platforms",
            ),
            ("paths: [\n", "cfg.yaml:1:8: unclosed bracket '['"),
        ] {
            assert_eq!(parse(yaml).unwrap_err().to_string(), want, "{yaml:?}");
        }
    }

    #[test]
    fn lists_with_no_items_are_empty() {
        for yaml in [
            "images:\n",
            "images: []\n",
            "images: ~\n",
            "images:\ndelivery: {mode: none}\n",
        ] {
            assert!(parse(yaml).unwrap().images.is_empty(), "{yaml:?}");
        }
        let c = parse("paths:\nexclude:\nregistries:\n").unwrap();
        assert!(c.paths.is_empty() && c.exclude.is_empty() && c.registries.is_empty());
    }

    #[test]
    fn forge_is_read_as_a_forge() {
        let forge =
            |v: &str| parse(&format!("delivery:\n  forge: {v}\n")).map(|c| c.delivery.forge);
        assert_eq!(forge("github").unwrap(), Some(ForgeKind::Github));
        assert_eq!(forge("GitLab").unwrap(), Some(ForgeKind::Gitlab));
        assert_eq!(forge("forgejo").unwrap(), Some(ForgeKind::Gitea));
        assert_eq!(forge("auto").unwrap(), None);
        assert_eq!(forge("''").unwrap(), None);
        assert_eq!(
            parse("delivery: {mode: none}\n").unwrap().delivery.forge,
            None
        );
        assert_eq!(forge("bitbucket").unwrap(), Some(ForgeKind::BitbucketCloud));
        assert_eq!(
            forge("bitbucket-server").unwrap(),
            Some(ForgeKind::BitbucketDc)
        );
        assert_eq!(forge("Azure").unwrap(), Some(ForgeKind::Azure));
        let e = forge("sourcehut").unwrap_err().to_string();
        assert_eq!(
            e,
            "cfg.yaml:2:10: delivery.forge \"sourcehut\": expected github, gitlab, gitea (or forgejo), bitbucket, bitbucket-server (or bitbucket-dc, bitbucket-datacenter), azure-devops (or azure) or auto"
        );
    }

    #[test]
    fn bad_range_quotes_it_with_its_line() {
        let c =
            parse("images:\n  - name: a\n    image: x/y\n    policy: {semver: latest}\n").unwrap();
        let e = c.watched(Path::new("cfg.yaml")).unwrap_err().to_string();
        assert!(e.starts_with("cfg.yaml:4:"), "{e}");
        assert!(e.contains("latest"), "{e}");
        let c = parse(
            "images:\n  - name: a\n    image: x/y\n    policy: {semver: '1', numerical: asc}\n",
        )
        .unwrap();
        let e = c.watched(Path::new("cfg.yaml")).unwrap_err().to_string();
        assert!(
            e.starts_with("cfg.yaml:4:") && e.contains("exactly one"),
            "{e}"
        );
        let c =
            parse("images:\n  - name: a\n    image: x/y\n    policy: {numerical: up}\n").unwrap();
        let e = c.watched(Path::new("cfg.yaml")).unwrap_err().to_string();
        assert!(e.contains("up"), "{e}");
        let c = parse(
            "images:\n  - name: a\n    image: x/y\n    policy: {numerical: asc}\n    filter: {pattern: '(', extract: $1}\n",
        )
        .unwrap();
        let e = c.watched(Path::new("cfg.yaml")).unwrap_err().to_string();
        assert!(e.starts_with("cfg.yaml:5:"), "{e}");
    }

    #[test]
    fn bad_image_and_tagged_image_are_errors() {
        let c = parse("images:\n  - name: a\n    image: Bad/Name\n    policy: {semver: '*'}\n")
            .unwrap();
        let e = c.watched(Path::new("cfg.yaml")).unwrap_err().to_string();
        assert!(e.starts_with("cfg.yaml:3:"), "{e}");
        let c =
            parse("images:\n  - name: a\n    image: x/y:1.0\n    policy: {semver: '*'}\n").unwrap();
        let e = c.watched(Path::new("cfg.yaml")).unwrap_err().to_string();
        assert!(e.contains("without a tag"), "{e}");
    }

    #[test]
    fn duplicate_names_are_errors() {
        let c = parse(
            "images:\n  - {name: a, image: x/y, policy: {semver: '*'}}\n  - {name: a, image: x/z, policy: {semver: '*'}}\n",
        )
        .unwrap();
        let e = c.watched(Path::new("cfg.yaml")).unwrap_err().to_string();
        assert!(e.starts_with("cfg.yaml:3:"), "{e}");
        assert!(e.contains("duplicate"), "{e}");
    }

    #[test]
    fn the_wildcard_entry_is_compiled_apart_and_outdated_defaults_on() {
        let file = Path::new("cfg.yaml");
        let c = parse(
            "outdated: false\nimages:\n  - {name: api, image: ghcr.io/a/api, policy: {update: patch}}\n  - {name: all, image: '*', policy: {update: minor}}\n",
        )
        .unwrap();
        assert!(!c.outdated_report());
        let watched = c.watched(file).unwrap();
        assert_eq!(watched.len(), 1);
        assert!(watched[0].policy.is_relative());
        let w = c.wildcard(file).unwrap().expect("the * entry");
        let g = w.govern(ImageRef::parse("docker.io/library/nginx").unwrap());
        assert_eq!(g.name, "all/docker.io/library/nginx");
        assert!(g.policy.is_relative());
        assert!(parse("").unwrap().outdated_report());
        assert!(parse("").unwrap().wildcard(file).unwrap().is_none());

        for (yaml, want) in [
            (
                "images:\n  - {name: a, image: '*', policy: {update: minor}}\n  - {name: b, image: '*', policy: {update: major}}\n",
                "cfg.yaml:3:",
            ),
            (
                "images:\n  - {name: a, image: '*', policy: {update: minor}, helm: [{tag: image.tag}]}\n",
                "helm",
            ),
            (
                "images:\n  - {name: a, image: '*', policy: {update: minro}}\n",
                "\"minro\"",
            ),
            (
                "images:\n  - {name: a, image: ghcr.io/a/a, policy: {semver: '*'}}\n  - {name: a, image: '*', policy: {update: minor}}\n",
                "duplicate",
            ),
        ] {
            let e = parse(yaml).unwrap().wildcard(file).unwrap_err().to_string();
            assert!(e.contains(want), "{yaml}: {e}");
        }
        let e = parse("outdated: maybe\n").unwrap_err().to_string();
        assert!(e.starts_with("cfg.yaml:1:"), "{e}");
    }

    #[test]
    fn image_patterns_normalise_like_references() {
        let prefix = |s: &str| match ImagePattern::parse(s) {
            Ok(ImagePattern::Prefix(p)) => p,
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(prefix("ghcr.io/acme/*"), "ghcr.io/acme/");
        assert_eq!(prefix("ghcr.io/*"), "ghcr.io/");
        assert_eq!(prefix("acme/*"), "docker.io/acme/");
        assert_eq!(prefix("library/*"), "docker.io/library/");
        assert_eq!(prefix("docker.io/*"), "docker.io/");
        assert_eq!(prefix("index.docker.io/acme/*"), "docker.io/acme/");
        assert_eq!(prefix("localhost:5000/team/*"), "localhost:5000/team/");
        assert_eq!(ImagePattern::parse("*"), Ok(ImagePattern::All));
        assert!(matches!(
            ImagePattern::parse("nginx"),
            Ok(ImagePattern::Exact(r)) if r.canonical_name() == "docker.io/library/nginx"
        ));
        for bad in [
            "ghcr.io/acme*",
            "ghcr.io/*/web",
            "ghcr.io/acme/**",
            "*/web",
            "ghcr.io/acme/*:1.0",
            "**",
            "/*",
        ] {
            let e = ImagePattern::parse(bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
        }
        assert!(ImagePattern::parse("ghcr.io/acme/*:1.0")
            .unwrap_err()
            .contains("last path segment"));
        assert!(ImagePattern::parse("Bad/*")
            .unwrap_err()
            .contains("not a repository path"));
    }

    #[test]
    fn the_most_specific_entry_governs() {
        let file = Path::new("cfg.yaml");
        let c = parse(
            "images:\n  - {name: acme, image: 'ghcr.io/acme/*', policy: {semver: '^1'}}\n  - {name: team, image: 'ghcr.io/acme/team/*', policy: {semver: '^2'}}\n  - {name: team-dev, image: 'ghcr.io/acme/team/*', policy: {semver: '*'}, files: ['dev/**']}\n  - {name: ghcr, image: 'ghcr.io/*', policy: {update: minor}}\n  - {name: web, image: ghcr.io/acme/web, policy: {semver: '~1.2'}}\n  - {name: all, image: '*', policy: {update: patch}}\n",
        )
        .unwrap();
        let prefixes = c.prefixes(file).unwrap();
        let names = |repo: &str| -> Vec<String> {
            most_specific(&prefixes, repo)
                .iter()
                .map(|w| w.name.clone())
                .collect()
        };
        assert_eq!(names("ghcr.io/acme/api"), ["acme"]);
        assert_eq!(names("ghcr.io/acme/team/api"), ["team", "team-dev"]);
        assert_eq!(names("ghcr.io/other/api"), ["ghcr"]);
        assert!(names("docker.io/library/nginx").is_empty());
        // A prefix is whole path segments: ghcr.io/acmecorp is not under ghcr.io/acme/.
        assert_eq!(names("ghcr.io/acmecorp/api"), ["ghcr"]);
        // The exact entry is compiled apart, and so is "*".
        let watched = c.watched(file).unwrap();
        assert_eq!(watched.len(), 1);
        assert_eq!(c.wildcard(file).unwrap().unwrap().name, "all");
        // A governor made from a prefix entry is named after the part its `*` stands for.
        let g = prefixes[1].govern(ImageRef::parse("ghcr.io/acme/team/api").unwrap());
        assert_eq!(g.name, "team/api");
        assert_eq!(g.rule.as_deref(), Some("ghcr.io/acme/team/*"));
        let g = c
            .wildcard(file)
            .unwrap()
            .unwrap()
            .govern(ImageRef::parse("nginx").unwrap());
        assert_eq!(g.name, "all/docker.io/library/nginx");
        assert_eq!(g.rule.as_deref(), Some("*"));
        assert_eq!(watched[0].rule, None);
    }

    #[test]
    fn bad_prefix_entries_name_file_and_line() {
        let file = Path::new("cfg.yaml");
        for (yaml, want) in [
            (
                "images:\n  - name: a\n    image: 'ghcr.io/*/web'\n    policy: {semver: '*'}\n",
                "cfg.yaml:3:12: images[].image \"ghcr.io/*/web\": '*' may only be",
            ),
            (
                "images:\n  - name: a\n    image: 'ghcr.io/acme*'\n    policy: {semver: '*'}\n",
                "cfg.yaml:3:12: images[].image \"ghcr.io/acme*\"",
            ),
            (
                "images:\n  - {name: a, image: 'ghcr.io/a/*', policy: {semver: '*'}}\n  - {name: a, image: 'ghcr.io/b/*', policy: {semver: '*'}}\n",
                "cfg.yaml:3:",
            ),
            (
                "images:\n  - {name: a, image: 'ghcr.io/a/*', policy: {semver: '*'}, helm: [{tag: image.tag}]}\n",
                "cannot be used with image \"ghcr.io/a/*\"",
            ),
        ] {
            let c = parse(yaml).unwrap();
            let e = c
                .watched(file)
                .and_then(|_| c.prefixes(file))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{yaml}: {e}");
        }
    }

    #[test]
    fn versioning_is_read_and_checked() {
        let file = Path::new("cfg.yaml");
        // Without a policy, versioning: docker moves to any newer tag of the current shape.
        let c = parse("images:\n  - {name: a, image: x/y, versioning: docker}\n").unwrap();
        let w = c.watched(file).unwrap();
        assert!(w[0].policy.is_relative());
        let seen = w[0].policy.relative_to(Some("1.25-alpine"));
        let tags: Vec<String> = ["1.26-alpine", "1.26.1-alpine", "1.27", "latest"]
            .map(String::from)
            .to_vec();
        assert_eq!(seen.select(&tags).latest.as_deref(), Some("1.26-alpine"));
        // semver is the default and the spelled-out default.
        let c = parse(
            "images:\n  - {name: a, image: x/y, versioning: semver, policy: {semver: '*'}}\n",
        )
        .unwrap();
        assert!(!c.watched(file).unwrap()[0].policy.is_relative());
        for (yaml, want) in [
            (
                "images:\n  - {name: a, image: x/y}\n",
                "cfg.yaml:2:12: images[] entry \"a\" has no policy",
            ),
            (
                "images:\n  - {name: a, image: x/y, versioning: docker, policy: {numerical: asc}}\n",
                "cfg.yaml:2:39: versioning: docker reads tags as versions",
            ),
        ] {
            let e = parse(yaml).unwrap().watched(file).unwrap_err().to_string();
            assert!(e.starts_with(want), "{yaml}: {e}");
        }
        let e = parse("images:\n  - {name: a, image: x/y, versioning: dockr}\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("cfg.yaml:2:") && e.contains("dockr") && e.contains("docker"),
            "{e}"
        );
    }

    #[test]
    fn a_helm_spec_key_stands_alone() {
        let file = Path::new("cfg.yaml");
        let c = parse(
            "images:\n  - {name: a, image: x/y, policy: {semver: '*'}, helm: [{spec: images.a}]}\n",
        )
        .unwrap();
        c.watched(file).unwrap();
        assert_eq!(c.scan_options().helm[0].spec.as_deref(), Some("images.a"));
        let c = parse("images:\n  - {name: a, image: x/y, policy: {semver: '*'}, helm: [{spec: images.a, tag: images.t}]}\n")
            .unwrap();
        let e = c.watched(file).unwrap_err().to_string();
        assert!(e.starts_with("cfg.yaml:2:") && e.contains("spec"), "{e}");
    }
}
