#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Run bindgen for this module, blocklisting every type kernel::bindings
# already has so that those are imported from it instead of duplicated.
# (Thousands of names: too long for one make recipe line, fine for exec.)
#
#   bindgen.sh BINDGEN HEADER OUT KERNEL_BINDINGS PARAMS... -- CFLAGS...
set -e
bindgen=$1 header=$2 out=$3 kernel_bindings=$4
shift 4
# Only complete types: forward declarations there (`_unused: [u8; 0]`, or
# `_address: u8` for a type bindgen did not see the body of) get their full
# definition here. The kernel's file is rustfmt's output if rustfmt was
# there when the kernel was built, else one line: split it into one item
# per line first.
blocklist=$(tr '\n' ' ' <"$kernel_bindings" | sed -e 's/  */ /g' -e 's/pub \(struct\|union\|type\) /\n&/g' | awk '
	/^pub (struct|union|type) / { name = $3; sub(/[^A-Za-z0-9_].*/, "", name) }
	/^pub type / { print "^" name "$"; next }
	/^pub (struct|union) [A-Za-z0-9_]+ *(<[^>]*>)? *\{ *(pub )?_(unused|address) *:/ { next }
	/^pub (struct|union) / { print "^" name "$" }')
# Generated here all the same: the client id's GUID, which must be `Copy`
# (7.3's id tables copy ids), and bindgen derives that only for types it
# generates.
for name in $blocklist; do
	case "$name" in '^uuid_le$' | '^guid_t$') continue ;; esac
	set -- --blocklist-type "$name" "$@"
done
exec "$bindgen" "$header" -o "$out" "$@"
