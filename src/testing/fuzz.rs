//! Entry points for the cargo-fuzz targets under `fuzz/` and for the corpus replay in
//! `tests/fuzz_corpus.rs`. Each must not panic on any input, and checks invariants of its own
//! (canonical round trips, state untouched by a refused input, changed by an accepted one).

use alloc::vec::Vec;

use super::SeededRng;
use crate::calls::{Call, CallKeyMessage};
use crate::devices::{
    LinkApproval, LinkConfirmation, LinkInvitation, LinkRequest, PRIMARY_DEVICE, Primary,
    PrimaryPolicy, SignedDeviceList, complete_link,
};
use crate::fanout::{Device, DeviceConfig, EnvelopeId, Outgoing, RetryReason, WithheldReason};
use crate::group::{
    GroupConfig, GroupId, GroupMessage, GroupSender, InboundSenderKey, OutboundGroupSession,
    SenderKeyDistribution,
};
use crate::history::{HistoryOffer, HistoryOpener, HistorySealer};
use crate::x3dh::{OneTimePreKeyId, OneTimePreKeys, PreKeyStoreConfig};
use crate::{
    IdentityKey, IdentityKeyPair, IncomingMessage, PreKeyBundle, PreKeyStore, Session,
    SessionConfig, Timestamp,
};

/// Bundle decoding, and a relay's accepted-upload record: whatever decodes re-encodes to the
/// same bytes.
pub fn bundle(data: &[u8]) {
    if let Ok(bundle) = PreKeyBundle::from_bytes(data) {
        assert_eq!(bundle.to_bytes(), data, "bundle encoding is not canonical");
        let _ = bundle.verify();
    }
    // What a relay's pools store of an accepted upload: one encoding each.
    if let Ok(accepted) = crate::server::AcceptedUpload::from_bytes(data) {
        assert_eq!(
            accepted.to_bytes(),
            data,
            "accepted upload is not canonical"
        );
    }
}

/// Pairwise message decoding.
pub fn message(data: &[u8]) {
    let _ = IncomingMessage::decode(data);
}

/// State decoding: whatever decodes re-encodes to the same bytes.
pub fn state(data: &[u8]) {
    if let Ok(s) = Session::from_bytes(data)
        && data.first() == s.to_bytes().first()
    {
        assert_eq!(&**s.to_bytes(), data, "session state is not canonical");
    }
    if let Ok(s) = PreKeyStore::from_bytes(data)
        && data.first() == s.to_bytes().first()
    {
        assert_eq!(&**s.to_bytes(), data, "prekey store state is not canonical");
    }
    if let Ok(s) = IdentityKeyPair::from_bytes(data) {
        assert_eq!(&**s.to_bytes(), data, "identity state is not canonical");
    }
    if let Ok(s) = OutboundGroupSession::from_bytes(data) {
        assert_eq!(
            &**s.to_bytes(),
            data,
            "outbound group state is not canonical"
        );
    }
    if let Ok(s) = InboundSenderKey::from_bytes(data) {
        assert_eq!(&**s.to_bytes(), data, "inbound sender key is not canonical");
    }
    if let Ok(s) = Primary::from_bytes(data) {
        let out = s.to_bytes();
        if data.first() == out.first() {
            assert_eq!(&**out, data, "primary state is not canonical");
        } else {
            // The form before tags (PROTOCOL.md 23): the same fields, then the tag of 16 zero
            // bytes, under the current version.
            assert_eq!(
                (&out[2..out.len() - 16], &out[out.len() - 16..]),
                (&data[2..], &[0; 16][..])
            );
        }
    }
    if let Ok(s) = Call::from_bytes(data) {
        assert_eq!(&**s.to_bytes(), data, "call state is not canonical");
    }
    if let Ok(s) = Device::from_bytes(data) {
        let out = s.to_bytes();
        let records = whole_state_records(data);
        let pairs = records.iter().map(|(k, v)| (&k[..], &v[..]));
        if Device::from_records(pairs).is_ok_and(|d| d.has_changes()) {
            // Records of an older form (PROTOCOL.md 19.1, 19.2), rewritten as they load: what
            // the state became is canonical.
            let again = Device::from_bytes(&out).map(|d| d.to_bytes());
            assert!(
                again.is_ok_and(|b| *b == *out),
                "migrated device state is not canonical"
            );
        } else {
            assert_eq!(&**out, data, "device state is not canonical");
        }
    }
}

