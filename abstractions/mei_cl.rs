// SPDX-License-Identifier: GPL-2.0

//! MEI client bus: drivers, their id tables, client devices and their
//! callbacks, in the shape of 7.3's bus abstractions (`auxiliary.rs`).
//!
//! [`Adapter`] registers a [`Driver`] through [`driver::Registration`]. A
//! driver's data is pin-initialised at probe and stored as the client
//! device's drvdata; then [`Driver::start`] connects and registers the rx
//! and notification callbacks, which reach only that driver's data. After
//! `unbind` (or a failed `start`) the adapter disables the device:
//! `mei_cldev_disable()` waits for the rx and notification works,
//! detaches the callbacks and disconnects, so nothing reaches the data any
//! more when it is dropped (by 7.3's driver core, or by the adapter on
//! 6.12). The id table is exported, and modpost writes the module alias
//! from it.

use super::aref::{ARef, AlwaysRefCounted};
use super::bindings;
use super::device;
use super::device_id::{RawDeviceId, RawDeviceIdIndex};
use super::driver;
use core::marker::PhantomData;
use core::pin::Pin;
use core::ptr::{addr_of_mut, NonNull};
use kernel::error::{from_result, to_result};
use kernel::ffi::{c_int, c_void};
use kernel::prelude::*;
use kernel::types::Opaque;

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

    /// Whether the client is connected: false before `enable`, and once a
    /// link reset, a disconnect request of the firmware or `disable` has
    /// taken the connection down. A snapshot, read without the bus lock, as
    /// iwlwifi's MEI driver does.
    pub(crate) fn enabled(&self) -> bool {
        // SAFETY: the client device is valid (type invariant).
        unsafe { bindings::mei_cldev_enabled(self.as_raw()) }
    }

    /// Disconnects from the ME client, after waiting for the rx and
    /// notification works and detaching their callbacks. Done by the
    /// adapter after `unbind` and after a failed `start`.
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
                timeout_ms as kernel::ffi::c_ulong,
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

impl AsRef<device::Device> for Device {
    /// The embedded `struct device`, for logging and as a parent.
    fn as_ref(&self) -> &device::Device {
        // SAFETY: `dev` is embedded in the valid client device (type
        // invariant), so it lives as long as `self`.
        unsafe { device::Device::from_raw(addr_of_mut!((*self.as_raw()).dev)) }
    }
}

// SAFETY: the client device's refcount is that of its `struct device`, and
// `get_device`/`put_device` keep it alive.
unsafe impl AlwaysRefCounted for Device {
    fn inc_ref(&self) {
        // SAFETY: the device is valid (type invariant).
        unsafe { bindings::get_device(addr_of_mut!((*self.as_raw()).dev)) };
    }

    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: the caller owns a reference taken by `inc_ref`.
        unsafe { bindings::put_device(addr_of_mut!((*obj.as_ref().as_raw()).dev)) };
    }
}

/// The callbacks of driver `T` for a device being started: given to
/// [`Driver::start`] only, so the callbacks are always those of the driver
/// whose data the device holds.
///
/// # Invariants
///
/// `dev` is bound to driver `T`, its drvdata is `T`'s (set by
/// `probe_callback`) until the adapter disables the device.
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
            bindings::mei_cldev_register_rx_cb(self.dev.as_raw(), Some(Adapter::<T>::rx_callback))
        })
    }

    /// Routes ME notification events to [`Driver::notify`]. Fails with
    /// `EOPNOTSUPP` when the ME does not support notifications.
    pub(crate) fn register_notify(&self) -> Result {
        // SAFETY: as in `register_rx`.
        to_result(unsafe {
            bindings::mei_cldev_register_notif_cb(
                self.dev.as_raw(),
                Some(Adapter::<T>::notify_callback),
            )
        })
    }
}

/// A client id as the bus matches it: the ME client GUID (in `uuid_le`
/// byte order) and protocol version, or [`DeviceId::VERSION_ANY`].
#[repr(transparent)]
#[derive(Clone, Copy)]
pub(crate) struct DeviceId(bindings::mei_cl_device_id);

impl DeviceId {
    /// Matches every protocol version.
    pub(crate) const VERSION_ANY: u8 = bindings::MEI_CL_VERSION_ANY as u8;

    /// The client `uuid` (bus byte order) at protocol `version`.
    pub(crate) const fn new(uuid: [u8; 16], version: u8) -> Self {
        // SAFETY: the C structure is bytes and integers; all-zero is valid.
        let mut id: bindings::mei_cl_device_id = unsafe { core::mem::zeroed() };
        id.uuid.b = uuid;
        id.version = version;
        DeviceId(id)
    }
}

// SAFETY: `DeviceId` is a transparent wrapper of `mei_cl_device_id`.
unsafe impl RawDeviceId for DeviceId {
    type RawType = bindings::mei_cl_device_id;
}

