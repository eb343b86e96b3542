//! The C ABI between the host and notifier plugins loaded at run time.
//!
//! A run-time plugin is a shared library (`cdylib`) that exports one
//! function, [`ENTRY_SYMBOL`], returning a pointer to a [`PluginTableV1`].
//! Everything that crosses the boundary is a `#[repr(C)]` type defined here:
//! integers, pointers with explicit lengths, and function pointers with the
//! C calling convention. Rust's own ABI is not stable between compiler
//! versions, so no Rust type (no `String`, no `Box<dyn Trait>`, no
//! `Result`) ever crosses it.
//!
//! # Data
//!
//! Structured data crosses as UTF-8 JSON with an explicit length, never
//! NUL-terminated: the settings of an instance (a JSON object), a fired
//! alert (the same object the `file` notifier writes), the description of
//! the settings (a JSON array, see [`PluginTableV1::settings_json`]) and
//! failure reports (see [`ErrorReport`]).
//!
//! # Ownership
//!
//! - The strings of the table ([`StrView`]s) belong to the plugin and stay
//!   valid for as long as the library is loaded. The host never unloads a
//!   plugin library, so they are valid for the life of the process.
//! - The bytes the host passes in (settings, an alert) are borrowed for the
//!   duration of the call only. The plugin copies what it wants to keep.
//! - An error report is an [`OwnedBuffer`] that the plugin allocates and
//!   writes through the `error_out` pointer. The host reads it and gives it
//!   back to the plugin's [`PluginTableV1::free_buffer`], exactly once; the
//!   host never frees it itself, since the two sides may use different
//!   allocators.
//! - An instance made by `create` belongs to the host until it passes it to
//!   `destroy`, exactly once, after its last `notify` call has returned.
//!
//! # Threads
//!
//! The host may call `notify` on one instance from several threads at once,
//! and `create`, `notify` and `destroy` from any thread. It calls them from
//! threads of its own, never from inside its async runtime, so a plugin may
//! block and may run an async runtime of its own.
//!
//! # Versions
//!
//! [`ABI_VERSION`] changes whenever the table, a signature, a status code or
//! the meaning of a JSON document changes in a way an existing plugin or
//! host would misread. The host reads only [`PluginTableV1::abi_version`]
//! before it checks it, and refuses a plugin of any other version, saying
//! which one it speaks.

use std::ffi::c_void;

/// The version of this ABI. The host loads only plugins whose table says
/// the same.
pub const ABI_VERSION: u32 = 1;

/// The name of the function every plugin exports, `extern "C" fn() ->
/// *const PluginTableV1`.
pub const ENTRY_SYMBOL: &str = "kalshi_alerts_plugin_entry";

/// [`ENTRY_SYMBOL`] with the NUL byte a symbol lookup needs.
pub const ENTRY_SYMBOL_NUL: &[u8] = b"kalshi_alerts_plugin_entry\0";

/// Status codes returned by `create` and `notify`.
pub mod status {
    /// Success.
    pub const OK: i32 = 0;
    /// The delivery failed and may succeed later (a timeout, a refused
    /// connection): the host retries it with backoff.
    pub const RETRYABLE: i32 = 1;
    /// The delivery or creation failed and will fail the same way again.
    pub const PERMANENT: i32 = 2;
    /// `create` refused the settings it was given.
    pub const INVALID_SETTINGS: i32 = 3;
    /// The plugin panicked; its glue caught the panic. Treated as a
    /// permanent failure.
    pub const PANIC: i32 = 4;
}

/// A borrowed run of bytes, UTF-8 text or JSON: a pointer and a length, no
/// terminating NUL. An empty view may have a null pointer.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct StrView {
    pub ptr: *const u8,
    pub len: usize,
}

// SAFETY: a view is a pointer and a length, and the ABI only ever uses it
// for immutable data: the strings of a table, which live as long as the
// library, and input borrowed for one call. Reading immutable bytes from
// several threads is sound.
unsafe impl Send for StrView {}
// SAFETY: as above; nothing is ever written through a `StrView`.
unsafe impl Sync for StrView {}