/// Sealed-state opening of arbitrary bytes never panics, and what opens is fed to the state
/// decoders.
pub fn sealed_state(data: &[u8]) {
    let key = crate::persist::StorageKey::from_bytes([0x5e; 32]);
    if let Ok(opened) = crate::persist::open_state(&key, data, b"fuzz", 0) {
        self::state(&opened.state);
    }
}

/// Device and primary records: arbitrary `(u16 key length, key, u32 value length, value)`
/// sequences fed to [`Device::from_records`] and [`Primary::from_records`]; whatever loads
/// yields, as its whole state, exactly the records it was given, or (a device) those with the
/// rewrite the load asked for (records in an older form), which then load as they are.
pub fn records(data: &[u8]) {
    let mut rest = data;
    let mut records: Vec<(&[u8], &[u8])> = Vec::new();
    while rest.len() >= 2 {
        let klen = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        rest = &rest[2..];
        if rest.len() < klen + 4 {
            break;
        }
        let (key, tail) = rest.split_at(klen);
        let vlen = u32::from_be_bytes([tail[0], tail[1], tail[2], tail[3]]) as usize;
        let tail = &tail[4..];
        if tail.len() < vlen {
            break;
        }
        let (value, tail) = tail.split_at(vlen);
        records.push((key, value));
        rest = tail;
    }
    primary_records(&records);
    if let Ok(mut device) = Device::from_records(records.iter().copied()) {
        // Records in an older form (a session holding its pending KEM ciphertext inline, an
        // own record of the previous layout) load and are rewritten: the unit the load leaves
        // is the canonical form.
        let migrated = device.has_changes();
        let mut given: Vec<(Vec<u8>, Vec<u8>)> = records
            .iter()
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect();
        given.sort();
        let rewrite = device.take_changes(&mut crate::testing::SeededRng::from_label("fuzz"));
        if migrated {
            for r in rewrite.records() {
                given.retain(|(k, _)| k.as_slice() != r.key());
                if let Some(v) = r.value() {
                    given.push((r.key().to_vec(), v.to_vec()));
                }
            }
            given.sort();
            let reloaded = Device::from_records(given.iter().map(|(k, v)| (&k[..], &v[..])));
            assert!(
                reloaded.is_ok_and(|d| !d.has_changes()),
                "rewritten records do not load as they are"
            );
        }
        // The whole state is its records in key order (PROTOCOL.md 19.4), and loads as it is.
        let whole = device.to_bytes();
        assert!(
            Device::from_bytes(&whole).is_ok_and(|d| d.to_bytes() == whole),
            "whole-state bytes do not load as they are"
        );
        let mut back = whole_state_records(&whole);
        back.sort();
        // Compared as a whole, but reported briefly: the records are large.
        assert!(
            given == back,
            "records do not round-trip ({} given, {} back)",
            given.len(),
            back.len()
        );
    }
}

/// A record's key and value.
type KeyValue = (Vec<u8>, Vec<u8>);

/// The records of a device's whole-state bytes (`0x03 ‖ 0x87 ‖ u32(n) ‖ n × (blob(key) ‖
/// blob(value))`), which are this crate's own.
fn whole_state_records(bytes: &[u8]) -> Vec<KeyValue> {
    let read = || -> Result<Vec<KeyValue>, crate::DecodeError> {
        let mut r = crate::wire::Reader::new(bytes.get(2..).unwrap_or_default());
        let blob = |r: &mut crate::wire::Reader| -> Result<Vec<u8>, crate::DecodeError> {
            let len = r.u32()? as usize;
            Ok(r.bytes(len)?.to_vec())
        };
        (0..r.u32()?)
            .map(|_| Ok((blob(&mut r)?, blob(&mut r)?)))
            .collect()
    };
    // Bytes the device wrote itself, or that loaded: they parse.
    read().unwrap_or_default()
}

