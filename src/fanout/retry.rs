//! Self-healing (PROTOCOL.md 18.5): a device that cannot read an envelope (no session, a
//! session lost or restored from an old backup, a failed authentication, a missing sender key)
//! asks the sending device for it again with a signed retry request carrying a fresh prekey
//! bundle; the sender starts a new session from that bundle and re-encrypts the plaintext its
//! app stored, for that device only. Attempts are capped.

use alloc::vec::Vec;
use rand_core::CryptoRng;

use super::envelope::{Envelope, read_address, write_address};
use super::payload::Payload;
use super::sessions::SessionSet;
use super::{Device, MessageId, Outgoing};
use crate::devices::{AccountKey, DeviceAddress};
use crate::error::{DecodeError, Error, FanoutError};
use crate::group::GroupId;
use crate::labels;
use crate::primitives::Signature;
use crate::ratchet::Session;
use crate::time::Timestamp;
use crate::wire::{Reader, Writer, kind};
use crate::x3dh::PreKeyBundle;

/// Retries allowed per message: a request with a higher attempt number is refused.
pub const MAX_RETRY_ATTEMPTS: u8 = 3;

pub(crate) const RETRY: u8 = 3;

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
    fn code(self) -> u8 {
        match self {
            Self::NoSession => 1,
            Self::AuthenticationFailed => 2,
            Self::SenderKeyMissing => 3,
            Self::RestoredFromBackup => 4,
            Self::Other(n) => n,
        }
    }

    fn from_code(c: u8) -> Self {
        match c {
            1 => Self::NoSession,
            2 => Self::AuthenticationFailed,
            3 => Self::SenderKeyMissing,
            4 => Self::RestoredFromBackup,
            n => Self::Other(n),
        }
    }
}

/// A verified retry request, as the sending device receives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryRequest {
    /// The device asking.
    pub from: DeviceAddress,
    /// The envelope it could not read.
    pub message_id: MessageId,
    /// Why.
    pub reason: RetryReason,
    /// 1 for the first request for this message.
    pub attempt: u8,
    pub(crate) bundle: alloc::boxed::Box<PreKeyBundle>,
}

/// What to resend in answer to a retry request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resend {
    /// A 1:1 message of the conversation with `to`.
    Direct {
        /// The account the message was sent to.
        to: AccountKey,
    },
    /// A group message of `group`.
    Group {
        /// The group.
        group: GroupId,
    },
}

#[derive(Debug)]
pub(crate) struct RetryWire<'a> {
    pub(crate) requester: DeviceAddress,
    pub(crate) sender: DeviceAddress,
    pub(crate) message_id: MessageId,
    pub(crate) reason: RetryReason,
    pub(crate) attempt: u8,
    pub(crate) bundle: PreKeyBundle,
    pub(crate) signed: &'a [u8],
    pub(crate) signature: Signature,
}

impl<'a> RetryWire<'a> {
    pub(crate) fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::header(bytes, kind::ENVELOPE)?;
        if r.u8()? != RETRY {
            return Err(DecodeError::InvalidValue);
        }
        let requester = read_address(&mut r)?;
        let sender = read_address(&mut r)?;
        let message_id = MessageId(r.array()?);
        let reason = RetryReason::from_code(r.u8()?);
        let attempt = r.u8()?;
        let len = r.u32()? as usize;
        let bundle = PreKeyBundle::from_bytes(r.bytes(len)?)?;
        let signed = &bytes[..bytes.len() - r.rest_len()];
        let signature = Signature::from_bytes(r.array()?);
        r.finish()?;
        Ok(Self {
            requester,
            sender,
            message_id,
            reason,
            attempt,
            bundle,
            signed,
            signature,
        })
    }
}

