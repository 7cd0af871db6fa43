//! Concurrent stress and firmware fuzzing, for the debug kernel.
//!
//! Stress (`stress_two_devices`): threads open, ping, configure,
//! query, write and close both watchdogs while other loops unbind and bind
//! the driver, reset the ME links, flip NOT_REQUIRED, send notifications,
//! and unload and load the driver. Two ME devices, one v2 and one v1.
//!
//! Every call is timed against its bound and its errno checked against the
//! set this load may give ([`allowed`]); kmemleak scans after each phase;
//! then a clean load, ping and close on both devices gives the trace that
//! is held to the C driver's golden file.
//!
//! Fuzzing (`fuzz_firmware`): see [`fuzz_firmware`].

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use super::{op_ok, Rng, V1, V2};
use crate::framework::{check, is_debug_kernel, is_kcsan_kernel, Ctx, Driver, Outcome, KMEMLEAK};

use crate::expect;
use crate::kmod;
use crate::stub::{self, Me};
use crate::sys::{self, IntIoctl};
use crate::watchdog::{self, ChildOp, Watchdog};

const SEED: u64 = 0x7374_7265_7373_0001;
/// The driver's ping bound in this scenario (the C driver ignores it).
const PING_TIMEOUT: Duration = Duration::from_millis(1000);
const PHASES: u64 = 2;

/// Loop sizes, per phase.
#[derive(Clone, Copy, Debug)]
struct Sizes {
    /// Threads using the watchdogs, and the ioctls each makes.
    threads: usize,
    ioctls_per_thread: u64,
    /// Unbind-then-bind cycles (two events each).
    rebinds: u64,
    resets: u64,
    /// NOT_REQUIRED on, then off, each with a notification (two events).
    flips: u64,
    notifications: u64,
    /// Unload attempts, with a device held open or not (an unload that
    /// succeeds is followed by a load: two events).
    unloads: u64,
}

const SIZES: Sizes = Sizes {
    threads: 4,
    ioctls_per_thread: 7_000,
    rebinds: 120,
    resets: 60,
    flips: 60,
    notifications: 120,
    unloads: 60,
};

const ENOENT: i32 = 2;
const EIO: i32 = 5;
const ENXIO: i32 = 6;
const EAGAIN: i32 = 11;
const EBUSY: i32 = 16;
const EEXIST: i32 = 17;
const ENODEV: i32 = 19;
const EINVAL: i32 = 22;
const EPROTO: i32 = 71;
const EOPNOTSUPP: i32 = 95;
const ENOTCONN: i32 = 107;
const ETIMEDOUT: i32 = 110;

/// The errnos a call may give under this load, and why.
fn allowed(call: &str, errno: i32) -> bool {
    let set: &[i32] = match call {
        // The node went with its device (ENOENT), its device is being
        // unregistered (ENXIO: the character device is gone; ENODEV: the
        // core's device is), or another thread has it open (EBUSY).
        "open" => &[ENOENT, ENXIO, ENODEV, EBUSY],
        // A keepalive against the fuzzing firmware: the device went
        // (ENODEV), the answer was malformed (EPROTO) or never came
        // (ETIMEDOUT).
        "ping" => &[ENODEV, EPROTO, ETIMEDOUT],
        // Calls on an open file whose device was unregistered under it.
        "getstatus" | "getbootstatus" | "gettimeout" => &[ENODEV],
        // 6.12's core has no estimate of its own.
        "gettimeleft" => &[ENODEV, EOPNOTSUPP],
        // A ping: the device went (ENODEV), or a link reset lost the
        // answer (ETIMEDOUT) or the message (EIO).
        "keepalive" | "write" => &[ENODEV, ETIMEDOUT, EIO],
        // The same, and timeouts out of range (the random values).
        "settimeout" => &[ENODEV, ETIMEDOUT, EIO, EINVAL],
        // Not bound (ENODEV: also while a link reset has taken the device
        // away), or the driver is not loaded (ENOENT: no `unbind` file).
        "unbind" => &[ENODEV, ENOENT],
        // Already bound (EBUSY), the device or the driver absent (ENODEV,
        // ENOENT), or the probe failed as a link reset took its client
        // away: its ping unanswered or unsent.
        "bind" => &[EBUSY, ENODEV, ENOENT, ETIMEDOUT, EIO, EPROTO],
        // The ME's client is not connected (no driver bound, or a link
        // reset under way), or a notification is still pending.
        "notify" => &[ENOTCONN, EBUSY],
        // In use (the kernel's EWOULDBLOCK, which kmod's rmmod reports as
        // "is in use").
        "unload" => &[EAGAIN],
        // Held open: the unload must fail with EWOULDBLOCK, and a load with
        // EEXIST.
        "unload-held" => &[EAGAIN],
        "load-held" => &[EEXIST],
        _ => &[],
    };
    set.contains(&errno)
}

