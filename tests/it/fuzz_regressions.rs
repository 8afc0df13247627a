//! Replays the fuzz corpus in CI: every file of `fuzz/seeds/<target>/` (hand-written seeds and
//! inputs the fuzzer found), `fuzz/corpus/<target>/` (the fuzzer's minimised corpus) and
//! `fuzz/regressions/<target>/` (every crash, hang or slow input the fuzzer ever reported,
//! kept once fixed) through the target's checks in [`image_updater::fuzzing`], the same
//! functions the fuzz targets call. That module is behind the crate's `fuzzing` feature, which
//! the crate's dev-dependency on itself turns on for every test build: a plain `cargo test`
//! replays the corpus, and a release build has none of it.
//!
//! A failure names the file: its panic message, or that it ran past [`SLOW`] (a hang).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use image_updater::fuzzing::{Target, TARGETS};

/// An input that takes longer than this in a test build is a hang, not a slow case.
const SLOW: Duration = Duration::from_secs(30);

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of `dir`, sorted; none when it does not exist (git keeps no empty directory).
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| {
            e.unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .path()
        })
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Run `target`'s checks on every file of its seed, corpus and regression directories under
/// `root`: how many inputs there were, and the failures, each naming its file. Inputs run on
/// a worker thread so that a hang (no result within `limit`) is caught and named.
fn replay(root: &Path, target: &Target, limit: Duration) -> (usize, Vec<String>) {
    let mut files = files_in(&root.join("seeds").join(target.name));
    assert!(
        !files.is_empty(),
        "fuzz/seeds/{} holds no seeds: the replay would check nothing",
        target.name
    );
    for kind in ["corpus", "regressions"] {
        files.extend(files_in(&root.join(kind).join(target.name)));
    }
    let count = files.len();
    let (tx, rx) = mpsc::channel();
    let check = target.check;
    let worker_files = files.clone();
    std::thread::spawn(move || {
        for file in worker_files {
            let data = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let start = Instant::now();
            let outcome = catch_unwind(AssertUnwindSafe(|| check(&data)));
            let outcome = outcome.map_err(|p| panic_message(p.as_ref()));
            if tx.send((file, outcome, start.elapsed())).is_err() {
                break;
            }
        }
    });
    let mut failures = Vec::new();
    for file in &files {
        let shown = file.strip_prefix(root).unwrap_or(file).display();
        match rx.recv_timeout(limit) {
            Ok((done, outcome, took)) => {
                assert_eq!(&done, file, "inputs are replayed in order");
                if let Err(message) = outcome {
                    failures.push(format!("fuzz/{shown}: {message}"));
                } else if took > limit {
                    failures.push(format!("fuzz/{shown}: took {took:.1?}"));
                }
            }
            Err(_) => {
                // The worker is stuck on this input; the rest cannot be replayed after it.
                failures.push(format!("fuzz/{shown}: no result within {limit:?} (a hang)"));
                break;
            }
        }
    }
    (count, failures)
}

fn replay_target(name: &str) {
    let target = TARGETS
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no fuzz target {name}"));
    let (count, failures) = replay(&fuzz_dir(), target, SLOW);
    assert!(
        failures.is_empty(),
        "{} of {count} {name} fuzz inputs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{name}: {count} inputs replayed");
}

#[test]
fn every_target_has_a_test_here_and_a_binary_in_fuzz() {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    for t in TARGETS {
        assert!(
            manifest.contains(&format!("name = \"{}\"", t.name)),
            "fuzz/Cargo.toml has no [[bin]] for {}",
            t.name
        );
        let source = std::fs::read_to_string(
            fuzz_dir()
                .join("fuzz_targets")
                .join(format!("{}.rs", t.name)),
        )
        .unwrap_or_else(|e| panic!("fuzz/fuzz_targets/{}.rs: {e}", t.name));
        assert!(
            source.contains(&format!("image_updater::fuzzing::{}(data)", t.name)),
            "fuzz/fuzz_targets/{}.rs does not call image_updater::fuzzing::{}",
            t.name,
            t.name
        );
    }
    let tested = ["scan_splice", "reference", "semver_range", "config"];
    for t in TARGETS {
        assert!(tested.contains(&t.name), "no replay test for {}", t.name);
    }
    // Every directory of seeds, corpus and regressions belongs to a target.
    for kind in ["seeds", "corpus", "regressions"] {
        for e in std::fs::read_dir(fuzz_dir().join(kind))
            .into_iter()
            .flatten()
        {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            assert!(
                TARGETS.iter().any(|t| t.name == name),
                "fuzz/{kind}/{name} is not a fuzz target's directory"
            );
        }
    }
}

#[test]
fn scan_splice_corpus_and_regressions() {
    replay_target("scan_splice");
}

#[test]
fn reference_corpus_and_regressions() {
    replay_target("reference");
}

#[test]
fn semver_range_corpus_and_regressions() {
    replay_target("semver_range");
}

#[test]
fn config_corpus_and_regressions() {
    replay_target("config");
}

/// The replay names the file of an input whose check panics or hangs, so the tests above can
/// fail, and say where.
#[test]
fn a_failing_or_hanging_input_is_reported_with_its_file() {
    fn fails_on_x(data: &[u8]) {
        assert!(!data.contains(&b'x'), "an x in {} bytes", data.len());
        if data.contains(&b'z') {
            std::thread::sleep(Duration::from_secs(5));
        }
    }
    let root = tempfile::tempdir().unwrap();
    let seeds = root.path().join("seeds/t");
    let regressions = root.path().join("regressions/t");
    std::fs::create_dir_all(&seeds).unwrap();
    std::fs::create_dir_all(&regressions).unwrap();
    std::fs::write(seeds.join("fine"), b"a").unwrap();
    std::fs::write(regressions.join("crash-1"), b"axa").unwrap();
    let target = Target {
        name: "t",
        check: fails_on_x,
    };
    let (count, failures) = replay(root.path(), &target, Duration::from_secs(30));
    assert_eq!(count, 2);
    assert_eq!(failures, ["fuzz/regressions/t/crash-1: an x in 3 bytes"]);

    std::fs::write(regressions.join("hang-2"), b"z").unwrap();
    let (count, failures) = replay(root.path(), &target, Duration::from_millis(500));
    assert_eq!(count, 3);
    assert_eq!(
        failures,
        [
            "fuzz/regressions/t/crash-1: an x in 3 bytes",
            "fuzz/regressions/t/hang-2: no result within 500ms (a hang)"
        ]
    );
}
