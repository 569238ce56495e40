//! The layout of a node's data directory and its identity file.
//!
//! ```text
//! DIR/identity.toml   site name and replica id (`trellis init`)
//! DIR/records.redb    the record store
//! DIR/counters/       the counter store
//! DIR/tls/ca.pem      the cluster CA certificate (`trellis cert node`)
//! DIR/tls/node.pem    this node's certificate
//! DIR/tls/node.key    its private key
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use trellis_crdt::ReplicaId;
use trellis_net::{ClusterTrust, NodeIdentity};

use crate::NodeError;

/// A node's data directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataDir {
    root: PathBuf,
}

/// What `identity.toml` holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// The site's name, for people.
    pub name: String,
    /// The replica id, 16 hex digits; the node certificate carries it.
    pub id: String,
}

impl Identity {
    /// The replica id.
    pub fn replica_id(&self) -> Result<ReplicaId, NodeError> {
        u64::from_str_radix(&self.id, 16)
            .ok()
            .filter(|id| *id != 0 && self.id.len() == 16)
            .map(ReplicaId)
            .ok_or_else(|| NodeError::Setup(format!(
                "identity.toml: id {:?} is not 16 hex digits; the file is damaged, restore it from backup",
                self.id
            )))
    }
}

impl DataDir {
    /// The directory at `root` (not checked).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DataDir { root: root.into() }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The identity file.
    pub fn identity_file(&self) -> PathBuf {
        self.root.join("identity.toml")
    }

    /// The record store.
    pub fn records(&self) -> PathBuf {
        self.root.join("records.redb")
    }

    /// The counter store's directory.
    pub fn counters(&self) -> PathBuf {
        self.root.join("counters")
    }

    /// The certificate directory.
    pub fn tls(&self) -> PathBuf {
        self.root.join("tls")
    }

    /// The cluster CA certificate.
    pub fn ca_cert(&self) -> PathBuf {
        self.tls().join("ca.pem")
    }

    /// This node's certificate.
    pub fn node_cert(&self) -> PathBuf {
        self.tls().join("node.pem")
    }

    /// This node's private key.
    pub fn node_key(&self) -> PathBuf {
        self.tls().join("node.key")
    }

    /// Creates the directory and its identity for the site `name`, with a
    /// fresh random replica id. Refuses a directory that already has an
    /// identity: a replica id must never be reused by two nodes.
    pub fn init(&self, name: &str) -> Result<Identity, NodeError> {
        check_site_name(name)?;
        if self.identity_file().exists() {
            return Err(NodeError::Setup(format!(
                "{} already holds a node identity; use another directory for a new node",
                self.root.display()
            )));
        }
        std::fs::create_dir_all(self.tls()).map_err(|err| {
            NodeError::Setup(format!("cannot create {}: {err}", self.tls().display()))
        })?;
        let id =
            trellis_net::random_replica_id().map_err(|err| NodeError::Setup(err.to_string()))?;
        let identity = Identity {
            name: name.to_owned(),
            id: id.to_string(),
        };
        let text = toml::to_string(&identity)
            .map_err(|err| NodeError::Setup(format!("cannot write the identity: {err}")))?;
        std::fs::write(self.identity_file(), text).map_err(|err| {
            NodeError::Setup(format!(
                "cannot write {}: {err}",
                self.identity_file().display()
            ))
        })?;
        Ok(identity)
    }

    /// Reads the identity `trellis init` wrote.
    pub fn identity(&self) -> Result<Identity, NodeError> {
        let path = self.identity_file();
        let text = std::fs::read_to_string(&path).map_err(|err| {
            NodeError::Setup(format!(
                "cannot read {}: {err}; run `trellis init --data {} --name SITE` first",
                path.display(),
                self.root.display()
            ))
        })?;
        let identity: Identity = toml::from_str(&text)
            .map_err(|err| NodeError::Setup(format!("{} is damaged: {err}", path.display())))?;
        identity.replica_id()?;
        Ok(identity)
    }

    /// The node certificate and key, and the CA to trust, checking that
    /// the certificate is for this directory's replica id.
    pub fn tls_material(&self) -> Result<(NodeIdentity, ClusterTrust), NodeError> {
        let identity = self.identity()?;
        let hint = format!(
            "; issue it with `trellis cert node --ca-dir CA_DIR --data {}`",
            self.root.display()
        );
        let node = NodeIdentity::load(&self.node_cert(), &self.node_key())
            .map_err(|err| NodeError::Setup(format!("{err}{hint}")))?;
        let trust = ClusterTrust::load(&self.ca_cert())
            .map_err(|err| NodeError::Setup(format!("{err}{hint}")))?;
        let id = identity.replica_id()?;
        if node.id() != id {
            return Err(NodeError::Setup(format!(
                "{} is for node {} but this data directory is node {id}{hint}",
                self.node_cert().display(),
                node.id()
            )));
        }
        Ok((node, trust))
    }
}

/// Site names: 1 to 63 characters of `a-z`, `0-9` and `-`.
pub fn check_site_name(name: &str) -> Result<(), NodeError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(NodeError::Setup(format!(
            "site name {name:?}: use 1 to 63 characters from a-z, 0-9 and '-', e.g. \"berlin\""
        )))
    }
}
