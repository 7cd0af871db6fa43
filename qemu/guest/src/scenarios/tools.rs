//! Stock userspace against the device: util-linux wdctl and the kernel's
//! watchdog selftest program.

use std::process::Command;
use std::thread;
use std::time::Duration;

use super::V2;
use crate::framework::{check, check_eq, Ctx, Outcome};
use crate::process::{self, Finished};
use crate::sys::SIGTERM;
use crate::watchdog::IDENTITY;

const WDCTL: &str = "/usr/bin/wdctl";
const WATCHDOG_TEST: &str = "/bin/watchdog-test";

/// `text` with the device's name (`watchdog3`) as `watchdogN`.
fn normalize_node(text: &str, name: &str) -> String {
    text.replace(name, "watchdogN")
}

fn log_run(ctx: &mut Ctx, cmdline: &str, out: &Finished) {
    ctx.log(format!("$ {cmdline}"));
    ctx.log(&out.stdout);
    ctx.log(&out.stderr);
}

pub fn wdctl(ctx: &mut Ctx) -> Outcome {
    let (me, wd) = ctx.setup(V2)?;
    let out = process::run(Command::new(WDCTL).arg(&wd.node), ctx.t.op)?;
    log_run(ctx, &format!("wdctl {}", wd.node.display()), &out);
    check_eq("wdctl exit status", out.exit_code()?, 0)?;
    check(out.stdout.contains(IDENTITY), || {
        "wdctl does not name iamt_wdt".into()
    })?;
    check(
        out.stdout
            .lines()
            .any(|l| l.starts_with("Timeout:") && l.contains("120 seconds")),
        || "wdctl does not show \"Timeout: 120 seconds\"".into(),
    )?;
    // The device number depends on what registered before.
    let mut section = normalize_node(&out.stdout, &wd.name);
    for l in out.stderr.lines() {
        section.push_str(&format!("stderr: {}\n", normalize_node(l, &wd.name)));
    }
    ctx.trace_section("wdctl", &section);
    me.settle(&ctx.t).map(|_| ())
}

/// One-shot runs of watchdog-test (each opens, acts, writes the magic 'V',
/// which pings, and closes). The C driver keeps the timeout set by -t 300
/// across opens, hence the later "300".
const SELFTEST_RUNS: &[(&[&str], &[&str])] = &[
    (
        &["-i"],
        &[
            " identity:\t\tiamt_wdt",
            " firmware_version:\t2",
            "Support/Status: Set timeout (in seconds)",
            "Support/Status: Watchdog triggers a management or other external alarm not a reboot",
            "Support/Status: Keep alive ping reply",
        ],
    ),
    (&["-b"], &["Last boot is caused by: Power-On-Reset"]),
    (
        &["-s"],
        &[
            "Support/Status: Keep alive ping reply",
            "WDIOC_GETTEMP: 'Inappropriate ioctl for device'",
        ],
    ),
    (&["-T"], &["WDIOC_GETTIMEOUT returns 120 seconds."]),
    (
        &["-t", "300", "-T"],
        &[
            "Watchdog timeout set to 300 seconds.",
            "WDIOC_GETTIMEOUT returns 300 seconds.",
        ],
    ),
    (
        &["-t", "100"],
        &["WDIOC_SETTIMEOUT error 'Invalid argument'"],
    ),
    (
        &["-n", "10"],
        &["WDIOC_SETPRETIMEOUT error 'Operation not supported'"],
    ),
    (&["-N"], &["WDIOC_GETPRETIMEOUT returns 0 seconds."]),
    (
        &["-L"],
        &["WDIOC_GETTIMELEFT error 'Operation not supported'"],
    ),
    (
        &["-d", "-e", "-T"],
        &[
            "Watchdog card disabled.",
            "Watchdog card enabled.",
            "WDIOC_GETTIMEOUT returns 300 seconds.",
        ],
    ),
];

pub fn watchdog_test(ctx: &mut Ctx) -> Outcome {
    let (me, wd) = ctx.setup(V2)?;
    for (args, wants) in SELFTEST_RUNS {
        let mut cmd = Command::new(WATCHDOG_TEST);
        cmd.arg("-f").arg(&wd.node).args(*args);
        let out = process::run(&mut cmd, ctx.t.op)?;
        let cmdline = format!("watchdog-test -f {} {}", wd.node.display(), args.join(" "));
        log_run(ctx, &cmdline, &out);
        check_eq(&format!("{cmdline}: exit status"), out.exit_code()?, 0)?;
        for want in *wants {
            check(out.stdout.contains(want), || {
                format!("{cmdline}: output lacks {want:?}")
            })?;
        }
        me.settle(&ctx.t)?;
    }
    Ok(())
}

/// watchdog-test as a daemon: pings every second until SIGTERM, then
/// magic-closes. The ping count depends on timing, so there is no trace.
pub fn watchdog_test_daemon(ctx: &mut Ctx) -> Outcome {
    ctx.skip_trace();
    let (me, wd) = ctx.setup(V2)?;
    let base = me.trace()?.count("start-request");
    let daemon = process::spawn(Command::new(WATCHDOG_TEST).arg("-f").arg(&wd.node))?;
    thread::sleep(Duration::from_millis(2500));
    daemon.signal(SIGTERM)?;
    let out = daemon.finish(ctx.t.op);
    log_run(
        ctx,
        &format!(
            "watchdog-test -f {} (SIGTERM after 2.5 s)",
            wd.node.display()
        ),
        &out,
    );
    check_eq("watchdog-test exit status", out.exit_code()?, 0)?;
    for want in ["Watchdog Ticking Away!", "Stopping watchdog ticks..."] {
        check(out.stdout.contains(want), || {
            format!("output lacks {want:?}")
        })?;
    }
    let ticks = out.stdout.matches('.').count() - "Stopping watchdog ticks...".matches('.').count();
    check(ticks >= 2, || {
        format!("{ticks} keepalive(s) in 2.5 s, want >= 2")
    })?;

    let t = me.settle(&ctx.t)?;
    let pings = t.count("start-request") - base;
    check(pings > ticks, || {
        format!("{pings} start-request(s) for {ticks} keepalives plus the magic close")
    })?;
    let last = t
        .lines()
        .filter(|l| l.contains("start-request") || l.contains("stop-request"))
        .last()
        .unwrap_or("");
    check(last.contains("stop-request"), || {
        format!("last request after SIGTERM is {last:?}, want a stop-request")
    })
}
