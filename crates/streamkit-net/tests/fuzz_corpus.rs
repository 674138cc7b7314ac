//! The committed fuzz corpus (`fuzz/corpus/`, grown by `scripts/fuzz`), replayed
//! through the fuzz targets' own checks on every test run.

#[test]
fn wire_decoder_corpus() {
    streamkit_testkit::replay_fuzz_corpus(
        env!("CARGO_MANIFEST_DIR"),
        "wire_decoder",
        streamkit_net::fuzzing::wire_decoder,
    );
}
