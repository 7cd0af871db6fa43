// SPDX-License-Identifier: GPL-2.0

//! Stubbed Intel ME device for testing MEI client drivers in a VM.
//!
//! Each stub device is a `struct mei_device` with its own `struct mei_hw_ops`
//! (modelled on `platform-vsc.c`) on a PCI device as parent: host writes go
//! to the firmware model in `fw.rs`, and a work item plays the interrupt
//! thread (as the reverted `hw-virtio.c` did), feeding the model's messages
//! to the MEI core's read, write and completion handlers.
//!
//! The parents are QEMU's `edu` PCI devices (`-device edu`), which the stub's
//! PCI driver binds: with `CONFIG_INTEL_MEI_ME`, as on every distribution
//! kernel, the MEI bus's watchdog fixup casts the parent to a `pci_dev`.
//!
//! Controls live in debugfs under `mei_stub/`: `add` and `remove` create and
//! destroy devices; each `me<N>/` has `config`, `ctl`, `trace`, `timer`,
//! `idle` and `parent`.
//!
//! When the system goes down, after every other reboot notifier (the
//! watchdog core stops running watchdogs in one), the stub prints each
//! device's trace to the kernel log, `me<N> reboot trace: <line>`, then
//! `reboot trace end`: debugfs is out of reach by then.

use core::fmt::Write;
use core::mem::{offset_of, MaybeUninit};
use core::pin::Pin;
use core::ptr::{addr_of_mut, null_mut};
use core::sync::atomic::{AtomicBool, Ordering};
use kernel::alloc::{flags::GFP_KERNEL, KBox, KVec};
use kernel::error::to_result;
use kernel::ffi::{c_int, c_ulong, c_void};
use kernel::prelude::*;
use kernel::str::{CStr, CString};
use kernel::sync::Mutex;
use kernel::types::Opaque;
use kernel::uaccess::UserSliceReader;
use kernel::{c_str, new_mutex, static_lock_class};

/// Debugfs, from the driver's abstractions (public: each uses a part).
#[path = "../../abstractions/debugfs/mod.rs"]
pub mod debugfs;
/// The firmware model; some of its API only serves the host tests.
#[path = "fw.rs"]
#[allow(dead_code, unreachable_pub)]
mod fw;

/// Build-time bindings of the MEI core's internal API.
#[allow(
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
mod bindings {
    pub(crate) use kernel::bindings::*;
    use kernel::ffi;
    // 7.3's bindgen parameters derive it for every structure.
    #[cfg(not(kernel_line = "6.12"))]
    use pin_init::MaybeZeroable;
    include!("mei_stub_bindings_generated.rs");
}

use bindings::{mei_device, mei_hw_ops};
use fw::Firmware;

/// A stub device's firmware model, its trace on the heap.
type StubFirmware = Firmware<KVec<Option<fw::Record>>>;

module! {
    type: MeiStubModule,
    name: "mei_stub",
    description: "Stubbed Intel ME device with an AMT watchdog client, for tests",
    license: "GPL",
}

/// What a debugfs file works on: the stub or the registry, each of which
/// removes its files (debugfs waits for running operations) before it goes.
///
/// # Invariants
///
/// Points to a live `T` that outlives the files given this `Ptr`.
struct Ptr<T>(*const T);

impl<T> Ptr<T> {
    /// # Safety
    ///
    /// `t` must outlive every file this `Ptr` is given to.
    unsafe fn new(t: &T) -> Self {
        // INVARIANT: the caller's promise.
        Ptr(core::ptr::from_ref(t))
    }
}

// SAFETY: only a `&T` is handed out, and `T: Sync`.
unsafe impl<T: Sync> Send for Ptr<T> {}
// SAFETY: as above.
unsafe impl<T: Sync> Sync for Ptr<T> {}

impl<T> core::ops::Deref for Ptr<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the `T` outlives the files (type invariant), which hold
        // this.
        unsafe { &*self.0 }
    }
}

/// Longest line a write may carry.
const MAX_LINE: usize = 256;

/// Reads what was written to a file, at most [`MAX_LINE`] bytes, as text
/// without ASCII whitespace at either end.
fn read_line<'a>(reader: &mut UserSliceReader, buf: &'a mut [u8; MAX_LINE]) -> Result<&'a str> {
    let len = reader.len();
    if len > MAX_LINE {
        return Err(EINVAL);
    }
    reader.read_slice(&mut buf[..len])?;
    core::str::from_utf8(trim_ascii(&buf[..len])).map_err(|_| EINVAL)
}

/// `b` without ASCII whitespace at either end (as `<[u8]>::trim_ascii`,
/// which is newer than 6.12's minimum Rust; a `str` trim would bring
/// Unicode's whitespace tables into the module).
fn trim_ascii(mut b: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = b {
        if !first.is_ascii_whitespace() {
            break;
        }
        b = rest;
    }
    while let [rest @ .., last] = b {
        if !last.is_ascii_whitespace() {
            break;
        }
        b = rest;
    }
    b
}

/// A file's show callback from `fn(&T, &mut dyn Write)`.
macro_rules! show {
    ($f:path) => {
        &|p: &Ptr<_>, f: &mut core::fmt::Formatter<'_>| $f(p, f)
    };
}

/// A file's write callback from `fn(&T, &str) -> Result`, given the line
/// written.
macro_rules! store {
    ($f:path) => {
        &|p: &Ptr<_>, r: &mut UserSliceReader| -> Result {
            let mut buf = [0u8; MAX_LINE];
            $f(p, read_line(r, &mut buf)?)
        }
    };
}

/// Host buffer depth in 4-byte slots.
const HBUF_DEPTH: u32 = 128;
/// QEMU's `edu` device, the stub devices' PCI parent.
const EDU_VENDOR: u32 = 0x1234;
const EDU_DEVICE: u32 = 0x11e8;

/// The PCI ids the stub's driver binds: the `edu` device, then the
/// all-zero end of the table.
static PARENT_IDS: [bindings::pci_device_id; 2] = {
    // SAFETY: `pci_device_id` holds only integers, for which zero is valid;
    // an all-zero entry ends the table.
    let mut ids: [bindings::pci_device_id; 2] = unsafe { core::mem::zeroed() };
    ids[0].vendor = EDU_VENDOR;
    ids[0].device = EDU_DEVICE;
    ids[0].subvendor = !0;
    ids[0].subdevice = !0;
    ids
};

/// The C key of a lockdep class.
#[cfg(kernel_line = "6.12")]
fn lock_class(key: &'static kernel::sync::LockClassKey) -> *mut bindings::lock_class_key {
    // `LockClassKey` is a transparent wrapper of the C key.
    (key as *const kernel::sync::LockClassKey).cast_mut().cast()
}

/// The C key of a lockdep class.
#[cfg(not(kernel_line = "6.12"))]
fn lock_class(key: Pin<&'static kernel::sync::LockClassKey>) -> *mut bindings::lock_class_key {
    key.as_ptr()
}

