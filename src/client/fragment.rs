//! Splitting messages into packet-sized fragments and putting them back
//! together. Pure and bounded: a receiver holds partial messages within
//! [`ReassemblyLimits`] (per message, per sender and in total), allocating
//! a fragment's slot only when that fragment arrives.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use crate::sphinx::MAX_MESSAGE;

/// Fragment format version of a plain message.
const VERSION: u8 = 1;
/// Fragment format version of a request: the reassembled message starts
/// with SURBs for the reply (see [`super::envelope`]).
const VERSION_REQUEST: u8 = 2;

/// What a reassembled message is: said by every fragment's first byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A one-way message (fragment version 1).
    Message,
    /// A request carrying SURBs (fragment version 2).
    Request,
}

impl Kind {
    fn version(self) -> u8 {
        match self {
            Kind::Message => VERSION,
            Kind::Request => VERSION_REQUEST,
        }
    }
}

/// A complete message out of a [`Reassembler`], with its kind.
#[derive(Debug, PartialEq, Eq)]
pub struct Delivered {
    /// Plain message or request.
    pub kind: Kind,
    /// Its bytes.
    pub bytes: Vec<u8>,
}
/// version (1) ‖ message id (16) ‖ index (2, BE) ‖ count (2, BE).
pub const HEADER_LEN: usize = 1 + 16 + 2 + 2;
/// Payload bytes per fragment.
pub const FRAGMENT_DATA: usize = MAX_MESSAGE - HEADER_LEN;
/// Longest message: 65,535 fragments.
pub const MAX_FRAGMENTED: usize = FRAGMENT_DATA * u16::MAX as usize;

/// Why a message cannot be split.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a message is at most {MAX_FRAGMENTED} bytes; this one has {0}")]
pub struct TooLong(pub usize);

/// Splits `message` into fragments, each small enough for one packet.
pub fn split(message_id: [u8; 16], message: &[u8]) -> Result<Vec<Vec<u8>>, TooLong> {
    split_as(Kind::Message, message_id, message)
}

/// [`split`] for a message of `kind`.
pub fn split_as(kind: Kind, message_id: [u8; 16], message: &[u8]) -> Result<Vec<Vec<u8>>, TooLong> {
    let chunks: Vec<&[u8]> = if message.is_empty() {
        vec![&[]]
    } else {
        message.chunks(FRAGMENT_DATA).collect()
    };
    let count = u16::try_from(chunks.len()).map_err(|_| TooLong(message.len()))?;
    Ok(chunks
        .iter()
        .enumerate()
        .map(|(i, chunk)| {
            let mut f = Vec::with_capacity(HEADER_LEN + chunk.len());
            f.push(kind.version());
            f.extend_from_slice(&message_id);
            // `i < count ≤ u16::MAX`, so this cannot truncate.
            f.extend_from_slice(&(i as u16).to_be_bytes());
            f.extend_from_slice(&count.to_be_bytes());
            f.extend_from_slice(chunk);
            f
        })
        .collect())
}

/// One parsed fragment.
#[derive(Debug, PartialEq, Eq)]
pub struct Fragment<'a> {
    /// Plain message or request.
    pub kind: Kind,
    /// The message it belongs to.
    pub message_id: [u8; 16],
    /// Its position.
    pub index: u16,
    /// How many fragments the message has.
    pub count: u16,
    /// Its bytes.
    pub data: &'a [u8],
}

/// Parses a delivered datagram; `None` if it is not a fragment.
pub fn parse(datagram: &[u8]) -> Option<Fragment<'_>> {
    let kind = match datagram.first() {
        Some(&VERSION) => Kind::Message,
        Some(&VERSION_REQUEST) => Kind::Request,
        _ => return None,
    };
    if datagram.len() < HEADER_LEN {
        return None;
    }
    let mut message_id = [0u8; 16];
    message_id.copy_from_slice(&datagram[1..17]);
    let index = u16::from_be_bytes([datagram[17], datagram[18]]);
    let count = u16::from_be_bytes([datagram[19], datagram[20]]);
    (count > 0 && index < count).then_some(Fragment {
        kind,
        message_id,
        index,
        count,
        data: &datagram[HEADER_LEN..],
    })
}

