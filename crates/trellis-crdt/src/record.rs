//! `Record`: the unit Trellis stores and replicates.

use serde::{Deserialize, Serialize};

use crate::{
    Atom, Causal, CausalContext, Dot, DotStore, Field, FieldKind, FieldPath, Lattice, MvReg, OrMap,
    PathError, ReplicaId, Timestamp,
};

/// A record's fields: an observed-remove map from path to [`Field`].
pub type Fields = OrMap<FieldPath, Field>;

/// One change to a record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Write `value` into the register at `path`.
    Set {
        /// The field.
        path: FieldPath,
        /// The new value.
        value: Atom,
    },
    /// Add `by` (negative to subtract) to the counter at `path`.
    Increment {
        /// The field.
        path: FieldPath,
        /// The amount.
        by: i64,
    },
    /// Add `element` to the set at `path`.
    Add {
        /// The field.
        path: FieldPath,
        /// The element.
        element: Atom,
    },
    /// Remove `element` from the set at `path`.
    Discard {
        /// The field.
        path: FieldPath,
        /// The element.
        element: Atom,
    },
    /// Turn the flag at `path` on.
    Enable {
        /// The field.
        path: FieldPath,
    },
    /// Turn the flag at `path` off.
    Disable {
        /// The field.
        path: FieldPath,
    },
    /// Remove the field at `path`, of every kind, and every field nested
    /// under it.
    Remove {
        /// The field or nested map.
        path: FieldPath,
    },
}

impl Op {
    /// The field the operation targets.
    pub fn path(&self) -> &FieldPath {
        match self {
            Op::Set { path, .. }
            | Op::Increment { path, .. }
            | Op::Add { path, .. }
            | Op::Discard { path, .. }
            | Op::Enable { path }
            | Op::Disable { path }
            | Op::Remove { path } => path,
        }
    }

    /// The kind the operation makes the field, if it makes it one.
    fn assigned_kind(&self) -> Option<FieldKind> {
        match self {
            Op::Set { .. } => Some(FieldKind::Register),
            Op::Increment { .. } => Some(FieldKind::Counter),
            Op::Add { .. } => Some(FieldKind::Set),
            Op::Enable { .. } => Some(FieldKind::Flag),
            Op::Discard { .. } | Op::Disable { .. } | Op::Remove { .. } => None,
        }
    }
}

/// A replicated record: an observed-remove map from field path to field
/// CRDT, with an observed-remove delete of the whole record.
///
/// # Semantics
/// - Writing a field of one kind (say, a register) clears the other kinds
///   at that path, every field nested under it, and any non-map field at a
///   path above it, as far as the writer has seen them. Concurrent writes
///   of different kinds are kept side by side and rendered by a fixed
///   precedence (see [`Record::to_json`]).
/// - [`delete`](Record::delete) removes every field the deleting replica
///   has seen. A concurrent update to a field the delete did not observe
///   survives, so the record reappears holding just that update.
/// - Nested maps exist while any field under them exists; an empty nested
///   map is not kept.
///
/// ```
/// use serde_json::json;
/// use trellis_crdt::{Lattice, Record, ReplicaId, Timestamp};
///
/// let mut a = Record::default();
/// a.put_json(&json!({"name": "Ada", "address": {"city": "London"}}), ReplicaId(1), Timestamp(1))
///     .unwrap();
/// assert_eq!(a.to_json(), json!({"name": "Ada", "address": {"city": "London"}}));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Record {
    body: Causal<Fields>,
}

/// A change the record refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The operation's path is not usable.
    #[error(transparent)]
    Path(#[from] PathError),
    /// The JSON document cannot be stored.
    #[error("{0}")]
    Json(String),
}

impl Record {
    /// Applies `op` on behalf of `replica` at hybrid time `time`, and
    /// returns the delta to replicate.
    pub fn apply(
        &mut self,
        op: &Op,
        replica: ReplicaId,
        time: Timestamp,
    ) -> Result<Record, RecordError> {
        let path = op.path();
        path.validate()?;
        let mut delta = Causal::new(Fields::default(), self.cleared_by(op));
        delta.merge(
            self.body
                .store
                .update(&self.body.context, path.clone(), |field, cx| {
                    field_delta(field, cx, op, replica, time)
                }),
        );
        self.body.merge(delta.clone());
        Ok(Record { body: delta })
    }

