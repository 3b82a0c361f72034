//! A call's key state on one device.
//!
//! One device manages a call's keys: the one that started it. Only its key messages move the
//! call forward, one epoch at a time ([`Call::apply`]) or, after missed epochs, straight to a
//! newer one ([`Call::catch_up`]), never back; only it can add or remove participants; a
//! participant removed from the call (or anybody else) cannot re-key it or list itself again.

use alloc::vec::Vec;
use core::fmt;
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use super::{CallId, CallKeyMessage, CallKind};
use crate::devices::DeviceAddress;
use crate::error::{DecodeError, Error, SyncError};
use crate::labels;
use crate::primitives::{Secret, derive};
use crate::wire::{Reader, SecretBuf, Writer, kind};

/// Default cap on a group call's participants.
pub const DEFAULT_MAX_GROUP_PARTICIPANTS: u32 = 32;
/// Default cap on a room's participants.
pub const DEFAULT_MAX_ROOM_PARTICIPANTS: u32 = 50;

/// The call state format this build writes.
const CALL_STATE_VERSION: u8 = 1;

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

/// What an app keeps of a call where a restore from backup does not reach (beside the device's
/// epoch): the call's manager and the highest epoch persisted ([`Call::kept`]). A device
/// restored from a backup older than the call learns the call again only from that manager, at
/// that epoch or later ([`Call::from_key_message_kept`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeptCall {
    /// The device that manages the call's keys.
    pub manager: DeviceAddress,
    /// The highest epoch of the call persisted (never lowered).
    pub epoch: u32,
}

/// One call's current epoch as this device (`me`) knows it.
///
/// # Example
///
/// Alice's phone calls Bob and manages the call's keys; both derive the same SRTP keys.
///
/// ```
/// # include!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/docs/doctest_setup.rs"));
/// use ratchetry::calls::{Call, CallConfig, CallKind};
/// # fn main() -> Result<(), ratchetry::Error> {
/// # let (mut rng, now, mut server) = (UnwrapErr(SysRng), Timestamp(1_790_000_000_000), Server::default());
/// # let (_, mut alice) = server.account(&mut rng, now)?;
/// # let (_, mut bob) = server.account(&mut rng, now)?;
/// let (a, b) = (alice.address(), bob.address());
/// // Key messages go to devices whose lists the caller follows (Bob is a contact).
/// alice.update_device_list(now, &b.account, server.list(&b.account))?;
/// let config = CallConfig::default();
/// let mut call = Call::start(&mut rng, CallKind::OneToOne, a, &[b], &config)?;
/// let (participants, key) = (call.participants().to_vec(), call.key_message().clone());
/// let outbox = server.ready(&mut alice, &mut rng, now, |d, rng| {
///     d.send_call_key(rng, now, &participants, &key)
/// })?;
///
/// let received = server.receive(&mut bob, now, &envelope_to(&outbox, b))?;
/// let Received::CallKey { from, message } = received else { unreachable!() };
/// let bobs_call = Call::from_key_message(b, &from, message, &config)?;
/// // Alice sends media under her keys; Bob derives them to receive it.
/// assert_eq!(call.srtp_keys(&a)?, bobs_call.srtp_keys(&a)?);
/// assert_eq!(call.epoch(), bobs_call.epoch());
/// # let _ = &mut call;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Call {
    me: DeviceAddress,
    current: CallKeyMessage,
    /// The epoch the app kept when it [`restore`](Call::restore)d a stale snapshot as a
    /// participant: no key message below it is taken. 0 (none) unless it is above the current
    /// epoch, and always 0 on a call `me` manages; back to 0 once the call reaches it.
    floor: u32,
}

