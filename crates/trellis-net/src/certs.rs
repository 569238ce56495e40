//! The cluster CA, node identities and the trust bundle: creating them
//! with `rcgen`, loading and saving them as PEM.
//!
//! A cluster has one CA ([`ClusterCa`]). It issues each node a certificate
//! ([`NodeIdentity`]) naming the node's [`ReplicaId`] as described in
//! [`identity`](crate::identity), with the site's name as the subject's
//! common name. Every node trusts the CA's certificate
//! ([`ClusterTrust`]) and nothing else. The CA key is needed only to issue
//! certificates; keep it off the nodes.
//!
//! Keys are ECDSA P-256. CA certificates are valid for
//! [`CA_VALIDITY_DAYS`], node certificates for [`NODE_VALIDITY_DAYS`], both
//! starting a day in the past to tolerate clock skew.

use std::fmt;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};
use trellis_crdt::ReplicaId;
use x509_parser::certificate::X509Certificate;

use crate::error::CertError;
use crate::identity::{node_dns_name, node_id_from_certificate};
use crate::pem_file::{in_file, read_pem_file, write_pem_file};

/// How long a cluster CA certificate is valid: 20 years.
pub const CA_VALIDITY_DAYS: i64 = 20 * 365;
/// How long a node certificate is valid: 5 years. Re-issue before then.
pub const NODE_VALIDITY_DAYS: i64 = 5 * 365;
/// The longest cluster or site name: 64 characters (the X.520 limit on a
/// common name).
pub const MAX_NAME_LEN: usize = 64;

const CA_ORGANIZATION: &str = "Trellis cluster CA";
const NODE_ORGANIZATION: &str = "Trellis node";

/// The cluster's certificate authority: its certificate and signing key.
///
/// ```
/// use trellis_crdt::ReplicaId;
/// use trellis_net::ClusterCa;
///
/// let ca = ClusterCa::generate("acme")?;
/// let berlin = ca.issue("berlin", ReplicaId(1))?;
/// assert_eq!(berlin.id(), ReplicaId(1));
/// assert_eq!(berlin.site_name(), "berlin");
///
/// // What the CLI writes to disk and reads back.
/// let again = ClusterCa::from_pem(ca.cert_pem(), ca.key_pem())?;
/// assert_eq!(again.cert_pem(), ca.cert_pem());
/// # Ok::<(), trellis_net::CertError>(())
/// ```
pub struct ClusterCa {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterCa")
            .field("cert_pem", &self.cert_pem)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl ClusterCa {
    /// Creates a new CA for the cluster `cluster_name` (the certificate's
    /// common name; 1 to 64 characters, no control characters).
    pub fn generate(cluster_name: &str) -> Result<ClusterCa, CertError> {
        check_name("cluster name", cluster_name)?;
        let what = "cluster CA certificate";
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(gen_err(what))?;
        params.distinguished_name = distinguished_name(cluster_name, CA_ORGANIZATION);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        set_validity(&mut params, CA_VALIDITY_DAYS);
        let key = KeyPair::generate().map_err(gen_err("cluster CA key"))?;
        let cert = params.self_signed(&key).map_err(gen_err(what))?;
        let cert_der = cert.der().clone();
        // The issuer is read back from the certificate, exactly as for a
        // loaded CA, so both sign identically.
        let key_pem = key.serialize_pem();
        let issuer = Issuer::from_ca_cert_der(&cert_der, key).map_err(gen_err(what))?;
        Ok(ClusterCa {
            cert_pem: pem_of(&cert_der),
            cert_der,
            key_pem,
            issuer,
        })
    }

    /// Loads a CA from its certificate and private key in PEM.
    ///
    /// Checks that the certificate is a CA certificate and that the key
    /// belongs to it.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<ClusterCa, CertError> {
        let what = "cluster CA certificate";
        let cert_der = ca_certificate(cert_pem)?;
        let parsed = parse_certificate(&cert_der, what)?;
        let key = KeyPair::from_pem(key_pem).map_err(key_err("cluster CA key"))?;
        check_key_matches(&parsed, &key, what)?;
        let key_pem = key.serialize_pem();
        let issuer = Issuer::from_ca_cert_der(&cert_der, key).map_err(|err| CertError::Parse {
            what,
            reason: err.to_string(),
        })?;
        Ok(ClusterCa {
            cert_pem: pem_of(&cert_der),
            cert_der,
            key_pem,
            issuer,
        })
    }