/// What one loop did: results per call, the longest time each took, and
/// what broke the rules.
#[derive(Default)]
struct Tally {
    results: BTreeMap<String, u64>,
    longest: BTreeMap<&'static str, Duration>,
    violations: Vec<String>,
    ioctls: u64,
    writes: u64,
    events: u64,
}

impl Tally {
    /// Records one call: its result, its time against `bound`.
    fn call(
        &mut self,
        call: &'static str,
        r: Result<(), &io::Error>,
        took: Duration,
        bound: Duration,
    ) {
        let key = match r {
            Ok(()) => format!("{call} ok"),
            Err(e) => format!("{call} errno {}", errno(e)),
        };
        *self.results.entry(key).or_default() += 1;
        let longest = self.longest.entry(call).or_default();
        *longest = (*longest).max(took);
        if took > bound {
            self.violations.push(format!(
                "{call} took {:.2} s, bound {:.2} s ({r:?})",
                took.as_secs_f64(),
                bound.as_secs_f64()
            ));
        }
        if let Err(e) = r {
            if !allowed(call, errno(e)) {
                self.violations.push(format!("{call}: {e}"));
            }
        }
    }

    /// Logs the results per call and the longest time of each.
    fn log(&self, ctx: &mut Ctx) {
        for (k, v) in &self.results {
            ctx.log(format!("  {k}: {v}"));
        }
        for (k, v) in &self.longest {
            ctx.log(format!("  longest {k}: {:.3} s", v.as_secs_f64()));
        }
    }

    /// Fails on the calls that broke their bound or errno set.
    fn check_kept_rules(&self) -> Outcome {
        check(self.violations.is_empty(), || {
            let mut v = self.violations.clone();
            v.truncate(20);
            format!(
                "{} call(s) broke their bound or errno set, first: {}",
                self.violations.len(),
                v.join("; ")
            )
        })
    }

    fn merge(&mut self, other: Tally) {
        for (k, v) in other.results {
            *self.results.entry(k).or_default() += v;
        }
        for (k, v) in other.longest {
            let longest = self.longest.entry(k).or_default();
            *longest = (*longest).max(v);
        }
        self.violations.extend(other.violations);
        self.ioctls += other.ioctls;
        self.writes += other.writes;
        self.events += other.events;
    }
}

fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

/// The calls in flight: each one's thread, name and start.
type CallsInFlight = Vec<(thread::ThreadId, &'static str, Instant)>;

/// What a phase watches to tell a hung call from a slow host.
static IN_FLIGHT: Mutex<CallsInFlight> = Mutex::new(Vec::new());

fn in_flight() -> std::sync::MutexGuard<'static, CallsInFlight> {
    IN_FLIGHT.lock().unwrap_or_else(|e| e.into_inner())
}

/// Times `f` and records it in `tally`.
fn timed<T>(
    tally: &mut Tally,
    call: &'static str,
    bound: Duration,
    f: impl FnOnce() -> io::Result<T>,
) -> io::Result<T> {
    let thread = thread::current().id();
    let start = Instant::now();
    in_flight().push((thread, call, start));
    let r = f();
    let took = start.elapsed();
    in_flight().retain(|(t, ..)| *t != thread);
    tally.call(call, r.as_ref().map(|_| ()), took, bound);
    r
}

/// A write of `text` in one write(2), with the errno.
fn write_errno(path: &Path, text: &str) -> io::Result<()> {
    OpenOptions::new()
        .write(true)
        .open(path)?
        .write_all(text.as_bytes())
}

/// What every loop needs: the devices, the bounds, the stop flag.
#[derive(Clone)]
struct Env {
    mes: [Me; 2],
    /// The MEI bus devices of the two watchdog clients, `mes`' order.
    cldevs: [String; 2],
    /// The longest a call on the watchdog may take: a ping waits for the
    /// core's lock and the send lock, each held by at most one other ping.
    call_bound: Duration,
    /// The longest a sysfs or module call may take (a bind probes).
    control_bound: Duration,
}

/// The open watchdog of each device, as its owner thread left it: the
/// ioctl threads use it under the read lock, the owner closes it under
/// the write lock. Only the owners open and close: tasks that open and
/// close one device at once race in the watchdog core itself (see
/// [`owner_loop`]).
type Slots = Arc<[RwLock<Option<File>>; 2]>;

/// The watchdog of device `d`, if registered.
fn watchdog_of(env: &Env, d: usize) -> Option<Watchdog> {
    watchdog::find_all()
        .into_iter()
        .find(|wd| wd.parent == env.cldevs[d])
}

/// Held across every open and every close of a watchdog: see
/// [`owner_loop`].
static OPEN_CLOSE: Mutex<()> = Mutex::new(());

