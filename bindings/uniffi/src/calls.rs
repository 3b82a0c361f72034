//! End-to-end call keys (`ratchetry::calls`): a [`Call`] held by each participant device, the
//! [`CallKeyMessage`] its manager sends through `Device.send_call_key`, and the [`SrtpKeys`]
//! each participant sends media with. Secrets leave only through explicit getters
//! (`SrtpKeys.master_key` / `master_salt`, `Call.to_bytes`, `CallKeyMessage.to_bytes`); every
//! string form is redacted.

use std::sync::{Arc, Mutex};

use ratchetry::calls;

use crate::config::CallConfig;
use crate::error::RatchetryError;
use crate::types::{Address, address_in, address_out, rng};

/// What kind of call, which decides its participant cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum CallKind {
    /// Two accounts: the caller's device, the callee's devices and the caller's other ones.
    OneToOne,
    /// A group call.
    Group,
    /// A room.
    Room,
}

impl From<CallKind> for calls::CallKind {
    fn from(k: CallKind) -> Self {
        match k {
            CallKind::OneToOne => Self::OneToOne,
            CallKind::Group => Self::Group,
            CallKind::Room => Self::Room,
        }
    }
}

impl From<calls::CallKind> for CallKind {
    fn from(k: calls::CallKind) -> Self {
        match k {
            calls::CallKind::OneToOne => Self::OneToOne,
            calls::CallKind::Group => Self::Group,
            calls::CallKind::Room => Self::Room,
        }
    }
}

/// A call's secret for one epoch, its manager and its participants (secret: it travels only
/// inside pairwise sessions). Printing it shows the call, epoch and manager, never the secret.
#[derive(uniffi::Object)]
#[uniffi::export(Debug)]
pub struct CallKeyMessage {
    pub(crate) inner: calls::CallKeyMessage,
}

/// The library's redacted `Debug`.
impl std::fmt::Debug for CallKeyMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

#[uniffi::export]
impl CallKeyMessage {
    /// Parses a key message's bytes (as [`to_bytes`](Self::to_bytes) gave them).
    #[uniffi::constructor]
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Arc<Self>, RatchetryError> {
        Ok(Arc::new(Self {
            inner: calls::CallKeyMessage::from_bytes(&bytes)?,
        }))
    }

    /// The call's id (16 bytes).
    pub fn call_id(&self) -> Vec<u8> {
        self.inner.call().0.to_vec()
    }

    /// The epoch this secret belongs to.
    pub fn epoch(&self) -> u32 {
        self.inner.epoch()
    }

    /// The kind of call.
    pub fn kind(&self) -> CallKind {
        self.inner.kind().into()
    }

    /// The device that manages the call's keys.
    pub fn manager(&self) -> Address {
        address_out(self.inner.manager())
    }

    /// The bytes (secret: keep them only where the device state is kept).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.inner.to_bytes().to_vec()
    }
}

/// The SRTP master key and salt one participant sends with in the current epoch
/// (`AEAD_AES_256_GCM`, RFC 7714). Printing it shows nothing of them.
#[derive(uniffi::Object)]
#[uniffi::export(Debug)]
pub struct SrtpKeys {
    inner: calls::SrtpKeys,
}

/// The library's redacted `Debug`.
impl std::fmt::Debug for SrtpKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

#[uniffi::export]
impl SrtpKeys {
    /// The 32-byte SRTP master key (secret).
    pub fn master_key(&self) -> Vec<u8> {
        self.inner.master_key().to_vec()
    }

    /// The 12-byte SRTP master salt (secret).
    pub fn master_salt(&self) -> Vec<u8> {
        self.inner.master_salt().to_vec()
    }
}

/// One call's current epoch as this device knows it. The device that starts a call manages
/// its keys: only it joins and removes participants, and only its key messages move the
/// call forward. Persist [`to_bytes`](Self::to_bytes) (and its epoch) before sending each key
/// message; load it with [`restore_call`].
#[derive(uniffi::Object)]
#[uniffi::export(Debug)]
pub struct Call {
    inner: Mutex<calls::Call>,
    config: calls::CallConfig,
}

