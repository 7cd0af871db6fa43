//! Scenario registry and per-scenario context: every scenario starts from a
//! freshly loaded stub and driver, and the framework tears both down after
//! it, capturing the firmware-side trace in between.

use std::fmt::Debug;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use crate::expect;
use crate::kmod;
use crate::report::Reporter;
use crate::stub::{self, Me};
use crate::sys;
use crate::watchdog::{self, Watchdog};

pub type Outcome = Result<(), String>;

pub const POLL: Duration = Duration::from_millis(20);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    C,
    Rust,
}

impl Driver {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "c" => Some(Driver::C),
            "rust" => Some(Driver::Rust),
            _ => None,
        }
    }
}

pub struct Scenario {
    pub name: &'static str,
    pub run: Box<dyn Fn(&mut Ctx) -> Outcome>,
    /// The drivers this scenario runs against (`--suite all` skips it for
    /// the others, and `--list --driver` leaves it out).
    pub drivers: &'static [Driver],
    /// Ends by restarting the machine: run by `--at-reboot` only, after
    /// every other scenario (see [`run_until_reboot`]).
    pub at_reboot: bool,
    /// Needs the debug kernel's sanitizers and kmemleak: `--suite all`
    /// runs it there only.
    pub debug_kernel_only: bool,
}

impl Scenario {
    pub fn new(name: &'static str, run: impl Fn(&mut Ctx) -> Outcome + 'static) -> Self {
        Self {
            name,
            run: Box::new(run),
            drivers: &[Driver::C, Driver::Rust],
            at_reboot: false,
            debug_kernel_only: false,
        }
    }

    /// A scenario whose checks only the debug kernel makes (KASAN,
    /// lockdep, kmemleak): `--suite all` leaves it out elsewhere.
    pub fn debug_kernel(name: &'static str, run: impl Fn(&mut Ctx) -> Outcome + 'static) -> Self {
        Self {
            debug_kernel_only: true,
            ..Self::new(name, run)
        }
    }

    /// A scenario that leaves the machine ready for a restart: the
    /// framework then reboots it, without a teardown.
    pub fn at_reboot(name: &'static str, run: impl Fn(&mut Ctx) -> Outcome + 'static) -> Self {
        Self {
            at_reboot: true,
            ..Self::new(name, run)
        }
    }

    /// A scenario for the Rust driver only: what it drives the C reference
    /// into is a known C defect that would end the VM (see the scenario).
    pub fn rust_only(name: &'static str, run: impl Fn(&mut Ctx) -> Outcome + 'static) -> Self {
        Self {
            drivers: &[Driver::Rust],
            ..Self::new(name, run)
        }
    }

    pub fn runs_on(&self, driver: Driver) -> bool {
        self.drivers.contains(&driver)
    }
}

/// Whether this is the debug kernel: the one with kmemleak.
pub fn is_debug_kernel() -> bool {
    Path::new(KMEMLEAK).exists()
}

/// kmemleak's control file, on the debug kernel.
pub const KMEMLEAK: &str = "/sys/kernel/debug/kmemleak";

/// KCSAN's control file, on the data-race kernel.
const KCSAN: &str = "/sys/kernel/debug/kcsan";

/// Whether this is the data-race kernel (KCSAN).
pub fn is_kcsan_kernel() -> bool {
    Path::new(KCSAN).exists()
}

/// Waits and bounds. The debug kernel (KASAN, lockdep, kmemleak under TCG)
/// and the data-race kernel (KCSAN) are several times slower, so
/// everything scales with them.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    factor: u32,
    /// Device enumeration, probe, registration.
    pub probe: Duration,
    /// An operation on the device that should complete promptly.
    pub op: Duration,
    pub settle_max: Duration,
    /// How long to wait before concluding that something did not happen.
    pub absent: Duration,
}

impl Timeouts {
    pub fn detect() -> Self {
        let checked = is_debug_kernel() || is_kcsan_kernel();
        let factor = if checked { 4 } else { 1 };
        let s = |ms: u64| Duration::from_millis(ms) * factor;
        Self {
            factor,
            probe: s(10_000),
            op: s(5_000),
            settle_max: s(10_000),
            absent: s(500),
        }
    }

