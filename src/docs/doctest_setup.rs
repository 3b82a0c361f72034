// Shared, hidden setup for the documentation examples (not part of the crate): each example
// includes it with
// `# include!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/docs/doctest_setup.rs"));`
// and uses what it needs from `setup`. It plays the app's server (device lists and prekey
// bundles) and runs the loops every app writes: a send until it is ready, a receive that
// fetches a list it lacks. A real app also persists `take_changes()` where this drops it.
#[allow(dead_code, unused_imports)]
mod setup {
    pub use getrandom::{SysRng, rand_core::UnwrapErr};
    pub use ratchetry::devices::{
        AccountKey, DeviceAddress, DevicePolicy, LinkRequest, PRIMARY_DEVICE, Primary,
        SignedDeviceList, complete_link,
    };
    pub use ratchetry::fanout::{Device, DeviceConfig, Outbox, Outgoing, Received};
    pub use ratchetry::{Error, FanoutError, IdentityKeyPair, PreKeyBundle, Timestamp};
    use std::collections::BTreeMap;

    pub type Rng = UnwrapErr<SysRng>;

    /// The untrusted server: the accounts' signed device lists and the devices' bundles.
    #[derive(Default)]
    pub struct Server {
        pub lists: BTreeMap<AccountKey, SignedDeviceList>,
        pub bundles: BTreeMap<DeviceAddress, PreKeyBundle>,
    }

    impl Server {
        /// Publishes the primary's current list.
        pub fn publish(&mut self, primary: &Primary) {
            let list = primary.device_list().signed().clone();
            self.lists.insert(primary.account(), list);
        }

        /// Publishes a device's bundle.
        pub fn register(&mut self, device: &Device) {
            self.bundles
                .insert(device.address(), device.bundle(None, None));
        }

        /// Runs a send on `device` until it is ready, fetching lists and bundles.
        pub fn ready(
            &self,
            device: &mut Device,
            rng: &mut Rng,
            now: Timestamp,
            mut op: impl FnMut(&mut Device, &mut Rng) -> Result<Outgoing, Error>,
        ) -> Result<Outbox, Error> {
            loop {
                match op(device, rng)? {
                    Outgoing::Ready(outbox) => {
                        let _ = device.take_changes();
                        return Ok(outbox);
                    }
                    Outgoing::NeedDeviceLists(accounts) => {
                        for a in accounts {
                            device.update_device_list(now, &a, self.lists[&a].clone())?;
                        }
                    }
                    Outgoing::NeedBundles(devices) => {
                        let fetched: Vec<_> =
                            devices.iter().map(|d| (*d, self.bundles[d].clone())).collect();
                        device.start_sessions(rng, now, &fetched)?;
                    }
                }
            }
        }

        /// Receives `envelope` on `device`, fetching a list it lacks or holds an older version
        /// of (the sender's, or its own account's).
        pub fn receive(
            &self,
            device: &mut Device,
            now: Timestamp,
            envelope: &[u8],
        ) -> Result<Received, Error> {
            let mut fetched = 0;
            loop {
                match device.receive(now, envelope) {
                    Err(Error::Fanout(
                        FanoutError::UnknownAccount(account)
                        | FanoutError::DeviceListsDiverge { account, .. },
                    )) if fetched < 2 => {
                        device.update_device_list(now, &account, self.lists[&account].clone())?;
                        fetched += 1;
                    }
                    other => {
                        let received = other?;
                        let _ = device.take_changes();
                        return Ok(received);
                    }
                }
            }
        }

        /// A one-device account: its primary and its phone.
        pub fn account(&mut self, rng: &mut Rng, now: Timestamp) -> Result<(Primary, Device), Error> {
            let identity = IdentityKeyPair::generate(rng);
            let primary = Primary::new(rng, &identity, now, DevicePolicy::default());
            let list = primary.device_list().clone();
            let (mut phone, _upload) =
                Device::new(rng, now, identity, PRIMARY_DEVICE, list, 5, DeviceConfig::default())?;
            let _ = phone.take_changes();
            self.publish(&primary);
            self.register(&phone);
            Ok((primary, phone))
        }

        /// Links a companion to `primary`'s account and publishes the new list.
        pub fn link(
            &mut self,
            rng: &mut Rng,
            now: Timestamp,
            primary: &mut Primary,
        ) -> Result<Device, Error> {
            let identity = IdentityKeyPair::generate(rng);
            let invitation = primary.invite(rng, now)?;
            let approval = primary.approve(now, &LinkRequest::new(&identity, &invitation))?;
            let policy = DevicePolicy::default();
            let (list, confirmation) = complete_link(&identity, &invitation, &approval, &policy)?;
            primary.confirm(&confirmation)?;
            let (mut device, _upload) =
                Device::new(rng, now, identity, approval.device, list, 5, DeviceConfig::default())?;
            let _ = device.take_changes();
            self.publish(primary);
            self.register(&device);
            Ok(device)
        }
    }

    /// The envelope of `outbox` addressed to `to`.
    pub fn envelope_to(outbox: &Outbox, to: DeviceAddress) -> Vec<u8> {
        let found = outbox.envelopes.iter().find(|(a, _)| *a == to);
        found.map(|(_, e)| e.clone()).unwrap_or_default()
    }
}
use setup::*;
