//! One stored record (a key and its new value, or its deletion) and the set of records an
//! operation touched: what both the device's units (PROTOCOL.md 19) and the primary's
//! (PROTOCOL.md 15.4) are made of. The keys' meaning belongs to each state's own module.

use alloc::collections::BTreeSet;
use alloc::vec::Vec;
use core::fmt;
use core::marker::PhantomData;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::chain::{Link, UnitTag};

/// How a state names its record keys in `Debug` output (keys are not secret): its own key
/// type's `Debug`, or [`hex_key`] for bytes it does not decode.
pub(crate) type KeyNamer = fn(&[u8], &mut fmt::Formatter<'_>) -> fmt::Result;

/// A key's bytes in hex.
pub(crate) fn hex_key(key: &[u8], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    key.iter().try_for_each(|b| write!(f, "{b:02x}"))
}

/// One stored record: a key, and its new value or its deletion.
#[derive(Clone)]
pub struct Record {
    key: Vec<u8>,
    value: Option<Zeroizing<Vec<u8>>>,
    name_key: KeyNamer,
}

impl Record {
    pub(crate) fn new(key: Vec<u8>, value: Option<Zeroizing<Vec<u8>>>, name_key: KeyNamer) -> Self {
        Self {
            key,
            value,
            name_key,
        }
    }

    /// The record's key: store the value under exactly these bytes.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The record's new value (it holds secrets: store it as such), or `None`: delete the
    /// record.
    pub fn value(&self) -> Option<&[u8]> {
        self.value.as_deref().map(Vec::as_slice)
    }

    /// Bytes of the key and the value.
    pub(crate) fn byte_len(&self) -> usize {
        self.key.len() + self.value.as_ref().map_or(0, |v| v.len())
    }
}

/// A unit's records are dropped with every operation: their values (a session record is
/// hundreds of bytes) are wiped by a `memset` rather than `Zeroizing`'s byte at a time.
impl Drop for Record {
    fn drop(&mut self) {
        if let Some(value) = self.value.take() {
            crate::primitives::wipe_secret(value);
        }
    }
}

/// Records are equal when their keys and values are (how their keys are named is not part of
/// them). Values hold secrets and are compared in constant time (their lengths are not secret).
impl PartialEq for Record {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
            && match (&self.value, &other.value) {
                (Some(a), Some(b)) => bool::from(a.as_slice().ct_eq(b.as_slice())),
                (None, None) => true,
                _ => false,
            }
    }
}

impl Eq for Record {}

impl fmt::Debug for Record {
    /// The key, as its state names it (keys are not secret); of the value, only its length.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Key<'a>(&'a Record);
        impl fmt::Debug for Key<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                (self.0.name_key)(&self.0.key, f)
            }
        }
        f.debug_struct("Record")
            .field("key", &Key(self))
            .field("value_len", &self.value.as_ref().map(|v| v.len()))
            .finish()
    }
}

/// What one operation changed in a state of kind `S` ([`DeviceState`] or [`PrimaryState`]):
/// write it in one transaction, before acting on the operation's output. A device's unit and
/// a primary's are different types (`fanout::StateChanges` and `devices::PrimaryChanges`):
/// one written where the other belongs would not load, and the compiler keeps them apart.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub struct Changes<S> {
    /// The epoch and tag the unit starts from; `None` for a unit that replaces all of a state
    /// made new or restored.
    base: Option<(u64, UnitTag)>,
    replaces_all: bool,
    epoch: u64,
    tag: UnitTag,
    records: Vec<Record>,
    state: PhantomData<fn() -> S>,
}

/// The kind of a [`Changes`] unit that holds a device's records (PROTOCOL.md 19).
#[derive(Debug, PartialEq, Eq)]
pub enum DeviceState {}

/// The kind of a [`Changes`] unit that holds a primary's records (PROTOCOL.md 15.4).
#[derive(Debug, PartialEq, Eq)]
pub enum PrimaryState {}

/// An empty unit of a state at epoch 0 with no tag, that starts where it ends.
impl<S> Default for Changes<S> {
    fn default() -> Self {
        let link = Link {
            base: Some((0, UnitTag::NONE)),
            replaces_all: false,
            tag: UnitTag::NONE,
        };
        Self::new(link, 0, Vec::new())
    }
}

impl<S> Changes<S> {
    /// A unit linked by `link` and ending at `epoch`.
    pub(crate) fn new(link: Link, epoch: u64, records: Vec<Record>) -> Self {
        Self {
            base: link.base,
            replaces_all: link.replaces_all,
            epoch,
            tag: link.tag,
            records,
            state: PhantomData,
        }
    }

    /// Whether the store's records of this state must be deleted before these are written:
    /// the unit holds the whole state (a new one, or one loaded whole or restored).
    pub fn replaces_all(&self) -> bool {
        self.replaces_all
    }

