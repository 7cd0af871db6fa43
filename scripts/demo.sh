#!/bin/bash
# Set up, build, boot the test VM, load the Rust mei_wdt onto the stubbed
# ME, and show wdctl, one ping round trip in the firmware trace and a clean
# stop. DRIVER=c shows the kernel's C driver instead; KERNEL=7.3-release
# the 7.3 line.
set -euo pipefail
source "$(dirname "$0")/common.sh"
"$TOPDIR/scripts/setup.sh"
exec "$TOPDIR/scripts/vm-test.sh" "${DRIVER:-rust}" "${KERNEL:-release}" demo
