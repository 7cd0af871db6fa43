// SPDX-License-Identifier: GPL-2.0

//! MEI client bus: driver registration, client devices and their callbacks.
//!
//! A [`Driver`]'s per-device data is pin-initialised at probe, stored as the
//! client device's drvdata, handed (pinned, shared) to every callback, and
//! dropped after `remove` (or a failed `start`) once the abstraction has
//! disabled the device: `mei_cldev_disable()` waits for the rx and
//! notification works, detaches the callbacks and disconnects, so no
//! callback can reach the data any more.

use crate::bindings;
use crate::device;
use core::marker::PhantomData;
use core::pin::Pin;
use core::ptr::addr_of_mut;
use core::ptr::NonNull;
use kernel::alloc::{flags::GFP_KERNEL, KBox};
use kernel::error::{from_result, to_result};
use kernel::ffi::{c_int, c_void};
use kernel::prelude::*;
use kernel::types::{ARef, AlwaysRefCounted, Opaque};

/// An MEI client device (`struct mei_cl_device`).
///
/// # Invariants
///
/// The wrapped client device is valid for the lifetime of the reference.
#[repr(transparent)]
pub(crate) struct Device(Opaque<bindings::mei_cl_device>);

// SAFETY: a client device is refcounted and its bus API is thread safe.
unsafe impl Send for Device {}
// SAFETY: as above.
unsafe impl Sync for Device {}

impl Device {
    /// Borrows a raw client device.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a valid `struct mei_cl_device` for `'a`.
    unsafe fn from_raw<'a>(ptr: *mut bindings::mei_cl_device) -> &'a Device {
        // SAFETY: `Device` is transparent; the caller guarantees validity.
        unsafe { &*ptr.cast::<Device>() }
    }

    /// A counted reference to this device.
    pub(crate) fn get(&self) -> ARef<Device> {
        ARef::from(self)
    }

    fn as_raw(&self) -> *mut bindings::mei_cl_device {
        self.0.get()
    }

    /// The embedded `struct device`, for logging and as a parent.
    pub(crate) fn dev(&self) -> &device::Device {
        // SAFETY: `dev` is embedded in the valid client device (type
        // invariant), so it lives as long as `self`.
        unsafe { device::Device::from_raw(addr_of_mut!((*self.as_raw()).dev)) }
    }

    /// The ME client's protocol version.
    pub(crate) fn version(&self) -> u8 {
        // SAFETY: the client device is valid (type invariant).
        unsafe { bindings::mei_cldev_ver(self.as_raw()) }
    }

    /// Connects to the ME client.
    pub(crate) fn enable(&self) -> Result {
        // SAFETY: the client device is valid (type invariant).
        to_result(unsafe { bindings::mei_cldev_enable(self.as_raw()) })
    }

    /// Disconnects from the ME client, after waiting for the rx and
    /// notification works and detaching their callbacks. Done by the
    /// abstraction after `remove` and after a failed `start`.
    fn disable(&self) {
        let cldev = self.as_raw();
        // An error (the disconnect failed) is logged by the bus; the
        // callbacks are detached regardless.
        // SAFETY: the client device is valid (type invariant).
        let _ = unsafe { bindings::mei_cldev_disable(cldev) };
        // The bus cancels a callback's work before it detaches the
        // callback, so an event in between queues the work again. Events
        // run under `device_lock`, which `mei_cldev_disable` takes after
        // detaching: once it returns, one more cancel catches them all.
        // SAFETY: the device is valid; a work is cancelled only if
        // `INIT_WORK` (on registration) set its function: the bus
        // allocates client devices zeroed.
        unsafe {
            for work in [
                addr_of_mut!((*cldev).rx_work),
                addr_of_mut!((*cldev).notif_work),
            ] {
                if (*work).func.is_some() {
                    bindings::cancel_work_sync(work);
                }
            }
        }
    }

    /// Sends `buf` to the ME client. Waits, interruptibly and without a
    /// bound, while the client's transmit queue is full, then at most
    /// `timeout_ms` for the write to complete (0 fails at once with `ETIME`
    /// unless it completes immediately); a signal ends either wait with
    /// `EINTR`. Returns the bytes sent.
    pub(crate) fn send(&self, buf: &[u8], timeout_ms: u32) -> Result<usize> {
        // SAFETY: the client device is valid (type invariant); `buf` is
        // readable for its length.
        let ret = unsafe {
            bindings::mei_cldev_send_timeout(
                self.as_raw(),
                buf.as_ptr(),
                buf.len(),
                timeout_ms as _,
            )
        };
        if ret < 0 {
            Err(Error::from_errno(ret as c_int))
        } else {
            Ok(ret as usize)
        }
    }

