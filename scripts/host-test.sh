#!/bin/bash
# Host unit tests: the ME stub's firmware model.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$TOPDIR"
for manifest in proto-test/Cargo.toml qemu/mestub/Cargo.toml; do
	cargo test --quiet --manifest-path "$manifest" \
		--target-dir "$CACHE_DIR/cargo-host"
done
