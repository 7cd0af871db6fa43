//! The benchmark (`--bench`): the C and the Rust mei_wdt, alternated in
//! one boot against the same stub, and the MEI bus's own round trip
//! through /dev/meiN as the floor. Raw figures go to the results port as
//! `BENCH <kind> <driver> <round> <values...>` records; scripts/bench.py
//! turns them into statistics and Rust/C ratios.
//!
//! Records (times in ns, memory in bytes):
//!
//!     BENCH rtt c|rust|floor <round> <ns>...      one value per keepalive
//!     BENCH tput c|rust <round> <config> <calls per second>
//!     BENCH bind c|rust <round> <ns>...           sysfs bind to /dev/watchdogN
//!     BENCH load c|rust <round> <ns>              insmod to /dev/watchdogN
//!     BENCH mem c|rust <round> <bytes per bound device>
//!     BENCH coresize c|rust <bytes>

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::framework::{wait_until, Timeouts};
use crate::kmod;
use crate::report::Reporter;
use crate::stub::{self, Me, DRIVER_DIR};
use crate::sys::{self, IntIoctl};
use crate::watchdog::{self, Watchdog};

/// Stub config of every benchmarked device: a v2 client (every ping waits
/// for its answer) and no trace, whose bounded record shifts on every
/// message once full.
const DEVICE: &str = "wd=1 version=2 notify=1 trace=0";

/// The C driver's file beside the Rust one (same module name, mei_wdt).
const C_MODULE: &str = "mei_wdt_c";

/// What one run measures, and how much.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    pub rounds: usize,
    /// Timed keepalives per round, after [`Sizes::warmup`] untimed ones.
    pub calls: usize,
    pub warmup: usize,
    /// Keepalives per throughput configuration.
    pub tput_calls: usize,
    pub binds: usize,
    /// Devices bound at once for the memory figure.
    pub mem_devices: usize,
}

impl Sizes {
    pub const FULL: Sizes = Sizes {
        rounds: 7,
        calls: 2000,
        warmup: 200,
        tput_calls: 2000,
        binds: 20,
        mem_devices: 12,
    };
    /// For `make check`: every figure, a few hundred calls.
    pub const QUICK: Sizes = Sizes {
        rounds: 2,
        calls: 300,
        warmup: 30,
        tput_calls: 200,
        binds: 3,
        mem_devices: 4,
    };
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Under {
    C,
    Rust,
}

impl Under {
    fn name(self) -> &'static str {
        match self {
            Under::C => "c",
            Under::Rust => "rust",
        }
    }

    fn module_file(self) -> &'static str {
        match self {
            Under::C => C_MODULE,
            Under::Rust => kmod::DRIVER,
        }
    }
}

/// A line for the results port, held until the measuring is over.
enum Line {
    Bench(String),
    Log(String),
}

struct Bench {
    /// Output waits for the end: the emulated serial port sends at its
    /// baud rate, by interrupts, and a record of thousands of values
    /// would still be going out (slowing the next phase) otherwise.
    lines: Vec<Line>,
    t: Timeouts,
    sizes: Sizes,
    me: Me,
    cldev: String,
}

/// Runs the benchmark, then reports what it measured; returns an error
/// that ended it.
pub fn run(rep: &mut Reporter, sizes: Sizes) -> Result<(), String> {
    let mut lines = Vec::new();
    let outcome = measure(&mut lines, sizes);
    for line in lines {
        match line {
            Line::Bench(text) => rep.bench(&text),
            Line::Log(text) => rep.log(&text),
        }
    }
    outcome
}

fn measure(lines: &mut Vec<Line>, sizes: Sizes) -> Result<(), String> {
    let t = Timeouts::detect();
    kmod::insmod(kmod::STUB, &[])?;
    wait_until("debugfs mei_stub/add", t.probe, || {
        Path::new(stub::STUB_DIR).join("add").exists().then_some(())
    })?;
    let me = stub::add(DEVICE, &t)?;
    let cldev = wait_until("the watchdog client on the MEI bus", t.probe, || {
        stub::only_wdt_client().ok()
    })?;
    let mut b = Bench {
        lines: Vec::new(),
        t,
        sizes,
        me,
        cldev,
    };
    for round in 0..sizes.rounds {
        // Alternate which driver goes first, so neither always runs on a
        // machine the other has just warmed.
        let order = if round % 2 == 0 {
            [Under::C, Under::Rust]
        } else {
            [Under::Rust, Under::C]
        };
        let done = b.floor(round).and_then(|()| {
            order
                .into_iter()
                .try_for_each(|under| b.driver(under, round))
        });
        if let Err(e) = done {
            lines.append(&mut b.lines);
            return Err(e);
        }
        b.log(format!(
            "bench: round {} of {} done",
            round + 1,
            sizes.rounds
        ));
    }
    lines.append(&mut b.lines);
    Ok(())
}

