//! Replays every fuzz target's committed seed corpus (and any crash artifacts) through the same
//! entry points the cargo-fuzz targets call, so `cargo test` exercises them on stable.
//!
//! The seeds are generated from the deterministic fixtures by
//!
//! ```text
//! cargo test --test fuzz_corpus -- --ignored regenerate_fuzz_seeds
//! ```

use std::fs;
use std::path::PathBuf;

use ratchetry::testing::SeededRng;
use ratchetry::testing::fuzz::{
    self, FanoutFixture, Fixture, GroupFixture, PqChunksFixture, PqFixture,
};

const TARGETS: &[&str] = &[
    "bundle",
    "message",
    "state",
    "decrypt",
    "accept",
    "group_wire",
    "group_decrypt",
    "device_wire",
    "device_receive",
    "history_calls",
    "records",
    "pq_chunks",
    "pq_receive",
];

/// Targets of the SQLite store (`stores/sqlite`): their seeds live beside these, but are
/// generated, checked and replayed by `stores/sqlite/tests/fuzz_corpus.rs`.
const STORE_TARGETS: &[&str] = &["sqlite_meta", "sqlite_rows"];

/// Seeds live in `tests/fuzz-corpus/` (the published crate carries them); crash artifacts
/// where cargo-fuzz writes them, `fuzz/artifacts/`.
fn dir(kind: &str, target: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    match kind {
        "corpus" => root.join("tests/fuzz-corpus").join(target),
        _ => root.join("fuzz").join(kind).join(target),
    }
}

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for kind in ["corpus", "artifacts"] {
        let Ok(entries) = fs::read_dir(dir(kind, target)) else {
            continue;
        };
        for e in entries.flatten() {
            if e.path().is_file() {
                out.push((
                    e.file_name().to_string_lossy().into_owned(),
                    fs::read(e.path()).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

fn replay(target: &str, mut run: impl FnMut(&[u8])) {
    let inputs = inputs(target);
    assert!(
        !inputs.is_empty(),
        "no seed corpus for fuzz target {target}"
    );
    for (_, data) in &inputs {
        run(data);
    }
}

#[test]
fn every_target_has_seeds() {
    // The published crate carries the seed corpus but not the fuzz crate: there, only the
    // seeds are checked.
    let targets = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/fuzz_targets");
    for t in TARGETS.iter().chain(STORE_TARGETS) {
        assert!(!inputs(t).is_empty(), "{t}");
        assert!(
            !targets.exists() || targets.join(format!("{t}.rs")).exists(),
            "{t}"
        );
    }
    if let Ok(entries) = fs::read_dir(&targets) {
        let mut on_disk: Vec<String> = entries
            .flatten()
            .map(|e| {
                e.file_name()
                    .to_string_lossy()
                    .trim_end_matches(".rs")
                    .to_string()
            })
            .collect();
        on_disk.sort();
        let mut listed: Vec<String> = TARGETS
            .iter()
            .chain(STORE_TARGETS)
            .map(|t| t.to_string())
            .collect();
        listed.sort();
        assert_eq!(on_disk, listed, "every fuzz target is replayed here");
    }
}

#[test]
fn stateless_decoders() {
    replay("bundle", fuzz::bundle);
    replay("message", fuzz::message);
    replay("state", |d| {
        fuzz::state(d);
        fuzz::sealed_state(d);
    });
    replay("group_wire", fuzz::group_wire);
    replay("device_wire", fuzz::device_wire);
    replay("history_calls", fuzz::history_and_calls);
    replay("records", fuzz::records);
}

#[test]
fn session_receive_paths() {
    let pristine = Fixture::new();
    replay("decrypt", |d| fuzz::decrypt(&mut pristine.clone(), d));
    replay("accept", |d| fuzz::accept(&mut pristine.clone(), d));
    // The genuine seeds decrypt from the pristine fixture.
    for m in &pristine.in_flight {
        let mut f = pristine.clone();
        let msg = ratchetry::IncomingMessage::decode(m).unwrap();
        f.bob_session.decrypt(&msg).unwrap();
    }
}

#[test]
fn pq_receive_paths() {
    let chunks = PqChunksFixture::new();
    replay("pq_chunks", |d| fuzz::pq_chunks(&mut chunks.clone(), d));
    let pristine = PqFixture::new();
    replay("pq_receive", |d| fuzz::pq_receive(&mut pristine.clone(), d));
}

#[test]
fn group_and_device_receive_paths() {
    let group = GroupFixture::new();
    replay("group_decrypt", |d| {
        fuzz::group_decrypt(&mut group.clone(), d)
    });
    for m in &group.in_flight {
        let mut f = group.clone();
        let msg = ratchetry::group::GroupMessage::decode(m).unwrap();
        f.receiver.decrypt(&Default::default(), &msg).unwrap();
    }
    let fanout = FanoutFixture::new();
    replay("device_receive", |d| {
        fuzz::device_receive(&mut fanout.clone(), d)
    });
    let mut f = fanout.clone();
    for e in &fanout.in_flight {
        f.receiver.receive(FanoutFixture::NOW, e).unwrap();
    }
    // The laptop's offer in flight was applied: the seeds reach the rules of applying one.
    assert!(f.receiver.groups().any(|g| g == FanoutFixture::OTHER_GROUP));
}

#[test]
#[ignore = "writes tests/fuzz-corpus/"]
fn regenerate_fuzz_seeds() {
    use ratchetry::calls::{Call, CallConfig, CallKind};
    use ratchetry::devices::{LinkRequest, ListLimits, Primary, PrimaryPolicy, complete_link};
    use ratchetry::group::{GroupId, GroupSender, InboundSenderKey, OutboundGroupSession};
    use ratchetry::history::HistorySealer;
    use ratchetry::x3dh::OneTimePreKeyId;
    use ratchetry::{IdentityKeyPair, PreKeyStore, Timestamp};

    let write = |target: &str, name: &str, data: &[u8]| {
        let d = dir("corpus", target);
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join(format!("seed-{name}")), data).unwrap();
    };
    // Generated seeds are replaced; regression inputs and inputs of earlier formats
    // (`seed-regression-*`) are kept.
    for target in TARGETS {
        for e in fs::read_dir(dir("corpus", target))
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with("seed-regression") {
                fs::remove_file(e.path()).unwrap();
            }
        }
    }
    let rng = &mut SeededRng::from_label("fuzz seeds");
    let f = Fixture::new();
    write(
        "bundle",
        "with-otk",
        &f.bob_store
            .bundle(&f.bob, Some(OneTimePreKeyId(2)), None)
            .to_bytes(),
    );
    write(
        "bundle",
        "without-otk",
        &f.bob_store.bundle(&f.bob, None, None).to_bytes(),
    );
    // A relay's record of an accepted upload: one-time ids 5 to 24, ML-KEM ids from bit 31.
    write(
        "bundle",
        "accepted-upload",
        &[0, 0, 0, 5, 0, 0, 0, 24, 0x80, 0, 0, 1, 0x80, 0, 0, 20],
    );
    for (i, m) in f.in_flight.iter().enumerate() {
        write("message", &format!("in-flight-{i}"), m);
        write("decrypt", &format!("in-flight-{i}"), m);
    }
    write("accept", "prekey-message", &f.in_flight[0]);
    write("state", "session-initiator", &f.alice_session.to_bytes());
    write("state", "session-responder", &f.bob_session.to_bytes());
    write("state", "prekey-store", &f.bob_store.to_bytes());
    write("state", "identity", &f.bob.to_bytes());
    pq_seeds(&write);

    let owner = GroupSender::new(f.alice.public(), b"context").unwrap();
    let mut out = OutboundGroupSession::new(rng, GroupId([5; 32]), owner.clone());
    let rx = InboundSenderKey::new(owner, &out.distribution());
    write("group_wire", "distribution", &out.distribution().to_bytes());
    write(
        "group_wire",
        "group-message",
        &out.encrypt(rng, b"seed").unwrap(),
    );
    write("state", "outbound-group", &out.to_bytes());
    write("state", "inbound-sender-key", &rx.to_bytes());
    let g = GroupFixture::new();
    for (i, m) in g.in_flight.iter().enumerate() {
        write("group_decrypt", &format!("in-flight-{i}"), m);
    }

    let now = Timestamp(1_790_000_000_000);
    let phone = IdentityKeyPair::generate(rng);
    let mut primary = Primary::new(rng, &phone, now, PrimaryPolicy::default());
    let inv = primary.invite(rng, now).unwrap();
    let laptop = IdentityKeyPair::generate(rng);
    let req = LinkRequest::new(&laptop, &inv);
    let approval = primary.approve(now, &req).unwrap();
    let (_, confirmation) =
        complete_link(&laptop, &inv, &approval, &ListLimits::default()).unwrap();
    write("device_wire", "list", &primary.device_list().to_bytes());
    write("device_wire", "invitation", &inv.to_bytes());
    write("device_wire", "request", &req.to_bytes());
    write("device_wire", "approval", &approval.to_bytes());
    write("device_wire", "confirmation", &confirmation.to_bytes());
    write("state", "primary", &primary.to_bytes());
    // The primary's records (PROTOCOL.md 15.4), with one invitation pending beside the
    // unconfirmed approval, drawn from an RNG of their own so the seeds after them keep theirs.
    let mut pending = primary.clone();
    pending
        .invite(
            &mut SeededRng::from_label("fuzz seed: primary records"),
            now,
        )
        .unwrap();
    let unit = ratchetry::testing::hooks::primary_records(&pending);
    write(
        "records",
        "primary",
        &fuzz::encode_records(
            unit.records()
                .iter()
                .map(|r| (r.key(), r.value().unwrap_or_default())),
        ),
    );
    let fx = FanoutFixture::new();
    for (i, e) in fx.in_flight.iter().enumerate() {
        write("device_receive", &format!("in-flight-{i}"), e);
    }
    let device_state = fx.receiver.to_bytes();
    write("state", "device", &device_state);
    // The fixture's last envelope in flight is a retry request: the receiver reports it.
    let mut receiver = fx.receiver.clone();
    let reported = receiver.receive(FanoutFixture::NOW, fx.in_flight.last().unwrap());
    let Ok(ratchetry::fanout::Received::RetryRequest(request)) = reported else {
        panic!("the fixture's retry request is reported: {reported:?}")
    };
    write("device_wire", "kept-retry-request", &request.to_bytes());
    let mut whole = ratchetry::fanout::Device::from_bytes(&device_state).unwrap();
    let unit = whole.take_changes(rng);
    write(
        "records",
        "device",
        &fuzz::encode_records(
            unit.records()
                .iter()
                .map(|r| (r.key(), r.value().unwrap_or_default())),
        ),
    );
    // Restored from a backup: its groups unconfirmed (0x14 records), its restore record kept.
    let mut restored = fx.receiver.clone().into_restored(FanoutFixture::NOW);
    let unit = restored.take_changes(rng);
    write(
        "records",
        "device-restored",
        &fuzz::encode_records(
            unit.records()
                .iter()
                .map(|r| (r.key(), r.value().unwrap_or_default())),
        ),
    );
    // Every other account forgotten: their lists' marks (0x15 records) in place of the lists.
    let mut forgetful = fx.receiver.clone();
    let followed: Vec<_> = forgetful.accounts().collect();
    for account in &followed {
        forgetful.forget_account(account);
    }
    let mut whole = ratchetry::fanout::Device::from_bytes(&forgetful.to_bytes()).unwrap();
    let unit = whole.take_changes(rng);
    assert!(unit.records().iter().any(|r| r.key()[0] == 0x15));
    write(
        "records",
        "device-forgotten",
        &fuzz::encode_records(
            unit.records()
                .iter()
                .map(|r| (r.key(), r.value().unwrap_or_default())),
        ),
    );
    // Records of an earlier release for a device whose app set no group (the meta record's
    // `groups by app` 0): the load marks every group offered and writes the marks (0x16) and
    // the newest offer's time (0x18).
    let tags = &mut SeededRng::from_label("fuzz seeds: offered");
    let mut whole = ratchetry::fanout::Device::from_bytes(&device_state).unwrap();
    let unit = whole.take_changes(tags);
    let records: Vec<(Vec<u8>, Vec<u8>)> = unit
        .records()
        .iter()
        .filter(|r| ![0x16, 0x18].contains(&r.key()[0]))
        .map(|r| {
            let mut value = r.value().unwrap_or_default().to_vec();
            if r.key() == [0x02] {
                value[20] = 0;
            }
            (r.key().to_vec(), value)
        })
        .collect();
    let mut old = ratchetry::fanout::Device::from_records(
        records.iter().map(|(k, v)| (k.as_slice(), v.as_slice())),
    )
    .unwrap();
    let marks = old.take_changes(tags);
    assert!(marks.records().iter().any(|r| r.key()[0] == 0x16));
    assert!(marks.records().iter().any(|r| r.key() == [0x18]));
    let mut offered: Vec<(Vec<u8>, Vec<u8>)> = records
        .into_iter()
        .chain(
            marks
                .records()
                .iter()
                .filter(|r| [0x16, 0x18].contains(&r.key()[0]))
                .map(|r| (r.key().to_vec(), r.value().unwrap_or_default().to_vec())),
        )
        .collect();
    offered.sort();
    write(
        "records",
        "device-offered",
        &fuzz::encode_records(offered.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))),
    );
    // A group message sent, and one retry request of the other device answered: its answers
    // record (0x17), and the same state as the previous release wrote it, the answers inline
    // in the entry (tag 5). Both load.
    let answers_rng = &mut SeededRng::from_label("fuzz seeds: answered");
    let mut answering = fx.receiver.clone();
    let sent = answering
        .send_group(answers_rng, FanoutFixture::NOW, FanoutFixture::GROUP, b"a")
        .unwrap();
    assert!(matches!(sent, ratchetry::fanout::Outgoing::Ready(_)));
    let mut whole = ratchetry::fanout::Device::from_bytes(&answering.to_bytes()).unwrap();
    let unit = whole.take_changes(answers_rng);
    let mut records: Vec<(Vec<u8>, Vec<u8>)> = unit
        .records()
        .iter()
        .map(|r| (r.key().to_vec(), r.value().unwrap_or_default().to_vec()))
        .collect();
    let (sent_key, entry) = records
        .iter()
        .find(|(k, v)| k[0] == 0x0f && v[24] == 7)
        .cloned()
        .unwrap();
    let requester = records.iter().find(|(k, _)| k[0] == 0x08).unwrap().0[1..].to_vec();
    let answers = [&[1][..], &[0x5a; 16]].concat();
    let mut apart = records.clone();
    apart.push((
        [&[0x17][..], &sent_key[1..], &requester].concat(),
        answers.clone(),
    ));
    apart.sort();
    let inline = records.iter_mut().find(|(k, _)| *k == sent_key).unwrap();
    inline.1 = [
        &entry[..24],
        &[5],
        &entry[25..],
        &1u32.to_be_bytes(),
        &requester,
        &answers,
    ]
    .concat();
    for (name, records) in [
        ("device-answered", apart),
        ("device-inline-answers", records),
    ] {
        ratchetry::fanout::Device::from_records(
            records.iter().map(|(k, v)| (k.as_slice(), v.as_slice())),
        )
        .unwrap();
        write(
            "records",
            name,
            &fuzz::encode_records(records.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))),
        );
    }
    // Every envelope in flight read (a withheld notice among them, 0x0d), then a group message
    // that withholds the key from its sender (a sender key record naming it, 0x0a).
    let mut withholding = fx.receiver.clone();
    let mut sender = None;
    for e in &fx.in_flight {
        let read = withholding.receive(FanoutFixture::NOW, e).unwrap();
        if let ratchetry::fanout::Received::Withheld { from, .. } = read {
            sender = Some(from);
        }
    }
    let withheld = [(
        sender.unwrap(),
        Some(ratchetry::fanout::WithheldReason::Blocked),
    )];
    let sent = withholding
        .send_group_withholding(
            &mut SeededRng::from_label("fuzz seeds: withholding"),
            FanoutFixture::NOW,
            FanoutFixture::GROUP,
            b"w",
            &withheld,
        )
        .unwrap();
    assert!(matches!(sent, ratchetry::fanout::Outgoing::Ready(_)));
    let mut whole = ratchetry::fanout::Device::from_bytes(&withholding.to_bytes()).unwrap();
    let unit = whole.take_changes(rng);
    for kind in [0x0a, 0x0d] {
        assert!(unit.records().iter().any(|r| r.key()[0] == kind));
    }
    write(
        "records",
        "device-withholding",
        &fuzz::encode_records(
            unit.records()
                .iter()
                .map(|r| (r.key(), r.value().unwrap_or_default())),
        ),
    );
    let key = ratchetry::persist::StorageKey::from_bytes([0x5e; 32]);
    write(
        "state",
        "sealed-device",
        &ratchetry::persist::seal_state(rng, &key, b"fuzz", 1, &device_state),
    );

    let mut sealer = HistorySealer::new(rng);
    let _ = sealer.push(&[1; 100]);
    let (chunks, offer) = sealer.finish();
    write("history_calls", "offer", &offer.to_bytes());
    write("history_calls", "chunk", &chunks[0]);
    let call = Call::start(
        rng,
        CallKind::Group,
        fx.receiver.address(),
        &[],
        &CallConfig::default(),
    )
    .unwrap();
    write("history_calls", "call-key", &call.key_message().to_bytes());
    write("state", "call", &call.to_bytes());
    let upload = ratchetry::x3dh::OneTimePreKeys::from_bytes(
        &fx.receiver
            .clone()
            .generate_one_time_prekeys(rng, now, 2)
            .to_bytes(),
    )
    .unwrap();
    write("device_wire", "prekey-upload", &upload.to_bytes());
    let _ = PreKeyStore::from_bytes(&f.bob_store.to_bytes()).unwrap();
    // A group membership (PROTOCOL.md 18.2): two groups ascending, one with two members
    // ascending, one with none.
    let mut members: Vec<[u8; 32]> = (0..2)
        .map(|_| {
            ratchetry::devices::AccountKeyPair::generate(rng)
                .public()
                .to_bytes()
        })
        .collect();
    members.sort();
    let mut membership = 2u32.to_be_bytes().to_vec();
    membership.extend_from_slice(&[0x01; 32]);
    membership.extend_from_slice(&2u32.to_be_bytes());
    membership.extend(members.concat());
    membership.extend_from_slice(&[0x02; 32]);
    membership.extend_from_slice(&0u32.to_be_bytes());
    write("history_calls", "membership", &membership);
}

