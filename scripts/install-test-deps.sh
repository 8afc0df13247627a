#!/usr/bin/env bash
# Installs what the tests need, with apt-get, and nothing that is already there.
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

if [ ${#need[@]} -eq 0 ]; then
  echo "install-test-deps: everything is installed"
  exit 0
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "install-test-deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
