//! PATCH operations: `{"ops": [...]}` in JSON, turned into record
//! operations, and checked against the record's existing fields so that
//! an operation of the wrong type gets a clear 409 instead of quietly
//! creating a second field of another type under the same name.

use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use trellis_crdt::{Atom, FieldKind, FieldPath, Op, Record};

use super::ApiError;

/// The body of a PATCH.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchBody {
    /// The operations, applied in order.
    pub ops: Vec<JsonOp>,
}

/// One operation as JSON: `{"op": "set", "field": "address.city",
/// "value": "Oslo"}`. Fields are dotted paths.
#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub enum JsonOp {
    /// Write a register.
    Set {
        /// The field.
        field: String,
        /// The value (not an object).
        value: Value,
    },
    /// Remove a field, of any type, and what is nested under it.
    Unset {
        /// The field.
        field: String,
    },
    /// Add to a counter (negative to subtract).
    Incr {
        /// The field.
        field: String,
        /// The amount; default 1.
        #[serde(default = "one")]
        by: i64,
    },
    /// Add an element to a set.
    Add {
        /// The field.
        field: String,
        /// The element.
        value: Value,
    },
    /// Remove an element from a set.
    Remove {
        /// The field.
        field: String,
        /// The element.
        value: Value,
    },
    /// Turn a flag on.
    Enable {
        /// The field.
        field: String,
    },
    /// Turn a flag off.
    Disable {
        /// The field.
        field: String,
    },
}

fn one() -> i64 {
    1
}

/// A PATCH body, already parsed as JSON, as record operations: what
/// `PATCH` does before checking them against the record (the fuzz target
/// `http_bodies` drives it directly).
pub fn parse_patch(body: Value) -> Result<Vec<Op>, ApiError> {
    let patch: PatchBody = serde_json::from_value(body).map_err(|err| {
        ApiError::bad_request("invalid_body", format!("the body is not accepted: {err}"))
    })?;
    to_ops(patch.ops)
}

/// The record operations for `ops`, or a 400 naming the bad one.
pub fn to_ops(ops: Vec<JsonOp>) -> Result<Vec<Op>, ApiError> {
    if ops.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_ops",
            "\"ops\" is empty: give at least one operation",
        ));
    }
    ops.into_iter()
        .enumerate()
        .map(|(index, op)| {
            let bad = |what: String| {
                ApiError::bad_request("invalid_ops", format!("ops[{index}]: {what}"))
            };
            let path = |field: &str| {
                FieldPath::new(field.split('.'))
                    .map_err(|err| bad(format!("field {field:?}: {err}")))
            };
            let atom = |value: &Value| Atom::from_json(value).map_err(|err| bad(err.to_string()));
            Ok(match op {
                JsonOp::Set { field, value } => Op::Set {
                    path: path(&field)?,
                    value: atom(&value)?,
                },
                JsonOp::Unset { field } => Op::Remove {
                    path: path(&field)?,
                },
                JsonOp::Incr { field, by } => Op::Increment {
                    path: path(&field)?,
                    by,
                },
                JsonOp::Add { field, value } => Op::Add {
                    path: path(&field)?,
                    element: atom(&value)?,
                },
                JsonOp::Remove { field, value } => Op::Discard {
                    path: path(&field)?,
                    element: atom(&value)?,
                },
                JsonOp::Enable { field } => Op::Enable {
                    path: path(&field)?,
                },
                JsonOp::Disable { field } => Op::Disable {
                    path: path(&field)?,
                },
            })
        })
        .collect()
}

/// The kind of field an operation writes (`None` for a removal).
fn kind_of(op: &Op) -> Option<FieldKind> {
    match op {
        Op::Set { .. } => Some(FieldKind::Register),
        Op::Increment { .. } => Some(FieldKind::Counter),
        Op::Add { .. } | Op::Discard { .. } => Some(FieldKind::Set),
        Op::Enable { .. } | Op::Disable { .. } => Some(FieldKind::Flag),
        Op::Remove { .. } => None,
    }
}

fn kind_name(kind: FieldKind) -> &'static str {
    match kind {
        FieldKind::Register => "a value (set/unset)",
        FieldKind::Counter => "a counter (incr)",
        FieldKind::Set => "a set (add/remove)",
        FieldKind::Flag => "a flag (enable/disable)",
    }
}

/// Refuses with 409 an operation whose type differs from the field it
/// targets in `record`, or that writes a value where a nested map is (or
/// under a value). Operations earlier in `ops` count: `unset` then `set`
/// of another type is fine.
pub fn check_kinds(record: Option<&Record>, ops: &[Op]) -> Result<(), ApiError> {
    let Some(record) = record.filter(|record| record.exists()) else {
        return Ok(());
    };
    let mut removed: Vec<&FieldPath> = Vec::new();
    for op in ops {
        let path = op.path();
        let Some(wanted) = kind_of(op) else {
            removed.push(path);
            continue;
        };
        let gone = |candidate: &FieldPath| removed.iter().any(|r| candidate.starts_with(r));
        let conflict =
            |message: String| ApiError::new(StatusCode::CONFLICT, "field_type_conflict", message);
        for (existing, field) in record.fields() {
            let Some(kind) = field.visible_kind() else {
                continue;
            };
            if gone(existing) {
                continue;
            }
            if existing == path && kind != wanted {
                return Err(conflict(format!(
                    "field {path} is {}, so {} cannot apply; unset it first to change its type",
                    kind_name(kind),
                    kind_name(wanted)
                )));
            }
            if existing != path && existing.starts_with(path) {
                return Err(conflict(format!(
                    "field {path} is a nested object (it holds {existing}); unset it first to replace it"
                )));
            }
            if existing != path && path.starts_with(existing) {
                return Err(conflict(format!(
                    "field {existing} is {}, so it cannot hold {path}; unset it first",
                    kind_name(kind)
                )));
            }
        }
    }
    Ok(())
}
