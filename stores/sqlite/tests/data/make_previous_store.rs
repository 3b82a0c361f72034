//! How `previous-store.db` and `previous-store.primary` were made: this program, as an example
//! of `ratchetry-sqlite` at commit 3e62051 (the version that stored the primary as one blob),
//! run as `cargo run -p ratchetry-sqlite --features ratchetry/test-support --example
//! previous_fixture -- stores/sqlite/tests/data`. It writes a database as that version writes
//! it: a device and its primary, the primary as one blob; and the primary's bytes beside it.
//! (Not compiled here: this version's `write_primary` takes units.)
use ratchetry::devices::{LinkRequest, ListLimits, PRIMARY_DEVICE, Primary, PrimaryPolicy, complete_link};
use ratchetry::fanout::{Device, DeviceConfig};
use ratchetry::persist::StorageKey;
use ratchetry::testing::SeededRng;
use ratchetry::{IdentityKeyPair, Timestamp};
use ratchetry_sqlite::SqliteStore;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).ok_or("a directory")?);
    let rng = &mut SeededRng::from_label("sqlite: previous store with a primary blob");
    let now = Timestamp(1_790_000_000_000);
    let phone = IdentityKeyPair::generate(rng);
    let mut primary = Primary::new(rng, &phone, now, PrimaryPolicy::default());
    let (mut device, _) = Device::new(rng, now, phone, PRIMARY_DEVICE, primary.device_list().clone(), 2, DeviceConfig::default())?;
    // A confirmed companion, one awaiting confirmation, and an invitation pending.
    for confirm in [true, false] {
        let laptop = IdentityKeyPair::generate(rng);
        let invitation = primary.invite(rng, now)?;
        let approval = primary.approve(now, &LinkRequest::new(&laptop, &invitation))?;
        let (_, confirmation) = complete_link(&laptop, &invitation, &approval, &ListLimits::default())?;
        if confirm {
            primary.confirm(&confirmation)?;
        }
    }
    primary.invite(rng, now)?;
    let key = StorageKey::from_bytes([0x42; 32]);
    let path = dir.join("previous-store.db");
    let _ = std::fs::remove_file(&path);
    let mut store = SqliteStore::open(&path, key)?;
    let primary_epoch = store.write_primary(&primary)?.epoch;
    let device_epoch = store.write(&device.take_changes(rng))?.epoch;
    drop(store);
    std::fs::write(dir.join("previous-store.primary"), &*primary.to_bytes())?;
    println!("primary epoch {primary_epoch}, device epoch {device_epoch}");
    Ok(())
}
