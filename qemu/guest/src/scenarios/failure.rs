//! Failure and teardown paths: a debugfs file open across an unbind, a
//! watchdog registration that fails, a probe whose ping fails although it
//! went out, a malformed answer to the probe ping, and a notification
//! right after a NOT_REQUIRED answer.

use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::Duration;

use super::{in_order, notify_healed, op_ok, unanswered_probe_ping_stopped, unbind, V1, V2};
use crate::expect::{self, debugfs_dir, RUST_PROBE_BAD_ANSWER_LOG};
use crate::framework::{check, check_eq, wait_until, Ctx, Driver, Outcome};
use crate::kmod;
use crate::kmsg;
use crate::process;
use crate::stub::{self, Me, DRIVER_DIR};
use crate::sys::SIGKILL;
use crate::watchdog::{self, ChildOp, OpResult, EIO};

fn lines(v: &[&str]) -> Vec<String> {
    v.iter().map(ToString::to_string).collect()
}

/// A descriptor of the driver's debugfs `state` opened before an unbind
/// and closed after it: the read fails (the file is gone), the close must
/// not touch the freed device (KASAN), and the rebound device has its
/// files again.
pub fn debugfs_open_unbind(ctx: &mut Ctx) -> Outcome {
    let (me, wd) = ctx.setup(V2)?;
    let path = debugfs_dir(ctx.driver, &wd.parent).join("state");
    let file = File::open(&path).map_err(|e| format!("open {}: {e}", path.display()))?;
    let log = kmsg::mark()?;
    unbind(ctx, &me, &wd.parent)?;
    let mut buf = [0u8; 64];
    let read = file.read_at(&mut buf, 0);
    ctx.log(format!("read after the unbind: {read:?}"));
    check_eq(
        "errno of a read after the unbind",
        read.err().and_then(|e| e.raw_os_error()),
        Some(EIO),
    )?;
    drop(file);
    stub::write_file(&Path::new(DRIVER_DIR).join("bind"), &wd.parent)?;
    ctx.wait_watchdogs(1)?;
    me.settle(&ctx.t)?;
    let state = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    check_eq("state after the rebind", state.as_str(), "state: IDLE\n")?;
    check_eq("mei_wdt kernel log lines", log.driver_lines()?, vec![])
}

/// One of the driver's debugfs files held open across `rmmod`: closing it
/// runs the file's `release` through the module's file operations, so the
/// module must stay until then (rmmod refused, "in use"), and go at the
/// next rmmod. Rust only: the C driver's `file_operations` name no owner,
/// so rmmod goes through and the close faults in `full_proxy_release`
/// (seen on 6.12: "unable to handle page fault", the VM panics); 7.3's
/// `kernel::debugfs` names none either.
pub fn debugfs_open_rmmod(ctx: &mut Ctx) -> Outcome {
    ctx.skip_trace();
    let (me, wd) = ctx.setup(V2)?;
    let path = debugfs_dir(ctx.driver, &wd.parent).join("state");
    let file = File::open(&path).map_err(|e| format!("open {}: {e}", path.display()))?;
    let rmmod = kmod::try_rmmod(kmod::DRIVER);
    ctx.log(format!("rmmod with {} open: {rmmod:?}", path.display()));
    let loaded = kmod::is_loaded(kmod::DRIVER);
    drop(file);
    check(loaded, || {
        format!("rmmod mei_wdt went through with {} open", path.display())
    })?;
    check(rmmod.is_err(), || "rmmod mei_wdt said it succeeded".into())?;
    ctx.unload_driver()?;
    me.settle(&ctx.t).map(|_| ())
}

