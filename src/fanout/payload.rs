//! What travels inside a pairwise session (PROTOCOL.md, "Payload"): a direct message (with the
//! conversation for the sender's own copies), a sender-key distribution, a withheld notice, a
//! call key, a history offer with the account's group membership, or a message or call key
//! resent in answer to a retry request (naming the message it replaces). A direct message
//! carries its sender's nonce, which makes its [`MessageId`](super::MessageId) the same on
//! every device.

use alloc::boxed::Box;
use alloc::vec::Vec;
use zeroize::{Zeroize, Zeroizing};

use super::envelope::MessageRef;
use super::membership::Membership;
use super::message_id::MessageNonce;
use crate::calls::CallKeyMessage;
use crate::devices::AccountKey;
use crate::error::DecodeError;
use crate::group::{GroupId, SenderKeyDistribution, SenderKeyId};
use crate::history::HistoryOffer;
use crate::time::Timestamp;
use crate::wire::{Reader, SecretBuf, Writer, kind};

const DIRECT: u8 = 1;
const DISTRIBUTION: u8 = 2;
// 3 was the withheld notice without the key generation it withholds: retired, as a notice
// held back past a later generation's key would have made that generation's messages read as
// withheld (WITHHELD).
const CALL_KEY: u8 = 4;
// 5 was the history offer without the group membership: retired, as the offer always
// travels with it now (HISTORY_OFFER).
const DIRECT_RESEND: u8 = 6;
const GROUP_RESEND: u8 = 7;
const CALL_KEY_RESEND: u8 = 8;
// 9 was the history offer without the time it was made: retired, as a membership held back
// past a newer one could not be told from it (HISTORY_OFFER).
const WITHHELD: u8 = 10;
const HISTORY_OFFER: u8 = 11;

/// The generations of one sender's key for one group a device keeps withheld notices of (the
/// oldest dropped beyond): a sender names a new one at each rotation while it withholds.
pub const MAX_WITHHELD_GENERATIONS: usize = 4;

/// Why a sender withholds its group key from a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WithheldReason {
    /// The recipient account is blocked by the sender.
    Blocked,
    /// The sender has not verified the recipient device.
    Unverified,
    /// The app's own reason, a number it defines: any but 1 and 2, the named reasons' (else
    /// [`ReservedReason`](crate::FanoutError::ReservedReason): it would arrive as that reason).
    Other(u8),
}

