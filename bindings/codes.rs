//! Stable error codes for the bindings, derived from `ratchetry::Error`'s variants.
//!
//! Both binding crates include this one file (`#[path]`), so a Kotlin, Swift, Python or
//! JavaScript app sees the same code for the same failure. A code is `layer.variant` in
//! snake case; it never changes once published. The library's enums are `#[non_exhaustive]`:
//! a variant added later maps to `layer.other` until it gets its own code here.
//! Codes for binding-level failures (bad input shapes, an unavailable RNG) start with
//! `binding.`.

use ratchetry::{
    CryptoError, DecodeError, DeviceError, Error, FanoutError, GroupError, RatchetError,
    ServerError, StateError, SyncError, X3dhError,
};

/// The stable code of a library error.
pub(crate) fn code(error: &Error) -> &'static str {
    match error {
        Error::Decode(e) => decode(e),
        Error::Crypto(e) => match e {
            CryptoError::NonContributory => "crypto.non_contributory",
            CryptoError::BadSignature => "crypto.bad_signature",
            CryptoError::AuthenticationFailed => "crypto.authentication_failed",
            _ => "crypto.other",
        },
        Error::X3dh(e) => match e {
            X3dhError::BadSignedPreKeySignature => "x3dh.bad_signed_prekey_signature",
            X3dhError::UnknownSignedPreKey(_) => "x3dh.unknown_signed_prekey",
            X3dhError::UnknownOneTimePreKey(_) => "x3dh.unknown_one_time_prekey",
            X3dhError::Replayed => "x3dh.replayed",
            X3dhError::SignedPreKeyExhausted(_) => "x3dh.signed_prekey_exhausted",
            X3dhError::NonContributory => "x3dh.non_contributory",
            X3dhError::BadKemPreKeySignature => "x3dh.bad_kem_prekey_signature",
            X3dhError::UnknownKemPreKey(_) => "x3dh.unknown_kem_prekey",
            X3dhError::LastResortExhausted(_) => "x3dh.last_resort_exhausted",
            _ => "x3dh.other",
        },
        Error::Ratchet(e) => match e {
            RatchetError::AuthenticationFailed => "ratchet.authentication_failed",
            RatchetError::Duplicate => "ratchet.duplicate",
            RatchetError::TooFarAhead { .. } => "ratchet.too_far_ahead",
            RatchetError::WrongSession => "ratchet.wrong_session",
            RatchetError::ChainExhausted => "ratchet.chain_exhausted",
            RatchetError::NotPostQuantum => "ratchet.not_post_quantum",
            _ => "ratchet.other",
        },
        Error::Group(e) => match e {
            GroupError::UnknownSender => "group.unknown_sender",
            GroupError::UnknownKeyId(_) => "group.unknown_key_id",
            GroupError::PredatesKey(_) => "group.predates_key",
            GroupError::BadSignature => "group.bad_signature",
            GroupError::AuthenticationFailed => "group.authentication_failed",
            GroupError::Duplicate => "group.duplicate",
            GroupError::TooFarAhead { .. } => "group.too_far_ahead",
            GroupError::ConflictingDistribution => "group.conflicting_distribution",
            GroupError::ChainExhausted => "group.chain_exhausted",
            GroupError::ContextTooLong => "group.context_too_long",
            _ => "group.other",
        },
        Error::Device(e) => device(e),
        Error::Fanout(e) => match e {
            FanoutError::NotForThisDevice => "fanout.not_for_this_device",
            FanoutError::UnknownAccount(_) => "fanout.unknown_account",
            FanoutError::DeviceListsDiverge { .. } => "fanout.device_lists_diverge",
            FanoutError::NoSession(_) => "fanout.no_session",
            FanoutError::IdentityMismatch(_) => "fanout.identity_mismatch",
            FanoutError::SenderKeyMissing { .. } => "fanout.sender_key_missing",
            FanoutError::Withheld => "fanout.withheld",
            FanoutError::ThisDeviceInactive => "fanout.this_device_inactive",
            FanoutError::ThisDeviceExpired => "fanout.this_device_expired",
            FanoutError::AwaitingOwnList => "fanout.awaiting_own_list",
            FanoutError::RetryLimit => "fanout.retry_limit",
            FanoutError::AskLater { .. } => "fanout.ask_later",
            FanoutError::Duplicate { .. } => "fanout.duplicate",
            FanoutError::UnknownGroup(_) => "fanout.unknown_group",
            FanoutError::GroupUnconfirmed(_) => "fanout.group_unconfirmed",
            FanoutError::ReservedReason(_) => "fanout.reserved_reason",
            FanoutError::NotAGroupDevice(_) => "fanout.not_a_group_device",
            FanoutError::NotAMember { .. } => "fanout.not_a_member",
            FanoutError::TooManyMembers { .. } => "fanout.too_many_members",
            FanoutError::UnknownMessage => "fanout.unknown_message",
            FanoutError::NotEntitled => "fanout.not_entitled",
            FanoutError::UnexpectedResend => "fanout.unexpected_resend",
            FanoutError::BodyMismatch => "fanout.body_mismatch",
            _ => "fanout.other",
        },
        Error::Sync(e) => sync(e),
        Error::Server(e) => server(e),
        Error::State(e) => match e {
            StateError::Rollback { .. } => "state.rollback",
            _ => "state.other",
        },
        _ => "other",
    }
}

