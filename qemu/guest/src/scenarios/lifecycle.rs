//! Driver and device lifecycle: unbind/bind, module reload, ME link reset,
//! and two ME devices side by side.

use std::path::Path;

use super::{op_ok, unbind, V1, V2};
use crate::expect;
use crate::framework::{check, check_eq, wait_until, Ctx, Driver, Outcome};
use crate::kmod;
use crate::kmsg;
use crate::stub::{self, Me, DRIVER_DIR, MEI_DEVICES};
use crate::watchdog::{self, ChildOp, OpResult, ENODEV};

/// After the watchdog came back: one more connect and probe in the trace.
fn check_reprobed(ctx: &Ctx, me: &Me) -> Outcome {
    let t = me.settle(&ctx.t)?;
    check_eq("host: connect lines", t.count("host: connect"), 2)?;
    check_eq(
        "start-request timeout=120 lines (one per probe)",
        t.start_requests_with(120),
        2,
    )
}

/// What the driver stack (mei_wdt, the MEI bus and core, the watchdog core)
/// printed since `log`, taken after the first probe (loading the first
/// out-of-tree module prints a taint line): exactly `want`, in this order.
/// Other kernel lines (the emulator's hrtimer notes) are not the driver's.
fn check_log(log: &kmsg::Mark, want: &[String]) -> Outcome {
    check_eq(
        "driver, MEI and watchdog core log lines since the first probe",
        log.stack_lines()?.as_slice(),
        want,
    )
}

/// A lifecycle step that works prints nothing, in either driver.
fn check_quiet(log: &kmsg::Mark) -> Outcome {
    check_log(log, &[])
}

pub fn unbind_bind(ctx: &mut Ctx) -> Outcome {
    let (me, wd) = ctx.setup(V2)?;
    let log = kmsg::mark()?;
    check(!wd.parent.is_empty(), || {
        format!("{} has no parent device", wd.name)
    })?;
    unbind(ctx, &me, &wd.parent)?;
    me.settle(&ctx.t)?;
    stub::write_file(&Path::new(DRIVER_DIR).join("bind"), &wd.parent)?;
    ctx.wait_watchdogs(1)?;
    check_reprobed(ctx, &me)?;
    check_quiet(&log)
}

/// Unbind/bind cycles in `rebind_repeat`.
const REBIND_CYCLES: usize = 25;

/// Many probes in a row. On two vCPUs (the Rust driver's runs) the rx
/// callback's stop-request can overlap the probe's ping send; every probe
/// must still register the watchdog, and the driver stack may log nothing.
pub fn rebind_repeat(ctx: &mut Ctx) -> Outcome {
    let (me, wd) = ctx.setup(V2)?;
    let log = kmsg::mark()?;
    let drv = Path::new(DRIVER_DIR);
    for cycle in 1..=REBIND_CYCLES {
        stub::write_file(&drv.join("unbind"), &wd.parent)?;
        ctx.wait_no_watchdog()
            .map_err(|e| format!("cycle {cycle}: {e}"))?;
        stub::write_file(&drv.join("bind"), &wd.parent)?;
        ctx.wait_watchdogs(1)
            .map_err(|e| format!("cycle {cycle}: {e}"))?;
        // The probe's stop-request, before the next unbind.
        me.wait_trace("the probe's stop-request", ctx.t.op, |t| {
            t.count("stop-request") == cycle + 1
        })?;
    }
    let t = me.settle(&ctx.t)?;
    check_eq(
        "start-request timeout=120 lines (one per probe)",
        t.start_requests_with(120),
        REBIND_CYCLES + 1,
    )?;
    check_quiet(&log)
}

pub fn rmmod_insmod(ctx: &mut Ctx) -> Outcome {
    let (me, _) = ctx.setup(V2)?;
    let log = kmsg::mark()?;
    ctx.unload_driver()?;
    ctx.wait_no_watchdog()?;
    me.wait_trace("host: disconnect", ctx.t.op, |t| {
        t.count("host: disconnect") == 1
    })?;
    me.settle(&ctx.t)?;
    ctx.load_driver()?;
    ctx.wait_watchdogs(1)?;
    check_reprobed(ctx, &me)?;
    check_quiet(&log)
}

