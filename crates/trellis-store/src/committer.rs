//! The group-commit thread of a [`RedbStore`](crate::RedbStore).
//!
//! Writers send requests over a channel. The committer takes every request
//! waiting (up to `max_batch`), runs them in one redb write transaction,
//! commits it (with fsync under [`Durability::Fsync`]), and only then
//! answers each request (large batches through the ack thread, see
//! [`crate::acker`]). Concurrent writers thus share one fsync.

use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::acker::{Acker, Finished};
use crate::redb_store::Shared;
use crate::redb_tables::RedbWrite;
use crate::request::Request;
use crate::writer::{Effects, Writer};
use crate::{Durability, StoreError};

/// A message to the committer.
pub(crate) enum Message {
    /// A write.
    Write(Request),
    /// Commit what is pending, sync, and stop.
    Shutdown,
}

/// Runs until shutdown or until every sender is gone.
pub(crate) fn run(
    shared: Arc<Shared>,
    mut writer: Writer,
    inbox: Receiver<Message>,
    durability: Durability,
    max_batch: usize,
) {
    let mut unsynced_since: Option<Instant> = None;
    // Dropped on return, after answering every batch handed to it.
    let acker = Acker::start(Arc::clone(&shared));
    loop {
        let first = match (durability, unsynced_since) {
            (Durability::Relaxed { interval }, Some(since)) => {
                let wait = interval.saturating_sub(since.elapsed());
                match inbox.recv_timeout(wait.max(Duration::from_millis(1))) {
                    Ok(message) => message,
                    Err(RecvTimeoutError::Timeout) => {
                        sync(&shared, &mut unsynced_since);
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => Message::Shutdown,
                }
            }
            _ => inbox.recv().unwrap_or(Message::Shutdown),
        };
        let mut stopping = false;
        let mut batch = Vec::new();
        match first {
            Message::Write(request) => batch.push(request),
            Message::Shutdown => stopping = true,
        }
        while !stopping && batch.len() < max_batch {
            match inbox.try_recv() {
                Ok(Message::Write(request)) => batch.push(request),
                Ok(Message::Shutdown) | Err(TryRecvError::Disconnected) => stopping = true,
                Err(TryRecvError::Empty) => break,
            }
        }
        if !batch.is_empty() {
            let durable = match durability {
                Durability::Fsync => true,
                Durability::Relaxed { interval } => {
                    unsynced_since.is_some_and(|since| since.elapsed() >= interval)
                }
            };
            commit_batch(&shared, &mut writer, batch, durable, &acker);
            unsynced_since = if durable {
                None
            } else {
                unsynced_since.or(Some(Instant::now()))
            };
        }
        if stopping {
            if unsynced_since.is_some() {
                sync(&shared, &mut unsynced_since);
            }
            return;
        }
    }
}

/// Runs a batch in one transaction and answers its requests after the
/// commit (or with the commit's error).
fn commit_batch(
    shared: &Shared,
    writer: &mut Writer,
    batch: Vec<Request>,
    durable: bool,
    acker: &Acker,
) {
    let saved = writer.clone();
    let mut effects = Effects::default();
    let mut outcomes = Vec::with_capacity(batch.len());
    let committed = (|| -> Result<(), StoreError> {
        let mut txn = shared.db.begin_write()?;
        txn.set_durability(if durable {
            redb::Durability::Immediate
        } else {
            redb::Durability::None
        })?;
        {
            let mut tables = RedbWrite::new(&txn)?;
            let wall_ms = shared.wall_ms();
            for request in batch {
                outcomes.push(request.run(writer, &mut tables, wall_ms, &mut effects));
            }
            writer.finish(&mut tables, &mut effects)?;
        }
        txn.commit()?;
        Ok(())
    })();
    let result = match committed {
        Ok(()) => Ok((effects, writer.last_seq)),
        Err(err) => {
            tracing::error!(%err, "write batch failed; no write in it was applied");
            *writer = saved;
            Err(err)
        }
    };
    acker.finish(Finished { outcomes, result });
}

/// Forces earlier non-durable commits to disk with an empty durable one.
fn sync(shared: &Shared, unsynced_since: &mut Option<Instant>) {
    let synced = (|| -> Result<(), StoreError> {
        let txn = shared.db.begin_write()?;
        txn.commit()?;
        Ok(())
    })();
    match synced {
        Ok(()) => *unsynced_since = None,
        Err(err) => tracing::error!(%err, "periodic sync failed; retrying"),
    }
}
