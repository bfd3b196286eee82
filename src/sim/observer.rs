//! What a global passive adversary records, and the sender distribution
//! it computes from it.
//!
//! Each node's [`NodeLog`] is the adversary's transcript of that node:
//! every packet entering its pool (and where it came from: a client, or a
//! departure of another node, or — unseen, inside the node — its own
//! cover) and every packet leaving it, with the pool's size at that
//! moment. That is all timing gives away.
//!
//! Exponential delays are memoryless, so a departure is equally likely to
//! be any packet held (the algebra of [`crate::mixing::PoolEntropy`]): if
//! `q_i` is the probability that input `i` is still held, a departure is
//! input `i` with probability `q_i / S` (`S = Σ q_i`, the pool's size),
//! and afterwards every `q_i` shrinks by `1 − 1/S`. The adversary's
//! distribution over senders for a delivered message is therefore a
//! weighted sum over the exit node's earlier inputs, each of them in turn
//! a weighted sum over an upstream node's inputs, down to clients.
//!
//! [`Estimator`] evaluates that sum exactly, backwards, for one message,
//! in rounds: each round takes the requested (node, departure, weight)
//! triples, and per node sweeps the log once from the latest requested
//! departure back in time, carrying `A = Σ_d w_d / S_d · Π (1 − 1/S_k)`
//! (each departure `k` passed multiplies it by `1 − 1/S_k`; a pool that
//! emptied, `S_k = 1`, zeroes it), and hands `A` to every arrival it
//! passes: to a client, to the node's own cover, or as a request on the
//! upstream departure it came from, for the next round. Node loops make
//! those chains longer than a path (a loop packet entering layer 0 came
//! from a later layer), so rounds go on until no mass is left to place;
//! a sweep stops once what it still has to hand out is below 10⁻⁸, and
//! requests below 10⁻⁹ are dropped (both counted as lost mass, reported:
//! 10⁻⁶–10⁻⁴ of a message's mass, a few thousandths of a bit at most). A compromised node reveals its mapping: each
//! departure goes to exactly the arrival it was.

use std::collections::VecDeque;

/// Where a packet entering a pool came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Straight from a client (real traffic or the client's cover: the
    /// adversary cannot tell them apart).
    Client(u32),
    /// A departure of another node (its log's sequence number).
    Node {
        /// The upstream node.
        node: u32,
        /// The departure's sequence number in that node's log.
        departure: u64,
    },
    /// The node's own cover, made inside it.
    Own,
}

const NODE_BIT: u64 = 1 << 63;
const OWN: u64 = u64::MAX;
const SEQ_BITS: u32 = 40;

impl Origin {
    fn pack(self) -> u64 {
        match self {
            Origin::Client(c) => u64::from(c),
            Origin::Node { node, departure } => {
                NODE_BIT | (u64::from(node) << SEQ_BITS) | (departure & ((1 << SEQ_BITS) - 1))
            }
            Origin::Own => OWN,
        }
    }

    fn unpack(x: u64) -> Self {
        if x == OWN {
            Origin::Own
        } else if x & NODE_BIT != 0 {
            Origin::Node {
                node: ((x & !NODE_BIT) >> SEQ_BITS) as u32,
                departure: x & ((1 << SEQ_BITS) - 1),
            }
        } else {
            Origin::Client(x as u32)
        }
    }
}

/// One line of a transcript: an arrival (`held == 0`, `x` its packed
/// origin) or a departure (`held` = pool size before it, `x` the sequence
/// number of the arrival it was, which only a compromised node reveals).
#[derive(Clone, Copy, Debug)]
struct Entry {
    /// Virtual time in milliseconds, for pruning.
    t_ms: u32,
    held: u32,
    x: u64,
}

/// The adversary's transcript of one node (see the module docs).
#[derive(Debug, Default)]
pub struct NodeLog {
    /// Sequence number of `entries[0]`.
    base: u64,
    entries: VecDeque<Entry>,
    held: u32,
}