/// Summarizes `v` for the log: min and median, µs.
fn summary(v: &[u64]) -> String {
    let mut s = v.to_vec();
    s.sort_unstable();
    match (s.first(), s.get(s.len() / 2)) {
        (Some(min), Some(med)) => format!(
            "min {:.1} µs, median {:.1} µs",
            *min as f64 / 1e3,
            *med as f64 / 1e3
        ),
        _ => "no values".into(),
    }
}

fn join(v: &[u64]) -> String {
    v.iter().map(u64::to_string).collect::<Vec<_>>().join(" ")
}

fn elapsed_ns(start: Instant) -> u64 {
    start.elapsed().as_nanos().try_into().unwrap_or(u64::MAX)
}

impl Bench {
    fn record(&mut self, text: String) {
        self.lines.push(Line::Bench(text));
    }

    fn log(&mut self, text: String) {
        self.lines.push(Line::Log(text));
    }

    /// The floor: the same start request and its answer through the MEI
    /// character device, with no driver bound to the client.
    fn floor(&mut self, round: usize) -> Result<(), String> {
        let node = mei_node(&self.cldev)?;
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&node)
            .map_err(|e| format!("open {}: {e}", node.display()))?;
        let (_, version) = sys::mei_connect(&f, &WDT_UUID_LE)
            .map_err(|e| format!("IOCTL_MEI_CONNECT_CLIENT on {}: {e}", node.display()))?;
        if version != 2 {
            return Err(format!(
                "the watchdog client has protocol version {version}, want 2"
            ));
        }
        let req = start_request(120);
        let mut buf = [0u8; 64];
        let mut once = |f: &mut File| -> Result<(), String> {
            f.write_all(&req)
                .map_err(|e| format!("write to {}: {e}", node.display()))?;
            let n = f
                .read(&mut buf)
                .map_err(|e| format!("read from {}: {e}", node.display()))?;
            // A start response: command 2, subcommand 0x83, status 0.
            if n < 5 || buf[0] != 0x02 || buf[2] != 0x83 || buf[4] != 0 {
                return Err(format!("not a good start response: {:02x?}", &buf[..n]));
            }
            Ok(())
        };
        for _ in 0..self.sizes.warmup {
            once(&mut f)?;
        }
        let mut v = Vec::with_capacity(self.sizes.calls);
        for _ in 0..self.sizes.calls {
            let start = Instant::now();
            once(&mut f)?;
            v.push(elapsed_ns(start));
        }
        // Disarm the firmware timer before the drivers take over.
        f.write_all(&STOP_REQUEST)
            .map_err(|e| format!("stop via {}: {e}", node.display()))?;
        drop(f);
        self.log(format!("bench: floor round {round}: {}", summary(&v)));
        self.record(format!("rtt floor {round} {}", join(&v)));
        Ok(())
    }

    fn driver(&mut self, under: Under, round: usize) -> Result<(), String> {
        let name = under.name();
        let path = kmod::modules_dir()?
            .join("extra")
            .join(format!("{}.ko", under.module_file()));
        let start = Instant::now();
        run_cmd(Command::new("insmod").arg(&path))?;
        let wd = self.wait_registered()?;
        self.record(format!("load {name} {round} {}", elapsed_ns(start)));
        // C sets IDLE only after the device is visible: an open before
        // then is forgotten, and its keepalives send nothing (README,
        // difference 8). Whatever is still in flight ends first.
        self.me.settle(&self.t)?;
        let coresize = fs::read_to_string("/sys/module/mei_wdt/coresize")
            .map_err(|e| format!("coresize: {e}"))?;
        if round == 0 {
            self.record(format!("coresize {name} {}", coresize.trim()));
        }

        let v = self.keepalives(&wd)?;
        self.log(format!("bench: {name} round {round}: {}", summary(&v)));
        self.record(format!("rtt {name} {round} {}", join(&v)));

        for threads in [1, 2, 4] {
            let rate = self.throughput(std::slice::from_ref(&wd), threads)?;
            self.record(format!("tput {name} {round} threads{threads} {rate:.0}"));
        }
        let second = stub::add(DEVICE, &self.t)?;
        let both = wait_until("two iamt_wdt watchdogs", self.t.probe, || {
            let all = watchdog::find_all();
            (all.len() == 2).then_some(all)
        })?;
        second.settle(&self.t)?;
        let rate = self.throughput(&both, 2)?;
        self.record(format!("tput {name} {round} two_devices {rate:.0}"));
        stub::remove(&second)?;
        wait_until("one iamt_wdt watchdog", self.t.probe, || {
            (watchdog::find_all().len() == 1).then_some(())
        })?;

        let binds = self.binds()?;
        self.record(format!("bind {name} {round} {}", join(&binds)));
        let mem = self.memory_per_device()?;
        self.record(format!("mem {name} {round} {mem}"));

        kmod::rmmod(kmod::DRIVER, &self.t)?;
        wait_until("no iamt_wdt watchdog", self.t.probe, || {
            watchdog::find_all().is_empty().then_some(())
        })
    }

    /// Waits for the main device's watchdog, polling without sleeping (the
    /// benchmark's one vCPU yields to the kernel's work items in between).
    fn wait_registered(&self) -> Result<Watchdog, String> {
        let dir = Path::new(stub::MEI_DEVICES)
            .join(&self.cldev)
            .join("watchdog");
        let deadline = Instant::now() + self.t.probe;
        loop {
            if let Some(name) = fs::read_dir(&dir)
                .into_iter()
                .flatten()
                .flatten()
                .find_map(|e| e.file_name().into_string().ok())
            {
                if Path::new("/dev").join(&name).exists() {
                    return watchdog::find_all()
                        .into_iter()
                        .find(|w| w.name == name)
                        .ok_or(format!("{name} is not an iamt_wdt watchdog"));
                }
            }
            if Instant::now() > deadline {
                return Err(format!("no watchdog under {} in time", dir.display()));
            }
            thread::yield_now();
        }
    }

    fn keepalives(&self, wd: &Watchdog) -> Result<Vec<u64>, String> {
        let f = wd.open()?;
        let ping = || {
            f.ioctl(IntIoctl::Keepalive, 0)
                .map_err(|e| format!("keepalive: {e}"))
        };
        for _ in 0..self.sizes.warmup {
            ping()?;
        }
        let mut v = Vec::with_capacity(self.sizes.calls);
        for _ in 0..self.sizes.calls {
            let start = Instant::now();
            ping()?;
            v.push(elapsed_ns(start));
        }
        drop(f);
        Ok(v)
    }

    /// Keepalives per second: `threads` threads share the calls, spread
    /// over the devices' open files.
    fn throughput(&self, wds: &[Watchdog], threads: usize) -> Result<f64, String> {
        let files = wds
            .iter()
            .map(Watchdog::open)
            .collect::<Result<Vec<_>, _>>()?;
        let per_thread = self.sizes.tput_calls / threads;
        let start = Instant::now();
        let results: Vec<Result<(), String>> = thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|i| {
                    let f = &files[i % files.len()];
                    s.spawn(move || {
                        for _ in 0..per_thread {
                            f.ioctl(IntIoctl::Keepalive, 0)
                                .map_err(|e| format!("keepalive: {e}"))?;
                        }
                        Ok(())
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err("a thread panicked".into())))
                .collect()
        });
        let secs = start.elapsed().as_secs_f64();
        for r in results {
            r?;
        }
        for f in files {
            drop(f);
        }
        Ok((per_thread * threads) as f64 / secs)
    }

    /// Unbinds and binds the main device; each time, from the `bind` write
    /// to /dev/watchdogN.
    fn binds(&self) -> Result<Vec<u64>, String> {
        let dir = Path::new(DRIVER_DIR);
        let mut v = Vec::with_capacity(self.sizes.binds);
        for _ in 0..self.sizes.binds {
            stub::write_file(&dir.join("unbind"), &self.cldev)?;
            wait_until("no iamt_wdt watchdog", self.t.probe, || {
                watchdog::find_all().is_empty().then_some(())
            })?;
            self.me.settle(&self.t)?;
            let start = Instant::now();
            stub::write_file(&dir.join("bind"), &self.cldev)?;
            self.wait_registered()?;
            v.push(elapsed_ns(start));
            self.me.settle(&self.t)?;
        }
        Ok(v)
    }

    /// The kernel memory one bound device costs: `mem_devices` more
    /// devices, all unbound and then all bound, the bytes still allocated
    /// divided by their number. Allocation profiling is on from before
    /// they come until after they are gone: the profiler counts a free
    /// only while it is on, and a module's tag with bytes left at its
    /// unload is a kernel warning.
    fn memory_per_device(&self) -> Result<i64, String> {
        let n = self.sizes.mem_devices;
        set_profiling(true)?;
        let measured = self.memory_with_profiling(n);
        let gone = wait_until("one iamt_wdt watchdog", self.t.probe, || {
            (watchdog::find_all().len() == 1).then_some(())
        })
        .and_then(|()| self.me.settle(&self.t).map(|_| ()));
        // Objects freed after an RCU grace period or by a work item.
        thread::sleep(Duration::from_millis(200));
        set_profiling(false)?;
        gone.and(measured)
    }

    fn memory_with_profiling(&self, n: usize) -> Result<i64, String> {
        let mut mes = Vec::with_capacity(n);
        let measured = (|| {
            for _ in 0..n {
                mes.push(stub::add(DEVICE, &self.t)?);
            }
            wait_until(
                &format!("{} iamt_wdt watchdogs", n + 1),
                self.t.probe,
                || (watchdog::find_all().len() == n + 1).then_some(()),
            )?;
            let extra: Vec<String> = stub::wdt_clients()
                .into_iter()
                .filter(|c| *c != self.cldev)
                .collect();
            let dir = Path::new(DRIVER_DIR);
            for c in &extra {
                stub::write_file(&dir.join("unbind"), c)?;
            }
            wait_until("one iamt_wdt watchdog", self.t.probe, || {
                (watchdog::find_all().len() == 1).then_some(())
            })?;
            let before = allocated_bytes(&mes, &self.t)?;
            for c in &extra {
                stub::write_file(&dir.join("bind"), c)?;
            }
            wait_until(
                &format!("{} iamt_wdt watchdogs", n + 1),
                self.t.probe,
                || (watchdog::find_all().len() == n + 1).then_some(()),
            )?;
            let after = allocated_bytes(&mes, &self.t)?;
            Ok((after - before) / n as i64)
        })();
        for me in &mes {
            stub::remove(me)?;
        }
        measured
    }
}

