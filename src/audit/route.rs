//! Audit paths: entry → middle → exit through the audited node, the other
//! hops drawn at random so that a mismatch can be pinned on one node.
//!
//! A path is drawn uniformly from all the paths the nodes would actually
//! forward: with VRF neighbour sets (`vrf.neighbors_k > 0`) a node relays
//! only to its neighbours in the next layer, and a packet routed elsewhere
//! would be dropped. With whole-layer neighbourhoods (the default) this is
//! simply one node uniformly from each layer.

use rand::{Rng, RngExt};

use crate::sphinx::NodeId;

/// Draws a path uniformly among the paths through `target` that `allowed`
/// permits. `layers` are the usable nodes of the entry, middle and exit
/// layers; `target` must be in one of them (it replaces its whole layer).
/// `allowed(a, b)`: whether `a` relays to `b` (next layer). `None` if no
/// path exists.
pub fn path_through<R: Rng + ?Sized>(
    layers: &[Vec<NodeId>; 3],
    target: NodeId,
    allowed: impl Fn(&NodeId, &NodeId) -> bool,
    rng: &mut R,
) -> Option<[NodeId; 3]> {
    let layers: Vec<Vec<NodeId>> = layers
        .iter()
        .map(|layer| {
            if layer.contains(&target) {
                vec![target]
            } else {
                layer.clone()
            }
        })
        .collect();
    if !layers.iter().any(|l| l == &[target]) {
        return None;
    }
    // paths_from[l][i]: valid completions starting at layers[l][i]. Drawing
    // each hop with weight = its completions makes the whole path uniform.
    let mut paths_from: Vec<Vec<u64>> = vec![Vec::new(); 3];
    paths_from[2] = vec![1; layers[2].len()];
    for l in (0..2).rev() {
        paths_from[l] = layers[l]
            .iter()
            .map(|a| {
                layers[l + 1]
                    .iter()
                    .zip(&paths_from[l + 1])
                    .filter(|(b, _)| allowed(a, b))
                    .map(|(_, n)| n)
                    .sum()
            })
            .collect();
    }
    let mut path = [target; 3];
    let mut weights = paths_from[0].clone();
    for l in 0..3 {
        let i = pick(&weights, rng)?;
        path[l] = layers[l][i];
        if l < 2 {
            weights = layers[l + 1]
                .iter()
                .zip(&paths_from[l + 1])
                .map(|(b, &n)| if allowed(&path[l], b) { n } else { 0 })
                .collect();
        }
    }
    Some(path)
}

/// An index drawn with probability proportional to its weight.
fn pick<R: Rng + ?Sized>(weights: &[u64], rng: &mut R) -> Option<usize> {
    let total: u64 = weights.iter().sum();
    if total == 0 {
        return None;
    }
    let mut r = rng.random_range(0..total);
    for (i, &w) in weights.iter().enumerate() {
        if r < w {
            return Some(i);
        }
        r -= w;
    }
    None
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    fn id(n: u8) -> NodeId {
        NodeId::from_bytes([n; 16])
    }

    fn layers() -> [Vec<NodeId>; 3] {
        [vec![id(1), id(2)], vec![id(3), id(4)], vec![id(5), id(6)]]
    }

    #[test]
    fn every_path_goes_through_the_target_and_the_others_vary_uniformly() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut counts: HashMap<NodeId, u32> = HashMap::new();
        for _ in 0..4000 {
            let path = path_through(&layers(), id(3), |_, _| true, &mut rng).unwrap();
            assert_eq!(path[1], id(3));
            for n in path {
                *counts.entry(n).or_default() += 1;
            }
        }
        assert_eq!(counts[&id(3)], 4000);
        assert!(!counts.contains_key(&id(4)));
        for n in [1, 2, 5, 6] {
            assert!((1800..2200).contains(&counts[&id(n)]), "{counts:?}");
        }
    }

    #[test]
    fn neighbour_sets_are_respected() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        // Only entry 2 relays to middle 3; middle 3 relays only to exit 6.
        let allowed = |a: &NodeId, b: &NodeId| match (*a, *b) {
            (a, b) if b == id(3) => a == id(2),
            (a, b) if a == id(3) => b == id(6),
            _ => true,
        };
        for _ in 0..100 {
            let path = path_through(&layers(), id(3), allowed, &mut rng).unwrap();
            assert_eq!(path, [id(2), id(3), id(6)]);
        }
        // An exit target whose middles all refuse it has no path.
        let never = |_: &NodeId, b: &NodeId| *b != id(5);
        assert_eq!(path_through(&layers(), id(5), never, &mut rng), None);
        assert_eq!(path_through(&layers(), id(9), |_, _| true, &mut rng), None);
    }

    #[test]
    fn uniform_over_valid_paths_not_over_hops() {
        // Target entry 1; middle 3 relays to both exits, middle 4 to one:
        // three valid paths, so middle 3 carries two thirds of them.
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let allowed = |a: &NodeId, b: &NodeId| !(*a == id(4) && *b == id(6));
        let via3 = (0..3000)
            .filter(|_| path_through(&layers(), id(1), allowed, &mut rng).unwrap()[1] == id(3))
            .count();
        assert!((1850..2150).contains(&via3), "{via3}");
    }
}