fn now_ms() -> u64 {
    // SAFETY: `ktime_get` has no preconditions.
    let ns = unsafe { bindings::ktime_get() };
    (ns / 1_000_000) as u64
}

/// Raw pointers owned by a stub device; only used from the stub's own code.
struct Raw<T>(*mut T);

// SAFETY: the pointees are kernel objects usable from any thread; the stub
// serializes their setup and teardown under the registry lock.
unsafe impl<T> Send for Raw<T> {}
// SAFETY: as above; shared access only passes the pointer to the C API.
unsafe impl<T> Sync for Raw<T> {}

/// One stubbed ME device.
#[pin_data(PinnedDrop)]
struct Stub {
    index: u32,
    #[pin]
    fw: Mutex<StubFirmware>,
    /// The interrupt thread: drains firmware messages into the MEI core and
    /// runs the firmware clock.
    #[pin]
    service: Opaque<bindings::delayed_work>,
    stopping: AtomicBool,
    /// The host wrote since the interrupt thread last took `device_lock`.
    host_wrote: AtomicBool,
    hw_ready: AtomicBool,
    host_ready: AtomicBool,
    mei: Raw<mei_device>,
    /// The PCI parent, claimed from the registry for the stub's lifetime.
    parent: Raw<bindings::pci_dev>,
    /// The device's debugfs directory and files, removed first on drop.
    dir: Option<Pin<KBox<debugfs::Scope<Ptr<Stub>>>>>,
}

// SAFETY: the work item is only touched through the workqueue API, which
// is thread safe; all other mutable state is behind `fw` or atomics.
unsafe impl Send for Stub {}
// SAFETY: as above.
unsafe impl Sync for Stub {}

impl Stub {
    /// Returns the stub that owns `dev`.
    ///
    /// # Safety
    ///
    /// `dev` must be a `mei_device` created by [`Stub::start`], whose `hw`
    /// area holds the stub's address, and the stub must outlive the
    /// returned reference (it does: it stops the device before it is freed).
    unsafe fn from_mei<'a>(dev: *const mei_device) -> &'a Stub {
        // SAFETY: per the function's contract the `hw` area holds a valid
        // `*const Stub`.
        unsafe {
            let hw = dev.cast::<u8>().add(offset_of!(mei_device, hw));
            &*hw.cast::<*const Stub>().read()
        }
    }

    /// A stub whose firmware keeps its trace in `trace` (heap: see
    /// [`Firmware`]).
    fn new(
        index: u32,
        parent: Raw<bindings::pci_dev>,
        config: fw::Config,
        trace: KVec<Option<fw::Record>>,
    ) -> impl PinInit<Self, Error> {
        try_pin_init!(Stub {
            index,
            fw <- new_mutex!(Firmware::new(config, trace)),
            // SAFETY: the work and timer are initialised in place before
            // anyone can queue them; `service_fn` is the work function.
            service <- unsafe {
                Opaque::ffi_init(|slot: *mut bindings::delayed_work| {
                    core::ptr::write_bytes(slot, 0, 1);
                    bindings::init_work_with_key(
                        addr_of_mut!((*slot).work),
                        Some(service_fn),
                        false,
                        c_str!("mei_stub_service").as_char_ptr(),
                        lock_class(static_lock_class!()),
                    );
                    #[cfg(kernel_line = "6.12")]
                    let timer_init_key = bindings::init_timer_key;
                    #[cfg(not(kernel_line = "6.12"))]
                    let timer_init_key = bindings::timer_init_key;
                    timer_init_key(
                        addr_of_mut!((*slot).timer),
                        Some(bindings::delayed_work_timer_fn),
                        bindings::TIMER_IRQSAFE,
                        c_str!("mei_stub_service_timer").as_char_ptr(),
                        lock_class(static_lock_class!()),
                    );
                })
            },
            stopping: AtomicBool::new(false),
            host_wrote: AtomicBool::new(false),
            hw_ready: AtomicBool::new(false),
            host_ready: AtomicBool::new(false),
            mei: Raw(null_mut()),
            parent,
            dir: None,
        })
    }

    /// Queues the interrupt thread to run in `delay_ms` (at most 60 s),
    /// replacing any queued run, sooner or later; nothing once stopping.
    /// Call with `self.fw` held (`_fw`) and the delay computed under that
    /// hold: a delay from older state could undo a host write's immediate
    /// run.
    fn kick(&self, _fw: &StubFirmware, delay_ms: u64) {
        if self.stopping.load(Ordering::Acquire) {
            return;
        }
        let delay = delay_ms.min(60_000) as u32;
        // SAFETY: `service` was initialised in `new` and is cancelled in
        // `stop` before the stub is freed; `system_wq` is always valid.
        unsafe {
            let jiffies = bindings::__msecs_to_jiffies(delay);
            bindings::mod_delayed_work_on(
                bindings::wq_misc_consts_WORK_CPU_UNBOUND as c_int,
                bindings::system_wq,
                self.service.get(),
                jiffies,
            );
        }
    }

    /// Re-queues the interrupt thread for the model's next deadline.
    fn schedule_next(&self) {
        let mut fw = self.fw.lock();
        let now = now_ms();
        // A host write since this run took `device_lock` needs a run for
        // its completion, whatever the model queued for it; not while the
        // link is down, when a run does nothing (the reset's first write
        // kicks one).
        let link_up = self.hw_ready.load(Ordering::Acquire);
        let next = if link_up && (self.host_wrote.load(Ordering::Acquire) || fw.rx_pending(now)) {
            Some(now)
        } else {
            fw.next_deadline()
        };
        if let Some(at) = next {
            self.kick(&fw, at.saturating_sub(now));
        }
    }

    /// What a firmware-initiated reset looks like to the core: the link
    /// goes down and the core's reset work restarts it. For `ctl` and the
    /// fuzz mode, while the device is registered (the `ctl` file exists,
    /// or the interrupt thread runs).
    fn link_reset(&self) {
        // SAFETY: the device is registered (see above). Under the lock the
        // interrupt thread reads messages with: a reset never tears the
        // one it is reading.
        unsafe {
            bindings::mutex_lock(addr_of_mut!((*self.mei.0).device_lock));
            self.hw_ready.store(false, Ordering::Release);
            self.fw.lock().link_reset();
            bindings::mutex_unlock(addr_of_mut!((*self.mei.0).device_lock));
        }
        // The interrupt that reports the loss runs the interrupt thread
        // before the reset work: with the link down, it must complete
        // nothing (`reset_during_send` fails otherwise).
        self.service();
        // SAFETY: the device is registered (see above).
        unsafe {
            bindings::queue_work_on(
                bindings::wq_misc_consts_WORK_CPU_UNBOUND as c_int,
                bindings::system_wq,
                addr_of_mut!((*self.mei.0).reset_work),
            );
        }
    }