/// Primary records that load are canonical: the primary's records, re-encoded, are exactly
/// those given, or (a meta record of the form before tags) those with the meta record the
/// load's unit rewrites, and nothing else is rewritten.
fn primary_records(records: &[(&[u8], &[u8])]) {
    if let Ok(mut primary) = Primary::from_records(records.iter().copied()) {
        let mut given: Vec<(Vec<u8>, Vec<u8>)> = records
            .iter()
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect();
        let rewrite = primary.take_changes(&mut crate::testing::SeededRng::from_label("fuzz"));
        assert!(
            rewrite.records().iter().all(|r| r.key() == [0x82]),
            "a primary load rewrote more than its meta record"
        );
        for r in rewrite.records() {
            given.retain(|(k, _)| k.as_slice() != r.key());
            given.push((r.key().to_vec(), r.value().unwrap_or_default().to_vec()));
        }
        given.sort();
        let whole = primary.all_records();
        let back: Vec<(Vec<u8>, Vec<u8>)> = whole
            .records()
            .iter()
            .map(|r| (r.key().to_vec(), r.value().unwrap_or_default().to_vec()))
            .collect();
        assert!(given == back, "primary records do not round-trip");
    }
}

/// Encodes records the way [`records`] reads them (for seeds).
pub fn encode_records<'a>(records: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in records {
        out.extend_from_slice(&(k.len() as u16).to_be_bytes());
        out.extend_from_slice(k);
        out.extend_from_slice(&(v.len() as u32).to_be_bytes());
        out.extend_from_slice(v);
    }
    out
}

/// History offers, the group membership sent with them and call key messages re-encode to the
/// same bytes; arbitrary chunks pushed into an opener for a fixed offer are refused without
/// advancing it.
pub fn history_and_calls(data: &[u8]) {
    let mut r = crate::wire::Reader::new(data);
    if let Ok(m) = crate::fanout::membership::Membership::read(&mut r)
        && r.finish().is_ok()
    {
        let mut again = Vec::new();
        m.write(&mut again);
        assert_eq!(again, data, "membership encoding is not canonical");
    }
    if let Ok(o) = HistoryOffer::from_bytes(data) {
        assert_eq!(
            &**o.to_bytes(),
            data,
            "history offer encoding is not canonical"
        );
    }
    if let Ok(m) = CallKeyMessage::from_bytes(data) {
        assert_eq!(&**m.to_bytes(), data, "call key encoding is not canonical");
        call_receive(m);
    }
    // A call state restored at any kept epoch: stale exactly when older than it, and a stale
    // manager's call moves past it (a participant's keeps its key message, under a floor).
    if let Some((&first, rest)) = data.split_first()
        && let Ok(stored) = Call::from_bytes(rest)
    {
        let rng = &mut SeededRng::from_label("ratchetry call restore fuzz");
        let kept = u32::from(first) << 24;
        if let Ok((call, stale)) = Call::restore(rng, rest, kept) {
            assert_eq!(stale, stored.epoch() < kept, "restore misjudged staleness");
            assert!(
                call.epoch() == stored.epoch() || Some(call.epoch()) == kept.checked_add(1),
                "restore moved a call anywhere but past the kept epoch"
            );
            // Its floor included, a restored call saves and loads as it is.
            assert_eq!(
                Call::from_bytes(&call.to_bytes()).as_ref(),
                Ok(&call),
                "a restored call does not round-trip"
            );
        }
    }
    let rng = &mut SeededRng::from_label("ratchetry history fuzz fixture");
    let mut sealer = HistorySealer::new(rng);
    let _ = sealer.push(&[0x42; 100]);
    let (_, offer) = sealer.finish();
    let mut opener = HistoryOpener::new(&offer);
    if opener.push(data).is_err() {
        assert_eq!(
            opener.chunks_opened(),
            0,
            "a refused chunk advanced the opener"
        );
    }
}

/// A held call (this device a participant, the manager another) given an arbitrary key
/// message from its manager: `apply` and `catch_up` either move it forward within the same
/// call, or refuse and leave it byte-identical.
fn call_receive(message: CallKeyMessage) {
    use crate::calls::{CallConfig, CallKind};
    let rng = &mut SeededRng::from_label("ratchetry call fuzz fixture");
    let manager = message.manager();
    let me = message.participants.iter().copied().find(|p| *p != manager);
    let Some(me) = me else { return };
    let config = CallConfig::default();
    let Ok(mut held) = Call::start(rng, CallKind::Group, manager, &[me], &config) else {
        return;
    };
    let Ok(mut follower) =
        Call::from_key_message(me, &manager, held.key_message().clone(), &config)
    else {
        return;
    };
    let _ = held.join(rng, me, &config);
    for catch_up in [false, true] {
        let before = follower.to_bytes();
        let epoch = follower.epoch();
        let result = if catch_up {
            follower.catch_up(&manager, message.clone(), &config)
        } else {
            follower.apply(&manager, message.clone(), &config)
        };
        match result {
            Ok(()) => assert!(follower.epoch() > epoch, "a call key moved a call back"),
            Err(_) => assert_eq!(
                *before,
                *follower.to_bytes(),
                "a refused call key changed it"
            ),
        }
    }
}

