//! A receive stepped by the app ([`Receiving`], the library's `driver::Receiving`): each step
//! decides what to do with an envelope or names the account whose device list to fetch. The
//! app fetches on its own transport, in its own async style, and applies the list with
//! `Device.update_device_list`: nothing calls back into the app while the device is locked.
//!
//! It owns the stepper and its outcomes' records; it must not decide anything the library's
//! driver does not.

use std::sync::{Arc, Mutex};

use ratchetry::driver::{self, DriveError};

use crate::device::Device;
use crate::error::RatchetryError;
use crate::types::{Address, Received, address_out, retry_reason, rng, ts};

/// One envelope's receive, stepped until it is decided (see the guide's table).
#[derive(Debug, uniffi::Object)]
pub struct Receiving {
    inner: Mutex<driver::Receiving>,
}

/// What a step asks of the app.
#[derive(Debug, uniffi::Enum)]
pub enum ReceiveStep {
    /// Decided: act on `inbound` after persisting the device's changes.
    Done {
        /// What to do with the envelope.
        inbound: Inbound,
    },
    /// Fetch this account's device list, apply it with `Device.update_device_list` (or
    /// nothing, if the relay has none), and step again; a list refused as
    /// `device.rollback` (older than the one held) is nothing newer: step again all the same.
    NeedDeviceList {
        /// The account (32 bytes).
        account: Vec<u8>,
    },
}

/// What to do with a received envelope.
#[derive(Debug, uniffi::Enum)]
pub enum Inbound {
    /// Read: show it, then acknowledge the envelope.
    Read {
        /// The message.
        message: Received,
    },
    /// Already read: acknowledge the envelope again and show nothing new.
    Duplicate {
        /// The envelope's id (16 bytes).
        envelope_id: Vec<u8>,
    },
    /// A group message whose sender key has not arrived: keep the envelope and step a new
    /// receive of it after the next envelopes from `from`.
    Hold {
        /// The sending device.
        from: Address,
    },
    /// Unreadable: ship `request` to `to`, acknowledge the envelope, and show a placeholder
    /// under its id; the answer arrives with `resent` set. Keep the envelope: if no answer
    /// is read within a while, ask again with `ask_again` (the reason it failed for).
    AskAgain {
        /// The device that sent the envelope.
        to: Address,
        /// The retry request envelope.
        request: Vec<u8>,
    },
    /// Unreadable, and its sender cannot be asked yet: the device already waits on as many
    /// answers as it keeps for that account, or in all. Keep the envelope unacknowledged and
    /// show nothing; at `at` (Unix ms), or sooner once a resend is read, step a new receive
    /// of it (or `ask_again` it, if you were asking again).
    AskLater {
        /// When a place frees at the latest (Unix ms).
        at: u64,
    },
    /// Keep the envelope until a newer list of `account` is out, then receive it again.
    AwaitList {
        /// The account (32 bytes).
        account: Vec<u8>,
    },
    /// For a `group` held at a restore from a backup whose members the app has not set
    /// since (`Device.unconfirmed_groups`): keep the envelope and receive it again once
    /// `set_group_members` set them.
    AwaitMembers {
        /// The group (32 bytes).
        group: Vec<u8>,
    },
    /// Nothing to show: acknowledge it. `code` and `detail` say why, and the other fields
    /// what the refusal names, as `RatchetryError.Failed`'s do (the device to warn about for
    /// `fanout.identity_mismatch`, the account for `fanout.device_lists_diverge`).
    Dropped {
        /// The stable code (as `RatchetryError`'s).
        code: String,
        /// A readable message.
        detail: String,
        /// The account the refusal names (32 bytes).
        account: Option<Vec<u8>>,
        /// The device the refusal names.
        device: Option<Address>,
        /// The group the refusal names (32 bytes).
        group: Option<Vec<u8>>,
        /// The envelope id the refusal names (16 bytes).
        envelope_id: Option<Vec<u8>>,
        /// The one number the refusal names.
        number: Option<u64>,
    },
    /// An outcome of a later library version that this binding does not know.
    Other,
}

