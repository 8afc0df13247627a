//! The integration tests: one binary, one module per area, all run against the built
//! `image-updater` binary and real servers started on loopback ports (see `common`).
//!
//! The system group — tests that need root, buildah or the musl target — is `#[ignore]`d
//! with the reason, so a plain `cargo test` lists them as not run;
//! `scripts/test.sh` (what CI runs) includes them (`-- --include-ignored`).

mod ci_common;
mod common;

mod app_changes;
mod argocd_objects;
mod bench_smoke;
mod charts;
mod ci_action;
mod ci_files;
mod ci_gitlab;
mod ci_static;
mod docker_versioning;
mod downgrade;
mod e2e;
mod flux_objects;
mod flux_v1;
mod fuzz_regressions;
mod manifests;
mod mermaid_report;
mod observability;
mod outdated;
mod prefix_policies;
mod promote;
mod pull_requests;
mod pull_requests_remotes;
mod registry_auth;
mod registry_faults;
mod registry_manifests;
mod registry_paging;
mod registry_run;
mod registry_tls;
mod security_bad_inputs;
mod security_concurrency;
mod security_files;
mod security_hostile;
mod security_kill;
mod security_output;
mod security_secrets;
mod security_worktree;
mod signing;
mod stages;
mod surface;
mod verbs;
