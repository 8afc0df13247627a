//! The command line: clap derive, with `IMAGE_UPDATER_*` environment variables behind every
//! flag that CI users set.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::report::Format;
use crate::Shard;

#[derive(Debug, Parser)]
#[command(
    name = "image-updater",
    version,
    about = "Watch registries for new image tags and rewrite a GitOps repo's manifests, byte-exactly"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Cmd,
}

/// Flags every subcommand takes, before or after its name.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// Report format
    #[arg(long, global = true, env = "IMAGE_UPDATER_OUTPUT", value_enum, default_value_t = Format::Text)]
    pub output: Format,
    /// More logging on stderr (repeat for more)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr
    #[arg(short, long, global = true, env = "IMAGE_UPDATER_QUIET")]
    pub quiet: bool,
    /// Log events on stderr as text, or as one JSON object a line (for CI log processors)
    #[arg(long, global = true, env = "IMAGE_UPDATER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// No colour in output (also when NO_COLOR is set)
    #[arg(long, global = true)]
    pub no_color: bool,
    /// Config file [default: .image-updater.yaml at PATH; for tags, in the current directory; optional there]
    #[arg(long, global = true, env = "IMAGE_UPDATER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// What `run` and `plan` take beyond the repository: which images, how to deliver, and
/// where the repository comes from.
#[derive(Debug, Default, Args)]
pub struct JobArgs {
    /// Handle only this share of the images: I/N, I from 1 to N (as GitLab's CI_NODE_INDEX/CI_NODE_TOTAL)
    #[arg(long, env = "IMAGE_UPDATER_SHARD", value_name = "I/N")]
    pub shard: Option<Shard>,
    /// Deliver this way instead of the config's delivery.mode
    #[arg(long, env = "IMAGE_UPDATER_MODE", value_enum)]
    pub mode: Option<crate::config::DeliveryMode>,
    /// Work on a fresh clone of URL instead of PATH
    #[arg(long, env = "IMAGE_UPDATER_CLONE", value_name = "URL")]
    pub clone: Option<String>,
    /// The branch to clone with --clone [default: the remote's HEAD]
    #[arg(long, env = "IMAGE_UPDATER_BRANCH")]
    pub branch: Option<String>,
    /// Only this promotion stage (a `stages:` name)
    #[arg(long, env = "IMAGE_UPDATER_STAGE", value_name = "NAME")]
    pub stage: Option<String>,
}

/// What `set`, `lock` and `unlock` take beyond their arguments.
#[derive(Debug, Default, Args)]
pub struct VerbArgs {
    /// Deliver this way instead of the config's delivery.mode (none: show the diff, write nothing)
    #[arg(long, env = "IMAGE_UPDATER_MODE", value_enum)]
    pub mode: Option<crate::config::DeliveryMode>,
}

