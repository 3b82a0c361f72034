//! Published test vectors (RFC 7748, RFC 8032, RFC 5869, RFC 4231, the GCM specification, and
//! the strict-Ed25519 edge cases of `ed25519-strict.json`), run through the crate's own
//! primitive wrappers. One test per file in `test-vectors/`.

use ratchetry::primitives::SigningPublicKey;
use ratchetry::testing::raw::{
    aes256gcm_open, aes256gcm_seal, ed25519_sign, ed25519_verify, hkdf_sha256, hmac_sha256, x25519,
    x25519_public,
};
use serde_json::Value;

fn load(name: &str) -> Value {
    let path = format!("{}/test-vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn bytes(v: &Value, field: &str) -> Vec<u8> {
    hex::decode(
        v[field]
            .as_str()
            .unwrap_or_else(|| panic!("missing {field}")),
    )
    .unwrap()
}

fn arr<const N: usize>(v: &Value, field: &str) -> [u8; N] {
    bytes(v, field).try_into().unwrap()
}

fn vectors(file: &Value) -> &Vec<Value> {
    file["vectors"].as_array().unwrap()
}

#[test]
fn rfc7748_x25519() {
    let f = load("rfc7748.json");
    assert_eq!(vectors(&f).len(), 2);
    for v in vectors(&f) {
        assert_eq!(
            x25519(arr(v, "scalar"), arr(v, "u")).unwrap().to_vec(),
            bytes(v, "output")
        );
    }
    let iterated = f["iterated"].as_array().unwrap();
    assert_eq!(iterated.len(), 2);
    let mut nine = [0u8; 32];
    nine[0] = 9;
    let (mut k, mut u) = (nine, nine);
    let mut done = 0;
    for v in iterated {
        let target = v["iterations"].as_u64().unwrap();
        while done < target {
            let next = x25519(k, u).unwrap();
            u = k;
            k = next;
            done += 1;
        }
        assert_eq!(k.to_vec(), bytes(v, "output"), "after {target} iterations");
    }
    let dh = &f["dh"];
    assert_eq!(
        x25519_public(arr(dh, "alice_private")).to_vec(),
        bytes(dh, "alice_public")
    );
    assert_eq!(
        x25519_public(arr(dh, "bob_private")).to_vec(),
        bytes(dh, "bob_public")
    );
    assert_eq!(
        x25519(arr(dh, "alice_private"), arr(dh, "bob_public"))
            .unwrap()
            .to_vec(),
        bytes(dh, "shared")
    );
    assert_eq!(
        x25519(arr(dh, "bob_private"), arr(dh, "alice_public"))
            .unwrap()
            .to_vec(),
        bytes(dh, "shared")
    );
}

/// `ed25519-strict.json`: where PROTOCOL.md 2's strict `Verify` differs from lenient verifiers
/// ("Taming the many EdDSAs" test vectors 0-11, two made for the file, an RFC 8032 control).
/// Verification through the crate's wrapper must give `valid`, and the public key alone must be
/// refused (`SigningPublicKey::from_bytes`, 5.1) exactly when a rule about A is broken.
#[test]
fn ed25519_strict() {
    let f = load("ed25519-strict.json");
    let (mut valid, mut invalid) = (0, 0);
    for v in vectors(&f) {
        let name = v["name"].as_str().unwrap();
        let public = arr::<32>(v, "public_key");
        let (msg, sig) = (bytes(v, "message"), arr::<64>(v, "signature"));
        let expected = v["valid"].as_bool().unwrap();
        let violations: Vec<&str> = v["violations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap())
            .collect();
        assert_eq!(expected, violations.is_empty(), "{name}");
        assert_eq!(ed25519_verify(&public, &msg, &sig), expected, "{name}");
        let key_refused = violations.iter().any(|x| x.starts_with("A "));
        assert_eq!(
            SigningPublicKey::from_bytes(&public).is_err(),
            key_refused,
            "{name}: key check"
        );
        if expected {
            valid += 1;
        } else {
            invalid += 1;
        }
    }
    assert_eq!((valid, invalid), (2, 13));
}

#[test]
fn rfc8032_ed25519() {
    let f = load("rfc8032.json");
    assert_eq!(vectors(&f).len(), 5);
    for v in vectors(&f) {
        let msg = bytes(v, "message");
        let (public, sig) = ed25519_sign(&arr(v, "secret_key"), &msg);
        assert_eq!(public.to_vec(), bytes(v, "public_key"), "{}", v["name"]);
        assert_eq!(sig.to_vec(), bytes(v, "signature"), "{}", v["name"]);
        assert!(ed25519_verify(&public, &msg, &sig));
        let mut bad = sig;
        bad[10] ^= 1;
        assert!(!ed25519_verify(&public, &msg, &bad));
        let mut other = msg.clone();
        other.push(0);
        assert!(!ed25519_verify(&public, &other, &sig));
    }
}

#[test]
fn rfc5869_hkdf_sha256() {
    let f = load("rfc5869.json");
    assert_eq!(vectors(&f).len(), 3);
    for v in vectors(&f) {
        let salt = bytes(v, "salt");
        let mut okm = vec![0u8; v["length"].as_u64().unwrap() as usize];
        hkdf_sha256(
            (!salt.is_empty()).then_some(&salt[..]),
            &bytes(v, "ikm"),
            &bytes(v, "info"),
            &mut okm,
        )
        .unwrap();
        assert_eq!(okm, bytes(v, "okm"), "{}", v["name"]);
    }
    // An empty salt and an absent one are the same (RFC 5869 section 2.2).
    let mut a = [0u8; 42];
    let mut b = [0u8; 42];
    hkdf_sha256(None, b"ikm", b"", &mut a).unwrap();
    hkdf_sha256(Some(&[0u8; 32]), b"ikm", b"", &mut b).unwrap();
    assert_eq!(a, b);
    assert!(hkdf_sha256(None, b"ikm", b"", &mut [0u8; 255 * 32 + 1]).is_none());
}

#[test]
fn rfc4231_hmac_sha256() {
    let f = load("rfc4231.json");
    assert_eq!(vectors(&f).len(), 7);
    for v in vectors(&f) {
        let mac = hmac_sha256(&bytes(v, "key"), &bytes(v, "data"));
        let expected = bytes(v, "mac");
        assert_eq!(&mac[..expected.len()], &expected[..], "{}", v["name"]);
        if v.get("truncated_bits").is_none() {
            assert_eq!(expected.len(), 32);
        }
    }
}

#[test]
fn gcm_spec_aes256() {
    let f = load("aes-gcm.json");
    assert_eq!(vectors(&f).len(), 4);
    for v in vectors(&f) {
        let (key, iv, aad, pt) = (
            arr(v, "key"),
            arr(v, "iv"),
            bytes(v, "aad"),
            bytes(v, "plaintext"),
        );
        let sealed = aes256gcm_seal(&key, &iv, &aad, &pt);
        let mut expected = bytes(v, "ciphertext");
        expected.extend(bytes(v, "tag"));
        assert_eq!(sealed, expected, "{}", v["name"]);
        assert_eq!(aes256gcm_open(&key, &iv, &aad, &sealed).unwrap(), pt);
        let mut bad = sealed.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(aes256gcm_open(&key, &iv, &aad, &bad).is_err());
        let mut other_aad = aad.clone();
        other_aad.push(1);
        assert!(aes256gcm_open(&key, &iv, &other_aad, &sealed).is_err());
    }
}