/// The library's redacted `Debug` (ids, epoch, participants count; never the secret).
impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.inner.lock() {
            Ok(c) => c.fmt(f),
            Err(_) => f.write_str("Call(<poisoned>)"),
        }
    }
}

/// What the app keeps of a call where a restore from backup does not reach: its manager and the
/// highest epoch persisted (the call's `manager()` and `epoch()`).
#[derive(Clone, Debug, uniffi::Record)]
pub struct KeptCall {
    /// The device that manages the call's keys.
    pub manager: Address,
    /// The highest epoch of the call persisted (never lowered).
    pub epoch: u32,
}

/// A call loaded with [`restore_call`].
#[derive(uniffi::Record)]
pub struct RestoredCall {
    /// The call.
    pub call: Arc<Call>,
    /// Whether the bytes were older than `last_epoch`: a call this device manages moved to a
    /// fresh epoch with this device alone (add the others back with `join`); a participant's
    /// refuses key messages older than `last_epoch`.
    pub stale: bool,
}

/// Loads a call from [`Call::to_bytes`]; `last_epoch` is the highest epoch of this call this
/// device persisted (0 if unknown), so a stale snapshot never reissues or accepts an old
/// epoch. `config` defaults to the library's caps.
#[uniffi::export(default(config = None))]
pub fn restore_call(
    bytes: Vec<u8>,
    last_epoch: u32,
    config: Option<CallConfig>,
) -> Result<RestoredCall, RatchetryError> {
    let mut rng = rng()?;
    let (call, stale) = calls::Call::restore(&mut rng, &bytes, last_epoch)?;
    Ok(RestoredCall {
        call: Call::wrap(call, config),
        stale,
    })
}

impl Call {
    fn wrap(call: calls::Call, config: Option<CallConfig>) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(call),
            config: config.map_or_else(calls::CallConfig::default, Into::into),
        })
    }

    pub(crate) fn with<T>(&self, f: impl FnOnce(&calls::Call) -> T) -> Result<T, RatchetryError> {
        Ok(f(&*self.inner.lock()?))
    }
}

#[uniffi::export]
impl Call {
    /// Starts a call managed by this device, `me`, with these participants (`me` is added if
    /// missing): a fresh id and epoch-0 secret. Send [`key_message`](Self::key_message) to the
    /// other participants with `Device.send_call_key`.
    #[uniffi::constructor(default(config = None))]
    pub fn start(
        kind: CallKind,
        me: Address,
        participants: Vec<Address>,
        config: Option<CallConfig>,
    ) -> Result<Arc<Self>, RatchetryError> {
        let me = address_in(&me)?;
        let participants = addresses(&participants)?;
        let cfg = config.map_or_else(calls::CallConfig::default, Into::into);
        let mut rng = rng()?;
        let call = calls::Call::start(&mut rng, kind.into(), me, &participants, &cfg)?;
        Ok(Self::wrap(call, config))
    }

    /// A call this device does not hold yet, as participant `me` learns it from a key message
    /// `sender` sent (`Received.CallKey`). For a call already held, use
    /// [`apply`](Self::apply) or [`catch_up`](Self::catch_up), never this. `kept`: the
    /// manager and epoch of this call the app kept, if the device was restored from a backup
    /// older than the call: a key message of another manager is `sync.not_call_manager`, an
    /// older one `sync.stale_call_key` (a replay of an epoch it went through; learn the call
    /// from the manager's current message).
    #[uniffi::constructor(default(config = None, kept = None))]
    pub fn from_key_message(
        me: Address,
        sender: Address,
        message: Arc<CallKeyMessage>,
        config: Option<CallConfig>,
        kept: Option<KeptCall>,
    ) -> Result<Arc<Self>, RatchetryError> {
        let cfg = config.map_or_else(calls::CallConfig::default, Into::into);
        let (me, sender, message) = (
            address_in(&me)?,
            address_in(&sender)?,
            message.inner.clone(),
        );
        let call = match kept {
            Some(kept) => {
                let kept = calls::KeptCall {
                    manager: address_in(&kept.manager)?,
                    epoch: kept.epoch,
                };
                calls::Call::from_key_message_kept(me, &sender, message, &cfg, &kept)?
            }
            None => calls::Call::from_key_message(me, &sender, message, &cfg)?,
        };
        Ok(Self::wrap(call, config))
    }