/// Held by whatever makes the driver unregister a watchdog (an unbind, a
/// link reset until its rescan is over, NOT_REQUIRED until no
/// unregistration is on the way): no open is then between the core's
/// read of `wd_data->wdd` and its call of `start`, which `watchdog_open`
/// makes without any lock the unregistration takes. An open there starts
/// a device whose memory its driver has freed: a race of the watchdog
/// core that every driver shares (README). (An unload needs none: an open
/// in flight holds the module, `cdev.owner`.)
fn no_open_in_flight() -> std::sync::MutexGuard<'static, ()> {
    OPEN_CLOSE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether the Rust driver is about to unregister `cldev`'s watchdog:
/// NOT_REQUIRED while still registered, its unregistration work queued
/// (debugfs). A device without the directory (gone, or C's) has none.
fn unregister_pending(cldev: &str) -> bool {
    let dir = expect::debugfs_dir(Driver::Rust, cldev);
    let read = |name| fs::read_to_string(dir.join(name)).unwrap_or_default();
    read("state").trim() == "state: NOT_REQUIRED" && read("activation").trim() == "activated"
}

/// Waits, at most `bound`, until no unregistration of `cldev`'s watchdog
/// is pending in the driver and, with `me`, none can start without the
/// host: the stub idle (no answer, reset or client callback on the way).
fn no_unregister_pending(me: Option<&Me>, cldev: &str, bound: Duration) -> io::Result<()> {
    poll_until(bound, || {
        let idle = match me {
            Some(me) => fs::read_to_string(me_file(me, "idle"))?.trim() == "idle",
            None => true,
        };
        Ok(idle && !unregister_pending(cldev))
    })
}

/// The owner of device `d`'s open file: opens the watchdog, leaves it open
/// for the ioctl threads 0 to 20 ms, closes it; until `done`.
///
/// Opens and closes go one at a time ([`OPEN_CLOSE`]), as a single daemon
/// makes them. The watchdog core's release clears the single-open bit
/// before it reads whether the hardware runs, without any lock an open
/// takes: an open by another task in between starts the watchdog, and the
/// release then keeps its module and device references for ever
/// (kmemleak: the `watchdog_core_data`; rmmod: in use). Any driver's
/// device leaks so; this is not the driver's to fix. One owner per device
/// is not enough: a watchdog's number goes to the other device's next
/// registration, so the node an owner found may be the other's by the
/// time it opens it.
fn owner_loop(env: &Env, d: usize, mut rng: Rng, slots: &Slots, done: &AtomicBool) -> Tally {
    let mut tally = Tally::default();
    while !done.load(Ordering::Relaxed) {
        let Some(wd) = watchdog_of(env, d) else {
            rng.pause(5);
            continue;
        };
        let one_at_a_time = OPEN_CLOSE.lock().unwrap_or_else(|e| e.into_inner());
        let opened = timed(&mut tally, "open", env.call_bound, || {
            OpenOptions::new().write(true).open(&wd.node)
        });
        drop(one_at_a_time);
        if let Ok(file) = opened {
            *slots[d].write().unwrap_or_else(|e| e.into_inner()) = Some(file);
            rng.pause(20);
            let file = slots[d].write().unwrap_or_else(|e| e.into_inner()).take();
            let _one_at_a_time = OPEN_CLOSE.lock().unwrap_or_else(|e| e.into_inner());
            let _ = timed(&mut tally, "close", env.call_bound, || {
                drop(file);
                Ok(())
            });
        }
        rng.pause(2);
    }
    tally
}

/// The calls an ioctl thread makes on an open watchdog.
const OPS: [&str; 7] = [
    "keepalive",
    "keepalive",
    "getstatus",
    "gettimeleft",
    "gettimeout",
    "settimeout",
    "write",
];

/// One ioctl thread: a random call on the open file of a random device,
/// until it has made `quota` ioctls and `control_done` is set (the load
/// lasts as long as the lifecycle loops do).
fn ioctl_loop(
    env: &Env,
    mut rng: Rng,
    quota: u64,
    slots: &Slots,
    control_done: &AtomicBool,
) -> Tally {
    let mut tally = Tally::default();
    while tally.ioctls < quota || !control_done.load(Ordering::Relaxed) {
        let d = rng.below(2) as usize;
        let op = OPS[rng.below(OPS.len() as u64) as usize];
        let slot = slots[d].read().unwrap_or_else(|e| e.into_inner());
        let Some(file) = slot.as_ref() else {
            drop(slot);
            rng.pause(1);
            continue;
        };
        if op == "write" {
            tally.writes += 1;
            let mut file = file;
            let _ = timed(&mut tally, op, env.call_bound, || file.write(b"k"));
            continue;
        }
        let (req, value) = match op {
            "keepalive" => (IntIoctl::Keepalive, 0),
            "getstatus" => (IntIoctl::GetStatus, 0),
            "gettimeleft" => (IntIoctl::GetTimeleft, 0),
            "gettimeout" => (IntIoctl::GetTimeout, 0),
            // 0 to 69,999: about one in nine out of range.
            _ => (IntIoctl::SetTimeout, rng.below(70_000) as i32),
        };
        tally.ioctls += 1;
        let _ = timed(&mut tally, op, env.call_bound, || {
            sys::ioctl_int(file, req, value)
        });
    }
    tally
}