/// Device-layer decoders: lists, the linking messages, prekey uploads and kept retry requests
/// re-encode to the same bytes.
pub fn device_wire(data: &[u8]) {
    if let Ok(l) = SignedDeviceList::from_bytes(data) {
        assert_eq!(l.to_bytes(), data, "device list encoding is not canonical");
    }
    if let Ok(m) = LinkInvitation::from_bytes(data) {
        assert_eq!(m.to_bytes(), data, "invitation encoding is not canonical");
    }
    if let Ok(m) = LinkRequest::from_bytes(data) {
        assert_eq!(m.to_bytes(), data, "request encoding is not canonical");
    }
    if let Ok(m) = LinkApproval::from_bytes(data) {
        assert_eq!(m.to_bytes(), data, "approval encoding is not canonical");
    }
    if let Ok(m) = LinkConfirmation::from_bytes(data) {
        assert_eq!(m.to_bytes(), data, "confirmation encoding is not canonical");
    }
    if let Ok(m) = crate::fanout::RetryRequest::from_bytes(data) {
        assert_eq!(m.to_bytes(), data, "kept retry request is not canonical");
    }
    if let Ok(m) = OneTimePreKeys::from_bytes(data) {
        assert_eq!(
            m.to_bytes(),
            data,
            "prekey upload encoding is not canonical"
        );
    }
}

/// Two accounts' devices with sessions, a group and a sender key, and envelopes in flight.
/// The receiver holds its group from its account's laptop's history offer (its app set none),
/// so an offer in flight is applied, and a fuzzed one reaches every rule of applying one.
#[derive(Clone)]
pub struct FanoutFixture {
    /// Bob's phone, the receiver.
    pub receiver: Device,
    /// Genuine envelopes for it not yet received: 1:1, a sender-key distribution, a group
    /// message, a withheld notice, a history offer from its account's laptop (newer than the
    /// one its groups came from), and (last) a retry request for a message it sent.
    pub in_flight: Vec<Vec<u8>>,
}

impl FanoutFixture {
    /// The fixture's clock.
    pub const NOW: Timestamp = Timestamp(1_790_000_000_000);
    /// The fixture's group.
    pub const GROUP: GroupId = GroupId([0x11; 32]);
    /// The group the laptop's offer in flight installs.
    pub const OTHER_GROUP: GroupId = GroupId([0x12; 32]);

