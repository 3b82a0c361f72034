//! The pairwise sessions with one remote device: the current one, plus a few recent ones kept
//! because both sides may have started a session at the same time (or one restarted). A
//! message that starts a new receiving chain in an archived session (the peer answered in it)
//! makes it current again, so two devices that raced converge on the session the other side is
//! using; a late message of a chain already read does not (it says nothing about the session
//! the peer uses now).

use alloc::boxed::Box;
use alloc::vec::Vec;

use super::message_id::DirectIdPrefix;
use crate::devices::DeviceAddress;
use crate::primitives::KemCiphertext;
use crate::ratchet::Session;
use crate::ratchet::session::Opened;

/// Sessions kept per remote device, the current one included.
pub(crate) const MAX_SESSIONS_PER_DEVICE: usize = 3;

/// Never empty; index 0 is current.
#[derive(Clone)]
pub(crate) struct SessionSet {
    held: Held,
    /// Once the device has sent a message, the prefix of its message ids (not state: never
    /// persisted, the same for every session).
    prefix: Option<Box<DirectIdPrefix>>,
    /// Held at a restore from a backup (PROTOCOL.md 19.4) and not confirmed since: the peer
    /// has not answered, in a new chain of its own, a chain this device began since. The
    /// peer's current session may then be one the backup predates, so a sender key is not
    /// asked for, nor answered, on these sessions (18.6).
    unconfirmed: bool,
}

/// A set's sessions. Almost every remote device has one session, held inline: a device
/// loaded with thousands of them allocates nothing per set beyond the sessions themselves
/// (a vector of one was an allocation of its own, and a pointer to follow, per device). Two
/// or more (after a race or a restart) are in a vector.
#[derive(Clone)]
enum Held {
    One(Session),
    Several(Vec<Session>),
}

impl Held {
    fn as_slice(&self) -> &[Session] {
        match self {
            Held::One(s) => core::slice::from_ref(s),
            Held::Several(v) => v,
        }
    }

    fn into_vec(self) -> Vec<Session> {
        match self {
            Held::One(s) => alloc::vec![s],
            Held::Several(v) => v,
        }
    }

    /// A vector of one session becomes inline again.
    fn from_vec(mut sessions: Vec<Session>) -> Self {
        if sessions.len() == 1
            && let Some(s) = sessions.pop()
        {
            return Held::One(s);
        }
        Held::Several(sessions)
    }

    /// Changes the sessions as a vector (a change of their number or order, which is rare).
    fn edit<R>(&mut self, change: impl FnOnce(&mut Vec<Session>) -> R) -> R {
        let mut sessions = core::mem::replace(self, Held::Several(Vec::new())).into_vec();
        let out = change(&mut sessions);
        *self = Held::from_vec(sessions);
        out
    }
}

impl SessionSet {
    pub(crate) fn new(session: Session) -> Self {
        Self {
            held: Held::One(session),
            prefix: None,
            unconfirmed: false,
        }
    }

    /// A set of migrated sessions (at most [`MAX_SESSIONS_PER_DEVICE`]: the migration's
    /// decoder bounds them), or `None` for none.
    pub(crate) fn from_sessions(sessions: Vec<Session>) -> Option<Self> {
        (!sessions.is_empty()).then(|| Self {
            held: Held::from_vec(sessions),
            prefix: None,
            unconfirmed: false,
        })
    }

    /// The prefix of the message ids of `device`, whose sessions these are: computed at its
    /// first message, then kept (boxed: an idle session pays one pointer for it).
    pub(crate) fn direct_id_prefix(&mut self, device: &DeviceAddress) -> DirectIdPrefix {
        **self
            .prefix
            .get_or_insert_with(|| Box::new(DirectIdPrefix::of(device)))
    }

    pub(crate) fn current(&self) -> Option<&Session> {
        self.all().first()
    }

    pub(crate) fn current_mut(&mut self) -> Option<&mut Session> {
        self.session_mut(0)
    }

    pub(crate) fn all(&self) -> &[Session] {
        self.held.as_slice()
    }

    /// The current session, if it started with PQXDH: a device whose current session is
    /// classical (migrated from before PQXDH) gets a new session before anything is sent to it.
    /// (The current session is the strongest held: see [`strength`].)
    pub(crate) fn current_post_quantum(&self) -> Option<&Session> {
        self.current().filter(|s| s.is_post_quantum())
    }

