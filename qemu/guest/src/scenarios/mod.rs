//! The scenarios, in the order `--suite all` runs them, and the extra ones
//! run only by name.

mod abuse;
mod busybox;
mod debugfs;
mod demo;
mod failure;
mod fault;
mod lifecycle;
mod notify;
mod ops;
mod probe;
mod silent;
mod smp;
mod stress;
mod timer;
mod tools;

use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::Duration;

use crate::expect::FAULTS;
use crate::framework::{check_eq, Ctx, Driver, Outcome, Scenario};
use crate::process::{self, Finished, Running};
use crate::stub::{self, Me, Trace};
use crate::watchdog::{ChildOp, OpResult, WdFile};

/// Stub configs: the AMT watchdog client with protocol version 1 or 2.
pub const V1: &str = "wd=1 version=1 notify=1";
pub const V2: &str = "wd=1 version=2 notify=1";

pub fn all() -> Vec<Scenario> {
    let mut v = vec![
        Scenario::new("probe_v1", probe::probe_v1),
        Scenario::new("probe_v2", probe::probe_v2),
        Scenario::new("amt_disabled", probe::amt_disabled),
        Scenario::new("probe_legacy_hbm", probe::legacy_hbm),
        Scenario::new("probe_notify_refused", probe::notify_refused),
        Scenario::new("probe_silent", silent::probe_silent),
        Scenario::new("probe_link_reset", silent::probe_link_reset),
        Scenario::new("autoload", lifecycle::autoload),
        Scenario::new("sysfs_identity", ops::sysfs_identity),
        Scenario::new("abuse_ioctls", abuse::abuse_ioctls),
        Scenario::new("open_close", ops::open_close),
        Scenario::new("keepalive", ops::keepalive),
        Scenario::new("keepalive_v1", ops::keepalive_v1),
        Scenario::new("settimeout", ops::settimeout),
        Scenario::new("debugfs_files", debugfs::debugfs_files),
        Scenario::new("notreq_probe", notify::notreq_probe),
        Scenario::new("notreq_running", notify::notreq_running),
        Scenario::new("notify_registered", notify::notify_registered),
        Scenario::new("unbind_bind", lifecycle::unbind_bind),
        Scenario::new("rebind_repeat", lifecycle::rebind_repeat),
        Scenario::new("rmmod_insmod", lifecycle::rmmod_insmod),
        Scenario::new("stub_parent_removed", lifecycle::stub_parent_removed),
        Scenario::new("reset_open", lifecycle::reset_open),
        Scenario::new("two_devices", lifecycle::two_devices),
        Scenario::new("debugfs_open_unbind", failure::debugfs_open_unbind),
        Scenario::rust_only("debugfs_open_rmmod", failure::debugfs_open_rmmod),
        Scenario::new("register_fails_v1", failure::register_fails_v1),
        Scenario::new("register_fails_v2", failure::register_fails_v2),
        Scenario::rust_only("probe_send_late", failure::probe_send_late),
        Scenario::rust_only("probe_interrupted", failure::probe_interrupted),
        Scenario::rust_only("probe_send_fails", failure::probe_send_fails),
        Scenario::new("probe_bad_answer", failure::probe_bad_answer),
        Scenario::new("probe_enable_fails", failure::probe_enable_fails),
        Scenario::new("probe_rx_fails", failure::probe_rx_fails),
        Scenario::new("notreq_notify", failure::notreq_notify),
        Scenario::rust_only("notreq_notify_sweep", failure::notreq_notify_sweep),
        Scenario::new(
            "notreq_unregister_blocked",
            failure::notreq_unregister_blocked,
        ),
        Scenario::new("remove_while_ping_waits", failure::remove_while_ping_waits),
        Scenario::new("reset_during_send", failure::reset_during_send),
        Scenario::new("reset_before_read", failure::reset_before_read),
        Scenario::new("probe_reset_before_read", failure::probe_reset_before_read),
        Scenario::new("rmmod_open", failure::rmmod_open),
    ];
    v.extend(
        FAULTS
            .iter()
            .map(|case| Scenario::new(case.scenario, move |ctx| fault::fault(ctx, case))),
    );
    v.extend([
        Scenario::new("ping_timeout_param", silent::ping_timeout_param),
        Scenario::rust_only("ping_timeout_clamp", silent::ping_timeout_clamp),
        Scenario::new("sigkill_during_wait", fault::sigkill_during_wait),
        Scenario::new("late_answer_then_ping", fault::late_answer_then_ping),
        Scenario::new("answer_while_idle", fault::answer_while_idle),
        Scenario::new("timer_expiry", timer::timer_expiry),
        Scenario::new("timer_clean_stop", timer::timer_clean_stop),
        Scenario::new("wdctl", tools::wdctl),
        Scenario::new("wdctl_settimeout", tools::wdctl_settimeout),
        Scenario::new("watchdog_test", tools::watchdog_test),
        Scenario::new("watchdog_test_sigint", tools::watchdog_test_sigint),
        Scenario::new("watchdog_test_daemon", tools::watchdog_test_daemon),
        Scenario::new("busybox_sigterm", busybox::busybox_sigterm),
        Scenario::new("busybox_sigkill", busybox::busybox_sigkill),
        Scenario::new("busybox_sigstop", busybox::busybox_sigstop),
        Scenario::debug_kernel("stress_two_devices", stress::stress_two_devices),
        Scenario::debug_kernel("fuzz_firmware", stress::fuzz_firmware),
        // C leaks the module and device references (the watchdog core's).
        Scenario::rust_only("open_during_register", smp::open_during_register),
        Scenario::at_reboot("reboot_open", lifecycle::reboot_open),
    ]);
    v
}