    /// Receives a message into `buf`, waiting (interruptibly) for one if
    /// none is pending, as from the rx callback there always is; returns
    /// its length, at most `buf.len()` (the bus truncates longer messages).
    pub(crate) fn recv(&self, buf: &mut [u8]) -> Result<usize> {
        // SAFETY: the client device is valid (type invariant); `buf` is
        // writable for its length.
        let ret = unsafe { bindings::mei_cldev_recv(self.as_raw(), buf.as_mut_ptr(), buf.len()) };
        if ret < 0 {
            Err(Error::from_errno(ret as c_int))
        } else {
            Ok(ret as usize)
        }
    }
}

/// The callbacks of driver `T` for a device being started: given to
/// [`Driver::start`] only, so the callbacks are always those of the driver
/// whose data the device holds.
///
/// # Invariants
///
/// `dev` is bound to driver `T`, its drvdata is `T`'s (set by
/// `probe_callback`) until the abstraction disables the device.
pub(crate) struct Callbacks<'a, T: Driver> {
    dev: &'a Device,
    _p: PhantomData<T>,
}

impl<T: Driver> Callbacks<'_, T> {
    /// Routes received messages to [`Driver::rx`].
    pub(crate) fn register_rx(&self) -> Result {
        // SAFETY: the client device is valid; the trampoline reaches the
        // drvdata of `T` (type invariant) until the device is disabled,
        // which detaches the callback.
        to_result(unsafe {
            bindings::mei_cldev_register_rx_cb(self.dev.as_raw(), Some(rx_callback::<T>))
        })
    }

    /// Routes ME notification events to [`Driver::notify`]. Fails with
    /// `EOPNOTSUPP` when the ME does not support notifications.
    pub(crate) fn register_notify(&self) -> Result {
        // SAFETY: as in `register_rx`.
        to_result(unsafe {
            bindings::mei_cldev_register_notif_cb(self.dev.as_raw(), Some(notify_callback::<T>))
        })
    }
}

// SAFETY: the client device's refcount is that of its `struct device`, and
// `get_device`/`put_device` keep it alive.
unsafe impl AlwaysRefCounted for Device {
    fn inc_ref(&self) {
        // SAFETY: the device is valid (type invariant).
        unsafe { bindings::get_device(self.dev().as_raw()) };
    }

    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: the caller owns a reference taken by `inc_ref`.
        unsafe { bindings::put_device(obj.as_ref().dev().as_raw()) };
    }
}

/// A client id as the bus reads it: the ME client GUID (in `uuid_le` byte
/// order) and protocol version, or [`DeviceId::VERSION_ANY`].
#[repr(transparent)]
pub(crate) struct DeviceId(bindings::mei_cl_device_id);

impl DeviceId {
    pub(crate) const VERSION_ANY: u8 = bindings::MEI_CL_VERSION_ANY as u8;

    /// The all-zero entry that ends an id table (no client has the nil
    /// GUID).
    // SAFETY: the C structure is bytes and integers; all-zero is valid.
    const END: Self = DeviceId(unsafe { core::mem::zeroed() });

    /// The client `uuid` (bus byte order) at protocol `version`.
    pub(crate) const fn new(uuid: [u8; 16], version: u8) -> Self {
        let mut id = Self::END;
        id.0.uuid.b = uuid;
        id.0.version = version;
        id
    }

    const fn is_end(&self) -> bool {
        let mut i = 0;
        while i < self.0.uuid.b.len() {
            if self.0.uuid.b[i] != 0 {
                return false;
            }
            i += 1;
        }
        true
    }
}

/// A driver's id table: static, and ended by the zero entry the bus
/// stops at.
///
/// # Invariants
///
/// `ids` holds at least one entry and only its last is [`DeviceId::END`].
pub(crate) struct IdTable {
    ids: &'static [DeviceId],
}

