//! The `stages:` part of `.image-updater.yaml`: each stage's name, files, delivery mode,
//! upstream, soak time, minimum image age and the images that move together, and the checks
//! that make a bad list fail before anything is read (exit 2, naming the file and line).

use std::path::Path;

use serde::Deserialize;
use serde_saphyr::{Location, Spanned};

use crate::config::{ConfigError, DeliveryMode};

/// One entry of `stages:` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageConfig {
    pub name: Spanned<String>,
    /// Globs of the files this stage owns, relative to the repo root.
    pub paths: Spanned<Vec<String>>,
    /// How this stage delivers; default `delivery.mode`.
    #[serde(default)]
    pub mode: Option<DeliveryMode>,
    /// The upstream stage: this stage takes only what it holds.
    #[serde(default)]
    pub from: Option<Spanned<String>>,
    /// How long the upstream must have held a version (`30m`, `24h`, `7d`).
    #[serde(default)]
    pub soak: Option<Spanned<String>>,
    /// How old an image must be (its build time) before it is a candidate.
    #[serde(default)]
    pub min_age: Option<Spanned<String>>,
    /// Images (`images[].name` or Flux policy names) that move only all at once.
    #[serde(default)]
    pub together: Option<Spanned<Vec<String>>>,
}

/// A stage, checked.
#[derive(Debug, Clone)]
pub struct Stage {
    pub name: String,
    /// Index of the upstream stage (always an earlier one).
    pub from: Option<usize>,
    pub paths: Vec<String>,
    pub globs: globset::GlobSet,
    /// `None`: the config's `delivery.mode`.
    pub mode: Option<DeliveryMode>,
    /// Seconds; 0 without `soak`.
    pub soak: i64,
    /// Seconds; `None` without `min_age`.
    pub min_age: Option<i64>,
    pub together: Vec<String>,
    /// Where `together` is written, for errors found once the repo's policies are known.
    pub together_at: Option<Location>,
}

/// A duration as the config writes it: a whole number and `s`, `m`, `h` or `d`.
pub fn parse_duration(s: &str) -> Option<i64> {
    let s = s.trim();
    let unit = match s.chars().last()? {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return None,
    };
    let digits = &s[..s.len() - 1];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<i64>().ok()?.checked_mul(unit)
}