    /// The interrupt thread body: modelled on `mei_vsc_event_cb`.
    fn service(&self) {
        let mei = self.mei.0;
        let now = now_ms();
        self.fw.lock().tick(now);
        // SAFETY: `mei` is valid until `stop` has cancelled this work; the
        // MEI core requires `device_lock` around its interrupt handlers and
        // `mei_reset`.
        unsafe {
            bindings::mutex_lock(addr_of_mut!((*mei).device_lock));
            // Writes so far are completed by this run (the write handler).
            self.host_wrote.store(false, Ordering::Release);
            let state = (*mei).dev_state;
            // A link that is down completes nothing, as `mei_me`'s
            // interrupt thread checks `hw_is_ready` first: between a link
            // reset and the reset work, a write held late must not
            // complete with success.
            let active = self.hw_ready.load(Ordering::Acquire)
                && state != bindings::mei_dev_state_MEI_DEV_RESETTING
                && state != bindings::mei_dev_state_MEI_DEV_INITIALIZING
                && state != bindings::mei_dev_state_MEI_DEV_POWER_DOWN
                && state != bindings::mei_dev_state_MEI_DEV_DISABLED;
            if active {
                let mut cmpl = MaybeUninit::<bindings::list_head>::uninit();
                let cmpl = cmpl.as_mut_ptr();
                (*cmpl).next = cmpl;
                (*cmpl).prev = cmpl;
                let mut ok = true;
                while self.fw.lock().rx_pending(now) {
                    let mut slots = self.fw.lock().rx_slots();
                    let ret = bindings::mei_irq_read_handler(mei, cmpl, &mut slots);
                    if ret != 0 {
                        if ret != -(bindings::ENODATA as c_int) {
                            pr_err!("me{}: read handler failed: {}\n", self.index, ret);
                            bindings::queue_work_on(
                                bindings::wq_misc_consts_WORK_CPU_UNBOUND as c_int,
                                bindings::system_wq,
                                addr_of_mut!((*mei).reset_work),
                            );
                        }
                        ok = false;
                        break;
                    }
                }
                // A late write: its completion (the write handler's first
                // step) waits; the firmware's answer does not.
                if ok && !self.fw.lock().writes_held(now) {
                    (*mei).hbuf_is_ready = true;
                    let ret = bindings::mei_irq_write_handler(mei, cmpl);
                    if ret != 0 {
                        pr_err!("me{}: write handler failed: {}\n", self.index, ret);
                    }
                    (*mei).hbuf_is_ready = true;
                }
                bindings::mei_irq_compl_handler(mei, cmpl);
                // `ctl reset_after_answer`: the link goes with the answer
                // just read, as if the core's reset work ran before the
                // client's rx work, which waits for this lock. On an
                // enabled link only, as the fuzz mode's resets.
                let due = ok
                    && (*mei).dev_state == bindings::mei_dev_state_MEI_DEV_ENABLED
                    && self.fw.lock().take_reset_now(now);
                if due
                    && bindings::mei_reset(mei) != 0
                    && (*mei).dev_state != bindings::mei_dev_state_MEI_DEV_DISABLED
                {
                    // Retried as the core's reset work retries.
                    bindings::queue_work_on(
                        bindings::wq_misc_consts_WORK_CPU_UNBOUND as c_int,
                        bindings::system_wq,
                        addr_of_mut!((*mei).reset_work),
                    );
                }
            }
            // A reset the fuzz mode asked for: on an enabled link only, so
            // never once `mei_stop` has begun.
            let enabled = (*mei).dev_state == bindings::mei_dev_state_MEI_DEV_ENABLED;
            let reset = self.fw.lock().take_reset_wanted() && enabled;
            bindings::mutex_unlock(addr_of_mut!((*mei).device_lock));
            if reset {
                self.link_reset();
            }
        }
        self.schedule_next();
    }

    /// Creates the `mei_device` on the stub's PCI parent and starts the MEI
    /// core on it.
    fn start(self: Pin<&mut Self>) -> Result {
        // SAFETY: we never move out of the pinned stub; only plain fields
        // are written.
        let this = unsafe { self.get_unchecked_mut() };
        let size = core::mem::size_of::<mei_device>() + core::mem::size_of::<*const Stub>();
        // SAFETY: plain allocation; freed in `stop`.
        let mei = unsafe {
            bindings::__kmalloc_noprof(size, bindings::GFP_KERNEL | bindings::__GFP_ZERO)
        }
        .cast::<mei_device>();
        if mei.is_null() {
            return Err(ENOMEM);
        }
        this.mei = Raw(mei);
        // The parent is a PCI device bound to the stub's driver, referenced
        // by the stub; its unbinding removes this device first
        // (`parent_remove`).
        // SAFETY: `mei` is a zeroed allocation with room for the `hw` area,
        // which holds this pinned stub's address for the hw ops; the parent
        // stays bound and alive while the device exists (above).
        unsafe {
            let hw = mei.cast::<u8>().add(offset_of!(mei_device, hw));
            hw.cast::<*const Stub>().write(core::ptr::from_ref(this));
            let parent = addr_of_mut!((*this.parent.0).dev);
            bindings::mei_device_init(mei, parent, false, &HW_OPS);
            // 7.3 made the kind an enum, whose zero is the plain ME.
            #[cfg(kernel_line = "6.12")]
            {
                (*mei).kind = c_str!("stub").as_char_ptr();
            }
            // 6.12 starts the core first; 7.3 registers first, and then
            // owns the device: its release frees it.
            #[cfg(kernel_line = "6.12")]
            {
                let ret = bindings::mei_start(mei);
                if ret != 0 {
                    pr_err!("me{}: mei_start failed: {}\n", this.index, ret);
                    this.teardown(false);
                    return Err(Error::from_errno(ret));
                }
                let ret = bindings::mei_register(mei, parent);
                if ret != 0 {
                    pr_err!("me{}: mei_register failed: {}\n", this.index, ret);
                    bindings::mei_stop(mei);
                    this.teardown(false);
                    return Err(Error::from_errno(ret));
                }
            }
            #[cfg(not(kernel_line = "6.12"))]
            {
                let ret = bindings::mei_register(mei, parent);
                if ret != 0 {
                    pr_err!("me{}: mei_register failed: {}\n", this.index, ret);
                    // Freed by the core with its device.
                    this.mei = Raw(null_mut());
                    this.teardown(false);
                    return Err(Error::from_errno(ret));
                }
                let ret = bindings::mei_start(mei);
                if ret != 0 {
                    pr_err!("me{}: mei_start failed: {}\n", this.index, ret);
                    this.teardown(false);
                    return Err(Error::from_errno(ret));
                }
            }
        }
        Ok(())
    }