/// The watchdog core's ids are all taken (32 fillers from the stub), so
/// the driver's registration fails. C: a v2 device stays bound without a
/// watchdog, a v1 probe fails. Rust must do the same, and not unregister
/// the device it never registered (a NULL dereference in the core).
fn register_fails(ctx: &mut Ctx, config: &str) -> Outcome {
    ctx.load_stub()?;
    stub::set_fillers(32)?;
    let me = ctx.add_me(config)?;
    let cldev = stub::only_wdt_client()?;
    let log = kmsg::mark()?;
    ctx.load_driver()?;
    log.wait_for(
        "failed to register watchdog device (err = -28)",
        ctx.t.probe,
    )?;
    me.settle(&ctx.t)?;
    thread::sleep(ctx.t.absent);
    check(watchdog::find_all().is_empty(), || {
        "an iamt_wdt watchdog registered with every id taken".into()
    })?;
    let v1 = config == V1;
    check_eq("driver bound to the client", stub::is_bound(&cldev), !v1)?;
    let probe_failed = "probe with driver mei_wdt failed with error -28";
    let want = match (ctx.driver, v1) {
        (Driver::C, false) => lines(&[]),
        (Driver::C, true) => lines(&[probe_failed]),
        (Driver::Rust, false) => lines(&["unable to register watchdog device: -28"]),
        (Driver::Rust, true) => lines(&["unable to register watchdog device: -28", probe_failed]),
    };
    check_eq("mei_wdt kernel log lines", log.driver_lines()?, want)?;
    stub::set_fillers(0)
}

pub fn register_fails_v1(ctx: &mut Ctx) -> Outcome {
    register_fails(ctx, V1)
}

pub fn register_fails_v2(ctx: &mut Ctx) -> Outcome {
    register_fails(ctx, V2)
}

/// Rust only, so no golden trace (the steps are checked instead): the stub
/// and a v2 device whose host writes complete `late` (scaled) after they
/// arrive. Returns the device and the scaled delay.
fn late_writes(ctx: &mut Ctx, late: Duration) -> Result<(Me, Duration), String> {
    ctx.skip_trace();
    ctx.load_stub()?;
    let late = ctx.t.scale(late);
    let config = format!("{V2} write_fault=late write_late_ms={}", late.as_millis());
    Ok((ctx.add_me(&config)?, late))
}

/// The probe's ping reaches the firmware, which answers at once, but the
/// write completes only after the send's bound (`ping_timeout_ms=300`):
/// the send fails with ETIME. The answer decides: the device registers,
/// bound to the driver (a failed probe must never leave a watchdog behind).
/// Rust only: C's send has no bound, and the rx callback's stop-request
/// overlapping it fails C's probe after registering (README, difference 7).
pub fn probe_send_late(ctx: &mut Ctx) -> Outcome {
    let (me, late) = late_writes(ctx, Duration::from_millis(800))?;
    let cldev = stub::only_wdt_client()?;
    let log = kmsg::mark()?;
    ctx.load_driver_with(&["ping_timeout_ms=300"])?;
    let wd = ctx.wait_watchdogs(1)?.remove(0);
    check(stub::is_bound(&cldev), || {
        format!(
            "{} is registered, but its probe failed: no driver on {cldev}",
            wd.name
        )
    })?;
    check_eq("watchdog parent", wd.parent.as_str(), cldev.as_str())?;
    let t = me.settle(&ctx.t)?;
    in_order(
        &t,
        &[
            "host: connect",
            "start-request",
            "fw: write completion late",
            "start-response",
            "stop-request",
            "fw: write completion late",
        ],
    )?;
    // The stop-request was late too.
    check_eq(
        "mei_wdt kernel log lines",
        log.driver_lines()?,
        lines(&["stop send failed: -62"]),
    )?;
    // Past the last late write: the device works.
    me.set("write_fault=none")?;
    thread::sleep(late);
    let f = wd.open()?;
    op_ok(ctx, &f, ChildOp::Keepalive)?;
    drop(f);
    me.wait_trace("a stop-request on close", ctx.t.op, |t| {
        t.count("stop-request") == 2
    })?;
    me.settle(&ctx.t).map(|_| ())
}