/// A duration for people: `2d 3h`, `45m`, `10s`.
pub fn show_duration(secs: i64) -> String {
    let secs = secs.max(0);
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

impl Stage {
    /// Check `stages:` of `file`: names unique, every `from` an earlier stage (no cycles),
    /// durations readable, paths that compile and do not overlap another stage's. `together`
    /// may name Flux policies too, so it is checked once the repo is read
    /// ([`Stage::check_together`]).
    pub fn compile(list: &[StageConfig], file: &Path) -> Result<Vec<Stage>, ConfigError> {
        let at = |loc: &Location, msg: String| ConfigError::at(file, loc, msg);
        let index = |name: &str| list.iter().position(|s| s.name.value == name);
        let mut stages: Vec<Stage> = Vec::new();
        for (i, s) in list.iter().enumerate() {
            let name = &s.name.value;
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err(at(
                    &s.name.referenced,
                    format!(
                        "stages: name {name:?}: expected letters, digits, `-`, `_` or `.` \
                         (it names branches)"
                    ),
                ));
            }
            if index(name) != Some(i) {
                return Err(at(
                    &s.name.referenced,
                    format!("stages: {name:?} is named twice"),
                ));
            }
            if s.paths.value.is_empty() {
                return Err(at(
                    &s.paths.referenced,
                    format!("stages: {name}: paths is empty; expected the globs of its files"),
                ));
            }
            let globs = crate::config::glob_set(&s.paths.value)
                .map_err(|e| at(&s.paths.referenced, format!("stages: {name}: {e}")))?;
            let from = match &s.from {
                None => None,
                Some(f) => {
                    let Some(up) = index(&f.value) else {
                        return Err(at(
                            &f.referenced,
                            format!(
                                "stages: {name}: from {:?} is not a stage; expected one of {}",
                                f.value,
                                names(list)
                            ),
                        ));
                    };
                    if let Some(cycle) = cycle_from(list, i) {
                        return Err(at(
                            &f.referenced,
                            format!("stages: {name}: from makes a cycle ({cycle})"),
                        ));
                    }
                    if up > i {
                        return Err(at(
                            &f.referenced,
                            format!(
                                "stages: {name}: from {:?} is listed after it; list each stage \
                                 after its upstream",
                                f.value
                            ),
                        ));
                    }
                    Some(up)
                }
            };
            let duration =
                |d: &Option<Spanned<String>>, key: &str| -> Result<Option<i64>, ConfigError> {
                    match d {
                        None => Ok(None),
                        Some(d) => parse_duration(&d.value).map(Some).ok_or_else(|| {
                            at(
                                &d.referenced,
                                format!(
                                "stages: {name}: {key} {:?}: expected a duration such as 30m, 24h \
                                 or 7d",
                                d.value
                            ),
                            )
                        }),
                    }
                };
            let soak = duration(&s.soak, "soak")?;
            if let (Some(_), None, Some(d)) = (soak, from, &s.soak) {
                return Err(at(
                    &d.referenced,
                    format!("stages: {name}: soak needs from (the stage whose history counts)"),
                ));
            }
            let min_age = duration(&s.min_age, "min_age")?;
            let together = s
                .together
                .as_ref()
                .map(|t| t.value.clone())
                .unwrap_or_default();
            if let Some(t) = &s.together {
                if t.value.len() < 2 {
                    return Err(at(
                        &t.referenced,
                        format!("stages: {name}: together names one image; expected two or more"),
                    ));
                }
            }
            for (j, earlier) in stages.iter().enumerate() {
                if let Some((a, b)) =
                    overlap(&list[j].paths.value, &earlier.globs, &s.paths.value, &globs)
                {
                    return Err(at(
                        &s.paths.referenced,
                        format!(
                            "stages: {name}: paths {b:?} overlaps {a:?} of stage {}; each file \
                             belongs to one stage",
                            earlier.name
                        ),
                    ));
                }
            }
            stages.push(Stage {
                name: name.clone(),
                from,
                paths: s.paths.value.clone(),
                globs,
                mode: s.mode,
                soak: soak.unwrap_or(0),
                min_age,
                together,
                together_at: s.together.as_ref().map(|t| t.referenced),
            });
        }
        Ok(stages)
    }

    /// `together` must name images the config or the repo's Flux policies name (`known`).
    pub fn check_together(&self, known: &[&str], file: &Path) -> Result<(), ConfigError> {
        if let Some(unknown) = self.together.iter().find(|n| !known.contains(&n.as_str())) {
            let msg = format!(
                "stages: {}: together names {unknown:?}, which is neither an images[].name nor \
                 a Flux ImagePolicy in the repo",
                self.name
            );
            return Err(match &self.together_at {
                Some(loc) => ConfigError::at(file, loc, msg),
                None => ConfigError::from_message(file, msg),
            });
        }
        Ok(())
    }
}

