//! Expectations that differ between the C reference driver and the Rust
//! driver. Everything else is expected to behave identically (and the
//! firmware-side traces are compared with the C driver's golden files).
//!
//! TODO(lead): confirm the Rust column against the Rust driver's ping
//! response timeout and its handling of malformed responses.

use std::time::Duration;

use crate::framework::Driver;
use crate::watchdog::ETIMEDOUT;

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
    /// Fails with this errno.
    Errno(i32),
}

/// How long the keepalive child may run before it counts as hung.
/// For Rust this must exceed the driver's own response timeout.
pub fn fault_bound(driver: Driver) -> Duration {
    match driver {
        Driver::C => Duration::from_secs(3),
        Driver::Rust => Duration::from_secs(15),
    }
}

pub struct FaultCase {
    pub scenario: &'static str,
    /// The stub's `fault=` value.
    pub fault: &'static str,
    /// Further stub settings for this fault.
    pub extra: &'static str,
    pub c: Expected,
    pub rust: Expected,
}

impl FaultCase {
    pub fn expected(&self, driver: Driver) -> Expected {
        match driver {
            Driver::C => self.c,
            Driver::Rust => self.rust,
        }
    }
}

const DELAY: Duration = Duration::from_millis(500);

/// C: mei_wdt_ops_ping() waits (killable, unbounded) for a completion that
/// only mei_wdt_rx() completes, and only for a well-formed START_RES (a
/// recv error, an empty or short message, a wrong command/version or an
/// unsupported subcommand returns early). The status byte is never checked,
/// and mei_cldev_recv() truncates a longer message to the response size.
/// Rust: bounded wait, -ETIMEDOUT instead of a hang.
pub const FAULTS: &[FaultCase] = &[
    FaultCase {
        scenario: "fault_drop",
        fault: "drop",
        extra: "",
        c: Expected::Hang,
        rust: Expected::Errno(ETIMEDOUT),
    },
    FaultCase {
        scenario: "fault_delay",
        fault: "delay",
        extra: "delay_ms=500",
        c: Expected::OkAfter(DELAY),
        rust: Expected::OkAfter(DELAY),
    },
    FaultCase {
        scenario: "fault_empty",
        fault: "empty",
        extra: "",
        c: Expected::Hang,
        rust: Expected::Errno(ETIMEDOUT),
    },
    FaultCase {
        scenario: "fault_short",
        fault: "short",
        extra: "",
        c: Expected::Hang,
        rust: Expected::Errno(ETIMEDOUT),
    },
    // TODO(lead): "ok" holds if the oversized message still fits the
    // client's max_msg_length; beyond it the MEI core fails the read
    // (-EMSGSIZE, "message is too big") and C would hang instead.
    FaultCase {
        scenario: "fault_oversize",
        fault: "oversize",
        extra: "",
        c: Expected::Ok,
        rust: Expected::Ok,
    },
    FaultCase {
        scenario: "fault_wrong_command",
        fault: "wrong_command",
        extra: "",
        c: Expected::Hang,
        rust: Expected::Errno(ETIMEDOUT),
    },
    FaultCase {
        scenario: "fault_wrong_version",
        fault: "wrong_version",
        extra: "",
        c: Expected::Hang,
        rust: Expected::Errno(ETIMEDOUT),
    },
    FaultCase {
        scenario: "fault_wrong_subcommand",
        fault: "wrong_subcommand",
        extra: "",
        c: Expected::Hang,
        rust: Expected::Errno(ETIMEDOUT),
    },
    // TODO(lead): the Rust driver may reasonably report a non-zero status
    // as an error; C ignores it.
    FaultCase {
        scenario: "fault_bad_status",
        fault: "bad_status",
        extra: "",
        c: Expected::Ok,
        rust: Expected::Ok,
    },
];
