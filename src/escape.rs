//! Text from outside — registry and forge answers, file names and YAML from the repo, image and
//! policy names, URLs — made safe for the place it is written. One function per sink, used
//! everywhere that sink is written:
//!
//! | sink | function |
//! |---|---|
//! | a line of the text report, an error line, a `$GITHUB_OUTPUT` or dotenv value | [`text_line`] |
//! | Markdown inline text or a table cell | [`md_text`] ([`md_code`] and [`md_link`] build on it) |
//! | a workflow command's message (`::error …::DATA`) | [`command_data`] |
//! | a workflow command's property (`file=…`, `title=…`) | [`command_property`] |
//!
//! Each makes the text one line first: CR, LF, every other control character, the Unicode line
//! and paragraph separators (U+2028, U+2029; U+0085 is a control) and the bidirectional
//! overrides are written as escapes (`\n`, `\r`, `\t`, `\u{2028}`). Then comes what the sink
//! needs.
//!
//! The GitHub Actions runner reads every line of stdout and stderr, trims its leading
//! whitespace, and runs it as a workflow command if it starts with `::` (or `##[`, the old
//! form). [`defuse_commands`] is the last guard over everything the binary prints, and
//! [`LogLine`] over every log event: no line reaches the runner starting with either unless it
//! is an annotation we write ourselves (those never pass through them).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io;

/// Whether `c` is written as an escape: it breaks a line, moves the cursor, or reorders text.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// `s` with every unsafe character escaped, except those `keep` lets through.
fn one_line(s: &str, keep: fn(char) -> bool) -> Cow<'_, str> {
    if !s.chars().any(|c| is_unsafe(c) && !keep(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            c if !is_unsafe(c) || keep(c) => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    Cow::Owned(out)
}

/// Where the runner would see a command in `line`: after its leading whitespace, if a command
/// starts there.
fn command_start(line: &str) -> Option<usize> {
    let rest = line.trim_start();
    (rest.starts_with("::") || rest.starts_with("##[")).then(|| line.len() - rest.len())
}

/// A line of plain text (the text report, an error line, a step output value): one line, and
/// when it would start with `::` or `##[` (after whitespace) a `\` goes before them, so the
/// Actions runner does not take it for a workflow command.
pub fn text_line(s: &str) -> Cow<'_, str> {
    let line = one_line(s, |_| false);
    match command_start(&line) {
        None => line,
        Some(at) => {
            let mut out = line.into_owned();
            out.insert(at, '\\');
            Cow::Owned(out)
        }
    }
}

