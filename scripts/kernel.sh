#!/bin/bash
# Build (or reuse) a test kernel from Debian's kernel source.
#
#   kernel.sh build [LINE-]FLAVOR   build if not cached, print the build dir
#   kernel.sh dir [LINE-]FLAVOR     print the build dir, fail if not built
#   kernel.sh lines                 print the supported lines
#   kernel.sh source LINE-FLAVOR    unpack the line's source if needed, print it
#
# LINE is 6.12 (the default, so "release" is "6.12-release") or 7.3;
# FLAVOR is release (the scenarios, the benchmark and, on SYSTEMD_LINE,
# the systemd VM), debug (release plus the kernel's checkers) or kcsan
# (release plus the data-race detector, which excludes KASAN).
#   6.12  Debian 12's linux-source-6.12, built with LLVM 16
#   7.3   Debian 13's linux-source-7.3 (trixie-backports, fetched into the
#         cache by scripts/debian-pkg.sh), built with LLVM 19: 7.3 needs
#         LLVM >= 17.0.1. Both lines use the pinned rustc and bindgen.
#
# Cache: $CACHE_DIR/kernel-<version>-<flavor>-<hash>/ where the hash covers
# the config fragments, the build recipe (RECIPE below) and the toolchain. A
# lock makes two concurrent builds of the same kernel wait for each other.
set -euo pipefail
source "$(dirname "$0")/common.sh"

# Bump when the build steps below change, so cached kernels are rebuilt.
RECIPE="tinyconfig+merge_config+olddefconfig; bzImage modules; LLVM=1 x86_64; v1"
LINES=(6.12 7.3)

cmd=${1:-}
spec=${2:-release}
case "$spec" in
*-*) line=${spec%%-*} flavor=${spec#*-} ;;
*) line=6.12 flavor=$spec ;;
esac
case "$line" in
6.12) llvm=16 pkg=linux-source-6.12 min_sublevel=19 ;;
7.3) llvm=19 pkg=linux-source-7.3 min_sublevel=0 ;;
*) die "unknown kernel line '$line' (${LINES[*]})" ;;
esac
case "$flavor" in
release)
	fragments=(qemu/kconfig/release.config)
	[ "$line" != "$SYSTEMD_LINE" ] || fragments+=(qemu/kconfig/systemd.config)
	;;
debug) fragments=(qemu/kconfig/release.config qemu/kconfig/debug.config) ;;
kcsan) fragments=(qemu/kconfig/release.config qemu/kconfig/kcsan.config) ;;
*) die "unknown kernel flavor '$flavor' (release, debug or kcsan)" ;;
esac

# The source tarball of the line and its package version.
tarball() {
	case "$line" in
	6.12)
		[ -f /usr/src/linux-source-6.12.tar.xz ] || die "/usr/src/linux-source-6.12.tar.xz not found; install linux-source-6.12 (or run 'make setup')"
		echo /usr/src/linux-source-6.12.tar.xz
		;;
	*) "$TOPDIR/scripts/debian-pkg.sh" cached "$pkg" ;;
	esac
}

pkg_version() {
	local t v
	t=$(tarball)
	case "$t" in
	*.deb) v=$(basename "$t" | cut -d_ -f2) ;;
	*) v=$(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null) || v=$(stat -c %Y "$t") ;;
	esac
	tr '~:' '__' <<<"$v"
}

check_tools() {
	use_llvm "$llvm"
	require_tool clang "clang-$llvm"
	require_tool ld.lld "lld-$llvm"
	require_tool llvm-ar "llvm-$llvm"
	require_tool rustc "the Rust toolchain (rustup)"
	require_tool bindgen "bindgen-cli (cargo install --locked bindgen-cli)"
	require_tool flex flex
	require_tool bison bison
	require_tool bc bc
	require_tool xz xz-utils
	[ -e /usr/include/libelf.h ] || die "libelf.h not found; install libelf-dev"
	[ -e /usr/include/openssl/ssl.h ] || die "openssl headers not found; install libssl-dev"
}

