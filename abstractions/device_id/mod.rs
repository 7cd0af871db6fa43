// SPDX-License-Identifier: GPL-2.0

//! Device id tables: 7.3's `kernel::device_id`, and on 6.12 a [`compat`]
//! with the same names. A bus' id type implements [`RawDeviceId`] and
//! [`RawDeviceIdIndex`]; a driver's table is an [`IdArray`] ended by a
//! zeroed entry, seen by the bus through [`IdTable`].

#[cfg(kernel_line = "6.12")]
mod compat;

#[cfg(kernel_line = "6.12")]
pub(crate) use compat::{IdArray, IdTable, RawDeviceId, RawDeviceIdIndex};
#[cfg(not(kernel_line = "6.12"))]
pub(crate) use kernel::device_id::{IdTable, RawDeviceId, RawDeviceIdIndex};
