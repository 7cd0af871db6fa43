// SPDX-License-Identifier: GPL-2.0

//! Watchdog core: device description, operations and registration.
//!
//! A [`Registration`] owns its `struct watchdog_device`, `watchdog_info` and
//! ops table in one pinned heap allocation, so the description is per
//! device, and the core's pointers into it stay valid until drop, which
//! unregisters first. Operations receive shared references only: the core
//! calls some of them (stop on reboot) without its lock.

use crate::bindings;
use crate::device;
use core::pin::Pin;
use kernel::alloc::{flags::GFP_KERNEL, KBox};
use kernel::error::{from_result, to_result};
use kernel::ffi::{c_int, c_uint};
use kernel::prelude::*;
use kernel::sync::Arc;
use kernel::types::Opaque;

/// Capability bits for [`Info::options`].
pub(crate) mod options {
    use crate::bindings;
    /// Keep-alive ping reply.
    pub(crate) const KEEPALIVEPING: u32 = bindings::WDIOF_KEEPALIVEPING;
    /// The timeout can be set.
    pub(crate) const SETTIMEOUT: u32 = bindings::WDIOF_SETTIMEOUT;
    /// Expiry raises a management alarm, not a reboot.
    pub(crate) const ALARMONLY: u32 = bindings::WDIOF_ALARMONLY;
}

/// What the watchdog device says about itself.
pub(crate) struct Info {
    /// Identity string (at most 31 bytes).
    pub(crate) identity: &'static str,
    /// `WDIOF_*` capability bits.
    pub(crate) options: u32,
    /// Firmware version.
    pub(crate) firmware_version: u32,
    /// Timeout at registration, seconds.
    pub(crate) timeout: u32,
    /// Smallest timeout, seconds.
    pub(crate) min_timeout: u32,
    /// Largest timeout, seconds.
    pub(crate) max_timeout: u32,
}

/// A registered watchdog device, as the core hands it to operations.
///
/// # Invariants
///
/// Wraps the `watchdog_device` of a live [`Registration`].
#[repr(transparent)]
pub(crate) struct Device(Opaque<bindings::watchdog_device>);

impl Device {
    /// Sets the timeout the core reports; call from `set_timeout`.
    pub(crate) fn set_timeout(&self, timeout: u32) {
        // SAFETY: called from the `set_timeout` operation, under the core's
        // lock, as C drivers write `wdd->timeout` there.
        unsafe { (*self.0.get()).timeout = timeout };
    }
}

/// Watchdog operations of a driver, dispatched to its shared data.
#[vtable]
pub(crate) trait Operations: Send + Sync + Sized + 'static {
    /// Starts the watchdog.
    fn start(&self, wdd: &Device) -> Result;
    /// Stops the watchdog.
    fn stop(&self, _wdd: &Device) -> Result {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }
    /// Pings the watchdog.
    fn ping(&self, _wdd: &Device) -> Result {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }
    /// Sets the timeout (already range-checked by the core).
    fn set_timeout(&self, _wdd: &Device, _timeout: u32) -> Result {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }
}

/// A registered watchdog device; unregistered on drop, before its memory
/// goes away.
#[pin_data(PinnedDrop)]
pub(crate) struct Registration<T: Operations> {
    #[pin]
    wdd: Opaque<bindings::watchdog_device>,
    info: Opaque<bindings::watchdog_info>,
    ops: bindings::watchdog_ops,
    /// The driver's data the operations run on; kept alive while registered.
    data: Arc<T>,
}

// SAFETY: the C structures are shared with the watchdog core, which
// serializes access; `data` is `Send + Sync`.
unsafe impl<T: Operations> Send for Registration<T> {}
// SAFETY: as above.
unsafe impl<T: Operations> Sync for Registration<T> {}

/// Recovers the registration from the core's `watchdog_device`.
///
/// # Safety
///
/// `wdd` must be the `wdd` of a live `Registration<T>` (its drvdata).
unsafe fn registration<'a, T: Operations>(
    wdd: *mut bindings::watchdog_device,
) -> (&'a Registration<T>, &'a Device) {
    // SAFETY: drvdata was set to the pinned registration in `new`; it lives
    // until after `watchdog_unregister_device` returns in `drop`.
    unsafe {
        let reg = &*(*wdd).driver_data.cast::<Registration<T>>();
        (reg, &*wdd.cast::<Device>())
    }
}

