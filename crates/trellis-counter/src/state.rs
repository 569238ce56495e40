//! [`CounterState`]: the counters and the idempotency table, and the
//! deterministic rule that applies one [`Proposal`] to them. No I/O: the
//! storage layer persists what [`Changes`] names.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::command::{Applied, CounterValue, Operation, Outcome, Proposal, Rejection};

/// How long the state machine remembers idempotency keys.
///
/// Every replica must use the same values, or replicas could disagree on
/// whether a retry is a duplicate; they are therefore fixed
/// ([`DEDUPE_RETENTION`]), not configured per node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DedupeRetention {
    /// The most keys remembered; the oldest (by log position) is
    /// forgotten first.
    pub max_entries: usize,
    /// Keys older than this, measured with the proposing leaders'
    /// clocks, are forgotten.
    pub max_age_ms: u64,
}

/// The retention in force: 100,000 keys or 24 hours, whichever is
/// reached first.
pub const DEDUPE_RETENTION: DedupeRetention = DedupeRetention {
    max_entries: 100_000,
    max_age_ms: 24 * 60 * 60 * 1000,
};

/// A counter's stored form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter {
    /// Its value.
    pub value: i64,
    /// The lowest value decrements may leave.
    pub min: i64,
}

/// What the state machine remembers about a keyed operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DedupeRecord {
    /// The operation first applied with the key.
    pub operation: Operation,
    /// Its outcome, returned again to retries.
    pub outcome: Outcome,
    /// The log index it was applied at (orders eviction).
    pub applied_at: u64,
    /// The proposing leader's clock (ages the record out).
    pub proposed_at_ms: u64,
}

/// The rows an [`apply`](CounterState::apply) touched, for the storage
/// layer to write in the same transaction.
#[derive(Debug, Default)]
pub struct Changes {
    /// Counters created or changed.
    pub counters: Vec<String>,
    /// Idempotency keys recorded.
    pub keys_recorded: Vec<String>,
    /// Idempotency keys forgotten.
    pub keys_forgotten: Vec<String>,
}

/// The whole replicated state, as a snapshot carries it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateImage {
    /// Every counter, by name.
    pub counters: Vec<(String, Counter)>,
    /// Every remembered idempotency key.
    pub keys: Vec<(String, DedupeRecord)>,
    /// The latest proposal clock seen.
    pub clock_ms: u64,
}

/// The counters and the idempotency table.
#[derive(Debug, Clone)]
pub struct CounterState {
    counters: BTreeMap<String, Counter>,
    keys: HashMap<String, DedupeRecord>,
    key_order: BTreeMap<u64, String>,
    clock_ms: u64,
    retention: DedupeRetention,
}

impl Default for CounterState {
    fn default() -> Self {
        CounterState::new(DEDUPE_RETENTION)
    }
}

impl CounterState {
    /// An empty state keeping idempotency keys for `retention`.
    pub fn new(retention: DedupeRetention) -> CounterState {
        CounterState {
            counters: BTreeMap::new(),
            keys: HashMap::new(),
            key_order: BTreeMap::new(),
            clock_ms: 0,
            retention,
        }
    }

    /// Rebuilds a state from an image (a snapshot or the stored tables).
    pub fn from_image(image: StateImage, retention: DedupeRetention) -> CounterState {
        let mut state = CounterState::new(retention);
        state.counters = image.counters.into_iter().collect();
        for (key, record) in image.keys {
            state.key_order.insert(record.applied_at, key.clone());
            state.keys.insert(key, record);
        }
        state.clock_ms = image.clock_ms;
        state
    }

    /// The whole state, in canonical order.
    pub fn image(&self) -> StateImage {
        let keys = self
            .key_order
            .values()
            .filter_map(|key| Some((key.clone(), self.keys.get(key)?.clone())))
            .collect();
        StateImage {
            counters: self
                .counters
                .iter()
                .map(|(name, counter)| (name.clone(), *counter))
                .collect(),
            keys,
            clock_ms: self.clock_ms,
        }
    }

    /// One counter.
    pub fn get(&self, name: &str) -> Option<CounterValue> {
        self.counters.get(name).map(|counter| CounterValue {
            name: name.to_owned(),
            value: counter.value,
            min: counter.min,
        })
    }

    /// The stored form of one counter.
    pub fn counter(&self, name: &str) -> Option<Counter> {
        self.counters.get(name).copied()
    }

    /// A remembered idempotency key.
    pub fn record(&self, key: &str) -> Option<&DedupeRecord> {
        self.keys.get(key)
    }

    /// The latest proposal clock seen.
    pub fn clock_ms(&self) -> u64 {
        self.clock_ms
    }

