//! `fuzz_target!` as a plain function, so the fuzz targets of `e2e/fuzz` (written for
//! libfuzzer-sys and cargo-fuzz on nightly) also compile into the stable test suite, which replays
//! their seeds and generated inputs (`e2e/tests/fuzz_smoke.rs`). Only the `|data: &[u8]|` form the
//! targets use is accepted.

/// Defines `pub fn run(data: &[u8])` with the target's body.
#[macro_export]
macro_rules! fuzz_target {
    (|$data:ident: &[u8]| $body:block) => {
        /// The fuzz target's body.
        pub fn run($data: &[u8]) {
            $body
        }
    };
}
