#!/bin/bash
# check.sh runs this instead of its own checks when the kernel command line
# has meiwdt.mode=shutdown_*: the ME goes silent around a shutdown, the way
# users report "reboot hangs with iamt_wdt loaded". A silent ME drops every
# answer and completes no write of the host (fault=drop, write_fault=late
# with an hour's delay).
#   shutdown_silent  PID 1 drives the watchdog; the ME goes silent; then
#                    `systemctl poweroff`: PID 1 disarms the watchdog on its
#                    way down, a stop-request the ME never takes.
#   shutdown_reset   as shutdown_silent, and an ME link reset during the
#                    shutdown (the stop job of a unit made for it).
#   shutdown_reboot  PID 1 leaves the watchdog alone (systemd.watchdog_sec=
#                    off), busybox watchdog holds it open, the ME goes
#                    silent, then `systemctl reboot
#                    -ff` (reboot(2) at once): the watchdog core's stop on
#                    reboot sends the stop-request.
# Says "SHUTDOWN <mode>" to the host just before; the host judges whether
# and when the machine went down, and what the driver logged (vm-run.py,
# SHUTDOWN_BOUND).
# shellcheck source=qemu/systemd/lib.sh
source /usr/local/lib/mei-wdt/lib.sh
open_results

mode=$1
dir=$(stub_dir) || {
	say "RESULT $mode FAIL no ME stub device"
	systemctl poweroff --no-block
	exit 0
}
# PID 1 has opened the watchdog: its first start-request after the probe
# (shutdown_reboot boots with systemd.watchdog_sec=off: PID 1 leaves it).
[ "$mode" = shutdown_reboot ] || for _ in $(seq 60); do
	host_requests "$dir/trace" | after_probe | grep -q '^start' && break
	sleep 0.5
done
# holders NODE: "comm[pid]" of each process with NODE open.
holders() {
	local f pid
	for f in /proc/[0-9]*/fd/*; do
		[ "$(readlink "$f" 2>/dev/null)" = "$1" ] || continue
		pid=${f#/proc/}
		pid=${pid%%/*}
		echo "$(cat "/proc/$pid/comm")[$pid]"
	done | sort -u | xargs
}
silent() {
	echo "fault=drop write_fault=late write_late_ms=3600000" >"$dir/config"
}
case $mode in
shutdown_silent)
	silent
	say "LOG the ME is silent; systemctl poweroff"
	say "SHUTDOWN $mode"
	systemctl poweroff --no-block
	;;
shutdown_reset)
	silent
	systemd-run --quiet --unit=mei-wdt-reset-at-stop -p RemainAfterExit=yes \
		-p "ExecStop=/bin/sh -c 'echo reset >$dir/ctl'" /bin/true
	say "LOG the ME is silent, and resets its link when mei-wdt-reset-at-stop stops; systemctl poweroff"
	say "SHUTDOWN $mode"
	systemctl poweroff --no-block
	;;
shutdown_reboot)
	node=/dev/$(readlink /dev/iamt_watchdog)
	for _ in $(seq 20); do
		busybox watchdog -T 120 -t 30 "$node" 2>/dev/null && break
		sleep 0.5
	done
	sleep 1
	holders=$(holders "$node")
	silent
	say "LOG $node is open by: ${holders:-nobody}; the ME is silent; systemctl reboot -ff"
	say "SHUTDOWN $mode"
	systemctl reboot -ff
	;;
*)
	say "RESULT $mode FAIL unknown mode"
	systemctl poweroff --no-block
	;;
esac
