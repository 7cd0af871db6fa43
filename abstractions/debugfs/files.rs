// SPDX-License-Identifier: GPL-2.0

//! 7.3's `kernel::debugfs` API, the part this project uses, with
//! `file_operations` that name their module.
//!
//! As on 7.3: a [`Dir`] is a counted handle on a directory, removed with
//! everything in it when the last handle (and the last child directory)
//! goes; a [`Scope`] owns data and a directory of files showing it, and a
//! [`File`] owns the data of one file; each removes its entries (debugfs
//! waits for running file operations) before the data is dropped. A
//! file's callbacks are types (function items or closures without
//! captures), so each kind of file has its own static `file_operations`
//! and the inode points to the data alone. Unlike 7.3's, the operations
//! name their module as `owner`: debugfs holds the module while a file is
//! open, and a close after an attempted `rmmod` cannot call into freed
//! module memory.

use super::super::bindings;
use core::fmt;
use core::marker::{PhantomData, PhantomPinned};
use core::ptr::{addr_of_mut, null_mut, NonNull};
use kernel::ffi::{c_char, c_int, c_void};
use kernel::prelude::*;
use kernel::sync::Arc;
use kernel::uaccess::{UserSlice, UserSliceReader};

/// A directory or file, removed (recursively) on drop; holds its parent,
/// so a parent goes after its children.
///
/// # Invariants
///
/// `dentry` is a directory or file this entry created, or an error pointer
/// or null (debugfs takes both as "none").
struct Entry {
    dentry: *mut bindings::dentry,
    _parent: Option<Arc<Entry>>,
}

// SAFETY: debugfs calls on a dentry are thread safe; the pointer is only
// used to create children and to remove it.
unsafe impl Send for Entry {}
// SAFETY: as above.
unsafe impl Sync for Entry {}

impl Entry {
    fn dir(name: &CStr, parent: Option<Arc<Entry>>) -> Entry {
        let p = parent.as_ref().map_or(null_mut(), |p| p.dentry);
        // SAFETY: `name` is a C string; `p` is null or a live directory of
        // ours (the parent is held).
        let dentry = unsafe { bindings::debugfs_create_dir(name.as_char_ptr(), p) };
        // INVARIANT: created here (or an error pointer).
        Entry {
            dentry,
            _parent: parent,
        }
    }

    /// A file `name` in `parent` for `data`, with `fops`.
    ///
    /// # Safety
    ///
    /// `data` must outlive the file (the entry).
    unsafe fn file<T>(
        name: &CStr,
        mode: u16,
        parent: &Arc<Entry>,
        data: *const T,
        fops: &'static FileOps,
    ) -> Entry {
        // SAFETY: the parent is a live directory of ours (held); the
        // caller keeps `data` valid.
        let dentry = unsafe { create_file(name, mode, parent.dentry, data.cast(), fops) };
        // INVARIANT: created here (or an error pointer).
        Entry {
            dentry,
            _parent: Some(parent.clone()),
        }
    }
}

/// Creates file `name` in `parent` for `data`, with `fops`.
///
/// # Safety
///
/// `parent` must be null, an error pointer or a live directory; `data` must
/// stay valid for the file's operations until the file is removed.
unsafe fn create_file(
    name: &CStr,
    mode: u16,
    parent: *mut bindings::dentry,
    data: *const c_void,
    fops: &'static FileOps,
) -> *mut bindings::dentry {
    // SAFETY: `name` is a C string, the operations static; the rest is the
    // caller's promise.
    unsafe {
        #[cfg(kernel_line = "6.12")]
        return bindings::debugfs_create_file(
            name.as_char_ptr(),
            mode,
            parent,
            data.cast_mut(),
            &fops.0,
        );
        // `debugfs_create_file` is a C macro on 7.3.
        #[cfg(not(kernel_line = "6.12"))]
        return bindings::debugfs_create_file_full(
            name.as_char_ptr(),
            mode,
            parent,
            data.cast_mut(),
            core::ptr::null(),
            &fops.0,
        );
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        // SAFETY: ours (type invariant); removal waits for running file
        // operations on everything in it.
        unsafe { bindings::debugfs_remove(self.dentry) };
    }
}

/// An owning handle to a debugfs directory.
#[derive(Clone)]
pub struct Dir(Option<Arc<Entry>>);

