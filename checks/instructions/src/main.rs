//! Instruction counts of the hot paths, for `.ci/instructions.sh`.
//!
//! `ratchetry-instructions <op>` builds the op's fixture, runs the op once to warm it up (lazy
//! CPU-feature detection, first allocations), then runs it `iterations` times inside
//! [`counted`]. The script runs that under `valgrind --tool=callgrind
//! --toggle-collect=*counted*`, so only the counted calls are measured, and divides by the
//! iterations. Fixtures come from a seeded RNG, so the count is the same on every run of the
//! same binary. `--list` prints each op and its iterations.
//!
//! `ratchetry-instructions <op> <runs>` runs the op `runs` times instead and prints the
//! wall-clock time per run, outside valgrind: a timing that includes everything the op's
//! closure does, drops included (criterion's `iter_batched` drops each output after its clock
//! stops, so the receive benches leave out freeing and wiping the unit of records). Read it
//! beside its floor's, run the same way, alternating.
//!
//! Floors (the primitive calls an op cannot avoid) are counted beside their ops, as in the
//! criterion benches, so a baseline reads as ratios too.

use std::hint::black_box;

use ratchetry::fanout::Outgoing;
use ratchetry::group::OutboundGroupSession;
use ratchetry::group::{GroupConfig, GroupId, GroupMessage, GroupSender, InboundSenderKey};
use ratchetry::testing::SeededRng;
use ratchetry::testing::hooks::{fill_read_ring, store_before_pq_ratchet};
use ratchetry::testing::raw::{aes256gcm_open, aes256gcm_seal, hkdf_sha256, hmac_sha256};
use ratchetry::testing::scale::AddressBook;
use ratchetry::{
    IdentityKeyPair, IncomingMessage, PreKeyBundle, PreKeyStore, Session, SessionConfig, Timestamp,
};

const NOW: Timestamp = Timestamp(1_790_000_000_000);
const KIB: usize = 1024;

/// One measured operation: its name, how many times it runs, and its fixture.
struct Op {
    name: &'static str,
    iterations: usize,
    /// Builds the fixture (not counted) and returns one run of the op.
    setup: fn(&mut SeededRng, usize) -> Box<dyn FnMut()>,
}

const OPS: &[Op] = &[
    Op {
        name: "ratchet/encrypt/1KiB",
        iterations: 32,
        setup: ratchet_encrypt,
    },
    Op {
        name: "ratchet/decrypt/1KiB",
        iterations: 32,
        setup: ratchet_decrypt,
    },
    Op {
        name: "ratchet/pq/encrypt/1KiB",
        iterations: 32,
        setup: pq_encrypt,
    },
    Op {
        name: "ratchet/pq/decrypt/1KiB",
        iterations: 32,
        setup: pq_decrypt,
    },
    Op {
        name: "ratchet/conversation/1KiB",
        iterations: 152,
        setup: conversation,
    },
    Op {
        name: "ratchet/pq/conversation/1KiB",
        iterations: 152,
        setup: pq_conversation,
    },
    Op {
        name: "ratchet/pq/load/304",
        iterations: 1,
        setup: pq_load,
    },
    Op {
        name: "floor/seal/1KiB",
        iterations: 32,
        setup: floor_seal,
    },
    Op {
        name: "floor/open/1KiB",
        iterations: 32,
        setup: floor_open,
    },
    Op {
        name: "pqxdh/initiate",
        iterations: 8,
        setup: pqxdh_initiate,
    },
    Op {
        name: "pqxdh/accept",
        iterations: 8,
        setup: pqxdh_accept,
    },
    Op {
        name: "group/encrypt/1KiB",
        iterations: 32,
        setup: group_encrypt,
    },
    Op {
        name: "group/decrypt/1KiB",
        iterations: 32,
        setup: group_decrypt,
    },
    Op {
        name: "fanout/send/4dev/1KiB",
        iterations: 16,
        setup: fanout_send,
    },
    Op {
        name: "fanout/send+records/4dev/1KiB",
        iterations: 16,
        setup: fanout_send_records,
    },
    Op {
        name: "fanout/receive/1KiB",
        iterations: 16,
        setup: fanout_receive,
    },
    Op {
        name: "fanout/receive+records/1KiB",
        iterations: 16,
        setup: fanout_receive_records,
    },
    Op {
        name: "fanout/send_group/steady/256x4/1KiB",
        iterations: 16,
        setup: fanout_group_steady,
    },
    Op {
        name: "fanout/load/1000",
        iterations: 4,
        setup: fanout_load,
    },
    Op {
        name: "fanout/load/1000+500groups",
        iterations: 4,
        setup: fanout_load_groups,
    },
    Op {
        name: "floor/load/1000",
        iterations: 4,
        setup: floor_load,
    },
];