    /// Moves to the next epoch from a key message `sender` sent. Refused with nothing
    /// changed: `sync.not_call_manager`, `sync.stale_call_key` (old or replayed: drop it),
    /// `sync.not_in_call` (removed), `sync.call_full`, `sync.call_key_ahead` (epochs were
    /// missed: [`catch_up`](Self::catch_up)).
    pub fn apply(
        &self,
        sender: Address,
        message: Arc<CallKeyMessage>,
    ) -> Result<(), RatchetryError> {
        let sender = address_in(&sender)?;
        Ok(self
            .inner
            .lock()?
            .apply(&sender, message.inner.clone(), &self.config)?)
    }

    /// Moves to any newer epoch after `apply` said `sync.call_key_ahead`; never back.
    pub fn catch_up(
        &self,
        sender: Address,
        message: Arc<CallKeyMessage>,
    ) -> Result<(), RatchetryError> {
        let sender = address_in(&sender)?;
        Ok(self
            .inner
            .lock()?
            .catch_up(&sender, message.inner.clone(), &self.config)?)
    }

    /// Adds a participant (manager only): a new epoch the newcomer cannot trace back. Send
    /// the returned message to every participant, the newcomer included.
    pub fn join(&self, participant: Address) -> Result<Arc<CallKeyMessage>, RatchetryError> {
        let participant = address_in(&participant)?;
        let mut rng = rng()?;
        let inner = self
            .inner
            .lock()?
            .join(&mut rng, participant, &self.config)?;
        Ok(Arc::new(CallKeyMessage { inner }))
    }

    /// Removes a participant (manager only): a fresh epoch secret the leaver cannot compute.
    /// Send the returned message to the remaining participants only.
    pub fn remove(&self, participant: Address) -> Result<Arc<CallKeyMessage>, RatchetryError> {
        let participant = address_in(&participant)?;
        let mut rng = rng()?;
        let inner = self.inner.lock()?.remove(&mut rng, &participant)?;
        Ok(Arc::new(CallKeyMessage { inner }))
    }

    /// The current key message (what `Device.send_call_key` sends).
    pub fn key_message(&self) -> Result<Arc<CallKeyMessage>, RatchetryError> {
        let inner = self.inner.lock()?.key_message().clone();
        Ok(Arc::new(CallKeyMessage { inner }))
    }

    /// The call's id (16 bytes).
    pub fn id(&self) -> Result<Vec<u8>, RatchetryError> {
        self.with(|c| c.id().0.to_vec())
    }

    /// The current epoch.
    pub fn epoch(&self) -> Result<u32, RatchetryError> {
        self.with(calls::Call::epoch)
    }

    /// The device that manages the call's keys.
    pub fn manager(&self) -> Result<Address, RatchetryError> {
        self.with(|c| address_out(c.manager()))
    }

    /// The participants, ascending.
    pub fn participants(&self) -> Result<Vec<Address>, RatchetryError> {
        self.with(|c| c.participants().iter().copied().map(address_out).collect())
    }

    /// The SRTP keys `participant` sends with in the current epoch (this device's own, to
    /// send; another participant's, to receive from it). Not a participant: `sync.not_in_call`.
    pub fn srtp_keys(&self, participant: Address) -> Result<Arc<SrtpKeys>, RatchetryError> {
        let participant = address_in(&participant)?;
        let inner = self.inner.lock()?.srtp_keys(&participant)?;
        Ok(Arc::new(SrtpKeys { inner }))
    }

    /// The state as bytes (secret), for [`restore_call`].
    pub fn to_bytes(&self) -> Result<Vec<u8>, RatchetryError> {
        self.with(|c| c.to_bytes().to_vec())
    }
}

/// Device addresses from their binding form.
pub(crate) fn addresses(
    list: &[Address],
) -> Result<Vec<ratchetry::devices::DeviceAddress>, RatchetryError> {
    list.iter().map(address_in).collect()
}
