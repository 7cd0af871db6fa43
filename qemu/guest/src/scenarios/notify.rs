//! The NOT_REQUIRED bit and ME notifications: the firmware deciding whether
//! the host watchdog is wanted.

use std::thread;

use super::{op_ok, V2};
use crate::framework::{check, check_eq, Ctx, Outcome};
use crate::watchdog::{self, ChildOp, OpResult, ENODEV, IDENTITY};

/// NOT_REQUIRED at probe: no watchdog until the firmware notifies.
pub fn notreq_probe(ctx: &mut Ctx) -> Outcome {
    ctx.load_stub()?;
    let me = ctx.add_me(&format!("{V2} not_required=1"))?;
    ctx.load_driver()?;
    me.wait_trace("the probe's start-response", ctx.t.probe, |t| {
        t.count("start-response") == 1
    })?;
    thread::sleep(ctx.t.absent);
    let t = me.settle(&ctx.t)?;
    check(watchdog::find_all().is_empty(), || {
        "NOT_REQUIRED at probe, yet a watchdog registered".into()
    })?;
    check_eq(
        "stop-request lines after a NOT_REQUIRED probe",
        t.count("stop-request"),
        0,
    )?;

    me.set("not_required=0")?;
    me.ctl("notify")?;
    let wd = ctx.wait_watchdogs(1)?.remove(0);
    let t = me.settle(&ctx.t)?;
    check_eq("fw: notification lines", t.count("fw: notification"), 1)?;
    check_eq("identity", wd.attr("identity")?.as_str(), IDENTITY)
}

/// NOT_REQUIRED in a ping response while open: the watchdog unregisters
/// (from a work item) and the open fd goes stale.
pub fn notreq_running(ctx: &mut Ctx) -> Outcome {
    let (me, wd) = ctx.setup(V2)?;
    let f = wd.open()?;
    op_ok(ctx, &f, ChildOp::Keepalive)?;
    me.settle(&ctx.t)?;

    me.set("not_required=1")?;
    let r = f.bounded(ChildOp::Keepalive, ctx.t.op)?;
    ctx.log(format!("keepalive answered with NOT_REQUIRED: {r}"));
    check(matches!(r.result, OpResult::Ok(_)), || {
        format!("keepalive answered with NOT_REQUIRED: {r}")
    })?;
    ctx.wait_no_watchdog()?;
    me.settle(&ctx.t)?;

    let r = f.bounded(ChildOp::GetTimeout, ctx.t.op)?;
    check_eq(
        "WDIOC_GETTIMEOUT on the unregistered device",
        r.result,
        OpResult::Errno(ENODEV),
    )?;
    drop(f);
    thread::sleep(ctx.t.absent);
    me.settle(&ctx.t).map(|_| ())
}

/// A notification while registered changes nothing.
pub fn notify_registered(ctx: &mut Ctx) -> Outcome {
    let (me, wd) = ctx.setup(V2)?;
    let base = me.trace()?.lines().count();
    me.ctl("notify")?;
    me.wait_trace("fw: notification", ctx.t.op, |t| {
        t.count("fw: notification") == 1
    })?;
    thread::sleep(ctx.t.absent);
    let t = me.settle(&ctx.t)?;
    let new = t.lines_after(base);
    check(
        new.len() == 1 && new[0].contains("fw: notification"),
        || format!("messages after notify: {new:?}, want only the notification"),
    )?;
    let now = watchdog::find_all();
    check(now.len() == 1 && now[0].ino == wd.ino, || {
        format!("watchdog changed on notify: was {}, now {now:?}", wd.name)
    })
}