impl Device {
    /// Asks the device that sent `failed` (an envelope this device could not read) to send it
    /// again. Makes one fresh one-time prekey (32 bytes from `rng`) for the request's bundle;
    /// persist the device afterwards. Returns the device to ship the request to, and the bytes.
    pub fn request_retry(
        &mut self,
        rng: &mut impl CryptoRng,
        now: Timestamp,
        failed: &[u8],
        reason: RetryReason,
        attempt: u8,
    ) -> Result<(DeviceAddress, Vec<u8>), Error> {
        self.own_list(now)?;
        if attempt == 0 || attempt > MAX_RETRY_ATTEMPTS {
            return Err(FanoutError::RetryLimit.into());
        }
        let sender = match Envelope::decode(failed)? {
            Envelope::Pairwise { header, .. } if header.recipient == self.address => header.sender,
            Envelope::Group { header, .. } => header.sender,
            _ => return Err(FanoutError::NotForThisDevice.into()),
        };
        self.entry(&sender, now)?;
        self.bump();
        let one_time = self.prekeys.generate_one_time_prekeys(rng, 1);
        let bundle = self.bundle(one_time.first().map(|k| k.id));
        let bundle_bytes = bundle.to_bytes();
        let mut out = Vec::with_capacity(200 + bundle_bytes.len());
        out.header(kind::ENVELOPE);
        out.push(RETRY);
        write_address(&mut out, &self.address);
        write_address(&mut out, &sender);
        out.extend_from_slice(&MessageId::of(failed).0);
        out.push(reason.code());
        out.push(attempt);
        out.u32(bundle_bytes.len() as u32);
        out.extend_from_slice(&bundle_bytes);
        let signature = self.identity.sign(labels::RETRY_REQUEST, &out);
        out.extend_from_slice(&signature.to_bytes());
        Ok((sender, out))
    }

    /// Checks a received retry request: addressed here, from an active device whose listed
    /// identity signed it and issued the bundle, within the attempt cap.
    pub(crate) fn verify_retry(
        &self,
        now: Timestamp,
        wire: RetryWire<'_>,
    ) -> Result<RetryRequest, Error> {
        if wire.sender != self.address || wire.requester == self.address {
            return Err(FanoutError::NotForThisDevice.into());
        }
        if wire.attempt == 0 || wire.attempt > MAX_RETRY_ATTEMPTS {
            return Err(FanoutError::RetryLimit.into());
        }
        let identity = self.entry(&wire.requester, now)?.identity;
        if wire.bundle.identity_key() != identity {
            return Err(FanoutError::IdentityMismatch.into());
        }
        identity
            .verify(labels::RETRY_REQUEST, wire.signed, &wire.signature)
            .map_err(|_| crate::CryptoError::BadSignature)?;
        Ok(RetryRequest {
            from: wire.requester,
            message_id: wire.message_id,
            reason: wire.reason,
            attempt: wire.attempt,
            bundle: alloc::boxed::Box::new(wire.bundle),
        })
    }

    /// Answers a retry request: a new session from the request's bundle (it becomes current
    /// for that device; for `SenderKeyMissing` an existing session is kept) and `body`, the plaintext the app stored for that message, encrypted
    /// for the requesting device only. For a group message the device is also taken off the
    /// distribution ledger, so the next group send gives it the sender key again.
    pub fn answer_retry(
        &mut self,
        rng: &mut impl CryptoRng,
        now: Timestamp,
        request: &RetryRequest,
        resend: Resend,
        body: &[u8],
    ) -> Result<Outgoing, Error> {
        self.own_list(now)?;
        let identity = self.entry(&request.from, now)?.identity;
        if request.bundle.identity_key() != identity {
            return Err(FanoutError::IdentityMismatch.into());
        }
        let verified = (*request.bundle).clone().verify()?;
        let session = Session::initiate(rng, &self.identity, &verified, self.config.session)?;
        let payload = match resend {
            Resend::Direct { to } if request.from.account == self.address.account => {
                Payload::Direct {
                    sent_to: Some(to),
                    body: body.to_vec(),
                }
            }
            Resend::Direct { .. } => Payload::Direct {
                sent_to: None,
                body: body.to_vec(),
            },
            Resend::Group { group } => Payload::GroupResend {
                group,
                body: body.to_vec(),
            },
        };
        // Seal on a copy of the device; commit only on success. A missing sender key says
        // nothing against the pairwise session, so an existing one is kept; any other reason
        // gets the new session, made current.
        let mut next = self.clone();
        let keep = request.reason == RetryReason::SenderKeyMissing;
        match next.sessions.get_mut(&request.from) {
            Some(_) if keep => {}
            Some(set) => set.push_new(session),
            None => {
                next.sessions.insert(request.from, SessionSet::new(session));
            }
        }
        // A device that lacked the sender key lacks it for later messages too: forget that it
        // holds the current generation, so the next group send distributes it again.
        if let Resend::Group { group } = resend {
            if let Some(holders) = next.ledger.get_mut(&group) {
                holders.remove(&request.from);
            }
        }
        let outgoing = next.send_payload(rng, now, &[request.from], &payload)?;
        *self = next;
        Ok(outgoing)
    }
}