    /// Stops the MEI core and frees the device. `live`: `start` succeeded
    /// (the core is started and registered). On 7.3 a device is always
    /// registered here, and its deregistration frees it.
    fn teardown(&mut self, live: bool) {
        let mei = self.mei.0;
        if !mei.is_null() {
            if live {
                // SAFETY: `mei` was started and registered in `start`.
                unsafe { bindings::mei_stop(mei) };
            }
            // Under the lock every kick is made under, so none follows.
            let fw = self.fw.lock();
            self.stopping.store(true, Ordering::Release);
            drop(fw);
            // SAFETY: the work was initialised in `new`; `stopping` keeps it
            // from re-queueing itself, and the MEI core is stopped.
            unsafe {
                bindings::cancel_delayed_work_sync(self.service.get());
                bindings::mei_cancel_work(mei);
                #[cfg(kernel_line = "6.12")]
                {
                    if live {
                        bindings::mei_deregister(mei);
                    }
                    bindings::kfree(mei.cast());
                }
                #[cfg(not(kernel_line = "6.12"))]
                bindings::mei_deregister(mei);
            }
            self.mei = Raw(null_mut());
        }
    }
}

#[pinned_drop]
impl PinnedDrop for Stub {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: teardown does not move the stub.
        let this = unsafe { self.get_unchecked_mut() };
        // Removing the directory waits for running file operations, so
        // none can reach the stub afterwards.
        drop(this.dir.take());
        let registered = !this.mei.0.is_null();
        this.teardown(registered);
    }
}

/// Returns the registry whose PCI driver `pdev` is bound to.
///
/// # Safety
///
/// `pdev` must be bound (or being bound) to the `pdrv` of a live [`Registry`].
unsafe fn registry_of<'a>(pdev: *mut bindings::pci_dev) -> &'a Registry {
    // The driver core sets the device's `driver` to the one being bound
    // before the probe and clears it after the remove: the `driver` member
    // of the registry's `pdrv`.
    // SAFETY: as above; stepping back by both members' offsets gives the
    // registry (`Opaque` is transparent).
    unsafe {
        &*(*pdev)
            .dev
            .driver
            .cast::<u8>()
            .sub(offset_of!(Registry, pdrv) + offset_of!(bindings::pci_driver, driver))
            .cast::<Registry>()
    }
}

/// Probe of the stub's PCI driver: an `edu` device becomes a parent that
/// [`Registry::add`] can give a stub device.
///
/// # Safety
///
/// Called by the PCI core with a device it binds to the registry's driver.
unsafe extern "C" fn parent_probe(
    pdev: *mut bindings::pci_dev,
    _id: *const bindings::pci_device_id,
) -> c_int {
    // SAFETY: `pdev` is a valid PCI device (the function's contract).
    let (vendor, device) = unsafe { ((*pdev).vendor, (*pdev).device) };
    // Anything else bound by hand (`new_id`, `driver_override`) is refused.
    if u32::from(vendor) != EDU_VENDOR || u32::from(device) != EDU_DEVICE {
        return ENODEV.to_errno();
    }
    // SAFETY: per the function's contract.
    let reg = unsafe { registry_of(pdev) };
    let parent = Parent {
        pdev: Raw(pdev),
        in_use: false,
    };
    let mut parents = reg.parents.lock();
    if let Some(slot) = parents.iter_mut().find(|p| p.pdev.0.is_null()) {
        *slot = parent;
        return 0;
    }
    match parents.push(parent, GFP_KERNEL) {
        Ok(()) => 0,
        Err(_) => ENOMEM.to_errno(),
    }
}

/// Remove of the stub's PCI driver, at its unregistration or when the
/// device goes (sysfs `remove`): the stub devices on it go first.
///
/// # Safety
///
/// Called by the PCI core with a device bound to the registry's driver.
unsafe extern "C" fn parent_remove(pdev: *mut bindings::pci_dev) {
    // SAFETY: per the function's contract.
    let reg = unsafe { registry_of(pdev) };
    reg.remove_on_parent(pdev);
    let mut parents = reg.parents.lock();
    if let Some(parent) = parents.iter_mut().find(|p| p.pdev.0 == pdev) {
        // The slot stays, empty (a vector of 6.12 cannot remove one), for
        // the next device bound.
        *parent = Parent {
            pdev: Raw(null_mut()),
            in_use: false,
        };
    }
}

/// Work function of [`Stub::service`].
///
/// # Safety
///
/// Called by the workqueue with the `work` member of a stub's `service`.
unsafe extern "C" fn service_fn(work: *mut bindings::work_struct) {
    // SAFETY: `work` is the first member of the `delayed_work` embedded in
    // a live `Stub` at offset `service` (`Opaque` is transparent).
    let stub = unsafe {
        &*work
            .cast::<u8>()
            .sub(offset_of!(Stub, service))
            .cast::<Stub>()
    };
    stub.service();
}

// The hw ops. Each is called by the MEI core with a `mei_device` created by
// `Stub::start`, which satisfies `Stub::from_mei`.

/// # Safety
///
/// Called by the MEI core with a `mei_device` created by `Stub::start`, whose `hw` area points to its live stub.
unsafe extern "C" fn host_is_ready(dev: *mut mei_device) -> bool {
    // SAFETY: see the hw ops note above.
    unsafe { Stub::from_mei(dev) }
        .host_ready
        .load(Ordering::Acquire)
}

/// # Safety
///
/// Called by the MEI core with a `mei_device` created by `Stub::start`, whose `hw` area points to its live stub.
unsafe extern "C" fn hw_is_ready(dev: *mut mei_device) -> bool {
    // SAFETY: see the hw ops note above.
    unsafe { Stub::from_mei(dev) }
        .hw_ready
        .load(Ordering::Acquire)
}

/// # Safety
///
/// Called by the MEI core with a `mei_device` created by `Stub::start`, whose `hw` area points to its live stub.
unsafe extern "C" fn hw_reset(dev: *mut mei_device, _intr_enable: bool) -> c_int {
    // SAFETY: see the hw ops note above.
    let stub = unsafe { Stub::from_mei(dev) };
    stub.hw_ready.store(false, Ordering::Release);
    stub.host_ready.store(false, Ordering::Release);
    stub.fw.lock().link_reset();
    0
}

/// # Safety
///
/// Called by the MEI core with a `mei_device` created by `Stub::start`, whose `hw` area points to its live stub.
unsafe extern "C" fn hw_start(dev: *mut mei_device) -> c_int {
    // SAFETY: see the hw ops note above.
    let stub = unsafe { Stub::from_mei(dev) };
    stub.host_ready.store(true, Ordering::Release);
    stub.hw_ready.store(true, Ordering::Release);
    0
}

/// # Safety
///
/// Called by the MEI core with a `mei_device` created by `Stub::start`, whose `hw` area points to its live stub.
unsafe extern "C" fn hw_config(_dev: *mut mei_device) -> c_int {
    0
}

/// # Safety
///
/// Called by the MEI core with a `mei_device` created by `Stub::start`, whose `hw` area points to its live stub.
unsafe extern "C" fn fw_status(_dev: *mut mei_device, sts: *mut bindings::mei_fw_status) -> c_int {
    if sts.is_null() {
        return -(bindings::EINVAL as c_int);
    }
    // SAFETY: the caller passes a valid `mei_fw_status`.
    unsafe { (*sts).count = 0 };
    0
}

