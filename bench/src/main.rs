//! `bench-gen`: the benchmark's command-line tools.
//!
//! - `bench-gen generate SIZE OUT API [list-only]`: the synthetic infra repo in `OUT/repo`
//!   and the registry storage in `OUT/storage` (see `gen.rs`); prints the summary as
//!   `key=value` lines (`expected_updates=…`). With `BENCH_CHARTS=1`, every tenth file is a
//!   Flux HelmRelease of an OCI chart in the same registry (issue 18).
//! - `bench-gen read DIR`: the reading floor: read every `*.yaml`/`*.yml` file under `DIR`
//!   (`.git` left out) once, on one thread, and print how many files and bytes.

mod gen;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!("usage: bench-gen generate S|M|L OUT_DIR REGISTRY_API [list-only]\n       bench-gen read DIR");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["generate", size, out, api, rest @ ..] => {
            let Some(size) = gen::Size::by_name(size) else {
                return usage();
            };
            let layout = match rest {
                [] => gen::TagLayout::Linked,
                ["list-only"] => gen::TagLayout::ListOnly,
                _ => return usage(),
            };
            let out = PathBuf::from(out);
            let storage = out.join("storage");
            // BENCH_CHARTS=1 (issue 18): every tenth file a HelmRelease of an OCI chart.
            let charts = std::env::var("BENCH_CHARTS").is_ok_and(|v| v == "1");
            let repo = out.join("repo");
            match gen::generate_with(size, &repo, Some((&storage, layout)), api, charts) {
                Ok(summary) => {
                    print!("{}", summary.to_lines());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("bench-gen: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        ["read", dir] => {
            let (mut files, mut bytes) = (0usize, 0usize);
            if let Err(e) = read_all(Path::new(dir), &mut files, &mut bytes) {
                eprintln!("bench-gen: {e}");
                return ExitCode::FAILURE;
            }
            println!("files={files}\nbytes={bytes}");
            ExitCode::SUCCESS
        }
        _ => usage(),
    }
}

fn read_all(dir: &Path, files: &mut usize, bytes: &mut usize) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            if entry.file_name() != ".git" {
                read_all(&path, files, bytes)?;
            }
        } else if kind.is_file() && path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            *bytes += std::fs::read(&path)?.len();
            *files += 1;
        }
    }
    Ok(())
}