    pub fn scale(&self, d: Duration) -> Duration {
        d * self.factor
    }
}

/// Polls `probe` until it yields a value or `timeout` passes.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> Result<T, String> {
    let start = Instant::now();
    loop {
        if let Some(v) = probe() {
            return Ok(v);
        }
        if start.elapsed() >= timeout {
            return Err(format!(
                "timed out after {:.1} s waiting for {what}",
                timeout.as_secs_f64()
            ));
        }
        thread::sleep(POLL);
    }
}

pub fn check(cond: bool, what: impl FnOnce() -> String) -> Outcome {
    if cond {
        Ok(())
    } else {
        Err(what())
    }
}

pub fn check_eq<T: PartialEq + Debug>(what: &str, got: T, want: T) -> Outcome {
    check(got == want, || {
        format!("{what}: got {got:?}, want {want:?}")
    })
}

pub struct Ctx<'a> {
    pub driver: Driver,
    pub t: Timeouts,
    rep: &'a mut Reporter,
    mes: Vec<Me>,
    want_trace: bool,
    /// Further `== <header>` sections for the trace, after the firmware's.
    sections: Vec<(String, String)>,
    /// Messages only this driver sends, by design: (the trace line they
    /// follow, the line), checked and taken out of the trace before it is
    /// compared with the C driver's golden file.
    extra_lines: Vec<(String, String)>,
}

