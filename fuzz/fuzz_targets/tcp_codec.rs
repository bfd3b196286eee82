//! The TCP `FrameCodec` fed a byte stream in pieces whose sizes the input
//! chooses, through a read buffer bounded the way an inbound connection
//! bounds it. The frames must be exactly those of decoding the whole stream
//! at once (which are the stream's `FRAME_LEN`-byte pieces, in order), the
//! buffer must never grow past its bound, and encoding must accept exactly
//! the frames and refuse every other length.
//!
//! Input: a byte `n`, `n % 32` little-endian u16 piece sizes, then the
//! stream. Piece sizes are used in turn, cycling, for the first 256 reads;
//! 0 means "a read that got nothing", which must change nothing.

#![no_main]

use betanet::sphinx::FRAME_LEN;
use betanet::transport::FrameCodec;
use bytes::{BufMut, BytesMut};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::{Decoder, Encoder};

/// What an inbound connection buffers at most (`READ_BUF_LEN` in
/// `src/transport/tcp/connection.rs`).
const READ_BUF_LEN: usize = 8 * FRAME_LEN;
/// Reads whose sizes the input picks; later reads fill the buffer.
const MAX_CHOSEN_READS: usize = 256;

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let sizes_len = 2 * usize::from(n % 32);
    if rest.len() < sizes_len {
        return;
    }
    let (sizes, stream) = rest.split_at(sizes_len);
    let sizes: Vec<usize> = sizes
        .chunks_exact(2)
        .map(|s| usize::from(u16::from_le_bytes([s[0], s[1]])))
        .collect();

    let whole = one_shot(stream);
    assert_eq!(whole.len(), stream.len() / FRAME_LEN);
    for (frame, expected) in whole.iter().zip(stream.chunks_exact(FRAME_LEN)) {
        assert_eq!(&frame[..], expected);
    }

    let (pieces, left) = in_pieces(stream, &sizes);
    assert_eq!(pieces, whole, "split decoding differs from one-shot");
    assert_eq!(left, stream.len() % FRAME_LEN);

    encode_check(stream, &whole);
});

/// Every frame of `stream`, decoded from one buffer holding all of it.
fn one_shot(stream: &[u8]) -> Vec<BytesMut> {
    let mut codec = FrameCodec::new();
    let mut buf = BytesMut::from(stream);
    let mut frames = Vec::new();
    while let Some(frame) = codec.decode(&mut buf).expect("decoding never fails") {
        frames.push(frame);
    }
    assert!(buf.len() < FRAME_LEN);
    frames
}

/// Decodes `stream` as a connection would receive it: reads of the given
/// sizes (cut to the buffer's free room), decoding after each. Returns the
/// frames and the bytes left undecoded at the end.
fn in_pieces(stream: &[u8], sizes: &[usize]) -> (Vec<BytesMut>, usize) {
    let mut codec = FrameCodec::new();
    let mut buf = BytesMut::with_capacity(READ_BUF_LEN);
    let mut frames = Vec::new();
    let mut at = 0;
    let mut turn = 0;
    let mut idle_reads = 0;
    loop {
        while let Some(frame) = codec.decode(&mut buf).expect("decoding never fails") {
            frames.push(frame);
        }
        assert!(buf.len() < FRAME_LEN);
        if at == stream.len() {
            return (frames, buf.len());
        }
        // As the connection does: room for a full buffer, never more.
        buf.reserve(READ_BUF_LEN - buf.len());
        let room = READ_BUF_LEN - buf.len();
        // After MAX_CHOSEN_READS the rest arrives in reads as big as the
        // room: a stream of one-byte reads would cost a run per byte and
        // teach nothing new about frame boundaries.
        let size = match sizes.get(turn % sizes.len().max(1)) {
            Some(&size) if turn < MAX_CHOSEN_READS => size,
            _ => room,
        };
        turn += 1;
        let take = size.min(room).min(stream.len() - at);
        if take == 0 {
            // Only the sizes can stall progress; give up after a full cycle
            // of empty reads and deliver the rest in one read per room.
            idle_reads += 1;
            if idle_reads > sizes.len() {
                let take = room.min(stream.len() - at);
                (&mut buf).limit(room).put_slice(&stream[at..at + take]);
                at += take;
            }
            continue;
        }
        idle_reads = 0;
        let before = buf.len();
        (&mut buf).limit(room).put_slice(&stream[at..at + take]);
        assert_eq!(buf.len(), before + take);
        assert!(buf.len() <= READ_BUF_LEN);
        at += take;
    }
}

/// Encoding the decoded frames gives back the stream's whole frames; any
/// other length is refused and writes nothing.
fn encode_check(stream: &[u8], frames: &[BytesMut]) {
    let mut codec = FrameCodec::new();
    let mut out = BytesMut::new();
    for frame in frames {
        codec
            .encode(&frame[..], &mut out)
            .expect("a whole frame encodes");
    }
    assert_eq!(&out[..], &stream[..frames.len() * FRAME_LEN]);

    let odd = stream.len() % (2 * FRAME_LEN + 1);
    if odd != FRAME_LEN {
        let mut out = BytesMut::new();
        assert!(codec.encode(&stream[..odd], &mut out).is_err());
        assert!(out.is_empty());
    }
}
