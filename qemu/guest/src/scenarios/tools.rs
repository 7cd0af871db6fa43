//! Stock userspace against the device: util-linux wdctl and the kernel's
//! watchdog selftest program.

use std::process::Command;
use std::thread;
use std::time::Duration;

use super::{log_run, op_ok, spawn_started, V2};
use crate::expect;
use crate::framework::{check, check_eq, Ctx, Outcome};
use crate::process::{self, Finished};
use crate::sys::{SIGINT, SIGTERM};
use crate::watchdog::{ChildOp, IDENTITY};

const WDCTL: &str = "/usr/bin/wdctl";
const WATCHDOG_TEST: &str = "/bin/watchdog-test";

/// `text` without its lines about the time left, which the watchdog core
/// reports on 7.3 only ([`expect::core_estimates_timeleft`]), and about
/// pretimeouts, which it gives every device where it emulates them
/// ([`expect::core_emulates_pretimeout`]): both are checked apart, so that
/// one golden trace serves every kernel.
fn without_core_features(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with("Timeleft:") && !l.contains("WDIOC_GETTIMELEFT"))
        .filter(|l| !l.to_ascii_lowercase().contains("pretimeout"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Whether wdctl's flag table has a PRETIMEOUT row as the core has it.
fn check_wdctl_pretimeout(stdout: &str) -> Outcome {
    check_eq(
        "wdctl shows the PRETIMEOUT flag",
        stdout.lines().any(|l| l.starts_with("PRETIMEOUT")),
        expect::core_emulates_pretimeout(),
    )
}

/// Whether wdctl's output has a "Timeleft:" line as the kernel line has it.
fn check_wdctl_timeleft(stdout: &str) -> Outcome {
    check_eq(
        "wdctl shows Timeleft",
        stdout.lines().any(|l| l.starts_with("Timeleft:")),
        expect::core_estimates_timeleft(),
    )
}

/// `text` with the device's name (`watchdog3`) as `watchdogN`.
fn normalize_node(text: &str, name: &str) -> String {
    text.replace(name, "watchdogN")
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
    check_wdctl_timeleft(&out.stdout)?;
    check_wdctl_pretimeout(&out.stdout)?;
    // The device number depends on what registered before.
    let mut section = normalize_node(&without_core_features(&out.stdout), &wd.name);
    for l in out.stderr.lines() {
        section.push_str(&format!("stderr: {}\n", normalize_node(l, &wd.name)));
    }
    ctx.trace_section("wdctl", &section);
    me.settle(&ctx.t).map(|_| ())
}

/// `wdctl -s 300`: sets the timeout (the firmware sees 300 on the next
/// ping), and a later `wdctl` shows it.
pub fn wdctl_settimeout(ctx: &mut Ctx) -> Outcome {
    let (me, wd) = ctx.setup(V2)?;
    let mut section = String::new();
    for args in [&["-s", "300"][..], &[]] {
        let out = process::run(Command::new(WDCTL).args(args).arg(&wd.node), ctx.t.op)?;
        let cmdline = format!(
            "wdctl {}",
            [&args.join(" "), &*wd.node.to_string_lossy()]
                .join(" ")
                .trim()
        );
        log_run(ctx, &cmdline, &out);
        check_eq(&format!("{cmdline}: exit status"), out.exit_code()?, 0)?;
        check_wdctl_timeleft(&out.stdout)?;
        check_wdctl_pretimeout(&out.stdout)?;
        section.push_str(&normalize_run(&cmdline, &out, &wd.name));
        me.settle(&ctx.t)?;
    }
    check(
        section
            .lines()
            .any(|l| l.starts_with("Timeout:") && l.contains("300 seconds")),
        || "wdctl does not show \"Timeout: 300 seconds\" after -s 300".into(),
    )?;
    ctx.trace_section("wdctl", &section);
    // The timeout outlives wdctl's open: the next user's ping carries it.
    let before = me.trace()?.start_requests_with(300);
    let f = wd.open()?;
    op_ok(ctx, &f, ChildOp::Keepalive)?;
    drop(f);
    let t = me.settle(&ctx.t)?;
    check(t.start_requests_with(300) > before, || {
        "the next ping after wdctl -s 300 does not carry timeout=300".into()
    })
}

/// A run's command line, exit status and output for a trace section, with
/// the device's name normalized.
fn normalize_run(cmdline: &str, out: &Finished, name: &str) -> String {
    let mut text = format!("$ {cmdline}\n");
    text.push_str(&without_core_features(&out.stdout));
    for l in out.stderr.lines() {
        text.push_str(&format!("stderr: {l}\n"));
    }
    text.push_str(&format!("exit: {:?}\n", out.exit_code()));
    normalize_node(&text, name)
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
    // What -n prints depends on the core: see `pretimeout_output`. -N
    // ends each run (one-shot) where the core accepts the pretimeout.
    (&["-n", "10", "-N"], &[]),
    (&["-n", "0", "-N"], &[]),
    (&["-N"], &["WDIOC_GETPRETIMEOUT returns 0 seconds."]),
    // What -L prints depends on the line: see `expect::gettimeleft_output`.
    (&["-L"], &[]),
    (&["-d", "-T"], &["Watchdog card disabled."]),
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
    let mut section = String::new();
    for (args, wants) in SELFTEST_RUNS {
        let mut cmd = Command::new(WATCHDOG_TEST);
        cmd.arg("-f").arg(&wd.node).args(*args);
        let out = process::run(&mut cmd, ctx.t.op)?;
        let cmdline = format!("watchdog-test -f {} {}", wd.node.display(), args.join(" "));
        log_run(ctx, &cmdline, &out);
        section.push_str(&normalize_run(&cmdline, &out, &wd.name));
        check_eq(&format!("{cmdline}: exit status"), out.exit_code()?, 0)?;
        let wants: Vec<String> = if *args == ["-L"] {
            vec![expect::gettimeleft_output().into()]
        } else if args[0] == "-n" {
            pretimeout_output(args[1]).into()
        } else if *args == ["-s"] && expect::core_emulates_pretimeout() {
            [
                *wants,
                &["Support/Status: Pretimeout (in seconds), get/set"],
            ]
            .concat()
            .iter()
            .map(|w| w.to_string())
            .collect()
        } else {
            wants.iter().map(|w| w.to_string()).collect()
        };
        for want in &wants {
            check(out.stdout.contains(want.as_str()), || {
                format!("{cmdline}: output lacks {want:?}")
            })?;
        }
        me.settle(&ctx.t)?;
    }
    ctx.trace_section("watchdog-test", &section);
    Ok(())
}

/// What `watchdog-test -n SECS -N` prints: the pretimeout set and read
/// back where the core emulates pretimeouts, else the driver's refusal and
/// the unchanged 0.
fn pretimeout_output(secs: &str) -> [String; 2] {
    if expect::core_emulates_pretimeout() {
        [
            format!("Watchdog pretimeout set to {secs} seconds."),
            format!("WDIOC_GETPRETIMEOUT returns {secs} seconds."),
        ]
    } else {
        [
            "WDIOC_SETPRETIMEOUT error 'Operation not supported'".into(),
            "WDIOC_GETPRETIMEOUT returns 0 seconds.".into(),
        ]
    }
}

/// watchdog-test's ping loop (`-t 300 -p 60`: one keepalive, then a minute's
/// sleep) ended by SIGINT, whose handler writes the magic 'V' and closes.
pub fn watchdog_test_sigint(ctx: &mut Ctx) -> Outcome {
    let (me, wd) = ctx.setup(V2)?;
    let args = ["-t", "300", "-p", "60"];
    let daemon = spawn_started(
        ctx,
        &me,
        Command::new(WATCHDOG_TEST)
            .arg("-f")
            .arg(&wd.node)
            .args(args),
        "the loop's first keepalive",
    )?;
    daemon.signal(SIGINT)?;
    let out = daemon.finish(ctx.t.op);
    let cmdline = format!(
        "watchdog-test -f {} {} (SIGINT)",
        wd.node.display(),
        args.join(" ")
    );
    log_run(ctx, &cmdline, &out);
    check_eq("watchdog-test exit status", out.exit_code()?, 0)?;
    for want in [
        "Watchdog ping rate set to 60 seconds.",
        "Watchdog Ticking Away!",
        "Stopping watchdog ticks...",
    ] {
        check(out.stdout.contains(want), || {
            format!("output lacks {want:?}")
        })?;
    }
    ctx.trace_section("watchdog-test", &normalize_run(&cmdline, &out, &wd.name));
    Ok(())
}

/// watchdog-test as a daemon: pings every second (`-p 1`) until SIGTERM, then
/// magic-closes. The ping count depends on timing, so there is no trace.
pub fn watchdog_test_daemon(ctx: &mut Ctx) -> Outcome {
    ctx.skip_trace();
    let (me, wd) = ctx.setup(V2)?;
    let base = me.trace()?.count("start-request");
    let daemon = process::spawn(
        Command::new(WATCHDOG_TEST)
            .arg("-f")
            .arg(&wd.node)
            .args(["-p", "1"]),
    )?;
    thread::sleep(Duration::from_millis(2500));
    daemon.signal(SIGTERM)?;
    let out = daemon.finish(ctx.t.op);
    log_run(
        ctx,
        &format!(
            "watchdog-test -f {} -p 1 (SIGTERM after 2.5 s)",
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
    // One '.' per keepalive, on lines of their own.
    let ticks: usize = out
        .stdout
        .lines()
        .filter(|l| !l.is_empty() && l.chars().all(|c| c == '.'))
        .map(str::len)
        .sum();
    check(ticks >= 2, || {
        format!("{ticks} keepalive(s) in 2.5 s, want >= 2")
    })?;

    let t = me.settle(&ctx.t)?;
    let pings = t.count("start-request") - base;
    check(pings > ticks, || {
        format!("{pings} start-request(s) for {ticks} keepalives plus the magic close")
    })?;
    let last = t.last_request();
    check(last.contains("stop-request"), || {
        format!("last request after SIGTERM is {last:?}, want a stop-request")
    })
}
