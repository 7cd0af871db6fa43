#!/bin/bash
# The project's test command: static checks, host tests, every VM suite
# for both drivers on the release and debug kernels of both kernel lines
# (6.12 and 7.3) and on Debian 13's own kernel, the C probe race on two
# vCPUs (smp_probe_race), the stress on 7.3's data-race (KCSAN) kernel,
# the systemd VM (consumers, on 7.3) and its shutdowns with a silent ME for
# both drivers and the benchmark's short form (on 6.12). Prints each part's results and ends
# with the summed line "N passed, N failed".
#
# The VM parts and the static checks run three at a time, at most two of
# them on a debug kernel (every bound in the guest is set for a busy
# machine), after every kernel is built.
set -uo pipefail
source "$(dirname "$0")/common.sh"
cd "$TOPDIR" || exit 1

"$TOPDIR/scripts/setup.sh" || die "setup failed"

passed=0
failed=0
log=$(mktemp)
trap 'rm -f "$log" "$log".*' EXIT

# count LOG: add a part's "N passed, N failed" (or cargo's summary) to the
# totals; a part that printed none counts as one failure.
count() {
	local p f line
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$1" | tail -1)
	if [ -n "$line" ]; then
		read -r p _ f _ <<<"$line"
	elif grep -q '^test result:' "$1"; then
		p=$(sed -n 's/^test result: [a-zA-Z]*\. \([0-9]*\) passed; \([0-9]*\) failed.*/\1/p' "$1" | paste -sd+ | bc)
		f=$(sed -n 's/^test result: [a-zA-Z]*\. \([0-9]*\) passed; \([0-9]*\) failed.*/\2/p' "$1" | paste -sd+ | bc)
	else
		p=0 f=1
	fi
	# A part that exited non-zero failed even if its counts say otherwise.
	if [ "$2" != 0 ] && [ "$f" = 0 ]; then f=1; fi
	passed=$((passed + p))
	failed=$((failed + f))
	echo "== $3: $p passed, $f failed ($4 s)"
}

part() {
	local name=$1 start rc
	shift
	echo "== $name"
	start=$(date +%s)
	"$@" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	count "$log" "$rc" "$name" $(($(date +%s) - start))
}

# The VM parts run from a queue, at most CHECK_JOBS at a time and at most
# CHECK_HEAVY_JOBS heavy ones (the debug kernels' suites, which keep a host
# core busy all along); the others (release-kernel suites, the systemd VMs,
# the benchmark's smoke run) spend much of their time waiting for the
# stub's and systemd's clocks, so a third one fills the cores. A part
# that frees a slot gives it to the first queued part that may start.
CHECK_JOBS=${CHECK_JOBS:-3}
CHECK_HEAVY_JOBS=${CHECK_HEAVY_JOBS:-2}
bg_names=()
bg_pids=()
bg_starts=()
bg_heavy=()
bg_next=0
queue_names=()
queue_cmds=()
queue_heavy=()

# queue_part heavy|light NAME CMD...: queue a part (CMD's words have no
# spaces).
queue_part() {
	queue_heavy+=("$1")
	queue_names+=("$2")
	shift 2
	queue_cmds+=("$*")
}

# start_queued: start the first queued part that may start now, if any.
start_queued() {
	local q running heavy
	running=$(running_parts)
	heavy=$(running_parts heavy)
	((running < CHECK_JOBS)) || return 1
	for q in "${!queue_names[@]}"; do
		[ "${queue_heavy[q]}" != heavy ] || ((heavy < CHECK_HEAVY_JOBS)) || continue
		# shellcheck disable=SC2086 # the queued command's words
		start_part "${queue_heavy[q]}" "${queue_names[q]}" ${queue_cmds[q]}
		unset 'queue_names[q]' 'queue_cmds[q]' 'queue_heavy[q]'
		return 0
	done
	return 1
}

