//! rustls configurations for mutual TLS against the cluster CA, on the
//! *ring* provider and TLS 1.3 only (QUIC requires it).
//!
//! - Servers require a client certificate that chains to the cluster CA
//!   (`WebPkiClientVerifier`). The client's node id is read from it later
//!   ([`peer_id`](crate::peer_id)).
//! - Clients dialing an expected node verify the server certificate
//!   against the CA *and* the DNS name of that node, so a server with a
//!   valid certificate for another node fails the handshake.
//! - Clients dialing "any node" (a seed address whose id is not known yet)
//!   verify against the CA and the node name found in the certificate
//!   itself ([`AnyNodeVerifier`]); the id is then taken from the
//!   certificate.
//!
//! Session resumption and 0-RTT are off: every connection is a full
//! handshake that verifies the current certificate.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::certs::{ClusterTrust, NodeIdentity};
use crate::error::NetError;
use crate::identity::{node_dns_name, node_id_from_certificate};

/// Which server certificates a client accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum ServerCheck {
    /// Only the node whose DNS name is the server name dialed.
    Expected,
    /// Any node of the cluster.
    AnyNode,
}

/// The TLS material of one node, from which server and client configs are
/// built.
#[derive(Debug)]
pub(crate) struct TlsContext {
    provider: Arc<CryptoProvider>,
    roots: Arc<RootCertStore>,
    identity: NodeIdentity,
}

fn tls_err(what: &str) -> impl Fn(rustls::Error) -> NetError + '_ {
    move |err| NetError::Tls(format!("{what}: {err}"))
}

impl TlsContext {
    /// Loads the trust anchors and checks that this node's own certificate
    /// verifies against them, so a misissued certificate fails at start-up
    /// with a clear message rather than in every handshake.
    pub(crate) fn new(
        identity: NodeIdentity,
        trust: &ClusterTrust,
    ) -> Result<TlsContext, NetError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for cert in trust.certificates() {
            roots.add(cert.clone()).map_err(|err| {
                NetError::Tls(format!(
                    "the cluster CA certificate is not a usable trust anchor: {err}"
                ))
            })?;
        }
        let context = TlsContext {
            provider,
            roots: Arc::new(roots),
            identity,
        };
        context.check_own_certificate()?;
        Ok(context)
    }

    fn server_verifier(&self) -> Result<Arc<WebPkiServerVerifier>, NetError> {
        WebPkiServerVerifier::builder_with_provider(self.roots.clone(), self.provider.clone())
            .build()
            .map_err(|err| NetError::Tls(format!("cannot verify servers: {err}")))
    }

    fn check_own_certificate(&self) -> Result<(), NetError> {
        let chain = self.identity.cert_chain();
        let name = server_name(&node_dns_name(self.identity.id()))?;
        self.server_verifier()?
            .verify_server_cert(&chain[0], &chain[1..], &name, &[], UnixTime::now())
            .map_err(|err| {
                NetError::Tls(format!(
                    "this node's certificate (node {}) does not verify against the cluster CA: {err}; \
                     issue it with this cluster's CA (`trellis cert node`) or fix the CA file",
                    self.identity.id()
                ))
            })?;
        Ok(())
    }

    /// The server side: client certificates required, `protocols` offered.
    pub(crate) fn server_config(
        &self,
        protocols: Vec<Vec<u8>>,
    ) -> Result<rustls::ServerConfig, NetError> {
        let client_verifier =
            WebPkiClientVerifier::builder_with_provider(self.roots.clone(), self.provider.clone())
                .build()
                .map_err(|err| NetError::Tls(format!("cannot verify clients: {err}")))?;
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(tls_err("TLS 1.3 unavailable"))?
            .with_client_cert_verifier(client_verifier)
            .with_single_cert(
                self.identity.cert_chain().to_vec(),
                self.identity.private_key(),
            )
            .map_err(tls_err("this node's certificate or key is unusable"))?;
        config.alpn_protocols = protocols;
        config.session_storage = Arc::new(NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
        Ok(config)
    }

    /// The client side for one protocol.
    pub(crate) fn client_config(
        &self,
        protocol: &[u8],
        check: ServerCheck,
    ) -> Result<rustls::ClientConfig, NetError> {
        let builder = rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(tls_err("TLS 1.3 unavailable"))?;
        let verifier = self.server_verifier()?;
        let builder = match check {
            ServerCheck::Expected => builder.with_webpki_verifier(verifier),
            ServerCheck::AnyNode => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyNodeVerifier { inner: verifier })),
        };
        let mut config = builder
            .with_client_auth_cert(
                self.identity.cert_chain().to_vec(),
                self.identity.private_key(),
            )
            .map_err(tls_err("this node's certificate or key is unusable"))?;
        config.alpn_protocols = vec![protocol.to_vec()];
        config.resumption = Resumption::disabled();
        config.enable_early_data = false;
        Ok(config)
    }
}

/// The name a client puts in its handshake when dialing any node; servers
/// ignore it (each has one certificate).
pub(crate) const ANY_NODE_SERVER_NAME: &str = "any.node.trellis";

pub(crate) fn server_name(name: &str) -> Result<ServerName<'static>, NetError> {
    ServerName::try_from(name.to_owned())
        .map_err(|err| NetError::Tls(format!("{name:?} is not a valid server name: {err}")))
}

/// Verifies a server certificate against the cluster CA and the node name
/// the certificate itself carries: "any node of this cluster".
///
/// Sound because only the CA can put a node name into a certificate that
/// verifies; the node id the caller learns is still the one the CA signed.
#[derive(Debug)]
struct AnyNodeVerifier {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for AnyNodeVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let id = node_id_from_certificate(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::NotValidForName))?;
        let name = ServerName::try_from(node_dns_name(id))
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::NotValidForName))?;
        self.inner
            .verify_server_cert(end_entity, intermediates, &name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::ClusterCa;
    use trellis_crdt::ReplicaId;

    #[test]
    fn refuses_an_identity_from_another_ca() {
        let ca = ClusterCa::generate("a").expect("ca");
        let other = ClusterCa::generate("b").expect("ca");
        let node = other.issue("x", ReplicaId(1)).expect("issue");
        let err = TlsContext::new(node, &ca.trust()).expect_err("foreign identity");
        assert!(
            err.to_string()
                .contains("does not verify against the cluster CA"),
            "{err}"
        );
    }

    #[test]
    fn builds_configs_for_a_good_identity() {
        let ca = ClusterCa::generate("a").expect("ca");
        let node = ca.issue("x", ReplicaId(1)).expect("issue");
        let tls = TlsContext::new(node, &ca.trust()).expect("context");
        let server = tls.server_config(vec![b"p/1".to_vec()]).expect("server");
        assert_eq!(server.alpn_protocols, vec![b"p/1".to_vec()]);
        for check in [ServerCheck::Expected, ServerCheck::AnyNode] {
            let client = tls.client_config(b"p/1", check).expect("client");
            assert_eq!(client.alpn_protocols, vec![b"p/1".to_vec()]);
        }
    }
}
