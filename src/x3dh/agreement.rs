//! The PQXDH computation on both sides.
//!
//! SK = HKDF-SHA256(salt = 32 zero bytes, ikm = 0xFF×32 ‖ DH1 ‖ DH2 ‖ DH3 [‖ DH4] ‖ SS,
//! info = "ratchetry v1 pqxdh"), with DH1 = DH(IK_A, SPK_B), DH2 = DH(EK_A, IK_B),
//! DH3 = DH(EK_A, SPK_B), DH4 = DH(EK_A, OPK_B), and SS the ML-KEM-1024 shared secret the
//! initiator encapsulated to the bundle's KEM prekey. Every DH must be contributory.

use rand_core::CryptoRng;
use zeroize::Zeroizing;

use super::{
    Consumption, KemPreKeyId, OneTimePreKeyId, PreKeyStore, SignedPreKeyId, VerifiedBundle,
};
use crate::error::X3dhError;
use crate::labels;
use crate::primitives::{
    DhKeyPair, DhPublicKey, IdentityKey, IdentityKeyPair, KEM_CIPHERTEXT_LEN, KemCiphertext,
    Secret, derive, sha256,
};

/// The PQXDH associated data: the initiator's identity key then the responder's, as Ed25519
/// encodings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AssociatedData(pub(crate) [u8; 64]);

impl AssociatedData {
    pub(crate) fn new(initiator: &IdentityKey, responder: &IdentityKey) -> Self {
        let mut ad = [0u8; 64];
        ad[..32].copy_from_slice(initiator.as_bytes());
        ad[32..].copy_from_slice(responder.as_bytes());
        Self(ad)
    }
}

/// What the initiator tells the responder, in every pre-key message (the KEM ciphertext
/// borrowed from the message, or from the session that resends it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct X3dhHeader<'a> {
    pub(crate) initiator: IdentityKey,
    pub(crate) base_key: DhPublicKey,
    pub(crate) signed_prekey: SignedPreKeyId,
    pub(crate) one_time_prekey: Option<OneTimePreKeyId>,
    pub(crate) kem_prekey: KemPreKeyId,
    pub(crate) kem_ciphertext: &'a [u8; KEM_CIPHERTEXT_LEN],
}

/// How a session remembers the agreement it began with: the header's fields, with the KEM
/// ciphertext by its SHA-256 (the ciphertext itself is kept only while it must be resent).
/// Sessions made before PQXDH have no KEM part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Origin {
    pub(crate) initiator: IdentityKey,
    pub(crate) base_key: DhPublicKey,
    pub(crate) signed_prekey: SignedPreKeyId,
    pub(crate) one_time_prekey: Option<OneTimePreKeyId>,
    pub(crate) kem: Option<(KemPreKeyId, [u8; 32])>,
}

impl X3dhHeader<'_> {
    pub(crate) fn origin(&self) -> Origin {
        Origin {
            initiator: self.initiator,
            base_key: self.base_key,
            signed_prekey: self.signed_prekey,
            one_time_prekey: self.one_time_prekey,
            kem: Some((self.kem_prekey, sha256(&[self.kem_ciphertext]))),
        }
    }
}

/// The initiator's result: the secret, the agreement as the session remembers it, and the
/// KEM ciphertext it resends until it hears back.
pub(crate) struct Initiated {
    pub(crate) shared_secret: Secret<32>,
    pub(crate) origin: Origin,
    pub(crate) kem_ciphertext: KemCiphertext,
}

/// The initiator's side. Draws 32 bytes from `rng` for the ephemeral (base) key, then 32 for
/// the ML-KEM encapsulation.
pub(crate) fn initiate(
    rng: &mut impl CryptoRng,
    identity: &IdentityKeyPair,
    bundle: &VerifiedBundle,
) -> Result<Initiated, X3dhError> {
    let ephemeral = DhKeyPair::generate(rng);
    let spk = bundle.signed_prekey();
    let otk = bundle.one_time_prekey();
    let kem = bundle.kem_prekey();
    let dh1 = identity.agree(&spk.key);
    let dh2 = ephemeral.agree(&bundle.identity_key().dh_public());
    let dh3 = ephemeral.agree(&spk.key);
    let dh4 = otk.map(|otk| ephemeral.agree(&otk.key)).transpose();
    let (kem_ciphertext, ss) = kem.key.encapsulate(rng);
    let shared_secret = kdf(dh1, dh2, dh3, dh4, &ss)?;
    let origin = X3dhHeader {
        initiator: identity.public(),
        base_key: ephemeral.public(),
        signed_prekey: spk.id,
        one_time_prekey: otk.map(|otk| otk.id),
        kem_prekey: kem.id,
        kem_ciphertext: kem_ciphertext.as_bytes(),
    }
    .origin();
    Ok(Initiated {
        shared_secret,
        origin,
        kem_ciphertext,
    })
}

/// The responder's side, computed without touching the store: the returned [`Consumption`]
/// must be applied once the whole receive has succeeded. Also returns the signed prekey pair,
/// which becomes the responder's first ratchet key.
pub(crate) fn respond(
    identity: &IdentityKeyPair,
    store: &PreKeyStore,
    header: &X3dhHeader<'_>,
) -> Result<(Secret<32>, DhKeyPair, Consumption), X3dhError> {
    let spk = store.signed_pair(header.signed_prekey, &header.base_key)?;
    let otk = header
        .one_time_prekey
        .map(|id| {
            store
                .one_time_pair(id)
                .ok_or(X3dhError::UnknownOneTimePreKey(id.0))
        })
        .transpose()?;
    let (kem, kem_use) = store.kem_pair(header.kem_prekey)?;
    let dh1 = spk.agree(&header.initiator.dh_public());
    let dh2 = identity.agree(&header.base_key);
    let dh3 = spk.agree(&header.base_key);
    let dh4 = otk.map(|otk| otk.agree(&header.base_key)).transpose();
    let ss = kem.decapsulate(header.kem_ciphertext);
    let shared_secret = kdf(dh1, dh2, dh3, dh4, &ss)?;
    let consumption = Consumption {
        signed: header.signed_prekey,
        one_time: header.one_time_prekey,
        base_key: header.base_key,
        kem: kem_use,
    };
    Ok((shared_secret, spk.clone(), consumption))
}

type Dh = Result<Secret<32>, crate::error::CryptoError>;

fn kdf(
    dh1: Dh,
    dh2: Dh,
    dh3: Dh,
    dh4: Result<Option<Secret<32>>, crate::error::CryptoError>,
    ss: &Secret<32>,
) -> Result<Secret<32>, X3dhError> {
    let non_contributory = |_| X3dhError::NonContributory;
    let (dh1, dh2, dh3) = (
        dh1.map_err(non_contributory)?,
        dh2.map_err(non_contributory)?,
        dh3.map_err(non_contributory)?,
    );
    let dh4 = dh4.map_err(non_contributory)?;
    let mut ikm = Zeroizing::new([0u8; 32 * 6]);
    ikm[..32].fill(0xFF);
    ikm[32..64].copy_from_slice(dh1.as_bytes());
    ikm[64..96].copy_from_slice(dh2.as_bytes());
    ikm[96..128].copy_from_slice(dh3.as_bytes());
    let mut len = 128;
    if let Some(dh4) = &dh4 {
        ikm[len..len + 32].copy_from_slice(dh4.as_bytes());
        len += 32;
    }
    ikm[len..len + 32].copy_from_slice(ss.as_bytes());
    len += 32;
    Ok(derive(Some(&[0u8; 32]), &ikm[..len], labels::PQXDH))
}