    /// Builds the fixture deterministically.
    pub fn new() -> Self {
        let rng = &mut SeededRng::from_label("ratchetry fanout fuzz fixture");
        let now = Self::NOW;
        let mut run = || -> crate::Result<Self> {
            let config = DeviceConfig::default();
            let a_id = IdentityKeyPair::generate(rng);
            let a_primary = Primary::new(rng, &a_id, now, PrimaryPolicy::default());
            let b_id = IdentityKeyPair::generate(rng);
            let mut b_primary = Primary::new(rng, &b_id, now, PrimaryPolicy::default());
            let a_list = a_primary.device_list();
            // Bob links a laptop: his phone holds its groups from the laptop's history offers.
            let laptop_id = IdentityKeyPair::generate(rng);
            let invitation = b_primary.invite(rng, now)?;
            let approval = b_primary.approve(now, &LinkRequest::new(&laptop_id, &invitation))?;
            let (b_list, confirmation) =
                complete_link(&laptop_id, &invitation, &approval, &config.lists)?;
            b_primary.confirm(&confirmation)?;
            let (mut alice, _) =
                Device::new(rng, now, a_id, PRIMARY_DEVICE, a_list.clone(), 2, config)?;
            let (mut bob, _) =
                Device::new(rng, now, b_id, PRIMARY_DEVICE, b_list.clone(), 2, config)?;
            let (mut laptop, _) = Device::new(
                rng,
                now,
                laptop_id,
                approval.device,
                b_list.clone(),
                2,
                config,
            )?;
            let (a, b) = (a_list.account(), b_list.account());
            alice.update_device_list(now, &b, b_list.signed().clone())?;
            bob.update_device_list(now, &a, a_list.signed().clone())?;
            laptop.update_device_list(now, &a, a_list.signed().clone())?;
            alice.set_group_members(Self::GROUP, &[b])?;
            laptop.set_group_members(Self::GROUP, &[a])?;
            let history = {
                let mut sealer = HistorySealer::new(rng);
                let _ = sealer.push(b"history");
                sealer.finish().1
            };
            laptop.start_sessions(rng, now, &[(bob.address(), bob.bundle(None, None))])?;
            for (_, e) in
                &ready(laptop.send_history_offer(rng, now, bob.address(), &history)?)?.envelopes
            {
                bob.receive(now, e)?;
            }
            let bundles = [
                (bob.address(), bob.bundle(None, None)),
                (laptop.address(), laptop.bundle(None, None)),
            ];
            alice.start_sessions(rng, now, &bundles)?;
            let first = ready(alice.send(rng, now, &b, b"first")?)?;
            let receiver = bob.address();
            let to_bob = move |o: crate::fanout::Outbox| {
                o.envelopes
                    .into_iter()
                    .filter(move |(to, _)| *to == receiver)
                    .map(|(_, e)| e)
            };
            for e in to_bob(first) {
                bob.receive(now, &e)?;
            }
            let reply = ready(bob.send(rng, now, &a, b"reply")?)?;
            let reply = reply
                .envelopes
                .into_iter()
                .find(|(to, _)| to.account == a)
                .map(|(_, e)| e)
                .ok_or(crate::FanoutError::UnknownMessage)?;
            let mut in_flight = Vec::new();
            in_flight.extend(to_bob(ready(alice.send(rng, now, &b, b"direct")?)?));
            let mut group = ready(alice.send_group(rng, now, Self::GROUP, b"g")?)?;
            let group_envelope = group.group.take().map(|(e, _)| e);
            in_flight.extend(to_bob(group));
            in_flight.extend(group_envelope);
            let (_, retry) =
                alice.request_retry(rng, now, &reply, RetryReason::AuthenticationFailed)?;
            // Bob's phone held the key: the withholding send rotates, and tells it.
            let withheld = [(bob.address(), Some(WithheldReason::Blocked))];
            let notice =
                ready(alice.send_group_withholding(rng, now, Self::GROUP, b"w", &withheld)?)?;
            in_flight.extend(to_bob(notice));
            // The laptop's app starts another group; its next offer brings it to the phone.
            laptop.set_group_members(Self::OTHER_GROUP, &[a])?;
            let later = Timestamp(now.as_millis() + 1000);
            let offer = laptop.send_history_offer(rng, later, bob.address(), &history)?;
            in_flight.extend(ready(offer)?.envelopes.into_iter().map(|(_, e)| e));
            in_flight.push(retry);
            let _ = bob.take_changes(rng);
            Ok(Self {
                receiver: bob,
                in_flight,
            })
        };
        match run() {
            Ok(f) => f,
            Err(e) => panic!("fanout fixture construction failed: {e}"),
        }
    }
}

impl Default for FanoutFixture {
    fn default() -> Self {
        Self::new()
    }
}

fn ready(o: Outgoing) -> crate::Result<crate::fanout::Outbox> {
    match o {
        Outgoing::Ready(o) => Ok(o),
        _ => Err(crate::FanoutError::UnknownMessage.into()),
    }
}

/// `Device::receive` of arbitrary bytes: a refusal leaves the device byte-identical and with
/// no changes to persist; an acceptance has changes. The bytes refused are then asked for
/// again (`driver::ask_again`, the store said to hold them for inputs of even length): a
/// stored hit is `Duplicate` under one of `EnvelopeId::of_either_kind`, which always names
/// the bytes' own id; anything but a request made leaves the device as it was.
pub fn device_receive(fixture: &mut FanoutFixture, data: &[u8]) {
    let ids = EnvelopeId::of_either_kind(data);
    assert!(ids.contains(&EnvelopeId::of(data)) && matches!(ids.len(), 1 | 2));
    let before = fixture.receiver.to_bytes();
    if fixture.receiver.receive(FanoutFixture::NOW, data).is_ok() {
        assert!(
            fixture.receiver.has_changes(),
            "an acceptance changed nothing"
        );
        return;
    }
    assert_eq!(*before, *fixture.receiver.to_bytes(), "state changed");
    assert!(!fixture.receiver.has_changes(), "a refusal left changes");
    // Asked on a copy: the fixture stays as the receive left it, for the caller's next input.
    let mut asker = fixture.receiver.clone();
    let stored = data.len().is_multiple_of(2);
    let rng = &mut SeededRng::from_label("ratchetry fuzz ask again");
    let asked = crate::driver::ask_again(
        &mut asker,
        rng,
        FanoutFixture::NOW,
        data,
        RetryReason::NoSession,
        |_| stored,
    );
    match asked {
        crate::driver::Inbound::AskAgain { .. } => {
            assert!(!stored, "asked for a stored message");
            assert!(asker.has_changes(), "an ask changed nothing");
        }
        other => {
            if stored {
                assert_eq!(other, crate::driver::Inbound::Duplicate(ids[0]));
            }
            assert_eq!(*before, *asker.to_bytes(), "state changed");
            assert!(!asker.has_changes(), "a refusal left changes");
        }
    }
}