    /// Applies several operations in order; returns their combined delta.
    pub fn apply_all<'a>(
        &mut self,
        ops: impl IntoIterator<Item = &'a Op>,
        replica: ReplicaId,
        time: Timestamp,
    ) -> Result<Record, RecordError> {
        let mut combined = Record::default();
        for op in ops {
            combined.merge(self.apply(op, replica, time)?);
        }
        Ok(combined)
    }

    /// Deletes the record: every field this replica has seen is removed.
    /// Returns the delta.
    pub fn delete(&mut self) -> Record {
        let delta = Causal::new(Fields::default(), self.body.store.dots());
        self.body.merge(delta.clone());
        Record { body: delta }
    }

    /// Replaces every field this replica has seen with registers holding
    /// `leaves`, in one join; returns the delta. The paths must be valid
    /// and distinct (as [`json::set_ops`](crate::json::set_ops) makes them).
    pub(crate) fn replace_with_registers(
        &mut self,
        leaves: Vec<(FieldPath, Atom)>,
        replica: ReplicaId,
        time: Timestamp,
    ) -> Record {
        let first = self.body.context.next_dot(replica).counter;
        let written = leaves.len() as u64;
        let fields = Fields::from_entries(leaves.into_iter().zip(first..).map(
            |((path, value), counter)| {
                let register = MvReg::single(Dot::new(replica, counter), time, value);
                (
                    path,
                    Field {
                        register,
                        ..Field::default()
                    },
                )
            },
        ));
        // The delta's context: the dots it overwrites and its own, which
        // are the `written` counters from `first` on (no need to collect
        // them back out of the fields).
        let mut context = self.body.store.dots();
        for counter in first..first.saturating_add(written) {
            context.insert(Dot::new(replica, counter));
        }
        let delta = Causal {
            store: fields,
            context,
        };
        if self.body.store.is_empty() && self.body.context.is_empty() {
            // A new record: merging into bottom gives the delta itself.
            self.body = delta.clone();
        } else {
            self.body.merge(delta.clone());
        }
        Record { body: delta }
    }

    /// Whether the record holds any field (a deleted or never-written
    /// record does not).
    pub fn exists(&self) -> bool {
        !self.body.store.is_empty()
    }

    /// The fields, in path order.
    pub fn fields(&self) -> impl Iterator<Item = (&FieldPath, &Field)> {
        self.body.store.iter()
    }

    /// The field at `path`.
    pub fn field(&self, path: &FieldPath) -> Option<&Field> {
        self.body.store.get(path)
    }

    /// Every event this record has seen.
    pub fn context(&self) -> &CausalContext {
        &self.body.context
    }

    /// The dots `op` clears besides its own slot. Writing a kind clears
    /// the other kinds at its path, fields nested under it, and fields at
    /// paths above it; removing a path clears everything under it.
    fn cleared_by(&self, op: &Op) -> CausalContext {
        let path = op.path();
        let mut cleared = CausalContext::new();
        for (other, field) in self.body.store.iter() {
            let related = other.starts_with(path) || path.starts_with(other);
            match (op, op.assigned_kind()) {
                (Op::Remove { .. }, _) if other.starts_with(path) => cleared.union(&field.dots()),
                (_, Some(kind)) if other == path => cleared.union(&field.dots_except(kind)),
                (_, Some(_)) if related => cleared.union(&field.dots()),
                _ => {}
            }
        }
        cleared
    }
}

