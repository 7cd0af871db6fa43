//! The benchmark (`--bench`): the C and the Rust mei_wdt, alternated in
//! one boot against the same stub, and the MEI bus's own round trip
//! through /dev/meiN as the floor, measured right before each driver.
//! Raw figures go to the results port as `BENCH <kind> <who> <round>
//! <values...>` records, a round at a time; scripts/bench.py turns them
//! into statistics and Rust/C ratios.
//!
//! Records (times in ns, memory in bytes):
//!
//!     BENCH sizes <rounds> <calls> <warmup> <tput calls> <binds> <mem devices>
//!     BENCH rtt c|rust|floor_c|floor_rust <round> <ns>...  one per keepalive
//!     BENCH tput c|rust <round> <config> <calls per second>
//!     BENCH bind c|rust <round> <ns>...     sysfs bind to /dev/watchdogN
//!     BENCH load c|rust <round> <ns>        insmod to /dev/watchdogN
//!     BENCH mem c|rust <round> <bytes>      per bind of the first device
//!     BENCH mem_extra c|rust <round> <bytes>  per further device bound
//!     BENCH coresize c|rust <round> <bytes>

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::framework::{wait_until, Timeouts};
use crate::kmod;
use crate::report::Reporter;
use crate::stub::{self, Me, DRIVER_DIR};
use crate::sys::{IntIoctl, MeiFile};
use crate::watchdog::{self, Watchdog};

/// Stub config of every benchmarked device: a v2 client (every ping waits
/// for its answer) and no trace, whose bounded record shifts on every
/// message once full.
const DEVICE: &str = "wd=1 version=2 notify=1 trace=0";

/// The C driver's file beside the Rust one (same module name, mei_wdt).
const C_MODULE: &str = "mei_wdt_c";

/// How long one step may take before [`Guard`] ends the benchmark: the
/// longest, the memory figure of a full run, takes well under a minute.
const STEP_LIMIT: Duration = Duration::from_secs(150);

/// How long the floor waits for the firmware's answer to one request.
const ANSWER_LIMIT: Duration = Duration::from_secs(10);

/// What one run measures, and how much.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    /// Even, so that each driver goes first in half of them.
    pub rounds: usize,
    /// Timed keepalives per round, after [`Sizes::warmup`] untimed ones.
    pub calls: usize,
    pub warmup: usize,
    /// Keepalives per throughput configuration.
    pub tput_calls: usize,
    pub binds: usize,
    /// Devices, and binds of the first device, for the memory figures.
    pub mem_devices: usize,
}