    /// The epoch this unit starts from: the [`epoch`](Self::epoch) of the previous unit taken
    /// from the same in-memory state, or, if none was taken since it was loaded
    /// (`from_records`, or whole-state bytes: `from_bytes`), the epoch it was loaded at.
    /// `None` only for a unit that [replaces all](Self::replaces_all) of a state made new or
    /// restored from a backup: it is written whole over whatever the store holds.
    ///
    /// Units chain: each starts where the one before it ended, in epoch and in
    /// [tag](Self::base_tag). A store that holds the state at another epoch than this one
    /// lacks a unit (one whose write failed while the app went on with the state in memory: a
    /// gap), or already holds this one or a later one. Written on top, this unit would make a
    /// set of records that never existed together (a one-time prekey the lost unit consumed
    /// still stored, a message it read not recorded as read): a store refuses it, and the app
    /// loads the state from the store again and redoes the operations since. An empty unit
    /// starts and ends at the same epoch and tag (they move only with a record written), so
    /// leaving an empty unit unwritten breaks no chain.
    ///
    /// A unit that replaces all and has a base comes from whole-state bytes: a store that
    /// holds nothing of the state takes it (the bytes came from elsewhere, or the store is
    /// new), and one that holds the state takes it only at this epoch and tag. Two copies
    /// loaded from the same bytes (an app and its notification extension) both start from
    /// them; once the first has written, the second's whole unit no longer starts from what
    /// the store holds, and is refused rather than written over what the first did.
    pub fn base_epoch(&self) -> Option<u64> {
        self.base.map(|(epoch, _)| epoch)
    }

    /// The tag of the unit this one starts from: the [`tag`](Self::tag) of the previous unit
    /// taken from the same in-memory state, or the tag the state was loaded with (its meta
    /// record's). `None` exactly when [`base_epoch`](Self::base_epoch) is.
    ///
    /// Epochs alone do not tell two live copies of one state apart (loaded twice, say by a
    /// notification extension and the app, or cloned): both make a unit at the same epochs.
    /// Their tags differ, so a store that keeps the tag of the last unit written, and refuses a
    /// unit whose base tag is not it, refuses the second copy's unit where the epochs line up,
    /// rather than writing it over the first copy's and leaving a state neither copy holds.
    pub fn base_tag(&self) -> Option<UnitTag> {
        self.base.map(|(_, tag)| tag)
    }

    /// This unit's tag: drawn at random for a unit that holds records, the base's for an empty
    /// one. Keep it beside the stored epoch; the state's meta record holds it too, so a state
    /// loaded from the records starts its next unit from it.
    pub fn tag(&self) -> UnitTag {
        self.tag
    }

    /// The state's epoch after this unit.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The records to write or delete, in key order.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// The records, by value.
    pub fn into_records(self) -> Vec<Record> {
        self.records
    }

    /// Bytes of keys and values in the unit: what an app writes for it.
    pub fn byte_len(&self) -> usize {
        self.records.iter().map(Record::byte_len).sum()
    }
}

/// The records an operation touched, until they are taken: `all` after a state was made or
/// loaded whole, else the keys one by one.
#[derive(Clone, Debug)]
pub(crate) struct Dirty<K> {
    pub(crate) all: bool,
    pub(crate) keys: BTreeSet<K>,
}

impl<K> Default for Dirty<K> {
    fn default() -> Self {
        Self {
            all: false,
            keys: BTreeSet::new(),
        }
    }
}

impl<K: Ord> Dirty<K> {
    pub(crate) fn mark(&mut self, key: K) {
        if !self.all {
            self.keys.insert(key);
        }
    }

    /// Marks every key of `keys`. A batch as large as what is marked already (a send to
    /// thousands of devices) is merged in one pass, where inserting key by key searches the
    /// set each time; a small one is inserted, so a long-unpersisted set is not rebuilt for it.
    pub(crate) fn mark_all(&mut self, keys: Vec<K>) {
        if self.all {
            return;
        }
        if keys.len() >= self.keys.len() {
            let mut batch: BTreeSet<K> = keys.into_iter().collect();
            self.keys.append(&mut batch);
        } else {
            self.keys.extend(keys);
        }
    }

    pub(crate) fn is_clean(&self) -> bool {
        !self.all && self.keys.is_empty()
    }

    /// The keys of the unit these marks make: every key (`all_keys`) if everything is marked,
    /// else the keys marked with `meta` among them unless there are none (a unit with records
    /// always holds the meta record, which keeps its tag). The first value: whether the unit
    /// replaces all.
    pub(crate) fn into_unit_keys(
        mut self,
        meta: K,
        all_keys: impl FnOnce() -> Vec<K>,
    ) -> (bool, Vec<K>) {
        if self.all {
            return (true, all_keys());
        }
        if !self.keys.is_empty() {
            self.keys.insert(meta);
        }
        (false, self.keys.into_iter().collect())
    }

