#!/bin/bash
# Build an out-of-tree module for a test kernel, in a cache copy of its
# source folder (one per kernel, so release and debug builds never mix).
#
#   build-module.sh SRC_DIR KDIR [make args...]   prints the built .ko path(s)
set -euo pipefail
source "$(dirname "$0")/common.sh"

src=$(cd "$1" && pwd)
kdir=$2
shift 2
out="$CACHE_DIR/modules/$(basename "$kdir")/$(basename "$src")"
mkdir -p "$out"
exec 7>"$out.lock"
flock 7
rsync -a --delete --exclude '*.o' --exclude '*.ko' --exclude '.*.cmd' \
	--exclude '*_generated.rs' --exclude '*.mod*' --exclude 'modules.order' \
	--exclude 'Module.symvers' --exclude '*.d' --exclude 'target' \
	"$src/" "$out/" >&2
make -C "$kdir" M="$out" LLVM=1 -j"$(nproc)" "$@" modules >&2
ls "$out"/*.ko
