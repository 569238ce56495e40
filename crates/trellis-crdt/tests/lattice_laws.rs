//! Every type obeys the lattice laws, round-trips through the codec, and
//! converges under random schedules. Uses only the public API and the
//! `testing` kit, as a user would.

use proptest::prelude::*;
use trellis_crdt::testing::*;
use trellis_crdt::{Atom, AwSet, Causal, EwFlag, GCounter, MvReg, PnCounter, Record, ResetCounter};

macro_rules! lattice_properties {
    ($name:ident, $state:ty, $op:expr) => {
        mod $name {
            use super::*;

            proptest! {
                #![proptest_config(config())]

                #[test]
                fn obeys_the_lattice_laws([a, b, c] in replica_states::<$state, _>($op)) {
                    assert_lattice_laws(&a, &b, &c)?;
                }

                #[test]
                fn round_trips_through_the_codec([a, _b, _c] in replica_states::<$state, _>($op)) {
                    assert_codec_round_trip(&a)?;
                }

                #[test]
                fn converges(plan in schedule($op, 2..=5)) {
                    assert_converges::<$state, _>(&plan)?;
                }
            }
        }
    };
}

lattice_properties!(gcounter, GCounter, counter_op());
lattice_properties!(pn_counter, PnCounter, counter_op());
lattice_properties!(reset_counter, Causal<ResetCounter>, reset_counter_op());
lattice_properties!(register, Causal<MvReg<Atom>>, register_op());
lattice_properties!(aw_set, Causal<AwSet<u8>>, set_op());
lattice_properties!(ew_flag, Causal<EwFlag>, flag_op());
lattice_properties!(nested_map, NestedMap, map_op());
lattice_properties!(record, Record, record_op());

proptest! {
    #![proptest_config(config())]

    /// A set's contents equal a sequential model when one replica acts
    /// alone.
    #[test]
    fn set_matches_a_sequential_model(ops in proptest::collection::vec(set_op(), 0..40)) {
        let mut state: Causal<AwSet<u8>> = Causal::default();
        let mut model = std::collections::BTreeSet::new();
        for op in &ops {
            op.apply_to(&mut state, trellis_crdt::ReplicaId(1), trellis_crdt::Timestamp(1));
            match op {
                SetOp::Add(e) => { model.insert(*e); }
                SetOp::Remove(e) => { model.remove(e); }
                SetOp::Clear => model.clear(),
            }
        }
        prop_assert_eq!(state.store.iter().copied().collect::<Vec<_>>(), model.into_iter().collect::<Vec<_>>());
    }

    /// The JSON view of converged records is the same everywhere.
    #[test]
    fn converged_records_render_identically([a, b, c] in replica_states::<Record, _>(record_op())) {
        use trellis_crdt::Lattice;
        let ab = a.clone().merged(b.clone()).merged(c.clone());
        let ba = c.merged(b).merged(a);
        prop_assert_eq!(ab.to_json(), ba.to_json());
    }
}
