// SPDX-License-Identifier: GPL-2.0

//! A module's top debugfs directory, in a `static`: created at module
//! init, reachable from every probe, removed at exit.

use super::Dir;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use kernel::prelude::*;

/// A module-wide debugfs directory.
///
/// A [`Dir`] taken from it keeps the directory, so it goes once
/// [`ModuleDir::remove`] was called and the last such `Dir` is dropped,
/// whatever the order.
///
/// # Invariants
///
/// `dir` is null or a `KBox<Dir>` leaked by [`ModuleDir::create`], freed
/// only when `users` has no user left and [`Self::REMOVED`] set.
pub struct ModuleDir {
    dir: AtomicPtr<Dir>,
    /// Calls using `dir` now, and [`Self::REMOVED`].
    users: AtomicUsize,
}

impl ModuleDir {
    const REMOVED: usize = 1 << (usize::BITS - 1);

    /// No directory yet.
    pub const fn new() -> Self {
        ModuleDir {
            dir: AtomicPtr::new(null_mut()),
            users: AtomicUsize::new(0),
        }
    }

    /// Creates the directory `name` at the top of debugfs. Fails with
    /// `EEXIST` if it was created, `ENODEV` once removed.
    pub fn create(&self, name: &CStr) -> Result {
        if !self.enter() {
            return Err(ENODEV);
        }
        let res = if self.dir.load(Ordering::Acquire).is_null() {
            KBox::new(Dir::new(name), GFP_KERNEL)
                .map_err(Error::from)
                .and_then(|dir| {
                    let dir = KBox::into_raw(dir);
                    self.dir
                        .compare_exchange(null_mut(), dir, Ordering::AcqRel, Ordering::Acquire)
                        .map(|_| ())
                        .map_err(|_| {
                            // SAFETY: leaked just above and not stored: ours.
                            drop(unsafe { KBox::from_raw(dir) });
                            EEXIST
                        })
                })
        } else {
            Err(EEXIST)
        };
        // A `remove` meanwhile frees it here.
        self.leave();
        res
    }

    /// The directory, unless not created or removed. May sleep (when it
    /// drops the last handle of a removed directory).
    pub fn get(&self) -> Option<Dir> {
        if !self.enter() {
            return None;
        }
        // SAFETY: a user is counted, so `dir` is not freed before `leave`
        // (type invariant).
        let dir = unsafe { self.dir.load(Ordering::Acquire).as_ref() }.cloned();
        self.leave();
        dir
    }

    /// Drops the directory (it stays while a [`Dir`] taken from it does).
    pub fn remove(&self) {
        if self.users.fetch_or(Self::REMOVED, Ordering::AcqRel) == 0 {
            self.remove_now();
        }
    }

    fn remove_now(&self) {
        let dir = self.dir.swap(null_mut(), Ordering::AcqRel);
        if !dir.is_null() {
            // SAFETY: leaked by `create`; removed and without users, so no
            // one else reaches it (type invariant).
            drop(unsafe { KBox::from_raw(dir) });
        }
    }

    /// Counts a user, unless removed.
    fn enter(&self) -> bool {
        let mut users = self.users.load(Ordering::Acquire);
        loop {
            if users & Self::REMOVED != 0 {
                return false;
            }
            match self
                .users
                .compare_exchange(users, users + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(now) => users = now,
            }
        }
    }

    /// Ends a use; the last one after [`ModuleDir::remove`] frees the
    /// directory.
    fn leave(&self) {
        if self.users.fetch_sub(1, Ordering::AcqRel) == Self::REMOVED | 1 {
            self.remove_now();
        }
    }
}

impl Default for ModuleDir {
    fn default() -> Self {
        Self::new()
    }
}

// A `Dir` is shared through the static and handed to any thread.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Dir>()
};
