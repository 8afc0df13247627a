//! Fuzz the image reference parser, `ImageRef::parse`, on arbitrary text.
//! The checks live in the library, [`image_updater::fuzzing::reference`], so that
//! `tests/fuzz_regressions.rs` replays the seeds and every kept crash through the same code.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| image_updater::fuzzing::reference(data));
