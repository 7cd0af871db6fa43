// SPDX-License-Identifier: GPL-2.0

//! The kernel interfaces mei_wdt uses, the same names on every supported
//! kernel line.
//!
//! Kbuild sets `kernel_line` ("6.12" or "7.3") from the kernel's version.
//! On 7.3 the modules below re-export the kernel crate's own abstractions
//! (device printing, driver registration, device id tables) and add only
//! what it lacks; on 6.12, whose kernel crate has none of those, each has
//! a `compat` module with 7.3's names and behaviour. Debugfs has 7.3's API
//! and this project's implementation on both lines (see [`debugfs`]). The
//! MEI client bus and the watchdog core have no abstraction on any line:
//! they are this project's, in the shape of 7.3's bus abstractions.

pub(crate) mod bindings;
pub(crate) mod completion;
// Public: the ME stub shares it, and each uses a part.
pub mod debugfs;
pub(crate) mod device;
pub(crate) mod device_id;
pub(crate) mod driver;
pub(crate) mod mei_cl;
pub(crate) mod param;
pub(crate) mod watchdog;
pub(crate) mod work;

/// The pointer of a C string, in a constant (7.3's clippy configuration
/// sends `CStr::as_ptr` users to the kernel crate's const helper).
pub(crate) const fn c_chars(s: &core::ffi::CStr) -> *const kernel::ffi::c_char {
    #[cfg(kernel_line = "6.12")]
    return s.as_ptr().cast();
    #[cfg(not(kernel_line = "6.12"))]
    return kernel::str::as_char_ptr_in_const_context(s);
}

/// Initialises pinned memory with a closure: in the `pin_init` crate on
/// 7.3.
#[cfg(kernel_line = "6.12")]
pub(crate) use kernel::init::pin_init_from_closure;
#[cfg(not(kernel_line = "6.12"))]
pub(crate) use pin_init::pin_init_from_closure;

/// Counted references: `kernel::sync::aref` on 7.3, `kernel::types` on 6.12.
pub(crate) mod aref {
    #[cfg(not(kernel_line = "6.12"))]
    pub(crate) use kernel::sync::aref::{ARef, AlwaysRefCounted};
    #[cfg(kernel_line = "6.12")]
    pub(crate) use kernel::types::{ARef, AlwaysRefCounted};
}
