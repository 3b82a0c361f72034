//! Errors as JavaScript `Error`s named `RatchetryError`, with a stable `code` property.

use core::convert::Infallible;

use js_sys::Reflect;
use ratchetry::driver::DriveError;
use wasm_bindgen::JsValue;

use crate::codes;

/// A JavaScript error with `name = "RatchetryError"`, `code` and `message`.
pub(crate) fn js_error(code: &str, message: &str) -> JsValue {
    let error = js_sys::Error::new(message);
    error.set_name("RatchetryError");
    // Setting a property on a fresh Error object cannot fail; if it somehow did, the error
    // still carries its message.
    let _ = Reflect::set(&error, &"code".into(), &code.into());
    error.into()
}

/// A binding-level failure (`binding.<what>`).
pub(crate) fn binding(code: &'static str, message: &str) -> JsValue {
    js_error(code, message)
}

/// A library error.
pub(crate) fn lib(e: ratchetry::Error) -> JsValue {
    js_error(codes::code(&e), &e.to_string())
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
    js_error(codes::decode(&e), &e.to_string())
}

/// A device-list or linking error.
pub(crate) fn device(e: ratchetry::DeviceError) -> JsValue {
    js_error(codes::device(&e), &e.to_string())
}

/// A history-sync error.
pub(crate) fn sync(e: ratchetry::SyncError) -> JsValue {
    js_error(codes::sync(&e), &e.to_string())
}
