#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| servicemock::fuzzing::json_plan(data));
