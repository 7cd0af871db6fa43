// SPDX-License-Identifier: GPL-2.0

//! Debugfs text files: read as a snapshot, written a line at a time.
//!
//! A file's text is formatted when it is opened, so reads at any offset see
//! one snapshot. Directories and files are removed on drop; removal waits
//! for running file operations, so the data behind a file may be freed
//! once its [`Dir`] is gone.

use crate::bindings;
use core::fmt::{self, Write};
use core::marker::PhantomData;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicPtr, Ordering};
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

/// The data and operations a file was created with (`create_file`).
///
/// # Safety
///
/// `inode` and `file` must be valid and belong to a file made by
/// `create_file` for a `T` and `FileOps<T>` that are still alive.
unsafe fn file_data<'a, T: Sync>(
    inode: *mut bindings::inode,
    file: *mut bindings::file,
) -> (&'a T, &'a FileOps<T>) {
    // SAFETY: the inode's private data is the `T` given to `create_file`,
    // alive until the file is removed; the file's real fops are the first
    // field of the `FileOps<T>` it was created with.
    unsafe {
        (
            &*(*inode).i_private.cast::<T>(),
            &*bindings::debugfs_real_fops(file).cast::<FileOps<T>>(),
        )
    }
}

/// # Safety
///
/// Called by the VFS on a file made by `create_file`, whose data and operations are alive.
unsafe extern "C" fn open_callback<T: Sync>(
    inode: *mut bindings::inode,
    file: *mut bindings::file,
) -> c_int {
    // SAFETY: the VFS passes the file's valid inode.
    let (data, ops) = unsafe { file_data::<T>(inode, file) };
    let mut snap = Snapshot(KVec::new());
    let Some(show) = ops.show else {
        return EINVAL.to_errno();
    };
    if show(data, &mut snap).is_err() {
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
/// Called by the VFS on a file made by `create_file`, whose data and operations are alive.
unsafe extern "C" fn read_callback(
    file: *mut bindings::file,
    buf: *mut c_char,
    len: usize,
    pos: *mut bindings::loff_t,
) -> isize {
    // SAFETY: `private_data` is the snapshot set at open.
    let snap = unsafe { &*(*file).private_data.cast::<Snapshot>() };
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
/// Called by the VFS on a file made by `create_file`, whose data and operations are alive.
unsafe extern "C" fn release_callback(
    _inode: *mut bindings::inode,
    file: *mut bindings::file,
) -> c_int {
    // SAFETY: `private_data` came from `KBox::into_raw` at open.
    drop(unsafe { KBox::from_raw((*file).private_data.cast::<Snapshot>()) });
    0
}

/// # Safety
///
/// Called by the VFS on a file made by `create_file`, whose data and
/// operations are alive.
unsafe extern "C" fn write_callback<T: Sync>(
    file: *mut bindings::file,
    buf: *const c_char,
    len: usize,
    _pos: *mut bindings::loff_t,
) -> isize {
    // SAFETY: an open file has a valid inode.
    let (data, ops) = unsafe { file_data::<T>((*file).f_inode, file) };
    let res = (|| -> Result {
        let store = ops.store.ok_or(EINVAL)?;
        if len > MAX_STORE {
            return Err(EINVAL);
        }
        let mut text = [0u8; MAX_STORE];
        UserSlice::new(buf as usize, len)
            .reader()
            .read_slice(&mut text[..len])?;
        let text = core::str::from_utf8(&text[..len]).map_err(|_| EINVAL)?;
        store(data, text.trim())
    })();
    match res {
        Ok(()) => len as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// File operations for files showing a `T` with `show` and, if writable,
/// taking writes with `store`.
#[repr(C)]
pub(crate) struct FileOps<T: Sync> {
    /// First: the callbacks find the `FileOps` from the real fops.
    fops: bindings::file_operations,
    show: Option<ShowFn<T>>,
    store: Option<StoreFn<T>>,
    _p: PhantomData<T>,
}

// SAFETY: immutable after construction; only read by the VFS.
unsafe impl<T: Sync> Send for FileOps<T> {}
// SAFETY: as above.
unsafe impl<T: Sync> Sync for FileOps<T> {}

impl<T: Sync> FileOps<T> {
    /// Read-only text file operations, owned by `module`.
    pub(crate) fn new(module: &'static ThisModule, show: ShowFn<T>) -> Self {
        Self::with_store(module, Some(show), None)
    }

    /// Text file operations: readable with `show`, writable with `store`.
    pub(crate) fn with_store(
        module: &'static ThisModule,
        show: Option<ShowFn<T>>,
        store: Option<StoreFn<T>>,
    ) -> Self {
        // SAFETY: all-zero is "no operation" for every callback.
        let none: bindings::file_operations = unsafe { core::mem::zeroed() };
        let read = bindings::file_operations {
            open: Some(open_callback::<T>),
            read: Some(read_callback),
            release: Some(release_callback),
            ..none
        };
        let base = if show.is_some() { read } else { none };
        FileOps {
            fops: bindings::file_operations {
                owner: module.as_ptr(),
                write: store.is_some().then_some(write_callback::<T> as _),
                ..base
            },
            show,
            store,
            _p: PhantomData,
        }
    }

    /// The file mode for what the operations allow.
    fn mode(&self) -> u16 {
        (if self.show.is_some() { 0o400 } else { 0 })
            | (if self.store.is_some() { 0o200 } else { 0 })
    }
}

/// Creates a file `name` in `parent` for `data` with `ops`.
///
/// # Safety
///
/// `parent` must be null or a directory of ours; `data` and `ops` must stay
/// valid until the file is removed.
unsafe fn create_file<T: Sync>(
    parent: *mut bindings::dentry,
    name: &CStr,
    data: &T,
    ops: &FileOps<T>,
) {
    // SAFETY: `name` is a C string; the rest is the caller's promise.
    unsafe {
        bindings::debugfs_create_file(
            name.as_char_ptr(),
            ops.mode(),
            parent,
            (data as *const T).cast_mut().cast(),
            &ops.fops,
        );
    }
}

/// A top-level debugfs directory for a module, created at init and
/// removed at exit; devices create their directories in it.
pub(crate) struct Root(AtomicPtr<bindings::dentry>);

impl Root {
    /// No directory yet.
    pub(crate) const fn new() -> Self {
        Root(AtomicPtr::new(null_mut()))
    }

    /// Creates the directory `name` at the top of debugfs.
    pub(crate) fn create(&self, name: &CStr) {
        // SAFETY: `name` is a C string.
        let dir = unsafe { bindings::debugfs_create_dir(name.as_char_ptr(), null_mut()) };
        self.0.store(dir, Ordering::Release);
    }

    fn as_raw(&self) -> *mut bindings::dentry {
        self.0.load(Ordering::Acquire)
    }

    /// Creates a file `name` for `data` with `ops` at the top of the root.
    ///
    /// # Safety
    ///
    /// `data` and `ops` must stay valid until the root is removed.
    pub(crate) unsafe fn file<T: Sync>(&self, name: &CStr, data: &T, ops: &FileOps<T>) {
        // SAFETY: the root is ours (or null); the caller's promise.
        unsafe { create_file(self.as_raw(), name, data, ops) }
    }

    /// Removes the named files at the top of the root (waiting for
    /// running operations on them).
    pub(crate) fn remove_files(&self, names: &[&CStr]) {
        for name in names {
            // SAFETY: `name` is a C string and the root ours (or null).
            unsafe { bindings::debugfs_lookup_and_remove(name.as_char_ptr(), self.as_raw()) };
        }
    }

    /// Removes the directory and everything left in it.
    pub(crate) fn remove(&self) {
        let dir = self.0.swap(null_mut(), Ordering::AcqRel);
        // SAFETY: our directory (or null / an error pointer, which debugfs
        // ignores); removal waits for running file operations.
        unsafe { bindings::debugfs_remove(dir) };
    }
}

/// A debugfs directory, removed (with its files) on drop.
pub(crate) struct Dir(*mut bindings::dentry);

// SAFETY: a dentry pointer is only passed back to debugfs, which is thread
// safe.
unsafe impl Send for Dir {}
// SAFETY: as above.
unsafe impl Sync for Dir {}

impl Dir {
    /// Creates `name` in `root`. Debugfs failures are not errors: the
    /// driver works without its files.
    pub(crate) fn new(name: &CStr, root: &Root) -> Dir {
        let parent = root.as_raw();
        // SAFETY: `name` is a C string; `parent` is null or our directory.
        Dir(unsafe { bindings::debugfs_create_dir(name.as_char_ptr(), parent) })
    }

    /// Creates a file `name` for `data` with `ops`.
    ///
    /// # Safety
    ///
    /// `data` and `ops` must stay valid until this directory is dropped.
    pub(crate) unsafe fn file<T: Sync>(&self, name: &CStr, data: &T, ops: &FileOps<T>) {
        // SAFETY: the directory is ours; the caller's promise.
        unsafe { create_file(self.0, name, data, ops) }
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        // SAFETY: removes our directory (an error pointer or null is
        // ignored by debugfs) and waits for running file operations.
        unsafe { bindings::debugfs_remove(self.0) };
    }
}

/// A directory of read-only files showing one shared `T`. It owns the
/// data (a reference) and the file operations, and drops the directory
/// first, so no file outlives what it shows.
pub(crate) struct Files<T: Send + Sync> {
    /// Declared first: dropped (removed) before the fields below.
    _dir: Dir,
    _ops: KVec<FileOps<T>>,
    _data: Arc<T>,
}

impl<T: Send + Sync> Files<T> {
    /// Creates directory `name` in `root` with one file per entry of
    /// `files`, each showing `data` with its function.
    pub(crate) fn new(
        name: &CStr,
        root: &Root,
        data: Arc<T>,
        files: &[(&CStr, ShowFn<T>)],
        module: &'static ThisModule,
    ) -> Result<Self> {
        let mut ops = KVec::with_capacity(files.len(), GFP_KERNEL)?;
        for (_, show) in files {
            ops.push(FileOps::new(module, *show), GFP_KERNEL)?;
        }
        let dir = Dir::new(name, root);
        for ((file, _), op) in files.iter().zip(ops.iter()) {
            // SAFETY: `data` and `ops` (a heap buffer that never grows
            // again) are owned by the returned `Files`, which drops `dir`
            // before them.
            unsafe { dir.file(file, &*data, op) };
        }
        Ok(Files {
            _dir: dir,
            _ops: ops,
            _data: data,
        })
    }
}
