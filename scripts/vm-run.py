#!/usr/bin/env python3
"""Boot the test VM, stream the guest's results and judge them.

    vm-run.py --kernel BZIMAGE --initrd CPIO --driver c|rust
              --kind release|debug|kcsan --suite NAME --golden-dir DIR
              [--guest-bin MEI-WDT-TESTS] [--record] [--timeout SEC] [-v]
    vm-run.py --kernel BZIMAGE --drive DISK.img --driver c|rust
              --kind systemd --suite NAME --golden-dir DIR
              [--append ARGS] [--timeout SEC] [-v]
    vm-run.py --kernel BZIMAGE --initrd CPIO --driver both
              --kind bench --suite bench|bench-quick
              --golden-dir DIR --bench-out FILE

The third form is the benchmark (scripts/bench.sh): both drivers in one
boot, on one vCPU; the guest's `BENCH <record>` lines go to FILE, and its
`RESULT bench` says whether it measured everything.

With --drive the VM boots from DISK.img (raw, virtio-blk, root=/dev/vda rw)
instead of an initramfs: the systemd VM (scripts/consumers-test.sh). --append
adds kernel command line arguments.

The kernel log goes to ttyS0 (a file in the run directory; echoed with -v),
the guest's results to ttyS1, one record per line:

    RESULT <name> PASS | RESULT <name> FAIL <reason...>
    TRACE <name> BEGIN ... TRACE <name> END
    LOG <text>
    LOCKDEP debug_locks <n>      (kernels with lockdep, from /init)
    REBOOT <name>                (instead of DONE: <name> restarts the VM)
    DONE

A shutdown suite of the systemd VM says `SHUTDOWN <mode>` as it powers
off or reboots; test `<mode>` then judges the shutdown (SHUTDOWN_BOUND,
SHUTDOWN_EXPECT), and DONE is not required.

A scenario that ends in a reboot (REBOOT) has its trace printed by the ME
stub on the console as the machine goes down (`mei_stub: me<N> reboot
trace: <line>` ... `mei_stub: reboot trace end`); it passes when that trace
equals its golden file.

A scenario passes when the guest says PASS and its trace (if it sent one)
equals GOLDEN_DIR/<name>.trace. With --record (C driver only) the traces of
passing scenarios are written as the golden files instead. The kernel log
is checked for warnings, oopses, sanitizer and lockdep reports, hung tasks
and leaks (test `kernel-log`), and for the number of CPUs the kernel
brought up (test `vcpus`: two for the Rust driver, one for the C
reference, see CPUS). On a kernel with lockdep, lockdep must still be on
at the end (test `lockdep`: debug_locks not 0; the debug flavor must report
it). On the data-race kernel (--kind kcsan: two vCPUs for both drivers)
KCSAN's reports are listed, and one on the driver's paths (a frame in
mei_wdt, the watchdog core or the MEI client bus; PATH_OBJECTS) fails the
Rust driver (test `kcsan`); the C reference's are listed only.
--guest-bin is the guest test program (static, so it runs here too):
its `--list` names the scenarios, and every one the suite runs must report
a result (test `completeness`) and every golden file must belong to a
scenario (test `golden-files`); without it both are skipped. The last line
is `N passed, N failed`; the exit status is 0 iff nothing failed and the
guest reached DONE.
"""

import argparse
import datetime
import difflib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

# QEMU edu devices: the ME stub's PCI parents (bus-fixup's watchdog fixup
# casts the MEI device's parent to a pci_dev). No scenario has more than
# two stub devices at once, the benchmark thirteen. Each costs boot
# time (PCI and ACPI enumeration; on the debug kernel 10 s for twelve).
STUB_PARENTS = {"release": 4, "debug": 4, "kcsan": 4, "systemd": 4, "bench": 16}

