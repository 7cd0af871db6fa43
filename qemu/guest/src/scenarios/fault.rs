//! Malformed, late or missing ping responses (see expect.rs for what each
//! driver is expected to do and print).

use crate::expect::{fault_bound, FaultCase, RUST_PING_TIMEOUT};
use crate::framework::{check_eq, Ctx, Outcome};
use crate::kmsg;
use crate::watchdog::ChildOp;

use super::V2;

pub fn fault(ctx: &mut Ctx, case: &FaultCase) -> Outcome {
    let (me, wd) = ctx.setup(V2)?;
    let f = wd.open()?;
    let log = kmsg::mark()?;
    me.set(format!("fault={} {}", case.fault, case.extra).trim_end())?;
    let bound = fault_bound(ctx.driver, RUST_PING_TIMEOUT, &ctx.t);
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
        .check(&r, RUST_PING_TIMEOUT, &ctx.t)?;
    check_eq(
        "mei_wdt kernel log lines from the fault to the close",
        printed,
        case.log(ctx.driver)
            .iter()
            .map(ToString::to_string)
            .collect(),
    )
}
