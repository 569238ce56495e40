//! Metadata stays small however long a replica churns.

use trellis_crdt::{codec, AwSet, Causal, Lattice, ReplicaId};

/// One million add/remove cycles of one element, with every delta shipped
/// to a second replica: both states stay a few bytes, and their contexts
/// hold no dot cloud.
#[test]
fn a_million_add_remove_cycles_leave_small_state() {
    let cycles: u32 = std::env::var("TRELLIS_CHURN_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let me = ReplicaId(1);
    let mut local: Causal<AwSet<u32>> = Causal::default();
    let mut remote: Causal<AwSet<u32>> = Causal::default();
    for cycle in 0..cycles {
        let element = cycle % 4;
        let added = local.apply(|set, cx| set.add(cx, me, element));
        let removed = local.apply(|set, _| set.remove(&element));
        remote.merge_delta(added);
        remote.merge_delta(removed);
    }
    assert!(local.store.is_empty());
    assert_eq!(local, remote);
    assert_eq!(local.context.cloud().count(), 0);
    assert_eq!(
        local.context.vector().collect::<Vec<_>>(),
        vec![(me, u64::from(cycles))]
    );
    let size = codec::encode(&local).len();
    assert!(
        size <= 16,
        "state grew to {size} bytes after {cycles} cycles"
    );
}
