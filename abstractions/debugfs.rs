// SPDX-License-Identifier: GPL-2.0

//! Debugfs text files: read as a snapshot, written a line at a time.
//!
//! A file's text is formatted when it is opened, so reads at any offset see
//! one snapshot. Every file shares one static `file_operations` in module
//! memory: debugfs still calls its `release` (and drops its module
//! reference) when a descriptor opened before the file's removal is
//! closed, so the operations must outlive every device. What a file shows
//! is reached through its inode (a [`File`]) only while debugfs guarantees
//! the file exists. Directories and files are removed on drop; removal
//! waits for running file operations, so the data behind a file may be
//! freed once its [`Dir`] is gone.

use crate::bindings;
use core::fmt::{self, Write};
use core::ptr::{addr_of_mut, null_mut};
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use kernel::alloc::{flags::GFP_KERNEL, KBox, KVec};
use kernel::ffi::{c_char, c_int};
use kernel::prelude::*;
use kernel::sync::Arc;
use kernel::uaccess::UserSlice;

/// Writes a file's text for its data.
pub(crate) type ShowFn<T> = fn(&T, &mut dyn Write) -> fmt::Result;

/// Takes a line written to a file (trimmed, at most [`MAX_STORE`] bytes).
pub(crate) type StoreFn<T> = fn(&T, &str) -> Result;

/// Longest text a write may store.
pub(crate) const MAX_STORE: usize = 256;

struct Snapshot(KVec<u8>);

impl Write for Snapshot {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0
            .extend_from_slice(s.as_bytes(), GFP_KERNEL)
            .map_err(|_| fmt::Error)
    }
}

/// The type-erased calls of a [`File`], its first field, so that the one
/// set of file operations can serve files of any data type.
struct Calls {
    show: Option<unsafe fn(*const Calls, &mut dyn Write) -> fmt::Result>,
    store: Option<unsafe fn(*const Calls, &str) -> Result>,
}

/// What one file shows of a `T` and takes for it: the file's inode points
/// here.
///
/// # Invariants
///
/// `data` is valid whenever a file made with this entry exists (the
/// contract of [`Dir::file`] and [`Root::file`]).
#[repr(C)]
pub(crate) struct File<T: Sync> {
    /// First: the callbacks find the rest from it.
    calls: Calls,
    data: *const T,
    show: Option<ShowFn<T>>,
    store: Option<StoreFn<T>>,
}

// SAFETY: a `File` only hands out `&T` (`T: Sync`) and function pointers.
unsafe impl<T: Sync> Send for File<T> {}
// SAFETY: as above.
unsafe impl<T: Sync> Sync for File<T> {}

/// # Safety
///
/// `calls` must be the first field of a live `File<T>` with a `show`,
/// whose data is valid.
unsafe fn show_calls<T: Sync>(calls: *const Calls, w: &mut dyn Write) -> fmt::Result {
    // SAFETY: the caller's promise; `File` is `repr(C)` with `calls` first.
    let file = unsafe { &*calls.cast::<File<T>>() };
    match file.show {
        // SAFETY: the data is valid while the file exists (type invariant).
        Some(show) => show(unsafe { &*file.data }, w),
        None => Err(fmt::Error),
    }
}

/// # Safety
///
/// `calls` must be the first field of a live `File<T>` with a `store`,
/// whose data is valid.
unsafe fn store_calls<T: Sync>(calls: *const Calls, text: &str) -> Result {
    // SAFETY: as in `show_calls`.
    let file = unsafe { &*calls.cast::<File<T>>() };
    match file.store {
        // SAFETY: as in `show_calls`.
        Some(store) => store(unsafe { &*file.data }, text),
        None => Err(EINVAL),
    }
}

impl<T: Sync> File<T> {
    /// A file showing `data` with `show` and, if given, taking writes with
    /// `store`. Files without a `show` are write-only.
    pub(crate) fn new(data: *const T, show: Option<ShowFn<T>>, store: Option<StoreFn<T>>) -> Self {
        File {
            calls: Calls {
                show: show.is_some().then_some(show_calls::<T> as _),
                store: store.is_some().then_some(store_calls::<T> as _),
            },
            data,
            show,
            store,
        }
    }

    /// Its operations: writable if it has a `store`. (A module whose
    /// files are all read-only, through [`Files`], then has no write path.)
    fn fops(&self) -> &'static FileOperations {
        if self.store.is_some() {
            &FOPS
        } else {
            &READ_FOPS
        }
    }

    /// The file mode for what the file allows.
    fn mode(&self) -> u16 {
        (if self.show.is_some() { 0o400 } else { 0 })
            | (if self.store.is_some() { 0o200 } else { 0 })
    }
}