impl Call {
    /// Starts a call managed by this device, `me`, with these participants (`me` is added if
    /// missing): a fresh call id (16 bytes from `rng`) and epoch-0 secret (32 bytes).
    pub fn start(
        rng: &mut impl CryptoRng,
        kind: CallKind,
        me: DeviceAddress,
        participants: &[DeviceAddress],
        config: &CallConfig,
    ) -> Result<Self, SyncError> {
        let mut id = [0u8; 16];
        rng.fill_bytes(&mut id);
        let mut secret = Secret::from_bytes([0u8; 32]);
        rng.fill_bytes(secret.as_mut_bytes());
        let mut participants = participants.to_vec();
        participants.push(me);
        participants.sort_unstable();
        participants.dedup();
        let call = Self {
            me,
            current: CallKeyMessage {
                call: CallId(id),
                kind,
                epoch: 0,
                secret,
                manager: me,
                participants,
            },
            floor: 0,
        };
        call.check_cap(&call.current, config)?;
        Ok(call)
    }

    /// A call this device does not hold yet, as the participant `me` learns it from a key
    /// message that `from` sent (as the fanout layer reports it): `from` must be the call's
    /// manager, and `me` a participant.
    ///
    /// Never use it to replace a call this device holds: it accepts any epoch, older ones too,
    /// and any device may name itself manager of a call object of its own. A held call moves
    /// only with [`apply`](Self::apply) and, after missed epochs, [`catch_up`](Self::catch_up),
    /// which both refuse to go back to an older epoch or to another manager. If the app kept
    /// this call ([`KeptCall`]: it went through the call, and the device was restored from a
    /// backup that predates it), learn it with
    /// [`from_key_message_kept`](Self::from_key_message_kept) instead.
    pub fn from_key_message(
        me: DeviceAddress,
        from: &DeviceAddress,
        message: CallKeyMessage,
        config: &CallConfig,
    ) -> Result<Self, SyncError> {
        let kept = KeptCall {
            manager: message.manager,
            epoch: 0,
        };
        Self::from_key_message_kept(me, from, message, config, &kept)
    }

    /// [`from_key_message`](Self::from_key_message) for a call the app kept
    /// ([`KeptCall`]) but holds no state of: the device was restored from a backup older than
    /// the call (or than the app's copy of it), so the key messages it reads again may be
    /// replays of epochs it went through, whose keys a participant removed since holds, or a
    /// call object of such a participant under the same id. A message of another manager than
    /// the kept one is `NotCallManager`; one older than the kept epoch is `StaleCallKey` (drop
    /// it, and learn the call from the manager's current key message); the kept epoch itself,
    /// which the device held, or any newer one is taken. As [`restore`](Self::restore) floors
    /// a stale snapshot of a call.
    pub fn from_key_message_kept(
        me: DeviceAddress,
        from: &DeviceAddress,
        message: CallKeyMessage,
        config: &CallConfig,
        kept: &KeptCall,
    ) -> Result<Self, SyncError> {
        if *from != message.manager || message.manager != kept.manager {
            return Err(SyncError::NotCallManager);
        }
        if message.epoch < kept.epoch {
            return Err(SyncError::StaleCallKey);
        }
        if message.participants.binary_search(&me).is_err() {
            return Err(SyncError::NotInCall);
        }
        let call = Self {
            me,
            current: message,
            floor: 0,
        };
        call.check_cap(&call.current, config)?;
        Ok(call)
    }

    /// Moves to the next epoch from a key message of this call that `from` sent. Refused, with
    /// nothing changed: a message not from the call's manager (`NotCallManager`); for another
    /// call or kind, not newer than the held epoch, or, on a call [`restore`](Self::restore)d
    /// from a stale snapshot, older than the epoch the app kept (`StaleCallKey`: an old or
    /// replayed message, drop it); one that no longer lists this device (`NotInCall`: it was
    /// removed); over the kind's cap (`CallFull`); more than one epoch ahead (`CallKeyAhead`,
    /// with the held and offered epochs: epochs were missed).
    pub fn apply(
        &mut self,
        from: &DeviceAddress,
        message: CallKeyMessage,
        config: &CallConfig,
    ) -> Result<(), SyncError> {
        self.check_newer(from, &message, config)?;
        if Some(message.epoch) != self.current.epoch.checked_add(1) {
            return Err(SyncError::CallKeyAhead {
                held: self.current.epoch,
                offered: message.epoch,
            });
        }
        self.current = message;
        self.floor = 0;
        Ok(())
    }

