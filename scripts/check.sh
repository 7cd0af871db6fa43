#!/bin/bash
# The project's test command: static checks, host tests, every VM suite
# for both drivers on the release and debug kernels of both kernel lines
# (6.12 and 7.3), the systemd VM (consumers, on 7.3) for both drivers and
# the benchmark's short form (on 6.12). Prints each part's results and ends
# with the summed line "N passed, N failed".
#
# The VM parts run two at a time (every bound in the guest is set for a
# busy machine), after every kernel is built.
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

# start_part NAME CMD...: run a part in the background, its output and
# its end time in files of its own, once fewer than CHECK_JOBS parts run
# (two: one per host core; no barrier between kernels, so a core that
# finished its part takes the next one).
CHECK_JOBS=${CHECK_JOBS:-2}
bg_names=()
bg_pids=()
bg_starts=()
bg_next=0
start_part() {
	local name=$1 i=${#bg_names[@]}
	shift
	while (($(running_parts) >= CHECK_JOBS)); do
		report_finished
		sleep 1
	done
	echo "== started: $name"
	bg_names[i]=$name
	bg_starts[i]=$(date +%s)
	(
		"$@"
		rc=$?
		date +%s >"$log.$i.end"
		exit "$rc"
	) >"$log.$i" 2>&1 &
	bg_pids[i]=$!
}

# running_parts: how many parts started have not ended (the ones reported
# have ended, and their files are gone).
running_parts() {
	local i n=0
	for ((i = bg_next; i < ${#bg_names[@]}; i++)); do
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
	bg_next=0
}

part "lint" scripts/lint.sh
part "host tests" scripts/host-test.sh
kernels=${CHECK_KERNELS:-6.12-release 6.12-debug 7.3-release 7.3-debug}
# Every kernel first, one at a time: a build takes both cores, and no VM
# should run beside one.
for kernel in $kernels; do
	scripts/kernel.sh build "$kernel" >/dev/null || echo "check: the $kernel kernel did not build (its parts will say)"
done
# Longest first, so that no long part starts last while a core idles: the
# debug suites (the newer line's are the longest), the systemd VMs (they
# mostly wait for systemd's 60 s ping interval; their check, an interval
# in [25 s, 72 s), has room), then the release suites.
debug_kernels='' release_kernels=''
for kernel in $kernels; do
	case "$kernel" in
	*-debug) debug_kernels="$kernel $debug_kernels" ;;
	*) release_kernels="$kernel $release_kernels" ;;
	esac
done
for kernel in $debug_kernels; do
	for driver in ${CHECK_DRIVERS:-rust c}; do
		start_part "vm $driver $kernel" scripts/vm-test.sh "$driver" "$kernel" all
	done
done
for driver in ${CHECK_DRIVERS:-rust c}; do
	start_part "consumers $driver" scripts/consumers-test.sh "$driver"
done
for kernel in $release_kernels; do
	for driver in ${CHECK_DRIVERS:-rust c}; do
		start_part "vm $driver $kernel" scripts/vm-test.sh "$driver" "$kernel" all
	done
done
# Beside the last ones, the benchmark's short form: it checks that every
# figure is measured, not what it is.
bench_out=$(mktemp -d)
CHECK_JOBS=3 start_part "bench smoke 6.12" scripts/bench.sh --line 6.12 --quick --out "$bench_out"
finish_parts
rm -rf "$bench_out"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
