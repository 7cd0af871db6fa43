//! Malformed, late or missing ping responses (see expect.rs for what each
//! driver is expected to do).

use crate::expect::{fault_bound, Expected, FaultCase};
use crate::framework::{check, Ctx, Outcome};
use crate::watchdog::OpResult;

use super::V2;

pub fn fault(ctx: &mut Ctx, case: &FaultCase) -> Outcome {
    let (me, wd) = ctx.setup(V2)?;
    let f = wd.open()?;
    me.set(format!("fault={} {}", case.fault, case.extra).trim_end())?;
    let r = f.bounded(crate::watchdog::ChildOp::Keepalive, fault_bound(ctx.driver))?;
    ctx.log(format!("{}: keepalive -> {r}", case.scenario));
    me.set("fault=none")?;
    me.settle(&ctx.t)?;
    drop(f);
    me.settle(&ctx.t)?;

    let want = case.expected(ctx.driver);
    let ok = match want {
        Expected::Ok => matches!(r.result, OpResult::Ok(_)),
        Expected::OkAfter(min) => matches!(r.result, OpResult::Ok(_)) && r.elapsed >= min,
        Expected::Hang => r.result == OpResult::Hang,
        Expected::Errno(e) => r.result == OpResult::Errno(e),
    };
    check(ok, || format!("keepalive: got {r}, want {want:?}"))
}
