//! Answering a retry request for a call key message. The journal keeps which call and epoch a
//! call key send carried, not its secret: the answer is the call's key message as it is now,
//! so a participant that missed an epoch catches up instead of being handed a secret older
//! than one it may already hold (a participant never goes back, and a device removed since
//! gets nothing).

use rand_core::CryptoRng;

use super::journal::SentKind;
use super::payload::Payload;
use super::{Device, Outgoing, RetryRequest};
use crate::calls::Call;
use crate::error::{Error, FanoutError, SyncError};
use crate::time::Timestamp;

impl Device {
    /// Answers a retry request for a call key message this device sent: `request.send_id` is
    /// the send id of a [`send_call_key`](Self::send_call_key) outbox (the app kept which call
    /// it was), and `call` is that call as this device holds it now. The requester's
    /// entitlement to the message it asks for is checked as for
    /// [`answer_retry`](Self::answer_retry); then `call` must be the call journaled
    /// (`BodyMismatch`, as is a request for a 1:1 or group message), managed by this device
    /// (`NotCallManager`), at the journaled epoch or later (`StaleCallKey`: never an older
    /// epoch, such as a stale snapshot of the call), and still list the requester
    /// (`NotInCall`: a participant removed since gets no later key). The answer carries the
    /// call's current key message, sealed for the requester alone on a new session from the
    /// request's bundle; its app applies it (or catches up) like any key message.
    pub fn answer_call_key_retry(
        &mut self,
        rng: &mut impl CryptoRng,
        now: Timestamp,
        request: &RetryRequest,
        call: &Call,
    ) -> Result<Outgoing, Error> {
        let from = request.from;
        let (send_id, _) = self.entitled_send(now, request)?;
        let SentKind::CallKey {
            call: sent_call,
            epoch,
            ..
        } = &self.journal.sent[&send_id].kind
        else {
            return Err(FanoutError::BodyMismatch.into());
        };
        if call.id() != *sent_call {
            return Err(FanoutError::BodyMismatch.into());
        }
        if call.manager() != self.address {
            return Err(SyncError::NotCallManager.into());
        }
        if call.epoch() < *epoch {
            return Err(SyncError::StaleCallKey.into());
        }
        if call.participants().binary_search(&from).is_err() {
            return Err(SyncError::NotInCall.into());
        }
        let payload = Payload::CallKeyResend {
            reference: request.reference,
            message: call.key_message().clone(),
        };
        self.seal_answer(rng, now, request, send_id, None, &payload, None)
    }
}