    /// Catches a held call up to a newer epoch, after [`apply`](Self::apply) said
    /// `CallKeyAhead` (epochs were missed, or their messages are still on their way): from a key
    /// message of this call that its manager `from` sent, of the same kind, any epoch newer than
    /// the held one, still listing this device. Never goes back: a message for the held epoch
    /// or an older one is `StaleCallKey` (drop it, even if it arrives after a newer one), as is
    /// one older than the epoch the app kept when it [`restore`](Self::restore)d a stale
    /// snapshot of the call (the device went through those epochs after the snapshot), and
    /// the other refusals are those of `apply`, all with nothing changed. The messages skipped
    /// need not arrive: each epoch's secret stands on its own.
    pub fn catch_up(
        &mut self,
        from: &DeviceAddress,
        message: CallKeyMessage,
        config: &CallConfig,
    ) -> Result<(), SyncError> {
        self.check_newer(from, &message, config)?;
        self.current = message;
        self.floor = 0;
        Ok(())
    }

    /// Whether `message`, sent by `from`, is a newer epoch of this call that still lists this
    /// device and is not below the restore floor: the checks of [`apply`](Self::apply) but the
    /// step of one.
    fn check_newer(
        &self,
        from: &DeviceAddress,
        message: &CallKeyMessage,
        config: &CallConfig,
    ) -> Result<(), SyncError> {
        let c = &self.current;
        if *from != c.manager || message.manager != c.manager {
            return Err(SyncError::NotCallManager);
        }
        if message.call != c.call
            || message.kind != c.kind
            || message.epoch <= c.epoch
            || message.epoch < self.floor
        {
            return Err(SyncError::StaleCallKey);
        }
        if message.participants.binary_search(&self.me).is_err() {
            return Err(SyncError::NotInCall);
        }
        self.check_cap(message, config)
    }

    /// Adds a participant (manager only). The next epoch's secret mixes the current one with
    /// 32 fresh bytes from `rng`, so the newcomer cannot compute earlier keys and nobody who
    /// lacks the new message can compute the new one. Send the returned message to every
    /// participant, the newcomer included.
    pub fn join(
        &mut self,
        rng: &mut impl CryptoRng,
        participant: DeviceAddress,
        config: &CallConfig,
    ) -> Result<CallKeyMessage, SyncError> {
        self.managing()?;
        let epoch = self.next_epoch()?;
        let mut participants = self.current.participants.clone();
        if let Err(at) = participants.binary_search(&participant) {
            participants.insert(at, participant);
        }
        let mut ikm = Zeroizing::new([0u8; 64]);
        ikm[..32].copy_from_slice(self.current.secret.as_bytes());
        rng.fill_bytes(&mut ikm[32..]);
        let next = CallKeyMessage {
            secret: derive(
                Some(&salt(&self.current.call, epoch)),
                &ikm[..],
                labels::CALL_RATCHET,
            ),
            epoch,
            participants,
            ..self.current.clone()
        };
        self.check_cap(&next, config)?;
        self.current = next;
        Ok(self.current.clone())
    }

    /// Removes a participant (manager only; it left, or its device was unlinked): the next
    /// epoch's secret is fresh (32 bytes from `rng`), so the leaver cannot compute later keys.
    /// Send the returned message to the remaining participants only.
    pub fn remove(
        &mut self,
        rng: &mut impl CryptoRng,
        participant: &DeviceAddress,
    ) -> Result<CallKeyMessage, SyncError> {
        self.managing()?;
        if *participant == self.me {
            return Err(SyncError::NotCallManager);
        }
        let at = self
            .current
            .participants
            .binary_search(participant)
            .map_err(|_| SyncError::NotInCall)?;
        let epoch = self.next_epoch()?;
        let mut secret = Secret::from_bytes([0u8; 32]);
        rng.fill_bytes(secret.as_mut_bytes());
        let mut participants = self.current.participants.clone();
        participants.remove(at);
        self.current = CallKeyMessage {
            secret,
            epoch,
            participants,
            ..self.current.clone()
        };
        Ok(self.current.clone())
    }

