#!/bin/bash
# Host unit tests: the protocol, the ME stub's firmware model, the guest's parsers.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$TOPDIR"
target_dir=$(cargo_target_dir host)
for manifest in proto-test/Cargo.toml qemu/mestub/Cargo.toml qemu/guest/Cargo.toml; do
	cargo test --quiet --manifest-path "$manifest" \
		--target-dir "$target_dir"
done
