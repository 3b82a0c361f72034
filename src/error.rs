//! Errors, one small enum per layer, joined in [`Error`].
//!
//! Variants carry numbers and identifiers, never strings. A failed authentication stays one
//! opaque variant ([`RatchetError::AuthenticationFailed`]) so a caller cannot be used as a
//! decryption oracle. Every enum implements `Display` and `core::error::Error`; [`Error`]
//! reports the layer's error as its `source()`.

use core::fmt;

use crate::devices::{AccountKey, DeviceAddress};
use crate::group::GroupId;

/// Bytes that are not a well-formed encoding of the expected type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended before the encoding did.
    Truncated,
    /// The encoding ended but input bytes remain.
    TrailingBytes,
    /// The version byte names a format this build does not know.
    UnknownVersion(u8),
    /// The type byte does not name the expected kind of encoding.
    UnknownType(u8),
    /// A field holds a value outside its domain (a flag other than 0 or 1, an empty ciphertext,
    /// a count above its limit).
    InvalidValue,
    /// A public key that is not a valid point, or is of small order.
    InvalidKey,
    /// State rebuilt from records lacks a record it cannot be without: the record's kind byte
    /// (PROTOCOL.md 15.4).
    MissingRecord(u8),
}

/// Failures of the primitive operations themselves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CryptoError {
    /// An X25519 exchange produced the all-zero output: the peer key has small order.
    NonContributory,
    /// An Ed25519 signature did not verify.
    BadSignature,
    /// AEAD authentication failed.
    AuthenticationFailed,
}

/// X3DH failures on either side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum X3dhError {
    /// The bundle's signed prekey signature does not verify under its identity key.
    BadSignedPreKeySignature,
    /// The initial message names a signed prekey this device does not hold (never had, or
    /// retired).
    UnknownSignedPreKey(u32),
    /// The initial message names a one-time prekey this device does not hold: never issued, or
    /// already consumed by an earlier initial message.
    UnknownOneTimePreKey(u32),
    /// This exact initial message was already accepted.
    Replayed,
    /// The signed prekey the message names accepted as many sessions as it may
    /// (`max_sessions_per_signed_prekey`): rotate it.
    SignedPreKeyExhausted(u32),
    /// A key in the agreement has small order.
    NonContributory,
    /// The bundle's ML-KEM prekey signature does not verify under its identity key.
    BadKemPreKeySignature,
    /// The initial message names an ML-KEM prekey this device does not hold: never issued, a
    /// one-time one already consumed, or a last-resort one rotated out.
    UnknownKemPreKey(u32),
    /// The last-resort ML-KEM prekey the message names started as many sessions as it may
    /// (`max_last_resort_uses`): rotate it.
    LastResortExhausted(u32),
}

/// Double Ratchet failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RatchetError {
    /// The message did not authenticate under the key its header selects (forged, corrupted,
    /// or not for this session). Deliberately carries no detail.
    AuthenticationFailed,
    /// The message's key was already used: a duplicate or a replay.
    Duplicate,
    /// The header asks to skip more message keys than the session's forward-jump limit.
    TooFarAhead {
        /// Keys the message would skip.
        requested: u32,
        /// The session's limit.
        limit: u32,
    },
    /// A pre-key message that belongs to another session (different X3DH base key).
    WrongSession,
    /// A sending or receiving chain reached its 2^32 message limit.
    ChainExhausted,
    /// A session made before sessions became post-quantum that never heard back: it cannot
    /// send the pre-key message it would need. Start a new session.
    NotPostQuantum,
}