impl WithheldReason {
    pub(crate) fn code(self) -> u8 {
        match self {
            Self::Blocked => 1,
            Self::Unverified => 2,
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

    pub(crate) fn from_code(code: u8) -> Self {
        match code {
            1 => Self::Blocked,
            2 => Self::Unverified,
            n => Self::Other(n),
        }
    }
}

/// A direct payload's fields before its body: `u8(1) ‖ nonce ‖ optional(sent_to)`.
fn write_direct_head(out: &mut impl Writer, nonce: &MessageNonce, sent_to: Option<&AccountKey>) {
    out.u8(DIRECT);
    out.put(nonce);
    out.optional(sent_to, |out, a| out.put(a.as_bytes()));
}

/// The bytes of a direct payload before its body (the header included), on the stack: a send
/// seals them and then the body from where the app holds it, so a 1:1 message's plaintext is
/// never copied into a buffer of its own (which a wipe would then have to clear).
pub(crate) struct DirectPrefix {
    bytes: [u8; DIRECT_PREFIX_MAX],
    len: usize,
}

/// Header, kind, nonce, flag and account.
const DIRECT_PREFIX_MAX: usize = 2 + 1 + 16 + 1 + 32;

impl DirectPrefix {
    pub(crate) fn new(nonce: &MessageNonce, sent_to: Option<&AccountKey>) -> Self {
        let mut prefix = Self {
            bytes: [0; DIRECT_PREFIX_MAX],
            len: 0,
        };
        prefix.header(kind::PAYLOAD);
        write_direct_head(&mut prefix, nonce, sent_to);
        prefix
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl Writer for DirectPrefix {
    /// Only `new` writes, at most `DIRECT_PREFIX_MAX` bytes.
    fn put(&mut self, bytes: &[u8]) {
        self.bytes[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }
}

pub(crate) enum Payload {
    /// `sent_to` is set on the sender's own copies: the account the message went to. `nonce`
    /// is the same in every copy of the message.
    Direct {
        nonce: MessageNonce,
        sent_to: Option<AccountKey>,
        body: Vec<u8>,
    },
    Distribution(Box<SenderKeyDistribution>),
    /// The sender key generation `key_id` of `group` is withheld from the recipient.
    Withheld {
        group: GroupId,
        key_id: SenderKeyId,
        reason: WithheldReason,
    },
    CallKey(CallKeyMessage),
    /// An offer and the sender's groups, for a device of its own account, with the sender's
    /// clock when it made them: a newer membership replaces an older one, never the reverse.
    HistoryOffer {
        offered_at: Timestamp,
        offer: HistoryOffer,
        membership: Membership,
    },
    /// A direct message resent in answer to the retry request for `reference`.
    DirectResend {
        reference: MessageRef,
        nonce: MessageNonce,
        sent_to: Option<AccountKey>,
        body: Vec<u8>,
    },
    /// A group message of `group` resent pairwise in answer to the retry request for
    /// `reference`.
    GroupResend {
        reference: MessageRef,
        group: GroupId,
        body: Vec<u8>,
    },
    /// The call's current key message, sent in answer to the retry request for `reference`
    /// (a call key message of an earlier epoch of the call that could not be read).
    CallKeyResend {
        reference: MessageRef,
        message: CallKeyMessage,
    },
}

impl Payload {
    pub(crate) fn encode(&self) -> Zeroizing<Vec<u8>> {
        let body_len = match self {
            Self::Direct { body, .. }
            | Self::DirectResend { body, .. }
            | Self::GroupResend { body, .. } => body.len(),
            _ => 0,
        };
        let mut out = SecretBuf::with_capacity(3 + 32 + 33 + body_len + 160);
        out.header(kind::PAYLOAD);
        match self {
            Self::Direct {
                nonce,
                sent_to,
                body,
            } => {
                write_direct_head(&mut out, nonce, sent_to.as_ref());
                out.put(body);
            }
            Self::Distribution(d) => {
                out.u8(DISTRIBUTION);
                out.put(&d.to_bytes());
            }
            Self::Withheld {
                group,
                key_id,
                reason,
            } => {
                out.u8(WITHHELD);
                out.put(&group.0);
                out.u32(key_id.0);
                out.u8(reason.code());
            }
            Self::CallKey(m) => {
                out.u8(CALL_KEY);
                out.put(&m.to_bytes());
            }
            Self::HistoryOffer {
                offered_at,
                offer,
                membership,
            } => {
                out.u8(HISTORY_OFFER);
                out.u64(offered_at.as_millis());
                out.blob(&offer.to_bytes());
                membership.write(&mut out);
            }
            Self::DirectResend {
                reference,
                nonce,
                sent_to,
                body,
            } => {
                out.u8(DIRECT_RESEND);
                out.put(reference);
                out.put(nonce);
                out.optional(sent_to.as_ref(), |out, a| out.put(a.as_bytes()));
                out.put(body);
            }
            Self::GroupResend {
                reference,
                group,
                body,
            } => {
                out.u8(GROUP_RESEND);
                out.put(reference);
                out.put(&group.0);
                out.put(body);
            }
            Self::CallKeyResend { reference, message } => {
                out.u8(CALL_KEY_RESEND);
                out.put(reference);
                out.put(&message.to_bytes());
            }
        }
        out.into_inner()
    }

    /// Decodes a decrypted payload. A message's body becomes the payload's in the same
    /// buffer, moved to its front: a 1 KiB body is neither copied to a new allocation nor
    /// wiped, as the rest of the plaintext is (the body is the app's).
    pub(crate) fn decode(plaintext: Zeroizing<Vec<u8>>) -> Result<Self, DecodeError> {
        let mut r = Reader::header(&plaintext, kind::PAYLOAD)?;
        let body_at = |r: &Reader<'_>| plaintext.len() - r.rest_len();
        match r.u8()? {
            DIRECT => {
                let (nonce, sent_to) = (r.array()?, r.optional(AccountKey::read)?);
                let at = body_at(&r);
                Ok(Self::Direct {
                    nonce,
                    sent_to,
                    body: body(plaintext, at),
                })
            }
            DISTRIBUTION => {
                SenderKeyDistribution::from_bytes(r.rest()).map(|d| Self::Distribution(Box::new(d)))
            }
            WITHHELD => {
                let (group, key_id) = (GroupId(r.array()?), SenderKeyId(r.u32()?));
                let reason = WithheldReason::from_code(r.u8()?);
                r.finish()?;
                Ok(Self::Withheld {
                    group,
                    key_id,
                    reason,
                })
            }
            CALL_KEY => CallKeyMessage::from_bytes(r.rest()).map(Self::CallKey),
            HISTORY_OFFER => {
                let offered_at = Timestamp(r.u64()?);
                let len = r.u32()? as usize;
                let offer = HistoryOffer::from_bytes(r.bytes(len)?)?;
                let membership = Membership::read(&mut r)?;
                r.finish()?;
                Ok(Self::HistoryOffer {
                    offered_at,
                    offer,
                    membership,
                })
            }
            DIRECT_RESEND => {
                let (reference, nonce) = (r.array()?, r.array()?);
                let sent_to = r.optional(AccountKey::read)?;
                let at = body_at(&r);
                Ok(Self::DirectResend {
                    reference,
                    nonce,
                    sent_to,
                    body: body(plaintext, at),
                })
            }
            GROUP_RESEND => {
                let (reference, group) = (r.array()?, GroupId(r.array()?));
                let at = body_at(&r);
                Ok(Self::GroupResend {
                    reference,
                    group,
                    body: body(plaintext, at),
                })
            }
            CALL_KEY_RESEND => {
                let reference = r.array()?;
                CallKeyMessage::from_bytes(r.rest())
                    .map(|message| Self::CallKeyResend { reference, message })
            }
            _ => Err(DecodeError::InvalidValue),
        }
    }
}

/// The plaintext's bytes from `at` on (a message's body, its last field), moved to the front
/// of the same buffer. The bytes left past the body, what remains of the payload's head, are
/// wiped.
fn body(mut plaintext: Zeroizing<Vec<u8>>, at: usize) -> Vec<u8> {
    let len = plaintext.len().saturating_sub(at);
    plaintext.copy_within(at.., 0);
    plaintext[len..].zeroize();
    plaintext.truncate(len);
    crate::primitives::take_bytes(plaintext)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A send seals a direct payload as its head and then the body: together they are the
    /// payload's encoding, with and without the conversation of an own copy.
    #[test]
    fn a_direct_prefix_and_the_body_are_the_payload() {
        let account = AccountKey::from_trusted([0x51; 32]);
        let body = b"the body".to_vec();
        for sent_to in [None, Some(account)] {
            let prefix = DirectPrefix::new(&[7; 16], sent_to.as_ref());
            let mut joined = prefix.as_bytes().to_vec();
            joined.extend_from_slice(&body);
            let payload = Payload::Direct {
                nonce: [7; 16],
                sent_to,
                body: body.clone(),
            };
            assert_eq!(joined, *payload.encode());
        }
        let full = DirectPrefix::new(&[0; 16], Some(&account));
        assert_eq!(full.as_bytes().len(), DIRECT_PREFIX_MAX);
    }
}