/// Turns allocation profiling (the bench kernel's
/// CONFIG_MEM_ALLOC_PROFILING) on or off.
fn set_profiling(on: bool) -> Result<(), String> {
    stub::write_file(
        Path::new("/proc/sys/vm/mem_profiling"),
        if on { "1" } else { "0" },
    )
}

/// Bytes allocated now, by every call site that /proc/allocinfo counts,
/// once `mes` are idle and objects freed through RCU are back.
fn allocated_bytes(mes: &[Me], t: &Timeouts) -> Result<i64, String> {
    for me in mes {
        me.settle(t)?;
    }
    thread::sleep(Duration::from_millis(100));
    let info = stub::read_file(Path::new("/proc/allocinfo"))?;
    // "<bytes> <calls> <file:line> [module] func:<name>", after a header.
    Ok(info
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse::<i64>().ok())
        .sum())
}

/// The MEI character device of the ME that has `cldev` (`<me>-<uuid>`).
fn mei_node(cldev: &str) -> Result<PathBuf, String> {
    for e in fs::read_dir("/sys/class/mei").map_err(|e| format!("/sys/class/mei: {e}"))? {
        let e = e.map_err(|e| e.to_string())?;
        let dev = fs::canonicalize(e.path().join("device")).map_err(|e| e.to_string())?;
        let name = dev.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if cldev.starts_with(&format!("{name}-")) {
            return Ok(Path::new("/dev").join(e.file_name()));
        }
    }
    Err(format!("no /sys/class/mei device for {cldev}"))
}

fn run_cmd(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("{:?}: {e}", cmd.get_program()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{:?}: {}: {}",
            cmd.get_program(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The AMT watchdog client's GUID in the MEI bus's little-endian layout.
const WDT_UUID_LE: [u8; 16] = [
    0x6f, 0x9a, 0xb7, 0x05, 0x28, 0x46, 0x7f, 0x4d, 0x89, 0x9d, 0xa9, 0x15, 0x14, 0xcb, 0x32, 0xab,
];

/// A start request (the drivers' ping), written out from the AMT
/// management-control layout: command 2, byte count 21, subcommand 0x13,
/// version 0x10, the timeout (LE16), 17 reserved bytes.
fn start_request(timeout: u16) -> [u8; 23] {
    let mut r = [0u8; 23];
    r[..4].copy_from_slice(&[0x02, 21, 0x13, 0x10]);
    r[4..6].copy_from_slice(&timeout.to_le_bytes());
    r
}

/// A stop request: subcommand 0x14, byte count 2 (no timeout).
const STOP_REQUEST: [u8; 4] = [0x02, 2, 0x14, 0x10];
