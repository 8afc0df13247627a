#!/usr/bin/env bash
# The benchmark: scripts/bench.sh [S|M|L] [RUNS]
#
# Generates the synthetic infra repo and registry content of the size (bench/src/gen.rs,
# deterministic; cached under target/bench-work/SIZE), starts the real distribution registry
# on loopback over that storage, and measures, on this machine and in this run:
#   - `plan` and `run` (commit mode, pushing to a local bare remote) with hyperfine: median
#     wall time, user+sys CPU; peak RSS with /usr/bin/time -v; HTTP requests from the
#     registry's access log; the update count checked against the generator's;
#   - `run` in pull-request mode (one branch and pull request per policy with updates, labels
#     added) against a stateful fake of GitHub's REST API (scripts/bench-github-fake.py), next
#     to the commit-mode run: the difference of the medians is what a pull-request run adds;
#   - the floor: reading every YAML file once (bench-gen read), and fetching every tag list
#     with the same concurrency (8) in one curl process (curl --parallel).
# Prints a summary table; raw hyperfine JSON stays in target/bench-work/SIZE/results/.
# BENCH_GENERATE_ONLY=1 stops after generating.
# BENCH_PROFILE=1 profiles instead of timing: one `plan` and one `run` under `perf record`
# (a release build with line tables, in target/profile), and prints the share of CPU samples
# spent in (or under) each function of ours, and in the allocator and memmove. It profiles its
# own build, not BENCH_BIN.
set -euo pipefail

size=${1:-S}
runs=${2:-5}
case "$size" in S | M | L) ;; *)
  echo "usage: scripts/bench.sh [S|M|L] [RUNS]" >&2
  exit 2
  ;;
esac
cd "$(dirname "$0")/.."
root=$PWD

# What the benchmark needs, installed the Debian way when missing.
missing=()
tools="docker-registry:docker-registry hyperfine:hyperfine git:git curl:curl jq:jq /usr/bin/time:time"
[ -z "${BENCH_PROFILE:-}" ] || tools="$tools perf:linux-perf"
for pair in $tools; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair##*:}")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${missing[@]}"
fi

echo "== building (release)" >&2
bin=${BENCH_BIN:-$root/target/release/image-updater} # BENCH_BIN: measure another build
if [ -n "${BENCH_PROFILE:-}" ]; then
  CARGO_PROFILE_RELEASE_DEBUG=line-tables-only CARGO_TARGET_DIR="$root/target/profile" cargo build --release --quiet
  bin=$root/target/profile/release/image-updater
elif [ -z "${BENCH_GENERATE_ONLY:-}" ]; then
  cargo build --release --quiet
fi
(cd bench && CARGO_TARGET_DIR="$root/target/bench" cargo build --release --quiet)
gen=$root/target/bench/release/bench-gen

work=$root/target/bench-work/$size${BENCH_CHARTS:+-charts} # BENCH_CHARTS=1: 10% HelmReleases
mkdir -p "$work"
layout=""
[ "$size" = L ] && layout=list-only # 2 million tags: directories only (see BENCHMARKS.md)
stamp="$(sha256sum bench/src/gen.rs | cut -c1-16)-$layout"
if [ "$(cat "$work/stamp" 2>/dev/null)" != "$stamp" ]; then
  echo "== generating $size (once; cached in $work)" >&2
  rm -rf "$work/repo" "$work/storage" "$work/remote.git" "$work/stamp"
  start=$(date +%s.%N)
  "$gen" generate "$size" "$work" "http://@API@" $layout >"$work/summary.env"
  mv "$work/repo/.image-updater.yaml" "$work/config.template.yaml"
  git -C "$work/repo" init -q -b main
  git -C "$work/repo" -c user.name=bench -c user.email=bench@example.invalid add -A
  git -C "$work/repo" -c user.name=bench -c user.email=bench@example.invalid commit -q -m "synthetic infra repo $size"
  git clone -q --bare "$work/repo" "$work/remote.git"
  git -C "$work/repo" remote add origin "$work/remote.git"
  git -C "$work/repo" fetch -q origin
  git -C "$work/repo" branch -q -u origin/main
  echo "generated in $(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s" >&2
  echo "$stamp" >"$work/stamp"