    /// Every counter, sorted by name.
    pub fn list(&self) -> Vec<CounterValue> {
        self.counters
            .iter()
            .map(|(name, counter)| CounterValue {
                name: name.clone(),
                value: counter.value,
                min: counter.min,
            })
            .collect()
    }

    /// How many idempotency keys are remembered.
    pub fn remembered_keys(&self) -> usize {
        self.keys.len()
    }

    /// Applies the proposal at log index `index`, noting touched rows in
    /// `changes`.
    pub fn apply(&mut self, index: u64, proposal: &Proposal, changes: &mut Changes) -> Applied {
        self.clock_ms = self.clock_ms.max(proposal.proposed_at_ms);
        let applied = match &proposal.idempotency_key {
            Some(key) => match self.keys.get(key) {
                Some(record) if record.operation == proposal.operation => Applied::Counter {
                    outcome: record.outcome.clone(),
                    replayed: true,
                },
                Some(_) => Applied::Counter {
                    outcome: Err(Rejection::KeyReused),
                    replayed: false,
                },
                None => {
                    let outcome = self.execute(&proposal.operation, changes);
                    let record = DedupeRecord {
                        operation: proposal.operation.clone(),
                        outcome: outcome.clone(),
                        applied_at: index,
                        proposed_at_ms: proposal.proposed_at_ms,
                    };
                    self.key_order.insert(index, key.clone());
                    self.keys.insert(key.clone(), record);
                    changes.keys_recorded.push(key.clone());
                    Applied::Counter {
                        outcome,
                        replayed: false,
                    }
                }
            },
            None => Applied::Counter {
                outcome: self.execute(&proposal.operation, changes),
                replayed: false,
            },
        };
        self.forget_old_keys(changes);
        applied
    }

    /// Forgets keys beyond the retention, oldest first.
    fn forget_old_keys(&mut self, changes: &mut Changes) {
        let horizon = self.clock_ms.saturating_sub(self.retention.max_age_ms);
        while let Some((&index, key)) = self.key_order.first_key_value() {
            let too_many = self.key_order.len() > self.retention.max_entries;
            let too_old = self
                .keys
                .get(key)
                .is_none_or(|record| record.proposed_at_ms < horizon);
            if !too_many && !too_old {
                break;
            }
            if let Some(key) = self.key_order.remove(&index) {
                self.keys.remove(&key);
                changes.keys_recorded.retain(|recorded| recorded != &key);
                changes.keys_forgotten.push(key);
            }
        }
    }

