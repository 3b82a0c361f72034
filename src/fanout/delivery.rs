//! Delivery failures the app reports: a send the relay refused (or part of it) is taken back
//! from what this device believes the recipients hold, so the next send repairs it instead of
//! leaving them to ask.

use alloc::vec::Vec;

use super::Device;
use super::journal::{SendId, SentKind};
use super::records::Key;
use crate::devices::DeviceAddress;
use crate::error::{Error, FanoutError};

impl Device {
    /// Tells this device that the outbox of `send_id` did not reach `devices` (the relay
    /// refused the batch, or these envelopes of it): a group sender key given to them in that
    /// send no longer counts as held, and since a relay may have delivered it anyway, the next
    /// group send rotates the key and gives the new one to the members then (a device removed
    /// meanwhile never reads what follows); a device withheld from the current generation is
    /// told again by the next send that withholds it; and they are no longer recipients of the
    /// message (they cannot ask for it again, and the journal forgets a send that reached no
    /// one). Then persist, fetch what the relay asked for (a newer
    /// list), and send again. A send the journal no longer holds is `UnknownMessage`, and
    /// nothing changes.
    pub fn not_delivered(
        &mut self,
        send_id: SendId,
        devices: &[DeviceAddress],
    ) -> Result<(), Error> {
        let sent = self
            .journal
            .sent
            .get(&send_id)
            .ok_or(FanoutError::UnknownMessage)?;
        match &sent.kind {
            SentKind::Direct { recipients, .. } | SentKind::CallKey { recipients, .. } => {
                let kept: Vec<_> = recipients
                    .iter()
                    .filter(|r| !devices.contains(&r.device))
                    .cloned()
                    .collect();
                if kept.len() == recipients.len() {
                    return Ok(());
                }
                if kept.is_empty() {
                    // A pairwise send: no answered records of its own to delete.
                    self.journal.sent.remove(&send_id);
                } else {
                    if let Some(recipients) = self
                        .journal
                        .sent
                        .get_mut(&send_id)
                        .and_then(|s| s.kind.recipients_mut())
                    {
                        *recipients = kept;
                    }
                }
                self.touch(Key::Sent(send_id));
            }
            SentKind::Group {
                group,
                key_id,
                iteration,
                ..
            } => {
                let (group, key_id, iteration) = (*group, *key_id, *iteration);
                // Those given the key by this very send hold it from its iteration on; an
                // earlier holder was not given anything here.
                let Some(outbound) = self
                    .groups
                    .get_mut(&group)
                    .and_then(|g| g.outbound.as_mut())
                else {
                    return Ok(());
                };
                let current = outbound.current().map(|l| l.key_id) == Some(key_id);
                // A withheld device whose notice may not have arrived is told again by the
                // next send that names it (it stays withheld from the generation).
                let mut untold = false;
                for d in devices.iter().filter(|_| current) {
                    if let Some(w) = outbound.withheld.get_mut(d).filter(|w| w.told.is_some()) {
                        w.told = None;
                        untold = true;
                    }
                }
                let Some(ledger) = outbound.generations.iter_mut().find(|l| l.key_id == key_id)
                else {
                    return Ok(());
                };
                let taken: Vec<DeviceAddress> = devices
                    .iter()
                    .filter(|d| ledger.holders.get(d).is_some_and(|h| h.since == iteration))
                    .copied()
                    .collect();
                for d in &taken {
                    ledger.holders.remove(d);
                }
                if taken.is_empty() && !untold {
                    return Ok(());
                }
                if current && !taken.is_empty() {
                    // A relay that said "not delivered" may have delivered after all: a device
                    // taken back may hold the key, and if it is no longer a member the ledger
                    // would not show it leaving. So the next send rotates, to the members then.
                    outbound.rotate_pending = true;
                }
                if current {
                    self.touch(Key::Outbound(group));
                }
                for d in taken {
                    self.touch(Key::Ledger(group, key_id, d));
                }
            }
        }
        self.bump();
        Ok(())
    }
}
