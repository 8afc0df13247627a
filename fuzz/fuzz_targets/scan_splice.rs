//! Fuzz the scan-and-splice path: [`scan_file`] on arbitrary text under every file name that
//! switches a format on, then [`apply_edits`] of new values on the scalars it found.
//!
//! Input layout: byte 0 picks the file name, byte 1 seeds the choice of scalars and new
//! values, the rest is the file's text (invalid UTF-8 is ignored). Checked on every input:
//! nothing panics; every site's scalar spans lie on char boundaries, hold their values and do
//! not overlap; and when a splice is accepted, the bytes outside the edited spans are
//! identical, the result scans again, and its scalars hold the new values.

#![no_main]

use std::path::Path;

use image_updater::manifest::edit::{apply_edits, Edit};
use image_updater::manifest::scan::{events, EventKind};
use image_updater::manifest::{scan_file, Found, ScanOptions};
use libfuzzer_sys::fuzz_target;

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

fn options() -> ScanOptions {
    use image_updater::manifest::HelmKeys;
    let keys = HelmKeys {
        registry: Some("image.registry".into()),
        repository: Some("image.repository".into()),
        tag: Some("app.ver".into()),
        digest: None,
    };
    ScanOptions {
        helm: vec![keys.clone()],
        argocd_helm_params: vec![HelmKeys {
            tag: Some("image.tag".into()),
            ..keys
        }],
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let name = NAMES[data[0] as usize % NAMES.len()];
    let mut seed = u32::from(data[1]).wrapping_mul(2_654_435_761) | 1;
    let Ok(text) = std::str::from_utf8(&data[2..]) else {
        return;
    };
    let opts = options();
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
        assert!(text.is_char_boundary(f.span.start) && text.is_char_boundary(f.span.end));
        assert!(f.span.end <= text.len());
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
    // Bytes outside the edited spans are identical, and each edited span now holds one
    // scalar with the new value.
    let scalars: Vec<(std::ops::Range<usize>, String)> = events(&out)
        .expect("an accepted splice parses")
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
        assert_eq!(text[old_at..e.span.start], out[new_at..new_at + gap]);
        new_at += gap;
        let (span, value) = scalars
            .iter()
            .find(|(s, _)| s.start == new_at)
            .expect("an edited scalar starts where the old one did");
        assert_eq!(value, &e.new_value);
        new_at = span.end;
        old_at = e.span.end;
    }
    assert_eq!(text[old_at..], out[new_at..]);
    assert_eq!(edits.is_empty(), text == out);
    // The result scans again, under the same name.
    let again = scan_file(Path::new(name), &out, &opts);
    assert!(again.is_ok(), "{again:?}\n{out:?}");
});