/// # Safety
///
/// Called by the MEI core with a `mei_device` created by `Stub::start`, whose `hw` area points to its live stub.
unsafe extern "C" fn pg_state(_dev: *mut mei_device) -> bindings::mei_pg_state {
    bindings::mei_pg_state_MEI_PG_OFF
}

/// # Safety
///
/// Called by the MEI core with a `mei_device` created by `Stub::start`, whose `hw` area points to its live stub.
unsafe extern "C" fn no_bool(_dev: *mut mei_device) -> bool {
    false
}

/// # Safety
///
/// Called by the MEI core with a `mei_device` created by `Stub::start`, whose `hw` area points to its live stub.
unsafe extern "C" fn no_op(_dev: *mut mei_device) {}

/// # Safety
///
/// Called by the MEI core with a `mei_device` created by `Stub::start`, whose `hw` area points to its live stub.
unsafe extern "C" fn hbuf_free_slots(_dev: *mut mei_device) -> c_int {
    HBUF_DEPTH as c_int
}

/// # Safety
///
/// Called by the MEI core with a `mei_device` created by `Stub::start`, whose `hw` area points to its live stub.
unsafe extern "C" fn hbuf_is_ready(_dev: *mut mei_device) -> bool {
    true
}

/// # Safety
///
/// Called by the MEI core with a `mei_device` created by `Stub::start`, whose `hw` area points to its live stub.
unsafe extern "C" fn hbuf_depth(_dev: *const mei_device) -> u32 {
    HBUF_DEPTH
}

/// # Safety
///
/// Called by the MEI core with a `mei_device` created by `Stub::start`, whose `hw` area points to its live stub.
unsafe extern "C" fn write(
    dev: *mut mei_device,
    hdr: *const c_void,
    hdr_len: usize,
    data: *const c_void,
    data_len: usize,
) -> c_int {
    if hdr.is_null() || hdr_len < 4 || (data.is_null() && data_len > 0) {
        return -(bindings::EINVAL as c_int);
    }
    // SAFETY: see the hw ops note above; the core passes `hdr_len` bytes
    // of header and `data_len` bytes of data.
    let (stub, hdr, data) = unsafe {
        let data = if data_len > 0 {
            core::slice::from_raw_parts(data.cast::<u8>(), data_len)
        } else {
            &[]
        };
        (
            Stub::from_mei(dev),
            hdr.cast::<u32>().read_unaligned(),
            data,
        )
    };
    let mut fw = stub.fw.lock();
    let result = fw.host_write(hdr, data, now_ms());
    stub.host_wrote.store(true, Ordering::Release);
    // The firmware has drained the host buffer already. Mark it ready now,
    // not in the next service run: otherwise whether the MEI core sends a
    // message at once or queues it (and for a notification request that is
    // already enabled, drops it) depends on when the service work runs on
    // another CPU, and the traces with it.
    // SAFETY: the core calls this op under `device_lock`, which guards
    // `hbuf_is_ready`; `dev` is valid (see the hw ops note above).
    unsafe { (*dev).hbuf_is_ready = true };
    // Tell the core, as an interrupt would.
    stub.kick(&fw, 0);
    drop(fw);
    match result {
        fw::WriteResult::Error => -(bindings::EIO as c_int),
        fw::WriteResult::Done | fw::WriteResult::CompleteAt(_) => 0,
    }
}

/// # Safety
///
/// Called by the MEI core with a `mei_device` created by `Stub::start`, whose `hw` area points to its live stub.
unsafe extern "C" fn rdbuf_full_slots(dev: *mut mei_device) -> c_int {
    // SAFETY: see the hw ops note above.
    unsafe { Stub::from_mei(dev) }.fw.lock().rx_slots()
}

/// # Safety
///
/// Called by the MEI core with a `mei_device` created by `Stub::start`, whose `hw` area points to its live stub.
unsafe extern "C" fn read_hdr(dev: *const mei_device) -> u32 {
    // SAFETY: see the hw ops note above.
    unsafe { Stub::from_mei(dev) }.fw.lock().rx_header()
}

/// # Safety
///
/// Called by the MEI core with a `mei_device` created by `Stub::start`, whose `hw` area points to its live stub.
unsafe extern "C" fn read(dev: *mut mei_device, buf: *mut u8, len: c_ulong) -> c_int {
    if buf.is_null() && len > 0 {
        return -(bindings::EINVAL as c_int);
    }
    // SAFETY: see the hw ops note above; the core passes a buffer of `len`
    // bytes.
    let (stub, buf) = unsafe {
        let buf = if len > 0 {
            core::slice::from_raw_parts_mut(buf, len)
        } else {
            &mut []
        };
        (Stub::from_mei(dev), buf)
    };
    stub.fw.lock().rx_payload(buf);
    0
}

static HW_OPS: mei_hw_ops = mei_hw_ops {
    host_is_ready: Some(host_is_ready),
    hw_is_ready: Some(hw_is_ready),
    hw_reset: Some(hw_reset),
    hw_start: Some(hw_start),
    hw_config: Some(hw_config),
    fw_status: Some(fw_status),
    trc_status: None,
    pg_state: Some(pg_state),
    pg_in_transition: Some(no_bool),
    pg_is_enabled: Some(no_bool),
    intr_clear: Some(no_op),
    intr_enable: Some(no_op),
    intr_disable: Some(no_op),
    synchronize_irq: Some(no_op),
    hbuf_free_slots: Some(hbuf_free_slots),
    hbuf_is_ready: Some(hbuf_is_ready),
    hbuf_depth: Some(hbuf_depth),
    write: Some(write),
    rdbuf_full_slots: Some(rdbuf_full_slots),
    read_hdr: Some(read_hdr),
    read: Some(read),
};

/// What the `config` file shows.
fn show_config(stub: &Stub, w: &mut dyn Write) -> core::fmt::Result {
    stub.fw.lock().config.write_to(w)
}

/// What the `trace` file shows.
fn show_trace(stub: &Stub, w: &mut dyn Write) -> core::fmt::Result {
    stub.fw.lock().write_trace(w)
}

/// Whether `work` is running (or, with `pending`, also queued).
///
/// # Safety
///
/// `work` must point to a work item that is initialised or all zero.
unsafe fn work_busy(work: *mut bindings::work_struct, pending: bool) -> bool {
    let mut mask = bindings::wq_misc_consts_WORK_BUSY_RUNNING;
    if pending {
        mask |= bindings::wq_misc_consts_WORK_BUSY_PENDING;
    }
    // SAFETY: the caller's promise; a zero work is neither.
    unsafe { bindings::work_busy(work) & mask != 0 }
}