/// Markdown inline text, also a table cell: one line, and nothing in it makes markup. `\`,
/// `` ` ``, `*`, `_`, `[`, `]`, `|`, `#` and `~` are backslash-escaped; `<`, `>` and `&` become
/// entities (no HTML tag, comment or autolink can start); a leading list marker (`-`, `+`,
/// `1.`, `1)` before a space or the end; `--`) is escaped, so the text cannot start a list or a
/// rule (nor, escaped as above, a heading, quote or code), and leading and trailing whitespace
/// is dropped. `127.0.0.1:5000` and `-x` stay as they are.
pub fn md_text(s: &str) -> String {
    let line = one_line(s, |_| false);
    let line = line.trim();
    let mut out = String::with_capacity(line.len() + 8);
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    // Whether the byte at `i` ends the text or is followed by a space (a marker ends there).
    let marker_end = |i: usize| matches!(line.as_bytes().get(i + 1), None | Some(b' '));
    for (i, c) in line.char_indices() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '#' | '~' => {
                out.push('\\');
                out.push(c);
            }
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '-' | '+' if i == 0 && (marker_end(0) || line.as_bytes().get(1) == Some(&b'-')) => {
                out.push('\\');
                out.push(c);
            }
            '.' | ')' if digits > 0 && i == digits && marker_end(i) => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// A Markdown code span holding `s`, as ordinary names, paths and versions are shown. Text a
/// code span cannot hold as it is (a backtick, `|`, `<`, `>`, `&`, anything [`md_text`] would
/// escape to keep it on one line, or leading or trailing whitespace) is written as [`md_text`]
/// instead, outside a code span.
pub fn md_code(s: &str) -> String {
    let plain = !s.is_empty()
        && s.trim() == s
        && !s
            .chars()
            .any(|c| is_unsafe(c) || matches!(c, '`' | '|' | '<' | '>' | '&'));
    if plain {
        format!("`{s}`")
    } else {
        md_text(s)
    }
}

/// A Markdown link to `url` with `label` (Markdown we wrote, not remote text). Only an
/// `http(s)://` URL of the characters a URL needs is linked; any other is shown as
/// [`md_text`] after the label, not linked.
pub fn md_link(label: &str, url: &str) -> String {
    let linkable = (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() <= 2048
        && url
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~:/?#@!$&+,;=%".contains(&b));
    if linkable {
        format!("[{label}]({url})")
    } else {
        format!("{label} {}", md_text(url))
    }
}

/// A workflow command's message (after `::error …::`): one line, then GitHub's escaping for
/// command data: `%` as `%25`, CR as `%0D`, LF as `%0A`.
pub fn command_data(s: &str) -> String {
    one_line(s, |_| false)
        .replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A workflow command's property value (`file=…`, `title=…`): as [`command_data`], and `:` as
/// `%3A`, `,` as `%2C`, as GitHub escapes properties.
pub fn command_property(s: &str) -> String {
    command_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// The last guard over text the binary prints: every line as the Actions runner splits them
/// (at CR, LF or CRLF) that would start with `::` or `##[` after its leading whitespace gets a
/// `\` before them. Nothing else changes (a line of a diff keeps its bytes otherwise).
pub fn defuse_commands(text: &str) -> Cow<'_, str> {
    let mut out: Option<String> = None;
    let mut start = 0;
    for (end, _) in text
        .match_indices(['\r', '\n'])
        .chain(std::iter::once((text.len(), "")))
    {
        let line = &text[start..end];
        if let Some(at) = command_start(line) {
            let o = out.get_or_insert_with(|| text[..start].to_string());
            o.push_str(&line[..at]);
            o.push('\\');
            o.push_str(&line[at..]);
        } else if let Some(o) = &mut out {
            o.push_str(line);
        }
        if let Some(o) = &mut out {
            o.push_str(&text[end..(end + 1).min(text.len())]);
        }
        start = (end + 1).min(text.len());
    }
    out.map_or(Cow::Borrowed(text), Cow::Owned)
}

/// A writer for log events (tracing's fmt layer writes each event with one `write_all`): the
/// event becomes one line — line breaks and other control characters in it escaped, its final
/// newline kept — that cannot start a workflow command. ESC stays: it is the colour of the
/// level, and tracing already escapes it in the fields.
pub struct LogLine<W: io::Write>(pub W);

impl<W: io::Write> io::Write for LogLine<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let (event, newline) = match text.strip_suffix('\n') {
            Some(e) => (e, "\n"),
            None => (text.as_ref(), ""),
        };
        let event = one_line(event, |c| c == '\u{1b}');
        let event = match command_start(&event) {
            Some(at) => format!("{}\\{}", &event[..at], &event[at..]),
            None => event.into_owned(),
        };
        self.0.write_all(event.as_bytes())?;
        self.0.write_all(newline.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    /// Every breaking character a hostile server might send.
    const HOSTILE: &str =
        "a\nb\rc\r\nd\te\u{0}f\u{1b}[31mg\u{7f}h\u{85}i\u{2028}j\u{2029}k\u{202e}l\u{b}m\u{c}n";

    #[test]
    fn text_line_is_one_line_and_keeps_ordinary_text() {
        assert_eq!(
            text_line("ghcr.io/acme/web:1.2.0 apps/web.yaml:3 ü ✓"),
            "ghcr.io/acme/web:1.2.0 apps/web.yaml:3 ü ✓"
        );
        assert!(matches!(text_line("plain"), Cow::Borrowed(_)));
        let t = text_line(HOSTILE);
        assert_eq!(
            t,
            "a\\nb\\rc\\r\\nd\\te\\u{0}f\\u{1b}[31mg\\u{7f}h\\u{85}i\\u{2028}j\\u{2029}k\\u{202e}l\\u{b}m\\u{c}n"
        );
        assert!(t.chars().all(|c| !is_unsafe(c)), "{t}");
    }

    #[test]
    fn text_line_never_starts_a_workflow_command() {
        assert_eq!(text_line("::error::pwned"), "\\::error::pwned");
        assert_eq!(text_line("  ::warning::x"), "  \\::warning::x");
        assert_eq!(text_line("\u{a0}##[error]x"), "\u{a0}\\##[error]x");
        // Escaped line breaks leave no line to start with `::`.
        assert_eq!(text_line("x\n::error::y"), "x\\n::error::y");
        // Inside a line, `::` is ordinary text.
        assert_eq!(text_line("connect [::1]:5000"), "connect [::1]:5000");
    }

    #[test]
    fn md_text_makes_no_markup() {
        assert_eq!(md_text("web"), "web");
        assert_eq!(md_text("no policy"), "no policy");
        assert_eq!(md_text("a|b"), "a\\|b");
        assert_eq!(
            md_text("<script>alert(1)</script>"),
            "&lt;script&gt;alert(1)&lt;/script&gt;"
        );
        assert_eq!(md_text("<!-- x -->"), "&lt;!-- x --&gt;");
        assert_eq!(md_text("[link](x)"), "\\[link\\](x)");
        assert_eq!(md_text("![i](x)"), "!\\[i\\](x)");
        assert_eq!(
            md_text("`code` *b* _i_ ~s~"),
            "\\`code\\` \\*b\\* \\_i\\_ \\~s\\~"
        );
        assert_eq!(md_text("# heading"), "\\# heading");
        assert_eq!(md_text("- item"), "\\- item");
        assert_eq!(md_text("+ item"), "\\+ item");
        assert_eq!(md_text("12. item"), "12\\. item");
        assert_eq!(md_text("3) item"), "3\\) item");
        assert_eq!(md_text("1."), "1\\.");
        assert_eq!(md_text("---"), "\\---");
        assert_eq!(md_text("-"), "\\-");
        assert_eq!(
            md_text("127.0.0.1:5000: refused"),
            "127.0.0.1:5000: refused"
        );
        assert_eq!(md_text("-x +y 1.5"), "-x +y 1.5");
        assert_eq!(md_text("> quote"), "&gt; quote");
        assert_eq!(md_text("    indented code"), "indented code");
        assert_eq!(md_text("a\\"), "a\\\\");
        assert_eq!(md_text("&lt;"), "&amp;lt;");
        // Inside the text, `-`, `+` and `1.` are ordinary.
        assert_eq!(md_text("image-updater 1.2.0+x"), "image-updater 1.2.0+x");
        let t = md_text(&format!("x{HOSTILE}\n# h\n| a |"));
        assert!(
            !t.contains(['\n', '\r', '\u{2028}', '\u{2029}', '\u{85}']),
            "{t}"
        );
        assert!(!t.contains(" |"), "{t}");
    }

    #[test]
    fn md_text_keeps_a_table_cell_in_its_cell() {
        let row = format!("| {} | {} |", md_text("a | b\n| c | d |\n"), md_code("x|y"));
        let bars = row
            .char_indices()
            .filter(|(i, c)| *c == '|' && (*i == 0 || row.as_bytes()[i - 1] != b'\\'))
            .count();
        assert_eq!(bars, 3, "{row}");
    }

    #[test]
    fn md_code_spans_ordinary_text_only() {
        assert_eq!(md_code("ghcr.io/acme/web"), "`ghcr.io/acme/web`");
        assert_eq!(md_code("apps/my_app.yaml:3"), "`apps/my_app.yaml:3`");
        assert_eq!(md_code("a`b"), "a\\`b");
        assert_eq!(md_code("x|y <b>"), "x\\|y &lt;b&gt;");
        assert_eq!(md_code("a\nb"), "a\\\\nb");
        assert_eq!(md_code(""), "");
        assert_eq!(md_code(" x"), "x");
    }

    #[test]
    fn md_link_links_plain_urls_only() {
        assert_eq!(
            md_link("#7", "https://github.com/acme/infra/pull/7"),
            "[#7](https://github.com/acme/infra/pull/7)"
        );
        assert_eq!(
            md_link("#7", "https://x/p?a=1&b=%20#f"),
            "[#7](https://x/p?a=1&b=%20#f)"
        );
        assert_eq!(
            md_link("#1", "https://x/1) [y](javascript:alert(1)"),
            "#1 https://x/1) \\[y\\](javascript:alert(1)"
        );
        assert_eq!(
            md_link("#1", "javascript:alert(1)"),
            "#1 javascript:alert(1)"
        );
        assert_eq!(
            md_link("#1", "https://x/1\n::error::y"),
            "#1 https://x/1\\\\n::error::y"
        );
    }

    #[test]
    fn command_data_follows_githubs_rules_on_one_line() {
        assert_eq!(command_data("100% done: a,b"), "100%25 done: a,b");
        // `%` first, so an escape is never escaped twice.
        assert_eq!(command_data("%0A"), "%250A");
        assert_eq!(command_data("a\r\nb"), "a\\r\\nb");
        assert_eq!(
            command_data("x\n::error::pwned\u{2028}y"),
            "x\\n::error::pwned\\u{2028}y"
        );
        assert!(!command_data(HOSTILE).contains(['\n', '\r', '\u{2028}', '\u{85}']));
    }

    #[test]
    fn command_property_escapes_colons_and_commas_too() {
        assert_eq!(
            command_property("image-updater: a,b%"),
            "image-updater%3A a%2Cb%25"
        );
        assert_eq!(
            command_property("apps/x\n::error::y,z.yaml"),
            "apps/x\\n%3A%3Aerror%3A%3Ay%2Cz.yaml"
        );
    }

    #[test]
    fn defuse_commands_guards_every_runner_line() {
        let benign = "3 updates:\n--- a/x.yaml\n+++ b/x.yaml\n   key: v\r\n";
        assert!(matches!(defuse_commands(benign), Cow::Borrowed(_)));
        assert_eq!(
            defuse_commands("::error::a\n  ::b\rc\r\n##[x]\n\u{2003}::d"),
            "\\::error::a\n  \\::b\rc\r\n\\##[x]\n\u{2003}\\::d"
        );
        assert_eq!(defuse_commands("x\n::y\n"), "x\n\\::y\n");
        assert_eq!(defuse_commands(""), "");
    }

    #[test]
    fn log_lines_are_one_line_each() {
        let mut out = LogLine(Vec::new());
        out.write_all(b"\x1b[33m WARN\x1b[0m x: denied\n::error::pwned\r\n")
            .unwrap();
        out.write_all(b"::notice::first\n").unwrap();
        let text = String::from_utf8(out.0).unwrap();
        assert_eq!(
            text,
            "\u{1b}[33m WARN\u{1b}[0m x: denied\\n::error::pwned\\r\n\\::notice::first\n"
        );
    }
}
