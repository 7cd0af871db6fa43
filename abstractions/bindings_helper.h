/* SPDX-License-Identifier: GPL-2.0 */
/* The C API mei_wdt binds beyond the kernel crate: MEI client bus and watchdog core. */
#include <linux/debugfs.h>
#include <linux/fs.h>
#include <linux/mei_cl_bus.h>
#include <linux/mod_devicetable.h>
#include <linux/seq_file.h>
#include <linux/watchdog.h>
