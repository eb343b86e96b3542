//! A deliberately broken plugin: it exports the entry function, but the
//! table it returns says ABI version 2, as a plugin built for a later
//! version of the host might. The host must read the version, and nothing
//! else, and refuse the library saying which version it speaks.
//!
//! Written by hand, without the SDK, to look like such a plugin: a table
//! whose first field is the version and whose layout after it is not
//! version 1's.

/// What a future version of the table might look like.
#[repr(C)]
pub struct FutureTable {
    pub abi_version: u32,
    pub flags: u64,
    pub name: *const u8,
    pub name_len: usize,
}

/// The table is immutable and points only to a static string.
struct Shared(FutureTable);

// SAFETY: the table is never written, and its one pointer is to a string
// literal, which lives as long as the library; sharing it between threads
// is sound. (A deliberately broken example: plugin authors use the SDK
// and write no unsafe.)
unsafe impl Sync for Shared {}

static NAME: &str = "from-the-future";

static TABLE: Shared = Shared(FutureTable {
    abi_version: 2,
    flags: u64::MAX,
    name: NAME.as_ptr(),
    name_len: NAME.len(),
});

/// The entry point, as the ABI names it.
#[no_mangle]
pub extern "C" fn kalshi_alerts_plugin_entry() -> *const FutureTable {
    &TABLE.0
}
