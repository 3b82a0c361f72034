//! What travels inside a pairwise session (PROTOCOL.md, "Payload"): a direct message (with the
//! conversation for the sender's own copies), a sender-key distribution, or a withheld notice.

use alloc::vec::Vec;

use crate::calls::CallKeyMessage;
use crate::devices::AccountKey;
use crate::devices::account::{read_account, write_account};
use crate::error::DecodeError;
use crate::group::{GroupId, SenderKeyDistribution};
use crate::history::HistoryOffer;
use crate::wire::{Reader, Writer, kind};

const DIRECT: u8 = 1;
const DISTRIBUTION: u8 = 2;
const WITHHELD: u8 = 3;
const CALL_KEY: u8 = 4;
const HISTORY_OFFER: u8 = 5;
const GROUP_RESEND: u8 = 6;

/// Why a sender withholds its group key from a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WithheldReason {
    /// The recipient account is blocked by the sender.
    Blocked,
    /// The sender has not verified the recipient device.
    Unverified,
    /// The app's own reason, a number it defines.
    Other(u8),
}

impl WithheldReason {
    fn code(self) -> u8 {
        match self {
            Self::Blocked => 1,
            Self::Unverified => 2,
            Self::Other(n) => n,
        }
    }

    fn from_code(code: u8) -> Self {
        match code {
            1 => Self::Blocked,
            2 => Self::Unverified,
            n => Self::Other(n),
        }
    }
}

pub(crate) enum Payload {
    /// `sent_to` is set on the sender's own copies: the account the message went to.
    Direct {
        sent_to: Option<AccountKey>,
        body: Vec<u8>,
    },
    Distribution(alloc::boxed::Box<SenderKeyDistribution>),
    Withheld {
        group: GroupId,
        reason: WithheldReason,
    },
    CallKey(CallKeyMessage),
    HistoryOffer(HistoryOffer),
    /// A group message re-sent pairwise in answer to a retry request.
    GroupResend {
        group: GroupId,
        body: Vec<u8>,
    },
}

impl Payload {
    pub(crate) fn encode(&self) -> zeroize::Zeroizing<Vec<u8>> {
        let mut out = zeroize::Zeroizing::new(Vec::new());
        out.header(kind::PAYLOAD);
        match self {
            Self::Direct { sent_to, body } => {
                out.push(DIRECT);
                out.optional(sent_to.as_ref(), write_account);
                out.extend_from_slice(body);
            }
            Self::Distribution(d) => {
                out.push(DISTRIBUTION);
                out.extend_from_slice(&d.to_bytes());
            }
            Self::Withheld { group, reason } => {
                out.push(WITHHELD);
                out.extend_from_slice(&group.0);
                out.push(reason.code());
            }
            Self::CallKey(m) => {
                out.push(CALL_KEY);
                out.extend_from_slice(&m.to_bytes());
            }
            Self::HistoryOffer(o) => {
                out.push(HISTORY_OFFER);
                out.extend_from_slice(&o.to_bytes());
            }
            Self::GroupResend { group, body } => {
                out.push(GROUP_RESEND);
                out.extend_from_slice(&group.0);
                out.extend_from_slice(body);
            }
        }
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::header(bytes, kind::PAYLOAD)?;
        match r.u8()? {
            DIRECT => Ok(Self::Direct {
                sent_to: r.optional(read_account)?,
                body: r.rest().to_vec(),
            }),
            DISTRIBUTION => SenderKeyDistribution::from_bytes(r.rest())
                .map(|d| Self::Distribution(alloc::boxed::Box::new(d))),
            WITHHELD => {
                let group = GroupId(r.array()?);
                let reason = WithheldReason::from_code(r.u8()?);
                r.finish()?;
                Ok(Self::Withheld { group, reason })
            }
            CALL_KEY => CallKeyMessage::from_bytes(r.rest()).map(Self::CallKey),
            HISTORY_OFFER => HistoryOffer::from_bytes(r.rest()).map(Self::HistoryOffer),
            GROUP_RESEND => Ok(Self::GroupResend {
                group: GroupId(r.array()?),
                body: r.rest().to_vec(),
            }),
            _ => Err(DecodeError::InvalidValue),
        }
    }
}
