#!/usr/bin/env bash
# The test command: installs what the tests need, then runs every test, the system group
# (root, buildah, the musl target; `#[ignore]`d for a plain `cargo test`) included.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
case " $* " in
  *" -- "*) set -- "$@" --include-ignored ;;
  *) set -- "$@" -- --include-ignored ;;
esac
cargo test --all-targets "$@"
