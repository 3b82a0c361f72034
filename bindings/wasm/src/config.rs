//! The options a page passes when it creates an account, links a companion or starts a call:
//! plain JavaScript objects whose every field is optional (an absent field keeps the library's
//! default), converted to the library's `DeviceConfig`, `PrimaryPolicy` and `CallConfig`. A
//! field of the wrong type or out of range, or a name the binding does not know (a typo would
//! otherwise silently keep the default), is `binding.bad_input`.

use js_sys::{Object, Reflect};
use ratchetry::calls::CallConfig;
use ratchetry::devices::{ListLimits, PrimaryPolicy};
use ratchetry::fanout::DeviceConfig;
use wasm_bindgen::prelude::*;

use crate::convert::MAX_SAFE_INTEGER;
use crate::error::binding;

#[wasm_bindgen(typescript_custom_section)]
const TS_CONFIG: &'static str = r#"
/**
 * A device's policies (the library's `DeviceConfig`), stored with it. Every field is optional;
 * an absent one keeps the default shown.
 */
export interface DeviceConfig {
  /** Pairwise sessions. */
  session?: {
    /** Message keys one incoming message may make a session skip (default 2000). */
    maxForwardJump?: number;
    /** Skipped message keys stored for late messages (default 2000). */
    maxSkippedKeys?: number;
  };
  /** Sender keys. */
  group?: {
    /** Message keys one group message may make a sender key skip (default 5000). */
    maxForwardJump?: number;
    /** Skipped message keys stored per sender-key generation (default 2000). */
    maxSkippedKeys?: number;
    /** Sender-key generations kept per (group, sender) (default 4). */
    maxGenerations?: number;
  };
  /** What this device accepts of any account's device list. */
  lists?: ListLimits;
  /** Prekeys. */
  prekeys?: {
    /** Signed prekeys kept, at least 1 (default 3). */
    maxSignedPrekeys?: number;
    /** One-time prekeys held at most (default 1000). */
    maxOneTimePrekeys?: number;
    /** Sessions accepted under one signed prekey (default 100000). */
    maxSessionsPerSignedPrekey?: number;
    /** One-time ML-KEM prekeys held at most (default 100). */
    maxOneTimeKemPrekeys?: number;
    /** Sessions one last-resort ML-KEM prekey may start (default 10000). */
    maxLastResortUses?: number;
  };
  /** How long a sent message can be asked for again, in ms (default 7 days). */
  retryWindowMs?: number;
}
/** What a device (`DeviceConfig.lists`) or a relay (`ServedLists`) accepts of any account's device list. */
export interface ListLimits {
  /** The most companions any account may allow itself (default 16). */
  maxCompanions?: number;
}
/** What a primary applies (the library's `PrimaryPolicy`). Every field is optional. */
export interface PrimaryPolicy {
  /** Signed into every device list the primary signs. */
  account?: {
    /** Companions the account may have (default 4). */
    maxCompanions?: number;
    /** How long a companion stays valid after the list that last renewed it, in ms (default 14 days). */
    companionValidityMs?: number;
  };
  /** How long a link invitation can be answered, in ms (default 10 minutes). */
  linkInvitationValidityMs?: number;
}
/** Options of `createAccount`. */
export interface AccountOptions {
  /** The primary device's config. */
  config?: DeviceConfig;
  /** The primary's policy. */
  policy?: PrimaryPolicy;
  /** One-time prekeys of each kind to make at once, within the config's caps (default 20). */
  oneTimePrekeys?: number;
}
/** Options of `LinkingCompanion.complete`. */
export interface CompanionOptions {
  /** The companion device's config; its `lists` also checks the approval's list. */
  config?: DeviceConfig;
  /** One-time prekeys of each kind to make at once, within the config's caps (default 20). */
  oneTimePrekeys?: number;
}
/** A call's participant caps (the library's `CallConfig`). */
export interface CallConfig {
  /** Group call cap (default 32). */
  maxGroupParticipants?: number;
  /** Room cap (default 50). */
  maxRoomParticipants?: number;
}
"#;

