#!/bin/bash
# Build (or reuse) a test kernel from the Debian 6.12 source.
#
#   kernel.sh build release|debug|systemd|bench   build if not cached, print the build dir
#   kernel.sh dir release|debug|systemd|bench     print the build dir, fail if not built
#
# Cache: $CACHE_DIR/kernel-<version>-<flavor>-<hash>/ where the hash covers
# the config fragments, the build recipe (RECIPE below) and the toolchain. A lock makes two
# concurrent builds of the same kernel wait for each other.
set -euo pipefail
source "$(dirname "$0")/common.sh"

# Bump when the build steps below change, so cached kernels are rebuilt.
RECIPE="tinyconfig+merge_config+olddefconfig; bzImage modules; LLVM=1 x86_64; v1"

cmd=${1:-}
flavor=${2:-release}
case "$flavor" in
release) fragments=(qemu/kconfig/release.config) ;;
debug) fragments=(qemu/kconfig/release.config qemu/kconfig/debug.config) ;;
systemd) fragments=(qemu/kconfig/release.config qemu/kconfig/systemd.config) ;;
bench) fragments=(qemu/kconfig/release.config qemu/kconfig/bench.config) ;;
*) die "unknown kernel flavor '$flavor' (release, debug, systemd or bench)" ;;
esac

check_tools() {
	require_tool clang clang-16
	require_tool ld.lld lld-16
	require_tool llvm-ar llvm-16
	require_tool rustc "the Rust toolchain (rustup)"
	require_tool bindgen "bindgen-cli (cargo install --locked bindgen-cli)"
	require_tool flex flex
	require_tool bison bison
	require_tool bc bc
	require_tool xz xz-utils
	[ -e /usr/include/libelf.h ] || die "libelf.h not found; install libelf-dev"
	[ -e /usr/include/openssl/ssl.h ] || die "openssl headers not found; install libssl-dev"
	[ -f "$KERNEL_TARBALL" ] || die "$KERNEL_TARBALL not found; install linux-source-6.12"
}

# Unpack the Debian source once per package version.
source_dir() {
	local ver src tmp
	ver=$(kernel_pkg_version)
	src="$CACHE_DIR/src/linux-$ver"
	mkdir -p "$CACHE_DIR/src"
	exec 8>"$CACHE_DIR/src/.lock"
	flock 8
	if [ ! -f "$src/.unpacked" ]; then
		echo "kernel: unpacking $KERNEL_TARBALL" >&2
		tmp=$(mktemp -d "$CACHE_DIR/src/.tmp.XXXXXX")
		tar -xJf "$KERNEL_TARBALL" -C "$tmp"
		rm -rf "$src"
		mv "$tmp"/linux-source-6.12 "$src"
		rmdir "$tmp"
		touch "$src/.unpacked"
	fi
	flock -u 8
	# kernel::ffi (ctypes prefix ffi) appeared in 6.12.19.
	local sub
	sub=$(sed -n 's/^SUBLEVEL = //p' "$src/Makefile")
	if [ "$(sed -n 's/^PATCHLEVEL = //p' "$src/Makefile")" != 12 ] || ((sub < 19)); then
		die "kernel source 6.12.$sub is older than 6.12.19 (no kernel::ffi); install a newer linux-source-6.12"
	fi
	echo "$src"
}

build_dir() {
	local hash
	hash=$(cd "$TOPDIR" && {
		cat "${fragments[@]}"
		echo "$RECIPE"
		toolchain_id
	} | sha256sum | cut -c1-12)
	echo "$CACHE_DIR/kernel-$(kernel_pkg_version)-$flavor-$hash"
}

case "$cmd" in
dir)
	out=$(build_dir)
	[ -f "$out/.built" ] || die "$flavor kernel not built; run 'make kernel'"
	echo "$out"
	;;
build)
	check_tools
	src=$(source_dir)
	out=$(build_dir)
	if locked_build "$out"; then
		echo "$out"
		exit 0
	fi
	mkdir -p "$out"
	echo "kernel: building $flavor kernel in $out" >&2
	start=$(date +%s)
	mk=(make -C "$src" O="$out" LLVM=1 ARCH=x86_64 -j"$(nproc)")
	if ! "${mk[@]}" rustavailable >&2; then
		die "the kernel does not accept this Rust toolchain (see above); run 'make setup'"
	fi
	"${mk[@]}" -s tinyconfig >&2
	(cd "$TOPDIR" && "$src/scripts/kconfig/merge_config.sh" -m -O "$out" \
		"$out/.config" "${fragments[@]}") >/dev/null
	"${mk[@]}" -s olddefconfig >&2
	# Every option the fragments ask for must have survived olddefconfig.
	missing=0
	while IFS= read -r line; do
		case "$line" in
		CONFIG_*=*) grep -qxF "$line" "$out/.config" || { echo "kernel: $line not applied" >&2; missing=1; } ;;
		"# CONFIG_"*" is not set") grep -qxF "$line" "$out/.config" || { echo "kernel: '$line' not applied" >&2; missing=1; } ;;
		esac
	done < <(cd "$TOPDIR" && cat "${fragments[@]}")
	((missing == 0)) || die "kernel config fragment not fully applied (missing dependencies?)"
	"${mk[@]}" -s bzImage modules >&2
	touch "$out/.built"
	echo "kernel: $flavor built in $(($(date +%s) - start)) s" >&2
	echo "$out"
	;;
*) die "usage: kernel.sh build|dir release|debug|systemd|bench" ;;
esac
