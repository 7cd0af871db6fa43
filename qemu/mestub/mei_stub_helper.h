/* SPDX-License-Identifier: GPL-2.0 */
/* C API the ME stub binds: the MEI core's internal device interface. */
#include <linux/debugfs.h>
#include <linux/fs.h>
#include <linux/pci.h>
#include <linux/reboot.h>
#include <linux/seq_file.h>
#include <linux/watchdog.h>
#include <linux/workqueue.h>
#include "mei_dev.h"