/// Group message and distribution decoding: a distribution that decodes re-encodes to the
/// same bytes.
pub fn group_wire(data: &[u8]) {
    let _ = GroupMessage::decode(data);
    if let Ok(d) = SenderKeyDistribution::from_bytes(data) {
        assert_eq!(
            &**d.to_bytes(),
            data,
            "distribution encoding is not canonical"
        );
    }
}

/// One sender's inbound key, and that sender's messages not yet received.
#[derive(Clone)]
pub struct GroupFixture {
    /// The sender device's identity key.
    pub sender: IdentityKey,
    /// The receiver's copy of the sender's first generation.
    pub receiver: InboundSenderKey,
    /// Genuine group messages the receiver has not seen (iterations 1..=3; iteration 0 was
    /// received).
    pub in_flight: Vec<Vec<u8>>,
}

impl GroupFixture {
    /// Builds the fixture deterministically.
    pub fn new() -> Self {
        let rng = &mut SeededRng::from_label("ratchetry group fuzz fixture");
        let sender = IdentityKeyPair::generate(rng).public();
        let owner = GroupSender::fixed(sender, b"sender");
        let mut out = OutboundGroupSession::new(rng, GroupId([0x42; 32]), owner.clone());
        let mut receiver = InboundSenderKey::new(owner, &out.distribution());
        let config = GroupConfig::default();
        let mut run = || -> crate::Result<Self> {
            let first = out.encrypt(rng, b"first")?;
            receiver.decrypt(&config, &GroupMessage::decode(&first)?)?;
            let mut in_flight = Vec::new();
            for i in 0..3u8 {
                in_flight.push(out.encrypt(rng, &[i; 40])?);
            }
            Ok(Self {
                sender,
                receiver: receiver.clone(),
                in_flight,
            })
        };
        match run() {
            Ok(f) => f,
            Err(e) => panic!("group fixture construction failed: {e}"),
        }
    }
}

impl Default for GroupFixture {
    fn default() -> Self {
        Self::new()
    }
}

/// Group decrypt of arbitrary bytes, also tried as a distribution: a refusal leaves the
/// receiver byte-identical.
pub fn group_decrypt(fixture: &mut GroupFixture, data: &[u8]) {
    let config = GroupConfig::default();
    let before = fixture.receiver.to_bytes();
    if let Ok(message) = GroupMessage::decode(data) {
        match fixture.receiver.decrypt(&config, &message) {
            Ok(_) => assert_ne!(*before, *fixture.receiver.to_bytes()),
            Err(_) => assert_eq!(*before, *fixture.receiver.to_bytes(), "state changed"),
        }
    } else if let Ok(d) = SenderKeyDistribution::from_bytes(data)
        && fixture.receiver.process_distribution(&config, &d).is_err()
    {
        assert_eq!(*before, *fixture.receiver.to_bytes(), "state changed");
    }
}

/// A fixed pair of established sessions plus Bob's prekeys, the same on every call.
#[derive(Clone)]
pub struct Fixture {
    /// Alice's identity.
    pub alice: IdentityKeyPair,
    /// Bob's identity.
    pub bob: IdentityKeyPair,
    /// Bob's prekey store after accepting Alice's session.
    pub bob_store: PreKeyStore,
    /// Alice's session with Bob.
    pub alice_session: Session,
    /// Bob's session with Alice.
    pub bob_session: Session,
    /// Messages Alice sent that Bob has not received yet (one pre-key message, then ratchet
    /// messages after Bob's reply).
    pub in_flight: Vec<Vec<u8>>,
}

