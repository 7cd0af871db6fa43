//! Expectations that differ between the C reference driver and the Rust
//! driver, and between kernel lines. Everything else is expected to behave
//! identically (and the firmware-side traces are compared with the C
//! driver's golden files, recorded on 6.12, for both lines).

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use crate::framework::{Driver, Timeouts};
use crate::watchdog::{OpResult, Timed, EPROTO, ETIMEDOUT};

/// The Rust driver's default `ping_timeout_ms`: how long a v2 ping (and the
/// probe's ping) waits for the firmware's answer.
pub const RUST_PING_TIMEOUT: Duration = Duration::from_millis(5000);

/// The `ping_timeout_ms` the fault scenarios load the driver with (C
/// ignores it): shorter than the default, which they have no need to wait
/// for, and long enough that an at-once failure is told from one at the
/// bound, and the 500 ms delayed answer comes within it.
pub const FAULT_PING_TIMEOUT: Duration = Duration::from_millis(2000);

/// Outcome of one WDIOC_KEEPALIVE while the stub injects a fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    /// Returns 0.
    Ok,
    /// Returns 0, no sooner than this (a delayed response is waited for).
    OkAfter(Duration),
    /// Never returns: still blocked at the bound (the C driver waits for a
    /// valid START_RES without a timeout).
    Hang,
    /// Fails with this errno at once, long before the ping bound (a
    /// malformed response fails the waiting ping when it arrives).
    FailsAtOnce(i32),
    /// Fails with this errno once the ping bound has passed.
    FailsAtBound(i32),
}

impl Expected {
    /// Checks a keepalive's outcome; `bound` is the driver's ping timeout.
    pub fn check(self, r: &Timed, bound: Duration, t: &Timeouts) -> Result<(), String> {
        let ok = match self {
            Expected::Ok => matches!(r.result, OpResult::Ok(_)),
            Expected::OkAfter(min) => matches!(r.result, OpResult::Ok(_)) && r.elapsed >= min,
            Expected::Hang => r.result == OpResult::Hang,
            Expected::FailsAtOnce(e) => r.result == OpResult::Errno(e) && r.elapsed < bound / 2,
            Expected::FailsAtBound(e) => {
                let (lo, hi) = at_bound_window(bound, t);
                r.result == OpResult::Errno(e) && r.elapsed >= lo && r.elapsed <= hi
            }
        };
        if ok {
            return Ok(());
        }
        let when = match self {
            Expected::FailsAtOnce(_) => format!(" (within {:.2} s)", (bound / 2).as_secs_f64()),
            Expected::FailsAtBound(_) => {
                let (lo, hi) = at_bound_window(bound, t);
                format!(
                    " (in [{:.2} s, {:.2} s])",
                    lo.as_secs_f64(),
                    hi.as_secs_f64()
                )
            }
            _ => String::new(),
        };
        Err(format!("keepalive: got {r}, want {self:?}{when}"))
    }
}

/// When an operation bounded by `bound` in the kernel may return, as seen
/// from here: the child's elapsed time includes spawning it, so the lower end
/// allows for timer granularity only; the upper end for a slow guest.
pub fn at_bound_window(bound: Duration, t: &Timeouts) -> (Duration, Duration) {
    (
        bound.saturating_sub(Duration::from_millis(20)),
        bound + t.scale(Duration::from_millis(2500)),
    )
}

/// How long the keepalive child may run before it counts as hung. For Rust
/// it is well past the driver's own bound (plus the at-bound window), so a
/// Rust driver that hung would be told from one that timed out. For C,
/// which waits without a bound, a short wait tells as much as a long one;
/// it is not scaled, but covers the 500 ms `fault_delay` answer on the
/// debug kernel.
pub fn fault_bound(driver: Driver, ping_timeout: Duration, t: &Timeouts) -> Duration {
    match driver {
        Driver::C => Duration::from_secs(2),
        Driver::Rust => ping_timeout + t.scale(Duration::from_secs(8)),
    }
}

/// What the driver prints to the kernel log about the device while the
/// fault is injected: exactly these lines (after the `mei_wdt <device>: `
/// prefix), in this order. Empty: nothing at all.
pub type Log = &'static [&'static str];

const SILENT: Log = &[];
const NO_PING_RESPONSE: Log = &["no ping response from the firmware in 2000 ms"];