/// Seeds of the post-quantum targets: genuine extensions of a lossless conversation (as
/// `pq_chunks` records) and a session's genuine messages and extensions (`pq_receive`).
fn pq_seeds(write: &dyn Fn(&str, &str, &[u8])) {
    use ratchetry::testing::pq::PqLink;
    let mut link = PqLink::new([0x52; 32]);
    let mut records = Vec::new();
    for i in 0..160 {
        let m = link.send(i % 2 == 0);
        if i % 2 == 0 && i >= 150 {
            // The fixture is the responder 150 messages in: the initiator's next extensions.
            let ext = m.ext_bytes();
            records.push(0);
            records.push(ext.len() as u8);
            records.extend_from_slice(ext);
            records.resize(records.len() + 34 - ext.len(), 0);
        }
        link.deliver(&m).unwrap();
    }
    write("pq_chunks", "genuine-extensions", &records);
    write("pq_chunks", "bare-extension", &[0, 2, 0x80, 0x00]);
    let f = PqFixture::new();
    let rng = &mut SeededRng::from_label("pq receive seeds");
    let mut alice = f.alice.clone();
    let genuine = alice.encrypt(rng, b"genuine").unwrap();
    let mut raw = vec![0u8];
    raw.extend_from_slice(&genuine);
    write("pq_receive", "genuine-message", &raw);
    write("state", "pq-session", &f.bob.to_bytes());
    write(
        "pq_receive",
        "sealed-extensions",
        &[1, 1, 0x00, 34, 0x10, 0x42],
    );
}