fi
# shellcheck disable=SC1091
. "$work/summary.env"
[ -z "${BENCH_GENERATE_ONLY:-}" ] || exit 0
# The generated commit (the root), whatever an interrupted run left checked out.
base=$(git -C "$work/repo" rev-list --max-parents=0 HEAD)

# The registry, on a free port, logging every request.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
  echo $((20000 + RANDOM % 20000)))
cat >"$work/registry.yml" <<EOF
version: 0.1
log: { level: info, formatter: text }
storage: { filesystem: { rootdirectory: $work/storage }, delete: { enabled: false } }
http: { addr: 127.0.0.1:$port }
EOF
sed "s|http://@API@|http://127.0.0.1:$port|" "$work/config.template.yaml" >"$work/config.yaml"
log=$work/registry.log
docker-registry serve "$work/registry.yml" >"$log" 2>&1 &
registry_pid=$!
trap 'kill $registry_pid 2>/dev/null || true; git -C "$work/repo" reset -q --hard "$base" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null "http://127.0.0.1:$port/v2/" 2>/dev/null && break
  sleep 0.1
done
curl -fsS -o /dev/null "http://127.0.0.1:$port/v2/"

# The forge of the pull-request run: a stateful fake of the GitHub REST calls a run makes.
forge_token=bench-forge-token
rm -f "$work/forge.port"
python3 scripts/bench-github-fake.py --token "$forge_token" --port-file "$work/forge.port" &
forge_pid=$!
trap 'kill $registry_pid $forge_pid 2>/dev/null || true; git -C "$work/repo" reset -q --hard "$base" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  [ -s "$work/forge.port" ] && break
  sleep 0.1
done
forge=http://127.0.0.1:$(cat "$work/forge.port")
curl -fsS -o /dev/null "$forge/_state"
sed -e "s|http://@API@|http://127.0.0.1:$port|" \
  -e "s|^  mode: commit\$|  mode: pull-request\n  forge: github\n  api_url: $forge\n  repository: bench/infra\n  pull_request: { labels: [dependencies] }|" \
  "$work/config.template.yaml" >"$work/config-pr.yaml"
grep -q 'mode: pull-request' "$work/config-pr.yaml"

# The reset rewrites the changed files; `sync` keeps their write-back out of the timed run.
reset_cmd="git -C '$work/repo' reset -q --hard $base && git -C '$work/repo' push -q -f origin $base:refs/heads/main && sync"
plan_cmd="'$bin' plan '$work/repo' --config '$work/config.yaml'"
run_cmd="'$bin' run '$work/repo' --config '$work/config.yaml'"
# Before each pull-request run: the same reset, no pull-request branch left on either side
# (so every branch is pushed again), and a forge with no pull request (so each is created).
pr_branches="refs/heads/image-updater refs/remotes/origin/image-updater"
pr_reset_cmd="$reset_cmd && git -C '$work/remote.git' for-each-ref --format='delete %(refname)' $pr_branches | git -C '$work/remote.git' update-ref --stdin && git -C '$work/repo' for-each-ref --format='delete %(refname)' $pr_branches | git -C '$work/repo' update-ref --stdin && curl -fsS -o /dev/null -X POST '$forge/_reset'"
pr_run_cmd="GITHUB_TOKEN=$forge_token '$bin' run '$work/repo' --config '$work/config-pr.yaml'"

# The registry's access log: one `"GET /v2/... HTTP/1.1"` line per request.
lines() { wc -l <"$log"; }
since() { sed -n "$(($1 + 1)),\$p" "$log" | grep '"\(GET\|HEAD\) /v2/' || true; }

