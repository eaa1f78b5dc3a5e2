# Sourced by the berth-run benchmarks in scripts/bench (not run): what they share before
# they measure. Sourcing it sets bash's strict mode, moves to the repository root, takes an
# optional --no-build from the script's arguments, and defines:
#   bench_build [CARGO ARGS...]  cargo build --release -p berth-run [ARGS] unless --no-build
#   bench_need TOOL...           fails naming the first TOOL that is not installed
#   bench_bundle DIR CGROUP ARGS [RESOURCES]
#                                a bundle of static busybox (sh, true, sleep) with `runc
#                                spec`'s config, no terminal, process.args ARGS (JSON),
#                                cgroupsPath CGROUP and, if given, linux.resources RESOURCES
#   bench_rmdir_cgroups NAME...  removes /berth/NAME (a glob is fine) in every hierarchy
# and puts scripts/bench on PYTHONPATH, so that a python3 heredoc can `from timing import
# timed` (scripts/bench/timing.py).
# Usage, first thing after the header comment:
#   . "$(dirname "$0")/lib.sh"; rounds="${1:-60}"
# ($1 is then the first argument after --no-build.)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

export PYTHONPATH="$PWD/scripts/bench${PYTHONPATH:+:$PYTHONPATH}"

bench_no_build=0
if [ "${1:-}" = "--no-build" ]; then bench_no_build=1; shift; fi

bench_build() {
  if [ "$bench_no_build" = 0 ]; then cargo build --release -p berth-run "$@" >&2; fi
}

bench_need() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is not installed (scripts/setup)" >&2; exit 1; }
  done
}

bench_bundle() {
  local dir=$1 cg=$2 args=$3 resources=${4:-} c
  mkdir -p "$dir/rootfs/bin" "$dir/rootfs/proc" "$dir/rootfs/sys" "$dir/rootfs/dev" "$dir/rootfs/tmp"
  cp "$(command -v busybox)" "$dir/rootfs/bin/busybox"
  for c in sh true sleep; do ln -s busybox "$dir/rootfs/bin/$c"; done
  (cd "$dir" && runc spec)
  python3 - "$dir/config.json" "$cg" "$args" "$resources" <<'EOF'
import json, sys
path, cg, args, resources = sys.argv[1:5]
c = json.load(open(path))
c["process"]["terminal"] = False
c["process"]["args"] = json.loads(args)
c["linux"]["cgroupsPath"] = cg
if resources:
    c["linux"]["resources"] = json.loads(resources)
json.dump(c, open(path, "w"), indent=1)
EOF
}

bench_rmdir_cgroups() {
  local name d
  for name in "$@"; do
    # shellcheck disable=SC2086 # NAME may be a glob
    for d in /sys/fs/cgroup/*/berth/$name /sys/fs/cgroup/berth/$name; do
      rmdir "$d" 2>/dev/null || true
    done
  done
}
