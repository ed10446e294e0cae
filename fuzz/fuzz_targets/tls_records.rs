//! Drives a TLS session's records after the handshake with fuzz-chosen records, sealed with the
//! client's keys so that the input reaches what follows decryption, and with raw bytes, split
//! deliveries and the server's own calls. The invariants are checked by
//! `ringfront::server::fuzz_tls_records`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ringfront::server::fuzz_tls_records(data);
});