/// Sender-key group failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GroupError {
    /// No sender key is known for this (group, sender device): its distribution message has not
    /// been processed, or the sender was removed.
    UnknownSender,
    /// The sender is known but not this key id (generation): a distribution is missing, or the
    /// generation was evicted.
    UnknownKeyId(u32),
    /// The message is older than the point where this device's copy of the sender key starts
    /// (it was given the key later): it was never readable here.
    PredatesKey(u32),
    /// The message's signature does not verify under the generation's signing key.
    BadSignature,
    /// The message did not authenticate under the key its header selects.
    AuthenticationFailed,
    /// The message's key was already used: a duplicate or a replay.
    Duplicate,
    /// The iteration is further ahead than the forward-jump limit allows.
    TooFarAhead {
        /// Keys the message would skip.
        requested: u32,
        /// The configured limit.
        limit: u32,
    },
    /// A distribution for a known key id carries a different signing key.
    ConflictingDistribution,
    /// The sending chain reached its 2^32 message limit: rotate.
    ChainExhausted,
    /// A per-message context longer than
    /// [`MAX_MESSAGE_CONTEXT`](crate::group::MAX_MESSAGE_CONTEXT) bytes was given to bind.
    ContextTooLong,
}

/// Account, device list and linking failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceError {
    /// Signed by, or naming, another account than the one expected.
    WrongAccount,
    /// The account's (or device's) signature does not verify.
    BadSignature,
    /// A device list older than the one already accepted.
    Rollback {
        /// The version already accepted.
        known: u64,
        /// The version received.
        received: u64,
    },
    /// A different device list, validly signed, with the version already accepted: the account
    /// key signed two histories.
    Equivocation,
    /// The list's structure is invalid: no primary (device 1, no expiry) first, a companion
    /// without expiry, or an identity key listed twice.
    InvalidList,
    /// More companions than the policy allows: a list's own signed policy (or, for a list of
    /// the old form, the verifier's ceiling); the primary's own policy when it approves.
    TooManyCompanions,
    /// The account's signed policy allows more companions than this verifier's ceiling
    /// ([`ListLimits`](crate::devices::ListLimits)) accepts of any account.
    PolicyAboveCeiling {
        /// The companions the account's policy allows.
        allowed: u32,
        /// The verifier's ceiling.
        ceiling: u32,
    },
    /// A list of the old form (no signed policy) after a list of the same account that carried
    /// one: the policy cannot be stripped by serving an older form.
    PolicyDowngrade,
    /// A device's binding signature (its consent to be listed under this account) does not
    /// verify: the entry with this id.
    BadBinding(u32),
    /// The device is not in its account's current signed list.
    NotInList(DeviceAddress),
    /// The companion's entry expired: the primary did not re-sign the list in time.
    CompanionExpired(DeviceAddress),
    /// A link invitation that expired, was already used, or was never issued.
    UnknownInvitation,
    /// The device identity is already linked to this account.
    AlreadyLinked,
    /// Only the primary device can do this (or: the primary cannot be unlinked).
    NotPrimary,
    /// A link confirmation over another list than the one that admitted the device.
    WrongList,
    /// The primary was restored from a backup: give it the newest list with
    /// [`Primary::resync`](crate::devices::Primary::resync) before it signs again.
    ResyncRequired,
}

