//! The binary: parse arguments, take the environment once, set up logging, call the library,
//! map the outcome to the exit codes of the product contract (0 ok, 1 failure, 2 usage or
//! config, 3 updates pending).

use std::io::{IsTerminal, Read, Write};
use std::process::ExitCode;

use clap::Parser;
use image_updater::cli::{Cli, Cmd, Global, LogFormat};
use image_updater::policy::Policy;
use image_updater::report::{markdown_diff, Format};
use image_updater::{escape, observe};
use image_updater::{Command, Env, Error, Request, TagInput};

/// `IMAGE_UPDATER_LOG` (an `EnvFilter`), else our own events at `level`. The HTTP and TLS
/// crates under us log whole URLs (a token request's `account=`, a redirect's query) and
/// headers at debug and trace, unscrubbed: they are held at `info` whatever the filter says.
fn log_filter(env: &Env, level: &str) -> tracing_subscriber::EnvFilter {
    let mut filter = env
        .raw("IMAGE_UPDATER_LOG")
        .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(format!("image_updater={level}")));
    for quiet in [
        "reqwest",
        "hyper",
        "hyper_util",
        "h2",
        "rustls",
        "tower",
        "git2",
    ] {
        if let Ok(d) = format!("{quiet}=info").parse() {
            filter = filter.add_directive(d);
        }
    }
    filter
}

