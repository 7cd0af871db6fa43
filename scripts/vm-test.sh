#!/bin/bash
# Run a scenario suite in the test VM.
#
#   vm-test.sh DRIVER KERNEL [SUITE] [record]
#     DRIVER  c (the kernel's mei_wdt.ko, the reference) or rust
#     KERNEL  [LINE-]FLAVOR: release, debug or kcsan, of line 6.12 (the
#             default) or 7.3, e.g. 7.3-debug; or debian: Debian 13's own kernel
#             (scripts/debian-kernel.sh), with the modules built for it in
#             the Debian 13 environment
#     SUITE   all (default), a scenario, or a comma list
#     record  write the observed traces as golden files (C driver only)
set -euo pipefail
source "$(dirname "$0")/common.sh"

driver=${1:?usage: vm-test.sh c|rust release|debug [SUITE] [record]}
kernel=${2:?usage: vm-test.sh c|rust [LINE-]release|debug [SUITE] [record]}
flavor=${kernel#*-}
suite=${3:-all}
record=${4:-}

base=()
if [ "$kernel" = debian ]; then
	# Debian's own kernel, a release kernel, with its MEI and watchdog
	# cores as modules, loaded first.
	flavor=release
	kdir=$("$TOPDIR/scripts/debian-kernel.sh" build)
	mapfile -t base < <(sed "s|^|$kdir/|" "$kdir/base-modules")
else
	kdir=$("$TOPDIR/scripts/kernel.sh" build "$kernel")
fi
build_modules "$driver" "$kdir"

run=$CACHE_DIR/runs/$driver-$kernel
mkdir -p "$run"
"$TOPDIR/scripts/initramfs.sh" "$run/initramfs.cpio" "$kdir" "${base[@]}" "$stub" "$drv"

args=(--kernel "$kdir/arch/x86/boot/bzImage" --initrd "$run/initramfs.cpio"
	--driver "$driver" --kind "$flavor" --suite "$suite"
	--golden-dir "$TOPDIR/qemu/golden")
[ "$record" = record ] && args+=(--record)
# The guest's expectations follow the core's options (see the guest's
# expect::core_emulates_pretimeout).
if grep -qx 'CONFIG_WATCHDOG_HRTIMER_PRETIMEOUT=y' "$kdir/.config"; then
	args+=(--append meiwdt.hrtimer_pretimeout=1)
fi
args+=(--guest-bin "$(cargo_target_dir guest)/x86_64-unknown-linux-gnu/release/mei-wdt-tests")
exec python3 "$TOPDIR/scripts/vm-run.py" "${args[@]}"
