//! The fuzz targets of `e2e/fuzz` on the stable toolchain, as part of `make test`: each target's
//! body (compiled here through `fuzz-shim`, a stand-in for libfuzzer-sys) runs over its committed
//! seeds and then over inputs mutated from them (bit flips, byte changes, insertions, truncations,
//! splices; a fixed xorshift seed, so a failure reproduces), up to [`RUNS`] per target or
//! [`BUDGET`] of wall time, whichever comes first. The targets' own assertions are the checks
//! (nothing written outside the destination, round trips, ...).
//!
//! The long, coverage-guided runs are `make fuzz` (cargo-fuzz on nightly, 10 minutes a target).

use std::path::PathBuf;
use std::time::{Duration, Instant};

#[allow(unused_attributes, clippy::all, clippy::pedantic, missing_docs, dead_code)]
#[path = "../fuzz/fuzz_targets/artifact_untar.rs"]
mod artifact_untar;
#[allow(unused_attributes, clippy::all, clippy::pedantic, missing_docs, dead_code)]
#[path = "../fuzz/fuzz_targets/duration_revision.rs"]
mod duration_revision;
#[allow(unused_attributes, clippy::all, clippy::pedantic, missing_docs, dead_code)]
#[path = "../fuzz/fuzz_targets/ignore_rules.rs"]
mod ignore_rules;
#[allow(unused_attributes, clippy::all, clippy::pedantic, missing_docs, dead_code)]
#[path = "../fuzz/fuzz_targets/kluctl_yaml.rs"]
mod kluctl_yaml;
#[allow(unused_attributes, clippy::all, clippy::pedantic, missing_docs, dead_code)]
#[path = "../fuzz/fuzz_targets/pack_unpack.rs"]
mod pack_unpack;

/// Mutated inputs per target after its seeds.
const RUNS: usize = 2_000;
/// Wall-time cap per target (a debug build on a busy machine is slow; the seeds always all run).
const BUDGET: Duration = Duration::from_secs(20);

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % (n.max(1) as u64)).unwrap_or(0)
    }
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut files: Vec<PathBuf> = fs_err::read_dir(&dir)
        .unwrap_or_else(|e| panic!("the seeds of {target}: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| fs_err::read(p).expect("seed"))
        .collect()
}

fn mutate(rng: &mut XorShift, corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut data = corpus[rng.below(corpus.len())].clone();
    for _ in 0..=rng.below(4) {
        match rng.below(6) {
            0 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
            1 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] = u8::try_from(rng.below(256)).unwrap_or(0);
            }
            2 => {
                let i = rng.below(data.len() + 1);
                data.insert(i, u8::try_from(rng.below(256)).unwrap_or(0));
            }
            3 if !data.is_empty() => {
                let len = rng.below(data.len());
                data.truncate(len);
            }
            4 => {
                let other = &corpus[rng.below(corpus.len())];
                let at = rng.below(other.len() + 1);
                data.extend_from_slice(&other[at..]);
            }
            _ if data.len() > 1 => {
                let i = rng.below(data.len());
                let j = rng.below(data.len());
                data.swap(i, j);
            }
            _ => data.push(0),
        }
    }
    data
}

fn smoke(target: &str, run: fn(&[u8])) {
    let corpus = seeds(target);
    assert!(
        !corpus.is_empty(),
        "no seeds for {target} under e2e/fuzz/seeds/{target}"
    );
    for s in &corpus {
        run(s);
    }
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let started = Instant::now();
    let mut runs = 0;
    while runs < RUNS && started.elapsed() < BUDGET {
        let input = mutate(&mut rng, &corpus);
        run(&input);
        runs += 1;
    }
    eprintln!(
        "{target}: {} seeds, {runs} mutated inputs in {:?}",
        corpus.len(),
        started.elapsed()
    );
}

#[test]
fn artifact_untar_smoke() {
    smoke("artifact_untar", artifact_untar::run);
}

#[test]
fn duration_revision_smoke() {
    smoke("duration_revision", duration_revision::run);
}

#[test]
fn ignore_rules_smoke() {
    smoke("ignore_rules", ignore_rules::run);
}

#[test]
fn kluctl_yaml_smoke() {
    smoke("kluctl_yaml", kluctl_yaml::run);
}

#[test]
fn pack_unpack_smoke() {
    smoke("pack_unpack", pack_unpack::run);
}
