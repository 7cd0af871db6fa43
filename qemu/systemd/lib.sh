# Shared by the systemd test's guest scripts (sourced; bash).
# shellcheck shell=bash
# Results go to the host on ttyS1 in vm-run.py's protocol:
#   RESULT <name> PASS|FAIL <reason>, LOG <text>, TRACE <name> BEGIN..END, DONE
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RESULTS=/dev/ttyS1
# shellcheck disable=SC2034 # used by the scripts that source this
STATE=/run/mei-wdt # poll.sh's timestamps
STUB=/sys/kernel/debug/mei_stub

# cmdline_arg NAME DEFAULT: the value of NAME= on the kernel command line.
cmdline_arg() {
	local a
	for a in $(</proc/cmdline); do
		case $a in "$1"=*)
			echo "${a#*=}"
			return
			;;
		esac
	done
	echo "$2"
}

# open_results: fd 3 writes to the host, raw (no \r\n translation).
open_results() {
	stty -F "$RESULTS" raw -echo 2>/dev/null
	exec 3>"$RESULTS"
}

say() { printf '%s\n' "$*" >&3; }

# result NAME OK REASON...: OK is 1 (PASS) or 0 (FAIL).
result() {
	local name=$1 ok=$2
	shift 2
	if [ "$ok" = 1 ]; then
		say "RESULT $name PASS $*"
	else
		say "RESULT $name FAIL $*"
	fi
}

# stub_dir: the stub's first (only) ME device directory in debugfs.
stub_dir() {
	local d
	for d in "$STUB"/me*; do
		[ -f "$d/trace" ] && echo "$d" && return 0
	done
	return 1
}

# host_requests TRACE: the watchdog requests the host sent, one a line:
# "start <timeout>" or "stop"; "answer" for each start response and
# "expired" for each firmware timer expiry, in trace order.
host_requests() {
	local l
	while IFS= read -r l; do
		case $l in
		"host>"*"| start-request timeout="*) echo "start ${l##*timeout=}" ;;
		"host>"*"| stop-request"*) echo stop ;;
		"fw<"*"| start-response"*) echo answer ;;
		"fw: timer expired"*) echo expired ;;
		esac
	done <"$1"
}

# after_probe: host_requests on stdin minus the driver's probe, which pings
# the firmware (start + stop) before registering the watchdog device.
after_probe() {
	sed '1,/^stop$/d'
}

# secs USEC: microseconds as seconds with one decimal.
secs() { awk -v u="$1" 'BEGIN { printf "%.1f", u / 1e6 }'; }
