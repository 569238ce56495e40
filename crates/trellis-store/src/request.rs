//! Write requests and how a batch of them is handled, whatever the
//! tables.

use trellis_crdt::Record;

use crate::pending::Completion;
use crate::prepare::Prepared;
use crate::tables::WriteTables;
use crate::writer::{Effects, Writer};
use crate::{Applied, Merged, Mutation, Origin, StoreError};

/// One write waiting for its batch.
pub(crate) enum Request {
    /// A local mutation.
    Apply {
        collection: String,
        key: String,
        mutation: Mutation,
        /// The mutation computed on the writer's thread, if it was.
        prepared: Option<Box<Prepared>>,
        done: Completion<Applied>,
    },
    /// A remote delta or state.
    Merge {
        collection: String,
        key: String,
        state: Record,
        origin: Origin,
        done: Completion<Merged>,
    },
    /// A reader found this record undecodable: quarantine it.
    Recheck { collection: String, key: String },
}

/// A request's result, held until its batch commits.
pub(crate) enum Outcome {
    /// A local mutation's result, and the mutation itself: it is freed
    /// where the outcome is delivered, which for a large batch is off the
    /// commit thread (a document is many small allocations, made on the
    /// writer's thread).
    Applied(Completion<Applied>, Result<Applied, StoreError>, Mutation),
    Merged(Completion<Merged>, Result<Merged, StoreError>),
    Rechecked(Result<(), StoreError>),
}

impl Request {
    /// Runs the request inside the current batch.
    pub fn run(
        self,
        writer: &mut Writer,
        tables: &mut impl WriteTables,
        wall_ms: u64,
        effects: &mut Effects,
    ) -> Outcome {
        match self {
            Request::Apply {
                collection,
                key,
                mutation,
                prepared,
                done,
            } => {
                let result = match prepared {
                    Some(prepared) => writer.apply_prepared(
                        tables,
                        &collection,
                        &key,
                        &mutation,
                        *prepared,
                        wall_ms,
                        effects,
                    ),
                    None => writer.apply(tables, &collection, &key, &mutation, wall_ms, effects),
                };
                Outcome::Applied(done, result, mutation)
            }
            Request::Merge {
                collection,
                key,
                state,
                origin,
                done,
            } => {
                let result =
                    writer.merge(tables, &collection, &key, state, origin, wall_ms, effects);
                Outcome::Merged(done, result)
            }
            Request::Recheck { collection, key } => {
                Outcome::Rechecked(writer.recheck(tables, &collection, &key, effects))
            }
        }
    }
}

impl Outcome {
    /// Delivers the result: the request's own, or `batch_error` if the
    /// batch failed to commit.
    pub fn deliver(self, batch_error: Option<&StoreError>) {
        match self {
            Outcome::Applied(done, result, mutation) => {
                let _ = done.send(batch_error.map_or(result, |err| Err(err.clone())));
                drop(mutation);
            }
            Outcome::Merged(done, result) => {
                let _ = done.send(batch_error.map_or(result, |err| Err(err.clone())));
            }
            Outcome::Rechecked(result) => {
                if let Some(err) = batch_error.cloned().or(result.err()) {
                    tracing::warn!(%err, "quarantining a corrupt record failed; it will be retried on its next read");
                }
            }
        }
    }
}
