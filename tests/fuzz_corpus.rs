//! Replays the fuzz corpus (`fuzz/corpus/<target>/`: seeds, and whatever `cargo fuzz` found
//! worth keeping) through the same properties the fuzz targets check (`stepgate::fuzzing`), so
//! a plain `cargo test` catches a regression on any input fuzzing ever saw. The inputs are
//! shared among the machine's cores (the configuration corpus alone takes seconds in a debug
//! build).

use std::path::{Path, PathBuf};

#[test]
fn every_corpus_input_keeps_every_property() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut inputs: Vec<(&str, stepgate::fuzzing::Property, PathBuf)> = Vec::new();
    for (name, check) in stepgate::fuzzing::TARGETS {
        let dir = root.join(name);
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("no corpus for {name} at {}: {e}", dir.display()));
        let before = inputs.len();
        inputs.extend(entries.map(|e| (name, check, e.unwrap().path())));
        assert!(inputs.len() > before, "the corpus of {name} is empty");
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|s| {
        for first in 0..cores {
            let inputs = &inputs;
            s.spawn(move || {
                for (name, check, path) in inputs.iter().skip(first).step_by(cores) {
                    let data = std::fs::read(path).unwrap();
                    let outcome = std::panic::catch_unwind(|| check(&data));
                    assert!(
                        outcome.is_ok(),
                        "{name}: {} breaks a property",
                        path.display()
                    );
                }
            });
        }
    });
    eprintln!("replayed {} corpus inputs", inputs.len());
}
