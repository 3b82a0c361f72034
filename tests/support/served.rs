//! A relay for the driver tests that serves what the test tells it, and helpers to receive
//! through it and to hand lists out.

use ratchetry::PreKeyBundle;
use ratchetry::devices::{AccountKey, DeviceAddress, SignedDeviceList};
use ratchetry::driver::{self, Directory, DriveError, Inbound};
use ratchetry::fanout::Event;

use super::World;

/// Serves fixed lists (whatever their age), or one list per fetch in turn (`rolling`), and no
/// bundles; counts the list fetches.
pub struct Served {
    pub lists: Vec<SignedDeviceList>,
    pub rolling: bool,
    pub fetches: usize,
}

impl Served {
    pub fn new(lists: Vec<SignedDeviceList>) -> Self {
        Self {
            lists,
            rolling: false,
            fetches: 0,
        }
    }

    pub fn rolling(lists: Vec<SignedDeviceList>) -> Self {
        Self {
            lists,
            rolling: true,
            fetches: 0,
        }
    }
}

impl Directory for Served {
    type Error = ();

    fn device_lists(&mut self, accounts: &[AccountKey]) -> Result<Vec<SignedDeviceList>, ()> {
        self.fetches += 1;
        let served: Vec<SignedDeviceList> = if self.rolling {
            let i = (self.fetches - 1).min(self.lists.len() - 1);
            vec![self.lists[i].clone()]
        } else {
            self.lists.clone()
        };
        Ok(served
            .into_iter()
            .filter(|l| accounts.contains(&l.account()))
            .collect())
    }

    fn bundles(&mut self, _: &[DeviceAddress]) -> Result<Vec<(DeviceAddress, PreKeyBundle)>, ()> {
        Ok(Vec::new())
    }
}

/// `to` receives `envelope` through the driver, `directory` serving the lists; persisted.
pub fn drive(
    w: &mut World,
    to: DeviceAddress,
    directory: &mut Served,
    envelope: &[u8],
) -> Result<Inbound, DriveError<()>> {
    drive_events(w, to, directory, envelope).map(|(inbound, _)| inbound)
}

/// [`drive`], with the events the lists taken brought.
pub fn drive_events(
    w: &mut World,
    to: DeviceAddress,
    directory: &mut Served,
    envelope: &[u8],
) -> Result<(Inbound, Vec<Event>), DriveError<()>> {
    let now = w.now;
    let mut device = w.devices.remove(&to).unwrap();
    let got = driver::receive(&mut device, &mut w.rng, now, directory, envelope, |_| false);
    w.devices.insert(to, device);
    w.persist(to);
    got
}

/// `to` receives `envelope` through the driver; asserts it came out byte-identical with
/// nothing to persist.
pub fn drive_unchanged(
    w: &mut World,
    to: DeviceAddress,
    directory: &mut Served,
    envelope: &[u8],
) -> Result<Inbound, DriveError<()>> {
    let now = w.now;
    let mut device = w.devices.remove(&to).unwrap();
    let before = device.to_bytes();
    let got = driver::receive(&mut device, &mut w.rng, now, directory, envelope, |_| false);
    assert_eq!(*before, *device.to_bytes(), "the drive changed {to:?}");
    assert!(!device.has_changes(), "the drive left a unit on {to:?}");
    w.devices.insert(to, device);
    got.map(|(inbound, _)| inbound)
}

pub fn signed(w: &mut World, account: &AccountKey) -> SignedDeviceList {
    w.primary(account).device_list().signed().clone()
}

/// Gives `account`'s current list to the devices named.
pub fn publish_to(w: &mut World, account: &AccountKey, to: &[DeviceAddress]) {
    let list = signed(w, account);
    let now = w.now;
    for d in to {
        w.device(*d)
            .update_device_list(now, account, list.clone())
            .unwrap();
        w.persist(*d);
    }
}
