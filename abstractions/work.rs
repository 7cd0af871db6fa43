// SPDX-License-Identifier: GPL-2.0

//! A work item embedded in a pinned driver structure, run on the system
//! workqueue and cancelled (waited for) when the structure is dropped.

use crate::bindings;
use core::marker::PhantomData;
use kernel::ffi::c_int;
use kernel::prelude::*;
use kernel::types::Opaque;
use kernel::{c_str, static_lock_class};

/// A structure that embeds a [`Work`] and handles it.
///
/// # Safety
///
/// `OFFSET` must be the offset of a `Work<Self>` field in `Self`; use
/// [`impl_work_handler!`], which checks the field's type.
pub(crate) unsafe trait WorkHandler: Sync + Sized {
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
        unsafe impl $crate::work::WorkHandler for $type {
            const OFFSET: usize = {
                let _check: fn(&$type) -> &$crate::work::Work<$type> = |t| &t.$field;
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
#[pin_data(PinnedDrop)]
pub(crate) struct Work<T: WorkHandler> {
    #[pin]
    work: Opaque<bindings::work_struct>,
    _p: PhantomData<T>,
}

// SAFETY: the workqueue API is thread safe.
unsafe impl<T: WorkHandler> Send for Work<T> {}
// SAFETY: as above.
unsafe impl<T: WorkHandler> Sync for Work<T> {}

/// # Safety
///
/// Called by the workqueue with the `work` of a `Work<T>` embedded in a live `T`.
unsafe extern "C" fn work_callback<T: WorkHandler>(work: *mut bindings::work_struct) {
    // SAFETY: `work` is the `work` field (first, transparent) of a
    // `Work<T>` at `T::OFFSET` in a live `T`: it is cancelled in `drop`.
    let owner = unsafe { &*work.cast::<u8>().sub(T::OFFSET).cast::<T>() };
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
                        crate::completion::lock_class_ptr(static_lock_class!()),
                    );
                })
            },
            _p: PhantomData,
        })
    }

    /// Queues the work on the system workqueue unless already queued.
    pub(crate) fn queue(&self) {
        // SAFETY: the work is initialised; it is cancelled before the
        // owner is freed.
        unsafe {
            bindings::queue_work_on(
                bindings::wq_misc_consts_WORK_CPU_UNBOUND as c_int,
                bindings::system_wq,
                self.work.get(),
            );
        }
    }

    /// Cancels the work, waiting for it if it is running.
    pub(crate) fn cancel_sync(&self) {
        // SAFETY: the work is initialised.
        unsafe { bindings::cancel_work_sync(self.work.get()) };
    }
}

#[pinned_drop]
impl<T: WorkHandler> PinnedDrop for Work<T> {
    fn drop(self: Pin<&mut Self>) {
        self.cancel_sync();
    }
}
