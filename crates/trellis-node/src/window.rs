//! Is the node meeting its consistency window? For each peer, how old
//! the newest guaranteed-complete picture of its data here is, against
//! the window in force.
//!
//! A completed reconciliation session with a peer means everything the
//! peer held when the session started is here. So data from that peer is
//! at most `now − start of the last completed session` old; before the
//! first session, the bound is the time since this node started.

use std::time::Duration;

use trellis_crdt::ReplicaId;
use trellis_gossip::driver::{GossipStatus, PeerInfo};

use crate::config::ConsistencySection;

/// How fresh one peer's data is here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Freshness {
    /// The peer.
    pub peer: ReplicaId,
    /// Its site name, once known.
    pub name: Option<String>,
    /// Data from the peer is at most this old here, in milliseconds.
    pub staleness_ms: u64,
    /// Whether a reconciliation with the peer ever completed.
    pub ever_synced: bool,
    /// The window in force, in milliseconds.
    pub window_ms: u64,
    /// The collection whose window that is (`None`: the global window).
    pub window_of: Option<String>,
    /// Whether the link to the peer is up.
    pub linked: bool,
}

impl Freshness {
    /// Whether the peer's data is within the window.
    pub fn within(&self) -> bool {
        self.staleness_ms <= self.window_ms
    }

    /// The peer as people call it.
    pub fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.peer.to_string())
    }

    /// One sentence for people: "data from lisbon is at most 1.2 s old
    /// here".
    pub fn sentence(&self) -> String {
        let age = Duration::from_millis(self.staleness_ms).as_secs_f64();
        let mut text = format!("data from {} is at most {age:.1} s old here", self.label());
        if !self.ever_synced {
            text.push_str(" (no reconciliation completed since this node started)");
        }
        if !self.within() {
            let window = Duration::from_millis(self.window_ms).as_secs_f64();
            let scope = self.window_of.as_deref().map_or_else(
                || "the consistency window".to_owned(),
                |c| format!("the {c} window"),
            );
            text.push_str(&format!(", beyond {scope} of {window:.0} s"));
            if !self.linked {
                text.push_str("; the peer is unreachable");
            }
        }
        text
    }
}

fn assess_peer(
    peer: &PeerInfo,
    window: Duration,
    window_of: Option<&str>,
    now_ms: u64,
    started_ms: u64,
) -> Freshness {
    let synced_at = peer.stats.last_reconciled_ms;
    Freshness {
        peer: peer.id,
        name: peer.member.as_ref().map(|member| member.name.clone()),
        staleness_ms: now_ms.saturating_sub(synced_at.unwrap_or(started_ms)),
        ever_synced: synced_at.is_some(),
        window_ms: window.as_millis() as u64,
        window_of: window_of.map(str::to_owned),
        linked: peer.linked,
    }
}

/// Every peer's freshness, in id order. Peers are the cluster's members
/// and nodes heard from; a site that left is still counted until its
/// membership entry is gone, so a site cut off for longer than the window
/// shows.
pub fn assess(
    status: &GossipStatus,
    windows: &ConsistencySection,
    now_ms: u64,
    started_ms: u64,
) -> Vec<Freshness> {
    let (window, window_of) = windows.tightest();
    status
        .peers
        .iter()
        .map(|peer| assess_peer(peer, window, window_of, now_ms, started_ms))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use trellis_gossip::node::PeerStats;
    use trellis_net::PeerStatus;

    use super::*;

    fn peer(id: u64, last: Option<u64>, linked: bool) -> PeerInfo {
        PeerInfo {
            id: ReplicaId(id),
            member: None,
            linked,
            status: PeerStatus::Unknown,
            stats: PeerStats {
                last_reconciled_ms: last,
                ..PeerStats::default()
            },
        }
    }

    #[test]
    fn staleness_runs_from_the_last_completed_session() {
        let status = GossipStatus {
            peers: vec![peer(1, Some(90_000), true), peer(2, None, false)],
            ..GossipStatus::default()
        };
        let windows = ConsistencySection {
            window: Duration::from_secs(300),
            collections: BTreeMap::from([("leads".to_owned(), Duration::from_secs(60))]),
        };
        let seen = assess(&status, &windows, 100_000, 30_000);
        assert_eq!(seen[0].staleness_ms, 10_000);
        assert!(seen[0].within());
        assert_eq!(seen[0].window_of.as_deref(), Some("leads"));
        // Never synced: counted from this node's start.
        assert_eq!(seen[1].staleness_ms, 70_000);
        assert!(!seen[1].within());
        let sentence = seen[1].sentence();
        assert!(
            sentence.contains("beyond the leads window of 60 s"),
            "{sentence}"
        );
        assert!(sentence.contains("unreachable"), "{sentence}");
    }
}
