//! The library's policies as records with the library's defaults: [`DeviceConfig`] (stored
//! with each device), [`PrimaryPolicy`] (stored with the primary, its account part signed into
//! every device list) and [`CallConfig`] (kept by each [`Call`](crate::Call)).
//!
//! The default values are written out because UniFFI needs literals; `default_device_config`
//! and its siblings return the library's `Default`, and the Python and Kotlin tests check that
//! a record made with no arguments equals it.

use ratchetry::calls;
use ratchetry::devices;
use ratchetry::fanout;
use ratchetry::group;

/// Pairwise session limits (`ratchetry::SessionConfig`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Record)]
pub struct SessionConfig {
    /// The most message keys one incoming message may make a session derive and skip.
    #[uniffi(default = 2000)]
    pub max_forward_jump: u32,
    /// The most skipped message keys stored for late messages.
    #[uniffi(default = 2000)]
    pub max_skipped_keys: u32,
}

/// Sender-key limits (`ratchetry::group::GroupConfig`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Record)]
pub struct GroupConfig {
    /// The most message keys one group message may make a sender key derive and skip.
    #[uniffi(default = 5000)]
    pub max_forward_jump: u32,
    /// Skipped message keys stored per sender-key generation.
    #[uniffi(default = 2000)]
    pub max_skipped_keys: u32,
    /// Sender-key generations kept per (group, sender).
    #[uniffi(default = 4)]
    pub max_generations: u32,
}

/// What a device accepts of any account's device list (`ratchetry::devices::ListLimits`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Record)]
pub struct ListLimits {
    /// The most companions any account may allow itself.
    #[uniffi(default = 16)]
    pub max_companions: u32,
}

/// Prekey limits (`ratchetry::PreKeyStoreConfig`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Record)]
pub struct PreKeyConfig {
    /// Signed prekeys kept (at least 1).
    #[uniffi(default = 3)]
    pub max_signed_prekeys: u32,
    /// One-time prekeys held at most.
    #[uniffi(default = 1000)]
    pub max_one_time_prekeys: u32,
    /// Sessions accepted under one signed prekey.
    #[uniffi(default = 100000)]
    pub max_sessions_per_signed_prekey: u32,
    /// One-time ML-KEM prekeys held at most.
    #[uniffi(default = 100)]
    pub max_one_time_kem_prekeys: u32,
    /// Sessions one last-resort ML-KEM prekey may start.
    #[uniffi(default = 10000)]
    pub max_last_resort_uses: u32,
}

/// Every policy a device applies, stored with it (`ratchetry::fanout::DeviceConfig`). Given
/// when a device is made (`create_account`, `LinkingCompanion.complete`); a restored device
/// keeps its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Record)]
pub struct DeviceConfig {
    /// Pairwise session limits.
    #[uniffi(default)]
    pub session: SessionConfig,
    /// Sender-key limits.
    #[uniffi(default)]
    pub group: GroupConfig,
    /// What this device accepts of any account's device list.
    #[uniffi(default)]
    pub lists: ListLimits,
    /// Prekey limits.
    #[uniffi(default)]
    pub prekeys: PreKeyConfig,
    /// How long a sent message can be asked for again (older requests are refused as
    /// `fanout.unknown_message`). 7 days.
    #[uniffi(default = 604800000)]
    pub retry_window_ms: u64,
}

/// The account's limits on its own devices, signed into its device list
/// (`ratchetry::devices::AccountPolicy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Record)]
pub struct AccountPolicy {
    /// Companions (devices other than the primary) the account may have.
    #[uniffi(default = 4)]
    pub max_companions: u32,
    /// How long a companion stays valid after the list that renewed it was signed. 14 days.
    #[uniffi(default = 1209600000)]
    pub companion_validity_ms: u64,
}

/// Everything a primary applies (`ratchetry::devices::PrimaryPolicy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Record)]
pub struct PrimaryPolicy {
    /// Signed into every list this primary signs.
    #[uniffi(default)]
    pub account: AccountPolicy,
    /// How long a link invitation can be answered. 10 minutes.
    #[uniffi(default = 600000)]
    pub link_invitation_validity_ms: u64,
}

/// A call's participant caps (`ratchetry::calls::CallConfig`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Record)]
pub struct CallConfig {
    /// Group call cap.
    #[uniffi(default = 32)]
    pub max_group_participants: u32,
    /// Room cap.
    #[uniffi(default = 50)]
    pub max_room_participants: u32,
}

