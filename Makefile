# SPDX-License-Identifier: GPL-2.0
#
# Test bed for the mei_wdt driver.
#
#   make setup            install what the project needs (Debian 12, root)
#   make kernel           build the release and debug test kernels (cached)
#   make vm-test DRIVER=c|rust KERNEL=release|debug [SUITE=name]
#   make golden           record the C driver's traces as golden files
#   make host-test        host unit tests (cargo test)
#   make check            host tests and every VM suite; ends "N passed, N failed"
#   make demo             boot the VM and show the driver on the stubbed ME

DRIVER ?= c
KERNEL ?= release
SUITE ?= all

.PHONY: setup kernel vm-test golden host-test check demo

setup:
	@scripts/setup.sh

kernel: setup
	@scripts/kernel.sh build release
	@scripts/kernel.sh build debug

vm-test: setup
	@scripts/vm-test.sh $(DRIVER) $(KERNEL) $(SUITE)

golden: setup
	@scripts/vm-test.sh c release $(SUITE) record

host-test: setup
	@scripts/host-test.sh

check:
	@scripts/check.sh

demo:
	@scripts/demo.sh
