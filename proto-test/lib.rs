// SPDX-License-Identifier: GPL-2.0

//! Host build of the kernel module's protocol code, for `cargo test`.

#![no_std]

#[path = "../mei_wdt_proto.rs"]
pub mod proto;

#[cfg(test)]
#[path = "../mei_wdt_proto_tests.rs"]
mod tests;

#[cfg(test)]
mod interleave;

#[cfg(test)]
mod fuzz;
