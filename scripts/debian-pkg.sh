#!/bin/bash
# Fetch a package of another Debian suite without touching the machine's
# apt sources: a private apt configuration in the cache lists the suites.
#
#   debian-pkg.sh download PACKAGE   print the path of PACKAGE's .deb,
#                                    downloading it if not cached
#   debian-pkg.sh cached PACKAGE     print the cached .deb, fail if none
#
# Cache: $CACHE_DIR/debs/PACKAGE_VERSION_ARCH.deb. Once a .deb is there no
# network is needed: the newest cached version is used until the cache is
# cleared (apt's lists are only read when nothing is cached).
set -euo pipefail
source "$(dirname "$0")/common.sh"

SUITES=(trixie trixie-backports)
MIRROR=${MEI_WDT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

cmd=${1:-}
pkg=${2:?usage: debian-pkg.sh download|cached PACKAGE}
debs=$CACHE_DIR/debs
mkdir -p "$debs"

cached() {
	# shellcheck disable=SC2012 # names are apt's: PACKAGE_VERSION_ARCH.deb
	{ ls -t "$debs/${pkg}_"*.deb 2>/dev/null || true; } | head -1
}

case "$cmd" in
cached)
	deb=$(cached)
	[ -n "$deb" ] || die "$pkg not downloaded; run 'make setup'"
	echo "$deb"
	;;
download)
	exec 6>"$debs/.lock"
	flock 6
	deb=$(cached)
	if [ -z "$deb" ]; then
		apt=$CACHE_DIR/apt
		mkdir -p "$apt/lists/partial" "$apt/archives/partial"
		for s in "${SUITES[@]}"; do
			echo "deb [signed-by=$KEYRING] $MIRROR $s main"
		done >"$apt/sources.list"
		opts=(-o Dir::Etc::SourceList="$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
			-o Dir::State::Lists="$apt/lists" -o Dir::Cache="$apt"
			-o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=
			-o Acquire::Languages=none -o APT::Sandbox::User=root)
		echo "debian-pkg: fetching $pkg from ${SUITES[*]}" >&2
		apt-get "${opts[@]}" -qq update >&2
		(cd "$debs" && apt-get "${opts[@]}" -qq download "$pkg" >&2)
		deb=$(cached)
		[ -n "$deb" ] || die "could not download $pkg"
	fi
	echo "$deb"
	;;
*) die "usage: debian-pkg.sh download|cached PACKAGE" ;;
esac
