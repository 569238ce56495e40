//! Strategies for values, operations and reachable states of every type.

use std::fmt::Debug;

use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::Operation;
use crate::{
    Atom, AwSet, Causal, CausalContext, Dot, EwFlag, FieldPath, GCounter, Lattice, MvReg, Op,
    OrMap, PnCounter, Record, ReplicaId, ResetCounter, Timestamp, F64,
};

/// Replica ids 1 to 5.
pub fn replica_id() -> impl Strategy<Value = ReplicaId> {
    (1u64..=5).prop_map(ReplicaId)
}

/// Any timestamp.
pub fn timestamp() -> impl Strategy<Value = Timestamp> {
    any::<u64>().prop_map(Timestamp)
}

/// Dots of replicas 1 to 5 with small counters, so contexts have gaps
/// that close.
pub fn dot() -> impl Strategy<Value = Dot> {
    (replica_id(), 1u64..12).prop_map(|(replica, counter)| Dot { replica, counter })
}

/// Contexts built from random dots.
pub fn causal_context() -> impl Strategy<Value = CausalContext> {
    proptest::collection::vec(dot(), 0..24).prop_map(CausalContext::from_dots)
}

/// Atoms from a small domain, so that operations collide.
pub fn atom() -> impl Strategy<Value = Atom> {
    prop_oneof![
        Just(Atom::Null),
        any::<bool>().prop_map(Atom::Bool),
        (-3i64..3).prop_map(Atom::Int),
        prop_oneof![Just(0.5), Just(-0.0), Just(1e300)].prop_map(|f| Atom::Float(F64(f))),
        "[a-c]{1,2}".prop_map(Atom::Str),
        Just(Atom::Json("[1,{\"a\":2}]".to_string())),
    ]
}

/// Paths of one to three segments from a small alphabet, so that fields,
/// nested maps and kinds collide.
pub fn field_path() -> impl Strategy<Value = FieldPath> {
    proptest::collection::vec("[ab]", 1..=3)
        .prop_filter_map("paths of non-empty names are valid", |segments| {
            FieldPath::new(segments).ok()
        })
}

/// An operation on an add-wins set.
#[derive(Clone, Debug)]
pub enum SetOp<E> {
    /// Add the element.
    Add(E),
    /// Remove the element.
    Remove(E),
    /// Remove every element.
    Clear,
}

impl<E> Operation<Causal<AwSet<E>>> for SetOp<E>
where
    E: Ord + Clone + Debug + Serialize + DeserializeOwned,
{
    fn apply_to(
        &self,
        state: &mut Causal<AwSet<E>>,
        replica: ReplicaId,
        _: Timestamp,
    ) -> Causal<AwSet<E>> {
        match self {
            SetOp::Add(e) => state.apply(|set, cx| set.add(cx, replica, e.clone())),
            SetOp::Remove(e) => state.apply(|set, _| set.remove(e)),
            SetOp::Clear => state.apply(|set, _| set.clear()),
        }
    }
}

/// Set operations over the elements 0 to 7.
pub fn set_op() -> impl Strategy<Value = SetOp<u8>> + Clone {
    prop_oneof![
        4 => (0u8..8).prop_map(SetOp::Add),
        3 => (0u8..8).prop_map(SetOp::Remove),
        1 => Just(SetOp::Clear),
    ]
}

/// An operation on a multi-value register.
#[derive(Clone, Debug)]
pub enum RegisterOp<V> {
    /// Write the value.
    Write(V),
    /// Remove every value seen.
    Clear,
}

impl<V> Operation<Causal<MvReg<V>>> for RegisterOp<V>
where
    V: Clone + PartialEq + Debug + Serialize + DeserializeOwned,
{
    fn apply_to(
        &self,
        state: &mut Causal<MvReg<V>>,
        replica: ReplicaId,
        time: Timestamp,
    ) -> Causal<MvReg<V>> {
        match self {
            RegisterOp::Write(v) => state.apply(|reg, cx| reg.write(cx, replica, time, v.clone())),
            RegisterOp::Clear => state.apply(|reg, _| reg.clear()),
        }
    }
}

/// Register operations writing atoms.
pub fn register_op() -> impl Strategy<Value = RegisterOp<Atom>> + Clone {
    prop_oneof![5 => atom().prop_map(RegisterOp::Write), 1 => Just(RegisterOp::Clear)]
}

