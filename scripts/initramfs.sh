#!/bin/bash
# Build the test VM's initramfs (newc cpio, uncompressed).
#
#   initramfs.sh OUT.cpio KDIR MODULE.ko...
#
# KDIR is a built kernel tree (scripts/kernel.sh) with a `source` link to
# its source. The archive holds:
#   /init                      qemu/init
#   /bin/busybox + applets     Debian's busybox-static
#   /bin/mei-wdt-tests         the guest test program (qemu/guest)
#   /bin/watchdog-test         the kernel's watchdog selftest, static
#   /usr/bin/wdctl             util-linux, with its libraries and ld.so
#   /lib/modules/<release>/extra/MODULE.ko, modules.dep
#   /lib/modules/<release>/preload  modules /init loads first, if KDIR has
#                              a base-modules list (Debian's kernel)
# Intermediate products live in $CACHE_DIR/guest and the checkout's cargo
# target dir (cargo_target_dir guest).
set -euo pipefail
source "$(dirname "$0")/common.sh"

(($# >= 3)) || die "usage: initramfs.sh OUT.cpio KDIR MODULE.ko..."
out=$1
kdir=$2
shift 2

require_tool cargo "the Rust toolchain (rustup)"
require_tool gcc gcc
require_tool depmod kmod
require_tool ldd libc-bin
require_tool busybox busybox-static
require_tool wdctl util-linux

release_file=$kdir/include/config/kernel.release
[ -f "$release_file" ] || die "$release_file not found: is $kdir a built kernel tree?"
release=$(cat "$release_file")
src=$kdir/source
[ -d "$src" ] || src=$kdir # an in-tree build has no source link
selftest=$src/tools/testing/selftests/watchdog/watchdog-test.c
[ -f "$selftest" ] || die "$selftest not found"

busybox=$(command -v busybox)
# The dynamic busybox package has the same path; only the static one works
# without its libraries in the guest.
if ldd "$busybox" >/dev/null 2>&1; then
	die "$busybox is dynamically linked; install busybox-static"
fi

work=$CACHE_DIR/guest
mkdir -p "$work"

# The guest test program, static. Run cargo from the checkout so that
# rust-toolchain.toml selects the pinned toolchain.
target=x86_64-unknown-linux-gnu
target_dir=$(cargo_target_dir guest)
(cd "$TOPDIR" && RUSTFLAGS="-C target-feature=+crt-static" cargo build --quiet --release \
	--manifest-path qemu/guest/Cargo.toml --target "$target" \
	--target-dir "$target_dir")
tests_bin=$target_dir/$target/release/mei-wdt-tests

# build_c OUT SRC FLAGS...: compile a single C file unless OUT is up to date.
build_c() {
	local bin=$1 csrc=$2
	shift 2
	if [ ! -x "$bin" ] || [ "$csrc" -nt "$bin" ]; then
		gcc "$@" -o "$bin.tmp.$$" "$csrc"
		mv "$bin.tmp.$$" "$bin"
	fi
}
# Keyed by the kernel version: the selftest and the cpio writer come from it.
build_c "$work/watchdog-test-$release" "$selftest" -static -O2 -Wall
build_c "$work/gen_init_cpio-$release" "$src/usr/gen_init_cpio.c" -O2

stage=$(mktemp -d "$work/stage.XXXXXX")
trap 'rm -rf "$stage" "$stage.list"' EXIT
mkdir -p "$stage"/{bin,dev,proc,sys,tmp,usr/bin}

install -m 0755 "$TOPDIR/qemu/init" "$stage/init"
install -m 0755 "$busybox" "$stage/bin/busybox"
for applet in $("$busybox" --list); do
	[ -e "$stage/bin/$applet" ] || ln -s busybox "$stage/bin/$applet"
done
install -m 0755 "$tests_bin" "$stage/bin/mei-wdt-tests"
install -m 0755 "$work/watchdog-test-$release" "$stage/bin/watchdog-test"

# wdctl, its libraries and the loader, at the paths ldd reports.
wdctl=$(command -v wdctl)
install -m 0755 "$wdctl" "$stage/usr/bin/wdctl"
while read -r lib; do
	mkdir -p "$stage$(dirname "$lib")"
	cp -L "$lib" "$stage$lib"
done < <(ldd "$wdctl" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')

stage_modules "$stage" "$kdir" "$@"
# A kernel with the MEI and watchdog cores as modules (Debian's): /init
# loads them first, in this order.
if [ -f "$kdir/base-modules" ]; then
	xargs -n1 basename <"$kdir/base-modules" >"$stage/lib/modules/$release/preload"
fi

# gen_init_cpio writes root-owned entries and the console node without
# needing root here; fixed timestamps keep the archive reproducible.
list=$stage.list
{
	(cd "$stage" && find . -mindepth 1 -printf '%y %P %m %l\n' | LC_ALL=C sort -k2,2) |
		while read -r type path mode target; do
			case "$type" in
			d) echo "dir /$path $mode 0 0" ;;
			f) echo "file /$path $stage/$path $mode 0 0" ;;
			l) echo "slink /$path $target 777 0 0" ;;
			*) die "unexpected file type $type: $path" ;;
			esac
		done
	# After /dev itself, so the unpacker can create it.
	echo "nod /dev/console 0600 0 0 c 5 1"
} >"$list"
"$work/gen_init_cpio-$release" -t 0 "$list" >"$out.tmp.$$"
rm -f "$list"
mv "$out.tmp.$$" "$out"
echo "initramfs: $out ($(du -h "$out" | cut -f1))" >&2
