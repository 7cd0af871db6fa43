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
    // Out of line: each caller then only builds its arguments.
    #[inline(never)]
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

    /// Prints `format` with `value` at `level`, prefixed as by
    /// [`Device::print`]: for the many messages that carry one number,
    /// without building `fmt::Arguments` at each.
    #[inline(never)]
    pub(crate) fn print_int(&self, level: Level, format: IntFormat, value: i32) {
        // SAFETY: the level is a NUL-terminated KERN_* prefix, the device is
        // valid (type invariant), and the format converts exactly one
        // `int` (`IntFormat` invariant), which is passed.
        unsafe {
            bindings::_dev_printk(
                level.prefix().as_ptr().cast(),
                self.as_raw(),
                format.0,
                value as core::ffi::c_int,
            );
        }
    }
}

/// A printk format that converts exactly one `int` (`%d`), checked when
/// it is made: at compile time in [`dev_err_int!`]; made at run time, a
/// bad format panics. A literal `%` (`%%`) is refused too.
///
/// # Invariants
///
/// A static, NUL-terminated string with one `%d` and no other `%`.
#[derive(Clone, Copy)]
pub(crate) struct IntFormat(*const kernel::ffi::c_char);

impl IntFormat {
    /// Panics (at compile time, in a constant) unless `format` converts
    /// exactly one `int`.
    pub(crate) const fn new(format: &'static CStr) -> Self {
        let b = format.as_bytes_with_nul();
        let mut i = 0;
        let mut ints = 0;
        while i < b.len() {
            if b[i] == b'%' {
                assert!(
                    i + 1 < b.len() && b[i + 1] == b'd',
                    "only %d may follow a % in an IntFormat"
                );
                ints += 1;
                i += 1;
            }
            i += 1;
        }
        assert!(ints == 1, "an IntFormat converts exactly one %d");
        // INVARIANT: checked above; the string is static.
        IntFormat(format.as_char_ptr())
    }
}

/// Prints an error with one number for a device, in printk's format:
/// `dev_err_int!(dev, "send failed: %d\n", e.to_errno())`.
macro_rules! dev_err_int {
    ($dev:expr, $format:expr, $value:expr) => {{
        const FORMAT: $crate::device::IntFormat =
            $crate::device::IntFormat::new(kernel::c_str!($format));
        $dev.print_int($crate::device::Level::Err, FORMAT, $value)
    }};
}

/// [`dev_err_int!`] unless `$limit` (a [`RateLimit`]) says no.
macro_rules! dev_err_int_ratelimited {
    ($limit:expr, $dev:expr, $format:expr, $value:expr) => {
        if $limit.allow() {
            $crate::device::dev_err_int!($dev, $format, $value);
        }
    };
}

pub(crate) use {dev_err_int, dev_err_int_ratelimited};

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
/// `DEFAULT_RATELIMIT_*` (10 per 5 s).
pub(crate) struct RateLimit {
    window_start_ms: AtomicU64,
    printed: AtomicU32,
}

impl RateLimit {
    const INTERVAL_MS: u64 = 5000;
    const BURST: u32 = 10;

    /// A rate limit with an empty window.
    pub(crate) const fn new() -> Self {
        RateLimit {
            window_start_ms: AtomicU64::new(0),
            printed: AtomicU32::new(0),
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
        self.printed.fetch_add(1, Ordering::Relaxed) < Self::BURST
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