impl NodeLog {
    /// A packet entered the pool at `t_ms`; returns its sequence number.
    pub fn arrive(&mut self, t_ms: u32, origin: Origin) -> u64 {
        self.held += 1;
        self.push(Entry {
            t_ms,
            held: 0,
            x: origin.pack(),
        })
    }

    /// The packet that arrived as `arrival` left at `t_ms`; returns the
    /// departure's sequence number.
    pub fn depart(&mut self, t_ms: u32, arrival: u64) -> u64 {
        let held = self.held.max(1);
        self.held = held - 1;
        self.push(Entry {
            t_ms,
            held,
            x: arrival,
        })
    }

    /// The pool lost everything it held (the node failed).
    pub fn clear_pool(&mut self) {
        self.held = 0;
    }

    /// Packets held, as the adversary counts them.
    pub fn held(&self) -> u32 {
        self.held
    }

    /// Forgets entries older than `t_ms` (bounded memory over long runs).
    pub fn prune_before(&mut self, t_ms: u32) {
        while self.entries.front().is_some_and(|e| e.t_ms < t_ms) {
            self.entries.pop_front();
            self.base += 1;
        }
    }

    /// Entries kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn push(&mut self, entry: Entry) -> u64 {
        let seq = self.base + self.entries.len() as u64;
        self.entries.push_back(entry);
        seq
    }

    fn get(&self, seq: u64) -> Option<Entry> {
        let i = usize::try_from(seq.checked_sub(self.base)?).ok()?;
        self.entries.get(i).copied()
    }
}

/// The adversary's verdict on one delivered message.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    /// Entropy, in bits, of the distribution over real senders (clients).
    pub bits: f64,
    /// Mass on node-made cover (the message "could be" a node's loop):
    /// left out of `bits`, which is normalised over clients.
    pub cover_mass: f64,
    /// Mass the estimator could not place (logs pruned, or below the
    /// cut-offs): should be ~0.
    pub lost_mass: f64,
    /// The probability the adversary gives the true sender, when the
    /// caller named it (0 would mean the estimator lost the real path).
    pub truth: Option<f64>,
}

/// A pending request: this much mass on that departure of that node.
#[derive(Clone, Copy, Debug)]
struct Request {
    node: u32,
    departure: u64,
    weight: f64,
}

impl Request {
    /// Sorts by node, then latest departure first (one `u64` compare).
    fn key(&self) -> u64 {
        (u64::from(self.node) << SEQ_BITS)
            | ((1 << SEQ_BITS) - 1 - (self.departure & ((1 << SEQ_BITS) - 1)))
    }
}

/// Mass still to hand out when a sweep stops.
const CUTOFF: f64 = 1e-8;

/// Requests lighter than this are dropped. Mass lost this way changes a
/// message's entropy by about `m · (H + log2(1/m))`: with the ≤ 10⁻⁴ of
/// mass this loses in practice, by less than 0.005 bit.
const NEGLIGIBLE: f64 = 1e-9;

/// Rounds at most, per mix layer of the longest path (chains through node
/// loops cross the layers several times; their mass shrinks geometrically).
const ROUNDS_PER_HOP: usize = 8;

/// Computes sender distributions from the logs (see the module docs).
/// Keeps its buffers between calls: no allocation per message once warm.
#[derive(Debug)]
pub struct Estimator {
    mass: Vec<f64>,
    touched: Vec<u32>,
    requests: Vec<Request>,
    next: Vec<Request>,
    max_rounds: usize,
}

impl Estimator {
    /// An estimator for `clients` clients and paths of at most `max_hops`.
    pub fn new(clients: usize, max_hops: usize) -> Self {
        Estimator {
            mass: vec![0.0; clients],
            touched: Vec::new(),
            requests: Vec::new(),
            next: Vec::new(),
            max_rounds: ROUNDS_PER_HOP * max_hops.max(1),
        }
    }

