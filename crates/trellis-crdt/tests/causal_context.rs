//! The causal context's compaction invariants.

use proptest::prelude::*;
use trellis_crdt::testing::{causal_context, config, dot};
use trellis_crdt::{CausalContext, Dot};

proptest! {
    #![proptest_config(config())]

    /// A context holds exactly the dots put in, in any order, and its
    /// representation is canonical: nothing in the cloud is covered by or
    /// adjacent to the vector.
    #[test]
    fn holds_exactly_its_dots_canonically(dots in proptest::collection::vec(dot(), 0..40)) {
        let built = CausalContext::from_dots(dots.clone());
        let mut inserted = CausalContext::new();
        for dot in dots.iter().rev() {
            inserted.insert(*dot);
        }
        prop_assert_eq!(&built, &inserted);
        for replica in 1..=5u64 {
            for counter in 1..14 {
                let probe = Dot::new(replica, counter);
                prop_assert_eq!(built.contains(&probe), dots.contains(&probe));
            }
        }
        for dot in built.cloud() {
            let seen = built.vector().find(|(r, _)| *r == dot.replica).map_or(0, |(_, n)| n);
            prop_assert!(dot.counter > seen + 1, "cloud dot {} should have been folded", dot);
        }
        prop_assert!(built.vector().all(|(_, n)| n > 0));
    }

    /// Union is the set union, and it is commutative.
    #[test]
    fn union_is_set_union(a in causal_context(), b in causal_context()) {
        let mut ab = a.clone();
        ab.union(&b);
        let mut ba = b.clone();
        ba.union(&a);
        prop_assert_eq!(&ab, &ba);
        for replica in 1..=5u64 {
            for counter in 1..14 {
                let probe = Dot::new(replica, counter);
                prop_assert_eq!(ab.contains(&probe), a.contains(&probe) || b.contains(&probe));
            }
        }
    }

    /// A fresh dot is never one the context has seen.
    #[test]
    fn next_dot_is_fresh(context in causal_context(), replica in 1u64..=5) {
        let next = context.next_dot(trellis_crdt::ReplicaId(replica));
        prop_assert!(!context.contains(&next));
    }
}
