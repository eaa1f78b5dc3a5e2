#!/usr/bin/env bash
# Benchmarks berth-mkbundle (make and --remove) against doing the same by hand with the
# incumbent tools: mount -t overlay of the same snapshots + `runc spec`, then umount + rm -rf.
#
#   scripts/bench/mkbundle.sh [RUNS] [BUNDLE_PARENT...]
#       (default 21 runs; bundles in /var/tmp, the root disk, and /dev/shm; needs root)
#
# For each bundle parent and each image (busybox:gzip, one layer; layers:gzip, six layers),
# already unpacked with berth-unpack, every run makes a fresh bundle with:
#   berth   berth-mkbundle --bundle DIR IMAGE           (config.json with seccomp, volatile
#                                                        overlay, record, snapshot leases)
#   durable berth-mkbundle --durable --bundle DIR IMAGE (the overlay without volatile)
#   shell   mkdir; mount -t overlay …; runc spec --bundle DIR
# and removes it with:
#   berth   berth-mkbundle --remove DIR                 (unmount, delete, release the snapshots)
#   shell   umount DIR/rootfs; rm -rf DIR
# and, when BASELINE names another berth-mkbundle binary (e.g. a build of an older commit),
#   baseline  berth-mkbundle --bundle DIR IMAGE; $BASELINE --remove DIR
# so an older --remove is timed on the same bundles in the same run.
# Between making and removing, `sync -f` (not timed) writes the bundle and the store to the
# disk, as the journal would have long before a real container is removed: freeing blocks
# that reached a disk mounted with `discard` is what costs (docs/bundles.md).
# They alternate within each run. Prints median wall times (ms), berth/shell ratios, and
# the floor: the median of `berth-mkbundle --version` (exec + dynamic linking + clap), which
# no make or remove can go below. Times come from bash's $EPOCHREALTIME (no fork per reading).
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-21}
shift || true
parents=("$@")
[ ${#parents[@]} -gt 0 ] || parents=(/var/tmp /dev/shm)

cargo build --release -q -p berth-mkbundle -p berth-unpack -p berth-testkit
bin=$PWD/target/release
for t in runc jq skopeo; do
  command -v "$t" >/dev/null || { echo "$t is not installed (scripts/setup)" >&2; exit 1; }
done

work=$(mktemp -d /var/tmp/berth-bench-mkbundle.XXXXXX)
bdirs=()
cleanup() {
  for d in "$work" "${bdirs[@]}"; do
    for b in "$d"/b-*; do
      [ -e "$b" ] || continue
      umount -l "$b/rootfs" 2>/dev/null || true
    done
    rm -rf "$d"
  done
}
trap cleanup EXIT

"$bin/berth-fixture" --out "$work/layout" busybox:gzip layers:gzip >/dev/null
mkdir -p "$work/root"

# Readings: ${EPOCHREALTIME/./} is microseconds, taken without a fork. CPU time (user + sys of
# the waited-for children, ms resolution) comes from the `times` builtin, parsed without a
# fork (a subshell would add its own time to the children's): cpu_now sets CPU (microseconds).
tf=$work/times
cpu_now() {
  local u s m r
  times >"$tf"
  { read -r _ _; read -r u s; } <"$tf"
  CPU=0
  for r in "$u" "$s"; do
    m=${r%%m*}; r=${r#*m}; r=${r%s}
    CPU=$((CPU + (m * 60 + 10#${r%.*}) * 1000000 + 10#${r#*.} * 1000))
  done
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b - a) / 1000}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else printf "-"}'; }

floor=()
for ((i = 0; i < runs; i++)); do
  t0=${EPOCHREALTIME/./}; "$bin/berth-mkbundle" --version >/dev/null; t1=${EPOCHREALTIME/./}
  floor+=("$(ms "$t0" "$t1")")
done
floor_ms=$(printf '%s\n' "${floor[@]}" | median)

for ref in busybox:gzip layers:gzip; do
  skopeo copy -q "oci:$work/layout:$ref" "oci:$work/root/content:$ref"
  "$bin/berth-unpack" --root "$work/root" "$ref" >/dev/null
done

printf '%-10s %-13s %7s %7s %7s %6s | %7s %7s %7s %6s\n' parent image berth durable shell ratio \
  berth durable shell ratio
printf '%-10s %-13s %31s | %s\n' "" "" "make (ms)" "remove (ms)"
for parent in "${parents[@]}"; do
  bdir=$(mktemp -d "$parent/berth-bench-bundles.XXXXXX")
  bdirs+=("$bdir")
  for ref in busybox:gzip layers:gzip; do
    # The snapshots' fs directories, top layer first, for the hand-made overlay.
    probe=$bdir/b-probe
    chain=$("$bin/berth-mkbundle" --root "$work/root" --bundle "$probe" --json "$ref" | jq -r '.snapshots[]')
    "$bin/berth-mkbundle" --remove "$probe"
    lowers=$(for c in $chain; do echo "$work/root/snapshots/sha256/${c#sha256:}/fs"; done | tac | paste -sd:)

    declare -A t=()
    for ((i = 0; i < runs; i++)); do
      b=$bdir/b-berth-$i
      cpu_now; c0=$CPU
      t0=${EPOCHREALTIME/./}; "$bin/berth-mkbundle" --root "$work/root" --bundle "$b" "$ref" >/dev/null; t1=${EPOCHREALTIME/./}
      cpu_now; c1=$CPU
      sync -f "$b" "$work/root"
      cpu_now; c1r=$CPU
      t1r=${EPOCHREALTIME/./}; "$bin/berth-mkbundle" --remove "$b"; t2=${EPOCHREALTIME/./}
      cpu_now; c2=$CPU
      t[berth_make]+="$(ms "$t0" "$t1") "; t[berth_rm]+="$(ms "$t1r" "$t2") "
      t[berth_make_cpu]+="$(ms "$c0" "$c1") "; t[berth_rm_cpu]+="$(ms "$c1r" "$c2") "

      b=$bdir/b-durable-$i
      t0=${EPOCHREALTIME/./}; "$bin/berth-mkbundle" --durable --root "$work/root" --bundle "$b" "$ref" >/dev/null; t1=${EPOCHREALTIME/./}
      t[durable_make]+="$(ms "$t0" "$t1") "
      sync -f "$b" "$work/root"
      t1=${EPOCHREALTIME/./}; "$bin/berth-mkbundle" --remove "$b"; t2=${EPOCHREALTIME/./}
      t[durable_rm]+="$(ms "$t1" "$t2") "

      if [ -n "${BASELINE:-}" ]; then
        b=$bdir/b-base-$i
        "$bin/berth-mkbundle" --root "$work/root" --bundle "$b" "$ref" >/dev/null
        sync -f "$b" "$work/root"
        t1=${EPOCHREALTIME/./}; "$BASELINE" --remove "$b"; t2=${EPOCHREALTIME/./}
        t[base_rm]+="$(ms "$t1" "$t2") "
      fi

      s=$bdir/b-shell-$i
      cpu_now; c0=$CPU
      t0=${EPOCHREALTIME/./}
      mkdir -p "$s/rootfs" "$s/upper" "$s/work"
      mount -t overlay overlay -o "lowerdir=$lowers,upperdir=$s/upper,workdir=$s/work" "$s/rootfs"
      runc spec --bundle "$s"
      t1=${EPOCHREALTIME/./}
      cpu_now; c1=$CPU
      sync -f "$s" "$work/root"
      cpu_now; c1r=$CPU
      t1r=${EPOCHREALTIME/./}
      umount "$s/rootfs"; rm -rf "$s"
      t2=${EPOCHREALTIME/./}
      cpu_now; c2=$CPU
      t[shell_make]+="$(ms "$t0" "$t1") "; t[shell_rm]+="$(ms "$t1r" "$t2") "
      t[shell_make_cpu]+="$(ms "$c0" "$c1") "; t[shell_rm_cpu]+="$(ms "$c1r" "$c2") "
    done
    m() { echo "${t[$1]}" | tr ' ' '\n' | grep . | median; }
    bm=$(m berth_make) dm=$(m durable_make) sm=$(m shell_make)
    br=$(m berth_rm) dr=$(m durable_rm) sr=$(m shell_rm)
    printf '%-10s %-13s %7s %7s %7s %6s | %7s %7s %7s %6s\n' "$parent" "$ref" "$bm" "$dm" "$sm" \
      "$(ratio "$bm" "$sm")" "$br" "$dr" "$sr" "$(ratio "$br" "$sr")"
    bmc=$(m berth_make_cpu) smc=$(m shell_make_cpu) brc=$(m berth_rm_cpu) src=$(m shell_rm_cpu)
    printf '%-10s %-13s %7s %7s %7s %6s | %7s %7s %7s %6s\n' "  cpu" "" "$bmc" "" "$smc" \
      "$(ratio "$bmc" "$smc")" "$brc" "" "$src" "$(ratio "$brc" "$src")"
    if [ -n "${BASELINE:-}" ]; then
      printf '%-10s %-13s %31s | %7s  (remove by %s)\n' "  baseline" "" "" "$(m base_rm)" "$BASELINE"
    fi
    unset t
  done
done
echo "(median ms over $runs runs; cpu = user + sys of the processes; ratio = berth / shell, below 1 is faster; floor (berth-mkbundle --version): $floor_ms ms; load: $(cut -d' ' -f1-3 /proc/loadavg))"
