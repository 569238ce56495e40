//! The openraft type configuration of the counter group and the node
//! information every member carries.

use std::fmt;
use std::io::Cursor;
use std::net::{Ipv4Addr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::command::{Applied, Proposal};

openraft::declare_raft_types!(
    /// The openraft type configuration of the counter group: proposals in
    /// the log, [`Applied`] results out of the state machine, node ids that
    /// are the sites' [`ReplicaId`](trellis_crdt::ReplicaId)s, and snapshots
    /// held in memory as codec bytes.
    pub CounterRaft:
        D = Proposal,
        R = Applied,
        NodeId = u64,
        Node = PeerAddress,
        Entry = openraft::Entry<CounterRaft>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A log entry of the counter group.
pub type LogEntry = openraft::Entry<CounterRaft>;
/// A log id of the counter group.
pub type CounterLogId = openraft::LogId<u64>;
/// A vote of the counter group.
pub type CounterVote = openraft::Vote<u64>;
/// The membership of the counter group as stored in the log.
pub type CounterMembership = openraft::StoredMembership<u64, PeerAddress>;
/// A snapshot's metadata.
pub type CounterSnapshotMeta = openraft::SnapshotMeta<u64, PeerAddress>;
/// The storage error openraft expects from storage.
pub type RaftStorageError = openraft::StorageError<u64>;

/// Where a member of the counter group listens: the UDP address of its
/// QUIC endpoint. Stored in the replicated membership, so a voter added
/// through [`Counters::add_voter`](crate::Counters::add_voter) is reachable
/// by every member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerAddress {
    /// The node's QUIC endpoint address.
    pub addr: SocketAddr,
}

impl Default for PeerAddress {
    fn default() -> Self {
        PeerAddress {
            addr: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        }
    }
}

impl fmt::Display for PeerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.addr.fmt(f)
    }
}

impl From<SocketAddr> for PeerAddress {
    fn from(addr: SocketAddr) -> Self {
        PeerAddress { addr }
    }
}