/// An operation on an enable-wins flag.
#[derive(Clone, Copy, Debug)]
pub enum FlagOp {
    /// Turn it on.
    Enable,
    /// Turn it off.
    Disable,
}

impl Operation<Causal<EwFlag>> for FlagOp {
    fn apply_to(
        &self,
        state: &mut Causal<EwFlag>,
        replica: ReplicaId,
        _: Timestamp,
    ) -> Causal<EwFlag> {
        match self {
            FlagOp::Enable => state.apply(|flag, cx| flag.enable(cx, replica)),
            FlagOp::Disable => state.apply(|flag, _| flag.disable()),
        }
    }
}

/// Flag operations.
pub fn flag_op() -> impl Strategy<Value = FlagOp> + Clone {
    prop_oneof![Just(FlagOp::Enable), Just(FlagOp::Disable)]
}

/// An operation on a [`GCounter`] or [`PnCounter`] (a `GCounter` ignores
/// decrements' sign and counts them up).
#[derive(Clone, Copy, Debug)]
pub enum CounterOp {
    /// Add.
    Increment(u64),
    /// Subtract.
    Decrement(u64),
}

impl Operation<GCounter> for CounterOp {
    fn apply_to(&self, state: &mut GCounter, replica: ReplicaId, _: Timestamp) -> GCounter {
        match *self {
            CounterOp::Increment(by) | CounterOp::Decrement(by) => state.increment(replica, by),
        }
    }
}

impl Operation<PnCounter> for CounterOp {
    fn apply_to(&self, state: &mut PnCounter, replica: ReplicaId, _: Timestamp) -> PnCounter {
        match *self {
            CounterOp::Increment(by) => state.increment(replica, by),
            CounterOp::Decrement(by) => state.decrement(replica, by),
        }
    }
}

/// Counter operations with small amounts.
pub fn counter_op() -> impl Strategy<Value = CounterOp> + Clone {
    prop_oneof![
        (0u64..100).prop_map(CounterOp::Increment),
        (0u64..100).prop_map(CounterOp::Decrement)
    ]
}

/// An operation on a [`ResetCounter`].
#[derive(Clone, Copy, Debug)]
pub enum ResetCounterOp {
    /// Add (negative subtracts).
    Add(i64),
    /// Reset to zero.
    Reset,
}

impl Operation<Causal<ResetCounter>> for ResetCounterOp {
    fn apply_to(
        &self,
        state: &mut Causal<ResetCounter>,
        replica: ReplicaId,
        _: Timestamp,
    ) -> Causal<ResetCounter> {
        match *self {
            ResetCounterOp::Add(by) => state.apply(|counter, cx| counter.add(cx, replica, by)),
            ResetCounterOp::Reset => state.apply(|counter, _| counter.reset()),
        }
    }
}

/// Reset-counter operations.
pub fn reset_counter_op() -> impl Strategy<Value = ResetCounterOp> + Clone {
    prop_oneof![4 => (-50i64..50).prop_map(ResetCounterOp::Add), 1 => Just(ResetCounterOp::Reset)]
}

/// The nested map the map strategies work on: outer key → inner key →
/// register.
pub type NestedMap = Causal<OrMap<u8, OrMap<u8, MvReg<u8>>>>;

/// An operation on a [`NestedMap`].
#[derive(Clone, Copy, Debug)]
pub enum MapOp {
    /// Write `value` at `outer.inner`.
    Write {
        /// Outer key.
        outer: u8,
        /// Inner key.
        inner: u8,
        /// The value.
        value: u8,
    },
    /// Remove `outer.inner`.
    RemoveInner {
        /// Outer key.
        outer: u8,
        /// Inner key.
        inner: u8,
    },
    /// Remove the whole nested map under `outer`.
    RemoveOuter(u8),
}

impl Operation<NestedMap> for MapOp {
    fn apply_to(&self, state: &mut NestedMap, replica: ReplicaId, time: Timestamp) -> NestedMap {
        match *self {
            MapOp::Write {
                outer,
                inner,
                value,
            } => state.apply(|map, cx| {
                map.update(cx, outer, |nested, cx| {
                    nested.update(cx, inner, |reg, cx| reg.write(cx, replica, time, value))
                })
            }),
            MapOp::RemoveInner { outer, inner } => {
                state.apply(|map, cx| map.update(cx, outer, |nested, _| nested.remove(&inner)))
            }
            MapOp::RemoveOuter(outer) => state.apply(|map, _| map.remove(&outer)),
        }
    }
}

