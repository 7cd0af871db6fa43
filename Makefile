# SPDX-License-Identifier: GPL-2.0
#
# mei_wdt in Rust: an out-of-tree module for a Rust-enabled Linux 6.12
# (6.12.19 or newer) or 7.3 kernel.
#
#   make [KDIR=...]       build mei_wdt.ko (KDIR: kernel build tree,
#                         default the running kernel's)
#   make KERNEL=7.3-release  ... against a test kernel: LINE-FLAVOR, LINE
#                         6.12 or 7.3, FLAVOR release, debug or kcsan ("release"
#                         alone is 6.12-release)
#   make CLIPPY=1         ... with clippy
#   make install          modules_install (into updates/), and the udev rule
#                         for /dev/iamt_watchdog
#   make clean
#   make rust-analyzer    write rust-project.json
#   make rust-kdir [HEADERS=...] [KSRC=...]
#                         for distribution headers without the kernel's Rust
#                         output (Debian's): rebuild it from the kernel's
#                         source into a KDIR in ~/.cache/mei-wdt-rs/rust-kdir
#
# Test bed:
#   make setup            install what the project needs (Debian 12, root)
#   make kernel           build every test kernel of both lines (cached)
#   make vm-test DRIVER=c|rust KERNEL=[LINE-]release|debug|kcsan|debian [SUITE=name]
#                         (debian: Debian 13's own kernel, modules built in a
#                         Debian 13 environment, the driver by DKMS)
#   make vm-test DRIVER=c|rust SUITE=consumers   the systemd VM (on 7.3)
#   make vm-test DRIVER=c|rust SUITE=shutdown_silent|shutdown_reset|shutdown_reboot
#                                                a shutdown there, the ME silent
#   make golden           record the C driver's traces as golden files
#   make host-test        host unit tests (cargo test)
#   make check            host tests and every VM suite; ends "N passed, N failed"
#   make bench [LINE=..] [QUICK=1]  the C and the Rust driver alternated in
#                         one VM boot, per kernel line (default both): table,
#                         Rust/C ratios, bench/results-LINE.json and plot
#   make demo             boot the VM and show the driver on the stubbed ME

ifneq ($(origin KERNEL),undefined)
KDIR ?= $(shell scripts/kernel.sh dir $(KERNEL))
endif
KDIR ?= /lib/modules/$(shell uname -r)/build
DRIVER ?= rust
SUITE ?= all
LINES := 6.12 7.3
# The LLVM that built the kernel (its tools first in PATH and its libclang
# for bindgen, if installed where Debian puts them; bindgen would take the
# newest libclang it finds), and LLVM=1 for a kernel built with clang.
LLVM_MAJOR := $(shell sed -n 's/^CONFIG_CLANG_VERSION=\([1-9][0-9]*\)[0-9]\{4\}$$/\1/p' \
	$(KDIR)/include/config/auto.conf 2>/dev/null)
ifneq ($(wildcard /usr/lib/llvm-$(LLVM_MAJOR)/bin),)
export PATH := /usr/lib/llvm-$(LLVM_MAJOR)/bin:$(PATH)
export LIBCLANG_PATH ?= /usr/lib/llvm-$(LLVM_MAJOR)/lib
endif
LLVM ?= $(if $(LLVM_MAJOR),1)
# Ahead of the kernel's own mei_wdt.ko in depmod's search order.
INSTALL_MOD_DIR ?= updates
# The udev rule for /dev/iamt_watchdog (make install).
UDEV_RULES_DIR ?= /etc/udev/rules.d

.PHONY: all modules install clean rust-analyzer rust-kdir check-kdir \
	setup kernel vm-test golden host-test check demo bench

all: modules

modules install clean: check-kdir
	$(MAKE) -C $(KDIR) M=$(CURDIR) LLVM=$(LLVM) INSTALL_MOD_DIR=$(INSTALL_MOD_DIR) \
		$(if $(filter install,$@),modules_install,$@)
	$(if $(filter install,$@),install -D -m 0644 udev/70-iamt-watchdog.rules \
		$(DESTDIR)$(UDEV_RULES_DIR)/70-iamt-watchdog.rules)

# The kernel's own target does not handle an external module next to an
# O= build tree in 6.12, so run its generator directly. (KSRC is the
# rust-kdir option, the user's kernel source, not this.)
KDIR_SRC = $(shell test -d $(KDIR)/source && realpath $(KDIR)/source || realpath $(KDIR))
RUSTC_SYSROOT = $(shell rustc --print sysroot)
rust-analyzer: check-kdir
	python3 $(KDIR_SRC)/scripts/generate_rust_analyzer.py \
		--cfgs='core=--cfg no_fp_fmt_parse' \
		$(if $(shell rustc --version | awk '{split($$2,v,"."); print (v[2] >= 87)}' | grep 1),2024,2021) \
		$(KDIR_SRC) $(realpath $(KDIR)) $(RUSTC_SYSROOT) \
		$(RUSTC_SYSROOT)/lib/rustlib/src/rust/library $(CURDIR) > rust-project.json

# One clear line instead of a page of compiler errors.
check-kdir:
	@test -f $(KDIR)/Makefile || { echo "error: KDIR=$(KDIR) is not a kernel build tree: install the kernel headers or pass KDIR=" >&2; exit 1; }
	@grep -qx 'CONFIG_RUST=y' $(KDIR)/include/config/auto.conf 2>/dev/null || { echo "error: the kernel in $(KDIR) was built without CONFIG_RUST=y: mei_wdt needs a Rust-enabled kernel" >&2; exit 1; }
	@test -f $(KDIR)/rust/libkernel.rmeta || { echo "error: $(KDIR) lacks the kernel's Rust build output (rust/libkernel.rmeta): for distribution headers run 'make rust-kdir' and build with the KDIR it prints" >&2; exit 1; }
	@kernel_rustc=$$(sed -n 's/^CONFIG_RUSTC_VERSION_TEXT="*\([^"]*\)"*$$/\1/p' $(KDIR)/include/config/auto.conf); \
	test "$$(rustc --version)" = "$$kernel_rustc" || { echo "error: rustc is '$$(rustc --version)' but the kernel in $(KDIR) was built by '$$kernel_rustc': use that rustc" >&2; exit 1; }

rust-kdir:
	@scripts/rust-kdir.sh $(or $(HEADERS),$(KDIR)) $(KSRC)

setup:
	@scripts/setup.sh

kernel: setup
	@for k in 6.12-release 6.12-debug 7.3-release 7.3-debug 7.3-kcsan; do \
		scripts/kernel.sh build $$k >/dev/null || exit 1; done

vm-test: setup
ifeq ($(SUITE),consumers)
	@scripts/consumers-test.sh $(DRIVER)
else ifneq ($(filter shutdown_silent shutdown_reset shutdown_reboot,$(SUITE)),)
	@scripts/consumers-test.sh $(DRIVER) $(SUITE)
else
	@scripts/vm-test.sh $(DRIVER) $(or $(KERNEL),release) $(SUITE)
endif

golden: setup
	@scripts/vm-test.sh c release $(SUITE) record

host-test: setup
	@scripts/host-test.sh

bench: setup
	@for line in $(or $(LINE),$(LINES)); do \
		scripts/bench.sh --line $$line $(if $(QUICK),--quick) || exit 1; done

check:
	@scripts/check.sh

demo:
	@scripts/demo.sh
