//! Fuzz the scan-and-splice path: `scan_file` on arbitrary text under every file name
//! that switches a format on, then `apply_edits` of new values on the scalars it found.
//! The checks live in the library, [`image_updater::fuzzing::scan_splice`], so that
//! `tests/fuzz_regressions.rs` replays the seeds and every kept crash through the same code.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| image_updater::fuzzing::scan_splice(data));
