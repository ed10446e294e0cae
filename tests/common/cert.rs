//! Test certificates: a throwaway CA and a leaf certificate for the requested names, written as
//! PEM files for the server, plus a rustls client configuration that trusts the CA.

use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::CertificateDer;

use super::process::TempDir;

/// A CA and a leaf certificate signed by it, for the names given to [`TestCert::generate`].
///
/// The server gets `cert.pem` (the leaf) and `key.pem` (the leaf's PKCS#8 ECDSA P-256 key).
/// Clients trust [`TestCert::ca_der`], so the server's certificate is verified exactly as a
/// browser would verify a certificate from a private CA.
#[derive(Debug)]
pub struct TestCert {
    names: Vec<String>,
    ca_der: CertificateDer<'static>,
    cert_der: CertificateDer<'static>,
    cert_path: PathBuf,
    key_path: PathBuf,
    ca_path: PathBuf,
    dir: TempDir,
}

impl TestCert {
    /// Generates the CA and a leaf certificate whose subject alternative names are `names` (DNS
    /// names or IP addresses), and writes `cert.pem`, `key.pem` and `ca.pem` to a temporary
    /// directory.
    ///
    /// # Panics
    /// Panics if `names` is empty or a certificate cannot be generated or written.
    pub fn generate(names: &[&str]) -> TestCert {
        assert!(
            !names.is_empty(),
            "a test certificate needs at least one name"
        );

        let ca_key = generate_key();
        let mut ca_params = match CertificateParams::new(Vec::<String>::new()) {
            Ok(params) => params,
            Err(error) => panic!("failed to create CA certificate parameters: {error}"),
        };
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "ringfront test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = match ca_params.self_signed(&ca_key) {
            Ok(cert) => cert,
            Err(error) => panic!("failed to self-sign the test CA: {error}"),
        };

        let leaf_key = generate_key();
        let owned_names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
        let mut leaf_params = match CertificateParams::new(owned_names.clone()) {
            Ok(params) => params,
            Err(error) => panic!("invalid certificate names {names:?}: {error}"),
        };
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, names[0]);
        let issuer = Issuer::from_params(&ca_params, &ca_key);
        let leaf_cert = match leaf_params.signed_by(&leaf_key, &issuer) {
            Ok(cert) => cert,
            Err(error) => panic!("failed to sign the leaf certificate for {names:?}: {error}"),
        };

        let dir = TempDir::new("cert");
        let cert_path = dir.write("cert.pem", leaf_cert.pem());
        let key_path = dir.write("key.pem", leaf_key.serialize_pem());
        let ca_path = dir.write("ca.pem", ca_cert.pem());
        TestCert {
            names: owned_names,
            ca_der: ca_cert.der().clone(),
            cert_der: leaf_cert.der().clone(),
            cert_path,
            key_path,
            ca_path,
            dir,
        }
    }

    /// Path of the PEM file with the leaf certificate, for `[https] certificate`.
    pub fn cert_path(&self) -> &PathBuf {
        &self.cert_path
    }

    /// Path of the PEM file with the leaf's PKCS#8 private key, for `[https] private_key`.
    pub fn key_path(&self) -> &PathBuf {
        &self.key_path
    }

    /// Path of the PEM file with the CA certificate, for clients other than rustls.
    pub fn ca_path(&self) -> &PathBuf {
        &self.ca_path
    }

    /// DER of the CA certificate that clients trust.
    pub fn ca_der(&self) -> &CertificateDer<'static> {
        &self.ca_der
    }

    /// DER of the leaf certificate that the server presents.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// Names in the leaf certificate, in the order given to [`TestCert::generate`].
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Builds a rustls client configuration with the default protocol versions (TLS 1.2 and 1.3)
    /// that trusts only this CA and offers ALPN `http/1.1`.
    ///
    /// # Panics
    /// Panics if rustls rejects the CA certificate.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        if let Err(error) = roots.add(self.ca_der.clone()) {
            panic!("rustls rejected the test CA certificate: {error}");
        }

        // The crypto provider comes from rustls' crate features, the same as the server's.
        let mut config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

fn generate_key() -> KeyPair {
    match KeyPair::generate() {
        Ok(key) => key,
        Err(error) => panic!("failed to generate an ECDSA P-256 key pair: {error}"),
    }
}