impl From<DeviceConfig> for fanout::DeviceConfig {
    fn from(c: DeviceConfig) -> Self {
        Self {
            session: ratchetry::SessionConfig {
                max_forward_jump: c.session.max_forward_jump,
                max_skipped_keys: c.session.max_skipped_keys,
            },
            group: group::GroupConfig {
                max_forward_jump: c.group.max_forward_jump,
                max_skipped_keys: c.group.max_skipped_keys,
                max_generations: c.group.max_generations,
            },
            lists: devices::ListLimits {
                max_companions: c.lists.max_companions,
            },
            prekeys: ratchetry::PreKeyStoreConfig {
                max_signed_prekeys: c.prekeys.max_signed_prekeys,
                max_one_time_prekeys: c.prekeys.max_one_time_prekeys,
                max_sessions_per_signed_prekey: c.prekeys.max_sessions_per_signed_prekey,
                max_one_time_kem_prekeys: c.prekeys.max_one_time_kem_prekeys,
                max_last_resort_uses: c.prekeys.max_last_resort_uses,
            },
            retry_window_ms: c.retry_window_ms,
        }
    }
}

impl From<PrimaryPolicy> for devices::PrimaryPolicy {
    fn from(p: PrimaryPolicy) -> Self {
        Self {
            account: devices::AccountPolicy {
                max_companions: p.account.max_companions,
                companion_validity_ms: p.account.companion_validity_ms,
            },
            link_invitation_validity_ms: p.link_invitation_validity_ms,
        }
    }
}

impl From<CallConfig> for calls::CallConfig {
    fn from(c: CallConfig) -> Self {
        Self {
            max_group_participants: c.max_group_participants,
            max_room_participants: c.max_room_participants,
        }
    }
}

/// The library's defaults, for a config the app left out.
pub(crate) fn device_config(config: Option<DeviceConfig>) -> fanout::DeviceConfig {
    config.map_or_else(fanout::DeviceConfig::default, Into::into)
}

impl From<fanout::DeviceConfig> for DeviceConfig {
    fn from(c: fanout::DeviceConfig) -> Self {
        Self {
            session: SessionConfig {
                max_forward_jump: c.session.max_forward_jump,
                max_skipped_keys: c.session.max_skipped_keys,
            },
            group: GroupConfig {
                max_forward_jump: c.group.max_forward_jump,
                max_skipped_keys: c.group.max_skipped_keys,
                max_generations: c.group.max_generations,
            },
            lists: ListLimits {
                max_companions: c.lists.max_companions,
            },
            prekeys: PreKeyConfig {
                max_signed_prekeys: c.prekeys.max_signed_prekeys,
                max_one_time_prekeys: c.prekeys.max_one_time_prekeys,
                max_sessions_per_signed_prekey: c.prekeys.max_sessions_per_signed_prekey,
                max_one_time_kem_prekeys: c.prekeys.max_one_time_kem_prekeys,
                max_last_resort_uses: c.prekeys.max_last_resort_uses,
            },
            retry_window_ms: c.retry_window_ms,
        }
    }
}

/// The library's default device config: what `DeviceConfig()` with no arguments must equal
/// (the tests check the literals above against it).
#[uniffi::export]
pub fn default_device_config() -> DeviceConfig {
    fanout::DeviceConfig::default().into()
}

impl From<devices::PrimaryPolicy> for PrimaryPolicy {
    fn from(p: devices::PrimaryPolicy) -> Self {
        Self {
            account: AccountPolicy {
                max_companions: p.account.max_companions,
                companion_validity_ms: p.account.companion_validity_ms,
            },
            link_invitation_validity_ms: p.link_invitation_validity_ms,
        }
    }
}

/// The library's default primary policy (see [`default_device_config`]).
#[uniffi::export]
pub fn default_primary_policy() -> PrimaryPolicy {
    devices::PrimaryPolicy::default().into()
}

/// The library's default call caps (see [`default_device_config`]).
#[uniffi::export]
pub fn default_call_config() -> CallConfig {
    let c = calls::CallConfig::default();
    CallConfig {
        max_group_participants: c.max_group_participants,
        max_room_participants: c.max_room_participants,
    }
}
