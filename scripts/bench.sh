#!/bin/bash
# The benchmark: the kernel's C mei_wdt and this project's, alternated in
# one boot of the release test kernel (allocation profiling, off at boot,
# on around the memory figure) on one vCPU, with the MEI bus's own
# round trip (/dev/meiN, no driver) as the floor; then statistics, Rust/C
# ratios, a results file and a plot (scripts/bench.py).
#
#   bench.sh [--line LINE] [--quick] [--out DIR]
#     --line   the kernel line (kernel.sh lines), default 6.12
#     --quick  a few hundred calls per driver: the smoke test of make check
#     --out    where the results file and the plot go (default: bench/ in
#              the checkout, which the README shows; with --quick, the
#              run's own directory)
set -euo pipefail
source "$(dirname "$0")/common.sh"

suite=bench
out=
line=6.12
while (($#)); do
	case "$1" in
	--line)
		line=${2:?--line needs a kernel line}
		shift
		;;
	--quick) suite=bench-quick ;;
	--out)
		out=${2:?--out needs a directory}
		shift
		;;
	*) die "usage: bench.sh [--line LINE] [--quick] [--out DIR]" ;;
	esac
	shift
done

kdir=$("$TOPDIR/scripts/kernel.sh" build "$line-release")
build_modules rust "$kdir"
c_ko=$kdir/drivers/watchdog/mei_wdt.ko
[ -f "$c_ko" ] || die "$c_ko not found"

# A run of its own: two benchmarks (make bench beside make check's smoke
# test) must not share files. The last few runs' records are kept.
runs=$CACHE_DIR/runs
mkdir -p "$runs"
find "$runs" -maxdepth 1 -name 'bench-*' -type d -printf '%T@ %p\n' | sort -n |
	head -n -4 | cut -d' ' -f2- | xargs -r rm -rf
run=$runs/bench-$line-$(date +%Y%m%d-%H%M%S)-$$
mkdir -p "$run"
trap 'rm -f "$run/initramfs.cpio"' EXIT
# What the VM loads is what is measured and sized: both are module
# mei_wdt; the guest loads the C one from this file name.
install -m 0644 "$c_ko" "$run/mei_wdt_c.ko"
install -m 0644 "$drv" "$run/mei_wdt.ko"
# The short form's results are not the README's: they stay in the run.
[ -n "$out" ] || { [ "$suite" = bench ] && out=$TOPDIR/bench || out=$run/out; }
mkdir -p "$out"
"$TOPDIR/scripts/initramfs.sh" "$run/initramfs.cpio" "$kdir" "$stub" "$run/mei_wdt.ko" "$run/mei_wdt_c.ko"

records=$run/records.txt
vm_rc=0
# Profiling available (its per-object tags set up at boot), but off until
# the guest turns it on for the memory figure.
python3 "$TOPDIR/scripts/vm-run.py" --kernel "$kdir/arch/x86/boot/bzImage" \
	--initrd "$run/initramfs.cpio" --driver both --kind bench \
	--suite "$suite" --golden-dir "$TOPDIR/qemu/golden" --bench-out "$records" \
	--append "sysctl.vm.mem_profiling=0" | tee "$run/vm-run.out" || vm_rc=$?
# A failed VM run ends here, on vm-run's own closing line.
[ "$vm_rc" = 0 ] || exit 1

release=$(cat "$kdir/include/config/kernel.release")
bench_rc=0
python3 "$TOPDIR/scripts/bench.py" --records "$records" --out "$out" \
	--kernel "$release" --line "$(cut -d. -f1,2 <<<"$release")" \
	--c-ko "$run/mei_wdt_c.ko" --rust-ko "$run/mei_wdt.ko" | tee "$run/bench.out" || bench_rc=$?
# One closing line for both: the VM's checks and the figures'.
closing() { grep -E '^[0-9]+ passed, [0-9]+ failed$' "$1" | tail -1; }
read -r vm_p _ vm_f _ <<<"$(closing "$run/vm-run.out")"
read -r b_p _ b_f _ <<<"$(closing "$run/bench.out" || echo "0 passed, 1 failed")"
echo "$((vm_p + b_p)) passed, $((vm_f + b_f)) failed"
exit "$bench_rc"
