//! What a run is doing, for the person or the CI log watching it.
//!
//! - [`Counters`]: the requests a run made (registry requests, tag pages, bytes, retries and
//!   their waits, forge calls), counted where they are made; the stage lines logged at `-v`
//!   report their difference over the stage ([`Snapshot`]).
//! - The progress line: on a terminal, when the run takes longer than a second, one line
//!   (drawn by `indicatif`) says how many of the repositories it needs are listed and what it
//!   is waiting on. It is off unless the binary turns it on ([`enable_progress`]); every
//!   function here is a no-op then. Log events go through [`LogWriter`], which takes the
//!   line away while an event is written, so the two never share a line.

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Requests made by this process, by kind. Counted with relaxed atomics: they are totals read
/// at the end of a stage, not synchronisation.
pub struct Counters {
    /// Registry HTTP requests sent (every attempt, token requests included).
    pub registry_requests: AtomicU64,
    /// Bytes of registry answers read.
    pub registry_bytes: AtomicU64,
    /// Tag list pages received.
    pub tag_pages: AtomicU64,
    /// Registry requests sent again (after a 429, a 5xx, a reset, a timeout).
    pub registry_retries: AtomicU64,
    /// Time spent waiting before retries and for `requests_per_second`, in microseconds.
    pub registry_waited_us: AtomicU64,
    /// Forge API calls.
    pub forge_calls: AtomicU64,
}

/// The process's counters.
pub static COUNTERS: Counters = Counters {
    registry_requests: AtomicU64::new(0),
    registry_bytes: AtomicU64::new(0),
    tag_pages: AtomicU64::new(0),
    registry_retries: AtomicU64::new(0),
    registry_waited_us: AtomicU64::new(0),
    forge_calls: AtomicU64::new(0),
};

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Note a wait of `d` (a retry's backoff or `Retry-After`, or pacing).
    pub fn waited(d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        COUNTERS.registry_waited_us.fetch_add(us, Ordering::Relaxed);
    }
}

/// The counters at one moment; [`Snapshot::since`] gives a stage's share.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub registry_requests: u64,
    pub registry_bytes: u64,
    pub tag_pages: u64,
    pub registry_retries: u64,
    pub registry_waited_us: u64,
    pub forge_calls: u64,
}

impl Snapshot {
    pub fn now() -> Snapshot {
        let c = &COUNTERS;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Snapshot {
            registry_requests: get(&c.registry_requests),
            registry_bytes: get(&c.registry_bytes),
            tag_pages: get(&c.tag_pages),
            registry_retries: get(&c.registry_retries),
            registry_waited_us: get(&c.registry_waited_us),
            forge_calls: get(&c.forge_calls),
        }
    }

    /// What was counted between `earlier` and this snapshot.
    pub fn since(self, earlier: Snapshot) -> Snapshot {
        Snapshot {
            registry_requests: self.registry_requests - earlier.registry_requests,
            registry_bytes: self.registry_bytes - earlier.registry_bytes,
            tag_pages: self.tag_pages - earlier.tag_pages,
            registry_retries: self.registry_retries - earlier.registry_retries,
            registry_waited_us: self.registry_waited_us - earlier.registry_waited_us,
            forge_calls: self.forge_calls - earlier.forge_calls,
        }
    }
}

/// Milliseconds since `start`, to a tenth: the `ms` field of the stage lines.
pub fn ms_since(start: Instant) -> f64 {
    ms(start.elapsed())
}

/// `d` in milliseconds, to a tenth.
pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

/// The progress line, once turned on.
struct Progress {
    bar: ProgressBar,
    /// Set when the run is over: a line not shown by then never is.
    finished: AtomicBool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Repositories whose listing has started and not ended, with when it started.
    listing: BTreeMap<String, Instant>,
    /// Repositories listed (or failed).
    listed: HashSet<String>,
    /// The repositories the run needs, once discovery knows them; until then, every
    /// repository whose listing started.
    needed: Option<HashSet<String>>,
    /// A wait that is not a listing: a retry's backoff, a forge call, a push.
    waiting: Option<String>,
}

static PROGRESS: OnceLock<Progress> = OnceLock::new();

/// Turn on the progress line: drawn on stderr after `delay`, if the run is still going.
/// The caller decides that stderr is a terminal and that no CI and no `-q` forbid it.
pub fn enable_progress(delay: Duration) {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {wide_msg} {elapsed}") {
        bar.set_style(style);
    }
    let progress = Progress {
        bar,
        finished: AtomicBool::new(false),
        state: Mutex::new(State::default()),
    };
    if PROGRESS.set(progress).is_err() {
        return;
    }
    std::thread::spawn(move || {
        std::thread::sleep(delay);
        if let Some(p) = PROGRESS.get() {
            // Under the state lock, so `finish_progress` cannot run in between.
            let Ok(state) = p.state.lock() else {
                return;
            };
            if !p.finished.load(Ordering::SeqCst) {
                p.bar.set_draw_target(ProgressDrawTarget::stderr());
                p.bar.enable_steady_tick(Duration::from_millis(120));
                p.redraw(&state.line());
            }
        }
    });
}

impl Progress {
    fn redraw(&self, line: &str) {
        self.bar.set_message(line.to_string());
    }

