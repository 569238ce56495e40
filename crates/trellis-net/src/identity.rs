//! How a node's [`ReplicaId`] is written into, and read back out of, its
//! certificate.
//!
//! # The naming scheme
//!
//! A node certificate carries exactly one DNS subject alternative name of
//! the form
//!
//! ```text
//! <16 lowercase hex digits of the ReplicaId>.node.trellis
//! ```
//!
//! for example `00000000000004d2.node.trellis` for `ReplicaId(1234)`. The
//! `.trellis` top-level domain is not delegated, so the name can never be
//! confused with a real host. Because the id is a DNS name, standard
//! server-name verification does the work when dialing: a client that
//! expects node X asks TLS to verify the name of X, and a server presenting
//! a valid certificate for any other node fails the handshake.
//!
//! The certificate is signed by the cluster CA, so a node cannot claim
//! another node's id: the id is read from the verified certificate
//! ([`peer_id`]), never taken from what the peer says.

use rustls::pki_types::CertificateDer;
use trellis_crdt::ReplicaId;
use x509_parser::extensions::GeneralName;

use crate::error::{CertError, NetError};

/// The domain under which node names live: `<id>.node.trellis`.
pub const NODE_DOMAIN: &str = "node.trellis";

/// The DNS name that stands for node `id` in certificates:
/// `<16 lowercase hex digits>.node.trellis`.
///
/// ```
/// use trellis_crdt::ReplicaId;
/// assert_eq!(trellis_net::node_dns_name(ReplicaId(1234)), "00000000000004d2.node.trellis");
/// ```
pub fn node_dns_name(id: ReplicaId) -> String {
    format!("{:016x}.{NODE_DOMAIN}", id.0)
}

/// Reads a node id back from a DNS name written by [`node_dns_name`].
///
/// Only the exact form is accepted (16 lowercase hex digits, then
/// `.node.trellis`), so each id has one name and each name one id.
pub fn parse_node_dns_name(name: &str) -> Option<ReplicaId> {
    let hex = name.strip_suffix(NODE_DOMAIN)?.strip_suffix('.')?;
    if hex.len() != 16 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok().map(ReplicaId)
}

/// Reads the node id from a DER certificate: the one DNS subject
/// alternative name that [`parse_node_dns_name`] accepts.
///
/// This does **not** verify the certificate; rustls has done that by the
/// time a connection exists. Use [`peer_id`] on connections.
pub fn node_id_from_certificate(cert: &CertificateDer<'_>) -> Result<ReplicaId, CertError> {
    let (_, parsed) =
        x509_parser::parse_x509_certificate(cert.as_ref()).map_err(|err| CertError::Parse {
            what: "node certificate",
            reason: err.to_string(),
        })?;
    let san = parsed
        .subject_alternative_name()
        .map_err(|err| CertError::Parse {
            what: "node certificate",
            reason: format!("bad subject alternative name extension: {err}"),
        })?
        .ok_or(CertError::NoNodeId)?;
    let mut found = Vec::new();
    for name in &san.value.general_names {
        if let GeneralName::DNSName(dns) = name {
            if let Some(id) = parse_node_dns_name(dns) {
                found.push((id, (*dns).to_owned()));
            }
        }
    }
    match found.len() {
        0 => Err(CertError::NoNodeId),
        1 => Ok(found[0].0),
        _ => Err(CertError::AmbiguousNodeId {
            names: found.into_iter().map(|(_, name)| name).collect(),
        }),
    }
}

/// The verified node id of the peer on an established connection, read
/// from the certificate it presented in the mutual-TLS handshake.
///
/// Works on both sides: a client learns the server's id, a server the
/// client's. The gossip layer compares it with the id a peer claims in its
/// hello.
pub fn peer_id(connection: &quinn::Connection) -> Result<ReplicaId, NetError> {
    let identity = connection
        .peer_identity()
        .ok_or(NetError::NoPeerCertificate)?;
    let chain = identity
        .downcast::<Vec<CertificateDer<'static>>>()
        .map_err(|_| NetError::NoPeerCertificate)?;
    let end_entity = chain.first().ok_or(NetError::NoPeerCertificate)?;
    node_id_from_certificate(end_entity).map_err(NetError::PeerIdentity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for id in [0, 1, 0x04d2, u64::MAX, 0x0123_4567_89ab_cdef] {
            let name = node_dns_name(ReplicaId(id));
            assert_eq!(name.len(), 16 + 1 + NODE_DOMAIN.len());
            assert_eq!(parse_node_dns_name(&name), Some(ReplicaId(id)));
        }
    }

    #[test]
    fn only_the_exact_form_parses() {
        for bad in [
            "",
            "node.trellis",
            ".node.trellis",
            "4d2.node.trellis",
            "00000000000004D2.node.trellis",
            "00000000000004d2.node.trellis.",
            "00000000000004d2.node.trellis.example",
            "000000000000004d2.node.trellis",
            "+0000000000004d2.node.trellis",
            "00000000000004d2node.trellis",
            "x.00000000000004d2.node.trellis",
            "00000000000004d2.other.trellis",
        ] {
            assert_eq!(parse_node_dns_name(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        let err = node_id_from_certificate(&CertificateDer::from(vec![0x30, 0x03, 1, 2, 3]))
            .expect_err("garbage");
        assert!(matches!(err, CertError::Parse { .. }), "{err}");
    }
}
