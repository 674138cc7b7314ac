//! The committed fuzz corpus (`fuzz/corpus/`, grown by `scripts/fuzz`), replayed
//! through the fuzz targets' own checks on every test run.

#[test]
fn mp4_reader_corpus() {
    streamkit_testkit::replay_fuzz_corpus(
        env!("CARGO_MANIFEST_DIR"),
        "mp4_reader",
        streamkit_container::fuzzing::mp4_reader,
    );
}
