# SPDX-License-Identifier: GPL-2.0
# The kernel crate differs between kernel lines: the abstractions pick
# their implementation with `kernel_line`, set from the kernel's version.
# 6.12.19 brought kernel::ffi; lines between 6.12 and 7.3 are untested and
# refused; lines after 7.3 build as 7.3 with a warning.
mei_wdt_kver := $(shell echo $$(( $(VERSION) * 65536 + $(PATCHLEVEL) * 256 + $(or $(SUBLEVEL),0) )))
ifeq ($(mei_wdt_kver),)
$(error mei_wdt: cannot tell the kernel's version)
endif
ifeq ($(shell test $(mei_wdt_kver) -lt $$(( 6 * 65536 + 12 * 256 + 19 )) && echo old),old)
$(error mei_wdt needs Linux 6.12.19 or newer (6.12 LTS or 7.3); this kernel is $(KERNELVERSION))
else ifeq ($(shell test $(mei_wdt_kver) -lt $$(( 6 * 65536 + 13 * 256 )) && echo y),y)
mei_wdt_kernel_line := 6.12
else ifeq ($(shell test $(mei_wdt_kver) -lt $$(( 7 * 65536 + 3 * 256 )) && echo y),y)
$(error mei_wdt supports Linux 6.12 (6.12.19 or newer) and 7.3; this kernel is $(KERNELVERSION))
else
mei_wdt_kernel_line := 7.3
ifeq ($(shell test $(mei_wdt_kver) -ge $$(( 7 * 65536 + 4 * 256 )) && echo y),y)
$(warning mei_wdt was tested up to Linux 7.3; this kernel is $(KERNELVERSION): building as for 7.3)
endif
endif
rustflags-y += --cfg 'kernel_line="$(mei_wdt_kernel_line)"'
