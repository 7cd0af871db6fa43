// SPDX-License-Identifier: GPL-2.0

//! `struct completion`, with the killable, bounded wait the ping needs.

use super::bindings;
use kernel::prelude::*;
use kernel::types::Opaque;
use kernel::{c_str, static_lock_class};

/// A completion: one side waits for the other to signal `complete`.
#[pin_data]
pub(crate) struct Completion {
    #[pin]
    inner: Opaque<bindings::completion>,
}

// SAFETY: a completion is designed for use from several threads; its wait
// queue has its own lock.
unsafe impl Send for Completion {}
// SAFETY: as above.
unsafe impl Sync for Completion {}

/// How a wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WaitResult {
    /// Completed in time.
    Completed,
    /// The bound elapsed first.
    TimedOut,
    /// A fatal signal is pending.
    Killed,
}

impl Completion {
    /// A new, not completed, completion (C `init_completion`).
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            // SAFETY: `init_completion` is `done = 0` and initialising the
            // swait queue in place, which is what this does.
            inner <- unsafe {
                Opaque::ffi_init(|slot: *mut bindings::completion| {
                    (*slot).done = 0;
                    bindings::__init_swait_queue_head(
                        core::ptr::addr_of_mut!((*slot).wait),
                        c_str!("Completion::inner").as_char_ptr(),
                        lock_class_ptr(static_lock_class!()),
                    );
                })
            },
        })
    }

    /// Forgets completions nobody waited for. Call it before sending the
    /// request whose answer is then waited for: a `complete` racing it
    /// answers an earlier request. Each is taken under the completion's
    /// own lock (C's `reinit_completion` writes `done` without it, so its
    /// callers must exclude `complete`, and a wakeup can be lost).
    pub(crate) fn reset(&self) {
        // SAFETY: the completion is initialised and pinned.
        while unsafe { bindings::try_wait_for_completion(self.inner.get()) } {}
    }

    /// Wakes the waiter.
    pub(crate) fn complete(&self) {
        // SAFETY: the completion is initialised and pinned.
        unsafe { bindings::complete(self.inner.get()) };
    }

    /// Waits up to `timeout_ms` for `complete`; a fatal signal ends the
    /// wait early.
    pub(crate) fn wait_killable_timeout(&self, timeout_ms: u32) -> WaitResult {
        let jiffies = kernel::time::msecs_to_jiffies(timeout_ms);
        // SAFETY: the completion is initialised and pinned.
        let ret =
            unsafe { bindings::wait_for_completion_killable_timeout(self.inner.get(), jiffies) };
        match ret {
            0 => WaitResult::TimedOut,
            r if r < 0 => WaitResult::Killed,
            _ => WaitResult::Completed,
        }
    }
}

/// The C key of a lockdep class, for C init functions that take one.
#[cfg(kernel_line = "6.12")]
pub(crate) fn lock_class_ptr(
    key: &'static kernel::sync::LockClassKey,
) -> *mut bindings::lock_class_key {
    // `LockClassKey` is a transparent wrapper of the C key.
    (key as *const kernel::sync::LockClassKey).cast_mut().cast()
}

/// The C key of a lockdep class (`static_lock_class!()`).
#[cfg(not(kernel_line = "6.12"))]
pub(crate) fn lock_class_ptr(
    key: Pin<&'static kernel::sync::LockClassKey>,
) -> *mut bindings::lock_class_key {
    key.as_ptr()
}
