//! A shared library that is not a plugin: a well-formed `cdylib` that
//! exports a C function, but not `kalshi_alerts_plugin_entry`. The host
//! must refuse it as "not a plugin" and go on.

/// Something a library might export; not what the host looks for.
#[no_mangle]
pub extern "C" fn answer() -> u32 {
    42
}