/// The measured region: callgrind collects only inside this function.
#[inline(never)]
fn counted(run: &mut dyn FnMut(), iterations: usize) {
    for _ in 0..iterations {
        run();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--list") => {
            for op in OPS {
                println!("{} {}", op.name, op.iterations);
            }
        }
        // `cargo bench -- --test` runs every bench target with `--test`: one quick pass.
        Some("--test") | Some("--bench") | None => {
            for op in OPS {
                run(op, 1);
            }
        }
        Some(name) => match OPS.iter().find(|op| op.name == name) {
            Some(op) => match args.get(1).map(|runs| runs.parse::<usize>()) {
                None => {
                    run(op, op.iterations);
                }
                Some(Ok(runs)) if runs > 0 => {
                    let time = run(op, runs);
                    println!("{name}: {} ns a run", time.as_nanos() / runs as u128);
                }
                Some(_) => {
                    eprintln!("runs must be a positive count");
                    std::process::exit(2);
                }
            },
            None => {
                eprintln!("unknown op {name}; --list names them");
                std::process::exit(2);
            }
        },
    }
}

/// Builds the op's fixture, runs it once, then `iterations` times in [`counted`]: the time
/// those took.
fn run(op: &Op, iterations: usize) -> std::time::Duration {
    let rng = &mut SeededRng::from_label(op.name);
    // One warm-up run, then the counted ones: the fixture holds enough inputs for both.
    let mut once = (op.setup)(rng, iterations + 1);
    once();
    let start = std::time::Instant::now();
    counted(&mut *once, iterations);
    start.elapsed()
}

fn body() -> Vec<u8> {
    vec![0x42; KIB]
}

/// Two sessions past their pre-key messages, as after a first exchange.
/// A pair; with `pq`, its sessions run the post-quantum ratchet and are 300 messages into a
/// conversation (mid-epoch, both chains mixing an epoch secret).
fn pair_with(rng: &mut SeededRng, pq: bool) -> (Session, Session) {
    let a = IdentityKeyPair::generate(rng);
    let b = IdentityKeyPair::generate(rng);
    let mut store = PreKeyStore::new(rng, &b, NOW, Default::default());
    // Without `pq`, the store is one from before the ratchet: its last-resort ML-KEM prekey
    // is unmarked.
    let kem = if pq {
        Some(store.generate_one_time_kem_prekeys(rng, &b, NOW, 1)[0].id)
    } else {
        store_before_pq_ratchet(&mut store, &b);
        None
    };
    let bundle = store.bundle(&b, None, kem).verify().unwrap();
    let mut sa = Session::initiate(rng, &a, &bundle, SessionConfig::default()).unwrap();
    let w = sa.encrypt(rng, b"hi").unwrap();
    let IncomingMessage::PreKey(m) = IncomingMessage::decode(&w).unwrap() else {
        panic!("a first message is a pre-key message")
    };
    let (mut sb, _) = Session::accept(&b, &mut store, &m, SessionConfig::default()).unwrap();
    let r = sb.encrypt(rng, b"hi").unwrap();
    sa.decrypt(&IncomingMessage::decode(&r).unwrap()).unwrap();
    if pq {
        for _ in 0..150 {
            let w = sa.encrypt(rng, b"warm").unwrap();
            sb.decrypt(&IncomingMessage::decode(&w).unwrap()).unwrap();
            let w = sb.encrypt(rng, b"warm").unwrap();
            sa.decrypt(&IncomingMessage::decode(&w).unwrap()).unwrap();
        }
    }
    (sa, sb)
}

fn pq_encrypt(rng: &mut SeededRng, _: usize) -> Box<dyn FnMut()> {
    encrypt_op(rng, true)
}

fn pq_decrypt(rng: &mut SeededRng, runs: usize) -> Box<dyn FnMut()> {
    decrypt_op(rng, runs, true)
}

