//! NBD transmission headers (request, simple reply): parse, emit gives the
//! same bytes, parse again gives the same value.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| opie_proto::nbd::check_request_round_trip(data));