/// Bounds of a [`Reassembler`]: what one partial message, one sender and
/// all senders together may hold, and for how long.
///
/// Memory is charged as it is really used: the fragment bytes received,
/// plus [`FRAGMENT_OVERHEAD`] per fragment and [`MESSAGE_OVERHEAD`] per
/// message, so a flood of (even empty) first fragments claiming 65,535
/// parts costs only what arrived. `max_sender_bytes` is raised to fit one
/// message of `max_message_bytes` (otherwise that message could never
/// complete) and `max_pending_bytes` to fit one sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReassemblyLimits {
    /// Message bytes in one reassembled message.
    pub max_message_bytes: usize,
    /// Incomplete messages held in total.
    pub max_pending_messages: usize,
    /// Bytes charged for incomplete messages in total.
    pub max_pending_bytes: usize,
    /// Incomplete messages one sender may have started.
    pub max_sender_messages: usize,
    /// Bytes charged for the incomplete messages one sender started.
    pub max_sender_bytes: usize,
    /// How long an incomplete message is kept after its first fragment.
    pub timeout: Duration,
}

impl Default for ReassemblyLimits {
    /// One message up to the largest `split` makes (about 64 MB) from any
    /// one sender, 160 MiB and 1,024 messages in all, 256 messages per
    /// sender, kept for 60 s.
    fn default() -> Self {
        ReassemblyLimits {
            max_message_bytes: 64 << 20,
            max_pending_messages: 1024,
            max_pending_bytes: 160 << 20,
            max_sender_messages: 256,
            max_sender_bytes: 72 << 20,
            timeout: Duration::from_secs(60),
        }
    }
}

/// Bytes charged per fragment held, besides its data (map entry, heap
/// block).
pub const FRAGMENT_OVERHEAD: usize = 64;
/// Bytes charged per incomplete message held, besides its fragments.
pub const MESSAGE_OVERHEAD: usize = 256;

/// Who sent a fragment, as far as caps go: its IP address, with an IPv6
/// address reduced to its /64 (one host usually holds a whole /64) and an
/// IPv4-mapped one to the IPv4 address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sender(IpAddr);

impl Sender {
    /// The sender key of `ip`.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Sender(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Sender(IpAddr::V4(v4)),
                None => Sender(IpAddr::V6(Ipv6Addr::from(
                    u128::from(v6) & !((1u128 << 64) - 1),
                ))),
            },
        }
    }

    /// Stands for every fragment pushed without an address.
    pub const UNKNOWN: Sender = Sender(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
}

struct Partial {
    /// The sender of the first fragment: the message counts against its
    /// caps.
    owner: Sender,
    /// What the first fragment said the message is; later fragments must agree.
    kind: Kind,
    /// Arrival order (oldest first is evicted first).
    seq: u64,
    count: u16,
    /// Slots are made as fragments arrive, never `count` up front.
    parts: BTreeMap<u16, Box<[u8]>>,
    data_bytes: usize,
    charged: usize,
    first_seen: Instant,
}

#[derive(Default)]
struct Usage {
    /// This sender's messages by arrival order.
    messages: BTreeMap<u64, [u8; 16]>,
    bytes: usize,
}

/// Reassembles messages from fragments arriving in any order, within
/// [`ReassemblyLimits`].
///
/// Anyone can send datagrams to a receiver, so it is built to be flooded:
///
/// - a fragment slot is allocated when that fragment arrives, not when a
///   first fragment claims a count;
/// - each message, each sender ([`Sender`]: its IP, IPv6 by /64) and all
///   senders together have caps on pending messages and bytes;
/// - a sender over its own caps evicts its own oldest messages; when the
///   totals are full, the oldest message of the sender holding the most
///   (bytes or messages, whichever is full) goes. Nobody loses a message
///   to a sender holding more than they do, so a sender within its fair
///   share keeps its messages and a flood from one address ends up
///   evicting only its own;
/// - a message that can no longer complete (too long, no room) is dropped
///   whole, and every message expires `timeout` after its first fragment.
///
/// Fragments of one message may come from different senders (each packet
/// takes its own route, so its own exit node); a message is charged to the
/// sender of its first fragment.
pub struct Reassembler {
    limits: ReassemblyLimits,
    pending: HashMap<[u8; 16], Partial>,
    /// Every message by arrival order, for expiry.
    order: BTreeMap<u64, [u8; 16]>,
    senders: HashMap<Sender, Usage>,
    total_bytes: usize,
    next_seq: u64,
}