    /// Loads a CA from two PEM files; errors name the file at fault.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<ClusterCa, CertError> {
        let cert_pem = read_pem_file(cert_path)?;
        let key_pem = read_pem_file(key_path)?;
        // Check each file on its own first so the error names the right one.
        let cert_der = ca_certificate(&cert_pem).map_err(in_file(cert_path))?;
        KeyPair::from_pem(&key_pem)
            .map_err(key_err("cluster CA key"))
            .map_err(in_file(key_path))?;
        ClusterCa::from_pem(&pem_of(&cert_der), &key_pem).map_err(in_file(key_path))
    }

    /// Writes the certificate and key to two new files (the key readable by
    /// its owner only). Refuses to overwrite existing files.
    pub fn save(&self, cert_path: &Path, key_path: &Path) -> Result<(), CertError> {
        write_pem_file(cert_path, &self.cert_pem, false)?;
        write_pem_file(key_path, &self.key_pem, true)
    }

    /// The CA certificate in PEM: what every node must trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key in PEM (PKCS#8). Keep it secret and off the nodes.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The CA certificate as a [`ClusterTrust`], for the endpoint.
    pub fn trust(&self) -> ClusterTrust {
        ClusterTrust {
            pem: self.cert_pem.clone(),
            certs: vec![self.cert_der.clone()],
        }
    }

    /// Issues a certificate and new key for node `id` at the site
    /// `site_name` (the subject's common name; 1 to 64 characters, no
    /// control characters).
    ///
    /// The certificate names the node as
    /// [`node_dns_name(id)`](crate::node_dns_name) and may be used both as
    /// a TLS server and a TLS client certificate. Issuing the same id twice
    /// gives two valid certificates for that node (e.g. to replace a lost
    /// key); make sure two sites never share an id.
    pub fn issue(&self, site_name: &str, id: ReplicaId) -> Result<NodeIdentity, CertError> {
        check_name("site name", site_name)?;
        let what = "node certificate";
        let mut params = CertificateParams::new(vec![node_dns_name(id)]).map_err(gen_err(what))?;
        params.distinguished_name = distinguished_name(site_name, NODE_ORGANIZATION);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params, NODE_VALIDITY_DAYS);
        let key = KeyPair::generate().map_err(gen_err("node key"))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(gen_err(what))?;
        Ok(NodeIdentity {
            id,
            site_name: site_name.to_owned(),
            cert_pem: pem_of(cert.der()),
            cert_chain: vec![cert.der().clone()],
            key_pem: key.serialize_pem(),
            key_der: key.serialize_der(),
        })
    }
}

/// The CA certificates a node trusts: usually the one cluster CA, or two
/// while the cluster moves to a new CA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterTrust {
    pem: String,
    certs: Vec<CertificateDer<'static>>,
}

impl ClusterTrust {
    /// Reads one or more CA certificates from PEM; each must be a CA.
    pub fn from_pem(pem: &str) -> Result<ClusterTrust, CertError> {
        let what = "CA certificate";
        let certs = certificates(pem, what)?;
        for cert in &certs {
            let parsed = parse_certificate(cert, what)?;
            if !parsed.is_ca() {
                return Err(CertError::NotACa {
                    subject: parsed.subject().to_string(),
                });
            }
        }
        Ok(ClusterTrust {
            pem: certs.iter().map(pem_of).collect(),
            certs,
        })
    }

    /// Reads the trusted CA certificates from a PEM file.
    pub fn load(path: &Path) -> Result<ClusterTrust, CertError> {
        ClusterTrust::from_pem(&read_pem_file(path)?).map_err(in_file(path))
    }

    /// Writes the certificates to a new file. Refuses to overwrite.
    pub fn save(&self, path: &Path) -> Result<(), CertError> {
        write_pem_file(path, &self.pem, false)
    }

    /// The certificates in PEM.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// The certificates in DER.
    pub fn certificates(&self) -> &[CertificateDer<'static>] {
        &self.certs
    }

    /// Adds the CA certificates of `other` (for a CA rotation).
    pub fn extend(&mut self, other: &ClusterTrust) {
        for cert in &other.certs {
            if !self.certs.contains(cert) {
                self.pem.push_str(&pem_of(cert));
                self.certs.push(cert.clone());
            }
        }
    }
}

