//! NBD handshake parsers (greeting, client options, option replies, export
//! name reply): parse, emit, parse again gives the same value.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| opie_proto::nbd::check_handshake_round_trip(data));