/// insmod is killed while the probe's ping waits for its (late) write to
/// complete: the send fails with EINTR and the probe fails, although the
/// firmware got the ping and answered. No watchdog may be left behind.
/// Rust only, as `probe_send_late`.
pub fn probe_interrupted(ctx: &mut Ctx) -> Outcome {
    let (me, late) = late_writes(ctx, Duration::from_millis(1000))?;
    let cldev = stub::only_wdt_client()?;
    let log = kmsg::mark()?;
    let insmod = process::spawn(Command::new("insmod").arg(kmod::module_path(kmod::DRIVER)?))?;
    me.wait_trace("the probe's start-request", ctx.t.probe, |t| {
        t.count("start-request") == 1
    })?;
    insmod.signal(SIGKILL)?;
    let done = insmod.finish(ctx.t.op);
    ctx.log(format!("insmod after SIGKILL: {:?}", done.status));
    log.wait_for("probe ping send failed: -4", ctx.t.op)?;
    me.wait_trace("host: disconnect", ctx.t.probe, |t| {
        t.count("host: disconnect") == 1
    })?;
    // Past the stop-request's late write, if the rx callback sent one.
    thread::sleep(late);
    me.settle(&ctx.t)?;
    check(watchdog::find_all().is_empty(), || {
        "the probe was interrupted, yet an iamt_wdt watchdog is registered".into()
    })?;
    check(!stub::is_bound(&cldev), || {
        format!("the probe was interrupted, yet {cldev} has a driver")
    })?;
    // The rx callback's stop-request races the failing probe: it may
    // fail (ENODEV, ETIME) or not be sent, so its line is not asserted.
    let printed: Vec<String> = log
        .driver_lines()?
        .into_iter()
        .filter(|l| !l.starts_with("stop send failed: "))
        .collect();
    check_eq(
        "mei_wdt kernel log lines",
        printed,
        lines(&[
            "probe ping send failed: -4",
            "probe with driver mei_wdt failed with error -4",
        ]),
    )
}

/// The probe ping's write fails (`write_fault=error`: the MEI core's
/// `mei_cl_write` gets EIO from the hardware) after the firmware got the
/// ping, which it answers. The probe fails with EIO, and no watchdog that
/// the answer may have registered is left behind; once the fault is
/// cleared, a bind probes normally. Rust only, as `probe_interrupted` (C
/// frees its data while the answer's rx callback may still use it).
pub fn probe_send_fails(ctx: &mut Ctx) -> Outcome {
    ctx.skip_trace();
    ctx.load_stub()?;
    let me = ctx.add_me(&format!("{V2} write_fault=error"))?;
    let cldev = stub::only_wdt_client()?;
    let log = kmsg::mark()?;
    ctx.load_driver()?;
    let probe_failed = "probe with driver mei_wdt failed with error -5";
    log.wait_for(probe_failed, ctx.t.probe)?;
    me.wait_trace("host: disconnect", ctx.t.probe, |t| {
        t.count("host: disconnect") == 1
    })?;
    me.settle(&ctx.t)?;
    thread::sleep(ctx.t.absent);
    in_order(
        &me.trace()?,
        &[
            "host: connect",
            "start-request",
            "fw: write reported failed",
            "host: disconnect",
        ],
    )?;
    check(watchdog::find_all().is_empty(), || {
        "the probe's send failed, yet an iamt_wdt watchdog is registered".into()
    })?;
    check(!stub::is_bound(&cldev), || {
        format!("the probe's send failed, yet {cldev} has a driver")
    })?;
    // The answer's stop-request, if the rx callback sent one before the
    // probe shut down, fails too.
    let printed: Vec<String> = log
        .driver_lines()?
        .into_iter()
        .filter(|l| !l.starts_with("stop send failed: "))
        .collect();
    check_eq(
        "mei_wdt kernel log lines",
        printed,
        lines(&["probe ping send failed: -5", probe_failed]),
    )?;
    me.set("write_fault=none")?;
    stub::write_file(&Path::new(DRIVER_DIR).join("bind"), &cldev)?;
    ctx.wait_watchdogs(1)?;
    me.settle(&ctx.t).map(|_| ())
}