    /// The adversary's sender distribution for the packet that left
    /// `node` as `departure`, and its entropy.
    ///
    /// `truth`, if given, is the real sender: its probability is reported.
    pub fn estimate(
        &mut self,
        logs: &[NodeLog],
        compromised: &[bool],
        node: u32,
        departure: u64,
        truth: Option<u32>,
    ) -> Estimate {
        let mut cover = 0.0;
        self.requests.clear();
        self.requests.push(Request {
            node,
            departure,
            weight: 1.0,
        });
        for _ in 0..self.max_rounds {
            if self.requests.is_empty() {
                break;
            }
            // Deterministic order: by node, then latest departure first;
            // equal requests merged.
            self.requests.sort_unstable_by_key(Request::key);
            self.requests.dedup_by(|later, first| {
                let same = later.key() == first.key();
                if same {
                    first.weight += later.weight;
                }
                same
            });
            let mut start = 0;
            while start < self.requests.len() {
                let node = self.requests[start].node;
                let end = start
                    + self.requests[start..]
                        .iter()
                        .take_while(|r| r.node == node)
                        .count();
                let Some(log) = logs.get(node as usize) else {
                    start = end;
                    continue;
                };
                let mut emit = |origin: Origin, weight: f64| match origin {
                    Origin::Client(c) => {
                        if let Some(m) = self.mass.get_mut(c as usize) {
                            if *m == 0.0 {
                                self.touched.push(c);
                            }
                            *m += weight;
                        }
                    }
                    Origin::Own => cover += weight,
                    Origin::Node { node, departure } => {
                        if weight >= NEGLIGIBLE {
                            self.next.push(Request {
                                node,
                                departure,
                                weight,
                            });
                        }
                    }
                };
                let group = &self.requests[start..end];
                if compromised.get(node as usize).copied().unwrap_or(false) {
                    reveal(log, group, &mut emit);
                } else {
                    sweep(log, group, &mut emit);
                }
                start = end;
            }
            std::mem::swap(&mut self.requests, &mut self.next);
            self.next.clear();
        }
        // Whatever is still requested after the longest possible path is lost.
        self.requests.clear();
        self.finish(cover, truth)
    }

    /// Entropy of the client masses; clears them for the next message.
    fn finish(&mut self, cover: f64, truth: Option<u32>) -> Estimate {
        let total: f64 = self.touched.iter().map(|&c| self.mass[c as usize]).sum();
        let truth = truth.map(|c| {
            let m = self.mass.get(c as usize).copied().unwrap_or(0.0);
            if total > 0.0 { m / total } else { 0.0 }
        });
        let mut m_log_m = 0.0;
        for &c in &self.touched {
            let m = std::mem::take(&mut self.mass[c as usize]);
            if m > 0.0 {
                m_log_m += m * m.log2();
            }
        }
        self.touched.clear();
        let bits = if total > 0.0 {
            (total.log2() - m_log_m / total).max(0.0)
        } else {
            0.0
        };
        Estimate {
            bits,
            cover_mass: cover,
            lost_mass: (1.0 - total - cover).max(0.0),
            truth,
        }
    }
}

/// One backward pass over an honest node's log for `group` (latest
/// departure first), handing each arrival its share.
fn sweep(log: &NodeLog, group: &[Request], emit: &mut impl FnMut(Origin, f64)) {
    let mut next = 0;
    let mut acc = 0.0;
    let mut pool = 1.0;
    let mut seq = group[0].departure;
    while let Some(entry) = log.get(seq) {
        if entry.held > 0 {
            pool = f64::from(entry.held);
            acc *= 1.0 - 1.0 / pool;
            while next < group.len() && group[next].departure == seq {
                acc += group[next].weight / pool;
                next += 1;
            }
        } else if acc > 0.0 {
            emit(Origin::unpack(entry.x), acc);
        }
        // What is still to hand out is about `acc` per packet held.
        if next == group.len() && acc * pool <= CUTOFF {
            break;
        }
        if seq == 0 {
            break;
        }
        seq -= 1;
    }
}

/// A compromised node: each departure is the arrival it was.
fn reveal(log: &NodeLog, group: &[Request], emit: &mut impl FnMut(Origin, f64)) {
    for r in group {
        if let Some(arrival) = log.get(r.departure).and_then(|d| log.get(d.x))
            && arrival.held == 0
        {
            emit(Origin::unpack(arrival.x), r.weight);
        }
    }
}

#[cfg(test)]
mod tests;