pub struct FaultCase {
    pub scenario: &'static str,
    /// The stub's `fault=` value.
    pub fault: &'static str,
    /// Further stub settings for this fault.
    pub extra: &'static str,
    pub c: Expected,
    pub c_log: Log,
    pub rust: Expected,
    pub rust_log: Log,
}

impl FaultCase {
    pub fn expected(&self, driver: Driver) -> Expected {
        match driver {
            Driver::C => self.c,
            Driver::Rust => self.rust,
        }
    }

    pub fn log(&self, driver: Driver) -> Log {
        match driver {
            Driver::C => self.c_log,
            Driver::Rust => self.rust_log,
        }
    }
}

const DELAY: Duration = Duration::from_millis(500);

/// C: mei_wdt_ops_ping() waits (killable, unbounded) for a completion that
/// only mei_wdt_rx() completes, and only for a well-formed START_RES: a
/// recv error, an empty message (silently: "can be sent on stop"), one
/// shorter than the 4-byte header ("recv small data N"), a wrong command or
/// version ("wrong command received") or an unsupported subcommand
/// ("unsupported command N :STATE[n]") returns early and the ping hangs. The
/// status byte is never checked, and mei_cldev_recv() truncates a longer
/// message to the 6 bytes asked for, without a word.
///
/// Rust: the wait is bounded by `ping_timeout_ms` and then fails with
/// ETIMEDOUT ("no ping response from the firmware in N ms", rate-limited);
/// a malformed response fails the waiting ping at once with EPROTO
/// ("bad response: ..."); an empty response is ignored as in C, so the ping
/// times out; an oversize response is used (its first 6 bytes) with a
/// warning; a nonzero status is accepted and logged.
///
/// Answers of a given length (`fault=length`): C only rejects fewer than 4
/// bytes, so for 4 and 5 it reads the status and wdstate bytes mei_cldev_recv
/// did not write; the test kernels zero the stack (INIT_STACK_ALL_ZERO), so
/// C takes them as a good answer. Rust rejects them. Up to the client's MTU
/// (64) the MEI core delivers an answer, truncated to the reader's buffer (C:
/// 6 bytes, Rust: 16, so Rust cannot tell 16 bytes from more); beyond the
/// MTU the core fails the read with EMSGSIZE: C logs it and waits for ever,
/// Rust logs it and fails the waiting ping at once.
pub const FAULTS: &[FaultCase] = &[
    FaultCase {
        scenario: "fault_drop",
        fault: "drop",
        extra: "",
        c: Expected::Hang,
        c_log: SILENT,
        rust: Expected::FailsAtBound(ETIMEDOUT),
        rust_log: NO_PING_RESPONSE,
    },
    FaultCase {
        scenario: "fault_delay",
        fault: "delay",
        extra: "delay_ms=500",
        c: Expected::OkAfter(DELAY),
        c_log: SILENT,
        rust: Expected::OkAfter(DELAY),
        rust_log: SILENT,
    },
    FaultCase {
        scenario: "fault_empty",
        fault: "empty",
        extra: "",
        c: Expected::Hang,
        c_log: SILENT,
        rust: Expected::FailsAtBound(ETIMEDOUT),
        rust_log: NO_PING_RESPONSE,
    },
    FaultCase {
        scenario: "fault_short",
        fault: "short",
        extra: "",
        c: Expected::Hang,
        c_log: &["recv small data 3"],
        rust: Expected::FailsAtOnce(EPROTO),
        rust_log: &["bad response: short response (3 bytes)"],
    },
    FaultCase {
        scenario: "fault_oversize",
        fault: "oversize",
        extra: "",
        c: Expected::Ok,
        c_log: SILENT,
        rust: Expected::Ok,
        rust_log: &["oversize response (10 bytes), using the first 6"],
    },
    FaultCase {
        scenario: "fault_wrong_command",
        fault: "wrong_command",
        extra: "",
        c: Expected::Hang,
        c_log: &["wrong command received"],
        rust: Expected::FailsAtOnce(EPROTO),
        rust_log: &["bad response: wrong command 0x03"],
    },
    FaultCase {
        scenario: "fault_wrong_version",
        fault: "wrong_version",
        extra: "",
        c: Expected::Hang,
        c_log: &["wrong command received"],
        rust: Expected::FailsAtOnce(EPROTO),
        rust_log: &["bad response: wrong version 0x11"],
    },
    FaultCase {
        scenario: "fault_wrong_subcommand",
        fault: "wrong_subcommand",
        extra: "",
        c: Expected::Hang,
        c_log: &["unsupported command 147 :RUNNING[3]"],
        rust: Expected::FailsAtOnce(EPROTO),
        rust_log: &["bad response: unsupported subcommand 0x93"],
    },
    // A nonzero status is no reason to fail a keepalive (the firmware did
    // answer, and C ignores the byte); Rust reports it.
    FaultCase {
        scenario: "fault_bad_status",
        fault: "bad_status",
        extra: "",
        c: Expected::Ok,
        c_log: SILENT,
        rust: Expected::Ok,
        rust_log: &["firmware status 1"],
    },
    FaultCase {
        scenario: "fault_answer_4",
        fault: "length",
        extra: "answer_len=4",
        c: Expected::Ok,
        c_log: SILENT,
        rust: Expected::FailsAtOnce(EPROTO),
        rust_log: &["bad response: short response (4 bytes)"],
    },
    FaultCase {
        scenario: "fault_answer_5",
        fault: "length",
        extra: "answer_len=5",
        c: Expected::Ok,
        c_log: SILENT,
        rust: Expected::FailsAtOnce(EPROTO),
        rust_log: &["bad response: short response (5 bytes)"],
    },
    FaultCase {
        scenario: "fault_answer_17",
        fault: "length",
        extra: "answer_len=17",
        c: Expected::Ok,
        c_log: SILENT,
        rust: Expected::Ok,
        rust_log: &["oversize response (16 bytes or more), using the first 6"],
    },
    FaultCase {
        scenario: "fault_answer_65",
        fault: "length",
        extra: "answer_len=65",
        c: Expected::Hang,
        c_log: &["failure in recv -90"],
        rust: Expected::FailsAtOnce(EPROTO),
        rust_log: &["failure in recv -90"],
    },
];

