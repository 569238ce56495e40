//! Writes with a wait level: a write is always durable here before it is
//! answered; `majority`, `all` or a number also waits (up to a timeout)
//! for that many sites in all to hold it durably, as told by the peers'
//! acknowledgements of its eager push.

use std::collections::BTreeSet;
use std::str::FromStr;
use std::time::Duration;

use trellis_crdt::ReplicaId;
use trellis_gossip::driver::GossipHandle;
use trellis_gossip::membership::members;
use trellis_store::{Applied, Mutation, Store, StoreError};

use crate::causal::CausalToken;

/// How many sites must hold a write before it is answered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WaitLevel {
    /// This site (durable here). The default.
    #[default]
    Local,
    /// More than half of the cluster's sites.
    Majority,
    /// Every site of the cluster.
    All,
    /// This many sites, this one included.
    Sites(usize),
}

impl FromStr for WaitLevel {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "local" => Ok(WaitLevel::Local),
            "majority" => Ok(WaitLevel::Majority),
            "all" => Ok(WaitLevel::All),
            number => number
                .parse::<usize>()
                .ok()
                .filter(|n| *n >= 1)
                .map(WaitLevel::Sites)
                .ok_or_else(|| {
                    format!(
                        "wait={number:?}: use local, majority, all, or a number of sites from 1 up"
                    )
                }),
        }
    }
}

impl WaitLevel {
    /// The number of sites this level needs in a cluster of `sites`, or
    /// why it cannot be met at all.
    pub fn required(self, sites: usize) -> Result<usize, String> {
        match self {
            WaitLevel::Local => Ok(1),
            WaitLevel::Majority => Ok(sites / 2 + 1),
            WaitLevel::All => Ok(sites),
            WaitLevel::Sites(n) if n <= sites => Ok(n),
            WaitLevel::Sites(n) => Err(format!(
                "wait={n}: the cluster has only {sites} sites; use a number up to {sites}, or all"
            )),
        }
    }
}

/// What a write achieved.
#[derive(Clone, Debug, PartialEq)]
pub struct WriteOutcome {
    /// The write, durable here.
    pub applied: Applied,
    /// The token a client passes to `?after=` at another site.
    pub token: CausalToken,
    /// Sites known to hold the write durably, this one included.
    pub sites: usize,
    /// Sites the wait level asked for.
    pub required: usize,
    /// Sites in the cluster (membership entries).
    pub cluster_sites: usize,
}

impl WriteOutcome {
    /// Whether the wait level was met before the timeout.
    pub fn complete(&self) -> bool {
        self.sites >= self.required
    }
}

/// Why a write was not made.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The wait level cannot be met in this cluster.
    #[error("{0}")]
    Level(String),
    /// The store refused the write.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The number of sites in the cluster, this one included: every node in
/// the membership collection or otherwise known to replication (a seed
/// or a node that connected here before its membership entry arrived).
pub async fn cluster_sites<S: Store>(gossip: &GossipHandle<S>) -> usize {
    let store = &**gossip.store();
    let me = store.replica_id();
    let mut sites: BTreeSet<ReplicaId> =
        members(store).into_iter().map(|member| member.id).collect();
    if let Some(status) = gossip.status().await {
        sites.extend(status.peers.iter().map(|peer| peer.id));
    }
    sites.insert(me);
    sites.len()
}

/// Applies `mutation` durably here, then waits up to `timeout` until
/// `level` is met. A write that times out is not rolled back: it stays
/// durable here and reaches the other sites by replication.
pub async fn write<S: Store>(
    gossip: &GossipHandle<S>,
    collection: &str,
    key: &str,
    mutation: Mutation,
    level: WaitLevel,
    timeout: Duration,
) -> Result<WriteOutcome, WriteError> {
    let cluster_sites = cluster_sites(gossip).await;
    let required = level.required(cluster_sites).map_err(WriteError::Level)?;
    let (applied, mut acks) = gossip.apply_tracked(collection, key, mutation).await?;
    let token = CausalToken::of(collection, key, &applied.record);
    let mut holders = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while 1 + holders.len() < required {
        match tokio::time::timeout_at(deadline, acks.recv()).await {
            Ok(Some(peer)) => {
                holders.insert(peer);
            }
            // Timed out, or no more acknowledgements can come.
            Ok(None) | Err(_) => break,
        }
    }
    Ok(WriteOutcome {
        applied,
        token,
        sites: 1 + holders.len(),
        required,
        cluster_sites,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_and_size_against_the_cluster() {
        let level = |text: &str| text.parse::<WaitLevel>();
        assert_eq!(level("local"), Ok(WaitLevel::Local));
        assert_eq!(level("majority").unwrap().required(3), Ok(2));
        assert_eq!(level("majority").unwrap().required(4), Ok(3));
        assert_eq!(level("all").unwrap().required(5), Ok(5));
        assert_eq!(level("2").unwrap().required(3), Ok(2));
        assert!(level("4").unwrap().required(3).is_err());
        for bad in ["0", "-1", "most", ""] {
            assert!(level(bad).is_err(), "{bad:?}");
        }
    }
}
