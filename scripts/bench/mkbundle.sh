#!/usr/bin/env bash
# Benchmarks berth-mkbundle (make and --remove) against doing the same by hand with the
# incumbent tools: mount -t overlay of the same snapshots + `runc spec`, then umount + rm -rf.
#
#   scripts/bench/mkbundle.sh [RUNS]          (default 21 runs; needs root)
#
# For each image (busybox:gzip, one layer; layers:gzip, six layers), already unpacked with
# berth-unpack, every run makes a fresh bundle in /var/tmp (the root disk) with:
#   berth   berth-mkbundle --bundle DIR IMAGE           (config.json with seccomp, overlay, record)
#   shell   mkdir; mount -t overlay …; runc spec --bundle DIR
# and removes it with:
#   berth   berth-mkbundle --remove DIR                 (unmount, delete, release the snapshots)
#   shell   umount DIR/rootfs; rm -rf DIR
# The tools alternate within each run. Prints median wall times (ms) and berth/shell ratios.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-21}

cargo build --release -q -p berth-mkbundle -p berth-unpack -p berth-testkit
bin=$PWD/target/release
for t in runc jq skopeo; do
  command -v "$t" >/dev/null || { echo "$t is not installed (scripts/setup)" >&2; exit 1; }
done

work=$(mktemp -d /var/tmp/berth-bench-mkbundle.XXXXXX)
cleanup() {
  for b in "$work"/b-*; do
    [ -e "$b" ] || continue
    umount -l "$b/rootfs" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

"$bin/berth-fixture" --out "$work/layout" busybox:gzip layers:gzip >/dev/null
mkdir -p "$work/root"

now() { date +%s%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b - a) / 1000000}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

printf '%-14s %10s %10s %8s %10s %10s %8s\n' image berth-make shell-make ratio berth-rm shell-rm ratio
for ref in busybox:gzip layers:gzip; do
  skopeo copy -q "oci:$work/layout:$ref" "oci:$work/root/content:$ref"
  "$bin/berth-unpack" --root "$work/root" "$ref" >/dev/null
  # The snapshots' fs directories, top layer first, for the hand-made overlay.
  probe=$work/b-probe
  chain=$("$bin/berth-mkbundle" --root "$work/root" --bundle "$probe" --json "$ref" | jq -r '.snapshots[]')
  "$bin/berth-mkbundle" --remove "$probe"
  lowers=$(for c in $chain; do echo "$work/root/snapshots/sha256/${c#sha256:}/fs"; done | tac | paste -sd:)

  declare -A t=()
  for ((i = 0; i < runs; i++)); do
    b=$work/b-berth-$i
    t0=$(now); "$bin/berth-mkbundle" --root "$work/root" --bundle "$b" "$ref" >/dev/null; t1=$(now)
    "$bin/berth-mkbundle" --remove "$b"; t2=$(now)
    t[berth_make]+="$(ms "$t0" "$t1") "; t[berth_rm]+="$(ms "$t1" "$t2") "

    s=$work/b-shell-$i
    t0=$(now)
    mkdir -p "$s/rootfs" "$s/upper" "$s/work"
    mount -t overlay overlay -o "lowerdir=$lowers,upperdir=$s/upper,workdir=$s/work" "$s/rootfs"
    runc spec --bundle "$s"
    t1=$(now)
    umount "$s/rootfs"; rm -rf "$s"
    t2=$(now)
    t[shell_make]+="$(ms "$t0" "$t1") "; t[shell_rm]+="$(ms "$t1" "$t2") "
  done
  m() { echo "${t[$1]}" | tr ' ' '\n' | grep . | median; }
  bm=$(m berth_make) sm=$(m shell_make) br=$(m berth_rm) sr=$(m shell_rm)
  printf '%-14s %10s %10s %8s %10s %10s %8s\n' "$ref" "$bm" "$sm" "$(ratio "$bm" "$sm")" \
    "$br" "$sr" "$(ratio "$br" "$sr")"
  unset t
done
echo "(median ms over $runs runs; ratio = berth / shell, below 1 is faster; load: $(cut -d' ' -f1-3 /proc/loadavg))"