/// Why a device cannot send or cannot read an envelope: causes the app can act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FanoutError {
    /// The envelope is addressed to another device (re-routed or misdelivered).
    NotForThisDevice,
    /// No verified device list is held for this account: fetch it, then try again.
    UnknownAccount(AccountKey),
    /// The envelope was made under a newer device list of `account` than the one held here:
    /// fetch that account's list, then receive again. (Envelopes made under an older list are
    /// accepted while both devices are still active.) Also raised when the envelope names the
    /// held version with another list's digest: the server showed the two sides different
    /// lists.
    DeviceListsDiverge {
        /// The account whose list differs.
        account: AccountKey,
        /// The version the envelope names.
        used: u64,
        /// The version held here.
        held: u64,
    },
    /// No pairwise session with that device: a retry (or a pre-key message) is needed.
    NoSession(DeviceAddress),
    /// The message carries an identity key other than the one the sender's list vouches for.
    IdentityMismatch(DeviceAddress),
    /// The group message's sender key was never received (or was evicted).
    SenderKeyMissing {
        /// The device whose key is missing.
        from: DeviceAddress,
        /// The sender key generation the message needs.
        key_id: u32,
    },
    /// The sender said it withholds this generation of its group key from this device.
    Withheld,
    /// This device's own account list held does not name it with its identity key (unlinked,
    /// or its id now carries another identity): nothing it receives is readable, and no later
    /// list names it again (device ids are never reused). Drop the envelope.
    ThisDeviceInactive,
    /// The own account list held names this device with its identity but its entry has
    /// expired: the primary has not renewed it, or its renewal was not fetched yet. Fetch the
    /// own account's list and `update_device_list`; keep the envelope and read it again once
    /// a list renews the device (until the app's own bound on kept envelopes).
    ThisDeviceExpired,
    /// This device was restored from a backup and holds no own device list issued since:
    /// traffic with its own account waits for one (`Device::awaiting_own_list`).
    AwaitingOwnList,
    /// No more retries for this message: the sender answered (or the requester asked) as many
    /// as allowed.
    RetryLimit,
    /// Not asked, nothing changed: this device already waits on as many retries as it keeps
    /// for the sender's account, or in all, none of them asked long enough ago to give up
    /// ([`PENDING_RETRY_HOLD_MS`](crate::fanout::PENDING_RETRY_HOLD_MS)) nor to give way to
    /// this one. Keep the envelope and ask again at `at`, or sooner once a resend is read (an
    /// answer frees a place).
    AskLater {
        /// When a place frees (after now), unless other asks take it first.
        at: crate::time::Timestamp,
    },
    /// This exact envelope was already read: answer with what was stored under this id.
    Duplicate {
        /// The envelope's id.
        envelope_id: crate::fanout::EnvelopeId,
    },
    /// The app has not told this device the members of this group
    /// ([`Device::set_group_members`](crate::fanout::Device::set_group_members)).
    UnknownGroup(GroupId),
    /// The device was restored from a backup and the app has not set this group's members
    /// since: they may still name an account removed after the backup. Set them
    /// ([`Device::set_group_members`](crate::fanout::Device::set_group_members)), then send,
    /// or receive the envelope again.
    GroupUnconfirmed(GroupId),
    /// The app's own retry or withheld reason (`Other(n)`) took the number of a named reason
    /// (1 to 4 for a retry, 1 and 2 for a withheld key), as which it would be sent and read.
    ReservedReason(u8),
    /// A device to withhold a group's sender key from is not one of the group's member devices
    /// (nor another device of this account).
    NotAGroupDevice(DeviceAddress),
    /// A group message, sender key or resend from an account that is not a member of the group.
    NotAMember {
        /// The group.
        group: GroupId,
        /// The account that is not a member.
        account: AccountKey,
    },
    /// More member accounts than a group may have
    /// ([`MAX_GROUP_MEMBERS`](crate::fanout::MAX_GROUP_MEMBERS), this device's own account
    /// not counted): the members were not set, and the group is as it was.
    TooManyMembers {
        /// The group.
        group: GroupId,
        /// The distinct member accounts given, this device's own account not counted.
        members: usize,
    },
    /// A retry request for a message this device does not remember sending (never sent, or
    /// older than the retry window).
    UnknownMessage,
    /// A retry request from a device that was not a recipient of that message, with the
    /// identity key it has now, when the message was sent.
    NotEntitled,
    /// A resent message this device did not ask for (no retry request of its own is pending
    /// for it with that device).
    UnexpectedResend,
    /// The body given to answer a retry is not the one that was sent.
    BodyMismatch,
}

