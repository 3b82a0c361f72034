//! The call key message: a call's secret for one epoch and who is in it.

use alloc::vec::Vec;
use core::fmt;
use zeroize::Zeroizing;

use crate::devices::DeviceAddress;
use crate::error::DecodeError;
use crate::primitives::Secret;
use crate::wire::{Reader, SecretBuf, Writer, bounded_count, kind};

/// Participants a key message may list at all (policy caps are lower); bounds decoding.
pub(crate) const MAX_CALL_PARTICIPANTS: u32 = 256;

/// Names a call: 16 random bytes chosen by the device that starts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CallId(pub [u8; 16]);

/// What kind of call, which decides its participant cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallKind {
    /// Two accounts: the caller's device, and every device of the callee and the caller's
    /// other devices (whichever answers).
    OneToOne,
    /// A group call (default cap 32 participants).
    Group,
    /// A room (default cap 50 participants).
    Room,
}

impl CallKind {
    fn code(self) -> u8 {
        match self {
            Self::OneToOne => 1,
            Self::Group => 2,
            Self::Room => 3,
        }
    }

    fn from_code(c: u8) -> Result<Self, DecodeError> {
        match c {
            1 => Ok(Self::OneToOne),
            2 => Ok(Self::Group),
            3 => Ok(Self::Room),
            _ => Err(DecodeError::InvalidValue),
        }
    }
}

/// A call's secret for one epoch, its key manager and its participants. Carries a secret: it
/// travels only inside pairwise sessions.
#[derive(Clone, PartialEq, Eq)]
pub struct CallKeyMessage {
    pub(crate) call: CallId,
    pub(crate) kind: CallKind,
    pub(crate) epoch: u32,
    pub(crate) secret: Secret<32>,
    /// The one device that may change the call's epoch (the one that started it).
    pub(crate) manager: DeviceAddress,
    /// Ascending, no duplicates; the manager among them.
    pub(crate) participants: Vec<DeviceAddress>,
}

impl CallKeyMessage {
    /// The call.
    pub fn call(&self) -> CallId {
        self.call
    }

    /// The epoch this secret belongs to.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The call's kind.
    pub fn kind(&self) -> CallKind {
        self.kind
    }

    /// The device that manages the call's keys.
    pub fn manager(&self) -> DeviceAddress {
        self.manager
    }

    /// Wire bytes (they hold the epoch secret).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = SecretBuf::with_capacity(96 + 36 * self.participants.len());
        out.header(kind::CALL_KEY);
        out.put(&self.call.0);
        out.u8(self.kind.code());
        out.u32(self.epoch);
        out.put(self.secret.as_bytes());
        self.manager.write(&mut out);
        out.u32(self.participants.len() as u32);
        for p in &self.participants {
            p.write(&mut out);
        }
        out.into_inner()
    }

    /// Parses wire bytes; participants must be in strictly ascending order and include the
    /// manager.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::header(bytes, kind::CALL_KEY)?;
        let message = Self::read(&mut r)?;
        r.finish()?;
        Ok(message)
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let call = CallId(r.array()?);
        let kind = CallKind::from_code(r.u8()?)?;
        let epoch = r.u32()?;
        let secret = Secret::from_bytes(r.array()?);
        let manager = DeviceAddress::read(r)?;
        let n = bounded_count(r, MAX_CALL_PARTICIPANTS)?;
        let mut participants: Vec<DeviceAddress> = Vec::with_capacity(r.capacity(n, 36));
        for _ in 0..n {
            let p = DeviceAddress::read(r)?;
            if participants.last().is_some_and(|last| *last >= p) {
                return Err(DecodeError::InvalidValue);
            }
            participants.push(p);
        }
        if participants.binary_search(&manager).is_err() {
            return Err(DecodeError::InvalidValue);
        }
        Ok(Self {
            call,
            kind,
            epoch,
            secret,
            manager,
            participants,
        })
    }
}

impl fmt::Debug for CallKeyMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallKeyMessage")
            .field("call", &self.call)
            .field("kind", &self.kind)
            .field("epoch", &self.epoch)
            .field("manager", &self.manager)
            .field("participants", &self.participants.len())
            .field("secret", &"redacted")
            .finish()
    }
}
