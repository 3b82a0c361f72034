//! Errors as JavaScript `Error`s named `RatchetryError`, with a stable `code` property and
//! what the error names (`account`, `device`, `group`, `envelopeId`, `number`), each set only
//! when the error carries it.

use core::convert::Infallible;

use js_sys::Reflect;
use ratchetry::driver::DriveError;
use wasm_bindgen::JsValue;

use crate::codes::{self, Subject};
use crate::convert;

/// A JavaScript error with `name = "RatchetryError"`, `code` and `message`.
pub(crate) fn js_error(code: &str, message: &str) -> JsValue {
    with_subject(code, message, Subject::default())
}

/// The same, with the properties of what the error names.
fn with_subject(code: &str, message: &str, subject: Subject) -> JsValue {
    let error = js_sys::Error::new(message);
    error.set_name("RatchetryError");
    // Setting a property on a fresh Error object cannot fail; if it somehow did, the error
    // still carries its message.
    let _ = Reflect::set(&error, &"code".into(), &code.into());
    let error: JsValue = error.into();
    set_subject(&error, subject);
    error
}

/// Sets on `target` a property for each thing `subject` names (`account`, `device`, `group`,
/// `envelopeId`, `number`), none for what it does not.
pub(crate) fn set_subject(target: &JsValue, subject: Subject) {
    let named = [
        (
            "account",
            subject.account.map(|a| convert::bytes(&a.to_bytes())),
        ),
        ("device", subject.device.map(convert::address_out)),
        ("group", subject.group.map(|g| convert::bytes(&g.0))),
        (
            "envelopeId",
            subject.envelope_id.map(|e| convert::bytes(&e.0)),
        ),
        // Every number named fits a JavaScript number exactly (at most a u64 chunk index,
        // and those stay far below 2^53).
        ("number", subject.number.map(|n| JsValue::from(n as f64))),
    ];
    for (name, value) in named {
        if let Some(value) = value {
            // Setting a property on a fresh object cannot fail; if it somehow did, the
            // outcome still carries its code and message.
            let _ = Reflect::set(target, &name.into(), &value);
        }
    }
}

/// A binding-level failure (`binding.<what>`).
pub(crate) fn binding(code: &'static str, message: &str) -> JsValue {
    js_error(code, message)
}

/// A library error.
pub(crate) fn lib(e: ratchetry::Error) -> JsValue {
    with_subject(codes::code(&e), &e.to_string(), codes::subject(&e))
}

/// A stepped receive's failure: the device's refusal as a library error, or
/// `driver.unresolved` when the lists fetched did not resolve it.
pub(crate) fn drive(e: DriveError<Infallible>) -> JsValue {
    match e {
        DriveError::Device(e) => lib(e),
        DriveError::Unresolved => js_error(
            "driver.unresolved",
            "the device lists fetched did not resolve the receive",
        ),
        // A receive fetches no bundles.
        DriveError::NoBundles(_) => js_error(
            "driver.no_bundles",
            "the relay served no prekey bundle for a device",
        ),
        DriveError::Directory(never) => match never {},
    }
}

/// A decoding error.
pub(crate) fn decode(e: ratchetry::DecodeError) -> JsValue {
    with_subject(codes::decode(&e), &e.to_string(), codes::decode_subject(&e))
}

/// A device-list or linking error.
pub(crate) fn device(e: ratchetry::DeviceError) -> JsValue {
    with_subject(codes::device(&e), &e.to_string(), codes::device_subject(&e))
}

/// A history-sync error.
pub(crate) fn sync(e: ratchetry::SyncError) -> JsValue {
    with_subject(codes::sync(&e), &e.to_string(), codes::sync_subject(&e))
}
