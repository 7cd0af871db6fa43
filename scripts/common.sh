# Shared settings for the project's scripts (sourced, not run).
# shellcheck shell=bash
# shellcheck disable=SC2034 # the variables set here are used by the sourcing scripts

# The kernel line the systemd VM runs on: its release kernel has what
# systemd needs (qemu/kconfig/systemd.config).
SYSTEMD_LINE=7.3
# Debian 13's Rust-enabled backports kernel (its ABI name): the distribution
# kernel the Debian suite boots and builds against.
DEBIAN_KERNEL=7.3.4+deb13-amd64
# Every cache lives outside the checkout, keyed by what it depends on.
CACHE_DIR=${MEI_WDT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mei-wdt-rs}
TOPDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

export PATH="$HOME/.cargo/bin:$PATH"
# The pinned toolchain everywhere, also where the working directory (the
# kernel tree) is outside the checkout and rust-toolchain.toml not seen.
RUSTUP_TOOLCHAIN=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' "$TOPDIR/rust-toolchain.toml")
export RUSTUP_TOOLCHAIN

die() {
	echo "error: $*" >&2
	exit 1
}

# require_tool CMD PACKAGE: fail with the package that provides CMD.
require_tool() {
	command -v "$1" >/dev/null 2>&1 ||
		die "'$1' not found; install $2 (or run 'make setup')"
}

# Toolchain identity: part of every kernel and module cache key.
toolchain_id() {
	rustc --version
	clang --version | head -1
	bindgen --version
	echo "libclang: ${LIBCLANG_PATH:-newest}"
}

# use_llvm MAJOR: put LLVM MAJOR's tools (clang, ld.lld) first in PATH, and
# point bindgen at its libclang: left to search, bindgen loads the newest
# libclang installed (19 for the 6.12 kernels, built with clang 16).
use_llvm() {
	[ -d "/usr/lib/llvm-$1/bin" ] || die "LLVM $1 not found; install clang-$1, lld-$1 and libclang-$1-dev (or run 'make setup')"
	export PATH="/usr/lib/llvm-$1/bin:$PATH"
	export LIBCLANG_PATH="/usr/lib/llvm-$1/lib"
}

# use_llvm_of KDIR: use the LLVM that built the kernel in KDIR.
use_llvm_of() {
	local v
	v=$(sed -n 's/^CONFIG_CLANG_VERSION=//p' "$1/include/config/auto.conf" 2>/dev/null)
	[ -z "$v" ] || [ "$v" = 0 ] || use_llvm $((v / 10000))
}

# cargo_target_dir KIND: this checkout's cargo target dir for KIND (host,
# lint, guest). Cargo judges freshness by mtimes and records a file outside
# the package (proto-test's ../mei_wdt_proto.rs) by absolute path, so a
# target dir shared between checkouts can test another checkout's code.
# The least recently used beyond the newest CARGO_DIRS_KEPT go.
CARGO_DIRS_KEPT=4
cargo_target_dir() {
	local dir
	dir=$CACHE_DIR/cargo/$1-$(printf %s "$TOPDIR" | sha256sum | cut -c1-12)
	mkdir -p "$dir"
	touch "$dir"
	# shellcheck disable=SC2012 # names are ours: KIND-HASH
	ls -dt "$CACHE_DIR/cargo/$1"-* | tail -n +$((CARGO_DIRS_KEPT + 1)) | xargs -r rm -rf
	echo "$dir"
}

# build_modules DRIVER KDIR: build the ME stub and the driver under test
# (c: the kernel's own mei_wdt.ko; rust: this project's) for KDIR, and set
# $stub and $drv to their paths.
build_modules() {
	if [ -f "$2/base-modules" ]; then
		# Debian's kernel (scripts/debian-kernel.sh): both are built in
		# the Debian 13 environment.
		local built
		built=$("$TOPDIR/scripts/debian-kernel.sh" modules) || die "building the modules for Debian's kernel failed"
		stub=$(sed -n 1p <<<"$built")
		case "$1" in
		c) drv=$2/drivers/watchdog/mei_wdt.ko ;;
		rust) drv=$(sed -n 2p <<<"$built") ;;
		*) die "DRIVER must be c or rust" ;;
		esac
		return
	fi
	stub=$("$TOPDIR/scripts/build-module.sh" "$2" qemu/mestub)
	case "$1" in
	c) drv=$2/drivers/watchdog/mei_wdt.ko ;;
	rust) drv=$("$TOPDIR/scripts/build-module.sh" "$2" .) ;;
	*) die "DRIVER must be c or rust" ;;
	esac
	[ -f "$drv" ] || die "$drv not found"
}

# locked_build DIR: take DIR's build lock (fd 9, held until the script
# exits, so a concurrent build of DIR waits) and succeed if DIR holds a
# finished build (DIR/.built).
locked_build() {
	mkdir -p "$(dirname "$1")"
	exec 9>"$1.lock"
	flock 9
	[ -f "$1/.built" ]
}

# stage_modules ROOT KDIR MODULE.ko...: install the modules into
# ROOT/lib/modules/<KDIR's release>/extra with the kernel's lists of
# built-in modules, and run depmod there.
stage_modules() {
	local root=$1 kdir=$2 release moddir ko f
	shift 2
	release=$(cat "$kdir/include/config/kernel.release")
	moddir=$root/lib/modules/$release
	mkdir -p "$moddir/extra"
	for ko in "$@"; do
		[ -f "$ko" ] || die "module $ko not found"
		[ ! -e "$moddir/extra/$(basename "$ko")" ] || die "two modules named $(basename "$ko") given"
		install -m 0644 "$ko" "$moddir/extra/"
	done
	for f in modules.builtin modules.builtin.modinfo; do
		[ ! -f "$kdir/$f" ] || cp "$kdir/$f" "$moddir/"
	done
	(cd "$moddir" && ls extra/*.ko) >"$moddir/modules.order"
	depmod -b "$root" "$release"
}
