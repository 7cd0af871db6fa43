#!/bin/bash
# mei-wdt-setup.service (before sysinit.target): load the ME stub, create one
# stubbed ME with the AMT watchdog client (protocol version 2; its firmware
# clock runs at meiwdt.ms_per_fw_second= from the kernel command line), load
# the driver under test (mei_wdt: the C or the Rust one, whichever the image
# holds) and wait for udev's /dev/iamt_watchdog (the project's rule), which
# PID 1 uses (WatchdogDevice= in system.conf.d/watchdog.conf).
set -eu
# shellcheck source=qemu/systemd/lib.sh
source /usr/local/lib/mei-wdt/lib.sh

scale=$(cmdline_arg meiwdt.ms_per_fw_second 1000)
# More stub configuration for the driver under test (key=value).
extra=$(cmdline_arg meiwdt.stub_config "")
mountpoint -q /sys/kernel/debug || mount -t debugfs debugfs /sys/kernel/debug
modprobe mei_stub
echo "wd=1 version=2 ms_per_fw_second=$scale $extra" >"$STUB/add"
modprobe mei_wdt

# The driver registers the watchdog from a work item once the firmware has
# answered its probe ping, and udev then makes the link: wait for it (10 s
# at most).
for _ in $(seq 100); do
	if [ -c /dev/iamt_watchdog ]; then
		echo "mei-wdt-setup: /dev/iamt_watchdog is $(readlink /dev/iamt_watchdog) (firmware clock ${scale} ms/s)"
		exit 0
	fi
	sleep 0.1
done
echo "mei-wdt-setup: udev made no /dev/iamt_watchdog" >&2
exit 1
