// Shared, hidden setup for the documentation examples (not part of the crate): each example
// includes it with
// `# include!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/docs/doctest_setup.rs"));`
// and uses what it needs from `setup`. The app's server is the crate's in-memory relay
// (`ratchetry::relay::Relay`); `ready` and `receive` run the driver's loops against it. A real
// app persists `take_changes(rng)` where this drops it.
#[allow(dead_code, unused_imports)]
mod setup {
    pub use getrandom::{SysRng, rand_core::UnwrapErr};
    pub use ratchetry::devices::{
        AccountKey, DeviceAddress, ListLimits, PrimaryPolicy, LinkRequest, PRIMARY_DEVICE, Primary,
        SignedDeviceList, complete_link,
    };
    pub use ratchetry::fanout::{Device, DeviceConfig, Outbox, Outgoing, Received};
    pub use ratchetry::driver::{self, Directory, DriveError, Inbound};
    pub use ratchetry::relay::Relay;
    pub use ratchetry::{Error, FanoutError, IdentityKeyPair, PreKeyBundle, Timestamp};
    use std::convert::Infallible;

    pub type Rng = UnwrapErr<SysRng>;

    /// The untrusted server: the crate's in-memory relay (`ratchetry::relay::Relay`), which
    /// verifies and serves the accounts' lists and the devices' prekeys.
    pub struct Server {
        pub relay: Relay,
    }

    impl Default for Server {
        fn default() -> Self {
            let mut relay = Relay::new(ListLimits::default());
            relay.set_time(Timestamp(1_790_000_000_000));
            Self { relay }
        }
    }

    impl Server {
        /// Publishes the primary's current list.
        pub fn publish(&mut self, primary: &Primary) -> Result<(), Error> {
            self.relay.publish_list(primary.device_list().signed().clone())
        }

        /// Publishes a device's base prekeys.
        pub fn register(&mut self, device: &Device) -> Result<(), Error> {
            self.relay.publish_prekeys(device.address(), device.bundle(None, None))
        }

        /// The current list of `account`, as the app fetches it.
        pub fn list(&mut self, account: &AccountKey) -> SignedDeviceList {
            let Ok(mut lists) = self.relay.device_lists(&[*account]);
            lists.remove(0)
        }

        /// A bundle for `device`, as the app fetches it.
        pub fn bundle(&mut self, device: &DeviceAddress) -> PreKeyBundle {
            let Ok(mut bundles) = self.relay.bundles(&[*device]);
            bundles.remove(0).1
        }

        /// [`driver::send`](ratchetry::driver::send) against this server, its changes
        /// dropped where an app persists them.
        pub fn ready(
            &mut self,
            device: &mut Device,
            rng: &mut Rng,
            now: Timestamp,
            op: impl FnMut(&mut Device, &mut Rng) -> Result<Outgoing, Error>,
        ) -> Result<Outbox, Error> {
            let (outbox, _events) =
                driver::send(device, rng, now, &mut self.relay, op).map_err(device_error)?;
            let _ = device.take_changes(rng);
            Ok(outbox)
        }

        /// [`driver::receive`](ratchetry::driver::receive) against this server: what it read,
        /// or the error of an envelope it could not.
        pub fn receive(
            &mut self,
            device: &mut Device,
            now: Timestamp,
            envelope: &[u8],
        ) -> Result<Received, Error> {
            let mut rng = UnwrapErr(SysRng);
            let (inbound, _events) =
                driver::receive(device, &mut rng, now, &mut self.relay, envelope, |_| false)
                    .map_err(device_error)?;
            let _ = device.take_changes(&mut rng);
            match inbound {
                Inbound::Read(received) => Ok(received),
                Inbound::Dropped(e) => Err(e),
                Inbound::Duplicate(envelope_id) => Err(FanoutError::Duplicate { envelope_id }.into()),
                other => panic!("the examples do not meet {other:?}"),
            }
        }

        /// A one-device account: its primary and its phone.
        pub fn account(&mut self, rng: &mut Rng, now: Timestamp) -> Result<(Primary, Device), Error> {
            let identity = IdentityKeyPair::generate(rng);
            let primary = Primary::new(rng, &identity, now, PrimaryPolicy::default());
            let list = primary.device_list().clone();
            let (mut phone, _upload) =
                Device::new(rng, now, identity, PRIMARY_DEVICE, list, 5, DeviceConfig::default())?;
            let _ = phone.take_changes(rng);
            self.publish(&primary)?;
            self.register(&phone)?;
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
            let policy = ListLimits::default();
            let (list, confirmation) = complete_link(&identity, &invitation, &approval, &policy)?;
            primary.confirm(&confirmation)?;
            let (mut device, _upload) =
                Device::new(rng, now, identity, approval.device, list, 5, DeviceConfig::default())?;
            let _ = device.take_changes(rng);
            self.publish(primary)?;
            self.register(&device)?;
            Ok(device)
        }
    }

    fn device_error(e: DriveError<Infallible>) -> Error {
        match e {
            DriveError::Device(e) => e,
            _ => unreachable!("the in-memory server always answers"),
        }
    }

    /// The envelope of `outbox` addressed to `to`.
    pub fn envelope_to(outbox: &Outbox, to: DeviceAddress) -> Vec<u8> {
        let found = outbox.envelopes.iter().find(|(a, _)| *a == to);
        found.map(|(_, e)| e.clone()).unwrap_or_default()
    }
}
use setup::*;
