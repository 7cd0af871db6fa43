#!/bin/bash
# DKMS's build command (dkms.conf): build mei_wdt.ko for kernel KVER whose
# build tree is KDIR; where KDIR lacks the kernel's Rust build output, make
# it first with scripts/rust-kdir.sh, kept in /var/lib/mei_wdt/rust-kdir.
#
#   dkms-build.sh KVER KDIR
set -euo pipefail
cd "$(dirname "$0")/.."
kver=${1:?usage: dkms-build.sh KVER KDIR}
kdir=${2:-/lib/modules/$kver/build}
if [ ! -f "$kdir/rust/libkernel.rmeta" ]; then
	kdir=$(scripts/rust-kdir.sh "$kdir" "" "${MEI_WDT_RUST_KDIR:-/var/lib/mei_wdt/rust-kdir}/$kver")
fi
exec make KDIR="$kdir"
