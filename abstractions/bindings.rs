// SPDX-License-Identifier: GPL-2.0

//! Bindings for the MEI client bus and the watchdog core, generated at build
//! time by bindgen over `bindings_helper.h` (see `Kbuild`).
//!
//! Types the kernel crate already binds are imported from `kernel::bindings`
//! rather than generated again, so both agree on, e.g., `struct device`.

#![allow(
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    dead_code,
    improper_ctypes,
    unreachable_pub,
    unsafe_op_in_unsafe_fn,
    clippy::all,
    clippy::as_underscore,
    clippy::cast_lossless,
    clippy::ptr_as_ptr,
    clippy::ref_as_ptr,
    clippy::undocumented_unsafe_blocks
)]

pub(crate) use kernel::bindings::*;
use kernel::ffi;
// 7.3's bindgen parameters derive it for every structure.
#[cfg(not(kernel_line = "6.12"))]
use pin_init::MaybeZeroable;
include!("../mei_wdt_bindings_generated.rs");
