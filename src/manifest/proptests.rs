//! Property tests of the scan-and-splice path: generated manifests in every format, with
//! comments (non-ASCII, tabs, markers), quoting styles, flow and block layouts, anchors,
//! block scalars, CRLF, a BOM, `---`/`...` and no final newline; random edits of the sites
//! found must change exactly the edited scalars' bytes and parse again. Arbitrary input must
//! never panic.

use std::path::Path as FsPath;

use proptest::prelude::*;

use super::edit::{apply_edits, Edit};
use super::{scan, scan_file, Found, ScanOptions};

/// Choices drawn from a tape of random numbers.
struct Tape<'a> {
    tape: &'a [u32],
    at: usize,
}

impl Tape<'_> {
    fn next(&mut self, n: usize) -> usize {
        let v = self.tape.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        v as usize % n.max(1)
    }
    fn flip(&mut self) -> bool {
        self.next(2) == 1
    }
    fn pick<'b, T>(&mut self, items: &'b [T]) -> &'b T {
        &items[self.next(items.len())]
    }
    fn word(&mut self, items: &[&'static str]) -> &'static str {
        items[self.next(items.len())]
    }
}

const COMMENTS: &[&str] = &[
    "# plain comment",
    "# größer: äöü — 日本語",
    "#\ttab\tcomment",
    "# image: fake:1 # nested",
    "#",
    "# {\"$imagepolicy\": \"flux-system:web\"}",
    "# {\"$imagepolicy\": \"flux-system:web:tag\"}",
];

const IMAGES: &[&str] = &[
    "ghcr.io/acme/web:1.2.3",
    "nginx",
    "registry.example.com:5000/team/app:2024.01.02",
    "docker.io/library/redis:7@sha256:0123abcd",
    "acme/ü-app:v1",
];

const TAGS: &[&str] = &["1.2.3", "15.4", "16", "v1.0.0-rc.1", "latest", "1.10"];

const NEW_VALUES: &[&str] = &[
    "1.2.4",
    "15.5",
    "16.0",
    "1.10",
    "true",
    "null",
    "a: b",
    "x #y",
    "it's \"quoted\"",
    "é:1",
    "ghcr.io/acme/new:2.0.0@sha256:abcd",
    "",
    "tab\there",
    "-lead",
    "[x]",
    "{y}",
    "*alias",
    "  spaced  ",
    "line\nbreak",
    "k8s.gcr.io/x:1,2",
];

/// A scalar token for `value` in a random style it can be written in.
fn token(t: &mut Tape, value: &str) -> String {
    match t.next(3) {
        0 if super::edit::plain_safe(value) => value.to_owned(),
        1 => format!("'{}'", value.replace('\'', "''")),
        _ => format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\"")),
    }
}

