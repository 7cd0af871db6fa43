// SPDX-License-Identifier: GPL-2.0

//! Devices and their log messages.
//!
//! 7.3 has `kernel::device::Device` and `dev_err!`/`dev_warn!`; on 6.12,
//! [`compat`] gives the same names. On both lines this module adds what
//! neither kernel crate has: rate-limited messages (a misbehaving
//! firmware could otherwise flood the log) and messages with one number
//! in printk's own format ([`dev_err_int!`]), which build no
//! `fmt::Arguments` at each call.

use super::bindings;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use kernel::prelude::*;

#[cfg(kernel_line = "6.12")]
mod compat;
#[cfg(kernel_line = "6.12")]
pub(crate) use compat::{dev_err, dev_warn, Device};
#[cfg(not(kernel_line = "6.12"))]
pub(crate) use kernel::{dev_err, dev_warn, device::Device};

/// The raw `struct device` of `dev`.
pub(crate) fn as_raw(dev: &Device) -> *mut bindings::device {
    #[cfg(kernel_line = "6.12")]
    return dev.as_raw();
    // `Device` is a transparent wrapper of `Opaque<struct device>` (and a
    // marker), whose raw accessor is private to the kernel crate.
    #[cfg(not(kernel_line = "6.12"))]
    return core::ptr::from_ref(dev).cast_mut().cast();
}

/// Log levels, as the `KERN_*` prefixes.
#[derive(Clone, Copy)]
pub(crate) enum Level {
    Err,
    // 7.3 prints warnings with its own `dev_warn!`.
    #[cfg_attr(not(kernel_line = "6.12"), expect(dead_code))]
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

/// Error codes the kernel crate does not name yet.
pub(crate) mod code {
    use super::bindings;
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

/// Prints `format` with `value` at `level`, prefixed with the device's
/// driver and name: for the many messages that carry one number.
// Out of line: each caller then only passes its arguments.
#[inline(never)]
pub(crate) fn print_int(dev: &Device, level: Level, format: IntFormat, value: i32) {
    // SAFETY: the level is a NUL-terminated KERN_* prefix, the device is
    // valid (a reference), and the format converts exactly one `int`
    // (`IntFormat` invariant), which is passed.
    unsafe {
        bindings::_dev_printk(
            level.prefix().as_ptr().cast(),
            as_raw(dev),
            format.0,
            value as kernel::ffi::c_int,
        );
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
        #[cfg(kernel_line = "6.12")]
        let (b, ptr) = (format.as_bytes_with_nul(), format.as_char_ptr());
        #[cfg(not(kernel_line = "6.12"))]
        let (b, ptr) = (format.to_bytes_with_nul(), super::c_chars(format));
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
        IntFormat(ptr)
    }
}

/// Prints an error with one number for a device, in printk's format:
/// `dev_err_int!(dev, "send failed: %d\n", e.to_errno())`.
macro_rules! dev_err_int {
    ($dev:expr, $format:expr, $value:expr) => {{
        const FORMAT: $crate::abstractions::device::IntFormat =
            $crate::abstractions::device::IntFormat::new(kernel::c_str!($format));
        $crate::abstractions::device::print_int(
            $dev.as_ref(),
            $crate::abstractions::device::Level::Err,
            FORMAT,
            $value,
        )
    }};
}

/// [`dev_err_int!`] unless `$limit` (a [`RateLimit`]) says no.
macro_rules! dev_err_int_ratelimited {
    ($limit:expr, $dev:expr, $format:expr, $value:expr) => {
        if $limit.allow() {
            $crate::abstractions::device::dev_err_int!($dev, $format, $value);
        }
    };
}

pub(crate) use {dev_err_int, dev_err_int_ratelimited};

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
        // SAFETY: `ktime_get` reads the monotonic clock, in any context.
        let now = (unsafe { bindings::ktime_get() } / 1_000_000) as u64;
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
            $crate::abstractions::device::dev_err!($dev, $($arg)*);
        }
    };
}

/// Prints a warning for a device unless `$limit` says no.
macro_rules! dev_warn_ratelimited {
    ($limit:expr, $dev:expr, $($arg:tt)*) => {
        if $limit.allow() {
            $crate::abstractions::device::dev_warn!($dev, $($arg)*);
        }
    };
}

pub(crate) use {dev_err_ratelimited, dev_warn_ratelimited};