impl IdTable {
    /// A table of `ids`, the end entry added: a constant, so that the
    /// bus reads it where the compiler put it.
    pub(crate) const fn new<const N: usize>(ids: &'static IdArray<N>) -> Self {
        let mut i = 0;
        while i < N {
            assert!(!ids.ids[i].is_end(), "an id table entry has the nil GUID");
            i += 1;
        }
        let all: *const DeviceId = (ids as *const IdArray<N>).cast();
        // INVARIANT: `IdArray` is `repr(C)`: its `N` entries then `END`,
        // contiguous (no padding between entries of one type), none of the
        // entries being `END` (checked above).
        IdTable {
            // `ids` is at offset 0 of the `repr(C)` struct, whose alignment
            // is `DeviceId`'s, and `end` follows it with no padding.
            // SAFETY: so `N + 1` consecutive `DeviceId`s live in `'static` `*ids`.
            ids: unsafe { core::slice::from_raw_parts(all, N + 1) },
        }
    }

    fn as_ptr(&self) -> *const bindings::mei_cl_device_id {
        self.ids.as_ptr().cast()
    }
}

/// `N` client ids and the entry that ends them, laid out as the bus
/// reads a table; see [`IdTable::new`].
#[repr(C)]
pub(crate) struct IdArray<const N: usize> {
    ids: [DeviceId; N],
    end: DeviceId,
}

impl<const N: usize> IdArray<N> {
    pub(crate) const fn new(ids: [DeviceId; N]) -> Self {
        IdArray {
            ids,
            end: DeviceId::END,
        }
    }
}

/// An MEI client driver.
pub(crate) trait Driver: Send + Sync + Sized + 'static {
    /// The driver name.
    const NAME: &'static CStr;
    /// The clients this driver binds to.
    const ID_TABLE: IdTable;

    /// Creates the per-device data; nothing may reach it yet.
    fn probe(dev: &Device) -> impl PinInit<Self, Error>;

    /// Starts the device once its data is reachable from the callbacks
    /// (enable, register `callbacks`, first messages). On error the
    /// abstraction disables the device and drops the data.
    fn start(self: Pin<&Self>, dev: &Device, callbacks: Callbacks<'_, Self>) -> Result;

    /// Stops the device; the abstraction then disables it and drops the
    /// data.
    fn remove(self: Pin<&Self>, dev: &Device);

    /// A message from the ME client is waiting ([`Device::recv`]).
    fn rx(self: Pin<&Self>, dev: &Device);

    /// The ME sent a notification event.
    fn notify(self: Pin<&Self>, dev: &Device);
}

/// The driver data of `cldev`, if set.
///
/// # Safety
///
/// `cldev` must be valid and bound to driver `T`, whose drvdata is either
/// null or a `KBox<T>` leaked by `probe_callback`.
unsafe fn drvdata<'a, T: Driver>(cldev: *mut bindings::mei_cl_device) -> Option<Pin<&'a T>> {
    // SAFETY: per the contract, drvdata is null or a pinned `T`, which
    // stays alive until `remove_callback` (after the callbacks stopped).
    unsafe {
        let data = bindings::mei_cldev_get_drvdata(cldev).cast::<T>();
        (!data.is_null()).then(|| Pin::new_unchecked(&*data))
    }
}

/// # Safety
///
/// Called by the MEI bus with a valid client device bound to driver `T` (drvdata null or set by `probe_callback`).
unsafe extern "C" fn probe_callback<T: Driver>(
    cldev: *mut bindings::mei_cl_device,
    _id: *const bindings::mei_cl_device_id,
) -> c_int {
    from_result(|| {
        // SAFETY: the bus passes a valid device for the whole probe.
        let dev = unsafe { Device::from_raw(cldev) };
        let data = KBox::pin_init(T::probe(dev), GFP_KERNEL)?;
        // SAFETY: the box is leaked and only rebuilt (and dropped) below or
        // in `remove_callback`; it is never moved out of.
        let raw = KBox::into_raw(unsafe { Pin::into_inner_unchecked(data) });
        // SAFETY: `cldev` is valid; drvdata now holds the pinned data.
        unsafe { bindings::mei_cldev_set_drvdata(cldev, raw.cast::<c_void>()) };
        // INVARIANT: bound to `T`, drvdata set just above.
        let callbacks = Callbacks {
            dev,
            _p: PhantomData,
        };
        // SAFETY: `raw` is valid and pinned until dropped below.
        let res = T::start(unsafe { Pin::new_unchecked(&*raw) }, dev, callbacks);
        if res.is_err() {
            dev.disable();
            // SAFETY: the device is disabled: no callback can reach the
            // data any more; rebuild the box leaked above and drop it.
            unsafe {
                bindings::mei_cldev_set_drvdata(cldev, core::ptr::null_mut());
                drop(KBox::from_raw(raw));
            }
        }
        res.map(|()| 0)
    })
}