# Unpack the Debian source once per package version.
source_dir() {
	local t ver src tmp
	t=$(tarball)
	ver=$(pkg_version)
	src="$CACHE_DIR/src/linux-$ver"
	mkdir -p "$CACHE_DIR/src"
	exec 8>"$CACHE_DIR/src/.lock"
	flock 8
	if [ ! -f "$src/.unpacked" ]; then
		echo "kernel: $line: unpacking $(basename "$t")" >&2
		tmp=$(mktemp -d "$CACHE_DIR/src/.tmp.XXXXXX")
		case "$t" in
		*.deb) dpkg-deb --fsys-tarfile "$t" | tar -xO "./usr/src/$pkg.tar.xz" | tar -xJ -C "$tmp" ;;
		*) tar -xJf "$t" -C "$tmp" ;;
		esac
		rm -rf "$src"
		mv "$tmp/$pkg" "$src"
		rmdir "$tmp"
		touch "$src/.unpacked"
	fi
	flock -u 8
	local version patchlevel sublevel
	version=$(sed -n 's/^VERSION = //p' "$src/Makefile")
	patchlevel=$(sed -n 's/^PATCHLEVEL = //p' "$src/Makefile")
	sublevel=$(sed -n 's/^SUBLEVEL = //p' "$src/Makefile")
	[ "$version.$patchlevel" = "$line" ] || die "$pkg holds Linux $version.$patchlevel, not $line"
	# kernel::ffi (ctypes prefix ffi) appeared in 6.12.19.
	((sublevel >= min_sublevel)) ||
		die "kernel source $line.$sublevel is older than $line.$min_sublevel; install a newer $pkg"
	echo "$src"
}

# The fragments as this line names the options: CONFIG_OLD becomes
# CONFIG_NEW for every "OLD NEW" in qemu/kconfig/LINE.renames.
fragments_text() {
	local renames=$TOPDIR/qemu/kconfig/$line.renames sed_args=(-e "") old new
	if [ -f "$renames" ]; then
		while read -r old new; do
			case "$old" in '#'* | '') continue ;; esac
			sed_args+=(-e "s/CONFIG_$old\b/CONFIG_$new/")
		done <"$renames"
	fi
	(cd "$TOPDIR" && cat "${fragments[@]}") | sed "${sed_args[@]}"
}

build_dir() {
	local hash
	hash=$({
		fragments_text
		echo "$RECIPE"
		toolchain_id
	} | sha256sum | cut -c1-12)
	echo "$CACHE_DIR/kernel-$(pkg_version)-$flavor-$hash"
}

# stage NAME CMD...: run one step of the build and say how long it took,
# so that a build of several minutes is never silent.
stage() {
	local name=$1 t0=$SECONDS
	shift
	"$@" >&2 || die "$line-$flavor kernel: $name failed"
	echo "kernel: $line-$flavor: $name done ($((SECONDS - t0)) s, $((SECONDS - start)) s in all)" >&2
}

case "$cmd" in
lines) echo "${LINES[*]}" ;;
source) source_dir ;;
dir)
	use_llvm "$llvm"
	out=$(build_dir)
	[ -f "$out/.built" ] || die "$line-$flavor kernel not built; run 'make kernel'"
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
	echo "kernel: building the $line-$flavor kernel in $out (several minutes)" >&2
	start=$SECONDS
	mk=(make -C "$src" O="$out" LLVM=1 ARCH=x86_64 -j"$(nproc)")
	if ! "${mk[@]}" rustavailable >&2; then
		die "the $line kernel does not accept this Rust toolchain (see above); run 'make setup'"
	fi
	stage tinyconfig "${mk[@]}" -s tinyconfig
	fragments_text >"$out/fragments.config"
	"$src/scripts/kconfig/merge_config.sh" -m -O "$out" "$out/.config" \
		"$out/fragments.config" >/dev/null
	stage config "${mk[@]}" -s olddefconfig
	# Every option the fragments ask for must have survived olddefconfig.
	missing=0
	while IFS= read -r l; do
		case "$l" in
		CONFIG_*=*) grep -qxF "$l" "$out/.config" || { echo "kernel: $l not applied" >&2; missing=1; } ;;
		"# CONFIG_"*" is not set") grep -qxF "$l" "$out/.config" || { echo "kernel: '$l' not applied" >&2; missing=1; } ;;
		esac
	done <"$out/fragments.config"
	((missing == 0)) || die "kernel config fragment not fully applied (missing dependencies?)"
	stage "prepare (the kernel crate)" "${mk[@]}" -s prepare
	stage bzImage "${mk[@]}" -s bzImage
	stage modules "${mk[@]}" -s modules
	touch "$out/.built"
	echo "kernel: $line-$flavor built in $((SECONDS - start)) s" >&2
	echo "$out"
	;;
*) die "usage: kernel.sh build|dir|source [LINE-]FLAVOR, or kernel.sh lines" ;;
esac
