//! Replays every file of `fuzz/corpus/` through the property its folder
//! names (`src/fuzzing.rs`), on stable: the seeds, and every input a fuzz
//! run found worth keeping (crashes included, once fixed), stay passing.

use std::path::Path;

#[test]
fn every_corpus_file_keeps_its_property() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut replayed = 0;
    for (target, property) in servicemock::fuzzing::TARGETS {
        let dir = root.join(target);
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e} (every target has a corpus)", dir.display()));
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| property(&data));
            assert!(outcome.is_ok(), "{} breaks its property", path.display());
            replayed += 1;
        }
    }
    assert!(
        replayed >= servicemock::fuzzing::TARGETS.len(),
        "{replayed} files"
    );
    eprintln!("replayed {replayed} corpus files");
}