# Kernel log lines that fail a run.
KERNEL_LOG_PATTERNS = [
    r"WARNING:",
    r"BUG:",
    r"kernel BUG at",
    r"Oops",
    r"KASAN",
    r"UBSAN",
    r"possible circular locking",
    r"possible recursive locking",
    r"inconsistent lock state",
    r"lockdep is turned off",
    r"DEBUG_LOCKS_WARN_ON",
    r"INFO: trying to register non-static key",
    # Also "BUG: MAX_LOCKDEP_ENTRIES too low!" and the like, though lockdep
    # prints those at KERN_DEBUG, below the console's level: the `lockdep`
    # test catches what they do (debug_locks 0).
    r"INFO: task .* blocked for more than",
    # rcu_sched self-detected stall, rcu_preempt/rcu_tasks detected stalls.
    r"rcu.*detected stall",
    r"unreferenced object",
    r"Kernel panic",
    r"general protection fault",
    r"ODEBUG",
    r"list_add corruption",
    r"list_del corruption",
    r"refcount_t:",
]
KERNEL_LOG_RE = re.compile("|".join(KERNEL_LOG_PATTERNS))
# A KCSAN report: its title line, the line that closes it, and its stack
# frames. A report is on the driver's paths when a frame is in the driver
# (either driver's module is mei_wdt) or in a function of PATH_OBJECTS:
# the watchdog core (its ops, ioctls and sysfs files) and the MEI client
# bus (the client API, its rx and notification work). Rust code is not
# instrumented: a race of its accesses shows as a C access's report, in
# the core that made it.
KCSAN_TITLE_RE = re.compile(r"BUG: KCSAN: (.*)$")
KCSAN_END_RE = re.compile(r"={40,}")
ACCESS_RE = re.compile(r" of \d+ bytes by ")
IRQ_ENTRY_RE = re.compile(r"\sasm_(sysvec_\w+|common_interrupt)\+0x")
FRAME_RE = re.compile(r"\s([A-Za-z_][\w.]*)\+0x[0-9a-f]+/0x[0-9a-f]+")
PATH_OBJECTS = (
    "drivers/watchdog/watchdog_dev.o",
    "drivers/watchdog/watchdog_core.o",
    "drivers/misc/mei/bus.o",
)
# Races on the driver's paths known to be benign: the MEI core's own
# unlocked read of its link state in `mei_cldev_enabled` (the Rust driver
# polls it: a stale answer costs one 20 ms poll) against its locked write.
BENIGN_KCSAN_RE = re.compile(r"mei_cldev_enabled / mei_set_devstate|mei_set_devstate / mei_cldev_enabled")
LOG_CONTEXT = 5  # lines shown around an offending kernel log line
LOG_MAX_HITS = 20

DEFAULT_TIMEOUT = {"release": 900, "debug": 3600, "kcsan": 3600, "systemd": 300, "bench": 900}
# The debug kernel's end-of-run kmemleak scan reads all of it: 2 GiB took
# 10 s longer than 1 GiB, which leaves KASAN room enough.
MEMORY_MB = {"release": 1024, "debug": 1024, "kcsan": 1024, "systemd": 1024, "bench": 1024}
# The Rust driver runs on two vCPUs. The C reference runs on one: on two,
# its probe fails when the rx callback's stop-request overlaps the probe's
# own send (EFAULT from the MEI core) and frees the watchdog that callback
# has just registered (KASAN: slab-use-after-free in identity_show).
# The benchmark ("both": the two drivers alternated in one boot) runs on
# one, where C is sound, so that the comparison is fair.
CPUS = {"c": 1, "rust": 2, "both": 1}
# The data-race kernel runs both drivers on two vCPUs: a race needs two.
KIND_CPUS = {"kcsan": 2}
# Scenarios that run by name, in a boot of their own, with settings of
# their own: the vCPUs for every driver, and the kernel report a driver is
# expected to give, a documented upstream bug (the first offending kernel
# log line must match it, and a clean log fails). smp_probe_race: the C
# reference's probe race on two vCPUs (the CPUS comment above).
SCENARIO_BOOTS = {
    "smp_probe_race": {
        "cpus": 2,
        "expected_report": {"c": r"BUG: KASAN: [a-z-]*use-after-free in "},
    },
}


# The systemd VM's shutdown suites (qemu/systemd/shutdown.sh): the guest
# says `SHUTDOWN <mode>` as it powers off or reboots with the ME silent, and
# the machine must be down (qemu gone) within SHUTDOWN_BOUND seconds.
# SHUTDOWN_EXPECT gives a driver's expected outcome where it is not that:
# the C reference's send waits for ever for a write the ME never
# completes, in PID 1's disarm (power-off) and in the watchdog core's stop
# on reboot, so its shutdown hangs (the bug users report), and the test
# requires the hang, with the console's last lines to show where.
SHUTDOWN_BOUND = 90
ANSI_RE = re.compile(r"\x1b?\[[0-9;]*m")
# The driver's errors about a silent ME (the Rust driver must log one).
DRIVER_ERROR_RE = re.compile(r"mei_wdt \S+: .*(failed|no ping response|no response)")
SHUTDOWN_EXPECT = {
    ("c", "shutdown_silent"): "hang",
    ("c", "shutdown_reboot"): "hang",
}