/// One message of a strict ping-pong, sent and received (the direction alternates): every
/// message starts a chain, so each carries a DH ratchet step; with the post-quantum ratchet,
/// 152 of them span two epochs, whose KEM work they share.
fn ping_pong(rng: &mut SeededRng, pq: bool) -> Box<dyn FnMut()> {
    let (a, b) = pair_with(rng, pq);
    let mut sides = [a, b];
    let body = body();
    let mut rng = rng.clone();
    let mut turn = 0;
    Box::new(move || {
        let (from, to) = (turn % 2, 1 - turn % 2);
        turn += 1;
        let w = sides[from].encrypt(&mut rng, &body).unwrap();
        black_box(
            sides[to]
                .decrypt(&IncomingMessage::decode(&w).unwrap())
                .unwrap(),
        );
    })
}

fn conversation(rng: &mut SeededRng, _: usize) -> Box<dyn FnMut()> {
    ping_pong(rng, false)
}

fn pq_conversation(rng: &mut SeededRng, _: usize) -> Box<dyn FnMut()> {
    ping_pong(rng, true)
}

/// Decoding the 304 states the two sessions of `ratchet/pq/conversation` pass through in 152
/// messages (two epochs): publications and encapsulations at every step, vectors part and all
/// collected. Each is a session a device may load; a state that derived an ML-KEM value while
/// loading would add an encapsulation's millions of instructions to this count (until stop 33,
/// an encapsulation holding a whole vector computed its `c2` at load).
fn pq_load(rng: &mut SeededRng, _: usize) -> Box<dyn FnMut()> {
    let (a, b) = pair_with(rng, true);
    let mut sides = [a, b];
    let mut states = Vec::new();
    for turn in 0..152 {
        let (from, to) = (turn % 2, 1 - turn % 2);
        let w = sides[from].encrypt(rng, b"state").unwrap();
        sides[to]
            .decrypt(&IncomingMessage::decode(&w).unwrap())
            .unwrap();
        states.extend(sides.iter().map(Session::to_bytes));
    }
    Box::new(move || {
        for s in &states {
            black_box(Session::from_bytes(s).unwrap());
        }
    })
}

fn ratchet_encrypt(rng: &mut SeededRng, _: usize) -> Box<dyn FnMut()> {
    encrypt_op(rng, false)
}

fn ratchet_decrypt(rng: &mut SeededRng, runs: usize) -> Box<dyn FnMut()> {
    decrypt_op(rng, runs, false)
}

/// Encrypts in one sending chain, with or without the post-quantum ratchet.
fn encrypt_op(rng: &mut SeededRng, pq: bool) -> Box<dyn FnMut()> {
    let (mut a, _) = pair_with(rng, pq);
    let body = body();
    let mut rng = rng.clone();
    Box::new(move || {
        black_box(a.encrypt(&mut rng, black_box(&body)).unwrap());
    })
}

/// Decrypts messages of one chain, in order, with or without the post-quantum ratchet.
fn decrypt_op(rng: &mut SeededRng, runs: usize, pq: bool) -> Box<dyn FnMut()> {
    let (mut a, mut b) = pair_with(rng, pq);
    let body = body();
    let mut wires: Vec<Vec<u8>> = (0..runs).map(|_| a.encrypt(rng, &body).unwrap()).collect();
    wires.reverse();
    Box::new(move || {
        let wire = wires.pop().unwrap();
        black_box(b.decrypt(&IncomingMessage::decode(&wire).unwrap()).unwrap());
    })
}

/// KDF_CK (two HMACs), the message-key HKDF and AES-256-GCM over 1 KiB with a 124-byte AD.
fn message_keys(salt: &[u8; 16]) -> ([u8; 32], [u8; 12]) {
    let ck = [9u8; 32];
    let mk = hmac_sha256(&ck, &[1]);
    black_box(hmac_sha256(&ck, &[2]));
    let mut okm = [0u8; 44];
    hkdf_sha256(Some(salt), &mk, b"ratchetry v1 message keys", &mut okm).unwrap();
    let (key, nonce) = okm.split_at(32);
    (key.try_into().unwrap(), nonce.try_into().unwrap())
}

fn floor_seal(_: &mut SeededRng, _: usize) -> Box<dyn FnMut()> {
    let body = body();
    Box::new(move || {
        let (key, nonce) = message_keys(&[8; 16]);
        black_box(aes256gcm_seal(&key, &nonce, &[3; 124], black_box(&body)));
    })
}

fn floor_open(_: &mut SeededRng, _: usize) -> Box<dyn FnMut()> {
    let (key, nonce) = message_keys(&[8; 16]);
    let sealed = aes256gcm_seal(&key, &nonce, &[3; 124], &body());
    Box::new(move || {
        let (key, nonce) = message_keys(&[8; 16]);
        black_box(aes256gcm_open(&key, &nonce, &[3; 124], black_box(&sealed)).unwrap());
    })
}