    /// Replaces session `index` with its advanced copy and makes it current, unless a stronger
    /// session is held (see [`strength`]): that one stays current, and the advanced copy keeps
    /// its place. A server that drops the messages of the stronger session, or a peer that
    /// starts a weaker one at the same time, must not pin the pair to the weaker session.
    pub(crate) fn promote(&mut self, index: usize, advanced: Session) {
        match self.session_mut(index) {
            Some(held) => *held = advanced,
            // Not a held session's index (callers never pass one): placed as a new session.
            None => {
                self.push_new(advanced);
                return;
            }
        }
        self.raise(index);
    }

    /// Applies a message opened on session `index` in place (no copy of the session is made)
    /// and places the session as [`promote`](Self::promote) does, or, for a retry's answer
    /// (`requested`), as [`push_requested`](Self::push_requested) does. Returns the base keys
    /// of the pending KEM ciphertexts that go: the advanced session's (a message from the
    /// peer is its reply) and the dropped sessions'. Nothing changes for an index not held.
    pub(crate) fn advance(
        &mut self,
        index: usize,
        opened: Opened,
        requested: bool,
    ) -> Vec<[u8; 32]> {
        let Some(session) = self.session_mut(index) else {
            return Vec::new();
        };
        let mut gone: Vec<[u8; 32]> = pending_base(session).into_iter().collect();
        let answered = opened.starts_chain();
        // A new chain of the peer's in a session that holds a sending chain answers that
        // chain, which this device began since its restore (the restore dropped every sending
        // chain): the peer writes in this session now. Any other message may be one the lost
        // state read, replayed, and confirms nothing.
        let confirms = answered && session.has_sending_chain();
        session.apply(opened);
        self.unconfirmed &= !confirms;
        if requested {
            let session = self.held.edit(|sessions| sessions.remove(index));
            let dropped = self.push_requested(None, session);
            gone.extend(dropped.iter().filter_map(pending_base));
        } else if answered {
            self.raise(index);
        }
        gone
    }

    fn session_mut(&mut self, index: usize) -> Option<&mut Session> {
        match &mut self.held {
            Held::One(s) => (index == 0).then_some(s),
            Held::Several(v) => v.get_mut(index),
        }
    }

    /// Makes the just advanced session `index` current, unless a stronger one is held.
    fn raise(&mut self, index: usize) {
        // The only session (every message of a pair that never raced): it stays current.
        if let Held::One(_) = self.held {
            return;
        }
        self.held.edit(|sessions| {
            let rank = strength(&sessions[index]);
            let pinned = sessions
                .iter()
                .enumerate()
                .any(|(i, s)| i != index && strength(s) > rank);
            if !pinned {
                let advanced = sessions.remove(index);
                sessions.insert(0, advanced);
            }
        })
    }

    /// After a restore from an old backup: no session may continue a sending chain it may
    /// already have used. A session that never heard back has no chain to renew from (its
    /// only chain is the one it may have used, and a new one would not open at a peer that
    /// never read the old one): it is dropped, and the next send starts a new session. The
    /// sessions left are unconfirmed. Returns `None` when nothing is left.
    pub(crate) fn renew_sending_chains(self) -> Option<Self> {
        let mut sessions = self.held.into_vec();
        sessions.retain(|s| !s.awaiting_reply());
        for s in &mut sessions {
            s.renew_sending_chain();
        }
        (!sessions.is_empty()).then(|| Self {
            held: Held::from_vec(sessions),
            prefix: self.prefix,
            unconfirmed: true,
        })
    }

    /// Whether a missing sender key is asked for and answered on a new session rather than
    /// on these (PROTOCOL.md 18.6, 19.4): they are unconfirmed since a restore (the peer's
    /// current session may be newer than the backup), and a session from the request's
    /// bundle, which `offers_ratchet` or not, would not take the pair off the post-quantum
    /// ratchet the current one runs.
    pub(crate) fn replaced_for_sender_key(&self, offers_ratchet: bool) -> bool {
        self.unconfirmed
            && (offers_ratchet
                || self
                    .current()
                    .is_none_or(|s| s.pq_ratchet_epoch().is_none()))
    }

    /// A newer session becomes current, unless a stronger one is held: then it goes behind
    /// the stronger ones (it is kept, and a message that opens under it advances it, but sends
    /// stay on the stronger). Beyond the limit the last, the weakest and oldest, is dropped
    /// and returned (it may be the new session itself).
    pub(crate) fn push_new(&mut self, session: Session) -> Option<Session> {
        self.held.edit(|sessions| push_new(sessions, session))
    }

