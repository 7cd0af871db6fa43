// SPDX-License-Identifier: GPL-2.0

//! The registration part of 7.3's `kernel::driver`, for 6.12.

use kernel::error::Error;
use kernel::prelude::*;
use kernel::types::Opaque;

/// The layout of a bus' driver structure.
///
/// # Safety
///
/// `DriverType` must be the bus' `repr(C)` driver structure and
/// `DriverData` the type of the driver data the bus' adapter stores.
pub(crate) unsafe trait DriverLayout {
    /// The bus' driver structure (e.g. `struct mei_cl_driver`).
    type DriverType: Default;
    /// The driver data of a bound device.
    type DriverData<'bound>;
}

/// Registers and unregisters a bus' driver structure.
///
/// # Safety
///
/// `unregister` undoes a successful `register`.
pub(crate) unsafe trait RegistrationOps: DriverLayout {
    /// Fills in and registers `reg`.
    ///
    /// # Safety
    ///
    /// On success, `reg` must stay pinned and valid until `unregister`.
    unsafe fn register(
        reg: &Opaque<Self::DriverType>,
        name: &'static CStr,
        module: &'static ThisModule,
    ) -> Result;

    /// Unregisters `reg`, unbinding every device.
    ///
    /// # Safety
    ///
    /// `reg` must have been registered with `register`.
    unsafe fn unregister(reg: &Opaque<Self::DriverType>);
}

/// A registered driver, unregistered on drop.
///
/// # Invariants
///
/// `reg` was registered with `T::register`.
#[pin_data(PinnedDrop)]
pub(crate) struct Registration<T: RegistrationOps> {
    #[pin]
    reg: Opaque<T::DriverType>,
}

// SAFETY: nothing is reachable through a `&Registration`.
unsafe impl<T: RegistrationOps> Sync for Registration<T> {}
// SAFETY: registration and unregistration work from any thread.
unsafe impl<T: RegistrationOps> Send for Registration<T> {}

impl<T: RegistrationOps + 'static> Registration<T> {
    /// Registers driver `name` of `module`.
    pub(crate) fn new(
        name: &'static CStr,
        module: &'static ThisModule,
    ) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            // SAFETY: the driver structure is written, then registered in
            // place (pinned, so `T::register`'s condition holds); a failed
            // registration leaves nothing pointing to it.
            reg <- unsafe {
                crate::abstractions::pin_init_from_closure(
                    move |slot: *mut Opaque<T::DriverType>| {
                        // `Opaque` is a transparent wrapper of the driver structure.
                        slot.cast::<T::DriverType>().write(T::DriverType::default());
                        T::register(&*slot, name, module)
                    },
                )
            },
        }? Error)
    }
}

#[pinned_drop]
impl<T: RegistrationOps> PinnedDrop for Registration<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: registered (type invariant).
        unsafe { T::unregister(&self.reg) };
    }
}
