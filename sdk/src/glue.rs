//! The C ABI glue that [`crate::export_plugin!`] generates calls to.
//!
//! Not a public interface: a plugin names none of it. Every function the
//! table points to runs its body inside `catch_unwind`, so a panic in the
//! plugin never unwinds into the host; it becomes [`status::PANIC`] with
//! the panic's message.

use std::any::Any;
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

use kalshi_alerts_core::abi::{
    status, ErrorReport, OwnedBuffer, PluginTableV1, StrView, ABI_VERSION,
};
use kalshi_alerts_core::notifier::NotifierKind;
use kalshi_alerts_core::{
    FailureKind, FiredAlert, Notifier, NotifierPlugin, NotifyError, SettingKind, SettingSpec,
    Settings,
};
use serde_json::{json, Value};

use crate::ExportedNotifier;

/// Where a library keeps its table once built: a `static` in the entry
/// function that [`crate::export_plugin!`] generates.
pub struct TableSlot(OnceLock<Option<&'static PluginTableV1>>);

impl TableSlot {
    #[allow(clippy::new_without_default)]
    pub const fn new() -> TableSlot {
        TableSlot(OnceLock::new())
    }

    /// The table of `D`, built on the first call and kept (leaked) for the
    /// life of the library; null if building it panicked.
    pub fn get<D: ExportedNotifier>(&'static self) -> *const PluginTableV1 {
        let table = self.0.get_or_init(|| {
            // Inside a loaded library this hook is the library's own (it
            // links its own std). Its panics are caught and reported to the
            // host, which masks secrets; the default hook would print the
            // message raw to stderr first, secrets and all.
            std::panic::set_hook(Box::new(|_| {}));
            catch_unwind(|| &*Box::leak(Box::new(build_table::<D>()))).ok()
        });
        match table {
            Some(table) => *table,
            None => std::ptr::null(),
        }
    }
}

/// A new table for `D`. Its strings are `'static`: the name and the
/// description are constants, the settings description is leaked.
pub fn build_table<D: ExportedNotifier>() -> PluginTableV1 {
    let settings: &'static str = Box::leak(settings_json(D::SETTINGS).into_boxed_str());
    PluginTableV1 {
        abi_version: ABI_VERSION,
        name: StrView::from_static(D::NAME),
        description: StrView::from_static(D::DESCRIPTION),
        settings_json: StrView::from_static(settings),
        create: create::<D>,
        notify,
        destroy,
        free_buffer,
    }
}

/// The settings description of the ABI: a JSON array, one object per
/// setting, types spelled as [`SettingKind`] shows them, except a choice,
/// which is `"choice"` with its `"choices"`.
pub fn settings_json(specs: &[SettingSpec]) -> String {
    let described: Vec<Value> = specs
        .iter()
        .map(|spec| {
            let mut setting = json!({
                "name": spec.name,
                "type": spec.kind.to_string(),
                "default": spec.default,
                "required": spec.required,
                "secret": spec.secret,
                "help": spec.help,
            });
            if let SettingKind::Choice(options) = spec.kind {
                setting["type"] = json!("choice");
                setting["choices"] = json!(options);
            }
            setting
        })
        .collect();
    Value::Array(described).to_string()
}

/// What an instance handed to the host is: the notifier and the runtime
/// its async methods run on.
struct Instance {
    notifier: Box<dyn Notifier>,
    runtime: tokio::runtime::Runtime,
}

/// A failed call: the status and the report for `error_out`.
type Failure = (i32, ErrorReport);

fn failure(code: i32, message: impl Into<String>) -> Failure {
    (
        code,
        ErrorReport {
            message: message.into(),
            key: None,
            retry_after_ms: None,
        },
    )
}

/// The text of a panic's payload.
fn panic_message(payload: Box<dyn Any + Send>) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// Runs `body`, turning a panic into [`status::PANIC`].
fn guarded<T>(what: &str, body: impl FnOnce() -> Result<T, Failure>) -> Result<T, Failure> {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(outcome) => outcome,
        Err(payload) => Err(failure(
            status::PANIC,
            format!("panic in {what}: {}", panic_message(payload)),
        )),
    }
}

/// Hands a report to the host through `error_out`, if it gave one.
///
/// # Safety
///
/// `error_out` is null or points to an `OwnedBuffer` the host owns.
unsafe fn report(error_out: *mut OwnedBuffer, report: &ErrorReport) {
    if error_out.is_null() {
        return;
    }
    let bytes = serde_json::to_vec(report).unwrap_or_default();
    // SAFETY: the host passed a valid pointer to its buffer; writing over
    // it leaks nothing, since the host puts an empty buffer there.
    unsafe { error_out.write(OwnedBuffer::from_vec(bytes)) };
}

/// # Safety
///
/// `ptr` is null with `len` 0, or points to `len` bytes valid for `'a`.
unsafe fn input<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    // SAFETY: forwarded from the caller.
    unsafe { StrView { ptr, len }.as_bytes() }
}

