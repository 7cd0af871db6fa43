//! `make demo`: the driver on a stubbed ME, step by step, for a person to
//! read. Not part of `all`; everything it shows goes out as LOG lines.

use std::process::Command;

use super::{in_order, log_run, V2};
use crate::framework::{check, Ctx, Driver, Outcome};
use crate::process;
use crate::stub::{Me, Trace};
use crate::watchdog::{ChildOp, OpResult};

/// Shows the firmware trace lines after the first `from`, indented.
fn show_trace(ctx: &mut Ctx, t: &Trace, from: usize) {
    for line in t.lines_after(from) {
        ctx.log(format!("    {line}"));
    }
}

/// Waits for a line containing `needle` after the first `from` lines of
/// the trace, lets the trace settle and shows what is new. Returns the
/// new lines and where the next step starts.
fn show_step(ctx: &mut Ctx, me: &Me, from: usize, needle: &str) -> Result<(Trace, usize), String> {
    me.wait_trace(&format!("a {needle}"), ctx.t.op, |t| {
        t.lines_after(from).iter().any(|l| l.contains(needle))
    })?;
    let t = me.settle(&ctx.t)?;
    show_trace(ctx, &t, from);
    let new = Trace {
        text: t.lines_after(from).join("\n"),
    };
    Ok((new, t.lines().count()))
}

pub fn demo(ctx: &mut Ctx) -> Outcome {
    ctx.skip_trace();
    let which = match ctx.driver {
        Driver::C => "the kernel's C mei_wdt.ko",
        Driver::Rust => "the Rust mei_wdt.ko",
    };
    ctx.log(format!(
        "== {which} and the Intel AMT watchdog of a stubbed ME"
    ));
    ctx.log("(ME trace: host> is what the driver sent, fw< what the firmware answered)");

    ctx.log("$ insmod mei_stub.ko; add an ME with the watchdog client, protocol v2");
    ctx.load_stub()?;
    let me = ctx.add_me(V2)?;
    ctx.log("$ insmod mei_wdt.ko");
    ctx.load_driver()?;
    let wd = ctx.wait_watchdogs(1)?.remove(0);
    let t = me.settle(&ctx.t)?;
    ctx.log(format!(
        "{} registered; the probe on the wire:",
        wd.node.display()
    ));
    show_trace(ctx, &t, 0);

    let node = wd.node.display().to_string();
    let out = process::run(Command::new("/usr/bin/wdctl").arg(&wd.node), ctx.t.op)?;
    log_run(ctx, &format!("wdctl {node}"), &out);
    check(out.exit_code()? == 0, || {
        format!("wdctl failed: {}", out.stderr)
    })?;
    // wdctl opens the device and closes it with the magic 'V': a ping and
    // a stop the reader has just seen happen, not shown again.
    let base = me.settle(&ctx.t)?.lines().count();

    ctx.log(format!("$ open {node}, ioctl WDIOC_KEEPALIVE"));
    let f = wd.open()?;
    let r = f.bounded(ChildOp::Keepalive, ctx.t.op)?;
    ctx.log(format!("keepalive: {r}; on the wire:"));
    check(matches!(r.result, OpResult::Ok(_)), || {
        format!("keepalive: {r}")
    })?;
    let (ping, base) = show_step(ctx, &me, base, "start-response")?;
    in_order(
        &ping,
        &["start-request timeout=120", "start-response status=0"],
    )?;

    ctx.log(format!(
        "$ close {node}: the watchdog core stops the watchdog"
    ));
    drop(f);
    let (_, base) = show_step(ctx, &me, base, "stop-request")?;

    ctx.log("$ rmmod mei_wdt");
    ctx.unload_driver()?;
    ctx.wait_no_watchdog()?;
    let t = me.settle(&ctx.t)?;
    show_trace(ctx, &t, base);
    ctx.log(format!("{node} is gone; done"));
    Ok(())
}
