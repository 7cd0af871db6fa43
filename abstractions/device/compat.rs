// SPDX-License-Identifier: GPL-2.0

//! `Device`, `dev_err!` and `dev_warn!` as 7.3's kernel crate has them,
//! for 6.12, whose kernel crate has neither.

use super::Level;
use crate::abstractions::bindings;
use core::fmt;
use kernel::c_str;
use kernel::prelude::*;
use kernel::types::Opaque;

/// A `struct device`.
///
/// # Invariants
///
/// The wrapped device is valid for the lifetime of the reference.
#[repr(transparent)]
pub(crate) struct Device(Opaque<bindings::device>);

// SAFETY: a `struct device` is refcounted and usable from any thread.
unsafe impl Send for Device {}
// SAFETY: as above; logging and reading the name need no exclusion.
unsafe impl Sync for Device {}

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
}

impl AsRef<Device> for Device {
    fn as_ref(&self) -> &Device {
        self
    }
}

/// Prints an error for a device: `dev_err!(dev, "fmt", args...)`.
macro_rules! dev_err {
    ($dev:expr, $($arg:tt)*) => {
        $crate::abstractions::device::Device::print(
            $dev.as_ref(),
            $crate::abstractions::device::Level::Err,
            format_args!($($arg)*),
        )
    };
}

/// Prints a warning for a device.
macro_rules! dev_warn {
    ($dev:expr, $($arg:tt)*) => {
        $crate::abstractions::device::Device::print(
            $dev.as_ref(),
            $crate::abstractions::device::Level::Warn,
            format_args!($($arg)*),
        )
    };
}

pub(crate) use {dev_err, dev_warn};