// SAFETY: `driver_info` is the C id's pointer-sized driver data field.
unsafe impl RawDeviceIdIndex for DeviceId {
    const DRIVER_DATA_OFFSET: usize =
        core::mem::offset_of!(bindings::mei_cl_device_id, driver_info);
}

/// A driver's id table, with per-id data `U`.
pub(crate) type IdTable<U> = &'static dyn super::device_id::IdTable<DeviceId, U>;

/// Declares a driver's id table `$name`, with per-id data of type `$info`,
/// from which modpost writes the module alias for each id:
/// `mei_cl_device_table!(TABLE, (), [(DeviceId::new(uuid, ver), ())]);`.
macro_rules! mei_cl_device_table {
    ($name:ident, $info:ty, [$(($id:expr, $data:expr $(,)?)),* $(,)?]) => {
        $crate::abstractions::device_id::module_device_table!(
            "mei",
            $crate::abstractions::mei_cl::DeviceId,
            $name,
            $info,
            [$(($id, $data)),*]
        );
    };
}

pub(crate) use mei_cl_device_table;

/// An MEI client driver; its value is the per-device data.
pub(crate) trait Driver: Send + Sync + Sized + 'static {
    /// Per-id data of the id table.
    type IdInfo: 'static;
    /// The clients this driver binds to ([`mei_cl_device_table!`]).
    const ID_TABLE: IdTable<Self::IdInfo>;

    /// Creates the per-device data; nothing may reach it yet.
    fn probe(dev: &Device, id_info: &Self::IdInfo) -> impl PinInit<Self, Error>;

    /// Starts the device once its data is reachable from the callbacks
    /// (enable, register `callbacks`, first messages). On error the
    /// adapter disables the device, and the data is dropped.
    fn start(self: Pin<&Self>, dev: &Device, callbacks: Callbacks<'_, Self>) -> Result;

    /// Stops the device; the adapter then disables it, and the data is
    /// dropped.
    fn unbind(self: Pin<&Self>, dev: &Device);

    /// A message from the ME client is waiting ([`Device::recv`]).
    fn rx(self: Pin<&Self>, dev: &Device);

    /// The ME sent a notification event.
    fn notify(self: Pin<&Self>, dev: &Device);
}

/// The bus side of driver `T`: its registration and callbacks.
pub(crate) struct Adapter<T: Driver>(PhantomData<T>);

// SAFETY: `mei_cl_driver` is the bus' `repr(C)` driver structure, with its
// `struct device_driver` at the offset given; the drvdata the adapter
// stores is a `Pin<KBox<T>>`.
unsafe impl<T: Driver> driver::DriverLayout for Adapter<T> {
    type DriverType = bindings::mei_cl_driver;
    type DriverData<'bound> = T;
    #[cfg(not(kernel_line = "6.12"))]
    const DEVICE_DRIVER_OFFSET: usize = core::mem::offset_of!(bindings::mei_cl_driver, driver);
}

// SAFETY: `unregister` undoes `register`'s registration.
unsafe impl<T: Driver> driver::RegistrationOps for Adapter<T> {
    unsafe fn register(
        reg: &Opaque<bindings::mei_cl_driver>,
        name: &'static CStr,
        module: &'static ThisModule,
    ) -> Result {
        let drv = reg.get();
        // SAFETY: the structure is being set up, not yet registered; the
        // caller keeps it pinned until `unregister`; the id table is
        // static and ends with a zeroed entry (`IdArray`).
        unsafe {
            (*drv).name = name.as_char_ptr();
            (*drv).probe = Some(Self::probe_callback);
            (*drv).remove = Some(Self::remove_callback);
            (*drv).id_table = T::ID_TABLE.as_ptr();
            to_result(bindings::__mei_cldev_driver_register(drv, module.as_ptr()))
        }
    }

    unsafe fn unregister(reg: &Opaque<bindings::mei_cl_driver>) {
        // SAFETY: registered (the caller's promise); unregistering
        // unbinds every device.
        unsafe { bindings::mei_cldev_driver_unregister(reg.get()) };
    }
}

impl<T: Driver> Adapter<T> {
    /// The driver data of `cldev`, if set.
    ///
    /// # Safety
    ///
    /// `cldev` must be valid and bound to driver `T`, whose drvdata is
    /// either null or a `Pin<KBox<T>>` leaked by `probe_callback` and not
    /// yet dropped.
    unsafe fn drvdata<'a>(cldev: *mut bindings::mei_cl_device) -> Option<Pin<&'a T>> {
        // SAFETY: per the contract, drvdata is null or a pinned `T`, which
        // stays alive until after `remove_callback` (after the callbacks
        // stopped).
        unsafe {
            let data = bindings::mei_cldev_get_drvdata(cldev).cast::<T>();
            (!data.is_null()).then(|| Pin::new_unchecked(&*data))
        }
    }