    fn execute(&mut self, operation: &Operation, changes: &mut Changes) -> Outcome {
        let name = operation.name();
        let result = match (operation, self.counters.get(name)) {
            (Operation::Create { initial, min, .. }, None) => {
                if initial < min {
                    Err(Rejection::BelowMinimum { min: *min })
                } else {
                    Ok(Counter {
                        value: *initial,
                        min: *min,
                    })
                }
            }
            (Operation::Create { .. }, Some(existing)) => Err(Rejection::AlreadyExists {
                value: existing.value,
            }),
            (_, None) => Err(Rejection::NotFound),
            (Operation::Increment { by, .. }, Some(counter)) => counter
                .value
                .checked_add(*by)
                .map(|value| Counter { value, ..*counter })
                .ok_or(Rejection::Overflow),
            (Operation::Decrement { by, .. }, Some(counter)) => {
                let available = counter.value.saturating_sub(counter.min).max(0);
                match counter.value.checked_sub(*by) {
                    Some(value) if value >= counter.min => Ok(Counter { value, ..*counter }),
                    _ => Err(Rejection::Insufficient { available }),
                }
            }
            (Operation::Set { value, .. }, Some(counter)) => {
                if *value < counter.min {
                    Err(Rejection::BelowMinimum { min: counter.min })
                } else {
                    Ok(Counter {
                        value: *value,
                        ..*counter
                    })
                }
            }
        };
        let counter = result?;
        self.counters.insert(name.to_owned(), counter);
        changes.counters.push(name.to_owned());
        Ok(CounterValue {
            name: name.to_owned(),
            value: counter.value,
            min: counter.min,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proposal(operation: Operation, key: Option<&str>, at: u64) -> Proposal {
        Proposal {
            operation,
            idempotency_key: key.map(str::to_owned),
            proposed_at_ms: at,
        }
    }

    fn create(name: &str, initial: i64, min: i64) -> Operation {
        Operation::Create {
            name: name.into(),
            initial,
            min,
        }
    }

    fn decrement(name: &str, by: i64) -> Operation {
        Operation::Decrement {
            name: name.into(),
            by,
        }
    }

    fn outcome(applied: Applied) -> Outcome {
        match applied {
            Applied::Counter { outcome, .. } => outcome,
            Applied::Internal => panic!("expected a counter outcome"),
        }
    }

    #[test]
    fn decrement_stops_at_the_minimum_and_reports_what_is_available() {
        let mut state = CounterState::default();
        let mut changes = Changes::default();
        let created = state.apply(1, &proposal(create("stock", 5, 1), None, 0), &mut changes);
        assert_eq!(outcome(created).map(|c| c.value), Ok(5));
        let taken = state.apply(2, &proposal(decrement("stock", 3), None, 0), &mut changes);
        assert_eq!(outcome(taken).map(|c| c.value), Ok(2));
        let refused = state.apply(3, &proposal(decrement("stock", 2), None, 0), &mut changes);
        assert_eq!(
            outcome(refused),
            Err(Rejection::Insufficient { available: 1 })
        );
        assert_eq!(state.get("stock").map(|c| c.value), Some(2));
        let missing = state.apply(4, &proposal(decrement("other", 1), None, 0), &mut changes);
        assert_eq!(outcome(missing), Err(Rejection::NotFound));
        let again = state.apply(5, &proposal(create("stock", 9, 0), None, 0), &mut changes);
        assert_eq!(outcome(again), Err(Rejection::AlreadyExists { value: 2 }));
        let low = state.apply(
            6,
            &proposal(
                Operation::Set {
                    name: "stock".into(),
                    value: 0,
                },
                None,
                0,
            ),
            &mut changes,
        );
        assert_eq!(outcome(low), Err(Rejection::BelowMinimum { min: 1 }));
        let overflow = state.apply(
            7,
            &proposal(
                Operation::Increment {
                    name: "stock".into(),
                    by: i64::MAX,
                },
                None,
                0,
            ),
            &mut changes,
        );
        assert_eq!(outcome(overflow), Err(Rejection::Overflow));
    }

    #[test]
    fn a_key_applies_once_and_replays_its_first_outcome() {
        let mut state = CounterState::default();
        let mut changes = Changes::default();
        state.apply(1, &proposal(create("stock", 10, 0), None, 0), &mut changes);
        let first = state.apply(
            2,
            &proposal(decrement("stock", 4), Some("k"), 0),
            &mut changes,
        );
        let retry = state.apply(
            3,
            &proposal(decrement("stock", 4), Some("k"), 0),
            &mut changes,
        );
        assert_eq!(outcome(first.clone()).map(|c| c.value), Ok(6));
        assert_eq!(
            retry,
            Applied::Counter {
                outcome: outcome(first),
                replayed: true
            }
        );
        assert_eq!(state.get("stock").map(|c| c.value), Some(6));
        let misuse = state.apply(
            4,
            &proposal(decrement("stock", 1), Some("k"), 0),
            &mut changes,
        );
        assert_eq!(outcome(misuse), Err(Rejection::KeyReused));
        assert_eq!(state.get("stock").map(|c| c.value), Some(6));
    }

    #[test]
    fn keys_are_forgotten_by_count_and_by_age() {
        let retention = DedupeRetention {
            max_entries: 3,
            max_age_ms: 1_000,
        };
        let mut state = CounterState::new(retention);
        let mut changes = Changes::default();
        state.apply(1, &proposal(create("c", 0, 0), None, 0), &mut changes);
        let increment = Operation::Increment {
            name: "c".into(),
            by: 1,
        };
        for (i, key) in ["a", "b", "c", "d"].iter().enumerate() {
            state.apply(
                2 + i as u64,
                &proposal(increment.clone(), Some(key), 10),
                &mut changes,
            );
        }
        assert_eq!(state.remembered_keys(), 3);
        assert!(state.record("a").is_none(), "oldest key forgotten by count");
        assert!(changes.keys_forgotten.contains(&"a".to_owned()));
        // Time moves on past the age limit: all older keys go.
        state.apply(
            10,
            &proposal(increment.clone(), Some("e"), 2_000),
            &mut changes,
        );
        assert_eq!(state.remembered_keys(), 1);
        assert!(state.record("e").is_some());
        // A forgotten key applies again.
        let again = state.apply(11, &proposal(increment, Some("b"), 2_000), &mut changes);
        assert!(matches!(
            again,
            Applied::Counter {
                replayed: false,
                ..
            }
        ));
        assert_eq!(state.get("c").map(|c| c.value), Some(6));
    }

    #[test]
    fn images_round_trip() {
        let mut state = CounterState::default();
        let mut changes = Changes::default();
        state.apply(1, &proposal(create("a", 3, 0), Some("x"), 5), &mut changes);
        state.apply(2, &proposal(create("b", 7, 2), None, 6), &mut changes);
        let image = state.image();
        let back = CounterState::from_image(image.clone(), DEDUPE_RETENTION);
        assert_eq!(back.image(), image);
        assert_eq!(back.list(), state.list());
        assert_eq!(back.clock_ms(), 6);
    }
}
