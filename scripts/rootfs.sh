#!/bin/bash
# The Debian 12 root file system of the systemd test VM.
#
#   rootfs.sh build                         build if not cached, print the cache dir
#   rootfs.sh image OUT.img KDIR MODULE.ko...
#                                           write a per-run disk image
#
# Cache: $CACHE_DIR/rootfs-<suite>-<hash>/, built under a lock; the hash
# covers what the build does (this script's build functions and settings:
# suite, mirror, package list, masked units), not the per-run part.
#   root/          debootstrap --variant=minbase of bookworm with systemd-sysv,
#                  udev, util-linux, kmod and busybox, set up to boot without
#                  D-Bus or an fstab (root=/dev/vda rw on the command line)
#   rootfs.ext4    an ext4 image of root/ (mkfs.ext4 -d: no mounts needed)
#
# A per-run image is a sparse copy of rootfs.ext4 (so no run changes the
# cache) into which debugfs writes, without mounting it:
#   /lib/modules/<release>/extra/MODULE.ko and depmod's files
#   the guest side of the systemd test, from qemu/systemd/:
#     /etc/systemd/system.conf.d/watchdog.conf    RuntimeWatchdogSec=120s ...
#     /etc/systemd/system/mei-wdt-*.service         enabled (setup and poll
#                                                   in sysinit.target, check
#                                                   in multi-user.target)
#     /usr/local/lib/mei-wdt/*.sh                   what the units run
#     /etc/udev/rules.d/70-iamt-watchdog.rules      the project's rule
#     /usr/lib/systemd/system-shutdown/mei-wdt-final  the power-off check
set -euo pipefail
source "$(dirname "$0")/common.sh"

