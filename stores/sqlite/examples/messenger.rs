//! A small messenger, end to end, through the public API only: an in-memory relay
//! (`ratchetry::relay`), every device in its own SQLite database (`ratchetry_sqlite`), and the
//! driver's loops (`ratchetry::driver`). Alice (phone, desktop), Bob (phone, laptop) and Carol
//! (phone) talk 1:1 and in a group; Bob's laptop restarts from its database; Bob's phone
//! crashes before committing a read and reads it again; Alice links a tablet, which gets her
//! history, while Bob, holding her old list, is refused by the relay and repairs his send; Bob
//! calls Alice; Bob unlinks his laptop. Each device prints what it read.
//!
//! Run with `cargo run -p ratchetry-sqlite --example messenger`.

use std::path::PathBuf;

use getrandom::{SysRng, rand_core::UnwrapErr};
use ratchetry::calls::{Call, CallConfig, CallKind};
use ratchetry::devices::{
    AccountKey, DeviceAddress, LinkRequest, ListLimits, PRIMARY_DEVICE, Primary, PrimaryPolicy,
    complete_link,
};
use ratchetry::driver::{self, Directory, Inbound};
use ratchetry::fanout::{Device, DeviceConfig, Outbox, Outgoing, Received};
use ratchetry::group::GroupId;
use ratchetry::history::{HistoryOpener, HistorySealer};
use ratchetry::persist::StorageKey;
use ratchetry::relay::Relay;
use ratchetry::{Error, IdentityKeyPair, ServerError, Timestamp};
use ratchetry_sqlite::SqliteStore;

type Rng = UnwrapErr<SysRng>;
type Result<T, E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

/// One installation: its device, its database, and the epoch kept outside it.
struct Client {
    name: &'static str,
    device: Device,
    store: SqliteStore,
    path: PathBuf,
    key: StorageKey,
    last_epoch: u64,
}

struct App {
    rng: Rng,
    now: Timestamp,
    relay: Relay,
    clients: Vec<Client>,
    dir: PathBuf,
}

impl App {
    /// A new installation: its database, its first unit, its prekeys on the relay.
    fn install(
        &mut self,
        name: &'static str,
        device: Device,
        upload: ratchetry::x3dh::OneTimePreKeys,
    ) -> Result<usize> {
        let key = StorageKey::generate(&mut self.rng);
        let path = self.dir.join(format!("{name}.db"));
        let store = SqliteStore::open(&path, key.clone())?;
        let address = device.address();
        self.relay
            .publish_prekeys(address, device.bundle(None, None))?;
        self.relay.upload_one_time(address, &upload)?;
        self.clients.push(Client {
            name,
            device,
            store,
            path,
            key,
            last_epoch: 0,
        });
        let i = self.clients.len() - 1;
        self.persist(i)?;
        Ok(i)
    }

    /// A new account: its primary (stored in the phone's database) and its phone.
    fn account(&mut self, name: &'static str) -> Result<(Primary, usize)> {
        let identity = IdentityKeyPair::generate(&mut self.rng);
        let mut primary =
            Primary::new(&mut self.rng, &identity, self.now, PrimaryPolicy::default());
        self.relay
            .publish_list(primary.device_list().signed().clone())?;
        let list = primary.device_list().clone();
        let (phone, upload) = Device::new(
            &mut self.rng,
            self.now,
            identity,
            PRIMARY_DEVICE,
            list,
            10,
            DeviceConfig::default(),
        )?;
        let i = self.install(name, phone, upload)?;
        self.clients[i]
            .store
            .write_primary(&primary.take_changes(&mut self.rng))?;
        Ok((primary, i))
    }