impl Stub {
    /// What is still going on between the firmware and the host, or an
    /// empty list: nothing queued for the host or being read, no late
    /// write, no interrupt-thread run, the link up, no MEI core work
    /// (reset, rescan, a timeout run) and no bus callback work of a client
    /// of this device.
    /// The interrupt thread's queued run alone does not count: it waits
    /// for the firmware timer, which the host does not see.
    fn busy(&self) -> KVec<&'static str> {
        let mut why = KVec::new();
        let mut note = |busy: bool, what: &'static str| {
            if busy {
                let _ = why.push(what, GFP_KERNEL);
            }
        };
        note(!self.fw.lock().idle(now_ms()), "firmware");
        let mei = self.mei.0;
        // The client devices are zeroed at allocation: works initialised or zero.
        // SAFETY: the device and its works live until `teardown`, which removes
        // these files (waiting for readers) first; `cl_bus_lock` guards the list.
        unsafe {
            note(
                work_busy(addr_of_mut!((*self.service.get()).work), false),
                "interrupt thread",
            );
            // Before the rescan: the MEI core queues it as it enables the
            // link, under `device_lock`.
            bindings::mutex_lock(addr_of_mut!((*mei).device_lock));
            let link_up = (*mei).dev_state == bindings::mei_dev_state_MEI_DEV_ENABLED;
            bindings::mutex_unlock(addr_of_mut!((*mei).device_lock));
            note(!link_up, "link");
            note(work_busy(addr_of_mut!((*mei).reset_work), true), "reset");
            note(
                work_busy(addr_of_mut!((*mei).bus_rescan_work), true),
                "rescan",
            );
            // Queued for a second or two after each request, to time it
            // out: only a run counts.
            note(
                work_busy(addr_of_mut!((*mei).timer_work.work), false),
                "timeouts",
            );
            bindings::mutex_lock(addr_of_mut!((*mei).cl_bus_lock));
            let head = addr_of_mut!((*mei).device_list);
            let mut link = (*head).next;
            let mut clients = false;
            while link != head {
                let cldev = link
                    .cast::<u8>()
                    .sub(offset_of!(bindings::mei_cl_device, bus_list))
                    .cast::<bindings::mei_cl_device>();
                clients |= work_busy(addr_of_mut!((*cldev).rx_work), true)
                    || work_busy(addr_of_mut!((*cldev).notif_work), true);
                link = (*link).next;
            }
            bindings::mutex_unlock(addr_of_mut!((*mei).cl_bus_lock));
            note(clients, "client callbacks");
        }
        why
    }
}

/// What the `idle` file shows: `idle`, or `busy:` and what is going on.
fn show_idle(stub: &Stub, w: &mut dyn Write) -> core::fmt::Result {
    let why = stub.busy();
    if why.is_empty() {
        return writeln!(w, "idle");
    }
    write!(w, "busy:")?;
    for what in why.iter() {
        write!(w, " {what}")?;
    }
    writeln!(w)
}

/// What the `parent` file shows: the PCI parent's name (the MEI core logs
/// on it).
fn show_parent(stub: &Stub, w: &mut dyn Write) -> core::fmt::Result {
    // SAFETY: the stub holds a reference to its parent from
    // `Registry::claim_parent` until it is gone, and a PCI device's
    // kobject name, set when it was scanned, lives as long as the device.
    let name = unsafe { CStr::from_char_ptr((*stub.parent.0).dev.kobj.name) };
    writeln!(w, "{}", name.to_str().map_err(|_| core::fmt::Error)?)
}

/// What the `timer` file shows.
fn show_timer(stub: &Stub, w: &mut dyn Write) -> core::fmt::Result {
    stub.fw.lock().write_timer(w)
}

/// The fuzz seed and how often each fuzz action was taken.
fn show_fuzz(stub: &Stub, w: &mut dyn Write) -> core::fmt::Result {
    stub.fw.lock().write_fuzz_counts(w)
}

/// A write to `config`: `key=value` pairs.
fn store_config(stub: &Stub, text: &str) -> Result {
    stub.fw.lock().config.apply(text).map_err(|_| EINVAL)
}

/// A write to `add`: the new device's config.
fn store_add(reg: &Registry, text: &str) -> Result {
    let mut config = fw::Config::default();
    config.apply(text).map_err(|_| EINVAL)?;
    reg.add(config)
}

/// A write to `remove`: a device index.
fn store_remove(reg: &Registry, text: &str) -> Result {
    reg.remove(text.parse::<usize>().map_err(|_| EINVAL)?)
}

/// A watchdog device that does nothing, to take up one of the watchdog
/// core's ids, so that a driver's registration can be made to fail.
///
/// # Invariants
///
/// The boxed device is registered.
struct Filler(KBox<Opaque<bindings::watchdog_device>>);

/// What a filler says it is.
struct FillerInfo(bindings::watchdog_info);
// SAFETY: immutable; only read by the watchdog core.
unsafe impl Sync for FillerInfo {}

static FILLER_INFO: FillerInfo = FillerInfo(bindings::watchdog_info {
    options: 0,
    firmware_version: 0,
    identity: *b"mei_stub filler\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
});

/// The fillers' operations: a start and a stop that do nothing (the core
/// needs both).
struct FillerOps(bindings::watchdog_ops);
// SAFETY: immutable; only read by the watchdog core.
unsafe impl Sync for FillerOps {}

static FILLER_OPS: FillerOps = FillerOps(bindings::watchdog_ops {
    // Only the address is taken: no access, no `unsafe`.
    owner: addr_of_mut!(bindings::__this_module),
    start: Some(filler_nop),
    stop: Some(filler_nop),
    // SAFETY: all-zero is "not implemented" for every other operation.
    ..unsafe { core::mem::zeroed() }
});

/// Start and stop of a filler: nothing to do.
///
/// # Safety
///
/// Called by the watchdog core with a registered filler.
unsafe extern "C" fn filler_nop(_wdd: *mut bindings::watchdog_device) -> c_int {
    0
}

impl Filler {
    /// Registers a filler watchdog.
    fn register() -> Result<Filler> {
        // SAFETY: all-zero is the C starting point of a watchdog device.
        let wdd: KBox<Opaque<bindings::watchdog_device>> =
            KBox::new(Opaque::new(unsafe { core::mem::zeroed() }), GFP_KERNEL)?;
        let raw = wdd.get();
        // SAFETY: the device is on the heap and stays there (boxed) until
        // `drop` unregisters it; info and ops are static. A failed
        // registration leaves nothing to unregister: no `Filler` is built.
        unsafe {
            (*raw).info = &FILLER_INFO.0;
            (*raw).ops = &FILLER_OPS.0;
            to_result(bindings::watchdog_register_device(raw))?;
        }
        Ok(Filler(wdd))
    }
}

impl Drop for Filler {
    fn drop(&mut self) {
        // SAFETY: the device is registered (type invariant).
        unsafe { bindings::watchdog_unregister_device(self.0.get()) };
    }
}

/// What the `watchdogs` file shows: the number of fillers.
fn show_fillers(reg: &Registry, w: &mut dyn Write) -> core::fmt::Result {
    writeln!(w, "{}", reg.fillers.lock().iter().flatten().count())
}

