//! Fuzz the image reference parser, [`ImageRef::parse`], on arbitrary text.
//!
//! Checked on every input: nothing panics; an accepted reference has no whitespace or control
//! characters anywhere, its tag is a valid OCI tag and its digest `algorithm:hex`; and the text
//! it would write back ([`ImageRef::with_tag`]) parses to the same reference.

#![no_main]

use image_updater::reference::ImageRef;
use libfuzzer_sys::fuzz_target;

fn oci_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(r) = ImageRef::parse(text) else {
        return;
    };
    for s in [&r.registry, &r.repository, &r.written_name] {
        assert!(
            !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || c.is_control()),
            "{text:?} -> {r:?}"
        );
        assert!(
            !s.contains(['"', '\'', '#', '{', '}', '$', '`', ';', '|', '&', '\\']),
            "{text:?} -> {r:?}"
        );
    }
    if let Some(t) = &r.tag {
        assert!(oci_tag(t), "{text:?} -> tag {t:?}");
    }
    if let Some(d) = &r.digest {
        let (alg, hex) = d.split_once(':').expect("a digest has a ':'");
        assert!(
            !alg.is_empty() && !hex.is_empty(),
            "{text:?} -> digest {d:?}"
        );
        assert!(
            !d.contains(|c: char| c.is_whitespace() || c.is_control()),
            "{d:?}"
        );
    }
    let _ = r.canonical_name();
    let _ = r.to_string();
    if let Some(t) = &r.tag {
        let back = r.with_tag(t, r.digest.as_deref());
        let again = ImageRef::parse(&back).unwrap_or_else(|e| panic!("{back:?}: {e}"));
        assert_eq!(again, r, "{text:?} written back as {back:?}");
    }
    // The canonical name parses too and names the same repository, unless normalising
    // (`docker.io/library/` in front) took it past the 255-character limit on names.
    if r.canonical_name().len() > 255 {
        return;
    }
    let canon = ImageRef::parse(&r.canonical_name())
        .unwrap_or_else(|e| panic!("canonical name of {text:?}: {e}"));
    assert_eq!(canon.canonical_name(), r.canonical_name(), "{text:?}");
});
