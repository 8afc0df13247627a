//! Fuzz the config loader: `Config::parse`, `Config::watched`, `Config::scan_options`.
//! The checks live in the library, [`image_updater::fuzzing::config`], so that
//! `tests/fuzz_regressions.rs` replays the seeds and every kept crash through the same code.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| image_updater::fuzzing::config(data));