/// A write to `watchdogs`: register or unregister fillers until there are
/// this many. Stops at the first failure (the core's ids run out at 32).
fn store_fillers(reg: &Registry, text: &str) -> Result {
    let want = text.parse::<usize>().map_err(|_| EINVAL)?;
    let mut fillers = reg.fillers.lock();
    let mut have = fillers.iter().flatten().count();
    // Slots are never freed (KVec cannot shrink): empty ones are reused.
    for slot in fillers.as_mut_slice().iter_mut().rev() {
        if have > want && slot.is_some() {
            drop(slot.take());
            have -= 1;
        }
    }
    for slot in fillers.as_mut_slice().iter_mut() {
        if have < want && slot.is_none() {
            *slot = Some(Filler::register()?);
            have += 1;
        }
    }
    while have < want {
        let f = Filler::register()?;
        fillers.push(Some(f), GFP_KERNEL)?;
        have += 1;
    }
    Ok(())
}

/// The registry of stub devices, and the operations of their files.
#[pin_data]
struct Registry {
    #[pin]
    devices: Mutex<KVec<Option<Pin<KBox<Stub>>>>>,
    /// The PCI devices the driver `pdrv` bound: the stub devices' parents.
    #[pin]
    parents: Mutex<KVec<Parent>>,
    /// The parents' driver (the MEI core also takes the module owner from
    /// the parent's driver).
    #[pin]
    pdrv: Opaque<bindings::pci_driver>,
    /// Filler watchdogs (`watchdogs`).
    #[pin]
    fillers: Mutex<KVec<Option<Filler>>>,
    /// Prints the traces when the system goes down ([`reboot_notify`]).
    #[pin]
    reboot_nb: Opaque<bindings::notifier_block>,
}

// SAFETY: the PCI driver is only passed to the driver core, which
// serializes access; everything else is `Send`/`Sync` or immutable.
unsafe impl Send for Registry {}
// SAFETY: as above.
unsafe impl Sync for Registry {}

/// A PCI device bound to the stub's driver.
struct Parent {
    /// Null once the device is unbound.
    pdev: Raw<bindings::pci_dev>,
    /// A stub device is on it.
    in_use: bool,
}

/// Collects what is written to it into lines and prints each one as
/// `me<N> reboot trace: <line>`.
struct TracePrinter {
    index: u32,
    line: [u8; 512],
    len: usize,
}

impl Write for TracePrinter {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for &b in s.as_bytes() {
            if b == b'\n' {
                let text = core::str::from_utf8(&self.line[..self.len]).unwrap_or("(not UTF-8)");
                pr_info!("me{} reboot trace: {}\n", self.index, text);
                self.len = 0;
            } else if self.len < self.line.len() {
                self.line[self.len] = b;
                self.len += 1;
            }
        }
        Ok(())
    }
}

impl Registry {
    /// Prints every device's trace to the kernel log, then the end marker.
    fn print_traces(&self) {
        let devices = self.devices.lock();
        for stub in devices.iter().flatten() {
            let mut printer = TracePrinter {
                index: stub.index,
                line: [0; 512],
                len: 0,
            };
            let _ = stub.fw.lock().write_trace(&mut printer);
        }
        pr_info!("reboot trace end\n");
    }
}

/// # Safety
///
/// Called by the reboot notifier chain with the `reboot_nb` of a live,
/// pinned [`Registry`], which unregisters it before it is freed.
unsafe extern "C" fn reboot_notify(
    nb: *mut bindings::notifier_block,
    _code: c_ulong,
    _data: *mut c_void,
) -> c_int {
    // SAFETY: `nb` is the `reboot_nb` field of a live `Registry` (see the
    // function's contract), so stepping back by its offset gives the registry.
    let reg = unsafe {
        &*nb.cast::<u8>()
            .sub(offset_of!(Registry, reboot_nb))
            .cast::<Registry>()
    };
    reg.print_traces();
    bindings::NOTIFY_DONE as c_int
}

/// The stub's debugfs root, `mei_stub/`.
static ROOT: debugfs::ModuleDir = debugfs::ModuleDir::new();

impl Registry {
    /// Takes a free PCI parent for a stub device, with a reference that
    /// [`Registry::release_parent`] drops.
    fn claim_parent(&self) -> Result<Raw<bindings::pci_dev>> {
        let mut parents = self.parents.lock();
        let Some(parent) = parents
            .iter_mut()
            .find(|p| !p.in_use && !p.pdev.0.is_null())
        else {
            pr_err!(
                "no free PCI parent: every stub device needs a QEMU edu device (-device edu)\n"
            );
            return Err(ENOSPC);
        };
        parent.in_use = true;
        // SAFETY: a listed device is bound to the stub's driver, so alive;
        // the reference keeps it so while a stub device holds it.
        Ok(Raw(unsafe { bindings::pci_dev_get(parent.pdev.0) }))
    }

    /// Gives back a parent whose stub device is gone, and its reference.
    fn release_parent(&self, pdev: *mut bindings::pci_dev) {
        let mut parents = self.parents.lock();
        if let Some(parent) = parents.iter_mut().find(|p| p.pdev.0 == pdev) {
            parent.in_use = false;
        }
        drop(parents);
        // SAFETY: the reference taken by `claim_parent`.
        unsafe { bindings::pci_dev_put(pdev) };
    }

    /// Removes every stub device on `pdev`, a parent being unbound.
    fn remove_on_parent(&self, pdev: *mut bindings::pci_dev) {
        let mut devices = self.devices.lock();
        for slot in devices.as_mut_slice() {
            if slot.as_ref().is_some_and(|stub| stub.parent.0 == pdev) {
                pr_warn!("a parent PCI device goes: its stub device goes first\n");
                drop(slot.take());
                self.release_parent(pdev);
            }
        }
    }

    /// Creates and starts device `me<N>` with `config`.
    fn add(&self, config: fw::Config) -> Result {
        let mut devices = self.devices.lock();
        let index = devices.len() as u32;
        let trace = KVec::from_elem(None, fw::TRACE_LEN, GFP_KERNEL)?;
        let parent = self.claim_parent()?;
        let pdev = parent.0;
        let mut stub = match KBox::pin_init(Stub::new(index, parent, config, trace), GFP_KERNEL) {
            Ok(stub) => stub,
            Err(e) => {
                self.release_parent(pdev);
                return Err(e);
            }
        };
        if let Err(e) = stub.as_mut().start() {
            drop(stub);
            self.release_parent(pdev);
            return Err(e);
        }
        let published = Self::publish(&mut devices, stub, index);
        if published.is_err() {
            self.release_parent(pdev);
        }
        published
    }

