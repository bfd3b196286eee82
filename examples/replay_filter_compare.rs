//! The replay filter against the `qfilter` crate (a rank-select quotient
//! filter, resizable) on the two axes the choice turned on: memory per tag
//! and insert cost, both at the same false-positive target (10^-6) while
//! growing from empty, plus the longest single insert (a resize stalls
//! every worker that needs the lock).
//!
//! ```bash
//! cargo run --release --example replay_filter_compare -- --json
//! cargo run --release --example replay_filter_compare -- --tags 72000000
//! ```

use std::time::{Duration, Instant};

use anyhow::Result;
use betanet::replay::{Check, OpenMode, ReplayCache};
use betanet::sphinx::ReplayTag;
use clap::Parser;
use serde::Serialize;

#[derive(Parser, Debug)]
struct Args {
    /// Tags inserted into each filter.
    #[arg(long, default_value_t = 20_000_000)]
    tags: u64,
    /// Budget (betanet) and maximum capacity (qfilter) in tags.
    #[arg(long, default_value_t = 120_000_000)]
    max_tags: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize, Debug)]
struct Row {
    filter: &'static str,
    tags: u64,
    bytes_per_tag: f64,
    insert_ns: f64,
    longest_insert_ms: f64,
    stated_false_positive_rate: f64,
}

/// SplitMix64: uniform 64-bit keys, as the first 8 bytes of τ are.
fn key(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let mut rows = Vec::new();

    // betanet: the node's ReplayCache (lock, journal queue), synced to a
    // temporary journal every 5,000 tags as the node's syncer would.
    let dir = tempfile::tempdir()?;
    let budget = (args.max_tags as f64 * 4.4) as usize;
    let cache = ReplayCache::open(dir.path(), [1; 16], budget, OpenMode::Create)?;
    let (mut total, mut longest) = (Duration::ZERO, Duration::ZERO);
    for i in 0..args.tags {
        let mut tag = [0u8; 32];
        tag[..8].copy_from_slice(&key(i).to_le_bytes());
        let t = Instant::now();
        let fresh = cache.check(&ReplayTag(tag)) == Check::Fresh;
        let took = t.elapsed();
        total += took;
        longest = longest.max(took);
        assert!(fresh);
        if i % 5_000 == 4_999 {
            cache.sync()?;
        }
    }
    rows.push(Row {
        filter: "betanet segmented cuckoo (32-bit fingerprints)",
        tags: args.tags,
        bytes_per_tag: cache.capacity_bytes() as f64 / args.tags as f64,
        insert_ns: total.as_nanos() as f64 / args.tags as f64,
        longest_insert_ms: longest.as_secs_f64() * 1e3,
        stated_false_positive_rate: 1e-6,
    });
    drop(cache);

    // qfilter: resizable from 1 Mi tags up to max_tags at 10^-6, fed the
    // same uniform keys as ready-made hashes (no hashing).
    let mut q = qfilter::Filter::new_resizeable(1 << 20, args.max_tags, 1e-6)?;
    let (mut total, mut longest) = (Duration::ZERO, Duration::ZERO);
    for i in 0..args.tags {
        let t = Instant::now();
        let inserted = q.insert_fingerprint(false, key(i))?;
        let took = t.elapsed();
        total += took;
        longest = longest.max(took);
        let _ = inserted;
    }
    rows.push(Row {
        filter: "qfilter 0.2 RSQF, resizable",
        tags: args.tags,
        bytes_per_tag: q.memory_usage() as f64 / args.tags as f64,
        insert_ns: total.as_nanos() as f64 / args.tags as f64,
        longest_insert_ms: longest.as_secs_f64() * 1e3,
        stated_false_positive_rate: q.max_error_ratio_resizeable(),
    });

    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        for r in &rows {
            println!("{r:?}");
        }
    }
    Ok(())
}
