//! `RedbStore`: the durable store, one redb file per node.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use redb::{Database, ReadableDatabase, ReadableTable};
use trellis_crdt::{wall_clock_millis, HybridClock, ReplicaId, Timestamp};

use crate::clock::SharedClock;
use crate::committer::{self, Message};
use crate::engine::{sealed::Engine, Common};
use crate::feed::decode_batch;
use crate::indexes::Indexes;
use crate::migrate;
use crate::prepare::{prepare, Prepared, Stored};
use crate::redb_tables::{RedbRead, RedbWrite};
use crate::request::Request;
use crate::row::decode_row;
use crate::tables::{meta, meta_u64, ReadTables, WriteTables, FORMAT_VERSION};
use crate::writer::Writer;
use crate::{Limits, Mutation, StoreConfig, StoreError};

/// What the committer thread, readers and writers share.
pub(crate) struct Shared {
    pub db: Database,
    pub common: Common,
    pub clock: SharedClock,
    pub limits: Limits,
    /// Added to the system clock (see [`StoreConfig::clock_offset_ms`]).
    pub clock_offset_ms: i64,
}

impl Shared {
    /// The wall clock the hybrid clock reads.
    pub fn wall_ms(&self) -> u64 {
        crate::config::offset_clock(wall_clock_millis(), self.clock_offset_ms)
    }
}

/// The durable store: records, indexes and change feed in one redb file,
/// written through a group-commit thread.
///
/// ```
/// use trellis_crdt::ReplicaId;
/// use trellis_store::{Mutation, RedbStore, Store, StoreConfig};
///
/// let dir = std::env::temp_dir().join(format!("trellis-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let store = RedbStore::open(dir.join("data.redb"), ReplicaId(7), StoreConfig::default())?;
/// let applied = store
///     .apply("leads", "lead-1", Mutation::Put(serde_json::json!({"name": "Ada"})))
///     .wait()?; // returns once the write is on disk
/// assert_eq!(applied.seq, 1);
/// assert_eq!(store.get("leads", "lead-1")?.unwrap().to_json()["name"], "Ada");
/// # drop(store);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RedbStore {
    shared: Arc<Shared>,
    path: PathBuf,
    inbox: Mutex<Sender<Message>>,
    committer: Mutex<Option<JoinHandle<()>>>,
}

impl RedbStore {
    /// Opens the store in `path`, creating it for `replica` if it does not
    /// exist. Reopening with a different replica id is refused: a data
    /// file belongs to one replica.
    ///
    /// Opening verifies each collection's reconciliation index against its
    /// stored checksum and rebuilds it from the records if they disagree.
    pub fn open(
        path: impl AsRef<Path>,
        replica: ReplicaId,
        config: StoreConfig,
    ) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let unusable = |reason: String| StoreError::Unusable {
            path: path.display().to_string(),
            reason,
        };
        let db = Database::create(&path).map_err(|err| match err {
            redb::DatabaseError::DatabaseAlreadyOpen => {
                unusable("another process has it open; stop that trellis node first".into())
            }
            other => unusable(other.to_string()),
        })?;

        let txn = db.begin_write()?;
        if stored_format(&txn)? == Some(migrate::FROM) {
            migrate::upgrade(&txn)?;
        }
        let (writer, indexes, rebuilt) = {
            let mut tables = RedbWrite::new(&txn)?;
            match meta_u64(&tables, meta::FORMAT)? {
                None => {
                    tables.put_meta(meta::FORMAT, &FORMAT_VERSION.to_le_bytes())?;
                    tables.put_meta(meta::REPLICA_ID, &replica.0.to_le_bytes())?;
                }
                Some(FORMAT_VERSION) => {}
                Some(other) => {
                    return Err(unusable(format!(
                        "data format {other} is not the format {FORMAT_VERSION} this build reads \
                         (or format {} it upgrades); run the build that wrote it, or move the file \
                         aside and start this node empty so that anti-entropy refills it from its \
                         peers",
                        migrate::FROM
                    )))
                }
            }
            let stored = meta_u64(&tables, meta::REPLICA_ID)?.map(ReplicaId);
            if stored != Some(replica) {
                return Err(unusable(format!(
                    "it belongs to replica {}, not {replica}; point this node at its own data directory",
                    stored.map_or_else(|| "unknown".to_owned(), |id| id.to_string())
                )));
            }
            let (indexes, loaded) = Indexes::load(&mut tables)?;
            let writer = writer_from(&tables, replica, &config, loaded.live)?;
            (writer, indexes, (loaded.rebuilt, loaded.corrupt))
        };
        txn.commit()?;