#[wasm_bindgen]
extern "C" {
    /// `AccountOptions`.
    #[wasm_bindgen(typescript_type = "AccountOptions")]
    pub type JsAccountOptions;
    /// `CompanionOptions`.
    #[wasm_bindgen(typescript_type = "CompanionOptions")]
    pub type JsCompanionOptions;
    /// `ListLimits`.
    #[wasm_bindgen(typescript_type = "ListLimits")]
    pub type JsListLimits;
    /// `PrimaryPolicy`.
    #[wasm_bindgen(typescript_type = "PrimaryPolicy")]
    pub type JsPrimaryPolicy;
    /// `CallConfig`.
    #[wasm_bindgen(typescript_type = "CallConfig")]
    pub type JsCallConfig;
}

/// One-time prekeys of each kind a new device makes unless told otherwise.
pub(crate) const DEFAULT_ONE_TIME_PREKEYS: u32 = 20;

/// An options object: `undefined` or `null` is none; anything else must be an object whose
/// property names are all in `known`.
struct Fields(Option<JsValue>);

impl Fields {
    fn of(value: &JsValue, what: &str, known: &[&str]) -> Result<Self, JsValue> {
        if value.is_undefined() || value.is_null() {
            return Ok(Self(None));
        }
        if !value.is_object() {
            return Err(binding(
                "binding.bad_input",
                &format!("{what} must be an object"),
            ));
        }
        for name in Object::keys(value.unchecked_ref::<Object>()).iter() {
            let name = name.as_string().unwrap_or_default();
            if !known.contains(&name.as_str()) {
                return Err(binding(
                    "binding.bad_input",
                    &format!("{what} has no field {name:?}"),
                ));
            }
        }
        Ok(Self(Some(value.clone())))
    }

    fn get(&self, name: &str) -> Result<JsValue, JsValue> {
        match &self.0 {
            None => Ok(JsValue::UNDEFINED),
            Some(o) => Reflect::get(o, &name.into())
                .map_err(|_| binding("binding.bad_input", "expected an object")),
        }
    }

    /// A nested options object.
    fn nested(&self, name: &str, known: &[&str]) -> Result<Self, JsValue> {
        Self::of(&self.get(name)?, name, known)
    }

    /// A whole number in `0..=max`, if present.
    fn number(&self, name: &str, max: f64) -> Result<Option<f64>, JsValue> {
        let v = self.get(name)?;
        if v.is_undefined() || v.is_null() {
            return Ok(None);
        }
        v.as_f64()
            .filter(|n| n.fract() == 0.0 && (0.0..=max).contains(n))
            .map(Some)
            .ok_or_else(|| {
                binding(
                    "binding.bad_input",
                    // As an integer: formatting a float would pull its code into the wasm.
                    &format!("{name} must be a whole number from 0 to {}", max as u64),
                )
            })
    }

    fn u32(&self, name: &str, default: u32) -> Result<u32, JsValue> {
        Ok(self
            .number(name, f64::from(u32::MAX))?
            .map_or(default, |n| n as u32))
    }

    fn u64(&self, name: &str, default: u64) -> Result<u64, JsValue> {
        Ok(self
            .number(name, MAX_SAFE_INTEGER)?
            .map_or(default, |n| n as u64))
    }
}

