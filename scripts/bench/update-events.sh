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
# Usage: scripts/bench/update-events.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds="${1:-50}"

cargo build --release -p berth-run >&2
berth="$PWD/target/release/berth-run"
for tool in runc busybox python3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is not installed (scripts/setup)" >&2; exit 1; }
done

work="$(mktemp -d /tmp/berth-bench-upd.XXXXXX)"
ids=("bench-upd-$$-berth" "bench-upd-$$-runc")
cleanup() {
  "$berth" --root "$work/state-berth" delete --force "${ids[0]}" >/dev/null 2>&1 || true
  runc --root "$work/state-runc" delete --force "${ids[1]}" >/dev/null 2>&1 || true
  for id in "${ids[@]}"; do for d in /sys/fs/cgroup/*/berth/"$id" /sys/fs/cgroup/berth/"$id"; do rmdir "$d" 2>/dev/null || true; done; done
  rm -rf "$work"
}
trap cleanup EXIT

for id in "${ids[@]}"; do
  b="$work/bundle-$id"
  mkdir -p "$b/rootfs/bin" "$b/rootfs/proc" "$b/rootfs/sys" "$b/rootfs/dev" "$b/rootfs/tmp"
  cp "$(command -v busybox)" "$b/rootfs/bin/busybox"
  ln -s busybox "$b/rootfs/bin/sleep"
  (cd "$b" && runc spec)
  python3 - "$b/config.json" "/berth/$id" <<'EOF'
import json, sys
path, cg = sys.argv[1], sys.argv[2]
c = json.load(open(path))
c["process"]["terminal"] = False
c["process"]["args"] = ["sleep", "100000"]
c["linux"]["cgroupsPath"] = cg
c["linux"]["resources"] = {"memory": {"limit": 134217728}, "pids": {"limit": 100}}
json.dump(c, open(path, "w"), indent=1)
EOF
done
"$berth" --root "$work/state-berth" run --detach --bundle "$work/bundle-${ids[0]}" "${ids[0]}" </dev/null >/dev/null
runc --root "$work/state-runc" run --detach --bundle "$work/bundle-${ids[1]}" "${ids[1]}" </dev/null >/dev/null

python3 - "$rounds" "$berth" "$work" "${ids[0]}" "${ids[1]}" <<'EOF'
import os, statistics, sys, time

rounds, berth, work, bid, rid = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
runtimes = {
    "berth-run": ([berth, "--root", f"{work}/state-berth"], bid),
    "runc": (["runc", "--root", f"{work}/state-runc"], rid),
}
null = os.open(os.devnull, os.O_RDWR)

def timed(argv):
    t0 = time.perf_counter()
    pid = os.posix_spawnp(argv[0], argv, os.environ,
                          file_actions=[(os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, null, 1)])
    _, status, ru = os.wait4(pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        sys.exit(f"bench: {' '.join(argv)} failed ({status})")
    return wall, ru.ru_utime + ru.ru_stime

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
