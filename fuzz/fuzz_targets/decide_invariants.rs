//! The core's `decide` invariants over arbitrary request parts: `keygate_fuzz::decide`.
#![no_main]
libfuzzer_sys::fuzz_target!(|input: keygate_fuzz::decide::Input| keygate_fuzz::decide::run(&input));
