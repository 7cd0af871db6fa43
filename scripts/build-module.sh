#!/bin/bash
# Build one of the project's kernel modules for a test kernel, in a cache
# copy of the sources (one per kernel, so release and debug never mix and
# the checkout stays clean).
#
#   build-module.sh KDIR DIR [make args...]   prints the built .ko path(s)
#     DIR  "." for mei_wdt.ko, "qemu/mestub" for the ME stub
set -euo pipefail
source "$(dirname "$0")/common.sh"

kdir=$1
dir=$2
shift 2
use_llvm_of "$kdir"
# REBUILD=1 (lint's clippy builds, which run beside the VM parts) gets a
# tree of its own: the VM parts copy their .ko files from this one unlocked.
tree="$CACHE_DIR/${REBUILD:+lint-}modules/$(basename "$kdir")"
mkdir -p "$tree"
exec 7>"$tree.lock"
flock 7
# Sources only; build products in the copy survive for incremental builds.
# Not the bindings an in-tree `make` generated in the checkout: they are
# for the kernel that build used (another line's fail to compile).
# A file is copied when its content differs and then gets a new mtime, so
# make rebuilds from it whatever the checkout's mtimes (the copy is shared
# by every checkout). REBUILD=1 rebuilds the module in any case (clippy).
rsync -rl --checksum --delete --prune-empty-dirs --exclude '*_generated.rs' \
	--include '/Kbuild' --include '/*.rs' --include '/abstractions/***' \
	--include '/qemu/' --include '/qemu/mestub/' \
	--include '/qemu/mestub/Kbuild' --include '/qemu/mestub/*.rs' \
	--include '/qemu/mestub/*.h' --include '/qemu/mestub/bindgen_parameters' \
	--exclude '*' "$TOPDIR/" "$tree/" >&2
[ -z "${REBUILD:-}" ] || touch "$tree/$dir"/*.rs
# LLVM=1 for a kernel built with clang (the test kernels; Debian's is gcc's).
llvm=()
grep -qx 'CONFIG_CC_IS_CLANG=y' "$kdir/include/config/auto.conf" && llvm=(LLVM=1)
make -C "$kdir" M="$tree/$dir" "${llvm[@]}" -j"$(nproc)" "$@" modules >&2
ls "$tree/$dir"/*.ko
