//! A firmware that stops answering: at probe, and under the Rust driver's
//! `ping_timeout_ms` bound (see expect.rs).

use std::fs;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use super::{notify_healed, op_ok, unanswered_probe_ping_stopped, V2};
use crate::expect::{
    debugfs_dir, fault_bound, Expected, C_UNKNOWN_PARAM_LOG, PING_TIMEOUT_PARAM, RUST_PING_TIMEOUT,
    RUST_PROBE_SILENT_LOG,
};
use crate::framework::{check, check_eq, Ctx, Driver, Outcome};
use crate::kmod;
use crate::kmsg;
use crate::stub::{self, Me};
use crate::watchdog::{self, ChildOp, ETIMEDOUT, IDENTITY};

/// The driver's debugfs `state` and `activation`, one line each.
fn debugfs_state(ctx: &Ctx, cldev: &str) -> Result<(String, String), String> {
    let dir = debugfs_dir(ctx.driver, cldev);
    let read = |name: &str| {
        fs::read_to_string(dir.join(name))
            .map(|s| s.trim_end().to_string())
            .map_err(|e| format!("{}/{name}: {e}", dir.display()))
    };
    Ok((read("state")?, read("activation")?))
}

/// v2 firmware that drops the probe ping's answer; then answers again and
/// notifies. C: the probe sent its ping and returned, the state stays
/// PROBE, the notification is ignored: no watchdog, ever. Rust: the probe
/// gives up after `ping_timeout_ms`, says so, and the notification
/// registers the watchdog.
pub fn probe_silent(ctx: &mut Ctx) -> Outcome {
    ctx.load_stub()?;
    let me = ctx.add_me(V2)?;
    me.set("fault=drop")?;
    let cldev = stub::only_wdt_client()?;
    let log = kmsg::mark()?;
    let loaded = Instant::now();
    ctx.load_driver()?;
    // Rust's probe waits for the answer (bounded) before insmod returns.
    ctx.log(format!(
        "insmod returned after {:.1} s",
        loaded.elapsed().as_secs_f64()
    ));
    me.wait_trace("the probe's dropped start-response", ctx.t.probe, |t| {
        t.count("fw: start-response dropped") == 1
    })?;
    // Rust: past its bound. C has none, and nothing to wait for.
    let past_bound = RUST_PING_TIMEOUT + ctx.t.scale(Duration::from_secs(2));
    match ctx.driver {
        Driver::Rust => {
            log.wait_for(RUST_PROBE_SILENT_LOG, past_bound)?;
        }
        Driver::C => thread::sleep(ctx.t.absent),
    }
    ctx.log(format!(
        "{:.1} s after insmod: {} iamt_wdt watchdog(s)",
        loaded.elapsed().as_secs_f64(),
        watchdog::find_all().len()
    ));
    check(watchdog::find_all().is_empty(), || {
        "the probe ping went unanswered, yet a watchdog registered".into()
    })?;
    let printed = log.driver_lines()?;
    let want: Vec<String> = match ctx.driver {
        Driver::C => vec![],
        Driver::Rust => vec![RUST_PROBE_SILENT_LOG.to_string()],
    };
    check_eq(
        "mei_wdt kernel log lines after a silent probe",
        printed,
        want,
    )?;
    unanswered_probe_ping_stopped(ctx, &me, "start-response dropped")?;
    let (state, activation) = debugfs_state(ctx, &cldev)?;
    ctx.log(format!(
        "debugfs after the silent probe: {state}, {activation}"
    ));
    let want_state = match ctx.driver {
        Driver::C => "state: PROBE",
        Driver::Rust => "state: NOT_REQUIRED",
    };
    check_eq("debugfs state", state.as_str(), want_state)?;
    check_eq("debugfs activation", activation.as_str(), "deactivated")?;
    me.settle(&ctx.t)?;

    let log = kmsg::mark()?;
    notify_healed(ctx, &me)?;
    match ctx.driver {
        Driver::Rust => {
            let wd = ctx.wait_watchdogs(1)?.remove(0);
            check_eq("identity", wd.attr("identity")?.as_str(), IDENTITY)?;
            check_eq("watchdog parent", wd.parent.as_str(), cldev.as_str())?;
            ctx.log(format!("after the notification: {} registered", wd.name));
        }
        Driver::C => {
            thread::sleep(ctx.t.absent);
            check(watchdog::find_all().is_empty(), || {
                "C registered on a notification in PROBE state".into()
            })?;
            ctx.log("after the notification: still no watchdog");
        }
    }
    let (state, activation) = debugfs_state(ctx, &cldev)?;
    ctx.log(format!(
        "debugfs after the notification: {state}, {activation}"
    ));
    let want = match ctx.driver {
        Driver::C => ("state: PROBE", "deactivated"),
        Driver::Rust => ("state: IDLE", "activated"),
    };
    check_eq("debugfs state", state.as_str(), want.0)?;
    check_eq("debugfs activation", activation.as_str(), want.1)?;
    check_eq(
        "mei_wdt kernel log lines after the notification",
        log.driver_lines()?,
        vec![],
    )?;
    me.settle(&ctx.t).map(|_| ())
}