/// The delta of `op` on the slot it targets. Clearing other slots and
/// paths is [`Record::cleared_by`]'s part.
fn field_delta(
    field: &Field,
    cx: &CausalContext,
    op: &Op,
    replica: ReplicaId,
    time: Timestamp,
) -> Causal<Field> {
    fn lift<S>(delta: Causal<S>, place: impl FnOnce(S) -> Field) -> Causal<Field> {
        Causal::new(place(delta.store), delta.context)
    }
    match op {
        Op::Set { value, .. } => lift(
            field.register.write(cx, replica, time, value.clone()),
            |register| Field {
                register,
                ..Field::default()
            },
        ),
        Op::Increment { by, .. } => lift(field.counter.add(cx, replica, *by), |counter| Field {
            counter,
            ..Field::default()
        }),
        Op::Add { element, .. } => lift(field.set.add(cx, replica, element.clone()), |set| Field {
            set,
            ..Field::default()
        }),
        Op::Discard { element, .. } => lift(field.set.remove(element), |set| Field {
            set,
            ..Field::default()
        }),
        Op::Enable { .. } => lift(field.flag.enable(cx, replica), |flag| Field {
            flag,
            ..Field::default()
        }),
        Op::Disable { .. } => lift(field.flag.disable(), |flag| Field {
            flag,
            ..Field::default()
        }),
        Op::Remove { .. } => Causal::default(),
    }
}

