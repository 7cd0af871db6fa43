// SPDX-License-Identifier: GPL-2.0

//! Device id tables: 7.3's `kernel::device_id`, and on 6.12 a [`compat`]
//! with the same names. A bus' id type implements [`RawDeviceId`] and
//! [`RawDeviceIdIndex`]; a driver's table, declared with
//! `module_device_table!`, is an `IdArray` ended by a zeroed entry, seen by
//! the bus through [`IdTable`], and exported for modpost, which writes the
//! module alias from it.

#[cfg(kernel_line = "6.12")]
mod compat;

#[cfg(kernel_line = "6.12")]
pub(crate) use compat::{module_device_table, IdArray, IdTable, RawDeviceId, RawDeviceIdIndex};
#[cfg(not(kernel_line = "6.12"))]
pub(crate) use kernel::device_id::{IdTable, RawDeviceId, RawDeviceIdIndex};
#[cfg(not(kernel_line = "6.12"))]
pub(crate) use kernel::module_device_table;
