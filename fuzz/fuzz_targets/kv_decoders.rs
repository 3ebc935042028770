//! Every KV record decoder and `Routes::compile` on arbitrary bytes: `keygate_fuzz::kv`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| keygate_fuzz::kv::run(data));
