//! A systematic erasure code: a payload of `k` 32-byte symbols becomes an endless sequence of
//! 32-byte chunks, any `k` distinct of which give the payload back.
//!
//! Each byte position is a polynomial of degree below `k` over GF(2^8) (reduction polynomial
//! `x^8 + x^4 + x^3 + x^2 + 1`, 0x11d) whose value at the field element `j` is byte `j` of the
//! payload's symbol `j`; chunk `i` is the polynomials' values at the field element `i`. So
//! chunks `0..k` are the payload itself (nothing to compute when nothing is lost) and every
//! later chunk is parity. Indexes are 6 bits: a sender cycles through 64 chunks, enough for a
//! 36-symbol payload to survive 40% loss before a chunk repeats. Everything coded here is public
//! (key headers and vectors, ciphertexts), so the table lookups need not be constant-time.

use alloc::vec::Vec;

/// Bytes per symbol and per chunk.
pub(crate) const SYMBOL: usize = 32;
/// Distinct chunk indexes (6 bits).
pub(crate) const INDEXES: usize = 64;

/// One 32-byte chunk.
pub(crate) type Chunk = [u8; SYMBOL];

const fn tables() -> ([u8; 512], [u8; 256]) {
    let mut exp = [0u8; 512];
    let mut log = [0u8; 256];
    let mut x: u16 = 1;
    let mut i = 0;
    while i < 255 {
        exp[i] = x as u8;
        exp[i + 255] = x as u8;
        log[x as usize] = i as u8;
        x <<= 1;
        if x & 0x100 != 0 {
            x ^= 0x11d;
        }
        i += 1;
    }
    (exp, log)
}

const EXP: [u8; 512] = tables().0;
const LOG: [u8; 256] = tables().1;

#[cfg(test)]
fn mul(a: u8, b: u8) -> u8 {
    if a == 0 || b == 0 {
        0
    } else {
        EXP[LOG[a as usize] as usize + LOG[b as usize] as usize]
    }
}

/// `log(Π_{m≠j} (p_j − p_m))` for each point `p_j`: the Lagrange denominators, as logarithms.
fn log_denominators(points: &[u8]) -> Vec<u8> {
    points
        .iter()
        .enumerate()
        .map(|(j, &pj)| {
            let mut log = 0u32;
            for (m, &pm) in points.iter().enumerate() {
                if m != j {
                    log += u32::from(LOG[(pj ^ pm) as usize]);
                }
            }
            (log % 255) as u8
        })
        .collect()
}

/// The Lagrange denominators of the systematic points `0..k`, computed once at compile time
/// for the ratchet's four payload sizes.
const fn systematic_log_denominators<const K: usize>() -> [u8; K] {
    let mut out = [0u8; K];
    let mut j = 0;
    while j < K {
        let mut log = 0u32;
        let mut m = 0;
        while m < K {
            if m != j {
                log += LOG[j ^ m] as u32;
            }
            m += 1;
        }
        out[j] = (log % 255) as u8;
        j += 1;
    }
    out
}

const DEN_2: [u8; 2] = systematic_log_denominators::<2>();
const DEN_4: [u8; 4] = systematic_log_denominators::<4>();
const DEN_30: [u8; 30] = systematic_log_denominators::<30>();
const DEN_36: [u8; 36] = systematic_log_denominators::<36>();

