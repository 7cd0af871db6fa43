#!/bin/bash
# Static checks: rustfmt, clippy and compiler warnings (kernel modules and
# host crates), no `unsafe` in the driver file, a SAFETY comment on every
# `unsafe` block and impl, shellcheck on the scripts. One result line per check, then
# "N passed, N failed".
set -uo pipefail
source "$(dirname "$0")/common.sh"
cd "$TOPDIR" || exit 1

passed=0
failed=0
result() {
	if [ "$2" = 0 ]; then
		echo "PASS $1"
		passed=$((passed + 1))
	else
		echo "FAIL $1"
		failed=$((failed + 1))
	fi
}

roots=(mei_wdt.rs qemu/mestub/mei_stub.rs qemu/mestub/host.rs proto-test/lib.rs qemu/guest/src/main.rs)
out=$(rustfmt --check --edition 2021 --config-path rustfmt.toml "${roots[@]}" 2>&1)
rc=$?
((rc == 0)) || head -20 <<<"$out"
result rustfmt "$rc"

n=$(grep -c unsafe mei_wdt.rs)
[ "$n" = 0 ] || echo "mei_wdt.rs mentions unsafe $n times"
result no-unsafe-in-driver "$n"

# Every `unsafe {` block and `unsafe impl` has a `// SAFETY:` comment in the
# lines just above it (or on the same line).
mapfile -t abstractions < <(find abstractions -name "*.rs")
missing=$(awk '
	FNR == 1 { last = 0 }
	/^[[:space:]]*\/\/ SAFETY:/ { last = FNR }
	/unsafe (\{|impl)/ && !/^[[:space:]]*\/\// {
		if (!(last && FNR - last <= 3) && $0 !~ /SAFETY/) print FILENAME ":" FNR ": " $0
	}
' "${abstractions[@]}" qemu/mestub/mei_stub.rs qemu/guest/src/*.rs)
[ -z "$missing" ] || echo "$missing"
result safety-comments "$([ -z "$missing" ]; echo $?)"

# Each kernel line compiles its own parts of the abstractions.
for line in $(scripts/kernel.sh lines); do
	kdir=$(scripts/kernel.sh build "$line-release")
	for dir in . qemu/mestub; do
		out=$(REBUILD=1 scripts/build-module.sh "$kdir" "$dir" CLIPPY=1 2>&1)
		rc=$?
		warnings=$(grep -cE '^(warning|error)' <<<"$out")
		((rc == 0 && warnings == 0)) || grep -E '^(warning|error)' -A4 <<<"$out"
		result "clippy-and-warnings $line $dir" "$((rc != 0 || warnings != 0))"
	done
done

target_dir=$(cargo_target_dir lint)
for manifest in proto-test/Cargo.toml qemu/mestub/Cargo.toml qemu/guest/Cargo.toml; do
	cargo clippy --quiet --all-targets --manifest-path "$manifest" \
		--target-dir "$target_dir" -- -D warnings
	result "cargo-clippy $manifest" $?
done

require_tool shellcheck shellcheck
shellcheck -x -P SCRIPTDIR scripts/*.sh .ci/run qemu/init qemu/systemd/*.sh
result shellcheck $?

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
