// SPDX-License-Identifier: GPL-2.0

//! Host build of the ME stub's firmware model (`fw.rs`), so its protocol
//! logic runs under `cargo test`. The kernel module includes the same file.

#![no_std]

#[path = "fw.rs"]
pub mod fw;

#[cfg(test)]
#[path = "fw_tests.rs"]
mod fw_tests;