impl StrView {
    /// The empty view.
    pub const EMPTY: StrView = StrView {
        ptr: std::ptr::null(),
        len: 0,
    };

    /// A view of a string that lives for the whole program.
    pub const fn from_static(text: &'static str) -> StrView {
        StrView {
            ptr: text.as_ptr(),
            len: text.len(),
        }
    }

    /// The bytes viewed.
    ///
    /// # Safety
    ///
    /// `ptr` must be null with `len` 0, or point to `len` initialised bytes
    /// that stay valid and unchanged for `'a`.
    pub unsafe fn as_bytes<'a>(&self) -> &'a [u8] {
        if self.ptr.is_null() || self.len == 0 {
            return &[];
        }
        // SAFETY: the caller promises `ptr` points to `len` valid bytes.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// Bytes allocated by the plugin and handed to the host, which returns them
/// to the plugin's `free_buffer` once read. `ptr`, `len` and `cap` are the
/// parts of the plugin's own allocation (a Rust `Vec<u8>` in the SDK); the
/// host reads `len` bytes from `ptr` and never frees them itself. An empty
/// buffer has a null pointer and need not be freed.
#[repr(C)]
#[derive(Debug)]
pub struct OwnedBuffer {
    pub ptr: *mut u8,
    pub len: usize,
    pub cap: usize,
}

impl OwnedBuffer {
    /// No buffer: what the host puts in `error_out` before a call.
    pub const EMPTY: OwnedBuffer = OwnedBuffer {
        ptr: std::ptr::null_mut(),
        len: 0,
        cap: 0,
    };

    /// Whether the buffer holds nothing to read or free.
    pub fn is_empty(&self) -> bool {
        self.ptr.is_null()
    }

    /// Hands a vector's allocation over as a buffer. Only the library that
    /// made the vector may turn the buffer back into one
    /// ([`OwnedBuffer::into_vec`]).
    pub fn from_vec(bytes: Vec<u8>) -> OwnedBuffer {
        let mut bytes = std::mem::ManuallyDrop::new(bytes);
        OwnedBuffer {
            ptr: bytes.as_mut_ptr(),
            len: bytes.len(),
            cap: bytes.capacity(),
        }
    }

    /// The bytes of the buffer, for the side that reads it.
    ///
    /// # Safety
    ///
    /// The buffer must be empty, or come from [`OwnedBuffer::from_vec`] (or
    /// an equivalent allocation of `len` initialised bytes) and not have
    /// been freed yet.
    pub unsafe fn as_bytes(&self) -> &[u8] {
        if self.ptr.is_null() {
            return &[];
        }
        // SAFETY: the caller promises `ptr` points to `len` initialised bytes.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// Takes the allocation back as the vector it was made from.
    ///
    /// # Safety
    ///
    /// The buffer must come from [`OwnedBuffer::from_vec`] in this same
    /// library (same allocator), and must not be used again.
    pub unsafe fn into_vec(self) -> Vec<u8> {
        if self.ptr.is_null() {
            return Vec::new();
        }
        // SAFETY: the parts come from a `Vec<u8>` of this library, as the
        // caller promises, and are used once.
        unsafe { Vec::from_raw_parts(self.ptr, self.len, self.cap) }
    }
}

/// The function a plugin exports under [`ENTRY_SYMBOL`]. It returns a
/// pointer to a table that stays valid as long as the library is loaded,
/// or null when the plugin cannot start.
pub type EntryFn = extern "C" fn() -> *const PluginTableV1;

/// Makes an instance from its settings: a JSON object of `settings_len`
/// bytes at `settings_ptr`, defaults already filled in and checked against
/// the table's settings description by the host. On success writes the
/// instance (any pointer, null allowed) to `*instance_out` and returns
/// [`status::OK`]. On failure returns [`status::INVALID_SETTINGS`],
/// [`status::PERMANENT`] or [`status::PANIC`] and may write an
/// [`ErrorReport`] to `*error_out`.
pub type CreateFn = unsafe extern "C" fn(
    settings_ptr: *const u8,
    settings_len: usize,
    instance_out: *mut *mut c_void,
    error_out: *mut OwnedBuffer,
) -> i32;

/// Delivers one alert, given as a JSON object of `alert_len` bytes at
/// `alert_ptr`, through `instance`: one attempt, no retries (the host
/// retries). Returns [`status::OK`], [`status::RETRYABLE`],
/// [`status::PERMANENT`] or [`status::PANIC`], and on failure may write an
/// [`ErrorReport`] to `*error_out`. May be called from several threads at
/// once.
pub type NotifyFn = unsafe extern "C" fn(
    instance: *mut c_void,
    alert_ptr: *const u8,
    alert_len: usize,
    error_out: *mut OwnedBuffer,
) -> i32;

/// Frees an instance made by `create`. Called once, after every `notify`
/// call on it has returned.
pub type DestroyFn = unsafe extern "C" fn(instance: *mut c_void);

/// Frees a buffer the plugin handed to the host.
pub type FreeBufferFn = unsafe extern "C" fn(buffer: OwnedBuffer);

/// What a plugin's entry function returns: version 1 of the table.
///
/// The function pointers are declared `unsafe extern "C" fn` on the Rust
/// side because they take raw pointers; at the machine level they are
/// plain C function pointers.
#[repr(C)]
pub struct PluginTableV1 {
    /// Must be the first field: the host reads only this before checking
    /// it against [`ABI_VERSION`].
    pub abi_version: u32,
    /// The notifier kind's name, as written in `kind = "..."`: UTF-8, not
    /// empty, no white space.
    pub name: StrView,
    /// One line saying what the kind does, UTF-8.
    pub description: StrView,
    /// A JSON array describing each setting the kind accepts:
    /// `{"name": "path", "type": "path", "default": null, "required": true,
    /// "secret": false, "help": "..."}`. `type` is one of `string`, `path`,
    /// `URL` (or `url`), `boolean` (or `bool`), `integer`, `string or list
    /// of strings` (or `string_list`), `table of strings` (or `table`), or
    /// `choice` with the allowed values in `"choices": ["a", "b"]` (or
    /// `one of a, b`). `default` is a string or null; `required`, `secret`
    /// and `help` may be left out (false, false, empty).
    pub settings_json: StrView,
    pub create: CreateFn,
    pub notify: NotifyFn,
    pub destroy: DestroyFn,
    pub free_buffer: FreeBufferFn,
}

/// The JSON object a plugin writes to `error_out` on failure. A buffer that
/// is not such an object is read as the message itself, as plain UTF-8
/// text.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErrorReport {
    /// What went wrong, for the person reading the log.
    pub message: String,
    /// For [`status::INVALID_SETTINGS`]: the setting at fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// For [`status::RETRYABLE`]: how long the receiver asked to wait, in
    /// milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl ErrorReport {
    /// Reads a report from the bytes of an error buffer.
    pub fn parse(bytes: &[u8]) -> ErrorReport {
        serde_json::from_slice(bytes).unwrap_or_else(|_| ErrorReport {
            message: String::from_utf8_lossy(bytes).trim().to_string(),
            key: None,
            retry_after_ms: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_the_first_field() {
        assert_eq!(std::mem::offset_of!(PluginTableV1, abi_version), 0);
    }

    #[test]
    fn a_buffer_round_trips_within_one_library() {
        let buffer = OwnedBuffer::from_vec(b"boom".to_vec());
        // SAFETY: made by from_vec just above, used once.
        assert_eq!(unsafe { buffer.as_bytes() }, b"boom");
        // SAFETY: as above.
        assert_eq!(unsafe { buffer.into_vec() }, b"boom");
        assert!(OwnedBuffer::EMPTY.is_empty());
    }

    #[test]
    fn an_error_report_is_json_or_plain_text() {
        let json = br#"{"message": "nope", "retry_after_ms": 1500}"#;
        assert_eq!(ErrorReport::parse(json).retry_after_ms, Some(1500));
        assert_eq!(ErrorReport::parse(b"disk full\n").message, "disk full");
    }
}
