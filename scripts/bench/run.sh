#!/usr/bin/env bash
# Start-up benchmark of berth-run against runc and crun on the same bundle (as root):
#   run      `RUNTIME run ID` of /bin/true in the foreground
#   lifecycle `create` + `start` + `delete --force`
# N alternating rounds (default 60), medians, ratios to crun and runc, and peak RSS (the
# largest ru_maxrss of the runtime and what it forked, from wait4).
#
# crun refuses hybrid cgroup hosts, so the whole benchmark (every runtime) runs in a private
# mount namespace with a tmpfs over /sys/fs/cgroup/unified: all three see the same v1-only
# layout. Containers go to the cgroup /berth/bench-<pid>, never under the caller's cgroup.
#
# Usage: scripts/bench/run.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds="${1:-60}"

cargo build --release -p berth-run >&2
berth="$PWD/target/release/berth-run"
for tool in runc crun busybox python3 unshare /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is not installed (scripts/setup)" >&2; exit 1; }
done

work="$(mktemp -d /tmp/berth-bench.XXXXXX)"
cleanup() { rm -rf "$work"; for d in /sys/fs/cgroup/*/berth/bench-$$; do rmdir "$d" 2>/dev/null || true; done; }
trap cleanup EXIT

bundle="$work/bundle"
mkdir -p "$bundle/rootfs/bin" "$bundle/rootfs/proc" "$bundle/rootfs/sys" "$bundle/rootfs/dev" "$bundle/rootfs/tmp"
cp "$(command -v busybox)" "$bundle/rootfs/bin/busybox"
ln -s busybox "$bundle/rootfs/bin/true"
ln -s busybox "$bundle/rootfs/bin/sh"
(cd "$bundle" && runc spec)
python3 - "$bundle/config.json" "/berth/bench-$$" <<'EOF'
import json, sys
path, cg = sys.argv[1], sys.argv[2]
c = json.load(open(path))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
c["linux"]["cgroupsPath"] = cg
json.dump(c, open(path, "w"), indent=1)
EOF

exec unshare --mount --propagation private -- python3 - "$rounds" "$work" "$bundle" "$berth" <<'EOF'
import os, statistics, subprocess, sys, time

rounds, work, bundle, berth = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
# crun refuses hybrid hosts: hide the v2 tree (this namespace only).
subprocess.run(["mount", "-t", "tmpfs", "none", "/sys/fs/cgroup/unified"], check=True)
runtimes = {
    "berth-run": [berth, "--root", f"{work}/state-berth"],
    "crun": ["crun", "--root", f"{work}/state-crun"],
    "runc": ["runc", "--root", f"{work}/state-runc"],
}
null = os.open(os.devnull, os.O_RDWR)

def timed(argv):
    """Runs argv; returns (seconds, 0, exit status)."""
    t0 = time.perf_counter()
    pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=[(os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, null, 1)])
    _, status, _ = os.wait4(pid, 0)
    return time.perf_counter() - t0, 0, os.waitstatus_to_exitcode(status)

def peak_rss(argv):
    """Peak RSS (KiB) of argv and the children it waited for, from GNU time's wait4. A
    process spawned straight from Python would report Python's own RSS (the exec records
    the old mm's high-water mark), so GNU time (small) sits in between."""
    out = subprocess.run(["/usr/bin/time", "-f", "RSS %M"] + argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if out.returncode != 0:
        sys.exit(f"bench: {argv} failed: {out.stderr.strip()}")
    return int(out.stderr.strip().splitlines()[-1].split()[1])

def must(name, what, res):
    if res[2] != 0:
        sys.exit(f"bench: {name} {what} failed with status {res[2]} (run it by hand to see why)")
    return res

results = {n: {"run": [], "lifecycle": [], "rss": []} for n in runtimes}
seq = 0
for r in range(rounds):
    order = list(runtimes) if r % 2 == 0 else list(reversed(runtimes))
    for name in order:
        base = runtimes[name]
        seq += 1
        cid = f"bench-{os.getpid()}-{seq}"
        t, rss, code = must(name, "run", timed(base + ["run", "--bundle", bundle, cid]))
        results[name]["run"].append(t)
        seq += 1
        cid = f"bench-{os.getpid()}-{seq}"
        t1, rss1, _ = must(name, "create", timed(base + ["create", "--bundle", bundle, cid]))
        t2, rss2, _ = must(name, "start", timed(base + ["start", cid]))
        t3, rss3, _ = must(name, "delete", timed(base + ["delete", "--force", cid]))
        results[name]["lifecycle"].append(t1 + t2 + t3)

# Peak RSS: a separate pass, so that GNU time's own fork is not in the timings above.
for r in range(5):
    for name, base in runtimes.items():
        seq += 1
        results[name]["rss"].append(peak_rss(base + ["run", "--bundle", bundle, f"bench-{os.getpid()}-{seq}"]))

med = {n: {k: statistics.median(v) for k, v in d.items() if v} for n, d in results.items()}
print(f"rounds: {rounds} (alternating order), bundle: busybox /bin/true, kernel {os.uname().release}")
print(f"{'runtime':<10} {'run ms':>9} {'create+start+delete ms':>24} {'peak RSS KiB':>13}")
for n in runtimes:
    m = med[n]
    print(f"{n:<10} {m['run']*1000:>9.2f} {m['lifecycle']*1000:>24.2f} {max(results[n]['rss']):>13}")
b = med["berth-run"]
for other in ("crun", "runc"):
    o = med[other]
    print(f"berth-run / {other}: run {b['run']/o['run']:.2f}x, create+start+delete {b['lifecycle']/o['lifecycle']:.2f}x, "
          f"peak RSS {max(results['berth-run']['rss'])/max(results[other]['rss']):.2f}x")
EOF