/// ME link reset under an open, running watchdog: the bus device is removed
/// and re-added, the old fd fails cleanly, the new device works.
pub fn reset_open(ctx: &mut Ctx) -> Outcome {
    let (me, wd) = ctx.setup(V2)?;
    let log = kmsg::mark()?;
    let f = wd.open()?;
    op_ok(ctx, &f, ChildOp::Keepalive)?;
    me.settle(&ctx.t)?;

    me.ctl("reset")?;
    let new = wait_until("a re-registered watchdog", ctx.t.probe, || {
        let all = watchdog::find_all();
        (all.len() == 1 && all[0].ino != wd.ino).then(|| all[0].clone())
    })?;
    me.settle(&ctx.t)?;

    let r = f.bounded(ChildOp::Keepalive, ctx.t.op)?;
    ctx.log(format!("keepalive on the fd opened before the reset: {r}"));
    check_eq(
        "keepalive on the stale fd",
        r.result,
        OpResult::Errno(ENODEV),
    )?;
    drop(f);
    me.settle(&ctx.t)?;

    let stops = me.trace()?.count("stop-request");
    let f = new.open()?;
    op_ok(ctx, &f, ChildOp::Keepalive)?;
    drop(f);
    me.wait_trace("a stop-request on close", ctx.t.op, |t| {
        t.count("stop-request") == stops + 1
    })?;
    check_eq(
        "host: connect lines",
        me.settle(&ctx.t)?.count("host: connect"),
        2,
    )?;
    // The MEI core reports the reset; the watchdog core's stop of the running
    // watchdog on unregister then finds the link down, which the Rust driver
    // logs and the C driver ignores.
    let mut want = vec![format!(
        "{}: unexpected reset: dev_state = ENABLED fw status = ",
        expect::mei_core_log_device(me.index)
    )];
    if ctx.driver == Driver::Rust {
        want.push(format!(
            "mei_wdt {}: stop send failed: -{ENODEV}",
            wd.parent
        ));
    }
    check_log(&log, &want)
}

/// Two ME devices, one with a v2 and one with a v1 watchdog client: two
/// watchdogs, each talking only to its own ME, each with its own firmware
/// version (C has one `watchdog_info` for all, the last probe's).
pub fn two_devices(ctx: &mut Ctx) -> Outcome {
    ctx.load_stub()?;
    let versions = [2, 1];
    let mes = [ctx.add_me(V2)?, ctx.add_me(V1)?];
    ctx.load_driver()?;
    let wds = ctx.wait_watchdogs(2)?;
    for me in &mes {
        me.settle(&ctx.t)?;
    }
    check(wds[0].parent != wds[1].parent, || {
        format!("both watchdogs hang off {}", wds[0].parent)
    })?;

    let starts = |mes: &[Me; 2]| -> Result<Vec<usize>, String> {
        mes.iter()
            .map(|m| Ok(m.trace()?.count("start-request")))
            .collect()
    };
    let mut owners = Vec::new();
    for wd in &wds {
        let before = starts(&mes)?;
        let f = wd.open()?;
        op_ok(ctx, &f, ChildOp::Keepalive)?;
        drop(f);
        for me in &mes {
            me.settle(&ctx.t)?;
        }
        let after = starts(&mes)?;
        let pinged: Vec<usize> = (0..2).filter(|&i| after[i] != before[i]).collect();
        check(pinged.len() == 1, || {
            format!("keepalive on {} reached {} MEs", wd.name, pinged.len())
        })?;
        ctx.log(format!(
            "{} ({}) -> {}",
            wd.name,
            wd.parent,
            mes[pinged[0]].name()
        ));
        owners.push(pinged[0]);
        let want = match ctx.driver {
            Driver::Rust => versions[pinged[0]],
            // The last probe's version: the v1 device probes second.
            Driver::C => 1,
        };
        check_eq(
            &format!("{} fw_version", wd.name),
            wd.attr("fw_version")?,
            want.to_string(),
        )?;
    }
    check(owners[0] != owners[1], || {
        "both watchdogs talk to the same ME".into()
    })?;
    // v2: the probe's ping and stop, then the keepalive's and the
    // close's; v1 probes silently.
    for (me, v) in mes.iter().zip(versions) {
        let t = me.trace()?;
        let requests = if v == 2 { 2 } else { 1 };
        check_eq(
            &format!("{} host: connect lines", me.name()),
            t.count("host: connect"),
            1,
        )?;
        check_eq(
            &format!("{} start-request lines", me.name()),
            t.count("start-request"),
            requests,
        )?;
        check_eq(
            &format!("{} stop-request lines", me.name()),
            t.count("stop-request"),
            requests,
        )?;
    }
    Ok(())
}