/// Verifying a bundle (with a one-time ML-KEM prekey) and starting a session from it.
fn pqxdh_initiate(rng: &mut SeededRng, _: usize) -> Box<dyn FnMut()> {
    let a = IdentityKeyPair::generate(rng);
    let b = IdentityKeyPair::generate(rng);
    let mut store = PreKeyStore::new(rng, &b, NOW, Default::default());
    let kem = store.generate_one_time_kem_prekeys(rng, &b, NOW, 1);
    let bundle: PreKeyBundle = store.bundle(&b, None, kem.first().map(|k| k.id));
    let mut rng = rng.clone();
    Box::new(move || {
        let verified = bundle.clone().verify().unwrap();
        black_box(Session::initiate(&mut rng, &a, &verified, SessionConfig::default()).unwrap());
    })
}

/// Accepting a pre-key message (last-resort ML-KEM prekey, no one-time prekey): each from a
/// new initiator, so each base key is new to the replay check.
fn pqxdh_accept(rng: &mut SeededRng, runs: usize) -> Box<dyn FnMut()> {
    let b = IdentityKeyPair::generate(rng);
    let mut store = PreKeyStore::new(rng, &b, NOW, Default::default());
    let bundle = store.bundle(&b, None, None).verify().unwrap();
    let mut wires: Vec<Vec<u8>> = (0..runs)
        .map(|_| {
            let a = IdentityKeyPair::generate(rng);
            let mut s = Session::initiate(rng, &a, &bundle, SessionConfig::default()).unwrap();
            s.encrypt(rng, b"hi").unwrap()
        })
        .collect();
    wires.reverse();
    Box::new(move || {
        let wire = wires.pop().unwrap();
        let IncomingMessage::PreKey(m) = IncomingMessage::decode(&wire).unwrap() else {
            panic!("a first message is a pre-key message")
        };
        black_box(Session::accept(&b, &mut store, &m, SessionConfig::default()).unwrap());
    })
}

fn group_sender(rng: &mut SeededRng) -> GroupSender {
    GroupSender::new(IdentityKeyPair::generate(rng).public(), &[0x22; 36]).unwrap()
}

fn group_encrypt(rng: &mut SeededRng, _: usize) -> Box<dyn FnMut()> {
    let sender = group_sender(rng);
    let mut out = OutboundGroupSession::new(rng, GroupId([1; 32]), sender);
    let body = body();
    let mut rng = rng.clone();
    Box::new(move || {
        black_box(out.encrypt(&mut rng, black_box(&body)).unwrap());
    })
}

fn group_decrypt(rng: &mut SeededRng, runs: usize) -> Box<dyn FnMut()> {
    let sender = group_sender(rng);
    let mut out = OutboundGroupSession::new(rng, GroupId([2; 32]), sender.clone());
    let mut rx = InboundSenderKey::new(sender, &out.distribution());
    let body = body();
    let mut wires: Vec<Vec<u8>> = (0..runs)
        .map(|_| out.encrypt(rng, &body).unwrap())
        .collect();
    wires.reverse();
    let config = GroupConfig::default();
    Box::new(move || {
        let wire = wires.pop().unwrap();
        black_box(
            rx.decrypt(&config, &GroupMessage::decode(&wire).unwrap())
                .unwrap(),
        );
    })
}

/// A 1:1 message to an account of 4 devices, from a device that also follows 250 more.
fn fanout_send(rng: &mut SeededRng, _: usize) -> Box<dyn FnMut()> {
    send_op(rng, false)
}

/// The same send and the unit of records it changed, as an app takes them to persist (and
/// drops, once written): four session records and the sent journal's entry.
fn fanout_send_records(rng: &mut SeededRng, _: usize) -> Box<dyn FnMut()> {
    send_op(rng, true)
}

fn send_op(rng: &mut SeededRng, records: bool) -> Box<dyn FnMut()> {
    let mut book = AddressBook::new(rng, NOW, 1000, 0);
    let body = body();
    let mut rng = rng.clone();
    if records {
        // The device as built is changed whole: its first unit holds every record.
        let _ = book.device.take_changes(&mut rng);
    }
    Box::new(move || {
        let Outgoing::Ready(o) = book
            .device
            .send(&mut rng, NOW, &book.peer_account, &body)
            .unwrap()
        else {
            panic!("every session is established")
        };
        black_box(o);
        if records {
            let _ = black_box(book.device.take_changes(&mut rng));
        }
    })
}

