//! Duration and revision parsing (`gitops_api::duration`, `gitops_api::revision`): every string a
//! spec or a status may carry. Beyond "no panic": a parsed duration survives `format` and a
//! second parse (to the millisecond `format` keeps); a parsed revision prints back to a string that
//! parses to the same parts; a digest that parses prints back byte for byte; `transform_legacy`
//! is idempotent.
#![no_main]

use gitops_api::{duration, revision};
use libfuzzer_sys::fuzz_target;
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = duration::parse(text) {
        let printed = duration::format(d);
        let back = duration::parse(&printed)
            .unwrap_or_else(|e| panic!("{text:?} parsed to {d:?}, printed as {printed:?}, which fails: {e}"));
        // format keeps milliseconds above a second; f64 sums lose a few ns near the range's end.
        assert!(
            back.abs_diff(d) < Duration::from_millis(1) + Duration::from_micros(10),
            "{text:?} parsed to {d:?}, printed as {printed:?}, which parses to {back:?}"
        );
    }

    let parsed = revision::Revision::parse(text);
    let printed = parsed.to_string();
    assert_eq!(
        revision::Revision::parse(&printed),
        parsed,
        "{text:?} parsed, printed as {printed:?}, parses differently"
    );
    let legacy = revision::transform_legacy(text);
    assert_eq!(
        revision::transform_legacy(&legacy),
        legacy,
        "transform_legacy({text:?}) not idempotent"
    );
    let _ = revision::extract_hash(text);
    let _ = revision::short_ref(text);

    if let Ok(digest) = revision::Digest::parse(text) {
        assert_eq!(digest.to_string(), text, "digest {text:?} prints differently");
    }
});
