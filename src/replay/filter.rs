//! The replay filter of one key: a sequence of cuckoo [`Segment`]s that
//! grows with use up to a byte budget. A deterministic state machine:
//! the same inserts in the same order give the same filter, which is how
//! the journal rebuilds it.
//!
//! New tags go into the newest ("open") segment. When it reaches
//! [`SEAL_LOAD`] (or an insert finds no place), it is sealed: it never
//! changes again, and a new segment is opened. Sizes double from
//! `first` up to `cap` (an eighth of the budget, as a power of two), then
//! stay at `cap` while the budget allows, then shrink to what is left. A
//! lookup probes two buckets in every segment.

use super::fingerprint::TagKey;
use super::segment::{BUCKET_BYTES, Segment};

/// Load at which the open segment is sealed: high enough for ~4.2 bytes per
/// tag, low enough that cuckoo chains stay short.
pub(super) const SEAL_LOAD: f64 = 0.95;
/// Smallest segment: 32 buckets (1 KiB).
const MIN_SEGMENT_BYTES: usize = 32 * BUCKET_BYTES;
/// Largest budget a plan takes (1 TiB): keeps every segment at most 2^32
/// buckets, all a 32-bit bucket index can address.
const MAX_BUDGET_BYTES: usize = 1 << 40;
/// Most segments a filter may have. Each adds at most 16 × 2^-32 to the
/// false-positive rate, so the total stays ≤ 64 × 16 / 2^32 ≈ 2.4·10^-7.
pub(super) const MAX_SEGMENTS: usize = 64;

/// What [`Filter::check_and_insert`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// Not seen before: recorded now, the packet may pass.
    Fresh,
    /// Seen before, or a false positive: drop the packet.
    Seen,
    /// Not seen before, but the filter is at its budget and cannot record
    /// it: drop the packet (fail closed).
    Full,
}

/// The segment sizes a budget allows, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Plan {
    budget: usize,
    first: usize,
    cap: usize,
}

impl Plan {
    /// The plan for `budget_bytes` (at least one minimal segment).
    pub(super) fn new(budget_bytes: usize) -> Plan {
        let budget = budget_bytes.clamp(MIN_SEGMENT_BYTES, MAX_BUDGET_BYTES);
        let cap = prev_power_of_two((budget / 8).max(MIN_SEGMENT_BYTES));
        let first = (cap / 32).max(MIN_SEGMENT_BYTES);
        Plan { budget, first, cap }
    }

    /// The budget in bytes.
    pub(super) fn budget(&self) -> usize {
        self.budget
    }

    /// Bytes of the segment after segments of `sizes` (bytes each), or
    /// `None` when the budget or [`MAX_SEGMENTS`] is reached.
    pub(super) fn next(&self, sizes: impl Iterator<Item = usize>) -> Option<usize> {
        let (mut count, mut used, mut last) = (0usize, 0usize, None);
        for s in sizes {
            count += 1;
            used += s;
            last = Some(s);
        }
        let want = last.map_or(self.first, |s| (2 * s).min(self.cap));
        let room = self.budget.saturating_sub(used);
        let size = want.min(prev_power_of_two(room));
        (count < MAX_SEGMENTS && size >= MIN_SEGMENT_BYTES).then_some(size)
    }

    /// Tags the whole budget holds when every segment is sealed full.
    pub(super) fn max_tags(&self) -> usize {
        let mut sizes = Vec::new();
        while let Some(s) = self.next(sizes.iter().copied()) {
            sizes.push(s);
        }
        sizes.iter().map(|&s| seal_at(s / BUCKET_BYTES)).sum()
    }
}

/// Largest power of two ≤ `n` (0 for 0).
fn prev_power_of_two(n: usize) -> usize {
    if n == 0 { 0 } else { 1 << n.ilog2() }
}

/// Tags at which a segment of `buckets` buckets is sealed.
fn seal_at(buckets: usize) -> usize {
    (buckets as f64 * super::segment::SLOTS as f64 * SEAL_LOAD) as usize
}

/// The filter; see the [module docs](self).
pub(super) struct Filter {
    plan: Plan,
    /// Oldest first; the last one is open, the others sealed.
    segments: Vec<Segment>,
    len: usize,
    /// No segment could be added: new tags are refused.
    full: bool,
}

impl Filter {
    /// An empty filter with its first (small) segment.
    pub(super) fn new(plan: Plan) -> Filter {
        let first = plan.next(std::iter::empty()).unwrap_or(MIN_SEGMENT_BYTES);
        Filter {
            plan,
            segments: vec![Segment::new(first / BUCKET_BYTES)],
            len: 0,
            full: false,
        }
    }

    /// Whether `key` was inserted (or is a false positive).
    pub(super) fn contains(&self, key: TagKey) -> bool {
        // Newest first: a replay is most likely recent.
        self.segments.iter().rev().any(|s| s.contains(key))
    }