    /// Everything: the next unit holds every record and replaces the stored ones.
    pub(crate) fn everything() -> Self {
        Self {
            all: true,
            keys: BTreeSet::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_are_kept_until_everything_is_dirty() {
        let mut d = Dirty::<u8>::default();
        assert!(d.is_clean());
        d.mark(3);
        assert!(!d.is_clean());
        assert_eq!(d.keys.len(), 1);
        let mut all = Dirty::<u8>::everything();
        assert!(!all.is_clean());
        all.mark(3);
        all.mark_all(alloc::vec![4, 5]);
        assert!(all.keys.is_empty());
    }

    /// A batch merged and a batch inserted mark the same keys, each once.
    /// A unit's keys: every key when everything is marked, else the marks with the meta
    /// key among them unless there are none.
    #[test]
    fn a_unit_with_records_always_holds_the_meta_key() {
        let mut d = Dirty::<u8>::default();
        assert_eq!(
            d.clone().into_unit_keys(0, || alloc::vec![9]),
            (false, alloc::vec![])
        );
        d.mark(5);
        d.mark(3);
        assert_eq!(
            d.into_unit_keys(0, || alloc::vec![9]),
            (false, alloc::vec![0, 3, 5])
        );
        let all = Dirty::<u8>::everything();
        assert_eq!(
            all.into_unit_keys(0, || alloc::vec![1, 2]),
            (true, alloc::vec![1, 2])
        );
    }

    #[test]
    fn a_batch_of_marks_is_every_key_once_whatever_its_size() {
        let mut d = Dirty::<u16>::default();
        d.mark_all((0..100).rev().chain(0..10).collect()); // into an empty set: merged
        assert_eq!(d.keys.len(), 100);
        d.mark_all(alloc::vec![5, 200, 5, 201]); // smaller than the set: inserted
        d.mark_all((50..300).collect()); // larger: merged
        assert!(d.keys.iter().copied().eq(0..300));
    }

    /// A unit carries its link as it is: a base, or none, whether it replaces all or not; the
    /// default one is empty and starts where it ends.
    #[test]
    fn a_unit_carries_its_base_and_whether_it_replaces_all() {
        let (a, b) = (UnitTag::from_bytes([1; 16]), UnitTag::from_bytes([2; 16]));
        let link = Link {
            base: None,
            replaces_all: true,
            tag: a,
        };
        let whole = Changes::<DeviceState>::new(link, 4, Vec::new());
        assert!(whole.replaces_all());
        assert_eq!((whole.base_epoch(), whole.epoch()), (None, 4));
        assert_eq!((whole.base_tag(), whole.tag()), (None, a));
        let link = Link {
            base: Some((4, a)),
            replaces_all: false,
            tag: b,
        };
        let next = Changes::<DeviceState>::new(link, 5, Vec::new());
        assert!(!next.replaces_all());
        assert_eq!((next.base_epoch(), next.epoch()), (Some(4), 5));
        assert_eq!((next.base_tag(), next.tag()), (Some(a), b));
        let link = Link {
            base: Some((5, b)),
            replaces_all: true,
            tag: a,
        };
        let loaded = Changes::<PrimaryState>::new(link, 5, Vec::new());
        assert!(loaded.replaces_all());
        assert_eq!((loaded.base_epoch(), loaded.base_tag()), (Some(5), Some(b)));
        let empty = Changes::<PrimaryState>::default();
        assert!(!empty.replaces_all() && empty.is_empty());
        assert_eq!((empty.base_epoch(), empty.epoch()), (Some(0), 0));
        assert_eq!(
            (empty.base_tag(), empty.tag()),
            (Some(UnitTag::NONE), UnitTag::NONE)
        );
    }

    #[test]
    fn debug_shows_the_key_and_not_the_value() {
        let value = Some(Zeroizing::new(alloc::vec![7; 5]));
        let r = Record::new(alloc::vec![0x81, 0x0a], value.clone(), hex_key);
        let shown = alloc::format!("{r:?}");
        assert_eq!(shown, "Record { key: 810a, value_len: Some(5) }");
        assert_eq!(r.byte_len(), 7);
        assert_eq!(Record::new(alloc::vec![1], None, hex_key).byte_len(), 1);
        // Named by the state's namer; equal whatever names it.
        let named = Record::new(alloc::vec![0x81, 0x0a], value, |_, f| f.write_str("Named"));
        assert_eq!(
            alloc::format!("{named:?}"),
            "Record { key: Named, value_len: Some(5) }"
        );
        assert_eq!(named, r);
        assert_ne!(named, Record::new(alloc::vec![0x81, 0x0a], None, hex_key));
        assert_ne!(
            named,
            Record::new(alloc::vec![0x81], r.value.clone(), hex_key)
        );
        // Values compared whole: same length, one byte apart; a deletion equals a deletion.
        let other = Some(Zeroizing::new(alloc::vec![7, 7, 7, 7, 8]));
        assert_ne!(named, Record::new(alloc::vec![0x81, 0x0a], other, hex_key));
        let deleted = Record::new(alloc::vec![0x81, 0x0a], None, hex_key);
        assert_eq!(deleted, Record::new(alloc::vec![0x81, 0x0a], None, hex_key));
        assert_ne!(deleted, named);
    }
}
