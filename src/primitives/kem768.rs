//! ML-KEM-768 (FIPS 203) for the post-quantum ratchet, split the way the ratchet sends it.
//!
//! The encapsulation key `ek = t (1152) ‖ ρ (32)` travels as a **header** `ρ ‖ H(ek)` (64 bytes)
//! and a **vector** `t` (1152 bytes); the ciphertext as `ct1` (960 bytes, FIPS 203's `c1`) and
//! `ct2` (128 bytes, `c2`). `ct1` and the shared secret depend only on the header and the
//! encapsulation randomness `m`, so an encapsulator answers before the vector has arrived;
//! `ct1 ‖ ct2` and the secret are exactly FIPS 203 `ML-KEM.Encaps_internal(ek, m)`, which a test
//! checks against the standard API. libcrux calls this its incremental API.
//!
//! What is stored is canonical and small: a key pair as its 64-byte seed, an encapsulation as
//! `m` and the header. Everything else is recomputed from those.
#![cfg_attr(not(feature = "test-support"), allow(dead_code))]

use alloc::boxed::Box;
use core::fmt;
use libcrux_ml_kem::mlkem768::{self, MlKem768Ciphertext, incremental};
use zeroize::Zeroize;

use super::Secret;
use crate::error::DecodeError;

/// Length of an encapsulation key's header, `ρ ‖ H(ek)`.
pub(crate) const EK_HEADER_LEN: usize = 64;
/// Length of an encapsulation key's vector `t`.
pub(crate) const EK_VECTOR_LEN: usize = 1152;
/// Length of the first ciphertext part.
pub(crate) const CT1_LEN: usize = 960;
/// Length of the second ciphertext part.
pub(crate) const CT2_LEN: usize = 128;

const COMPRESSED_PAIR_LEN: usize = incremental::COMPRESSED_KEYPAIR_LEN;
const STATE_LEN: usize = incremental::encaps_state_len();
/// Expanded decapsulation key length of ML-KEM-768 (wiped after each use).
const PRIVATE_KEY_LEN: usize = 2400;

/// An encapsulation key's two public parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EpochPublicKey {
    pub(crate) header: [u8; EK_HEADER_LEN],
    pub(crate) vector: Box<[u8; EK_VECTOR_LEN]>,
}

/// An ML-KEM-768 key pair of one ratchet epoch, held as its 64-byte seed.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct EpochKeyPair {
    seed: Secret<64>,
}

impl EpochKeyPair {
    pub(crate) fn from_seed(seed: Secret<64>) -> Self {
        Self { seed }
    }

    pub(crate) fn seed(&self) -> &Secret<64> {
        &self.seed
    }

    /// The encapsulation key's header and vector (one key generation).
    pub(crate) fn public(&self) -> EpochPublicKey {
        let mut pair = Box::new([0u8; COMPRESSED_PAIR_LEN]);
        incremental::generate_key_pair_compressed(*self.seed.as_bytes(), &mut pair);
        // Layout of the compressed pair (libcrux): dk (1152) ‖ t (1152) ‖ ρ (32) ‖ H(ek) (32) ‖ z.
        let mut header = [0u8; EK_HEADER_LEN];
        header.copy_from_slice(&pair[2 * EK_VECTOR_LEN..2 * EK_VECTOR_LEN + EK_HEADER_LEN]);
        let mut vector = Box::new([0u8; EK_VECTOR_LEN]);
        vector.copy_from_slice(&pair[EK_VECTOR_LEN..2 * EK_VECTOR_LEN]);
        pair.zeroize();
        EpochPublicKey { header, vector }
    }

    /// FIPS 203 `ML-KEM.Decaps` of `ct1 ‖ ct2` (implicit rejection: a wrong ciphertext gives
    /// an unrelated secret).
    pub(crate) fn decapsulate(&self, ct1: &[u8; CT1_LEN], ct2: &[u8; CT2_LEN]) -> Secret<32> {
        let (mut sk, _) = mlkem768::generate_key_pair(*self.seed.as_bytes()).into_parts();
        let mut ct = [0u8; CT1_LEN + CT2_LEN];
        ct[..CT1_LEN].copy_from_slice(ct1);
        ct[CT1_LEN..].copy_from_slice(ct2);
        let mut ss = mlkem768::decapsulate(&sk, &MlKem768Ciphertext::from(ct));
        sk[..PRIVATE_KEY_LEN].zeroize();
        let secret = Secret::from_bytes(ss);
        ss.zeroize();
        secret
    }
}

impl fmt::Debug for EpochKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EpochKeyPair(redacted)")
    }
}

/// The first half of an encapsulation to `header` with randomness `m`: `ct1` and the shared
/// secret, `G(m ‖ H(ek))[0..32]`.
pub(crate) fn encapsulate1(
    header: &[u8; EK_HEADER_LEN],
    m: &Secret<32>,
) -> (Box<[u8; CT1_LEN]>, Secret<32>) {
    let mut state = Box::new([0u8; STATE_LEN]);
    let (ct1, ss) = encapsulate1_with_state(header, m, &mut state);
    state.zeroize();
    (ct1, ss)
}

