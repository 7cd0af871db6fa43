// SPDX-License-Identifier: GPL-2.0

//! Bus driver registration: 7.3's `kernel::driver`, and on 6.12 a
//! [`compat`] with the same names. A bus abstraction implements
//! [`DriverLayout`] and [`RegistrationOps`] for its adapter, and a
//! [`Registration`] registers it until dropped.
//!
//! One difference the bus abstraction must handle: on 7.3 the driver
//! core drops the driver data (`DriverLayout::DriverData`) after the bus'
//! `remove` or a failed `probe`, through a callback the registration
//! attaches; on 6.12 the bus' adapter drops it itself, at the same points.

#[cfg(kernel_line = "6.12")]
mod compat;

#[cfg(kernel_line = "6.12")]
pub(crate) use compat::{DriverLayout, Registration, RegistrationOps};
#[cfg(not(kernel_line = "6.12"))]
pub(crate) use kernel::driver::{DriverLayout, Registration, RegistrationOps};
