// SPDX-License-Identifier: GPL-2.0

//! Device logging: `dev_err`/`dev_warn`/`dev_info` equivalents through
//! `_dev_printk` with `%pA`, and a rate limit for messages a misbehaving
//! firmware could otherwise flood the log with.

use crate::bindings;
use core::fmt;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use kernel::c_str;
use kernel::str::CStr;
use kernel::types::Opaque;

/// A `struct device`, borrowed for logging.
///
/// # Invariants
///
/// The wrapped device is valid for the lifetime of the reference.
#[repr(transparent)]
pub(crate) struct Device(Opaque<bindings::device>);

/// Log levels, as the `KERN_*` prefixes.
#[derive(Clone, Copy)]
pub(crate) enum Level {
    Err,
    Warn,
}

impl Level {
    fn prefix(self) -> &'static [u8; 3] {
        match self {
            Level::Err => b"\x013\0",
            Level::Warn => b"\x014\0",
        }
    }
}

// SAFETY: a `struct device` is refcounted and usable from any thread.
unsafe impl Send for Device {}
// SAFETY: as above; logging and reading the name need no exclusion.
unsafe impl Sync for Device {}

/// Error codes the kernel crate does not name yet.
pub(crate) mod code {
    use crate::bindings;
    use kernel::error::Error;

    fn errno(e: u32) -> Error {
        Error::from_errno(-(e as i32))
    }

    /// Timed out.
    pub(crate) fn etimedout() -> Error {
        errno(bindings::ETIMEDOUT)
    }

    /// Operation not supported.
    pub(crate) fn eopnotsupp() -> Error {
        errno(bindings::EOPNOTSUPP)
    }

    /// Protocol error.
    pub(crate) fn eproto() -> Error {
        errno(bindings::EPROTO)
    }

    /// Timer expired (a send whose write did not complete in time).
    pub(crate) fn etime() -> Error {
        errno(bindings::ETIME)
    }
}

impl Device {
    /// Borrows a raw device.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a valid `struct device` that stays valid for `'a`.
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut bindings::device) -> &'a Device {
        // SAFETY: `Device` is a transparent wrapper; the caller guarantees
        // validity for `'a`.
        unsafe { &*ptr.cast::<Device>() }
    }

    /// The raw `struct device`.
    pub(crate) fn as_raw(&self) -> *mut bindings::device {
        self.0.get()
    }

    /// The device name, e.g. for a debugfs directory.
    pub(crate) fn name(&self) -> &CStr {
        // SAFETY: a registered device has a name (`kobject_name`) that
        // lives as long as the device (type invariant).
        unsafe { CStr::from_char_ptr((*self.as_raw()).kobj.name) }
    }

    /// Prints `args` at `level`, prefixed with the device's driver and name.
    pub(crate) fn print(&self, level: Level, args: fmt::Arguments<'_>) {
        // SAFETY: the level is a NUL-terminated KERN_* prefix, the device is
        // valid (type invariant), and `%pA` takes a `fmt::Arguments` pointer
        // that lives across the call.
        unsafe {
            bindings::_dev_printk(
                level.prefix().as_ptr().cast(),
                self.as_raw(),
                c_str!("%pA").as_char_ptr(),
                (&args as *const fmt::Arguments<'_>).cast::<core::ffi::c_void>(),
            );
        }
    }
}

/// Prints an error for a device: `dev_err!(dev, "fmt", args...)`.
macro_rules! dev_err {
    ($dev:expr, $($arg:tt)*) => {
        $dev.print($crate::device::Level::Err, format_args!($($arg)*))
    };
}

/// Prints a warning for a device.
macro_rules! dev_warn {
    ($dev:expr, $($arg:tt)*) => {
        $dev.print($crate::device::Level::Warn, format_args!($($arg)*))
    };
}

pub(crate) use {dev_err, dev_warn};

/// Allows at most `BURST` messages per `INTERVAL_MS`, like the kernel's
/// `DEFAULT_RATELIMIT_*` (10 per 5 s), and counts what it suppressed.
pub(crate) struct RateLimit {
    window_start_ms: AtomicU64,
    printed: AtomicU32,
    suppressed: AtomicU32,
}

impl RateLimit {
    const INTERVAL_MS: u64 = 5000;
    const BURST: u32 = 10;

    /// A rate limit with an empty window.
    pub(crate) const fn new() -> Self {
        RateLimit {
            window_start_ms: AtomicU64::new(0),
            printed: AtomicU32::new(0),
            suppressed: AtomicU32::new(0),
        }
    }

    /// Whether a message may be printed now. Races between callers may let
    /// a message or two more through; that is fine for a log limit.
    pub(crate) fn allow(&self) -> bool {
        let now = (kernel::time::Ktime::ktime_get().to_ns() / 1_000_000) as u64;
        let start = self.window_start_ms.load(Ordering::Relaxed);
        if start == 0 || now.saturating_sub(start) >= Self::INTERVAL_MS {
            self.window_start_ms.store(now.max(1), Ordering::Relaxed);
            self.printed.store(0, Ordering::Relaxed);
        }
        if self.printed.fetch_add(1, Ordering::Relaxed) < Self::BURST {
            true
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            false
        }
    }
}

/// Prints an error for a device unless `$limit` (a [`RateLimit`]) says no.
macro_rules! dev_err_ratelimited {
    ($limit:expr, $dev:expr, $($arg:tt)*) => {
        if $limit.allow() {
            $crate::device::dev_err!($dev, $($arg)*);
        }
    };
}

/// Prints a warning for a device unless `$limit` says no.
macro_rules! dev_warn_ratelimited {
    ($limit:expr, $dev:expr, $($arg:tt)*) => {
        if $limit.allow() {
            $crate::device::dev_warn!($dev, $($arg)*);
        }
    };
}

pub(crate) use {dev_err_ratelimited, dev_warn_ratelimited};