/// Nested-map operations over a few keys.
pub fn map_op() -> impl Strategy<Value = MapOp> + Clone {
    prop_oneof![
        4 => (0u8..3, 0u8..3, any::<u8>()).prop_map(|(outer, inner, value)| MapOp::Write { outer, inner, value }),
        2 => (0u8..3, 0u8..3).prop_map(|(outer, inner)| MapOp::RemoveInner { outer, inner }),
        1 => (0u8..3).prop_map(MapOp::RemoveOuter),
    ]
}

/// An operation on a [`Record`].
#[derive(Clone, Debug)]
pub enum RecordOp {
    /// A field operation.
    Apply(Op),
    /// Replace the record with a JSON object.
    Put(serde_json::Value),
    /// Delete the whole record.
    Delete,
}

impl Operation<Record> for RecordOp {
    fn apply_to(&self, state: &mut Record, replica: ReplicaId, time: Timestamp) -> Record {
        match self {
            RecordOp::Apply(op) => state
                .apply(op, replica, time)
                .unwrap_or_else(|err| panic!("generated op {op:?} was refused: {err}")),
            RecordOp::Put(doc) => state
                .put_json(doc, replica, time)
                .unwrap_or_else(|err| panic!("generated document {doc} was refused: {err}")),
            RecordOp::Delete => state.delete(),
        }
    }
}

/// Field operations of every kind on colliding paths.
pub fn op() -> impl Strategy<Value = Op> + Clone {
    prop_oneof![
        3 => (field_path(), atom()).prop_map(|(path, value)| Op::Set { path, value }),
        2 => (field_path(), -5i64..5).prop_map(|(path, by)| Op::Increment { path, by }),
        2 => (field_path(), atom()).prop_map(|(path, element)| Op::Add { path, element }),
        1 => (field_path(), atom()).prop_map(|(path, element)| Op::Discard { path, element }),
        1 => field_path().prop_map(|path| Op::Enable { path }),
        1 => field_path().prop_map(|path| Op::Disable { path }),
        1 => field_path().prop_map(|path| Op::Remove { path }),
    ]
}

/// Small JSON objects over colliding field names, some nested.
pub fn json_doc() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        (-3i64..3).prop_map(serde_json::Value::from),
        "[a-c]".prop_map(serde_json::Value::from),
    ];
    let field = prop_oneof![
        3 => leaf.clone(),
        1 => proptest::collection::btree_map("[ab]", leaf, 1..3)
            .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
    ];
    proptest::collection::btree_map("[ab]", field, 0..3)
        .prop_map(|map| serde_json::Value::Object(map.into_iter().collect()))
}

/// Record operations, including JSON replacements and whole-record
/// deletes.
pub fn record_op() -> impl Strategy<Value = RecordOp> + Clone {
    prop_oneof![
        12 => op().prop_map(RecordOp::Apply),
        2 => json_doc().prop_map(RecordOp::Put),
        1 => Just(RecordOp::Delete),
    ]
}

/// Three states of one system: three replicas apply random operations
/// from `op` and now and then sync. States drawn this way are *consistent*
/// (no dot means two different things), as [`assert_lattice_laws`](super::assert_lattice_laws)
/// requires.
pub fn replica_states<S, O>(op: impl Strategy<Value = O>) -> impl Strategy<Value = [S; 3]>
where
    S: Lattice + Debug,
    O: Operation<S>,
{
    proptest::collection::vec((0usize..3, op, 0usize..4), 0..24).prop_map(|steps| {
        let mut states: [S; 3] = Default::default();
        for (time, (at, op, sync_to)) in steps.into_iter().enumerate() {
            op.apply_to(
                &mut states[at],
                ReplicaId(at as u64 + 1),
                Timestamp(time as u64 + 1),
            );
            if sync_to < 3 && sync_to != at {
                let sent = states[at].clone();
                states[sync_to].merge(sent);
            }
        }
        states
    })
}
