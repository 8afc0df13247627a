//! The promotion stages of a report (issue 22), drawn for people: a text table (for each image,
//! the version each stage holds and since when, then the pending promotions), and in Markdown
//! the same table, a Mermaid flowchart of the stages with the pending promotions marked, and
//! the soak evidence of each pending promotion (the upstream's commit, when it landed, how long
//! it has been held).
//!
//! Stage names, image names and versions come from the config and the repo and may be
//! hostile. In text and Markdown they go through [`crate::escape`] like the rest of the
//! report. In the flowchart every node id is made here (`s0`, `s1`, …, never from a name), and
//! every label is a quoted Mermaid string in which everything but letters, digits and a few
//! plain punctuation marks is a numeric entity (`#34;`): no text can end the string, add a
//! statement (`click`, `style`, `classDef`), a link, markup, an icon or a directive.

use std::fmt::Write as _;

use super::{md_table, table, StageImage, StagePending, StageReport};
use crate::escape::{md_code, md_text, text_line};
use crate::registry::created::parse_rfc3339;

/// The text rendering: one row per image, one column per stage (`1.4.0 (since 2026-12-05
/// 10:00)`), then the pending promotions and why each waits.
pub(super) fn text(stages: &[StageReport]) -> String {
    let mut out = String::from("Stages (times in UTC):\n");
    let mut header = vec!["IMAGE".to_string()];
    header.extend(stages.iter().map(|s| text_line(&s.name).into_owned()));
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let rows: Vec<Vec<String>> = image_names(stages)
        .into_iter()
        .map(|name| {
            let mut row = vec![name.to_string()];
            row.extend(stages.iter().map(|s| match held(s, name) {
                Some(i) => format!("{} (since {})", i.version, since_text(i)),
                None => "-".into(),
            }));
            row
        })
        .collect();
    out.push_str(&table(&header, &rows));
    let pending = pending(stages);
    if pending.is_empty() {
        out.push_str("No promotion pending.\n");
    } else {
        out.push_str("\nPending promotions:\n");
        let rows: Vec<Vec<String>> = pending
            .iter()
            .map(|(s, p)| {
                vec![
                    s.name.clone(),
                    p.name.clone(),
                    p.version.clone(),
                    p.reason.clone(),
                ]
            })
            .collect();
        out.push_str(&table(&["STAGE", "IMAGE", "VERSION", "REASON"], &rows));
    }
    out
}

/// The stages in Markdown, for the step summary and each promotion pull request's body: the
/// table of what each stage holds, the Mermaid flowchart, and the pending promotions with
/// their soak evidence, how long each has been held counted to now (the clock).
pub fn stages_markdown(stages: &[StageReport]) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    stages_markdown_at(stages, now)
}

/// [`stages_markdown`] with how long each version has been held counted to `now` (seconds
/// since the Unix epoch), for output that must not depend on the clock.
pub fn stages_markdown_at(stages: &[StageReport], now: i64) -> String {
    let mut out = String::from("### Stages\n\n");
    let mut header = vec!["Image".to_string()];
    header.extend(stages.iter().map(|s| md_text(&s.name)));
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let rows: Vec<Vec<String>> = image_names(stages)
        .into_iter()
        .map(|name| {
            let mut row = vec![md_text(name)];
            row.extend(stages.iter().map(|s| match held(s, name) {
                Some(i) => format!("{} since {}", md_code(&i.version), md_text(&since_text(i))),
                None => "-".into(),
            }));
            row
        })
        .collect();
    out.push_str(&md_table(&header, &rows));
    out.push_str("\nTimes in UTC.\n\n");
    out.push_str(&mermaid(stages));
    let pending = pending(stages);
    if pending.is_empty() {
        out.push_str("\nNo promotion pending.\n");
        return out;
    }
    out.push_str("\n#### Pending promotions\n\n");
    let rows: Vec<Vec<String>> = pending
        .iter()
        .map(|(s, p)| {
            let mut row = vec![
                md_text(&s.name),
                md_text(&p.name),
                md_code(&p.version),
                md_text(&p.reason),
            ];
            row.extend(evidence(stages, s, p, now));
            row
        })
        .collect();
    out.push_str(&md_table(
        &[
            "Stage",
            "Image",
            "Version",
            "Status",
            "Upstream commit",
            "Landed upstream",
            "Held",
        ],
        &rows,
    ));
    out
}

