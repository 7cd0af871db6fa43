//! `make demo`: the driver on a stubbed ME, step by step, for a person to
//! read. Not part of `all`; everything it shows goes out as LOG lines.

use std::process::Command;

use super::{in_order, V2};
use crate::framework::{check, Ctx, Driver, Outcome};
use crate::process;
use crate::stub::Trace;
use crate::watchdog::{ChildOp, OpResult};

/// Shows the firmware trace lines after the first `from`, indented.
fn show_trace(ctx: &mut Ctx, t: &Trace, from: usize) {
    for line in t.lines_after(from) {
        ctx.log(format!("    {line}"));
    }
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
    ctx.log(format!("$ wdctl {node}"));
    let out = process::run(Command::new("/usr/bin/wdctl").arg(&wd.node), ctx.t.op)?;
    ctx.log(&out.stdout);
    ctx.log(&out.stderr);
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
    me.wait_trace("the start-response", ctx.t.op, |t| {
        t.lines_after(base)
            .iter()
            .any(|l| l.contains("start-response"))
    })?;
    let t = me.settle(&ctx.t)?;
    show_trace(ctx, &t, base);
    let ping = Trace {
        text: t.lines_after(base).join("\n"),
    };
    in_order(
        &ping,
        &["start-request timeout=120", "start-response status=0"],
    )?;
    let base = t.lines().count();

    ctx.log(format!(
        "$ close {node}: the watchdog core stops the watchdog"
    ));
    drop(f);
    me.wait_trace("the stop-request", ctx.t.op, |t| {
        t.lines_after(base)
            .iter()
            .any(|l| l.contains("stop-request"))
    })?;
    let t = me.settle(&ctx.t)?;
    show_trace(ctx, &t, base);
    let base = t.lines().count();

    ctx.log("$ rmmod mei_wdt");
    ctx.unload_driver()?;
    ctx.wait_no_watchdog()?;
    let t = me.settle(&ctx.t)?;
    show_trace(ctx, &t, base);
    ctx.log(format!("{node} is gone; done"));
    Ok(())
}
