//! A retry request as the sending device's app receives it: who asks, for which of its sends,
//! why, and which answer this would be. Verified by [`retry`](super::retry) before it is
//! reported.

use alloc::boxed::Box;
use alloc::vec::Vec;

use super::EnvelopeId;
use super::envelope::MessageRef;
use super::journal::{MAX_RETRY_ATTEMPTS, SendId};
use crate::devices::DeviceAddress;
use crate::error::DecodeError;
use crate::wire::{Reader, Writer, kind};
use crate::x3dh::PreKeyBundle;

/// Why a device asks again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryReason {
    /// No session with the sender (lost, or never made).
    NoSession,
    /// The message did not authenticate under the session held.
    AuthenticationFailed,
    /// A group message whose sender key never arrived: answered on the session the sender
    /// holds. Asked by a device that holds no session with the sender, only sessions kept at
    /// a restore from a backup that the sender has not answered in since, or for a message it
    /// asked for before, it goes as [`NoSession`](Self::NoSession) (PROTOCOL.md 18.6, 19.4).
    SenderKeyMissing,
    /// The device was restored from an old backup.
    RestoredFromBackup,
    /// The app's own reason: any number but 1 to 4, the named reasons' (else
    /// [`ReservedReason`](crate::FanoutError::ReservedReason): it would arrive as that reason).
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

    /// The reason, unless it is the app's own with a named reason's number, which would be
    /// sent as, and read as, that reason.
    pub(crate) fn checked(self) -> Result<Self, crate::FanoutError> {
        match self {
            Self::Other(n) if Self::from_code(n) != self => {
                Err(crate::FanoutError::ReservedReason(n))
            }
            reason => Ok(reason),
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
    pub(crate) request: EnvelopeId,
    pub(crate) bundle: Box<PreKeyBundle>,
}

impl RetryRequest {
    /// Bytes to keep a verified request while the app fetches the body it asks for (across a
    /// restart, for example), PROTOCOL.md 18.6: `0x02 ‖ 0x8a ‖ requester address (36) ‖
    /// u64(send id) ‖ u8(reason) ‖ u8(attempt) ‖ reference (16) ‖ request id (16) ‖ bundle`.
    /// Keep them as the device's own state: `answer_retry` checks the requester's entitlement
    /// again from the journal, and the bundle when it starts the session.
    pub fn to_bytes(&self) -> Vec<u8> {
        let bundle = self.bundle.to_bytes();
        let mut out = Vec::with_capacity(2 + 36 + 8 + 2 + 32 + bundle.len());
        out.header(kind::RETRY_REQUEST_STATE);
        self.from.write(&mut out);
        out.u64(self.send_id.0);
        out.u8(self.reason.code());
        out.u8(self.attempt);
        out.put(&self.reference);
        out.put(&self.request.0);
        out.put(&bundle);
        out
    }

    /// Parses [`to_bytes`](Self::to_bytes)' form: the address and the bundle's keys are
    /// checked, and the attempt is 1 to [`MAX_RETRY_ATTEMPTS`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::header(bytes, kind::RETRY_REQUEST_STATE)?;
        let from = DeviceAddress::read(&mut r)?;
        let send_id = SendId(r.u64()?);
        let reason = RetryReason::from_code(r.u8()?);
        let attempt = r.u8()?;
        if !(1..=MAX_RETRY_ATTEMPTS).contains(&attempt) {
            return Err(DecodeError::InvalidValue);
        }
        let reference = r.array()?;
        let request = EnvelopeId(r.array()?);
        let bundle = Box::new(PreKeyBundle::from_bytes(r.rest())?);
        Ok(Self {
            from,
            send_id,
            reason,
            attempt,
            reference,
            request,
            bundle,
        })
    }
}
