//! Change records: the unit a device or a primary yields after each operation (`Changes`),
//! whose records are `ChangedRecord` objects, and the records an app loads back to rebuild it.
//! A record's value is secret state, so a record is a class: its bytes come only from its
//! `key` and `value` getters, never from `String(x)`, `JSON.stringify(x)` or `console.log(x)`.

use js_sys::{Array, Uint8Array};
use ratchetry::persist::Changes;
use wasm_bindgen::prelude::*;

use crate::convert::{bytes, num, object};
use crate::error::binding;

#[wasm_bindgen(typescript_custom_section)]
const TS_RECORDS: &'static str = r#"
/**
 * One stored record as the app loads it back (`Device.fromRecords`, `Primary.fromRecords`):
 * the bytes written under `key`. A `ChangedRecord` is one too. A null `value` (a deletion) is
 * skipped.
 */
export interface StoredRecord { key: Uint8Array; value: Uint8Array | null }
/**
 * What one operation changed: write it in one transaction (with `replacesAll`, delete every
 * stored record first), then keep `epoch` for the next restore. `baseEpoch` is the epoch the
 * changes start from: the `epoch` of the previous changes taken from the same state (or the
 * epoch it was loaded at, from records or bytes); null only when they replace all of a new or
 * restored state (write them whatever is stored). A store holding another epoch lacks changes
 * that were never written: refuse these, load from the store again and redo. Changes that
 * replace all and have a base (a state loaded from bytes) go where nothing is stored, or
 * where exactly their base is.
 * `baseTag` (null exactly when `baseEpoch` is) is the 16-byte `tag` of the changes these start
 * from: keep the last `tag` written beside the epoch and refuse changes whose `baseTag` is not
 * it (another live copy of the state, in another tab or worker, wrote since).
 * `role` says whose records these are, a device's or a primary's: each goes to its own store,
 * and a store refuses the other's (a primary's unit written over a device's records, or the
 * reverse, loses the state).
 */
export interface Changes { role: "device" | "primary"; replacesAll: boolean; baseEpoch: number | null; baseTag: Uint8Array | null; epoch: number; tag: Uint8Array; records: ChangedRecord[] }
"#;

#[wasm_bindgen]
extern "C" {
    /// `Changes`.
    #[wasm_bindgen(typescript_type = "Changes")]
    pub type JsChanges;
    /// `StoredRecord[]`.
    #[wasm_bindgen(typescript_type = "StoredRecord[]")]
    pub type JsRecords;
    /// `Uint8Array | null`.
    #[wasm_bindgen(typescript_type = "Uint8Array | null")]
    pub type JsBytesOrNull;
}

/// One record of a `Changes` unit: write `value` under `key`, or delete `key` when `value` is
/// null. The value is secret (keys, sessions); it shows in no string form of the record. Its
/// bytes stay in the wasm memory until `free()` (once written) or garbage collection.
#[wasm_bindgen]
pub struct ChangedRecord {
    key: Vec<u8>,
    value: Option<Vec<u8>>,
}

#[wasm_bindgen]
impl ChangedRecord {
    /// The record's key (a fresh copy).
    #[wasm_bindgen(getter)]
    pub fn key(&self) -> Vec<u8> {
        self.key.clone()
    }

    /// The record's value (secret; a fresh copy), or null: delete the key.
    #[wasm_bindgen(getter)]
    pub fn value(&self) -> JsBytesOrNull {
        self.value
            .as_deref()
            .map_or(JsValue::NULL, bytes)
            .unchecked_into()
    }
}

/// A `Changes` object (a device's or a primary's).
/// A unit as the app stores it; `role` says whose records they are ("device" or "primary"),
/// what the library's two unit types say: each goes to its own store.
pub(crate) fn changes<S>(role: &str, c: Changes<S>) -> JsChanges {
    let records: Array = c
        .records()
        .iter()
        .map(|r| {
            JsValue::from(ChangedRecord {
                key: r.key().to_vec(),
                value: r.value().map(<[u8]>::to_vec),
            })
        })
        .collect();
    JsValue::from(object(&[
        ("role", role.into()),
        ("replacesAll", c.replaces_all().into()),
        (
            "baseEpoch",
            c.base_epoch().map_or(JsValue::NULL, |b| num(b).into()),
        ),
        (
            "baseTag",
            c.base_tag().map_or(JsValue::NULL, |t| {
                Uint8Array::from(&t.to_bytes()[..]).into()
            }),
        ),
        ("epoch", num(c.epoch()).into()),
        ("tag", Uint8Array::from(&c.tag().to_bytes()[..]).into()),
        ("records", records.into()),
    ]))
    .unchecked_into()
}

/// A stored record's key and value.
pub(crate) type KeyValue = (Vec<u8>, Vec<u8>);

/// `StoredRecord[]` as (key, value) pairs, deletions (a null or absent value) skipped. A key
/// or value that is not a `Uint8Array` is `binding.bad_input`.
pub(crate) fn records_in(value: &JsValue) -> Result<Vec<KeyValue>, JsValue> {
    let bad = || binding("binding.bad_input", "expected an array of StoredRecord");
    let array = value.dyn_ref::<Array>().ok_or_else(bad)?;
    // Not sized from `length`: a sparse array claims up to 2^32 - 1 elements, and the
    // allocation would abort the module before its first element is found not to be a record.
    let mut out = Vec::new();
    for r in array.iter() {
        if !r.is_object() {
            return Err(bad());
        }
        let field = |name: &str| js_sys::Reflect::get(&r, &name.into()).map_err(|_| bad());
        let value = field("value")?;
        if value.is_null() || value.is_undefined() {
            continue;
        }
        let key = field("key")?.dyn_into::<Uint8Array>().map_err(|_| bad())?;
        let value = value.dyn_into::<Uint8Array>().map_err(|_| bad())?;
        out.push((key.to_vec(), value.to_vec()));
    }
    Ok(out)
}

/// The pairs as the library's record iterators take them.
pub(crate) fn pairs(records: &[KeyValue]) -> impl Iterator<Item = (&[u8], &[u8])> {
    records.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))
}