/// A node's certificate (naming its [`ReplicaId`]) and private key.
#[derive(Clone)]
pub struct NodeIdentity {
    id: ReplicaId,
    site_name: String,
    cert_pem: String,
    cert_chain: Vec<CertificateDer<'static>>,
    key_pem: String,
    key_der: Vec<u8>,
}

impl fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeIdentity")
            .field("id", &self.id)
            .field("site_name", &self.site_name)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl NodeIdentity {
    /// Loads an identity from its certificate chain (the node certificate
    /// first, optionally followed by the CA) and PKCS#8 private key in PEM.
    ///
    /// Checks that the certificate names exactly one node and that the key
    /// belongs to it. Whether it chains to the cluster CA is checked when
    /// the endpoint is built.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<NodeIdentity, CertError> {
        let what = "node certificate";
        let cert_chain = certificates(cert_pem, what)?;
        let parsed = parse_certificate(&cert_chain[0], what)?;
        let id = node_id_from_certificate(&cert_chain[0])?;
        let site_name = parsed
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or_default()
            .to_owned();
        let key = KeyPair::from_pem(key_pem).map_err(key_err("node key"))?;
        check_key_matches(&parsed, &key, what)?;
        Ok(NodeIdentity {
            id,
            site_name,
            cert_pem: cert_chain.iter().map(pem_of).collect(),
            cert_chain,
            key_pem: key.serialize_pem(),
            key_der: key.serialize_der(),
        })
    }

    /// Loads an identity from two PEM files; errors name the file at fault.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<NodeIdentity, CertError> {
        let cert_pem = read_pem_file(cert_path)?;
        let key_pem = read_pem_file(key_path)?;
        let chain = certificates(&cert_pem, "node certificate").map_err(in_file(cert_path))?;
        node_id_from_certificate(&chain[0]).map_err(in_file(cert_path))?;
        KeyPair::from_pem(&key_pem)
            .map_err(key_err("node key"))
            .map_err(in_file(key_path))?;
        NodeIdentity::from_pem(&cert_pem, &key_pem).map_err(in_file(key_path))
    }

    /// Writes the certificate chain and key to two new files (the key
    /// readable by its owner only). Refuses to overwrite existing files.
    pub fn save(&self, cert_path: &Path, key_path: &Path) -> Result<(), CertError> {
        write_pem_file(cert_path, &self.cert_pem, false)?;
        write_pem_file(key_path, &self.key_pem, true)
    }

    /// The node id the certificate names.
    pub fn id(&self) -> ReplicaId {
        self.id
    }

    /// The site name (the certificate subject's common name).
    pub fn site_name(&self) -> &str {
        &self.site_name
    }

    /// The certificate chain in PEM, node certificate first.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The private key in PEM (PKCS#8).
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The certificate chain in DER, node certificate first.
    pub fn cert_chain(&self) -> &[CertificateDer<'static>] {
        &self.cert_chain
    }

    /// The private key for rustls.
    pub(crate) fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }
}

/// A random, non-zero [`ReplicaId`] from the operating system's secure
/// random source, for `trellis cert node` to give a new site.
pub fn random_replica_id() -> Result<ReplicaId, CertError> {
    let random = rustls::crypto::ring::default_provider().secure_random;
    loop {
        let mut bytes = [0u8; 8];
        random.fill(&mut bytes).map_err(|_| CertError::Generate {
            what: "replica id",
            reason: "the operating system's random source failed".into(),
        })?;
        let id = u64::from_le_bytes(bytes);
        if id != 0 {
            return Ok(ReplicaId(id));
        }
    }
}

fn check_name(what: &'static str, name: &str) -> Result<(), CertError> {
    let invalid = |reason| CertError::InvalidName {
        what,
        name: name.to_owned(),
        reason,
    };
    if name.trim().is_empty() {
        return Err(invalid("it is empty; give a short name such as `berlin`"));
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(invalid("it is longer than 64 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid("it contains control characters"));
    }
    Ok(())
}

fn distinguished_name(common_name: &str, organization: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, organization);
    dn
}

fn set_validity(params: &mut CertificateParams, days: i64) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(days);
}

fn gen_err(what: &'static str) -> impl Fn(rcgen::Error) -> CertError {
    move |err| CertError::Generate {
        what,
        reason: err.to_string(),
    }
}

