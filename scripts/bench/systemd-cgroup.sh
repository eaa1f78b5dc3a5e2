#!/usr/bin/env bash
# --systemd-cgroup benchmark of berth-run against runc (Debian's) on the same busybox bundle
# with memory, pids and CPU limits: `RUNTIME --systemd-cgroup create` (the scope started by
# systemd around the init, limits as unit properties and files) and `RUNTIME delete --force`
# (the unit stopped). N alternating rounds (default 10), medians of wall time and of CPU time
# (user+sys of the runtime and what it waited for, from /usr/bin/time), the ratio berth/runc,
# and the load average before and after. berth-run's cgroupfs create of the same bundle is
# timed in the same rounds as a reference.
#
# It needs systemd as PID 1: elsewhere (these VMs) it runs itself in the systemd guest of
# scripts/test-cgroup2 --systemd, where both runtimes run under emulation: compare the ratio,
# not the absolute times.
#
# Usage: scripts/bench/systemd-cgroup.sh [--no-build] [ROUNDS]
#   --no-build  use target/release/berth-run as it is (do not run cargo build first)
. "$(dirname "$0")/lib.sh"
rounds="${1:-10}"

if [ ! -d /run/systemd/system ]; then
  bench_build
  echo "bench: PID 1 is not systemd; running in the systemd guest of scripts/test-cgroup2" >&2
  echo "bench: host load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  exec scripts/test-cgroup2 --systemd --timeout 590 -- scripts/bench/systemd-cgroup.sh --no-build "$rounds"
fi
berth="$PWD/target/release/berth-run"
[ -x "$berth" ] || { echo "bench: $berth is not built" >&2; exit 1; }
bench_need runc busybox python3 /usr/bin/time

work="$(mktemp -d /tmp/berth-sd-bench.XXXXXX)"
cleanup() {
  "$berth" --root "$work/berth" delete --force sdb >/dev/null 2>&1 || true
  "$berth" --root "$work/fs" delete --force sdf >/dev/null 2>&1 || true
  runc --root "$work/runc" delete --force sdr >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

limits='{"memory": {"limit": 268435456}, "pids": {"limit": 64}, "cpu": {"shares": 512, "quota": 50000, "period": 100000}}'
bench_bundle "$work/b-berth" "system.slice:bench-berth:sdb" '["sleep", "100"]' "$limits"
bench_bundle "$work/b-runc" "system.slice:bench-runc:sdr" '["sleep", "100"]' "$limits"
bench_bundle "$work/b-fs" "/berth/bench-sdf" '["sleep", "100"]' "$limits"

# One timed command: "wall_s cpu_s" appended to FILE.
timed() {
  local file=$1; shift
  /usr/bin/time -f '%e %U %S' -o "$work/t" "$@" </dev/null >/dev/null 2>"$work/err" \
    || { echo "bench: $* failed: $(cat "$work/err")" >&2; exit 1; }
  awk '{ printf "%s %.3f\n", $1, $2 + $3 }' "$work/t" >>"$file"
}

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for _ in $(seq 1 "$rounds"); do
  timed "$work/berth.create" "$berth" --systemd-cgroup --root "$work/berth" create --bundle "$work/b-berth" sdb
  timed "$work/berth.delete" "$berth" --root "$work/berth" delete --force sdb
  timed "$work/runc.create" runc --systemd-cgroup --root "$work/runc" create --bundle "$work/b-runc" sdr
  timed "$work/runc.delete" runc --root "$work/runc" delete --force sdr
  timed "$work/fs.create" "$berth" --root "$work/fs" create --bundle "$work/b-fs" sdf
  timed "$work/fs.delete" "$berth" --root "$work/fs" delete --force sdf
done
echo "load after:  $(cut -d' ' -f1-3 /proc/loadavg)"

median() { sort -n | awk '{ a[NR] = $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.3f", m }'; }
printf '%-11s %12s %12s %8s %12s %12s %8s %14s\n' "$rounds rounds" "berth wall" "runc wall" "ratio" "berth cpu" "runc cpu" "ratio" "berth cgroupfs"
for op in create delete; do
  bw=$(cut -d' ' -f1 "$work/berth.$op" | median); rw=$(cut -d' ' -f1 "$work/runc.$op" | median)
  bc=$(cut -d' ' -f2 "$work/berth.$op" | median); rc=$(cut -d' ' -f2 "$work/runc.$op" | median)
  fw=$(cut -d' ' -f1 "$work/fs.$op" | median)
  awk -v op="$op" -v bw="$bw" -v rw="$rw" -v bc="$bc" -v rc="$rc" -v fw="$fw" 'BEGIN {
    printf "%-11s %11ss %11ss %8.2f %11ss %11ss %8.2f %13ss\n", op, bw, rw, bw / rw, bc, rc, (rc > 0 ? bc / rc : 0), fw }'
done
