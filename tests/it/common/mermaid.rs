//! Mermaid's own parser, and its renderer, as test checks: every ```` ```mermaid ```` block of
//! a Markdown text goes through mermaid (the npm package's self-contained browser bundle,
//! `dist/mermaid.min.js`) in headless Debian `chromium`. A page loads the bundle, calls
//! `mermaid.parse` (or `mermaid.render`) on each block and writes the outcomes into the DOM,
//! which `chromium --dump-dom` prints. All blocks of one call share one chromium start (each
//! costs a second or two).
//!
//! `scripts/install-test-deps.sh` installs chromium (apt) and mermaid (npm, pinned, into
//! `target/mermaid/node_modules`); when either is missing the check fails and says so — it
//! never skips.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one chromium run may take before the check gives up.
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(90);

/// Panic unless `markdown` has at least one ```` ```mermaid ```` block and mermaid parses every
/// one of them; the message names each failing block with mermaid's error.
#[track_caller]
pub fn assert_parses(markdown: &str) {
    let blocks = blocks(markdown);
    assert!(
        !blocks.is_empty(),
        "no ```mermaid block in this Markdown:\n{markdown}"
    );
    let failures: Vec<String> = parse(&blocks)
        .into_iter()
        .zip(&blocks)
        .enumerate()
        .filter_map(|(n, (r, b))| r.err().map(|e| format!("block {n}:\n{b}\nmermaid: {e}")))
        .collect();
    assert!(
        failures.is_empty(),
        "mermaid does not parse {} of {} blocks:\n{}",
        failures.len(),
        blocks.len(),
        failures.join("\n\n")
    );
}

/// The text of every ```` ```mermaid ```` fenced block in `markdown` (a fence of three or more
/// backticks, up to three spaces in; the block ends at a fence at least as long, or at the end).
pub fn blocks(markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut open: Option<(usize, String)> = None;
    for line in markdown.lines() {
        let indent = line.len() - line.trim_start_matches(' ').len();
        let rest = &line[indent..];
        let ticks = rest.len() - rest.trim_start_matches('`').len();
        match &mut open {
            Some((fence, text)) => {
                if indent <= 3 && ticks >= *fence && rest[ticks..].trim().is_empty() {
                    out.push(std::mem::take(text));
                    open = None;
                } else {
                    text.push_str(line);
                    text.push('\n');
                }
            }
            None => {
                if indent <= 3 && ticks >= 3 && rest[ticks..].trim() == "mermaid" {
                    open = Some((ticks, String::new()));
                }
            }
        }
    }
    out.extend(open.map(|(_, text)| text));
    out
}

/// mermaid's parse of each block: `Ok` or its error message.
pub fn parse(blocks: &[String]) -> Vec<Result<(), String>> {
    run("parse", blocks)
        .into_iter()
        .map(|r| r.map(|_| ()))
        .collect()
}

/// Each block drawn by mermaid (`securityLevel: strict`, its default): the SVG, or the error.
pub fn render(blocks: &[String]) -> Vec<Result<String, String>> {
    run("render", blocks)
}

/// The bundle scripts/install-test-deps.sh installs, under the target dir.
pub fn mermaid_js() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|t| manifest.join(t))
        .unwrap_or_else(|| manifest.join("target"));
    target.join("mermaid/node_modules/mermaid/dist/mermaid.min.js")
}

/// The page: the blocks as JSON, mermaid loaded, each block parsed or rendered in turn, the
/// outcomes as JSON in `#result`, hex-encoded so that the DOM dump needs no unescaping.
fn page(mode: &str, blocks: &[String]) -> String {
    // `<` as `\u003c`: no block can end the script element.
    let data = serde_json::to_string(blocks)
        .unwrap()
        .replace('<', "\\u003c");
    let js = serde_json::to_string(&format!("file://{}", mermaid_js().display())).unwrap();
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"></head><body>
<pre id="result">not run</pre>
<script type="application/json" id="blocks">{data}</script>
<script>
const s = document.createElement('script');
s.src = {js};
s.onerror = () => {{ document.getElementById('result').textContent = 'mermaid did not load'; }};
s.onload = async () => {{
  const out = [];
  try {{
    mermaid.initialize({{ startOnLoad: false }});
    const blocks = JSON.parse(document.getElementById('blocks').textContent);
    for (const [i, text] of blocks.entries()) {{
      try {{
        if ('{mode}' === 'render') {{
          const {{ svg }} = await mermaid.render('d' + i, text);
          out.push({{ ok: svg }});
        }} else {{
          await mermaid.parse(text);
          out.push({{ ok: '' }});
        }}
      }} catch (e) {{
        out.push({{ error: String((e && e.message) || e) }});
      }}
    }}
    const bytes = new TextEncoder().encode(JSON.stringify(out));
    document.getElementById('result').textContent =
      'hex:' + Array.from(bytes, b => b.toString(16).padStart(2, '0')).join('');
  }} catch (e) {{
    document.getElementById('result').textContent = 'page failed: ' + e;
  }}
}};
document.head.appendChild(s);
</script>
</body></html>
"#
    )
}

/// Run the page for `blocks` in one chromium and read the outcomes back from its DOM dump.
fn run(mode: &str, blocks: &[String]) -> Vec<Result<String, String>> {
    if blocks.is_empty() {
        return Vec::new();
    }
    let chromium = super::require_program("chromium", "apt-get install chromium");
    let js = mermaid_js();
    assert!(
        js.is_file(),
        "mermaid is not installed at {}: run scripts/install-test-deps.sh (npm pack of the \
         pinned mermaid into the target dir)",
        js.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("page.html");
    std::fs::write(&html, page(mode, blocks)).unwrap();
    let mut child = Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--allow-file-access-from-files",
            "--virtual-time-budget=30000",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("profile").display()
        ))
        .arg("--dump-dom")
        .arg(format!("file://{}", html.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromium.display()));
    // Drain both pipes while waiting, so a chatty chromium cannot block on a full pipe.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > CHROMIUM_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium did not finish within {CHROMIUM_TIMEOUT:?}: {}",
                err.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (dom, log) = (out.join().unwrap(), err.join().unwrap());
    assert!(status.success(), "chromium failed ({status}): {log}");
    let result = dom
        .split_once("<pre id=\"result\">")
        .and_then(|(_, rest)| rest.split_once("</pre>"))
        .map(|(r, _)| r)
        .unwrap_or_else(|| panic!("no #result in chromium's DOM dump:\n{dom}\n{log}"));
    let hex = result
        .strip_prefix("hex:")
        .unwrap_or_else(|| panic!("the mermaid page did not finish: {result}\n{log}"));
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex from the page"))
        .collect();
    let outcomes: Vec<serde_json::Value> = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(outcomes.len(), blocks.len(), "{outcomes:?}");
    outcomes
        .into_iter()
        .map(|o| match (o["ok"].as_str(), o["error"].as_str()) {
            (Some(svg), _) => Ok(svg.to_string()),
            (None, Some(e)) => Err(e.to_string()),
            _ => panic!("unexpected outcome from the mermaid page: {o}"),
        })
        .collect()
}
