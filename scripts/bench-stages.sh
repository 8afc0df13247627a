#!/usr/bin/env bash
# Promotion stages on the benchmark: scripts/bench-stages.sh [RUNS]
#
# Takes the M world of scripts/bench.sh (generated there, cached), clones its infra repo and
# gives it 1,000 commits of history (one a simulated hour, each changing one file of a stage),
# then measures on this machine and in this run `plan` with three stages (dev, staging from dev
# with a 24h soak, prod from staging with a 48h soak, each ten of the 50 clusters) against
# today's `plan` without stages, on the same repository and registry: median wall time,
# user+sys CPU, peak RSS, registry requests. The stages' plan walks the whole history (no
# version changes, so every run goes back to the root commit): the worst case for the walk.
set -euo pipefail

runs=${1:-5}
cd "$(dirname "$0")/.."
root=$PWD
BENCH_GENERATE_ONLY=1 scripts/bench.sh M >&2
echo "== building (release)" >&2
cargo build --release --quiet
bin=${BENCH_BIN:-$root/target/release/image-updater}
src=$root/target/bench-work/M
work=$root/target/bench-work/M-stages
commits=1000

if [ "$(cat "$work/stamp" 2>/dev/null)" != "$(cat "$src/stamp")-$commits" ]; then
  echo "== adding $commits commits of history (once; cached in $work)" >&2
  rm -rf "$work"
  mkdir -p "$work"
  git clone -q "$src/repo" "$work/repo"
  git -C "$work/repo" ls-files 'clusters/c00*' 'clusters/c01*' 'clusters/c02*' >"$work/files"
  python3 - "$work/repo" "$work/files" "$commits" <<'EOF' | git -C "$work/repo" fast-import --quiet
import sys, time
repo, listing, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
files = [l.strip() for l in open(listing) if l.strip().endswith(".yaml")]
texts = {}
now = int(time.time())
out = sys.stdout.buffer
for i in range(count):
    path = files[(i * 7919) % len(files)]
    if path not in texts:
        texts[path] = open(f"{repo}/{path}", "rb").read()
    texts[path] += b"# revision %d\n" % i
    t = now - (count - i) * 3600
    msg = b"change %d" % i
    out.write(b"commit refs/heads/main\n")
    out.write(b"committer bench <bench@example.invalid> %d +0000\n" % t)
    out.write(b"data %d\n%s\n" % (len(msg), msg))
    if i == 0:
        out.write(b"from refs/heads/main^0\n")
    out.write(b"M 100644 inline %s\ndata %d\n%s\n" % (path.encode(), len(texts[path]), texts[path]))
EOF
  git -C "$work/repo" reset -q --hard main
  echo "$(cat "$src/stamp")-$commits" >"$work/stamp"
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/registry.yml" <<EOF
version: 0.1
log: { level: info, formatter: text }
storage: { filesystem: { rootdirectory: $src/storage }, delete: { enabled: false } }
http: { addr: 127.0.0.1:$port }
EOF
sed "s|http://@API@|http://127.0.0.1:$port|" "$src/config.template.yaml" >"$work/config.yaml"
cp "$work/config.yaml" "$work/stages.yaml"
cat >>"$work/stages.yaml" <<'EOF'
stages:
  - { name: dev, paths: ["clusters/c00[0-9]/**"], mode: commit }
  - { name: staging, paths: ["clusters/c01[0-9]/**"], from: dev, soak: 24h, mode: commit }
  - { name: prod, paths: ["clusters/c02[0-9]/**"], from: staging, soak: 48h, mode: pull-request }
EOF
log=$work/registry.log
docker-registry serve "$work/registry.yml" >"$log" 2>&1 &
registry_pid=$!
trap 'kill $registry_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null "http://127.0.0.1:$port/v2/" 2>/dev/null && break
  sleep 0.1
done

plain="'$bin' plan '$work/repo' --config '$work/config.yaml'"
staged="'$bin' plan '$work/repo' --config '$work/stages.yaml'"
requests() {
  local l0
  l0=$(wc -l <"$log")
  eval "$1" --output json >"$work/$2.json" 2>"$work/$2.stderr" || true
  sed -n "$((l0 + 1)),\$p" "$log" | grep -c '"\(GET\|HEAD\) /v2/' || true
}
plain_requests=$(requests "$plain" plain)
staged_requests=$(requests "$staged" staged)
rss_kb() { /usr/bin/time -v "$@" 2>&1 >/dev/null | awk -F': ' '/Maximum resident/ {print $2}'; }
plain_rss=$(eval rss_kb "$plain")
staged_rss=$(eval rss_kb "$staged")
mkdir -p "$work/results"
hyperfine -N --style basic --warmup 1 --runs "$runs" --export-json "$work/results/plain.json" "$plain" >&2
hyperfine -N --style basic --warmup 1 --runs "$runs" --export-json "$work/results/staged.json" "$staged" >&2

median() { jq '.results[0].times | sort | if length % 2 == 1 then .[length/2|floor] else (.[length/2-1] + .[length/2]) / 2 end' "$1"; }
cpu() { jq '.results[0].user + .results[0].system' "$1"; }
ms() { awk -v s="$1" 'BEGIN { printf "%.0f", s * 1000 }'; }
p=$(median "$work/results/plain.json")
s=$(median "$work/results/staged.json")
history=$(git -C "$work/repo" rev-list --count HEAD)
cat <<EOF

== M with $history commits of first-parent history; $(nproc) cores; median of $runs runs
| what | median wall | user+sys CPU | peak RSS | HTTP requests | updates | pending |
|---|---|---|---|---|---|---|
| plan (no stages) | $(ms "$p") ms | $(ms "$(cpu "$work/results/plain.json")") ms | $((plain_rss / 1024)) MB | $plain_requests | $(jq '.updates | length' "$work/plain.json") | |
| plan, three stages | $(ms "$s") ms | $(ms "$(cpu "$work/results/staged.json")") ms | $((staged_rss / 1024)) MB | $staged_requests | $(jq '.updates | length' "$work/staged.json") | $(jq '[.stages[].pending | length] | add' "$work/staged.json") |

stages / plain = $(awk -v a="$s" -v b="$p" 'BEGIN { printf "%.2f", a / b }')
EOF
