//! A retry request as the sending device's app receives it: who asks, for which of its sends,
//! why, and which answer this would be. Verified by [`retry`](super::retry) before it is
//! reported.

use alloc::boxed::Box;

use super::MessageId;
use super::envelope::MessageRef;
use super::journal::SendId;
use crate::devices::DeviceAddress;
use crate::x3dh::PreKeyBundle;

/// Why a device asks again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryReason {
    /// No session with the sender (lost, or never made).
    NoSession,
    /// The message did not authenticate under the session held.
    AuthenticationFailed,
    /// A group message whose sender key never arrived.
    SenderKeyMissing,
    /// The device was restored from an old backup.
    RestoredFromBackup,
    /// The app's own reason.
    Other(u8),
}

impl RetryReason {
    pub(crate) fn code(self) -> u8 {
        match self {
            Self::NoSession => 1,
            Self::AuthenticationFailed => 2,
            Self::SenderKeyMissing => 3,
            Self::RestoredFromBackup => 4,
            Self::Other(n) => n,
        }
    }

    pub(crate) fn from_code(c: u8) -> Self {
        match c {
            1 => Self::NoSession,
            2 => Self::AuthenticationFailed,
            3 => Self::SenderKeyMissing,
            4 => Self::RestoredFromBackup,
            n => Self::Other(n),
        }
    }
}

/// A verified retry request from a device entitled to the message, as the sending device
/// receives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryRequest {
    /// The device asking.
    pub from: DeviceAddress,
    /// The message asked for, as the outbox of its send named it: the app's key for the body.
    pub send_id: SendId,
    /// Why.
    pub reason: RetryReason,
    /// Which answer this would be for that device (1 for the first), as this device counts.
    pub attempt: u8,
    pub(crate) reference: MessageRef,
    /// The request envelope's id: a request is answered once.
    pub(crate) request: MessageId,
    pub(crate) bundle: Box<PreKeyBundle>,
}