# run_queue: run every queued part, printing each as it ends (in the order
# started).
run_queue() {
	while ((${#queue_names[@]})); do
		start_queued && continue
		report_finished
		sleep 1
	done
	finish_parts
}

# start_part heavy|light NAME CMD...: run a part in the background, its
# output and its end time in files of its own.
start_part() {
	local i=${#bg_names[@]}
	bg_heavy[i]=$1
	bg_names[i]=$2
	shift 2
	echo "== started: ${bg_names[i]}"
	bg_starts[i]=$(date +%s)
	(
		"$@"
		rc=$?
		date +%s >"$log.$i.end"
		exit "$rc"
	) >"$log.$i" 2>&1 &
	bg_pids[i]=$!
}

# running_parts [heavy]: how many parts (heavy ones) started have not
# ended (the ones reported have ended, and their files are gone).
running_parts() {
	local i n=0
	for ((i = bg_next; i < ${#bg_names[@]}; i++)); do
		[ -z "${1:-}" ] || [ "${bg_heavy[i]}" = "$1" ] || continue
		[ -e "$log.$i.end" ] || n=$((n + 1))
	done
	echo "$n"
}

# report_finished: print and count the parts that have ended, in the order
# started (a part waits for the ones before it).
report_finished() {
	local i rc
	while ((bg_next < ${#bg_names[@]})) && [ -e "$log.$bg_next.end" ]; do
		i=$bg_next
		wait "${bg_pids[i]}"
		rc=$?
		echo "== ${bg_names[i]}"
		cat "$log.$i"
		count "$log.$i" "$rc" "${bg_names[i]}" $(($(cat "$log.$i.end") - bg_starts[i]))
		rm -f "$log.$i" "$log.$i.end"
		bg_next=$((i + 1))
	done
}

# finish_parts: wait for every part started, printing each as above.
finish_parts() {
	while ((bg_next < ${#bg_names[@]})); do
		report_finished
		sleep 1
	done
	bg_names=()
	bg_pids=()
	bg_starts=()
	bg_heavy=()
	bg_next=0
}

part "host tests" scripts/host-test.sh
kernels=${CHECK_KERNELS:-6.12-release 6.12-debug 7.3-release 7.3-debug 7.3-kcsan debian}
# Every kernel first, one at a time: a build takes both cores, and no VM
# should run beside one. For Debian's kernel (unpacked, not built), the
# Debian 13 environment, the Rust output for Debian's headers and the
# modules built there.
# Lint builds the modules against every line's release kernel.
build_kernels=$kernels
for line in $(scripts/kernel.sh lines); do
	[[ " $build_kernels " == *" $line-release "* ]] || build_kernels="$build_kernels $line-release"
done
for kernel in $build_kernels; do
	case "$kernel" in
	debian) scripts/debian-kernel.sh build >/dev/null && scripts/debian-kernel.sh modules >/dev/null ;;
	*) scripts/kernel.sh build "$kernel" >/dev/null ;;
	esac || echo "check: the $kernel kernel or its modules did not build (its parts will say)"
done
# Longest first, so that no long part starts last while a core idles: the
# KCSAN stress, the debug suites (the newer line's are the longest), the
# systemd VMs (they mostly wait for systemd's 60 s ping interval; their
# check, an interval in [25 s, 72 s), has room), then the release suites
# and the benchmark's short form (it checks that every figure is
# measured, not what it is).
debug_kernels='' kcsan_kernels='' release_kernels=''
for kernel in $kernels; do
	case "$kernel" in
	*-debug) debug_kernels="$kernel $debug_kernels" ;;
	*-kcsan) kcsan_kernels="$kernel $kcsan_kernels" ;;
	*) release_kernels="$kernel $release_kernels" ;;
	esac
done
# The stress on the data-race kernel (KCSAN; vm-run.py's test `kcsan`),
# C's first: under KCSAN its load crawls, and it is the longest part.
for kernel in $kcsan_kernels; do
	for driver in ${CHECK_DRIVERS:-c rust}; do
		queue_part heavy "vm $driver $kernel stress_two_devices" scripts/vm-test.sh "$driver" "$kernel" stress_two_devices
	done
done
for kernel in $debug_kernels; do
	for driver in ${CHECK_DRIVERS:-rust c}; do
		queue_part heavy "vm $driver $kernel" scripts/vm-test.sh "$driver" "$kernel" all
	done
done
# The C driver's probe race on two vCPUs, in boots of their own (KASAN's
# report is C's expected outcome there; vm-run.py's SCENARIO_BOOTS).
for kernel in $debug_kernels; do
	for driver in ${CHECK_DRIVERS:-rust c}; do
		queue_part heavy "vm $driver $kernel smp_probe_race" scripts/vm-test.sh "$driver" "$kernel" smp_probe_race
	done
done
for driver in ${CHECK_DRIVERS:-rust c}; do
	queue_part light "consumers $driver" scripts/consumers-test.sh "$driver"
	for suite in shutdown_silent shutdown_reset shutdown_reboot; do
		queue_part light "consumers $driver $suite" scripts/consumers-test.sh "$driver" "$suite"
	done
done
for kernel in $release_kernels; do
	for driver in ${CHECK_DRIVERS:-rust c}; do
		queue_part light "vm $driver $kernel" scripts/vm-test.sh "$driver" "$kernel" all
	done
done
# The static checks: mostly one rustc at a time, so they fill a core in
# the queue rather than leave one idle before it.
queue_part light "lint" scripts/lint.sh
bench_out=$(mktemp -d)
queue_part light "bench smoke 6.12" scripts/bench.sh --line 6.12 --quick --out "$bench_out"
run_queue
rm -rf "$bench_out"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
