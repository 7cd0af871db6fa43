//! The watchdog device ABI: sysfs, open/close, keepalive, timeouts.

use std::thread;

use super::{op_ok, V1, V2};
use crate::expect;
use crate::framework::{check, check_eq, Ctx, Outcome};
use crate::stub::WDT_GUID;
use crate::sys::IntIoctl;
use crate::watchdog::{ChildOp, OpResult, Watchdog, EINVAL, EOPNOTSUPP, IDENTITY};

const WDIOF_SETTIMEOUT: u32 = 0x0080;
const WDIOF_ALARMONLY: u32 = 0x0400;
const WDIOF_KEEPALIVEPING: u32 = 0x8000;
const OPTIONS: u32 = WDIOF_KEEPALIVEPING | WDIOF_ALARMONLY | WDIOF_SETTIMEOUT;

fn errno_of<T>(r: std::io::Result<T>) -> Option<i32> {
    r.err().and_then(|e| e.raw_os_error())
}

/// The sysfs attributes whose values go into the trace (`== sysfs`), so
/// that both drivers must show userspace the same ones.
const SYSFS_ATTRS: &[&str] = &[
    "identity",
    "timeout",
    "min_timeout",
    "max_timeout",
    "fw_version",
    "options",
    "status",
    "bootstatus",
    "nowayout",
    "state",
];

/// `attr: value` lines for [`SYSFS_ATTRS`], `status` without the bits the
/// core adds of its own accord ([`expect::core_status_bits`], which it
/// checks). Reading `status` clears the core's keepalive bit, so this is a
/// step of its own in a scenario.
fn sysfs_dump(wd: &Watchdog) -> Result<String, String> {
    let mut out = String::new();
    for attr in SYSFS_ATTRS {
        let mut value = wd.attr(attr)?;
        if *attr == "status" {
            let bits = u32::from_str_radix(value.trim_start_matches("0x"), 16)
                .map_err(|_| format!("sysfs status {value:?} is not hex"))?;
            let core = expect::core_status_bits();
            check_eq("sysfs status: the core's bits", bits & core, core)?;
            value = format!("{:#x}", bits & !core);
        }
        out.push_str(&format!("{attr}: {value}\n"));
    }
    Ok(out)
}

pub fn sysfs_identity(ctx: &mut Ctx) -> Outcome {
    let (me, wd) = ctx.setup(V2)?;
    // "status" is read before any open: reading it clears the keepalive bit.
    let dump = sysfs_dump(&wd)?;
    ctx.trace_section("sysfs", &dump);
    let values: Vec<(&str, &str)> = dump.lines().filter_map(|l| l.split_once(": ")).collect();
    for (attr, want) in [
        ("identity", IDENTITY),
        ("timeout", "120"),
        ("min_timeout", "120"),
        ("max_timeout", "65535"),
        ("fw_version", "2"),
        ("options", "0x8480"),
        ("status", "0x0"),
        ("bootstatus", "0"),
        ("nowayout", "0"),
        ("state", "inactive"),
    ] {
        let got = values.iter().find(|(a, _)| *a == attr).map(|(_, v)| *v);
        check_eq(&format!("sysfs {attr}"), got, Some(want))?;
    }
    // No get_timeleft and no pretimeout support: the core hides these, but
    // for 7.3's estimated time left and a core that emulates pretimeouts.
    check_eq(
        "sysfs pretimeout visible",
        wd.has_attr("pretimeout"),
        expect::core_emulates_pretimeout(),
    )?;
    check_eq(
        "sysfs timeleft visible",
        wd.has_attr("timeleft"),
        expect::core_estimates_timeleft(),
    )?;
    check(wd.parent.to_ascii_lowercase().contains(WDT_GUID), || {
        format!(
            "parent device {:?} is not the MEI watchdog client",
            wd.parent
        )
    })?;

    let f = wd.open()?;
    check_eq(
        "sysfs state while open",
        wd.attr("state")?.as_str(),
        "active",
    )?;
    let info = f.support().map_err(|e| format!("WDIOC_GETSUPPORT: {e}"))?;
    check_eq("GETSUPPORT identity", info.identity().as_str(), IDENTITY)?;
    check_eq("GETSUPPORT options", info.options, OPTIONS)?;
    check_eq("GETSUPPORT firmware_version", info.firmware_version, 2)?;
    let get = |req| f.ioctl(req, 0).map_err(|e| format!("{req:?}: {e}"));
    check_eq("WDIOC_GETTIMEOUT", get(IntIoctl::GetTimeout)?, 120)?;
    check_eq("WDIOC_GETBOOTSTATUS", get(IntIoctl::GetBootStatus)?, 0)?;
    check_eq(
        "WDIOC_GETSTATUS",
        get(IntIoctl::GetStatus)?,
        (WDIOF_KEEPALIVEPING | expect::core_status_bits()) as i32,
    )?;
    check_eq("WDIOC_GETPRETIMEOUT", get(IntIoctl::GetPretimeout)?, 0)?;
    let timeleft = f.ioctl(IntIoctl::GetTimeleft, 0);
    if expect::core_estimates_timeleft() {
        let left = timeleft.map_err(|e| format!("WDIOC_GETTIMELEFT: {e}"))?;
        check((1..=120).contains(&left), || {
            format!("WDIOC_GETTIMELEFT: {left} s, want 1..=120 (just pinged)")
        })?;
    } else {
        check_eq(
            "WDIOC_GETTIMELEFT errno",
            errno_of(timeleft),
            Some(EOPNOTSUPP),
        )?;
    }
    if expect::core_emulates_pretimeout() {
        // Set, then back to none for what follows.
        for secs in [10, 0] {
            check_eq(
                &format!("WDIOC_SETPRETIMEOUT {secs}"),
                f.ioctl(IntIoctl::SetPretimeout, secs)
                    .map_err(|e| e.to_string()),
                Ok(secs),
            )?;
        }
    } else {
        check_eq(
            "WDIOC_SETPRETIMEOUT 10 errno",
            errno_of(f.ioctl(IntIoctl::SetPretimeout, 10)),
            Some(EOPNOTSUPP),
        )?;
    }
    ctx.trace_section("sysfs while open", &sysfs_dump(&wd)?);
    drop(f);
    check_eq(
        "sysfs state after close",
        wd.attr("state")?.as_str(),
        "inactive",
    )?;
    me.settle(&ctx.t).map(|_| ())
}

