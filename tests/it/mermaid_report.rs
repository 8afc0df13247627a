//! The Mermaid flowchart of the promotion stages (issue 22), checked by mermaid itself in
//! headless chromium (`common::mermaid`): the Markdown report of three stages parses, stage and
//! image names built to break out of their labels still parse and draw no link, and the check
//! can fail — a broken flowchart does not pass.
use crate::common;

use common::mermaid;
use image_updater::report::{
    stages_markdown_at, Report, StageImage, StagePending, StageReport, Update,
};

fn image(name: &str, version: &str, since: &str, commit: &str) -> StageImage {
    StageImage {
        name: name.into(),
        image: format!("ghcr.io/acme/{name}"),
        version: version.into(),
        since: Some(since.into()),
        commit: Some(commit.into()),
    }
}

fn pending(name: &str, version: &str, reason: &str) -> StagePending {
    StagePending {
        name: name.into(),
        version: version.into(),
        reason: reason.into(),
    }
}

/// `plan` of dev → staging (soak 24h) → prod (soak 48h) at 2026-12-06 10:00 UTC: staging is
/// ready to take web 1.4.0, which dev has held for two days, and waits for api 2.1.0 (dev has
/// held it for 20 hours); prod waits for web 1.3.0 (staging has held it for 16 hours).
fn three_stages() -> Report {
    let mut r = Report::new();
    r.updates.push(Update {
        policy: "web".into(),
        image: "ghcr.io/acme/web".into(),
        file: "clusters/staging/web.yaml".into(),
        line: 19,
        from: "1.3.0".into(),
        to: "1.4.0".into(),
        digest: None,
        note: None,
    });
    r.stages = vec![
        StageReport {
            name: "dev".into(),
            from: None,
            soak: None,
            images: vec![
                image("web", "1.4.0", "2026-12-04T09:00:00Z", "4e1f0c2a9b3d5e6f"),
                image("api", "2.1.0", "2026-12-05T14:00:00Z", "77aa01bb02cc03dd"),
            ],
            pending: vec![],
        },
        StageReport {
            name: "staging".into(),
            from: Some("dev".into()),
            soak: Some("1d".into()),
            images: vec![
                image("web", "1.3.0", "2026-12-05T18:00:00Z", "0c0ffee123456789"),
                image("api", "2.0.0", "2026-12-01T12:00:00Z", "abcdef0123456789"),
            ],
            pending: vec![
                pending("web", "1.4.0", "ready"),
                pending("api", "2.1.0", "soaking until 2026-12-06T14:00:00Z"),
            ],
        },
        StageReport {
            name: "prod".into(),
            from: Some("staging".into()),
            soak: Some("2d".into()),
            images: vec![
                image("web", "1.2.0", "2026-11-28T15:00:00Z", "feedface00000001"),
                image("api", "2.0.0", "2026-12-03T12:00:00Z", "feedface00000002"),
            ],
            pending: vec![pending(
                "web",
                "1.3.0",
                "soaking until 2026-12-07T18:00:00Z",
            )],
        },
    ];
    r
}

/// 2026-12-06T10:00:00Z, the time of [`three_stages`].
const NOW: i64 = 1_796_551_200;

/// The Markdown the README's picture is drawn from: the report of [`three_stages`] as
/// `to_markdown` writes it, with the time held counted to [`NOW`] instead of the clock.
fn readme_report() -> String {
    let mut r = three_stages();
    let stages = std::mem::take(&mut r.stages);
    format!(
        "{}
{}",
        r.to_markdown(),
        stages_markdown_at(&stages, NOW)
    )
}

/// Stage, image and version names that try to close a label, start a statement of their own
/// (`click … href "javascript:…"`, `style`, a directive), or bring markup, an icon or a line.
const HOSTILE: &[&str] = &[
    "x\"] --> evil[\"y",
    "a\nclick s0 href \"javascript:alert(1)\"",
    "b\"]\nclick s1 call alert(1)\n%%",
    "<a href=\"javascript:alert(1)\">x</a><img src=x onerror=alert(1)>",
    "`**md**`",
    "#quot;#lt;script#gt;",
    "fa:fa-car",
    "%%{init: {\"securityLevel\": \"loose\"}}%%",
    "style s0 fill:#f00;",
    "x|y] | [z",
    "end",
    "```",
];

fn hostile() -> Report {
    let mut r = Report::new();
    r.stages = HOSTILE
        .iter()
        .enumerate()
        .map(|(n, evil)| StageReport {
            name: evil.to_string(),
            from: (n > 0).then(|| HOSTILE[n - 1].to_string()),
            soak: Some(HOSTILE[n].to_string()),
            images: vec![image(evil, evil, "2026-12-01T00:00:00Z", evil)],
            pending: vec![pending(evil, evil, evil), pending(evil, evil, "promoted")],
        })
        .collect();
    // A stage that holds nothing yet, below one that is not a stage.
    r.stages.push(StageReport {
        name: "canary".into(),
        from: Some("nowhere".into()),
        soak: None,
        images: vec![],
        pending: vec![],
    });
    r
}

#[test]
fn blocks_are_the_mermaid_fences_only() {
    let md = "# x\n```mermaid\nflowchart LR\n  a --> b\n```\n\n```diff\n-a\n```\n\
              ````mermaid\ngraph TD\n```\nx\n````\n  ```mermaid\nopen\n";
    assert_eq!(
        mermaid::blocks(md),
        ["flowchart LR\n  a --> b\n", "graph TD\n```\nx\n", "open\n"]
    );
}

