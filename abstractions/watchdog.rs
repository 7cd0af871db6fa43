// SPDX-License-Identifier: GPL-2.0

//! Watchdog core: device description, operations and registration.
//!
//! A [`Registration`] owns its `struct watchdog_device` and `watchdog_info`
//! in one pinned heap allocation, so the description is per device, and
//! the core's pointers into it stay valid until drop, which unregisters
//! first; a registration that failed never unregisters. The operations
//! table is static, one per driver type ([`declare_ops!`]).
//! Operations receive shared references only. The core calls `stop` from
//! its reboot notifier, concurrently with anything, so only the operations
//! it never runs concurrently with each other get a
//! [`Device<Serialized>`], which may change the device.

use super::bindings;
use super::device;
use core::marker::PhantomData;
use core::pin::Pin;
use kernel::alloc::{flags::GFP_KERNEL, KBox};
use kernel::error::{from_result, to_result};
use kernel::ffi::{c_int, c_uint};
use kernel::prelude::*;
use kernel::sync::Arc;
use kernel::types::Opaque;

/// Capability bits for [`Info::options`].
pub(crate) mod options {
    use super::bindings;
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
    /// Stop a running watchdog when the system reboots or powers off
    /// (C `watchdog_stop_on_reboot`).
    pub(crate) stop_on_reboot: bool,
    /// Stop a running watchdog when it is unregistered, instead of leaving
    /// it to expire (C `watchdog_stop_on_unregister`).
    pub(crate) stop_on_unregister: bool,
}

/// The context of `start`, `ping` and `set_timeout`: the core never runs
/// two of them at once for a device. It calls them under its lock
/// (`wd_data->lock`), except `start` (and a `ping` from it) in `open`,
/// which only the device's one opener gets to, before any other operation
/// of that opener. (Registrations made here set neither `WDOG_HW_RUNNING`
/// nor `max_hw_heartbeat_ms`, so the core never pings on its own.)
pub(crate) struct Serialized;

/// The context of `stop`, which the core also calls from its reboot
/// notifier, concurrently with any operation.
pub(crate) struct Unlocked;

/// A registered watchdog device, as the core hands it to operations, in
/// context `Ctx` ([`Serialized`] or [`Unlocked`]).
///
/// # Invariants
///
/// Wraps the `watchdog_device` of a live [`Registration`]; with
/// `Ctx = Serialized`, only during an operation of that context.
#[repr(transparent)]
pub(crate) struct Device<Ctx = Unlocked>(Opaque<bindings::watchdog_device>, PhantomData<Ctx>);

impl Device<Serialized> {
    /// Sets the timeout the core reports (`wdd->timeout`), as C drivers do
    /// in `start` and `set_timeout`.
    pub(crate) fn set_timeout(&self, timeout: u32) {
        // Volatile, as C's `WRITE_ONCE`: sysfs' `timeout_show` reads the
        // field without the core's lock.
        // The core writes `timeout` itself only before registration or for
        // drivers without a `set_timeout` operation.
        // SAFETY: the device is valid (type invariant), and no other writer
        // runs: the operations of this context are serialized (see above).
        unsafe { core::ptr::addr_of_mut!((*self.0.get()).timeout).write_volatile(timeout) };
    }
}

/// Watchdog operations of a driver, dispatched to its shared data.
#[vtable]
pub(crate) trait Operations: Send + Sync + Sized + 'static {
    /// Starts the watchdog.
    fn start(&self, wdd: &Device<Serialized>) -> Result;
    /// Stops the watchdog; also called without the core's lock (reboot).
    fn stop(&self, _wdd: &Device) -> Result {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }
    /// Pings the watchdog.
    fn ping(&self, _wdd: &Device<Serialized>) -> Result {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }
    /// Sets the timeout (already range-checked by the core).
    fn set_timeout(&self, _wdd: &Device<Serialized>, _timeout: u32) -> Result {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }
}

/// The `watchdog_ops` of driver `T`: one static table for all its
/// devices, as C drivers have, made by [`declare_ops!`].
pub(crate) struct OpsTable<T: Operations>(bindings::watchdog_ops, PhantomData<T>);

// SAFETY: immutable; only read by the watchdog core.
unsafe impl<T: Operations> Sync for OpsTable<T> {}

