//! mei-wdt-tests: runs the mei_wdt scenarios inside the test VM against the
//! ME stub, and reports results and firmware traces on /dev/ttyS1 for
//! scripts/vm-run.py.
//!
//!     mei-wdt-tests --driver c|rust [--suite all|NAME[,NAME...]] [--stdout]
//!                   [--at-reboot]
//!     mei-wdt-tests --list [--driver c|rust]
//!     mei-wdt-tests --bench [--quick]
//!
//! `all` runs every scenario but the extra ones (`demo`), which run only
//! when named. Scenarios that end in a reboot (`reboot_open`) are left out
//! of a run; `--at-reboot` runs the first of them the suite has instead,
//! which does not return if it reboots (/init calls it last).
//!
//! `--list` prints one scenario per line, its name alone for those `all`
//! runs, followed by ` (debug kernel only)` for those it runs only on the
//! debug kernel, and by ` (only by name)` for the extra ones; with `--driver`
//! only those that run for that driver. scripts/vm-run.py reads it on the
//! host to check that every scenario reported and every golden file has one.
//!
//! `--bench` runs the benchmark (see the `bench` module) instead of
//! scenarios: both drivers, alternated, in this one boot.
//!
//! Exit status: 0 when every scenario passed, 1 when one failed, 2 on usage
//! errors.

mod bench;
mod expect;
mod framework;
mod kmod;
mod kmsg;
mod process;
mod report;
mod scenarios;
mod stub;
mod sys;
mod watchdog;

use std::process::ExitCode;

use framework::{run_scenario, run_until_reboot, Driver, Scenario};
use report::Reporter;

const USAGE: &str =
    "usage: mei-wdt-tests --driver c|rust [--suite all|NAME[,NAME...]] [--stdout] [--at-reboot]
       mei-wdt-tests --list [--driver c|rust]
       mei-wdt-tests --bench [--quick]";

struct Options {
    driver: Driver,
    suite: String,
    to_stdout: bool,
    at_reboot: bool,
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut driver = None;
    let mut suite = "all".to_string();
    let mut to_stdout = false;
    let mut at_reboot = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--driver" => {
                let v = it.next().ok_or("--driver needs a value")?;
                driver = Some(Driver::parse(v).ok_or(format!("unknown driver {v:?}"))?);
            }
            "--suite" => suite = it.next().ok_or("--suite needs a value")?.clone(),
            "--stdout" => to_stdout = true,
            "--at-reboot" => at_reboot = true,
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    Ok(Options {
        driver: driver.ok_or("--driver is required")?,
        suite,
        to_stdout,
        at_reboot,
    })
}

/// Marks the extra scenarios in `--list`.
const BY_NAME: &str = " (only by name)";
/// Marks, in `--list`, the scenarios `all` runs on the debug kernel only.
const DEBUG_KERNEL_ONLY: &str = " (debug kernel only)";

/// `--list [--driver c|rust]`: see the module documentation.
fn list(args: &[String], all: &[Scenario], extra: &[Scenario]) -> ExitCode {
    let driver = match args {
        [] => None,
        [flag, v] if flag == "--driver" => match Driver::parse(v) {
            Some(d) => Some(d),
            None => {
                eprintln!("mei-wdt-tests: unknown driver {v:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        },
        _ => {
            eprintln!("mei-wdt-tests: --list takes only --driver\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runs = |s: &&Scenario| driver.is_none_or(|d| s.runs_on(d));
    for s in all.iter().filter(runs) {
        let mark = if s.debug_kernel_only {
            DEBUG_KERNEL_ONLY
        } else {
            ""
        };
        println!("{}{mark}", s.name);
    }
    for s in extra.iter().filter(runs) {
        println!("{}{BY_NAME}", s.name);
    }
    ExitCode::SUCCESS
}

/// `--bench [--quick]`: reports `BENCH` records, then `RESULT bench`.
fn run_bench(args: &[String]) -> ExitCode {
    let sizes = match args {
        [] => bench::Sizes::FULL,
        [q] if q == "--quick" => bench::Sizes::QUICK,
        _ => {
            eprintln!("mei-wdt-tests: --bench takes only --quick\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let rep = match Reporter::open(false) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mei-wdt-tests: cannot open {}: {e}", report::RESULTS_TTY);
            return ExitCode::from(2);
        }
    };
    if bench::run(rep, sizes) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        return ExitCode::from(watchdog::child_main(&args[1..]) as u8);
    }
    if args.first().map(String::as_str) == Some("--open") {
        return ExitCode::from(watchdog::open_main(&args[1..]) as u8);
    }
    if args.first().map(String::as_str) == Some("--bench") {
        return run_bench(&args[1..]);
    }
    let all = scenarios::all();
    let extra = scenarios::extra();
    if args.first().map(String::as_str) == Some("--list") {
        return list(&args[1..], &all, &extra);
    }
    let opts = match parse_args(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("mei-wdt-tests: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut rep = match Reporter::open(opts.to_stdout) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mei-wdt-tests: cannot open {}: {e}", report::RESULTS_TTY);
            return ExitCode::from(2);
        }
    };

    let mut failed = 0;
    let names: Vec<&str> = if opts.suite == "all" {
        let debug_kernel = framework::is_debug_kernel();
        all.iter()
            .filter(|s| s.runs_on(opts.driver) && (debug_kernel || !s.debug_kernel_only))
            .map(|s| s.name)
            .collect()
    } else {
        opts.suite.split(',').filter(|n| !n.is_empty()).collect()
    };
    let find = |name: &str| all.iter().chain(&extra).find(|s| s.name == name);
    if opts.at_reboot {
        let first = names.iter().filter_map(|n| find(n)).find(|s| s.at_reboot);
        if let Some(s) = first {
            run_until_reboot(s, opts.driver, &mut rep);
            return ExitCode::from(1);
        }
        return ExitCode::SUCCESS;
    }
    for name in names {
        match find(name) {
            // Run last, by `--at-reboot`.
            Some(s) if s.at_reboot => {}
            Some(s) => {
                if !run_scenario(s, opts.driver, &mut rep) {
                    failed += 1;
                }
            }
            None => {
                rep.result(name, &Err("unknown scenario (see --list)".into()));
                failed += 1;
            }
        }
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