    fn managing(&self) -> Result<(), SyncError> {
        if self.me == self.current.manager {
            Ok(())
        } else {
            Err(SyncError::NotCallManager)
        }
    }

    fn next_epoch(&self) -> Result<u32, SyncError> {
        self.current
            .epoch
            .checked_add(1)
            .ok_or(SyncError::StaleCallKey)
    }

    /// The current key message (to resend to a participant).
    pub fn key_message(&self) -> &CallKeyMessage {
        &self.current
    }

    /// What the app keeps of this call where a restore from backup does not reach: its
    /// manager and epoch. Keep the highest epoch persisted (never lower it: a participant's
    /// call restored from a stale snapshot reports its snapshot's epoch until it catches up).
    pub fn kept(&self) -> KeptCall {
        KeptCall {
            manager: self.current.manager,
            epoch: self.current.epoch,
        }
    }

    /// The call's id.
    pub fn id(&self) -> CallId {
        self.current.call
    }

    /// The current epoch.
    pub fn epoch(&self) -> u32 {
        self.current.epoch
    }

    /// The device that manages the call's keys.
    pub fn manager(&self) -> DeviceAddress {
        self.current.manager
    }

    /// The participants, ascending.
    pub fn participants(&self) -> &[DeviceAddress] {
        &self.current.participants
    }

    /// The SRTP keys `participant` sends with in the current epoch (its own, to send; anyone
    /// else's, to receive from it):
    /// HKDF(salt = call id ‖ u32 epoch, ikm = secret, info = label ‖ account ‖ u32 device).
    /// A participant's call restored below its floor ([`restore`](Self::restore)) gives none
    /// until it has caught up (`StaleCallKey`): its epoch may be one a participant removed
    /// since holds.
    pub fn srtp_keys(&self, participant: &DeviceAddress) -> Result<SrtpKeys, SyncError> {
        if self.floor > self.current.epoch {
            return Err(SyncError::StaleCallKey);
        }
        self.current
            .participants
            .binary_search(participant)
            .map_err(|_| SyncError::NotInCall)?;
        let mut info = Vec::with_capacity(labels::CALL_SRTP.len() + 36);
        info.extend_from_slice(labels::CALL_SRTP);
        participant.write(&mut info);
        Ok(SrtpKeys(derive(
            Some(&salt(&self.current.call, self.current.epoch)),
            self.current.secret.as_bytes(),
            &info,
        )))
    }

    fn check_cap(&self, message: &CallKeyMessage, config: &CallConfig) -> Result<(), SyncError> {
        let cap = match message.kind {
            CallKind::OneToOne => super::key_message::MAX_CALL_PARTICIPANTS,
            CallKind::Group => config.max_group_participants,
            CallKind::Room => config.max_room_participants,
        };
        if message.participants.len() > cap as usize {
            Err(SyncError::CallFull)
        } else {
            Ok(())
        }
    }