impl Fixture {
    /// Builds the fixture deterministically.
    pub fn new() -> Self {
        let rng = &mut SeededRng::from_label("ratchetry fuzz fixture");
        let alice = IdentityKeyPair::generate(rng);
        let bob = IdentityKeyPair::generate(rng);
        let mut bob_store = PreKeyStore::new(rng, &bob, Timestamp(0), PreKeyStoreConfig::default());
        bob_store.generate_one_time_prekeys(rng, 2);
        let config = SessionConfig::default();
        let run = || -> crate::Result<Self> {
            let bundle = bob_store
                .bundle(&bob, Some(OneTimePreKeyId(1)), None)
                .verify()?;
            let mut alice_session = Session::initiate(rng, &alice, &bundle, config)?;
            let first = alice_session.encrypt(rng, b"first")?;
            let unanswered = alice_session.encrypt(rng, b"unanswered pre-key")?;
            let IncomingMessage::PreKey(pk) = IncomingMessage::decode(&first)? else {
                return Err(crate::RatchetError::WrongSession.into());
            };
            let mut bob_store = bob_store.clone();
            let (mut bob_session, _) = Session::accept(&bob, &mut bob_store, &pk, config)?;
            let reply = bob_session.encrypt(rng, b"reply")?;
            alice_session.decrypt(&IncomingMessage::decode(&reply)?)?;
            let mut in_flight = alloc::vec![unanswered];
            for i in 0..3u8 {
                in_flight.push(alice_session.encrypt(rng, &[i; 40])?);
            }
            Ok(Self {
                alice,
                bob,
                bob_store,
                alice_session,
                bob_session,
                in_flight,
            })
        };
        match run() {
            Ok(f) => f,
            Err(e) => panic!("fixture construction failed: {e}"),
        }
    }
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}

/// Session decrypt of arbitrary bytes: a refused message leaves the session byte-identical; an
/// accepted one changes it.
pub fn decrypt(fixture: &mut Fixture, data: &[u8]) {
    let Ok(message) = IncomingMessage::decode(data) else {
        return;
    };
    let before = fixture.bob_session.to_bytes();
    match fixture.bob_session.decrypt(&message) {
        Ok(_) => assert_ne!(*before, *fixture.bob_session.to_bytes()),
        Err(_) => assert_eq!(*before, *fixture.bob_session.to_bytes(), "state changed"),
    }
}

/// Accepting arbitrary pre-key messages: a refusal leaves the store byte-identical.
pub fn accept(fixture: &mut Fixture, data: &[u8]) {
    let Ok(IncomingMessage::PreKey(message)) = IncomingMessage::decode(data) else {
        return;
    };
    let before = fixture.bob_store.to_bytes();
    let result = Session::accept(
        &fixture.bob,
        &mut fixture.bob_store,
        &message,
        SessionConfig::default(),
    );
    if result.is_err() {
        assert_eq!(*before, *fixture.bob_store.to_bytes(), "store changed");
    }
}

/// A responder's post-quantum ratchet 150 messages into a lossless conversation: mid-epoch,
/// with partial collectors. Built once per fuzzing process (it takes a few key generations).
#[derive(Clone)]
pub struct PqChunksFixture(crate::ratchet::pq::PqRatchet);

impl PqChunksFixture {
    /// Builds the fixture deterministically.
    pub fn new() -> Self {
        let mut link = super::pq::PqLink::new([0x51; 32]);
        for i in 0..150 {
            let m = link.send(i % 2 == 0);
            let _ = link.deliver(&m);
        }
        Self(link.responder().clone())
    }
}

impl Default for PqChunksFixture {
    fn default() -> Self {
        Self::new()
    }
}

