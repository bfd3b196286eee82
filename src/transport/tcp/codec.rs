//! Framing of Sphinx frames on a byte stream: frames follow each other back
//! to back with no length prefix, because every frame is exactly
//! [`FRAME_LEN`] bytes. A prefix would only add bytes and a way to lie.

use std::io;

use bytes::{BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::pipeline::PacketBuf;
use crate::sphinx::FRAME_LEN;

/// Splits a TCP byte stream into fixed-size frames and writes frames back.
///
/// Decoding never fails: any [`FRAME_LEN`] bytes are a frame as far as
/// framing goes; whether they are a valid packet is the Sphinx engine's
/// call. Encoding refuses anything that is not exactly one frame, because a
/// short or long write would desynchronise the peer's framing for good.
#[derive(Clone, Copy, Debug, Default)]
pub struct FrameCodec;

impl FrameCodec {
    /// A codec (it holds no state).
    pub fn new() -> Self {
        FrameCodec
    }
}

impl Decoder for FrameCodec {
    type Item = BytesMut;
    type Error = io::Error;

    /// Yields a frame once [`FRAME_LEN`] bytes are buffered.
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, io::Error> {
        if src.len() < FRAME_LEN {
            // Room for the rest of this frame now, so the reads that
            // complete it do not reallocate piecemeal.
            src.reserve(FRAME_LEN - src.len());
            return Ok(None);
        }
        Ok(Some(src.split_to(FRAME_LEN)))
    }
}

impl Encoder<&[u8]> for FrameCodec {
    type Error = io::Error;

    /// Appends `frame`, which must be exactly [`FRAME_LEN`] bytes.
    fn encode(&mut self, frame: &[u8], dst: &mut BytesMut) -> Result<(), io::Error> {
        check_len(frame.len())?;
        dst.reserve(FRAME_LEN);
        dst.put_slice(frame);
        Ok(())
    }
}

impl Encoder<&PacketBuf> for FrameCodec {
    type Error = io::Error;

    /// Appends the buffer's frame; it must hold exactly [`FRAME_LEN`] bytes.
    fn encode(&mut self, frame: &PacketBuf, dst: &mut BytesMut) -> Result<(), io::Error> {
        // `PacketBuf::len` (not the slice's) sees the oversize marker, which
        // the slice view would hide by showing `FRAME_LEN` bytes.
        check_len(frame.len())?;
        self.encode(&frame[..], dst)
    }
}

impl Encoder<PacketBuf> for FrameCodec {
    type Error = io::Error;

    /// As for `&PacketBuf`; the buffer returns to its pool afterwards.
    fn encode(&mut self, frame: PacketBuf, dst: &mut BytesMut) -> Result<(), io::Error> {
        self.encode(&frame, dst)
    }
}

fn check_len(len: usize) -> Result<(), io::Error> {
    if len == FRAME_LEN {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a TCP frame must be {FRAME_LEN} bytes, not {len}"),
        ))
    }
}
