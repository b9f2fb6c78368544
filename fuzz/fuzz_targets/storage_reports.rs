//! Storage tool outputs (mdadm, /proc/mdstat, LVM reports, exportfs -v,
//! /proc/mounts, the signature probe): never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| opie_core::storage::fuzz_parse_all(data));
