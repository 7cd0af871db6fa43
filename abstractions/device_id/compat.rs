// SPDX-License-Identifier: GPL-2.0

//! The id table part of 7.3's `kernel::device_id`, for 6.12, and its
//! `module_device_table!`: the table exported under the name 6.12's
//! modpost reads the module aliases from, as C's `MODULE_DEVICE_TABLE`.

use core::marker::PhantomData;
use core::mem::MaybeUninit;

/// A bus' device id, a transparent wrapper of its C id structure.
///
/// # Safety
///
/// `Self` must be `repr(transparent)` over `RawType`, adding no
/// invariants.
pub(crate) unsafe trait RawDeviceId {
    /// The C id structure.
    type RawType: Copy;
}

/// A device id with a field for the driver's per-id data.
///
/// # Safety
///
/// `DRIVER_DATA_OFFSET` must be the offset of a pointer-sized field of
/// `RawType`, its `driver_data`.
pub(crate) unsafe trait RawDeviceIdIndex: RawDeviceId {
    /// Offset of `driver_data` in `RawType`.
    const DRIVER_DATA_OFFSET: usize;

    /// The per-id data of this entry.
    ///
    /// # Safety
    ///
    /// `self` must be an entry of an `IdArray<Self, U, _>`.
    unsafe fn info_unchecked<U>(&self) -> &'static U {
        // SAFETY: `IdArray::new` stored a `&'static U` at the offset (the
        // caller's promise), which `RawDeviceIdIndex` makes a field.
        unsafe {
            core::ptr::from_ref(self)
                .byte_add(Self::DRIVER_DATA_OFFSET)
                .cast::<&U>()
                .read()
        }
    }
}

/// `N` ids with their per-id data `U`, then the zeroed entry that ends a
/// table.
#[repr(C)]
pub(crate) struct IdArray<T: RawDeviceId, U: 'static, const N: usize> {
    ids: [MaybeUninit<T::RawType>; N],
    sentinel: MaybeUninit<T::RawType>,
    _p: PhantomData<&'static U>,
}

// SAFETY: immutable, and its data `U` is `Sync`.
unsafe impl<T: RawDeviceId, U: Sync + 'static, const N: usize> Sync for IdArray<T, U, N> {}

impl<T: RawDeviceIdIndex, U: 'static, const N: usize> IdArray<T, U, N> {
    /// The table of `ids`, each with its data.
    // Writes through raw pointers in a constant: this project needs rustc
    // 1.83 or newer on 6.12 too (README).
    #[expect(clippy::incompatible_msrv)]
    pub(crate) const fn new(ids: [(T, &'static U); N]) -> Self {
        let mut raw = [const { MaybeUninit::<T::RawType>::uninit() }; N];
        let mut i = 0;
        while i < N {
            // SAFETY: `T` is a transparent wrapper of `RawType`
            // (`RawDeviceId`).
            raw[i] = unsafe { core::mem::transmute_copy(&ids[i].0) };
            // SAFETY: the offset is that of a pointer-sized field of the
            // entry just written (`RawDeviceIdIndex`).
            unsafe {
                raw[i]
                    .as_mut_ptr()
                    .byte_add(T::DRIVER_DATA_OFFSET)
                    .cast::<&U>()
                    .write(ids[i].1)
            };
            i += 1;
        }
        core::mem::forget(ids);
        IdArray {
            ids: raw,
            sentinel: MaybeUninit::zeroed(),
            _p: PhantomData,
        }
    }
}

/// An id table as a bus reads it.
pub(crate) trait IdTable<T: RawDeviceId, U> {
    /// The first entry; the table ends with a zeroed entry.
    fn as_ptr(&self) -> *const T::RawType;
}

impl<T: RawDeviceId, U, const N: usize> IdTable<T, U> for IdArray<T, U, N> {
    fn as_ptr(&self) -> *const T::RawType {
        core::ptr::from_ref(self).cast()
    }
}

/// Declares the id table `$table_name` of bus `$table_type` with per-id
/// data of type `$id_info_type`, exported as
/// `__mod_<type>__<name>_device_table` for modpost (the module alias).
macro_rules! module_device_table {
    (
        $table_type:literal, $device_id_ty:ty,
        $table_name:ident, $id_info_type:ty,
        [$(($id:expr, $info:expr $(,)?)),* $(,)?]
    ) => {
        #[export_name = concat!("__mod_", $table_type, "__", stringify!($table_name), "_device_table")]
        static $table_name: $crate::abstractions::device_id::IdArray<
            $device_id_ty,
            $id_info_type,
            { <[$device_id_ty]>::len(&[$($id,)*]) },
        > = $crate::abstractions::device_id::IdArray::new([$(($id, &$info),)*]);
    };
}

pub(crate) use module_device_table;