fn encapsulate1_with_state(
    header: &[u8; EK_HEADER_LEN],
    m: &Secret<32>,
    state: &mut [u8; STATE_LEN],
) -> (Box<[u8; CT1_LEN]>, Secret<32>) {
    let mut ss = Secret::from_bytes([0u8; 32]);
    // The header and state lengths are the ones libcrux names, so this cannot fail; an error
    // would leave `ct1` and the secret zero, which the peer's decapsulation would not match.
    let ct1 =
        match incremental::encapsulate1(header, *m.as_bytes(), &mut state[..], ss.as_mut_bytes()) {
            Ok(ct1) => Box::new(ct1.value),
            Err(_) => Box::new([0u8; CT1_LEN]),
        };
    (ct1, ss)
}

/// The second half: `ct2`, once the vector has arrived. The full key `vector ‖ ρ` must hash to
/// the header's `H(ek)` and pass the FIPS 203 modulus check, else `InvalidKey`.
pub(crate) fn encapsulate2(
    header: &[u8; EK_HEADER_LEN],
    m: &Secret<32>,
    vector: &[u8; EK_VECTOR_LEN],
) -> Result<Box<[u8; CT2_LEN]>, DecodeError> {
    incremental::validate_pk_bytes(header, vector).map_err(|_| DecodeError::InvalidKey)?;
    let mut state = Box::new([0u8; STATE_LEN]);
    let _ = encapsulate1_with_state(header, m, &mut state);
    let ct2 = incremental::encapsulate2(&state, vector);
    state.zeroize();
    Ok(Box::new(ct2.value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seeded(n: u8) -> Secret<64> {
        Secret::from_bytes([n; 64])
    }

    #[test]
    fn split_encapsulation_is_the_standard_one() {
        for n in 0..4u8 {
            let pair = EpochKeyPair::from_seed(seeded(n));
            let public = pair.public();
            let standard = mlkem768::generate_key_pair([n; 64]);
            let ek = standard.public_key().as_slice();
            assert_eq!(&ek[..EK_VECTOR_LEN], &public.vector[..]);
            assert_eq!(&ek[EK_VECTOR_LEN..], &public.header[..32]);

            let m = Secret::from_bytes([n.wrapping_add(9); 32]);
            let (ct1, ss) = encapsulate1(&public.header, &m);
            let ct2 = encapsulate2(&public.header, &m, &public.vector).unwrap();
            let (ct, ss_standard) = mlkem768::encapsulate(standard.public_key(), *m.as_bytes());
            assert_eq!(&ct.as_slice()[..CT1_LEN], &ct1[..]);
            assert_eq!(&ct.as_slice()[CT1_LEN..], &ct2[..]);
            assert_eq!(ss.as_bytes(), &ss_standard);
            assert_eq!(pair.decapsulate(&ct1, &ct2).as_bytes(), &ss_standard);
        }
    }

    #[test]
    fn a_key_pair_prints_no_seed() {
        let pair = EpochKeyPair::from_seed(seeded(3));
        assert_eq!(alloc::format!("{pair:?}"), "EpochKeyPair(redacted)");
    }

    #[test]
    fn a_vector_that_does_not_match_the_header_is_refused() {
        let public = EpochKeyPair::from_seed(seeded(1)).public();
        let m = Secret::from_bytes([2; 32]);
        let mut other = public.vector.clone();
        other[0] ^= 1;
        assert_eq!(
            encapsulate2(&public.header, &m, &other),
            Err(DecodeError::InvalidKey)
        );
        // A vector with an unreduced coefficient, even under its own hash, is refused too.
        let mut unreduced = *public.vector;
        unreduced[0] = 0xff;
        unreduced[1] |= 0x0f;
        let mut ek = alloc::vec::Vec::from(&unreduced[..]);
        ek.extend_from_slice(&public.header[..32]);
        let mut header = public.header;
        header[32..].copy_from_slice(&sha3_256(&ek));
        assert_eq!(
            encapsulate2(&header, &m, &unreduced),
            Err(DecodeError::InvalidKey)
        );
    }

    fn sha3_256(data: &[u8]) -> [u8; 32] {
        libcrux_sha3::sha256(data)
    }
}

/// One ML-KEM-768 exchange through the standard API, for the PQ ratchet bench's floor.
#[cfg(feature = "test-support")]
pub(super) mod raw {
    /// Key generation from `seed`, encapsulation with `m`, decapsulation: the shared secret.
    pub fn mlkem768_exchange(seed: &[u8; 64], m: &[u8; 32]) -> [u8; 32] {
        use libcrux_ml_kem::mlkem768;
        let pair = mlkem768::generate_key_pair(*seed);
        let (ct, _) = mlkem768::encapsulate(pair.public_key(), *m);
        mlkem768::decapsulate(pair.private_key(), &ct)
    }
}