/// The probe ping's answer is malformed. C logs it and stays in PROBE for
/// good: a notification is ignored there. Rust logs it, gives up on the
/// probe ping as on a silent firmware, and registers on the next
/// notification.
pub fn probe_bad_answer(ctx: &mut Ctx) -> Outcome {
    ctx.load_stub()?;
    let me = ctx.add_me(&format!("{V2} fault=wrong_subcommand"))?;
    let log = kmsg::mark()?;
    ctx.load_driver()?;
    me.wait_trace("the probe's (malformed) answer", ctx.t.probe, |t| {
        t.count("fw<") == 1
    })?;
    me.settle(&ctx.t)?;
    thread::sleep(ctx.t.absent);
    check(watchdog::find_all().is_empty(), || {
        "the probe ping's answer was malformed, yet a watchdog registered".into()
    })?;
    let want = match ctx.driver {
        Driver::C => lines(&["unsupported command 147 :PROBE[0]"]),
        Driver::Rust => lines(&[
            "bad response: unsupported subcommand 0x93",
            RUST_PROBE_BAD_ANSWER_LOG,
        ]),
    };
    check_eq(
        "mei_wdt kernel log lines at probe",
        log.driver_lines()?,
        want,
    )?;
    unanswered_probe_ping_stopped(ctx, &me, "unknown subcommand")?;

    notify_healed(ctx, &me)?;
    match ctx.driver {
        Driver::Rust => {
            ctx.wait_watchdogs(1)?;
        }
        Driver::C => {
            thread::sleep(ctx.t.absent);
            check(watchdog::find_all().is_empty(), || {
                "C registered on a notification in PROBE state".into()
            })?;
        }
    }
    me.settle(&ctx.t).map(|_| ())
}

/// A running watchdog's ping is answered NOT_REQUIRED and, a moment later,
/// the ME notifies: the watchdog goes, and comes back (as a new device).
pub fn notreq_notify(ctx: &mut Ctx) -> Outcome {
    let (me, wd) = ctx.setup(V2)?;
    let f = wd.open()?;
    op_ok(ctx, &f, ChildOp::Keepalive)?;
    me.settle(&ctx.t)?;
    let log = kmsg::mark()?;
    let after = ctx.t.scale(Duration::from_millis(200));
    me.set(&format!(
        "not_required=1 notify_after_ms={}",
        after.as_millis()
    ))?;
    op_ok(ctx, &f, ChildOp::Keepalive)?;
    me.set("not_required=0 notify_after_ms=off")?;
    let new = wait_until("the watchdog re-registered", ctx.t.probe, || {
        let all = watchdog::find_all();
        (all.len() == 1 && all[0].ino != wd.ino).then(|| all[0].clone())
    })?;
    check_eq("name of the re-registered watchdog", &new.name, &wd.name)?;
    let r = f.bounded(ChildOp::Keepalive, ctx.t.op)?;
    check_eq(
        "keepalive on the old fd",
        r.result,
        OpResult::Errno(watchdog::ENODEV),
    )?;
    drop(f);
    let t = me.settle(&ctx.t)?;
    in_order(&t, &["wdstate=1", "fw: notification"])?;
    check_eq("mei_wdt kernel log lines", log.driver_lines()?, vec![])
}

