//! The HTTPS listener's TLS: protocol versions, ALPN, session resumption by ticket and by session
//! ID, the private key formats operators bring (PKCS#8, PKCS#1 RSA, SEC1 EC), and a renewed
//! certificate taken in on SIGHUP.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Config, Ringfront, TempDir, TestCert};
use rustls::client::{Resumption, Tls12Resumption};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, HandshakeKind, ProtocolVersion, RootCertStore};

fn client_config(roots: &[CertificateDer<'static>], versions: &[&'static rustls::SupportedProtocolVersion]) -> ClientConfig {
    let mut store = RootCertStore::empty();
    for root in roots {
        store.add(root.clone()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}

/// What one TLS connection that sent `GET /` saw.
struct Session {
    version: Option<ProtocolVersion>,
    alpn: Option<Vec<u8>>,
    kind: Option<HandshakeKind>,
    response: Vec<u8>,
}

/// Connects, sends one request with `Connection: close` and reads the whole answer.
fn connect(port: u16, config: &Arc<ClientConfig>) -> Session {
    let name = ServerName::try_from("localhost").unwrap();
    let connection = rustls::ClientConnection::new(Arc::clone(config), name).unwrap();
    let socket = TcpStream::connect(("127.0.0.1", port)).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut stream = rustls::StreamOwned::new(connection, socket);
    stream.write_all(b"GET /missing HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = Vec::new();
    // The server ends with close_notify, so read_to_end returns cleanly.
    stream.read_to_end(&mut response).unwrap();
    Session {
        version: stream.conn.protocol_version(),
        alpn: stream.conn.alpn_protocol().map(<[u8]>::to_vec),
        kind: stream.conn.handshake_kind(),
        response,
    }
}

fn start(cert: &TestCert) -> Ringfront {
    Config::new().https(cert).start()
}

#[test]
fn tls13_handshake_and_alpn() {
    let cert = TestCert::generate(&["localhost"]);
    let ringfront = start(&cert);
    let config = Arc::new(client_config(&[cert.ca_der().clone()], &[&rustls::version::TLS13]));
    let session = connect(ringfront.https_port(), &config);
    assert_eq!(session.version, Some(ProtocolVersion::TLSv1_3));
    assert_eq!(session.alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert!(session.response.starts_with(b"HTTP/1.1 404 "));
}

#[test]
fn tls12_handshake() {
    let cert = TestCert::generate(&["localhost"]);
    let ringfront = start(&cert);
    let config = Arc::new(client_config(&[cert.ca_der().clone()], &[&rustls::version::TLS12]));
    let session = connect(ringfront.https_port(), &config);
    assert_eq!(session.version, Some(ProtocolVersion::TLSv1_2));
    assert!(session.response.starts_with(b"HTTP/1.1 404 "));
}

#[test]
fn tls13_resumes_with_ticket() {
    let cert = TestCert::generate(&["localhost"]);
    let ringfront = start(&cert);
    let config = Arc::new(client_config(&[cert.ca_der().clone()], &[&rustls::version::TLS13]));
    let first = connect(ringfront.https_port(), &config);
    assert_eq!(first.kind, Some(HandshakeKind::Full));
    let second = connect(ringfront.https_port(), &config);
    assert_eq!(second.kind, Some(HandshakeKind::Resumed));
}

#[test]
fn tls12_resumes_with_ticket() {
    let cert = TestCert::generate(&["localhost"]);
    let ringfront = start(&cert);
    let mut config = client_config(&[cert.ca_der().clone()], &[&rustls::version::TLS12]);
    config.resumption = Resumption::in_memory_sessions(16).tls12_resumption(Tls12Resumption::SessionIdOrTickets);
    let config = Arc::new(config);
    connect(ringfront.https_port(), &config);
    let second = connect(ringfront.https_port(), &config);
    assert_eq!(second.kind, Some(HandshakeKind::Resumed));
}

/// A TLS 1.2 client that does not take tickets resumes through the server's session cache,
/// which all workers share: the second connection may land on any worker.
#[test]
fn tls12_resumes_with_session_id() {
    let cert = TestCert::generate(&["localhost"]);
    let ringfront = start(&cert);
    let mut config = client_config(&[cert.ca_der().clone()], &[&rustls::version::TLS12]);
    config.resumption = Resumption::in_memory_sessions(16).tls12_resumption(Tls12Resumption::SessionIdOnly);
    config.enable_sni = true;
    let config = Arc::new(config);
    connect(ringfront.https_port(), &config);
    for _ in 0..4 {
        let again = connect(ringfront.https_port(), &config);
        assert_eq!(again.kind, Some(HandshakeKind::Resumed));
    }
}

/// Connects with `openssl s_client` and `options` (a version, a session file), sends one
/// request and returns what it printed, which includes each session ticket's lifetime hint.
fn s_client_output(port: u16, options: &[&str]) -> String {
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}"), "-servername", "localhost", "-ign_eof"])
        .args(options)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("openssl runs");
    let request = b"GET /missing HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    child.stdin.take().expect("a stdin pipe").write_all(request).unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(stdout.contains("HTTP/1.1 404 "), "no response through s_client {options:?}: {stdout}");
    stdout
}

/// A session resumes for `https.session_timeout` after its full handshake and not after, by
/// TLS 1.3 ticket, TLS 1.2 ticket or TLS 1.2 session ID. A resumption gets a new ticket, which
/// keeps the first handshake's time, and each ticket gives the client the time left.
#[test]
fn sessions_end_after_timeout() {
    let cert = TestCert::generate(&["localhost"]);
    let ringfront = Config::new().https(&cert).https_setting("session_timeout", "\"4s\"").start();
    let port = ringfront.https_port();
    let roots = [cert.ca_der().clone()];
    let mut tls12_tickets = client_config(&roots, &[&rustls::version::TLS12]);
    tls12_tickets.resumption = Resumption::in_memory_sessions(16).tls12_resumption(Tls12Resumption::SessionIdOrTickets);
    let mut tls12_session_id = client_config(&roots, &[&rustls::version::TLS12]);
    tls12_session_id.resumption = Resumption::in_memory_sessions(16).tls12_resumption(Tls12Resumption::SessionIdOnly);
    let clients = [
        ("TLS 1.3 ticket", Arc::new(client_config(&roots, &[&rustls::version::TLS13]))),
        ("TLS 1.2 ticket", Arc::new(tls12_tickets)),
        ("TLS 1.2 session ID", Arc::new(tls12_session_id)),
    ];
    let began = Instant::now();
    for (name, config) in &clients {
        assert_eq!(connect(port, config).kind, Some(HandshakeKind::Full), "{name}");
    }
    let sessions = TempDir::new("session-timeout");
    let saved = sessions.path().join("tls13.pem");
    let saved = saved.to_str().unwrap();
    let output = s_client_output(port, &["-tls1_3", "-sess_out", saved]);
    assert!(output.contains("lifetime hint: 4 (seconds)"), "{output}");
    let aes_saved = sessions.path().join("tls13-aes128.pem");
    let aes_saved = aes_saved.to_str().unwrap();
    s_client_output(port, &["-tls1_3", "-ciphersuites", "TLS_AES_128_GCM_SHA256", "-sess_out", aes_saved]);
    // Each resumption here takes a new ticket, stamped with the full handshake's time.
    std::thread::sleep(Duration::from_millis(1500));
    for (name, config) in &clients {
        assert_eq!(connect(port, config).kind, Some(HandshakeKind::Resumed), "{name}");
    }
    let output = s_client_output(port, &["-tls1_2"]);
    assert!(output.contains("lifetime hint: 4 (seconds)"), "{output}");
    // The ticket given with a resumption carries the time left.
    let output = s_client_output(port, &["-tls1_3", "-sess_in", saved]);
    assert!(output.contains("Reused, TLSv1.3"), "{output}");
    assert!(output.contains("lifetime hint: 3 (seconds)") || output.contains("lifetime hint: 2 (seconds)"), "{output}");
    // A client offers a ticket with another suite, which rustls does not resume, and a key
    // share that the server rejects with a HelloRetryRequest. It gets a new session with the
    // whole time.
    let options = ["-tls1_3", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256", "-groups", "P-521:X25519", "-sess_in", aes_saved];
    let output = s_client_output(port, &options);
    assert!(output.contains("New, TLSv1.3"), "{output}");
    assert!(output.contains("lifetime hint: 4 (seconds)"), "{output}");
    std::thread::sleep(Duration::from_millis(4600).saturating_sub(began.elapsed()));
    for (name, config) in &clients {
        assert_eq!(connect(port, config).kind, Some(HandshakeKind::Full), "{name} after the timeout");
        assert_eq!(connect(port, config).kind, Some(HandshakeKind::Resumed), "{name}, a new session");
    }

    let default = start(&cert);
    for version in ["-tls1_2", "-tls1_3"] {
        let output = s_client_output(default.https_port(), &[version]);
        assert!(output.contains("lifetime hint: 3600 (seconds)"), "{version}: {output}");
    }
}

/// Runs the openssl command line tool, failing the test with its output when it fails.
fn openssl(arguments: &[&str], dir: &Path) {
    let output = Command::new("openssl").args(arguments).current_dir(dir).output().expect("openssl runs");
    assert!(
        output.status.success(),
        "openssl {arguments:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Makes a CA (`ca.pem`, `ca.key`) and a leaf certificate for localhost (`cert.pem`, with its
/// PKCS#8 key in `pkcs8.pem`) in `dir`, the leaf's key made by `new_key` (`openssl req`
/// arguments).
fn make_ca_and_leaf(dir: &TempDir, new_key: &[&str]) {
    let mut ca = vec!["req", "-x509"];
    ca.extend_from_slice(&EC_KEY);
    ca.extend_from_slice(&["-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=test CA"]);
    openssl(&ca, dir.path());

    let mut leaf = vec!["req", "-new"];
    leaf.extend_from_slice(new_key);
    leaf.extend_from_slice(&["-nodes", "-keyout", "pkcs8.pem", "-out", "leaf.csr", "-subj", "/CN=localhost"]);
    openssl(&leaf, dir.path());
    std::fs::write(dir.join("leaf.ext"), "basicConstraints=critical,CA:FALSE\nsubjectAltName=DNS:localhost\n").unwrap();
    openssl(
        &[
            "x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "cert.pem",
            "-days", "2", "-extfile", "leaf.ext",
        ],
        dir.path(),
    );
}

/// Makes a CA and a leaf certificate for localhost whose key comes from `new_key` (`openssl req`
/// arguments), converts the key with `convert` (or leaves it as PKCS#8), checks the PEM label,
/// then serves one request with the pair.
fn serve_with_key(new_key: &[&str], convert: Option<&[&str]>, label: &str) {
    let dir = TempDir::new("tls-key");
    make_ca_and_leaf(&dir, new_key);
    let key_file = match convert {
        Some(arguments) => {
            openssl(arguments, dir.path());
            "converted.pem"
        }
        None => "pkcs8.pem",
    };
    let key_text = std::fs::read_to_string(dir.join(key_file)).unwrap();
    assert!(key_text.contains(label), "expected a {label} block in:\n{key_text}");

    let config = format!(
        "[server]\nworkers = 1\naccess_log = \"off\"\n[https]\nlisten = [\"127.0.0.1:{{https_port}}\"]\ncertificate = \"cert.pem\"\nprivate_key = \"{key_file}\"\nserver_names = [\"localhost\"]\n"
    );
    let ringfront = Ringfront::start_in(dir.path(), &config);
    let root = CertificateDer::from_pem_file(dir.join("ca.pem")).unwrap();
    let client = Arc::new(client_config(&[root], &[&rustls::version::TLS13, &rustls::version::TLS12]));
    let session = connect(ringfront.https_port(), &client);
    assert!(session.response.starts_with(b"HTTP/1.1 404 "));
}

const EC_KEY: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
const RSA_KEY: [&str; 2] = ["-newkey", "rsa:2048"];

#[test]
fn key_pkcs8_ec() {
    serve_with_key(&EC_KEY, None, "BEGIN PRIVATE KEY");
}

#[test]
fn key_pkcs8_rsa() {
    serve_with_key(&RSA_KEY, None, "BEGIN PRIVATE KEY");
}

#[test]
fn key_pkcs1_rsa() {
    serve_with_key(&RSA_KEY, Some(&["rsa", "-in", "pkcs8.pem", "-out", "converted.pem", "-traditional"]), "BEGIN RSA PRIVATE KEY");
}

#[test]
fn key_sec1_ec() {
    serve_with_key(&EC_KEY, Some(&["ec", "-in", "pkcs8.pem", "-out", "converted.pem"]), "BEGIN EC PRIVATE KEY");
}

/// Certificates after the leaf are only passed on to clients. So ringfront checks their DER
/// structure, but not whether rustls's X.509 parser supports them. Here a version 1 root and a
/// CA with a critical inhibitAnyPolicy extension are served, and OpenSSL verifies the chain.
/// RFC 5280 §4.2.1.14 requires that extension to be critical.
#[test]
fn chain_extras_passed_on() {
    let dir = TempDir::new("tls-chain-extras");
    make_ca_and_leaf(&dir, &EC_KEY);
    openssl(&["req", "-new", "-key", "ca.key", "-out", "v1.csr", "-subj", "/CN=version 1 root"], dir.path());
    openssl(&["x509", "-req", "-in", "v1.csr", "-signkey", "ca.key", "-days", "2", "-out", "v1.pem"], dir.path());
    openssl(
        &["req", "-x509", "-key", "ca.key", "-out", "policy.pem", "-days", "2", "-subj", "/CN=policy CA", "-addext", "inhibitAnyPolicy=critical,0"],
        dir.path(),
    );
    let chain: Vec<String> = ["cert.pem", "policy.pem", "v1.pem"].iter().map(|name| std::fs::read_to_string(dir.join(name)).unwrap()).collect();
    std::fs::write(dir.join("chain.pem"), chain.concat()).unwrap();

    let config = "[server]\nworkers = 1\naccess_log = \"off\"\n[https]\nlisten = [\"127.0.0.1:{https_port}\"]\ncertificate = \"chain.pem\"\nprivate_key = \"pkcs8.pem\"\nserver_names = [\"localhost\"]\n";
    let ringfront = Ringfront::start_in(dir.path(), config);
    let port = ringfront.https_port().to_string();
    let connect_to = format!("127.0.0.1:{port}");
    let output = Command::new("openssl")
        .args(["s_client", "-connect", &connect_to, "-servername", "localhost", "-CAfile", "ca.pem", "-verify_return_error", "-showcerts"])
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);

    assert!(output.status.success(), "{text}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(text.contains("Verify return code: 0 (ok)"), "{text}");
    assert_eq!(text.matches("-----BEGIN CERTIFICATE-----").count(), 3, "{text}");
}

#[test]
fn mismatched_key_fails_start() {
    let cert = TestCert::generate(&["localhost"]);
    let other = TestCert::generate(&["localhost"]);
    let dir = TempDir::new("tls-mismatch");
    std::fs::copy(cert.cert_path(), dir.join("cert.pem")).unwrap();
    std::fs::copy(other.key_path(), dir.join("key.pem")).unwrap();
    std::fs::write(
        dir.join("ringfront.toml"),
        "[https]\nlisten = [\"127.0.0.1:1\"]\ncertificate = \"cert.pem\"\nprivate_key = \"key.pem\"\nserver_names = [\"localhost\"]\n",
    )
    .unwrap();
    let output = Command::new(common::ringfront::binary_path())
        .args(["check", "--config"])
        .arg(dir.join("ringfront.toml"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(message.contains("rejected"), "unexpected message: {message}");
}

/// Time a log line may take to reach the captured output after the signal that causes it.
const OUTPUT_WAIT: Duration = Duration::from_secs(10);

/// Returns whether a new connection completes a handshake while trusting only `trusted`'s CA.
/// Each call builds a new client configuration, so no session is resumed.
fn handshake_trusting(port: u16, trusted: &TestCert) -> bool {
    let mut connection = common::Connection::https(port, trusted);
    connection.handshake().is_ok()
}

/// A renewed certificate is served after SIGHUP, as with nginx's reload: new handshakes get the
/// new pair, sessions from before resume, and files that do not make a usable pair leave the
/// last good pair in place.
#[test]
fn sighup_reloads_certificate() {
    let first = TestCert::generate(&["localhost"]);
    let renewed = TestCert::generate(&["localhost"]);
    let ringfront = start(&first);
    let port = ringfront.https_port();
    let pid = i64::from(ringfront.pid().expect("ringfront is running"));
    let request = b"GET /missing HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let resuming = first.client_config();
    assert_eq!(connect(port, &resuming).kind, Some(HandshakeKind::Full));

    // The files change on disk; nothing changes until the signal.
    std::fs::copy(renewed.cert_path(), first.cert_path()).unwrap();
    std::fs::copy(renewed.key_path(), first.key_path()).unwrap();
    assert!(handshake_trusting(port, &first));
    assert!(common::process::send_signal(pid, "HUP"));
    ringfront.wait_for_output("certificate=\"changed\"", 1, OUTPUT_WAIT);
    assert!(handshake_trusting(port, &renewed));
    assert!(!handshake_trusting(port, &first), "the replaced certificate is still served");
    // The session ticket keys carry over, so a session from before the reload resumes.
    assert_eq!(connect(port, &resuming).kind, Some(HandshakeKind::Resumed));
    assert!(common::process::send_signal(pid, "HUP"));
    ringfront.wait_for_output("certificate=\"unchanged\"", 1, OUTPUT_WAIT);

    // Files that do not make a usable pair are rejected, each with the file or the reason
    // named, and the renewed pair stays. The cases: a key that is not PEM, a key path that now
    // leads to a device or a FIFO, a key that belongs to another certificate, and a chain with
    // a damaged certificate. A device or FIFO must not be read, because neither ends.
    let failed_reload = "SIGHUP: the running configuration stays in use";
    std::fs::write(first.key_path(), "not a key\n").unwrap();
    assert!(common::process::send_signal(pid, "HUP"));
    let output = ringfront.wait_for_output(failed_reload, 1, OUTPUT_WAIT);
    assert!(output.contains(&first.key_path().display().to_string()), "{output}");

    std::fs::remove_file(first.key_path()).unwrap();
    std::os::unix::fs::symlink("/dev/zero", first.key_path()).unwrap();
    assert!(common::process::send_signal(pid, "HUP"));
    let output = ringfront.wait_for_output(failed_reload, 2, OUTPUT_WAIT);
    assert_eq!(output.matches("not a regular file").count(), 1, "{output}");

    std::fs::remove_file(first.key_path()).unwrap();
    let mkfifo = Command::new("mkfifo").arg(first.key_path()).status().unwrap();
    assert!(mkfifo.success());
    assert!(common::process::send_signal(pid, "HUP"));
    let output = ringfront.wait_for_output(failed_reload, 3, OUTPUT_WAIT);
    assert_eq!(output.matches("not a regular file").count(), 2, "{output}");

    std::fs::remove_file(first.key_path()).unwrap();
    let stranger = TestCert::generate(&["localhost"]);
    std::fs::copy(stranger.cert_path(), first.cert_path()).unwrap();
    std::fs::copy(renewed.key_path(), first.key_path()).unwrap();
    assert!(common::process::send_signal(pid, "HUP"));
    let output = ringfront.wait_for_output(failed_reload, 4, OUTPUT_WAIT);
    assert!(output.contains("does not belong to the first certificate"), "{output}");

    // A chain whose second certificate lost a line of base64: the PEM still decodes, but the
    // certificate does not parse, and clients would reject every handshake.
    let stranger_pem = std::fs::read_to_string(stranger.cert_path()).unwrap();
    let mut damaged: Vec<&str> = stranger_pem.lines().collect();
    damaged.remove(2);
    let chain = std::fs::read_to_string(renewed.cert_path()).unwrap() + &damaged.join("\n") + "\n";
    std::fs::write(first.cert_path(), chain).unwrap();
    assert!(common::process::send_signal(pid, "HUP"));
    let output = ringfront.wait_for_output(failed_reload, 5, OUTPUT_WAIT);
    assert!(output.contains("certificate 2 of 2 in the chain is not a DER-encoded X.509 certificate"), "{output}");

    assert!(handshake_trusting(port, &renewed));
    let mut after = common::Connection::https(port, &renewed);
    assert_eq!(after.request(request).status, 404);
}