impl<T: Operations> OpsTable<T> {
    /// The table of `T`'s operations, for module `owner`.
    ///
    /// # Safety
    ///
    /// `owner` must be the `struct module` of the module that holds `T`'s
    /// code: the core takes a reference on it while a device is open.
    pub(crate) const unsafe fn new(owner: *mut bindings::module) -> Self {
        // SAFETY: all-zero is "no operation" for every callback.
        let mut ops: bindings::watchdog_ops = unsafe { core::mem::zeroed() };
        ops.owner = owner;
        ops.start = Some(start_callback::<T>);
        if T::HAS_STOP {
            ops.stop = Some(stop_callback::<T>);
        }
        if T::HAS_PING {
            ops.ping = Some(ping_callback::<T>);
        }
        if T::HAS_SET_TIMEOUT {
            ops.set_timeout = Some(set_timeout_callback::<T>);
        }
        OpsTable(ops, PhantomData)
    }
}

/// Gives a driver type its static [`OpsTable`]: `declare_ops!(MyWdt);`.
pub(crate) trait HasOps: Operations {
    fn ops() -> &'static OpsTable<Self>;
}

/// Implements [`HasOps`] for `$t` with a table in this module's memory.
macro_rules! declare_ops {
    ($t:ty) => {
        impl $crate::abstractions::watchdog::HasOps for $t {
            fn ops() -> &'static $crate::abstractions::watchdog::OpsTable<Self> {
                static OPS: $crate::abstractions::watchdog::OpsTable<$t> =
                    // SAFETY: this module's own `struct module` (only its
                    // address is taken), which holds the operations.
                    unsafe {
                        $crate::abstractions::watchdog::OpsTable::new(core::ptr::addr_of_mut!(
                            $crate::abstractions::bindings::__this_module
                        ))
                    };
                &OPS
            }
        }
    };
}

pub(crate) use declare_ops;

/// The memory of a watchdog device: what the core points into while it is
/// registered.
#[pin_data]
struct Inner<T: Operations> {
    #[pin]
    wdd: Opaque<bindings::watchdog_device>,
    info: Opaque<bindings::watchdog_info>,
    /// The driver's data the operations run on; kept alive while registered.
    data: Arc<T>,
}

// SAFETY: the C structures are shared with the watchdog core, which
// serializes access; `data` is `Send + Sync`.
unsafe impl<T: Operations> Send for Inner<T> {}
// SAFETY: as above.
unsafe impl<T: Operations> Sync for Inner<T> {}

/// A registered watchdog device; unregistered on drop, before its memory
/// goes away.
///
/// # Invariants
///
/// `inner.wdd` is registered with the watchdog core.
pub(crate) struct Registration<T: Operations> {
    inner: Pin<KBox<Inner<T>>>,
}

/// Recovers the registration's memory from the core's `watchdog_device`.
///
/// # Safety
///
/// `wdd` must be the `wdd` of an `Inner<T>` (its drvdata) registered or
/// being registered (an open can start the device before
/// `watchdog_register_device` returns), and with `Ctx = Serialized` the
/// call must be one of that context's.
unsafe fn registration<'a, T: Operations, Ctx>(
    wdd: *mut bindings::watchdog_device,
) -> (&'a Inner<T>, &'a Device<Ctx>) {
    // SAFETY: `new` set drvdata to the pinned, initialised memory before
    // registering; it lives until after `watchdog_unregister_device`
    // returns in `drop`; the context is the caller's promise.
    unsafe {
        let reg = &*(*wdd).driver_data.cast::<Inner<T>>();
        (reg, &*wdd.cast::<Device<Ctx>>())
    }
}

/// # Safety
///
/// Called by the watchdog core with the `watchdog_device` of a `Registration<T>`
/// registered or being registered.
unsafe extern "C" fn start_callback<T: Operations>(wdd: *mut bindings::watchdog_device) -> c_int {
    // SAFETY: the core calls ops only on devices registered or being
    // registered, and `start` in the serialized context (see `Serialized`).
    let (reg, dev) = unsafe { registration::<T, Serialized>(wdd) };
    from_result(|| reg.data.start(dev).map(|()| 0))
}

