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

use kernel::prelude::*;
use kernel::uaccess::UserSliceReader;

/// Longest line a write may carry.
pub const MAX_LINE: usize = 256;

/// Reads what was written to a file, at most [`MAX_LINE`] bytes, as text
/// without ASCII whitespace at either end.
pub fn read_line<'a>(reader: &mut UserSliceReader, buf: &'a mut [u8; MAX_LINE]) -> Result<&'a str> {
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
