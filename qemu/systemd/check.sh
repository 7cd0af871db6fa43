#!/bin/bash
# mei-wdt-check.service (after multi-user.target): check that systemd, as
# PID 1, took the iamt_wdt watchdog and keeps it alive, report to the host,
# then power off. Checks:
#   systemd_watchdog_device  PID 1 logged "Using hardware watchdog 'iamt_wdt',
#                            version 2, device /dev/iamt_watchdog" and set
#                            the 120 s timeout; udev's link is the iamt_wdt
#                            device
#   systemd_keepalive        the firmware saw start-request timeout=120
#                            when PID 1 opened the device (two: the
#                            WDIOC_SETTIMEOUT ping and systemd's first
#                            WDIOC_KEEPALIVE), then a keepalive, each
#                            answered, and no timer expiry. systemd 252 pings
#                            on a turn of its event loop once a quarter of
#                            the timeout (30 s) has passed, and wakes up for
#                            it at half of it (60 s): on this idle system,
#                            60 s. The interval, measured from poll.sh's
#                            timestamps (0.2 s resolution), must be at least
#                            25 s and less than the firmware timeout (72 s at
#                            600 ms per firmware second), so a late ping
#                            shows up as an expiry.
# The power-off check is mei-wdt-final's (a systemd-shutdown hook).
# shellcheck source=qemu/systemd/lib.sh
source /usr/local/lib/mei-wdt/lib.sh
open_results

driver=$(cmdline_arg meiwdt.driver "?")
mode=$(cmdline_arg meiwdt.mode systemd)
case $mode in shutdown_*) exec /usr/local/lib/mei-wdt/shutdown.sh "$mode" ;; esac
scale=$(cmdline_arg meiwdt.ms_per_fw_second 1000)
fw_timeout=$((120 * scale / 1000)) # the firmware timer, in guest seconds
say "LOG driver $driver, kernel $(uname -r), $(systemctl --version | head -1)"

# Boot time, from PID 1's own timestamps (monotonic, from kernel start).
pid1=$(systemctl show -P UserspaceTimestampMonotonic)
multi=$(systemctl show -P ActiveEnterTimestampMonotonic multi-user.target)
say "LOG boot: kernel start to PID 1 $(secs "$pid1") s, to multi-user.target $(secs "$multi") s"

# --- systemd_watchdog_device
journal=$(journalctl -b -q --no-pager -o short-monotonic)
want="Using hardware watchdog 'iamt_wdt', version 2, device /dev/iamt_watchdog"
dev=$(readlink /dev/iamt_watchdog)
ident=$(cat "/sys/class/watchdog/${dev##*/}/identity" 2>/dev/null)
running=$(grep -F "Watchdog running with a hardware timeout of" <<<"$journal" | head -1)
if ! grep -qF "$want" <<<"$journal"; then
	got=$(grep -i -m1 "hardware watchdog" <<<"$journal")
	result systemd_watchdog_device 0 "no \"$want\" in the journal${got:+; got: $got}"
elif [ "$ident" != iamt_wdt ]; then
	result systemd_watchdog_device 0 "/dev/iamt_watchdog -> $dev has identity '$ident'"
elif ! grep -q "hardware timeout of 2min\.$" <<<"$running"; then
	result systemd_watchdog_device 0 "timeout not set to 2min: ${running:-no \"Watchdog running\" message}"
else
	result systemd_watchdog_device 1
	say "LOG /dev/iamt_watchdog is $dev; PID 1: ${running#*systemd\[1\]: }"
fi

# --- systemd_keepalive
# poll.sh's times of systemd's start-requests: those after the probe's.
# Opening the device gives two at once (WDIOC_SETTIMEOUT pings, then
# systemd's own WDIOC_KEEPALIVE); the keepalive is the next one, after a
# gap of half the timeout.
start_times() {
	awk -v p="$probe" '$2 == "start" && $3 > p { print $1 }' "$STATE/events" 2>/dev/null
}
# keepalive: "<previous> <keepalive>" for the first gap of more than 5 s.
keepalive() {
	start_times | awk 'NR > 1 && $1 - prev > 5 { print prev, $1; exit } { prev = $1 }'
}
now_s() { awk '{ print int($1) }' /proc/uptime; }

