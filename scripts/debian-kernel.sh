#!/bin/bash
# Debian 13's own Rust-enabled kernel ($DEBIAN_KERNEL, trixie-backports) for
# the Debian suite: Debian's vmlinuz and modules, unpacked, not installed.
#
#   debian-kernel.sh build     assemble the kernel dir if not cached, print it
#   debian-kernel.sh modules   build the ME stub and this driver the way a
#                              Debian user builds them: in the Debian 13
#                              environment (scripts/debian-env.sh), against
#                              the KDIR that scripts/rust-kdir.sh makes from
#                              Debian's headers and source, the driver with
#                              DKMS (dkms.conf); check that every
#                              Rust symbol they import is one the kernel
#                              exports; print the two .ko paths
#
# The kernel dir, $CACHE_DIR/debian-kernel-<abi>-<hash>/, looks like a built
# kernel tree to the other scripts:
#   arch/x86/boot/bzImage            Debian's vmlinuz (linux-binary-<abi>)
#   include/config/kernel.release    <abi>
#   .config                          the kernel's, from its headers
#   drivers/.../*.ko                 the Debian modules the suite loads,
#                                    decompressed: the MEI core, the watchdog
#                                    core, and the C mei_wdt.ko (the reference)
#   base-modules                     those the guest loads first, in order
#   source                           a link to the 7.3 source tree (the
#                                    watchdog selftest, gen_init_cpio)
set -euo pipefail
source "$(dirname "$0")/common.sh"

# Debian's modules the suite needs, as paths under kernel/, base ones first.
BASE_MODULES=(drivers/watchdog/watchdog drivers/misc/mei/mei)
C_DRIVER=drivers/watchdog/mei_wdt

kernel_dir() {
	local hash
	hash=$({
		declare -f build
		echo "$DEBIAN_KERNEL ${BASE_MODULES[*]} $C_DRIVER"
		basename "$("$TOPDIR/scripts/debian-pkg.sh" cached "linux-binary-$DEBIAN_KERNEL")"
		basename "$("$TOPDIR/scripts/debian-pkg.sh" cached "linux-modules-$DEBIAN_KERNEL")"
	} | sha256sum | cut -c1-12)
	echo "$CACHE_DIR/debian-kernel-$DEBIAN_KERNEL-$hash"
}

build() {
	local dir tmp binary modules m src env
	binary=$("$TOPDIR/scripts/debian-pkg.sh" download "linux-binary-$DEBIAN_KERNEL")
	modules=$("$TOPDIR/scripts/debian-pkg.sh" download "linux-modules-$DEBIAN_KERNEL")
	src=$("$TOPDIR/scripts/kernel.sh" source 7.3-release)
	env=$("$TOPDIR/scripts/debian-env.sh" build)
	dir=$(kernel_dir)
	if locked_build "$dir"; then
		echo "$dir"
		return
	fi
	echo "debian-kernel: unpacking Debian's $DEBIAN_KERNEL kernel into $dir" >&2
	rm -rf "$dir"
	tmp=$(mktemp -d "$dir.tmp.XXXXXX")
	# shellcheck disable=SC2064 # expanded now: $tmp is local, gone by exit
	trap "rm -rf '$tmp'" EXIT
	dpkg-deb -x "$binary" "$tmp/deb"
	dpkg-deb -x "$modules" "$tmp/deb"
	local lib=$tmp/deb/usr/lib/modules/$DEBIAN_KERNEL
	[ -f "$lib/vmlinuz" ] || die "linux-binary-$DEBIAN_KERNEL has no $lib/vmlinuz"
	mkdir -p "$tmp/arch/x86/boot" "$tmp/include/config"
	cp "$lib/vmlinuz" "$tmp/arch/x86/boot/bzImage"
	echo "$DEBIAN_KERNEL" >"$tmp/include/config/kernel.release"
	cp "$env/root/usr/src/linux-headers-$DEBIAN_KERNEL/.config" "$tmp/.config"
	for m in "${BASE_MODULES[@]}" "$C_DRIVER"; do
		mkdir -p "$tmp/$(dirname "$m")"
		if [ -f "$lib/kernel/$m.ko.xz" ]; then
			xz -dc "$lib/kernel/$m.ko.xz" >"$tmp/$m.ko"
		else
			cp "$lib/kernel/$m.ko" "$tmp/$m.ko"
		fi
	done
	printf '%s.ko\n' "${BASE_MODULES[@]}" >"$tmp/base-modules"
	ln -s "$src" "$tmp/source"
	rm -rf "$tmp/deb"
	touch "$tmp/.built"
	mv "$tmp" "$dir"
	trap - EXIT
	echo "$dir"
}

# modules: run in the Debian environment (paths there are the chroot's).
modules() {
	local env out p
	env=$("$TOPDIR/scripts/debian-env.sh" build)
	# shellcheck disable=SC2016 # expanded in the chroot
	out=$("$TOPDIR/scripts/debian-env.sh" run /bin/bash -euc '
		abi=$1
		# As the README has a Debian user run it (there with the running
		# kernel'"'"'s /lib/modules/$(uname -r)/build).
		kdir=$(make -s rust-kdir KDIR="/lib/modules/$abi/build")
		# The MEI core'"'"'s internal headers, for the stub only.
		mei=/root/.cache/mei-wdt-rs/mei-core-$abi
		if [ ! -f "$mei/.unpacked" ]; then
			mkdir -p "$mei"
			tar -xf /usr/src/linux-source-7.3.tar.xz -C "$mei" --strip-components=4 \
				--wildcards "*/drivers/misc/mei/*.h"
			touch "$mei/.unpacked"
		fi
		stub=$(scripts/build-module.sh "$kdir" qemu/mestub MEI_CORE_SRC="$mei")
		# The driver as a Debian user installs it: DKMS, from a copy of
		# the checkout in /usr/src, rebuilt when the copy changes. Its
		# Rust-output step finds the tree made above.
		export MEI_WDT_RUST_KDIR=/root/.cache/mei-wdt-rs/rust-kdir
		changes=$(rsync -rlc --delete --itemize-changes --exclude=/.git /src/ /usr/src/mei_wdt-1.0/)
		drv=/lib/modules/$abi/updates/dkms/mei_wdt.ko
		if [ -n "$changes" ] || [ ! -f "$drv" ]; then
			dkms remove mei_wdt/1.0 --all >/dev/null 2>&1 || true
			dkms add mei_wdt/1.0 >&2
			dkms install mei_wdt/1.0 -k "$abi" >&2 ||
				{ tail -30 /var/lib/dkms/mei_wdt/1.0/build/make.log >&2; exit 1; }
		fi
		dkms status mei_wdt >&2
		cat "$kdir/rust-exports.txt" | sed "s/^/rust-kdir: /" >&2
		scripts/rust-kdir.sh check "$kdir" "$stub" "$drv" >&2
		echo "$stub"
		echo "$drv"
	' sh "$DEBIAN_KERNEL")
	while read -r p; do echo "$env/root$p"; done <<<"$out"
}

case "${1:-}" in
build) build ;;
modules) modules ;;
*) die "usage: debian-kernel.sh build | modules" ;;
esac