impl Dir {
    /// Creates a directory at the top of debugfs.
    pub fn new(name: &CStr) -> Self {
        Dir(Arc::new(Entry::dir(name, None), GFP_KERNEL).ok())
    }

    /// Creates a subdirectory `name` for `data`; `init` fills it with files
    /// showing the data. It is removed when the [`Scope`] is dropped.
    ///
    /// Unlike 7.3's, it takes the data by value, not as an initialiser:
    /// 6.12 and 7.3 infer an initialiser's error type differently, and
    /// every user here has a value.
    pub fn scope<'a, T: 'a, F>(
        &'a self,
        data: T,
        name: &'a CStr,
        init: F,
    ) -> impl PinInit<Scope<T>, Error> + 'a
    where
        F: for<'data, 'dir> FnOnce(&'data T, &'dir ScopedDir<'data, 'dir>) + 'a,
    {
        Scope::new(data, move |data| {
            // Without a parent (its allocation failed) nothing is made.
            let parent = self.0.as_ref()?;
            let entry = Entry::dir(name, Some(parent.clone()));
            let dir = ScopedDir {
                dentry: entry.dentry,
                _p: PhantomData,
            };
            init(data, &dir);
            Some(entry)
        })
    }

    /// A file `name` in this directory owning `data`.
    fn create_file<'a, T: 'a>(
        &'a self,
        name: &'a CStr,
        mode: u16,
        data: T,
        fops: &'static FileOps,
    ) -> impl PinInit<File<T>, Error> + 'a {
        Scope::new(data, move |data| {
            let parent = self.0.as_ref()?;
            // SAFETY: the scope removes the entry before it drops the data,
            // which is pinned.
            Some(unsafe { Entry::file(name, mode, parent, data, fops) })
        })
    }

    /// Creates a file showing `data` with `F`, whose writes `W` takes.
    pub fn read_write_callback_file<'a, T, F, W>(
        &'a self,
        name: &'a CStr,
        data: T,
        _f: &'static F,
        _w: &'static W,
    ) -> impl PinInit<File<T>, Error> + 'a
    where
        T: Send + Sync + 'static,
        F: Fn(&T, &mut fmt::Formatter<'_>) -> fmt::Result + Send + Sync + 'static,
        W: Fn(&T, &mut UserSliceReader) -> Result + Send + Sync + 'static,
    {
        self.create_file(name, 0o600, data, &Ops::<T, F, W>::READ_WRITE)
    }

    /// Creates a write-only file whose writes `W` takes for `data`.
    pub fn write_callback_file<'a, T, W>(
        &'a self,
        name: &'a CStr,
        data: T,
        _w: &'static W,
    ) -> impl PinInit<File<T>, Error> + 'a
    where
        T: Send + Sync + 'static,
        W: Fn(&T, &mut UserSliceReader) -> Result + Send + Sync + 'static,
    {
        self.create_file(name, 0o200, data, &Ops::<T, (), W>::WRITE)
    }
}

/// A file owning its data; removed before the data is dropped. A
/// [`Scope`] whose entry is the file (7.3 builds its `File` on `Scope`
/// too).
pub type File<T> = Scope<T>;

/// Data and the debugfs entry showing it (a directory of files, or one
/// file); the entry is removed before the data is dropped.
#[pin_data]
pub struct Scope<T> {
    // First: dropped (removed) before `data`.
    entry: Option<Entry>,
    #[pin]
    data: T,
    #[pin]
    _pin: PhantomPinned,
}

impl<T> Scope<T> {
    /// `data`, pinned, with the entry `make` creates for it, if any.
    fn new<'a>(
        data: T,
        make: impl FnOnce(&T) -> Option<Entry> + 'a,
    ) -> impl PinInit<Self, Error> + 'a
    where
        T: 'a,
    {
        try_pin_init!(Scope {
            entry: None,
            data: data,
            _pin: PhantomPinned,
        }? Error)
        .pin_chain(move |scope| {
            let entry = make(&scope.data);
            // SAFETY: `entry` is not structurally pinned.
            unsafe { scope.get_unchecked_mut().entry = entry };
            Ok(())
        })
    }
}

impl<T> core::ops::Deref for Scope<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.data
    }
}