fn key_err(what: &'static str) -> impl Fn(rcgen::Error) -> CertError {
    move |err| CertError::Key {
        what,
        reason: err.to_string(),
    }
}

/// All `CERTIFICATE` blocks in `pem`, at least one.
fn certificates(pem: &str, what: &'static str) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let pem_err = |reason: String| CertError::Pem {
        what,
        label: "CERTIFICATE",
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| pem_err(err.to_string()))?;
    if certs.is_empty() {
        return Err(pem_err("no certificate found".into()));
    }
    Ok(certs)
}

/// The first certificate in `pem`, which must be a CA certificate.
fn ca_certificate(pem: &str) -> Result<CertificateDer<'static>, CertError> {
    let what = "cluster CA certificate";
    let cert = certificates(pem, what)?.swap_remove(0);
    let parsed = parse_certificate(&cert, what)?;
    if !parsed.is_ca() {
        return Err(CertError::NotACa {
            subject: parsed.subject().to_string(),
        });
    }
    Ok(cert)
}

fn parse_certificate<'a>(
    der: &'a CertificateDer<'_>,
    what: &'static str,
) -> Result<X509Certificate<'a>, CertError> {
    let (rest, parsed) =
        x509_parser::parse_x509_certificate(der.as_ref()).map_err(|err| CertError::Parse {
            what,
            reason: err.to_string(),
        })?;
    if !rest.is_empty() {
        return Err(CertError::Parse {
            what,
            reason: format!("{} unexpected bytes after the certificate", rest.len()),
        });
    }
    Ok(parsed)
}

fn check_key_matches(
    cert: &X509Certificate<'_>,
    key: &KeyPair,
    what: &'static str,
) -> Result<(), CertError> {
    if cert.public_key().raw == key.subject_public_key_info().as_slice() {
        Ok(())
    } else {
        Err(CertError::KeyMismatch { what })
    }
}

