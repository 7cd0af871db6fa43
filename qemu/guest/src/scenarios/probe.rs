//! Probe: what the driver says to the firmware before it registers.

use std::thread;

use super::{in_order, V1, V2};
use crate::framework::{check, check_eq, Ctx, Outcome};
use crate::{stub, watchdog};

/// v1: no response is expected, so the C driver registers at once.
pub fn probe_v1(ctx: &mut Ctx) -> Outcome {
    let (me, wd) = ctx.setup(V1)?;
    let t = me.trace()?;
    check_eq("host: connect lines", t.count("host: connect"), 1)?;
    check_eq(
        "start-request lines (v1 probes silently)",
        t.count("start-request"),
        0,
    )?;
    check_eq("fw_version", wd.attr("fw_version")?.as_str(), "1")
}

/// v2: ping, wait for the response, stop, then register.
pub fn probe_v2(ctx: &mut Ctx) -> Outcome {
    let (me, wd) = ctx.setup(V2)?;
    let t = me.trace()?;
    in_order(
        &t,
        &[
            "host: connect",
            "start-request",
            "start-response",
            "stop-request",
        ],
    )?;
    check_eq(
        "start-request timeout=120 lines",
        t.start_requests_with(120),
        1,
    )?;
    check_eq("start-request lines", t.count("start-request"), 1)?;
    check_eq("stop-request lines", t.count("stop-request"), 1)?;
    check_eq("fw_version", wd.attr("fw_version")?.as_str(), "2")
}

/// No watchdog client enumerated: the module loads and nothing appears.
pub fn amt_disabled(ctx: &mut Ctx) -> Outcome {
    ctx.load_stub()?;
    let me = ctx.add_me("wd=0 version=2 notify=1")?;
    thread::sleep(ctx.t.absent);
    check(stub::wdt_clients().is_empty(), || {
        format!("wd=0, yet MEI bus has {:?}", stub::wdt_clients())
    })?;
    ctx.load_driver()?;
    thread::sleep(ctx.t.absent);
    let t = me.settle(&ctx.t)?;
    check(watchdog::find_all().is_empty(), || {
        "wd=0, yet an iamt_wdt watchdog registered".into()
    })?;
    check_eq("trace", t.text.as_str(), "")
}

/// An ME whose HBM version predates notifications (< 2.0): the MEI core
/// answers the notification request with -EOPNOTSUPP, which C accepts.
pub fn legacy_hbm(ctx: &mut Ctx) -> Outcome {
    ctx.load_stub()?;
    let me = ctx.add_me(&format!("{V2} hbm=1.1"))?;
    ctx.load_driver()?;
    ctx.wait_watchdogs(1)?;
    let t = me.settle(&ctx.t)?;
    check_eq("notify-request lines", t.count("host: notify-request"), 0)?;
    check_eq("start-request lines", t.count("start-request"), 1)
}

/// The firmware refuses the notification request (HBM status NOT_ALLOWED):
/// the MEI core reports an error other than -EOPNOTSUPP and C fails the
/// probe, disconnecting again without a ping.
pub fn notify_refused(ctx: &mut Ctx) -> Outcome {
    ctx.load_stub()?;
    let me = ctx.add_me("wd=1 version=2 notify=0")?;
    ctx.load_driver()?;
    me.wait_trace("host: disconnect", ctx.t.probe, |t| {
        t.count("host: disconnect") == 1
    })?;
    thread::sleep(ctx.t.absent);
    let t = me.settle(&ctx.t)?;
    in_order(
        &t,
        &[
            "host: connect",
            "host: notify-request start=1",
            "host: disconnect",
        ],
    )?;
    check_eq("start-request lines", t.count("start-request"), 0)?;
    check(watchdog::find_all().is_empty(), || {
        "probe should fail, yet an iamt_wdt watchdog registered".into()
    })
}