/// # Safety
///
/// Called by the MEI bus with a valid client device bound to driver `T` (drvdata null or set by `probe_callback`).
unsafe extern "C" fn remove_callback<T: Driver>(cldev: *mut bindings::mei_cl_device) {
    // SAFETY: the bus passes a valid device bound to `T`.
    let dev = unsafe { Device::from_raw(cldev) };
    // SAFETY: `cldev` is bound to `T`.
    let Some(data) = (unsafe { drvdata::<T>(cldev) }) else {
        return;
    };
    T::remove(data, dev);
    dev.disable();
    // SAFETY: the device is disabled: no callback can reach the data any
    // more; rebuild the box leaked in `probe_callback` and drop it.
    unsafe {
        bindings::mei_cldev_set_drvdata(cldev, core::ptr::null_mut());
        drop(KBox::from_raw((data.get_ref() as *const T).cast_mut()));
    }
}

/// # Safety
///
/// Called by the MEI bus with a valid client device bound to driver `T` (drvdata null or set by `probe_callback`).
unsafe extern "C" fn rx_callback<T: Driver>(cldev: *mut bindings::mei_cl_device) {
    // SAFETY: the bus runs the rx work only for a registered, valid device,
    // bound to `T` (the callback was registered by `T`).
    if let Some(data) = unsafe { drvdata::<T>(cldev) } {
        // SAFETY: as above.
        T::rx(data, unsafe { Device::from_raw(cldev) });
    }
}

/// # Safety
///
/// Called by the MEI bus with a valid client device bound to driver `T` (drvdata null or set by `probe_callback`).
unsafe extern "C" fn notify_callback<T: Driver>(cldev: *mut bindings::mei_cl_device) {
    // SAFETY: as in `rx_callback`.
    if let Some(data) = unsafe { drvdata::<T>(cldev) } {
        // SAFETY: as above.
        T::notify(data, unsafe { Device::from_raw(cldev) });
    }
}

/// The memory of a client driver: what the bus points into while it is
/// registered.
#[pin_data]
struct Inner<T: Driver> {
    #[pin]
    driver: Opaque<bindings::mei_cl_driver>,
    _p: PhantomData<T>,
}

// SAFETY: the C driver structure is only used by the driver core, which
// serializes access; its id table is static and immutable.
unsafe impl<T: Driver> Send for Inner<T> {}
// SAFETY: as above.
unsafe impl<T: Driver> Sync for Inner<T> {}

/// A registered MEI client driver; unregistered on drop.
///
/// # Invariants
///
/// `inner.driver` is registered with the bus.
pub(crate) struct Registration<T: Driver> {
    inner: Pin<KBox<Inner<T>>>,
}

impl<T: Driver> Registration<T> {
    /// Registers driver `T` for `module`.
    pub(crate) fn new(module: &'static ThisModule) -> Result<Self> {
        let inner = KBox::pin_init(
            try_pin_init!(Inner {
                // SAFETY: a zeroed driver plus name, ids and callbacks is
                // what `mei_cldev_driver_register` expects; it is filled
                // in place and registered below, once pinned.
                driver <- unsafe {
                    kernel::init::pin_init_from_closure(
                        |slot: *mut Opaque<bindings::mei_cl_driver>| {
                            let drv = Opaque::raw_get(slot);
                            core::ptr::write_bytes(drv, 0, 1);
                            (*drv).name = T::NAME.as_char_ptr();
                            (*drv).probe = Some(probe_callback::<T>);
                            (*drv).remove = Some(remove_callback::<T>);
                            (*drv).id_table = T::ID_TABLE.as_ptr();
                            Ok::<(), Error>(())
                        },
                    )
                },
                _p: PhantomData,
            }? Error),
            GFP_KERNEL,
        )?;
        let drv = inner.driver.get();
        // A failed registration makes no `Registration`: nothing
        // unregisters it.
        // SAFETY: the memory is pinned, so the driver stays put until
        // `drop` unregisters; its id table is static and ends with the
        // zero entry (`IdTable` invariant).
        unsafe {
            to_result(bindings::__mei_cldev_driver_register(drv, module.as_ptr()))?;
        }
        // INVARIANT: registered just above.
        Ok(Registration { inner })
    }
}

impl<T: Driver> Drop for Registration<T> {
    fn drop(&mut self) {
        // SAFETY: registered (type invariant); unregistering removes every
        // bound device.
        unsafe { bindings::mei_cldev_driver_unregister(self.inner.driver.get()) };
    }
}