fn pem_of(der: &CertificateDer<'_>) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new("CERTIFICATE", der.as_ref()), config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_identity_round_trips_through_pem() {
        let ca = ClusterCa::generate("test").expect("ca");
        let node = ca.issue("lisbon", ReplicaId(0xfeed)).expect("issue");
        let back = NodeIdentity::from_pem(node.cert_pem(), node.key_pem()).expect("reload");
        assert_eq!(back.id(), ReplicaId(0xfeed));
        assert_eq!(back.site_name(), "lisbon");
        assert_eq!(back.cert_chain(), node.cert_chain());
        assert_eq!(
            node_id_from_certificate(&node.cert_chain()[0]).expect("id"),
            ReplicaId(0xfeed)
        );
    }

    #[test]
    fn pem_of_matches_rcgen() {
        let reference =
            rcgen::generate_simple_self_signed(vec!["x.example".to_owned()]).expect("cert");
        assert_eq!(
            pem_of(reference.cert.der()),
            reference.cert.pem().replace("\r\n", "\n")
        );
        let ca = ClusterCa::generate("pem").expect("ca");
        assert_eq!(
            certificates(ca.cert_pem(), "test").expect("parse"),
            vec![ca.cert_der.clone()]
        );
    }

    #[test]
    fn loaded_ca_issues_certificates_for_the_same_chain() {
        let ca = ClusterCa::generate("reload").expect("ca");
        let loaded = ClusterCa::from_pem(ca.cert_pem(), ca.key_pem()).expect("load");
        assert_eq!(loaded.trust(), ca.trust());
        loaded
            .issue("madrid", ReplicaId(3))
            .expect("issue from loaded CA");
    }

    #[test]
    fn refuses_mismatched_keys_and_non_ca_certificates() {
        let ca = ClusterCa::generate("a").expect("ca");
        let other = ClusterCa::generate("b").expect("ca");
        let err = ClusterCa::from_pem(ca.cert_pem(), other.key_pem()).expect_err("mismatch");
        assert!(matches!(err, CertError::KeyMismatch { .. }), "{err}");

        let node = ca.issue("paris", ReplicaId(9)).expect("issue");
        let err = ClusterCa::from_pem(node.cert_pem(), node.key_pem()).expect_err("not a CA");
        assert!(matches!(err, CertError::NotACa { .. }), "{err}");
        let err = ClusterTrust::from_pem(node.cert_pem()).expect_err("not a CA");
        assert!(matches!(err, CertError::NotACa { .. }), "{err}");

        let other_node = other.issue("rome", ReplicaId(10)).expect("issue");
        let err =
            NodeIdentity::from_pem(node.cert_pem(), other_node.key_pem()).expect_err("mismatch");
        assert!(matches!(err, CertError::KeyMismatch { .. }), "{err}");

        let err = NodeIdentity::from_pem(ca.cert_pem(), ca.key_pem()).expect_err("no node id");
        assert!(matches!(err, CertError::NoNodeId), "{err}");
    }

    #[test]
    fn refuses_bad_names_and_garbage_pem() {
        for name in ["", "   ", "tab\there", &"x".repeat(65)] {
            assert!(
                matches!(
                    ClusterCa::generate(name),
                    Err(CertError::InvalidName { .. })
                ),
                "{name:?}"
            );
        }
        let ca = ClusterCa::generate("ok").expect("ca");
        assert!(matches!(
            ca.issue("", ReplicaId(1)),
            Err(CertError::InvalidName { .. })
        ));
        let err = ClusterTrust::from_pem("hello").expect_err("no pem");
        assert!(err.to_string().contains("BEGIN CERTIFICATE"), "{err}");
        let err = ClusterCa::from_pem(ca.cert_pem(), "not a key").expect_err("no key");
        assert!(matches!(err, CertError::Key { .. }), "{err}");
    }

    #[test]
    fn trust_bundles_hold_several_cas() {
        let a = ClusterCa::generate("a").expect("ca");
        let b = ClusterCa::generate("b").expect("ca");
        let both =
            ClusterTrust::from_pem(&format!("{}{}", a.cert_pem(), b.cert_pem())).expect("bundle");
        assert_eq!(both.certificates().len(), 2);
        let mut extended = a.trust();
        extended.extend(&b.trust());
        extended.extend(&a.trust());
        assert_eq!(extended, both);
    }

    #[test]
    fn files_round_trip_and_errors_name_the_file_at_fault() {
        let dir = std::env::temp_dir().join(format!("trellis-net-certs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let (ca_crt, ca_key) = (dir.join("ca.crt"), dir.join("ca.key"));
        let (node_crt, node_key) = (dir.join("node.crt"), dir.join("node.key"));

        let ca = ClusterCa::generate("files").expect("ca");
        ca.save(&ca_crt, &ca_key).expect("save ca");
        let loaded = ClusterCa::load(&ca_crt, &ca_key).expect("load ca");
        assert_eq!(loaded.trust(), ca.trust());
        assert_eq!(ClusterTrust::load(&ca_crt).expect("trust"), ca.trust());
        let node = loaded.issue("oslo", ReplicaId(77)).expect("issue");
        node.save(&node_crt, &node_key).expect("save node");
        let back = NodeIdentity::load(&node_crt, &node_key).expect("load node");
        assert_eq!((back.id(), back.site_name()), (ReplicaId(77), "oslo"));

        // A node certificate where the CA certificate belongs: the cert file.
        let err = ClusterCa::load(&node_crt, &ca_key).expect_err("not a CA");
        assert!(
            err.to_string().starts_with(&node_crt.display().to_string()),
            "{err}"
        );
        assert!(
            err.to_string().contains("not a certificate authority"),
            "{err}"
        );
        // The CA key with the node certificate: the key file.
        let err = NodeIdentity::load(&node_crt, &ca_key).expect_err("mismatch");
        assert!(
            err.to_string().starts_with(&ca_key.display().to_string()),
            "{err}"
        );
        assert!(err.to_string().contains("does not belong"), "{err}");
        // A key where the certificate belongs.
        let err = NodeIdentity::load(&node_key, &node_key).expect_err("key as cert");
        assert!(
            err.to_string().starts_with(&node_key.display().to_string()),
            "{err}"
        );
        assert!(err.to_string().contains("BEGIN CERTIFICATE"), "{err}");
        // Saving never overwrites.
        assert!(matches!(
            ca.save(&ca_crt, &ca_key),
            Err(CertError::Exists { .. })
        ));
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn random_ids_differ() {
        let a = random_replica_id().expect("random");
        let b = random_replica_id().expect("random");
        assert_ne!(a, b);
        assert_ne!(a, ReplicaId(0));
    }
}