/// The value at `x` of the polynomials through `(points[j], values[j])`, `x` not among
/// `points`, given the points' log-denominators: Lagrange's form `Σ_j values[j] · w_j` with
/// `w_j = Π_m (x − p_m) / ((x − p_j) · Π_{m≠j} (p_j − p_m))`, all in logarithms, so each
/// weight costs an addition and each byte two table lookups.
fn evaluate(points: &[u8], log_den: &[u8], values: &[&Chunk], x: u8) -> Chunk {
    let log_num: u32 = points
        .iter()
        .map(|&pm| u32::from(LOG[(x ^ pm) as usize]))
        .sum();
    let mut out = [0u8; SYMBOL];
    for ((&pj, &den), value) in points.iter().zip(log_den).zip(values) {
        // x ∉ points, so x − p_j ≠ 0; logs are mod 255, kept non-negative.
        let lw = ((log_num + 2 * 255 - u32::from(LOG[(x ^ pj) as usize]) - u32::from(den)) % 255)
            as usize;
        for (o, &v) in out.iter_mut().zip(value.iter()) {
            if v != 0 {
                *o ^= EXP[lw + LOG[v as usize] as usize];
            }
        }
    }
    out
}

/// Chunk `index` (below [`INDEXES`]) of `payload`, whose length is a multiple of [`SYMBOL`] and
/// at most [`INDEXES`] symbols.
pub(crate) fn encode(payload: &[u8], index: u8) -> Chunk {
    let k = payload.len() / SYMBOL;
    let symbol = |j: usize| -> &Chunk {
        // Lengths are multiples of SYMBOL, so every window is a full symbol.
        payload[j * SYMBOL..(j + 1) * SYMBOL]
            .try_into()
            .unwrap_or(&[0u8; SYMBOL])
    };
    let i = index as usize;
    if i < k {
        return *symbol(i);
    }
    // On the stack: a parity chunk is computed at a send, which allocates nothing else.
    let all_points: [u8; INDEXES] = core::array::from_fn(|j| j as u8);
    let points = &all_points[..k];
    let mut all_values = [&[0u8; SYMBOL]; INDEXES];
    for (j, slot) in all_values.iter_mut().enumerate().take(k) {
        *slot = symbol(j);
    }
    let values = &all_values[..k];
    let computed;
    let log_den: &[u8] = match k {
        2 => &DEN_2,
        4 => &DEN_4,
        30 => &DEN_30,
        36 => &DEN_36,
        _ => {
            computed = log_denominators(points);
            &computed
        }
    };
    evaluate(points, log_den, values, index)
}

/// Chunks of one payload as they arrive: keeps the first `k` distinct ones, in ascending index
/// order (the order they are stored in).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Collector {
    k: u8,
    chunks: Vec<(u8, Chunk)>,
}

impl Collector {
    /// Collects a payload of `k` symbols (1 to [`INDEXES`]).
    pub(crate) fn new(k: u8) -> Self {
        Self {
            k,
            chunks: Vec::new(),
        }
    }

    /// Rebuilds a collector from stored chunks: indexes strictly ascending, below
    /// [`INDEXES`], at most `k` of them; else `None`.
    pub(crate) fn from_chunks(k: u8, chunks: Vec<(u8, Chunk)>) -> Option<Self> {
        let ascending = chunks.windows(2).all(|w| w[0].0 < w[1].0);
        let in_range = chunks.iter().all(|(i, _)| (*i as usize) < INDEXES);
        (ascending && in_range && chunks.len() <= k as usize).then_some(Self { k, chunks })
    }

    pub(crate) fn chunks(&self) -> &[(u8, Chunk)] {
        &self.chunks
    }

    /// Whether `k` distinct chunks are here.
    pub(crate) fn is_complete(&self) -> bool {
        self.chunks.len() == self.k as usize
    }

    /// Adds chunk `index`; a repeated index, or any chunk once complete, is ignored.
    pub(crate) fn add(&mut self, index: u8, chunk: &Chunk) {
        if self.is_complete() || index as usize >= INDEXES {
            return;
        }
        if let Err(at) = self.chunks.binary_search_by_key(&index, |(i, _)| *i) {
            self.chunks.insert(at, (index, *chunk));
        }
    }

