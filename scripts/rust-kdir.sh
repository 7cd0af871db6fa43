#!/bin/bash
# Make a distribution kernel's headers usable for Rust modules: rebuild the
# kernel's Rust output (rust/*.rmeta, the proc-macro libraries, the target
# file) from the kernel's own source, with the headers' .config and the
# rustc that built the kernel, and lay it over a copy of the headers.
#
#   rust-kdir.sh [HEADERS [SOURCE [OUT]]]   prints OUT, the KDIR to build with
#     HEADERS  the headers tree (default /lib/modules/$(uname -r)/build)
#     SOURCE   the kernel's source: a tarball or a directory (default
#              /usr/src/linux-source-<VERSION.PATCHLEVEL>.tar.xz, which
#              Debian's linux-source package installs)
#     OUT      default $CACHE_DIR/rust-kdir/<kernel release>
#
# The rebuild must reproduce the kernel's Rust crates exactly: their symbol
# names (v0 mangling) carry a hash of the compiler and of each crate. So the
# script checks that rustc and the C compiler are the ones the .config
# names, and that the configuration is unchanged by olddefconfig; then it
# counts how many of the kernel's exported Rust symbols (in the headers'
# Module.symvers) the rebuild exports too (OUT/rust-exports.txt).
# `rust-kdir.sh check OUT MODULE.ko...` then checks that every Rust symbol
# the modules import is one the kernel exports.
set -euo pipefail
CACHE_DIR=${MEI_WDT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mei-wdt-rs}

die() {
	echo "rust-kdir: error: $*" >&2
	exit 1
}

# config_value FILE NAME: the value of CONFIG_NAME, quotes removed.
config_value() {
	sed -n "s/^CONFIG_$2=\"\\{0,1\\}\\([^\"]*\\)\"\\{0,1\\}\$/\\1/p" "$1"
}

# rust_symbols: the _R... names of a Module.symvers on stdin.
rust_symbols() {
	awk '$2 ~ /^_R/ { print $2 }' | LC_ALL=C sort -u
}

check() {
	local out=$1 ko missing=0 n=0 sym
	shift
	[ -f "$out/Module.symvers" ] || die "$out/Module.symvers not found"
	rust_symbols <"$out/Module.symvers" >"$out.exports.$$"
	for ko in "$@"; do
		while read -r sym; do
			n=$((n + 1))
			if ! grep -qxF "$sym" "$out.exports.$$"; then
				echo "rust-kdir: $(basename "$ko") imports $sym, which the kernel does not export" >&2
				missing=$((missing + 1))
			fi
		done < <(nm -u "$ko" | awk '$2 ~ /^_R/ { print $2 }' | LC_ALL=C sort -u)
	done
	rm -f "$out.exports.$$"
	echo "rust-kdir: $n Rust symbols imported by $# module(s), $missing not exported by the kernel"
	[ "$missing" = 0 ]
}

