//! History sync streams: round trips at chunk boundaries, and every way a stream can be cut,
//! shuffled, repeated or spliced.

use ratchetry::SyncError;
use ratchetry::history::{CHUNK_SIZE, HistoryOffer, HistoryOpener, HistorySealer};
use ratchetry::testing::SeededRng;

fn seal(rng: &mut SeededRng, data: &[u8], piece: usize) -> (Vec<Vec<u8>>, HistoryOffer) {
    let mut sealer = HistorySealer::new(rng);
    let mut chunks = Vec::new();
    for part in data.chunks(piece.max(1)) {
        chunks.extend(sealer.push(part));
    }
    let (last, offer) = sealer.finish();
    chunks.extend(last);
    (chunks, HistoryOffer::from_bytes(&offer.to_bytes()).unwrap())
}

fn open(chunks: &[Vec<u8>], offer: &HistoryOffer) -> Result<Vec<u8>, SyncError> {
    let mut opener = HistoryOpener::new(offer);
    let mut out = Vec::new();
    for c in chunks {
        out.extend(opener.push(c)?);
    }
    opener.finish()?;
    Ok(out)
}

#[test]
fn round_trips_at_every_boundary() {
    let rng = &mut SeededRng::from_label("history sizes");
    for len in [
        0,
        1,
        CHUNK_SIZE - 1,
        CHUNK_SIZE,
        CHUNK_SIZE + 1,
        3 * CHUNK_SIZE + 5,
    ] {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        for piece in [1000, CHUNK_SIZE, 3 * CHUNK_SIZE] {
            let (chunks, offer) = seal(rng, &data, piece);
            assert_eq!(offer.total_len(), len as u64);
            assert_eq!(chunks.len() as u64, offer.chunks());
            assert_eq!(chunks.len(), len / CHUNK_SIZE + 1);
            assert_eq!(
                open(&chunks, &offer).unwrap(),
                data,
                "len {len} piece {piece}"
            );
        }
    }
}

#[test]
fn truncation_reordering_duplication_and_splicing_fail() {
    let rng = &mut SeededRng::from_label("history attacks");
    let data = vec![0x33u8; 3 * CHUNK_SIZE + 100];
    let (chunks, offer) = seal(rng, &data, CHUNK_SIZE);
    assert_eq!(chunks.len(), 4);
    // Truncated: the last chunk missing.
    let mut opener = HistoryOpener::new(&offer);
    for c in &chunks[..3] {
        opener.push(c).unwrap();
    }
    assert_eq!(opener.finish(), Err(SyncError::Incomplete));
    // Truncated to a full-chunk boundary while claiming fewer chunks cannot be faked: an
    // ordinary chunk does not open as the last one.
    let short = HistoryOffer::from_bytes(&offer.to_bytes()).unwrap();
    let mut tampered = short.to_bytes().to_vec();
    let at = 2 + 32 + 4;
    tampered[at..at + 8].copy_from_slice(&((2 * CHUNK_SIZE) as u64).to_be_bytes());
    tampered[at + 8..at + 16].copy_from_slice(&3u64.to_be_bytes());
    let lying = HistoryOffer::from_bytes(&tampered).unwrap();
    let mut opener = HistoryOpener::new(&lying);
    opener.push(&chunks[0]).unwrap();
    opener.push(&chunks[1]).unwrap();
    assert_eq!(opener.push(&chunks[2]), Err(SyncError::ChunkRejected(2)));
    // Reordered and duplicated.
    let mut opener = HistoryOpener::new(&offer);
    assert_eq!(opener.push(&chunks[1]), Err(SyncError::ChunkRejected(0)));
    opener.push(&chunks[0]).unwrap();
    assert_eq!(opener.push(&chunks[0]), Err(SyncError::ChunkRejected(1)));
    // The refusals changed nothing: the stream continues.
    for c in &chunks[1..] {
        opener.push(c).unwrap();
    }
    assert_eq!(opener.chunks_opened(), 4);
    opener.finish().unwrap();
    // Spliced from another stream (same length).
    let (other, _) = seal(rng, &data, CHUNK_SIZE);
    let mut opener = HistoryOpener::new(&offer);
    assert_eq!(opener.push(&other[0]), Err(SyncError::ChunkRejected(0)));
    // A bit flip anywhere in a chunk.
    for i in [0, 1, 2, 100, chunks[0].len() - 1] {
        let mut bad = chunks[0].clone();
        bad[i] ^= 1;
        assert_eq!(
            HistoryOpener::new(&offer).push(&bad),
            Err(SyncError::ChunkRejected(0))
        );
    }
    // One chunk too many.
    let mut opener = HistoryOpener::new(&offer);
    for c in &chunks {
        opener.push(c).unwrap();
    }
    assert_eq!(opener.push(&chunks[3]), Err(SyncError::TooManyChunks));
    // A wrong digest in the offer.
    let mut bad_digest = offer.to_bytes().to_vec();
    // The digest's last byte, before the (empty) app data's length.
    let last = bad_digest.len() - 4 - 1;
    bad_digest[last] ^= 1;
    let bad_offer = HistoryOffer::from_bytes(&bad_digest).unwrap();
    assert_eq!(open(&chunks, &bad_offer), Err(SyncError::Incomplete));
    // An offer whose chunk count does not fit its length is malformed.
    let mut inconsistent = offer.to_bytes().to_vec();
    inconsistent[at + 8..at + 16].copy_from_slice(&9u64.to_be_bytes());
    assert!(HistoryOffer::from_bytes(&inconsistent).is_err());
    assert!(!format!("{offer:?}").contains(&hex::encode(&offer.to_bytes()[2..10])));
}