/// Rust only: `notreq_notify` with the notification 0 to 40 ms after the
/// NOT_REQUIRED answer, across the unregistration. However the two race,
/// at most one iamt_wdt exists at any time, under the first one's name,
/// and the driver's state agrees with what is registered: a notification
/// before the unregistration keeps the device, started.
pub fn notreq_notify_sweep(ctx: &mut Ctx) -> Outcome {
    ctx.skip_trace();
    let (me, first) = ctx.setup(V2)?;
    let dir = debugfs_dir(ctx.driver, &first.parent);
    let mut wd = first.clone();
    let (mut registered, mut kept) = (0, 0);
    for after_ms in (0..=40).step_by(4) {
        let f = wd.open()?;
        op_ok(ctx, &f, ChildOp::Keepalive)?;
        me.set(&format!("not_required=1 notify_after_ms={after_ms}"))?;
        op_ok(ctx, &f, ChildOp::Keepalive)?;
        me.set("not_required=0 notify_after_ms=off")?;
        let mut seen = 0;
        for _ in 0..20 {
            let all = watchdog::find_all();
            seen = seen.max(all.len());
            check(all.iter().all(|w| w.name == first.name), || {
                format!("{after_ms} ms: a second id was taken: {all:?}")
            })?;
            thread::sleep(Duration::from_millis(5));
        }
        check(seen <= 1, || {
            format!("{after_ms} ms: {seen} iamt_wdt at once")
        })?;
        drop(f);
        me.settle(&ctx.t)?;
        let all = watchdog::find_all();
        let state = fs::read_to_string(dir.join("state")).map_err(|e| e.to_string())?;
        ctx.log(format!(
            "notification {after_ms} ms after: {} watchdog(s), {}",
            all.len(),
            state.trim()
        ));
        match (all.as_slice(), state.trim()) {
            // Registered anew after the unregistration.
            ([one], "state: IDLE") if one.ino != wd.ino => {
                wd = one.clone();
                registered += 1;
            }
            // The notification called the unregistration off: the same
            // device, still started (the close after START sends nothing).
            ([one], "state: START") if one.ino == wd.ino => kept += 1,
            ([], "state: NOT_REQUIRED") => {
                // The notification came first and was ignored: bring the
                // watchdog back for the next round.
                me.ctl("notify")?;
                wd = ctx.wait_watchdogs(1)?.remove(0);
            }
            _ => return Err(format!("{after_ms} ms: {all:?} with {state:?}")),
        }
        me.settle(&ctx.t)?;
    }
    ctx.log(format!(
        "the notification re-registered the device in {registered} rounds, kept it in {kept}"
    ));
    Ok(())
}

/// The ME notifies while the NOT_REQUIRED unregistration is held up: the
/// keepalive that got the NOT_REQUIRED answer still waits for its write to
/// complete (`write_late_ms`), holding the watchdog core's device lock,
/// which the unregistration needs to finish; the notification comes in
/// that window. The old device keeps its id until it is gone, so a new
/// registration must wait for it: never two iamt_wdt at once, never a
/// second id. Both drivers re-register under the same name. (The watchdog
/// core holds one mutex across each registration and unregistration, so
/// this holds even with the driver's own registration lock released early.)
pub fn notreq_unregister_blocked(ctx: &mut Ctx) -> Outcome {
    let (me, first) = ctx.setup(V2)?;
    let f = first.open()?;
    op_ok(ctx, &f, ChildOp::Keepalive)?;
    me.settle(&ctx.t)?;
    let log = kmsg::mark()?;
    let late = ctx.t.scale(Duration::from_millis(1000));
    me.set(&format!(
        "not_required=1 write_fault=late write_late_ms={} notify_after_ms={}",
        late.as_millis(),
        late.as_millis() / 3
    ))?;
    let ping = f.start(ChildOp::Keepalive)?;
    me.wait_trace("the NOT_REQUIRED answer", ctx.t.op, |t| {
        t.count("wdstate=1") == 1
    })?;
    me.set("not_required=0 write_fault=none notify_after_ms=off")?;
    let mut seen = 0;
    let until = std::time::Instant::now() + late + ctx.t.op;
    while std::time::Instant::now() < until {
        let all = watchdog::find_all();
        seen = seen.max(all.len());
        check(all.iter().all(|w| w.name == first.name), || {
            format!("a second id was taken while the first device went away: {all:?}")
        })?;
        if all.len() == 1 && all[0].ino != first.ino {
            break;
        }
        thread::sleep(Duration::from_millis(5));
    }
    check(seen <= 1, || format!("{seen} iamt_wdt at once"))?;
    let r = ping.finish(ctx.t.op)?;
    ctx.log(format!("the keepalive answered NOT_REQUIRED: {r}"));
    check_eq("keepalive answered NOT_REQUIRED", r.result, OpResult::Ok(0))?;
    let new = wait_until("the watchdog re-registered", ctx.t.probe, || {
        let all = watchdog::find_all();
        (all.len() == 1 && all[0].ino != first.ino).then(|| all[0].clone())
    })?;
    check_eq("name of the re-registered watchdog", &new.name, &first.name)?;
    drop(f);
    let t = me.settle(&ctx.t)?;
    in_order(
        &t,
        &["fw: write completion late", "wdstate=1", "fw: notification"],
    )?;
    check_eq("mei_wdt kernel log lines", log.driver_lines()?, vec![])
}

