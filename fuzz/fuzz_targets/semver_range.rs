//! Fuzz the semver range parser, `Constraint::parse`, and matching a tag against it.
//! The checks live in the library, [`image_updater::fuzzing::semver_range`], so that
//! `tests/fuzz_regressions.rs` replays the seeds and every kept crash through the same code.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| image_updater::fuzzing::semver_range(data));
