//! The checks of the fuzz targets, kept in the library so that the fuzzer (`fuzz/`) and the
//! regression replay (`tests/fuzz_regressions.rs`) run exactly the same code.
//!
//! Each function takes one fuzz input, runs the code under test on it, and panics when an
//! invariant breaks; returning means the input passed. An input the code under test rejects
//! (not UTF-8, not YAML, not a reference, ...) passes: rejecting is allowed, panicking,
//! hanging or accepting something wrong is not. Not part of the public API: compiled only
//! with the `fuzzing` feature (the fuzz crate and the test builds turn it on).

use std::cmp::Ordering;
use std::ops::Range;
use std::path::Path;

use crate::config::Config;
use crate::manifest::edit::{apply_edits, Edit};
use crate::manifest::scan::{events, EventKind};
use crate::manifest::{scan_file, Found, HelmKeys, ScanOptions};
use crate::policy::semver::{parse_tag, precedence, Constraint};
use crate::reference::ImageRef;

/// A fuzz target: its name (the directory under `fuzz/seeds/`, `fuzz/regressions/`) and its
/// checks.
pub struct Target {
    /// The cargo-fuzz target name.
    pub name: &'static str,
    /// Run the checks on one input; panics when one fails.
    pub check: fn(&[u8]),
}

/// Every fuzz target, by name.
pub const TARGETS: &[Target] = &[
    Target {
        name: "scan_splice",
        check: scan_splice,
    },
    Target {
        name: "reference",
        check: reference,
    },
    Target {
        name: "semver_range",
        check: semver_range,
    },
    Target {
        name: "config",
        check: config,
    },
];

/// File names that switch the formats on, picked by byte 0 of a `scan_splice` input.
const NAMES: &[&str] = &[
    "deploy.yaml",
    "values.yaml",
    "kustomization.yaml",
    "docker-compose.yml",
    "app.yaml",
    "values-prod.yml",
    "Kustomization",
    "compose.yaml",
];

/// New values spliced into the scalars found: numbers, booleans, YAML indicators, quotes,
/// whitespace, non-ASCII.
const NEW_VALUES: &[&str] = &[
    "1.2.4",
    "16.0",
    "16",
    "1.10",
    "true",
    "null",
    "ghcr.io/acme/web:2.0.0",
    "ghcr.io/acme/web:2.0.0@sha256:0123456789abcdef",
    "a: b",
    "x #y",
    "it's \"q\"",
    "",
    "tab\there",
    "-lead",
    "[x]",
    "*alias",
    " spaced ",
    "line\nbreak",
    "é:1",
    "name=ghcr.io/acme/web:1.1",
];

fn scan_options() -> ScanOptions {
    let keys = HelmKeys {
        registry: Some("image.registry".into()),
        repository: Some("image.repository".into()),
        tag: Some("app.ver".into()),
        digest: None,
        spec: None,
    };
    ScanOptions {
        helm: vec![keys.clone()],
        argocd_helm_params: vec![HelmKeys {
            tag: Some("image.tag".into()),
            ..keys
        }],
        // Issue 18: chart versions are looked for too.
        charts: true,
    }
}

/// The scan-and-splice path: [`scan_file`] on arbitrary text under a file name that switches
/// a format on, then [`apply_edits`] of new values on the scalars it found.
///
/// Input layout: byte 0 picks the file name, byte 1 seeds the choice of scalars and new
/// values, the rest is the file's text (invalid UTF-8 is ignored). Checked: nothing panics;
/// every site's scalar spans lie on char boundaries, in bounds, and do not overlap; and when a
/// splice is accepted, the bytes outside the edited spans are identical, each edited span now
/// holds one scalar with the new value, and the result scans again.
pub fn scan_splice(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let name = NAMES[data[0] as usize % NAMES.len()];
    let mut seed = u32::from(data[1]).wrapping_mul(2_654_435_761) | 1;
    let Ok(text) = std::str::from_utf8(&data[2..]) else {
        return;
    };
    let opts = scan_options();
    let Ok(scan) = scan_file(Path::new(name), text, &opts) else {
        return;
    };

    let mut found: Vec<&Found> = scan.sites.iter().flat_map(|s| s.parts.scalars()).collect();
    found.sort_by_key(|f| f.span.start);
    let mut last_end = 0;
    for f in &found {
        assert!(
            f.span.start >= last_end,
            "sites share or overlap bytes: {f:?}"
        );
        last_end = f.span.end;
        assert!(f.span.end <= text.len(), "span out of bounds: {f:?}");
        assert!(
            text.is_char_boundary(f.span.start) && text.is_char_boundary(f.span.end),
            "span not on char boundaries: {f:?}"
        );
        assert!(f.line >= 1, "{f:?}");
    }

    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed as usize
    };
    let mut edits = Vec::new();
    for f in &found {
        if next() % 3 != 0 {
            let v = NEW_VALUES[next() % NEW_VALUES.len()];
            if v != f.value {
                edits.push(Edit {
                    span: f.span.clone(),
                    new_value: v.to_string(),
                });
            }
        }
    }
    let Ok(out) = apply_edits(text, &edits) else {
        return;
    };
    let scalars: Vec<(Range<usize>, String)> = events(&out)
        .unwrap_or_else(|e| panic!("an accepted splice does not parse: {e}\n{out:?}"))
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::Scalar { value, .. } => Some((e.span, value)),
            _ => None,
        })
        .collect();
    let mut sorted: Vec<&Edit> = edits.iter().collect();
    sorted.sort_by_key(|e| e.span.start);
    let (mut old_at, mut new_at) = (0, 0);
    for e in &sorted {
        let gap = e.span.start - old_at;
        assert_eq!(
            text[old_at..e.span.start],
            out[new_at..new_at + gap],
            "bytes outside the edits changed"
        );
        new_at += gap;
        let (span, value) = scalars
            .iter()
            .find(|(s, _)| s.start == new_at)
            .unwrap_or_else(|| panic!("no scalar starts where the edit at {:?} did", e.span));
        assert_eq!(value, &e.new_value, "the edited scalar's value");
        new_at = span.end;
        old_at = e.span.end;
    }
    assert_eq!(text[old_at..], out[new_at..], "bytes after the last edit");
    assert_eq!(edits.is_empty(), text == out, "an edit changed nothing");
    let again = scan_file(Path::new(name), &out, &opts);
    assert!(
        again.is_ok(),
        "the splice does not scan again: {again:?}\n{out:?}"
    );
}