/// The device is unbound while a keepalive waits for an answer that the
/// firmware dropped: remove frees the waiter (both drivers), which returns
/// at once, success in C, ENODEV in Rust (the device is going away); the
/// watchdog core then stops the running watchdog as it unregisters it.
pub fn remove_while_ping_waits(ctx: &mut Ctx) -> Outcome {
    let (me, wd) = ctx.setup(V2)?;
    let f = wd.open()?;
    op_ok(ctx, &f, ChildOp::Keepalive)?;
    me.settle(&ctx.t)?;
    me.set("fault=drop")?;
    let ping = f.start(ChildOp::Keepalive)?;
    me.wait_trace("the dropped answer", ctx.t.op, |t| {
        t.count("fw: start-response dropped") == 1
    })?;
    me.set("fault=none")?;
    let log = kmsg::mark()?;
    unbind(ctx, &me, &wd.parent)?;
    let r = ping.finish(ctx.t.op)?;
    ctx.log(format!("keepalive waiting across the unbind: {r}"));
    let want = match ctx.driver {
        Driver::C => OpResult::Ok(0),
        Driver::Rust => OpResult::Errno(watchdog::ENODEV),
    };
    check_eq("keepalive waiting across the unbind", r.result, want)?;
    drop(f);
    let t = me.settle(&ctx.t)?;
    in_order(
        &t,
        &[
            "fw: start-response dropped",
            "stop-request",
            "host: disconnect",
        ],
    )?;
    check_eq("mei_wdt kernel log lines", log.driver_lines()?, vec![])
}

/// rmmod while /dev/watchdogN is open: the watchdog core holds the module
/// (its `owner`), so the unload fails and changes nothing; after the close
/// it works.
pub fn rmmod_open(ctx: &mut Ctx) -> Outcome {
    let (me, wd) = ctx.setup(V2)?;
    let f = wd.open()?;
    op_ok(ctx, &f, ChildOp::Keepalive)?;
    me.settle(&ctx.t)?;
    let out = Command::new("rmmod")
        .arg(kmod::DRIVER)
        .output()
        .map_err(|e| format!("rmmod: {e}"))?;
    let err = String::from_utf8_lossy(&out.stderr);
    ctx.log(format!("rmmod while open: {} {}", out.status, err.trim()));
    check(!out.status.success(), || {
        "rmmod succeeded while the device was open".into()
    })?;
    check(err.contains("Resource temporarily unavailable"), || {
        format!("rmmod while open: {err}")
    })?;
    check(kmod::is_loaded(kmod::DRIVER), || {
        "mei_wdt unloaded while open".into()
    })?;
    op_ok(ctx, &f, ChildOp::Keepalive)?;
    drop(f);
    me.wait_trace("a stop-request on close", ctx.t.op, |t| {
        t.count("stop-request") == 2
    })?;
    ctx.unload_driver()?;
    ctx.wait_no_watchdog()?;
    me.settle(&ctx.t).map(|_| ())
}