    /// Gives a started stub its debugfs files and lists it (on failure it
    /// is dropped, stopping its device).
    fn publish(
        devices: &mut KVec<Option<Pin<KBox<Stub>>>>,
        mut stub: Pin<KBox<Stub>>,
        index: u32,
    ) -> Result {
        let name = CString::try_from_fmt(format_args!("me{index}"))?;
        let root = ROOT.get().ok_or(ENODEV)?;
        // SAFETY: the stub is pinned, and its drop removes the directory
        // first.
        let data = unsafe { Ptr::new(&*stub) };
        let dir = KBox::pin_init(
            root.scope(data, &name, |p, dir| {
                dir.read_write_callback_file(
                    c_str!("config"),
                    p,
                    show!(show_config),
                    store!(store_config),
                );
                dir.write_only_callback_file(c_str!("ctl"), p, store!(stub_ctl));
                dir.read_callback_file(c_str!("trace"), p, show!(show_trace));
                dir.read_callback_file(c_str!("timer"), p, show!(show_timer));
                dir.read_callback_file(c_str!("idle"), p, show!(show_idle));
                dir.read_callback_file(c_str!("parent"), p, show!(show_parent));
                dir.read_callback_file(c_str!("fuzz"), p, show!(show_fuzz));
            }),
            GFP_KERNEL,
        )?;
        // SAFETY: only a plain field is written; the stub stays pinned.
        unsafe { stub.as_mut().get_unchecked_mut().dir = Some(dir) };
        devices.push(Some(stub), GFP_KERNEL)?;
        Ok(())
    }

    fn remove(&self, index: usize) -> Result {
        let stub = {
            let mut devices = self.devices.lock();
            devices
                .get_mut(index)
                .and_then(Option::take)
                .ok_or(ENOENT)?
        };
        let pdev = stub.parent.0;
        drop(stub);
        self.release_parent(pdev);
        Ok(())
    }
}

/// A write to `ctl`: an action.
fn stub_ctl(stub: &Stub, cmd: &str) -> Result {
    match cmd {
        "notify" => {
            let mut fw = stub.fw.lock();
            fw.notify(now_ms()).map_err(|e| match e {
                fw::ActionError::NotConnected => Error::from_errno(-(bindings::ENOTCONN as c_int)),
                fw::ActionError::Busy => EBUSY,
            })?;
            stub.kick(&fw, 0);
        }
        "reset" => stub.link_reset(),
        "reset_after_answer" => stub.fw.lock().reset_after_answer(),
        "clear" => stub.fw.lock().clear(),
        _ => return Err(EINVAL),
    }
    Ok(())
}

/// A file at the top of `mei_stub/`.
type RootFile = Pin<KBox<debugfs::File<Ptr<Registry>>>>;

struct MeiStubModule {
    registry: Pin<KBox<Registry>>,
    /// `add`, `remove` and `watchdogs`, on the registry: removed first.
    root_files: KVec<RootFile>,
}

impl kernel::Module for MeiStubModule {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let registry = KBox::pin_init(
            pin_init!(Registry {
                devices <- new_mutex!(KVec::new()),
                parents <- new_mutex!(KVec::new()),
                // SAFETY: a zeroed driver with a name, an id table, a probe
                // and a remove is valid; it is registered below, once pinned.
                pdrv <- unsafe {
                    Opaque::ffi_init(|slot: *mut bindings::pci_driver| {
                        core::ptr::write_bytes(slot, 0, 1);
                        (*slot).name = c_str!("mei_stub").as_char_ptr();
                        (*slot).id_table = PARENT_IDS.as_ptr();
                        (*slot).probe = Some(parent_probe);
                        (*slot).remove = Some(parent_remove);
                        // A parent leaves only with the driver, after the
                        // stub devices on it.
                        (*slot).driver.suppress_bind_attrs = true;
                    })
                },
                fillers <- new_mutex!(KVec::new()),
                // SAFETY: a zeroed notifier block with a callback is valid;
                // it is registered below, once pinned.
                reboot_nb <- unsafe {
                    Opaque::ffi_init(|slot: *mut bindings::notifier_block| {
                        core::ptr::write_bytes(slot, 0, 1);
                        (*slot).notifier_call = Some(reboot_notify);
                        // Last: after the watchdog core's stop on reboot.
                        (*slot).priority = c_int::MIN;
                    })
                },
            }),
            GFP_KERNEL,
        )?;
        // Made first: nothing below fails once anything is registered.
        ROOT.create(c_str!("mei_stub"))?;
        let root_files = match Self::root_files(&registry) {
            Ok(files) => files,
            Err(e) => {
                ROOT.remove();
                return Err(e);
            }
        };
        // SAFETY: the driver is pinned in the registry and unregistered in
        // `drop` before the registry is freed.
        let err = unsafe {
            bindings::__pci_register_driver(
                registry.pdrv.get(),
                module.as_ptr(),
                c_str!("mei_stub").as_char_ptr(),
            )
        };
        if let Err(e) = to_result(err) {
            drop(root_files);
            ROOT.remove();
            return Err(e);
        }
        // SAFETY: the block is pinned in the registry and unregistered in
        // `drop` before the registry is freed.
        let err = unsafe { bindings::register_reboot_notifier(registry.reboot_nb.get()) };
        if let Err(e) = to_result(err) {
            // SAFETY: registered just above; no device exists yet.
            unsafe { bindings::pci_unregister_driver(registry.pdrv.get()) };
            drop(root_files);
            ROOT.remove();
            return Err(e);
        }
        Ok(MeiStubModule {
            registry,
            root_files,
        })
    }
}

impl MeiStubModule {
    /// The files at the top of `mei_stub/`, on the (pinned) registry.
    fn root_files(registry: &Registry) -> Result<KVec<RootFile>> {
        let root = ROOT.get().ok_or(ENODEV)?;
        // SAFETY: the registry is pinned, and `drop` removes these files
        // before it goes.
        let reg = || unsafe { Ptr::new(registry) };
        let mut files = KVec::with_capacity(3, GFP_KERNEL)?;
        let add = root.write_callback_file(c_str!("add"), reg(), store!(store_add));
        files.push(KBox::pin_init(add, GFP_KERNEL)?, GFP_KERNEL)?;
        let remove = root.write_callback_file(c_str!("remove"), reg(), store!(store_remove));
        files.push(KBox::pin_init(remove, GFP_KERNEL)?, GFP_KERNEL)?;
        let watchdogs = root.read_write_callback_file(
            c_str!("watchdogs"),
            reg(),
            show!(show_fillers),
            store!(store_fillers),
        );
        files.push(KBox::pin_init(watchdogs, GFP_KERNEL)?, GFP_KERNEL)?;
        Ok(files)
    }
}

impl Drop for MeiStubModule {
    fn drop(&mut self) {
        // SAFETY: registered in `init`; the chain's lock waits for a
        // running callback.
        unsafe { bindings::unregister_reboot_notifier(self.registry.reboot_nb.get()) };
        // The control files first (removal waits for running writes), then
        // the devices, each with its own directory, then the rest.
        self.root_files = KVec::new();
        for slot in self.registry.fillers.lock().as_mut_slice() {
            drop(slot.take());
        }
        let mut devices = self.registry.devices.lock();
        for slot in devices.as_mut_slice() {
            if let Some(stub) = slot.take() {
                let pdev = stub.parent.0;
                drop(stub);
                self.registry.release_parent(pdev);
            }
        }
        drop(devices);
        ROOT.remove();
        // SAFETY: registered in `init`; its devices are gone.
        unsafe { bindings::pci_unregister_driver(self.registry.pdrv.get()) };
    }
}