    /// Drops the driver data of a disabled device (6.12; 7.3's driver
    /// core does it after `remove` or a failed `probe`).
    ///
    /// # Safety
    ///
    /// As for [`Self::drvdata`], and the device is disabled: nothing
    /// reaches the data any more.
    #[cfg(kernel_line = "6.12")]
    unsafe fn drop_drvdata(cldev: *mut bindings::mei_cl_device) {
        // SAFETY: per the contract; the box was leaked in `probe_callback`.
        unsafe {
            let data = bindings::mei_cldev_get_drvdata(cldev).cast::<T>();
            bindings::mei_cldev_set_drvdata(cldev, core::ptr::null_mut());
            if !data.is_null() {
                drop(KBox::from_raw(data));
            }
        }
    }

    /// # Safety
    ///
    /// Called by the MEI bus with a valid client device being bound to
    /// driver `T`, and an entry of `T::ID_TABLE`.
    unsafe extern "C" fn probe_callback(
        cldev: *mut bindings::mei_cl_device,
        id: *const bindings::mei_cl_device_id,
    ) -> c_int {
        // SAFETY: the bus passes a valid device for the whole probe.
        let dev = unsafe { Device::from_raw(cldev) };
        // SAFETY: an entry of `T::ID_TABLE` (`DeviceId` is transparent),
        // an `IdArray<DeviceId, T::IdInfo, _>`.
        let info = unsafe { (*id.cast::<DeviceId>()).info_unchecked::<T::IdInfo>() };
        from_result(|| {
            let data = KBox::pin_init(T::probe(dev, info), GFP_KERNEL)?;
            // SAFETY: the box is leaked and only rebuilt to be dropped,
            // never moved out of.
            let raw = KBox::into_raw(unsafe { Pin::into_inner_unchecked(data) });
            // SAFETY: `cldev` is valid; drvdata now holds the pinned data,
            // as 7.3's driver core expects to find it (`into_foreign`).
            unsafe { bindings::mei_cldev_set_drvdata(cldev, raw.cast::<c_void>()) };
            // INVARIANT: bound to `T`, drvdata set just above.
            let callbacks = Callbacks {
                dev,
                _p: PhantomData,
            };
            // SAFETY: `raw` is valid and pinned until dropped.
            let res = T::start(unsafe { Pin::new_unchecked(&*raw) }, dev, callbacks);
            if res.is_err() {
                dev.disable();
                // SAFETY: drvdata is the box leaked above; the device is
                // disabled.
                #[cfg(kernel_line = "6.12")]
                unsafe {
                    Self::drop_drvdata(cldev)
                };
            }
            res.map(|()| 0)
        })
    }

    /// # Safety
    ///
    /// Called by the MEI bus with a valid client device bound to driver
    /// `T` by a successful `probe_callback`.
    unsafe extern "C" fn remove_callback(cldev: *mut bindings::mei_cl_device) {
        // SAFETY: the bus passes a valid device bound to `T`.
        let dev = unsafe { Device::from_raw(cldev) };
        // SAFETY: bound to `T`; the data is dropped only after this.
        let Some(data) = (unsafe { Self::drvdata(cldev) }) else {
            return;
        };
        T::unbind(data, dev);
        dev.disable();
        // SAFETY: the device is disabled; `data` is not used any more.
        #[cfg(kernel_line = "6.12")]
        unsafe {
            Self::drop_drvdata(cldev)
        };
    }

    /// # Safety
    ///
    /// Called by the MEI bus' rx work of a client device whose rx callback
    /// `T` registered ([`Callbacks`]).
    unsafe extern "C" fn rx_callback(cldev: *mut bindings::mei_cl_device) {
        // SAFETY: the bus runs the rx work only for a registered, valid
        // device, bound to `T` (which registered the callback) until it is
        // disabled.
        if let Some(data) = unsafe { Self::drvdata(cldev) } {
            // SAFETY: as above.
            T::rx(data, unsafe { Device::from_raw(cldev) });
        }
    }

    /// # Safety
    ///
    /// As for `rx_callback`, for the notification callback.
    unsafe extern "C" fn notify_callback(cldev: *mut bindings::mei_cl_device) {
        // SAFETY: as in `rx_callback`.
        if let Some(data) = unsafe { Self::drvdata(cldev) } {
            // SAFETY: as above.
            T::notify(data, unsafe { Device::from_raw(cldev) });
        }
    }
}

/// A registered MEI client driver `T`, unregistered on drop (which
/// unbinds every device).
pub(crate) struct Registration<T: Driver> {
    _reg: Pin<KBox<driver::Registration<Adapter<T>>>>,
}

impl<T: Driver> Registration<T> {
    /// Registers driver `T` as `name`, for `module`.
    pub(crate) fn new(name: &'static CStr, module: &'static ThisModule) -> Result<Self> {
        Ok(Registration {
            _reg: KBox::pin_init(driver::Registration::new(name, module), GFP_KERNEL)?,
        })
    }
}