def boot_cpus(args):
    default = KIND_CPUS.get(args.kind, CPUS[args.driver])
    return SCENARIO_BOOTS.get(args.suite, {}).get("cpus", default)


def expected_report(args):
    return SCENARIO_BOOTS.get(args.suite, {}).get("expected_report", {}).get(args.driver)
# The drivers whose scenarios the guest lists (`both` is the benchmark's).
GUEST_DRIVERS = ("c", "rust")
CPUS_RE = re.compile(r"smp: Brought up \d+ nodes?, (\d+) CPUs?")
# After DONE the guest powers off: the power-down or halt message (or this
# many seconds) ends the run.
EXIT_GRACE = 5
# After REBOOT: the reboot notifiers (a watchdog stop) run first.
REBOOT_GRACE = 60
REBOOT_TRACE_RE = re.compile(r"mei_stub: me(\d+) reboot trace: (.*)$")
REBOOT_TRACE_END_RE = re.compile(r"mei_stub: reboot trace end$")
HALT_RE = re.compile(r"reboot: (Power down|System halted|Power off not available|Restarting)")
POLL_INTERVAL = 0.1
KEEP_RUNS = 30
RUN_DIR_RE = re.compile(r"\d{8}-\d{6}-(c|rust|both)-(release|debug|kcsan|systemd|bench)-\d+$")