/// The soak evidence of `p` (waiting to move into `stage`) as three Markdown cells: the
/// commit that brought the version into the upstream stage, when it landed, and how long the
/// upstream has held it. A first stage has no upstream; a version the upstream does not hold
/// (any more), or whose commit history does not reach, says so.
fn evidence(
    stages: &[StageReport],
    stage: &StageReport,
    p: &StagePending,
    now: i64,
) -> [String; 3] {
    let dash = || "-".to_string();
    let Some(from) = &stage.from else {
        return [dash(), dash(), dash()];
    };
    // An upstream left out of `stages` (a pull request's body may show one stage) has no
    // evidence here; one that does not hold the version says so.
    let Some(upstream) = stages.iter().find(|s| &s.name == from) else {
        return [dash(), dash(), dash()];
    };
    let Some(i) = held(upstream, &p.name).filter(|i| i.version == p.version) else {
        return [format!("not held by {}", md_text(from)), dash(), dash()];
    };
    let commit = i.commit.as_deref().map_or_else(dash, |c| md_code(short(c)));
    match i.since.as_deref().and_then(parse_rfc3339) {
        Some((secs, _)) => [commit, minutes(secs), duration(now - secs)],
        None => [commit, "unknown (history too short)".into(), dash()],
    }
}

/// A commit id as shown: its first 12 characters.
fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

/// The flowchart: one node per stage (its name and the versions it holds), an edge from each
/// upstream (from a `new tags` node for a first stage): plain when nothing waits, thick for
/// what moves in this run (`promoted`, or `ready` when the run delivers nothing), dashed with
/// the reasons for what is held back. A stage with a promotion held back is of class
/// `pending` (amber, dashed), one that only takes promotions of class `moving` (green).
fn mermaid(stages: &[StageReport]) -> String {
    let mut out = String::from("```mermaid\nflowchart LR\n");
    out.push_str("  classDef pending stroke:#d97706,stroke-dasharray:5 5,stroke-width:2px\n");
    out.push_str("  classDef moving stroke:#1a7f37,stroke-width:2px\n");
    let firsts = stages.iter().any(|s| s.from.is_none());
    if firsts {
        out.push_str("  new([\"new tags\"])\n");
    }
    for (n, s) in stages.iter().enumerate() {
        let mut label = format!("<b>{}</b>", label_text(&s.name));
        for i in &s.images {
            let _ = write!(
                label,
                "<br/>{} {}",
                label_text(&i.name),
                label_text(&i.version)
            );
        }
        if s.images.is_empty() {
            label.push_str(&format!("<br/>{}", label_text("(nothing yet)")));
        }
        let _ = writeln!(out, "  s{n}[\"{label}\"]");
    }
    for (n, s) in stages.iter().enumerate() {
        let from = match &s.from {
            None => "new".to_string(),
            Some(f) => match stages.iter().position(|u| &u.name == f) {
                Some(u) => format!("s{u}"),
                // An upstream that is not a stage: the config check reports it; no edge.
                None => continue,
            },
        };
        // Moving: landed in this run (`promoted`) or would be (`ready`, without delivery).
        let moving = |p: &&StagePending| matches!(p.reason.as_str(), "promoted" | "ready");
        let list = |ps: &[&StagePending], reason: bool| {
            ps.iter()
                .map(|p| {
                    let mut t = format!("{} {}", label_text(&p.name), label_text(&p.version));
                    if reason {
                        let _ = write!(t, " #40;{}#41;", label_text(&p.reason));
                    }
                    t
                })
                .collect::<Vec<_>>()
                .join("<br/>")
        };
        // The soak the edge waits, first on each of its labels.
        let soak = s
            .soak
            .as_ref()
            .map(|d| format!("soak {}<br/>", label_text(d)))
            .unwrap_or_default();
        for word in ["promoted", "ready"] {
            let ps: Vec<&StagePending> = s.pending.iter().filter(|p| p.reason == word).collect();
            if !ps.is_empty() {
                let ps = list(&ps, false);
                let _ = writeln!(out, "  {from} ==>|\"{soak}{word} {ps}\"| s{n}");
            }
        }
        let held: Vec<&StagePending> = s.pending.iter().filter(|p| !moving(p)).collect();
        if !held.is_empty() {
            let held = list(&held, true);
            let _ = writeln!(out, "  {from} -.->|\"{soak}pending {held}\"| s{n}");
            let _ = writeln!(out, "  class s{n} pending");
        } else if !s.pending.is_empty() {
            let _ = writeln!(out, "  class s{n} moving");
        } else if let Some(d) = &s.soak {
            let _ = writeln!(out, "  {from} -->|\"soak {}\"| s{n}", label_text(d));
        } else {
            let _ = writeln!(out, "  {from} --> s{n}");
        }
    }
    out.push_str("```\n");
    out
}