/// # Safety
///
/// Called by the watchdog core with the `watchdog_device` of a `Registration<T>`
/// registered or being registered.
unsafe extern "C" fn stop_callback<T: Operations>(wdd: *mut bindings::watchdog_device) -> c_int {
    // SAFETY: the core calls ops only on devices registered or being
    // registered; no lock is claimed.
    let (reg, dev) = unsafe { registration::<T, Unlocked>(wdd) };
    from_result(|| reg.data.stop(dev).map(|()| 0))
}

/// # Safety
///
/// Called by the watchdog core with the `watchdog_device` of a `Registration<T>`
/// registered or being registered.
unsafe extern "C" fn ping_callback<T: Operations>(wdd: *mut bindings::watchdog_device) -> c_int {
    // SAFETY: as in `start_callback`: `ping` too is serialized.
    let (reg, dev) = unsafe { registration::<T, Serialized>(wdd) };
    from_result(|| reg.data.ping(dev).map(|()| 0))
}

/// # Safety
///
/// Called by the watchdog core with the `watchdog_device` of a `Registration<T>`
/// registered or being registered.
unsafe extern "C" fn set_timeout_callback<T: Operations>(
    wdd: *mut bindings::watchdog_device,
    timeout: c_uint,
) -> c_int {
    // SAFETY: as in `start_callback`: `set_timeout` too is serialized.
    let (reg, dev) = unsafe { registration::<T, Serialized>(wdd) };
    from_result(|| reg.data.set_timeout(dev, timeout).map(|()| 0))
}

impl<T: HasOps> Registration<T> {
    /// Registers a watchdog device under `parent`, described by `info`,
    /// whose operations run on `data`.
    pub(crate) fn new(parent: &device::Device, info: &Info, data: Arc<T>) -> Result<Self> {
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
        let (timeout, min, max) = (info.timeout, info.min_timeout, info.max_timeout);
        let status = kernel::ffi::c_ulong::from(info.stop_on_reboot)
            << bindings::WDOG_STOP_ON_REBOOT
            | kernel::ffi::c_ulong::from(info.stop_on_unregister)
                << bindings::WDOG_STOP_ON_UNREGISTER;
        let parent = device::as_raw(parent);
        let inner = KBox::pin_init(
            try_pin_init!(Inner {
                // SAFETY: a zeroed `watchdog_device` is the C starting point
                // (drivers kzalloc it); the pointers are set right after
                // pinning, before registration.
                wdd <- unsafe {
                    super::pin_init_from_closure(
                        |slot: *mut Opaque<bindings::watchdog_device>| {
                            // `Opaque` is a transparent wrapper of the C structure.
                            let wdd = slot.cast::<bindings::watchdog_device>();
                            core::ptr::write_bytes(wdd, 0, 1);
                            (*wdd).parent = parent;
                            (*wdd).timeout = timeout;
                            (*wdd).min_timeout = min;
                            (*wdd).max_timeout = max;
                            (*wdd).status = status;
                            Ok::<(), Error>(())
                        },
                    )
                },
                info: Opaque::new(c_info),
                data,
            }? Error),
            GFP_KERNEL,
        )?;
        let wdd = inner.wdd.get();
        // A failed registration makes no `Registration`: nothing
        // unregisters it, and the memory goes with `inner`.
        // SAFETY: the memory is pinned: `info` and the drvdata pointer stay
        // valid until `drop` unregisters; the operations are static.
        unsafe {
            (*wdd).info = inner.info.get();
            (*wdd).ops = &T::ops().0;
            (*wdd).driver_data = core::ptr::from_ref::<Inner<T>>(&inner).cast_mut().cast();
            to_result(bindings::watchdog_register_device(wdd))?;
        }
        // INVARIANT: registered just above.
        Ok(Registration { inner })
    }
}

impl<T: Operations> Drop for Registration<T> {
    fn drop(&mut self) {
        // After this returns the core makes no more calls and holds no
        // pointer into the memory, which is freed next; but for an `open`
        // racing the unregistration, which reads `wd_data->wdd` without
        // the core's lock: a race of the core's that every driver shares.
        // SAFETY: registered (type invariant).
        unsafe { bindings::watchdog_unregister_device(self.inner.wdd.get()) };
    }
}