/// Open only marks the watchdog started; a close without a ping sends nothing.
pub fn open_close(ctx: &mut Ctx) -> Outcome {
    let (me, wd) = ctx.setup(V2)?;
    let base = me.trace()?.lines().count();
    let f = wd.open()?;
    thread::sleep(ctx.t.absent);
    let t = me.settle(&ctx.t)?;
    check_eq("messages on open", t.lines_after(base), vec![])?;
    check_eq(
        "sysfs state while open",
        wd.attr("state")?.as_str(),
        "active",
    )?;
    drop(f);
    thread::sleep(ctx.t.absent);
    let t = me.settle(&ctx.t)?;
    check_eq(
        "messages on close without a ping",
        t.lines_after(base),
        vec![],
    )?;
    check_eq(
        "sysfs state after close",
        wd.attr("state")?.as_str(),
        "inactive",
    )
}

/// WDIOC_KEEPALIVE and write() each ping with the current timeout; close stops.
fn keepalive_flow(ctx: &mut Ctx, config: &str) -> Outcome {
    let (me, wd) = ctx.setup(config)?;
    let base = me.trace()?;
    let starts = base.count("start-request");
    let stops = base.count("stop-request");
    let f = wd.open()?;

    op_ok(ctx, &f, ChildOp::Keepalive)?;
    let t = me.wait_trace("the keepalive's start-request", ctx.t.op, |t| {
        t.count("start-request") == starts + 1
    })?;
    check_eq(
        "start-request timeout=120 lines",
        t.start_requests_with(120),
        starts + 1,
    )?;
    me.settle(&ctx.t)?;

    check_eq("write() result", op_ok(ctx, &f, ChildOp::Write)?, 1)?;
    me.wait_trace("the write's start-request", ctx.t.op, |t| {
        t.count("start-request") == starts + 2
    })?;
    me.settle(&ctx.t)?;

    drop(f);
    me.wait_trace("a stop-request on close", ctx.t.op, |t| {
        t.count("stop-request") == stops + 1
    })?;
    me.settle(&ctx.t)?;
    check_eq(
        "sysfs state after close",
        wd.attr("state")?.as_str(),
        "inactive",
    )
}

pub fn keepalive(ctx: &mut Ctx) -> Outcome {
    keepalive_flow(ctx, V2)
}

/// v1: the driver does not wait for the firmware's answer.
pub fn keepalive_v1(ctx: &mut Ctx) -> Outcome {
    keepalive_flow(ctx, V1)
}

pub fn settimeout(ctx: &mut Ctx) -> Outcome {
    let (me, wd) = ctx.setup(V2)?;
    let stops = me.trace()?.count("stop-request");
    let f = wd.open()?;
    // Accepted: the core pings right away with the new timeout.
    for secs in [121, 65535] {
        let got = op_ok(ctx, &f, ChildOp::SetTimeout(secs))?;
        check_eq(&format!("WDIOC_SETTIMEOUT {secs} result"), got, secs)?;
        me.wait_trace(&format!("start-request timeout={secs}"), ctx.t.op, |t| {
            t.start_requests_with(secs as u32) == 1
        })?;
        me.settle(&ctx.t)?;
        check_eq("sysfs timeout", wd.attr("timeout")?, secs.to_string())?;
    }
    // Rejected by the core's min/max check, without reaching the firmware.
    let base = me.trace()?.lines().count();
    for secs in [119, 0, 65536] {
        let r = f.bounded(ChildOp::SetTimeout(secs), ctx.t.op)?;
        check_eq(
            &format!("WDIOC_SETTIMEOUT {secs}"),
            r.result,
            OpResult::Errno(EINVAL),
        )?;
    }
    thread::sleep(ctx.t.absent);
    let t = me.settle(&ctx.t)?;
    check_eq(
        "messages for rejected timeouts",
        t.lines_after(base),
        vec![],
    )?;
    let got = f
        .ioctl(IntIoctl::GetTimeout, 0)
        .map_err(|e| format!("WDIOC_GETTIMEOUT: {e}"))?;
    check_eq("WDIOC_GETTIMEOUT", got, 65535)?;
    drop(f);
    me.wait_trace("a stop-request on close", ctx.t.op, |t| {
        t.count("stop-request") == stops + 1
    })?;
    me.settle(&ctx.t).map(|_| ())
}