/// The stable code of a decoding error.
pub(crate) fn decode(e: &DecodeError) -> &'static str {
    match e {
        DecodeError::Truncated => "decode.truncated",
        DecodeError::TrailingBytes => "decode.trailing_bytes",
        DecodeError::UnknownVersion(_) => "decode.unknown_version",
        DecodeError::UnknownType(_) => "decode.unknown_type",
        DecodeError::InvalidValue => "decode.invalid_value",
        DecodeError::InvalidKey => "decode.invalid_key",
        DecodeError::MissingRecord(_) => "decode.missing_record",
        _ => "decode.other",
    }
}

/// The stable code of a device-list or linking error.
pub(crate) fn device(e: &DeviceError) -> &'static str {
    match e {
        DeviceError::WrongAccount => "device.wrong_account",
        DeviceError::BadSignature => "device.bad_signature",
        DeviceError::Rollback { .. } => "device.rollback",
        DeviceError::Equivocation => "device.equivocation",
        DeviceError::InvalidList => "device.invalid_list",
        DeviceError::TooManyCompanions => "device.too_many_companions",
        DeviceError::PolicyAboveCeiling { .. } => "device.policy_above_ceiling",
        DeviceError::PolicyDowngrade => "device.policy_downgrade",
        DeviceError::BadBinding(_) => "device.bad_binding",
        DeviceError::NotInList(_) => "device.not_in_list",
        DeviceError::CompanionExpired(_) => "device.companion_expired",
        DeviceError::UnknownInvitation => "device.unknown_invitation",
        DeviceError::AlreadyLinked => "device.already_linked",
        DeviceError::NotPrimary => "device.not_primary",
        DeviceError::WrongList => "device.wrong_list",
        DeviceError::ResyncRequired => "device.resync_required",
        _ => "device.other",
    }
}

/// The stable code of a history-sync or call error.
pub(crate) fn sync(e: &SyncError) -> &'static str {
    match e {
        SyncError::ChunkRejected(_) => "sync.chunk_rejected",
        SyncError::TooManyChunks => "sync.too_many_chunks",
        SyncError::Incomplete => "sync.incomplete",
        SyncError::AppDataTooLong => "sync.app_data_too_long",
        SyncError::MembershipTooLarge { .. } => "sync.membership_too_large",
        SyncError::CallFull => "sync.call_full",
        SyncError::StaleCallKey => "sync.stale_call_key",
        SyncError::CallKeyAhead { .. } => "sync.call_key_ahead",
        SyncError::NotInCall => "sync.not_in_call",
        SyncError::NotCallManager => "sync.not_call_manager",
        _ => "sync.other",
    }
}

/// The stable code of a relay check's refusal (the server helpers a relay runs).
pub(crate) fn server(e: &ServerError) -> &'static str {
    match e {
        ServerError::Uncovered(_) => "server.uncovered",
        ServerError::CoveredTwice(_) => "server.covered_twice",
        ServerError::UnknownAccount(_) => "server.unknown_account",
        ServerError::StaleList { .. } => "server.stale_list",
        ServerError::DeviceLeftOut(_) => "server.device_left_out",
        ServerError::NotListed(_) => "server.not_listed",
        ServerError::IdentityMismatch(_) => "server.identity_mismatch",
        ServerError::NotABaseBundle => "server.not_a_base_bundle",
        ServerError::DuplicatePreKeyId(_) => "server.duplicate_prekey_id",
        ServerError::PoolFull => "server.pool_full",
        _ => "server.other",
    }
}

/// What a library error names, for the app to act on as the guide's table says (fetch
/// `account`'s list, ask `device` again, set `group`'s members, acknowledge `envelope_id`):
/// each field is set only by the variants that carry it. `account` is also set with `device`
/// (its account); `number` is a variant's single number (a prekey or key id, a reason, a
/// chunk index), not the pairs of numbers some variants carry, which `detail` spells out.
#[derive(Default)]
pub(crate) struct Subject {
    pub(crate) account: Option<ratchetry::devices::AccountKey>,
    pub(crate) device: Option<ratchetry::devices::DeviceAddress>,
    pub(crate) group: Option<ratchetry::group::GroupId>,
    pub(crate) envelope_id: Option<ratchetry::fanout::EnvelopeId>,
    pub(crate) number: Option<u64>,
}

