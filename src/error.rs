//! The one error a run or `tags` ends with, and the exit code each kind maps to (the product
//! contract: 1 a failure, 2 a usage or config error with nothing touched). Problems with
//! single images or files are not errors here: they are entries of the report.

use crate::config::ConfigError;

/// What went wrong before any work could be done; each variant maps to an exit code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad config or bad arguments: exit 2, nothing touched.
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Usage(String),
    /// Something failed that is not the user's input: exit 1.
    #[error("{0}")]
    Failed(String),
}

impl Error {
    /// The process exit code of the product contract.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) | Error::Usage(_) => 2,
            Error::Failed(_) => 1,
        }
    }
}