/// One keepalive against a firmware that drops it, bounded by `bound` in
/// the Rust driver; checks the outcome and what the driver printed.
fn dropped_keepalive(ctx: &mut Ctx, me: &Me, f: &watchdog::WdFile, bound: Duration) -> Outcome {
    let log = kmsg::mark()?;
    let r = f.bounded(ChildOp::Keepalive, fault_bound(ctx.driver, bound, &ctx.t))?;
    ctx.log(format!(
        "dropped keepalive (Rust bound {} ms): {r}",
        bound.as_millis()
    ));
    me.settle(&ctx.t)?;
    let (want, want_log) = match ctx.driver {
        Driver::C => (Expected::Hang, vec![]),
        Driver::Rust => (
            Expected::FailsAtBound(ETIMEDOUT),
            vec![format!(
                "no ping response from the firmware in {} ms",
                bound.as_millis()
            )],
        ),
    };
    want.check(&r, bound, &ctx.t)?;
    check_eq("mei_wdt kernel log lines", log.driver_lines()?, want_log)
}

/// `insmod mei_wdt.ko ping_timeout_ms=500`. Rust: the parameter shows in
/// sysfs, a dropped ping fails after about 500 ms, and a write to the
/// parameter applies to the next ping. C has no parameters at all (the
/// kernel ignores the unknown one and says so), and the ping hangs.
pub fn ping_timeout_param(ctx: &mut Ctx) -> Outcome {
    ctx.load_stub()?;
    let me = ctx.add_me(V2)?;
    let log = kmsg::mark()?;
    ctx.load_driver_with(&["ping_timeout_ms=500"])?;
    let wd = ctx.wait_watchdogs(1)?.remove(0);
    me.settle(&ctx.t)?;
    let param = Path::new(PING_TIMEOUT_PARAM);
    match ctx.driver {
        Driver::Rust => {
            let v = fs::read_to_string(param).map_err(|e| format!("{PING_TIMEOUT_PARAM}: {e}"))?;
            ctx.log(format!("{PING_TIMEOUT_PARAM}: {}", v.trim()));
            check_eq("ping_timeout_ms in sysfs", v.trim(), "500")?;
            check(!log.has(C_UNKNOWN_PARAM_LOG)?, || {
                format!("the kernel said {C_UNKNOWN_PARAM_LOG:?}")
            })?;
        }
        Driver::C => {
            check(!param.exists(), || format!("{PING_TIMEOUT_PARAM} exists"))?;
            let dir = param.parent().expect("the parameter has a directory");
            ctx.log(format!(
                "{} {}",
                dir.display(),
                if dir.exists() {
                    "exists"
                } else {
                    "does not exist"
                }
            ));
            log.wait_for(C_UNKNOWN_PARAM_LOG, ctx.t.op)?;
        }
    }

    let f = wd.open()?;
    op_ok(ctx, &f, ChildOp::Keepalive)?;
    me.settle(&ctx.t)?;
    me.set("fault=drop")?;
    dropped_keepalive(ctx, &me, &f, Duration::from_millis(500))?;
    // Writable at run time (mode 0644): the next ping uses the new bound.
    if ctx.driver == Driver::Rust {
        stub::write_file(param, "1000")?;
    }
    dropped_keepalive(ctx, &me, &f, Duration::from_millis(1000))?;
    me.set("fault=none")?;
    drop(f);
    me.wait_trace("a stop-request on close", ctx.t.op, |t| {
        t.count("stop-request") == 2
    })?;
    me.settle(&ctx.t).map(|_| ())
}