/// Unbinds a random device from the driver, waits a little, binds it.
fn rebind_loop(env: &Env, mut rng: Rng, n: u64) -> Tally {
    let mut tally = Tally::default();
    let dir = Path::new(stub::DRIVER_DIR);
    for _ in 0..n {
        let i = rng.below(2) as usize;
        let cldev = &env.cldevs[i];
        let no_open = no_open_in_flight();
        let _ = timed(&mut tally, "unbind", env.control_bound, || {
            write_errno(&dir.join("unbind"), cldev)
        });
        drop(no_open);
        rng.pause(20);
        let settling_guard = settling(i);
        let _ = timed(&mut tally, "bind", env.control_bound, || {
            write_errno(&dir.join("bind"), cldev)
        });
        drop(settling_guard);
        tally.events += 2;
        rng.pause(20);
    }
    tally
}

/// A stub control write that must succeed, or give an allowed errno.
fn stub_write(tally: &mut Tally, env: &Env, call: &'static str, path: &Path, text: &str) {
    let _ = timed(tally, call, env.control_bound, || write_errno(path, text));
}

fn me_file(me: &Me, file: &str) -> std::path::PathBuf {
    Path::new(stub::STUB_DIR).join(me.name()).join(file)
}

/// Held by a link reset of device `i` from before it until its rescan is
/// over, and around whatever binds a driver to that device's client (a
/// sysfs bind, a module load): a bind that races the rescan's `device_add`
/// gets EAGAIN ("Device not ready to probe") from the driver core, whose
/// reason string then leaks (6.12 and 7.3 `__driver_probe_device`).
static SETTLING: [Mutex<()>; 2] = [Mutex::new(()), Mutex::new(())];

fn settling(i: usize) -> std::sync::MutexGuard<'static, ()> {
    SETTLING[i].lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits until `me`'s link is up and no reset or rescan is pending or
/// running (its `idle` file), at most `bound`.
fn settled(me: &Me, bound: Duration) -> io::Result<()> {
    let idle = me_file(me, "idle");
    poll_until(bound, || {
        let state = fs::read_to_string(&idle)?;
        Ok(!["link", "reset", "rescan"]
            .iter()
            .any(|w| state.contains(w)))
    })
}

