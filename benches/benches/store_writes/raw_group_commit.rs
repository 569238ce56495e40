//! Raw redb behind the smallest group commit that answers each write only
//! once its commit is durable: the baseline that pays for the same
//! concurrent writers as the store does, and for nothing else.
//!
//! Writers send their (key, bytes) to one commit thread over a channel and
//! wait for the answer on a tokio oneshot, as a `RedbStore` writer waits on
//! its `Pending`. The commit thread takes every write waiting (up to the
//! store's default batch limit), inserts them into one table in one
//! `Durability::Immediate` transaction, commits, and then answers them
//! itself. There is no record logic, no index, no change feed and no ack
//! thread: what the store adds to this is what a comparison against it
//! measures.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use redb::Database;
use tokio::sync::oneshot;

use super::RECORDS;

/// One write on its way to the commit thread.
struct RawWrite {
    key: String,
    value: Vec<u8>,
    done: oneshot::Sender<()>,
}

/// Raw redb with a commit thread that batches concurrent writers.
pub struct RawGroupCommit {
    inbox: Option<Sender<RawWrite>>,
    writes: Arc<AtomicU64>,
    commits: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl RawGroupCommit {
    /// Starts the commit thread over `db`. A transaction holds at most
    /// as many writes as the store's default batch limit.
    pub fn start(db: Database) -> Self {
        let max_batch = trellis_store::StoreConfig::default().max_batch;
        let (inbox, queue) = mpsc::channel();
        let writes = Arc::new(AtomicU64::new(0));
        let commits = Arc::new(AtomicU64::new(0));
        let thread = {
            let (writes, commits) = (Arc::clone(&writes), Arc::clone(&commits));
            std::thread::Builder::new()
                .name("raw-commit".into())
                .spawn(move || commit_loop(&db, &queue, max_batch, &writes, &commits))
                .expect("the raw commit thread starts")
        };
        RawGroupCommit {
            inbox: Some(inbox),
            writes,
            commits,
            thread: Some(thread),
        }
    }

    /// Queues a write; the receiver resolves once its commit is durable.
    pub fn write(&self, key: String, value: Vec<u8>) -> oneshot::Receiver<()> {
        let (done, answer) = oneshot::channel();
        self.inbox
            .as_ref()
            .expect("the commit thread runs until drop")
            .send(RawWrite { key, value, done })
            .expect("the raw commit thread is running");
        answer
    }

    /// Writes committed and transactions committed so far.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.writes.load(Ordering::Acquire),
            self.commits.load(Ordering::Acquire),
        )
    }
}

impl Drop for RawGroupCommit {
    fn drop(&mut self) {
        drop(self.inbox.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Commits batches until every sender is gone.
fn commit_loop(
    db: &Database,
    queue: &Receiver<RawWrite>,
    max_batch: usize,
    writes: &AtomicU64,
    commits: &AtomicU64,
) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match queue.try_recv() {
                Ok(write) => batch.push(write),
                Err(_) => break,
            }
        }
        let mut txn = db.begin_write().expect("redb begins a write");
        txn.set_durability(redb::Durability::Immediate)
            .expect("redb takes the durability");
        {
            let mut table = txn.open_table(RECORDS).expect("redb opens the table");
            for write in &batch {
                table
                    .insert(write.key.as_str(), write.value.as_slice())
                    .expect("redb inserts");
            }
        }
        txn.commit().expect("redb commits");
        writes.fetch_add(batch.len() as u64, Ordering::Release);
        commits.fetch_add(1, Ordering::Release);
        for write in batch {
            let _ = write.done.send(());
        }
    }
}
