//! The redb tables of the counter store and the byte limits used to read
//! them back. Every value is a [`trellis_crdt::codec`] encoding.

use redb::TableDefinition;

/// The Raft log: log index → encoded entry.
pub(crate) const LOG: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("raft_log");

/// Raft bookkeeping: [`VOTE`] and [`LAST_PURGED`].
pub(crate) const RAFT_META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("raft_meta");

/// The counters: name → encoded [`Counter`](crate::state::Counter).
pub(crate) const COUNTERS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("counters");

/// The idempotency table: key → encoded
/// [`DedupeRecord`](crate::state::DedupeRecord).
pub(crate) const KEYS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("idempotency_keys");

/// State machine bookkeeping: [`LAST_APPLIED`], [`MEMBERSHIP`], [`CLOCK`].
pub(crate) const STATE_META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("state_meta");

/// The current snapshot: [`SNAPSHOT_META`] and [`SNAPSHOT_DATA`].
pub(crate) const SNAPSHOT: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("snapshot");

/// Row of [`RAFT_META`]: the last vote.
pub(crate) const VOTE: &str = "vote";
/// Row of [`RAFT_META`]: the id of the last purged log entry.
pub(crate) const LAST_PURGED: &str = "last_purged";
/// Row of [`STATE_META`]: the id of the last applied log entry.
pub(crate) const LAST_APPLIED: &str = "last_applied";
/// Row of [`STATE_META`]: the last applied membership.
pub(crate) const MEMBERSHIP: &str = "membership";
/// Row of [`STATE_META`]: the latest proposal clock.
pub(crate) const CLOCK: &str = "clock";
/// Row of [`SNAPSHOT`]: the snapshot's metadata.
pub(crate) const SNAPSHOT_META: &str = "meta";
/// Row of [`SNAPSHOT`]: the snapshot's bytes.
pub(crate) const SNAPSHOT_DATA: &str = "data";

/// The largest log entry or table row read back: 1 MiB. Entries hold one
/// operation (a name of at most 256 bytes and a key of at most 128) or a
/// membership.
pub(crate) const MAX_ROW_BYTES: usize = 1 << 20;

/// The largest snapshot read back or accepted from a leader: 1 GiB.
pub const MAX_SNAPSHOT_BYTES: usize = 1 << 30;
