//! A sparse post-quantum ratchet inside a pairwise session (PROTOCOL.md section 25): ML-KEM-768
//! exchanges carried a 32-byte chunk at a time in the header extension of ordinary messages,
//! erasure-coded, whose epoch secrets enter the Double Ratchet's root steps.
//!
//! It owns: the erasure code, the extension's encoding, the epoch state machine. It must not
//! know the Double Ratchet's chains or keys (the session mixes what this hands it) nor anything
//! above sessions.
//!
//! Status: the state machine, its model check (`tests/pq_ratchet.rs`) and its bench are here;
//! sessions do not carry it yet (issue #21), so outside the test support nothing calls it.
#![cfg_attr(not(feature = "test-support"), allow(dead_code))]

pub(crate) mod erasure;
pub(crate) mod extension;
pub(crate) mod ratchet;
mod state;

pub(crate) use extension::{CHUNK_LEN, Extension};
pub(crate) use ratchet::PqRatchet;
