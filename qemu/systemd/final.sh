#!/bin/bash
# /usr/lib/systemd/system-shutdown/mei-wdt-final: systemd-shutdown runs it
# just before the power-off, after PID 1 has closed the watchdog (disarmed:
# WDIOS_DISABLECARD and the magic close) and every process is gone. Check:
#   systemd_poweroff_disarm  the last request the firmware saw is a
#                            stop-request, after systemd's start-requests;
#                            no firmware timer expiry, timer idle; the
#                            kernel did not report "watchdog did not stop"
# then send the trace and DONE to the host.
# shellcheck source=qemu/systemd/lib.sh
source /usr/local/lib/mei-wdt/lib.sh
open_results

mountpoint -q /sys/kernel/debug || mount -t debugfs debugfs /sys/kernel/debug
if ! dir=$(stub_dir); then
	result systemd_poweroff_disarm 0 "no ME stub device at shutdown"
	say DONE
	exit 0
fi
mode=$(cmdline_arg meiwdt.mode systemd)
case $mode in shutdown_*)
	# shutdown.sh's suites: the host judges the shutdown and the kernel log.
	say DONE
	exit 0
	;;
esac
reqs=$(host_requests "$dir/trace" | after_probe)
timer=$(<"$dir/timer")
last=$(grep -v '^answer$' <<<"$reqs" | tail -1)
nstart=$(grep -c '^start' <<<"$reqs")
notstop=$(dmesg | grep -m1 "did not stop")
if grep -q '^expired$' <<<"$reqs"; then
	result systemd_poweroff_disarm 0 "firmware timer expired ($timer)"
elif [ "$nstart" = 0 ]; then
	result systemd_poweroff_disarm 0 "systemd never started the watchdog"
elif [ "$last" != stop ]; then
	result systemd_poweroff_disarm 0 "last request before power-off is '${last:-none}', not a stop-request"
elif [ "${timer%% *}" != state=idle ] || ! grep -qw expired=0 <<<"$timer"; then
	result systemd_poweroff_disarm 0 "firmware timer after power-off: $timer"
elif [ -n "$notstop" ]; then
	result systemd_poweroff_disarm 0 "kernel: $notstop"
else
	result systemd_poweroff_disarm 1
fi
say "LOG at power-off: $nstart start-requests from systemd, then '$last'; firmware timer $timer"
say "TRACE systemd_final BEGIN"
while IFS= read -r l; do say "$l"; done <"$dir/trace"
say "timer: $timer"
[ -s "$STATE/events" ] && while IFS= read -r l; do say "event: $l"; done <"$STATE/events"
say "TRACE systemd_final END"
say DONE
