//! busybox `watchdog` as the device's daemon (`-F -T 120 -t N`), ended or
//! paused by signals.
//!
//! With a long ping period the daemon's traffic is fixed: its start-up
//! (open, `WDIOS_ENABLECARD`, `WDIOC_SETTIMEOUT`, the first write) and then
//! whatever the signal does. Those runs keep a golden trace. The paused run
//! depends on timing and checks properties instead.

use std::process::Command;
use std::thread;
use std::time::Duration;

use super::{in_order, log_run, set_clock, spawn_started, STARTUP_PINGS, V2};
use crate::framework::{check, check_eq, wait_until, Ctx, Outcome};
use crate::process::{self, Finished, Running};
use crate::stub::{Me, Trace};
use crate::sys::{SIGCONT, SIGKILL, SIGSTOP, SIGTERM};
use crate::watchdog::Watchdog;

const BUSYBOX: &str = "/bin/busybox";

fn daemon_command(wd: &Watchdog, period: &str) -> Command {
    let mut cmd = Command::new(BUSYBOX);
    cmd.args(["watchdog", "-F", "-T", "120", "-t", period])
        .arg(&wd.node);
    cmd
}

fn requests(t: &Trace) -> usize {
    t.count("start-request")
}

/// Logs the daemon's end (`how` it was signalled) and its output.
fn log_exit(ctx: &mut Ctx, how: &str, out: &Finished) {
    let cmdline = format!("busybox watchdog ({how}): status {:?}", out.status);
    log_run(ctx, &cmdline, out);
}

/// Starts the daemon with a 60 s period and waits until its start-up is in
/// the trace, so that it sleeps before its second write.
fn start_quiet_daemon(ctx: &Ctx, me: &Me, wd: &Watchdog) -> Result<Running, String> {
    spawn_started(
        ctx,
        me,
        &mut daemon_command(wd, "60"),
        "the daemon's start-up pings",
    )
}

/// SIGTERM: the daemon writes the magic 'V' (a last ping) and closes, which
/// disarms the firmware timer.
pub fn busybox_sigterm(ctx: &mut Ctx) -> Outcome {
    let (me, wd) = ctx.setup(V2)?;
    let daemon = start_quiet_daemon(ctx, &me, &wd)?;
    daemon.signal(SIGTERM)?;
    let out = daemon.finish(ctx.t.op);
    log_exit(ctx, "SIGTERM", &out);
    check_eq("exit status after SIGTERM", out.exit_code()?, 0)?;
    check_eq("stderr", out.stderr.as_str(), "")?;
    let t = me.settle(&ctx.t)?;
    check(t.last_request().contains("stop-request"), || {
        format!("last request after SIGTERM is {:?}", t.last_request())
    })
}

/// SIGKILL: no magic 'V'. The device does not announce WDIOF_MAGICCLOSE,
/// so the watchdog core stops it on any close (both drivers).
pub fn busybox_sigkill(ctx: &mut Ctx) -> Outcome {
    let (me, wd) = ctx.setup(V2)?;
    let daemon = start_quiet_daemon(ctx, &me, &wd)?;
    let before = requests(&me.trace()?);
    daemon.signal(SIGKILL)?;
    let out = daemon.finish(ctx.t.op);
    log_exit(ctx, "SIGKILL", &out);
    check(out.exit_code().is_err() && !out.hung(), || {
        format!("status after SIGKILL: {:?}", out.status)
    })?;
    let t = me.wait_trace("a stop-request on the close", ctx.t.op, |t| {
        t.last_request().contains("stop-request")
    })?;
    check_eq("start-requests after SIGKILL", requests(&t), before)
}

/// SIGSTOP while armed: the pings stop, the firmware timer expires; SIGCONT
/// resumes the pings, which re-arm it; SIGTERM then disarms it. The stub's
/// clock runs fast (10 ms per firmware second, 120 s in 1.2 s) and the
/// daemon pings every 200 ms (both scaled on the debug kernel).
pub fn busybox_sigstop(ctx: &mut Ctx) -> Outcome {
    ctx.skip_trace();
    let (me, wd) = ctx.setup(V2)?;
    // 120 firmware seconds in 600 ms (scaled), three of the daemon's periods.
    let fw_second = set_clock(ctx, &me, Duration::from_millis(5))?;
    let period = format!("{}ms", ctx.t.scale(Duration::from_millis(200)).as_millis());
    let base = requests(&me.trace()?);
    let daemon = process::spawn(&mut daemon_command(&wd, &period))?;
    let run = (|| {
        me.wait_trace("pings from the daemon", ctx.t.op, |t| {
            requests(t) >= base + STARTUP_PINGS + 3
        })?;
        let armed = me.timer()?;
        ctx.log(format!("timer while pinged: {}", armed.raw));
        check_eq("timer state while pinged", armed.state.as_str(), "armed")?;
        check_eq("expirations while pinged", armed.expired, 0)?;

        daemon.signal(SIGSTOP)?;
        let expired = wait_until("the firmware timer to expire", ctx.t.probe, || {
            me.timer().ok().filter(|t| t.expired >= 1)
        })?;
        ctx.log(format!("timer after SIGSTOP: {}", expired.raw));
        let paused = requests(&me.trace()?);
        thread::sleep(ctx.t.absent);
        check_eq(
            "start-requests while stopped",
            requests(&me.trace()?),
            paused,
        )?;

        daemon.signal(SIGCONT)?;
        me.wait_trace("pings after SIGCONT", ctx.t.op, |t| {
            requests(t) >= paused + 2
        })?;
        let resumed = me.timer()?;
        ctx.log(format!("timer after SIGCONT: {}", resumed.raw));
        check_eq("timer state after SIGCONT", resumed.state.as_str(), "armed")?;
        check_eq("expirations after SIGCONT", resumed.expired, 1)?;
        daemon.signal(SIGTERM)
    })();
    if run.is_err() {
        // A stopped daemon dies from SIGKILL too.
        let _ = daemon.signal(SIGKILL);
    }
    let out = daemon.finish(ctx.t.op);
    log_exit(ctx, "SIGSTOP, SIGCONT, SIGTERM", &out);
    run?;
    check_eq("exit status after SIGTERM", out.exit_code()?, 0)?;
    let t = me.settle(&ctx.t)?;
    in_order(&t, &["fw: timer expired", "start-request", "stop-request"])?;
    check(t.last_request().contains("stop-request"), || {
        format!("last request after SIGTERM is {:?}", t.last_request())
    })?;
    // Half as long again as the firmware timeout (120 s): a disarmed
    // timer must stay quiet.
    thread::sleep(fw_second * 180);
    let timer = me.timer()?;
    ctx.log(format!("timer after SIGTERM: {}", timer.raw));
    check_eq("timer state after SIGTERM", timer.state.as_str(), "idle")?;
    check_eq("expirations after SIGTERM", timer.expired, 1)
}
