#!/usr/bin/env bash
# berth-run vs runc on a pod's second container: a bundle that joins a sandbox's user and
# pid namespaces (an `unshare --user --pid --fork` holding them, maps 0 200000 65536) while
# making its own mount, ipc and uts namespaces, running /bin/true. `run` in the foreground,
# ROUNDS alternating rounds (default 60); prints the median wall and user+sys time of each
# and the ratios, with the load average before and after.
#   scripts/bench/joined-userpid.sh [--no-build] [ROUNDS]
# Needs root, runc and unshare (util-linux).
. "$(dirname "$0")/lib.sh"; rounds="${1:-60}"
bench_need runc unshare busybox python3
bench_build

work=$(mktemp -d)
chmod 755 "$work"  # the container's root (host uid 200000) walks through it
sandbox_pid=
cleanup() {
  if [ -n "$sandbox_pid" ]; then kill -KILL "$sandbox_pid" 2>/dev/null || true; wait "$sandbox_pid" 2>/dev/null || true; fi
  bench_rmdir_cgroups "bench-userpid-$$-*"
  rm -rf "$work"
}
trap cleanup EXIT

# The sandbox: --kill-child takes its pid 1 (and so the whole pid namespace) down with it.
unshare --user --pid --fork --kill-child sleep 3600 &
sandbox_pid=$!
ours=$(readlink /proc/self/ns/user)
until [ "$(readlink "/proc/$sandbox_pid/ns/user")" != "$ours" ]; do sleep 0.01; done
echo "0 200000 65536" > "/proc/$sandbox_pid/uid_map"
echo "0 200000 65536" > "/proc/$sandbox_pid/gid_map"
pid1=
until [ -n "$pid1" ]; do pid1=$(tr -d ' ' < "/proc/$sandbox_pid/task/$sandbox_pid/children"); done

bench_bundle "$work/b" "/berth/bench-userpid-$$-x" '["true"]'
python3 - "$work/b/config.json" "$pid1" <<'PY'
import json, sys
path, pid1 = sys.argv[1:3]
c = json.load(open(path))
maps = [{"containerID": 0, "hostID": 200000, "size": 65536}]
c["linux"]["uidMappings"] = maps  # runc 1.1 requires them with a joined user namespace
c["linux"]["gidMappings"] = maps
c["linux"]["namespaces"] = [
    {"type": "user", "path": f"/proc/{pid1}/ns/user"},
    {"type": "pid", "path": f"/proc/{pid1}/ns/pid"},
    {"type": "mount"}, {"type": "ipc"}, {"type": "uts"},
]
c["linux"].pop("cgroupsPath", None)  # each runtime makes (and removes) one per container id
# sysfs and the cgroup file system need a network and a cgroup namespace of the user
# namespace: a pod's container shares the sandbox's network, so they are left out.
c["mounts"] = [m for m in c["mounts"] if m["type"] not in ("sysfs", "cgroup")]
json.dump(c, open(path, "w"), indent=1)
PY

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$rounds" "$work" "$$" <<'PY'
import json, statistics, sys
from timing import timed
rounds, work, tag = int(sys.argv[1]), sys.argv[2], sys.argv[3]
berth = "target/release/berth-run"
res = {"berth-run": ([], []), "runc": ([], [])}
for i in range(rounds):
    for name, argv in (
        ("berth-run", [berth, "--root", f"{work}/berth-state", "run", "--bundle", f"{work}/b", f"bench-userpid-{tag}-b{i}"]),
        ("runc", ["runc", "--root", f"{work}/runc-state", "run", "--bundle", f"{work}/b", f"bench-userpid-{tag}-r{i}"]),
    ):
        wall, cpu = timed(argv)
        res[name][0].append(wall)
        res[name][1].append(cpu)
med = {k: (statistics.median(w), statistics.median(c)) for k, (w, c) in res.items()}
for k, (w, c) in med.items():
    print(f"{k:10} run /bin/true, joined user+pid: median wall {w*1000:6.2f} ms, user+sys {c*1000:6.2f} ms ({rounds} runs)")
print(f"berth-run / runc: wall {med['berth-run'][0]/med['runc'][0]:.2f}, user+sys {med['berth-run'][1]/med['runc'][1]:.2f}")
PY
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