/// # Safety
///
/// Called by the watchdog core with the `watchdog_device` of a live `Registration<T>`.
unsafe extern "C" fn start_callback<T: Operations>(wdd: *mut bindings::watchdog_device) -> c_int {
    // SAFETY: the core calls ops only on registered devices.
    let (reg, dev) = unsafe { registration::<T>(wdd) };
    from_result(|| reg.data.start(dev).map(|()| 0))
}

/// # Safety
///
/// Called by the watchdog core with the `watchdog_device` of a live `Registration<T>`.
unsafe extern "C" fn stop_callback<T: Operations>(wdd: *mut bindings::watchdog_device) -> c_int {
    // SAFETY: as in `start_callback`.
    let (reg, dev) = unsafe { registration::<T>(wdd) };
    from_result(|| reg.data.stop(dev).map(|()| 0))
}

/// # Safety
///
/// Called by the watchdog core with the `watchdog_device` of a live `Registration<T>`.
unsafe extern "C" fn ping_callback<T: Operations>(wdd: *mut bindings::watchdog_device) -> c_int {
    // SAFETY: as in `start_callback`.
    let (reg, dev) = unsafe { registration::<T>(wdd) };
    from_result(|| reg.data.ping(dev).map(|()| 0))
}

/// # Safety
///
/// Called by the watchdog core with the `watchdog_device` of a live `Registration<T>`.
unsafe extern "C" fn set_timeout_callback<T: Operations>(
    wdd: *mut bindings::watchdog_device,
    timeout: c_uint,
) -> c_int {
    // SAFETY: as in `start_callback`.
    let (reg, dev) = unsafe { registration::<T>(wdd) };
    from_result(|| reg.data.set_timeout(dev, timeout).map(|()| 0))
}

impl<T: Operations> Registration<T> {
    /// Registers a watchdog device under `parent`, described by `info`,
    /// whose operations run on `data`. The device stops on reboot and on
    /// unregister, as the core's helpers for that would set.
    pub(crate) fn new(
        parent: &device::Device,
        info: &Info,
        data: Arc<T>,
        module: &'static ThisModule,
    ) -> Result<Pin<KBox<Self>>> {
        let mut c_info = bindings::watchdog_info {
            options: info.options,
            firmware_version: info.firmware_version,
            ..Default::default()
        };
        let id = info.identity.as_bytes();
        if id.len() >= c_info.identity.len() {
            return Err(EINVAL);
        }
        c_info.identity[..id.len()].copy_from_slice(id);
        let ops = bindings::watchdog_ops {
            owner: module.as_ptr(),
            start: Some(start_callback::<T>),
            stop: T::HAS_STOP.then_some(stop_callback::<T> as _),
            ping: T::HAS_PING.then_some(ping_callback::<T> as _),
            set_timeout: T::HAS_SET_TIMEOUT.then_some(set_timeout_callback::<T> as _),
            ..Default::default()
        };
        let (timeout, min, max) = (info.timeout, info.min_timeout, info.max_timeout);
        let parent = parent.as_raw();
        let this = KBox::pin_init(
            try_pin_init!(Self {
                // SAFETY: a zeroed `watchdog_device` is the C starting point
                // (drivers kzalloc it); the pointers are set right after
                // pinning, before registration.
                wdd <- unsafe {
                    kernel::init::pin_init_from_closure(
                        |slot: *mut Opaque<bindings::watchdog_device>| {
                            let wdd = Opaque::raw_get(slot);
                            core::ptr::write_bytes(wdd, 0, 1);
                            (*wdd).parent = parent;
                            (*wdd).timeout = timeout;
                            (*wdd).min_timeout = min;
                            (*wdd).max_timeout = max;
                            (*wdd).status = 1 << bindings::WDOG_STOP_ON_REBOOT
                                | 1 << bindings::WDOG_STOP_ON_UNREGISTER;
                            Ok::<(), Error>(())
                        },
                    )
                },
                info: Opaque::new(c_info),
                ops,
                data,
            }? Error),
            GFP_KERNEL,
        )?;
        let wdd = this.wdd.get();
        // SAFETY: the registration is pinned: `info`, `ops` and the
        // drvdata pointer stay valid until `drop` unregisters.
        unsafe {
            (*wdd).info = this.info.get();
            (*wdd).ops = &this.ops;
            (*wdd).driver_data = (&*this as *const Self).cast_mut().cast();
            to_result(bindings::watchdog_register_device(wdd))?;
        }
        Ok(this)
    }
}

#[pinned_drop]
impl<T: Operations> PinnedDrop for Registration<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: registered in `new`; after this returns the core makes no
        // more calls and holds no pointer into the registration.
        unsafe { bindings::watchdog_unregister_device(self.wdd.get()) };
    }
}
