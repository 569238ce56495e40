//! Random operation schedules and the convergence check.

use std::fmt::Debug;
use std::ops::RangeInclusive;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use crate::{Lattice, ReplicaId, Timestamp};

/// An operation a replica can perform on a state of type `S`.
pub trait Operation<S: Lattice>: Clone + Debug {
    /// Applies the operation to `state` on behalf of `replica` at hybrid
    /// time `time`, and returns the delta it produced.
    fn apply_to(&self, state: &mut S, replica: ReplicaId, time: Timestamp) -> S;
}

/// One step of a [`Schedule`].
#[derive(Clone, Debug)]
pub enum Step<O> {
    /// Replica `replica` performs `op`.
    Local {
        /// Index of the acting replica.
        replica: usize,
        /// The operation.
        op: O,
    },
    /// Replica `to` receives one of `from`'s deltas so far (`pick` chooses
    /// which, modulo how many there are). Deltas can arrive late, out of
    /// order and more than once.
    Delta {
        /// Sender index.
        from: usize,
        /// Receiver index.
        to: usize,
        /// Which delta.
        pick: usize,
    },
    /// Replica `to` receives `from`'s full state (anti-entropy).
    State {
        /// Sender index.
        from: usize,
        /// Receiver index.
        to: usize,
    },
}

/// A number of replicas and the steps they take.
#[derive(Clone, Debug)]
pub struct Schedule<O> {
    /// How many replicas take part (2–5 in Trellis's own tests).
    pub replicas: usize,
    /// The steps, in order.
    pub steps: Vec<Step<O>>,
}

/// Random schedules over `replicas` replicas: up to 40 steps mixing local
/// operations from `op` with delta and full-state deliveries.
pub fn schedule<O: Clone + Debug + 'static>(
    op: impl Strategy<Value = O> + Clone + 'static,
    replicas: RangeInclusive<usize>,
) -> impl Strategy<Value = Schedule<O>> {
    replicas.prop_flat_map(move |replicas| {
        let step = prop_oneof![
            4 => (0..replicas, op.clone()).prop_map(|(replica, op)| Step::Local { replica, op }),
            3 => (0..replicas, 0..replicas, any::<usize>())
                .prop_map(|(from, to, pick)| Step::Delta { from, to, pick }),
            1 => (0..replicas, 0..replicas).prop_map(|(from, to)| Step::State { from, to }),
        ];
        proptest::collection::vec(step, 1..=40).prop_map(move |steps| Schedule { replicas, steps })
    })
}

/// Plays `plan`, then delivers every delta to every replica (newest first,
/// so out of order), and checks that all replicas hold equal states with
/// equal digests.
///
/// Along the way it checks that each operation's delta, merged into the
/// state before the operation, gives the state after it.
pub fn assert_converges<S, O>(plan: &Schedule<O>) -> Result<(), TestCaseError>
where
    S: Lattice + Debug,
    O: Operation<S>,
{
    let count = plan.replicas.max(1);
    let mut states = vec![S::default(); count];
    let mut deltas: Vec<Vec<S>> = vec![Vec::new(); count];
    let ids: Vec<ReplicaId> = (0..count).map(|i| ReplicaId(i as u64 + 1)).collect();
    let mut time = 0u64;
    for step in &plan.steps {
        match step {
            Step::Local { replica, op } => {
                let at = replica % count;
                time += 1;
                let before = states[at].clone();
                let delta = op.apply_to(&mut states[at], ids[at], Timestamp(time));
                prop_assert_eq!(
                    &before.merged(delta.clone()),
                    &states[at],
                    "merging the delta of {:?} differs from applying it",
                    op
                );
                deltas[at].push(delta);
            }
            Step::Delta { from, to, pick } => {
                let sent = &deltas[from % count];
                if !sent.is_empty() {
                    let delta = sent[pick % sent.len()].clone();
                    states[to % count].merge_delta(delta);
                }
            }
            Step::State { from, to } => {
                let state = states[from % count].clone();
                states[to % count].merge(state);
            }
        }
    }
    for state in &mut states {
        for delta in deltas.iter().flatten().rev() {
            state.merge_delta(delta.clone());
        }
    }
    for (index, state) in states.iter().enumerate().skip(1) {
        prop_assert_eq!(
            state,
            &states[0],
            "replica {} diverged from replica 0",
            index
        );
        prop_assert_eq!(state.digest(), states[0].digest());
    }
    Ok(())
}
