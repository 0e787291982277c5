#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| servicemock::fuzzing::grpc_timeout(data));
