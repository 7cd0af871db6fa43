// SPDX-License-Identifier: GPL-2.0

//! A work item embedded in a refcounted (`Arc`) driver structure, run on
//! the system workqueue.
//!
//! A queued work holds a reference to its owner, so the owner cannot be
//! freed while the work is pending or running, whatever the order its
//! fields drop in; only an owner's own field can be queued. As for any
//! work item, the module must cancel its works before it unloads.

use super::bindings;
use core::marker::PhantomData;
use kernel::ffi::c_int;
use kernel::prelude::*;
use kernel::sync::Arc;
use kernel::types::Opaque;
use kernel::{c_str, static_lock_class};

/// A structure that embeds a [`Work`] and handles it.
///
/// # Safety
///
/// `OFFSET` must be the offset of a `Work<Self>` field in `Self`; use
/// [`impl_work_handler!`], which checks the field's type.
pub(crate) unsafe trait WorkHandler: Send + Sync + Sized + 'static {
    /// Offset of the `Work<Self>` field.
    const OFFSET: usize;
    /// Runs the work.
    fn run(&self);
}

/// Implements [`WorkHandler`] for `$type` with its `Work` field `$field`
/// and handler method `$run`.
macro_rules! impl_work_handler {
    ($type:ty, $field:ident, $run:ident) => {
        // SAFETY: the offset is that of `$field`, checked below to be a
        // `Work<$type>`.
        unsafe impl $crate::abstractions::work::WorkHandler for $type {
            const OFFSET: usize = {
                let _check: fn(&$type) -> &$crate::abstractions::work::Work<$type> = |t| &t.$field;
                core::mem::offset_of!($type, $field)
            };
            fn run(&self) {
                <$type>::$run(self)
            }
        }
    };
}
pub(crate) use impl_work_handler;

/// A `struct work_struct` running `T::run` on the `T` that embeds it.
#[pin_data]
pub(crate) struct Work<T: WorkHandler> {
    #[pin]
    work: Opaque<bindings::work_struct>,
    _p: PhantomData<T>,
}

// SAFETY: the workqueue API is thread safe.
unsafe impl<T: WorkHandler> Send for Work<T> {}
// SAFETY: as above.
unsafe impl<T: WorkHandler> Sync for Work<T> {}

/// The `work_struct` of `owner`'s [`Work`] field.
fn work_of<T: WorkHandler>(owner: *const T) -> *mut bindings::work_struct {
    // `T::OFFSET` is that of a `Work<T>` field (trait contract), whose
    // first field (at offset 0, `Opaque` is transparent) is the C work.
    owner
        .cast::<u8>()
        .wrapping_add(T::OFFSET)
        .cast::<bindings::work_struct>()
        .cast_mut()
}

/// # Safety
///
/// Called by the workqueue with the work of a `T` queued by [`queue`],
/// which handed the queue one reference to the `T`.
unsafe extern "C" fn work_callback<T: WorkHandler>(work: *mut bindings::work_struct) {
    // SAFETY: `work` is at `T::OFFSET` in a `T` inside an `Arc`, and the
    // reference `queue` leaked for the queue is now ours.
    let owner = unsafe { Arc::from_raw(work.cast::<u8>().sub(T::OFFSET).cast::<T>()) };
    owner.run();
}

impl<T: WorkHandler> Work<T> {
    /// A new, idle work item.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            // SAFETY: `init_work_with_key` initialises the work in place.
            work <- unsafe {
                Opaque::ffi_init(|slot: *mut bindings::work_struct| {
                    bindings::init_work_with_key(
                        slot,
                        Some(work_callback::<T>),
                        false,
                        c_str!("Work::work").as_char_ptr(),
                        crate::abstractions::completion::lock_class_ptr(static_lock_class!()),
                    );
                })
            },
            _p: PhantomData,
        })
    }
}

/// Queues `owner`'s work on the system workqueue unless it is queued; the
/// queue holds a reference to `owner` until the work has run.
pub(crate) fn queue<T: WorkHandler>(owner: &Arc<T>) {
    let raw = Arc::into_raw(owner.clone());
    // SAFETY: the work is `owner`'s own, initialised with it (pinned in
    // the `Arc`); `system_wq` is always valid.
    let queued = unsafe {
        bindings::queue_work_on(
            bindings::wq_misc_consts_WORK_CPU_UNBOUND as c_int,
            bindings::system_wq,
            work_of(raw),
        )
    };
    if !queued {
        // Already queued (with a reference of its own), or being
        // cancelled: either way the work will not run for this one.
        // SAFETY: the reference from `into_raw` above goes back.
        drop(unsafe { Arc::from_raw(raw) });
    }
}

/// Cancels `owner`'s work, waiting for it if it is running.
pub(crate) fn cancel_sync<T: WorkHandler>(owner: &Arc<T>) {
    let raw: *const T = &**owner;
    // SAFETY: the work is `owner`'s own and initialised.
    if unsafe { bindings::cancel_work_sync(work_of(raw)) } {
        // SAFETY: it was pending and will not run: the reference `queue`
        // gave the queue is ours to drop.
        drop(unsafe { Arc::from_raw(raw) });
    }
}
