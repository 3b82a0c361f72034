//! Receiving an envelope: routing and device-list checks first, then the pairwise or group
//! decryption on a copy, then the payload's meaning, and only then one commit.

use super::device::lists_digest;
use super::envelope::{Envelope, GroupHeader, PairwiseHeader};
use super::payload::Payload;
use super::sessions::SessionSet;
use super::{Device, MessageId, Received};
use crate::error::{Error, FanoutError, GroupError};
use crate::group::GroupMessage;
use crate::ratchet::{IncomingMessage, Session};
use crate::time::Timestamp;

impl Device {
    /// Reads one envelope. On any error nothing changed; the error says what the app can do
    /// (fetch a device list, ask for a retry, wait for a sender key, …).
    ///
    /// An envelope this device already read (among the last
    /// [`MAX_REMEMBERED_MESSAGE_IDS`](super::MAX_REMEMBERED_MESSAGE_IDS)) is refused with
    /// `FanoutError::Duplicate` carrying its [`MessageId`], so the app can answer with what it
    /// stored the first time; nothing changes.
    pub fn receive(&mut self, now: Timestamp, envelope: &[u8]) -> Result<Received, Error> {
        let id = MessageId::of(envelope);
        if self.seen.contains(&id) {
            return Err(FanoutError::Duplicate { message_id: id.0 }.into());
        }
        let received = match Envelope::decode(envelope)? {
            Envelope::Pairwise {
                header,
                header_bytes,
                message,
            } => self.receive_pairwise(now, &header, header_bytes, message),
            Envelope::Group { header, message } => self.receive_group(now, &header, message),
            Envelope::Retry(wire) => self.verify_retry(now, wire).map(Received::RetryRequest),
        }?;
        self.seen.push_back(id);
        if self.seen.len() > super::MAX_REMEMBERED_MESSAGE_IDS {
            self.seen.pop_front();
        }
        self.bump();
        Ok(received)
    }