impl Ctx<'_> {
    pub fn log(&mut self, text: impl AsRef<str>) {
        self.rep.log(text.as_ref());
    }

    /// Reports `name` passed and restarts the machine at once, without a
    /// teardown: for an expected outcome that leaves the kernel unfit for
    /// one (the C driver's documented use-after-free, whose watchdog the
    /// unload would leave registered). Returns only if the restart fails.
    pub fn pass_and_restart(&mut self, name: &str) -> Outcome {
        self.rep.result(name, &Ok(()));
        self.rep.drain();
        Err(format!("restart: {}", sys::restart()))
    }

    /// This scenario's trace is not reproducible (e.g. a timed ping loop):
    /// emit none, so no golden file applies.
    pub fn skip_trace(&mut self) {
        self.want_trace = false;
    }

    /// Appends a section to this scenario's trace, after the firmware
    /// trace: `== <header>` and then `body`. For userspace output that must
    /// be identical between the drivers (normalize whatever legitimately
    /// differs from boot to boot first).
    pub fn trace_section(&mut self, header: &str, body: &str) {
        self.sections.push((header.to_string(), body.to_string()));
    }

    /// A deliberate difference on the wire (listed in the README): this
    /// driver sends `line` right after the first trace line that contains
    /// `after`, where the C driver sends nothing. The teardown fails the
    /// scenario unless the line is there, and compares the rest of the
    /// trace with the golden file.
    pub fn extra_trace_line(&mut self, after: &str, line: &str) {
        self.extra_lines.push((after.to_string(), line.to_string()));
    }

    pub fn load_stub(&mut self) -> Outcome {
        kmod::insmod(kmod::STUB, &[])?;
        wait_until("debugfs mei_stub/add", self.t.probe, || {
            Path::new(stub::STUB_DIR).join("add").exists().then_some(())
        })
    }

    /// Adds a stub ME device, waits for its watchdog client to enumerate (if
    /// configured) and clears its trace, so the trace starts with the driver.
    pub fn add_me(&mut self, config: &str) -> Result<Me, String> {
        let clients = stub::wdt_clients().len();
        let config = format!("{config}{}", expect::stub_config_for(self.driver));
        let config = config.as_str();
        let me = stub::add(config, &self.t)?;
        self.mes.push(me.clone());
        if stub::config_has_wd(config) {
            wait_until("the watchdog client on the MEI bus", self.t.probe, || {
                (stub::wdt_clients().len() > clients).then_some(())
            })?;
        }
        me.ctl("clear")?;
        Ok(me)
    }

    /// Adds a stub ME device while the driver is loaded, which probes it at
    /// once: its trace is kept (it holds nothing from before the probe, as
    /// the stub records only watchdog-client traffic).
    /// Forgets a stub device that went by itself (its parent was removed),
    /// so that the teardown does not remove it.
    pub fn forget_me(&mut self, gone: &Me) {
        self.mes.retain(|me| me.index != gone.index);
    }

    pub fn add_me_probed(&mut self, config: &str) -> Result<Me, String> {
        let config = format!("{config}{}", expect::stub_config_for(self.driver));
        let me = stub::add(&config, &self.t)?;
        self.mes.push(me.clone());
        Ok(me)
    }

    pub fn load_driver(&mut self) -> Outcome {
        kmod::insmod(kmod::DRIVER, &[])
    }

    /// Loads the driver with module parameters (`name=value`).
    pub fn load_driver_with(&mut self, params: &[&str]) -> Outcome {
        kmod::insmod(kmod::DRIVER, params)
    }

    pub fn unload_driver(&mut self) -> Outcome {
        kmod::rmmod(kmod::DRIVER, &self.t)
    }

    /// Waits until exactly `n` iamt_wdt watchdogs are registered.
    pub fn wait_watchdogs(&self, n: usize) -> Result<Vec<Watchdog>, String> {
        let mut seen = Vec::new();
        wait_until(&format!("{n} iamt_wdt watchdog(s)"), self.t.probe, || {
            seen = watchdog::find_all();
            (seen.len() == n).then(|| seen.clone())
        })
        .map_err(|e| format!("{e} (found {})", seen.len()))
    }

    /// Waits until no iamt_wdt watchdog is registered.
    pub fn wait_no_watchdog(&self) -> Outcome {
        self.wait_watchdogs(0).map(|_| ())
    }

    /// The common start: stub, one ME device with `config`, driver, and the
    /// registered watchdog with the trace settled after the probe.
    pub fn setup(&mut self, config: &str) -> Result<(Me, Watchdog), String> {
        self.setup_with(config, &[])
    }

    /// [`Ctx::setup`] with module parameters for the driver (`name=value`).
    pub fn setup_with(&mut self, config: &str, params: &[&str]) -> Result<(Me, Watchdog), String> {
        self.load_stub()?;
        let me = self.add_me(config)?;
        self.load_driver_with(params)?;
        let wd = self.wait_watchdogs(1)?.remove(0);
        me.settle(&self.t)?;
        Ok((me, wd))
    }

    /// Unloads whatever an earlier scenario may have left loaded.
    fn clean_slate(&mut self) -> Outcome {
        kmod::rmmod(kmod::DRIVER, &self.t)?;
        kmod::rmmod(kmod::STUB, &self.t)
    }

    /// Driver out, trace captured (it includes the driver's teardown), stub
    /// devices removed, stub out. Returns the trace text and the first error.
    fn teardown(&mut self) -> (Option<String>, Outcome) {
        let mut first_err: Outcome = Ok(());
        let mut note = |r: Outcome| {
            if first_err.is_ok() {
                first_err = r;
            }
        };
        note(kmod::rmmod(kmod::DRIVER, &self.t).map_err(|e| format!("teardown: {e}")));
        note(check(watchdog::find_all().is_empty(), || {
            "teardown: an iamt_wdt watchdog outlived rmmod mei_wdt".into()
        }));
        let mut trace = None;
        if self.want_trace && !self.mes.is_empty() {
            let mut text = String::new();
            let several = self.mes.len() > 1;
            for me in &self.mes {
                match me.settle(&self.t) {
                    Ok(t) => {
                        if several {
                            text.push_str("== ");
                            text.push_str(&me.name());
                            text.push('\n');
                        }
                        text.push_str(&t.text);
                    }
                    Err(e) => note(Err(format!("teardown: {e}"))),
                }
            }
            for (header, body) in &self.sections {
                text.push_str("== ");
                text.push_str(header);
                text.push('\n');
                for line in body.lines() {
                    text.push_str(line);
                    text.push('\n');
                }
            }
            for (after, line) in &self.extra_lines {
                match take_extra_line(&text, after, line) {
                    Some(t) => text = t,
                    None => note(Err(format!(
                        "trace: the line {line:?} (a deliberate difference) is not right after {after:?}:\n{text}"
                    ))),
                }
            }
            trace = Some(text);
        }
        for me in &self.mes {
            note(stub::remove(me).map_err(|e| format!("teardown: {e}")));
        }
        if kmod::is_loaded(kmod::STUB) {
            note(kmod::rmmod(kmod::STUB, &self.t).map_err(|e| format!("teardown: {e}")));
        }
        (trace, first_err)
    }
}

