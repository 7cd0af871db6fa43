#!/bin/bash
# The benchmark: the kernel's C mei_wdt and this project's, alternated in
# one boot of the bench test kernel (release plus allocation profiling,
# qemu/kconfig/bench.config) on one vCPU, with the MEI bus's own
# round trip (/dev/meiN, no driver) as the floor; then statistics, Rust/C
# ratios, a results file and a plot (scripts/bench.py).
#
#   bench.sh [--quick] [--out DIR]
#     --quick  a few hundred calls per driver: the smoke test of make check
#     --out    where results.json, the table and the plot go (default:
#              bench/ in the checkout; the README shows what is there)
set -euo pipefail
source "$(dirname "$0")/common.sh"

suite=bench
out=$TOPDIR/bench
while (($#)); do
	case "$1" in
	--quick) suite=bench-quick ;;
	--out)
		out=${2:?--out needs a directory}
		shift
		;;
	*) die "usage: bench.sh [--quick] [--out DIR]" ;;
	esac
	shift
done

flavor=bench
kdir=$("$TOPDIR/scripts/kernel.sh" build "$flavor")
build_modules rust "$kdir"
rust_ko=$drv
c_ko=$kdir/drivers/watchdog/mei_wdt.ko
[ -f "$c_ko" ] || die "$c_ko not found"

run=$CACHE_DIR/runs/bench-$flavor
mkdir -p "$run" "$out"
# Both are module mei_wdt; the guest loads the C one from this file name.
install -m 0644 "$c_ko" "$run/mei_wdt_c.ko"
"$TOPDIR/scripts/initramfs.sh" "$run/initramfs.cpio" "$kdir" "$stub" "$rust_ko" "$run/mei_wdt_c.ko"

records=$run/records.txt
# Profiling available (its per-object tags set up at boot), but off until
# the guest turns it on for the memory figure.
python3 "$TOPDIR/scripts/vm-run.py" --kernel "$kdir/arch/x86/boot/bzImage" \
	--initrd "$run/initramfs.cpio" --driver both --kernel-flavor "$flavor" \
	--suite "$suite" --golden-dir "$TOPDIR/qemu/golden" --bench-out "$records" \
	--append "sysctl.vm.mem_profiling=0" |
	tee "$run/vm-run.out"
# A failed VM run ends here, on vm-run's own closing line.
[ "${PIPESTATUS[0]}" = 0 ] || exit 1

quick=()
[ "$suite" = bench ] || quick=(--quick)
release=$(cat "$kdir/include/config/kernel.release")
set +e
python3 "$TOPDIR/scripts/bench.py" --records "$records" --out "$out" \
	--kernel "$release" --line "$(cut -d. -f1,2 <<<"$release")" \
	--c-ko "$c_ko" --rust-ko "$rust_ko" "${quick[@]}" | tee "$run/bench.out"
rc=${PIPESTATUS[0]}
set -e
# One closing line for both: the VM's checks and the figures'.
closing() { grep -E '^[0-9]+ passed, [0-9]+ failed$' "$1" | tail -1; }
read -r vm_p _ vm_f _ <<<"$(closing "$run/vm-run.out")"
read -r b_p _ b_f _ <<<"$(closing "$run/bench.out" || echo "0 passed, 1 failed")"
echo "$((vm_p + b_p)) passed, $((vm_f + b_f)) failed"
exit "$rc"
