//! Fuzz the config loader: [`Config::parse`] on arbitrary text, then [`Config::watched`],
//! which compiles references, policies, filters and globs, and [`Config::scan_options`].
//!
//! Checked on every input: nothing panics or hangs (alias bombs, deep nesting and huge
//! numbers must come back as errors or values), and every watched image's reference has no
//! tag or digest.

#![no_main]

use std::path::Path;

use image_updater::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = Path::new(".image-updater.yaml");
    let Ok(config) = Config::parse(file, text) else {
        return;
    };
    let _ = config.scan_options();
    if let Ok(watched) = config.watched(file) {
        for w in &watched {
            assert!(w.image.tag.is_none() && w.image.digest.is_none(), "{w:?}");
            assert!(!w.name.is_empty());
        }
    }
});