impl Subject {
    fn account(account: ratchetry::devices::AccountKey) -> Self {
        Self {
            account: Some(account),
            ..Self::default()
        }
    }

    fn device(device: ratchetry::devices::DeviceAddress) -> Self {
        Self {
            account: Some(device.account),
            device: Some(device),
            ..Self::default()
        }
    }

    fn group(group: ratchetry::group::GroupId) -> Self {
        Self {
            group: Some(group),
            ..Self::default()
        }
    }

    fn number(number: impl Into<u64>) -> Self {
        Self {
            number: Some(number.into()),
            ..Self::default()
        }
    }
}

/// The subject of a library error (see [`Subject`]).
pub(crate) fn subject(error: &Error) -> Subject {
    match error {
        Error::Decode(e) => decode_subject(e),
        Error::X3dh(
            X3dhError::UnknownSignedPreKey(id)
            | X3dhError::UnknownOneTimePreKey(id)
            | X3dhError::SignedPreKeyExhausted(id)
            | X3dhError::UnknownKemPreKey(id)
            | X3dhError::LastResortExhausted(id),
        ) => Subject::number(*id),
        Error::Group(GroupError::UnknownKeyId(id) | GroupError::PredatesKey(id)) => {
            Subject::number(*id)
        }
        Error::Device(e) => device_subject(e),
        Error::Fanout(e) => match e {
            FanoutError::UnknownAccount(a) | FanoutError::DeviceListsDiverge { account: a, .. } => {
                Subject::account(*a)
            }
            FanoutError::NoSession(d)
            | FanoutError::IdentityMismatch(d)
            | FanoutError::NotAGroupDevice(d) => Subject::device(*d),
            FanoutError::SenderKeyMissing { from, key_id } => Subject {
                number: Some((*key_id).into()),
                ..Subject::device(*from)
            },
            FanoutError::Duplicate { envelope_id } => Subject {
                envelope_id: Some(*envelope_id),
                ..Subject::default()
            },
            // When to ask again, Unix ms.
            FanoutError::AskLater { at } => Subject::number(at.0),
            FanoutError::UnknownGroup(g)
            | FanoutError::GroupUnconfirmed(g)
            | FanoutError::TooManyMembers { group: g, .. } => Subject::group(*g),
            FanoutError::NotAMember { group, account } => Subject {
                group: Some(*group),
                ..Subject::account(*account)
            },
            FanoutError::ReservedReason(n) => Subject::number(*n),
            _ => Subject::default(),
        },
        Error::Sync(e) => sync_subject(e),
        Error::Server(e) => match e {
            ServerError::Uncovered(a)
            | ServerError::CoveredTwice(a)
            | ServerError::UnknownAccount(a)
            | ServerError::StaleList { account: a, .. } => Subject::account(*a),
            ServerError::DeviceLeftOut(d)
            | ServerError::NotListed(d)
            | ServerError::IdentityMismatch(d) => Subject::device(*d),
            ServerError::DuplicatePreKeyId(id) => Subject::number(*id),
            _ => Subject::default(),
        },
        _ => Subject::default(),
    }
}

/// The subject of a decoding error: the record kind missing, or the version or type byte.
pub(crate) fn decode_subject(e: &DecodeError) -> Subject {
    match e {
        DecodeError::UnknownVersion(n)
        | DecodeError::UnknownType(n)
        | DecodeError::MissingRecord(n) => Subject::number(*n),
        _ => Subject::default(),
    }
}

/// The subject of a device-list or linking error.
pub(crate) fn device_subject(e: &DeviceError) -> Subject {
    match e {
        DeviceError::NotInList(d) | DeviceError::CompanionExpired(d) => Subject::device(*d),
        DeviceError::BadBinding(id) => Subject::number(*id),
        _ => Subject::default(),
    }
}

/// The subject of a history-sync or call error.
pub(crate) fn sync_subject(e: &SyncError) -> Subject {
    match e {
        SyncError::ChunkRejected(i) => Subject::number(*i),
        _ => Subject::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `AskLater` has its own stable code and carries its time as `number` (review 53's
    /// finding 6: an app calling `request_retry` learnt the time only from the text).
    #[test]
    fn ask_later_names_its_own_code_and_its_time() {
        let e: Error = FanoutError::AskLater {
            at: ratchetry::Timestamp(42),
        }
        .into();
        assert_eq!(code(&e), "fanout.ask_later");
        assert_ne!(code(&FanoutError::RetryLimit.into()), code(&e));
        assert_eq!(subject(&e).number, Some(42));
    }
}