    /// The payload (`k` symbols), once complete.
    pub(crate) fn decode(&self) -> Option<Vec<u8>> {
        if !self.is_complete() {
            return None;
        }
        let k = self.k as usize;
        let points: Vec<u8> = self.chunks.iter().map(|(i, _)| *i).collect();
        let values: Vec<&Chunk> = self.chunks.iter().map(|(_, c)| c).collect();
        let log_den = log_denominators(&points);
        let mut out = Vec::with_capacity(k * SYMBOL);
        for j in 0..k as u8 {
            match self.chunks.binary_search_by_key(&j, |(i, _)| *i) {
                Ok(at) => out.extend_from_slice(&self.chunks[at].1),
                Err(_) => out.extend_from_slice(&evaluate(&points, &log_den, &values, j)),
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(k: usize, seed: u8) -> Vec<u8> {
        (0..k * SYMBOL)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn the_field_tables_invert() {
        for a in 1..=255u8 {
            assert_eq!(mul(a, EXP[255 - LOG[a as usize] as usize]), 1);
        }
        assert_eq!(mul(0x80, 2), 0x1d);
    }

    #[test]
    fn the_first_k_chunks_are_the_payload() {
        let p = payload(4, 1);
        for j in 0..4u8 {
            assert_eq!(&encode(&p, j)[..], &p[j as usize * SYMBOL..][..SYMBOL]);
        }
    }

    #[test]
    fn any_k_distinct_chunks_give_the_payload_back() {
        for k in [1usize, 2, 4, 30, 36] {
            let p = payload(k, k as u8);
            // Windows of k consecutive indexes, from all systematic to all parity, and a
            // stride that mixes both.
            let starts = [0usize, 1, k / 2, INDEXES - k];
            for start in starts {
                let mut c = Collector::new(k as u8);
                for i in start..start + k {
                    c.add(i as u8, &encode(&p, i as u8));
                }
                assert_eq!(c.decode().as_deref(), Some(&p[..]), "k {k} start {start}");
            }
            let mut c = Collector::new(k as u8);
            let mut i = 0;
            while !c.is_complete() {
                c.add((i % INDEXES) as u8, &encode(&p, (i % INDEXES) as u8));
                i += 3;
            }
            assert_eq!(c.decode().as_deref(), Some(&p[..]));
        }
    }

    #[test]
    fn the_compiled_denominators_are_the_computed_ones() {
        let points = |k: u8| (0..k).collect::<Vec<u8>>();
        assert_eq!(&DEN_2[..], &log_denominators(&points(2))[..]);
        assert_eq!(&DEN_4[..], &log_denominators(&points(4))[..]);
        assert_eq!(&DEN_30[..], &log_denominators(&points(30))[..]);
        assert_eq!(&DEN_36[..], &log_denominators(&points(36))[..]);
    }

    #[test]
    fn repeats_and_chunks_after_completion_are_ignored() {
        let p = payload(2, 7);
        let mut c = Collector::new(2);
        c.add(5, &encode(&p, 5));
        c.add(5, &[0xaa; SYMBOL]);
        assert!(!c.is_complete());
        assert_eq!(c.decode(), None);
        c.add(9, &encode(&p, 9));
        c.add(1, &[0xbb; SYMBOL]);
        c.add(INDEXES as u8, &[0xcc; SYMBOL]);
        assert_eq!(c.chunks().len(), 2);
        assert_eq!(c.decode().as_deref(), Some(&p[..]));
    }

    #[test]
    fn stored_chunks_must_be_ascending_in_range_and_at_most_k() {
        let z = [0u8; SYMBOL];
        assert!(Collector::from_chunks(2, alloc::vec![(1, z), (3, z)]).is_some());
        assert!(Collector::from_chunks(2, alloc::vec![(3, z), (1, z)]).is_none());
        assert!(Collector::from_chunks(2, alloc::vec![(1, z), (1, z)]).is_none());
        assert!(Collector::from_chunks(2, alloc::vec![(64, z)]).is_none());
        assert!(Collector::from_chunks(1, alloc::vec![(1, z), (2, z)]).is_none());
    }
}
