//! Message keys skipped over for messages that have not arrived yet: bounded, oldest evicted.

use alloc::collections::VecDeque;

use super::keys::MessageKey;
use crate::primitives::DhPublicKey;

/// One stored key: which chain (by the sender's ratchet key) and which message number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SkippedKey {
    pub(crate) ratchet_key: DhPublicKey,
    pub(crate) message_number: u32,
    pub(crate) key: MessageKey,
}

/// Oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SkippedKeys(pub(crate) VecDeque<SkippedKey>);

impl SkippedKeys {
    pub(crate) fn find(&self, ratchet_key: &DhPublicKey, message_number: u32) -> Option<usize> {
        self.0
            .iter()
            .position(|k| k.message_number == message_number && k.ratchet_key == *ratchet_key)
    }

    pub(crate) fn get(&self, index: usize) -> Option<&SkippedKey> {
        self.0.get(index)
    }

    pub(crate) fn remove(&mut self, index: usize) {
        self.0.remove(index);
    }

    /// Adds keys in order, evicting the oldest beyond `limit`.
    pub(crate) fn extend(&mut self, keys: impl IntoIterator<Item = SkippedKey>, limit: u32) {
        self.0.extend(keys);
        let excess = self.0.len().saturating_sub(limit as usize);
        self.0.drain(..excess);
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}