    /// Links a companion: the primary approves, the new list goes to the relay.
    fn link(&mut self, primary: &mut Primary, phone: usize, name: &'static str) -> Result<usize> {
        let identity = IdentityKeyPair::generate(&mut self.rng);
        let invitation = primary.invite(&mut self.rng, self.now)?;
        let approval = primary.approve(self.now, &LinkRequest::new(&identity, &invitation))?;
        let limits = ListLimits::default();
        let (list, confirmation) = complete_link(&identity, &invitation, &approval, &limits)?;
        primary.confirm(&confirmation)?;
        // One unit: the invitation's, the list's, the approval's and the confirmation's records.
        self.clients[phone]
            .store
            .write_primary(&primary.take_changes(&mut self.rng))?;
        self.relay
            .publish_list(primary.device_list().signed().clone())?;
        let (device, upload) = Device::new(
            &mut self.rng,
            self.now,
            identity,
            approval.device,
            list,
            10,
            DeviceConfig::default(),
        )?;
        self.install(name, device, upload)
    }

    fn persist(&mut self, i: usize) -> Result<()> {
        let c = &mut self.clients[i];
        c.last_epoch = c.store.write(&c.device.take_changes(&mut self.rng))?.epoch;
        Ok(())
    }

    /// Sends until the relay takes it; each refusal for a stale list is repaired (one list
    /// per refusal, a few times at most).
    fn send(
        &mut self,
        i: usize,
        op: impl Fn(&mut Device, &mut Rng, Timestamp) -> Result<Outgoing, Error>,
    ) -> Result<Outbox> {
        for _ in 0..4 {
            let now = self.now;
            let c = &mut self.clients[i];
            let (outbox, _) = driver::send(
                &mut c.device,
                &mut self.rng,
                now,
                &mut self.relay,
                |d, r| op(d, r, now),
            )?;
            self.persist(i)?;
            let c = &mut self.clients[i];
            match self.relay.submit(c.device.address(), &outbox) {
                Ok(()) => return Ok(outbox),
                Err(ServerError::StaleList { account, .. }) => {
                    println!(
                        "  relay refused {}'s batch: stale list; fetching it and sending again",
                        c.name
                    );
                    for list in self.relay.device_lists(&[account])? {
                        c.device.update_device_list(now, &account, list)?;
                    }
                    c.device.not_delivered(
                        outbox.send_id.ok_or("a message has a send id")?,
                        &outbox.recipients(),
                    )?;
                    self.persist(i)?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err("the relay kept refusing".into())
    }

    /// Reads everything waiting for client `i`, persisting before acknowledging.
    fn sync(&mut self, i: usize) -> Result<Vec<Received>> {
        let me = self.clients[i].device.address();
        let waiting: Vec<Vec<u8>> = self.relay.inbox(&me).map(<[u8]>::to_vec).collect();
        let mut read = Vec::new();
        for envelope in waiting {
            let c = &mut self.clients[i];
            let (inbound, _events) = driver::receive(
                &mut c.device,
                &mut self.rng,
                self.now,
                &mut self.relay,
                &envelope,
                |_| false,
            )?;
            self.persist(i)?;
            match inbound {
                Inbound::Read(r) => {
                    self.relay.ack(&me);
                    self.show(i, &r);
                    read.push(r);
                }
                Inbound::Hold { .. } | Inbound::AwaitList { .. } => self.relay.hold(&me),
                Inbound::AskAgain { to, request } => {
                    self.relay.ack(&me);
                    self.relay.deliver(to, request);
                }
                Inbound::Dropped(e) => {
                    self.relay.ack(&me);
                    println!("  {:<13} dropped an envelope: {e}", self.clients[i].name);
                }
                other => {
                    self.relay.ack(&me);
                    println!("  {:<13} {other:?}", self.clients[i].name);
                }
            }
        }
        Ok(read)
    }

    fn sync_all(&mut self) -> Result<()> {
        for i in 0..self.clients.len() {
            self.sync(i)?;
        }
        Ok(())
    }

    fn show(&self, i: usize, r: &Received) {
        let who = |a: &DeviceAddress| {
            let c = self.clients.iter().find(|c| c.device.address() == *a);
            c.map_or("?", |c| c.name)
        };
        let line = match r {
            Received::Direct { from, body, .. } => {
                format!("{}: {}", who(from), String::from_utf8_lossy(body))
            }
            Received::OwnCopy { from, body, .. } => format!(
                "(own copy from {}) {}",
                who(from),
                String::from_utf8_lossy(body)
            ),
            Received::Group { from, body, .. } => {
                format!("[group] {}: {}", who(from), String::from_utf8_lossy(body))
            }
            Received::SenderKey { from, .. } => format!("sender key of {}", who(from)),
            Received::CallKey { from, message } => {
                format!("call key from {}, epoch {}", who(from), message.epoch())
            }
            Received::HistoryOffer { from, .. } => format!("history offer from {}", who(from)),
            other => format!("{other:?}"),
        };
        println!("  {:<13} read  {line}", self.clients[i].name);
    }

    /// Reopens client `i`'s database and loads its device (a restart).
    fn restart(&mut self, i: usize) -> Result<()> {
        let c = &mut self.clients[i];
        c.store = SqliteStore::open(&c.path, c.key.clone())?;
        c.device = c.store.load(c.last_epoch)?.ok_or("no device stored")?;
        Ok(())
    }
}

fn main() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("ratchetry-messenger-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let now = Timestamp(1_790_000_000_000);
    let mut app = App {
        rng: UnwrapErr(SysRng),
        now,
        relay: Relay::new(ListLimits::default()),
        clients: Vec::new(),
        dir: dir.clone(),
    };
    app.relay.set_time(now);

    println!("1. Accounts: Alice (phone, desktop), Bob (phone, laptop), Carol (phone)");
    let (mut alice, a_phone) = app.account("alice-phone")?;
    let a_desktop = app.link(&mut alice, a_phone, "alice-desktop")?;
    let (mut bob, b_phone) = app.account("bob-phone")?;
    let b_laptop = app.link(&mut bob, b_phone, "bob-laptop")?;
    let (carol, c_phone) = app.account("carol-phone")?;
    let (ak, bk, ck) = (alice.account(), bob.account(), carol.account());

    println!("\n2. Alice writes to Bob");
    app.send(a_phone, |d, r, now| d.send(r, now, &bk, b"lunch tomorrow?"))?;
    app.sync_all()?;
    app.send(b_laptop, |d, r, now| d.send(r, now, &ak, b"yes, noon"))?;
    app.sync_all()?;

    println!("\n3. A group of three");
    let group = GroupId([7; 32]);
    for c in &mut app.clients {
        c.device.set_group_members(group, &[ak, bk, ck])?;
    }
    for i in 0..app.clients.len() {
        app.persist(i)?;
    }
    app.send(c_phone, |d, r, now| {
        d.send_group(r, now, group, b"hello, friends")
    })?;
    app.sync_all()?;

    println!("\n4. Bob's laptop restarts from its database and keeps reading");
    app.restart(b_laptop)?;
    app.send(a_desktop, |d, r, now| {
        d.send_group(r, now, group, b"see you all at noon")
    })?;
    app.sync_all()?;

    println!("\n5. Bob's phone crashes after reading, before its transaction commits");
    app.send(c_phone, |d, r, now| d.send(r, now, &bk, b"don't be late"))?;
    let b = app.clients[b_phone].device.address();
    let envelope = app
        .relay
        .inbox(&b)
        .next()
        .ok_or("an envelope waits")?
        .to_vec();
    let _ = app.clients[b_phone].device.receive(app.now, &envelope)?; // read, never persisted
    app.restart(b_phone)?;
    println!("  bob-phone restarted: the relay still holds the unacknowledged envelope");
    app.sync(b_phone)?;

    println!("\n6. Alice links a tablet; it gets her history; Bob still holds her old list");
    let a_tablet = app.link(&mut alice, a_phone, "alice-tablet")?;
    let mut sealer = HistorySealer::new(&mut app.rng);
    let mut chunks = sealer.push(b"bob: yes, noon\ncarol: hello, friends\n");
    let (last, offer) = sealer.finish();
    chunks.extend(last);
    // The app's groups ride in the offer: group id, then its member accounts.
    let phone = &app.clients[a_phone].device;
    let mut groups = Vec::new();
    for g in phone.groups() {
        groups.extend_from_slice(&g.0);
        for member in phone.group_members(g).into_iter().flatten() {
            groups.extend_from_slice(&member.to_bytes());
        }
        groups.extend_from_slice(&[0; 32]); // end of this group's members
    }
    let offer = offer.with_app_data(&groups)?;
    let tablet = app.clients[a_tablet].device.address();
    for i in [a_phone, a_desktop] {
        let list = alice.device_list().signed().clone();
        app.clients[i]
            .device
            .update_device_list(app.now, &ak, list)?;
        app.persist(i)?;
    }
    app.send(a_phone, |d, r, now| {
        d.send_history_offer(r, now, tablet, &offer)
    })?;
    for r in app.sync(a_tablet)? {
        if let Received::HistoryOffer { offer, .. } = r {
            let mut opener = HistoryOpener::new(&offer);
            let history: Vec<u8> = chunks
                .iter()
                .map(|c| opener.push(c))
                .collect::<Result<Vec<_>, _>>()?
                .concat();
            opener.finish()?;
            println!("  alice-tablet opened {} bytes of history", history.len());
            let bytes32 = |m: &[u8]| -> Result<[u8; 32]> { Ok(m.try_into()?) };
            let mut fields = offer.app_data().chunks(32);
            while let Some(id) = fields.next() {
                let members = fields.by_ref().take_while(|m| *m != [0; 32]);
                let members: Vec<AccountKey> = members
                    .map(|m| Ok(AccountKey::from_bytes(&bytes32(m)?)?))
                    .collect::<Result<_>>()?;
                app.clients[a_tablet]
                    .device
                    .set_group_members(GroupId(bytes32(id)?), &members)?;
                println!(
                    "  alice-tablet joins group {:02x}.. with {} other accounts",
                    id[0],
                    members.len()
                );
            }
            app.persist(a_tablet)?;
        }
    }
    app.send(b_phone, |d, r, now| d.send(r, now, &ak, b"welcome, tablet"))?;
    app.sync_all()?;

    println!("\n7. Bob calls Alice");
    let caller = app.clients[b_phone].device.address();
    let mut callees: Vec<DeviceAddress> = [a_phone, a_desktop, a_tablet, b_laptop]
        .iter()
        .map(|&i| app.clients[i].device.address())
        .collect();
    callees.sort();
    let call = Call::start(
        &mut app.rng,
        CallKind::OneToOne,
        caller,
        &callees,
        &CallConfig::default(),
    )?;
    let message = call.key_message().clone();
    app.send(b_phone, |d, r, now| {
        d.send_call_key(r, now, &callees, &message)
    })?;
    for r in app.sync(a_desktop)? {
        if let Received::CallKey { from, message } = r {
            let me = app.clients[a_desktop].device.address();
            let answered = Call::from_key_message(me, &from, message, &CallConfig::default())?;
            let keys = answered.srtp_keys(&caller)?;
            println!(
                "  alice-desktop answers: SRTP keys for bob-phone's media ({} byte key)",
                keys.master_key().len()
            );
        }
    }
    app.sync_all()?;

    println!("\n8. Bob unlinks his laptop; Carol's next group message rotates her key");
    let laptop = app.clients[b_laptop].device.address();
    bob.unlink(app.now, laptop.device)?;
    app.clients[b_phone]
        .store
        .write_primary(&bob.take_changes(&mut app.rng))?;
    app.relay.publish_list(bob.device_list().signed().clone())?;
    app.send(c_phone, |d, r, now| {
        d.send_group(r, now, group, b"bye, old laptop")
    })?;
    app.sync_all()?;
    println!(
        "  bob-laptop's mailbox: {} envelopes",
        app.relay.inbox(&laptop).count()
    );

    std::fs::remove_dir_all(dir)?;
    Ok(())
}
