//! The X3DH computation on both sides.
//!
//! SK = HKDF-SHA256(salt = 32 zero bytes, ikm = 0xFF×32 ‖ DH1 ‖ DH2 ‖ DH3 [‖ DH4],
//! info = "ratchetry v1 x3dh"), with DH1 = DH(IK_A, SPK_B), DH2 = DH(EK_A, IK_B),
//! DH3 = DH(EK_A, SPK_B), DH4 = DH(EK_A, OPK_B). Every DH must be contributory.

use rand_core::CryptoRng;
use zeroize::Zeroizing;

use super::{Consumption, OneTimePreKeyId, PreKeyStore, SignedPreKeyId, VerifiedBundle};
use crate::error::X3dhError;
use crate::labels;
use crate::primitives::{DhKeyPair, DhPublicKey, IdentityKey, IdentityKeyPair, Secret, derive};

/// The X3DH associated data: the initiator's identity key then the responder's, as Ed25519
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

/// What the initiator tells the responder, in every pre-key message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct X3dhHeader {
    pub(crate) initiator: IdentityKey,
    pub(crate) base_key: DhPublicKey,
    pub(crate) signed_prekey: SignedPreKeyId,
    pub(crate) one_time_prekey: Option<OneTimePreKeyId>,
}

/// The initiator's result.
pub(crate) struct Initiated {
    pub(crate) shared_secret: Secret<32>,
    pub(crate) header: X3dhHeader,
}

/// The initiator's side. Draws 32 bytes from `rng` for the ephemeral (base) key.
pub(crate) fn initiate(
    rng: &mut impl CryptoRng,
    identity: &IdentityKeyPair,
    bundle: &VerifiedBundle,
) -> Result<Initiated, X3dhError> {
    let ephemeral = DhKeyPair::generate(rng);
    let spk = bundle.signed_prekey();
    let otk = bundle.one_time_prekey();
    let dh1 = identity.agree(&spk.key);
    let dh2 = ephemeral.agree(&bundle.identity_key().dh_public());
    let dh3 = ephemeral.agree(&spk.key);
    let dh4 = otk.map(|otk| ephemeral.agree(&otk.key)).transpose();
    let shared_secret = kdf(dh1, dh2, dh3, dh4)?;
    Ok(Initiated {
        shared_secret,
        header: X3dhHeader {
            initiator: identity.public(),
            base_key: ephemeral.public(),
            signed_prekey: spk.id,
            one_time_prekey: otk.map(|otk| otk.id),
        },
    })
}

/// The responder's side, computed without touching the store: the returned [`Consumption`]
/// must be applied once the whole receive has succeeded. Also returns the signed prekey pair,
/// which becomes the responder's first ratchet key.
pub(crate) fn respond(
    identity: &IdentityKeyPair,
    store: &PreKeyStore,
    header: &X3dhHeader,
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
    let dh1 = spk.agree(&header.initiator.dh_public());
    let dh2 = identity.agree(&header.base_key);
    let dh3 = spk.agree(&header.base_key);
    let dh4 = otk.map(|otk| otk.agree(&header.base_key)).transpose();
    let shared_secret = kdf(dh1, dh2, dh3, dh4)?;
    let consumption = Consumption {
        signed: header.signed_prekey,
        one_time: header.one_time_prekey,
        base_key: header.base_key,
    };
    Ok((shared_secret, spk.clone(), consumption))
}

type Dh = Result<Secret<32>, crate::error::CryptoError>;

fn kdf(
    dh1: Dh,
    dh2: Dh,
    dh3: Dh,
    dh4: Result<Option<Secret<32>>, crate::error::CryptoError>,
) -> Result<Secret<32>, X3dhError> {
    let non_contributory = |_| X3dhError::NonContributory;
    let (dh1, dh2, dh3) = (
        dh1.map_err(non_contributory)?,
        dh2.map_err(non_contributory)?,
        dh3.map_err(non_contributory)?,
    );
    let dh4 = dh4.map_err(non_contributory)?;
    let mut ikm = Zeroizing::new([0u8; 32 * 5]);
    ikm[..32].fill(0xFF);
    ikm[32..64].copy_from_slice(dh1.as_bytes());
    ikm[64..96].copy_from_slice(dh2.as_bytes());
    ikm[96..128].copy_from_slice(dh3.as_bytes());
    let len = match &dh4 {
        Some(dh4) => {
            ikm[128..].copy_from_slice(dh4.as_bytes());
            160
        }
        None => 128,
    };
    Ok(derive(Some(&[0u8; 32]), &ikm[..len], labels::X3DH))
}
