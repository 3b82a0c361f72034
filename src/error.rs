//! Errors, one small enum per layer, joined in [`Error`].
//!
//! Variants carry numbers, never strings. A failed authentication stays one opaque variant
//! ([`RatchetError::AuthenticationFailed`]) so a caller cannot be used as a decryption oracle.

use core::fmt;

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
    /// A key in the agreement has small order.
    NonContributory,
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
    /// (it was given the key later): it was never readable here. Ask the sender to resend.
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
    /// The sending chain reached its 2^32 message limit, or the key ids ran out: rotate.
    ChainExhausted,
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
    /// A different device list with the version already accepted: the account key signed two
    /// histories.
    Equivocation,
    /// The list's structure is invalid: no primary (device 1, no expiry), a companion without
    /// expiry or binding, or an identity key listed twice.
    InvalidList,
    /// More companions than the policy allows.
    TooManyCompanions,
    /// A companion's binding signature (its consent to join this account) does not verify.
    BadBinding(u32),
    /// The device is not in the account's current signed list.
    NotInList(u32),
    /// The companion's entry expired: the primary did not re-sign the list in time.
    CompanionExpired(u32),
    /// A link invitation that expired, was already used, or was never issued.
    UnknownInvitation,
    /// The device identity is already linked to this account.
    AlreadyLinked,
    /// Only the primary device can do this.
    NotPrimary,
}

/// Why a device cannot send or cannot read an envelope: causes the app can act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FanoutError {
    /// The envelope is addressed to another device (re-routed or misdelivered).
    NotForThisDevice,
    /// No verified device list is held for the sender's account: fetch it, then retry.
    UnknownAccount,
    /// The sender used other device lists than this device holds: fetch the newer list (or
    /// tell the sender to); a message made under an older list is refused.
    DeviceListsDiverge {
        /// The sender's list version the envelope names.
        sender_list_used: u64,
        /// The sender's list version held here.
        sender_list_held: u64,
        /// This account's list version the envelope names (0 for group envelopes).
        recipient_list_used: u64,
        /// This account's list version held here (0 for group envelopes).
        recipient_list_held: u64,
    },
    /// No pairwise session with that device: a retry (or a pre-key message) is needed.
    NoSession,
    /// The message carries an identity key other than the one the sender's list vouches for.
    IdentityMismatch,
    /// The group message's sender key was never received (or was evicted).
    SenderKeyMissing {
        /// The sender key generation the message needs.
        key_id: u32,
    },
    /// The sender said it withholds its group key from this device.
    Withheld,
    /// This device is no longer in its own account's valid list (expired or unlinked).
    ThisDeviceInactive,
    /// A retry request past the attempt cap (or numbered 0).
    RetryLimit,
    /// This exact envelope was already read: answer with what was stored under this id.
    Duplicate {
        /// The envelope's [`MessageId`](crate::fanout::MessageId) bytes.
        message_id: [u8; 16],
    },
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
    /// The call already has its maximum number of participants.
    CallFull,
    /// A call key for another call, an older epoch, or a conflicting one for the same epoch.
    StaleCallKey,
    /// The participant is not in the call.
    NotInCall,
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
}

macro_rules! from_layer {
    ($($layer:ident => $variant:ident),* $(,)?) => {$(
        impl From<$layer> for Error {
            fn from(e: $layer) -> Self {
                Error::$variant(e)
            }
        }
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
);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Decode(e) => write!(f, "malformed input: {e:?}"),
            Error::Crypto(e) => write!(f, "cryptographic check failed: {e:?}"),
            Error::X3dh(e) => write!(f, "key agreement refused: {e:?}"),
            Error::Ratchet(e) => write!(f, "message refused: {e:?}"),
            Error::Group(e) => write!(f, "group message refused: {e:?}"),
            Error::Device(e) => write!(f, "device check failed: {e:?}"),
            Error::Fanout(e) => write!(f, "fanout refused: {e:?}"),
            Error::Sync(e) => write!(f, "history or call key refused: {e:?}"),
        }
    }
}

impl core::error::Error for Error {}

/// The crate's result type.
pub type Result<T, E = Error> = core::result::Result<T, E>;