/// History sync and call key failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SyncError {
    /// A history chunk did not authenticate at its position: corrupted, reordered, duplicated,
    /// or spliced from another stream.
    ChunkRejected(u64),
    /// More chunks than the offer announced.
    TooManyChunks,
    /// The stream ended early, or its length or digest differ from the offer.
    Incomplete,
    /// App data for a history offer longer than `history::MAX_HISTORY_APP_DATA`.
    AppDataTooLong,
    /// This device's groups do not fit the membership sent with a history offer: more than
    /// [`MAX_MEMBERSHIP_GROUPS`](crate::fanout::MAX_MEMBERSHIP_GROUPS) groups, more than
    /// [`MAX_MEMBERSHIP_ACCOUNTS`](crate::fanout::MAX_MEMBERSHIP_ACCOUNTS) member accounts
    /// counted over all groups, or a group of more than
    /// [`MAX_GROUP_MEMBERS`](crate::fanout::MAX_GROUP_MEMBERS).
    MembershipTooLarge {
        /// The groups this device holds.
        groups: usize,
        /// Their member accounts, counted once per group.
        accounts: usize,
        /// The members of its largest group.
        largest: usize,
    },
    /// The call already has its maximum number of participants.
    CallFull,
    /// A call key for another call or kind, or for an epoch not newer than the one held (an
    /// old or replayed message): drop it. A held call never goes back to an older epoch.
    StaleCallKey,
    /// A call key of the held call from its manager, more than one epoch ahead of the held one
    /// (messages of the epochs between were missed or are still on their way). It is not
    /// applied: catch up to it with [`Call::catch_up`](crate::calls::Call::catch_up), which
    /// never goes back.
    CallKeyAhead {
        /// The epoch held.
        held: u32,
        /// The epoch the key message offers.
        offered: u32,
    },
    /// The participant is not in the call (or the key message no longer lists this device).
    NotInCall,
    /// The call key did not come from the call's key manager, or this device is not the
    /// manager and tried to change the call.
    NotCallManager,
}

/// State at rest refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StateError {
    /// Sealed state older than the app expects: a stale copy was put back in its slot.
    Rollback {
        /// The sequence it was sealed at.
        sealed_at: u64,
        /// The lowest sequence the app accepts.
        expected_at_least: u64,
    },
}

/// A relay's checks refused (the [`server`](crate::server) module).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerError {
    /// A recipient's account has no list in the batch's coverage.
    Uncovered(AccountKey),
    /// The batch's coverage names this account twice.
    CoveredTwice(AccountKey),
    /// The relay holds no device list for this account.
    UnknownAccount(AccountKey),
    /// The batch was encrypted under another list of `account` than the one the relay serves:
    /// the sender fetches the current list and sends again.
    StaleList {
        /// The account.
        account: AccountKey,
        /// The version the batch was made under.
        used: u64,
        /// The version the relay serves.
        current: u64,
    },
    /// An active device of a covered account is not among the batch's recipients.
    DeviceLeftOut(DeviceAddress),
    /// A recipient that is not an active device of its account's list (or is the sender).
    NotListed(DeviceAddress),
    /// An upload's identity key is not the one the device list names for that device.
    IdentityMismatch(DeviceAddress),
    /// A base upload (the signed prekey and the last-resort ML-KEM prekey) that carries a
    /// one-time prekey.
    NotABaseBundle,
    /// An upload names a one-time key id the pool already holds.
    DuplicatePreKeyId(u32),
    /// The pool would hold more one-time keys of a kind than it may.
    PoolFull,
}

/// The crate's error: which layer refused, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// Malformed bytes.
    Decode(DecodeError),
    /// A primitive refused.
    Crypto(CryptoError),
    /// The key agreement refused.
    X3dh(X3dhError),
    /// The ratchet refused.
    Ratchet(RatchetError),
    /// The sender-key group layer refused.
    Group(GroupError),
    /// The device layer refused.
    Device(DeviceError),
    /// The fanout layer refused.
    Fanout(FanoutError),
    /// History sync or call keys refused.
    Sync(SyncError),
    /// State at rest refused.
    State(StateError),
    /// A relay's check refused.
    Server(ServerError),
}