/// Module autoloading as a hotplug handler does it: the MEI client device's
/// modalias, given to modprobe, resolves through modules.alias (written by
/// depmod from the module's alias) to mei_wdt, which loads and binds.
pub fn autoload(ctx: &mut Ctx) -> Outcome {
    ctx.load_stub()?;
    let me = ctx.add_me(V2)?;
    check(!kmod::is_loaded(kmod::DRIVER), || {
        "mei_wdt is loaded before modprobe".into()
    })?;
    let cldev = stub::only_wdt_client()?;
    let modalias = stub::read_file(&Path::new(MEI_DEVICES).join(&cldev).join("modalias"))?
        .trim()
        .to_string();
    ctx.log(format!("{cldev}: modalias {modalias}"));
    let aliases = stub::read_file(&kmod::modules_dir()?.join("modules.alias"))?;
    let alias = aliases
        .lines()
        .find(|l| l.starts_with("alias ") && l.ends_with(" mei_wdt"))
        .ok_or_else(|| format!("modules.alias has no alias for mei_wdt:\n{aliases}"))?;
    ctx.log(format!("modules.alias: {alias}"));
    ctx.log(format!("$ modprobe -v {modalias}"));
    let out = kmod::modprobe(&modalias)?;
    ctx.log(&out);
    check(kmod::is_loaded(kmod::DRIVER), || {
        "modprobe succeeded, yet mei_wdt is not loaded".into()
    })?;
    let wd = ctx.wait_watchdogs(1)?.remove(0);
    check_eq("watchdog parent", wd.parent.as_str(), cldev.as_str())?;
    ctx.log(format!("mei_wdt loaded, {} on {cldev}", wd.name));
    me.settle(&ctx.t).map(|_| ())
}

/// The machine restarts while the watchdog is open and running: the
/// watchdog core's reboot notifier stops it (both drivers ask for stop on
/// reboot), so the firmware's last message is a stop-request. Run last;
/// the framework reboots, and the stub prints its trace on the way down.
pub fn reboot_open(ctx: &mut Ctx) -> Outcome {
    let (me, wd) = ctx.setup(V2)?;
    let f = wd.open()?;
    op_ok(ctx, &f, ChildOp::Keepalive)?;
    me.settle(&ctx.t)?;
    // Open across the restart, as a daemon's would be.
    std::mem::forget(f);
    Ok(())
}

/// The test bed's own path (no trace): the ME's PCI parent removed under a
/// bound driver (sysfs `remove`, as a hot-unplug) takes the stub device
/// first, so the driver unbinds and its watchdog goes, with nothing left
/// on the removed parent; a rescan brings the parent back, bound to the
/// stub, and a new ME on it works.
pub fn stub_parent_removed(ctx: &mut Ctx) -> Outcome {
    ctx.skip_trace();
    let (me, _) = ctx.setup(V2)?;
    let parent = me.parent()?;
    let pci = Path::new("/sys/bus/pci/devices").join(&parent);
    stub::write_file(&pci.join("remove"), "1")?;
    ctx.wait_no_watchdog()?;
    check(!stub::device_indices().contains(&me.index), || {
        format!("{} outlived its parent {parent}", me.name())
    })?;
    ctx.forget_me(&me);
    stub::write_file(Path::new("/sys/bus/pci/rescan"), "1")?;
    wait_until("the parent back, bound to mei_stub", ctx.t.probe, || {
        std::fs::read_link(pci.join("driver"))
            .ok()
            .filter(|d| d.ends_with("mei_stub"))
            .map(|_| ())
    })?;
    let again = ctx.add_me(V2)?;
    ctx.wait_watchdogs(1)?;
    again.settle(&ctx.t).map(|_| ())
}
