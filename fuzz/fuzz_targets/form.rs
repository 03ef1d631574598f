#![no_main]
// The property checked is stepgate::fuzzing::form (shared with tests/fuzz_corpus.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| stepgate::fuzzing::form(data));