macro_rules! from_layer {
    ($($layer:ident => $variant:ident),* $(,)?) => {$(
        impl From<$layer> for Error {
            fn from(e: $layer) -> Self {
                Error::$variant(e)
            }
        }
        impl core::error::Error for $layer {}
    )*};
}
from_layer!(
    DecodeError => Decode,
    CryptoError => Crypto,
    X3dhError => X3dh,
    RatchetError => Ratchet,
    GroupError => Group,
    DeviceError => Device,
    FanoutError => Fanout,
    SyncError => Sync,
    StateError => State,
    ServerError => Server,
);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Decode(e) => write!(f, "malformed input: {e}"),
            Error::Crypto(e) => write!(f, "cryptographic check failed: {e}"),
            Error::X3dh(e) => write!(f, "key agreement refused: {e}"),
            Error::Ratchet(e) => write!(f, "message refused: {e}"),
            Error::Group(e) => write!(f, "group message refused: {e}"),
            Error::Device(e) => write!(f, "device check failed: {e}"),
            Error::Fanout(e) => write!(f, "fanout refused: {e}"),
            Error::Sync(e) => write!(f, "history or call key refused: {e}"),
            Error::State(e) => write!(f, "stored state refused: {e}"),
            Error::Server(e) => write!(f, "relay check refused: {e}"),
        }
    }
}

impl core::error::Error for Error {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        Some(match self {
            Error::Decode(e) => e,
            Error::Crypto(e) => e,
            Error::X3dh(e) => e,
            Error::Ratchet(e) => e,
            Error::Group(e) => e,
            Error::Device(e) => e,
            Error::Fanout(e) => e,
            Error::Sync(e) => e,
            Error::State(e) => e,
            Error::Server(e) => e,
        })
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("input ends too early"),
            Self::TrailingBytes => f.write_str("bytes left after the encoding"),
            Self::UnknownVersion(v) => write!(f, "unknown format version {v}"),
            Self::UnknownType(t) => write!(f, "unexpected type byte {t:#04x}"),
            Self::InvalidValue => f.write_str("a field holds an invalid value"),
            Self::InvalidKey => f.write_str("invalid or small-order public key"),
            Self::MissingRecord(k) => write!(f, "the record of kind {k:#04x} is missing"),
        }
    }
}

impl fmt::Display for CryptoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NonContributory => "Diffie-Hellman with a small-order key",
            Self::BadSignature => "signature does not verify",
            Self::AuthenticationFailed => "authentication failed",
        })
    }
}

impl fmt::Display for X3dhError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadSignedPreKeySignature => f.write_str("signed prekey signature is invalid"),
            Self::UnknownSignedPreKey(id) => write!(f, "unknown signed prekey {id}"),
            Self::UnknownOneTimePreKey(id) => write!(f, "unknown or used one-time prekey {id}"),
            Self::Replayed => f.write_str("initial message already accepted"),
            Self::SignedPreKeyExhausted(id) => {
                write!(f, "signed prekey {id} accepted its maximum of sessions")
            }
            Self::NonContributory => f.write_str("small-order key in the key agreement"),
            Self::BadKemPreKeySignature => f.write_str("ML-KEM prekey signature is invalid"),
            Self::UnknownKemPreKey(id) => write!(f, "unknown or used ML-KEM prekey {id}"),
            Self::LastResortExhausted(id) => {
                write!(
                    f,
                    "last-resort ML-KEM prekey {id} started its maximum of sessions"
                )
            }
        }
    }
}

impl fmt::Display for RatchetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AuthenticationFailed => f.write_str("message did not authenticate"),
            Self::Duplicate => f.write_str("message already received"),
            Self::TooFarAhead { requested, limit } => {
                write!(f, "message skips {requested} keys, limit {limit}")
            }
            Self::WrongSession => f.write_str("pre-key message of another session"),
            Self::ChainExhausted => f.write_str("chain reached its message limit"),
            Self::NotPostQuantum => f.write_str("pre-PQXDH session that never got a reply"),
        }
    }
}