/// The probe of a v2 client whose firmware never answers the probe ping.
/// C sends the ping and returns; its state stays PROBE, and as mei_wdt_notif()
/// only registers from NOT_REQUIRED, the watchdog never appears. Rust waits
/// `ping_timeout_ms`, reports it, and registers on the ME's next notification.
pub const RUST_PROBE_SILENT_LOG: &str = "no response to the probe ping in 5000 ms: \
     watchdog not registered until the firmware answers, the ME notifies or the device is rebound";

/// A v2 probe whose ping got a malformed answer. C logs the decode error and
/// stays in PROBE for good (a notification is ignored there). Rust logs the
/// decode error and this, and registers on the ME's next notification.
pub const RUST_PROBE_BAD_ANSWER_LOG: &str = "malformed response to the probe ping: \
     watchdog not registered until the firmware answers, the ME notifies or the device is rebound";

/// What the kernel prints when the C module is given the Rust module's
/// parameter (kernel/module/main.c, unknown_module_param_cb()).
pub const C_UNKNOWN_PARAM_LOG: &str = "mei_wdt: unknown parameter 'ping_timeout_ms' ignored";

/// What debugfs says when a second device probes with the C driver, which
/// creates one fixed `mei_wdt` directory per device (7.3 reworded it).
pub fn c_debugfs_collision_log() -> Option<&'static str> {
    Some(match kernel_line() {
        Line::V6_12 => "debugfs: Directory 'mei_wdt' with parent '/' already present!",
        Line::V7_3 => "debugfs: 'mei_wdt' already exists in '/'",
    })
}

/// Extra stub configuration for the C reference driver on 7.3: an answer
/// at least 100 ms after the start request. 7.3 preempts kernel code
/// (PREEMPT_LAZY; x86 has no PREEMPT_NONE any more), so the rx work can
/// answer the probe's ping, and send its stop, before the probing thread
/// has seen its own send complete; the C driver then fails its probe
/// (EFAULT) and frees the watchdog the rx callback has just registered: a
/// use-after-free (KASAN in sysfs `identity_show`, seen in `autoload` on
/// the 7.3 debug kernel). 20 ms was not enough on a loaded host, where
/// the VM can stand still that long (`probe_enable_fails`'s rebind, three
/// VMs on two cores). The Rust driver gets no gap: it copes with the
/// overlap (scenarios `probe_send_late`, `probe_send_fails`).
pub fn stub_config_for(driver: Driver) -> &'static str {
    match (driver, kernel_line()) {
        (Driver::C, Line::V7_3) => " answer_gap_ms=100",
        _ => "",
    }
}

