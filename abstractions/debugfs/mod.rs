// SPDX-License-Identifier: GPL-2.0

//! Debugfs: directories, and files whose data lives in a [`Scope`] or
//! [`File`].
//!
//! The API is 7.3's `kernel::debugfs` (the part mei_wdt and the ME stub
//! use), and the implementation this project's, on both lines: 6.12's
//! kernel crate has no debugfs, and 7.3's `file_operations` name no
//! `owner`, so nothing pins the module while one of its files is open: an
//! `rmmod` then goes through and the file's close calls into freed module
//! memory (scenario `debugfs_open_rmmod`: a page fault in
//! `full_proxy_release` with 7.3's). [`ModuleDir`], a module's top
//! directory reachable from its probes, is this project's too: 7.3 offers
//! only a `static mut` for it.

mod files;
mod module_dir;

pub use files::{Dir, File, Scope};
pub use module_dir::ModuleDir;