impl fmt::Display for GroupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownSender => f.write_str("no sender key from this device"),
            Self::UnknownKeyId(id) => write!(f, "sender key generation {id} not held"),
            Self::PredatesKey(id) => {
                write!(f, "message older than this device's copy of key {id}")
            }
            Self::BadSignature => f.write_str("group message signature does not verify"),
            Self::AuthenticationFailed => f.write_str("group message did not authenticate"),
            Self::Duplicate => f.write_str("group message already received"),
            Self::TooFarAhead { requested, limit } => {
                write!(f, "group message skips {requested} keys, limit {limit}")
            }
            Self::ConflictingDistribution => {
                f.write_str("sender key conflicts with the one held for its generation")
            }
            Self::ChainExhausted => f.write_str("sender key reached its message limit"),
            Self::ContextTooLong => f.write_str("message context too long to bind"),
        }
    }
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WrongAccount => f.write_str("signed by or naming another account"),
            Self::BadSignature => f.write_str("signature does not verify"),
            Self::Rollback { known, received } => {
                write!(f, "device list version {received} is older than {known}")
            }
            Self::Equivocation => f.write_str("account signed two different lists at one version"),
            Self::InvalidList => f.write_str("device list structure is invalid"),
            Self::TooManyCompanions => f.write_str("more companions than the policy allows"),
            Self::PolicyAboveCeiling { allowed, ceiling } => write!(
                f,
                "the account's policy allows {allowed} companions, above this verifier's ceiling of {ceiling}"
            ),
            Self::PolicyDowngrade => {
                f.write_str("a device list without the policy its account already published")
            }
            Self::BadBinding(id) => write!(f, "device {id} did not consent to this account"),
            Self::NotInList(a) => write!(f, "{a:?} is not in its account's list"),
            Self::CompanionExpired(a) => write!(f, "{a:?} expired"),
            Self::UnknownInvitation => f.write_str("unknown, used or expired link invitation"),
            Self::AlreadyLinked => f.write_str("device already linked"),
            Self::NotPrimary => f.write_str("only the primary can do this"),
            Self::WrongList => f.write_str("confirmation of another list"),
            Self::ResyncRequired => f.write_str("restored primary must resync first"),
        }
    }
}

impl fmt::Display for FanoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotForThisDevice => f.write_str("envelope addressed to another device"),
            Self::UnknownAccount(a) => write!(f, "no device list held for {a:?}"),
            Self::DeviceListsDiverge {
                account,
                used,
                held,
            } => write!(
                f,
                "envelope made under list version {used} of {account:?}, {held} held"
            ),
            Self::NoSession(a) => write!(f, "no session with {a:?}"),
            Self::IdentityMismatch(a) => write!(f, "identity key of {a:?} differs from its list"),
            Self::SenderKeyMissing { from, key_id } => {
                write!(f, "sender key {key_id} of {from:?} not received")
            }
            Self::Withheld => f.write_str("sender withholds its group key"),
            Self::ThisDeviceInactive => f.write_str("this device is not in its own list"),
            Self::ThisDeviceExpired => f.write_str("this device's entry in its own list expired"),
            Self::AwaitingOwnList => {
                f.write_str("restored from a backup: waiting for an own device list issued since")
            }
            Self::RetryLimit => f.write_str("retry limit reached"),
            Self::AskLater { at } => write!(f, "waiting on as many retries as kept: ask at {at:?}"),
            Self::Duplicate { envelope_id } => write!(f, "envelope {envelope_id:?} already read"),
            Self::UnknownGroup(g) => write!(f, "members of {g:?} not set"),
            Self::GroupUnconfirmed(g) => {
                write!(f, "members of {g:?} not set since a restore from a backup")
            }
            Self::ReservedReason(n) => write!(f, "reason {n} is a named reason's, not the app's"),
            Self::NotAGroupDevice(d) => write!(f, "{d:?} is not a device of the group's members"),
            Self::NotAMember { group, account } => {
                write!(f, "{account:?} is not a member of {group:?}")
            }
            Self::TooManyMembers { group, members } => write!(
                f,
                "{members} member accounts for {group:?}, more than {}",
                crate::fanout::MAX_GROUP_MEMBERS
            ),
            Self::UnknownMessage => f.write_str("retry for a message not remembered"),
            Self::NotEntitled => f.write_str("retry from a device that was not a recipient"),
            Self::UnexpectedResend => f.write_str("resend that was not asked for"),
            Self::BodyMismatch => f.write_str("body differs from the message sent"),
        }
    }
}