    /// Looks `key` up and, if it is new, records it.
    pub(super) fn check_and_insert(&mut self, key: TagKey) -> Check {
        if self.contains(key) {
            Check::Seen
        } else if self.insert(key, false) {
            Check::Fresh
        } else {
            Check::Full
        }
    }

    /// Records a key read back from the journal (accepted before, so not
    /// checked). Grows past the budget if it must (the budget was lowered
    /// since): forgetting an accepted tag would reopen a replay.
    pub(super) fn insert_loaded(&mut self, key: TagKey) {
        let inserted = self.insert(key, true);
        debug_assert!(inserted);
    }

    fn insert(&mut self, key: TagKey, past_budget: bool) -> bool {
        loop {
            if self.full && !past_budget {
                return false;
            }
            let open = self.segments.last_mut().expect("never empty");
            if open.len() < seal_at(open.buckets()) && open.insert(key) {
                self.len += 1;
                return true;
            }
            let next = self.plan.next(self.segments.iter().map(Segment::bytes));
            match next {
                Some(bytes) => self.segments.push(Segment::new(bytes / BUCKET_BYTES)),
                None if past_budget => {
                    let bytes = self
                        .segments
                        .last()
                        .map_or(MIN_SEGMENT_BYTES, Segment::bytes);
                    self.segments.push(Segment::new(bytes / BUCKET_BYTES));
                    self.full = true;
                }
                None => {
                    self.full = true;
                    return false;
                }
            }
        }
    }

    /// Tags held.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Whether new tags are refused (the budget is spent).
    pub(super) fn is_full(&self) -> bool {
        self.full
    }

    /// Bytes of memory the segments take (what the budget bounds).
    pub(super) fn allocated_bytes(&self) -> usize {
        self.segments.iter().map(Segment::bytes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u64) -> TagKey {
        TagKey::for_test(i)
    }

    #[test]
    fn plan_doubles_to_an_eighth_then_fills_the_budget() {
        let mib = 1 << 20;
        let plan = Plan::new(512 * mib);
        let mut sizes = Vec::new();
        while let Some(s) = plan.next(sizes.iter().copied()) {
            sizes.push(s);
        }
        let in_mib: Vec<usize> = sizes.iter().map(|s| s / mib).collect();
        assert_eq!(in_mib, [2, 4, 8, 16, 32, 64, 64, 64, 64, 64, 64, 64, 2]);
        assert_eq!(sizes.iter().sum::<usize>(), 512 * mib);
        // Any budget: never over it, never more than MAX_SEGMENTS.
        for budget in [0, 1000, 5000, 100_000, 3 * mib + 7, 100 * mib, usize::MAX] {
            let plan = Plan::new(budget);
            let mut sizes = Vec::new();
            while let Some(s) = plan.next(sizes.iter().copied()) {
                assert!(s / BUCKET_BYTES <= 1 << 32, "{budget}: {s}");
                sizes.push(s);
            }
            assert!(sizes.iter().sum::<usize>() <= plan.budget(), "{budget}");
            assert!(!sizes.is_empty() && sizes.len() <= MAX_SEGMENTS, "{budget}");
        }
    }

    #[test]
    fn filter_grows_with_use_and_refuses_when_the_budget_is_spent() {
        let plan = Plan::new(64 * 1024);
        let mut f = Filter::new(plan);
        let mut i = 0;
        let mut last_bytes = f.allocated_bytes();
        assert!(last_bytes <= plan.budget() / 8);
        loop {
            match f.check_and_insert(key(i)) {
                Check::Fresh => i += 1,
                Check::Seen => panic!("false positive at {i}"),
                Check::Full => break,
            }
            assert!(f.allocated_bytes() >= last_bytes);
            last_bytes = f.allocated_bytes();
        }
        assert!(f.is_full());
        assert!(f.allocated_bytes() <= plan.budget());
        assert!(
            i as usize >= plan.max_tags() * 99 / 100,
            "{i} of {}",
            plan.max_tags()
        );
        let bytes_per_tag = f.allocated_bytes() as f64 / i as f64;
        assert!(bytes_per_tag < 4.3, "{bytes_per_tag}");
        // Every tag is still a replay; the filter stays full.
        assert!((0..i).all(|j| f.check_and_insert(key(j)) == Check::Seen));
        assert_eq!(f.check_and_insert(key(i + 1)), Check::Full);
    }

    #[test]
    fn loading_past_a_lowered_budget_keeps_every_tag() {
        let mut big = Filter::new(Plan::new(64 * 1024));
        let n = 10_000;
        for i in 0..n {
            assert_eq!(big.check_and_insert(key(i)), Check::Fresh);
        }
        let mut small = Filter::new(Plan::new(8 * 1024));
        for i in 0..n {
            small.insert_loaded(key(i));
        }
        assert!((0..n).all(|i| small.contains(key(i))));
        assert!(small.is_full());
        assert_eq!(small.check_and_insert(key(n)), Check::Full);
    }
}
