//! The JSON view of records, which the HTTP API speaks.
//!
//! # Rendering
//! - A register renders as its winning value (highest timestamp, then
//!   replica id); a counter as a number; a set as an array of its elements
//!   in [`Atom`] order; a flag as a boolean.
//! - A path with fields nested under it renders as an object of them. If
//!   concurrent writes left it holding a value as well, the nested map wins
//!   the rendering; otherwise, of several kinds at one path, the first in
//!   the order register, counter, set, flag renders. The others stay in
//!   the state (see [`Record::field`]).
//! - Counters outside the `i64` range render as floats.
//!
//! # Writing
//! A JSON object written with [`Record::put_json`] replaces the record:
//! each scalar or array becomes a register, each nested object a nested
//! map. Empty nested objects leave nothing behind. Integers above
//! `i64::MAX` that JSON parsers read as unsigned 64-bit integers are
//! refused rather than rounded; numbers of larger magnitude arrive from the
//! JSON parser as floats already and are stored as floats.

use serde_json::{Map, Number, Value};

use crate::{
    Atom, Field, FieldKind, FieldPath, Op, Record, RecordError, ReplicaId, Timestamp, F64,
};

impl Atom {
    /// The atom for a JSON value. Arrays are kept whole as canonical JSON
    /// text; objects are refused (they become nested maps at field level).
    pub fn from_json(value: &Value) -> Result<Atom, RecordError> {
        Ok(match value {
            Value::Null => Atom::Null,
            Value::Bool(b) => Atom::Bool(*b),
            Value::Number(n) => number_atom(n)?,
            Value::String(s) => Atom::Str(s.clone()),
            Value::Array(_) => Atom::Json(canonical(value).to_string()),
            Value::Object(_) => {
                return Err(RecordError::Json(
                    "a JSON object cannot be a single value here; write it as a nested map".into(),
                ))
            }
        })
    }

    /// The JSON rendering. A float that JSON cannot represent (NaN, an
    /// infinity) renders as `null`.
    pub fn to_json(&self) -> Value {
        match self {
            Atom::Null => Value::Null,
            Atom::Bool(b) => Value::Bool(*b),
            Atom::Int(i) => Value::from(*i),
            Atom::Float(F64(f)) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Atom::Str(s) => Value::String(s.clone()),
            Atom::Json(text) => {
                serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.clone()))
            }
        }
    }
}

fn number_atom(n: &Number) -> Result<Atom, RecordError> {
    if let Some(i) = n.as_i64() {
        Ok(Atom::Int(i))
    } else if n.is_u64() {
        Err(RecordError::Json(format!(
            "integer {n} is beyond the signed 64-bit range; send it as a string"
        )))
    } else {
        Ok(Atom::Float(F64(n.as_f64().unwrap_or(f64::NAN))))
    }
}

/// `value` with every object's keys in sorted order, whatever map type
/// serde_json was built with.
fn canonical(value: &Value) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), canonical(v)))
                    .collect(),
            )
        }
        scalar => scalar.clone(),
    }
}

impl Field {
    /// The JSON rendering of the visible kind (`None` for an empty field).
    pub fn to_json(&self) -> Option<Value> {
        Some(match self.visible_kind()? {
            FieldKind::Register => self.register.winner().map_or(Value::Null, Atom::to_json),
            FieldKind::Counter => {
                let value = self.counter.value();
                i64::try_from(value).map_or_else(|_| Value::from(value as f64), Value::from)
            }
            FieldKind::Set => Value::Array(self.set.iter().map(Atom::to_json).collect()),
            FieldKind::Flag => Value::Bool(self.flag.is_enabled()),
        })
    }
}