impl fmt::Display for SyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ChunkRejected(i) => write!(f, "history chunk {i} rejected"),
            Self::TooManyChunks => f.write_str("more history chunks than announced"),
            Self::Incomplete => f.write_str("history incomplete or altered"),
            Self::AppDataTooLong => f.write_str("history offer app data too long"),
            Self::MembershipTooLarge {
                groups,
                accounts,
                largest,
            } => write!(
                f,
                "group membership too large for a history offer: {groups} groups, \
                 {accounts} member accounts, {largest} in the largest"
            ),
            Self::CallFull => f.write_str("call is full"),
            Self::StaleCallKey => {
                f.write_str("call key of another call, or not newer than the epoch held")
            }
            Self::CallKeyAhead { held, offered } => {
                write!(
                    f,
                    "call key for epoch {offered}, epoch {held} held: epochs missed"
                )
            }
            Self::NotInCall => f.write_str("not a participant of the call"),
            Self::NotCallManager => f.write_str("not from (or not) the call's key manager"),
        }
    }
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rollback {
                sealed_at,
                expected_at_least,
            } => write!(
                f,
                "sealed at sequence {sealed_at}, expected at least {expected_at_least}"
            ),
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = core::result::Result<T, E>;

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Uncovered(_) => f.write_str("a recipient's account has no list in the coverage"),
            Self::CoveredTwice(_) => f.write_str("the coverage names an account twice"),
            Self::UnknownAccount(_) => f.write_str("no device list held for the account"),
            Self::StaleList { used, current, .. } => {
                write!(f, "made under list version {used}, current is {current}")
            }
            Self::DeviceLeftOut(a) => write!(f, "active device {} left out", a.device.0),
            Self::NotListed(a) => write!(f, "device {} is not an active listed device", a.device.0),
            Self::IdentityMismatch(a) => {
                write!(f, "upload's identity key is not device {}'s", a.device.0)
            }
            Self::NotABaseBundle => f.write_str("a base upload carries a one-time prekey"),
            Self::DuplicatePreKeyId(id) => write!(f, "one-time key id {id} already in the pool"),
            Self::PoolFull => f.write_str("the one-time key pool is full"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn errors_display_readably_and_chain_their_source() {
        let e = Error::from(RatchetError::TooFarAhead {
            requested: 5,
            limit: 2,
        });
        assert_eq!(
            e.to_string(),
            "message refused: message skips 5 keys, limit 2"
        );
        let source = core::error::Error::source(&e).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("message skips 5 keys, limit 2"));
        assert_eq!(
            DecodeError::UnknownType(0x0b).to_string(),
            "unexpected type byte 0x0b"
        );
        // The two ends of a companion's life read apart: unlinked, or waiting for a renewal.
        assert_eq!(
            FanoutError::ThisDeviceInactive.to_string(),
            "this device is not in its own list"
        );
        assert_eq!(
            FanoutError::ThisDeviceExpired.to_string(),
            "this device's entry in its own list expired"
        );
    }

    /// What `?` into `anyhow::Error` or `Box<dyn Error + Send + Sync>` asks of every error.
    #[test]
    fn every_error_type_fits_app_error_types() {
        fn app_error<E: core::error::Error + Send + Sync + 'static>() {}
        app_error::<Error>();
        app_error::<DecodeError>();
        app_error::<CryptoError>();
        app_error::<X3dhError>();
        app_error::<RatchetError>();
        app_error::<GroupError>();
        app_error::<DeviceError>();
        app_error::<FanoutError>();
        app_error::<SyncError>();
        app_error::<StateError>();
        let boxed: alloc::boxed::Box<dyn core::error::Error + Send + Sync> =
            Error::from(FanoutError::UnexpectedResend).into();
        assert!(boxed.source().is_some());
    }
}
