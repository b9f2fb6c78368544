//! Lease log reader: never panics, and the loaded prefix re-emits
//! byte for byte.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| opie_proto::lease_log::fuzz_round_trip(data));
