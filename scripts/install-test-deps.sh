#!/usr/bin/env bash
# Installs what the tests need (Debian packages with apt-get, the musl target with rustup, the
# CI file checkers with pip into a venv, mermaid with npm into the target dir), and nothing that
# is already there.
# Idempotent: a second run installs nothing. Needs root (or sudo) on Debian/Ubuntu.
set -euo pipefail

need=()
have_cmd() { command -v "$1" >/dev/null 2>&1; }
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

have_cmd docker-registry || need+=(docker-registry)   # the CNCF distribution registry
have_cmd htpasswd || need+=(apache2-utils)            # bcrypt htpasswd files for Basic auth
[ -x /usr/lib/git-core/git-http-backend ] || need+=(git)  # git CLI and smart HTTP backend
[ -x /usr/sbin/sshd ] || need+=(openssh-server)        # git over SSH
have_cmd ssh-keygen || need+=(openssh-client)
have_pkg libssl-dev || need+=(libssl-dev)             # git2's HTTPS transport
have_pkg pkg-config || need+=(pkg-config)
have_cmd python3 || need+=(python3)
have_cmd musl-gcc || need+=(musl-tools)               # the static (musl) binary
have_cmd buildah || need+=(buildah)                   # the container image, built and run
have_cmd unshare || need+=(util-linux)                # the empty root the static binary runs in
[ -x /usr/bin/time ] || need+=(time)                  # GNU time: peak RSS of hostile-server runs
have_cmd curl || need+=(curl)                         # action.yml's download, run by a test
have_cmd tmux || need+=(tmux)                         # a terminal, for the progress line's test
have_pkg ca-certificates || need+=(ca-certificates)   # the CA bundle put into the image
have_cmd chromium || need+=(chromium)                 # headless: Mermaid parse check, report PNG
have_pkg fonts-dejavu-core || need+=(fonts-dejavu-core)  # text in the rendered report PNG
have_cmd npm || need+=(npm)                           # mermaid from the npm registry, below

# A python3 without venv (Debian's own) needs python3-venv for the CI file checkers below.
if have_cmd python3 && ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  need+=(python3-venv)
fi

if [ ${#need[@]} -eq 0 ]; then
  echo "install-test-deps: every Debian package is installed"
else
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "install-test-deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# The musl target of the host's architecture, for the static binary.
musl_target="$(uname -m)-unknown-linux-musl"
if ! rustup target list --installed 2>/dev/null | grep -qx "$musl_target"; then
  echo "install-test-deps: rustup target add $musl_target"
  rustup target add "$musl_target"
fi

# check-jsonschema (GitHub and GitLab schemas), zizmor (GitHub Actions audit) and
# markdown-it-py (renders the Markdown report as GitHub does: tables, fenced code), from PyPI,
# in a venv of their own where tests/ci_common looks for them.
venv="${XDG_CACHE_HOME:-$HOME/.cache}/image-updater/ci-venv"
python_tools=(check-jsonschema==0.39.0 zizmor==1.32.0 markdown-it-py==4.3.0)
stamp="$venv/.installed"
if [ "$(cat "$stamp" 2>/dev/null)" != "${python_tools[*]}" ]; then
  echo "install-test-deps: pip install ${python_tools[*]} into $venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "${python_tools[@]}"
  echo "${python_tools[*]}" > "$stamp"
fi

# mermaid from the npm registry, pinned: its self-contained browser bundle
# (dist/mermaid.min.js) is all that the Mermaid parse check of the tests (tests/it/common/
# mermaid.rs) and scripts/render-report.sh load in chromium, so only that, its package.json and
# its licence are unpacked (not the 200 MB of dependencies the bundle already contains), under
# the target dir where both look for it.
mermaid_version=12.4.0
mermaid_integrity=sha512-j2gvsGUFeS/53WdYLl9H5G2YtMZX9G/PlCvV3E5Pf4j5XSnK19DwazU6wki7OTcKeYKed7+qujRDLhy8NV2zBg==
root="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac
mermaid_pkg="$target/mermaid/node_modules/mermaid"
installed="$(sed -n 's/^  "version": "\(.*\)",$/\1/p' "$mermaid_pkg/package.json" 2>/dev/null || true)"
if [ "$installed" != "$mermaid_version" ] || [ ! -s "$mermaid_pkg/dist/mermaid.min.js" ]; then
  echo "install-test-deps: npm pack mermaid@$mermaid_version into $mermaid_pkg"
  mkdir -p "$target/mermaid"
  tmp="$(mktemp -d "$target/mermaid/pack.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --json --silent "mermaid@$mermaid_version" > pack.json)
  if ! grep -q "\"integrity\": \"$mermaid_integrity\"" "$tmp/pack.json"; then
    echo "install-test-deps: mermaid@$mermaid_version from the registry is not the pinned one" >&2
    exit 1
  fi
  mkdir -p "$tmp/mermaid"
  tar -xzf "$tmp/mermaid-$mermaid_version.tgz" -C "$tmp/mermaid" --strip-components=1 \
    package/package.json package/LICENSE package/dist/mermaid.min.js
  rm -rf "$mermaid_pkg"
  mkdir -p "$(dirname "$mermaid_pkg")"
  mv "$tmp/mermaid" "$mermaid_pkg"
fi