/// A directory being filled by [`Dir::scope`]'s `init`, whose files show
/// data living at least `'data`.
pub struct ScopedDir<'data, 'dir> {
    dentry: *mut bindings::dentry,
    _p: PhantomData<fn(&'data ()) -> &'dir ()>,
}

impl<'data> ScopedDir<'data, '_> {
    /// Creates a read-only file whose text `F` writes for `data`.
    pub fn read_callback_file<T, F>(&self, name: &CStr, data: &'data T, _f: &'static F)
    where
        T: Send + Sync + 'static,
        F: Fn(&T, &mut fmt::Formatter<'_>) -> fmt::Result + Send + Sync,
    {
        self.create_file(name, 0o400, data, &Ops::<T, F, ()>::READ);
    }

    /// Creates a file whose text `F` writes for `data`, and whose writes
    /// `W` takes.
    pub fn read_write_callback_file<T, F, W>(
        &self,
        name: &CStr,
        data: &'data T,
        _f: &'static F,
        _w: &'static W,
    ) where
        T: Send + Sync + 'static,
        F: Fn(&T, &mut fmt::Formatter<'_>) -> fmt::Result + Send + Sync,
        W: Fn(&T, &mut UserSliceReader) -> Result + Send + Sync,
    {
        self.create_file(name, 0o600, data, &Ops::<T, F, W>::READ_WRITE);
    }

    /// Creates a write-only file whose writes `W` takes.
    pub fn write_only_callback_file<T, W>(&self, name: &CStr, data: &'data T, _w: &'static W)
    where
        T: Send + Sync + 'static,
        W: Fn(&T, &mut UserSliceReader) -> Result + Send + Sync,
    {
        self.create_file(name, 0o200, data, &Ops::<T, (), W>::WRITE);
    }

    fn create_file<T>(&self, name: &CStr, mode: u16, data: &'data T, fops: &'static FileOps) {
        // SAFETY: the directory is ours; `data` outlives the file: the
        // `Scope` removes the directory before it drops the data.
        unsafe {
            create_file(
                name,
                mode,
                self.dentry,
                core::ptr::from_ref(data).cast(),
                fops,
            )
        };
    }
}

/// A `file_operations` table, immutable.
struct FileOps(bindings::file_operations);

// SAFETY: immutable; only read by the VFS.
unsafe impl Sync for FileOps {}

/// The callbacks of the files showing `T` with `F` and taking writes with
/// `W`, as types: both are zero-sized (function items or closures without
/// captures), so a callback is made from nothing.
///
/// # Invariants
///
/// Its operations are reached only through the file operations of files
/// made with a `&'static F` (reads) and a `&'static W` (writes).
struct Ops<T, F, W>(PhantomData<Callbacks<T, F, W>>);

/// What [`Ops`] is made of: a function of the data's type, so `Ops` is
/// `Send` and `Sync` whatever `T` is, and the callbacks' types.
type Callbacks<T, F, W> = (fn(&T), F, W);

/// The callback of type `C`, which must be zero-sized.
///
/// # Safety
///
/// `C` must have a value: a `&'static C` was seen (the `_f`/`_w` argument
/// of the call that made the file, the only way to [`Ops`]' operations).
unsafe fn callback<C: 'static>() -> &'static C {
    const { assert!(core::mem::size_of::<C>() == 0, "a callback with captures") };
    // A value of `C` was already made (the caller's promise), so one more
    // reads no memory and breaks no invariant.
    // SAFETY: `C` is zero-sized and inhabited: any aligned non-null
    // pointer is a valid reference to its value.
    unsafe { NonNull::<C>::dangling().as_ref() }
}

/// The data of the file behind `inode`.
///
/// # Safety
///
/// `inode` must be the inode of a file made by `create_file` with data
/// `T`, kept from removal (by the debugfs proxy) while the data is used.
unsafe fn data_of<'a, T>(inode: *mut bindings::inode) -> &'a T {
    // SAFETY: `i_private` is the data given to `debugfs_create_file`,
    // alive while the file exists (the caller's promise).
    unsafe { &*(*inode).i_private.cast::<T>() }
}

/// Formats `T` with `F` into a `seq_file`.
struct SeqWriter(*mut bindings::seq_file);

impl fmt::Write for SeqWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // SAFETY: the `seq_file` of a `show` call in progress.
        unsafe { bindings::seq_write(self.0, s.as_ptr().cast(), s.len()) };
        Ok(())
    }
}

/// Displays data `T` with callback `F`.
struct Shown<'a, T, F>(&'a T, &'a F);

