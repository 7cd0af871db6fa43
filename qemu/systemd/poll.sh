#!/bin/bash
# mei-wdt-poll.service (started before the stub exists): every 0.2 s, read
# the stub's watchdog trace and append to /run/mei-wdt/events the uptime at
# which the trace first holds N start-requests or N stop-requests:
#   <uptime> start <N>
#   <uptime> stop <N>
# shellcheck source=qemu/systemd/lib.sh
source /usr/local/lib/mei-wdt/lib.sh

mkdir -p "$STATE"
events=$STATE/events
: >"$events"
until dir=$(stub_dir); do
	sleep 0.2
done
starts=0
stops=0
while :; do
	mapfile -t lines <"$dir/trace"
	read -r up _ </proc/uptime
	s=0
	p=0
	for l in "${lines[@]}"; do
		case $l in
		"host>"*"| start-request"*) s=$((s + 1)) ;;
		"host>"*"| stop-request"*) p=$((p + 1)) ;;
		esac
	done
	while ((starts < s)); do
		starts=$((starts + 1))
		echo "$up start $starts" >>"$events"
	done
	while ((stops < p)); do
		stops=$((stops + 1))
		echo "$up stop $stops" >>"$events"
	done
	sleep 0.2
done