fn make_instance<D: ExportedNotifier>(settings: &[u8]) -> Result<Instance, Failure> {
    let settings: Settings = serde_json::from_slice(settings).map_err(|e| {
        failure(
            status::INVALID_SETTINGS,
            format!("settings are not a JSON object: {e}"),
        )
    })?;
    let kind = NotifierPlugin {
        name: D::NAME,
        description: D::DESCRIPTION,
        settings: D::SETTINGS,
        build: D::build,
    };
    // Checked again here, so the plugin never builds from settings its own
    // description refuses, whatever the host did.
    let notifier = (&kind as &dyn NotifierKind)
        .instantiate(&settings)
        .map_err(|e| {
            let (code, mut report) = failure(status::INVALID_SETTINGS, e.problem);
            report.key = Some(e.key);
            (code, report)
        })?;
    // Multi-threaded, so that each host thread's `block_on` runs its own
    // call while a worker drives timers and sockets: one call that blocks
    // (a plugin doing blocking I/O) then stalls only itself.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("kalshi-plugin")
        .enable_all()
        .build()
        .map_err(|e| {
            failure(
                status::PERMANENT,
                format!("cannot start the plugin's runtime: {e}"),
            )
        })?;
    Ok(Instance { notifier, runtime })
}

/// `create` of the table.
///
/// # Safety
///
/// As [`kalshi_alerts_core::abi::CreateFn`] says.
pub unsafe extern "C" fn create<D: ExportedNotifier>(
    settings_ptr: *const u8,
    settings_len: usize,
    instance_out: *mut *mut c_void,
    error_out: *mut OwnedBuffer,
) -> i32 {
    let made = guarded("create", || {
        // SAFETY: the host passes `settings_len` bytes valid for the call.
        make_instance::<D>(unsafe { input(settings_ptr, settings_len) })
    });
    match made {
        Ok(instance) if !instance_out.is_null() => {
            let pointer = Box::into_raw(Box::new(instance)).cast::<c_void>();
            // SAFETY: the host passed a valid pointer to write the instance to.
            unsafe { instance_out.write(pointer) };
            status::OK
        }
        Ok(_) => {
            // SAFETY: `error_out` comes from the host as the ABI says.
            unsafe { report(error_out, &failure(status::PERMANENT, "no instance_out").1) };
            status::PERMANENT
        }
        Err((code, failure)) => {
            // SAFETY: as above.
            unsafe { report(error_out, &failure) };
            code
        }
    }
}

fn deliver(instance: &Instance, alert: &[u8]) -> Result<(), Failure> {
    let alert: FiredAlert = serde_json::from_slice(alert).map_err(|e| {
        failure(
            status::PERMANENT,
            format!("the alert from the host cannot be read: {e}"),
        )
    })?;
    instance
        .runtime
        .block_on(instance.notifier.notify(&alert))
        .map_err(|e: NotifyError| {
            let code = match e.kind {
                FailureKind::Retryable => status::RETRYABLE,
                FailureKind::Permanent => status::PERMANENT,
            };
            let (code, mut report) = failure(code, e.message);
            report.retry_after_ms = e.retry_after.map(|d| d.as_millis() as u64);
            (code, report)
        })
}

/// `notify` of the table.
///
/// # Safety
///
/// As [`kalshi_alerts_core::abi::NotifyFn`] says.
pub unsafe extern "C" fn notify(
    instance: *mut c_void,
    alert_ptr: *const u8,
    alert_len: usize,
    error_out: *mut OwnedBuffer,
) -> i32 {
    let outcome = guarded("notify", || {
        if instance.is_null() {
            return Err(failure(status::PERMANENT, "no instance"));
        }
        // SAFETY: a non-null instance is one `create` made, alive until
        // `destroy`, which the host calls only after the last `notify`;
        // `Instance` is `Sync`, so shared use from several threads is sound.
        let instance = unsafe { &*instance.cast::<Instance>() };
        // SAFETY: the host passes `alert_len` bytes valid for the call.
        deliver(instance, unsafe { input(alert_ptr, alert_len) })
    });
    match outcome {
        Ok(()) => status::OK,
        Err((code, failure)) => {
            // SAFETY: `error_out` comes from the host as the ABI says.
            unsafe { report(error_out, &failure) };
            code
        }
    }
}

/// `destroy` of the table.
///
/// # Safety
///
/// As [`kalshi_alerts_core::abi::DestroyFn`] says.
pub unsafe extern "C" fn destroy(instance: *mut c_void) {
    if instance.is_null() {
        return;
    }
    // A panic while dropping is swallowed: there is no one to tell.
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the instance came from `Box::into_raw` in `create`, and
        // the host destroys it once, after its last use.
        let Instance { notifier, runtime } = *unsafe { Box::from_raw(instance.cast::<Instance>()) };
        drop(notifier);
        // Tasks the notifier left behind are not waited for: destroying an
        // instance never blocks the host.
        runtime.shutdown_background();
    }));
}

/// `free_buffer` of the table.
///
/// # Safety
///
/// As [`kalshi_alerts_core::abi::FreeBufferFn`] says.
pub unsafe extern "C" fn free_buffer(buffer: OwnedBuffer) {
    // SAFETY: every buffer this library hands out comes from
    // `OwnedBuffer::from_vec`, and the host returns each once.
    drop(unsafe { buffer.into_vec() });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_message_is_kept() {
        let failed = guarded::<()>("notify", || panic!("boom {}", 42)).unwrap_err();
        assert_eq!(failed.0, status::PANIC);
        assert_eq!(failed.1.message, "panic in notify: boom 42");
    }

    #[test]
    fn choices_are_listed() {
        const SPECS: &[SettingSpec] = &[SettingSpec {
            name: "mode",
            kind: SettingKind::Choice(&["a", "b"]),
            default: Some("a"),
            required: false,
            secret: false,
            help: "how",
        }];
        let json: Value = serde_json::from_str(&settings_json(SPECS)).unwrap();
        assert_eq!(json[0]["type"], "choice");
        assert_eq!(json[0]["choices"], json!(["a", "b"]));
        assert_eq!(json[0]["default"], "a");
    }
}