build() {
	local headers=${1:-/lib/modules/$(uname -r)/build} src=${2:-} out=${3:-}
	headers=$(realpath "$headers")
	local config=$headers/.config release
	[ -f "$config" ] || die "$headers has no .config: is it a kernel headers tree?"
	grep -qx 'CONFIG_RUST=y' "$config" || die "the kernel of $headers was built without CONFIG_RUST"
	release=$(cat "$headers/include/config/kernel.release")
	out=${out:-$CACHE_DIR/rust-kdir/$release}
	if [ -f "$headers/rust/libkernel.rmeta" ]; then
		echo "rust-kdir: $headers already has the Rust output; build with KDIR=$headers" >&2
		echo "$headers"
		return
	fi

	# The compilers the kernel was built with.
	local rustc_text cc_text cc version
	rustc_text=$(config_value "$config" RUSTC_VERSION_TEXT)
	[ "$(rustc --version)" = "$rustc_text" ] ||
		die "rustc is '$(rustc --version)', the kernel was built by '$rustc_text': put that rustc first in PATH (on Debian: apt's rustc and rust-src)"
	cc_text=$(config_value "$config" CC_VERSION_TEXT)
	cc=${cc_text%% *}
	command -v "$cc" >/dev/null || die "the kernel was built by '$cc_text'; '$cc' not found"
	version=$(sed -n 's/^VERSION = //p; s/^PATCHLEVEL = //p' "$headers/Makefile" 2>/dev/null | paste -sd.)
	[ -n "$version" ] || version=$(echo "$release" | cut -d. -f1,2)
	src=${src:-/usr/src/linux-source-$version.tar.xz}
	[ -e "$src" ] || die "kernel source $src not found (on Debian: apt install linux-source-$version)"

	local stamp recipe
	recipe="v1 $(sha256sum "$0" | cut -c1-12)"
	stamp="$release|$(stat -c %s.%Y "$src")|$rustc_text|$cc_text|$(sha256sum "$config" | cut -c1-16)|$recipe"
	if [ -f "$out/.rust-kdir" ] && [ "$(cat "$out/.rust-kdir")" = "$stamp" ]; then
		echo "$out"
		return
	fi
	mkdir -p "$(dirname "$out")"
	exec 8>"$out.lock"
	flock 8
	if [ -f "$out/.rust-kdir" ] && [ "$(cat "$out/.rust-kdir")" = "$stamp" ]; then
		echo "$out"
		return
	fi
	local start=$SECONDS work=$out.build
	rm -rf "$work" "$out"
	mkdir -p "$work/obj"
	echo "rust-kdir: unpacking $src" >&2
	if [ -d "$src" ]; then
		ln -s "$(realpath "$src")" "$work/src"
	else
		mkdir "$work/src"
		tar -xf "$src" -C "$work/src" --strip-components=1
	fi
	local mk=(-C "$work/src" O="$work/obj" ARCH=x86 CC="$cc" HOSTCC="${cc#*-linux-gnu-}")
	[[ $cc == *-linux-gnu-* ]] && mk+=(CROSS_COMPILE="${cc%%-linux-gnu-*}-linux-gnu-")
	cp "$config" "$work/obj/.config"
	echo "rust-kdir: configuring ($((SECONDS - start)) s)" >&2
	make "${mk[@]}" -s olddefconfig >&2
	if ! cmp -s "$config" "$work/obj/.config"; then
		diff "$config" "$work/obj/.config" | head -20 >&2
		die "olddefconfig changed the configuration (above): a tool differs from the kernel's"
	fi
	echo "rust-kdir: building the Rust output (make prepare, a few minutes; $((SECONDS - start)) s)" >&2
	make "${mk[@]}" -s -j"$(nproc)" prepare >&2

	# The overlay: the headers (their build tools copied in, not linked,
	# so target.json can go beside them) and the Rust output.
	echo "rust-kdir: writing $out ($((SECONDS - start)) s)" >&2
	mkdir -p "$out.tmp"
	cp -a "$headers/." "$out.tmp/"
	# Debian links scripts/ and tools/ into its linux-kbuild package, by
	# relative links that would dangle here.
	local link
	for link in "$out.tmp"/*; do
		[ -L "$link" ] || continue
		rm "$link"
		if [ "$(basename "$link")" = scripts ]; then
			cp -a "$(realpath "$headers/scripts")/." "$out.tmp/scripts/"
		else
			ln -s "$(realpath "$headers/$(basename "$link")")" "$link"
		fi
	done
	cp "$work/obj/scripts/target.json" "$out.tmp/scripts/"
	mkdir -p "$out.tmp/rust/bindings"
	cp "$work/obj/rust/"*.rmeta "$work/obj/rust/"*.so "$out.tmp/rust/"
	cp "$work/obj/rust/bindings/"*.rs "$out.tmp/rust/bindings/"
	# bindgen's options for the kernel's types, which a module's own
	# bindings (as this driver's) reuse.
	cp "$work/src/rust/bindgen_parameters" "$out.tmp/rust/"
	# The headers' Makefile names its own directory as the output tree.
	sed -i "s|$headers|$out|g" "$out.tmp/Makefile"

	# How many of the kernel's exported Rust symbols the rebuild exports.
	local kernel_syms rebuilt_syms common
	kernel_syms=$(rust_symbols <"$headers/Module.symvers" | wc -l)
	cat "$work/obj/rust/"exports_*_generated.h | sed -n 's/.*EXPORT_SYMBOL_RUST_GPL(\(_R[^)]*\)).*/\1/p' |
		LC_ALL=C sort -u >"$out.tmp/rust-exports.rebuilt"
	rebuilt_syms=$(wc -l <"$out.tmp/rust-exports.rebuilt")
	common=$(rust_symbols <"$headers/Module.symvers" | LC_ALL=C comm -12 - "$out.tmp/rust-exports.rebuilt" | wc -l)
	echo "$rebuilt_syms Rust symbols exported by the rebuild; $common of the kernel's $kernel_syms exported Rust symbols reproduced" \
		>"$out.tmp/rust-exports.txt"
	echo "$stamp" >"$out.tmp/.rust-kdir"
	mv "$out.tmp" "$out"
	rm -rf "$work"
	echo "rust-kdir: $(cat "$out/rust-exports.txt")" >&2
	echo "rust-kdir: done in $((SECONDS - start)) s; build with KDIR=$out" >&2
	echo "$out"
}

case "${1:-}" in
check)
	shift
	(($# >= 2)) || die "usage: rust-kdir.sh check KDIR MODULE.ko..."
	check "$@"
	;;
-h | --help) sed -n '2,/^set/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
*) build "$@" ;;
esac
