//! Replays the fuzz corpus (`fuzz/corpus/<target>/`: seeds, and whatever `cargo fuzz` found
//! worth keeping) through the same properties the fuzz targets check (`stepgate::fuzzing`), so
//! a plain `cargo test` catches a regression on any input fuzzing ever saw.

use std::path::Path;

#[test]
fn every_corpus_input_keeps_every_property() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut replayed = 0;
    for (name, check) in stepgate::fuzzing::TARGETS {
        let dir = root.join(name);
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("no corpus for {name} at {}: {e}", dir.display()));
        let mut n = 0;
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(
                outcome.is_ok(),
                "{name}: {} breaks a property",
                path.display()
            );
            n += 1;
        }
        assert!(n > 0, "the corpus of {name} is empty");
        replayed += n;
    }
    eprintln!("replayed {replayed} corpus inputs");
}
