#!/bin/bash
# mei-wdt-setup.service (before sysinit.target): load the ME stub, create one
# stubbed ME with the AMT watchdog client (protocol version 2; its firmware
# clock runs at meiwdt.ms_per_fw_second= from the kernel command line), load
# the driver under test (mei_wdt: the C or the Rust one, whichever the image
# holds) and point /dev/iamt_wdt at the watchdog device whose identity is
# iamt_wdt, for PID 1 (WatchdogDevice= in system.conf.d/watchdog.conf).
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
# answered its probe ping: wait for it (10 s at most).
for _ in $(seq 100); do
	for d in /sys/class/watchdog/watchdog*; do
		[ "$(cat "$d/identity" 2>/dev/null)" = iamt_wdt ] || continue
		[ -c "/dev/${d##*/}" ] || continue
		ln -sfn "/dev/${d##*/}" /dev/iamt_wdt
		echo "mei-wdt-setup: iamt_wdt is /dev/${d##*/} (firmware clock ${scale} ms/s)"
		exit 0
	done
	sleep 0.1
done
echo "mei-wdt-setup: no watchdog device with identity iamt_wdt" >&2
exit 1