impl Reassembler {
    /// Holds at most `max_pending` incomplete messages of at most
    /// `max_message` bytes, each for at most `timeout`; the other limits
    /// are [`ReassemblyLimits::default`]'s, scaled down to fit.
    pub fn new(max_pending: usize, max_message: usize, timeout: Duration) -> Self {
        let defaults = ReassemblyLimits::default();
        Self::with_limits(ReassemblyLimits {
            max_message_bytes: max_message,
            max_pending_messages: max_pending,
            max_sender_messages: defaults.max_sender_messages.min(max_pending),
            max_sender_bytes: defaults.max_sender_bytes.min(Self::charge_of(max_message)),
            max_pending_bytes: defaults
                .max_pending_bytes
                .min(Self::charge_of(max_message).saturating_mul(max_pending.max(1))),
            timeout,
        })
    }

    /// A reassembler within `limits` (made consistent: every cap at least
    /// 1, a sender's byte cap fits one largest message, the total fits one
    /// sender).
    pub fn with_limits(mut limits: ReassemblyLimits) -> Self {
        limits.max_pending_messages = limits.max_pending_messages.max(1);
        limits.max_sender_messages = limits
            .max_sender_messages
            .clamp(1, limits.max_pending_messages);
        limits.max_sender_bytes = limits
            .max_sender_bytes
            .max(Self::charge_of(limits.max_message_bytes));
        limits.max_pending_bytes = limits.max_pending_bytes.max(limits.max_sender_bytes);
        Reassembler {
            limits,
            pending: HashMap::new(),
            order: BTreeMap::new(),
            senders: HashMap::new(),
            total_bytes: 0,
            next_seq: 0,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &ReassemblyLimits {
        &self.limits
    }

    /// The most a message of `len` bytes can be charged: whole fragments
    /// plus one more (a last, short one).
    fn charge_of(len: usize) -> usize {
        let fragments = len.div_ceil(FRAGMENT_DATA).max(1) + 1;
        MESSAGE_OVERHEAD
            .saturating_add(len)
            .saturating_add(fragments.saturating_mul(FRAGMENT_OVERHEAD))
    }

    /// [`push_from`](Self::push_from) for a datagram whose sender is not
    /// known; all such datagrams share one sender's caps.
    pub fn push(&mut self, datagram: &[u8], now: Instant) -> Option<Vec<u8>> {
        self.push_from(Sender::UNKNOWN, datagram, now)
    }

    /// Feeds one datagram from `sender`; returns a message once it is
    /// complete. Datagrams that are not fragments are returned as they are.
    pub fn push_from(&mut self, sender: Sender, datagram: &[u8], now: Instant) -> Option<Vec<u8>> {
        self.push_delivered_from(sender, datagram, now)
            .map(|delivered| delivered.bytes)
    }

    /// [`push_from`](Self::push_from), also saying whether the message is a
    /// request (datagrams that are not fragments are plain messages).
    pub fn push_delivered_from(
        &mut self,
        sender: Sender,
        datagram: &[u8],
        now: Instant,
    ) -> Option<Delivered> {
        let Some(fragment) = parse(datagram) else {
            return Some(Delivered {
                kind: Kind::Message,
                bytes: datagram.to_vec(),
            });
        };
        let kind = fragment.kind;
        if fragment.count == 1 {
            return Some(Delivered {
                kind,
                bytes: fragment.data.to_vec(),
            });
        }
        self.expire(now);
        let id = fragment.message_id;
        let charge = FRAGMENT_OVERHEAD + fragment.data.len();
        match self.pending.get(&id) {
            Some(partial) => {
                if partial.count != fragment.count
                    || partial.kind != kind
                    || partial.parts.contains_key(&fragment.index)
                {
                    return None;
                }
                if partial.data_bytes + fragment.data.len() > self.limits.max_message_bytes
                    || !self.make_room(partial.owner, charge, false, Some(id))
                {
                    // It can never complete now.
                    self.remove(&id);
                    return None;
                }
            }
            None => {
                // Honest fragments are full but for the last: a count
                // beyond what fits the message cap is refused outright.
                let least = (usize::from(fragment.count) - 1).saturating_mul(FRAGMENT_DATA);
                if least > self.limits.max_message_bytes
                    || fragment.data.len() > self.limits.max_message_bytes
                    || !self.make_room(sender, MESSAGE_OVERHEAD + charge, true, None)
                {
                    return None;
                }
                self.open(sender, &fragment, now);
            }
        }

        let partial = self.pending.get_mut(&id)?;
        partial
            .parts
            .insert(fragment.index, fragment.data.to_vec().into_boxed_slice());
        partial.data_bytes += fragment.data.len();
        partial.charged += charge;
        let owner = partial.owner;
        let complete = partial.parts.len() == usize::from(partial.count);
        self.total_bytes += charge;
        if let Some(usage) = self.senders.get_mut(&owner) {
            usage.bytes += charge;
        }
        if !complete {
            return None;
        }
        let done = self.remove(&id)?;
        let mut message = Vec::with_capacity(done.data_bytes);
        for part in done.parts.values() {
            message.extend_from_slice(part);
        }
        Some(Delivered {
            kind: done.kind,
            bytes: message,
        })
    }

    /// Incomplete messages held now.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Bytes charged for the incomplete messages held now (never above
    /// [`ReassemblyLimits::max_pending_bytes`]).
    pub fn pending_bytes(&self) -> usize {
        self.total_bytes
    }

    /// Incomplete messages `sender` started, and the bytes charged for them.
    pub fn pending_of(&self, sender: Sender) -> (usize, usize) {
        self.senders
            .get(&sender)
            .map_or((0, 0), |u| (u.messages.len(), u.bytes))
    }

    /// Registers a new, empty message (room was made).
    fn open(&mut self, owner: Sender, fragment: &Fragment<'_>, now: Instant) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let id = fragment.message_id;
        self.pending.insert(
            id,
            Partial {
                owner,
                kind: fragment.kind,
                seq,
                count: fragment.count,
                parts: BTreeMap::new(),
                data_bytes: 0,
                charged: MESSAGE_OVERHEAD,
                first_seen: now,
            },
        );
        self.order.insert(seq, id);
        let usage = self.senders.entry(owner).or_default();
        usage.messages.insert(seq, id);
        usage.bytes += MESSAGE_OVERHEAD;
        self.total_bytes += MESSAGE_OVERHEAD;
    }

    /// Evicts until `owner` can add `bytes` (and a message, if
    /// `new_message`) within its caps and the totals; never evicts
    /// `keep`. False if that is impossible.
    fn make_room(
        &mut self,
        owner: Sender,
        bytes: usize,
        new_message: bool,
        keep: Option<[u8; 16]>,
    ) -> bool {
        let l = self.limits;
        let added = usize::from(new_message);
        loop {
            let (own_messages, own_bytes) = self.pending_of(owner);
            let sender_full_bytes = own_bytes + bytes > l.max_sender_bytes;
            let sender_full = sender_full_bytes || own_messages + added > l.max_sender_messages;
            let total_full_bytes = self.total_bytes + bytes > l.max_pending_bytes;
            let total_full =
                total_full_bytes || self.pending.len() + added > l.max_pending_messages;
            if !sender_full && !total_full {
                return true;
            }
            let victim_sender = if sender_full {
                owner
            } else {
                // The heaviest sender, counting what `owner` is about to add.
                let weight = |sender: &Sender, usage: &Usage| {
                    let extra = |n: usize| if *sender == owner { n } else { 0 };
                    if total_full_bytes {
                        usage.bytes + extra(bytes)
                    } else {
                        usage.messages.len() + extra(added)
                    }
                };
                let heaviest = self
                    .senders
                    .iter()
                    .max_by_key(|(sender, usage)| (weight(sender, usage), **sender == owner))
                    .map(|(sender, _)| *sender);
                let own_weight = if total_full_bytes {
                    own_bytes + bytes
                } else {
                    own_messages + added
                };
                match heaviest {
                    Some(sender) if own_weight < weight(&sender, &self.senders[&sender]) => sender,
                    _ => owner,
                }
            };
            let victim = self.senders.get(&victim_sender).and_then(|usage| {
                usage
                    .messages
                    .values()
                    .find(|id| Some(**id) != keep)
                    .copied()
            });
            match victim {
                Some(id) => {
                    self.remove(&id);
                }
                None => return false,
            }
        }
    }

    /// Forgets a message and what it was charged.
    fn remove(&mut self, id: &[u8; 16]) -> Option<Partial> {
        let partial = self.pending.remove(id)?;
        self.order.remove(&partial.seq);
        self.total_bytes -= partial.charged;
        if let Some(usage) = self.senders.get_mut(&partial.owner) {
            usage.messages.remove(&partial.seq);
            usage.bytes -= partial.charged;
            if usage.messages.is_empty() {
                self.senders.remove(&partial.owner);
            }
        }
        Some(partial)
    }

    /// Drops messages whose first fragment is older than the timeout,
    /// oldest first.
    fn expire(&mut self, now: Instant) {
        while let Some((_, id)) = self.order.first_key_value() {
            let id = *id;
            let expired = self
                .pending
                .get(&id)
                .is_none_or(|p| now.saturating_duration_since(p.first_seen) >= self.limits.timeout);
            if !expired {
                break;
            }
            if self.remove(&id).is_none() {
                self.order.pop_first();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_and_reassemble_in_any_order() {
        let message: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        let mut fragments = split([7; 16], &message).unwrap();
        assert_eq!(fragments.len(), 5000usize.div_ceil(FRAGMENT_DATA));
        assert!(fragments.iter().all(|f| f.len() <= MAX_MESSAGE));
        fragments.reverse();
        let mut r = Reassembler::new(8, 1 << 20, Duration::from_secs(10));
        let now = Instant::now();
        let mut out = None;
        for f in &fragments {
            assert!(out.is_none());
            out = r.push(f, now);
        }
        assert_eq!(out, Some(message));
        assert_eq!(r.pending(), 0);
    }

    #[test]
    fn small_and_empty_messages_are_one_fragment() {
        for m in [&b""[..], b"hi"] {
            let f = split([1; 16], m).unwrap();
            assert_eq!(f.len(), 1);
            let mut r = Reassembler::new(1, 100, Duration::from_secs(1));
            assert_eq!(r.push(&f[0], Instant::now()).as_deref(), Some(m));
        }
    }

    fn ip(n: u32) -> Sender {
        Sender::of(IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + n)))
    }

    /// Fragment 0 of `count` of message `id`, with `data` bytes.
    fn first(id: u64, count: u16, data: usize) -> Vec<u8> {
        let mut f = vec![VERSION];
        f.extend_from_slice(&u128::from(id).to_be_bytes());
        f.extend_from_slice(&0u16.to_be_bytes());
        f.extend_from_slice(&count.to_be_bytes());
        f.extend(std::iter::repeat_n(0xaa, data));
        f
    }

    /// A first fragment of a message claiming 65,535 parts.
    fn huge_first(id: u64, data: usize) -> Vec<u8> {
        first(id, u16::MAX, data)
    }

    /// The bookkeeping adds up and every cap holds.
    fn check_invariants(r: &Reassembler) {
        let l = r.limits;
        let charged: usize = r.pending.values().map(|p| p.charged).sum();
        assert_eq!(charged, r.total_bytes);
        assert!(
            r.total_bytes <= l.max_pending_bytes,
            "{} bytes",
            r.total_bytes
        );
        assert!(r.pending.len() <= l.max_pending_messages);
        assert_eq!(r.order.len(), r.pending.len());
        for (sender, usage) in &r.senders {
            assert!(!usage.messages.is_empty());
            assert!(usage.messages.len() <= l.max_sender_messages, "{sender:?}");
            assert!(usage.bytes <= l.max_sender_bytes, "{sender:?}");
            let own: usize = usage
                .messages
                .values()
                .map(|id| r.pending[id].charged)
                .sum();
            assert_eq!(own, usage.bytes);
        }
        for p in r.pending.values() {
            // Slots exist only for fragments that arrived.
            assert!(p.parts.len() < usize::from(p.count));
            let data: usize = p.parts.values().map(|d| d.len()).sum();
            assert_eq!(data, p.data_bytes);
            assert_eq!(
                p.charged,
                MESSAGE_OVERHEAD + p.parts.len() * FRAGMENT_OVERHEAD + data
            );
        }
    }

    #[test]
    fn a_flood_of_huge_first_fragments_stays_within_the_byte_cap() {
        let mut r = Reassembler::with_limits(ReassemblyLimits::default());
        let cap = r.limits().max_pending_bytes;
        let now = Instant::now();
        // 20,000 first fragments of 65,535-part messages from 2,000
        // addresses: 21 bytes of header would once have bought 1.5 MiB of
        // slots each.
        for i in 0..20_000u64 {
            let sender = ip((i % 2_000) as u32);
            assert_eq!(
                r.push_from(sender, &huge_first(i, FRAGMENT_DATA), now),
                None
            );
            assert!(r.pending_bytes() <= cap);
        }
        check_invariants(&r);
        assert!(r.pending() <= 1024, "{}", r.pending());
        // Each message holds the one fragment that came, nothing more.
        assert!(r.pending_bytes() <= 1024 * (MESSAGE_OVERHEAD + FRAGMENT_OVERHEAD + FRAGMENT_DATA));

        // A tighter byte cap binds before the message cap does.
        let mut r = Reassembler::with_limits(ReassemblyLimits {
            max_pending_bytes: 1 << 20,
            max_sender_bytes: 256 << 10,
            max_message_bytes: 128 << 10,
            ..ReassemblyLimits::default()
        });
        for i in 0..5_000u64 {
            let _ = r.push_from(ip((i % 97) as u32), &first(i, 100, FRAGMENT_DATA), now);
            assert!(r.pending_bytes() <= 1 << 20);
        }
        check_invariants(&r);
        assert!(
            r.pending_bytes() > (1 << 20) - 2 * 1305,
            "the cap is what binds"
        );
    }

    #[test]
    fn a_normal_message_still_reassembles_beside_a_flood_from_one_address() {
        let mut r = Reassembler::with_limits(ReassemblyLimits::default());
        let now = Instant::now();
        let message: Vec<u8> = (0..200_000u32).map(|i| (i * 7) as u8).collect();
        let fragments = split([9; 16], &message).unwrap();
        let attacker = ip(666);
        let mut out = None;
        for (n, f) in fragments.iter().enumerate() {
            // Each fragment of the real message comes from one of three
            // exits; the attacker sends 50 first fragments between them.
            for j in 0..50 {
                let _ = r.push_from(attacker, &huge_first((n * 50 + j) as u64, 500), now);
            }
            assert!(out.is_none());
            out = r.push_from(ip((n % 3) as u32), f, now);
        }
        assert_eq!(out, Some(message));
        check_invariants(&r);
        let (messages, _) = r.pending_of(attacker);
        assert_eq!(messages, r.limits().max_sender_messages);
    }

    #[test]
    fn one_sender_cannot_evict_anothers_messages_beyond_its_share() {
        let limits = ReassemblyLimits {
            max_pending_messages: 64,
            max_sender_messages: 16,
            ..ReassemblyLimits::default()
        };
        let mut r = Reassembler::with_limits(limits);
        let now = Instant::now();
        let honest = ip(1);
        let messages: Vec<Vec<Vec<u8>>> = (0..2u8)
            .map(|m| split([m; 16], &vec![m; 3 * FRAGMENT_DATA]).unwrap())
            .collect();
        for fragments in &messages {
            assert_eq!(r.push_from(honest, &fragments[0], now), None);
        }
        // One address alone is held to its own cap and evicts only itself.
        for i in 0..1_000u64 {
            let _ = r.push_from(ip(7), &huge_first(10_000 + i, 100), now);
        }
        assert_eq!(r.pending_of(ip(7)).0, 16);
        assert_eq!(r.pending_of(honest).0, 2);
        // 30 more addresses, 100 first fragments each: the totals fill up,
        // but every eviction hits a sender holding more than the honest one.
        for i in 0..3_000u64 {
            let _ = r.push_from(ip(100 + (i % 30) as u32), &huge_first(1_000 + i, 100), now);
            assert_eq!(r.pending_of(honest).0, 2, "after {i}");
        }
        check_invariants(&r);
        assert_eq!(r.pending(), 64);
        for fragments in &messages {
            let mut out = None;
            for f in &fragments[1..] {
                out = r.push_from(honest, f, now);
            }
            assert_eq!(out.map(|m| m.len()), Some(3 * FRAGMENT_DATA));
        }
        check_invariants(&r);
    }

    #[test]
    fn random_traffic_keeps_the_books_straight() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut r = Reassembler::with_limits(ReassemblyLimits {
            max_message_bytes: 8 * FRAGMENT_DATA,
            max_pending_messages: 40,
            max_pending_bytes: 30 * FRAGMENT_DATA,
            max_sender_messages: 10,
            max_sender_bytes: 12 * FRAGMENT_DATA,
            timeout: Duration::from_millis(500),
        });
        let start = Instant::now();
        for step in 0..20_000u64 {
            let now = start + Duration::from_millis(step / 10);
            let count: u16 = rng.random_range(1..12);
            let index = rng.random_range(0..count);
            let mut f = vec![VERSION];
            f.extend_from_slice(&u128::from(rng.random_range(0..60u8)).to_be_bytes());
            f.extend_from_slice(&index.to_be_bytes());
            f.extend_from_slice(&count.to_be_bytes());
            f.extend(std::iter::repeat_n(1, rng.random_range(0..=FRAGMENT_DATA)));
            let _ = r.push_from(ip(rng.random_range(0..6)), &f, now);
            check_invariants(&r);
        }
    }

    #[test]
    fn bounded_and_robust() {
        let now = Instant::now();
        let mut r = Reassembler::new(1, 2 * FRAGMENT_DATA + 100, Duration::from_millis(10));
        let a = split([1; 16], &[0u8; 3000]).unwrap();
        let b = split([2; 16], &[0u8; 3000]).unwrap();
        let c = split([3; 16], &[0u8; 2 * FRAGMENT_DATA]).unwrap();
        // A count that cannot fit the message cap is refused outright.
        assert_eq!(a.len(), 4);
        assert_eq!(r.push(&a[0], now), None);
        assert_eq!(r.pending(), 0);
        assert_eq!(r.push(&c[0], now), None);
        assert_eq!(r.pending(), 1);
        // A second partial message from the same sender evicts the first.
        let d = split([4; 16], &[0u8; 2 * FRAGMENT_DATA]).unwrap();
        assert_eq!(r.push(&d[0], now), None);
        assert_eq!(r.pending(), 1);
        // Duplicates and disagreeing counts are ignored.
        assert_eq!(r.push(&d[0], now), None);
        assert_eq!(r.push(&b[1], now), None);
        // After the timeout the slot frees up.
        assert_eq!(r.push(&c[0], now + Duration::from_millis(20)), None);
        assert_eq!(r.pending(), 1);
        assert_eq!(
            r.push(&c[1], now + Duration::from_millis(21))
                .map(|m| m.len()),
            Some(2 * FRAGMENT_DATA)
        );
        assert_eq!(r.pending(), 0);
        // Garbage and inconsistent headers never panic.
        for junk in [
            &[][..],
            &[1u8; 5],
            &[1u8; 21],
            &[
                1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 2,
            ],
        ] {
            let _ = r.push(junk, now);
        }
        check_invariants(&r);
    }

    #[test]
    fn ipv6_senders_are_grouped_by_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(Sender::of(a), Sender::of(b));
        assert_ne!(Sender::of(a), Sender::of(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(Sender::of(mapped), ip(1));
    }
}
