//! Cluster membership as data: the system collection [`MEMBERS`] maps
//! each node's id to its advertised address and site name.
//!
//! Every node writes its own entry when it starts (and again whenever its
//! address or name changes). The collection replicates through the same
//! push and reconciliation as business records, so membership spreads by
//! gossip: a node that knows one seed learns every other node within one
//! reconciliation. Entries are registers, so a node that moves to a new
//! address wins over its old one by hybrid-clock time. An entry is never
//! removed because a node stops answering: the driver marks the peer
//! down and backs off instead.
//!
//! This module only reads and builds entries; it does no I/O.

use std::net::SocketAddr;

use serde_json::json;
use trellis_crdt::{Record, ReplicaId};
use trellis_store::{Scan, Store};

/// The system collection holding one entry per node.
pub const MEMBERS: &str = "_members";

/// One node of the cluster, as its membership entry says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The node's id (the one its certificate carries).
    pub id: ReplicaId,
    /// Where other nodes reach it.
    pub addr: SocketAddr,
    /// Its site name, for people.
    pub name: String,
}

impl Member {
    /// The entry's key in [`MEMBERS`]: the id in 16 hex digits.
    pub fn key(&self) -> String {
        self.id.to_string()
    }

    /// The entry's fields as the JSON object that is written.
    pub fn to_json(&self) -> serde_json::Value {
        json!({"addr": self.addr.to_string(), "name": self.name})
    }

    /// Reads an entry back from its key and record. `None` if the key is
    /// not an id or the fields are missing or malformed (an entry written
    /// by a newer version, say); callers skip such entries.
    pub fn parse(key: &str, record: &Record) -> Option<Member> {
        if key.len() != 16 {
            return None;
        }
        let id = ReplicaId(u64::from_str_radix(key, 16).ok()?);
        let fields = record.to_json();
        let addr = fields.get("addr")?.as_str()?.parse().ok()?;
        let name = fields.get("name")?.as_str()?.to_owned();
        Some(Member { id, addr, name })
    }
}

/// Every well-formed entry of [`MEMBERS`] in `store`, in id order.
/// Malformed entries are skipped with a warning.
pub fn members(store: &impl Store) -> Vec<Member> {
    let mut found = Vec::new();
    let mut scan = Scan::default();
    loop {
        let page = match store.scan(MEMBERS, &scan) {
            Ok(page) => page,
            Err(err) => {
                tracing::warn!(%err, "cannot read the membership collection");
                return found;
            }
        };
        for (key, record) in &page.records {
            match Member::parse(key, record) {
                Some(member) => found.push(member),
                None => tracing::warn!(key, "skipping a malformed membership entry"),
            }
        }
        match page.next {
            Some(next) => scan.after = Some(next),
            None => return found,
        }
    }
}

/// The entry `store` holds for node `id`, if any and well-formed.
pub fn member(store: &impl Store, id: ReplicaId) -> Option<Member> {
    let key = id.to_string();
    let record = store.get(MEMBERS, &key).ok()??;
    Member::parse(&key, &record)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use trellis_store::{MemStore, Mutation, StoreConfig};

    use super::*;

    fn berlin() -> Member {
        Member {
            id: ReplicaId(0xbe),
            addr: "127.0.0.1:7400".parse().unwrap(),
            name: "berlin".into(),
        }
    }

    #[test]
    fn entries_round_trip_through_the_store() {
        let store = MemStore::new(ReplicaId(1), StoreConfig::default());
        let entry = berlin();
        store
            .apply(MEMBERS, &entry.key(), Mutation::Put(entry.to_json()))
            .wait()
            .unwrap();
        assert_eq!(members(&store), vec![entry.clone()]);
        assert_eq!(member(&store, entry.id), Some(entry));
        assert_eq!(member(&store, ReplicaId(2)), None);
    }

    #[test]
    fn malformed_entries_are_skipped() {
        let store = MemStore::new(ReplicaId(1), StoreConfig::default());
        let bad = [
            ("not-an-id", berlin().to_json()),
            ("00000000000000zz", berlin().to_json()),
            ("0000000000000002", json!({"addr": "nowhere", "name": "x"})),
            ("0000000000000003", json!({"name": "no address"})),
        ];
        for (key, value) in bad {
            store
                .apply(MEMBERS, key, Mutation::Put(value))
                .wait()
                .unwrap();
        }
        let entry = berlin();
        store
            .apply(MEMBERS, &entry.key(), Mutation::Put(entry.to_json()))
            .wait()
            .unwrap();
        assert_eq!(members(&store), vec![entry]);
    }
}
