//! [`CounterConfig`]: the voters, where the store lives, and the timing of
//! the Raft group.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use trellis_crdt::ReplicaId;

use crate::error::CounterError;

/// Settings of the counter service on one node.
///
/// Every node of the cluster lists the same `voters` (`counter.voters` in
/// the node's configuration). A node that is not among them still serves
/// counter calls by forwarding them to the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterConfig {
    /// The voter sites that start the group: 1, 3 or 5 of them, each with
    /// the address of its QUIC endpoint. Only used to initialise a fresh
    /// group and to find it from a non-member; once the group runs, its
    /// membership lives in the Raft log and changes with
    /// [`add_voter`](crate::Counters::add_voter) and
    /// [`remove_voter`](crate::Counters::remove_voter).
    pub voters: BTreeMap<ReplicaId, SocketAddr>,
    /// The directory holding the counter store (`raft-log.redb` and
    /// `state.redb`). Created if missing.
    pub data_dir: PathBuf,
    /// The longest a counter call may take before it fails with
    /// [`CounterError::NoQuorum`]. Default 5 s.
    pub request_timeout: Duration,
    /// How often the leader sends heartbeats. Default 250 ms.
    pub heartbeat_interval: Duration,
    /// A follower that hears no heartbeat for between this and twice this
    /// starts an election. Must exceed `heartbeat_interval`. Default 1.5 s.
    pub election_timeout: Duration,
    /// A snapshot is taken after this many log entries since the last one,
    /// and the log before it is purged. Default 5,000.
    pub snapshot_every: u64,
    /// Log entries kept before the snapshot point, so a briefly lagging
    /// follower catches up from the log rather than a snapshot. Default
    /// 1,000.
    pub keep_log_entries: u64,
}

impl CounterConfig {
    /// A configuration with the default timing for the given voters and
    /// data directory.
    pub fn new(voters: BTreeMap<ReplicaId, SocketAddr>, data_dir: impl Into<PathBuf>) -> Self {
        CounterConfig {
            voters,
            data_dir: data_dir.into(),
            request_timeout: Duration::from_secs(5),
            heartbeat_interval: Duration::from_millis(250),
            election_timeout: Duration::from_millis(1500),
            snapshot_every: 5_000,
            keep_log_entries: 1_000,
        }
    }

    /// Checks the values, naming the first that is unusable.
    pub fn validate(&self) -> Result<(), CounterError> {
        let fail = |msg: String| Err(CounterError::Config(msg));
        if ![1, 3, 5].contains(&self.voters.len()) {
            return fail(format!(
                "counter.voters lists {} sites; list 1, 3 or 5 voter sites (an odd number, \
                 so a majority survives the loss of a minority)",
                self.voters.len()
            ));
        }
        if self.request_timeout.is_zero() {
            return fail("request_timeout must be non-zero".into());
        }
        if self.heartbeat_interval.is_zero() {
            return fail("heartbeat_interval must be non-zero".into());
        }
        if self.election_timeout <= self.heartbeat_interval * 2 {
            return fail(format!(
                "election_timeout {:?} must be more than twice heartbeat_interval {:?}",
                self.election_timeout, self.heartbeat_interval
            ));
        }
        if self.snapshot_every == 0 {
            return fail("snapshot_every must be at least 1".into());
        }
        Ok(())
    }

    /// The openraft configuration these settings stand for.
    pub(crate) fn raft_config(&self) -> Result<openraft::Config, CounterError> {
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let election = millis(self.election_timeout);
        openraft::Config {
            cluster_name: "trellis-counter".into(),
            heartbeat_interval: millis(self.heartbeat_interval),
            election_timeout_min: election,
            election_timeout_max: election.saturating_mul(2),
            install_snapshot_timeout: millis(self.request_timeout),
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_every),
            max_in_snapshot_log_to_keep: self.keep_log_entries,
            snapshot_max_chunk_size: SNAPSHOT_CHUNK_BYTES,
            ..openraft::Config::default()
        }
        .validate()
        .map_err(|err| CounterError::Config(err.to_string()))
    }
}

/// The size of one InstallSnapshot chunk: well under the transport's
/// frame limit.
const SNAPSHOT_CHUNK_BYTES: u64 = 1 << 20;