impl Record {
    /// The record as a JSON object (empty for a deleted record). See the
    /// [module docs](crate::json) for the rules.
    pub fn to_json(&self) -> Value {
        let mut root = Map::new();
        'fields: for (path, field) in self.fields() {
            let Some(leaf) = field.to_json() else {
                continue;
            };
            let mut parents = path.segments();
            let Some(name) = parents.next_back() else {
                continue;
            };
            let mut node = &mut root;
            for parent in parents {
                let slot = node
                    .entry(parent.to_owned())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    // A nested map wins over a value at the same path.
                    *slot = Value::Object(Map::new());
                }
                node = match slot {
                    Value::Object(inner) => inner,
                    _ => continue 'fields,
                };
            }
            // Paths sort before their children, so a value never lands on
            // an object already built from nested fields.
            node.entry(name.to_owned()).or_insert(leaf);
        }
        Value::Object(root)
    }

    /// Replaces the record's contents with the JSON object `doc`, on behalf
    /// of `replica` at time `time`; returns the delta.
    ///
    /// Every field this replica has seen is removed, then each leaf of
    /// `doc` is written as a register (nested objects as nested maps).
    pub fn put_json(
        &mut self,
        doc: &Value,
        replica: ReplicaId,
        time: Timestamp,
    ) -> Result<Record, RecordError> {
        Ok(self.replace_with_registers(leaves(doc)?, replica, time))
    }

    /// A new record holding the JSON object `doc`.
    pub fn from_json(
        doc: &Value,
        replica: ReplicaId,
        time: Timestamp,
    ) -> Result<Record, RecordError> {
        let mut record = Record::default();
        record.put_json(doc, replica, time)?;
        Ok(record)
    }
}

/// The register writes that store the JSON object `doc`.
pub fn set_ops(doc: &Value) -> Result<Vec<Op>, RecordError> {
    Ok(leaves(doc)?
        .into_iter()
        .map(|(path, value)| Op::Set { path, value })
        .collect())
}

/// Each leaf of the JSON object `doc` with its path.
fn leaves(doc: &Value) -> Result<Vec<(FieldPath, Atom)>, RecordError> {
    let Value::Object(fields) = doc else {
        return Err(RecordError::Json(format!(
            "a record must be a JSON object, not {}",
            kind_name(doc)
        )));
    };
    let mut found = Vec::new();
    let mut pending: Vec<(Option<FieldPath>, &Map<String, Value>)> = vec![(None, fields)];
    while let Some((parent, object)) = pending.pop() {
        for (name, value) in object {
            let path = match &parent {
                Some(parent) => parent.child(name.as_str()),
                None => FieldPath::top(name.as_str())?,
            };
            path.validate()?;
            match value {
                Value::Object(nested) => pending.push((Some(path), nested)),
                leaf => found.push((path, Atom::from_json(leaf)?)),
            }
        }
    }
    Ok(found)
}

