#!/usr/bin/env bash
# What clone3(CLONE_INTO_CGROUP) costs or saves against the fallback runc uses (fork, then a
# cgroup.procs write), both through berth-run on the same bundle, as root:
#   clone3    `berth-run create` + `delete --force` as it runs on a host with a v2 hierarchy
#   fallback  the same under a seccomp filter that answers ENOSYS to clone3, so berth-run
#             takes its fallback path: a plain clone and a write of the pid to cgroup.procs
# N alternating rounds (default 40), medians of the wall time of `create` and of its CPU time
# (user+sys, from wait4), the ratio, and the load average before and after. Containers go to
# /berth/bench-clone3-<pid>-<n>, never under the caller's cgroup.
#
# Usage: scripts/bench/clone-into-cgroup.sh [--no-build] [ROUNDS]
. "$(dirname "$0")/lib.sh"
rounds="${1:-40}"
bench_build
berth="$PWD/target/release/berth-run"
bench_need runc busybox python3
grep -q ' - cgroup2 ' /proc/self/mountinfo || { echo "bench: no cgroup v2 hierarchy here" >&2; exit 1; }

work="$(mktemp -d /tmp/berth-bench-clone3.XXXXXX)"
cleanup() {
    for s in "$work"/state-*; do
        [ -d "$s" ] || continue
        for c in "$s"/*; do [ -d "$c" ] && "$berth" --root "$s" delete --force "$(basename "$c")" >/dev/null 2>&1; done
    done
    bench_rmdir_cgroups "bench-clone3-$$-*"
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/bundle/rootfs/bin" "$work/bundle/rootfs/proc" "$work/bundle/rootfs/dev"
cp /bin/busybox "$work/bundle/rootfs/bin/busybox"
ln -s busybox "$work/bundle/rootfs/bin/sleep"
(cd "$work/bundle" && runc spec)
python3 - "$work/bundle/config.json" <<'EOF'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = ["sleep", "1000"]
c["linux"]["cgroupsPath"] = "CGROUP"
json.dump(c, open(p, "w"))
EOF

# One timed create: runs "$@" with wait4 and prints "wall_ms cpu_ms"; with NOCLONE3=1 a
# seccomp filter (ENOSYS for clone3, allow the rest) is installed first.
cat >"$work/timed.py" <<'EOF'
import ctypes, os, struct, sys, time
argv = sys.argv[1:]
t0 = time.monotonic()
pid = os.fork()
if pid == 0:
    if os.environ.get("NOCLONE3") == "1":
        libc = ctypes.CDLL(None, use_errno=True)
        # classic BPF: A = nr; if A == 435 (clone3) return ERRNO(ENOSYS) else ALLOW
        insns = [(0x20, 0, 0, 0), (0x15, 0, 1, 435), (0x06, 0, 0, 0x00050000 | 38), (0x06, 0, 0, 0x7FFF0000)]
        buf = b"".join(struct.pack("HBBI", *i) for i in insns)
        filt = ctypes.create_string_buffer(buf)
        prog = struct.pack("HxxxxxxQ", len(insns), ctypes.addressof(filt))
        progbuf = ctypes.create_string_buffer(prog)
        ul = ctypes.c_ulong
        assert libc.prctl(38, ul(1), ul(0), ul(0), ul(0)) == 0  # PR_SET_NO_NEW_PRIVS
        assert libc.prctl(22, ul(2), ul(ctypes.addressof(progbuf)), ul(0), ul(0)) == 0  # PR_SET_SECCOMP
    fd = os.open("/dev/null", os.O_RDWR)
    for n in (0, 1, 2):
        os.dup2(fd, n)
    os.execv(argv[0], argv)
_, status, ru = os.wait4(pid, 0)
wall = (time.monotonic() - t0) * 1000
if status != 0:
    sys.exit("create failed: status %d" % status)
print("%.3f %.3f" % (wall, (ru.ru_utime + ru.ru_stime) * 1000))
EOF

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
: >"$work/clone3.txt"
: >"$work/fallback.txt"
for ((i = 0; i < rounds; i++)); do
    for mode in clone3 fallback; do
        id=bench-clone3-$$-$mode-$i
        sed "s|CGROUP|/berth/$id|" "$work/bundle/config.json" >"$work/bundle/config.json.tmp"
        mkdir -p "$work/b-$id"
        mv "$work/bundle/config.json.tmp" "$work/b-$id/config.json"
        ln -s "$work/bundle/rootfs" "$work/b-$id/rootfs"
        nc=0
        [ "$mode" = fallback ] && nc=1
        NOCLONE3=$nc python3 "$work/timed.py" "$berth" --root "$work/state-$mode" create \
            --bundle "$work/b-$id" "$id" >>"$work/$mode.txt"
        "$berth" --root "$work/state-$mode" delete --force "$id"
    done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

python3 - "$work" "$rounds" "$load_before" "$load_after" <<'EOF'
import statistics, sys
work, rounds, before, after = sys.argv[1:]
med = {}
for mode in ("clone3", "fallback"):
    rows = [tuple(map(float, l.split())) for l in open(f"{work}/{mode}.txt")]
    med[mode] = (statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows))
    print(f"{mode:9s} create: median wall {med[mode][0]:.2f} ms, median cpu {med[mode][1]:.2f} ms ({len(rows)} runs)")
print(f"clone3/fallback: wall {med['clone3'][0] / med['fallback'][0]:.2f}, cpu {med['clone3'][1] / med['fallback'][1]:.2f}")
print(f"load average before {before}, after {after}")
EOF