/// Scenarios run only when named (`--suite demo`), never by `all`.
pub fn extra() -> Vec<Scenario> {
    vec![
        Scenario::new("demo", demo::demo),
        // In a boot of its own, on two vCPUs for both drivers (vm-run.py).
        Scenario::new("smp_probe_race", smp::smp_probe_race),
    ]
}

/// xorshift64*, as in the protocol crate's fuzzing: the seeded loops of
/// the scenarios.
#[derive(Clone, Copy)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Sleeps 0 to `max_ms` ms.
    pub fn pause(&mut self, max_ms: u64) {
        thread::sleep(Duration::from_millis(self.below(max_ms + 1)));
    }
}

/// Logs a finished program's command line and output.
fn log_run(ctx: &mut Ctx, cmdline: &str, out: &Finished) {
    ctx.log(format!("$ {cmdline}"));
    ctx.log(&out.stdout);
    ctx.log(&out.stderr);
}

/// Runs the stub's firmware clock fast: one firmware second lasts
/// `fw_second` (scaled on the debug kernel). Set after the probe, whose
/// start/stop should not arm a fast timer. Returns the scaled length.
fn set_clock(ctx: &Ctx, me: &Me, fw_second: Duration) -> Result<Duration, String> {
    let fw_second = ctx.t.scale(fw_second);
    me.set(&format!("ms_per_fw_second={}", fw_second.as_millis()))?;
    Ok(fw_second)
}

/// Start-requests a watchdog daemon's start-up sends: the ping after
/// `WDIOC_SETTIMEOUT` and its first keepalive. (Starting the watchdog on
/// open sends nothing; the driver's first ping carries the start.)
const STARTUP_PINGS: usize = 2;

/// Spawns a daemon that sets the timeout and pings, and waits until its
/// start-up pings (`what`) are in the trace and the trace has settled.
fn spawn_started(ctx: &Ctx, me: &Me, cmd: &mut Command, what: &str) -> Result<Running, String> {
    let base = me.trace()?.count("start-request");
    let daemon = process::spawn(cmd)?;
    me.wait_trace(what, ctx.t.op, |t| {
        t.count("start-request") >= base + STARTUP_PINGS
    })?;
    me.settle(&ctx.t)?;
    Ok(daemon)
}

/// Runs an operation that must succeed within the normal bound; returns the
/// ioctl's value (bytes written for a write).
fn op_ok(ctx: &Ctx, f: &WdFile, op: ChildOp) -> Result<i32, String> {
    let r = f.bounded(op, ctx.t.op)?;
    match r.result {
        OpResult::Ok(v) => Ok(v),
        _ => Err(format!("{op:?}: {r}")),
    }
}

/// Unbinds the driver from the MEI device `cldev` and waits until its
/// watchdog is gone and the client disconnected.
fn unbind(ctx: &Ctx, me: &Me, cldev: &str) -> Outcome {
    stub::write_file(&Path::new(stub::DRIVER_DIR).join("unbind"), cldev)?;
    ctx.wait_no_watchdog()?;
    me.wait_trace("host: disconnect", ctx.t.op, |t| {
        t.count("host: disconnect") == 1
    })
    .map(|_| ())
}

/// Clears the stub's fault and has the ME notify: the firmware is well
/// again and says so. Returns once the notification was read.
fn notify_healed(ctx: &Ctx, me: &Me) -> Outcome {
    me.set("fault=none")?;
    me.ctl("notify")?;
    me.wait_trace("fw: notification", ctx.t.op, |t| {
        t.count("fw: notification") == 1
    })
    .map(|_| ())
}

/// The stop-request's trace line.
const STOP_REQUEST: &str = "host> 02 02 14 10 | stop-request";

/// The probe's ping got no valid answer, and the probe has returned. The
/// firmware acted on that ping's start-request (the stub arms its timer,
/// answer or not): Rust stops the timer as its probe gives up, with a
/// message C never sends (README, difference 3), right after the trace line
/// that contains `after`. C waits for ever, and the timer runs on.
fn unanswered_probe_ping_stopped(ctx: &mut Ctx, me: &Me, after: &str) -> Outcome {
    let timer = me.timer()?;
    ctx.log(format!("firmware timer after the probe: {}", timer.raw));
    if ctx.driver == Driver::Rust {
        check_eq(
            "firmware timer after the probe",
            timer.state.as_str(),
            "idle",
        )?;
        ctx.extra_trace_line(after, STOP_REQUEST);
    }
    Ok(())
}

/// Checks that `needles` occur in this order (each after the previous one).
fn in_order(t: &Trace, needles: &[&str]) -> Result<(), String> {
    let lines: Vec<&str> = t.lines().collect();
    let mut from = 0;
    for needle in needles {
        match lines[from..].iter().position(|l| l.contains(needle)) {
            Some(i) => from += i + 1,
            None => {
                return Err(format!(
                    "trace: expected {needles:?} in this order, missing {needle:?}:\n{}",
                    t.text
                ))
            }
        }
    }
    Ok(())
}
