#!/bin/bash
# Install everything the project needs on a Debian 12 machine (run as root).
# Idempotent: prints what it installs, and is quick when all is present.
set -euo pipefail
cd "$(dirname "$0")/.."

BINDGEN_VERSION=0.73.2
DEB_PACKAGES=(
	linux-source-6.12 clang-16 lld-16 llvm-16 libclang-16-dev
	clang-19 lld-19 llvm-19 libclang-19-dev
	flex bison bc libelf-dev libssl-dev cpio xz-utils make python3
	qemu-system-x86 busybox-static util-linux kmod rsync
	debootstrap e2fsprogs shellcheck gnuplot-nox
)

need=()
for p in "${DEB_PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need+=("$p")
done
if ((${#need[@]})); then
	echo "setup: installing Debian packages: ${need[*]}"
	if [ "$(id -u)" != 0 ]; then
		echo "setup: must run as root to install packages" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! command -v rustup >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/rustup" ]; then
	export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v rustup >/dev/null 2>&1; then
	echo "setup: rustup not found; install it from your distribution or rustup.rs" >&2
	exit 1
fi

# The toolchain pinned in rust-toolchain.toml, with its components.
channel=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
if ! rustup toolchain list | grep -q "^$channel"; then
	echo "setup: installing Rust $channel"
	rustup toolchain install "$channel" --profile minimal
fi
installed=$(rustup component list --toolchain "$channel" --installed)
for c in rust-src rustfmt clippy; do
	if ! grep -q "^$c" <<<"$installed"; then
		echo "setup: installing rust component $c"
		rustup component add --toolchain "$channel" "$c"
	fi
done

if ! { command -v bindgen >/dev/null 2>&1 &&
	bindgen --version 2>/dev/null | grep -q " $BINDGEN_VERSION\$"; }; then
	echo "setup: installing bindgen-cli $BINDGEN_VERSION"
	cargo +"$channel" install --locked --quiet --version "$BINDGEN_VERSION" bindgen-cli
fi
# The 7.3 line's source, from Debian 13 (cached; no apt source is changed).
scripts/debian-pkg.sh download linux-source-7.3 >/dev/null
# Debian 13's own kernel, its modules and the Debian 13 build environment
# (toolchain, headers, source, dkms), for the Debian suite.
debian_kernel=$(sed -n 's/^DEBIAN_KERNEL=//p' scripts/common.sh)
for p in "linux-binary-$debian_kernel" "linux-modules-$debian_kernel"; do
	scripts/debian-pkg.sh download "$p" >/dev/null
done
scripts/debian-env.sh build >/dev/null
echo "setup: ok"
