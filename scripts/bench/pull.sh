#!/usr/bin/env bash
# Benchmark: berth-pull against `skopeo copy docker://… oci:…`, both from the same local
# docker-registry into fresh stores, alternating, RUNS runs each (default 10), for the
# large fixture image and busybox. Prints per-image medians of wall time and of CPU time
# (user+sys, which the load of a shared machine disturbs less), the ratios berth/skopeo,
# the peak RSS of each tool (from /usr/bin/time -v) and the load average.
#
#   scripts/bench/pull.sh            # RUNS=10
#   RUNS=20 scripts/bench/pull.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

RUNS=${RUNS:-10}
for tool in skopeo docker-registry /usr/bin/time python3; do
  command -v "$tool" >/dev/null || { echo "pull.sh: $tool is missing (run scripts/setup)" >&2; exit 1; }
done

cargo build --release --locked -q -p berth-pull -p berth-testkit --bin berth-pull --bin berth-fixture
PULL=$PWD/target/release/berth-pull
FIXTURE=$PWD/target/release/berth-fixture

work=$(mktemp -d /tmp/berth-bench-pull.XXXXXX)
reg_pid=
cleanup() {
  if [[ -n $reg_pid ]]; then kill "$reg_pid" 2>/dev/null || true; wait "$reg_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "building fixtures (large takes a while the first time)..." >&2
"$FIXTURE" --out "$work/images" --large busybox:gzip >/dev/null

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
addr=127.0.0.1:$port
cat >"$work/registry.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/storage
http:
  addr: $addr
YML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
reg_pid=$!
for _ in $(seq 100); do
  curl -fs "http://$addr/v2/" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fs "http://$addr/v2/" >/dev/null || { echo "pull.sh: registry did not start" >&2; cat "$work/registry.log" >&2; exit 1; }

for img in busybox:gzip large:latest; do
  skopeo --insecure-policy copy --quiet --preserve-digests --dest-tls-verify=false \
    "oci:$work/images:$img" "docker://$addr/bench/$img"
done

# run LABEL CMD... -> appends "seconds maxrss_kb cpu_seconds" to $work/LABEL.times
run() {
  local label=$1; shift
  /usr/bin/time -v -o "$work/time.out" "$@" >/dev/null 2>"$work/err.out" || {
    echo "pull.sh: $label failed:" >&2; cat "$work/err.out" >&2; exit 1; }
  local wall rss user sys
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/time.out")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.out")
  user=$(awk -F': ' '/User time \(seconds\)/ {print $2}' "$work/time.out")
  sys=$(awk -F': ' '/System time \(seconds\)/ {print $2}' "$work/time.out")
  # wall is [h:]m:ss.ss
  python3 - "$wall" "$rss" "$user" "$sys" >>"$work/$label.times" <<'PY'
import sys
parts = [float(p) for p in sys.argv[1].split(":")]
secs = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
print(f"{secs:.3f} {sys.argv[2]} {float(sys.argv[3]) + float(sys.argv[4]):.3f}")
PY
}

for img in busybox:gzip large:latest; do
  name=${img%%:*}
  : >"$work/berth-$name.times"; : >"$work/skopeo-$name.times"
  for i in $(seq "$RUNS"); do
    rm -rf "$work/b" "$work/s"
    run "berth-$name" "$PULL" --root "$work/b" --quiet "$addr/bench/$img"
    run "skopeo-$name" skopeo --insecure-policy copy --quiet --src-tls-verify=false "docker://$addr/bench/$img" "oci:$work/s:$img"
  done
done

python3 - "$work" "$RUNS" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import statistics, sys
work, runs, load = sys.argv[1], sys.argv[2], sys.argv[3]
print(f"berth-pull vs skopeo copy, {runs} alternating runs each, fresh stores on {work} "
      f"(local docker-registry; load average at the end: {load})")
print(f"{'image':8} {'berth s':>8} {'skopeo s':>9} {'ratio':>6}   {'berth cpu':>9} {'skopeo cpu':>10} "
      f"{'ratio':>6}   {'berth RSS':>9} {'skopeo RSS':>10}")
for name in ["busybox", "large"]:
    def load_times(tool):
        rows = [l.split() for l in open(f"{work}/{tool}-{name}.times") if l.strip()]
        return [float(r[0]) for r in rows], [int(r[1]) for r in rows], [float(r[2]) for r in rows]
    bt, br, bc = load_times("berth")
    st, sr, sc = load_times("skopeo")
    b, s = statistics.median(bt), statistics.median(st)
    b_cpu, s_cpu = statistics.median(bc), statistics.median(sc)
    print(f"{name:8} {b:8.3f} {s:9.3f} {b / s:6.2f}   {b_cpu:9.3f} {s_cpu:10.3f} {b_cpu / s_cpu:6.2f}   "
          f"{max(br) / 1024:6.1f} MB {max(sr) / 1024:7.1f} MB")
PY