/// Text inside a quoted Mermaid label: one line ([`text_line`]), then every character other
/// than an ASCII letter, a digit, a space and `.-_/+@,` as a numeric entity (`#34;` for `"`),
/// which Mermaid turns back into the character when it draws the label, as text. Mermaid
/// draws `fa:fa-NAME` (after decoding entities) as an icon: an invisible word joiner after
/// each `:` before `fa-` keeps that text.
fn label_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in text_line(s).replace(":fa-", ":\u{2060}fa-").chars() {
        if c.is_ascii_alphanumeric() || matches!(c, ' ' | '.' | '-' | '_' | '/' | '+' | '@' | ',') {
            out.push(c);
        } else {
            let _ = write!(out, "#{};", c as u32);
        }
    }
    out
}

/// The image names of all stages, in the order they first appear.
fn image_names(stages: &[StageReport]) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for i in stages.iter().flat_map(|s| &s.images) {
        if !names.contains(&i.name.as_str()) {
            names.push(&i.name);
        }
    }
    names
}

/// What `stage` holds of the image named `name`.
fn held<'a>(stage: &'a StageReport, name: &str) -> Option<&'a StageImage> {
    stage.images.iter().find(|i| i.name == name)
}

/// Every pending promotion with its stage, in stage order.
fn pending(stages: &[StageReport]) -> Vec<(&StageReport, &StagePending)> {
    stages
        .iter()
        .flat_map(|s| s.pending.iter().map(move |p| (s, p)))
        .collect()
}

/// When a stage took its version, to the minute in UTC, or why that is unknown.
fn since_text(i: &StageImage) -> String {
    match &i.since {
        None => "unknown".into(),
        Some(t) => match parse_rfc3339(t) {
            Some((secs, _)) => minutes(secs),
            None => t.clone(),
        },
    }
}

/// `secs` since the Unix epoch as `YYYY-MM-DD HH:MM` (UTC).
fn minutes(secs: i64) -> String {
    let t = crate::locks::rfc3339(secs);
    format!("{} {}", &t[..10], &t[11..16])
}