/// Rust only: a `ping_timeout_ms` outside 100..60000 is used clamped. 0
/// and 50 wait 100 ms (0 would make every send fail at once); 10^6 waits
/// for an answer that comes after 6 s, past the default bound (its minute
/// ceiling is not waited for here).
pub fn ping_timeout_clamp(ctx: &mut Ctx) -> Outcome {
    ctx.skip_trace();
    let (me, wd) = ctx.setup(V2)?;
    let param = Path::new(PING_TIMEOUT_PARAM);
    let f = wd.open()?;
    op_ok(ctx, &f, ChildOp::Keepalive)?;
    me.settle(&ctx.t)?;
    me.set("fault=drop")?;
    for value in ["0", "50"] {
        stub::write_file(param, value)?;
        dropped_keepalive(ctx, &me, &f, Duration::from_millis(100))?;
    }
    stub::write_file(param, "1000000")?;
    let late = Duration::from_secs(6);
    me.set(&format!("fault=delay delay_ms={}", late.as_millis()))?;
    let r = f.bounded(ChildOp::Keepalive, late + ctx.t.op)?;
    ctx.log(format!("ping_timeout_ms=1000000, answer after 6 s: {r}"));
    Expected::OkAfter(late).check(&r, Duration::from_secs(60), &ctx.t)?;
    me.set("fault=none")?;
    op_ok(ctx, &f, ChildOp::Keepalive)?;
    drop(f);
    me.settle(&ctx.t).map(|_| ())
}

/// The Rust driver's `ping_timeout_ms` in [`probe_link_reset`]: long
/// enough that a probe which waits it out is told from one that ends with
/// the link.
const LINK_RESET_PING_TIMEOUT_MS: u32 = 20_000;

/// A link reset while the probe waits for its ping's answer (dropped).
/// The MEI core's rescan removes the old client device under its device
/// lock, which the probe holds: a probe that waited out its bound would
/// hold up the rescan, and with it the new client device, for that long.
/// (A second reset in that window leaks the new device in the MEI core:
/// it is never added, and the bus frees only added devices.) Rust: the
/// probe sees the link go down and returns; C's probe does not wait for
/// the answer. Then the new client device probes and registers.
pub fn probe_link_reset(ctx: &mut Ctx) -> Outcome {
    ctx.load_stub()?;
    let me = ctx.add_me(V2)?;
    me.set("fault=drop")?;
    let param = format!("ping_timeout_ms={LINK_RESET_PING_TIMEOUT_MS}");
    let params: Vec<String> = match ctx.driver {
        Driver::Rust => vec![param],
        Driver::C => vec![],
    };
    let insmod = thread::spawn(move || {
        let params: Vec<&str> = params.iter().map(String::as_str).collect();
        let loaded = kmod::insmod(kmod::DRIVER, &params);
        (loaded, Instant::now())
    });
    me.wait_trace("the probe's dropped start-response", ctx.t.probe, |t| {
        t.count("fw: start-response dropped") == 1
    })?;
    me.set("fault=none")?;
    let reset = Instant::now();
    me.ctl("reset")?;
    let (loaded, returned) = insmod
        .join()
        .map_err(|_| "the insmod thread panicked".to_string())?;
    loaded?;
    let after = returned.saturating_duration_since(reset);
    ctx.log(format!(
        "insmod returned {:.2} s after the link reset",
        after.as_secs_f64()
    ));
    let bound = ctx.t.scale(Duration::from_secs(2));
    check(after <= bound, || {
        format!(
            "insmod returned {:.1} s after the link reset, past {:.1} s: the probe held its device through the reset (ping_timeout_ms={LINK_RESET_PING_TIMEOUT_MS})",
            after.as_secs_f64(),
            bound.as_secs_f64()
        )
    })?;
    ctx.wait_watchdogs(1)?;
    me.settle(&ctx.t).map(|_| ())
}