fn oci_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// The image reference parser, [`ImageRef::parse`], on arbitrary text.
///
/// Checked: nothing panics; an accepted reference has no whitespace, control or shell/YAML
/// meta characters in its names, its tag is a valid OCI tag and its digest `algorithm:hex`;
/// the text it would write back ([`ImageRef::with_tag`]) parses to the same reference; and its
/// canonical name parses to the same name.
pub fn reference(data: &[u8]) {
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
        let (alg, hex) = d
            .split_once(':')
            .unwrap_or_else(|| panic!("{text:?} -> digest {d:?} has no ':'"));
        assert!(
            !alg.is_empty() && !hex.is_empty(),
            "{text:?} -> digest {d:?}"
        );
        assert!(
            !d.contains(|c: char| c.is_whitespace() || c.is_control()),
            "{text:?} -> digest {d:?}"
        );
    }
    let _ = r.to_string();
    if let Some(t) = &r.tag {
        let back = r.with_tag(t, r.digest.as_deref());
        let again = ImageRef::parse(&back).unwrap_or_else(|e| panic!("{back:?}: {e}"));
        assert_eq!(again, r, "{text:?} written back as {back:?}");
    }
    // The canonical name parses too and names the same repository (the 255-character limit
    // on names holds for the normalised name, `docker.io/library/` in front, as in Docker).
    let canonical = r.canonical_name();
    let canon = ImageRef::parse(&canonical)
        .unwrap_or_else(|e| panic!("canonical name {canonical:?} of {text:?}: {e}"));
    assert_eq!(canon.canonical_name(), canonical, "{text:?}");
}

/// The semver range parser, [`Constraint::parse`], and matching a tag read as a version
/// ([`parse_tag`]) against it.
///
/// Input layout: the text up to the first newline is the range, the rest is the tag (`1.2.3`
/// without a newline). Checked: nothing panics; a version equals itself; `*` matches every
/// release; a range keeps its text and parses again from it to the same judgement; `check`
/// agrees with `matches`.
pub fn semver_range(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (range, tag) = text.split_once('\n').unwrap_or((text, "1.2.3"));
    let version = parse_tag(tag);
    if let Some(v) = &version {
        assert_eq!(precedence(v, v), Ordering::Equal, "{tag:?}");
        if v.pre.is_empty() {
            let any = Constraint::parse("*").expect("`*` is a range");
            assert!(any.matches(v), "`*` does not match {tag:?}");
        }
    }
    let Ok(c) = Constraint::parse(range) else {
        return;
    };
    assert_eq!(c.as_str(), range);
    let again = Constraint::parse(c.as_str())
        .unwrap_or_else(|e| panic!("{range:?} parsed once, not again: {e}"));
    if let Some(v) = &version {
        let m = c.matches(v);
        assert_eq!(m, c.check(v).is_ok(), "{range:?} on {tag:?}");
        assert_eq!(m, again.matches(v), "{range:?} on {tag:?}");
    }
}

/// The config loader: [`Config::parse`] on arbitrary text, then [`Config::watched`], which
/// compiles references, policies, filters and globs, and [`Config::scan_options`].
///
/// Checked: nothing panics or hangs (alias bombs, deep nesting and huge numbers must come back
/// as errors or values), and every watched image has a name and a reference without a tag or
/// digest.
pub fn config(data: &[u8]) {
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
            assert!(
                w.image.tag.is_none() && w.image.digest.is_none(),
                "a watched image with a tag or digest: {w:?}"
            );
            assert!(!w.name.is_empty(), "a watched image without a name: {w:?}");
        }
    }
}