def cache_dir():
    """Mirrors CACHE_DIR in scripts/common.sh."""
    if os.environ.get("MEI_WDT_CACHE"):
        return Path(os.environ["MEI_WDT_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "mei-wdt-rs"


class Tail:
    """Complete lines appended to a file that another process writes."""

    def __init__(self, path):
        self.path = path
        self.file = None
        self.partial = b""

    def poll(self):
        if self.file is None:
            try:
                self.file = open(self.path, "rb")
            except FileNotFoundError:
                return []
        data = self.file.read()
        if not data:
            return []
        *lines, self.partial = (self.partial + data).split(b"\n")
        return [decode(line) for line in lines]

    def rest(self):
        """Whatever follows the last newline, once the writer is gone."""
        lines = self.poll()
        if self.partial:
            lines.append(decode(self.partial))
            self.partial = b""
        return lines


def decode(raw):
    return raw.decode("utf-8", errors="replace").rstrip("\r")


class Run:
    """Judges the result records as they arrive and keeps the tally."""

    def __init__(self, args):
        self.args = args
        self.golden_dir = Path(args.golden_dir)
        self.passed = 0
        self.failed = 0
        self.done = False
        self.results = 0
        self.trace_name = None
        self.trace_lines = []
        self.traces = {}
        self.reported = set()
        self.lockdep = {}
        self.rebooting = None
        # (mode, when) once the guest said SHUTDOWN.
        self.shutdown = None
        self.reboot_traces = {}
        self.reboot_trace_end = False
        self.bench = []
        # Seconds spent per scenario (and before the first, and after the
        # last), from when its records reach the host: to find the slow ones.
        self.timings = []
        self.mark = time.monotonic()

    def lap(self, name):
        now = time.monotonic()
        self.timings.append((name, now - self.mark))
        self.mark = now

    def report(self, name, ok, reason="", detail=()):
        if ok:
            self.passed += 1
            print(f"PASS {name}", flush=True)
        else:
            self.failed += 1
            print(f"FAIL {name}: {reason}", flush=True)
        for line in detail:
            print(f"    {line}", flush=True)

    def feed(self, line):
        if not self.timings:
            self.lap("(boot, then the first scenario)")
        if self.trace_name is not None:
            if line == f"TRACE {self.trace_name} END":
                self.traces[self.trace_name] = self.trace_lines
                self.trace_name = None
            else:
                self.trace_lines.append(line)
            return
        word, _, rest = line.partition(" ")
        if word == "TRACE" and rest.endswith(" BEGIN"):
            self.trace_name = rest[: -len(" BEGIN")]
            self.trace_lines = []
        elif word == "RESULT":
            name, _, verdict = rest.partition(" ")
            status, _, reason = verdict.partition(" ")
            self.lap(name)
            self.judge(name, status == "PASS", reason or verdict)
        elif word == "LOG":
            print(f"  {rest}", flush=True)
        elif word == "BENCH":
            self.bench.append(rest)
        elif word == "LOCKDEP":
            key, _, value = rest.partition(" ")
            self.lockdep[key] = value
        elif word == "SHUTDOWN":
            self.lap(f"{rest} (to the shutdown)")
            self.shutdown = (rest, time.monotonic())
        elif word == "REBOOT":
            self.lap(f"{rest} (to its reboot)")
            self.rebooting = rest
            self.done = True
        elif line == "DONE":
            self.lap("(after the last scenario)")
            self.done = True
        elif line.strip():
            print(f"  (guest) {line}", flush=True)

    def console(self, line):
        """A kernel log line: collects the stub's reboot trace."""
        m = REBOOT_TRACE_RE.search(line)
        if m:
            self.reboot_traces.setdefault(int(m.group(1)), []).append(m.group(2))
        elif REBOOT_TRACE_END_RE.search(line):
            self.reboot_trace_end = True

    def judge_reboot(self):
        """The result of the scenario that rebooted, from its trace."""
        name = self.rebooting
        if not self.reboot_trace_end:
            self.judge(name, False, "no reboot trace from the stub: the machine did not go down cleanly")
            return
        devices = sorted(self.reboot_traces)
        trace = []
        for me in devices:
            if len(devices) > 1:
                trace.append(f"== me{me}")
            trace.extend(self.reboot_traces[me])
        self.traces[name] = trace
        self.judge(name, True, "")

    def judge(self, name, guest_pass, reason):
        self.results += 1
        self.reported.add(name)
        trace = self.traces.pop(name, None)
        golden = self.golden_dir / f"{name}.trace"
        if trace is None:
            self.report(name, guest_pass, reason)
            return
        text = "".join(f"{line}\n" for line in trace)
        if self.args.record:
            if guest_pass:
                self.golden_dir.mkdir(parents=True, exist_ok=True)
                golden.write_text(text)
                self.report(name, True, detail=[f"recorded {golden}"])
            else:
                self.report(name, False, f"{reason} (not recorded)")
            return
        if not golden.is_file():
            why = f"golden file {golden} missing (record it with --driver c --record)"
            self.report(name, False, reason if not guest_pass else why)
            return
        expected = golden.read_text()
        diff = []
        if expected != text:
            diff = list(
                difflib.unified_diff(
                    expected.splitlines(),
                    trace,
                    fromfile=str(golden),
                    tofile=f"{name} (observed)",
                    lineterm="",
                )
            )
        if not guest_pass:
            self.report(name, False, reason, diff)
        elif diff:
            self.report(name, False, f"trace differs from {golden}", diff)
        else:
            self.report(name, True)


def check_cpus(run, lines, want):
    """Test `vcpus`: the kernel brought up the vCPUs the VM was given."""
    up = [m.group(1) for m in map(CPUS_RE.search, lines) if m]
    if up == [str(want)]:
        run.report("vcpus", True)
    else:
        run.report("vcpus", False, f"kernel brought up {up or 'no'} CPU(s), want {want}")


# How `mei-wdt-tests --list` marks the scenarios `--suite all` does not run.
BY_NAME = "(only by name)"
DEBUG_KERNEL_ONLY = "(debug kernel only)"


def list_scenarios(guest_bin, driver):
    """The scenarios of `guest_bin --list --driver DRIVER`: (name, mark)
    pairs, mark BY_NAME for those that run only when named,
    DEBUG_KERNEL_ONLY for those `all` runs on the debug kernel only, and
    "" for the others."""
    cmd = [guest_bin, "--list", "--driver", driver]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise RuntimeError(f"{' '.join(cmd)}: {e}") from e
    scenarios = []
    for line in out.splitlines():
        name, _, mark = line.partition(" ")
        if not re.fullmatch(r"[A-Za-z0-9_-]+", name) or mark not in ("", BY_NAME, DEBUG_KERNEL_ONLY):
            raise RuntimeError(f"{' '.join(cmd)}: unexpected line {line!r}")
        scenarios.append((name, mark))
    if not scenarios:
        raise RuntimeError(f"{' '.join(cmd)}: no scenarios listed")
    return scenarios


class Inventory:
    """What the guest program says should run: the scenarios this suite must
    report, and every scenario either driver has (the owners of golden
    files). `error` instead when the list could not be had."""

    def __init__(self, args):
        self.expected, self.known, self.error = [], set(), None
        try:
            lists = {d: list_scenarios(args.guest_bin, d) for d in GUEST_DRIVERS}
        except RuntimeError as e:
            self.error = str(e)
            return
        self.known = {name for scenarios in lists.values() for name, _ in scenarios}
        if args.suite == "all":
            runs = ("", DEBUG_KERNEL_ONLY) if args.kind == "debug" else ("",)
            self.expected = [name for name, mark in lists[args.driver] if mark in runs]
        else:
            # As the guest does: each name given, once.
            self.expected = list(dict.fromkeys(n for n in args.suite.split(",") if n))


def check_completeness(run, inventory):
    """Test `completeness`: every scenario the suite runs reported a RESULT."""
    if inventory.error:
        run.report("completeness", False, f"cannot list the scenarios: {inventory.error}")
        return
    missing = [name for name in inventory.expected if name not in run.reported]
    if missing:
        run.report(
            "completeness",
            False,
            f"{len(missing)} of {len(inventory.expected)} scenario(s) reported no result: "
            + ", ".join(missing),
        )
    else:
        run.report("completeness", True)


def check_golden_files(run, golden_dir, inventory):
    """Test `golden-files`: each file in the golden directory is the trace
    of a scenario (of either driver). A scenario without one is fine: some
    emit no trace."""
    if inventory.error:
        run.report("golden-files", False, f"cannot list the scenarios: {inventory.error}")
        return
    files = sorted(p.name for p in golden_dir.iterdir()) if golden_dir.is_dir() else []
    owned = {f"{name}.trace" for name in inventory.known}
    orphans = [f for f in files if not f.startswith(".") and f not in owned]
    if orphans:
        run.report(
            "golden-files",
            False,
            f"{len(orphans)} file(s) in {golden_dir} belong to no scenario: " + ", ".join(orphans),
        )
    else:
        run.report("golden-files", True)


def check_lockdep(run, flavor):
    """Test `lockdep`: lockdep was still on when the guest finished (it
    turns itself off after its first report or when its tables run out,
    and checks nothing from then on). Only the debug kernel has it."""
    value = run.lockdep.get("debug_locks")
    if value is None:
        if flavor == "debug":
            why = "" if run.done else " (the guest did not reach DONE)"
            run.report("lockdep", False, f"the debug kernel reported no LOCKDEP debug_locks{why}")
        return
    if not value.isdigit():
        run.report("lockdep", False, f"bad LOCKDEP debug_locks value {value!r}")
    elif int(value) == 0:
        why = "lockdep turned itself off (debug_locks 0); see the kernel log and LOG lines"
        run.report("lockdep", False, why)
    else:
        run.report("lockdep", True)


def judge_shutdown(run, args, down_at, hung, console):
    """Test `<mode>` of a shutdown suite: the machine went down within
    SHUTDOWN_BOUND of the guest's SHUTDOWN (and the Rust driver logged an
    error about its silent ME), or, where SHUTDOWN_EXPECT says so, hung
    (shown by the console's last lines)."""
    mode, said_at = run.shutdown
    want = SHUTDOWN_EXPECT.get((args.driver, mode), "down")
    try:
        lines = [decode(raw) for raw in Path(console).read_bytes().split(b"\n") if raw.strip()]
    except FileNotFoundError:
        lines = []
    last = [ANSI_RE.sub("", line).strip() for line in lines[-8:]]
    if hung:
        what = f"no power-off or reboot within {SHUTDOWN_BOUND} s of the shutdown"
        print(f"  {what}; the console's last lines:", flush=True)
        for line in last:
            print(f"    {line}", flush=True)
        run.report(mode, want == "hang", what, () if want == "hang" else last)
        return
    what = f"the machine went down {down_at - said_at:.1f} s after the shutdown began"
    print(f"  {what}", flush=True)
    errors = [ANSI_RE.sub("", line).strip() for line in lines if DRIVER_ERROR_RE.search(line)]
    for line in errors:
        print(f"  kernel: {line}", flush=True)
    if want == "hang":
        run.report(mode, False, f"{what}: the documented hang did not happen", last)
    elif args.driver == "rust" and not errors:
        run.report(mode, False, f"{what}, but mei_wdt logged no error while the ME was silent", last)
    else:
        run.report(mode, True)


def kcsan_reports(lines):
    """The KCSAN reports in a kernel log, as (first line, last line, title):
    from its `BUG: KCSAN:` line to the `====` line that closes it."""
    reports = []
    i = 0
    while i < len(lines):
        m = KCSAN_TITLE_RE.search(lines[i])
        if m:
            j = i + 1
            while j < len(lines) - 1 and not KCSAN_END_RE.search(lines[j]):
                j += 1
            reports.append((i, j, m.group(1).strip()))
            i = j
        i += 1
    return reports


def path_symbols(kernel):
    """The functions of PATH_OBJECTS in the build tree of `kernel` (its
    bzImage)."""
    kdir = Path(kernel).resolve().parents[3]
    # The toolchain 7.3's kernels are built with (make setup), or binutils.
    nm = shutil.which("llvm-nm-19") or "nm"
    symbols = set()
    for obj in PATH_OBJECTS:
        out = subprocess.run(
            [nm, "--defined-only", str(kdir / obj)], capture_output=True, text=True, check=True
        ).stdout
        symbols |= {f[2] for f in (x.split() for x in out.splitlines()) if len(f) == 3 and f[1] in "tT"}
    return symbols


def on_driver_paths(report_lines, symbols):
    """Whether a report has a frame in mei_wdt or in one of `symbols` (a
    compiler suffix such as `.isra.0` or `.cold` stripped). An access's
    stack ends at an interrupt's entry: the frames below it are the
    interrupted task's, not the racing access's."""
    interrupted = False
    for x in report_lines:
        if ACCESS_RE.search(x):
            interrupted = False
        elif IRQ_ENTRY_RE.search(x):
            interrupted = True
        if interrupted:
            continue
        if "[mei_wdt]" in x:
            return True
        if any(m.group(1).split(".")[0] in symbols for m in FRAME_RE.finditer(x)):
            return True
    return False


def check_kcsan(run, lines, reports, driver, symbols):
    """Test `kcsan` (the data-race kernel, the Rust driver): no KCSAN report
    on the driver's paths, but the known benign ones. The C reference's
    are listed, not judged (README). Reports elsewhere are listed by
    title."""
    on_paths = [r for r in reports if on_driver_paths(lines[r[0] : r[1] + 1], symbols)]
    ours = [r for r in on_paths if not BENIGN_KCSAN_RE.search(r[2])]
    print(
        f"  KCSAN: {len(reports)} report(s), {len(on_paths)} on the driver's paths"
        f" ({len(on_paths) - len(ours)} known benign)",
        flush=True,
    )
    elsewhere = {}
    for r in reports:
        if r not in on_paths:
            elsewhere[r[2]] = elsewhere.get(r[2], 0) + 1
    for title, n in sorted(elsewhere.items()):
        print(f"    elsewhere: {title}" + (f" ({n} times)" if n > 1 else ""), flush=True)
    for r in on_paths:
        print(f"    driver's paths: {r[2]}{'' if r in ours else ' (benign)'}", flush=True)
    if driver != "rust":
        return
    detail = [x for r in ours for x in lines[r[0] : r[1] + 1]][: LOG_MAX_HITS * 4]
    first = ours[0][2] if ours else ""
    run.report("kcsan", not ours, f"{len(ours)} data race(s) on the driver's paths, first: {first}", detail)


def check_kernel_log(run, path, cpus, expected=None, args=None):
    """Test `kernel-log`: no offending line; or, with `expected` (a regex),
    the first offending line matches it. On the data-race kernel, KCSAN's
    reports are test `kcsan`'s."""
    try:
        lines = [decode(raw) for raw in Path(path).read_bytes().split(b"\n")]
    except FileNotFoundError:
        run.report("kernel-log", False, f"no kernel log at {path}")
        return
    check_cpus(run, lines, cpus)
    # Only a report's title: anything else that another CPU prints in the
    # middle of a report is judged as usual.
    kcsan_titles = set()
    if args is not None and args.kind == "kcsan":
        reports = kcsan_reports(lines)
        try:
            symbols = path_symbols(args.kernel)
        except (OSError, subprocess.CalledProcessError) as e:
            run.report("kcsan", False, f"cannot list the functions of {', '.join(PATH_OBJECTS)}: {e}")
        else:
            check_kcsan(run, lines, reports, args.driver, symbols)
        kcsan_titles = {r[0] for r in reports}
    hits = [i for i, line in enumerate(lines) if KERNEL_LOG_RE.search(line) and i not in kcsan_titles]
    if expected:
        if not hits:
            run.report("kernel-log", False, f"expected a report matching {expected!r}; none")
            return
        if re.search(expected, lines[hits[0]]):
            run.report("kernel-log", True)
            print(f"  the expected report: {lines[hits[0]].strip()}", flush=True)
            return
    if not hits:
        run.report("kernel-log", True)
        return
    shown = set()
    detail = []
    for i in hits[:LOG_MAX_HITS]:
        lo, hi = max(0, i - LOG_CONTEXT), min(len(lines), i + LOG_CONTEXT + 1)
        if detail and lo > max(shown) + 1:
            detail.append("...")
        for j in range(lo, hi):
            if j not in shown:
                shown.add(j)
                detail.append(("> " if j in hits else "  ") + lines[j])
    if len(hits) > LOG_MAX_HITS:
        detail.append(f"... and {len(hits) - LOG_MAX_HITS} more")
    first = lines[hits[0]].strip()
    run.report("kernel-log", False, f"{len(hits)} offending line(s), first: {first}", detail)


def new_run_dir(args):
    runs = cache_dir() / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    # Keep only the most recent of our own run directories (others may
    # keep files here too).
    ours = [p for p in runs.iterdir() if p.is_dir() and RUN_DIR_RE.match(p.name)]
    old = sorted(ours, key=lambda p: p.stat().st_mtime)
    for p in old[: max(0, len(old) - KEEP_RUNS + 1)]:
        shutil.rmtree(p, ignore_errors=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    d = runs / f"{stamp}-{args.driver}-{args.kind}-{os.getpid()}"
    d.mkdir()
    return d


def qemu_command(args, console, results):
    append = [
        "console=ttyS0",
        "panic=-1",
        # Any oops ends the run at once instead of a hung guest.
        "oops=panic",
        f"meiwdt.driver={args.driver}",
        f"meiwdt.suite={args.suite}",
    ]
    if args.append:
        append.append(args.append)
    boot = ["-initrd", args.initrd] if args.initrd else []
    if args.drive:
        append[1:1] = ["root=/dev/vda", "rw"]
        boot += ["-drive", f"file={args.drive},format=raw,if=virtio"]
    return [
        "qemu-system-x86_64",
        "-machine", "q35",
        # No 5-level paging: vPro clients have none, and 7.3's early boot
        # clears LA57 from boot_cpu_data in identify_cpu(), so a timer
        # interrupt in that window makes KASAN report a direct-map address
        # as a wild access (seen once in 30 debug boots).
        "-cpu", "max,la57=off",
        "-smp", str(boot_cpus(args)),
        "-m", str(MEMORY_MB[args.kind]),
        "-nographic",
        "-nodefaults",
        "-monitor", "none",
        "-no-reboot",
        "-kernel", args.kernel,
        *boot,
        # The ME stub's PCI parents, one per stub device at once.
        *["-device", "edu"] * STUB_PARENTS[args.kind],
        "-append", " ".join(append),
        "-serial", f"file:{console}",
        "-serial", f"file:{results}",
    ]  # fmt: skip


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernel", required=True, help="bzImage")
    ap.add_argument("--initrd", help="initramfs cpio")
    ap.add_argument("--drive", help="root disk image (raw ext4; boots root=/dev/vda rw)")
    ap.add_argument("--append", help="more kernel command line arguments")
    ap.add_argument("--driver", required=True, choices=["c", "rust", "both"])
    ap.add_argument(
        "--kind",
        required=True,
        choices=["release", "debug", "kcsan", "systemd", "bench"],
        help="the scenarios on the release, the debug or the data-race (KCSAN) kernel, the"
        " systemd VM or the benchmark"
        " (both on the release kernel)",
    )
    ap.add_argument("--suite", required=True, help="all, a scenario, or a comma list")
    ap.add_argument("--golden-dir", required=True, help="directory of <scenario>.trace")
    ap.add_argument(
        "--guest-bin",
        help="the guest test program (mei-wdt-tests) to ask for the scenarios (--list)",
    )
    ap.add_argument("--record", action="store_true", help="write golden traces (C driver only)")
    ap.add_argument("--timeout", type=float, help="wall clock limit in seconds")
    ap.add_argument("--bench-out", help="write the guest's BENCH records to this file (suite bench)")
    ap.add_argument("-v", "--verbose", action="store_true", help="echo the kernel log")
    args = ap.parse_args()
    if args.record and args.driver != "c":
        ap.error("--record needs --driver c: golden traces come from the C reference driver")
    if not re.fullmatch(r"[A-Za-z0-9_,-]+", args.suite):
        ap.error(f"bad suite name {args.suite!r}")
    if not args.initrd and not args.drive:
        ap.error("one of --initrd and --drive is required")
    if (args.driver == "both") != bool(args.bench_out):
        ap.error("--driver both goes with --bench-out: the benchmark runs both drivers")
    if args.guest_bin and args.drive:
        ap.error("--guest-bin is for the initramfs VM (its /init runs the scenarios)")
    for f in (args.kernel, args.initrd, args.drive, args.guest_bin):
        if f is not None and not os.path.isfile(f):
            ap.error(f"{f} not found")
    if not shutil.which("qemu-system-x86_64"):
        sys.exit("error: qemu-system-x86_64 not found; install qemu-system-x86")
    timeout = args.timeout or DEFAULT_TIMEOUT[args.kind]

    run_dir = new_run_dir(args)
    console, results = run_dir / "console.log", run_dir / "results.log"
    cmd = qemu_command(args, console, results)
    (run_dir / "cmdline").write_text(" ".join(cmd) + "\n")
    print(f"vm-run: {args.driver} driver, {args.kind} run, suite {args.suite}", flush=True)

    inventory = None
    if args.guest_bin:
        inventory = Inventory(args)
    elif not args.drive:
        print("vm-run: no --guest-bin: completeness and golden-files checks skipped", flush=True)

    run = Run(args)
    console_tail, results_tail = Tail(console), Tail(results)
    started = time.monotonic()
    timed_out = False
    shutdown_hung = False
    done_at = None
    halted = False
    with open(run_dir / "qemu.log", "wb") as qemu_log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=qemu_log, stderr=subprocess.STDOUT)
        try:
            while True:
                exited = proc.poll() is not None
                for line in console_tail.rest() if exited else console_tail.poll():
                    if args.verbose:
                        print(f"| {line}", flush=True)
                    halted = halted or bool(HALT_RE.search(line))
                    run.console(line)
                for line in results_tail.rest() if exited else results_tail.poll():
                    run.feed(line)
                now = time.monotonic()
                if exited:
                    break
                if run.done and done_at is None:
                    done_at = now
                grace = REBOOT_GRACE if run.rebooting else EXIT_GRACE
                if done_at is not None and (halted or now - done_at > grace):
                    break
                if now - started > timeout:
                    timed_out = True
                    break
                if run.shutdown and now - run.shutdown[1] > SHUTDOWN_BOUND:
                    shutdown_hung = True
                    break
                time.sleep(POLL_INTERVAL)
        finally:
            stop(proc)
            down_at = time.monotonic()
    elapsed = time.monotonic() - started
    if run.shutdown:
        judge_shutdown(run, args, down_at, shutdown_hung, console)
    run.lap("(to the end: kmemleak scan, power-off or reboot)")
    with open(run_dir / "timings.log", "w") as f:
        for name, secs in sorted(run.timings, key=lambda t: -t[1]):
            f.write(f"{secs:8.1f} {name}\n")

    # A boot that expects a kernel report may end with it (the guest
    # restarts the machine): test `kernel-log` judges it. A shutdown suite
    # may end without DONE (reboot(2) at once, or a hang): its own test
    # judges that.
    expected = expected_report(args)
    if timed_out:
        run.report("vm-timeout", False, f"no DONE within {timeout:.0f} s; qemu killed")
    elif not run.done and not expected and not run.shutdown:
        tail = (run_dir / "qemu.log").read_text(errors="replace").strip().splitlines()[-5:]
        run.report(
            "guest",
            False,
            f"qemu exited with status {proc.returncode} before the guest reached DONE",
            tail,
        )
    if run.rebooting:
        run.judge_reboot()
    if run.done and run.results == 0 and not run.shutdown:
        run.report("guest", False, "the guest reached DONE without reporting any result")
    if inventory is not None:
        check_completeness(run, inventory)
        check_golden_files(run, run.golden_dir, inventory)
    if not expected:
        # (A report turns lockdep off.)
        check_lockdep(run, args.kind)
    check_kernel_log(run, console, boot_cpus(args), expected, args)
    if args.bench_out:
        Path(args.bench_out).write_text("".join(f"{r}\n" for r in run.bench))
        print(f"vm-run: {len(run.bench)} BENCH records in {args.bench_out}", flush=True)
    print(f"vm-run: {elapsed:.1f} s, logs in {run_dir}", flush=True)
    print(f"{run.passed} passed, {run.failed} failed", flush=True)
    # (Without DONE only where a test of its own judged the end.)
    ended = run.done or expected or run.shutdown
    return 0 if run.failed == 0 and ended else 1


if __name__ == "__main__":
    sys.exit(main())