fn kind_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{CausalContext, Dot, DotStore, Lattice};

    fn record(doc: Value) -> Result<Record, RecordError> {
        Record::from_json(&doc, ReplicaId(1), Timestamp(1))
    }

    #[test]
    fn round_trips_scalars_arrays_and_nested_objects() {
        let doc = json!({
            "name": "Ada",
            "age": 36,
            "ratio": 0.25,
            "active": true,
            "nothing": null,
            "langs": ["en", {"z": 1, "a": [2]}],
            "address": {"city": "London", "geo": {"lat": 51.5}},
        });
        assert_eq!(record(doc.clone()).unwrap().to_json(), doc);
    }

    #[test]
    fn floats_inside_arrays_render_exactly() {
        let doc: Value =
            serde_json::from_str(r#"{"x":[-92200018167125091503973377, 1.8461112500000002e-154]}"#)
                .unwrap();
        assert_eq!(record(doc.clone()).unwrap().to_json(), doc);
    }

    #[test]
    fn arrays_are_stored_as_canonical_json() {
        let a = record(json!({"l": [{"b": 1, "a": 2}]})).unwrap();
        let field = a.field(&FieldPath::top("l").unwrap()).unwrap();
        assert_eq!(
            field.register.winner(),
            Some(&Atom::Json(r#"[{"a":2,"b":1}]"#.into()))
        );
    }

    #[test]
    fn a_put_into_a_new_record_is_its_delta_as_merging_would_make_it() {
        let doc = json!({"name": "Ada", "address": {"city": "London"}, "n": 1});
        let mut fresh = Record::default();
        let delta = fresh.put_json(&doc, ReplicaId(1), Timestamp(1)).unwrap();
        let mut merged = Record::default();
        merged.merge(delta.clone());
        assert_eq!(fresh, merged);
        assert_eq!(fresh, delta);
        assert_eq!(fresh.digest(), merged.digest());
        // A deleted record is not new: it keeps its history, which the
        // delta does not carry.
        let mut deleted = fresh.clone();
        deleted.delete();
        let delta = deleted.put_json(&doc, ReplicaId(1), Timestamp(2)).unwrap();
        assert_eq!(deleted.to_json(), doc);
        assert_ne!(deleted, delta);
    }

    #[test]
    fn a_put_delta_carries_the_dots_it_overwrites_and_its_own() {
        let mut a = record(json!({"name": "Ada", "stage": "new"})).unwrap();
        let mut b = a.clone();
        b.put_json(&json!({"city": "Oslo"}), ReplicaId(2), Timestamp(2))
            .unwrap();
        a.merge(b);
        let mut overwritten = CausalContext::new();
        a.fields()
            .for_each(|(_, field)| overwritten.union(&field.dots()));
        assert!(overwritten.contains(&Dot::new(ReplicaId(2), 1)));
        let delta = a
            .put_json(
                &json!({"name": "Grace", "n": 1}),
                ReplicaId(1),
                Timestamp(3),
            )
            .unwrap();
        // Every dot the delta's fields hold, and every dot of the fields it
        // replaced, and nothing else.
        let mut expected = overwritten;
        delta
            .fields()
            .for_each(|(_, field)| expected.union(&field.dots()));
        assert_eq!(delta.context(), &expected);
        assert!(delta.context().contains(&Dot::new(ReplicaId(1), 3)));
        assert!(delta.context().contains(&Dot::new(ReplicaId(1), 4)));
        assert!(!delta.context().contains(&Dot::new(ReplicaId(1), 5)));
        assert_eq!(a.to_json(), json!({"name": "Grace", "n": 1}));
    }

    #[test]
    fn put_replaces_the_record() {
        let mut a = record(json!({"name": "Ada", "stage": "new"})).unwrap();
        a.put_json(&json!({"name": "Grace"}), ReplicaId(1), Timestamp(2))
            .unwrap();
        assert_eq!(a.to_json(), json!({"name": "Grace"}));
    }

    #[test]
    fn empty_nested_objects_leave_nothing() {
        assert_eq!(
            record(json!({"a": {}, "b": 1})).unwrap().to_json(),
            json!({"b": 1})
        );
    }

    #[test]
    fn refuses_what_it_cannot_store_faithfully() {
        let err = record(json!({"big": u64::MAX})).unwrap_err();
        assert!(
            err.to_string().contains("beyond the signed 64-bit range"),
            "{err}"
        );
        let err = record(json!(["not", "an", "object"])).unwrap_err();
        assert!(
            err.to_string()
                .contains("must be a JSON object, not an array"),
            "{err}"
        );
        let mut deep = json!(1);
        for _ in 0..=crate::MAX_DEPTH {
            deep = json!({ "x": deep });
        }
        let err = record(deep).unwrap_err();
        assert!(err.to_string().contains("nested"), "{err}");
        let err = Atom::from_json(&json!({"a": 1})).unwrap_err();
        assert!(err.to_string().contains("nested map"), "{err}");
    }

    #[test]
    fn unrepresentable_values_render_without_panicking() {
        assert_eq!(Atom::Float(F64(f64::NAN)).to_json(), Value::Null);
        assert_eq!(Atom::Json("not json".into()).to_json(), json!("not json"));
    }
}