/// A 1:1 message from the peer's phone read by a device with sessions with 1,000 devices.
fn fanout_receive(rng: &mut SeededRng, runs: usize) -> Box<dyn FnMut()> {
    receive_op(rng, runs, false)
}

/// The same receive and the unit of records it changed, as an app takes them to persist: the
/// session's record (hundreds of bytes of ratchet state) is written with every message.
fn fanout_receive_records(rng: &mut SeededRng, runs: usize) -> Box<dyn FnMut()> {
    receive_op(rng, runs, true)
}

fn receive_op(rng: &mut SeededRng, runs: usize, records: bool) -> Box<dyn FnMut()> {
    let mut book = AddressBook::new(rng, NOW, 1000, 0);
    // A device in use: its read ring full, so each receive searches 2,000 ids and drops one.
    fill_read_ring(&mut book.device);
    let subject = book.device.address();
    let body = body();
    let mut envelopes: Vec<Vec<u8>> = (0..runs)
        .map(|_| {
            let Outgoing::Ready(o) = book.peer[0]
                .send(rng, NOW, &subject.account, &body)
                .unwrap()
            else {
                panic!("the peer's sessions are established")
            };
            o.envelopes
                .into_iter()
                .find(|(to, _)| *to == subject)
                .unwrap()
                .1
        })
        .collect();
    envelopes.reverse();
    if records {
        // The device as built is changed whole: its first unit holds every record.
        let _ = book.device.take_changes(rng);
    }
    // The units' tags, drawn as an app's RNG would draw them.
    let mut tags = SeededRng::from_label("instructions: unit tags");
    Box::new(move || {
        let envelope = envelopes.pop().unwrap();
        black_box(book.device.receive(NOW, &envelope).unwrap());
        if records {
            let _ = black_box(book.device.take_changes(&mut tags));
        }
    })
}

/// A steady message to a group of 256 member accounts with 4 devices each (1,024 devices):
/// the first send, which distributes the key, is made during setup. Beside `group/encrypt`:
/// what a steady send adds must not grow with the members.
fn fanout_group_steady(rng: &mut SeededRng, _: usize) -> Box<dyn FnMut()> {
    let mut book = AddressBook::new(rng, NOW, 1024, 0);
    let group = GroupId([0x5a; 32]);
    let members: Vec<_> = book.accounts[..256].to_vec();
    book.device.set_group_members(group, &members).unwrap();
    let body = body();
    let Outgoing::Ready(_) = book.device.send_group(rng, NOW, group, &body).unwrap() else {
        panic!("every session is established")
    };
    let mut rng = rng.clone();
    Box::new(move || {
        let Outgoing::Ready(o) = book.device.send_group(&mut rng, NOW, group, &body).unwrap()
        else {
            panic!("a steady send is ready")
        };
        black_box(o);
    })
}

/// Loading a device with sessions with 1,000 devices from its records.
fn fanout_load(rng: &mut SeededRng, _: usize) -> Box<dyn FnMut()> {
    let book = AddressBook::new(rng, NOW, 1000, 0);
    Box::new(move || {
        black_box(book.load());
    })
}

/// The same load with the scale bench's 500 groups of 20 member accounts: what a device's
/// groups add to its start (`fanout/load/1000` has none).
fn fanout_load_groups(rng: &mut SeededRng, _: usize) -> Box<dyn FnMut()> {
    let book = AddressBook::new(rng, NOW, 1000, 500);
    Box::new(move || {
        black_box(book.load());
    })
}

/// The load's floor, as in the scale bench: `Session::from_bytes` of each session record of
/// the same device (one session each, after the record's `u8(1) ‖ u32(length)`), and its drop.
fn floor_load(rng: &mut SeededRng, _: usize) -> Box<dyn FnMut()> {
    let book = AddressBook::new(rng, NOW, 1000, 0);
    let sessions: Vec<Vec<u8>> = book
        .records
        .iter()
        .filter(|(k, _)| k[0] == 0x08)
        .map(|(_, v)| v[5..].to_vec())
        .collect();
    Box::new(move || {
        for v in &sessions {
            black_box(Session::from_bytes(v).unwrap());
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every op's fixture builds and the op runs: what the script counts works.
    #[test]
    fn every_op_runs() {
        for op in OPS {
            run(op, 1);
        }
    }
}
