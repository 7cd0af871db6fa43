#!/bin/bash
# systemd as a consumer of the watchdog: boot a Debian 12 VM whose PID 1 is
# systemd 252, on the 7.3 test kernel (the line distributions ship with
# Rust), with the stubbed ME and the driver under test, and check
# systemd's hardware watchdog integration (RuntimeWatchdogSec=120s).
#
#   consumers-test.sh DRIVER [SUITE] [-v]
#     DRIVER  c (the kernel's mei_wdt.ko) or rust
#     SUITE   systemd (the default: the checks below), or a shutdown with
#             the ME silent: shutdown_silent, shutdown_reset,
#             shutdown_reboot (qemu/systemd/shutdown.sh; vm-run.py times
#             the shutdown)
#     -v      echo the VM's console
#
# Builds or reuses the 7.3 release kernel (kernel.sh build 7.3-release: on
# SYSTEMD_LINE it has qemu/kconfig/systemd.config too), the stub,
# the driver and the root file system (rootfs.sh); the disk image is a
# per-run copy in $CACHE_DIR/runs/systemd-DRIVER/. One line per check, then
# `N passed, N failed` (vm-run.py):
#   systemd_watchdog_device  PID 1 uses 'iamt_wdt' (journal), timeout 2min
#   systemd_keepalive        start-request timeout=120, then a keepalive at
#                            systemd's interval (measured: LOG line)
#   systemd_poweroff_disarm  `systemctl poweroff` sends a stop-request and
#                            the firmware timer never expires
#   vcpus                    the kernel brought up the VM's vCPUs
#   kernel-log               no warning, oops, ... on the console
# The guest side is qemu/systemd/. The firmware clock runs at
# MS_PER_FW_SECOND (default 600 ms per firmware second: the 120 s timeout
# lasts 72 s, more than systemd's 60 s ping interval, so a missed ping
# shows up as an expiry within the run).
set -euo pipefail
source "$(dirname "$0")/common.sh"

usage="usage: consumers-test.sh c|rust [systemd|shutdown_silent|shutdown_reset|shutdown_reboot] [-v]"
driver=${1:?$usage}
suite=systemd
verbose=()
for arg in "${@:2}"; do
	case "$arg" in
	systemd | shutdown_silent | shutdown_reset | shutdown_reboot) suite=$arg ;;
	-v) verbose=(-v) ;;
	*) die "$usage" ;;
	esac
done
scale=${MS_PER_FW_SECOND:-600}
# The C reference's probe loses a race with its own rx callback under 7.3's
# preemption (a use-after-free) unless the firmware takes a moment to
# answer: qemu/guest/src/expect.rs, stub_config_for.
stub_config=
[ "$driver" != c ] || stub_config=" meiwdt.stub_config=answer_gap_ms=100"

kdir=$("$TOPDIR/scripts/kernel.sh" build "$SYSTEMD_LINE-release")
build_modules "$driver" "$kdir"

run=$CACHE_DIR/runs/systemd-$driver
[ "$suite" = systemd ] || run=$CACHE_DIR/runs/systemd-$driver-$suite
# A daemon, not PID 1, holds the watchdog at that reboot.
[ "$suite" != shutdown_reboot ] || stub_config+=" systemd.watchdog_sec=off"
mkdir -p "$run"
# One run per driver at a time: the image is rewritten for each run. The
# lock is held by vm-run.py (exec keeps the descriptor) until it exits.
exec 9>"$run/.lock"
flock -n 9 || die "another systemd $driver run holds $run/.lock"
"$TOPDIR/scripts/rootfs.sh" image "$run/rootfs.img" "$kdir" "$stub" "$drv"

exec python3 "$TOPDIR/scripts/vm-run.py" --kernel "$kdir/arch/x86/boot/bzImage" \
	--drive "$run/rootfs.img" --append "meiwdt.ms_per_fw_second=$scale meiwdt.mode=$suite$stub_config" \
	--driver "$driver" --kind systemd --suite "$suite" \
	--golden-dir "$TOPDIR/qemu/golden" "${verbose[@]}"