/// The `Calls` of an open file's [`File`]: a raw pointer, which the
/// calls widen to the whole `File` (a reference to `Calls` alone would
/// not cover the rest).
///
/// # Safety
///
/// `inode` must be the inode of a file made by `create_file`, and debugfs
/// must keep that file from being removed while the pointer is used (it
/// does, around `open` and `write`).
unsafe fn calls_of(inode: *mut bindings::inode) -> *const Calls {
    // SAFETY: the inode is valid (caller's promise); its private data is
    // the `File` given to `create_file`, alive while the file exists.
    unsafe { (*inode).i_private.cast::<Calls>() }
}

/// # Safety
///
/// Called by debugfs' proxy for a file made by `create_file`, which it
/// keeps from removal during the call.
unsafe extern "C" fn open_callback(
    inode: *mut bindings::inode,
    file: *mut bindings::file,
) -> c_int {
    // SAFETY: per the function's contract.
    let calls = unsafe { calls_of(inode) };
    // SAFETY: `calls` points to a live `File`'s first field.
    let Some(show) = (unsafe { (*calls).show }) else {
        // Write-only: nothing to snapshot.
        return 0;
    };
    let mut snap = Snapshot(KVec::new());
    // SAFETY: `calls` belongs to a live `File` with a `show`.
    if unsafe { show(calls, &mut snap) }.is_err() {
        return ENOMEM.to_errno();
    }
    match KBox::new(snap, GFP_KERNEL) {
        Ok(b) => {
            // SAFETY: the file is being opened; `private_data` is ours and
            // freed in `release_callback`.
            unsafe { (*file).private_data = KBox::into_raw(b).cast() };
            0
        }
        Err(_) => ENOMEM.to_errno(),
    }
}

/// # Safety
///
/// Called by the VFS on a file opened through `open_callback`.
unsafe extern "C" fn read_callback(
    file: *mut bindings::file,
    buf: *mut c_char,
    len: usize,
    pos: *mut bindings::loff_t,
) -> isize {
    // SAFETY: `private_data` is the snapshot set at open, or null for a
    // write-only file.
    let Some(snap) = (unsafe { (*file).private_data.cast::<Snapshot>().as_ref() }) else {
        return EINVAL.to_errno() as isize;
    };
    // SAFETY: `buf`, `len` and `pos` come from the VFS; the source is the
    // snapshot's buffer.
    unsafe {
        bindings::simple_read_from_buffer(
            buf.cast(),
            len,
            pos,
            snap.0.as_ptr().cast(),
            snap.0.len(),
        )
    }
}

/// # Safety
///
/// Called by the VFS on a file opened through `open_callback`, possibly
/// after the file was removed: it touches only the file's own snapshot.
unsafe extern "C" fn release_callback(
    _inode: *mut bindings::inode,
    file: *mut bindings::file,
) -> c_int {
    // SAFETY: `private_data` is null or came from `KBox::into_raw` at open.
    let snap = unsafe { (*file).private_data.cast::<Snapshot>() };
    if !snap.is_null() {
        // SAFETY: as above; nothing else uses it after release.
        drop(unsafe { KBox::from_raw(snap) });
    }
    0
}