/// The stage names, for messages.
fn names(list: &[StageConfig]) -> String {
    list.iter()
        .map(|s| s.name.value.clone())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The cycle that following `from` from stage `i` runs into, when there is one.
fn cycle_from(list: &[StageConfig], i: usize) -> Option<String> {
    let mut seen = vec![i];
    let mut at = i;
    while let Some(f) = &list[at].from {
        let next = list.iter().position(|s| s.name.value == f.value)?;
        if seen.contains(&next) {
            seen.push(next);
            let start = seen.iter().position(|s| *s == next).unwrap_or(0);
            return Some(
                seen[start..]
                    .iter()
                    .map(|s| list[*s].name.value.clone())
                    .collect::<Vec<_>>()
                    .join(" <- "),
            );
        }
        seen.push(next);
        at = next;
    }
    None
}

/// Whether two stages' globs can match one file: each glob, with its wildcards filled in
/// (`*` and `?` by a name, `**` by two directories), is tried against the other's set.
fn overlap(
    a: &[String],
    a_set: &globset::GlobSet,
    b: &[String],
    b_set: &globset::GlobSet,
) -> Option<(String, String)> {
    for ga in a {
        for gb in b {
            let hit = samples(gb).iter().any(|p| a_set.is_match(p))
                || samples(ga).iter().any(|p| b_set.is_match(p));
            if hit {
                return Some((ga.clone(), gb.clone()));
            }
        }
    }
    None
}

/// Paths a glob matches: its wildcards filled in with plain names.
fn samples(glob: &str) -> Vec<String> {
    vec![sample(glob), sample(glob).replace("x/y/", "")]
}

fn sample(glob: &str) -> String {
    let mut out = String::new();
    let mut chars = glob.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                out.push_str("x/y");
            }
            '*' | '?' => out.push('x'),
            '[' => {
                // The first character of the class stands for it.
                let class: String = chars.by_ref().take_while(|c| *c != ']').collect();
                out.push(
                    class
                        .trim_start_matches(['!', '^'])
                        .chars()
                        .next()
                        .unwrap_or('x'),
                );
            }
            '{' => {
                let alt: String = chars.by_ref().take_while(|c| *c != '}').collect();
                out.push_str(alt.split(',').next().unwrap_or("x"));
            }
            c => out.push(c),
        }
    }
    if out.ends_with("x/y") {
        out.push_str(".yaml");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Stage>, ConfigError> {
        let file = Path::new(".image-updater.yaml");
        let config = crate::config::Config::parse(file, text)?;
        Stage::compile(&config.stages, file)
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30m"), Some(1800));
        assert_eq!(parse_duration("24h"), Some(86_400));
        assert_eq!(parse_duration("7d"), Some(604_800));
        for bad in ["", "h", "1.5h", "-1h", "10", "1w", "1 h"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        assert_eq!(show_duration(90_000), "1d 1h");
        assert_eq!(show_duration(5400), "1h 30m");
    }

    const THREE: &str = r#"
stages:
  - { name: dev, paths: ["clusters/dev/**"], mode: commit, min_age: 1h }
  - { name: staging, paths: ["clusters/staging/**"], from: dev, soak: 24h, mode: commit }
  - { name: prod, paths: ["clusters/prod/**"], from: staging, soak: 48h, mode: pull-request, together: [web, api] }
"#;

    #[test]
    fn three_stages_are_read() {
        let stages = parse(THREE).unwrap();
        assert_eq!(stages.len(), 3);
        assert_eq!(stages[0].min_age, Some(3600));
        assert_eq!(stages[1].from, Some(0));
        assert_eq!(stages[2].soak, 48 * 3600);
        assert_eq!(stages[2].mode, Some(DeliveryMode::PullRequest));
        assert_eq!(stages[2].together, ["web", "api"]);
    }

    #[test]
    fn bad_stages_name_the_line() {
        let cases = [
            (THREE.replace("from: dev", "from: qa"), 4, "is not a stage"),
            (THREE.replace("soak: 24h", "soak: 1day"), 4, "expected a duration"),
            (
                THREE.replace("clusters/staging/**", "clusters/**"),
                4,
                "overlaps",
            ),
            (
                "stages:\n  - { name: a, paths: [a/**], from: b }\n  - { name: b, paths: [b/**], from: a }\n".into(),
                2,
                "cycle",
            ),
            (
                "stages:\n  - { name: a, paths: [a/**], from: b }\n  - { name: b, paths: [b/**] }\n".into(),
                2,
                "listed after it",
            ),
            (
                "stages:\n  - { name: a, paths: [a/**], from: a }\n".into(),
                2,
                "cycle",
            ),
            ("stages:\n  - { name: a, paths: [a/**], sok: 1h }\n".into(), 2, "unknown field"),
        ];
        for (text, line, what) in cases {
            let e = parse(&text).unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains(what), "{msg}");
            assert!(
                msg.starts_with(&format!(".image-updater.yaml:{line}:")),
                "{msg}"
            );
        }
    }

    #[test]
    fn disjoint_paths_do_not_overlap() {
        let ok = "stages:\n  - { name: a, paths: ['**/dev/**'] }\n  - { name: b, paths: ['**/prod/**'], from: a }\n  - { name: c, paths: ['clusters/dev-eu/**'] }\n";
        assert!(parse(ok).is_ok(), "{:?}", parse(ok).err());
    }

    #[test]
    fn together_names_known_images() {
        let s = &parse(THREE).unwrap()[2];
        assert!(s
            .check_together(&["web", "api", "db"], Path::new("c.yaml"))
            .is_ok());
        let e = s.check_together(&["web"], Path::new("c.yaml")).unwrap_err();
        assert!(e.to_string().starts_with("c.yaml:5:"), "{e}");
        assert!(e.to_string().contains("\"api\""), "{e}");
    }
}