    fn update(&self, f: impl FnOnce(&mut State)) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        f(&mut state);
        if !self.finished.load(Ordering::SeqCst) {
            self.redraw(&state.line());
        }
    }
}

impl State {
    /// `repositories listed 3/10 · waiting on ghcr.io/acme/web` (the listing running longest).
    fn line(&self) -> String {
        let (done, total) = match &self.needed {
            Some(needed) => (
                needed.iter().filter(|n| self.listed.contains(*n)).count(),
                needed.len(),
            ),
            None => (self.listed.len(), self.listed.len() + self.listing.len()),
        };
        let mut line = format!("repositories listed {done}/{total}");
        let oldest = self
            .listing
            .iter()
            .filter(|(name, _)| self.needed.as_ref().is_none_or(|n| n.contains(*name)))
            .min_by_key(|(_, since)| **since);
        match (&self.waiting, oldest) {
            (Some(w), _) => {
                line.push_str(" · ");
                line.push_str(w);
            }
            (None, Some((name, _))) => {
                line.push_str(" · waiting on ");
                line.push_str(name);
            }
            (None, None) => {}
        }
        crate::escape::text_line(&line).into_owned()
    }
}

/// The listing of `name` (a canonical repository) started.
pub fn listing_started(name: &str) {
    if let Some(p) = PROGRESS.get() {
        p.update(|s| {
            s.listing.insert(name.to_string(), Instant::now());
        });
    }
}

/// The listing of `name` ended, with `tags` tags or an error, after `took`.
pub fn listing_ended(name: &str, tags: Result<usize, &str>, took: Duration) {
    match tags {
        Ok(n) => tracing::debug!(repository = name, tags = n, ms = ms(took), "tags listed"),
        Err(e) => tracing::debug!(
            repository = name,
            ms = ms(took),
            error = e,
            "tags not listed"
        ),
    }
    if let Some(p) = PROGRESS.get() {
        p.update(|s| {
            s.listing.remove(name);
            s.listed.insert(name.to_string());
        });
    }
}

/// The repositories the run needs are known (after discovery): the line counts those.
pub fn listing_needed<'a>(names: impl IntoIterator<Item = &'a String>) {
    if let Some(p) = PROGRESS.get() {
        let needed: HashSet<String> = names.into_iter().cloned().collect();
        p.update(|s| s.needed = Some(needed));
    }
}

/// What the run waits on besides listings (`None`: nothing more).
pub fn waiting(what: Option<String>) {
    if let Some(p) = PROGRESS.get() {
        p.update(|s| s.waiting = what);
    }
}

/// Take the line away for good (before the report is printed).
pub fn finish_progress() {
    if let Some(p) = PROGRESS.get() {
        let _state = p.state.lock();
        p.finished.store(true, Ordering::SeqCst);
        p.bar.finish_and_clear();
    }
}

/// Run `f` with the progress line taken off the screen (it comes back after).
pub fn suspend<R>(f: impl FnOnce() -> R) -> R {
    match PROGRESS.get() {
        Some(p) if !p.bar.is_hidden() => p.bar.suspend(f),
        _ => f(),
    }
}

/// The writer of log events on stderr: each event (tracing writes one with one `write_all`)
/// is written whole under stderr's lock, so events of several threads never share a line; as
/// one line that cannot start a workflow command ([`crate::escape::LogLine`]); and with the
/// progress line taken off the screen. The progress line's lock is taken before stderr's, as
/// its drawing does, so the two cannot wait on each other.
pub struct LogWriter;

impl io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        suspend(|| crate::escape::LogLine(io::stderr().lock()).write_all(buf)).map(|()| buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_counts_needed_repositories_and_names_the_oldest_wait() {
        let mut s = State::default();
        let t = Instant::now();
        s.listing.insert("r/a".into(), t);
        s.listing.insert("r/b".into(), t + Duration::from_millis(5));
        s.listed.insert("r/c".into());
        assert_eq!(s.line(), "repositories listed 1/3 · waiting on r/a");
        s.needed = Some(["r/b".to_string(), "r/c".to_string()].into());
        assert_eq!(s.line(), "repositories listed 1/2 · waiting on r/b");
        s.waiting = Some("retry in 2s after HTTP 429 (r/b)".into());
        assert_eq!(
            s.line(),
            "repositories listed 1/2 · retry in 2s after HTTP 429 (r/b)"
        );
        s.listing.clear();
        s.waiting = None;
        s.listing.insert("x\n::error::y".into(), t);
        s.needed = None;
        assert_eq!(
            s.line(),
            "repositories listed 1/2 · waiting on x\\n::error::y"
        );
    }

    #[test]
    fn snapshots_subtract() {
        let a = Snapshot {
            registry_requests: 5,
            tag_pages: 2,
            ..Default::default()
        };
        let b = Snapshot {
            registry_requests: 9,
            tag_pages: 3,
            forge_calls: 1,
            ..Default::default()
        };
        let d = b.since(a);
        assert_eq!((d.registry_requests, d.tag_pages, d.forge_calls), (4, 1, 1));
        assert_eq!(ms(Duration::from_micros(12_345)), 12.3);
    }
}
