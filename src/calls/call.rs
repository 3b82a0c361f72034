//! A call's key state on one device.

use alloc::vec::Vec;
use core::fmt;
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use super::{CallId, CallKeyMessage, CallKind};
use crate::devices::DeviceAddress;
use crate::error::{DecodeError, SyncError};
use crate::labels;
use crate::primitives::{Secret, derive};

/// Default cap on a group call's participants.
pub const DEFAULT_MAX_GROUP_PARTICIPANTS: u32 = 32;
/// Default cap on a room's participants.
pub const DEFAULT_MAX_ROOM_PARTICIPANTS: u32 = 50;

/// Participant caps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallConfig {
    /// Group call cap.
    pub max_group_participants: u32,
    /// Room cap.
    pub max_room_participants: u32,
}

impl Default for CallConfig {
    fn default() -> Self {
        Self {
            max_group_participants: DEFAULT_MAX_GROUP_PARTICIPANTS,
            max_room_participants: DEFAULT_MAX_ROOM_PARTICIPANTS,
        }
    }
}

/// An SRTP master key and salt (for the `AEAD_AES_256_GCM` profile of RFC 7714: 32-byte key,
/// 12-byte salt). Zeroized on drop, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SrtpKeys(Secret<44>);

impl SrtpKeys {
    /// The 32-byte SRTP master key.
    pub fn master_key(&self) -> &[u8] {
        &self.0.as_bytes()[..32]
    }

    /// The 12-byte SRTP master salt.
    pub fn master_salt(&self) -> &[u8] {
        &self.0.as_bytes()[32..]
    }
}

impl fmt::Debug for SrtpKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SrtpKeys(redacted)")
    }
}

/// One call's current epoch as this device knows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Call(CallKeyMessage);

impl Call {
    /// Starts a call with these participants (this device included): a fresh call id (16
    /// bytes from `rng`) and epoch-0 secret (32 bytes).
    pub fn start(
        rng: &mut impl CryptoRng,
        kind: CallKind,
        participants: &[DeviceAddress],
        config: &CallConfig,
    ) -> Result<Self, SyncError> {
        let mut id = [0u8; 16];
        rng.fill_bytes(&mut id);
        let mut secret = Secret::from_bytes([0u8; 32]);
        rng.fill_bytes(secret.as_mut_bytes());
        let mut participants = participants.to_vec();
        participants.sort_unstable();
        participants.dedup();
        let call = Self(CallKeyMessage {
            call: CallId(id),
            kind,
            epoch: 0,
            secret,
            participants,
        });
        call.check_cap(config)?;
        Ok(call)
    }

    /// The call as a participant learns it from a key message.
    pub fn from_key_message(
        message: CallKeyMessage,
        config: &CallConfig,
    ) -> Result<Self, SyncError> {
        let call = Self(message);
        call.check_cap(config)?;
        Ok(call)
    }

    /// Moves to a newer epoch from a key message of this call; an older, equal, or foreign
    /// one is refused and changes nothing.
    pub fn apply(&mut self, message: CallKeyMessage, config: &CallConfig) -> Result<(), SyncError> {
        if message.call != self.0.call
            || message.kind != self.0.kind
            || message.epoch <= self.0.epoch
        {
            return Err(SyncError::StaleCallKey);
        }
        let next = Self(message);
        next.check_cap(config)?;
        *self = next;
        Ok(())
    }

    /// Adds a participant: the next epoch's secret is derived one-way from the current one,
    /// so the newcomer cannot compute keys used before it joined. Send the returned message
    /// to every participant (the newcomer included).
    pub fn join(
        &mut self,
        participant: DeviceAddress,
        config: &CallConfig,
    ) -> Result<CallKeyMessage, SyncError> {
        let epoch = self.0.epoch.checked_add(1).ok_or(SyncError::StaleCallKey)?;
        let mut participants = self.0.participants.clone();
        if let Err(at) = participants.binary_search(&participant) {
            participants.insert(at, participant);
        }
        let next = Self(CallKeyMessage {
            secret: derive(
                Some(&salt(&self.0.call, epoch)),
                self.0.secret.as_bytes(),
                labels::CALL_RATCHET,
            ),
            epoch,
            participants,
            ..self.0.clone()
        });
        next.check_cap(config)?;
        *self = next;
        Ok(self.0.clone())
    }

    /// Removes a participant (it left, or its device was unlinked): the next epoch's secret is
    /// fresh (32 bytes from `rng`), so the leaver cannot compute later keys. Send the returned
    /// message to the remaining participants only.
    pub fn remove(
        &mut self,
        rng: &mut impl CryptoRng,
        participant: &DeviceAddress,
    ) -> Result<CallKeyMessage, SyncError> {
        let at = self
            .0
            .participants
            .binary_search(participant)
            .map_err(|_| SyncError::NotInCall)?;
        let epoch = self.0.epoch.checked_add(1).ok_or(SyncError::StaleCallKey)?;
        let mut secret = Secret::from_bytes([0u8; 32]);
        rng.fill_bytes(secret.as_mut_bytes());
        let mut participants = self.0.participants.clone();
        participants.remove(at);
        self.0 = CallKeyMessage {
            secret,
            epoch,
            participants,
            ..self.0.clone()
        };
        Ok(self.0.clone())
    }

    /// The current key message (to resend to a participant).
    pub fn key_message(&self) -> &CallKeyMessage {
        &self.0
    }

    /// The call's id.
    pub fn id(&self) -> CallId {
        self.0.call
    }

    /// The current epoch.
    pub fn epoch(&self) -> u32 {
        self.0.epoch
    }

    /// The participants, ascending.
    pub fn participants(&self) -> &[DeviceAddress] {
        &self.0.participants
    }

    /// The SRTP keys `participant` sends with in the current epoch (its own, to send; anyone
    /// else's, to receive from it):
    /// HKDF(salt = call id ‖ u32 epoch, ikm = secret, info = label ‖ account ‖ u32 device).
    pub fn srtp_keys(&self, participant: &DeviceAddress) -> Result<SrtpKeys, SyncError> {
        self.0
            .participants
            .binary_search(participant)
            .map_err(|_| SyncError::NotInCall)?;
        let mut info = Vec::with_capacity(labels::CALL_SRTP.len() + 36);
        info.extend_from_slice(labels::CALL_SRTP);
        info.extend_from_slice(&participant.account.to_bytes());
        info.extend_from_slice(&participant.device.0.to_be_bytes());
        Ok(SrtpKeys(derive(
            Some(&salt(&self.0.call, self.0.epoch)),
            self.0.secret.as_bytes(),
            &info,
        )))
    }

    fn check_cap(&self, config: &CallConfig) -> Result<(), SyncError> {
        let cap = match self.0.kind {
            CallKind::OneToOne => super::key_message::MAX_CALL_PARTICIPANTS,
            CallKind::Group => config.max_group_participants,
            CallKind::Room => config.max_room_participants,
        };
        if self.0.participants.len() > cap as usize {
            Err(SyncError::CallFull)
        } else {
            Ok(())
        }
    }

    /// Versioned state bytes: the current key message's encoding (it is the whole state).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        self.0.to_bytes()
    }

    /// Restores from [`to_bytes`](Self::to_bytes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        CallKeyMessage::from_bytes(bytes).map(Self)
    }
}

fn salt(call: &CallId, epoch: u32) -> [u8; 20] {
    let mut s = [0u8; 20];
    s[..16].copy_from_slice(&call.0);
    s[16..].copy_from_slice(&epoch.to_be_bytes());
    s
}

impl fmt::Debug for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Call").field(&self.0).finish()
    }
}
