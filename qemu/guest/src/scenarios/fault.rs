//! Malformed, late or missing ping responses (see expect.rs for what each
//! driver is expected to do and print).

use std::time::Duration;

use crate::expect::{fault_bound, Expected, FaultCase, FAULT_PING_TIMEOUT};
use crate::framework::{check_eq, Ctx, Driver, Outcome};
use crate::kmsg;
use crate::watchdog::{ChildOp, ETIMEDOUT};

use super::{op_ok, V2};

pub fn fault(ctx: &mut Ctx, case: &FaultCase) -> Outcome {
    let param = format!("ping_timeout_ms={}", FAULT_PING_TIMEOUT.as_millis());
    let (me, wd) = ctx.setup_with(V2, &[&param])?;
    let f = wd.open()?;
    let log = kmsg::mark()?;
    me.set(format!("fault={} {}", case.fault, case.extra).trim_end())?;
    let bound = fault_bound(ctx.driver, FAULT_PING_TIMEOUT, &ctx.t);
    let r = f.bounded(ChildOp::Keepalive, bound)?;
    ctx.log(format!("{}: keepalive -> {r}", case.scenario));
    me.set("fault=none")?;
    me.settle(&ctx.t)?;
    drop(f);
    me.settle(&ctx.t)?;
    let printed = log.driver_lines()?;
    for line in &printed {
        ctx.log(format!("{}: kernel log: mei_wdt: {line}", case.scenario));
    }

    case.expected(ctx.driver)
        .check(&r, FAULT_PING_TIMEOUT, &ctx.t)?;
    check_eq(
        "mei_wdt kernel log lines from the fault to the close",
        printed,
        case.log(ctx.driver)
            .iter()
            .map(ToString::to_string)
            .collect(),
    )
}

/// A keepalive waiting for a dropped answer is killed: the wait is
/// killable in both drivers, so the process dies at once, and the next
/// keepalive works.
pub fn sigkill_during_wait(ctx: &mut Ctx) -> Outcome {
    let (me, wd) = ctx.setup(V2)?;
    let f = wd.open()?;
    op_ok(ctx, &f, ChildOp::Keepalive)?;
    me.settle(&ctx.t)?;
    me.set("fault=drop")?;
    let ping = f.start(ChildOp::Keepalive)?;
    me.wait_trace("the dropped answer", ctx.t.op, |t| {
        t.count("fw: start-response dropped") == 1
    })?;
    let took = ping.kill(ctx.t.op)?;
    ctx.log(format!(
        "the waiting keepalive died {:.2} s after SIGKILL",
        took.as_secs_f64()
    ));
    me.set("fault=none")?;
    op_ok(ctx, &f, ChildOp::Keepalive)?;
    drop(f);
    me.wait_trace("a stop-request on close", ctx.t.op, |t| {
        t.count("stop-request") == 2
    })?;
    me.settle(&ctx.t).map(|_| ())
}

/// The answer to a keepalive comes after the Rust driver's bound (500 ms
/// here): Rust's keepalive fails with ETIMEDOUT, C's waits for it. The late
/// answer must not count for the next keepalive, which waits for its own
/// (delayed 300 ms) answer in both drivers.
pub fn late_answer_then_ping(ctx: &mut Ctx) -> Outcome {
    ctx.load_stub()?;
    let me = ctx.add_me(V2)?;
    ctx.load_driver_with(&["ping_timeout_ms=500"])?;
    let wd = ctx.wait_watchdogs(1)?.remove(0);
    me.settle(&ctx.t)?;
    let f = wd.open()?;
    op_ok(ctx, &f, ChildOp::Keepalive)?;
    me.settle(&ctx.t)?;
    let log = kmsg::mark()?;
    let bound = Duration::from_millis(500);
    me.set("fault=delay delay_ms=1000")?;
    let r = f.bounded(ChildOp::Keepalive, fault_bound(ctx.driver, bound, &ctx.t))?;
    ctx.log(format!("keepalive answered after 1 s: {r}"));
    let want = match ctx.driver {
        Driver::C => Expected::OkAfter(Duration::from_millis(1000)),
        Driver::Rust => Expected::FailsAtBound(ETIMEDOUT),
    };
    want.check(&r, bound, &ctx.t)?;
    me.wait_trace("the late answer", ctx.t.op, |t| {
        t.count("start-response") == 3
    })?;
    me.set("delay_ms=300")?;
    let r = f.bounded(ChildOp::Keepalive, ctx.t.op)?;
    ctx.log(format!("the next keepalive: {r}"));
    Expected::OkAfter(Duration::from_millis(300)).check(&r, bound, &ctx.t)?;
    me.set("fault=none")?;
    drop(f);
    me.settle(&ctx.t)?;
    let want_log = match ctx.driver {
        Driver::C => vec![],
        Driver::Rust => vec!["no ping response from the firmware in 500 ms".to_string()],
    };
    check_eq("mei_wdt kernel log lines", log.driver_lines()?, want_log)
}

/// The answer to a keepalive comes after the keepalive was killed and the
/// device closed (stopped): both drivers are IDLE then and say the answer
/// came in the wrong state; the device works on.
pub fn answer_while_idle(ctx: &mut Ctx) -> Outcome {
    let (me, wd) = ctx.setup(V2)?;
    let f = wd.open()?;
    op_ok(ctx, &f, ChildOp::Keepalive)?;
    me.settle(&ctx.t)?;
    let log = kmsg::mark()?;
    let delay = ctx.t.scale(Duration::from_millis(800));
    me.set(&format!("fault=delay delay_ms={}", delay.as_millis()))?;
    let ping = f.start(ChildOp::Keepalive)?;
    me.wait_trace("the keepalive's start-request", ctx.t.op, |t| {
        t.count("start-request") == 3
    })?;
    ping.kill(ctx.t.op)?;
    drop(f);
    me.wait_trace("the late answer after the stop", ctx.t.op + delay, |t| {
        t.count("start-response") == 3
    })?;
    me.set("fault=none")?;
    me.settle(&ctx.t)?;
    log.wait_for("not in correct state", ctx.t.op)?;
    check_eq(
        "mei_wdt kernel log lines",
        log.driver_lines()?,
        vec!["not in correct state IDLE[1]".to_string()],
    )?;
    let f = wd.open()?;
    op_ok(ctx, &f, ChildOp::Keepalive)?;
    drop(f);
    me.settle(&ctx.t).map(|_| ())
}