/// A `DeviceConfig` object (absent: the defaults).
pub(crate) fn device_config(value: &JsValue) -> Result<DeviceConfig, JsValue> {
    let f = Fields::of(
        value,
        "config",
        &["session", "group", "lists", "prekeys", "retryWindowMs"],
    )?;
    let mut c = DeviceConfig::default();
    let s = f.nested("session", &["maxForwardJump", "maxSkippedKeys"])?;
    c.session.max_forward_jump = s.u32("maxForwardJump", c.session.max_forward_jump)?;
    c.session.max_skipped_keys = s.u32("maxSkippedKeys", c.session.max_skipped_keys)?;
    let g = f.nested(
        "group",
        &["maxForwardJump", "maxSkippedKeys", "maxGenerations"],
    )?;
    c.group.max_forward_jump = g.u32("maxForwardJump", c.group.max_forward_jump)?;
    c.group.max_skipped_keys = g.u32("maxSkippedKeys", c.group.max_skipped_keys)?;
    c.group.max_generations = g.u32("maxGenerations", c.group.max_generations)?;
    c.lists = list_limits(&f.get("lists")?, "lists")?;
    let p = f.nested(
        "prekeys",
        &[
            "maxSignedPrekeys",
            "maxOneTimePrekeys",
            "maxSessionsPerSignedPrekey",
            "maxOneTimeKemPrekeys",
            "maxLastResortUses",
        ],
    )?;
    let k = &mut c.prekeys;
    k.max_signed_prekeys = p.u32("maxSignedPrekeys", k.max_signed_prekeys)?;
    if k.max_signed_prekeys == 0 {
        return Err(binding(
            "binding.bad_input",
            "maxSignedPrekeys must be at least 1",
        ));
    }
    k.max_one_time_prekeys = p.u32("maxOneTimePrekeys", k.max_one_time_prekeys)?;
    k.max_sessions_per_signed_prekey = p.u32(
        "maxSessionsPerSignedPrekey",
        k.max_sessions_per_signed_prekey,
    )?;
    k.max_one_time_kem_prekeys = p.u32("maxOneTimeKemPrekeys", k.max_one_time_kem_prekeys)?;
    k.max_last_resort_uses = p.u32("maxLastResortUses", k.max_last_resort_uses)?;
    c.retry_window_ms = f.u64("retryWindowMs", c.retry_window_ms)?;
    Ok(c)
}

/// A `ListLimits` object named `what` in messages (absent: the defaults).
pub(crate) fn list_limits(value: &JsValue, what: &str) -> Result<ListLimits, JsValue> {
    let f = Fields::of(value, what, &["maxCompanions"])?;
    let mut l = ListLimits::default();
    l.max_companions = f.u32("maxCompanions", l.max_companions)?;
    Ok(l)
}

/// A `PrimaryPolicy` object (absent: the defaults).
fn primary_policy(value: &JsValue) -> Result<PrimaryPolicy, JsValue> {
    let f = Fields::of(value, "policy", &["account", "linkInvitationValidityMs"])?;
    let mut p = PrimaryPolicy::default();
    let a = f.nested("account", &["maxCompanions", "companionValidityMs"])?;
    p.account.max_companions = a.u32("maxCompanions", p.account.max_companions)?;
    p.account.companion_validity_ms =
        a.u64("companionValidityMs", p.account.companion_validity_ms)?;
    p.link_invitation_validity_ms =
        f.u64("linkInvitationValidityMs", p.link_invitation_validity_ms)?;
    Ok(p)
}

/// What `createAccount` takes.
pub(crate) struct AccountOptions {
    pub(crate) config: DeviceConfig,
    pub(crate) policy: PrimaryPolicy,
    pub(crate) one_time_prekeys: u32,
}

/// An `AccountOptions` object (absent: the defaults).
pub(crate) fn account_options(value: &JsValue) -> Result<AccountOptions, JsValue> {
    let f = Fields::of(value, "options", &["config", "policy", "oneTimePrekeys"])?;
    Ok(AccountOptions {
        config: device_config(&f.get("config")?)?,
        policy: primary_policy(&f.get("policy")?)?,
        one_time_prekeys: f.u32("oneTimePrekeys", DEFAULT_ONE_TIME_PREKEYS)?,
    })
}

/// A `CompanionOptions` object (absent: the defaults): the config and one-time prekey count.
pub(crate) fn companion_options(value: &JsValue) -> Result<(DeviceConfig, u32), JsValue> {
    let f = Fields::of(value, "options", &["config", "oneTimePrekeys"])?;
    Ok((
        device_config(&f.get("config")?)?,
        f.u32("oneTimePrekeys", DEFAULT_ONE_TIME_PREKEYS)?,
    ))
}

/// A `CallConfig` object (absent: the defaults).
pub(crate) fn call_config(value: &JsValue) -> Result<CallConfig, JsValue> {
    let f = Fields::of(
        value,
        "config",
        &["maxGroupParticipants", "maxRoomParticipants"],
    )?;
    let mut c = CallConfig::default();
    c.max_group_participants = f.u32("maxGroupParticipants", c.max_group_participants)?;
    c.max_room_participants = f.u32("maxRoomParticipants", c.max_room_participants)?;
    Ok(c)
}
