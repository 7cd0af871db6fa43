//! The driver's debugfs files, `state` and `activation`: same content for
//! both drivers, at a per-device path in Rust (see expect.rs).

use std::fs;
use std::path::Path;

use super::{op_ok, V2};
use crate::expect::{c_debugfs_collision_log, debugfs_dir, DEBUGFS_ROOT};
use crate::framework::{check, check_eq, Ctx, Driver, Outcome};
use crate::kmsg;
use crate::watchdog::ChildOp;

fn read(dir: &Path, name: &str) -> Result<String, String> {
    fs::read_to_string(dir.join(name)).map_err(|e| format!("{}/{name}: {e}", dir.display()))
}

/// Checks both files in `dir`; `step` names the moment for messages.
fn check_files(ctx: &mut Ctx, dir: &Path, step: &str, state: &str) -> Outcome {
    let got_state = read(dir, "state")?;
    let got_activation = read(dir, "activation")?;
    ctx.log(format!(
        "{step}: {}/state: {:?}, activation: {:?}",
        dir.display(),
        got_state,
        got_activation
    ));
    check_eq(
        &format!("{step}: state"),
        got_state,
        format!("state: {state}\n"),
    )?;
    check_eq(
        &format!("{step}: activation"),
        got_activation.as_str(),
        "activated\n",
    )
}

/// One device through IDLE -> START (open) -> RUNNING (keepalive) -> IDLE
/// (close); then a second device: Rust gives it its own directory, C
/// cannot (debugfs refuses a second `mei_wdt`, and the kernel says so).
/// After rmmod nothing is left.
pub fn debugfs_files(ctx: &mut Ctx) -> Outcome {
    let (me, wd) = ctx.setup(V2)?;
    let dir = debugfs_dir(ctx.driver, &wd.parent);
    check_files(ctx, &dir, "registered", "IDLE")?;
    let f = wd.open()?;
    check_files(ctx, &dir, "open", "START")?;
    op_ok(ctx, &f, ChildOp::Keepalive)?;
    check_files(ctx, &dir, "after a keepalive", "RUNNING")?;
    drop(f);
    me.wait_trace("a stop-request on close", ctx.t.op, |t| {
        t.count("stop-request") == 2
    })?;
    check_files(ctx, &dir, "closed", "IDLE")?;
    me.settle(&ctx.t)?;

    let log = kmsg::mark()?;
    let me2 = ctx.add_me_probed(V2)?;
    let wds = ctx.wait_watchdogs(2)?;
    me2.settle(&ctx.t)?;
    let second = wds
        .iter()
        .find(|w| w.parent != wd.parent)
        .ok_or("no watchdog on the second device")?
        .clone();
    let collision_log = c_debugfs_collision_log();
    let collided = match collision_log {
        Some(l) => log.has(l)?,
        None => false,
    };
    match ctx.driver {
        Driver::Rust => {
            let dir2 = debugfs_dir(ctx.driver, &second.parent);
            check_files(ctx, &dir, "first of two devices", "IDLE")?;
            check_files(ctx, &dir2, "second of two devices", "IDLE")?;
            check(!collided, || format!("the kernel said {collision_log:?}"))?;
        }
        Driver::C => {
            // The first device keeps the only directory.
            check_files(ctx, &dir, "first of two devices", "IDLE")?;
            check(collided || collision_log.is_none(), || {
                format!("the kernel did not say {collision_log:?}")
            })?;
            if let Some(l) = collision_log {
                ctx.log(format!("kernel log: {l}"));
            }
        }
    }
    let mut entries: Vec<String> = fs::read_dir(DEBUGFS_ROOT)
        .map_err(|e| format!("{DEBUGFS_ROOT}: {e}"))?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    entries.sort();
    ctx.log(format!("{DEBUGFS_ROOT}: {}", entries.join(" ")));
    let mut want: Vec<String> = match ctx.driver {
        Driver::C => vec!["activation".into(), "state".into()],
        Driver::Rust => vec![wd.parent.clone(), second.parent.clone()],
    };
    want.sort();
    check_eq(&format!("{DEBUGFS_ROOT} entries"), entries, want)?;

    ctx.unload_driver()?;
    ctx.wait_no_watchdog()?;
    check(!Path::new(DEBUGFS_ROOT).exists(), || {
        format!("{DEBUGFS_ROOT} outlived rmmod mei_wdt")
    })
}
