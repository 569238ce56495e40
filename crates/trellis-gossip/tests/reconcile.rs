//! Range-based reconciliation settles any two indexes, at a cost that
//! follows the difference.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::collections::BTreeMap;

use proptest::prelude::*;
use trellis_crdt::{Digest, Timestamp};
use trellis_gossip::exchange::{exchange, Side};
use trellis_gossip::reconcile::Tuning;
use trellis_store::index::{IndexEntry, RangeIndex};

fn index(entries: &BTreeMap<String, u8>) -> RangeIndex {
    entries
        .iter()
        .map(|(key, &value)| {
            (
                key.clone(),
                IndexEntry {
                    digest: Digest([value; 32]),
                    hlc: Timestamp(0),
                },
            )
        })
        .collect()
}

/// Plays a session and applies what it decided, merging by taking the
/// larger value (a lattice, like a record merge). Returns the message
/// count.
fn settle(a: &mut BTreeMap<String, u8>, b: &mut BTreeMap<String, u8>, tuning: Tuning) -> usize {
    let result = exchange(&index(a), &index(b), "c", tuning).unwrap();
    let (a0, b0) = (a.clone(), b.clone());
    for (from, key) in &result.shipped {
        let (source, target) = match from {
            Side::Initiator => (&a0, &mut *b),
            Side::Responder => (&b0, &mut *a),
        };
        let value = source[key];
        let slot = target.entry(key.clone()).or_insert(value);
        *slot = (*slot).max(value);
    }
    for (from, range) in &result.streamed {
        let (source, target) = match from {
            Side::Initiator => (&a0, &mut *b),
            Side::Responder => (&b0, &mut *a),
        };
        for (key, &value) in source.iter().filter(|(key, _)| range.contains(key)) {
            let slot = target.entry(key.clone()).or_insert(value);
            *slot = (*slot).max(value);
        }
    }
    result.messages
}

fn keys() -> impl Strategy<Value = BTreeMap<String, u8>> {
    proptest::collection::btree_map("[a-d]{1,3}|k[0-9]{1,4}", 0u8..4, 0..300)
}

proptest! {
    #![proptest_config(trellis_crdt::testing::config())]

    /// One session brings any two indexes to the same state.
    #[test]
    fn one_session_converges(mut a in keys(), mut b in keys(), branch in 2usize..20, threshold in 1u64..40) {
        let tuning = Tuning { branch, items_threshold: threshold };
        settle(&mut a, &mut b, tuning);
        prop_assert_eq!(&a, &b);
        // Converged replicas settle in one round trip.
        prop_assert_eq!(settle(&mut a, &mut b, tuning), 2);
    }
}

fn numbered(n: usize) -> BTreeMap<String, u8> {
    (0..n).map(|i| (format!("lead-{i:07}"), 1)).collect()
}

#[test]
fn converged_replicas_cost_one_small_round_trip() {
    let a = index(&numbered(50_000));
    let result = exchange(&a, &a.clone(), "leads", Tuning::default()).unwrap();
    assert_eq!(result.messages, 2);
    assert!(result.bytes < 100, "{} bytes", result.bytes);
    assert!(result.shipped.is_empty() && result.streamed.is_empty());
}

#[test]
fn scattered_differences_cost_in_proportion_to_the_difference() {
    let a = numbered(50_000);
    let mut b = a.clone();
    for i in (0..50_000).step_by(500) {
        b.insert(format!("lead-{i:07}"), 2);
    }
    let result = exchange(&index(&a), &index(&b), "leads", Tuning::default()).unwrap();
    let differing: std::collections::BTreeSet<_> =
        result.shipped.iter().map(|(_, key)| key.clone()).collect();
    assert_eq!(differing.len(), 100);
    assert_eq!(result.shipped.len(), 200, "each side ships its version");
    // The true difference is 100 × (key + digest) ≈ 100 × 48 bytes.
    let ratio = result.bytes as f64 / (100.0 * 48.0);
    eprintln!(
        "d=100 of 50k: {} bytes in {} round trips, {ratio:.1}x",
        result.bytes,
        result.round_trips()
    );
    assert!(ratio < 30.0, "discovery cost {ratio:.1}× the difference");
}

#[test]
fn an_empty_replica_gets_whole_ranges_streamed() {
    let full = index(&numbered(10_000));
    let result = exchange(&RangeIndex::new(), &full, "leads", Tuning::default()).unwrap();
    assert_eq!(result.messages, 2);
    assert_eq!(result.streamed.len(), 1);
    assert_eq!(result.streamed[0].0, Side::Responder);
    let result = exchange(&full, &RangeIndex::new(), "leads", Tuning::default()).unwrap();
    assert_eq!(result.streamed.len(), 1);
    assert_eq!(result.streamed[0].0, Side::Initiator);
}
