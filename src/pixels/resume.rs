//! Whether an interrupted pixel run's committed chunks still describe the inputs.
//! An archive edited in place can keep its path, size and modification time, so a
//! chunk is reused only if its members' names and bytes are unchanged: each chunk
//! records a digest of its members (ordinal, path, kind, CRC-32 of the bytes), and a
//! resumed run reads the committed members again and compares.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::pixels::source::{self, Kind, Member};
use crate::warehouse::InputFile;

/// The digest of one chunk's members, built in member order.
#[derive(Default)]
pub struct ChunkDigest(Sha256);

impl ChunkDigest {
    /// Adds the next member, as the source produced it (before any decision of the
    /// run, such as duplicate names).
    pub fn add(&mut self, m: &Member) {
        let (tag, crc) = match &m.kind {
            Kind::Image(bytes) => (1u8, crc32fast::hash(bytes)),
            Kind::Failed(why) => (2, crc32fast::hash(why.as_bytes())),
            Kind::Skipped => (3, 0),
            Kind::Done => (4, 0),
        };
        self.0.update(m.ordinal.to_le_bytes());
        self.0.update(m.path.as_bytes());
        self.0.update([0, tag]);
        self.0.update(crc.to_le_bytes());
    }

    /// The digest so far, in hex; the digest starts again empty.
    pub fn take(&mut self) -> String {
        crate::warehouse::hex(&std::mem::take(&mut self.0).finalize())
    }
}

/// What reading the committed members again found.
pub struct Verified {
    /// How many of the committed chunks, from the first, still hold.
    pub valid: usize,
    /// The inputs' descriptions, when every chunk holds and the last one ended the
    /// run (the inputs were then read to their end).
    pub inputs: Option<Vec<InputFile>>,
}

/// Reads the members of `inputs` covered by chunks of `chunk` members whose
/// digests are `recorded`, comparing chunk by chunk. `finished`: the last recorded
/// chunk is the final, partial one.
pub fn verify(
    inputs: &[source::ImageInput],
    chunk: u64,
    recorded: &[String],
    finished: bool,
) -> Verified {
    let mut digest = ChunkDigest::default();
    let mut valid = 0usize;
    let mut holds = true;
    let full_chunks = recorded.len() - usize::from(finished);
    let read = source::stream(inputs, 0, Arc::default(), &mut |m: Member| {
        let k = (m.ordinal / chunk) as usize;
        if k >= full_chunks {
            // A member past the full chunks: only the final chunk may cover it.
            if !finished {
                return false;
            }
        }
        digest.add(&m);
        if k < full_chunks && (m.ordinal + 1).is_multiple_of(chunk) {
            holds = digest.take() == recorded[k];
            if holds {
                valid = k + 1;
            }
            return holds && (finished || valid < full_chunks);
        }
        true
    });
    let mut inputs = None;
    if finished
        && holds
        && valid == full_chunks
        && let Ok(described) = read
        // Every member was read: the final chunk is compared whole.
        && digest.take() == recorded[full_chunks]
    {
        valid += 1;
        inputs = Some(described);
    }
    Verified { valid, inputs }
}
