//! The pairwise sessions with one remote device: the current one, plus a few recent ones kept
//! because both sides may have started a session at the same time (or one restarted). A
//! message that opens under an archived session makes it current again, so two devices that
//! raced converge on the session the other side is using.

use alloc::boxed::Box;
use alloc::vec::Vec;

use super::message_id::DirectIdPrefix;
use crate::devices::DeviceAddress;
use crate::primitives::KemCiphertext;
use crate::ratchet::Session;

/// Sessions kept per remote device, the current one included.
pub(crate) const MAX_SESSIONS_PER_DEVICE: usize = 3;

/// Never empty; index 0 is current. It also keeps, once the device has sent a message, the
/// prefix of its message ids (not state: never persisted, the same for every session).
#[derive(Clone)]
pub(crate) struct SessionSet(Held, Option<Box<DirectIdPrefix>>);

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
        Self(Held::One(session), None)
    }

    pub(crate) fn from_sessions(sessions: Vec<Session>) -> Option<Self> {
        (!sessions.is_empty() && sessions.len() <= MAX_SESSIONS_PER_DEVICE)
            .then(|| Self(Held::from_vec(sessions), None))
    }

    /// The prefix of the message ids of `device`, whose sessions these are: computed at its
    /// first message, then kept (boxed: an idle session pays one pointer for it).
    pub(crate) fn direct_id_prefix(&mut self, device: &DeviceAddress) -> DirectIdPrefix {
        **self
            .1
            .get_or_insert_with(|| Box::new(DirectIdPrefix::of(device)))
    }

    pub(crate) fn current(&self) -> Option<&Session> {
        self.all().first()
    }

    pub(crate) fn all(&self) -> &[Session] {
        self.0.as_slice()
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
        // The only session, advanced (every message of a pair that never raced): no other
        // session can be stronger, and it stays current.
        if let (Held::One(current), 0) = (&mut self.0, index) {
            *current = advanced;
            return;
        }
        self.0.edit(|sessions| {
            let rank = strength(&advanced);
            let pinned = sessions
                .iter()
                .enumerate()
                .any(|(i, s)| i != index && strength(s) > rank);
            if pinned && let Some(slot) = sessions.get_mut(index) {
                *slot = advanced;
                return;
            }
            if index < sessions.len() {
                sessions.remove(index);
            }
            sessions.insert(0, advanced);
        })
    }

    /// After a restore from an old backup: no session may continue a sending chain it may
    /// already have used. A session that never heard back has no chain to renew from (its
    /// only chain is the one it may have used, and a new one would not open at a peer that
    /// never read the old one): it is dropped, and the next send starts a new session. Returns
    /// `None` when nothing is left.
    pub(crate) fn renew_sending_chains(self) -> Option<Self> {
        let Self(held, prefix) = self;
        let mut sessions = held.into_vec();
        sessions.retain(|s| !s.awaiting_reply());
        for s in &mut sessions {
            s.renew_sending_chain();
        }
        (!sessions.is_empty()).then(|| Self(Held::from_vec(sessions), prefix))
    }

    /// A newer session becomes current, unless a stronger one is held: then it goes behind
    /// the stronger ones (it is kept, and a message that opens under it advances it, but sends
    /// stay on the stronger). Beyond the limit the last, the weakest and oldest, is dropped
    /// and returned (it may be the new session itself).
    pub(crate) fn push_new(&mut self, session: Session) -> Option<Session> {
        self.0.edit(|sessions| push_new(sessions, session))
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
        self.0.edit(|sessions| {
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

/// How much a session's keys resist a quantum adversary: 0 classical (migrated from before
/// PQXDH), 1 PQXDH, 2 PQXDH with the post-quantum ratchet (PROTOCOL.md 25), which heals after
/// a compromise where the others do not. Sessions are kept ordered by it, strongest first:
/// a peer with which a session that runs the ratchet is held is known to run it, so nothing
/// is sent to it over a session that does not.
fn strength(session: &Session) -> u8 {
    u8::from(session.is_post_quantum()) + u8::from(session.pq_ratchet_epoch().is_some())
}

impl SessionSet {
    /// Record value: `u8(n) ‖ n × blob(session state)`, current first, each state without its
    /// pending KEM ciphertext, which has a record of its own (written once, not with every
    /// send).
    pub(crate) fn write(&self, out: &mut crate::wire::SecretBuf) {
        use crate::wire::Writer;
        out.u8(self.all().len() as u8);
        for s in self.all() {
            out.blob(&s.to_bytes_detached());
        }
    }

    /// Reads a sessions record; `pending` finds a session's KEM ciphertext by its base key.
    /// Also returns whether a state held its ciphertext inline (a record written before the
    /// ciphertext had a record of its own): the caller rewrites both records.
    pub(crate) fn read(
        r: &mut crate::wire::Reader<'_>,
        pending: &dyn Fn(&[u8; 32]) -> Option<KemCiphertext>,
    ) -> Result<(Self, bool), crate::DecodeError> {
        let n = r.u8()? as usize;
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
        Ok((Self(held, None), inline))
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
