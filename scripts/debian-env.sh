#!/bin/bash
# The Debian 13 build environment: a trixie chroot, with trixie-backports,
# holding what Debian built its backports kernel with (rustc and rust-src
# 1.85.1, gcc-14, bindgen, libclang), that kernel's headers and source, and
# dkms. A Debian user builds the driver the same way on the machine itself.
#
#   debian-env.sh build        build if not cached, print the cache dir
#   debian-env.sh run CMD...   run CMD as root in the chroot, in /src, a
#                              read-only view of the checkout
#
# Cache: $CACHE_DIR/debian-trixie-<hash>/, built under a lock; the hash
# covers what the build does (this script's build function and settings).
#   root/    debootstrap --variant=minbase of trixie plus the packages
# What is built in the chroot stays there (its own /root/.cache), keyed by
# the scripts that build it, as on a user's machine.
set -euo pipefail
source "$(dirname "$0")/common.sh"

SUITE=trixie
MIRROR=${MEI_WDT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# From trixie: Debian's kernel toolchain and what kernel builds, the
# project's scripts and dkms need.
PACKAGES=(rustc rust-src bindgen libclang-dev gcc-14 make flex bison bc libelf-dev
	libssl-dev openssl cpio xz-utils kmod python3 rsync dkms)
# From trixie-backports: the kernel's headers and its source.
BACKPORTS=("linux-headers-$DEBIAN_KERNEL" linux-source-7.3)

cache_dir() {
	local hash
	hash=$({
		declare -f build in_chroot
		echo "$SUITE $MIRROR ${PACKAGES[*]} ${BACKPORTS[*]}"
	} | sha256sum | cut -c1-12)
	echo "$CACHE_DIR/debian-$SUITE-$hash"
}

# in_chroot ROOT CMD...: run CMD in ROOT with /proc, /dev, a fresh /tmp and
# the checkout at /src (read-only), in a private mount namespace, so that
# nothing stays mounted whatever happens.
in_chroot() {
	local root=$1
	shift
	# shellcheck disable=SC2016 # expanded by the inner shell
	unshare --mount --propagation private -- /bin/bash -euc '
		root=$1 top=$2
		shift 2
		mount -t proc proc "$root/proc"
		mount --rbind /dev "$root/dev"
		mount -t tmpfs tmpfs "$root/tmp"
		mkdir -p "$root/src"
		mount --bind "$top" "$root/src"
		mount -o remount,bind,ro "$root/src"
		exec chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
			PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
			DEBIAN_FRONTEND=noninteractive /bin/sh -c "cd /src && exec \"\$@\"" sh "$@"
	' sh "$root" "$TOPDIR" "$@"
}

build() {
	require_tool debootstrap debootstrap
	require_tool unshare util-linux
	local dir tmp
	dir=$(cache_dir)
	if locked_build "$dir"; then
		echo "$dir"
		return
	fi
	[ "$(id -u)" = 0 ] || die "building the Debian 13 environment needs root (debootstrap, chroot)"
	echo "debian-env: building Debian $SUITE with $SUITE-backports in $dir" >&2
	local start=$SECONDS
	rm -rf "$dir"
	tmp=$(mktemp -d "$dir.tmp.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	if ! debootstrap --variant=minbase "$SUITE" "$tmp/root" "$MIRROR" >"$tmp/debootstrap.log" 2>&1; then
		cp "$tmp/debootstrap.log" "$dir.debootstrap.log"
		tail -5 "$dir.debootstrap.log" >&2
		die "debootstrap failed; log: $dir.debootstrap.log"
	fi
	echo "debian-env: debootstrap done ($((SECONDS - start)) s)" >&2
	cat >"$tmp/root/etc/apt/sources.list" <<-EOF
		deb $MIRROR $SUITE main
		deb $MIRROR $SUITE-backports main
	EOF
	printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
		>"$tmp/root/etc/apt/apt.conf.d/90mei-wdt"
	if ! in_chroot "$tmp/root" sh -c "apt-get -qq update && apt-get -qq install ${PACKAGES[*]} &&
		apt-get -qq install -t $SUITE-backports ${BACKPORTS[*]} && apt-get -qq clean" \
		>"$tmp/apt.log" 2>&1; then
		cp "$tmp/apt.log" "$dir.apt.log"
		tail -5 "$dir.apt.log" >&2
		die "installing the packages failed; log: $dir.apt.log"
	fi
	touch "$tmp/.built"
	mv "$tmp" "$dir"
	trap - EXIT
	echo "debian-env: built in $((SECONDS - start)) s ($(du -sh "$dir" | cut -f1))" >&2
	echo "$dir"
}

case "${1:-}" in
build) build ;;
run)
	shift
	(($#)) || die "usage: debian-env.sh run CMD..."
	dir=$(build)
	in_chroot "$dir/root" "$@"
	;;
*) die "usage: debian-env.sh build | debian-env.sh run CMD..." ;;
esac
