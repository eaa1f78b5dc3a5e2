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
# Usage: scripts/bench/exec.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds="${1:-60}"

cargo build --release -p berth-run >&2
berth="$PWD/target/release/berth-run"
for tool in runc busybox python3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is not installed (scripts/setup)" >&2; exit 1; }
done

work="$(mktemp -d /tmp/berth-bench-exec.XXXXXX)"
cleanup() {
  "$berth" --root "$work/state-berth" delete --force "bench-exec-$$" >/dev/null 2>&1 || true
  runc --root "$work/state-runc" delete --force "bench-exec-$$" >/dev/null 2>&1 || true
  for d in /sys/fs/cgroup/*/berth/bench-exec-$$-* /sys/fs/cgroup/berth/bench-exec-$$-*; do
    rmdir "$d" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

for rt in berth runc; do
  bundle="$work/bundle-$rt"
  mkdir -p "$bundle/rootfs/bin" "$bundle/rootfs/proc" "$bundle/rootfs/sys" "$bundle/rootfs/dev"
  cp "$(command -v busybox)" "$bundle/rootfs/bin/busybox"
  for c in true sh sleep; do ln -s busybox "$bundle/rootfs/bin/$c"; done
  (cd "$bundle" && runc spec)
  python3 - "$bundle/config.json" "/berth/bench-exec-$$-$rt" <<'EOF'
import json, sys
path, cg = sys.argv[1], sys.argv[2]
c = json.load(open(path))
c["process"]["terminal"] = False
c["process"]["args"] = ["sleep", "100000"]
c["linux"]["cgroupsPath"] = cg
json.dump(c, open(path, "w"), indent=1)
EOF
done
"$berth" --root "$work/state-berth" run --detach --bundle "$work/bundle-berth" "bench-exec-$$" </dev/null >/dev/null
runc --root "$work/state-runc" run --detach --bundle "$work/bundle-runc" "bench-exec-$$" </dev/null >/dev/null

python3 - "$rounds" "$work" "$berth" "bench-exec-$$" <<'EOF'
import os, statistics, sys, time

rounds, work, berth, cid = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
runtimes = {
    "berth-run": [berth, "--root", f"{work}/state-berth", "exec", cid, "/bin/true"],
    "runc": ["runc", "--root", f"{work}/state-runc", "exec", cid, "/bin/true"],
}
null = os.open(os.devnull, os.O_RDWR)

def timed(argv):
    """(wall seconds, user+sys seconds) of argv and what it waited for."""
    t0 = time.perf_counter()
    pid = os.posix_spawnp(argv[0], argv, os.environ,
                          file_actions=[(os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, null, 1)])
    _, status, ru = os.wait4(pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"bench: {' '.join(argv)} failed with status {os.waitstatus_to_exitcode(status)}")
    return wall, ru.ru_utime + ru.ru_stime

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