#[test]
fn the_markdown_report_of_three_stages_parses() {
    let md = three_stages().to_markdown();
    assert_eq!(mermaid::blocks(&md).len(), 1, "{md}");
    assert!(md.contains("flowchart LR"), "{md}");
    mermaid::assert_parses(&md);
}

/// docs/stages-report.md, from which scripts/render-report.sh draws docs/stages.png for the
/// README, is what the report renders now, and mermaid parses it.
/// `IMAGE_UPDATER_BLESS=1` rewrites it (then redraw the picture).
#[test]
fn the_readme_pictures_report_is_the_current_rendering() {
    let md = readme_report();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/stages-report.md");
    if std::env::var_os("IMAGE_UPDATER_BLESS").is_some() {
        std::fs::write(&path, &md).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == md,
        "docs/stages-report.md is not what the report renders now: rewrite it with \
         `IMAGE_UPDATER_BLESS=1 cargo test --test it mermaid_report::the_readme`, then redraw \
         the picture with `scripts/render-report.sh docs/stages-report.md docs/stages.png`\n\
         now:\n{md}"
    );
    mermaid::assert_parses(&committed);
}

#[test]
fn a_broken_flowchart_fails_the_check() {
    let good = "flowchart LR\n  s0[\"dev\"] --> s1[\"prod\"]\n".to_string();
    let broken = "flowchart LR\n  s0[\"dev\"] -->\n  s1[[[\"prod\"\n".to_string();
    let unclosed = "flowchart LR\n  s0[\"dev\" --> s1\n".to_string();
    let outcomes = mermaid::parse(&[good, broken, unclosed]);
    assert_eq!(outcomes[0], Ok(()));
    for o in &outcomes[1..] {
        let e = o.as_ref().unwrap_err();
        assert!(e.contains("Parse error"), "{e}");
    }
}

#[test]
#[should_panic(expected = "mermaid does not parse 1 of 2 blocks")]
fn assert_parses_fails_on_a_broken_block() {
    mermaid::assert_parses(
        "```mermaid\nflowchart LR\n  a --> b\n```\n\n```mermaid\nflowchart LR\n  a -->\n```\n",
    );
}

#[test]
#[should_panic(expected = "no ```mermaid block")]
fn assert_parses_fails_without_a_block() {
    mermaid::assert_parses("## image-updater\n\nNo updates.\n");
}

#[test]
fn hostile_names_parse_and_draw_as_text_with_no_link() {
    let md = hostile().to_markdown();
    let blocks = mermaid::blocks(&md);
    assert_eq!(blocks.len(), 1, "{md}");
    let svg = match &mermaid::render(&blocks)[0] {
        Ok(svg) => svg.clone(),
        Err(e) => panic!("mermaid: {e}\n{}", blocks[0]),
    };
    // One node per stage and the source of new tags: no name made a node of its own.
    let nodes = svg.matches("class=\"node ").count();
    assert_eq!(nodes, HOSTILE.len() + 2, "{svg}");
    assert!(svg.contains("(nothing yet)"), "{svg}");
    // Nothing is a link, a handler, an icon or any element a name brought: no tag of the
    // drawing has them (what names hold of markup is text, `&lt;a href=…`).
    let tags: String = svg
        .split('<')
        .skip(1)
        .map(|t| format!("<{}> ", t.split('>').next().unwrap()))
        .collect();
    for bad in [
        "<a ",
        "<a>",
        "href",
        "javascript",
        "onerror",
        "<img",
        "<script",
        "<i ",
    ] {
        assert!(!tags.contains(bad), "{bad} in the drawing's tags: {tags}");
    }
    // The names are there, as text.
    for text in [
        "x\"] --&gt; evil[\"y",
        "click s0 href \"javascript:alert(1)\"",
        "&lt;a href=\"javascript:alert(1)\"&gt;x&lt;/a&gt;&lt;img src=x onerror=alert(1)&gt;",
        "#quot;#lt;script#gt;",
        "fa:\u{2060}fa-car",
        "style s0 fill:#f00;",
        "%%{init: {\"securityLevel\": \"loose\"}}%%",
    ] {
        assert!(svg.contains(text), "{text} not in the drawing: {svg}");
    }
}

/// The width and height in a PNG's IHDR chunk.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let be = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    (be(16), be(20))
}

/// scripts/render-report.sh draws the README picture's report (tables and the flowchart) at
/// the width asked, as tall as the page; a report whose flowchart mermaid cannot draw fails
/// the script, and no picture is written.
#[test]
fn render_report_draws_the_report_and_fails_on_a_broken_flowchart() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("report.png");
    let o = std::process::Command::new(root.join("scripts/render-report.sh"))
        .arg(root.join("docs/stages-report.md"))
        .arg(&png)
        .arg("800")
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{log}");
    let bytes = std::fs::read(&png).unwrap();
    let (w, h) = png_size(&bytes);
    assert_eq!(w, 800, "{log}");
    // Two tables, the flowchart and the pending table stand taller than one screen line.
    assert!(h > 500, "{h}: {log}");
    // A blank page compresses to almost nothing; text and a drawing do not.
    assert!(bytes.len() > 30_000, "{} bytes: {log}", bytes.len());

    let broken = dir.path().join("broken.md");
    std::fs::write(
        &broken,
        "## image-updater\n\n```mermaid\nflowchart LR\n  a -->\n```\n",
    )
    .unwrap();
    let out = dir.path().join("broken.png");
    let o = std::process::Command::new(root.join("scripts/render-report.sh"))
        .arg(&broken)
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("did not render") && err.contains("Parse error"),
        "{err}"
    );
    assert!(!out.exists());
}