/// # Safety
///
/// Called by debugfs' proxy for a file made by `create_file`, which it
/// keeps from removal during the call.
unsafe extern "C" fn write_callback(
    file: *mut bindings::file,
    buf: *const c_char,
    len: usize,
    _pos: *mut bindings::loff_t,
) -> isize {
    // SAFETY: an open file has a valid inode; per the function's contract.
    let calls = unsafe { calls_of((*file).f_inode) };
    let res = (|| -> Result {
        // SAFETY: `calls` points to a live `File`'s first field.
        let store = unsafe { (*calls).store }.ok_or(EINVAL)?;
        if len > MAX_STORE {
            return Err(EINVAL);
        }
        let mut text = [0u8; MAX_STORE];
        UserSlice::new(buf as usize, len)
            .reader()
            .read_slice(&mut text[..len])?;
        let text = core::str::from_utf8(trim_ascii(&text[..len])).map_err(|_| EINVAL)?;
        // SAFETY: `calls` belongs to a live `File` with a `store`.
        unsafe { store(calls, text) }
    })();
    match res {
        Ok(()) => len as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// `b` without ASCII whitespace at either end (as `<[u8]>::trim_ascii`,
/// which is newer than the kernel's minimum Rust; a `str` trim would
/// bring Unicode's whitespace tables into the module).
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

/// The `file_operations` of the files: static, in this module's memory,
/// which debugfs pins (`owner`) while a descriptor is open.
struct FileOperations(bindings::file_operations);

// SAFETY: immutable; only read by the VFS.
unsafe impl Sync for FileOperations {}

/// For files that take writes.
static FOPS: FileOperations = FileOperations(bindings::file_operations {
    // Only the address is taken: no access, no `unsafe`.
    owner: addr_of_mut!(bindings::__this_module),
    open: Some(open_callback),
    read: Some(read_callback),
    write: Some(write_callback),
    release: Some(release_callback),
    // SAFETY: all-zero is "no operation" for every other callback.
    ..unsafe { core::mem::zeroed() }
});

/// For read-only files: a module with only those ([`Files`]) then holds
/// no write path.
static READ_FOPS: FileOperations = FileOperations(bindings::file_operations {
    owner: addr_of_mut!(bindings::__this_module),
    open: Some(open_callback),
    read: Some(read_callback),
    release: Some(release_callback),
    // SAFETY: all-zero is "no operation" for every other callback.
    ..unsafe { core::mem::zeroed() }
});

/// Creates a file `name` in `parent` for `file`, with `fops`.
///
/// # Safety
///
/// `parent` must be null or a directory of ours; `file` (and its data)
/// must stay valid until the file is removed.
unsafe fn create_file<T: Sync>(
    parent: *mut bindings::dentry,
    name: &CStr,
    file: &File<T>,
    fops: &'static FileOperations,
) {
    // SAFETY: `name` is a C string; the rest is the caller's promise.
    unsafe {
        bindings::debugfs_create_file(
            name.as_char_ptr(),
            file.mode(),
            parent,
            (file as *const File<T>).cast_mut().cast(),
            &fops.0,
        );
    }
}

/// A top-level debugfs directory for a module, created at init and
/// removed at exit; devices create their directories in it.
///
/// The directory goes once [`Root::remove`] was called and no [`Dir`] in it
/// is left, whatever the order, so a `Dir` never outlives its parent.
pub(crate) struct Root {
    dentry: AtomicPtr<bindings::dentry>,
    /// Live `Dir`s in the root, and [`Root::REMOVED`].
    users: AtomicUsize,
}

impl Root {
    const REMOVED: usize = 1 << (usize::BITS - 1);

    /// No directory yet.
    pub(crate) const fn new() -> Self {
        Root {
            dentry: AtomicPtr::new(null_mut()),
            users: AtomicUsize::new(0),
        }
    }

    /// Creates the directory `name` at the top of debugfs.
    pub(crate) fn create(&self, name: &CStr) {
        // SAFETY: `name` is a C string.
        let dir = unsafe { bindings::debugfs_create_dir(name.as_char_ptr(), null_mut()) };
        self.dentry.store(dir, Ordering::Release);
    }

    /// Creates a file `name` for `file` at the top of the root.
    ///
    /// # Safety
    ///
    /// `file` and its data must stay valid until the root is removed.
    pub(crate) unsafe fn file<T: Sync>(&self, name: &CStr, file: &File<T>) {
        let Some(root) = self.enter() else { return };
        // SAFETY: the root is ours and stays while we use it; the rest is
        // the caller's promise.
        unsafe { create_file(root, name, file, file.fops()) };
        self.leave();
    }

    /// Removes the named files at the top of the root (waiting for
    /// running operations on them).
    pub(crate) fn remove_files(&self, names: &[&CStr]) {
        let Some(root) = self.enter() else { return };
        for name in names {
            // SAFETY: `name` is a C string and `root` ours, staying while
            // we use it.
            unsafe { bindings::debugfs_lookup_and_remove(name.as_char_ptr(), root) };
        }
        self.leave();
    }

    /// Removes the directory and everything left in it, now or when the
    /// last [`Dir`] in it goes.
    pub(crate) fn remove(&self) {
        if self.users.fetch_or(Self::REMOVED, Ordering::AcqRel) == 0 {
            self.remove_now();
        }
    }

    fn remove_now(&self) {
        let dir = self.dentry.swap(null_mut(), Ordering::AcqRel);
        // SAFETY: our directory (or null / an error pointer, which debugfs
        // ignores), with no `Dir` left; removal waits for running file
        // operations.
        unsafe { bindings::debugfs_remove(dir) };
    }

    /// Counts a user of the directory, unless it is being removed or was
    /// never created (null would be the top of debugfs), and returns it.
    fn enter(&self) -> Option<*mut bindings::dentry> {
        let mut users = self.users.load(Ordering::Acquire);
        loop {
            if users & Self::REMOVED != 0 {
                return None;
            }
            match self
                .users
                .compare_exchange(users, users + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    let dentry = self.dentry.load(Ordering::Acquire);
                    if dentry.is_null() {
                        self.leave();
                        return None;
                    }
                    return Some(dentry);
                }
                Err(now) => users = now,
            }
        }
    }

    /// Ends a use from [`Root::enter`]; the last one after
    /// [`Root::remove`] removes the directory.
    fn leave(&self) {
        if self.users.fetch_sub(1, Ordering::AcqRel) == Self::REMOVED | 1 {
            self.remove_now();
        }
    }
}

/// A debugfs directory, removed (with its files) on drop.
///
/// # Invariants
///
/// If `root` is set, this directory is a user of it ([`Root::enter`]), so
/// the root (and `dentry`, if in it) is not removed before this is dropped.
pub(crate) struct Dir {
    dentry: *mut bindings::dentry,
    root: Option<&'static Root>,
}

// SAFETY: a dentry pointer is only passed back to debugfs, which is thread
// safe; `Root` is `Sync`.
unsafe impl Send for Dir {}
// SAFETY: as above.
unsafe impl Sync for Dir {}

impl Dir {
    /// Creates `name` in `root`. Debugfs failures are not errors: the
    /// driver works without its files; so is a root that is going away.
    pub(crate) fn new(name: &CStr, root: &'static Root) -> Dir {
        let Some(parent) = root.enter() else {
            return Dir {
                dentry: null_mut(),
                root: None,
            };
        };
        // SAFETY: `name` is a C string; `parent` is our directory,
        // kept while this `Dir` is a user of the root.
        let dentry = unsafe { bindings::debugfs_create_dir(name.as_char_ptr(), parent) };
        Dir {
            dentry,
            root: Some(root),
        }
    }

    /// Creates a file `name` for `file`.
    ///
    /// # Safety
    ///
    /// `file` and its data must stay valid until this directory is dropped.
    pub(crate) unsafe fn file<T: Sync>(&self, name: &CStr, file: &File<T>) {
        // SAFETY: the caller's promise.
        unsafe { self.file_with(name, file, file.fops()) }
    }

    /// Creates a file `name` for `file`, with `fops`.
    ///
    /// # Safety
    ///
    /// As for [`Dir::file`].
    unsafe fn file_with<T: Sync>(
        &self,
        name: &CStr,
        file: &File<T>,
        fops: &'static FileOperations,
    ) {
        if self.dentry.is_null() {
            return;
        }
        // SAFETY: the directory is ours (or an error pointer, which
        // debugfs returns as is); the caller's promise.
        unsafe { create_file(self.dentry, name, file, fops) }
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        // Removal waits for running file operations; an error pointer or
        // null is ignored by debugfs.
        // SAFETY: our directory, still there: the root is not removed
        // before this `Dir` leaves it (type invariant).
        unsafe { bindings::debugfs_remove(self.dentry) };
        if let Some(root) = self.root {
            root.leave();
        }
    }
}

/// A directory of `N` read-only files showing one shared `T`. It owns the
/// data (a reference) and the files' entries, and removes the directory
/// first, so no file outlives what it shows.
pub(crate) struct Files<T: Send + Sync, const N: usize> {
    /// Declared first: dropped (removed) before the fields below.
    _dir: Dir,
    _files: KBox<[File<T>; N]>,
    _data: Arc<T>,
}

impl<T: Send + Sync, const N: usize> Files<T, N> {
    /// Creates directory `name` in `root` with one file per entry of
    /// `files`, each showing `data` with its function.
    pub(crate) fn new(
        name: &CStr,
        root: &'static Root,
        data: Arc<T>,
        files: &[(&CStr, ShowFn<T>); N],
    ) -> Result<Self> {
        let entries = KBox::new(
            files.map(|(_, show)| File::new(&*data, Some(show), None)),
            GFP_KERNEL,
        )?;
        let dir = Dir::new(name, root);
        for ((name, _), file) in files.iter().zip(entries.iter()) {
            // SAFETY: `data` and `entries` (on the heap, where they stay)
            // are owned by the returned `Files`, which drops `dir` first.
            unsafe { dir.file_with(name, file, &READ_FOPS) };
        }
        Ok(Files {
            _dir: dir,
            _files: entries,
            _data: data,
        })
    }
}
