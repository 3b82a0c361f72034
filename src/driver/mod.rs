//! The loops every app runs around a [`Device`]: a send until its outbox is ready, fetching
//! the device lists and prekey bundles it names; a receive until it is read or the app knows
//! what to do with the envelope (show it, acknowledge a duplicate, hold it for its sender key,
//! ask its sender again, drop it). The app plugs in its relay through [`Directory`], or steps
//! a receive itself with [`Receiving`] when its relay answers asynchronously; the driver does
//! no I/O of its own, and decides nothing the device does not: it follows the guide's table of
//! what to retry.
//!
//! It builds on fanout (the device and its outcomes) and devices (lists); it must not reach
//! below the device's public API.

use alloc::collections::BTreeSet;
use alloc::vec::Vec;
use core::fmt;
use rand_core::CryptoRng;

use crate::devices::{AccountKey, DeviceAddress, SignedDeviceList};
use crate::error::{DeviceError, Error, FanoutError, RatchetError, X3dhError};
use crate::fanout::{Device, EnvelopeId, Event, Outbox, Outgoing, Received, RetryReason};
use crate::group::GroupId;
use crate::time::Timestamp;
use crate::x3dh::PreKeyBundle;

/// Rounds of fetching a send or a receive may take before the driver gives up: each round
/// answers everything the device named, so more than a few means the relay is not answering.
pub const MAX_ROUNDS: usize = 4;

/// What the app's relay serves, over the app's transport.
pub trait Directory {
    /// The transport's error.
    type Error;

    /// The current signed device list of each account it has. Leave out an account this app
    /// does not accept messages from: it stays unknown and its envelopes are dropped.
    fn device_lists(
        &mut self,
        accounts: &[AccountKey],
    ) -> Result<Vec<SignedDeviceList>, Self::Error>;

    /// A prekey bundle for each device it has (the relay hands each one-time key out once).
    fn bundles(
        &mut self,
        devices: &[DeviceAddress],
    ) -> Result<Vec<(DeviceAddress, PreKeyBundle)>, Self::Error>;
}

/// Why a driven send or receive stopped without an outcome.
#[derive(Debug, PartialEq, Eq)]
pub enum DriveError<E> {
    /// The directory failed: nothing was decided, try again later.
    Directory(E),
    /// The device refused (a list that does not verify or equivocates; a bundle with another
    /// identity key; a send the device cannot make). A list older than the one held is not
    /// refused here: the loop goes on with the list held.
    Device(Error),
    /// The directory did not serve what the device needs after [`MAX_ROUNDS`] rounds.
    Unresolved,
    /// The directory served no usable prekey bundle for these devices: none (`None`: it never
    /// uploaded prekeys, or the relay has none left), or one the device refused (`Some`, why:
    /// a bundle that does not verify, or `IdentityMismatch`, a key the device's signed list
    /// does not name, which the relay served: warn the user). The sessions of the devices
    /// whose bundles were usable were started, and the device keeps them. For a group send,
    /// drive it again with [`send_group_withholding`](Device::send_group_withholding) naming
    /// these devices without a reason, so that they do not block the group; a 1:1 send waits
    /// until they upload.
    NoBundles(Vec<(DeviceAddress, Option<Error>)>),
}

impl<E> From<Error> for DriveError<E> {
    fn from(e: Error) -> Self {
        Self::Device(e)
    }
}

impl<E: fmt::Display> fmt::Display for DriveError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Directory(e) => write!(f, "directory failed: {e}"),
            Self::Device(e) => write!(f, "{e}"),
            Self::Unresolved => f.write_str("the directory did not serve what the device needs"),
            Self::NoBundles(devices) => {
                write!(
                    f,
                    "the directory has no usable prekey bundle for {} device(s)",
                    devices.len()
                )
            }
        }
    }
}

impl<E: fmt::Debug + fmt::Display> core::error::Error for DriveError<E> {}

