//! Review 48: `ratchetry-sqlite` attacked over a device's life, as sequences of public-API
//! operations and of what someone who can write the files (a backup tool, a thief, another
//! app) does to them: a crash at every point around a unit (before the write, in a dropped
//! transaction whose epoch the app kept, after the commit with or without the epoch kept);
//! the database file copied with and without its `-wal`/`-shm` at many moments, mixed across
//! moments and across a `reset`, torn and bit-flipped below SQLite, and opened with `load`,
//! `load(0)` and `load_restored`; every single row and pairs of rows deleted, put back, added
//! back, moved and swapped; rows, meta and digest-key rows spliced from another database under
//! the same key; cells of the wrong SQLite type, a table rebuilt without its key, a view,
//! triggers planted in the file; `reset` with a handle opened before it, an old copy and old
//! rows put back; a relinked device's database and a forked copy of this one put in place;
//! restores at extreme clocks and epochs; and loads compared byte for byte with the state
//! written across group sends, retries, a linked companion's history offer, restores of older
//! copies, a primary's resync, a long conversation with restarts and random lives with a
//! replaying relay, the peer checked to read every message exactly once.
//!
//! Found (ignored tests assert the correct behaviour; run with `--ignored` to see them fail):
//!
//! - **low** `a_database_of_another_device_under_the_same_key_is_not_loaded_as_this_one`: the
//!   crate docs say "a device that links again (a new identity, its epochs from the start), or
//!   another account, starts in a database of its own or after [`reset`] under a **new**
//!   storage key", and `reset` that "the storage key is what binds a database to one device".
//!   A relinked device started in "a database of its own" under the key the app already keeps
//!   (the wording allows it; only the reset path names a new key) is not bound to it: the old
//!   device's database put in its place opens, and loads with the new device's `last_epoch`
//!   (epochs "from the start" are below the old ones): the app runs the old identity and its
//!   primary as this device, no error. Nothing in the meta row names the device. Say a new
//!   key per database, or bind the meta row to the device (its identity, or a database id the
//!   app keeps beside `last_epoch`).
//! - **low** `a_forked_copy_of_the_database_that_ran_ahead_is_not_loaded_over_the_original`:
//!   the same root with this device's own state. A copy of its files (the key with them) runs
//!   on as a second live copy in a database of its own until its epoch passes the original's;
//!   put in the original's place it loads over the original's `last_epoch` ("a snapshot older
//!   than that is refused": it is not older) and without `AnotherCopy` (which catches only
//!   units written into one store), and a message the original read since the fork is read
//!   again. Partly the app's duty ("keep one live copy of a state at a time").
//! - **low** `a_reset_under_the_current_key_is_refused_even_without_the_digest_key_row`:
//!   "The old key is [`StoreError::SameStorageKey`], nothing deleted", so that "a copy of the
//!   file from before the reset, put back" does not open. `reset` decides it by opening the
//!   digest-key row in the file rather than comparing with the key the store holds: once
//!   someone who can write the file deleted that row (while the app runs), `reset(current
//!   key)` goes through and the copy from before it opens under the key and loads. Fixed at
//!   stop 46: `reset` also compares the new key with the key the store holds.
//!
//! The first two are known limits (SECURITY.md, "What the embedding app must do"): a new
//! storage key for every device a database holds, and one live copy of a state.
//!
//! Held:
//!
//! - crashes: a dropped transaction whose `Written::epoch` the app kept is `StaleSnapshot`,
//!   `load_restored` continues, and the redelivered message is read once (through a retry:
//!   the restore dropped a session that never heard back); at every crash point around a
//!   receive and a send nothing is lost or read twice, a redelivery after the commit is
//!   `Duplicate`, a resent body's reused counter is never read
//!   (`an_epoch_kept_from_a_dropped_transaction_is_stale_and_a_restore_reads_once`,
//!   `a_crash_at_every_point_around_a_unit_loses_nothing_and_reads_nothing_twice`);
//! - file copies: 616 mixes of a main file, WAL and `-shm` (none, the WAL's moment's or the
//!   main file's) of 14 moments (around `RESTART` and `TRUNCATE` checkpoints and a primary
//!   unit) each load a state that was written
//!   (`load(0)`), exactly the last or `StaleSnapshot` (`load(last)`), an empty database only
//!   as `StaleSnapshot { stored_epoch: None }`, or a typed error; whole copies restore, write
//!   and reload as written; mixes across a `reset` never load the other key's device; a WAL
//!   cut or flipped and a main file flipped (sampled) load a written state or a typed error
//!   (`file_copies_of_any_moments_load_a_written_state_or_a_typed_error`,
//!   `files_mixed_across_a_reset_never_load_the_other_devices_state`,
//!   `torn_or_flipped_bytes_below_sqlite_load_a_written_state_or_a_typed_error`);
//! - the summary: every one of 24 rows deleted (`RecordMissing` of it), put back to its older
//!   copy (`RecordReplaced` of it), moved to the other slot or swapped (`RecordDoesNotOpen`),
//!   a deleted row added back (`RecordAdded` of it), the old meta row (`MetaRolledBack`),
//!   pairs of changes (refused); rows of another database under the same key, alone or with
//!   its meta and digest-key rows, refused
//!   (`every_single_row_changed_is_refused_by_name_and_pairs_are_refused`,
//!   `rows_of_another_database_under_the_same_key_are_refused`);
//! - bad input: cells of the wrong type, TEXT twins of keys, slots as BLOB or upper case, a
//!   device value as the previous version's blob, keys lengthened, a table without its key
//!   holding a row twice or thrice, the table dropped: typed errors, never a panic; a view
//!   showing the same rows loads the same state; triggers that freeze the table or keep rows
//!   through `reset` are refused at the next load or write; `load_restored` and
//!   `load_primary_restored` at clocks 0 and `u64::MAX` and kept epochs up to `u64::MAX`
//!   never panic and write and reload as written
//!   (`cells_of_the_wrong_type_or_a_rebuilt_table_are_typed_errors`,
//!   `triggers_planted_in_the_file_never_load_a_state_not_written`,
//!   `restores_at_extreme_clocks_and_epochs_never_panic`);
//! - `reset`: only the new digest-key row is left; the old key, the old rows and meta row
//!   spliced in and an old copy of the files never load the old device; an old `last_epoch`
//!   kept by mistake is `StaleSnapshot`; the device written after it loads exactly. (Note: a
//!   handle opened before the reset still holds the old key, and a whole-state unit of the old
//!   device written through it is accepted into the emptied file; the new key then refuses
//!   to load or write, `MetaDoesNotOpen`, until another reset: never loaded, but the new
//!   device is blocked. Close every handle before a reset.)
//!   (`after_a_reset_nothing_of_the_old_device_loads`);
//! - a primary put back to a copy before its last renewal: `StaleSnapshot`, then
//!   `load_primary_restored` signs nothing until it resyncs, and resynced from the older or
//!   the newest list it signs past the lost version, which the contact follows without an
//!   alarm; the device in the same file loads as it was
//!   (`a_primary_put_back_to_an_older_copy_resyncs_past_the_lost_list`);
//! - restores: an older copy put back is `StaleSnapshot`; `load_restored` (epoch kept or not)
//!   sends on new chains, the peer reads each message once and every replay is `Duplicate`
//!   across his restart, and the device the restore replaced cannot write over it; a renewed
//!   chain the peer cannot open (it never read the backup's chain: PROTOCOL.md 8.5) is
//!   replaced by one retry and read once
//!   (`a_restored_old_copy_sends_again_and_the_peer_reads_every_message_once`,
//!   `a_device_and_its_primary_load_as_written_across_groups_a_retry_and_restores`);
//! - loads equal what was written (`to_bytes`), device and primary, after every unit of: group
//!   sends both ways, a tampered envelope asked again and answered (the genuine copy then
//!   `Duplicate` after a restart), an older copy restored, its own list renewed, its group
//!   set again, a primary loaded as restored and resynced; a companion linked (invite,
//!   approve, confirm) and its history offer read (group installed), a group message read on
//!   both devices and replays refused; 60 rounds with bursts read out of order, group
//!   messages, prekey rotation and restarts (the post-quantum ratchet's epoch turning); random
//!   lives with a reordering, replaying relay, retries, crashes, backups and restores, where
//!   the never-restored peer reads nothing twice
//!   (`a_linked_companion_and_its_history_offer_load_as_written`,
//!   `a_long_conversation_with_restarts_loads_as_written_at_every_unit`,
//!   `random_lives_with_crashes_and_restores_load_as_written_and_read_once`).
//!
//! [`reset`]: ratchetry_sqlite::SqliteStore::reset
//! [`StoreError::SameStorageKey`]: ratchetry_sqlite::StoreError::SameStorageKey

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests: a failed step fails the test"
)]

mod support;

use std::fs;
use std::path::{Path, PathBuf};

use ratchetry::devices::{LinkRequest, ListLimits, Primary, complete_link};
use ratchetry::fanout::{Device, DeviceConfig, MessageId, Outbox, Outgoing, Received, RetryReason};
use ratchetry::group::GroupId;
use ratchetry::persist::StorageKey;
use ratchetry::testing::SeededRng;
use ratchetry::{Error, FanoutError, IdentityKeyPair, Timestamp};
use ratchetry_sqlite::{RecordId, SqliteStore, StoreError};
use rusqlite::Connection;
use support::{Person, T0, all_rows, envelope, from_alice, put, put_back, two};

/// A later moment: the restore's clock.
const T1: Timestamp = Timestamp(T0.0 + 60_000);
/// Later still.
const T2: Timestamp = Timestamp(T0.0 + 120_000);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The database's `-wal` or `-shm` file.
fn side(path: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", path.display()))
}

/// The database's files as they are on disk at this moment.
#[derive(Clone)]
struct Files {
    main: Vec<u8>,
    wal: Option<Vec<u8>>,
    shm: Option<Vec<u8>>,
}

fn grab(path: &Path) -> Files {
    Files {
        main: fs::read(path).unwrap(),
        wal: fs::read(side(path, "-wal")).ok(),
        shm: fs::read(side(path, "-shm")).ok(),
    }
}

/// Puts files at `path` (removing any `-wal`/`-shm` there first).
fn lay(path: &Path, main: &[u8], wal: Option<&[u8]>, shm: Option<&[u8]>) {
    for suffix in ["-wal", "-shm"] {
        let _ = fs::remove_file(side(path, suffix));
    }
    fs::write(path, main).unwrap();
    if let Some(wal) = wal {
        fs::write(side(path, "-wal"), wal).unwrap();
    }
    if let Some(shm) = shm {
        fs::write(side(path, "-shm"), shm).unwrap();
    }
}

/// `person`'s app stops, its files are put back to `files` as `name` (with their WAL and
/// `-shm` as taken), and it opens them again.
fn reopen_as(person: &mut Person, dir: &Path, name: &str, files: &Files) {
    drop(std::mem::replace(
        &mut person.store,
        SqliteStore::open(dir.join("placeholder.db"), person.key.clone()).unwrap(),
    ));
    person.path = dir.join(name);
    lay(
        &person.path,
        &files.main,
        files.wal.as_deref(),
        files.shm.as_deref(),
    );
    person.store = SqliteStore::open(&person.path, person.key.clone()).unwrap();
}

/// Runs a WAL checkpoint of the given mode on a connection.
fn checkpoint(db: &Connection, mode: &str) {
    let _: i64 = db
        .query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| r.get(0))
        .unwrap();
}

/// Opens the database at `path` and loads the device with `last`: its bytes, or the error.
fn load_bytes(path: &Path, key: &StorageKey, last: u64) -> Result<Option<Vec<u8>>, StoreError> {
    let store = SqliteStore::open(path, key.clone())?;
    Ok(store.load(last)?.map(|d| d.to_bytes().to_vec()))
}

/// Opens the database at `path` and loads the primary with `last`: its bytes, or the error.
fn load_primary_bytes(
    path: &Path,
    key: &StorageKey,
    last: u64,
) -> Result<Option<Vec<u8>>, StoreError> {
    let store = SqliteStore::open(path, key.clone())?;
    Ok(store.load_primary(last)?.map(|p| p.to_bytes().to_vec()))
}

/// The app restarts: what it loads, device and primary, equals what it wrote.
fn check(p: &Person, step: &str) {
    let store = SqliteStore::open(&p.path, p.key.clone()).unwrap();
    let device = store
        .load(p.last_epoch)
        .unwrap_or_else(|e| panic!("{step}: device load refused: {e}"))
        .unwrap();
    assert!(
        *device.to_bytes() == *p.device.to_bytes(),
        "{step}: the device loaded differs from the one written"
    );
    let primary = store
        .load_primary(p.primary_epoch)
        .unwrap_or_else(|e| panic!("{step}: primary load refused: {e}"))
        .unwrap();
    assert!(
        *primary.to_bytes() == *p.primary.to_bytes(),
        "{step}: the primary loaded differs from the one written"
    );
}

