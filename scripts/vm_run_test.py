#!/usr/bin/env python3
"""Host tests of vm-run.py's kernel-log judging: KCSAN reports on the
data-race kernel."""

import contextlib
import importlib.util
import io
import sys
import tempfile
import unittest
from pathlib import Path
from types import SimpleNamespace

spec = importlib.util.spec_from_file_location("vm_run", Path(__file__).with_name("vm-run.py"))
vm_run = importlib.util.module_from_spec(spec)
spec.loader.exec_module(vm_run)
# The functions of the cores on the driver's paths (vm-run.py lists them
# from the kernel's build tree).
vm_run.path_symbols = lambda kernel: {"watchdog_ping", "mei_cl_bus_rx_work", "mei_cldev_enabled"}

RULE = "=" * 66
# Two reports in KCSAN's layout: one with a frame of the driver's module,
# one elsewhere; a boot line and a warning around them.
LOG = f"""[    0.500000] smp: Brought up 1 node, 2 CPUs
[   40.000000] {RULE}
[   40.000001] BUG: KCSAN: data-race in some_core_fn / other_core_fn
[   40.000002]
[   40.000003] write to 0xffff888001000000 of 8 bytes by task 1 on cpu 0:
[   40.000004]  some_core_fn+0x10/0x20
[   40.000005]
[   40.000006] read to 0xffff888001000000 of 8 bytes by task 2 on cpu 1:
[   40.000007]  other_core_fn+0x30/0x40
[   40.000008]
[   40.000009] Reported by Kernel Concurrency Sanitizer on:
[   40.000010] {RULE}
[   41.000000] {RULE}
[   41.000001] BUG: KCSAN: data-race in watchdog_ping / wd_state_write
[   41.000002]
[   41.000003] write to 0xffff888002000000 of 4 bytes by task 3 on cpu 1:
[   41.000004]  wd_state_write+0x1d/0x80 [mei_wdt]
[   41.000005]  mei_cl_bus_rx_work+0x5e/0xb0
[   41.000006]
[   41.000007] read to 0xffff888002000000 of 4 bytes by task 4 on cpu 0:
[   41.000008]  watchdog_ping+0x22/0x90
[   41.000009]
[   41.000010] Reported by Kernel Concurrency Sanitizer on:
[   41.000011] {RULE}
"""


class FakeRun:
    def __init__(self):
        self.results = {}

    def report(self, name, ok, reason="", detail=()):
        self.results[name] = (ok, reason)


def judge(log, driver, kind="kcsan"):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "console.log"
        path.write_text(log)
        run = FakeRun()
        with contextlib.redirect_stdout(io.StringIO()):
            args = SimpleNamespace(kind=kind, driver=driver, kernel="bzImage")
            vm_run.check_kernel_log(run, path, 2, None, args)
        return run.results


class KcsanTest(unittest.TestCase):
    def test_reports_are_found_with_their_extent(self):
        lines = LOG.split("\n")
        reports = vm_run.kcsan_reports(lines)
        self.assertEqual(
            [r[2] for r in reports],
            ["data-race in some_core_fn / other_core_fn", "data-race in watchdog_ping / wd_state_write"],
        )
        self.assertTrue(lines[reports[0][1]].endswith(RULE))

    def test_a_race_in_the_driver_fails_rust_only(self):
        rust = judge(LOG, "rust")
        self.assertFalse(rust["kcsan"][0])
        self.assertIn("1 data race(s) on the driver's paths", rust["kcsan"][1])
        # The reports are test kcsan's, not offending kernel-log lines.
        self.assertTrue(rust["kernel-log"][0])
        c = judge(LOG, "c")
        self.assertNotIn("kcsan", c)
        self.assertTrue(c["kernel-log"][0])

    def second_report(self):
        return LOG[LOG.index("[   41.000000]") :]

    def second_report_without_the_driver(self):
        """The second report with its mei_wdt frame renamed away."""
        return self.second_report().replace("wd_state_write+0x1d/0x80 [mei_wdt]", "x_write+0x1d/0x80")

    def test_a_race_in_the_watchdog_core_fails_rust(self):
        core_only = self.second_report_without_the_driver().replace("mei_cl_bus_rx_work+", "process_one_work+")
        self.assertNotIn("[mei_wdt]", core_only)
        self.assertFalse(judge(core_only, "rust")["kcsan"][0])
        # With a compiler's suffix on the core's function.
        suffixed = core_only.replace("watchdog_ping+", "watchdog_ping.isra.0+")
        self.assertFalse(judge(suffixed, "rust")["kcsan"][0])

    def test_a_race_in_the_mei_client_bus_fails_rust(self):
        bus_only = self.second_report_without_the_driver().replace("watchdog_ping+", "y_read+")
        self.assertFalse(judge(bus_only, "rust")["kcsan"][0])
        elsewhere = bus_only.replace("mei_cl_bus_rx_work+", "process_one_work+")
        self.assertTrue(judge(elsewhere, "rust")["kcsan"][0])

    def test_the_known_benign_race_passes(self):
        benign = (
            self.second_report()
            .replace("watchdog_ping / wd_state_write", "mei_cldev_enabled / mei_set_devstate")
            .replace("wd_state_write+0x1d/0x80 [mei_wdt]", "mei_set_devstate+0x1d/0x80")
            .replace("watchdog_ping+", "mei_cldev_enabled+")
        )
        self.assertTrue(judge(benign, "rust")["kcsan"][0])

    def test_a_warning_inside_a_report_still_fails(self):
        at = LOG.index("[   41.000006]")
        warned = LOG[:at] + "[   41.000005] WARNING: CPU: 0 PID: 1 at x.c:1 f+0x0/0x1\n" + LOG[at:]
        self.assertFalse(judge(warned, "c")["kernel-log"][0])

    def test_frames_of_an_interrupted_task_do_not_count(self):
        # A timer interrupt's race, taken while the task was in the driver.
        at = LOG.index("[   40.000005]")
        under = (
            "[   40.000004]  asm_sysvec_apic_timer_interrupt+0x16/0x20\n"
            "[   40.000004]  watchdog_unregister_device+0xbe/0x170\n"
            "[   40.000004]  wd_state_write+0x1d/0x80 [mei_wdt]\n"
        )
        log = LOG[:at] + under + LOG[at : LOG.index("[   41.000000]")]
        self.assertTrue(judge(log, "rust")["kcsan"][0])

    def test_races_elsewhere_pass(self):
        start = LOG.index("[   41.000000]")
        rust = judge(LOG[:start], "rust")
        self.assertTrue(rust["kcsan"][0])
        self.assertTrue(rust["kernel-log"][0])

    def test_other_reports_still_fail_the_log(self):
        rust = judge(LOG + "[   50.000000] WARNING: CPU: 0 PID: 1 at x.c:1 f+0x0/0x1\n", "rust")
        self.assertFalse(rust["kernel-log"][0])

    def test_kcsan_lines_fail_other_kernels(self):
        release = judge(LOG, "rust", kind="release")
        self.assertNotIn("kcsan", release)
        self.assertFalse(release["kernel-log"][0])


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=1).result
    failed = len(result.failures) + len(result.errors)
    # In cargo's words, which the check's summary counts.
    status = "ok" if failed == 0 else "FAILED"
    print(f"test result: {status}. {result.testsRun - failed} passed; {failed} failed")
    sys.exit(1 if failed else 0)