/// The post-quantum ratchet alone taking in arbitrary extensions as if authenticated:
/// 36-byte records, the first byte a chain epoch to read them under (its two low bits: 0 to 3
/// above the receiving chain's; its top bit: as the first message of a restored peer's renewed
/// chain, after PeerRestored), the second a length `n ≤ 34`, then the extension's `n` bytes.
/// It must not panic; its state must stay encodable and decode to itself; its epoch must never
/// go backwards.
pub fn pq_chunks(fixture: &mut PqChunksFixture, data: &[u8]) {
    use crate::ratchet::pq::{Extension, PqRatchet};
    use crate::wire::{Reader, SecretBuf};

    let pq = &mut fixture.0;
    for record in data.chunks(36) {
        let [relative, len, rest @ ..] = record else {
            break;
        };
        let bytes = &rest[..usize::from(*len).min(rest.len())];
        let Ok(ext) = Extension::decode(bytes) else {
            continue;
        };
        let before = pq.epoch;
        if relative & 0x80 != 0 {
            pq.peer_restored();
        }
        let c = pq.recv_chain.saturating_add(u32::from(*relative % 4));
        pq.receive(c, &ext);
        assert!(pq.epoch >= before, "the epoch went backwards");
        let mut out = SecretBuf::with_capacity(0);
        pq.write(&mut out);
        let out = out.into_inner();
        let mut r = Reader::new(&out);
        let back = PqRatchet::read(&mut r, pq.initiator).map(|p| (p, r.finish()));
        match back {
            Ok((back, Ok(()))) => {
                let mut again = SecretBuf::with_capacity(0);
                back.write(&mut again);
                assert_eq!(*out, *again.into_inner(), "the state did not round-trip");
            }
            other => panic!("the state did not decode: {:?}", other.err()),
        }
    }
}

/// A pair of sessions that run the post-quantum ratchet, mid-epoch.
#[derive(Clone)]
pub struct PqFixture {
    /// The sender, which seals whatever extension the input says.
    pub alice: Session,
    /// The receiver under test.
    pub bob: Session,
}

impl PqFixture {
    /// Builds the fixture deterministically (120 messages into a conversation).
    pub fn new() -> Self {
        let rng = &mut SeededRng::from_label("ratchetry pq fuzz fixture");
        let alice = IdentityKeyPair::generate(rng);
        let bob = IdentityKeyPair::generate(rng);
        let mut store = PreKeyStore::new(rng, &bob, Timestamp(0), PreKeyStoreConfig::default());
        let mut run = || -> crate::Result<Self> {
            let kem = store.generate_one_time_kem_prekeys(rng, &bob, Timestamp(0), 1)[0].id;
            let bundle = store.bundle(&bob, None, Some(kem)).verify()?;
            let mut a = Session::initiate(rng, &alice, &bundle, SessionConfig::default())?;
            let first = a.encrypt(rng, b"first")?;
            let IncomingMessage::PreKey(pk) = IncomingMessage::decode(&first)? else {
                return Err(crate::RatchetError::WrongSession.into());
            };
            let (mut b, _) = Session::accept(&bob, &mut store, &pk, SessionConfig::default())?;
            for _ in 0..60 {
                let w = b.encrypt(rng, b"b")?;
                a.decrypt(&IncomingMessage::decode(&w)?)?;
                let w = a.encrypt(rng, b"a")?;
                b.decrypt(&IncomingMessage::decode(&w)?)?;
            }
            Ok(Self { alice: a, bob: b })
        };
        match run() {
            Ok(f) => f,
            Err(e) => panic!("fixture construction failed: {e}"),
        }
    }
}

impl Default for PqFixture {
    fn default() -> Self {
        Self::new()
    }
}

/// A session with the post-quantum ratchet receiving: the first byte picks raw bytes (the rest
/// is one message) or authenticated messages whose extensions the input chooses (records of a
/// length byte and up to 34 bytes, each sealed by the peer and received in turn). A refused
/// message leaves the receiver byte-identical; after an accepted one its state decodes to
/// itself.
pub fn pq_receive(fixture: &mut PqFixture, data: &[u8]) {
    let rng = &mut SeededRng::from_label("pq receive");
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let messages: Vec<Vec<u8>> = if mode % 2 == 0 {
        alloc::vec![rest.to_vec()]
    } else {
        rest.chunks(35)
            .filter_map(|r| {
                let (&len, ext) = r.split_first()?;
                let ext = &ext[..usize::from(len).min(ext.len())];
                fixture.alice.encrypt_with_extension(rng, b"fuzz", ext).ok()
            })
            .collect()
    };
    for m in messages {
        let Ok(message) = IncomingMessage::decode(&m) else {
            continue;
        };
        let before = fixture.bob.to_bytes();
        match fixture.bob.decrypt(&message) {
            Ok(_) => {
                let after = fixture.bob.to_bytes();
                let back = Session::from_bytes(&after).map(|s| s.to_bytes().to_vec());
                assert_eq!(back, Ok(after.to_vec()), "state did not round-trip");
            }
            Err(_) => assert_eq!(*before, *fixture.bob.to_bytes(), "state changed"),
        }
    }
}
