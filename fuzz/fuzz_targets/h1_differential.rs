//! The HTTP/1.1 fast path against hyper on the same bytes: `keygate_fuzz::h1`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| keygate_fuzz::h1::run(data));