# Correctness and request counts: one plan, one run, each counted in the access log.
echo "== checking plan and run once" >&2
eval "$reset_cmd"
l0=$(lines)
eval "$plan_cmd" --output json >"$work/plan.json" || true
since "$l0" >"$work/plan.requests"
updates=$(jq '.updates | length' "$work/plan.json")
skipped=$(jq '.skipped | length' "$work/plan.json")
errors=$(jq '.errors | length' "$work/plan.json")
plan_requests=$(wc -l <"$work/plan.requests")
taglists=$(grep -c '/tags/list' "$work/plan.requests" || true)
distinct=$(grep -o '"GET /v2/[^ ]*/tags/list' "$work/plan.requests" | sort -u | wc -l)
manifests=$(grep -c '/manifests/' "$work/plan.requests" || true)
eval "$reset_cmd"
eval "$run_cmd" --output json >"$work/run.json" || true
commit=$(jq -r '.commit // "none"' "$work/run.json")
changed=$(git -C "$work/repo" diff --name-only "$base" HEAD | wc -l)
eval "$pr_reset_cmd"
eval "$pr_run_cmd" --output json >"$work/run-pr.json" || true
pr_expected=$(jq '[.updates[].policy] | unique | length' "$work/plan.json")
pr_created=$(jq '[.pull_requests[] | select(.action == "created")] | length' "$work/run-pr.json")
pr_errors=$(jq '.errors | length' "$work/run-pr.json")
pr_pushed=$(git -C "$work/remote.git" for-each-ref refs/heads/image-updater | wc -l)
curl -fsS "$forge/_state" >"$work/forge-state.json"
pr_open=$(jq '[.pulls[] | select(.state == "open" and .labels == ["dependencies"])] | length' "$work/forge-state.json")
pr_calls=$(jq '.calls' "$work/forge-state.json")
eval "$pr_reset_cmd"

rss_kb() { /usr/bin/time -v "$@" 2>&1 >/dev/null | awk -F': ' '/Maximum resident/ {print $2}'; }
plan_rss=$(eval rss_kb "$plan_cmd")
eval "$reset_cmd"
run_rss=$(eval rss_kb "$run_cmd")
eval "$pr_reset_cmd"
pr_rss=$(eval rss_kb "env $pr_run_cmd")
eval "$pr_reset_cmd"

if [ -n "${BENCH_PROFILE:-}" ]; then
  mkdir -p "$work/results"
  for command in plan run; do
    eval "$reset_cmd"
    cmd=${command}_cmd
    eval perf record -q -F 4000 --call-graph dwarf,16384 -o "'$work/results/$command.perf'" -- "${!cmd}" >/dev/null
    echo
    echo "== $size $command: share of CPU samples in or under each function (perf: $(perf script -i "$work/results/$command.perf" -F tid 2>/dev/null | wc -l) samples at 4 kHz)"
    echo "| in or under | itself | function |"
    echo "|---|---|---|"
    perf report -i "$work/results/$command.perf" --children --sort symbol --stdio -g none 2>/dev/null |
      awk '$3 == "[.]" && ($4 ~ /^image_updater::/ || $4 ~ /^(__memmove|_int_malloc|_int_free|malloc$|git_)/) && $1 + 0 >= 0.5 {
        print "| " $1 " | " $2 " | `" $4 "` |" }' | head -40
  done
  eval "$reset_cmd"
  exit 0
fi

# Whole-command timings, and the floor in the same run.
echo "== timing ($runs runs each)" >&2
mkdir -p "$work/results"
repos=$work/taglists.curl
sed -n "s|^    image: registry.bench.example/\(.*\)$|url = \"http://127.0.0.1:$port/v2/\1/tags/list?n=1000\"\noutput = \"/dev/null\"|p" \
  "$work/config.yaml" >"$repos"
hyperfine -N --style basic --warmup 1 --runs "$runs" --export-json "$work/results/plan.json" "$plan_cmd" >&2
hyperfine --style basic --warmup 1 --runs "$runs" --prepare "$reset_cmd" --export-json "$work/results/run.json" "$run_cmd" >&2
hyperfine --style basic --warmup 1 --runs "$runs" --prepare "$pr_reset_cmd" --export-json "$work/results/run-pr.json" "$pr_run_cmd" >&2
eval "$pr_reset_cmd"
hyperfine -N --style basic --warmup 1 --runs "$runs" --export-json "$work/results/floor-read.json" "'$gen' read '$work/repo'" >&2
hyperfine -N --style basic --warmup 1 --runs "$runs" --export-json "$work/results/floor-fetch.json" \
  "curl -sS --fail --parallel --parallel-max 8 -K '$repos'" >&2