/// A duration for people, to the minute: `45m`, `5h 12m`, `3d 4h`.
fn duration(secs: i64) -> String {
    let m = secs.max(0) / 60;
    let (d, h, m) = (m / 1440, m / 60 % 24, m % 60);
    match (d, h) {
        (0, 0) => format!("{m}m"),
        (0, h) => format!("{h}h {m}m"),
        (d, h) => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Report;

    /// 2026-12-07T10:00:00Z.
    const NOW: i64 = 1_796_637_600;

    fn image(name: &str, version: &str, since: Option<&str>, commit: Option<&str>) -> StageImage {
        StageImage {
            name: name.into(),
            image: format!("ghcr.io/acme/{name}"),
            version: version.into(),
            since: since.map(Into::into),
            commit: commit.map(Into::into),
        }
    }

    fn pend(name: &str, version: &str, reason: &str) -> StagePending {
        StagePending {
            name: name.into(),
            version: version.into(),
            reason: reason.into(),
        }
    }

    /// dev → staging → prod: dev has web 1.4.0 and api 2.1.0; staging takes api now and waits
    /// for web; prod waits for web (together with api).
    fn three() -> Vec<StageReport> {
        vec![
            StageReport {
                name: "dev".into(),
                from: None,
                soak: None,
                images: vec![
                    image(
                        "web",
                        "1.4.0",
                        Some("2026-12-06T18:00:00Z"),
                        Some("d".repeat(40).as_str()),
                    ),
                    image(
                        "api",
                        "2.1.0",
                        Some("2026-12-04T09:30:00Z"),
                        Some("a1b2c3d4e5f60718"),
                    ),
                ],
                pending: vec![],
            },
            StageReport {
                name: "staging".into(),
                from: Some("dev".into()),
                soak: Some("1d".into()),
                images: vec![
                    image(
                        "web",
                        "1.3.0",
                        Some("2026-12-03T09:00:00Z"),
                        Some("5151515151515151"),
                    ),
                    image("api", "2.0.0", Some("2026-12-01T08:00:00Z"), None),
                ],
                pending: vec![
                    pend("web", "1.4.0", "soaking until 2026-12-07T18:00:00Z"),
                    pend("api", "2.1.0", "promoted"),
                ],
            },
            StageReport {
                name: "prod".into(),
                from: Some("staging".into()),
                soak: Some("2d".into()),
                images: vec![
                    image("web", "1.2.0", Some("2026-11-20T12:00:00+02:00"), None),
                    image("api", "2.0.0", None, None),
                ],
                pending: vec![pend("web", "1.3.0", "together: api not ready")],
            },
        ]
    }

    #[test]
    fn text_shows_each_image_per_stage_and_the_pending_promotions() {
        let mut r = Report::new();
        r.stages = three();
        let t = r.to_text();
        let expected = "\
Stages (times in UTC):
IMAGE  dev                             staging                         prod
web    1.4.0 (since 2026-12-06 18:00)  1.3.0 (since 2026-12-03 09:00)  1.2.0 (since 2026-11-20 10:00)
api    2.1.0 (since 2026-12-04 09:30)  2.0.0 (since 2026-12-01 08:00)  2.0.0 (since unknown)

Pending promotions:
STAGE    IMAGE  VERSION  REASON
staging  web    1.4.0    soaking until 2026-12-07T18:00:00Z
staging  api    2.1.0    promoted
prod     web    1.3.0    together: api not ready
";
        assert!(t.contains(expected), "{t}");
    }

    #[test]
    fn markdown_has_the_table_the_flowchart_and_the_soak_evidence() {
        let m = stages_markdown_at(&three(), NOW);
        assert!(
            m.starts_with("### Stages\n\n| Image | dev | staging | prod |\n"),
            "{m}"
        );
        assert!(
            m.contains("| web | `1.4.0` since 2026-12-06 18:00 | `1.3.0` since 2026-12-03 09:00 | `1.2.0` since 2026-11-20 10:00 |"),
            "{m}"
        );
        let flow = "```mermaid\nflowchart LR\n\
            \x20 classDef pending stroke:#d97706,stroke-dasharray:5 5,stroke-width:2px\n\
            \x20 classDef moving stroke:#1a7f37,stroke-width:2px\n\
            \x20 new([\"new tags\"])\n\
            \x20 s0[\"<b>dev</b><br/>web 1.4.0<br/>api 2.1.0\"]\n\
            \x20 s1[\"<b>staging</b><br/>web 1.3.0<br/>api 2.0.0\"]\n\
            \x20 s2[\"<b>prod</b><br/>web 1.2.0<br/>api 2.0.0\"]\n\
            \x20 new --> s0\n\
            \x20 s0 ==>|\"soak 1d<br/>promoted api 2.1.0\"| s1\n\
            \x20 s0 -.->|\"soak 1d<br/>pending web 1.4.0 #40;soaking until 2026-12-07T18#58;00#58;00Z#41;\"| s1\n\
            \x20 class s1 pending\n\
            \x20 s1 -.->|\"soak 2d<br/>pending web 1.3.0 #40;together#58; api not ready#41;\"| s2\n\
            \x20 class s2 pending\n\
            ```\n";
        assert!(m.contains(flow), "{m}");
        // Staging waits for web 1.4.0, which dev took 16 hours before NOW.
        assert!(
            m.contains("| staging | web | `1.4.0` | soaking until 2026-12-07T18:00:00Z | `dddddddddddd` | 2026-12-06 18:00 | 16h 0m |"),
            "{m}"
        );
        assert!(
            m.contains("| prod | web | `1.3.0` | together: api not ready | `515151515151` | 2026-12-03 09:00 | 4d 1h |"),
            "{m}"
        );
    }

    #[test]
    fn evidence_says_what_is_unknown() {
        let mut stages = three();
        // prod waits for a version staging does not hold, and for one whose time is unknown.
        stages[1].images[1].since = None;
        stages[2].pending = vec![pend("web", "9.9.9", "x"), pend("api", "2.0.0", "y")];
        let m = stages_markdown_at(&stages, NOW);
        assert!(
            m.contains("| prod | web | `9.9.9` | x | not held by staging | - | - |"),
            "{m}"
        );
        assert!(
            m.contains("| prod | api | `2.0.0` | y | - | unknown (history too short) | - |"),
            "{m}"
        );
        // A pull request's body may show its stage alone: no upstream, no evidence.
        let m = stages_markdown_at(&stages[2..], NOW);
        assert!(
            m.contains("| prod | web | `9.9.9` | x | - | - | - |"),
            "{m}"
        );
        stages.iter_mut().for_each(|s| s.pending.clear());
        let m = stages_markdown_at(&stages, NOW);
        assert!(m.ends_with("```\n\nNo promotion pending.\n"), "{m}");
        assert!(m.contains("  s1 -->|\"soak 2d\"| s2\n"), "{m}");
    }

    #[test]
    fn what_moves_is_a_thick_edge_into_a_moving_stage() {
        let mut stages = three();
        stages[1].pending = vec![pend("api", "2.1.0", "ready"), pend("web", "1.4.0", "ready")];
        stages[2].pending = vec![pend("web", "1.3.0", "promoted")];
        let m = stages_markdown_at(&stages, NOW);
        assert!(
            m.contains(
                "  s0 ==>|\"soak 1d<br/>ready api 2.1.0<br/>web 1.4.0\"| s1\n  class s1 moving\n"
            ),
            "{m}"
        );
        assert!(
            m.contains("  s1 ==>|\"soak 2d<br/>promoted web 1.3.0\"| s2\n  class s2 moving\n"),
            "{m}"
        );
        assert!(!m.contains("-.->"), "{m}");
    }

    #[test]
    fn durations_read_as_people_count() {
        assert_eq!(duration(-5), "0m");
        assert_eq!(duration(45 * 60 + 59), "45m");
        assert_eq!(duration(5 * 3600 + 12 * 60), "5h 12m");
        assert_eq!(duration(3 * 86_400 + 4 * 3600 + 59 * 60), "3d 4h");
    }

    /// Names that try to end a label, add a statement, a link or markup, or a new line.
    const HOSTILE: &[&str] = &[
        "x\"] --> evil[\"y",
        "a\nclick s0 href \"javascript:alert(1)\"",
        "b\"]\nclick s1 call alert(1)\n%%",
        "<img src=x onerror=alert(1)>",
        "`**md**`",
        "#quot;#lt;script#gt;",
        "fa:fa-car",
        "%%{init: {\"securityLevel\": \"loose\"}}%%",
        "style s0 fill:#f00;",
        "x|y] | [z",
        "end",
        "```",
        "::error::pwned",
        "\u{2028}k\u{202e}l",
    ];

    fn hostile_stages() -> Vec<StageReport> {
        HOSTILE
            .iter()
            .enumerate()
            .map(|(n, evil)| StageReport {
                name: evil.to_string(),
                from: (n > 0).then(|| HOSTILE[n - 1].to_string()),
                soak: Some(HOSTILE[n].to_string()),
                images: vec![image(evil, evil, Some(evil), Some(evil))],
                pending: vec![pend(evil, evil, evil), pend(evil, evil, "promoted")],
            })
            .collect()
    }

    #[test]
    fn hostile_names_stay_inside_their_labels() {
        let m = stages_markdown_at(&hostile_stages(), NOW);
        let start = m.find("```mermaid\n").unwrap() + "```mermaid\n".len();
        let block = &m[start..start + m[start..].find("```\n").expect(&m)];
        for line in block.lines() {
            let line = line.trim_start();
            // Every line is one we write: no name starts one.
            assert!(
                ["flowchart LR", "classDef ", "new([", "s", "new ", "class s"]
                    .iter()
                    .any(|p| line.starts_with(p)),
                "{line}"
            );
            assert!(
                !line.starts_with("click") && !line.starts_with("style"),
                "{line}"
            );
            // Quotes come in the pairs we write; inside them only entities and plain text.
            let quoted: Vec<&str> = line.split('"').skip(1).step_by(2).collect();
            assert_eq!(line.matches('"').count() % 2, 0, "{line}");
            for q in quoted {
                let plain = q
                    .replace("<br/>", "")
                    .replace("<b>", "")
                    .replace("</b>", "");
                assert!(
                    plain
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || " .-_/+@,#;".contains(c)),
                    "{q}"
                );
                // Every `#` starts a numeric entity.
                for part in plain.split('#').skip(1) {
                    let digits = part.chars().take_while(char::is_ascii_digit).count();
                    assert!(digits > 0 && part[digits..].starts_with(';'), "{q}");
                }
            }
        }
        for bad in ["javascript:", "onerror=", "<img", "%%{", "fa:", "fill:#"] {
            assert!(!block.contains(bad), "{bad} in {block}");
        }
        // Node ids are ours, never from a name.
        assert!(block.contains("\n  s13[\""), "{block}");
    }

    #[test]
    fn hostile_names_keep_to_their_cells_and_lines() {
        let stages = hostile_stages();
        let m = stages_markdown_at(&stages, NOW);
        let outside: String = {
            let start = m.find("```mermaid").unwrap();
            let end = start + m[start..].find("```\n\n").unwrap() + 4;
            format!("{}{}", &m[..start], &m[end..])
        };
        for l in outside.lines() {
            assert!(
                !l.starts_with("# ") && !l.starts_with("::") && !l.starts_with("```"),
                "{l}"
            );
            assert!(!l.contains("<img") && !l.contains("<script"), "{l}");
        }
        // The header row has one cell per stage and the image column.
        let header = outside.lines().nth(2).unwrap();
        let bars = header
            .char_indices()
            .filter(|(i, c)| *c == '|' && (*i == 0 || header.as_bytes()[i - 1] != b'\\'))
            .count();
        assert_eq!(bars, HOSTILE.len() + 2, "{header}");
        let mut r = Report::new();
        r.stages = stages;
        let t = r.to_text();
        assert!(t.lines().all(|l| !l.trim_start().starts_with("::")), "{t}");
        // The title, the header, one row per image, a blank line, the title and header of the
        // pending table and two rows per stage.
        let n = HOSTILE.len();
        assert_eq!(t.lines().count(), 7 + 3 * n, "{t}");
    }
}
