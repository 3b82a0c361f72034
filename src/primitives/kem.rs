//! ML-KEM-1024 (FIPS 203), through libcrux-ml-kem.
//!
//! A private key is kept as its 64-byte seed (d ‖ z, FIPS 203 `ML-KEM.KeyGen_internal`) and
//! expanded when it is used: 64 bytes to store instead of 3168. Encapsulation keys from the
//! wire pass the FIPS 203 section 7.2 modulus check before any use. libcrux does not wipe its
//! key types, so the expanded private key is wiped here after each use.

use alloc::boxed::Box;
use core::fmt;
use libcrux_ml_kem::mlkem1024::{self, MlKem1024Ciphertext, MlKem1024PublicKey};
use rand_core::CryptoRng;
use zeroize::Zeroize;

use super::Secret;
use crate::error::DecodeError;

/// Encapsulation key length.
pub const KEM_PUBLIC_KEY_LEN: usize = 1568;
/// Expanded decapsulation key length (only ever on the stack, wiped after use).
const KEM_PRIVATE_KEY_LEN: usize = 3168;
/// Ciphertext length.
pub const KEM_CIPHERTEXT_LEN: usize = 1568;

/// An ML-KEM-1024 encapsulation key that passed the FIPS 203 modulus check.
#[derive(Clone, PartialEq, Eq)]
pub struct KemPublicKey(Box<[u8; KEM_PUBLIC_KEY_LEN]>);

impl KemPublicKey {
    /// Parses and checks an encapsulation key: 1568 bytes whose coefficients are all reduced
    /// (FIPS 203 section 7.2); anything else is `InvalidKey`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let key = MlKem1024PublicKey::try_from(bytes).map_err(|_| DecodeError::InvalidKey)?;
        if !mlkem1024::validate_public_key(&key) {
            return Err(DecodeError::InvalidKey);
        }
        Ok(Self(Box::new(*key.as_slice())))
    }

    /// The 1568-byte encoding.
    pub fn as_bytes(&self) -> &[u8; KEM_PUBLIC_KEY_LEN] {
        &self.0
    }

    /// Encapsulates to this key with 32 bytes of `rng` output (the FIPS 203 message `m`):
    /// the ciphertext and the 32-byte shared secret.
    pub(crate) fn encapsulate(&self, rng: &mut impl CryptoRng) -> (KemCiphertext, Secret<32>) {
        let mut m = Secret::from_bytes([0u8; 32]);
        rng.fill_bytes(m.as_mut_bytes());
        let key = MlKem1024PublicKey::from(&*self.0);
        let (ct, mut ss) = mlkem1024::encapsulate(&key, *m.as_bytes());
        let secret = Secret::from_bytes(ss);
        ss.zeroize();
        (KemCiphertext(Box::new(*ct.as_slice())), secret)
    }
}

impl fmt::Debug for KemPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        super::short_hex(f, "KemPublicKey", &self.0[..])
    }
}

/// An ML-KEM-1024 ciphertext (any 1568 bytes: a wrong one decapsulates to an unrelated
/// secret, as FIPS 203's implicit rejection specifies, and then fails to authenticate).
#[derive(Clone, PartialEq, Eq)]
pub struct KemCiphertext(Box<[u8; KEM_CIPHERTEXT_LEN]>);

impl KemCiphertext {
    /// Wraps 1568 bytes; another length is `InvalidValue`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let array: [u8; KEM_CIPHERTEXT_LEN] =
            bytes.try_into().map_err(|_| DecodeError::InvalidValue)?;
        Ok(Self(Box::new(array)))
    }

    /// The 1568-byte encoding.
    pub fn as_bytes(&self) -> &[u8; KEM_CIPHERTEXT_LEN] {
        &self.0
    }
}

impl fmt::Debug for KemCiphertext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        super::short_hex(f, "KemCiphertext", &self.0[..])
    }
}

/// An ML-KEM-1024 key pair held as its seed alone (64 bytes, not the 1,568-byte public key or
/// the expanded private key): a device holds a hundred of them, and loading one costs nothing.
/// The public key is computed when asked for. Zeroized on drop; `Debug` shows no key.
#[derive(Clone)]
pub struct KemKeyPair {
    seed: Secret<64>,
}

