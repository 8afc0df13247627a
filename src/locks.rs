//! Locked images: held where they are by `image-updater lock` (or by a `set` that rolled
//! back), so no run moves them. A lock lives in Git, beside what governs the image: a
//! `locks:` entry of `.image-updater.yaml` ([`LockEntry`]), or `fluxcd.io/locked: "true"` on
//! a Flux v1 workload. [`mark_locked`] gives every locked reference its reason before the
//! resolve stage, so runs report it as skipped ("locked: REASON") and leave it alone.
//! Writing locks is [`crate::manifest::locks`].

use serde::Deserialize;

use crate::discover::Discovery;
use crate::env::Env;
use crate::manifest::locks::{flux_workloads, same_image};
use crate::manifest::scan::line_at;

/// One `locks:` entry of the config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockEntry {
    /// The repository held (`ghcr.io/acme/web`; any spelling of the same name).
    pub image: String,
    /// Why, for the report.
    #[serde(default)]
    pub reason: Option<String>,
    /// When it was locked (RFC 3339), for people reading the config.
    #[serde(default)]
    pub since: Option<String>,
}

/// The skip reason of a lock with `reason`.
pub fn locked_reason(reason: Option<&str>) -> String {
    match reason.map(str::trim).filter(|r| !r.is_empty()) {
        Some(r) => format!("locked: {r}"),
        None => "locked".to_string(),
    }
}

/// Give each reference that would be looked at (no reason to skip it yet) and is locked —
/// by a config entry for its image, or by the Flux v1 workload holding it — the reason
/// "locked: REASON".
pub(crate) fn mark_locked(found: &mut Discovery, locks: &[LockEntry]) {
    // Flux v1 workloads with `locked: "true"`, per file: (first line, last line, message).
    let mut held: Vec<Vec<(usize, usize, String)>> = Vec::with_capacity(found.sources.len());
    for src in &found.sources {
        let mut spans = Vec::new();
        if !src.created && src.text.contains("locked") {
            for w in flux_workloads(&src.text).unwrap_or_default() {
                if let Some(msg) = w.locked {
                    let last = line_at(&src.text, w.span.end.saturating_sub(1));
                    spans.push((line_at(&src.text, w.span.start), last, msg));
                }
            }
        }
        held.push(spans);
    }
    for occ in found.occurrences.iter_mut().filter(|o| o.reason.is_none()) {
        let name = occ.image.canonical_name();
        if let Some(lock) = locks.iter().find(|l| same_image(&l.image, &name)) {
            occ.reason = Some(locked_reason(lock.reason.as_deref()));
        } else if let Some((_, _, msg)) = held[occ.file]
            .iter()
            .find(|(a, b, _)| (*a..=*b).contains(&occ.site.line))
        {
            occ.reason = Some(locked_reason(Some(msg)));
        }
    }
}

/// Now in RFC 3339 (UTC, whole seconds): `SOURCE_DATE_EPOCH` when set (reproducible output),
/// else the clock.
pub fn now_rfc3339(env: &Env) -> String {
    let secs = env
        .raw("SOURCE_DATE_EPOCH")
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64)
        });
    rfc3339(secs)
}

/// `secs` since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub(crate) fn rfc3339(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_796_577_620), "2026-12-06T17:20:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn a_lock_without_a_reason_says_locked() {
        assert_eq!(locked_reason(None), "locked");
        assert_eq!(locked_reason(Some(" ")), "locked");
        assert_eq!(locked_reason(Some("incident 42")), "locked: incident 42");
    }
}
