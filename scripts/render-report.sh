#!/usr/bin/env bash
# Renders a Markdown report (`--output markdown`, a step summary, a promotion pull request's
# body) to a PNG, as a reader sees it: the Markdown as GitHub shows it (CommonMark with tables,
# by markdown-it-py; raw HTML is not passed through), each ```mermaid block drawn by mermaid,
# in headless chromium. The picture in the README (docs/stages.png) is made with it:
#
#   scripts/render-report.sh docs/stages-report.md docs/stages.png
#   image-updater plan --output markdown | scripts/render-report.sh - report.png 1000
#
# Usage: scripts/render-report.sh REPORT.md|- OUT.png [WIDTH]   (WIDTH in CSS pixels, 1000)
# Needs what scripts/install-test-deps.sh installs: chromium, the mermaid bundle under the
# target dir, markdown-it-py in the test venv.
set -euo pipefail

if [ $# -lt 2 ] || [ $# -gt 3 ]; then
  echo "usage: $0 REPORT.md|- OUT.png [WIDTH]" >&2
  exit 2
fi
input="$1"
out="$2"
width="${3:-1000}"
case "$width" in '' | *[!0-9]*) echo "$0: WIDTH must be a number of pixels, not '$width'" >&2; exit 2 ;; esac

root="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac
mermaid_js="$target/mermaid/node_modules/mermaid/dist/mermaid.min.js"
python="${XDG_CACHE_HOME:-$HOME/.cache}/image-updater/ci-venv/bin/python"
missing=""
command -v chromium >/dev/null 2>&1 || missing="$missing chromium (Debian's chromium);"
[ -s "$mermaid_js" ] || missing="$missing mermaid at $mermaid_js;"
[ -x "$python" ] || missing="$missing markdown-it-py at $python;"
if [ -n "$missing" ]; then
  echo "$0: missing:$missing run scripts/install-test-deps.sh" >&2
  exit 1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
if [ "$input" = "-" ]; then
  cat > "$tmp/report.md"
else
  cp "$input" "$tmp/report.md"
fi

# The Markdown as HTML, inside a page that draws the mermaid blocks and then says how tall it
# is (in the DOM, for --dump-dom) so that the screenshot can be taken at that height.
"$python" - "$tmp/report.md" "$mermaid_js" > "$tmp/page.html" <<'PY'
import html, json, sys
from markdown_it import MarkdownIt

md = MarkdownIt("commonmark", {"html": False}).enable("table").enable("strikethrough")
body = md.render(open(sys.argv[1], encoding="utf-8").read())
src = json.dumps("file://" + sys.argv[2])
print(f"""<!doctype html>
<html><head><meta charset="utf-8"><style>
body {{ font-family: "DejaVu Sans", sans-serif; font-size: 14px; line-height: 1.5;
       color: #1f2328; background: #fff; margin: 0; padding: 16px 24px; }}
h2 {{ font-size: 1.5em; border-bottom: 1px solid #d1d9e0; padding-bottom: .3em; }}
h3 {{ font-size: 1.25em; }} h4 {{ font-size: 1em; }}
table {{ border-collapse: collapse; margin: 0 0 16px; }}
th, td {{ border: 1px solid #d1d9e0; padding: 6px 13px; }}
th {{ font-weight: 600; }} tr:nth-child(2n) {{ background: #f6f8fa; }}
code {{ font-family: "DejaVu Sans Mono", monospace; font-size: 85%;
        background: #eff1f3; border-radius: 6px; padding: .2em .4em; }}
pre {{ background: #f6f8fa; padding: 16px; border-radius: 6px; overflow: auto; }}
pre code {{ background: none; padding: 0; }}
.mermaid-drawing {{ margin: 0 0 16px; text-align: center; }}
</style></head><body>
{body}
<div id="render-status" hidden>pending</div>
<script>
const s = document.createElement('script');
s.src = {src};
s.onerror = () => {{ document.getElementById('render-status').textContent = 'error: mermaid did not load'; }};
s.onload = async () => {{
  const status = document.getElementById('render-status');
  try {{
    mermaid.initialize({{ startOnLoad: false, theme: 'default' }});
    const blocks = document.querySelectorAll('pre > code.language-mermaid');
    for (const [i, code] of Array.from(blocks).entries()) {{
      const {{ svg }} = await mermaid.render('mermaid-' + i, code.textContent);
      const div = document.createElement('div');
      div.className = 'mermaid-drawing';
      div.innerHTML = svg;
      code.parentElement.replaceWith(div);
    }}
    status.textContent = 'height:' + Math.ceil(document.documentElement.scrollHeight);
  }} catch (e) {{
    status.textContent = 'error: ' + String((e && e.message) || e).replace(/\s+/g, ' ');
  }}
}};
document.head.appendChild(s);
</script>
</body></html>""")
PY

chrome() {
  chromium --headless --no-sandbox --disable-gpu --no-first-run --hide-scrollbars \
    --allow-file-access-from-files --user-data-dir="$tmp/profile" \
    --virtual-time-budget=30000 "$@" "file://$tmp/page.html" 2> "$tmp/chromium.log"
}

# First the height (and whether mermaid drew every block), then the picture at that height.
status="$(chrome --window-size="$width,800" --dump-dom |
  sed -n 's/.*<div id="render-status" hidden="">\([^<]*\)<\/div>.*/\1/p' |
  sed 's/&lt;/</g; s/&gt;/>/g; s/&quot;/"/g; s/&amp;/\&/g')"
case "$status" in
  height:*) height="${status#height:}" ;;
  *)
    echo "$0: the page did not render: ${status:-no status}" >&2
    grep -v -e dbus -e "^/usr/bin/chromium:" "$tmp/chromium.log" | tail -5 >&2
    exit 1
    ;;
esac
chrome --window-size="$width,$height" --screenshot="$tmp/out.png" >/dev/null
[ -s "$tmp/out.png" ] || { echo "$0: chromium wrote no picture" >&2; grep -v -e dbus -e "^/usr/bin/chromium:" "$tmp/chromium.log" | tail -5 >&2; exit 1; }
mv "$tmp/out.png" "$out"
echo "$out: ${width}x${height}"
