//! Fuzz the semver range parser, [`Constraint::parse`], and matching a tag read as a version
//! ([`parse_tag`]) against it.
//!
//! Input layout: the text up to the first newline is the range, the rest is the tag.
//! Checked on every input: nothing panics; `check` agrees with `matches`; a range that
//! parses once parses again from its own text; and `*` matches every release version.

#![no_main]

use image_updater::policy::semver::{parse_tag, precedence, Constraint};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (range, tag) = text.split_once('\n').unwrap_or((text, "1.2.3"));
    let version = parse_tag(tag);
    if let Some(v) = &version {
        assert_eq!(precedence(v, v), std::cmp::Ordering::Equal);
        if v.pre.is_empty() {
            assert!(Constraint::parse("*").unwrap().matches(v), "{tag:?}");
        }
    }
    let Ok(c) = Constraint::parse(range) else {
        return;
    };
    assert_eq!(c.as_str(), range);
    let again = Constraint::parse(c.as_str()).expect("a parsed range parses again");
    if let Some(v) = &version {
        let m = c.matches(v);
        assert_eq!(m, c.check(v).is_ok(), "{range:?} on {tag:?}");
        assert_eq!(m, again.matches(v), "{range:?} on {tag:?}");
    }
});