/// `text` without the line `line` that follows the first line containing
/// `after`; `None` if it does not follow it.
fn take_extra_line(text: &str, after: &str, line: &str) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let at = lines.iter().position(|l| l.contains(after))? + 1;
    (lines.get(at) == Some(&line)).then(|| {
        lines
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != at)
            .map(|(_, l)| format!("{l}\n"))
            .collect()
    })
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(ToString::to_string)
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Runs a scenario made with [`Scenario::at_reboot`]: once it has set the
/// machine up, says `REBOOT <name>` and restarts it, with the stub and the
/// driver loaded and whatever the scenario left open. The host takes the
/// trace from the stub's console lines, the result from comparing it.
/// Returns (false) only if the scenario failed or the restart did.
pub fn run_until_reboot(s: &Scenario, driver: Driver, rep: &mut Reporter) -> bool {
    eprintln!(
        "mei-wdt-tests: == {} ({driver:?} driver, ends in a reboot)",
        s.name
    );
    let mut ctx = Ctx {
        driver,
        t: Timeouts::detect(),
        rep,
        mes: Vec::new(),
        want_trace: false,
        sections: Vec::new(),
        extra_lines: Vec::new(),
    };
    let mut outcome = ctx.clean_slate().map_err(|e| format!("setup: {e}"));
    if outcome.is_ok() {
        outcome = panic::catch_unwind(AssertUnwindSafe(|| (s.run)(&mut ctx)))
            .unwrap_or_else(|p| Err(format!("panicked: {}", panic_message(&*p))));
    }
    if outcome.is_ok() {
        ctx.rep.reboot(s.name);
        outcome = Err(format!("reboot: {}", sys::restart()));
    }
    let (_, teardown) = ctx.teardown();
    ctx.rep.result(s.name, &outcome.and(teardown));
    false
}

/// Runs one scenario and reports its trace and result. Returns whether it passed.
pub fn run_scenario(s: &Scenario, driver: Driver, rep: &mut Reporter) -> bool {
    eprintln!("mei-wdt-tests: == {} ({driver:?} driver)", s.name);
    let start = Instant::now();
    let mut ctx = Ctx {
        driver,
        t: Timeouts::detect(),
        rep,
        mes: Vec::new(),
        want_trace: true,
        sections: Vec::new(),
        extra_lines: Vec::new(),
    };
    let mut outcome = ctx.clean_slate().map_err(|e| format!("setup: {e}"));
    if outcome.is_ok() {
        outcome = panic::catch_unwind(AssertUnwindSafe(|| (s.run)(&mut ctx)))
            .unwrap_or_else(|p| Err(format!("panicked: {}", panic_message(&*p))));
    }
    let (trace, teardown) = ctx.teardown();
    let outcome = outcome.and(teardown);
    if let Some(text) = trace {
        ctx.rep.trace(s.name, &text);
    }
    ctx.rep.result(s.name, &outcome);
    eprintln!(
        "mei-wdt-tests: == {} {} in {:.1} s",
        s.name,
        if outcome.is_ok() { "passed" } else { "FAILED" },
        start.elapsed().as_secs_f64()
    );
    outcome.is_ok()
}

#[cfg(test)]
mod tests {
    use super::take_extra_line;

    #[test]
    fn extra_line_taken_only_right_after_its_mark() {
        let t = "a\nfw: notification\nhost> stop\nhost: disconnect\n";
        assert_eq!(
            take_extra_line(t, "notification", "host> stop").as_deref(),
            Some("a\nfw: notification\nhost: disconnect\n")
        );
        assert_eq!(take_extra_line(t, "a", "host> stop"), None);
        assert_eq!(take_extra_line(t, "missing", "host> stop"), None);
        assert_eq!(take_extra_line(t, "disconnect", "host> stop"), None);
    }
}