/// What to do with a received envelope, once the device's changes are persisted.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Inbound {
    /// Read: show it (or act on it), then acknowledge the envelope to the relay.
    Read(Received),
    /// Already read: acknowledge the envelope again and show nothing new.
    Duplicate(EnvelopeId),
    /// A group message whose sender key has not arrived: keep the envelope (do not acknowledge
    /// it) and receive it again after the next envelopes from `from`; if the key never comes,
    /// [`ask_again`] with [`RetryReason::SenderKeyMissing`] (also on a device restored from a
    /// backup: where its session may be an older copy of the sender's, the request goes as a
    /// missing session).
    Hold {
        /// The sending device.
        from: DeviceAddress,
    },
    /// Could not be read (no session, a failed authentication, a prekey or a session no
    /// longer held): ship `request` to `to`, acknowledge the envelope, and show a placeholder
    /// under [`EnvelopeId::of`] the envelope; the answer arrives as a message with `resent`
    /// set.
    /// Keep the envelope until then: if no answer is read within a while (it was lost, or
    /// failed: its own envelope, asked for, is `UnknownMessage` at the sender), ask again
    /// for this envelope with [`ask_again`] (the reason it failed for, such as
    /// [`RetryReason::AuthenticationFailed`]), whose store check finds the message if its
    /// genuine copy was read meanwhile: count messages read as stored, not the placeholder.
    AskAgain {
        /// The device that sent the envelope.
        to: DeviceAddress,
        /// The signed retry request.
        request: Vec<u8>,
    },
    /// Could not be read, and its sender cannot be asked yet
    /// ([`FanoutError::AskLater`]): this device already waits on as many answers as it keeps
    /// for that account, or in all, none asked long enough ago to give up nor to give way to
    /// this one. Keep the envelope (do not acknowledge it) and show nothing; at `at`, or
    /// sooner once a resend is read (an answer frees a place), receive it again, or for an
    /// envelope you were asking again for, [`ask_again`] as before. A relay forging envelopes
    /// under a sender's address defers asks this way, as it could by dropping them; its
    /// forgeries never push out a retry of that account waiting for its answer.
    AskLater {
        /// When a place frees (after now), unless other asks take it first.
        at: Timestamp,
    },
    /// The envelope names a newer device list of `account` than the relay serves yet (for this
    /// device's own account after a restore, or once its own entry expired: the list its
    /// primary signs next): keep it unacknowledged and receive it again once that list is out
    /// (and drop it if none comes within the app's bound: a forged envelope can name any
    /// version, and a primary may never renew an expired companion).
    AwaitList {
        /// The account whose newer list is needed.
        account: AccountKey,
    },
    /// For a `group` held at a restore from a backup whose members the app has not set since
    /// ([`Device::unconfirmed_groups`]): keep the envelope unacknowledged and receive it again
    /// once [`Device::set_group_members`] set them (or drop it if the app forgets the group).
    AwaitMembers {
        /// The group.
        group: GroupId,
    },
    /// Nothing to show: forged, misdelivered, from an account this app does not follow,
    /// withheld, or asked for as often as allowed. Acknowledge it; the error says why.
    Dropped(Error),
}