/// Log events on stderr: `-v` the stages (info), `-vv` every request (debug), as text or one
/// JSON object a line. Each event is one line, written whole, with the progress line taken
/// off the screen ([`observe::LogWriter`]).
fn init_logging(global: &Global, env: &Env) {
    let level = match (global.quiet, global.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    let builder = tracing_subscriber::fmt()
        .with_writer(|| observe::LogWriter)
        .with_env_filter(log_filter(env, level));
    match global.log_format {
        // Colour only for a terminal: a log file or a CI log gets no escape codes.
        LogFormat::Text => builder
            .with_ansi(
                !global.no_color
                    && env.raw("NO_COLOR").is_none()
                    && std::io::stderr().is_terminal(),
            )
            .init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
}

/// Whether this runs in CI (`CI`, set by GitHub Actions, GitLab CI and most others).
fn in_ci(env: &Env) -> bool {
    env.flag("CI") || env.flag("GITHUB_ACTIONS") || env.flag("GITLAB_CI")
}

fn main() -> ExitCode {
    limit_malloc_arenas();
    let cli = Cli::parse();
    // The one read of the process environment: everything below gets this snapshot.
    let env = Env::from_process();
    init_logging(&cli.global, &env);
    // The progress line: only for a person at a terminal, never in CI or with -q.
    if matches!(cli.command, Cmd::Run { .. } | Cmd::Plan { .. })
        && !cli.global.quiet
        && std::io::stderr().is_terminal()
        && !in_ci(&env)
    {
        observe::enable_progress(std::time::Duration::from_secs(1));
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(run(cli, env));
    observe::finish_progress();
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", escape::text_line(&e.to_string()));
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

async fn run(cli: Cli, env: Env) -> Result<u8, Error> {
    let format = cli.global.output;
    let config = cli.global.config;
    let mut promote = None;
    let (command, path, job, exit_code) = match cli.command {
        Cmd::Run { path, job } => (Command::Run, path, Some(job), false),
        Cmd::Promote {
            stage,
            image,
            path,
            force,
            reason,
            verb,
        } => {
            promote = Some(image_updater::stages::Promote {
                stage,
                image,
                force,
                reason,
            });
            let job = image_updater::cli::JobArgs {
                mode: verb.mode,
                ..Default::default()
            };
            (Command::Run, path, Some(job), false)
        }
        Cmd::Plan {
            path,
            job,
            exit_code,
        } => (Command::Plan, path, Some(job), exit_code),
        Cmd::Scan { path } => (Command::Scan, path, None, false),
        Cmd::Set {
            image,
            path,
            files,
            no_lock,
            verb,
        } => {
            let verb_cmd = image_updater::verbs::Verb::Set {
                image,
                files,
                no_lock,
            };
            return run_verb(verb_cmd, path, verb.mode, config, format, env).await;
        }
        Cmd::Lock {
            image,
            path,
            reason,
            verb,
        } => {
            let verb_cmd = image_updater::verbs::Verb::Lock { image, reason };
            return run_verb(verb_cmd, path, verb.mode, config, format, env).await;
        }
        Cmd::Unlock { image, path, verb } => {
            let verb_cmd = image_updater::verbs::Verb::Unlock { image };
            return run_verb(verb_cmd, path, verb.mode, config, format, env).await;
        }
        Cmd::Tags {
            image,
            policy,
            filter,
            extract,
            exclude,
            tags_from,
            versioning,
            current,
        } => {
            let kind = policy
                .spec()
                .kind()
                .map_err(|e| Error::Usage(e.to_string()))?;
            let mut policy =
                Policy::new(kind, &exclude, false).map_err(|e| Error::Usage(e.to_string()))?;
            if let Some(f) = &filter {
                policy = policy
                    .with_filter(f, extract.as_deref())
                    .map_err(|e| Error::Usage(e.to_string()))?;
            }
            if versioning == image_updater::policy::Versioning::Docker && current.is_none() {
                return Err(Error::Usage(
                    "--versioning docker needs --current TAG: the current tag's suffix and \
                     precision decide which tags are candidates"
                        .into(),
                ));
            }
            policy = policy
                .with_versioning(versioning)
                .map_err(|e| Error::Usage(e.to_string()))?;
            let input = match tags_from {
                None => TagInput::Registry { config, env },
                Some(f) => {
                    let mut text = String::new();
                    let read = if f.as_os_str() == "-" {
                        std::io::stdin().read_to_string(&mut text).map(|_| ())
                    } else {
                        std::fs::read_to_string(&f).map(|t| text = t)
                    };
                    read.map_err(|e| Error::Usage(format!("{}: {e}", f.display())))?;
                    TagInput::Lines(text)
                }
            };
            let report = image_updater::list_tags(
                &image,
                &policy,
                current.as_deref(),
                input,
                cli.global.verbose > 0,
            )
            .await?;
            print(&report.render(format));
            return Ok(0);
        }
    };
    let job = job.unwrap_or_default();
    if job.branch.is_some() && job.clone.is_none() {
        return Err(Error::Usage(
            "--branch (IMAGE_UPDATER_BRANCH) needs --clone (IMAGE_UPDATER_CLONE)".into(),
        ));
    }
    let _clone_dir;
    let root = match &job.clone {
        Some(url) => {
            let dir = tempfile::tempdir().map_err(|e| Error::Failed(format!("temp dir: {e}")))?;
            image_updater::git::clone(url, job.branch.as_deref(), dir.path(), &env).map_err(
                |e| match e.kind {
                    // The user must name a branch: a usage error, nothing touched.
                    image_updater::git::GitErrorKind::NoBranch => Error::Usage(e.to_string()),
                    _ => Error::Failed(e.to_string()),
                },
            )?;
            let root = dir.path().to_path_buf();
            _clone_dir = dir;
            root
        }
        None => path,
    };
    let outcome = image_updater::execute(&Request {
        command,
        root: root.clone(),
        config,
        shard: job.shard,
        mode: job.mode,
        stage: job.stage.clone(),
        promote,
        env: env.clone(),
    })
    .await?;
    if command == Command::Scan {
        print(&outcome.scan.render(format));
        return Ok(0);
    }
    observe::finish_progress();
    let mut out = outcome.report.render(format);
    if command == Command::Plan && format != Format::Json && !outcome.diff.is_empty() {
        out.push('\n');
        if format == Format::Markdown {
            out.push_str(&markdown_diff(&outcome.diff));
        } else {
            out.push_str(&outcome.diff);
        }
    }
    // The last line says what happened to the repository.
    match format {
        Format::Text => out.push_str(&format!("\n{}\n", escape::text_line(&outcome.summary))),
        Format::Markdown => out.push_str(&format!("\n{}\n", escape::md_text(&outcome.summary))),
        Format::Json => tracing::info!("{}", outcome.summary),
    }
    print(&out);
    image_updater::ci::publish(&outcome.report, &root, &env)?;
    Ok(if !outcome.report.errors.is_empty() {
        1
    } else if exit_code && !outcome.report.updates.is_empty() {
        3
    } else {
        0
    })
}

/// `set`, `lock`, `unlock`: run the verb, print its report (and, with `mode: none`, the diff)
/// and the summary line; exit 1 when the delivery failed.
async fn run_verb(
    verb: image_updater::verbs::Verb,
    root: std::path::PathBuf,
    mode: Option<image_updater::config::DeliveryMode>,
    config: Option<std::path::PathBuf>,
    format: Format,
    env: Env,
) -> Result<u8, Error> {
    let outcome = image_updater::verbs::execute_verb(&image_updater::verbs::VerbRequest {
        verb,
        root: root.clone(),
        config,
        mode,
        env: env.clone(),
    })
    .await?;
    let mut out = outcome.report.render(format);
    if format != Format::Json && !outcome.diff.is_empty() {
        out.push('\n');
        if format == Format::Markdown {
            out.push_str(&markdown_diff(&outcome.diff));
        } else {
            out.push_str(&outcome.diff);
        }
    }
    match format {
        Format::Text => out.push_str(&format!("\n{}\n", escape::text_line(&outcome.summary))),
        Format::Markdown => out.push_str(&format!("\n{}\n", escape::md_text(&outcome.summary))),
        Format::Json => tracing::info!("{}", outcome.summary),
    }
    print(&out);
    image_updater::ci::publish(&outcome.report, &root, &env)?;
    Ok(if outcome.report.errors.is_empty() {
        0
    } else {
        1
    })
}

/// Write `s` to stdout. No line of it can start a GitHub Actions workflow command
/// ([`escape::defuse_commands`]): the names and messages in it are escaped already, and a line
/// of a diff is file content.
fn print(s: &str) {
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = stdout.write_all(escape::defuse_commands(s).as_bytes());
    let _ = stdout.flush();
}

/// glibc gives each thread that allocates its own arena, and memory freed in one is not
/// reused by another: with the scan, rewrite and runtime threads all allocating, peak RSS of
/// `plan` on the large benchmark was 260 MB, and 220 MB with two arenas (BENCHMARKS.md).
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a tunable; it is called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
