//! Fenced NBD export names (`NAME@epoch=E;head=H;mac=HEX`): parse never
//! panics, and a parsed claim emits back to exactly the input.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| opie_proto::fence::check_fence_name_round_trip(data));
