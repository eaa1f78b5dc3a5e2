#!/usr/bin/env bash
# `update` and `events --stats` of berth-run against runc on the same kind of container (as
# root): one running busybox `sleep` container per runtime, then N alternating rounds
# (default 50) of
#   update   `RUNTIME update --pids-limit P --memory M ID` (values change every round)
#   stats    `RUNTIME events --stats ID`
# Prints the median wall time and the median CPU time (user+sys of the runtime and its
# children, from wait4) of each, the berth-run/runc ratios and the load average.
# Containers go to the cgroup /berth/bench-upd-<pid>-*, never under the caller's cgroup.
#
# Usage: scripts/bench/update-events.sh [--no-build] [ROUNDS]
#   --no-build  use target/release/berth-run as it is (do not run cargo build first)
. "$(dirname "$0")/lib.sh"
rounds="${1:-50}"

bench_build
berth="$PWD/target/release/berth-run"
bench_need runc busybox python3

work="$(mktemp -d /tmp/berth-bench-upd.XXXXXX)"
ids=("bench-upd-$$-berth" "bench-upd-$$-runc")
cleanup() {
  "$berth" --root "$work/state-berth" delete --force "${ids[0]}" >/dev/null 2>&1 || true
  runc --root "$work/state-runc" delete --force "${ids[1]}" >/dev/null 2>&1 || true
  bench_rmdir_cgroups "${ids[@]}"
  rm -rf "$work"
}
trap cleanup EXIT

for id in "${ids[@]}"; do
  bench_bundle "$work/bundle-$id" "/berth/$id" '["sleep", "100000"]' \
    '{"memory": {"limit": 134217728}, "pids": {"limit": 100}}'
done
"$berth" --root "$work/state-berth" run --detach --bundle "$work/bundle-${ids[0]}" "${ids[0]}" </dev/null >/dev/null
runc --root "$work/state-runc" run --detach --bundle "$work/bundle-${ids[1]}" "${ids[1]}" </dev/null >/dev/null

python3 - "$rounds" "$berth" "$work" "${ids[0]}" "${ids[1]}" <<'EOF'
import os, statistics, sys
from timing import timed

rounds, berth, work, bid, rid = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
runtimes = {
    "berth-run": ([berth, "--root", f"{work}/state-berth"], bid),
    "runc": (["runc", "--root", f"{work}/state-runc"], rid),
}

res = {(rt, op): ([], []) for rt in runtimes for op in ("update", "stats")}
for i in range(rounds):
    order = list(runtimes) if i % 2 == 0 else list(reversed(runtimes))
    for rt in order:
        base, cid = runtimes[rt]
        pids, mem = 50 + i % 2, (64 + 16 * (i % 2)) << 20
        for op, argv in (("update", base + ["update", "--pids-limit", str(pids), "--memory", str(mem), cid]),
                         ("stats", base + ["events", "--stats", cid])):
            wall, cpu = timed(argv)
            res[(rt, op)][0].append(wall)
            res[(rt, op)][1].append(cpu)

ms = lambda v: statistics.median(v) * 1000
print(f"rounds: {rounds}, alternating; load average: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
print(f"{'op':8} {'runtime':10} {'wall median':>12} {'cpu median':>11}")
for op in ("update", "stats"):
    for rt in runtimes:
        w, c = res[(rt, op)]
        print(f"{op:8} {rt:10} {ms(w):10.2f}ms {ms(c):9.2f}ms")
    (bw, bc), (rw, rc) = res[("berth-run", op)], res[("runc", op)]
    print(f"{op:8} ratio berth-run/runc: wall {ms(bw) / ms(rw):.2f}, cpu {ms(bc) / max(ms(rc), 1e-9):.2f}")
EOF