/// A probe that fails before its ping: `fault` (a stub setting) makes a
/// MEI bus call fail with `errno`, after the bus's own lines `bus_lines`.
/// The probe fails and says so (C and Rust: `c_line`, `rust_line`), the
/// client is disconnected and unbound, no watchdog is left; once the fault
/// is cleared, a bind probes normally.
fn probe_fails(
    ctx: &mut Ctx,
    fault: &str,
    errno: i32,
    bus_lines: &[&str],
    c_line: &str,
    rust_line: &str,
) -> Outcome {
    ctx.load_stub()?;
    let me = ctx.add_me(&format!("{V2} {fault}=1"))?;
    let cldev = stub::only_wdt_client()?;
    let log = kmsg::mark()?;
    ctx.load_driver()?;
    let probe_failed = format!("probe with driver mei_wdt failed with error -{errno}");
    log.wait_for(&probe_failed, ctx.t.probe)?;
    me.settle(&ctx.t)?;
    thread::sleep(ctx.t.absent);
    check(watchdog::find_all().is_empty(), || {
        "the probe failed, yet an iamt_wdt watchdog is registered".into()
    })?;
    check(!stub::is_bound(&cldev), || {
        format!("the probe failed, yet {cldev} has a driver")
    })?;
    let line = match ctx.driver {
        Driver::C => c_line,
        Driver::Rust => rust_line,
    };
    let stack = log.stack_lines()?;
    for l in &stack {
        ctx.log(format!("kernel log: {l}"));
    }
    let want = bus_lines
        .iter()
        .copied()
        .chain([line, probe_failed.as_str()])
        .map(|l| format!("mei_wdt {cldev}: {l}"))
        .collect();
    check_eq("driver stack kernel log lines", stack, want)?;
    me.set(&format!("{fault}=0"))?;
    stub::write_file(&Path::new(DRIVER_DIR).join("bind"), &cldev)?;
    ctx.wait_watchdogs(1)?;
    me.settle(&ctx.t).map(|_| ())
}

/// The ME refuses the watchdog client's connection (HBM status
/// NOT_ALLOWED: `mei_cldev_enable` says "cannot connect" and fails with
/// EBUSY). Rust also names the
/// errno, which C's line does not.
pub fn probe_enable_fails(ctx: &mut Ctx) -> Outcome {
    probe_fails(
        ctx,
        "connect_refused",
        16,
        expect::mei_connect_refused_logs(),
        "Could not enable cl device",
        "Could not enable cl device: -16",
    )
}

/// The read request that registering the rx callback starts (an HBM
/// flow-control write) fails with EIO: `mei_cldev_register_rx_cb` fails.
pub fn probe_rx_fails(ctx: &mut Ctx) -> Outcome {
    probe_fails(
        ctx,
        "read_fault",
        5,
        &[],
        "Could not reg rx event ret=-5",
        "Could not reg rx event ret=-5",
    )
}