        let shared = Arc::new(Shared {
            db,
            common: Common::new(replica, indexes, writer.last_seq),
            clock: writer.clock.clone(),
            limits: config.limits.clone(),
            clock_offset_ms: config.clock_offset_ms,
        });
        shared.common.counters.rebuilt(rebuilt.0);
        shared.common.counters.corrupt(rebuilt.1);
        let (inbox, receiver) = mpsc::channel();
        let committer = {
            let shared = Arc::clone(&shared);
            let (durability, max_batch) = (config.durability, config.max_batch.max(1));
            std::thread::Builder::new()
                .name("trellis-commit".into())
                .spawn(move || committer::run(shared, writer, receiver, durability, max_batch))
                .map_err(|err| {
                    StoreError::Engine(format!("cannot start the commit thread: {err}"))
                })?
        };
        Ok(RedbStore {
            shared,
            path,
            inbox: Mutex::new(inbox),
            committer: Mutex::new(Some(committer)),
        })
    }

    /// The data file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Commits what is pending, forces it to disk, and stops the commit
    /// thread. Writes submitted afterwards fail with [`StoreError::Closed`].
    /// Dropping the store does the same.
    pub fn close(&self) {
        let _ = self.inbox().send(Message::Shutdown);
        let handle = self
            .committer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }

    /// Computes a local write on the caller's thread, against the record
    /// as last committed, so that the commit thread only checks that the
    /// record is unchanged and stores the result. `None` if that is not
    /// worth trying (the write fails, or the stored record does not
    /// decode): the commit thread then applies the write itself, with its
    /// usual checks and errors.
    fn prepare(&self, collection: &str, key: &str, mutation: &Mutation) -> Option<Box<Prepared>> {
        let shared = &self.shared;
        shared.limits.check_collection(collection).ok()?;
        shared.limits.check_key(key).ok()?;
        // The in-memory index holds every committed key: a key it lacks
        // needs no read. If a commit races with this, the commit thread
        // sees that the record changed and applies the write afresh.
        let before = if shared.common.indexes.contains(collection, key) {
            let read = RedbRead::new(shared.db.begin_read().ok()?);
            match read.row(collection, key).ok()? {
                None => Stored::Missing,
                Some(row) => {
                    let (entry, record) = decode_row(&row).ok()?;
                    Stored::Present { record, entry }
                }
            }
        } else {
            Stored::Missing
        };
        let time = shared.clock.tick(shared.wall_ms());
        let prepared = prepare(
            &shared.limits,
            shared.common.replica,
            collection,
            key,
            &before,
            mutation,
            time,
        );
        prepared.ok().map(Box::new)
    }

    fn inbox(&self) -> Sender<Message> {
        self.inbox
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// The data format recorded in the file, if any.
fn stored_format(txn: &redb::WriteTransaction) -> Result<Option<u64>, StoreError> {
    let meta = match txn.open_table(crate::redb_tables::META) {
        Ok(meta) => meta,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(err) => return Err(err.into()),
    };
    let value = meta.get(meta::FORMAT)?.map(|value| value.value().to_vec());
    Ok(value
        .and_then(|bytes| <[u8; 8]>::try_from(bytes.as_slice()).ok())
        .map(u64::from_le_bytes))
}

/// The writer's state as persisted: the last sequence number and the
/// clock's high-water mark come from the last change-feed batch.
pub(crate) fn writer_from(
    tables: &impl ReadTables,
    replica: ReplicaId,
    config: &StoreConfig,
    live: std::collections::BTreeMap<String, u64>,
) -> Result<Writer, StoreError> {
    let (last_seq, high_water) = match tables.last_change_batch()? {
        Some((last_seq, row)) => (last_seq, decode_batch(last_seq, &row)?.0),
        None => (0, Timestamp::default()),
    };
    let clock = SharedClock::new(HybridClock::new(config.max_clock_skew).resume_after(high_water));
    let floor = meta_u64(tables, meta::FEED_FLOOR)?.unwrap_or(0);
    let mut writer = Writer::new(replica, clock, last_seq, floor, config);
    writer.live = live;
    writer.quarantined = tables.quarantined_count()?;
    Ok(writer)
}

impl Drop for RedbStore {
    fn drop(&mut self) {
        self.close();
    }
}

// Crate-internal signatures of a sealed trait; see `engine::sealed`.
#[allow(private_interfaces, private_bounds)]
impl Engine for RedbStore {
    fn common(&self) -> &Common {
        &self.shared.common
    }

    fn submit(&self, mut request: Request) {
        if let Request::Apply {
            collection,
            key,
            mutation,
            prepared: prepared @ None,
            ..
        } = &mut request
        {
            *prepared = self.prepare(collection, key, mutation);
        }
        // If the committer is gone, the request (and its completion) is
        // dropped, and the caller's Pending resolves to Closed.
        let _ = self.inbox().send(Message::Write(request));
    }

    fn read<T>(
        &self,
        read: impl FnOnce(&dyn ReadTables) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        read(&RedbRead::new(self.shared.db.begin_read()?))
    }

    fn clock_high_water(&self) -> Timestamp {
        self.shared.clock.last()
    }
}
