//! Promotion through environments (issue 22), with Git as the only record.
//!
//! Each stage owns files (`paths`) and delivers its own way (`mode`). The first stage's
//! candidates come from the policies, as a run without stages would pick them (restricted to
//! its files, and to images old enough with `min_age`). A later stage's candidate for an image
//! is the version its upstream (`from`) holds in its own files on the base branch, once held
//! without a break for `soak`: the time is the committer time of the first-parent commit that
//! brought the version into the upstream's files ([`history`]). No cluster, database or state
//! file is read; a stage never takes a version its upstream has not held.
//!
//! `together` moves images in one commit or pull request, and only all at once. `promote`
//! ([`Promote`]) takes the upstream's version now: soak is ignored only with `--force`, the
//! commit says who asked and why, and a move backwards locks the image as `set` does.
//!
//! - [`spec`]: the `stages:` config and its checks.
//! - [`history`]: what each stage holds and since when, from first-parent history; shallow
//!   clones deepened.
//! - [`run`]: each stage's pass, its delivery and its part of the report.

mod history;
mod run;
pub mod spec;

pub use spec::{parse_duration, Stage, StageConfig};

pub(crate) use run::execute;

/// `promote STAGE [IMAGE] [--force] [--reason TEXT]`.
#[derive(Debug, Clone, Default)]
pub struct Promote {
    pub stage: String,
    /// An `images[].name` (or Flux policy name) or a repository; every image when `None`.
    pub image: Option<String>,
    /// Ignore the soak time.
    pub force: bool,
    pub reason: Option<String>,
}

/// `secs` since the Unix epoch in RFC 3339 (UTC).
pub(crate) fn rfc3339(secs: i64) -> String {
    crate::locks::rfc3339(secs)
}