dir=$(stub_dir)
trace=$dir/trace
# Start-requests of the probe, up to its stop-request.
probe=$(host_requests "$trace" | sed '/^stop$/q' | grep -c '^start')
first=
for _ in $(seq 30); do
	first=$(start_times | head -1)
	[ -n "$first" ] && break
	sleep 1
done
pair=
if [ -n "$first" ]; then
	# systemd pings again 60 s after opening; allow TCG some slack.
	limit=$(awk -v t="$first" 'BEGIN { print int(t) + 100 }')
	while [ "$(now_s)" -le "$limit" ]; do
		pair=$(keepalive)
		[ -n "$pair" ] && break
		sleep 1
	done
fi
opening=$(start_times | awk -v t="$first" '$1 - t <= 5' | wc -l)
reqs=$(host_requests "$trace" | after_probe)
timer=$(<"$dir/timer")
nstart=$(grep -c '^start' <<<"$reqs")
nanswer=$(grep -c '^answer' <<<"$reqs")
nexpired=$(grep -c '^expired$' <<<"$reqs")
others=$(grep -v -e '^start 120$' -e '^answer$' -e '^expired$' <<<"$reqs" | sort | uniq -c | xargs)
interval=
if [ -n "$pair" ]; then
	read -r prev second <<<"$pair"
	interval=$(awk -v a="$prev" -v b="$second" 'BEGIN { printf "%.1f", b - a }')
fi
if [ -z "$first" ]; then
	result systemd_keepalive 0 "no start-request from systemd within 30 s of the check (trace after probe: $(xargs <<<"$reqs"))"
elif [ "$(head -1 <<<"$reqs")" != "start 120" ]; then
	result systemd_keepalive 0 "first request after the probe is '$(head -1 <<<"$reqs")', not 'start 120'"
elif [ "$nexpired" != 0 ]; then
	result systemd_keepalive 0 "firmware timer expired ($timer; firmware timeout ${fw_timeout} s, ping interval ${interval:-unknown} s)"
elif [ -z "$pair" ]; then
	result systemd_keepalive 0 "no keepalive within 100 s of the first start-request at ${first} s"
elif [ -n "$others" ]; then
	result systemd_keepalive 0 "unexpected in the trace after the probe: $others"
elif [ "$nanswer" != "$nstart" ]; then
	result systemd_keepalive 0 "$nstart start-requests but $nanswer start-responses"
elif [ "${timer% starts=*}" != "state=armed timeout=120 expired=0" ]; then
	result systemd_keepalive 0 "firmware timer: $timer"
elif ! awk -v i="$interval" -v t="$fw_timeout" 'BEGIN { exit !(i >= 25 && i < t) }'; then
	result systemd_keepalive 0 "ping interval $interval s, not in [25 s, firmware timeout ${fw_timeout} s)"
else
	result systemd_keepalive 1
fi
if [ -n "$interval" ]; then
	first_logged=$(sed -n 's/^\[ *\([0-9.]*\)\].*/\1/p' <<<"$running")
	say "LOG ping interval $interval s: opened at ${first} s with $opening start-requests (PID 1 logged it at ${first_logged:-?} s), keepalive at ${second} s (uptime; firmware timeout ${fw_timeout} s at ${scale} ms/s)"
fi

finish=$(systemctl show -P FinishTimestampMonotonic)
[ "${finish:-0}" = 0 ] || say "LOG boot: PID 1 finished starting up at $(secs "$finish") s"
say "LOG powering off (systemctl poweroff)"
systemctl poweroff --no-block