impl From<driver::Inbound> for Inbound {
    fn from(i: driver::Inbound) -> Self {
        match i {
            driver::Inbound::Read(message) => Self::Read {
                message: message.into(),
            },
            driver::Inbound::Duplicate(id) => Self::Duplicate {
                envelope_id: id.0.to_vec(),
            },
            driver::Inbound::Hold { from } => Self::Hold {
                from: address_out(from),
            },
            driver::Inbound::AskAgain { to, request } => Self::AskAgain {
                to: address_out(to),
                request,
            },
            driver::Inbound::AskLater { at } => Self::AskLater { at: at.0 },
            driver::Inbound::AwaitList { account } => Self::AwaitList {
                account: account.to_bytes().to_vec(),
            },
            driver::Inbound::AwaitMembers { group } => Self::AwaitMembers {
                group: group.0.to_vec(),
            },
            driver::Inbound::Dropped(e) => {
                // The same fields as the error thrown for it.
                let RatchetryError::Failed {
                    code,
                    detail,
                    account,
                    device,
                    group,
                    envelope_id,
                    number,
                } = e.into();
                Self::Dropped {
                    code,
                    detail,
                    account,
                    device,
                    group,
                    envelope_id,
                    number,
                }
            }
            // An outcome of a later library that this binding does not know yet.
            _ => Self::Other,
        }
    }
}

#[uniffi::export]
impl Receiving {
    /// A receive of one envelope, not yet tried.
    #[uniffi::constructor]
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(driver::Receiving::new()),
        })
    }

    /// Tries `envelope` on `device` (the same envelope at every step). `stored`: whether the
    /// app's message store already holds a message read under any of
    /// `envelope_ids(envelope)` (its own id, and the other kind's: a relay can put a read
    /// message's salt in an envelope of the other kind): an unreadable envelope whose message
    /// is stored is an old replay, `Duplicate` (the id found) rather than asked for again. `driver.unresolved`
    /// after four lists that did not resolve it.
    pub fn step(
        &self,
        device: &Device,
        now: u64,
        envelope: Vec<u8>,
        stored: bool,
    ) -> Result<ReceiveStep, RatchetryError> {
        let mut receiving = self.inner.lock()?;
        let mut device = device.inner.lock()?;
        let mut rng = rng()?;
        match receiving.step(&mut device, &mut rng, ts(now), &envelope, |_| stored) {
            Ok(driver::ReceiveStep::Done(inbound)) => Ok(ReceiveStep::Done {
                inbound: inbound.into(),
            }),
            Ok(driver::ReceiveStep::NeedDeviceList(account)) => Ok(ReceiveStep::NeedDeviceList {
                account: account.to_bytes().to_vec(),
            }),
            Err(DriveError::Device(e)) => Err(e.into()),
            Err(DriveError::Unresolved) => Err(RatchetryError::binding(
                "driver.unresolved",
                "the relay did not serve the lists this envelope needs",
            )),
            // A receive fetches no bundles.
            Err(DriveError::NoBundles(_)) => Err(RatchetryError::binding(
                "driver.no_bundles",
                "the relay served no prekey bundle for a device",
            )),
            Err(DriveError::Directory(never)) => match never {},
        }
    }
}

/// Asks the sender of `envelope` for it again (the library's `driver::ask_again`): for an
/// envelope held (`Inbound.Hold`) whose sender key never came, with reason 3 (sender key
/// missing), and for one asked for (`Inbound.AskAgain`) whose answer never came. `stored`, as `Receiving.step`'s: whether the store holds a message read under
/// any of `envelope_ids(envelope)`; then it is a replay, `Duplicate`, and nothing is asked.
/// Otherwise `AskAgain` with the request to ship, `Duplicate` for a message the device read,
/// `AwaitMembers` for a group unconfirmed since a restore, or `Dropped` with the device's
/// refusal. Persist the device's changes before shipping the request.
#[uniffi::export]
pub fn ask_again(
    device: &Device,
    now: u64,
    envelope: Vec<u8>,
    reason: u8,
    stored: bool,
) -> Result<Inbound, RatchetryError> {
    let mut device = device.inner.lock()?;
    let mut rng = rng()?;
    Ok(driver::ask_again(
        &mut device,
        &mut rng,
        ts(now),
        &envelope,
        retry_reason(reason),
        |_| stored,
    )
    .into())
}