    /// Versioned state bytes: this device's address, the current key message's fields, then
    /// the restore floor (the epoch kept by a stale [`restore`](Self::restore) that the call has
    /// not reached yet, else 0), so a restored call saved again keeps refusing older epochs.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let message = self.current.to_bytes();
        let mut out = SecretBuf::with_capacity(2 + 36 + message.len() + 4);
        out.versioned_header(CALL_STATE_VERSION, kind::CALL_STATE);
        self.me.write(&mut out);
        out.put(&message[2..]);
        out.u32(self.floor);
        out.into_inner()
    }

    /// Loads [`to_bytes`](Self::to_bytes) as written. A call this device manages, loaded from
    /// a snapshot older than the state it last had, would issue epoch numbers it already
    /// issued, and a participant's would accept epochs it already left: load a snapshot with
    /// [`restore`](Self::restore). Refused (`InvalidValue`): `me` not a participant; a floor
    /// other than 0 on a call `me` manages, or not above the epoch.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let (mut r, _) = Reader::versioned_header(bytes, kind::CALL_STATE, &[CALL_STATE_VERSION])?;
        let me = DeviceAddress::read(&mut r)?;
        let current = CallKeyMessage::read(&mut r)?;
        let floor = r.u32()?;
        r.finish()?;
        if current.participants.binary_search(&me).is_err() {
            return Err(DecodeError::InvalidValue);
        }
        if floor != 0 && (me == current.manager || floor <= current.epoch) {
            return Err(DecodeError::InvalidValue);
        }
        Ok(Self { me, current, floor })
    }

    /// Loads a call persisted with [`to_bytes`](Self::to_bytes) and detects a stale snapshot:
    /// `last_epoch` is the highest [`epoch`](Self::epoch) of this call this device persisted,
    /// kept where a restore from backup does not roll it back (persist the call before sending
    /// each of its key messages, and never lower the kept value: a call restored as a
    /// participant reports its snapshot's epoch until it catches up). If the snapshot's epoch is
    /// lower, the second value is `true`, and:
    ///
    /// - a call this device manages moves to epoch `last_epoch + 1` with a fresh secret (32
    ///   bytes from `rng`) and **this device alone** as participant. It may have issued every
    ///   epoch up to `last_epoch` after the snapshot, so it never issues one of them again (two
    ///   secrets under one epoch number: a participant holding the first drops the second as
    ///   old); and it may have removed participants since the snapshot, which nothing in the
    ///   snapshot tells, so it lists none of the snapshot's. Persist, then add back each device
    ///   that is still in the call with [`join`](Self::join) (each its own epoch, with fresh
    ///   randomness), persisting before sending each join's message as usual; the participants
    ///   catch up to it. A device not added back gets no key of the new epochs.
    /// - a participant's call loads with `last_epoch` as its floor: [`apply`](Self::apply) and
    ///   [`catch_up`](Self::catch_up) refuse any key message older than it (`StaleCallKey`),
    ///   so a replayed message cannot take it back to an epoch it went through after the
    ///   snapshot (one a participant removed since may hold); `last_epoch` itself, which it
    ///   held, or any newer one is taken. The floor is persisted with the call until the call
    ///   reaches it, and until then [`srtp_keys`](Self::srtp_keys) is `StaleCallKey`: catch
    ///   the call up from the manager's current key message (its snapshot's epoch is old).
    ///
    /// Refused: bytes that are no call state (`Decode`); a stale manager's snapshot with
    /// `last_epoch` at `u32::MAX`, no epoch left (`Sync(StaleCallKey)`: start a new call).
    pub fn restore(
        rng: &mut impl CryptoRng,
        bytes: &[u8],
        last_epoch: u32,
    ) -> Result<(Self, bool), Error> {
        let mut call = Self::from_bytes(bytes)?;
        if call.current.epoch >= last_epoch {
            return Ok((call, false));
        }
        if call.managing().is_ok() {
            let epoch = last_epoch.checked_add(1).ok_or(SyncError::StaleCallKey)?;
            let mut secret = Secret::from_bytes([0u8; 32]);
            rng.fill_bytes(secret.as_mut_bytes());
            call.current = CallKeyMessage {
                secret,
                epoch,
                participants: alloc::vec![call.me],
                ..call.current.clone()
            };
        } else {
            call.floor = call.floor.max(last_epoch);
        }
        Ok((call, true))
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
        f.debug_struct("Call")
            .field("me", &self.me)
            .field("current", &self.current)
            .field("floor", &self.floor)
            .finish()
    }
}