/// A kernel line the tests run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Line {
    V6_12,
    V7_3,
}

/// The line of the running kernel (7.3 for anything newer than 6.x).
pub fn kernel_line() -> Line {
    static LINE: OnceLock<Line> = OnceLock::new();
    *LINE.get_or_init(|| {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        if release.starts_with("6.") {
            Line::V6_12
        } else {
            Line::V7_3
        }
    })
}

/// Whether the watchdog core reports a time left for a driver without
/// `get_timeleft`: 7.3's estimates it from the last keepalive (sysfs
/// `timeleft`, `WDIOC_GETTIMELEFT`, wdctl's "Timeleft:"); 6.12's hides it.
pub fn core_estimates_timeleft() -> bool {
    kernel_line() == Line::V7_3
}

/// Whether the watchdog core gives every device a pretimeout of its own,
/// from a timer (`CONFIG_WATCHDOG_HRTIMER_PRETIMEOUT`, on in Debian's
/// kernel): it then shows a `pretimeout` attribute, adds `WDIOF_PRETIMEOUT`
/// to the status and accepts `WDIOC_SETPRETIMEOUT`, for both drivers. The
/// host says so on the command line (`meiwdt.hrtimer_pretimeout=1`).
pub fn core_emulates_pretimeout() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| {
        std::fs::read_to_string("/proc/cmdline")
            .unwrap_or_default()
            .split_whitespace()
            .any(|a| a == "meiwdt.hrtimer_pretimeout=1")
    })
}

/// `WDIOF_PRETIMEOUT`, which the watchdog core adds to every status when it
/// emulates pretimeouts ([`core_emulates_pretimeout`]).
pub const WDIOF_PRETIMEOUT: u32 = 0x0200;

/// The status bits the watchdog core adds of its own accord.
pub fn core_status_bits() -> u32 {
    if core_emulates_pretimeout() {
        WDIOF_PRETIMEOUT
    } else {
        0
    }
}

/// What watchdog-test -L (`WDIOC_GETTIMELEFT`) prints (see
/// [`core_estimates_timeleft`]).
pub fn gettimeleft_output() -> &'static str {
    if core_estimates_timeleft() {
        "WDIOC_GETTIMELEFT returns "
    } else {
        "WDIOC_GETTIMELEFT error 'Operation not supported'"
    }
}

/// What the MEI core prints when it refuses a client's connection
/// (`mei_cldev_enable`): 7.3 made it a debug message.
pub fn mei_connect_refused_logs() -> &'static [&'static str] {
    match kernel_line() {
        Line::V6_12 => &["cannot connect"],
        Line::V7_3 => &[],
    }
}

/// The device the MEI core logs with for stub device `index`: its PCI
/// parent on 6.12 (driver `mei_stub`), its own class device
/// (`mei<minor>`) on 7.3.
pub fn mei_core_log_device(index: u32) -> String {
    let parent = crate::stub::read_file(
        &std::path::Path::new(crate::stub::STUB_DIR).join(format!("me{index}/parent")),
    )
    .map(|s| s.trim().to_string())
    .unwrap_or_else(|_| "parent?".into());
    if kernel_line() == Line::V6_12 {
        return format!("mei_stub {parent}");
    }
    let class = std::fs::read_dir(format!("/sys/bus/pci/devices/{parent}/mei"))
        .ok()
        .and_then(|mut d| d.next())
        .and_then(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .unwrap_or_else(|| "mei?".into());
    format!("mei {class}")
}

/// The debugfs directory holding the driver's `state` and `activation` files
/// for the MEI client device `cldev`: C creates one fixed `mei_wdt`
/// directory (so a second device has none), Rust one per device under it.
pub fn debugfs_dir(driver: Driver, cldev: &str) -> PathBuf {
    let root = PathBuf::from(DEBUGFS_ROOT);
    match driver {
        Driver::C => root,
        Driver::Rust => root.join(cldev),
    }
}

pub const DEBUGFS_ROOT: &str = "/sys/kernel/debug/mei_wdt";

/// The Rust driver's module parameter in sysfs; the C module has none.
pub const PING_TIMEOUT_PARAM: &str = "/sys/module/mei_wdt/parameters/ping_timeout_ms";