impl Sizes {
    pub const FULL: Sizes = Sizes {
        rounds: 8,
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

type Output = Arc<Mutex<Reporter>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Ends the benchmark when a step does not end: a keepalive, an insmod or
/// a sysfs write can block for good on a broken driver, and the host
/// would then see only its own timeout, without the step's name.
#[derive(Clone)]
struct Guard {
    /// The step under way and its deadline; `None` once the run is over.
    step: Arc<Mutex<Option<(String, Instant)>>>,
}

impl Guard {
    fn start(out: Output) -> Self {
        let step = Arc::new(Mutex::new(Some((
            "start".to_string(),
            Instant::now() + STEP_LIMIT,
        ))));
        let watched = Arc::clone(&step);
        thread::spawn(move || loop {
            thread::sleep(Duration::from_secs(1));
            // Held until the exit: the run cannot report its own result
            // after this one.
            let step = lock(&watched);
            match &*step {
                None => return,
                Some((name, deadline)) if Instant::now() >= *deadline => {
                    let why = format!("{name}: did not end within {} s", STEP_LIMIT.as_secs());
                    // The port may be what is stuck, with the main thread
                    // holding it: then the exit status says it.
                    for _ in 0..50 {
                        if let Ok(mut rep) = out.try_lock() {
                            rep.result("bench", &Err(why));
                            rep.drain();
                            break;
                        }
                        thread::sleep(Duration::from_millis(100));
                    }
                    std::process::exit(1);
                }
                Some(_) => {}
            }
        });
        Guard { step }
    }

    fn step(&self, name: String) {
        let mut step = lock(&self.step);
        if step.is_some() {
            *step = Some((name, Instant::now() + STEP_LIMIT));
        }
    }

    fn disarm(&self) {
        *lock(&self.step) = None;
    }
}

/// A line for the results port, held until the round is over.
enum Line {
    Bench(String),
    Log(String),
}

struct Bench {
    out: Output,
    guard: Guard,
    /// Output waits for the end of the round (see [`Reporter::drain`]).
    lines: Vec<Line>,
    t: Timeouts,
    sizes: Sizes,
    me: Me,
    cldev: String,
}

/// Runs the benchmark and reports its records and its `RESULT bench`;
/// true if it measured everything.
pub fn run(rep: Reporter, sizes: Sizes) -> bool {
    let out = Arc::new(Mutex::new(rep));
    let guard = Guard::start(Arc::clone(&out));
    let outcome = Bench::new(Arc::clone(&out), guard.clone(), sizes).and_then(|mut b| {
        let measured = b.measure();
        b.flush();
        measured
    });
    guard.disarm();
    let mut rep = lock(&out);
    rep.result("bench", &outcome);
    rep.drain();
    outcome.is_ok()
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

/// Fails unless the firmware counted at least `want` more start requests
/// than `before`: a keepalive the driver dropped would be timed as fast.
fn reached(what: &str, before: u64, after: u64, want: usize) -> Result<(), String> {
    let got = after.saturating_sub(before);
    if got < want as u64 {
        return Err(format!(
            "{what}: the firmware got {got} start requests, want at least {want}"
        ));
    }
    Ok(())
}

impl Bench {
    fn new(out: Output, guard: Guard, sizes: Sizes) -> Result<Self, String> {
        let t = Timeouts::detect();
        guard.step("loading the stub".into());
        kmod::insmod(kmod::STUB, &[])?;
        wait_until("debugfs mei_stub/add", t.probe, || {
            Path::new(stub::STUB_DIR).join("add").exists().then_some(())
        })?;
        let me = stub::add(DEVICE, &t)?;
        let cldev = wait_until("the watchdog client on the MEI bus", t.probe, || {
            stub::only_wdt_client().ok()
        })?;
        Ok(Bench {
            out,
            guard,
            lines: Vec::new(),
            t,
            sizes,
            me,
            cldev,
        })
    }

    fn measure(&mut self) -> Result<(), String> {
        let z = self.sizes;
        self.record(format!(
            "sizes {} {} {} {} {} {}",
            z.rounds, z.calls, z.warmup, z.tput_calls, z.binds, z.mem_devices
        ));
        for round in 0..z.rounds {
            // Alternate which driver goes first, so neither always runs on
            // a machine the other has just warmed.
            let order = if round % 2 == 0 {
                [Under::C, Under::Rust]
            } else {
                [Under::Rust, Under::C]
            };
            for under in order {
                self.floor(under, round)?;
                self.driver(under, round)?;
            }
            self.log(format!("bench: round {} of {} done", round + 1, z.rounds));
            self.flush();
        }
        Ok(())
    }

    fn record(&mut self, text: String) {
        self.lines.push(Line::Bench(text));
    }

    fn log(&mut self, text: String) {
        self.lines.push(Line::Log(text));
    }

    /// Sends the lines held so far, and waits until they are out.
    fn flush(&mut self) {
        self.guard.step("sending the records".into());
        let mut rep = lock(&self.out);
        for line in self.lines.drain(..) {
            match line {
                Line::Bench(text) => rep.bench(&text),
                Line::Log(text) => rep.log(&text),
            }
        }
        rep.drain();
    }

    fn step(&self, under: Under, round: usize, what: &str) {
        self.guard
            .step(format!("{} round {round}: {what}", under.name()));
    }

    fn starts(&self, me: &Me) -> Result<u64, String> {
        Ok(me.timer()?.starts)
    }

    /// The floor: the same start request and its answer through the MEI
    /// character device, with no driver bound to the client, right before
    /// driver `next` is measured. As on the bus, where a bound client's
    /// next read is started as soon as a message is taken, the read is
    /// started (its flow-control credit sent) before the clock starts: a
    /// non-blocking read, which gives EAGAIN.
    fn floor(&mut self, next: Under, round: usize) -> Result<(), String> {
        self.guard
            .step(format!("floor before {} round {round}", next.name()));
        let node = mei_node(&self.cldev)?;
        let shown = node.display().to_string();
        let mut f = MeiFile::open(&node).map_err(|e| format!("open {shown}: {e}"))?;
        let (_, version) = f
            .connect(&WDT_UUID_LE)
            .map_err(|e| format!("IOCTL_MEI_CONNECT_CLIENT on {shown}: {e}"))?;
        if version != 2 {
            return Err(format!(
                "the watchdog client has protocol version {version}, want 2"
            ));
        }
        let req = start_request(120);
        let mut buf = [0u8; 64];
        let arm = |f: &mut MeiFile, buf: &mut [u8]| match f.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(format!("read from {shown}: {e}")),
            Ok(n) => Err(format!("an unexpected message: {:02x?}", &buf[..n])),
        };
        let once = |f: &mut MeiFile, buf: &mut [u8]| -> Result<(), String> {
            f.write_all(&req)
                .map_err(|e| format!("write to {shown}: {e}"))?;
            if !f
                .wait_readable(ANSWER_LIMIT)
                .map_err(|e| format!("poll {shown}: {e}"))?
            {
                return Err(format!(
                    "no answer on {shown} within {} s",
                    ANSWER_LIMIT.as_secs()
                ));
            }
            let n = f.read(buf).map_err(|e| format!("read from {shown}: {e}"))?;
            // A start response: command 2, subcommand 0x83, status 0.
            if n < 5 || buf[0] != 0x02 || buf[2] != 0x83 || buf[4] != 0 {
                return Err(format!("not a good start response: {:02x?}", &buf[..n]));
            }
            Ok(())
        };
        let before = self.starts(&self.me)?;
        arm(&mut f, &mut buf)?;
        let v = self.timed_calls(|| {
            let start = Instant::now();
            once(&mut f, &mut buf)?;
            let took = elapsed_ns(start);
            arm(&mut f, &mut buf)?;
            Ok(took)
        })?;
        // Disarm the firmware timer before the driver takes over.
        f.write_all(&STOP_REQUEST)
            .map_err(|e| format!("stop via {shown}: {e}"))?;
        drop(f);
        self.me.settle(&self.t)?;
        let after = self.starts(&self.me)?;
        reached(
            "the floor",
            before,
            after,
            self.sizes.warmup + self.sizes.calls,
        )?;
        let who = format!("floor_{}", next.name());
        self.log(format!("bench: {who} round {round}: {}", summary(&v)));
        self.record(format!("rtt {who} {round} {}", join(&v)));
        Ok(())
    }

    fn driver(&mut self, under: Under, round: usize) -> Result<(), String> {
        let name = under.name();
        let path = kmod::modules_dir()?
            .join("extra")
            .join(format!("{}.ko", under.module_file()));
        self.step(under, round, "insmod");
        let start = Instant::now();
        run_cmd(Command::new("insmod").arg(&path))?;
        let (took, wd) = self.wait_registered(start)?;
        self.record(format!("load {name} {round} {took}"));
        // C sets IDLE only after the device is visible: an open before
        // then is forgotten, and its keepalives send nothing (README,
        // difference 8). Whatever is still in flight ends first.
        self.me.settle(&self.t)?;
        let coresize = fs::read_to_string("/sys/module/mei_wdt/coresize")
            .map_err(|e| format!("coresize: {e}"))?;
        self.record(format!("coresize {name} {round} {}", coresize.trim()));

        self.step(under, round, "keepalives");
        let v = self.keepalives(&wd)?;
        self.log(format!("bench: {name} round {round}: {}", summary(&v)));
        self.record(format!("rtt {name} {round} {}", join(&v)));

        for threads in [1, 2, 4] {
            self.step(under, round, &format!("throughput, {threads} threads"));
            let rate = self.throughput(&[(&wd, &self.me)], threads)?;
            self.record(format!("tput {name} {round} threads{threads} {rate:.0}"));
        }
        self.step(under, round, "throughput, two devices");
        let second = stub::add(DEVICE, &self.t)?;
        let both = wait_until("two iamt_wdt watchdogs", self.t.probe, || {
            let all = watchdog::find_all();
            (all.len() == 2).then_some(all)
        })?;
        second.settle(&self.t)?;
        let other = both
            .iter()
            .find(|w| w.name != wd.name)
            .ok_or("the second device's watchdog is missing")?;
        let rate = self.throughput(&[(&wd, &self.me), (other, &second)], 2)?;
        self.record(format!("tput {name} {round} two_devices {rate:.0}"));
        stub::remove(&second)?;
        wait_until("one iamt_wdt watchdog", self.t.probe, || {
            (watchdog::find_all().len() == 1).then_some(())
        })?;

        self.step(under, round, "binds");
        let binds = self.binds()?;
        self.record(format!("bind {name} {round} {}", join(&binds)));
        self.step(under, round, "memory");
        let Memory {
            first,
            extra,
            sites,
        } = self.memory()?;
        if round == 0 {
            self.log(format!(
                "bench: {name}: the first bind's bytes by call site (largest changes):"
            ));
            for (site, bytes) in sites {
                self.log(format!("bench:   {bytes:+7} {site}"));
            }
        }
        self.record(format!("mem {name} {round} {first}"));
        self.record(format!("mem_extra {name} {round} {extra}"));

        self.step(under, round, "rmmod");
        kmod::rmmod(kmod::DRIVER, &self.t)?;
        wait_until("no iamt_wdt watchdog", self.t.probe, || {
            watchdog::find_all().is_empty().then_some(())
        })
    }

    /// Waits for the main device's watchdog, polling without sleeping (the
    /// benchmark's one vCPU yields to the kernel's work items in between);
    /// returns the time from `start` to its /dev node, and the watchdog.
    fn wait_registered(&self, start: Instant) -> Result<(u64, Watchdog), String> {
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
                    let took = elapsed_ns(start);
                    let wd = watchdog::find_all()
                        .into_iter()
                        .find(|w| w.name == name)
                        .ok_or(format!("{name} is not an iamt_wdt watchdog"))?;
                    return Ok((took, wd));
                }
            }
            if Instant::now() > deadline {
                return Err(format!("no watchdog under {} in time", dir.display()));
            }
            thread::yield_now();
        }
    }

    /// Runs `call` (which times itself, ns) [`Sizes::warmup`] times
    /// untimed, then [`Sizes::calls`] times; returns those times.
    fn timed_calls(
        &self,
        mut call: impl FnMut() -> Result<u64, String>,
    ) -> Result<Vec<u64>, String> {
        for _ in 0..self.sizes.warmup {
            call()?;
        }
        (0..self.sizes.calls).map(|_| call()).collect()
    }

    fn keepalives(&self, wd: &Watchdog) -> Result<Vec<u64>, String> {
        let before = self.starts(&self.me)?;
        let f = wd.open()?;
        let v = self.timed_calls(|| {
            let start = Instant::now();
            f.ioctl(IntIoctl::Keepalive, 0).map_err(|e| {
                let stub = self.me.idle_state().unwrap_or_else(|e| e);
                format!("keepalive: {e} (me{}: {stub})", self.me.index)
            })?;
            Ok(elapsed_ns(start))
        })?;
        drop(f);
        self.me.settle(&self.t)?;
        let after = self.starts(&self.me)?;
        reached(
            "keepalives",
            before,
            after,
            self.sizes.warmup + self.sizes.calls,
        )?;
        Ok(v)
    }

    /// Keepalives per second: `threads` threads share the calls, spread
    /// over the devices' open files.
    fn throughput(&self, wds: &[(&Watchdog, &Me)], threads: usize) -> Result<f64, String> {
        let before = wds
            .iter()
            .map(|(_, me)| self.starts(me))
            .sum::<Result<u64, String>>()?;
        let files = wds
            .iter()
            .map(|(wd, _)| wd.open())
            .collect::<Result<Vec<_>, _>>()?;
        let per_thread = self.sizes.tput_calls / threads;
        let start = Instant::now();
        let results: Vec<Result<(), String>> = thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|i| {
                    let f = &files[i % files.len()];
                    s.spawn(move || {
                        for _ in 0..per_thread {
                            f.ioctl(IntIoctl::Keepalive, 0).map_err(|e| {
                                // What each stub was doing, to tell a lost
                                // event from a busy firmware.
                                let stubs: Vec<String> = wds
                                    .iter()
                                    .map(|(_, me)| {
                                        format!(
                                            "me{}: {}",
                                            me.index,
                                            me.idle_state().unwrap_or_else(|e| e)
                                        )
                                    })
                                    .collect();
                                format!("keepalive: {e} ({})", stubs.join("; "))
                            })?;
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
        drop(files);
        let mut after = 0;
        for (_, me) in wds {
            me.settle(&self.t)?;
            after += self.starts(me)?;
        }
        reached("throughput", before, after, per_thread * threads)?;
        Ok((per_thread * threads) as f64 / secs)
    }

    /// Unbinds the main device and binds it again, waiting for the
    /// firmware to be idle after each; returns the time from the `bind`
    /// write to /dev/watchdogN.
    fn rebind(&self) -> Result<u64, String> {
        self.unbind_main()?;
        let start = Instant::now();
        stub::write_file(&Path::new(DRIVER_DIR).join("bind"), &self.cldev)?;
        let (took, _) = self.wait_registered(start)?;
        self.me.settle(&self.t)?;
        Ok(took)
    }

    fn unbind_main(&self) -> Result<(), String> {
        stub::write_file(&Path::new(DRIVER_DIR).join("unbind"), &self.cldev)?;
        wait_until("no watchdog on the first device", self.t.probe, || {
            (!stub::is_bound(&self.cldev)).then_some(())
        })?;
        self.me.settle(&self.t).map(|_| ())
    }

    fn binds(&self) -> Result<Vec<u64>, String> {
        (0..self.sizes.binds).map(|_| self.rebind()).collect()
    }

    /// The kernel memory a bound device costs, two ways, by the bytes
    /// allocated before and after binding (/proc/allocinfo):
    /// - the first device, unbound and bound `mem_devices` times;
    /// - `mem_devices` further devices, all unbound and then all bound.
    ///
    /// C makes its debugfs directory for the first device only (the name
    /// is taken for the others), the Rust driver for each: so the first
    /// figure compares like with like.
    ///
    /// Allocation profiling is on from before the devices come until after
    /// the devices measured are gone: the profiler counts a free only while
    /// it is on, and a module's tag with bytes left at its unload is a
    /// kernel warning. So the first device is left unbound (its driver is
    /// unloaded next).
    fn memory(&self) -> Result<Memory, String> {
        let n = self.sizes.mem_devices;
        set_profiling(true)?;
        let extra = self.memory_of_extra_devices(n);
        let first = extra.and_then(|extra| {
            let mut total = 0;
            let mut sites = Vec::new();
            for i in 0..n {
                self.unbind_main()?;
                let before = allocations(&[&self.me], &self.t)?;
                stub::write_file(&Path::new(DRIVER_DIR).join("bind"), &self.cldev)?;
                self.wait_registered(Instant::now())?;
                let after = allocations(&[&self.me], &self.t)?;
                total += after.total() - before.total();
                if i == 0 {
                    sites = after.largest_changes_from(&before, 12);
                }
            }
            Ok(Memory {
                first: total / n as i64,
                extra,
                sites,
            })
        });
        let gone = self.unbind_main();
        // Objects freed after an RCU grace period or by a work item.
        thread::sleep(Duration::from_millis(200));
        set_profiling(false)?;
        gone.and(first)
    }

    fn memory_of_extra_devices(&self, n: usize) -> Result<i64, String> {
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
            let mes_ref: Vec<&Me> = mes.iter().collect();
            let before = allocations(&mes_ref, &self.t)?.total();
            for c in &extra {
                stub::write_file(&dir.join("bind"), c)?;
            }
            wait_until(
                &format!("{} iamt_wdt watchdogs", n + 1),
                self.t.probe,
                || (watchdog::find_all().len() == n + 1).then_some(()),
            )?;
            let after = allocations(&mes_ref, &self.t)?.total();
            Ok((after - before) / n as i64)
        })();
        for me in &mes {
            stub::remove(me)?;
        }
        wait_until("one iamt_wdt watchdog", self.t.probe, || {
            (watchdog::find_all().len() == 1).then_some(())
        })?;
        self.me.settle(&self.t)?;
        measured
    }
}

/// What a bound device costs, in bytes (see [`Bench::memory`]).
struct Memory {
    /// Per bind of the first device.
    first: i64,
    /// Per further device.
    extra: i64,
    /// The first bind's largest changes, by call site.
    sites: Vec<(String, i64)>,
}

/// Turns allocation profiling (the release kernel's
/// CONFIG_MEM_ALLOC_PROFILING) on or off.
fn set_profiling(on: bool) -> Result<(), String> {
    stub::write_file(
        Path::new("/proc/sys/vm/mem_profiling"),
        if on { "1" } else { "0" },
    )
}

/// Call sites left out of the sums: those whose bytes /proc/allocinfo
/// already counts at another call site (the slab pages, and their
/// per-object tag vectors, that hold objects counted where they were
/// allocated; the pages backing per-CPU chunks, counted at the per-CPU
/// allocations), and the pages of processes and of the page cache, which
/// the benchmark's own reads and writes move.
const LEFT_OUT: [&str; 6] = [
    "func:alloc_slab_page",
    "func:alloc_slab_obj_exts",
    "mm/percpu-vm.c:",
    "mm/memory.c:",
    "mm/filemap.c:",
    "mm/readahead.c:",
];

/// Bytes allocated now by each call site (but for [`LEFT_OUT`]), when `mes` are idle and objects freed through RCU are back.
fn allocations(mes: &[&Me], t: &Timeouts) -> Result<Allocations, String> {
    for me in mes {
        me.settle(t)?;
    }
    thread::sleep(Duration::from_millis(100));
    Ok(Allocations::parse(&stub::read_file(Path::new(
        "/proc/allocinfo",
    ))?))
}

/// /proc/allocinfo's bytes by call site, but for [`LEFT_OUT`].
struct Allocations(Vec<(String, i64)>);

impl Allocations {
    /// Lines are `<bytes> <calls> <file:line> [module] func:<name>`, after
    /// a header.
    fn parse(info: &str) -> Self {
        Allocations(
            info.lines()
                .filter(|l| !LEFT_OUT.iter().any(|site| l.contains(site)))
                .filter_map(|l| {
                    let mut f = l.split_whitespace();
                    let bytes = f.next()?.parse::<i64>().ok()?;
                    let _calls = f.next()?;
                    Some((f.collect::<Vec<_>>().join(" "), bytes))
                })
                .collect(),
        )
    }

    fn total(&self) -> i64 {
        self.0.iter().map(|(_, b)| b).sum()
    }

    /// The `n` sites whose bytes changed most since `before`, largest first.
    fn largest_changes_from(&self, before: &Allocations, n: usize) -> Vec<(String, i64)> {
        let old: std::collections::HashMap<&str, i64> =
            before.0.iter().map(|(s, b)| (s.as_str(), *b)).collect();
        let mut changes: Vec<(String, i64)> = self
            .0
            .iter()
            .map(|(s, b)| (s.clone(), b - old.get(s.as_str()).copied().unwrap_or(0)))
            .filter(|(_, d)| *d != 0)
            .collect();
        changes.sort_by_key(|(_, d)| std::cmp::Reverse(d.abs()));
        changes.truncate(n);
        changes
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocinfo_sums_leave_out_double_counts_and_process_pages() {
        let info = "allocinfo - version: 1.0\n\
                    #     <size>  <calls> <tag info>\n\
                    \x20      4096        1 mm/slub.c:2435 func:alloc_slab_page\n\
                    \x20       512        4 drivers/misc/mei/client.c:600 [mei] func:mei_cl_alloc\n\
                    \x20        64        1 mm/slub.c:2000 func:alloc_slab_obj_exts\n\
                    \x20      8192        2 mm/percpu-vm.c:95 func:pcpu_alloc_pages\n\
                    \x20       256        1 [mei_wdt] func:probe\n\
                    \x20     12288        3 mm/memory.c:1063 func:folio_prealloc\n";
        assert_eq!(Allocations::parse(info).total(), 768);
    }

    #[test]
    fn changes_are_by_site_largest_first() {
        let before = Allocations::parse("10 1 a.c:1 func:a\n20 1 b.c:2 func:b\n");
        let after = Allocations::parse("10 1 a.c:1 func:a\n5 1 b.c:2 func:b\n90 1 c.c:3 func:c\n");
        assert_eq!(
            after.largest_changes_from(&before, 5),
            [
                ("c.c:3 func:c".to_string(), 90),
                ("b.c:2 func:b".to_string(), -15)
            ]
        );
    }
}
