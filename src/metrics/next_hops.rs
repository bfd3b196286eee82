//! Keeps `betanet_egress_queue_depth{next_hop}` to a bounded label set, so a
//! large topology cannot blow up the number of series Prometheus stores.

use std::collections::BTreeMap;

/// At most this many distinct `next_hop` labels; the rest are summed.
pub const MAX_NEXT_HOP_LABELS: usize = 64;

/// The label the folded remainder is reported under.
pub const OTHER_NEXT_HOP: &str = "other";

/// Merges duplicate labels, keeps the `max` deepest queues (ties broken by
/// label, so the choice is stable) and folds everything else into
/// [`OTHER_NEXT_HOP`]. Output is sorted by label.
///
/// The deepest queues are the ones an operator needs to see; an idle hop
/// dropping into `other` loses nothing of interest.
pub fn bound_next_hops(depths: &[(String, usize)], max: usize) -> Vec<(String, usize)> {
    let mut merged: BTreeMap<&str, usize> = BTreeMap::new();
    for (label, depth) in depths {
        *merged.entry(label.as_str()).or_default() += depth;
    }
    // A caller-supplied "other" is folded with the remainder, never kept as
    // a separate series with the same label.
    let mut other = merged.remove(OTHER_NEXT_HOP);
    let mut ranked: Vec<(&str, usize)> = merged.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    if ranked.len() > max {
        let folded: usize = ranked.drain(max..).map(|(_, d)| d).sum();
        *other.get_or_insert(0) += folded;
    }
    let mut out: Vec<(String, usize)> = ranked
        .into_iter()
        .map(|(label, depth)| (label.to_owned(), depth))
        .collect();
    out.sort();
    if let Some(depth) = other {
        out.push((OTHER_NEXT_HOP.to_owned(), depth));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_deepest_and_folds_the_rest() {
        let depths: Vec<(String, usize)> = (0..100).map(|i| (format!("hop{i:03}"), i)).collect();
        let bounded = bound_next_hops(&depths, MAX_NEXT_HOP_LABELS);
        assert_eq!(bounded.len(), MAX_NEXT_HOP_LABELS + 1);
        let total: usize = bounded.iter().map(|(_, d)| d).sum();
        assert_eq!(total, (0..100).sum::<usize>());
        assert!(bounded.iter().any(|(l, _)| l == "hop099"));
        assert!(!bounded.iter().any(|(l, _)| l == "hop000"));
        assert_eq!(
            bounded.last().map(|(l, _)| l.as_str()),
            Some(OTHER_NEXT_HOP)
        );
    }

    #[test]
    fn merges_duplicates_and_a_supplied_other() {
        let depths = vec![
            ("a".to_owned(), 1),
            ("a".to_owned(), 2),
            ("other".to_owned(), 5),
        ];
        assert_eq!(
            bound_next_hops(&depths, 4),
            vec![("a".to_owned(), 3), ("other".to_owned(), 5)]
        );
    }

    #[test]
    fn small_sets_pass_through() {
        let depths = vec![("b".to_owned(), 0), ("a".to_owned(), 7)];
        assert_eq!(
            bound_next_hops(&depths, 4),
            vec![("a".to_owned(), 7), ("b".to_owned(), 0)]
        );
    }
}
