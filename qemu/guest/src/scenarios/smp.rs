//! Races between the driver and other CPUs. `smp_probe_race`: the C
//! driver's probe race on two vCPUs (README, difference 7): the
//! stop-request its rx callback sends on the probe's answer overlaps the
//! probe's own send, which fails with EFAULT; C then fails the probe and
//! frees the watchdog the callback has just registered, and the next read
//! of its sysfs `identity` is a use-after-free.
//!
//! Run by name, in a boot of its own on two vCPUs for both drivers
//! (scripts/vm-run.py, `SCENARIO_BOOTS`): for C the expected outcome is
//! KASAN's report, which vm-run.py requires, and the boot ends there; the
//! Rust driver must come through every cycle with its watchdog registered
//! and a clean log.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use super::V2;
use crate::framework::{check, check_eq, Ctx, Driver, Outcome};
use crate::kmsg;
use crate::stub::{self, DRIVER_DIR};
use crate::watchdog::{self, IDENTITY};

/// Probes at most. C's race fired at the 2nd to 11th on the 6.12 debug
/// kernel, at the 18th and the 59th on 7.3.
const CYCLES: usize = 200;

/// KASAN's first line.
const KASAN: &str = "BUG: KASAN:";

pub fn smp_probe_race(ctx: &mut Ctx) -> Outcome {
    // C's trace depends on where its race fires: the checks here judge.
    ctx.skip_trace();
    ctx.load_stub()?;
    let me = ctx.add_me(V2)?;
    // Answers at once, for both drivers: the overlap needs them.
    me.set("answer_gap_ms=0")?;
    let cldev = stub::only_wdt_client()?;
    let log = kmsg::mark()?;
    ctx.load_driver()?;
    let drv = Path::new(DRIVER_DIR);
    let mut bind_errors = 0;
    for cycle in 1..=CYCLES {
        if cycle > 1 {
            if stub::is_bound(&cldev) {
                stub::write_file(&drv.join("unbind"), &cldev)?;
            }
            if stub::write_file(&drv.join("bind"), &cldev).is_err() {
                bind_errors += 1;
            }
        }
        me.settle(&ctx.t)?;
        // Every watchdog there is: C's may outlive its failed probe.
        let identities: Vec<Result<String, String>> = watchdog::find_all()
            .iter()
            .map(|wd| wd.attr("identity"))
            .collect();
        if log.has(KASAN)? {
            ctx.log(format!(
                "cycle {cycle}: KASAN reported ({bind_errors} failed bind(s) before)"
            ));
            return match ctx.driver {
                // The documented outcome; vm-run.py checks the report.
                Driver::C => ctx.pass_and_restart("smp_probe_race"),
                Driver::Rust => Err(format!("cycle {cycle}: KASAN reported")),
            };
        }
        if ctx.driver == Driver::Rust {
            check(stub::is_bound(&cldev), || {
                format!("cycle {cycle}: the probe failed: {cldev} has no driver")
            })?;
            check_eq(
                &format!("cycle {cycle}: watchdog identities"),
                identities,
                vec![Ok(IDENTITY.to_string())],
            )?;
        }
    }
    ctx.log(format!(
        "{CYCLES} probes, {bind_errors} failed bind(s), no KASAN report"
    ));
    check(ctx.driver == Driver::Rust, || {
        format!("the C driver's probe race did not fire in {CYCLES} probes")
    })?;
    check_eq("mei_wdt kernel log lines", log.driver_lines()?, vec![])
}

/// Bind cycles in [`open_during_register`].
const REGISTER_CYCLES: usize = 60;

/// A daemon that opens the watchdog the moment it exists. The watchdog
/// core makes the device openable (`cdev_device_add`) before it checks
/// whether the hardware runs (`watchdog_hw_running`), and takes a module
/// and a device reference if so: an open in between starts the device,
/// and the registration then takes references nothing ever drops (the
/// module can no longer be unloaded; kmemleak shows the
/// `watchdog_core_data`). This happens with any driver whose start can
/// succeed then; the Rust driver's start fails with EBUSY until its
/// registration is done (README). A private node of the watchdog's
/// major and minor opens as soon as the character device is mapped, a
/// thread opens it in a loop, and every cycle of unbind and bind must
/// leave the module unreferenced once the file is closed.
///
/// The thread does not open while the device unregisters: an open between
/// the core's read of `wd_data->wdd` and its call of `start` starts a
/// device whose memory its driver has freed, a race of the watchdog core
/// that every driver shares (README; a soft lockup in `start` on the
/// Debian kernel once).
pub fn open_during_register(ctx: &mut Ctx) -> Outcome {
    ctx.skip_trace();
    let (_me, wd) = ctx.setup(V2)?;
    let cldev = wd.parent.clone();
    let devices = stub::read_file(Path::new("/proc/devices"))?;
    let major = devices
        .lines()
        .find_map(|l| l.strip_suffix(" watchdog"))
        .ok_or("no watchdog major in /proc/devices")?
        .trim()
        .to_string();
    // The one device's number is 0 whenever it registers (the lowest
    // free id); 1 too, in case another watchdog holds 0.
    let nodes: Vec<String> = (0..2).map(|m| format!("/tmp/wd-{m}")).collect();
    for (minor, node) in nodes.iter().enumerate() {
        let _ = std::fs::remove_file(node);
        let out = Command::new("mknod")
            .args([node.as_str(), "c", &major, &minor.to_string()])
            .output()
            .map_err(|e| format!("mknod: {e}"))?;
        check(out.status.success(), || {
            format!("mknod {node}: {}", String::from_utf8_lossy(&out.stderr))
        })?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let unregistering = Arc::new(Mutex::new(()));
    let opener = {
        let stop = stop.clone();
        let unregistering = unregistering.clone();
        thread::spawn(move || {
            let mut opened = BTreeMap::<String, u64>::new();
            while !stop.load(Ordering::Relaxed) {
                for node in &nodes {
                    let no_unregister = unregistering.lock().unwrap_or_else(|e| e.into_inner());
                    let file = OpenOptions::new().write(true).open(node);
                    drop(no_unregister);
                    let key = match file {
                        Ok(file) => {
                            thread::sleep(Duration::from_millis(5));
                            drop(file);
                            "ok".to_string()
                        }
                        Err(e) => format!("errno {}", e.raw_os_error().unwrap_or(0)),
                    };
                    *opened.entry(key).or_default() += 1;
                }
            }
            opened
        })
    };
    let drv = Path::new(DRIVER_DIR);
    let mut result = Ok(());
    for cycle in 1..=REGISTER_CYCLES {
        let unbound = {
            let _no_open = unregistering.lock().unwrap_or_else(|e| e.into_inner());
            stub::write_file(&drv.join("unbind"), &cldev).and_then(|()| ctx.wait_no_watchdog())
        };
        result = unbound
            .and_then(|()| stub::write_file(&drv.join("bind"), &cldev))
            .and_then(|()| ctx.wait_watchdogs(1).map(|_| ()))
            .map_err(|e| format!("cycle {cycle}: {e}"));
        if result.is_err() {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let opened = opener
        .join()
        .map_err(|_| "the opener thread panicked".to_string())?;
    ctx.log(format!("opens of the private nodes: {opened:?}"));
    result?;
    let refcnt = stub::read_file(Path::new("/sys/module/mei_wdt/refcnt"))?;
    check_eq(
        "mei_wdt's module references, every file closed",
        refcnt.trim(),
        "0",
    )
}