    fn receive_pairwise(
        &mut self,
        now: Timestamp,
        header: &PairwiseHeader,
        header_bytes: &[u8],
        message: &[u8],
    ) -> Result<Received, Error> {
        if header.recipient != self.address || header.sender == self.address {
            return Err(FanoutError::NotForThisDevice.into());
        }
        let own = self.own_list(now)?;
        let theirs = self
            .lists
            .get(&header.sender.account)
            .ok_or(FanoutError::UnknownAccount)?;
        let entry = theirs.check(header.sender.device, now)?;
        let same_view = header.sender_list_version == theirs.version()
            && header.recipient_list_version == own.version()
            && header.lists_digest == lists_digest(theirs, own);
        if !same_view {
            return Err(FanoutError::DeviceListsDiverge {
                sender_list_used: header.sender_list_version,
                sender_list_held: theirs.version(),
                recipient_list_used: header.recipient_list_version,
                recipient_list_held: own.version(),
            }
            .into());
        }
        let identity = entry.identity;

        let sessions = self
            .sessions
            .get(&header.sender)
            .map(|set| set.all())
            .unwrap_or(&[]);
        // (session index to promote, or None for a new session), the advanced session, the
        // plaintext, and the one-time prekey to consume.
        let (index, session, plaintext, consumption) = match IncomingMessage::decode(message)? {
            IncomingMessage::PreKey(m) => {
                if m.initiator_identity() != identity {
                    return Err(FanoutError::IdentityMismatch.into());
                }
                match sessions.iter().position(|s| s.continues(&m)) {
                    Some(i) => {
                        let mut s = sessions[i].clone();
                        let pt = s.decrypt_bound(&IncomingMessage::PreKey(m), header_bytes)?;
                        (Some(i), s, pt, None)
                    }
                    // A new session from the peer (it restarted, or raced ours): it becomes
                    // current once this message has decrypted; ours is kept as archived.
                    None => {
                        let (s, pt, c) = Session::accept_pending(
                            &self.identity,
                            &self.prekeys,
                            &m,
                            self.config.session,
                            header_bytes,
                        )?;
                        (None, s, pt, Some(c))
                    }
                }
            }
            incoming @ IncomingMessage::Ratchet(_) => {
                let mut first_error = None;
                let mut opened = None;
                for (i, s) in sessions.iter().enumerate() {
                    if s.remote_identity() != identity {
                        first_error.get_or_insert(FanoutError::IdentityMismatch.into());
                        continue;
                    }
                    let mut s = s.clone();
                    match s.decrypt_bound(&incoming, header_bytes) {
                        Ok(pt) => {
                            opened = Some((Some(i), s, pt, None));
                            break;
                        }
                        Err(e) => {
                            first_error.get_or_insert(e);
                        }
                    }
                }
                match opened {
                    Some(o) => o,
                    None => return Err(first_error.unwrap_or(FanoutError::NoSession.into())),
                }
            }
        };

        let from = header.sender;
        let received = match Payload::decode(&plaintext)? {
            Payload::Direct {
                sent_to: None,
                body,
            } => Received::Direct { from, body },
            Payload::Direct {
                sent_to: Some(sent_to),
                body,
            } => {
                if from.account != self.address.account {
                    return Err(crate::DecodeError::InvalidValue.into());
                }
                Received::OwnCopy {
                    from,
                    sent_to,
                    body,
                }
            }
            Payload::Distribution(d) => {
                // Fails (with nothing changed) only for a conflicting key; after this point
                // nothing fails, so the commit below is whole.
                self.groups.process_distribution(&identity, &d)?;
                self.withheld.remove(&(d.group(), from));
                Received::SenderKey {
                    from,
                    group: d.group(),
                    key_id: d.key_id(),
                }
            }
            Payload::CallKey(message) => Received::CallKey { from, message },
            Payload::GroupResend { group, body } => Received::Group { from, group, body },
            Payload::HistoryOffer(offer) => {
                // Only this account's own devices hold its history.
                if from.account != self.address.account {
                    return Err(crate::DecodeError::InvalidValue.into());
                }
                Received::HistoryOffer { from, offer }
            }
            Payload::Withheld { group, reason } => {
                self.withheld.insert((group, from));
                Received::Withheld {
                    from,
                    group,
                    reason,
                }
            }
        };
        if let Some(c) = consumption {
            self.prekeys.consume(c);
        }
        match (self.sessions.get_mut(&from), index) {
            (Some(set), Some(i)) => set.promote(i, session),
            (Some(set), None) => set.push_new(session),
            (None, _) => {
                self.sessions.insert(from, SessionSet::new(session));
            }
        }
        Ok(received)
    }

    fn receive_group(
        &mut self,
        now: Timestamp,
        header: &GroupHeader,
        message: &[u8],
    ) -> Result<Received, Error> {
        if header.sender == self.address {
            return Err(FanoutError::NotForThisDevice.into());
        }
        self.own_list(now)?;
        let theirs = self
            .lists
            .get(&header.sender.account)
            .ok_or(FanoutError::UnknownAccount)?;
        let identity = theirs.check(header.sender.device, now)?.identity;
        if header.sender_list_version != theirs.version() {
            return Err(FanoutError::DeviceListsDiverge {
                sender_list_used: header.sender_list_version,
                sender_list_held: theirs.version(),
                recipient_list_used: 0,
                recipient_list_held: 0,
            }
            .into());
        }
        let message = GroupMessage::decode(message)?;
        let group = message.group();
        match self.groups.decrypt(&identity, &message) {
            Ok(body) => Ok(Received::Group {
                from: header.sender,
                group,
                body,
            }),
            Err(
                GroupError::UnknownSender
                | GroupError::UnknownKeyId(_)
                | GroupError::PredatesKey(_),
            ) if self.withheld.contains(&(group, header.sender)) => {
                Err(FanoutError::Withheld.into())
            }
            Err(
                GroupError::UnknownSender
                | GroupError::UnknownKeyId(_)
                | GroupError::PredatesKey(_),
            ) => Err(FanoutError::SenderKeyMissing {
                key_id: message.key_id().0,
            }
            .into()),
            Err(e) => Err(e.into()),
        }
    }
}