/// How log events are written (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// The whole job: rewrite and deliver per delivery.mode
    Run {
        /// The git work tree whose manifests are updated (not read with --clone)
        #[arg(default_value = ".", env = "IMAGE_UPDATER_PATH")]
        path: PathBuf,
        #[command(flatten)]
        job: JobArgs,
    },
    /// Show the updates and a unified diff; write nothing
    Plan {
        /// The git work tree whose manifests are read (not read with --clone)
        #[arg(default_value = ".", env = "IMAGE_UPDATER_PATH")]
        path: PathBuf,
        #[command(flatten)]
        job: JobArgs,
        /// Exit 3 when updates are pending
        #[arg(long, env = "IMAGE_UPDATER_EXIT_CODE")]
        exit_code: bool,
    },
    /// List every image reference found and the policy that governs it
    Scan {
        /// The directory whose manifests are listed (a git work tree or not)
        #[arg(default_value = ".", env = "IMAGE_UPDATER_PATH")]
        path: PathBuf,
    },
    /// Set every reference of IMAGE to TAG (the tag must be in the registry) and deliver; a move to a lower version also locks the image
    Set {
        /// IMAGE:TAG, e.g. ghcr.io/acme/web:1.4.2
        #[arg(value_name = "IMAGE:TAG")]
        image: String,
        /// The git work tree whose references are set
        #[arg(default_value = ".", env = "IMAGE_UPDATER_PATH")]
        path: PathBuf,
        /// Only the references in files matching this glob (relative to PATH)
        #[arg(long, value_name = "GLOB")]
        files: Option<String>,
        /// Do not lock the image when the new tag is a lower version
        #[arg(long)]
        no_lock: bool,
        #[command(flatten)]
        verb: VerbArgs,
    },
    /// Hold IMAGE where it is: no run moves it until `unlock` (the lock is committed to Git)
    Lock {
        /// The image repository, without a tag (ghcr.io/acme/web)
        image: String,
        /// The git work tree holding the lock
        #[arg(default_value = ".", env = "IMAGE_UPDATER_PATH")]
        path: PathBuf,
        /// Why, shown by every run that leaves the image alone
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
        #[command(flatten)]
        verb: VerbArgs,
    },
    /// Promote into STAGE now what its upstream stage holds (soak ignored only with --force); a move backwards also locks the image
    Promote {
        /// The stage promoted into (a `stages:` name with `from`)
        stage: String,
        /// Only this image (an images[].name or a repository) [default: every image of the stage]
        image: Option<String>,
        /// The git work tree (not read with --clone)
        #[arg(long, default_value = ".", env = "IMAGE_UPDATER_PATH")]
        path: PathBuf,
        /// Promote even when the upstream has not held the version for the soak time
        #[arg(long)]
        force: bool,
        /// Why, recorded in the commit message (and the lock of a move backwards)
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
        #[command(flatten)]
        verb: VerbArgs,
    },
    /// Release the lock of IMAGE
    Unlock {
        /// The image repository, without a tag (ghcr.io/acme/web)
        image: String,
        /// The git work tree holding the lock
        #[arg(default_value = ".", env = "IMAGE_UPDATER_PATH")]
        path: PathBuf,
        #[command(flatten)]
        verb: VerbArgs,
    },
    /// List the tags of IMAGE that pass a policy, best first, marking the pick (-v: why the others were dropped)
    Tags {
        /// A repository (ghcr.io/acme/web) or an OCI layout directory (oci-layout:PATH)
        image: String,
        #[command(flatten)]
        policy: PolicyArgs,
        /// Rank only tags this regex matches (unanchored)
        #[arg(long, value_name = "REGEX")]
        filter: Option<String>,
        /// Rank by this template of the filter's groups ($1, $name, ${name})
        #[arg(long, value_name = "TEMPLATE", requires = "filter")]
        extract: Option<String>,
        /// Glob of tags to leave out (repeatable)
        #[arg(long, value_name = "GLOB")]
        exclude: Vec<String>,
        /// Read tags from FILE (one a line; - for stdin) instead of the registry
        #[arg(long, value_name = "FILE")]
        tags_from: Option<PathBuf>,
        /// How tags are read: semver, or docker (the --current tag's suffix and precision kept)
        #[arg(long, value_enum, default_value = "semver")]
        versioning: crate::policy::Versioning,
        /// The tag now in the manifest: the policy is seen from it, and the report says what a
        /// run writes in its place (needed by --versioning docker)
        #[arg(long, value_name = "TAG")]
        current: Option<String>,
    },
}

/// The policy kind for `tags`; semver `*` when none is given.
#[derive(Debug, Args)]
#[group(multiple = false)]
pub struct PolicyArgs {
    /// A semver range (^1.2, ~1.2.3, >=1.0 <2, 1.x, ...)
    #[arg(long, value_name = "RANGE")]
    pub semver: Option<String>,
    /// Byte order: asc picks the greatest, desc the least
    #[arg(long, value_name = "asc|desc")]
    pub alphabetical: Option<String>,
    /// Number order: asc picks the greatest, desc the least
    #[arg(long, value_name = "asc|desc")]
    pub numerical: Option<String>,
}

impl PolicyArgs {
    /// The config's spelling of the same policy.
    pub fn spec(&self) -> crate::config::PolicySpec {
        crate::config::PolicySpec {
            semver: self.semver.clone().or_else(|| {
                (self.alphabetical.is_none() && self.numerical.is_none()).then(|| "*".into())
            }),
            alphabetical: self.alphabetical.clone(),
            numerical: self.numerical.clone(),
            digest: None,
            update: None,
        }
    }
}