impl KemKeyPair {
    /// A fresh key pair from 64 bytes of `rng` output (d ‖ z).
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let mut seed = Secret::from_bytes([0u8; 64]);
        rng.fill_bytes(seed.as_mut_bytes());
        Self::from_seed(seed)
    }

    /// The key pair of a 64-byte seed (FIPS 203 `ML-KEM.KeyGen_internal(d, z)`), expanded
    /// only when used.
    pub(crate) fn from_seed(seed: Secret<64>) -> Self {
        Self { seed }
    }

    /// The seed, as stored.
    pub(crate) fn seed(&self) -> &Secret<64> {
        &self.seed
    }

    /// The encapsulation key, computed from the seed (one ML-KEM key generation, tens of
    /// microseconds): keep it rather than asking again.
    pub fn public(&self) -> KemPublicKey {
        let (mut sk, pk) = mlkem1024::generate_key_pair(*self.seed.as_bytes()).into_parts();
        sk[..KEM_PRIVATE_KEY_LEN].zeroize();
        KemPublicKey(Box::new(*pk.as_slice()))
    }

    /// Decapsulates `ciphertext`: the 32-byte shared secret (a wrong ciphertext gives an
    /// unrelated one).
    pub(crate) fn decapsulate(&self, ciphertext: &[u8; KEM_CIPHERTEXT_LEN]) -> Secret<32> {
        let (mut sk, _) = mlkem1024::generate_key_pair(*self.seed.as_bytes()).into_parts();
        let ct = MlKem1024Ciphertext::from(ciphertext);
        let mut ss = mlkem1024::decapsulate(&sk, &ct);
        sk[..KEM_PRIVATE_KEY_LEN].zeroize();
        let secret = Secret::from_bytes(ss);
        ss.zeroize();
        secret
    }
}

impl fmt::Debug for KemKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KemKeyPair")
            .field("seed", &"redacted")
            .finish_non_exhaustive()
    }
}

/// FIPS 203 through this wrapper, for the published vectors and bench floors.
#[cfg(feature = "test-support")]
pub(super) mod raw {
    use super::*;

    /// Key generation from a 64-byte seed: (encapsulation key, expanded decapsulation key).
    pub fn mlkem1024_keygen(seed: &[u8; 64]) -> (alloc::vec::Vec<u8>, alloc::vec::Vec<u8>) {
        let kp = mlkem1024::generate_key_pair(*seed);
        (kp.pk().to_vec(), kp.sk().to_vec())
    }

    /// Encapsulation with message `m` to a checked key: (ciphertext, shared secret).
    pub fn mlkem1024_encapsulate(
        public: &[u8],
        m: &[u8; 32],
    ) -> Result<(alloc::vec::Vec<u8>, [u8; 32]), DecodeError> {
        let key = KemPublicKey::from_bytes(public)?;
        let (ct, ss) = mlkem1024::encapsulate(&MlKem1024PublicKey::from(&*key.0), *m);
        Ok((ct.as_slice().to_vec(), ss))
    }

    /// Decapsulation with the key pair of `seed`.
    pub fn mlkem1024_decapsulate(
        seed: &[u8; 64],
        ciphertext: &[u8],
    ) -> Result<[u8; 32], DecodeError> {
        let ct = KemCiphertext::from_bytes(ciphertext)?;
        Ok(*KemKeyPair::from_seed(Secret::from_bytes(*seed))
            .decapsulate(ct.as_bytes())
            .as_bytes())
    }

    /// Decapsulation with an expanded decapsulation key, checked first (FIPS 203 section 7.3,
    /// the key's embedded hash): `None` if the key or ciphertext is malformed.
    pub fn mlkem1024_decapsulate_expanded(private: &[u8], ciphertext: &[u8]) -> Option<[u8; 32]> {
        let sk = mlkem1024::MlKem1024PrivateKey::try_from(private).ok()?;
        let ct = MlKem1024Ciphertext::try_from(ciphertext).ok()?;
        mlkem1024::validate_private_key(&sk, &ct).then(|| mlkem1024::decapsulate(&sk, &ct))
    }
}