impl Lattice for Record {
    fn merge(&mut self, other: Self) {
        self.body.merge(other.body);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const A: ReplicaId = ReplicaId(1);
    const B: ReplicaId = ReplicaId(2);

    fn path(segments: &[&str]) -> FieldPath {
        FieldPath::new(segments.iter().copied()).unwrap()
    }

    fn set(p: &[&str], value: impl Into<Atom>) -> Op {
        Op::Set {
            path: path(p),
            value: value.into(),
        }
    }

    fn lead() -> Record {
        Record::from_json(&json!({"name": "Ada", "stage": "new"}), A, Timestamp(1)).unwrap()
    }

    #[test]
    fn delete_keeps_a_concurrent_update_it_did_not_see() {
        let mut a = lead();
        let mut b = a.clone();
        let deleted = a.delete();
        assert!(!a.exists());
        let updated = b.apply(&set(&["stage"], "won"), B, Timestamp(2)).unwrap();
        a.merge(updated);
        b.merge(deleted);
        assert_eq!(a, b);
        assert_eq!(a.to_json(), json!({"stage": "won"}));
    }

    #[test]
    fn delete_removes_everything_it_saw() {
        let mut a = lead();
        let mut b = a.clone();
        b.merge(a.delete());
        assert!(!b.exists());
        assert_eq!(b.to_json(), json!({}));
    }

    #[test]
    fn concurrent_kinds_coexist_and_render_by_precedence() {
        let mut a = lead();
        let mut b = a.clone();
        let as_register = a.apply(&set(&["score"], 7i64), A, Timestamp(2)).unwrap();
        let as_counter = b
            .apply(
                &Op::Increment {
                    path: path(&["score"]),
                    by: 3,
                },
                B,
                Timestamp(3),
            )
            .unwrap();
        a.merge(as_counter);
        b.merge(as_register);
        assert_eq!(a, b);
        let field = a.field(&path(&["score"])).unwrap();
        assert!(field.has(FieldKind::Register) && field.has(FieldKind::Counter));
        assert_eq!(a.to_json()["score"], json!(7));

        // A later write of one kind, having seen both, clears the other.
        a.apply(
            &Op::Increment {
                path: path(&["score"]),
                by: 1,
            },
            A,
            Timestamp(4),
        )
        .unwrap();
        let field = a.field(&path(&["score"])).unwrap();
        assert_eq!(field.visible_kind(), Some(FieldKind::Counter));
        assert!(!field.has(FieldKind::Register));
        assert_eq!(a.to_json()["score"], json!(4));
    }

    #[test]
    fn a_nested_map_wins_over_a_concurrent_value_at_its_path() {
        let mut a = lead();
        let mut b = a.clone();
        let flat = a
            .apply(&set(&["address"], "12 Main St"), A, Timestamp(5))
            .unwrap();
        let nested = b
            .apply(&set(&["address", "city"], "Lyon"), B, Timestamp(2))
            .unwrap();
        a.merge(nested);
        b.merge(flat);
        assert_eq!(a, b);
        assert_eq!(a.to_json()["address"], json!({"city": "Lyon"}));
    }

    #[test]
    fn writing_a_path_clears_values_above_and_fields_below() {
        let mut a = lead();
        a.apply(&set(&["address"], "12 Main St"), A, Timestamp(2))
            .unwrap();
        a.apply(&set(&["address", "city"], "Lyon"), A, Timestamp(3))
            .unwrap();
        assert!(a.field(&path(&["address"])).is_none());
        a.apply(&set(&["address"], "gone"), A, Timestamp(4))
            .unwrap();
        assert!(a.field(&path(&["address", "city"])).is_none());
        assert_eq!(a.to_json()["address"], json!("gone"));
    }

    #[test]
    fn remove_takes_the_whole_subtree() {
        let mut a = Record::from_json(
            &json!({"address": {"city": "Lyon", "geo": {"lat": 45}}, "name": "Ada"}),
            A,
            Timestamp(1),
        )
        .unwrap();
        a.apply(
            &Op::Remove {
                path: path(&["address"]),
            },
            A,
            Timestamp(2),
        )
        .unwrap();
        assert_eq!(a.to_json(), json!({"name": "Ada"}));
    }

    #[test]
    fn sets_flags_and_counters_render_as_json() {
        let mut a = Record::default();
        let ops = [
            Op::Add {
                path: path(&["tags"]),
                element: "vip".into(),
            },
            Op::Add {
                path: path(&["tags"]),
                element: "eu".into(),
            },
            Op::Add {
                path: path(&["tags"]),
                element: "gone".into(),
            },
            Op::Discard {
                path: path(&["tags"]),
                element: "gone".into(),
            },
            Op::Enable {
                path: path(&["consent"]),
            },
            Op::Increment {
                path: path(&["visits"]),
                by: 5,
            },
            Op::Increment {
                path: path(&["visits"]),
                by: -2,
            },
        ];
        a.apply_all(&ops, A, Timestamp(1)).unwrap();
        assert_eq!(
            a.to_json(),
            json!({"tags": ["eu", "vip"], "consent": true, "visits": 3})
        );
        a.apply(
            &Op::Disable {
                path: path(&["consent"]),
            },
            A,
            Timestamp(2),
        )
        .unwrap();
        assert!(a.field(&path(&["consent"])).is_none());
    }

    #[test]
    fn register_siblings_stay_visible() {
        let mut a = lead();
        let mut b = a.clone();
        let from_a = a.apply(&set(&["stage"], "won"), A, Timestamp(9)).unwrap();
        b.merge(
            b.clone()
                .apply(&set(&["stage"], "lost"), B, Timestamp(5))
                .unwrap(),
        );
        b.merge(from_a);
        let stage = b.field(&path(&["stage"])).unwrap();
        let values: Vec<_> = stage
            .register
            .siblings()
            .map(|(_, s)| s.value.clone())
            .collect();
        assert_eq!(values, vec![Atom::from("won"), Atom::from("lost")]);
        assert_eq!(
            b.to_json()["stage"],
            json!("won"),
            "highest timestamp wins the view"
        );
    }

    #[test]
    fn equal_timestamps_break_ties_by_replica_id() {
        let mut a = lead();
        let mut b = a.clone();
        let from_a = a.apply(&set(&["stage"], "a"), A, Timestamp(7)).unwrap();
        let from_b = b.apply(&set(&["stage"], "b"), B, Timestamp(7)).unwrap();
        a.merge(from_b);
        b.merge(from_a);
        assert_eq!(a.to_json()["stage"], json!("b"));
        assert_eq!(b.to_json()["stage"], json!("b"));
    }

    #[test]
    fn bad_paths_are_refused() {
        assert_eq!(
            FieldPath::new(["a", ""]).unwrap_err(),
            PathError::EmptySegment("a.".into())
        );
        assert!(matches!(
            FieldPath::new(Vec::<String>::new()),
            Err(PathError::Empty)
        ));
        let deep = vec!["x"; crate::MAX_DEPTH + 1];
        assert!(matches!(
            FieldPath::new(deep),
            Err(PathError::TooDeep { .. })
        ));
        // Decoding refuses what construction refuses.
        let decoded = crate::codec::decode::<FieldPath>(&crate::codec::encode(&vec![""; 1]));
        assert!(decoded.unwrap_err().to_string().contains("empty name"));
        let deep = crate::codec::decode::<FieldPath>(&crate::codec::encode(&vec!["x"; 1000]));
        assert!(deep.unwrap_err().to_string().contains("levels deep"));
    }
}