    /// A session that carries a retry's answer: the answerer's new session from the
    /// requester's bundle (`index` `None`), or, at the requester, the session the answer came
    /// in (`index` of an advanced one). It becomes current even if it is weaker, and stronger
    /// sessions are dropped (returned): the requester could not read them, or the answerer
    /// has dropped them, so sends that stayed on them would be lost and asked for again, with
    /// no end. Weaker and equal sessions stay, behind it.
    pub(crate) fn push_requested(
        &mut self,
        index: Option<usize>,
        session: Session,
    ) -> Vec<Session> {
        self.held.edit(|sessions| {
            if let Some(i) = index
                && i < sessions.len()
            {
                sessions.remove(i);
            }
            let rank = strength(&session);
            let (mut dropped, kept): (Vec<Session>, Vec<Session>) = core::mem::take(sessions)
                .into_iter()
                .partition(|s| strength(s) > rank);
            *sessions = kept;
            dropped.extend(push_new(sessions, session));
            dropped
        })
    }
}

/// [`SessionSet::push_new`] on the sessions as a vector.
fn push_new(sessions: &mut Vec<Session>, session: Session) -> Option<Session> {
    let rank = strength(&session);
    let at = sessions
        .iter()
        .position(|s| strength(s) <= rank)
        .unwrap_or(sessions.len());
    sessions.insert(at, session);
    (sessions.len() > MAX_SESSIONS_PER_DEVICE)
        .then(|| sessions.pop())
        .flatten()
}

/// The base key naming a session's pending KEM ciphertext record, while it has one.
pub(crate) fn pending_base(session: &Session) -> Option<[u8; 32]> {
    session.pending_kem().map(|(_, base)| base)
}

/// How much a session's keys resist a quantum adversary: 0 classical (migrated from before
/// PQXDH), 1 PQXDH, 2 PQXDH with the post-quantum ratchet (PROTOCOL.md 25), which heals after
/// a compromise where the others do not. Sessions are kept ordered by it, strongest first:
/// a peer with which a session that runs the ratchet is held is known to run it, so nothing
/// is sent to it over a session that does not.
fn strength(session: &Session) -> u8 {
    u8::from(session.is_post_quantum()) + u8::from(session.pq_ratchet_epoch().is_some())
}

/// Bit 7 of a sessions record's count: the sessions are unconfirmed since a restore.
const UNCONFIRMED: u8 = 0x80;

impl SessionSet {
    /// Record value: `u8(n)` (with bit 7 set while [`unconfirmed`](Self::unconfirmed))
    /// `‖ n × blob(session state)`, current first, each state without its pending KEM
    /// ciphertext, which has a record of its own (written once, not with every send).
    pub(crate) fn write(&self, out: &mut crate::wire::SecretBuf) {
        use crate::wire::Writer;
        // Sized first, so that the record's buffer grows once, to its exact length. A set
        // never holds more than the reader accepts.
        let held = &self.all()[..self.all().len().min(MAX_SESSIONS_PER_DEVICE)];
        let mut lens = [0usize; MAX_SESSIONS_PER_DEVICE];
        for (len, s) in lens.iter_mut().zip(held) {
            *len = s.detached_len();
        }
        let lens = &lens[..held.len()];
        out.reserve(1 + lens.iter().map(|len| 4 + len).sum::<usize>());
        out.u8(held.len() as u8 | if self.unconfirmed { UNCONFIRMED } else { 0 });
        for (len, s) in lens.iter().zip(held) {
            out.u32(*len as u32);
            s.write_detached(out);
        }
    }

    /// Reads a sessions record; `pending` finds a session's KEM ciphertext by its base key.
    /// Also returns whether a state held its ciphertext inline (a record written before the
    /// ciphertext had a record of its own): the caller rewrites both records.
    pub(crate) fn read(
        r: &mut crate::wire::Reader<'_>,
        pending: &dyn Fn(&[u8; 32]) -> Option<KemCiphertext>,
    ) -> Result<(Self, bool), crate::DecodeError> {
        let count = r.u8()?;
        let unconfirmed = count & UNCONFIRMED != 0;
        let n = usize::from(count & !UNCONFIRMED);
        if n > MAX_SESSIONS_PER_DEVICE {
            return Err(crate::DecodeError::InvalidValue);
        }
        let mut held: Option<Held> = None;
        let mut inline = false;
        for _ in 0..n {
            let len = r.u32()? as usize;
            let bytes = r.bytes(len)?;
            let s = Session::from_bytes_detached(bytes, pending)?;
            if let Some((_, base)) = s.pending_kem()
                && s.to_bytes_detached().len() != bytes.len()
            {
                // Held inline: a stored ciphertext under the same base key would be a second
                // copy.
                if pending(&base).is_some() {
                    return Err(crate::DecodeError::InvalidValue);
                }
                inline = true;
            }
            // Two pending sessions under one base key would share one ciphertext record.
            if let Some((_, base)) = s.pending_kem()
                && held.as_ref().is_some_and(|h| {
                    h.as_slice()
                        .iter()
                        .any(|o| o.pending_kem().is_some_and(|(_, b)| b == base))
                })
            {
                return Err(crate::DecodeError::InvalidValue);
            }
            held = Some(match held {
                None => Held::One(s),
                Some(h) => {
                    let mut sessions = h.into_vec();
                    sessions.push(s);
                    Held::Several(sessions)
                }
            });
        }
        // Never empty.
        let held = held.ok_or(crate::DecodeError::InvalidValue)?;
        Ok((
            Self {
                held,
                prefix: None,
                unconfirmed,
            },
            inline,
        ))
    }