/// Runs `op` (a send: [`Device::send`], [`send_group`](Device::send_group), ...) until its
/// outbox is ready, fetching the lists and bundles it asks for from `directory`. Returns the
/// outbox and the events the list updates brought (show them). Persist the device's changes,
/// then ship the outbox with its coverage. Devices the directory serves no usable bundle for
/// end the loop at once with [`DriveError::NoBundles`] naming them (asking again would not
/// help), after the sessions of the others were started: persist those changes too. A send
/// refused until this device holds a newer own list (`ThisDeviceExpired`, `AwaitingOwnList`)
/// fetches that list; served nothing that changes the list held, the refusal stands.
pub fn send<D: Directory, R: CryptoRng>(
    device: &mut Device,
    rng: &mut R,
    now: Timestamp,
    directory: &mut D,
    mut op: impl FnMut(&mut Device, &mut R) -> Result<Outgoing, Error>,
) -> Result<(Outbox, Vec<Event>), DriveError<D::Error>> {
    let mut events = Vec::new();
    for _ in 0..MAX_ROUNDS {
        let outgoing = match op(device, rng) {
            Ok(outgoing) => outgoing,
            Err(
                e @ Error::Fanout(FanoutError::ThisDeviceExpired | FanoutError::AwaitingOwnList),
            ) => {
                let own = device.address().account;
                let before = device.device_list(&own).map(|l| l.digest());
                follow(device, now, directory, &[own], &mut events)?;
                if device.device_list(&own).map(|l| l.digest()) == before {
                    return Err(e.into());
                }
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        match outgoing {
            Outgoing::Ready(outbox) => return Ok((outbox, events)),
            Outgoing::NeedDeviceLists(accounts) => {
                follow(device, now, directory, &accounts, &mut events)?;
            }
            Outgoing::NeedBundles(devices) => {
                let mut served = directory.bundles(&devices).map_err(DriveError::Directory)?;
                // Only the devices asked for, each once (the first bundle served for it); sets,
                // so that a distribution to thousands of devices is not quadratic.
                let asked: BTreeSet<DeviceAddress> = devices.iter().copied().collect();
                let mut seen = BTreeSet::new();
                served.retain(|(d, _)| asked.contains(d) && seen.insert(*d));
                let mut unusable: Vec<(DeviceAddress, Option<Error>)> = devices
                    .iter()
                    .filter(|d| !seen.contains(d))
                    .map(|d| (*d, None))
                    .collect();
                // All or nothing: if a bundle is refused, start the others one by one.
                if device.start_sessions(rng, now, &served).is_err() {
                    for one in served.chunks(1) {
                        if let Err(e) = device.start_sessions(rng, now, one) {
                            unusable.push((one[0].0, Some(e)));
                        }
                    }
                }
                if !unusable.is_empty() {
                    return Err(DriveError::NoBundles(unusable));
                }
            }
        }
    }
    Err(DriveError::Unresolved)
}

/// Receives `envelope`, fetching the lists it needs (the sender's account, this account's
/// own newer list), and says what to do with it. `stored` tells whether the app's message
/// store already holds a message read under an id: an envelope that cannot be read but whose
/// message is stored (under either kind's id, [`EnvelopeId::of_either_kind`]) is a replay of
/// a message read long ago: [`Inbound::Duplicate`] with the id found, not asked for again
/// (as [`ask_again`] decides). Persist the device's changes before acting on the outcome.
pub fn receive<D: Directory, R: CryptoRng>(
    device: &mut Device,
    rng: &mut R,
    now: Timestamp,
    directory: &mut D,
    envelope: &[u8],
    stored: impl Fn(&EnvelopeId) -> bool,
) -> Result<(Inbound, Vec<Event>), DriveError<D::Error>> {
    let mut events = Vec::new();
    let mut receiving = Receiving::new();
    loop {
        match receiving.step(device, rng, now, envelope, &stored) {
            Ok(ReceiveStep::Done(inbound)) => return Ok((inbound, events)),
            Ok(ReceiveStep::NeedDeviceList(account)) => {
                follow(device, now, directory, &[account], &mut events)?;
            }
            Err(DriveError::Device(e)) => return Err(DriveError::Device(e)),
            Err(DriveError::Unresolved) => return Err(DriveError::Unresolved),
            Err(DriveError::NoBundles(devices)) => return Err(DriveError::NoBundles(devices)),
            Err(DriveError::Directory(never)) => match never {},
        }
    }
}

/// What a [`Receiving`] step asks of the app.
#[derive(Debug, PartialEq, Eq)]
pub enum ReceiveStep {
    /// The receive is decided: act on it (persist the device's changes first).
    Done(Inbound),
    /// Fetch this account's current device list from the relay, give it to
    /// [`Device::update_device_list`] (or nothing, if the relay has none), and step again. A
    /// list refused as older than the one held ([`DeviceError::Rollback`]: a stale replica,
    /// or a relay that withholds) is nothing newer: step again all the same, as [`receive`]
    /// does; any other refusal stops the receive.
    NeedDeviceList(AccountKey),
}

/// [`receive`] one step at a time, for an app whose relay answers asynchronously or that
/// drives the device through a binding: the app fetches what a step names, on its own
/// transport and in its own async style, and no callback runs while the device is borrowed.
/// It decides exactly what `receive` decides (which is this loop over a [`Directory`]).
#[derive(Debug, Default)]
pub struct Receiving {
    rounds: usize,
    /// The list asked for by the last step: its account, its digest then, and why.
    awaiting: Option<(AccountKey, Option<[u8; 32]>, Error)>,
}

impl Receiving {
    /// A receive of one envelope, not yet tried.
    pub fn new() -> Self {
        Self::default()
    }

    /// Tries `envelope` (the same one at every step of this receive). After a
    /// [`NeedDeviceList`](ReceiveStep::NeedDeviceList), a step first looks whether the list
    /// changed: if not, there is nothing newer to fetch and the receive is decided. `stored`
    /// says whether the app's message store holds a message under an id (see [`receive`]).
    /// [`DriveError::Unresolved`] after [`MAX_ROUNDS`] lists that did not resolve it.
    pub fn step<R: CryptoRng>(
        &mut self,
        device: &mut Device,
        rng: &mut R,
        now: Timestamp,
        envelope: &[u8],
        stored: impl Fn(&EnvelopeId) -> bool,
    ) -> Result<ReceiveStep, DriveError<core::convert::Infallible>> {
        if let Some((account, before, error)) = self.awaiting.take()
            && device.device_list(&account).map(|l| l.digest()) == before
        {
            // Nothing newer to fetch. A list newer than any held exists (the envelope
            // names one, or this restored device awaits its own): keep the envelope for
            // it. Else the relay has no list, or showed the two sides different lists: do
            // not loop.
            let outcome = match error {
                Error::Fanout(FanoutError::DeviceListsDiverge { used, held, .. })
                    if used > held =>
                {
                    Inbound::AwaitList { account }
                }
                Error::Fanout(FanoutError::AwaitingOwnList | FanoutError::ThisDeviceExpired) => {
                    Inbound::AwaitList { account }
                }
                e => Inbound::Dropped(e),
            };
            return Ok(ReceiveStep::Done(outcome));
        }
        if self.rounds == MAX_ROUNDS {
            return Err(DriveError::Unresolved);
        }
        self.rounds += 1;
        let error = match device.receive(now, envelope) {
            Ok(received) => return Ok(ReceiveStep::Done(Inbound::Read(received))),
            Err(e) => e,
        };
        let fetch = match error {
            Error::Fanout(FanoutError::DeviceListsDiverge { account, .. })
            | Error::Fanout(FanoutError::UnknownAccount(account)) => account,
            Error::Fanout(
                FanoutError::ThisDeviceInactive
                | FanoutError::ThisDeviceExpired
                | FanoutError::AwaitingOwnList,
            ) => device.address().account,
            Error::Fanout(FanoutError::Duplicate { envelope_id }) => {
                return Ok(ReceiveStep::Done(Inbound::Duplicate(envelope_id)));
            }
            Error::Fanout(FanoutError::SenderKeyMissing { from, .. }) => {
                return Ok(ReceiveStep::Done(Inbound::Hold { from }));
            }
            Error::Fanout(FanoutError::GroupUnconfirmed(group)) => {
                return Ok(ReceiveStep::Done(Inbound::AwaitMembers { group }));
            }
            Error::Fanout(FanoutError::NoSession(_))
            | Error::Ratchet(RatchetError::AuthenticationFailed)
            // A pre-key message naming a prekey this device no longer holds (a one-time key
            // used or dropped, a one-time ML-KEM key the relay served twice, a signed prekey
            // retired: a stale bundle the relay served, or the message held back past the
            // rotations), or of a session it no longer holds (three are kept a peer:
            // answering its retries can push out one it still writes in, its pre-key messages
            // until it hears back): a replay the read ring or the app's store did not catch,
            // or a message to ask for, whose answer starts a session from this device's
            // current keys (review 44, tests/restore_life.rs).
            | Error::X3dh(
                X3dhError::UnknownOneTimePreKey(_)
                | X3dhError::UnknownKemPreKey(_)
                | X3dhError::UnknownSignedPreKey(_)
                | X3dhError::Replayed,
            ) => {
                let reason = match error {
                    Error::Ratchet(_) => RetryReason::AuthenticationFailed,
                    _ => RetryReason::NoSession,
                };
                let outcome = ask_again(device, rng, now, envelope, reason, &stored);
                return Ok(ReceiveStep::Done(outcome));
            }
            e => return Ok(ReceiveStep::Done(Inbound::Dropped(e))),
        };
        let before = device.device_list(&fetch).map(|l| l.digest());
        self.awaiting = Some((fetch, before, error));
        Ok(ReceiveStep::NeedDeviceList(fetch))
    }
}

/// Asks the sender of `envelope` for it again, unless the app's store holds its message
/// (`stored`, looked up under each of [`EnvelopeId::of_either_kind`]): then it is a replay of
/// a message read long ago, `Duplicate` with the id found. Ask this way for an envelope held
/// ([`Inbound::Hold`]) whose sender key never came, with [`RetryReason::SenderKeyMissing`] (a
/// relay that put the salt of a 1:1 message read long ago, beyond the read ring, in a group
/// envelope, and withholds that group's key, would otherwise have it asked for, answered and
/// read again), and again for an envelope asked for ([`Inbound::AskAgain`]) whose answer
/// never came. `stored` answers for messages read, not for placeholders shown while asking.
/// Returns [`Inbound::AskAgain`] with the request to ship, `Duplicate` for a message the
/// device read, [`Inbound::AwaitMembers`] for a group unconfirmed since a restore,
/// [`Inbound::AskLater`] while the device waits on as many answers as it keeps, or
/// `Dropped` with the device's refusal (`RetryLimit` once asked three times). Persist the
/// device's changes before shipping the request.
pub fn ask_again<R: CryptoRng>(
    device: &mut Device,
    rng: &mut R,
    now: Timestamp,
    envelope: &[u8],
    reason: RetryReason,
    stored: impl Fn(&EnvelopeId) -> bool,
) -> Inbound {
    match stored_under(envelope, &stored) {
        Some(id) => Inbound::Duplicate(id),
        None => ask(device, rng, now, envelope, reason),
    }
}

/// The id the app's store holds the message of `envelope` under, as either kind: the relay
/// can put the salt of a message read long ago in an envelope of the other kind, which names
/// the same message at its sender (the read ring, which turned since, checks both too).
fn stored_under(envelope: &[u8], stored: &impl Fn(&EnvelopeId) -> bool) -> Option<EnvelopeId> {
    EnvelopeId::of_either_kind(envelope)
        .into_iter()
        .find(|id| stored(id))
}

/// Asks the sender of `envelope` for it, mapping the device's refusals to outcomes.
fn ask<R: CryptoRng>(
    device: &mut Device,
    rng: &mut R,
    now: Timestamp,
    envelope: &[u8],
    reason: RetryReason,
) -> Inbound {
    match device.request_retry(rng, now, envelope, reason) {
        Ok((to, request)) => Inbound::AskAgain { to, request },
        Err(Error::Fanout(FanoutError::Duplicate { envelope_id })) => {
            Inbound::Duplicate(envelope_id)
        }
        Err(Error::Fanout(FanoutError::GroupUnconfirmed(group))) => Inbound::AwaitMembers { group },
        Err(Error::Fanout(FanoutError::AskLater { at })) => Inbound::AskLater { at },
        Err(e) => Inbound::Dropped(e),
    }
}

/// Fetches and follows the lists of `accounts`; an account the directory leaves out stays
/// unknown, and so does one whose list served is older than the one held: a stale replica,
/// or a relay that withholds, served nothing newer, and the step decides with the list held
/// (else the envelope would be refused at every try, and never acknowledged). Any other
/// refusal (a list that does not verify or equivocates) stops the loop.
fn follow<D: Directory>(
    device: &mut Device,
    now: Timestamp,
    directory: &mut D,
    accounts: &[AccountKey],
    events: &mut Vec<Event>,
) -> Result<(), DriveError<D::Error>> {
    let lists = directory
        .device_lists(accounts)
        .map_err(DriveError::Directory)?;
    for list in lists {
        let account = list.account();
        if accounts.contains(&account) {
            match device.update_device_list(now, &account, list) {
                Ok(changed) => events.extend(changed),
                Err(Error::Device(DeviceError::Rollback { .. })) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}
