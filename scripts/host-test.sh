#!/bin/bash
# Host unit tests: the protocol, the ME stub's firmware model, the guest's
# parsers, vm-run.py's judging of KCSAN reports; for the protocol also the interleaving exploration and the seeded
# fuzzing, whose figures (seeds, counts, states) are printed.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$TOPDIR"
target_dir=$(cargo_target_dir host)
cargo test --quiet --manifest-path proto-test/Cargo.toml --target-dir "$target_dir" \
	-- --show-output
for manifest in qemu/mestub/Cargo.toml qemu/guest/Cargo.toml; do
	cargo test --quiet --manifest-path "$manifest" \
		--target-dir "$target_dir"
done
python3 scripts/vm_run_test.py