/// An offer carries the app's data for the companion, up to its bound, in its wire bytes and
/// through a pairwise session; more is refused when attaching and when decoding, and `Debug`
/// shows only its length.
#[test]
fn an_offer_carries_app_data_within_its_bound() {
    use ratchetry::history::MAX_HISTORY_APP_DATA;
    let rng = &mut SeededRng::from_label("history app data");
    let (chunks, offer) = seal(rng, &[9; 1000], 300);
    assert_eq!(offer.app_data(), b"");
    let offer = offer.with_app_data(b"groups: 7").unwrap();
    assert_eq!(offer.app_data(), b"groups: 7");
    let bytes = offer.to_bytes();
    let back = HistoryOffer::from_bytes(&bytes).unwrap();
    assert_eq!(back, offer);
    assert_eq!(open(&chunks, &back).unwrap(), [9; 1000]);
    assert!(!format!("{offer:?}").contains("groups"));
    // At the bound, and one byte over.
    let full = offer
        .clone()
        .with_app_data(&[1; MAX_HISTORY_APP_DATA])
        .unwrap();
    let full_bytes = full.to_bytes();
    assert_eq!(HistoryOffer::from_bytes(&full_bytes), Ok(full));
    assert_eq!(
        offer.clone().with_app_data(&[1; MAX_HISTORY_APP_DATA + 1]),
        Err(SyncError::AppDataTooLong)
    );
    let mut over = full_bytes[..full_bytes.len() - MAX_HISTORY_APP_DATA - 4].to_vec();
    over.extend_from_slice(&(MAX_HISTORY_APP_DATA as u32 + 1).to_be_bytes());
    over.extend_from_slice(&[1; MAX_HISTORY_APP_DATA + 1]);
    assert_eq!(
        HistoryOffer::from_bytes(&over),
        Err(ratchetry::DecodeError::InvalidValue)
    );
    // Without its length, or with bytes after it: refused.
    assert!(HistoryOffer::from_bytes(&bytes[..bytes.len() - 1]).is_err());
    assert!(HistoryOffer::from_bytes(&[&bytes[..], &[0]].concat()).is_err());
}
