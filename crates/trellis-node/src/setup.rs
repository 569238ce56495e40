//! One-time setup: the cluster CA and each node's certificate, as
//! `trellis cert ca` and `trellis cert node` do.

use std::path::{Path, PathBuf};

use trellis_net::ClusterCa;

use crate::{DataDir, NodeError};

/// The CA certificate in a CA directory.
pub fn ca_cert_path(ca_dir: &Path) -> PathBuf {
    ca_dir.join("ca.pem")
}

/// The CA private key in a CA directory. Keep it off the nodes.
pub fn ca_key_path(ca_dir: &Path) -> PathBuf {
    ca_dir.join("ca.key")
}

/// Creates a cluster CA named `cluster` in `ca_dir`. Refuses to replace
/// an existing one: every node certificate hangs off it.
pub fn create_ca(ca_dir: &Path, cluster: &str) -> Result<ClusterCa, NodeError> {
    if ca_cert_path(ca_dir).exists() || ca_key_path(ca_dir).exists() {
        return Err(NodeError::Setup(format!(
            "{} already holds a CA; every node certificate depends on it, so it is never replaced",
            ca_dir.display()
        )));
    }
    std::fs::create_dir_all(ca_dir)
        .map_err(|err| NodeError::Setup(format!("cannot create {}: {err}", ca_dir.display())))?;
    let ca = ClusterCa::generate(cluster).map_err(|err| NodeError::Setup(err.to_string()))?;
    ca.save(&ca_cert_path(ca_dir), &ca_key_path(ca_dir))
        .map_err(|err| NodeError::Setup(err.to_string()))?;
    Ok(ca)
}

/// Issues the certificate of the node whose data directory is `data`,
/// signed by the CA in `ca_dir`, and installs it with the CA certificate
/// in `data/tls/`. `name`, if given, must be the site's name (a guard
/// against issuing into the wrong directory).
pub fn issue_node_cert(ca_dir: &Path, data: &DataDir, name: Option<&str>) -> Result<(), NodeError> {
    let identity = data.identity()?;
    if let Some(name) = name {
        if name != identity.name {
            return Err(NodeError::Setup(format!(
                "{} is site {:?}, not {name:?}; check --data",
                data.root().display(),
                identity.name
            )));
        }
    }
    let ca = ClusterCa::load(&ca_cert_path(ca_dir), &ca_key_path(ca_dir)).map_err(|err| {
        NodeError::Setup(format!(
            "{err}; create the CA with `trellis cert ca --out {}`",
            ca_dir.display()
        ))
    })?;
    let node = ca
        .issue(&identity.name, identity.replica_id()?)
        .map_err(|err| NodeError::Setup(err.to_string()))?;
    std::fs::create_dir_all(data.tls()).map_err(|err| {
        NodeError::Setup(format!("cannot create {}: {err}", data.tls().display()))
    })?;
    node.save(&data.node_cert(), &data.node_key())
        .map_err(|err| NodeError::Setup(err.to_string()))?;
    ca.trust()
        .save(&data.ca_cert())
        .map_err(|err| NodeError::Setup(err.to_string()))?;
    Ok(())
}