fn token_of(t: &mut Tape, values: &[&'static str]) -> String {
    let value = t.word(values);
    token(t, value)
}

fn trailing(t: &mut Tape) -> String {
    if t.next(3) == 0 {
        format!("{}{}", t.pick(&[" ", "  ", "\t", " \t "]), t.word(COMMENTS))
    } else {
        String::new()
    }
}

/// One generated file: its name and text.
fn generate(t: &mut Tape) -> (String, String) {
    let name = t
        .pick(&[
            "deploy.yaml",
            "values.yaml",
            "kustomization.yaml",
            "docker-compose.yml",
            "release.yaml",
        ])
        .to_string();
    let eol = if t.flip() { "\r\n" } else { "\n" };
    let ind = " ".repeat(*t.pick(&[2usize, 4]));
    let mut lines: Vec<String> = Vec::new();
    if t.flip() {
        lines.push(t.word(COMMENTS).to_string());
    }
    let docs = 1 + t.next(3);
    for d in 0..docs {
        if d > 0 || t.flip() {
            lines.push(format!("---{}", trailing(t)));
        }
        let blocks = 1 + t.next(4);
        for b in 0..blocks {
            if t.next(4) == 0 {
                lines.push(format!("{ind}{}", t.word(COMMENTS)).trim_start().to_owned());
            }
            if t.next(5) == 0 {
                lines.push(String::new());
            }
            // Blocks with fixed top-level keys (kustomize, compose, HelmRelease) come alone.
            let kind = if b == 0 { t.next(8) } else { t.next(4) };
            match kind {
                0 => {
                    // Workload with block or flow containers.
                    lines.push(format!("spec{b}:{}", trailing(t)));
                    lines.push(format!("{ind}containers:"));
                    let n = 1 + t.next(3);
                    if t.flip() {
                        let items: Vec<String> = (0..n)
                            .map(|i| {
                                let image = t.word(IMAGES);
                                let image = token(t, image);
                                format!("{{name: c{i}, image: {image}}}")
                            })
                            .collect();
                        lines.pop();
                        lines.push(format!(
                            "{ind}containers: [{}]{}",
                            items.join(", "),
                            trailing(t)
                        ));
                    } else {
                        let dash = if t.flip() { ind.clone() } else { String::new() };
                        for i in 0..n {
                            lines.push(format!("{ind}{dash}- name: c{i}{}", trailing(t)));
                            let image = t.word(IMAGES);
                            let image = token(t, image);
                            lines.push(format!("{ind}{dash}  image: {image}{}", trailing(t)));
                        }
                    }
                }
                1 => {
                    // Helm-style image mapping, block or flow.
                    let repo = token(t, "ghcr.io/acme/chart");
                    let tag_value = t.word(TAGS);
                    let tag = token(t, tag_value);
                    if t.flip() {
                        lines.push(format!(
                            "img{b}: {{registry: docker.io, repository: {repo}, tag: {tag}}}{}",
                            trailing(t)
                        ));
                    } else {
                        lines.push(format!("img{b}:"));
                        lines.push(format!("{ind}image:{}", trailing(t)));
                        lines.push(format!("{ind}{ind}repository: {repo}{}", trailing(t)));
                        lines.push(format!("{ind}{ind}tag: {tag}{}", trailing(t)));
                    }
                }
                2 => {
                    // Block scalar that looks like images inside, with an anchor.
                    let style = *t.pick(&["|", ">", "|-", ">+"]);
                    lines.push(format!("script{b}: {style}{}", trailing(t)));
                    lines.push(format!("{ind}image: inside:1 # not a comment"));
                    lines.push(format!("{ind}\t# tab and text"));
                    lines.push(String::new());
                    lines.push(format!("{ind}end"));
                }
                3 => {
                    // Anchored image and its alias.
                    let image = t.word(IMAGES);
                    let image = token(t, image);
                    lines.push(format!("base{b}: &img{b} {image}{}", trailing(t)));
                    lines.push(format!("spec{b}:"));
                    lines.push(format!("{ind}initContainers:"));
                    lines.push(format!("{ind}- image: *img{b}"));
                    lines.push(format!("{ind}- image: {}", token_of(t, IMAGES)));
                    if t.flip() {
                        // A whole container under an anchor, merged and aliased.
                        lines.push(format!("{ind}- &c{b}"));
                        lines.push(format!("{ind}  image: {}", token_of(t, IMAGES)));
                        lines.push(format!("{ind}- *c{b}"));
                        lines.push(format!("{ind}- <<: *c{b}"));
                        lines.push(format!("{ind}  name: merged"));
                    }
                }
                4 => {
                    // Kustomize images entries.
                    lines.push("images:".into());
                    lines.push(format!("- name: {}", token(t, "ghcr.io/acme/web")));
                    if t.flip() {
                        lines.push(format!("  newName: {}", token(t, "mirror/web")));
                    }
                    lines.push(format!("  newTag: {}{}", token_of(t, TAGS), trailing(t)));
                }
                5 => {
                    // Compose services.
                    lines.push("services:".into());
                    lines.push(format!("{ind}web{b}:"));
                    lines.push(format!(
                        "{ind}{ind}image: {}{}",
                        token_of(t, IMAGES),
                        trailing(t)
                    ));
                }
                6 => {
                    // Argo CD Application: kustomize image overrides and helm parameters.
                    lines.push("apiVersion: argoproj.io/v1alpha1".into());
                    lines.push("kind: Application".into());
                    lines.push("spec:".into());
                    lines.push(format!("{ind}source:"));
                    lines.push(format!("{ind}{ind}kustomize:"));
                    lines.push(format!("{ind}{ind}{ind}images:{}", trailing(t)));
                    lines.push(format!(
                        "{ind}{ind}{ind}- {}{}",
                        token(t, "ghcr.io/acme/web=ghcr.io/acme/web:1.0"),
                        trailing(t)
                    ));
                    lines.push(format!("{ind}{ind}{ind}- {}", token_of(t, IMAGES)));
                    lines.push(format!("{ind}{ind}helm:"));
                    lines.push(format!("{ind}{ind}{ind}parameters:"));
                    lines.push(format!(
                        "{ind}{ind}{ind}- {{name: image.repository, value: {}}}",
                        token(t, "ghcr.io/acme/api")
                    ));
                    lines.push(format!("{ind}{ind}{ind}- name: image.tag"));
                    lines.push(format!(
                        "{ind}{ind}{ind}  value: {}{}",
                        token_of(t, TAGS),
                        trailing(t)
                    ));
                }
                _ => {
                    // HelmRelease values.
                    lines.push("apiVersion: helm.toolkit.fluxcd.io/v2".into());
                    lines.push("kind: HelmRelease".into());
                    lines.push("spec:".into());
                    lines.push(format!("{ind}values:"));
                    lines.push(format!("{ind}{ind}image:"));
                    lines.push(format!(
                        "{ind}{ind}{ind}repository: {}{}",
                        token(t, "ghcr.io/acme/x"),
                        trailing(t)
                    ));
                    lines.push(format!(
                        "{ind}{ind}{ind}tag: {}{}",
                        token_of(t, TAGS),
                        trailing(t)
                    ));
                }
            }
            if kind >= 4 {
                break;
            }
        }
        if t.next(4) == 0 {
            lines.push("...".into());
        }
    }
    let mut text = lines.join(eol);
    if t.next(4) != 0 {
        text.push_str(eol);
    }
    if t.next(5) == 0 {
        text.insert(0, '\u{feff}');
    }
    (name, text)
}

/// Every scalar of every site, in source order.
fn scalars(scan: &super::FileScan) -> Vec<Found> {
    let mut v: Vec<Found> = scan
        .sites
        .iter()
        .flat_map(|s| s.parts.scalars())
        .cloned()
        .collect();
    v.sort_by_key(|f| f.span.start);
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn edits_change_only_the_edited_scalars(tape in proptest::collection::vec(any::<u32>(), 200)) {
        let mut t = Tape { tape: &tape, at: 0 };
        let (name, text) = generate(&mut t);
        let opts = ScanOptions::default();
        let before = scan_file(FsPath::new(&name), &text, &opts)
            .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let old = scalars(&before);
        let mut edits = Vec::new();
        for f in &old {
            if t.flip() {
                let v = t.word(NEW_VALUES).to_string();
                if v != f.value {
                    edits.push(Edit { span: f.span.clone(), new_value: v });
                }
            }
        }
        let out = apply_edits(&text, &edits)
            .map_err(|e| TestCaseError::fail(format!("{e}\n{text:?}\n{edits:?}")))?;
        prop_assert!(scan_file(FsPath::new(&name), &out, &opts).is_ok());
        // Scalar by scalar: the edited ones hold their new values, the others their bytes,
        // and everything between the edited spans is byte-identical.
        let scalar_events = |t: &str| -> Vec<(std::ops::Range<usize>, String)> {
            scan::events(t)
                .unwrap()
                .into_iter()
                .filter_map(|e| match e.kind {
                    scan::EventKind::Scalar { value, .. } => Some((e.span, value)),
                    _ => None,
                })
                .collect()
        };
        let (old_ev, new_ev) = (scalar_events(&text), scalar_events(&out));
        prop_assert_eq!(old_ev.len(), new_ev.len());
        let (mut prev_old, mut prev_new) = (0, 0);
        for ((o_span, o_value), (n_span, n_value)) in old_ev.iter().zip(&new_ev) {
            match edits.iter().find(|e| e.span == *o_span) {
                Some(e) => {
                    prop_assert_eq!(n_value, &e.new_value);
                    prop_assert_eq!(&text[prev_old..o_span.start], &out[prev_new..n_span.start]);
                    prev_old = o_span.end;
                    prev_new = n_span.end;
                }
                None => {
                    prop_assert_eq!(o_value, n_value);
                    prop_assert_eq!(&text[o_span.clone()], &out[n_span.clone()]);
                }
            }
        }
        prop_assert_eq!(&text[prev_old..], &out[prev_new..]);
        prop_assert_eq!(!edits.is_empty(), text != out);
    }

    #[test]
    fn arbitrary_text_never_panics(
        text in prop_oneof![
            ".{0,200}",
            "[ -~\t\n\r]{0,200}",
            "([a-z]{1,4}|[:#'\"{}\\[\\],&*!|>%@-]|\\s|\n|  |image|tag|repository|\\$imagepolicy|\u{feff}|é){0,80}",
        ],
        name in prop_oneof![Just("a.yaml"), Just("values.yaml"), Just("kustomization.yaml"), Just("compose.yaml")],
        pick in any::<u32>(),
        value in prop_oneof![".{0,12}", Just("16.0".to_string())],
        start in 0usize..220,
        len in 0usize..40,
    ) {
        let opts = ScanOptions::default();
        if let Ok(scan) = scan_file(FsPath::new(name), &text, &opts) {
            let all = scalars(&scan);
            if !all.is_empty() {
                let f = &all[pick as usize % all.len()];
                let _ = apply_edits(&text, &[Edit { span: f.span.clone(), new_value: value.clone() }]);
            }
        }
        let _ = apply_edits(&text, &[Edit { span: start..start + len, new_value: value }]);
    }
}

#[test]
fn generated_documents_cover_every_format() {
    use std::collections::HashSet;
    let mut formats = HashSet::new();
    for seed in 0u32..400 {
        let tape: Vec<u32> = (0..200u32)
            .map(|i| {
                seed.wrapping_mul(2_654_435_761)
                    .wrapping_add(i.wrapping_mul(40_503))
                    >> 7
            })
            .collect();
        let (name, text) = generate(&mut Tape { tape: &tape, at: 0 });
        if let Ok(scan) = scan_file(FsPath::new(&name), &text, &ScanOptions::default()) {
            formats.extend(scan.sites.iter().map(|s| s.format));
        }
    }
    assert_eq!(formats.len(), 6, "{formats:?}");
}
