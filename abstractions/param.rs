// SPDX-License-Identifier: GPL-2.0

//! Unsigned integer module parameters (C `module_param(name, uint, perm)`),
//! which the 6.12 `module!` macro does not offer yet.

use super::bindings;
use core::sync::atomic::{AtomicU32, Ordering};

/// The value of a `uint` module parameter; the kernel's `param_ops_uint`
/// stores into it when the parameter is set at load time or through sysfs.
#[repr(transparent)]
pub(crate) struct UintParam(AtomicU32);

impl UintParam {
    /// A parameter with its default value.
    pub(crate) const fn new(default: u32) -> Self {
        UintParam(AtomicU32::new(default))
    }

    /// The current value.
    pub(crate) fn get(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }

    /// The storage `param_ops_uint` writes (an aligned `unsigned int`).
    pub(crate) const fn as_arg(&'static self) -> *mut core::ffi::c_void {
        self.0.as_ptr().cast()
    }
}

/// A `struct kernel_param` in the `__param` section, where the module
/// loader finds the module's parameters.
#[repr(transparent)]
pub(crate) struct KernelParam(pub(crate) bindings::kernel_param);

// SAFETY: the descriptor is immutable; the pointers in it are to statics
// and to the module, which the module loader uses under its own locking.
unsafe impl Sync for KernelParam {}

/// Declares a `uint` module parameter `$name` (a [`UintParam`] static),
/// with its `__param` descriptor and `modinfo` entries.
macro_rules! module_param_uint {
    ($name:ident, $default:expr, $perm:expr, $desc:literal) => {
        pub(crate) static $name: $crate::abstractions::param::UintParam =
            $crate::abstractions::param::UintParam::new($default);

        #[doc(hidden)]
        mod $name {
            const NAME: &core::ffi::CStr = match core::ffi::CStr::from_bytes_with_nul(
                concat!(stringify!($name), "\0").as_bytes(),
            ) {
                Ok(s) => s,
                Err(_) => panic!("parameter name"),
            };

            #[link_section = "__param"]
            #[used(compiler)]
            pub(super) static PARAM: $crate::abstractions::param::KernelParam =
                $crate::abstractions::param::KernelParam(
                    $crate::abstractions::bindings::kernel_param {
                        name: $crate::abstractions::c_chars(NAME),
                        // Only addresses are taken: no access, no `unsafe`.
                        mod_: core::ptr::addr_of_mut!(
                            $crate::abstractions::bindings::__this_module
                        ),
                        ops: core::ptr::addr_of!($crate::abstractions::bindings::param_ops_uint),
                        perm: $perm,
                        level: -1,
                        flags: 0,
                        __bindgen_anon_1:
                            $crate::abstractions::bindings::kernel_param__bindgen_ty_1 {
                                arg: super::$name.as_arg(),
                            },
                    },
                );

            const TYPE: &str = concat!("parmtype=", stringify!($name), ":uint\0");
            #[link_section = ".modinfo"]
            #[used(compiler)]
            pub(super) static PARMTYPE: [u8; TYPE.len()] = $crate::abstractions::param::bytes(TYPE);

            const DESC: &str = concat!("parm=", stringify!($name), ":", $desc, "\0");
            #[link_section = ".modinfo"]
            #[used(compiler)]
            pub(super) static PARM: [u8; DESC.len()] = $crate::abstractions::param::bytes(DESC);
        }
    };
}

pub(crate) use module_param_uint;

/// Copies a string into a byte array of its length (for `.modinfo`).
pub(crate) const fn bytes<const N: usize>(s: &str) -> [u8; N] {
    let src = s.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = src[i];
        i += 1;
    }
    out
}