/// Runs a send operation until its outbox is ready (fetching lists and bundles from `peer`
/// and the own primary), and writes the unit before the envelopes leave.
fn ready(
    p: &mut Person,
    rng: &mut SeededRng,
    now: Timestamp,
    peer: &Person,
    op: impl FnMut(&mut Device, &mut SeededRng) -> Result<Outgoing, Error>,
) -> Outbox {
    ready_among(p, rng, now, &[peer], op)
}

/// [`ready`], with lists and bundles from any of `peers`.
fn ready_among(
    p: &mut Person,
    rng: &mut SeededRng,
    now: Timestamp,
    peers: &[&Person],
    mut op: impl FnMut(&mut Device, &mut SeededRng) -> Result<Outgoing, Error>,
) -> Outbox {
    for _ in 0..8 {
        match op(&mut p.device, rng).unwrap() {
            Outgoing::Ready(outbox) => {
                p.persist();
                return outbox;
            }
            Outgoing::NeedDeviceLists(accounts) => {
                for account in accounts {
                    let list = if account == p.primary.account() {
                        p.primary.device_list().signed().clone()
                    } else {
                        let peer = peers
                            .iter()
                            .find(|q| q.primary.account() == account)
                            .unwrap();
                        peer.primary.device_list().signed().clone()
                    };
                    p.device.update_device_list(now, &account, list).unwrap();
                }
            }
            Outgoing::NeedBundles(missing) => {
                let bundles: Vec<_> = missing
                    .into_iter()
                    .map(|a| {
                        let peer = peers.iter().find(|q| q.device.address() == a).unwrap();
                        (a, peer.device.bundle(None, None))
                    })
                    .collect();
                p.device.start_sessions(rng, now, &bundles).unwrap();
            }
        }
    }
    panic!("the send never got ready");
}

/// Reads an envelope from `from`, following `from`'s and the own account's lists if asked;
/// writes nothing.
fn read(p: &mut Person, now: Timestamp, from: &Person, envelope: &[u8]) -> Result<Received, Error> {
    let mut result = p.device.receive(now, envelope);
    for _ in 0..3 {
        if !matches!(
            result,
            Err(Error::Fanout(
                FanoutError::UnknownAccount(_) | FanoutError::DeviceListsDiverge { .. }
            ))
        ) {
            break;
        }
        let theirs = from.primary.device_list().signed().clone();
        let _ = p
            .device
            .update_device_list(now, &from.primary.account(), theirs);
        let own = p.primary.device_list().signed().clone();
        let _ = p.device.update_device_list(now, &p.primary.account(), own);
        result = p.device.receive(now, envelope);
    }
    result
}

/// Reads and writes the unit; the body and message id of a direct or group message.
fn take(p: &mut Person, now: Timestamp, from: &Person, envelope: &[u8]) -> (Vec<u8>, MessageId) {
    let received = read(p, now, from, envelope).unwrap();
    p.persist();
    match received {
        Received::Direct { body, id, .. } | Received::Group { body, id, .. } => (body, id),
        other => panic!("not a message: {other:?}"),
    }
}

/// `to` reads `sealed` from `from` (who sent `body` in it) and writes the unit; if it cannot
/// read it, it asks again (`reason`) and `from` answers from the body it kept. The body read.
fn deliver(
    rng: &mut SeededRng,
    to: &mut Person,
    from: &mut Person,
    now: Timestamp,
    sealed: &[u8],
    body: &[u8],
    reason: RetryReason,
) -> Vec<u8> {
    if let Ok(Received::Direct { body, .. }) = read(to, now, from, sealed) {
        to.persist();
        return body;
    }
    let (_, request) = to.device.request_retry(rng, now, sealed, reason).unwrap();
    to.persist();
    let Received::RetryRequest(request) = read(from, now, to, &request).unwrap() else {
        panic!("not a retry request")
    };
    from.persist();
    let answer = ready(from, rng, now, to, |d, r| {
        d.answer_retry(r, now, &request, body)
    });
    let (read_body, _) = take(to, now, from, &envelope(&answer));
    read_body
}

fn is_duplicate(r: &Result<Received, Error>) -> bool {
    matches!(r, Err(Error::Fanout(FanoutError::Duplicate { .. })))
}

/// Hex of a key, for SQL literals.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------------------------
// Crashes around a unit and the epoch kept outside
// ---------------------------------------------------------------------------------------------

/// Bob's message reaches Alice. (a) Her app writes the unit in a transaction, keeps the epoch
/// `write` returned *before* committing, and crashes: the transaction is dropped. The store
/// holds the previous state, older than the epoch kept: `StaleSnapshot`, and `load_restored`
/// continues; the relay delivers again (not acknowledged) and she reads the message once.
/// (b) The other order: the unit is committed but the app crashes before keeping its epoch.
/// The store loads the written state with the older epoch, and the redelivery is `Duplicate`.
#[test]
fn an_epoch_kept_from_a_dropped_transaction_is_stale_and_a_restore_reads_once() {
    let (mut rng, mut alice, mut bob, _dir) = two("review 48: dropped transaction");
    let from_bob = envelope(&bob.send(&mut rng, T0, &alice, b"hi Alice"));

    // (a) The epoch kept from a transaction that never committed.
    assert!(read(&mut alice, T0, &bob, &from_bob).is_ok());
    let unit = alice.device.take_changes(&mut ratchetry::os_rng());
    {
        let mut tx = alice.store.transaction().unwrap();
        alice.last_epoch = tx.write(&unit).unwrap().epoch;
        // Crash: dropped without commit.
    }
    let store = SqliteStore::open(&alice.path, alice.key.clone()).unwrap();
    match store.load(alice.last_epoch) {
        Err(StoreError::StaleSnapshot {
            stored_epoch: Some(stored),
            last_epoch,
            ..
        }) => assert!(stored < last_epoch),
        other => panic!("expected StaleSnapshot, got {other:?}"),
    }
    let mut device = store.load_restored(alice.last_epoch, T1).unwrap();
    assert!(device.state_epoch() > alice.last_epoch);
    let unit = device.take_changes(&mut ratchetry::os_rng());
    assert!(unit.replaces_all());
    alice.last_epoch = alice.store.write(&unit).unwrap().epoch;
    alice.device = device;
    check(&alice, "restored after the dropped transaction");
    // The relay delivers again what was not acknowledged. The restore dropped Alice's
    // session with Bob (it never heard back in the state stored), so she asks again and Bob
    // answers from the body he kept: read once.
    let body = deliver(
        &mut rng,
        &mut alice,
        &mut bob,
        T1,
        &from_bob,
        b"hi Alice",
        RetryReason::RestoredFromBackup,
    );
    assert_eq!(body, b"hi Alice");
    assert!(is_duplicate(&read(&mut alice, T1, &bob, &from_bob)));
    check(&alice, "after the redelivery");

    // (b) Committed, the epoch not kept.
    let second = envelope(&bob.send(&mut rng, T1, &alice, b"again"));
    let (body, _) = take(&mut alice, T1, &bob, &second);
    assert_eq!(body, b"again");
    let kept = alice.last_epoch;
    let store = SqliteStore::open(&alice.path, alice.key.clone()).unwrap();
    // The app kept an epoch from before the last unit (it crashed before updating it).
    let older = kept - 1;
    let mut loaded = store.load(older).unwrap().unwrap();
    assert!(*loaded.to_bytes() == *alice.device.to_bytes());
    assert!(is_duplicate(&loaded.receive(T1, &second)));
}

/// Where the app crashes around one operation's unit.
#[derive(Clone, Copy, Debug)]
enum Crash {
    /// After the operation, before the unit's write.
    BeforeWrite,
    /// The unit written in a transaction that is dropped (never committed).
    DroppedTransaction,
    /// The unit committed; the app never kept its epoch.
    CommittedEpochNotKept,
    /// The unit committed and its epoch kept; the output never left.
    CommittedOutputNotSent,
}

const CRASHES: [Crash; 4] = [
    Crash::BeforeWrite,
    Crash::DroppedTransaction,
    Crash::CommittedEpochNotKept,
    Crash::CommittedOutputNotSent,
];

impl Crash {
    fn committed(self) -> bool {
        matches!(
            self,
            Self::CommittedEpochNotKept | Self::CommittedOutputNotSent
        )
    }

    /// Takes the device's unit and crashes as said; the app then starts again from its store
    /// (`load(last)`, or `load_restored` if that is stale) with the epoch it kept.
    fn hit(self, p: &mut Person) {
        let unit = p.device.take_changes(&mut ratchetry::os_rng());
        match self {
            Self::BeforeWrite => {}
            Self::DroppedTransaction => {
                let mut tx = p.store.transaction().unwrap();
                tx.write(&unit).unwrap();
            }
            Self::CommittedEpochNotKept => {
                p.store.write(&unit).unwrap();
            }
            Self::CommittedOutputNotSent => {
                p.last_epoch = p.store.write(&unit).unwrap().epoch;
            }
        }
        p.store = SqliteStore::open(&p.path, p.key.clone()).unwrap();
        p.device = match p.store.load(p.last_epoch) {
            Ok(Some(device)) => device,
            other => panic!("{self:?}: {other:?}"),
        };
        // Whatever it loaded is what it goes on from: its next unit chains.
        assert!(!p.device.has_changes());
    }
}

/// A crash at every point around a receive and around a send: before the write, in a
/// transaction never committed, after the commit without the epoch kept, after the commit
/// before the output left. The app restarts from its store with the epoch it kept; the relay
/// delivers again what was not acknowledged; the app sends again a body whose outbox never
/// left. Every message is read exactly once (a redelivery after the commit is `Duplicate`),
/// the conversation goes on both ways, and both stores load as written.
#[test]
fn a_crash_at_every_point_around_a_unit_loses_nothing_and_reads_nothing_twice() {
    for crash in CRASHES {
        // Around a receive.
        let (mut rng, mut alice, mut bob, _dir) =
            two(&format!("review 48: crash {crash:?} receive"));
        let ping = envelope(&bob.send(&mut rng, T0, &alice, b"ping"));
        let (body, _) = match read(&mut alice, T0, &bob, &ping).unwrap() {
            Received::Direct { body, id, .. } => (body, id),
            other => panic!("{other:?}"),
        };
        assert_eq!(body, b"ping");
        crash.hit(&mut alice);
        let again = read(&mut alice, T0, &bob, &ping);
        if crash.committed() {
            assert!(is_duplicate(&again), "{crash:?}: {again:?}");
        } else {
            assert!(
                matches!(&again, Ok(Received::Direct { body, .. }) if body == b"ping"),
                "{crash:?}: {again:?}"
            );
            alice.persist();
            assert!(is_duplicate(&read(&mut alice, T0, &bob, &ping)));
        }
        let pong = envelope(&alice.send(&mut rng, T0, &bob, b"pong"));
        assert_eq!(take(&mut bob, T0, &alice, &pong).0, b"pong");
        let more = envelope(&bob.send(&mut rng, T0, &alice, b"more"));
        assert_eq!(take(&mut alice, T0, &bob, &more).0, b"more");
        check(&alice, "after the receive crash");
        check(&bob, "the peer");

        // Around a send.
        let (mut rng, mut alice, mut bob, _dir) = two(&format!("review 48: crash {crash:?} send"));
        let Outgoing::Ready(lost) = alice
            .device
            .send(&mut rng, T0, &bob.primary.account(), b"m")
            .unwrap()
        else {
            panic!("not ready")
        };
        crash.hit(&mut alice);
        // The outbox never left; the app sends the body again.
        let m = envelope(&alice.send(&mut rng, T0, &bob, b"m"));
        assert_eq!(take(&mut bob, T0, &alice, &m).0, b"m");
        assert!(is_duplicate(&read(&mut bob, T0, &alice, &m)));
        // Had the lost outbox left after all (an app that sent before its unit was
        // committed), its counter was used again by the resend: Bob does not read it. After a
        // commit it is another message, read at most once.
        let late = read(&mut bob, T0, &alice, &envelope(&lost));
        eprintln!("{crash:?}: the lost outbox at Bob: {late:?}");
        assert!(crash.committed() || late.is_err(), "{crash:?}: {late:?}");
        if late.is_ok() {
            bob.persist();
            assert!(read(&mut bob, T0, &alice, &envelope(&lost)).is_err());
        }
        let back = envelope(&bob.send(&mut rng, T0, &alice, b"back"));
        assert_eq!(take(&mut alice, T0, &bob, &back).0, b"back");
        let on = envelope(&alice.send(&mut rng, T0, &bob, b"on"));
        assert_eq!(take(&mut bob, T0, &alice, &on).0, b"on");
        check(&alice, "after the send crash");
        check(&bob, "the peer");
    }
}

