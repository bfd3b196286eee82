//! Fixed v1 packet geometry (`sphinx-v1.md`, "Geometry" and "Frame").

use std::ops::Range;

/// Longest path a packet can take.
pub const MAX_HOPS: usize = 5;
/// One hop's routing command.
pub const ROUTING_LEN: usize = 48;
/// Header MAC `γ`.
pub const MAC_LEN: usize = 16;
/// One hop's share of `β`: a routing command and the next MAC.
pub const SLOT: usize = ROUTING_LEN + MAC_LEN;
/// The routing information `β`.
pub const BETA_LEN: usize = MAX_HOPS * SLOT;
/// The group element `α`.
pub const ALPHA_LEN: usize = 32;
/// `α ‖ γ ‖ β`.
pub const HEADER_LEN: usize = ALPHA_LEN + MAC_LEN + BETA_LEN;
/// The payload `δ`.
pub const PAYLOAD_LEN: usize = 1024;
/// `header ‖ payload`.
pub const PACKET_LEN: usize = HEADER_LEN + PAYLOAD_LEN;
/// Version byte, kind byte, packet: what goes on the wire.
pub const FRAME_LEN: usize = 2 + PACKET_LEN;
/// Zero prefix the final hop checks in the decrypted payload.
pub const PAYLOAD_ZERO_PREFIX: usize = 16;
/// Zero prefix plus the 2-byte length.
pub const PAYLOAD_OVERHEAD: usize = PAYLOAD_ZERO_PREFIX + 2;
/// Longest message one packet carries.
pub const MAX_MESSAGE: usize = PAYLOAD_LEN - PAYLOAD_OVERHEAD;

/// SURB id length (the REPLY command's last field).
pub const SURB_ID_LEN: usize = 16;
/// What a reply's last hop delivers: `surb_id ‖ δ'`.
pub const REPLY_DATAGRAM_LEN: usize = SURB_ID_LEN + PAYLOAD_LEN;

/// The only frame version v1 defines.
pub const FRAME_VERSION: u8 = 0x01;
/// Frame kind of a Sphinx packet.
pub const KIND_SPHINX: u8 = 0x00;

/// Where each field sits inside a frame.
pub mod offsets {
    use super::*;

    /// `α`.
    pub const ALPHA: Range<usize> = 2..2 + ALPHA_LEN;
    /// `γ`.
    pub const GAMMA: Range<usize> = ALPHA.end..ALPHA.end + MAC_LEN;
    /// `β`.
    pub const BETA: Range<usize> = GAMMA.end..GAMMA.end + BETA_LEN;
    /// `δ`.
    pub const DELTA: Range<usize> = BETA.end..BETA.end + PAYLOAD_LEN;
    /// The delivered message starts here in an unwrapped final-hop frame.
    pub const MESSAGE: usize = DELTA.start + PAYLOAD_OVERHEAD;
    /// Where a reply's last hop assembles `surb_id ‖ δ'` in the unwrapped
    /// frame (the SURB id overwrites the end of `β`, no longer needed).
    pub const REPLY_DATAGRAM: Range<usize> = DELTA.start - SURB_ID_LEN..DELTA.end;
}

const _: () = {
    assert!(BETA_LEN == 320);
    assert!(HEADER_LEN == 368);
    assert!(PACKET_LEN == 1392);
    assert!(FRAME_LEN == 1394);
    assert!(MAX_MESSAGE == 1006);
    assert!(offsets::DELTA.end == FRAME_LEN);
    assert!(REPLY_DATAGRAM_LEN == 1040);
    // A delivered DELIVER message is never as long as a reply datagram, so
    // the length alone tells them apart.
    assert!(REPLY_DATAGRAM_LEN > MAX_MESSAGE);
};