median() { jq '.results[0].times | sort | if length % 2 == 1 then .[length/2|floor] else (.[length/2-1] + .[length/2]) / 2 end' "$1"; }
cpu() { jq '.results[0].user + .results[0].system' "$1"; }
ms() { awk -v s="$1" 'BEGIN { printf "%.0f", s * 1000 }'; }
plan_wall=$(median "$work/results/plan.json")
run_wall=$(median "$work/results/run.json")
pr_wall=$(median "$work/results/run-pr.json")
read_wall=$(median "$work/results/floor-read.json")
fetch_wall=$(median "$work/results/floor-fetch.json")
floor=$(awk -v a="$read_wall" -v b="$fetch_wall" 'BEGIN { print a + b }')

cat <<EOF

== $size: $files files ($files_without_images without image text, $templates invalid templates), $repositories repositories x $((tags / repositories)) tags; $(nproc) cores; median of $runs runs
| what | median wall | user+sys CPU | peak RSS | HTTP requests |
|---|---|---|---|---|
| plan | $(ms "$plan_wall") ms | $(ms "$(cpu "$work/results/plan.json")") ms | $((plan_rss / 1024)) MB | $plan_requests ($taglists tag lists for $distinct repositories, $manifests manifests) |
| run (commit, push to a bare remote) | $(ms "$run_wall") ms | $(ms "$(cpu "$work/results/run.json")") ms | $((run_rss / 1024)) MB | |
| run (pull-request: $pr_expected branches pushed, $pr_expected pull requests created and labelled on a GitHub fake) | $(ms "$pr_wall") ms | $(ms "$(cpu "$work/results/run-pr.json")") ms | $((pr_rss / 1024)) MB | $pr_calls forge calls |
| floor: read every file | $(ms "$read_wall") ms | $(ms "$(cpu "$work/results/floor-read.json")") ms | | |
| floor: every tag list, 8 at a time (curl) | $(ms "$fetch_wall") ms | $(ms "$(cpu "$work/results/floor-fetch.json")") ms | | $repositories |
| floor: both | $(ms "$floor") ms | | | |

plan / floor = $(awk -v p="$plan_wall" -v f="$floor" 'BEGIN { printf "%.2f", p / f }'); run / plan = $(awk -v r="$run_wall" -v p="$plan_wall" 'BEGIN { printf "%.2f", r / p }')
pull-request run - commit run = $(awk -v a="$pr_wall" -v b="$run_wall" 'BEGIN { printf "%.0f", (a - b) * 1000 }') ms (medians); pull-request run / commit run = $(awk -v a="$pr_wall" -v b="$run_wall" 'BEGIN { printf "%.2f", a / b }')
updates: plan $updates (generator expects $expected_updates); skipped $skipped; errors $errors; run committed $commit changing $changed files (expected $files_changed)
pull requests: $pr_created created (expected $pr_expected, one per policy with updates), $pr_pushed branches pushed, $pr_open open and labelled on the fake; errors $pr_errors
EOF
status=0
[ "$updates" = "$expected_updates" ] || { echo "MISMATCH: plan found $updates updates, expected $expected_updates" >&2; status=1; }
[ "$changed" = "$files_changed" ] || { echo "MISMATCH: run changed $changed files, expected $files_changed" >&2; status=1; }
[ "$errors" = 0 ] || { echo "MISMATCH: plan reported errors" >&2; status=1; }
[ "$pr_created" = "$pr_expected" ] && [ "$pr_pushed" = "$pr_expected" ] && [ "$pr_open" = "$pr_expected" ] ||
  { echo "MISMATCH: the pull-request run created $pr_created, pushed $pr_pushed branches, left $pr_open open; expected $pr_expected" >&2; status=1; }
[ "$pr_errors" = 0 ] || { echo "MISMATCH: the pull-request run reported errors: $(jq -c .errors "$work/run-pr.json")" >&2; status=1; }
exit $status