/// A small deterministic generator for the random lives (the protocol's randomness stays the
/// seeded RNG's).
struct Dice(u64);

impl Dice {
    fn roll(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// What a delivery in a random life came to.
enum Delivery {
    /// A message read (its body).
    Read(Vec<u8>),
    /// The reader could not read it and asks again: the request to ship to the sender.
    Asked(Vec<u8>),
    /// A retry request, to answer from the bodies the reader's app kept.
    Request(ratchetry::fanout::RetryRequest),
    /// Nothing to show (a duplicate, a sender key, a refused envelope).
    Nothing,
}

/// `reader` receives `sealed` from `sender`, writes the unit, and asks again when it cannot
/// read a message (as the guide's table says).
fn deliver_once(
    reader: &mut Person,
    sender: &Person,
    rng: &mut SeededRng,
    now: Timestamp,
    sealed: &[u8],
) -> Delivery {
    let result = read(reader, now, sender, sealed);
    reader.persist();
    match result {
        Ok(Received::Direct { body, .. }) => Delivery::Read(body),
        Ok(Received::RetryRequest(request)) => Delivery::Request(request),
        Ok(_) | Err(Error::Fanout(FanoutError::Duplicate { .. })) => Delivery::Nothing,
        Err(e) => {
            let reason = match e {
                Error::Fanout(FanoutError::NoSession(_)) => RetryReason::NoSession,
                _ if reader.device.awaiting_own_list() => RetryReason::RestoredFromBackup,
                _ => RetryReason::AuthenticationFailed,
            };
            match reader.device.request_retry(rng, now, sealed, reason) {
                Ok((_, request)) => {
                    reader.persist();
                    Delivery::Asked(request)
                }
                Err(_) => {
                    reader.persist();
                    Delivery::Nothing
                }
            }
        }
    }
}

/// Random lives: Alice and Bob send, a relay delivers in any order and replays what it
/// delivered, a device that cannot read asks again and the sender answers from the bodies its
/// app kept, Alice's app crashes before committing, both restart, Alice's files are backed up
/// and put back (restored with `load_restored`). After every step both stores load as
/// written; Bob (never restored) never reads a message twice, and Alice reads a message twice
/// only if she read it after the backup she was put back to (the documented rollback of
/// replay protection).
#[test]
fn random_lives_with_crashes_and_restores_load_as_written_and_read_once() {
    use std::collections::{BTreeMap, BTreeSet};
    for seed in 1..=4u64 {
        let label = format!("review 48: random life {seed}");
        let (mut rng, mut alice, mut bob, dir) = two(&label);
        let mut dice = Dice(0x9e37_79b9_7f4a_7c15 ^ seed);
        let (a, b) = (alice.primary.account(), bob.primary.account());
        let (mut to_bob, mut to_alice): (Vec<Vec<u8>>, Vec<Vec<u8>>) = (Vec::new(), Vec::new());
        let (mut delivered_to_bob, mut delivered_to_alice): (Vec<Vec<u8>>, Vec<Vec<u8>>) =
            (Vec::new(), Vec::new());
        let (mut alice_sent, mut bob_sent) = (BTreeMap::new(), BTreeMap::new());
        let mut bob_read = BTreeSet::new();
        // Alice's reads, with the step of each; a restore forgets those after its backup.
        let mut alice_read: Vec<(usize, Vec<u8>)> = Vec::new();
        let mut backups: Vec<(usize, Files)> = Vec::new();
        let (mut restores, mut answers) = (0, 0);
        for step in 0..150usize {
            let now = Timestamp(T0.0 + 1000 * step as u64);
            let at = format!("{label} step {step}");
            match dice.roll(13) {
                0 | 1 => {
                    let body = format!("a{seed}.{step}").into_bytes();
                    let outbox = ready(&mut alice, &mut rng, now, &bob, |d, r| {
                        d.send(r, now, &b, &body)
                    });
                    alice_sent.insert(outbox.send_id.unwrap().0, body);
                    to_bob.push(envelope(&outbox));
                }
                2 | 3 => {
                    let body = format!("b{seed}.{step}").into_bytes();
                    let outbox = ready(&mut bob, &mut rng, now, &alice, |d, r| {
                        d.send(r, now, &a, &body)
                    });
                    bob_sent.insert(outbox.send_id.unwrap().0, body);
                    to_alice.push(envelope(&outbox));
                }
                kind @ 4..=6 if !to_bob.is_empty() || !delivered_to_bob.is_empty() => {
                    // A queued envelope to Bob, or (6) a replay of one delivered.
                    let e = if (kind == 6 && !delivered_to_bob.is_empty()) || to_bob.is_empty() {
                        delivered_to_bob[dice.roll(delivered_to_bob.len())].clone()
                    } else {
                        let e = to_bob.remove(dice.roll(to_bob.len()));
                        delivered_to_bob.push(e.clone());
                        e
                    };
                    match deliver_once(&mut bob, &alice, &mut rng, now, &e) {
                        Delivery::Read(body) => {
                            assert!(
                                bob_read.insert(body.clone()),
                                "{at}: Bob read {body:?} twice"
                            );
                        }
                        Delivery::Asked(request) => to_alice.push(request),
                        Delivery::Request(request) => {
                            if let Some(body) = bob_sent.get(&request.send_id.0).cloned() {
                                answers += 1;
                                let answer = ready(&mut bob, &mut rng, now, &alice, |d, r| {
                                    d.answer_retry(r, now, &request, &body)
                                });
                                to_alice.push(envelope(&answer));
                            }
                        }
                        Delivery::Nothing => {}
                    }
                }
                kind @ 7..=9 if !to_alice.is_empty() || !delivered_to_alice.is_empty() => {
                    let e = if (kind == 9 && !delivered_to_alice.is_empty()) || to_alice.is_empty()
                    {
                        delivered_to_alice[dice.roll(delivered_to_alice.len())].clone()
                    } else {
                        let e = to_alice.remove(dice.roll(to_alice.len()));
                        delivered_to_alice.push(e.clone());
                        e
                    };
                    match deliver_once(&mut alice, &bob, &mut rng, now, &e) {
                        Delivery::Read(body) => {
                            assert!(
                                alice_read.iter().all(|(_, read)| *read != body),
                                "{at}: Alice read {body:?} twice"
                            );
                            alice_read.push((step, body));
                        }
                        Delivery::Asked(request) => to_bob.push(request),
                        Delivery::Request(request) => {
                            if let Some(body) = alice_sent.get(&request.send_id.0).cloned() {
                                answers += 1;
                                let answer = ready(&mut alice, &mut rng, now, &bob, |d, r| {
                                    d.answer_retry(r, now, &request, &body)
                                });
                                to_bob.push(envelope(&answer));
                            }
                        }
                        Delivery::Nothing => {}
                    }
                }
                10 if !to_alice.is_empty() => {
                    // Alice reads, and crashes before the commit: the envelope stays queued.
                    let e = to_alice[dice.roll(to_alice.len())].clone();
                    let _ = read(&mut alice, now, &bob, &e);
                    Crash::BeforeWrite.hit(&mut alice);
                }
                11 => {
                    checkpoint(alice.store.connection(), "PASSIVE");
                    backups.push((step, grab(&alice.path)));
                }
                12 if !backups.is_empty() && restores < 3 => {
                    restores += 1;
                    let (taken, files) = backups[dice.roll(backups.len())].clone();
                    reopen_as(&mut alice, dir.path(), &format!("alice-{step}.db"), &files);
                    alice.device = alice.store.load_restored(alice.last_epoch, now).unwrap();
                    alice.persist();
                    let own = alice.primary.device_list().signed().clone();
                    let _ = alice.device.update_device_list(now, &a, own);
                    alice.persist();
                    alice_read.retain(|(when, _)| *when <= taken);
                }
                _ => {
                    alice.restart();
                    bob.restart();
                }
            }
            check(&alice, &at);
            check(&bob, &at);
        }
        eprintln!(
            "{label}: Alice sent {}, Bob read {}; Bob sent {}, Alice read {}; {answers} answers, {restores} restores",
            alice_sent.len(),
            bob_read.len(),
            bob_sent.len(),
            alice_read.len()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// File copies
// ---------------------------------------------------------------------------------------------

/// Alice and Bob talk; after every unit Alice's files are copied as they are on disk, with
/// checkpoints (`RESTART`, `TRUNCATE`) between some units so that a WAL of one moment
/// applies to a main file of another. Every mix of a main file of one moment with no WAL or
/// the WAL (and the `-shm` or none) of any moment is opened: `load(0)` gives a device state
/// that was written (or a typed error), `load(last)` exactly the last or an error,
/// `load_primary(0)` a primary that was written, and a copy of one moment taken whole and
/// `load_restored` writes and loads again as written.
#[test]
fn file_copies_of_any_moments_load_a_written_state_or_a_typed_error() {
    let (mut rng, mut alice, mut bob, dir) = two("review 48: file copies");
    let mut states: Vec<(u64, Vec<u8>)> =
        vec![(alice.last_epoch, alice.device.to_bytes().to_vec())];
    let mut primaries: Vec<Vec<u8>> = vec![alice.primary.to_bytes().to_vec()];
    let mut moments = vec![grab(&alice.path)];
    for round in 0..4u8 {
        let to_bob = from_alice(&mut rng, &mut alice, &bob, &[b'a', round]);
        states.push((alice.last_epoch, alice.device.to_bytes().to_vec()));
        moments.push(grab(&alice.path));
        assert_eq!(bob.receive(T0, &alice, &to_bob), [b'a', round]);
        let back = envelope(&bob.send(&mut rng, T0, &alice, &[b'b', round]));
        assert_eq!(alice.receive(T0, &bob, &back), [b'b', round]);
        states.push((alice.last_epoch, alice.device.to_bytes().to_vec()));
        moments.push(grab(&alice.path));
        match round % 3 {
            0 => checkpoint(alice.store.connection(), "RESTART"),
            1 => checkpoint(alice.store.connection(), "TRUNCATE"),
            _ => {}
        }
        moments.push(grab(&alice.path));
    }
    // The primary renews its list (a primary unit) at the end.
    alice.primary.renew(T1).unwrap();
    alice.persist_primary();
    primaries.push(alice.primary.to_bytes().to_vec());
    moments.push(grab(&alice.path));
    let (last, last_state) = states.last().cloned().unwrap();

    let copy = dir.path().join("copy.db");
    let (mut loaded, mut refused) = (0, 0);
    for main in &moments {
        let wals: Vec<Option<&Files>> = std::iter::once(None)
            .chain(moments.iter().map(Some))
            .collect();
        for wal_from in wals {
            // The `-shm`: none, the WAL's moment's, or the main file's moment's.
            for shm_from in 0..3 {
                if shm_from == 1 && wal_from.is_none() {
                    continue;
                }
                let wal = wal_from.and_then(|f| f.wal.as_deref());
                let shm = match shm_from {
                    0 => None,
                    1 => wal_from.and_then(|f| f.shm.as_deref()),
                    _ => main.shm.as_deref(),
                };
                lay(&copy, &main.main, wal, shm);
                match load_bytes(&copy, &alice.key, 0) {
                    Ok(Some(bytes)) => {
                        loaded += 1;
                        let (epoch, _) = states
                            .iter()
                            .find(|(_, s)| *s == bytes)
                            .expect("load(0) gave a device state that was never written");
                        lay(&copy, &main.main, wal, shm);
                        match load_bytes(&copy, &alice.key, last) {
                            Ok(Some(now)) => assert!(now == last_state),
                            Err(StoreError::StaleSnapshot { .. }) => assert!(*epoch < last),
                            other => panic!("load(last) of a copy that loads: {other:?}"),
                        }
                    }
                    // A main file from before any checkpoint, without its WAL: an empty
                    // database (the app that keeps its epoch is told it is stale).
                    Ok(None) => {
                        lay(&copy, &main.main, wal, shm);
                        assert!(matches!(
                            load_bytes(&copy, &alice.key, last),
                            Err(StoreError::StaleSnapshot {
                                stored_epoch: None,
                                ..
                            })
                        ));
                        refused += 1;
                    }
                    Err(_) => refused += 1,
                }
                lay(&copy, &main.main, wal, shm);
                if let Ok(Some(bytes)) = load_primary_bytes(&copy, &alice.key, 0) {
                    assert!(primaries.contains(&bytes), "a primary never written loads");
                }
            }
        }
    }
    assert!(loaded > 0);
    eprintln!("file copies: {loaded} loaded, {refused} refused");

    // A copy of one moment, whole: a backup. `load` refuses it, `load_restored` continues,
    // writes at once, and loads again as written.
    for (i, files) in moments.iter().enumerate().step_by(3) {
        let path = dir.path().join(format!("backup-{i}.db"));
        lay(
            &path,
            &files.main,
            files.wal.as_deref(),
            files.shm.as_deref(),
        );
        let mut store = SqliteStore::open(&path, alice.key.clone()).unwrap();
        let stored = store.load(0).unwrap().unwrap();
        if stored.state_epoch() < last {
            assert!(matches!(
                store.load(last),
                Err(StoreError::StaleSnapshot { .. })
            ));
        }
        let mut restored = store.load_restored(last, T1).unwrap();
        assert!(restored.awaiting_own_list());
        let epoch = store
            .write(&restored.take_changes(&mut ratchetry::os_rng()))
            .unwrap()
            .epoch;
        assert!(epoch > last);
        let again = SqliteStore::open(&path, alice.key.clone())
            .unwrap()
            .load(epoch)
            .unwrap()
            .unwrap();
        assert!(*again.to_bytes() == *restored.to_bytes());
    }
}

// ---------------------------------------------------------------------------------------------
// Every single row, and pairs of rows
// ---------------------------------------------------------------------------------------------

/// The record a row of the table is, by slot.
fn record(slot: &str, key: &[u8]) -> RecordId {
    match slot {
        "device" => RecordId::Device(key.to_vec()),
        _ => RecordId::Primary(key.to_vec()),
    }
}

/// Over a device's life (a group set and forgotten, messages both ways, the primary renewed),
/// every row of the device and the primary is, one at a time: deleted (`RecordMissing` of
/// that row), put back to the older sealed copy an earlier copy of the file holds
/// (`RecordReplaced` of that row), moved to the other slot or swapped with another row
/// (`RecordDoesNotOpen`); every row the earlier copy holds that is gone now is put back
/// (`RecordAdded` of that row); the earlier meta row is put back alone (`MetaRolledBack`);
/// and pairs of those changes are refused (`RecordsMismatch` or a named one). The database is
/// put back after each and loads as written.
#[test]
fn every_single_row_changed_is_refused_by_name_and_pairs_are_refused() {
    let (mut rng, mut alice, mut bob, _dir) = two("review 48: every row");
    let (a, b) = (alice.primary.account(), bob.primary.account());
    let group = GroupId([7; 32]);
    alice.device.set_group_members(group, &[a, b]).unwrap();
    alice.persist();
    let e = from_alice(&mut rng, &mut alice, &bob, b"one");
    bob.receive(T0, &alice, &e);
    let back = envelope(&bob.send(&mut rng, T0, &alice, b"two"));
    alice.receive(T0, &bob, &back);
    let earlier = all_rows(&alice.raw());
    let e = from_alice(&mut rng, &mut alice, &bob, b"three");
    bob.receive(T0, &alice, &e);
    alice.device.forget_group(group);
    alice.persist();
    alice.primary.renew(T1).unwrap();
    alice.persist_primary();
    let now = all_rows(&alice.raw());
    let raw = alice.raw();
    let records: Vec<_> = now.iter().filter(|r| r.0 != "store").cloned().collect();
    let outcome = |raw: &Connection| -> Result<(), StoreError> {
        let store = SqliteStore::open(&alice.path, alice.key.clone())?;
        store.load(alice.last_epoch)?;
        store.load_primary(alice.primary_epoch)?;
        put_back(raw, &now);
        Ok(())
    };
    let named = |key: &[u8]| key.len() <= 78;
    let (mut replaced, mut added) = (0, 0);
    for (slot, key, value) in &records {
        let id = record(slot, key);
        // Deleted.
        raw.execute(
            "DELETE FROM ratchetry_rows WHERE slot = ?1 AND key = ?2",
            rusqlite::params![slot, key],
        )
        .unwrap();
        match outcome(&raw) {
            Err(StoreError::RecordMissing(r)) => assert_eq!(r, id),
            Err(StoreError::RecordsMismatch) if !named(key) => {}
            other => panic!("{id} deleted: {other:?}"),
        }
        put_back(&raw, &now);
        // Put back to its earlier sealed copy.
        if let Some((_, _, old)) = earlier
            .iter()
            .find(|r| r.0 == *slot && r.1 == *key && r.2 != *value)
        {
            replaced += 1;
            put(&raw, slot, key, old);
            match outcome(&raw) {
                Err(StoreError::RecordReplaced { record, .. }) => assert_eq!(record, id),
                Err(StoreError::RecordsMismatch) if !named(key) => {}
                other => panic!("{id} put back: {other:?}"),
            }
            put_back(&raw, &now);
        }
        // Moved to the other slot.
        let other_slot = if slot == "device" {
            "primary"
        } else {
            "device"
        };
        raw.execute(
            "DELETE FROM ratchetry_rows WHERE slot = ?1 AND key = ?2",
            rusqlite::params![slot, key],
        )
        .unwrap();
        put(&raw, other_slot, key, value);
        assert!(
            matches!(outcome(&raw), Err(StoreError::RecordDoesNotOpen(_))),
            "{id} moved"
        );
        put_back(&raw, &now);
    }
    // Rows the earlier copy holds that are gone now, put back.
    for (slot, key, value) in earlier.iter().filter(|r| r.0 != "store") {
        if now.iter().any(|r| r.0 == *slot && r.1 == *key) {
            continue;
        }
        added += 1;
        let id = record(slot, key);
        put(&raw, slot, key, value);
        match outcome(&raw) {
            Err(StoreError::RecordAdded(r)) => assert_eq!(r, id),
            Err(StoreError::RecordsMismatch) if !named(key) => {}
            other => panic!("{id} added back: {other:?}"),
        }
        put_back(&raw, &now);
    }
    assert!(
        replaced > 0 && added > 0,
        "replaced {replaced}, added {added}"
    );
    // The earlier meta row alone.
    let old_meta = earlier.iter().find(|r| r.1 == b"meta").unwrap();
    put(&raw, &old_meta.0, &old_meta.1, &old_meta.2);
    assert!(
        matches!(outcome(&raw), Err(StoreError::MetaRolledBack { .. })),
        "meta put back"
    );
    put_back(&raw, &now);
    // Values swapped between two rows, and pairs of changes.
    for pair in records.windows(2) {
        let [(s1, k1, v1), (s2, k2, v2)] = pair else {
            continue;
        };
        put(&raw, s1, k1, v2);
        put(&raw, s2, k2, v1);
        assert!(
            matches!(outcome(&raw), Err(StoreError::RecordDoesNotOpen(_))),
            "swapped"
        );
        put_back(&raw, &now);
        for (slot, key) in [(s1, k1), (s2, k2)] {
            raw.execute(
                "DELETE FROM ratchetry_rows WHERE slot = ?1 AND key = ?2",
                rusqlite::params![slot, key],
            )
            .unwrap();
        }
        assert!(outcome(&raw).is_err(), "two deleted");
        put_back(&raw, &now);
        // One deleted, the other put back to its earlier copy (or deleted too).
        raw.execute(
            "DELETE FROM ratchetry_rows WHERE slot = ?1 AND key = ?2",
            rusqlite::params![s1, k1],
        )
        .unwrap();
        if let Some((_, _, old)) = earlier.iter().find(|r| r.0 == *s2 && r.1 == *k2) {
            put(&raw, s2, k2, old);
        }
        assert!(outcome(&raw).is_err(), "one deleted, one put back");
        put_back(&raw, &now);
    }
    assert!(outcome(&raw).is_ok());
    check(&alice, "after every change was undone");
    eprintln!(
        "every row: {} rows, {replaced} put back, {added} added back",
        records.len()
    );
}

/// Power loss and bit rot below SQLite: the WAL cut at many byte offsets (a write torn before
/// its `fsync`), a byte of the WAL flipped, a byte of the main file flipped (sampled over the
/// whole file). Each copy loads a device state that was written (an older one when the cut or
/// flip drops commits: `load(last)` then says `StaleSnapshot`) or is refused with a typed
/// error; never a state not written, never a panic.
#[test]
fn torn_or_flipped_bytes_below_sqlite_load_a_written_state_or_a_typed_error() {
    let (mut rng, mut alice, mut bob, dir) = two("review 48: torn bytes");
    let mut states = vec![alice.device.to_bytes().to_vec()];
    checkpoint(alice.store.connection(), "TRUNCATE");
    for i in 0..3u8 {
        let e = from_alice(&mut rng, &mut alice, &bob, &[i]);
        states.push(alice.device.to_bytes().to_vec());
        bob.receive(T0, &alice, &e);
        let back = envelope(&bob.send(&mut rng, T0, &alice, &[i]));
        alice.receive(T0, &bob, &back);
        states.push(alice.device.to_bytes().to_vec());
    }
    let last = alice.last_epoch;
    let files = grab(&alice.path);
    let wal = files.wal.clone().unwrap();
    let copy = dir.path().join("torn.db");
    let judge = |what: &str, main: &[u8], wal: Option<&[u8]>| -> bool {
        lay(&copy, main, wal, None);
        let outcome = load_bytes(&copy, &alice.key, 0);
        match outcome {
            Ok(Some(bytes)) => {
                assert!(
                    states.contains(&bytes),
                    "{what}: a state never written loads"
                );
                lay(&copy, main, wal, None);
                match load_bytes(&copy, &alice.key, last) {
                    Ok(Some(now)) => assert!(now == *states.last().unwrap(), "{what}"),
                    Err(StoreError::StaleSnapshot { .. }) => {}
                    other => panic!("{what}: load(last) {other:?}"),
                }
                true
            }
            Ok(None) | Err(_) => false,
        }
    };
    let (mut loaded, mut refused) = (0, 0);
    // The WAL cut.
    let step = (wal.len() / 60).max(1);
    for cut in (0..wal.len()).step_by(step) {
        if judge(&format!("WAL cut at {cut}"), &files.main, Some(&wal[..cut])) {
            loaded += 1;
        } else {
            refused += 1;
        }
    }
    // A byte of the WAL flipped.
    for at in (0..wal.len()).step_by((wal.len() / 120).max(1)) {
        let mut flipped = wal.clone();
        flipped[at] ^= 0x5a;
        if judge(
            &format!("WAL byte {at} flipped"),
            &files.main,
            Some(&flipped),
        ) {
            loaded += 1;
        } else {
            refused += 1;
        }
    }
    // A byte of the main file flipped (after a checkpoint, the main file holds everything).
    checkpoint(alice.store.connection(), "TRUNCATE");
    let main = fs::read(&alice.path).unwrap();
    for at in (0..main.len()).step_by((main.len() / 400).max(1)) {
        let mut flipped = main.clone();
        flipped[at] ^= 0x01;
        if judge(&format!("main byte {at} flipped"), &flipped, None) {
            loaded += 1;
        } else {
            refused += 1;
        }
    }
    eprintln!("torn or flipped: {loaded} loaded a written state, {refused} refused");
}

// ---------------------------------------------------------------------------------------------
// Rows of another database under the same storage key
// ---------------------------------------------------------------------------------------------

/// Two phones whose apps use one storage key (two accounts in one app, say). Every row of the
/// second's database put into the first's, and the first's rows with the second's meta row,
/// digest key row, both, or all of its device or primary rows: each refused, none loads.
#[test]
fn rows_of_another_database_under_the_same_key_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = SeededRng::from_label("review 48: same key rows");
    let key = StorageKey::generate(&mut rng);
    let mut a = Person::with_key(&mut rng, dir.path(), "a", Some(key.clone()));
    let mut b = Person::with_key(&mut rng, dir.path(), "b", Some(key.clone()));
    for i in 0..2u8 {
        let e = envelope(&a.send(&mut rng, T0, &b, &[i]));
        b.receive(T0, &a, &e);
        let e = envelope(&b.send(&mut rng, T0, &a, &[i]));
        a.receive(T0, &b, &e);
    }
    checkpoint(a.store.connection(), "TRUNCATE");
    checkpoint(b.store.connection(), "TRUNCATE");
    let a_files = grab(&a.path);
    let a_rows = all_rows(&a.raw());
    let b_rows = all_rows(&b.raw());
    let copy = dir.path().join("spliced.db");
    let attempt = |what: &str, rows: &[&(String, Vec<u8>, Vec<u8>)], delete_slots: &[&str]| {
        let splice = || {
            lay(&copy, &a_files.main, None, None);
            let db = Connection::open(&copy).unwrap();
            for slot in delete_slots {
                db.execute("DELETE FROM ratchetry_rows WHERE slot = ?1", [slot])
                    .unwrap();
            }
            for (slot, k, v) in rows {
                put(&db, slot, k, v);
            }
        };
        splice();
        let device = load_bytes(&copy, &key, a.last_epoch);
        assert!(device.is_err(), "{what}: the device loaded");
        splice();
        let primary = load_primary_bytes(&copy, &key, a.primary_epoch);
        assert!(primary.is_err(), "{what}: the primary loaded");
    };
    // Each row alone.
    for row in &b_rows {
        attempt(&format!("{} {}", row.0, hex(&row.1)), &[row], &[]);
    }
    let of = |slot: &str| -> Vec<&(String, Vec<u8>, Vec<u8>)> {
        b_rows.iter().filter(|r| r.0 == slot).collect()
    };
    let meta = b_rows.iter().find(|r| r.1 == b"meta").unwrap();
    let digest = b_rows.iter().find(|r| r.1 == b"digest-key").unwrap();
    attempt("meta and digest key", &[meta, digest], &[]);
    let mut device_and_meta = of("device");
    device_and_meta.push(meta);
    attempt("all device rows and meta", &device_and_meta, &["device"]);
    attempt("all device rows", &of("device"), &["device"]);
    let mut primary_and_meta = of("primary");
    primary_and_meta.push(meta);
    attempt("all primary rows and meta", &primary_and_meta, &["primary"]);
    attempt("all primary rows", &of("primary"), &["primary"]);
    // A's own rows are untouched by all this: it loads as written.
    assert_eq!(a_rows.len(), all_rows(&a.raw()).len());
    check(&a, "the first phone");
}

/// The old phone's app (storage key `K`, kept in the keystore) is relinked: a new identity,
/// its epochs from the start, and "a database of its own", under the key the app keeps. The
/// old database put in the new one's place (a backup tool restoring the wrong file, someone
/// who can write the files) opens under `K`, its epoch above the new device's `last_epoch`,
/// and loads: the old identity and its primary, as if they were the new device.
#[test]
#[ignore = "KNOWN LIMIT (SECURITY.md): a database of another device under the same storage key loads in place of this device's; a new key per device is the app's duty"]
fn a_database_of_another_device_under_the_same_key_is_not_loaded_as_this_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = SeededRng::from_label("review 48: relinked under the same key");
    let key = StorageKey::generate(&mut rng);
    let mut old = Person::with_key(&mut rng, dir.path(), "old phone", Some(key.clone()));
    let mut bob = Person::new(&mut rng, dir.path(), "bob");
    for i in 0..4u8 {
        let e = envelope(&old.send(&mut rng, T0, &bob, &[i]));
        bob.receive(T0, &old, &e);
    }
    checkpoint(old.store.connection(), "TRUNCATE");
    let old_files = grab(&old.path);
    // Relinked: a new identity in a database of its own, under the keystore's key.
    let new = Person::with_key(&mut rng, dir.path(), "new phone", Some(key.clone()));
    assert!(old.last_epoch > new.last_epoch);
    let (new_path, new_last, new_primary_last) =
        (new.path.clone(), new.last_epoch, new.primary_epoch);
    let new_device = new.device.to_bytes().to_vec();
    let new_primary = new.primary.to_bytes().to_vec();
    drop(new);
    lay(&new_path, &old_files.main, None, None);
    if let Ok(Some(bytes)) = load_bytes(&new_path, &key, new_last) {
        assert!(
            bytes == new_device,
            "the old phone's device loaded in place of the new one"
        );
    }
    if let Ok(Some(bytes)) = load_primary_bytes(&new_path, &key, new_primary_last) {
        assert!(
            bytes == new_primary,
            "the old phone's primary loaded in place of the new one"
        );
    }
}

/// The same root, with this device's own state: its files (and the storage key with them: a
/// device-to-device transfer, an app extension's copy of the container) are copied at a
/// moment, and the copy runs on as a second live copy in a database of its own, writing units
/// (prekeys replenished and rotated) until its epoch passes the original's. Meanwhile the
/// original reads Bob's message and keeps its epoch. The copy's database put in place of the
/// original's loads with the original's `last_epoch` (it is not older) and without
/// `AnotherCopy` (no unit is written into the other's store): the original goes on from the
/// copy's state, which never read Bob's message, and the relay's replay of it is read again.
#[test]
#[ignore = "KNOWN LIMIT (SECURITY.md): a forked copy of this device's database that ran ahead loads over the original's last_epoch; one live copy is the app's duty"]
fn a_forked_copy_of_the_database_that_ran_ahead_is_not_loaded_over_the_original() {
    let (mut rng, mut alice, mut bob, dir) = two("review 48: a fork ran ahead");
    checkpoint(alice.store.connection(), "TRUNCATE");
    let fork = grab(&alice.path);
    let copy_path = dir.path().join("alice-copy.db");
    lay(&copy_path, &fork.main, None, None);
    let copy_store = SqliteStore::open(&copy_path, alice.key.clone()).unwrap();
    let mut copy = copy_store.load(alice.last_epoch).unwrap().unwrap();
    let mut copy_store = copy_store;
    // The original reads Bob's message and keeps its epoch.
    let ping = envelope(&bob.send(&mut rng, T0, &alice, b"read once"));
    assert_eq!(take(&mut alice, T0, &bob, &ping).0, b"read once");
    let original_last = alice.last_epoch;
    // The copy runs on.
    let mut copy_last = 0;
    while copy_last < original_last + 2 {
        copy.rotate_signed_prekey(&mut rng, T1);
        let _ = copy.generate_one_time_prekeys(&mut rng, T1, 1);
        copy_last = copy_store
            .write(&copy.take_changes(&mut ratchetry::os_rng()))
            .unwrap()
            .epoch;
    }
    checkpoint(copy_store.connection(), "TRUNCATE");
    drop(copy_store);
    let copied = fs::read(&copy_path).unwrap();
    // The copy's database in the original's place; the original app restarts.
    drop(std::mem::replace(
        &mut alice.store,
        SqliteStore::open(dir.path().join("placeholder.db"), alice.key.clone()).unwrap(),
    ));
    lay(&alice.path, &copied, None, None);
    let store = SqliteStore::open(&alice.path, alice.key.clone()).unwrap();
    match store.load(original_last) {
        Ok(Some(mut device)) => {
            let again = device.receive(T0, &ping);
            assert!(
                again.is_err(),
                "the fork loaded over the original, and Bob's message is read again: {again:?}"
            );
        }
        Ok(None) => panic!("nothing loaded"),
        Err(_) => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Cells SQLite holds in other types, a rebuilt table
// ---------------------------------------------------------------------------------------------

/// Changes to the table someone who can write the file makes with plain SQL, beyond values:
/// every one is a typed error on load (never a panic, never another state), and the app's own
/// database is left as it was.
#[test]
fn cells_of_the_wrong_type_or_a_rebuilt_table_are_typed_errors() {
    let (_rng, alice, _bob, dir) = two("review 48: cells");
    checkpoint(alice.store.connection(), "TRUNCATE");
    let files = grab(&alice.path);
    let rows = all_rows(&alice.raw());
    let device_key = hex(&rows
        .iter()
        .filter(|r| r.0 == "device")
        .max_by_key(|r| r.2.len())
        .unwrap()
        .1);
    let primary_key = hex(&rows.iter().find(|r| r.0 == "primary").unwrap().1);
    let at = |slot: &str, key: &str| format!("WHERE slot = '{slot}' AND key = X'{key}'");
    let d = at("device", &device_key);
    let p = at("primary", &primary_key);
    let changes: Vec<(&str, String)> = vec![
        ("key as TEXT", format!("UPDATE ratchetry_rows SET key = CAST(key AS TEXT) {d}")),
        ("value as TEXT", format!("UPDATE ratchetry_rows SET value = CAST(value AS TEXT) {d}")),
        ("value as INTEGER", format!("UPDATE ratchetry_rows SET value = 42 {d}")),
        ("value as REAL", format!("UPDATE ratchetry_rows SET value = 1.5 {d}")),
        ("value empty", format!("UPDATE ratchetry_rows SET value = X'' {d}")),
        ("value 1 MiB", format!("UPDATE ratchetry_rows SET value = zeroblob(1048576) {d}")),
        ("primary value as TEXT", format!("UPDATE ratchetry_rows SET value = 'x' {p}")),
        (
            "meta as TEXT",
            "UPDATE ratchetry_rows SET value = 'meta' WHERE slot = 'store' AND key = CAST('meta' AS BLOB)".into(),
        ),
        (
            "digest key as INTEGER",
            "UPDATE ratchetry_rows SET value = 7 WHERE slot = 'store' AND key = CAST('digest-key' AS BLOB)".into(),
        ),
        (
            "store rows keyed as TEXT",
            "UPDATE ratchetry_rows SET key = CAST(key AS TEXT) WHERE slot = 'store'".into(),
        ),
        (
            "an INTEGER key added",
            "INSERT INTO ratchetry_rows VALUES ('device', 123, X'00')".into(),
        ),
        (
            "a TEXT twin of a key",
            format!("INSERT INTO ratchetry_rows SELECT slot, CAST(key AS TEXT), value FROM ratchetry_rows {d}"),
        ),
        (
            "a slot as BLOB",
            format!("UPDATE ratchetry_rows SET slot = CAST(slot AS BLOB) {d}"),
        ),
        (
            "a slot in upper case",
            format!("UPDATE ratchetry_rows SET slot = 'DEVICE' {d}"),
        ),
        (
            "a device value as the previous version's blob",
            format!("INSERT INTO ratchetry_rows SELECT 'primary', X'', value FROM ratchetry_rows {d}"),
        ),
        (
            "a key with a byte appended",
            format!("UPDATE ratchetry_rows SET key = CAST(key || X'00' AS BLOB) {d}"),
        ),
        (
            "a long key added",
            format!("INSERT INTO ratchetry_rows SELECT slot, CAST(key || zeroblob(200) AS BLOB), value FROM ratchetry_rows {d}"),
        ),
        (
            "the table rebuilt without its key, a row held twice",
            format!(
                "CREATE TABLE t AS SELECT * FROM ratchetry_rows; DROP TABLE ratchetry_rows;
                 CREATE TABLE ratchetry_rows (slot TEXT NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL);
                 INSERT INTO ratchetry_rows SELECT * FROM t;
                 INSERT INTO ratchetry_rows SELECT * FROM t {d}; DROP TABLE t;"
            ),
        ),
        (
            "the table rebuilt without its key, a row held three times",
            format!(
                "CREATE TABLE t AS SELECT * FROM ratchetry_rows; DROP TABLE ratchetry_rows;
                 CREATE TABLE ratchetry_rows (slot TEXT NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL);
                 INSERT INTO ratchetry_rows SELECT * FROM t;
                 INSERT INTO ratchetry_rows SELECT * FROM t {d};
                 INSERT INTO ratchetry_rows SELECT * FROM t {d}; DROP TABLE t;"
            ),
        ),
        ("the table dropped", "DROP TABLE ratchetry_rows".into()),
        (
            "the table replaced by a view",
            "ALTER TABLE ratchetry_rows RENAME TO old; CREATE VIEW ratchetry_rows AS SELECT * FROM old".into(),
        ),
    ];
    let copy = dir.path().join("cells.db");
    let written = alice.device.to_bytes().to_vec();
    for (what, sql) in &changes {
        lay(&copy, &files.main, None, None);
        Connection::open(&copy).unwrap().execute_batch(sql).unwrap();
        let outcome = load_bytes(&copy, &alice.key, alice.last_epoch);
        // A view showing the same rows loads the same state; everything else is refused.
        match outcome {
            Ok(Some(bytes)) => assert!(what.contains("view") && bytes == written, "{what}: loaded"),
            Ok(None) => panic!("{what}: loaded nothing"),
            Err(e) => eprintln!("{what}: {e}"),
        }
        // Not the device's or the primary's rows: the primary loads as written, or is refused.
        lay(&copy, &files.main, None, None);
        Connection::open(&copy).unwrap().execute_batch(sql).unwrap();
        if let Ok(Some(bytes)) = load_primary_bytes(&copy, &alice.key, alice.primary_epoch) {
            assert!(
                bytes == alice.primary.to_bytes().to_vec(),
                "{what}: another primary"
            );
        }
        // `load_restored` checks the same rows.
        lay(&copy, &files.main, None, None);
        Connection::open(&copy).unwrap().execute_batch(sql).unwrap();
        if let Ok(store) = SqliteStore::open(&copy, alice.key.clone()) {
            let restored = store.load_restored(alice.last_epoch, T1);
            assert!(
                restored.is_err() || what.contains("view"),
                "{what}: loaded as restored"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Triggers planted in the file
// ---------------------------------------------------------------------------------------------

/// A trigger that drops the store's inserts freezes the table while writes report success:
/// the next load is refused (stale, or rows deleted under an old meta row). A trigger that
/// keeps rows through `reset` leaves the old device's rows beside the new digest key: the new
/// key refuses them at the next write and load, and never loads the old device.
#[test]
fn triggers_planted_in_the_file_never_load_a_state_not_written() {
    let (mut rng, mut alice, bob, _dir) = two("review 48: triggers");
    alice
        .raw()
        .execute_batch(
            "CREATE TRIGGER freeze BEFORE INSERT ON ratchetry_rows BEGIN SELECT RAISE(IGNORE); END;",
        )
        .unwrap();
    // The write reports success; nothing was stored.
    let _ = from_alice(&mut rng, &mut alice, &bob, b"frozen");
    assert!(alice.reload().is_err());
    alice.raw().execute_batch("DROP TRIGGER freeze;").unwrap();
    assert!(alice.reload().is_err());

    // Reset through a trigger that keeps every row.
    let (_rng, mut carol, _bob, dir2) = two("review 48: triggers through reset");
    let old_device = carol.device.to_bytes().to_vec();
    carol
        .raw()
        .execute_batch(
            "CREATE TRIGGER keep BEFORE DELETE ON ratchetry_rows BEGIN SELECT RAISE(IGNORE); END;",
        )
        .unwrap();
    let new_key = StorageKey::generate(&mut rng);
    let reset = carol.store.reset(new_key.clone());
    eprintln!("reset through a trigger that keeps rows: {reset:?}");
    if reset.is_ok() {
        for last in [0, carol.last_epoch] {
            let loaded = load_bytes(&carol.path, &new_key, last);
            assert!(
                !matches!(&loaded, Ok(Some(bytes)) if *bytes == old_device),
                "the old device loads under the new key"
            );
            assert!(
                !matches!(loaded, Ok(Some(_))),
                "a device loads after the reset though none was written"
            );
        }
        // The new device's first unit.
        let fresh = Person::new(&mut rng, dir2.path(), "carol again");
        let mut device = Device::from_bytes(&fresh.device.to_bytes()).unwrap();
        let written = carol
            .store
            .write(&device.take_changes(&mut ratchetry::os_rng()));
        eprintln!("the new device's unit beside the kept rows: {written:?}");
        if let Ok(w) = written {
            match load_bytes(&carol.path, &new_key, w.epoch) {
                Ok(Some(bytes)) => assert!(bytes == device.to_bytes().to_vec()),
                Ok(None) => panic!("nothing loads after a write"),
                Err(_) => {}
            }
        }
    }
    assert!(
        SqliteStore::open(&carol.path, carol.key.clone())
            .and_then(|s| s.load(carol.last_epoch))
            .is_err()
    );
}

// ---------------------------------------------------------------------------------------------
// Reset
// ---------------------------------------------------------------------------------------------

/// After `reset(new key)`: the table holds the new digest key row alone; the old key does not
/// open the database; a handle opened before the reset (the old key, the old digest key in
/// memory) loads nothing and its units of the old device are refused or make the database
/// refuse; an old copy of the files put back does not open under the new key; the old rows
/// spliced in do not open; an old `last_epoch` kept by mistake is `StaleSnapshot`; and the
/// device written after it loads exactly.
#[test]
fn after_a_reset_nothing_of_the_old_device_loads() {
    let (mut rng, mut alice, bob, dir) = two("review 48: reset");
    for i in 0..4u8 {
        let _ = from_alice(&mut rng, &mut alice, &bob, &[i]);
    }
    let old_files = grab(&alice.path);
    let old_rows = all_rows(&alice.raw());
    let old_last = alice.last_epoch;
    let mut stale_handle = SqliteStore::open(&alice.path, alice.key.clone()).unwrap();
    let new_key = StorageKey::generate(&mut rng);
    alice.store.reset(new_key.clone()).unwrap();
    let left = all_rows(&alice.raw());
    assert_eq!(left.len(), 1);
    assert_eq!(
        (left[0].0.as_str(), left[0].1.as_slice()),
        ("store", &b"digest-key"[..])
    );
    assert!(matches!(
        SqliteStore::open(&alice.path, alice.key.clone()),
        Err(StoreError::WrongStorageKey)
    ));
    // The handle from before: nothing to load; a unit of the old device that does not replace
    // all is `NotStored`.
    assert!(matches!(
        stale_handle.load(old_last),
        Err(StoreError::StaleSnapshot {
            stored_epoch: None,
            ..
        })
    ));
    // The old app state, in memory, writes through the old handle.
    let mut old_device = Device::from_bytes(&alice.device.to_bytes()).unwrap();
    old_device.rotate_signed_prekey(&mut rng, T1);
    let stale_write = stale_handle.write(&old_device.take_changes(&mut ratchetry::os_rng()));
    eprintln!("the old handle's unit after the reset: {stale_write:?}");
    // Whatever that did, the new key never loads the old device.
    for last in [0, old_last] {
        if let Ok(Some(bytes)) = load_bytes(&alice.path, &new_key, last) {
            assert!(
                bytes != alice.device.to_bytes().to_vec()
                    && bytes != old_device.to_bytes().to_vec(),
                "the old device loads under the new key"
            );
        }
    }
    drop(stale_handle);

    // A fresh database for the checks below: reset again (a new key) and write the new device.
    let newer_key = StorageKey::generate(&mut rng);
    let mut store = SqliteStore::open(&alice.path, new_key.clone()).unwrap();
    store.reset(newer_key.clone()).unwrap();
    assert_eq!(all_rows(&alice.raw()).len(), 1);
    let fresh = Person::new(&mut rng, dir.path(), "alice again");
    let mut device = Device::from_bytes(&fresh.device.to_bytes()).unwrap();
    let epoch = store
        .write(&device.take_changes(&mut ratchetry::os_rng()))
        .unwrap()
        .epoch;
    assert!(epoch < old_last);
    drop(store);
    let loaded = load_bytes(&alice.path, &newer_key, epoch).unwrap().unwrap();
    assert!(loaded == device.to_bytes().to_vec());
    // The app kept the old device's epoch by mistake: stale, not the old device.
    assert!(matches!(
        load_bytes(&alice.path, &newer_key, old_last),
        Err(StoreError::StaleSnapshot { .. })
    ));
    // The old rows spliced in: they do not open under the new key.
    let raw = alice.raw();
    for (slot, k, v) in old_rows.iter().filter(|r| r.0 != "store") {
        let before = all_rows(&raw);
        put(&raw, slot, k, v);
        assert!(load_bytes(&alice.path, &newer_key, epoch).is_err());
        put_back(&raw, &before);
    }
    // The old meta row: does not open.
    let meta = old_rows.iter().find(|r| r.1 == b"meta").unwrap();
    let before = all_rows(&raw);
    put(&raw, &meta.0, &meta.1, &meta.2);
    assert!(matches!(
        load_bytes(&alice.path, &newer_key, epoch),
        Err(StoreError::MetaDoesNotOpen)
    ));
    put_back(&raw, &before);
    drop(raw);
    assert!(load_bytes(&alice.path, &newer_key, epoch).unwrap().unwrap() == loaded);
    // The old copy of the files put back (the app closed first): the new key does not open
    // it.
    drop(alice.store);
    lay(
        &alice.path,
        &old_files.main,
        old_files.wal.as_deref(),
        old_files.shm.as_deref(),
    );
    assert!(matches!(
        SqliteStore::open(&alice.path, newer_key),
        Err(StoreError::WrongStorageKey)
    ));
}

/// Files of before a `reset` (the old key) and after it (the new key, a new device written
/// several times), mixed: the main file of one moment with the WAL (and `-shm`) of another,
/// across the reset. Under the new key nothing loads that the old device wrote; under the
/// old key nothing loads that the new device wrote; each loads one of its own device's
/// states or is refused.
#[test]
fn files_mixed_across_a_reset_never_load_the_other_devices_state() {
    let (mut rng, mut alice, bob, dir) = two("review 48: files across a reset");
    let mut old_states = vec![alice.device.to_bytes().to_vec()];
    let mut moments = vec![grab(&alice.path)];
    for i in 0..3u8 {
        let _ = from_alice(&mut rng, &mut alice, &bob, &[i]);
        old_states.push(alice.device.to_bytes().to_vec());
        moments.push(grab(&alice.path));
    }
    checkpoint(alice.store.connection(), "RESTART");
    let old_key = alice.key.clone();
    let new_key = StorageKey::generate(&mut rng);
    alice.store.reset(new_key.clone()).unwrap();
    moments.push(grab(&alice.path));
    let fresh = Person::new(&mut rng, dir.path(), "alice again");
    let mut device = Device::from_bytes(&fresh.device.to_bytes()).unwrap();
    let mut new_states = Vec::new();
    for round in 0..4u8 {
        device.rotate_signed_prekey(&mut rng, Timestamp(T1.0 + u64::from(round)));
        alice
            .store
            .write(&device.take_changes(&mut ratchetry::os_rng()))
            .unwrap();
        new_states.push(device.to_bytes().to_vec());
        moments.push(grab(&alice.path));
        if round == 1 {
            checkpoint(alice.store.connection(), "TRUNCATE");
            moments.push(grab(&alice.path));
        }
    }
    let copy = dir.path().join("mixed.db");
    let (mut loaded, mut refused) = (0, 0);
    for main in &moments {
        for wal_from in std::iter::once(None).chain(moments.iter().map(Some)) {
            for with_shm in [false, true] {
                if with_shm && wal_from.is_none() {
                    continue;
                }
                let wal = wal_from.and_then(|f| f.wal.as_deref());
                let shm = wal_from.filter(|_| with_shm).and_then(|f| f.shm.as_deref());
                for (key, own, other) in [
                    (&new_key, &new_states, &old_states),
                    (&old_key, &old_states, &new_states),
                ] {
                    lay(&copy, &main.main, wal, shm);
                    match load_bytes(&copy, key, 0) {
                        Ok(Some(bytes)) => {
                            assert!(!other.contains(&bytes), "the other device's state loads");
                            assert!(own.contains(&bytes), "a state never written loads");
                            loaded += 1;
                        }
                        Ok(None) | Err(_) => refused += 1,
                    }
                }
            }
        }
    }
    assert!(loaded > 0);
    eprintln!("files across a reset: {loaded} loaded, {refused} refused or empty");
}

/// A long conversation (enough for the post-quantum ratchet's epochs to turn), with bursts
/// read out of order (skipped keys), group messages, prekeys rotated and replenished, and the
/// app restarting from its store every few rounds (going on with the device it loaded, not
/// the one in memory): after every unit both devices and primaries load as written, and every
/// message is read exactly once.
#[test]
fn a_long_conversation_with_restarts_loads_as_written_at_every_unit() {
    let (mut rng, mut alice, mut bob, _dir) = two("review 48: long conversation");
    let (a, b) = (alice.primary.account(), bob.primary.account());
    let group = GroupId([9; 32]);
    for p in [&mut alice, &mut bob] {
        p.device.set_group_members(group, &[a, b]).unwrap();
        p.persist();
    }
    let mut read_ids = std::collections::BTreeSet::new();
    for round in 0..60u32 {
        let now = Timestamp(T0.0 + u64::from(round) * 1000);
        // A burst from Alice, read by Bob in reverse order.
        let burst = 1 + (round % 3) as usize;
        let mut envelopes = Vec::new();
        for i in 0..burst {
            let body = format!("a{round}.{i}").into_bytes();
            let outbox = ready(&mut alice, &mut rng, now, &bob, |d, r| {
                d.send(r, now, &b, &body)
            });
            envelopes.push((body, envelope(&outbox)));
            check(&alice, "burst sent");
        }
        for (body, sealed) in envelopes.iter().rev() {
            let (got, id) = take(&mut bob, now, &alice, sealed);
            assert_eq!(&got, body);
            assert!(read_ids.insert(id.0), "a message read twice");
            check(&bob, "burst read");
        }
        // Bob answers, one or two messages, sometimes in the group.
        if round % 4 == 3 {
            let body = format!("g{round}").into_bytes();
            let outbox = ready(&mut bob, &mut rng, now, &alice, |d, r| {
                d.send_group(r, now, group, &body)
            });
            for (_, pairwise) in &outbox.envelopes {
                read(&mut alice, now, &bob, pairwise).unwrap();
                alice.persist();
            }
            let (got, id) = take(&mut alice, now, &bob, &outbox.group.clone().unwrap().0);
            assert_eq!(got, body);
            assert!(read_ids.insert(id.0));
        } else {
            for i in 0..1 + (round % 2) {
                let body = format!("b{round}.{i}").into_bytes();
                let outbox = ready(&mut bob, &mut rng, now, &alice, |d, r| {
                    d.send(r, now, &a, &body)
                });
                let (got, id) = take(&mut alice, now, &bob, &envelope(&outbox));
                assert_eq!(got, body);
                assert!(read_ids.insert(id.0));
            }
        }
        check(&alice, "answer read");
        check(&bob, "answer sent");
        // Now and then: prekeys rotated and replenished; the apps restart.
        if round % 7 == 5 {
            alice.device.rotate_signed_prekey(&mut rng, now);
            let _ = alice.device.generate_one_time_prekeys(&mut rng, now, 3);
            alice.persist();
            check(&alice, "prekeys");
        }
        if round % 5 == 4 {
            alice.restart();
            bob.restart();
        }
        // A replay of the last envelope of the burst is refused.
        let last = &envelopes.last().unwrap().1;
        assert!(read(&mut bob, now, &alice, last).is_err());
        let _ = bob.device.take_changes(&mut ratchetry::os_rng());
        bob.restart();
    }
    let epoch = alice.device.pq_ratchet_epoch(&bob.device.address());
    eprintln!(
        "long conversation: post-quantum epoch {epoch:?}, {} messages",
        read_ids.len()
    );
}

/// `load_restored` and `load_primary_restored` given the extremes an app's clock or its kept
/// epochs can hold (a clock at 0 or at `u64::MAX`, an epoch at `u64::MAX` kept by a corrupted
/// keystore): typed results, never a panic; what they give writes and loads as written.
#[test]
fn restores_at_extreme_clocks_and_epochs_never_panic() {
    let (mut rng, mut alice, _bob, dir) = two("review 48: extremes");
    alice.device.rotate_signed_prekey(&mut rng, T0);
    alice.persist();
    checkpoint(alice.store.connection(), "TRUNCATE");
    let files = grab(&alice.path);
    let cases = [
        (0, Timestamp(0)),
        (0, Timestamp(u64::MAX)),
        (alice.last_epoch, Timestamp(u64::MAX)),
        (u64::MAX, T1),
        (u64::MAX, Timestamp(u64::MAX)),
        (u64::MAX - 1, Timestamp(0)),
    ];
    for (i, (last, now)) in cases.into_iter().enumerate() {
        let path = dir.path().join(format!("extreme-{i}.db"));
        lay(&path, &files.main, None, None);
        let mut store = SqliteStore::open(&path, alice.key.clone()).unwrap();
        match store.load_restored(last, now) {
            Ok(mut device) => {
                let unit = device.take_changes(&mut ratchetry::os_rng());
                match store.write(&unit) {
                    Ok(written) => {
                        let again = SqliteStore::open(&path, alice.key.clone())
                            .unwrap()
                            .load(written.epoch)
                            .unwrap()
                            .unwrap();
                        assert!(*again.to_bytes() == *device.to_bytes(), "case {i}");
                        // It goes on: one more unit chains.
                        device.rotate_signed_prekey(&mut rng, now);
                        let _ = device.generate_one_time_prekeys(&mut rng, now, 2);
                        let next = device.take_changes(&mut ratchetry::os_rng());
                        let written = store.write(&next);
                        eprintln!("extreme case {i}: restored, next unit {written:?}");
                    }
                    Err(e) => eprintln!("extreme case {i}: restored, refused: {e}"),
                }
            }
            Err(e) => eprintln!("extreme case {i}: {e}"),
        }
        match store.load_primary_restored(last) {
            Ok(mut primary) => {
                let current = primary.device_list().signed().clone();
                let resynced = primary.resync(now, current).map(|_| ());
                let written = store.write_primary(&primary.take_changes(&mut ratchetry::os_rng()));
                eprintln!(
                    "extreme case {i}: primary resync {:?}, written {written:?}",
                    resynced.err()
                );
            }
            Err(e) => eprintln!("extreme case {i}: primary {e}"),
        }
    }
}

/// The device (only) loads as written.
fn check_device(p: &Person, step: &str) {
    let store = SqliteStore::open(&p.path, p.key.clone()).unwrap();
    let device = store
        .load(p.last_epoch)
        .unwrap_or_else(|e| panic!("{step}: device load refused: {e}"))
        .unwrap();
    assert!(
        *device.to_bytes() == *p.device.to_bytes(),
        "{step}: the device loaded differs from the one written"
    );
}

/// Alice links a laptop (the primary's invitation, approval and confirmation written as
/// units), her phone follows the new own list and hands the laptop its history offer with
/// its group; the laptop reads it (the group installed, offered); Bob writes to the group
/// and both of Alice's devices read it; the laptop restarts and a replay of the offer and of
/// the group message is `Duplicate`. Every step loads as written, on the phone (device and
/// primary) and on the laptop (a companion's database: a device alone).
#[test]
fn a_linked_companion_and_its_history_offer_load_as_written() {
    let (mut rng, mut alice, mut bob, dir) = two("review 48: history offer");
    let (a, b) = (alice.primary.account(), bob.primary.account());
    let group = GroupId([5; 32]);
    for p in [&mut alice, &mut bob] {
        p.device.set_group_members(group, &[a, b]).unwrap();
        p.persist();
    }
    // Bob's group message first, so the phone holds his sender key.
    let warm = ready(&mut bob, &mut rng, T0, &alice, |d, r| {
        d.send_group(r, T0, group, b"warm")
    });
    for (_, pairwise) in &warm.envelopes {
        read(&mut alice, T0, &bob, pairwise).unwrap();
        alice.persist();
    }
    take(&mut alice, T0, &bob, &warm.group.clone().unwrap().0);

    // The laptop links.
    let identity = IdentityKeyPair::generate(&mut rng);
    let invitation = alice.primary.invite(&mut rng, T0).unwrap();
    alice.persist_primary();
    check(&alice, "invited");
    let approval = alice
        .primary
        .approve(T0, &LinkRequest::new(&identity, &invitation))
        .unwrap();
    alice.persist_primary();
    check(&alice, "approved");
    let (_, confirmation) =
        complete_link(&identity, &invitation, &approval, &ListLimits::default()).unwrap();
    alice.primary.confirm(&confirmation).unwrap();
    alice.persist_primary();
    check(&alice, "confirmed");
    let list = alice.primary.device_list().clone();
    let (device, _) = Device::new(
        &mut rng,
        T0,
        identity,
        approval.device,
        list,
        5,
        DeviceConfig::default(),
    )
    .unwrap();
    let key = StorageKey::generate(&mut rng);
    let path = dir.path().join("laptop.db");
    let mut laptop = Person {
        // The laptop's app holds no primary; this copy only serves the account's list here.
        primary: Primary::from_bytes(&alice.primary.to_bytes()).unwrap(),
        device,
        store: SqliteStore::open(&path, key.clone()).unwrap(),
        path,
        key,
        last_epoch: 0,
        primary_epoch: 0,
    };
    laptop.persist();
    check_device(&laptop, "laptop linked");
    let own = alice.primary.device_list().signed().clone();
    alice.device.update_device_list(T0, &a, own).unwrap();
    alice.persist();
    check(&alice, "phone follows the new list");

    // The history offer.
    let mut sealer = ratchetry::history::HistorySealer::new(&mut rng);
    let _ = sealer.push(b"the app's export of its messages");
    let offer = sealer.finish().1;
    let laptop_address = laptop.device.address();
    let sent = ready(&mut alice, &mut rng, T0, &laptop, |d, r| {
        d.send_history_offer(r, T0, laptop_address, &offer)
    });
    check(&alice, "offer sent");
    let sealed = envelope(&sent);
    let received = read(&mut laptop, T0, &alice, &sealed).unwrap();
    assert!(
        matches!(&received, Received::HistoryOffer { groups, .. } if groups.contains(&group)),
        "{received:?}"
    );
    laptop.persist();
    check_device(&laptop, "offer read");
    assert!(laptop.device.groups().any(|g| g == group));

    // Bob follows Alice's new list (the relay refuses an outbox under the old one) and writes
    // to the group: both of Alice's devices read it once.
    let alice_list = alice.primary.device_list().signed().clone();
    bob.device.update_device_list(T0, &a, alice_list).unwrap();
    bob.persist();
    check(&bob, "Bob follows Alice's new list");
    let news = ready_among(&mut bob, &mut rng, T0, &[&alice, &laptop], |d, r| {
        d.send_group(r, T0, group, b"news")
    });
    for (to, pairwise) in &news.envelopes {
        let reader = if *to == laptop_address {
            &mut laptop
        } else {
            &mut alice
        };
        read(reader, T0, &bob, pairwise).unwrap();
        reader.persist();
    }
    let (news_envelope, recipients) = news.group.clone().unwrap();
    assert!(recipients.contains(&laptop_address));
    assert_eq!(take(&mut alice, T0, &bob, &news_envelope).0, b"news");
    assert_eq!(take(&mut laptop, T0, &bob, &news_envelope).0, b"news");
    check(&alice, "news read on the phone");
    check_device(&laptop, "news read on the laptop");
    laptop.restart();
    for e in [&sealed, &news_envelope] {
        let again = read(&mut laptop, T0, &alice, e);
        assert!(is_duplicate(&again), "{again:?}");
    }
    check_device(&laptop, "after the replays");
}

/// `reset` refuses the key the store already has (`SameStorageKey`: "a copy of the file from
/// before the reset, put back, would open under it"), but it decides that by opening the
/// digest key row in the file, not by comparing with the key the store holds. Someone who can
/// write the file deletes that row while the app runs; the app then resets under its current
/// key (the mistake the refusal exists to catch): the reset goes through, and the copy of the
/// file from before it opens under that key and loads the old device.
#[test]
fn a_reset_under_the_current_key_is_refused_even_without_the_digest_key_row() {
    let (mut rng, mut alice, bob, dir) = two("review 48: same key without its row");
    let _ = from_alice(&mut rng, &mut alice, &bob, b"before");
    checkpoint(alice.store.connection(), "TRUNCATE");
    let before = grab(&alice.path);
    alice
        .raw()
        .execute(
            "DELETE FROM ratchetry_rows WHERE slot = 'store' AND key = CAST('digest-key' AS BLOB)",
            [],
        )
        .unwrap();
    let reset = alice.store.reset(alice.key.clone());
    let refused = matches!(reset, Err(StoreError::SameStorageKey));
    // What the reset let through: the copy from before it opens under the key and loads.
    let copy = dir.path().join("before-the-reset.db");
    lay(&copy, &before.main, None, None);
    let old = load_bytes(&copy, &alice.key, 0);
    assert!(
        refused,
        "reset under the current key went through ({reset:?}); the old copy loads: {}",
        matches!(old, Ok(Some(_)))
    );
}

/// The phone's database (device and primary) put back to a copy from before the primary's
/// last renewal, which Bob follows. With the primary's epoch kept, `load_primary` is
/// `StaleSnapshot`; `load_primary_restored` gives a primary that signs nothing until it
/// resyncs. Shown the older list (the server withholding the newest) or the newest, it signs
/// past the lost version: Bob follows it without a rollback or equivocation alarm; its unit
/// loads as written, and the device in the same file is untouched.
#[test]
fn a_primary_put_back_to_an_older_copy_resyncs_past_the_lost_list() {
    for serve_newest in [false, true] {
        let (mut rng, mut alice, mut bob, dir) =
            two(&format!("review 48: primary put back {serve_newest}"));
        let a = alice.primary.account();
        alice.primary.renew(T1).unwrap();
        alice.persist_primary();
        let older = alice.primary.device_list().signed().clone();
        checkpoint(alice.store.connection(), "TRUNCATE");
        let backup = grab(&alice.path);
        alice.primary.renew(T2).unwrap();
        alice.persist_primary();
        let lost = alice.primary.device_list().signed().clone();
        bob.device.update_device_list(T2, &a, lost.clone()).unwrap();
        bob.persist();

        drop(std::mem::replace(
            &mut alice.store,
            SqliteStore::open(dir.path().join("placeholder.db"), alice.key.clone()).unwrap(),
        ));
        alice.path = dir.path().join("alice-put-back.db");
        lay(&alice.path, &backup.main, None, None);
        alice.store = SqliteStore::open(&alice.path, alice.key.clone()).unwrap();
        assert!(matches!(
            alice.store.load_primary(alice.primary_epoch),
            Err(StoreError::StaleSnapshot { .. })
        ));
        // The device did not change since the copy: it loads as it was.
        let device = alice.store.load(alice.last_epoch).unwrap().unwrap();
        assert!(*device.to_bytes() == *alice.device.to_bytes());
        let mut primary = alice
            .store
            .load_primary_restored(alice.primary_epoch)
            .unwrap();
        assert!(primary.needs_resync());
        assert!(primary.renew(Timestamp(T2.0 + 1000)).is_err());
        let shown = if serve_newest {
            lost.clone()
        } else {
            older.clone()
        };
        let now = Timestamp(T2.0 + 60_000);
        primary.resync(now, shown).unwrap();
        let signed = primary.device_list().signed().clone();
        assert!(
            signed.version() > lost.version(),
            "{} <= {}",
            signed.version(),
            lost.version()
        );
        alice.primary = primary;
        alice.persist_primary();
        check(&alice, "resynced after the put back");
        let events = bob.device.update_device_list(now, &a, signed);
        assert!(events.is_ok(), "{events:?}");
        bob.persist();
        // And they talk on.
        let e = from_alice(&mut rng, &mut alice, &bob, b"after the resync");
        assert_eq!(take(&mut bob, now, &alice, &e).0, b"after the resync");
    }
}

// ---------------------------------------------------------------------------------------------
// Restores of an older copy: the peer reads every message once
// ---------------------------------------------------------------------------------------------

/// Alice writes to Bob, her files are copied (the backup), she writes again; the backup is
/// put back. With the epoch kept, `load` is `StaleSnapshot`; without it, `load(0)` cannot
/// tell (documented) and the app that knows it restored calls `load_restored(0, now)`. Either
/// way the restored device writes its whole state, sends on new chains, and Bob reads the new
/// message once; every earlier envelope replayed to him is `Duplicate`, also after he restarts.
/// The device the restore replaced (still in memory, say in an extension) cannot write over it.
#[test]
fn a_restored_old_copy_sends_again_and_the_peer_reads_every_message_once() {
    for kept in [true, false] {
        let label = if kept {
            "review 48: restore, epoch kept"
        } else {
            "review 48: restore, no epoch"
        };
        let (mut rng, mut alice, mut bob, dir) = two(label);
        let e1 = from_alice(&mut rng, &mut alice, &bob, b"one");
        let (_, id1) = take(&mut bob, T0, &alice, &e1);
        let backup = grab(&alice.path);
        let e2 = from_alice(&mut rng, &mut alice, &bob, b"two");
        let (_, id2) = take(&mut bob, T0, &alice, &e2);
        let mut replaced = Device::from_bytes(&alice.device.to_bytes()).unwrap();

        reopen_as(&mut alice, dir.path(), "alice-restored.db", &backup);
        let last = if kept {
            assert!(matches!(
                alice.store.load(alice.last_epoch),
                Err(StoreError::StaleSnapshot { .. })
            ));
            alice.last_epoch
        } else {
            let silent = alice.store.load(0).unwrap().unwrap();
            assert!(silent.state_epoch() < alice.last_epoch);
            0
        };
        alice.device = alice.store.load_restored(last, T1).unwrap();
        assert!(alice.device.awaiting_own_list());
        alice.persist();
        check(&alice, "restored");
        // The device the restore replaced cannot write over it.
        replaced.rotate_signed_prekey(&mut rng, T1);
        let refused = alice
            .store
            .write(&replaced.take_changes(&mut ratchetry::os_rng()));
        assert!(
            matches!(
                refused,
                Err(StoreError::UnitGap { .. }
                    | StoreError::AnotherCopy { .. }
                    | StoreError::EpochWentBack { .. })
            ),
            "{refused:?}"
        );
        check(&alice, "after the replaced copy's unit");

        let e3 = envelope(&ready(&mut alice, &mut rng, T1, &bob, |d, r| {
            d.send(r, T1, &bob.primary.account(), b"three")
        }));
        let (body, id3) = take(&mut bob, T1, &alice, &e3);
        assert_eq!(body, b"three");
        assert!(id3 != id1 && id3 != id2);
        for round in 0..2 {
            for e in [&e1, &e2, &e3] {
                let again = read(&mut bob, T1, &alice, e);
                assert!(is_duplicate(&again), "round {round}: {again:?}");
            }
            bob.restart();
        }
        // And on: Bob answers, Alice reads it, she writes again, he reads it once.
        let back = envelope(&bob.send(&mut rng, T1, &alice, b"four"));
        let (body, _) = take(&mut alice, T1, &bob, &back);
        assert_eq!(body, b"four");
        let e5 = envelope(&ready(&mut alice, &mut rng, T1, &bob, |d, r| {
            d.send(r, T1, &bob.primary.account(), b"five")
        }));
        assert_eq!(take(&mut bob, T1, &alice, &e5).0, b"five");
        assert!(is_duplicate(&read(&mut bob, T1, &alice, &e5)));
        check(&alice, "after the restore's conversation");
        check(&bob, "the peer");
    }
}

// ---------------------------------------------------------------------------------------------
// Loads equal what was written, across a device's life
// ---------------------------------------------------------------------------------------------

/// After every step (each unit written before acting), the app restarts and loads the device
/// and the primary: byte for byte what it wrote. Groups both ways, a retry of a tampered
/// envelope (the genuine copy then `Duplicate`, across a restart), an older copy restored, its
/// own list renewed, the group set again, sends after the restore read once, and the primary
/// loaded as restored and resynced.
#[test]
fn a_device_and_its_primary_load_as_written_across_groups_a_retry_and_restores() {
    let (mut rng, mut alice, mut bob, dir) = two("review 48: life");
    check(&alice, "start");
    check(&bob, "start");
    let (a, b) = (alice.primary.account(), bob.primary.account());
    let group = GroupId([48; 32]);
    for p in [&mut alice, &mut bob] {
        p.device.set_group_members(group, &[a, b]).unwrap();
        p.persist();
        check(p, "group set");
    }

    // Group sends both ways.
    let g1 = ready(&mut alice, &mut rng, T0, &bob, |d, r| {
        d.send_group(r, T0, group, b"g1")
    });
    check(&alice, "group sent");
    for (_, pairwise) in &g1.envelopes {
        let r = read(&mut bob, T0, &alice, pairwise).unwrap();
        assert!(matches!(r, Received::SenderKey { .. }), "{r:?}");
        bob.persist();
        check(&bob, "sender key read");
    }
    let (g1_envelope, _) = g1.group.clone().unwrap();
    assert_eq!(take(&mut bob, T0, &alice, &g1_envelope).0, b"g1");
    check(&bob, "group read");
    let g2 = ready(&mut bob, &mut rng, T0, &alice, |d, r| {
        d.send_group(r, T0, group, b"g2")
    });
    for (_, pairwise) in &g2.envelopes {
        read(&mut alice, T0, &bob, pairwise).unwrap();
        alice.persist();
        check(&alice, "Bob's sender key read");
    }
    assert_eq!(
        take(&mut alice, T0, &bob, &g2.group.clone().unwrap().0).0,
        b"g2"
    );
    check(&alice, "Bob's group message read");

    // A retry: the relay breaks Alice's envelope; Bob asks, Alice answers.
    let genuine = from_alice(&mut rng, &mut alice, &bob, b"lost");
    check(&alice, "direct sent");
    let mut broken = genuine.clone();
    let last = broken.len() - 1;
    broken[last] ^= 1;
    assert!(read(&mut bob, T0, &alice, &broken).is_err());
    let (to, request) = bob
        .device
        .request_retry(&mut rng, T0, &broken, RetryReason::AuthenticationFailed)
        .unwrap();
    assert_eq!(to, alice.device.address());
    bob.persist();
    check(&bob, "retry asked");
    let Received::RetryRequest(request) = read(&mut alice, T0, &bob, &request).unwrap() else {
        panic!("not a retry request")
    };
    alice.persist();
    check(&alice, "retry request read");
    let answer = ready(&mut alice, &mut rng, T0, &bob, |d, r| {
        d.answer_retry(r, T0, &request, b"lost")
    });
    check(&alice, "retry answered");
    let resent = read(&mut bob, T0, &alice, &envelope(&answer)).unwrap();
    assert!(
        matches!(&resent, Received::Direct { body, resent: Some(_), .. } if body == b"lost"),
        "{resent:?}"
    );
    bob.persist();
    check(&bob, "resend read");
    bob.restart();
    assert!(is_duplicate(&read(&mut bob, T0, &alice, &genuine)));
    check(&bob, "genuine copy refused after a restart");

    // The backup; then more traffic from Alice alone.
    let backup = grab(&alice.path);
    let g3 = ready(&mut alice, &mut rng, T0, &bob, |d, r| {
        d.send_group(r, T0, group, b"g3")
    });
    for (_, pairwise) in &g3.envelopes {
        read(&mut bob, T0, &alice, pairwise).unwrap();
        bob.persist();
    }
    let g3_envelope = g3.group.clone().unwrap().0;
    assert_eq!(take(&mut bob, T0, &alice, &g3_envelope).0, b"g3");
    let d3 = from_alice(&mut rng, &mut alice, &bob, b"d3");
    assert_eq!(take(&mut bob, T0, &alice, &d3).0, b"d3");
    check(&bob, "after the traffic the backup does not hold");

    // Alice's files put back to the backup; loaded as restored.
    reopen_as(&mut alice, dir.path(), "alice-restored.db", &backup);
    assert!(matches!(
        alice.store.load(alice.last_epoch),
        Err(StoreError::StaleSnapshot { .. })
    ));
    alice.device = alice.store.load_restored(alice.last_epoch, T1).unwrap();
    alice.persist();
    check(&alice, "restored");
    assert!(alice.device.unconfirmed_groups().any(|g| g == group));
    // Its own list, issued since the restore.
    alice.primary.renew(T1).unwrap();
    alice.persist_primary();
    check(&alice, "own list renewed");
    let own = alice.primary.device_list().signed().clone();
    alice.device.update_device_list(T1, &a, own).unwrap();
    alice.persist();
    assert!(!alice.device.awaiting_own_list());
    check(&alice, "own list read");
    alice.device.set_group_members(group, &[a, b]).unwrap();
    alice.persist();
    check(&alice, "group set again");

    // Sends after the restore. Alice's session with Bob was kept and its sending chain
    // renewed, but Bob never read a message of the chain the backup holds (the relay broke
    // the only one, and its retry came on another session): the renewed chain does not open
    // at Bob (PROTOCOL.md 8.5, "Renewal"), and a retry replaces the session. Each message is
    // read exactly once.
    let d4 = ready(&mut alice, &mut rng, T1, &bob, |d, r| {
        d.send(r, T1, &b, b"d4")
    });
    check(&alice, "direct sent after the restore");
    let d4 = envelope(&d4);
    assert_eq!(
        deliver(
            &mut rng,
            &mut bob,
            &mut alice,
            T1,
            &d4,
            b"d4",
            RetryReason::AuthenticationFailed
        ),
        b"d4"
    );
    check(&alice, "after the retry of the restore's first message");
    check(&bob, "after the restore's first message");
    let g4 = ready(&mut alice, &mut rng, T1, &bob, |d, r| {
        d.send_group(r, T1, group, b"g4")
    });
    check(&alice, "group sent after the restore");
    for (_, pairwise) in &g4.envelopes {
        let r = read(&mut bob, T1, &alice, pairwise).unwrap();
        assert!(matches!(r, Received::SenderKey { .. }), "{r:?}");
        bob.persist();
        check(&bob, "rotated sender key read");
    }
    let g4_envelope = g4.group.clone().unwrap().0;
    assert_eq!(take(&mut bob, T1, &alice, &g4_envelope).0, b"g4");
    check(&bob, "after the restore's sends");
    bob.restart();
    for e in [&g1_envelope, &g3_envelope, &g4_envelope, &genuine, &d3, &d4] {
        let again = read(&mut bob, T1, &alice, e);
        assert!(is_duplicate(&again), "{again:?}");
    }

    // The primary loaded as restored (its database was put back too) and resynced.
    alice.primary = alice
        .store
        .load_primary_restored(alice.primary_epoch)
        .unwrap();
    assert!(alice.primary.needs_resync());
    let current = alice.primary.device_list().signed().clone();
    alice.primary.resync(T2, current).unwrap();
    alice.persist_primary();
    check(&alice, "primary resynced");
    let own = alice.primary.device_list().signed().clone();
    alice.device.update_device_list(T2, &a, own).unwrap();
    alice.persist();
    check(&alice, "resynced list read");
}
