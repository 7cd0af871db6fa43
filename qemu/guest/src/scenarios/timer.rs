//! The firmware's own timer: it fires when pings stop, and a stop disarms it.
//! The stub runs the firmware clock fast (ms_per_fw_second), so 120 fw
//! seconds pass in 600 ms.

use std::thread;
use std::time::Duration;

use super::{op_ok, set_clock, V2};
use crate::framework::{check_eq, wait_until, Ctx, Outcome};
use crate::watchdog::ChildOp;

/// One firmware second (scaled): 120 of them pass in 600 ms; nothing here
/// pings in between.
const FW_SECOND: Duration = Duration::from_millis(5);

pub fn timer_expiry(ctx: &mut Ctx) -> Outcome {
    let (me, wd) = ctx.setup(V2)?;
    let stops = me.trace()?.count("stop-request");
    set_clock(ctx, &me, FW_SECOND)?;
    let f = wd.open()?;
    op_ok(ctx, &f, ChildOp::Keepalive)?;
    let timer = wait_until("the firmware timer to expire", ctx.t.probe, || {
        me.timer().ok().filter(|t| t.expired >= 1)
    })?;
    ctx.log(format!("timer after the missed ping: {}", timer.raw));
    me.wait_trace("fw: timer expired", ctx.t.op, |t| {
        t.count("fw: timer expired") == 1
    })?;
    drop(f);
    me.wait_trace("a stop-request on close", ctx.t.op, |t| {
        t.count("stop-request") == stops + 1
    })?;
    me.settle(&ctx.t).map(|_| ())
}

pub fn timer_clean_stop(ctx: &mut Ctx) -> Outcome {
    let (me, wd) = ctx.setup(V2)?;
    let stops = me.trace()?.count("stop-request");
    let fw_second = set_clock(ctx, &me, FW_SECOND)?;
    let f = wd.open()?;
    op_ok(ctx, &f, ChildOp::Keepalive)?;
    let armed = me.timer()?;
    ctx.log(format!("timer after the ping: {}", armed.raw));
    drop(f);
    me.wait_trace("a stop-request on close", ctx.t.op, |t| {
        t.count("stop-request") == stops + 1
    })?;
    check_eq("timer state after the ping", armed.state.as_str(), "armed")?;
    check_eq("timer timeout after the ping", armed.timeout, 120)?;
    // Half as long again as the timeout it had.
    thread::sleep(fw_second * 180);
    let timer = me.timer()?;
    ctx.log(format!(
        "timer 180 firmware seconds after the stop: {}",
        timer.raw
    ));
    check_eq("timer expirations after a clean stop", timer.expired, 0)?;
    check_eq(
        "timer state after a clean stop",
        timer.state.as_str(),
        "idle",
    )?;
    me.settle(&ctx.t).map(|_| ())
}