/// Polls `ready` every 2 ms until it says yes, at most `bound`
/// (ETIMEDOUT); its errors end the wait.
fn poll_until(bound: Duration, mut ready: impl FnMut() -> io::Result<bool>) -> io::Result<()> {
    let deadline = Instant::now() + bound;
    while !ready()? {
        if Instant::now() > deadline {
            return Err(io::Error::from_raw_os_error(ETIMEDOUT));
        }
        thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

/// Link resets of a random device, each from a settled link to a settled
/// link ([`SETTLING`]): a reset while the MEI core's rescan adds the client
/// device of the last one leaks that device in the MEI core (README,
/// difference 3), whatever the driver.
fn reset_loop(env: &Env, mut rng: Rng, n: u64) -> Tally {
    let mut tally = Tally::default();
    for _ in 0..n {
        let i = rng.below(2) as usize;
        let me = &env.mes[i];
        let bound = env.control_bound;
        let settling_guard = settling(i);
        let _ = timed(&mut tally, "reset-wait", bound, || settled(me, bound));
        let no_open = no_open_in_flight();
        stub_write(&mut tally, env, "reset", &me_file(me, "ctl"), "reset");
        let _ = timed(&mut tally, "reset-wait", bound, || settled(me, bound));
        drop(no_open);
        tally.events += 1;
        drop(settling_guard);
        rng.pause(300);
    }
    tally
}

/// NOT_REQUIRED on, then off, on a random device, with a notification
/// after each. While it is on, any ping's answer makes the driver
/// unregister the watchdog (a work of its own): no open is in flight then
/// ([`no_open_in_flight`]).
fn flip_loop(env: &Env, mut rng: Rng, n: u64) -> Tally {
    let mut tally = Tally::default();
    for _ in 0..n {
        let i = rng.below(2) as usize;
        let me = &env.mes[i];
        let no_open = no_open_in_flight();
        for value in ["not_required=1", "not_required=0"] {
            stub_write(&mut tally, env, "config", &me_file(me, "config"), value);
            stub_write(&mut tally, env, "notify", &me_file(me, "ctl"), "notify");
            tally.events += 1;
            if value == "not_required=1" {
                rng.pause(100);
            }
        }
        // A ping the firmware answered with NOT_REQUIRED before it went
        // off may still have its answer on the way (a ping waits for it
        // at most PING_TIMEOUT), and the driver's unregistration after it.
        thread::sleep(PING_TIMEOUT);
        let _ = timed(&mut tally, "unregister-wait", env.control_bound, || {
            no_unregister_pending(None, &env.cldevs[i], env.control_bound)
        });
        drop(no_open);
        rng.pause(100);
    }
    tally
}

fn notify_loop(env: &Env, mut rng: Rng, n: u64) -> Tally {
    let mut tally = Tally::default();
    for _ in 0..n {
        let me = &env.mes[rng.below(2) as usize];
        stub_write(&mut tally, env, "notify", &me_file(me, "ctl"), "notify");
        tally.events += 1;
        rng.pause(50);
    }
    tally
}

/// Loads the driver from its file, with this scenario's ping bound.
fn load_driver() -> io::Result<()> {
    let path = kmod::module_path(kmod::DRIVER).map_err(io::Error::other)?;
    let file = File::open(path)?;
    sys::finit_module(&file, &ping_param())
}

fn ping_param() -> String {
    format!("ping_timeout_ms={}", PING_TIMEOUT.as_millis())
}

/// Every other round borrows a device's open file (waiting for one up to
/// 2 s: the flips keep opens away for more than a second at a time) and
/// requires the unload and a second load to fail meanwhile;
/// the other rounds try to unload, and load the driver again when that
/// worked.
fn module_loop(env: &Env, mut rng: Rng, n: u64, slots: &Slots) -> Tally {
    let mut tally = Tally::default();
    for round in 0..n {
        if round % 2 == 0 {
            let deadline = Instant::now() + Duration::from_secs(2);
            let held = loop {
                let d = rng.below(2) as usize;
                let slot = slots[d].read().unwrap_or_else(|e| e.into_inner());
                if slot.is_some() || Instant::now() >= deadline {
                    break slot;
                }
                drop(slot);
                rng.pause(5);
            };
            if held.is_some() {
                let unloaded = timed(&mut tally, "unload-held", env.control_bound, || {
                    sys::delete_module(kmod::DRIVER)
                });
                if unloaded.is_ok() {
                    tally
                        .violations
                        .push("the driver unloaded while a watchdog was open".into());
                }
                let loaded = timed(&mut tally, "load-held", env.control_bound, load_driver);
                if loaded.is_ok() {
                    tally
                        .violations
                        .push("a second load of the driver succeeded".into());
                }
                tally.events += 2;
            }
        } else {
            let unloaded = timed(&mut tally, "unload", env.control_bound, || {
                sys::delete_module(kmod::DRIVER)
            });
            tally.events += 1;
            if unloaded.is_ok() {
                rng.pause(50);
                let settling = [settling(0), settling(1)];
                let _ = timed(&mut tally, "load", env.control_bound, load_driver);
                drop(settling);
                tally.events += 1;
            }
        }
        rng.pause(100);
    }
    tally
}

/// The longest a phase may run while its calls return: more than twice
/// the longest phase seen (564 s), for a host twice as slow.
const PHASE_CAP: Duration = Duration::from_secs(1500);

/// Runs every loop of one phase at once; returns their merged tally, or an
/// error if a call has not returned after `stall` (it hangs), or if the
/// phase ran past [`PHASE_CAP`] (a loop died or never ends). A phase's length
/// depends on the host (the C reference's on the data-race kernel took 387
/// to 564 s); a hang's does not. Without `lifecycle` (the C reference on
/// the data-race kernel), no unbind, bind, reset, NOT_REQUIRED flip,
/// unload or load: nothing that registers the watchdog again.
fn phase(env: &Env, seed: u64, stall: Duration, lifecycle: bool) -> Result<Tally, String> {
    let slots: Slots = Arc::new([RwLock::new(None), RwLock::new(None)]);
    // The lifecycle loops are done; then the ioctl threads too.
    let control_done = Arc::new(AtomicBool::new(false));
    let all_done = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel::<(String, Tally)>();
    let mut rng = Rng(seed);
    let mut running = Vec::new();
    let mut spawn = |name: String, f: Box<dyn FnOnce(Rng) -> Tally + Send>, rng: Rng| {
        let tx = tx.clone();
        running.push(name.clone());
        thread::spawn(move || {
            let tally = f(rng);
            let _ = tx.send((name, tally));
        });
    };
    for d in 0..2 {
        let (env, slots, done) = (env.clone(), slots.clone(), all_done.clone());
        spawn(
            format!("owner {d}"),
            Box::new(move |r| owner_loop(&env, d, r, &slots, &done)),
            Rng(rng.next() | 1),
        );
    }
    for i in 0..SIZES.threads {
        let (env, slots, done) = (env.clone(), slots.clone(), control_done.clone());
        spawn(
            format!("ioctl thread {i}"),
            Box::new(move |r| ioctl_loop(&env, r, SIZES.ioctls_per_thread, &slots, &done)),
            Rng(rng.next() | 1),
        );
    }
    type Loop = fn(&Env, Rng, u64) -> Tally;
    // Each loop's generator is drawn whether it runs or not: the same seed
    // drives the same loop on every kernel and for both drivers.
    let loops: [(&str, Loop, u64, Rng); 4] = [
        ("rebind", rebind_loop, SIZES.rebinds, Rng(rng.next() | 1)),
        ("reset", reset_loop, SIZES.resets, Rng(rng.next() | 1)),
        ("flip", flip_loop, SIZES.flips, Rng(rng.next() | 1)),
        (
            "notify",
            notify_loop,
            SIZES.notifications,
            Rng(rng.next() | 1),
        ),
    ];
    let registers = |name: &str| name != "notify";
    let loops: Vec<_> = loops
        .into_iter()
        .filter(|(name, ..)| lifecycle || !registers(name))
        .collect();
    let control_loops = loops.len();
    for (name, f, n, loop_rng) in loops {
        let env = env.clone();
        spawn(name.to_string(), Box::new(move |r| f(&env, r, n)), loop_rng);
    }
    if lifecycle {
        let (env, slots) = (env.clone(), slots.clone());
        spawn(
            "module".into(),
            Box::new(move |r| module_loop(&env, r, SIZES.unloads, &slots)),
            Rng(rng.next() | 1),
        );
    }
    drop(tx);
    let mut total = Tally::default();
    let mut control_left = control_loops + usize::from(lifecycle);
    let mut ioctl_left = SIZES.threads;
    let start = Instant::now();
    while !running.is_empty() {
        let received = rx.recv_timeout(Duration::from_secs(1));
        let oldest = in_flight()
            .iter()
            .map(|&(_, call, since)| (since, call))
            .min();
        if let Some((since, call)) = oldest.filter(|(since, _)| since.elapsed() >= stall) {
            return Err(format!(
                "a {call} has not returned after {:.0} s; still running: {}",
                since.elapsed().as_secs_f64(),
                running.join(", ")
            ));
        }
        if start.elapsed() >= PHASE_CAP {
            return Err(format!(
                "still running after {:.0} s: {}",
                PHASE_CAP.as_secs_f64(),
                running.join(", ")
            ));
        }
        let (name, tally) = match received {
            Ok(finished) => finished,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => {
                return Err(format!(
                    "ended without a tally (panicked): {}",
                    running.join(", ")
                ));
            }
        };
        running.retain(|n| *n != name);
        if name.starts_with("ioctl") {
            ioctl_left -= 1;
        } else if !name.starts_with("owner") {
            control_left -= 1;
        }
        if control_left == 0 {
            control_done.store(true, Ordering::Relaxed);
            if ioctl_left == 0 {
                all_done.store(true, Ordering::Relaxed);
            }
        }
        total.merge(tally);
    }
    Ok(total)
}

/// Scans for leaks (objects younger than 5 s are not reported: wait
/// first); fails on any report.
fn kmemleak_scan(ctx: &mut Ctx, after: &str) -> Outcome {
    if !is_debug_kernel() {
        ctx.log(format!("{after}: no kmemleak on this kernel"));
        return Ok(());
    }
    thread::sleep(Duration::from_secs(6));
    let start = Instant::now();
    for _ in 0..2 {
        stub::write_file(Path::new(KMEMLEAK), "scan")?;
    }
    let report = stub::read_file(Path::new(KMEMLEAK))?;
    ctx.log(format!(
        "{after}: kmemleak scan, {:.1} s: {}",
        start.elapsed().as_secs_f64(),
        if report.trim().is_empty() {
            "nothing"
        } else {
            "LEAKS"
        }
    ));
    check(report.trim().is_empty(), || {
        format!("kmemleak after {after}:\n{report}")
    })
}

/// Brings the driver back to a clean start: loaded with both devices
/// bound and registered, NOT_REQUIRED off, the traces cleared.
fn clean_start(ctx: &mut Ctx, mes: &[Me; 2]) -> Result<Vec<Watchdog>, String> {
    for me in mes {
        me.set("not_required=0")?;
    }
    ctx.unload_driver()?;
    for me in mes {
        me.settle(&ctx.t)?;
        me.set("trace=1")?;
        me.ctl("clear")?;
    }
    ctx.load_driver_with(&[&ping_param()])?;
    let wds = ctx.wait_watchdogs(2)?;
    for me in mes {
        me.settle(&ctx.t)?;
    }
    Ok(wds)
}

pub fn stress_two_devices(ctx: &mut Ctx) -> Outcome {
    ctx.load_stub()?;
    let mes = [ctx.add_me(V2)?, ctx.add_me(V1)?];
    ctx.load_driver_with(&[&ping_param()])?;
    ctx.wait_watchdogs(2)?;
    let mut cldevs = stub::wdt_clients();
    check(cldevs.len() == 2, || {
        format!("want two watchdog clients, got {cldevs:?}")
    })?;
    // In the order of `mes`: a client device is named after its ME's parent.
    if !cldevs[0].starts_with(&mes[0].parent()?) {
        cldevs.swap(0, 1);
    }
    let env = Env {
        cldevs: [cldevs.remove(0), cldevs.remove(0)],
        mes: mes.clone(),
        call_bound: 2 * PING_TIMEOUT + ctx.t.scale(Duration::from_secs(1)),
        control_bound: ctx.t.probe,
    };
    // C gets the tail only: under this load its SMP-unsafe probe frees a
    // registered watchdog (6.12 debug kernel, one vCPU: KASAN
    // slab-use-after-free in identity_show within 10 s), and then every
    // call hangs. On the data-race kernel it gets the load without
    // registrations, for KCSAN to watch its unlocked state in the ops, rx
    // and notifications: a NOT_REQUIRED flip registers the device again,
    // and an open in the core's registration window then pins C's module
    // (README difference 12), which the tail must unload.
    let lifecycle = ctx.driver == Driver::Rust;
    if lifecycle || is_kcsan_kernel() {
        for me in &mes {
            me.settle(&ctx.t)?;
            me.set("trace=0")?;
        }
        ctx.log(format!(
            "seed {SEED:#x}, {PHASES} phases of {SIZES:?}{}; bounds: calls on a watchdog {:.1} s, control calls {:.1} s",
            if lifecycle {
                ""
            } else {
                ", without rebinds, resets, flips and unloads"
            },
            env.call_bound.as_secs_f64(),
            env.control_bound.as_secs_f64()
        ));
        let mut total = Tally::default();
        for p in 0..PHASES {
            let start = Instant::now();
            let tally = phase(&env, SEED + p, 3 * env.control_bound, lifecycle)?;
            ctx.log(format!(
                "phase {}: {:.1} s, {} ioctls, {} writes, {} lifecycle events",
                p + 1,
                start.elapsed().as_secs_f64(),
                tally.ioctls,
                tally.writes,
                tally.events
            ));
            total.merge(tally);
            if !kmod::is_loaded(kmod::DRIVER) {
                load_driver().map_err(|e| format!("load after phase {}: {e}", p + 1))?;
            }
            kmemleak_scan(ctx, &format!("phase {}", p + 1))?;
        }
        total.log(ctx);
        ctx.log(format!(
            "total: {} ioctls, {} writes, {} lifecycle events, {} violations",
            total.ioctls,
            total.writes,
            total.events,
            total.violations.len()
        ));
        total.check_kept_rules()?;
        let min_ioctls = SIZES.threads as u64 * SIZES.ioctls_per_thread * PHASES;
        check(total.ioctls >= min_ioctls, || {
            format!("only {} ioctls, want {min_ioctls}", total.ioctls)
        })?;
    }
    // A clean load, ping and close on both devices: the trace C gives.
    let wds = clean_start(ctx, &mes)?;
    for wd in &wds {
        let f = wd.open()?;
        op_ok(ctx, &f, ChildOp::Keepalive)?;
        drop(f);
        for me in &mes {
            me.settle(&ctx.t)?;
        }
    }
    Ok(())
}

/// The fuzz run's seed, for the stub's fuzz mode.
const FUZZ_SEED: u64 = 0x6675_7a7a_0000_0001;
/// Keepalives in the fuzz run.
const FUZZ_PINGS: u64 = 500;
/// A rebind, a probe under the fuzz, every this many keepalives.
const FUZZ_REBIND_EVERY: u64 = 20;
/// Longest random delay of a fuzzed answer: past the ping bound.
const FUZZ_DELAY: Duration = Duration::from_millis(1500);

/// Keepalives on `cldev`'s watchdog while the firmware fuzzes: opened
/// when there is one, closed one time in eight, the device rebound every
/// [`FUZZ_REBIND_EVERY`] keepalives, or when it stayed unregistered for a
/// while (NOT_REQUIRED without a notification). Sends on `progress` as it
/// goes.
fn fuzz_loop(
    me: &Me,
    cldev: &str,
    ping_bound: Duration,
    control_bound: Duration,
    progress: &mpsc::Sender<()>,
) -> Tally {
    let mut tally = Tally::default();
    let mut rng = Rng(FUZZ_SEED);
    let dir = Path::new(stub::DRIVER_DIR);
    let mut file: Option<File> = None;
    let mut absent = 0;
    let mut rebind_at = FUZZ_REBIND_EVERY;
    while tally.ioctls < FUZZ_PINGS {
        let _ = progress.send(());
        if tally.ioctls >= rebind_at || absent >= 50 {
            rebind_at = tally.ioctls + FUZZ_REBIND_EVERY;
            absent = 0;
            drop(file.take());
            let _ = timed(&mut tally, "unbind", control_bound, || {
                write_errno(&dir.join("unbind"), cldev)
            });
            // Not while a fuzzed link reset's rescan adds the device (see
            // `SETTLING`).
            let _ = timed(&mut tally, "reset-wait", control_bound, || {
                settled(me, control_bound)
            });
            let _ = timed(&mut tally, "bind", control_bound, || {
                write_errno(&dir.join("bind"), cldev)
            });
            tally.events += 2;
        }
        if file.is_none() {
            let Some(wd) = watchdog::find_all()
                .into_iter()
                .find(|wd| wd.parent == cldev)
            else {
                absent += 1;
                rng.pause(10);
                continue;
            };
            absent = 0;
            // The fuzzed firmware resets the link and answers NOT_REQUIRED
            // on its own time: no open while that may unregister the
            // watchdog (see `no_open_in_flight`).
            let _ = timed(&mut tally, "quiet-wait", control_bound, || {
                no_unregister_pending(Some(me), cldev, control_bound)
            });
            file = timed(&mut tally, "open", control_bound, || {
                OpenOptions::new().write(true).open(&wd.node)
            })
            .ok();
        }
        let Some(f) = file.as_ref() else {
            continue;
        };
        tally.ioctls += 1;
        let _ = timed(&mut tally, "ping", ping_bound, || {
            sys::ioctl_int(f, IntIoctl::Keepalive, 0)
        });
        if rng.below(8) == 0 {
            drop(file.take());
        }
    }
    tally
}

/// Firmware fuzzing on the debug kernel: the stub's seeded fuzz mode
/// answers each start request of a v2 device at random (random bytes,
/// mutations, none, twice, unasked, late, with a notification, a link
/// reset instead or after; NOT_REQUIRED flipped one time in four) while
/// keepalives and probes go on. Every keepalive must return within the
/// ping bound and a slack, with 0, EPROTO, ETIMEDOUT or ENODEV; nothing
/// may hang (a call that makes no progress within the bounds fails the
/// run). Then a clean load, ping and close give C's golden trace. C gets
/// that last part only: its pings wait for ever on a dropped answer
/// (README, difference 1).
pub fn fuzz_firmware(ctx: &mut Ctx) -> Outcome {
    ctx.load_stub()?;
    let me = ctx.add_me(V2)?;
    ctx.load_driver_with(&[&ping_param()])?;
    let cldev = ctx.wait_watchdogs(1)?.remove(0).parent;
    me.settle(&ctx.t)?;
    if ctx.driver == Driver::Rust {
        let ping_bound = PING_TIMEOUT + ctx.t.scale(Duration::from_secs(1));
        let control_bound = ctx.t.probe;
        me.set(&format!(
            "trace=0 fuzz={FUZZ_SEED:#x} fuzz_delay_ms={}",
            FUZZ_DELAY.as_millis()
        ))?;
        ctx.log(format!(
            "seed {FUZZ_SEED:#x}, {FUZZ_PINGS} keepalives, a rebind every {FUZZ_REBIND_EVERY}, answers up to {} ms late; bounds: keepalive {:.1} s (ping_timeout_ms {} and a slack), control calls {:.1} s",
            FUZZ_DELAY.as_millis(),
            ping_bound.as_secs_f64(),
            PING_TIMEOUT.as_millis(),
            control_bound.as_secs_f64()
        ));
        let (tx, rx) = mpsc::channel();
        let worker = {
            let (me, cldev) = (me.clone(), cldev.clone());
            thread::spawn(move || fuzz_loop(&me, &cldev, ping_bound, control_bound, &tx))
        };
        let start = Instant::now();
        // Each step sends: silence past every bound is a hang.
        let stall = 2 * control_bound + ping_bound;
        loop {
            match rx.recv_timeout(stall) {
                Ok(()) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "the fuzz run made no progress for {:.0} s: a call hung",
                        stall.as_secs_f64()
                    ));
                }
            }
        }
        let tally = worker
            .join()
            .map_err(|_| "the fuzz thread panicked".to_string())?;
        ctx.log(format!(
            "{:.1} s, {} keepalives, {} rebinds",
            start.elapsed().as_secs_f64(),
            tally.ioctls,
            tally.events / 2
        ));
        tally.log(ctx);
        let counts = stub::read_file(&me_file(&me, "fuzz"))?;
        ctx.log(format!(
            "fuzz actions: {}",
            counts.trim().replace('\n', ", ")
        ));
        tally.check_kept_rules()?;
        me.set("fuzz=0")?;
    }
    // A clean load, ping and close: the trace C gives.
    ctx.unload_driver()?;
    me.settle(&ctx.t)?;
    me.set("not_required=0 trace=1")?;
    me.ctl("clear")?;
    ctx.load_driver_with(&[&ping_param()])?;
    let wd = ctx.wait_watchdogs(1)?.remove(0);
    me.settle(&ctx.t)?;
    let f = wd.open()?;
    op_ok(ctx, &f, ChildOp::Keepalive)?;
    drop(f);
    me.settle(&ctx.t).map(|_| ())
}
