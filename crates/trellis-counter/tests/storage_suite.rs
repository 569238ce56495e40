//! openraft's storage test suite against the redb counter store, plus a
//! reopening check: the vote, the purge point and the applied state are on
//! disk once the calls return.
#![allow(clippy::unwrap_used)]

mod common;

use common::TempDir;
use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftLogReader, StorageError, Vote};
use trellis_counter::storage::{open_store, LogStore, StateMachineStore, LOG_FILE, STATE_FILE};
use trellis_counter::{CounterRaft, Operation, Proposal, DEDUPE_RETENTION};

struct RedbBuilder;

impl StoreBuilder<CounterRaft, LogStore, StateMachineStore, TempDir> for RedbBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError<u64>> {
        let dir = TempDir::new("suite");
        let (log, sm) = open_store(&dir.0, DEDUPE_RETENTION).unwrap();
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite_passes() {
    Suite::test_all(RedbBuilder).unwrap();
}

fn log_id(term: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_state_survives_reopening() {
    let dir = TempDir::new("reopen");
    let path = dir.0.clone();
    let proposal = |operation| Proposal {
        operation,
        idempotency_key: Some("k1".into()),
        proposed_at_ms: 1,
    };
    {
        let (mut log, mut sm) = open_store(&path, DEDUPE_RETENTION).unwrap();
        log.save_vote(&Vote::new(3, 1)).await.unwrap();
        let entries = vec![
            Entry::<CounterRaft> {
                log_id: log_id(3, 1),
                payload: EntryPayload::Normal(proposal(Operation::Create {
                    name: "stock".into(),
                    initial: 10,
                    min: 0,
                })),
            },
            Entry::<CounterRaft> {
                log_id: log_id(3, 2),
                payload: EntryPayload::Blank,
            },
        ];
        sm.apply(entries).await.unwrap();
        log.purge(log_id(3, 2)).await.unwrap();
    }
    let (mut log, mut sm) = open_store(&path, DEDUPE_RETENTION).unwrap();
    assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(3, 1)));
    assert!(log.try_get_log_entries(0..10).await.unwrap().is_empty());
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(3, 2)));
    assert_eq!(state.last_log_id, Some(log_id(3, 2)));
    let (applied, _) = sm.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(3, 2)));
    let shared = sm.shared();
    let state = shared.read();
    assert_eq!(state.get("stock").map(|c| c.value), Some(10));
    assert!(state.record("k1").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_rows_are_errors_not_panics() {
    use redb::{Database, TableDefinition};
    const COUNTERS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("counters");
    const LOG: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("raft_log");

    let dir = TempDir::new("corrupt");
    let path = dir.0.clone();
    drop(open_store(&path, DEDUPE_RETENTION).unwrap());
    {
        let db = Database::create(path.join(LOG_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut log = txn.open_table(LOG).unwrap();
            // A length prefix claiming far more than is there.
            log.insert(1, [1u8, 0xfc, 0xff, 0xff, 0xff, 0x7f].as_slice())
                .unwrap();
        }
        txn.commit().unwrap();
    }
    let (mut log, _sm) = open_store(&path, DEDUPE_RETENTION).unwrap();
    let err = log.try_get_log_entries(0..5).await.unwrap_err();
    assert!(err.to_string().contains("corrupt log entry"), "{err}");
    drop(log);
    drop(_sm);

    {
        let db = Database::create(path.join(STATE_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut counters = txn.open_table(COUNTERS).unwrap();
            counters.insert("stock", [9u8, 1, 2].as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let err = open_store(&path, DEDUPE_RETENTION).unwrap_err();
    assert!(
        err.to_string().contains("corrupt counter") && err.to_string().contains("version 9"),
        "{err}"
    );
}
