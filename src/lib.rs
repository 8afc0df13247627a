//! image-updater: watch registries for new image tags and rewrite a GitOps repo's manifests.
//!
//! The pipeline, stage by stage, with plain data between the stages; [`pipeline`] runs them
//! in order for `run`, `plan` and `scan` ([`execute`]), [`tags`] serves `tags` ([`list_tags`]):
//!
//! ```text
//! discover (manifest) ─► resolve (registry) ─► select (policy) ─► rewrite (manifest) ─► deliver (git, forge)
//! ```
//!
//! A caller takes the environment once ([`Env::from_process`]) and passes it in the
//! [`Request`]; a run ends in an [`Outcome`] or an [`Error`] with its exit code.

// The entry points and the stages.
/// Argo CD Image Updater's Applications and ImageUpdaters as policies, and their write-back.
mod argocd_objects;
/// Deliver: one commit, or a pull request per group, and what landed.
mod deliver;
/// Discover: read the files, find the references and the policy governing each.
mod discover;
/// The `outdated` report and the `image: "*"` entry: references no policy governs.
mod outdated;
/// Executing a request: the stages in order, and the report built from what they found.
pub mod pipeline;
/// Resolve: the watched repositories' tag lists, digests and platforms.
mod resolve;
/// Select: the policy's pick for each reference, as changes per file.
mod select;
/// Promotion through environments: stages, soak times, images that move together.
pub mod stages;
/// The `tags` command: one image's tags that pass a policy.
pub mod tags;
pub mod verbs;

// What the stages are made of.
/// `.image-updater.yaml`: the schema and its validation.
pub mod charts; // issue 18: Helm charts as governed references
pub mod config;
/// Flux objects' scope and delivery settings: ImageUpdateAutomation, scoped ImagePolicies.
mod flux_repo;
/// Flux's `messageTemplate`: a Go text/template subset.
mod flux_template;
/// Issue 21: Flux v1 annotations as policies.
mod flux_v1;
/// Forges: GitHub, GitLab and Gitea pull requests.
pub mod forge;
/// Git: open or clone, commit, push, credentials and host keys.
pub mod git;
/// Manifest formats: finding references and splicing them byte-exactly.
pub mod manifest;
/// Which tag wins: semver ranges, orders, filters, digests.
pub mod policy;
/// Image references: parsing and normalisation.
pub mod reference;
/// Where tags come from: registries over HTTP, OCI layout directories, credentials.
pub mod registry;
/// Templates: commit messages, pull-request titles, branch names.
mod template;

// The edges: input, output, and what is shared.
/// What CI systems read back: outputs, summaries, annotations.
pub mod ci;
/// The command line.
pub mod cli;
/// The process environment, read once.
pub mod env;
/// The run's error and its exit code.
pub mod error;
/// Escaping names and messages for each place they are written.
pub mod escape;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod http;
pub mod locks;
/// Logging of the stages and the progress line.
pub mod observe;
mod parallel;
/// The report and its renderings.
pub mod report;
/// Tokens and passwords: one type that never prints.
pub mod secret;
/// `--shard I/N` and the stable hash behind it.
pub mod shard;

pub use env::Env;
pub use error::Error;
pub use pipeline::{execute, load_config, unified_diff, Command, Outcome, Request};
pub use shard::Shard;
pub use tags::{list_tags, TagInput};
pub use template::{commit_message, fill_template};