    /// The base keys of the sessions awaiting their first reply (each has a ciphertext record).
    pub(crate) fn pending_bases(&self) -> impl Iterator<Item = [u8; 32]> + '_ {
        self.all()
            .iter()
            .filter_map(|s| s.pending_kem().map(|(_, b)| b))
    }

    /// The pending ciphertext of the session with base key `base`.
    pub(crate) fn pending_of(&self, base: &[u8; 32]) -> Option<&KemCiphertext> {
        self.all()
            .iter()
            .filter_map(|s| s.pending_kem())
            .find(|(_, b)| b == base)
            .map(|(ct, _)| ct)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::SeededRng;
    use crate::{IdentityKeyPair, PreKeyStore, SessionConfig, Timestamp};

    /// A new PQXDH session (strength 1), or one that runs the post-quantum ratchet (2).
    fn session(rng: &mut SeededRng, ratchet: bool) -> Session {
        let alice = IdentityKeyPair::generate(rng);
        let bob = IdentityKeyPair::generate(rng);
        let mut store = PreKeyStore::new(rng, &bob, Timestamp(0), Default::default());
        if !ratchet {
            store.before_pq_ratchet(&bob);
        }
        let bundle = store.bundle(&bob, None, None).verify().unwrap();
        Session::initiate(rng, &alice, &bundle, SessionConfig::default()).unwrap()
    }

    fn same(a: &Session, b: &Session) -> bool {
        *a.to_bytes() == *b.to_bytes()
    }

    /// The set's sessions, each named by its position in `named`.
    fn order(set: &SessionSet, named: &[&Session]) -> Vec<usize> {
        set.all()
            .iter()
            .map(|s| {
                named
                    .iter()
                    .position(|n| same(n, s))
                    .expect("a named session")
            })
            .collect()
    }

    /// A sessions record is `u8(n) ‖ n × blob(detached state)`, written into a buffer sized
    /// once to its exact length, and reads back.
    #[test]
    fn a_sessions_record_is_its_detached_states_in_a_buffer_of_its_exact_length() {
        let rng = &mut SeededRng::from_label("sessions record");
        let sessions = [session(rng, true), session(rng, false), session(rng, true)];
        for n in 1..=MAX_SESSIONS_PER_DEVICE {
            let set = SessionSet::from_sessions(sessions[..n].to_vec()).unwrap();
            let mut expected = alloc::vec![n as u8];
            for s in set.all() {
                let state = s.to_bytes_detached();
                assert!(
                    state.len() < s.to_bytes().len(),
                    "a ciphertext pending apart"
                );
                expected.extend_from_slice(&(state.len() as u32).to_be_bytes());
                expected.extend_from_slice(&state);
            }
            let mut out = crate::wire::SecretBuf::with_capacity(0);
            set.write(&mut out);
            let bytes = out.into_inner();
            assert_eq!(*bytes, expected);
            assert_eq!(bytes.capacity(), bytes.len(), "grown once, exactly");
            let pending = |base: &[u8; 32]| {
                let held = set.all().iter().find(|s| pending_base(s) == Some(*base))?;
                held.pending_kem().map(|(ct, _)| ct.clone())
            };
            let (read, inline) =
                SessionSet::read(&mut crate::wire::Reader::new(&bytes), &pending).unwrap();
            assert!(!inline);
            assert_eq!(
                order(&read, &sessions[..n].iter().collect::<Vec<_>>()),
                (0..n).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn strength_ranks_pqxdh_below_the_post_quantum_ratchet() {
        let rng = &mut SeededRng::from_label("session strength");
        assert_eq!(strength(&session(rng, false)), 1);
        assert_eq!(strength(&session(rng, true)), 2);
    }

    /// Two devices that raced converge: a message under an archived session of the same
    /// strength makes it current.
    #[test]
    fn an_advanced_archived_session_becomes_current_unless_a_stronger_one_is_held() {
        let rng = &mut SeededRng::from_label("session promote");
        let (a, b) = (session(rng, false), session(rng, false));
        let mut set = SessionSet::new(a.clone());
        assert!(set.push_new(b.clone()).is_none());
        assert_eq!(order(&set, &[&a, &b]), [1, 0]);
        set.promote(1, a.clone());
        assert_eq!(order(&set, &[&a, &b]), [0, 1]);

        let strong = session(rng, true);
        let mut set = SessionSet::new(strong.clone());
        assert!(set.push_new(a.clone()).is_none());
        assert_eq!(
            order(&set, &[&strong, &a]),
            [0, 1],
            "a weaker one goes behind"
        );
        set.promote(1, a.clone());
        assert_eq!(order(&set, &[&strong, &a]), [0, 1], "and stays there");
        set.promote(0, strong.clone());
        assert_eq!(order(&set, &[&strong, &a]), [0, 1]);
        assert!(same(set.current_post_quantum().unwrap(), &strong));
    }

    /// A new session goes behind the stronger ones and before the rest; beyond the limit the
    /// last is dropped and returned, even the new one itself.
    #[test]
    fn a_new_session_is_placed_by_strength_and_the_weakest_oldest_drops() {
        let rng = &mut SeededRng::from_label("session push");
        let (s1, s2) = (session(rng, true), session(rng, true));
        let (w1, w2) = (session(rng, false), session(rng, false));
        let named = [&s1, &s2, &w1, &w2];
        let mut set = SessionSet::new(w1.clone());
        assert!(set.push_new(s1.clone()).is_none());
        assert_eq!(order(&set, &named), [0, 2]);
        assert!(set.push_new(s2.clone()).is_none());
        assert_eq!(order(&set, &named), [1, 0, 2]);
        let dropped = set.push_new(w2.clone()).unwrap();
        assert!(same(&dropped, &w1), "the weakest oldest drops");
        assert_eq!(order(&set, &named), [1, 0, 3]);
        let s3 = session(rng, true);
        let dropped = set.push_new(s3.clone()).unwrap();
        assert!(same(&dropped, &w2));
        let dropped = set.push_new(session(rng, false)).unwrap();
        assert!(
            !named.iter().any(|n| same(n, &dropped)),
            "the new one itself"
        );
        assert_eq!(set.all().len(), MAX_SESSIONS_PER_DEVICE);
        assert!(set.all().iter().all(|s| strength(s) == 2));
    }

    /// A retry's session is current whatever its strength; the stronger sessions are dropped
    /// and returned, the others kept behind it; at the requester, the session at `index` is
    /// the one replaced.
    #[test]
    fn a_requested_session_is_current_and_the_stronger_ones_go() {
        let rng = &mut SeededRng::from_label("session requested");
        let (strong, weak, answer) = (session(rng, true), session(rng, false), session(rng, false));
        let named = [&strong, &weak, &answer];
        let mut set = SessionSet::new(strong.clone());
        set.push_new(weak.clone());
        let dropped = set.push_requested(None, answer.clone());
        assert_eq!(dropped.len(), 1);
        assert!(same(&dropped[0], &strong));
        assert_eq!(order(&set, &named), [2, 1]);

        let mut set = SessionSet::new(strong.clone());
        set.push_new(weak.clone());
        let dropped = set.push_requested(Some(1), weak.clone());
        assert_eq!(dropped.len(), 1);
        assert_eq!(order(&set, &named), [1]);

        // Nothing stronger: nothing dropped, the requested one is current.
        let mut set = SessionSet::new(weak.clone());
        assert!(set.push_requested(None, answer.clone()).is_empty());
        assert_eq!(order(&set, &named), [2, 1]);
        let mut set = SessionSet::new(weak.clone());
        set.push_new(answer.clone());
        assert!(set.push_requested(Some(1), weak.clone()).is_empty());
        assert_eq!(order(&set, &named), [1, 2]);
        // An index past the end (never given) replaces nothing and panics nowhere.
        assert!(set.push_requested(Some(2), strong.clone()).is_empty());
        assert_eq!(order(&set, &named), [0, 1, 2]);
        // And promote places a session at such an index as a new one: never past the limit.
        let extra = session(rng, true);
        set.promote(3, extra.clone());
        assert_eq!(order(&set, &[&extra, &strong, &weak]), [0, 1, 2]);
    }
}
