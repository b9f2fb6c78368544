//! Lease packet parser: parse, emit, parse again gives the same packet.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| opie_proto::lease::fuzz_round_trip(data));