impl<T, F: Fn(&T, &mut fmt::Formatter<'_>) -> fmt::Result> fmt::Display for Shown<'_, T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (self.1)(self.0, f)
    }
}

impl<T: Sync, F, W> Ops<T, F, W>
where
    F: Fn(&T, &mut fmt::Formatter<'_>) -> fmt::Result + Sync + 'static,
{
    /// # Safety
    ///
    /// Called by `seq_read` on a file opened by `open`, whose debugfs
    /// proxy keeps the file from removal during the read.
    unsafe extern "C" fn show(seq: *mut bindings::seq_file, _v: *mut c_void) -> c_int {
        // SAFETY: `private` is the data, set by `single_open` in `open`.
        let data = unsafe { &*(*seq).private.cast::<T>() };
        let _ = fmt::write(
            &mut SeqWriter(seq),
            // SAFETY: only files made with a `&'static F` have `show`.
            format_args!("{}", Shown(data, unsafe { callback::<F>() })),
        );
        0
    }

    /// # Safety
    ///
    /// Called by the debugfs proxy for a file made by `create_file` with
    /// data `T`, kept from removal during the call.
    unsafe extern "C" fn open(inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
        // SAFETY: per the function's contract.
        unsafe { bindings::single_open(file, Some(Self::show), (*inode).i_private) }
    }
}

impl<T: Sync, F, W> Ops<T, F, W>
where
    W: Fn(&T, &mut UserSliceReader) -> Result + Sync + 'static,
{
    /// # Safety
    ///
    /// Called by the debugfs proxy for a file made by `create_file` with
    /// data `T`, kept from removal during the call.
    unsafe extern "C" fn write(
        file: *mut bindings::file,
        buf: *const c_char,
        len: usize,
        _pos: *mut bindings::loff_t,
    ) -> isize {
        // SAFETY: an open file's inode, per the function's contract.
        let data = unsafe { data_of::<T>((*file).f_inode) };
        #[cfg(kernel_line = "6.12")]
        let user = buf as usize;
        #[cfg(not(kernel_line = "6.12"))]
        let user = kernel::uaccess::UserPtr::from_ptr(buf.cast_mut().cast());
        let mut reader = UserSlice::new(user, len).reader();
        // SAFETY: only files made with a `&'static W` have `write`.
        match unsafe { callback::<W>() }(data, &mut reader) {
            Ok(()) => len as isize,
            Err(e) => e.to_errno() as isize,
        }
    }
}

impl<T: Sync, F, W> Ops<T, F, W>
where
    F: Fn(&T, &mut fmt::Formatter<'_>) -> fmt::Result + Sync + 'static,
{
    const READ: FileOps = FileOps(bindings::file_operations {
        // Only the address is taken: no access, no `unsafe`.
        owner: addr_of_mut!(bindings::__this_module),
        open: Some(Self::open),
        read: Some(bindings::seq_read),
        llseek: Some(bindings::seq_lseek),
        release: Some(bindings::single_release),
        // SAFETY: all-zero is "no operation" for every other callback.
        ..unsafe { core::mem::zeroed() }
    });
}

impl<T: Sync, F, W> Ops<T, F, W>
where
    F: Fn(&T, &mut fmt::Formatter<'_>) -> fmt::Result + Sync + 'static,
    W: Fn(&T, &mut UserSliceReader) -> Result + Sync + 'static,
{
    const READ_WRITE: FileOps = FileOps(bindings::file_operations {
        owner: addr_of_mut!(bindings::__this_module),
        open: Some(Self::open),
        read: Some(bindings::seq_read),
        write: Some(Self::write),
        llseek: Some(bindings::seq_lseek),
        release: Some(bindings::single_release),
        // SAFETY: all-zero is "no operation" for every other callback.
        ..unsafe { core::mem::zeroed() }
    });
}

impl<T: Sync, W> Ops<T, (), W>
where
    W: Fn(&T, &mut UserSliceReader) -> Result + Sync + 'static,
{
    const WRITE: FileOps = FileOps(bindings::file_operations {
        owner: addr_of_mut!(bindings::__this_module),
        write: Some(Self::write),
        llseek: Some(bindings::noop_llseek),
        // SAFETY: all-zero is "no operation" for every other callback.
        ..unsafe { core::mem::zeroed() }
    });
}