SUITE=bookworm
MIRROR=${MEI_WDT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PACKAGES=systemd-sysv,udev,util-linux,kmod,busybox
# No getty: nobody logs in (the checks report on ttyS1); logind needs
# D-Bus; the timers would only add noise to a short run.
MASK=(getty.target systemd-logind.service apt-daily.timer apt-daily-upgrade.timer
	dpkg-db-backup.timer e2scrub_all.timer fstrim.timer)

cache_dir() {
	local hash
	hash=$({
		declare -f configure build
		echo "$SUITE $MIRROR $PACKAGES ${MASK[*]}"
	} | sha256sum | cut -c1-12)
	echo "$CACHE_DIR/rootfs-$SUITE-$hash"
}

# configure ROOT: what debootstrap leaves for a real machine to do.
configure() {
	local root=$1 unit
	echo meiwdt >"$root/etc/hostname"
	echo "# root is mounted rw by the kernel (root=/dev/vda rw)" >"$root/etc/fstab"
	# A fixed machine id: no first-boot setup in any run.
	if [ ! -s "$root/etc/machine-id" ] || grep -q uninitialized "$root/etc/machine-id"; then
		od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$root/etc/machine-id"
		echo >>"$root/etc/machine-id"
	fi
	for unit in "${MASK[@]}"; do
		ln -sfn /dev/null "$root/etc/systemd/system/$unit"
	done
	# No root password (there is no getty; rescue mode lets root in).
	sed -i 's/^root:[^:]*:/root::/' "$root/etc/shadow"
	rm -rf "$root/var/cache/apt/archives/"*.deb "$root/var/lib/apt/lists/"*_Packages
	# Mark /etc and /var as up to date with /usr (ConditionNeedsUpdate=):
	# otherwise ldconfig, sysusers and the journal catalog run on every
	# boot of a fresh copy.
	local f stamp
	stamp=$(stat -c %.9Y "$root/usr")
	for f in etc/.updated var/.updated; do
		printf '# Written by rootfs.sh\nTIMESTAMP_NSEC=%s\n' "${stamp/./}" >"$root/$f"
		touch -r "$root/usr" "$root/$f"
	done
}

build() {
	require_tool debootstrap debootstrap
	require_tool mkfs.ext4 e2fsprogs
	local dir tmp size
	dir=$(cache_dir)
	if locked_build "$dir"; then
		echo "$dir"
		return
	fi
	[ "$(id -u)" = 0 ] || die "building the root file system needs root (debootstrap)"
	echo "rootfs: building Debian $SUITE in $dir" >&2
	local start=$SECONDS
	rm -rf "$dir"
	tmp=$(mktemp -d "$dir.tmp.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	if ! debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$tmp/root" "$MIRROR" \
		>"$tmp/debootstrap.log" 2>&1; then
		cp "$tmp/debootstrap.log" "$dir.debootstrap.log"
		[ ! -f "$tmp/root/debootstrap/debootstrap.log" ] ||
			cat "$tmp/root/debootstrap/debootstrap.log" >>"$dir.debootstrap.log"
		tail -5 "$dir.debootstrap.log" >&2
		die "debootstrap failed; log: $dir.debootstrap.log"
	fi
	configure "$tmp/root"
	# Used space plus room for the journal and a run's files.
	size=$(($(du -sxm "$tmp/root" | cut -f1) * 5 / 4 + 256))
	truncate -s "${size}M" "$tmp/rootfs.ext4"
	mkfs.ext4 -q -F -L rootfs -d "$tmp/root" "$tmp/rootfs.ext4" >&2
	touch "$tmp/.built"
	mv "$tmp" "$dir"
	trap - EXIT
	echo "rootfs: built in $((SECONDS - start)) s (${size} MB image)" >&2
	echo "$dir"
}

# image OUT KDIR MODULE...: the per-run image.
image() {
	(($# >= 3)) || die "usage: rootfs.sh image OUT.img KDIR MODULE.ko..."
	local out=$1 kdir=$2 dir release stage
	shift 2
	require_tool debugfs e2fsprogs
	require_tool e2fsck e2fsprogs
	require_tool depmod kmod
	[ -f "$kdir/include/config/kernel.release" ] || die "$kdir is not a built kernel tree"
	release=$(cat "$kdir/include/config/kernel.release")
	dir=$(build)

	# Stage the added files at their paths in the image (merged /usr:
	# /lib is /usr/lib there).
	stage=$(mktemp -d "$CACHE_DIR/rootfs-stage.XXXXXX")
	trap 'rm -rf "$stage" "$out.tmp.$$"' EXIT
	stage_modules "$stage/usr" "$kdir" "$@"

	local src=$TOPDIR/qemu/systemd sys=$stage/etc/systemd/system
	install -D -m 0644 "$src/watchdog.conf" "$stage/etc/systemd/system.conf.d/watchdog.conf"
	mkdir -p "$sys/sysinit.target.wants" "$sys/multi-user.target.wants"
	install -m 0644 "$src"/mei-wdt-*.service "$sys/"
	ln -s /etc/systemd/system/mei-wdt-poll.service "$sys/sysinit.target.wants/"
	ln -s /etc/systemd/system/mei-wdt-setup.service "$sys/sysinit.target.wants/"
	ln -s /etc/systemd/system/mei-wdt-check.service "$sys/multi-user.target.wants/"
	install -D -m 0644 "$src/lib.sh" "$stage/usr/local/lib/mei-wdt/lib.sh"
	install -m 0755 "$src"/{setup,poll,check,shutdown}.sh "$stage/usr/local/lib/mei-wdt/"
	install -D -m 0755 "$src/final.sh" "$stage/usr/lib/systemd/system-shutdown/mei-wdt-final"
	install -D -m 0644 "$TOPDIR/udev/70-iamt-watchdog.rules" "$stage/etc/udev/rules.d/70-iamt-watchdog.rules"

	# debugfs: mkdir fails harmlessly on directories the image has; any
	# other error fails the image.
	local cmds=$stage.cmds errs=$stage.errs
	(cd "$stage" && find . -mindepth 1 -printf '%y %P %l\n' | LC_ALL=C sort -k2,2) |
		while read -r type path target; do
			case "$type" in
			d) echo "mkdir /$path" ;;
			f) echo "write $stage/$path /$path" ;;
			l) echo "symlink /$path $target" ;;
			*) die "unexpected file type $type: $path" ;;
			esac
		done >"$cmds"
	cp --sparse=always "$dir/rootfs.ext4" "$out.tmp.$$"
	debugfs -w -f "$cmds" "$out.tmp.$$" >/dev/null 2>"$errs" || die "debugfs failed: $(cat "$errs")"
	if grep -v -e '^debugfs [0-9]' -e 'directory already exists' "$errs" >&2; then
		rm -f "$cmds" "$errs"
		die "debugfs could not write the files above into the image"
	fi
	rm -f "$cmds" "$errs"
	e2fsck -fn "$out.tmp.$$" >/dev/null 2>&1 || die "the image fails e2fsck -fn after debugfs"
	mv "$out.tmp.$$" "$out"
	rm -rf "$stage"
	trap - EXIT
	echo "rootfs: $out ($release, $(du -h "$out" | cut -f1) used)" >&2
}

case "${1:-}" in
build) build ;;
image)
	shift
	image "$@"
	;;
*) die "usage: rootfs.sh build | rootfs.sh image OUT.img KDIR MODULE.ko..." ;;
esac
