#!/bin/bash
# The project's test command: static checks, host tests, every VM suite
# for both drivers (the C reference first) on both test kernels, then the
# systemd VM (consumers) for both drivers at once. Prints each part's results and
# ends with the summed line "N passed, N failed".
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

part "lint" scripts/lint.sh
part "host tests" scripts/host-test.sh
for kernel in release debug; do
	for driver in ${CHECK_DRIVERS:-c rust}; do
		part "vm $driver $kernel" scripts/vm-test.sh "$driver" "$kernel" all
	done
done
# The systemd VMs mostly wait for systemd's 60 s ping interval, and their
# check (an interval in [25 s, 72 s)) has room: they run side by side.
declare -A bg_start bg_pid
for driver in ${CHECK_DRIVERS:-c rust}; do
	bg_start[$driver]=$(date +%s)
	scripts/consumers-test.sh "$driver" >"$log.$driver" 2>&1 &
	bg_pid[$driver]=$!
done
for driver in ${CHECK_DRIVERS:-c rust}; do
	wait "${bg_pid[$driver]}"
	rc=$?
	end=$(date +%s)
	echo "== consumers $driver"
	cat "$log.$driver"
	count "$log.$driver" "$rc" "consumers $driver" $((end - bg_start[$driver]))
	rm -f "$log.$driver"
done

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