/// A link reset while a keepalive's start-request waits for its write to
/// complete (late writes): the MEI core wakes the send with EFAULT, "bad
/// address", which C hands to userspace. Rust says what happened: ENODEV,
/// the device is going away (README). Then the device comes back, as in
/// `reset_open`.
pub fn reset_during_send(ctx: &mut Ctx) -> Outcome {
    let (me, wd) = ctx.setup(V2)?;
    let f = wd.open()?;
    op_ok(ctx, &f, ChildOp::Keepalive)?;
    me.settle(&ctx.t)?;
    let late = ctx.t.scale(Duration::from_secs(3));
    me.set(&format!(
        "write_fault=late write_late_ms={}",
        late.as_millis()
    ))?;
    let log = kmsg::mark()?;
    let ping = f.start(ChildOp::Keepalive)?;
    // The answer too (C on 7.3 gets it 100 ms late): the send still waits.
    me.wait_trace(
        "the keepalive's late write, and its answer",
        ctx.t.op,
        |t| t.count("fw: write completion late") == 1 && t.count("start-response status") == 3,
    )?;
    me.set("write_fault=none")?;
    me.ctl("reset")?;
    let r = ping.finish(ctx.t.op)?;
    ctx.log(format!("keepalive whose send a link reset cut: {r}"));
    let want = match ctx.driver {
        Driver::C => OpResult::Errno(watchdog::EFAULT),
        Driver::Rust => OpResult::Errno(watchdog::ENODEV),
    };
    check_eq("keepalive whose send a link reset cut", r.result, want)?;
    drop(f);
    wait_until("a re-registered watchdog", ctx.t.probe, || {
        let all = watchdog::find_all();
        (all.len() == 1 && all[0].ino != wd.ino).then_some(())
    })?;
    me.settle(&ctx.t)?;
    let want = match ctx.driver {
        Driver::C => vec![],
        Driver::Rust => lines(&["ping send failed: -19", "stop send failed: -19"]),
    };
    check_eq("mei_wdt kernel log lines", log.driver_lines()?, want)
}

/// A link reset between the keepalive's answer reaching the MEI core and
/// the driver's rx work fetching it (the core's reset work took its lock
/// first): the fetch fails with ENODEV. C logs it and leaves the keepalive
/// waiting until the device's removal frees it, with success. Rust fails
/// the keepalive with ENODEV at once, not with EPROTO as if the answer had
/// been malformed (the stress found that). Then the device comes back.
pub fn reset_before_read(ctx: &mut Ctx) -> Outcome {
    let (me, wd) = ctx.setup(V2)?;
    let f = wd.open()?;
    op_ok(ctx, &f, ChildOp::Keepalive)?;
    me.settle(&ctx.t)?;
    let log = kmsg::mark()?;
    me.ctl("reset_after_answer")?;
    let r = f.bounded(ChildOp::Keepalive, ctx.t.op)?;
    ctx.log(format!("keepalive whose answer a link reset took: {r}"));
    let want = match ctx.driver {
        Driver::C => OpResult::Ok(0),
        Driver::Rust => OpResult::Errno(watchdog::ENODEV),
    };
    check_eq("keepalive whose answer a link reset took", r.result, want)?;
    wait_until("a re-registered watchdog", ctx.t.probe, || {
        let all = watchdog::find_all();
        (all.len() == 1 && all[0].ino != wd.ino).then_some(())
    })?;
    drop(f);
    me.settle(&ctx.t)?;
    let want = match ctx.driver {
        Driver::C => lines(&["failure in recv -19"]),
        Driver::Rust => lines(&["failure in recv -19", "stop send failed: -19"]),
    };
    check_eq("mei_wdt kernel log lines", log.driver_lines()?, want)
}

/// As `reset_before_read`, with the probe ping's answer. C's probe does not
/// wait for it. Rust's probe ends at once with ENODEV, the connection
/// lost, instead of taking the fetch's failure for a malformed answer (or
/// it saw the link go first).
/// Either way the bus' new client device probes and registers.
pub fn probe_reset_before_read(ctx: &mut Ctx) -> Outcome {
    ctx.load_stub()?;
    let me = ctx.add_me(V2)?;
    me.ctl("reset_after_answer")?;
    let log = kmsg::mark()?;
    ctx.load_driver()?;
    ctx.wait_watchdogs(1)?;
    me.settle(&ctx.t)?;
    let mut got = log.driver_lines()?;
    if ctx.driver == Driver::Rust {
        // rx's line, unless the probe saw the link down first (it polls)
        // and its failure cancelled the pending rx work.
        got.retain(|l| l != "failure in recv -19");
    }
    let want = match ctx.driver {
        Driver::C => lines(&["failure in recv -19"]),
        Driver::Rust => lines(&["connection lost while waiting for the probe ping's response"]),
    };
    check_eq("mei_wdt kernel log lines", got, want)
}
