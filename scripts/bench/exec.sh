#!/usr/bin/env bash
# `exec` benchmark of berth-run against runc on the same bundle (as root): one running
# container per runtime (busybox `sleep`), then N alternating rounds (default 60) of
# `RUNTIME exec ID /bin/true` in the foreground. Prints the median wall time and the median
# CPU time (user+sys of the runtime and everything it waited for, from wait4), the ratios,
# and the load average (the machine is shared: compare within one run only).
#
# Containers go to the cgroups /berth/bench-exec-<pid>-{berth,runc}, never under the
# caller's cgroup; both are deleted at the end, pass or fail.
#
# Usage: scripts/bench/exec.sh [--no-build] [ROUNDS]
#   --no-build  use target/release/berth-run as it is (do not run cargo build first)
. "$(dirname "$0")/lib.sh"
rounds="${1:-60}"

bench_build
berth="$PWD/target/release/berth-run"
bench_need runc busybox python3

work="$(mktemp -d /tmp/berth-bench-exec.XXXXXX)"
cleanup() {
  "$berth" --root "$work/state-berth" delete --force "bench-exec-$$" >/dev/null 2>&1 || true
  runc --root "$work/state-runc" delete --force "bench-exec-$$" >/dev/null 2>&1 || true
  bench_rmdir_cgroups "bench-exec-$$-*"
  rm -rf "$work"
}
trap cleanup EXIT

for rt in berth runc; do
  bench_bundle "$work/bundle-$rt" "/berth/bench-exec-$$-$rt" '["sleep", "100000"]'
done
"$berth" --root "$work/state-berth" run --detach --bundle "$work/bundle-berth" "bench-exec-$$" </dev/null >/dev/null
runc --root "$work/state-runc" run --detach --bundle "$work/bundle-runc" "bench-exec-$$" </dev/null >/dev/null

python3 - "$rounds" "$work" "$berth" "bench-exec-$$" <<'EOF'
import os, statistics, sys
from timing import timed

rounds, work, berth, cid = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
runtimes = {
    "berth-run": [berth, "--root", f"{work}/state-berth", "exec", cid, "/bin/true"],
    "runc": ["runc", "--root", f"{work}/state-runc", "exec", cid, "/bin/true"],
}

# One warm-up each (page cache, first cgroup writes).
for argv in runtimes.values():
    timed(argv)
wall = {n: [] for n in runtimes}
cpu = {n: [] for n in runtimes}
load_before = os.getloadavg()
for r in range(rounds):
    order = list(runtimes) if r % 2 == 0 else list(reversed(runtimes))
    for name in order:
        w, c = timed(runtimes[name])
        wall[name].append(w)
        cpu[name].append(c)
load_after = os.getloadavg()

med = lambda xs: statistics.median(xs) * 1000
print(f"rounds: {rounds} (alternating order), exec of /bin/true into a running busybox container, "
      f"kernel {os.uname().release}")
print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
print(f"{'runtime':<10} {'median ms':>10} {'p10 ms':>8} {'p90 ms':>8} {'cpu ms':>8}")
for n in runtimes:
    q = statistics.quantiles(wall[n], n=10)
    print(f"{n:<10} {med(wall[n]):>10.2f} {q[0]*1000:>8.2f} {q[-1]*1000:>8.2f} {med(cpu[n]):>8.2f}")
print(f"berth-run / runc: wall {med(wall['berth-run'])/med(wall['runc']):.2f}x, "
      f"cpu {med(cpu['berth-run'])/med(cpu['runc']):.2f}x (target: wall at most 0.5x)")
EOF
