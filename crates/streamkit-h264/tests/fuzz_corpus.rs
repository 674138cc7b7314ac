//! The committed fuzz corpus (`fuzz/corpus/`, grown by `scripts/fuzz`), replayed
//! through the fuzz targets' own checks on every test run.

#[test]
fn access_unit_splitter_corpus() {
    streamkit_testkit::replay_fuzz_corpus(
        env!("CARGO_MANIFEST_DIR"),
        "access_unit_splitter",
        streamkit_h264::fuzzing::access_unit_splitter,
    );
}

#[test]
fn parse_sps_corpus() {
    streamkit_testkit::replay_fuzz_corpus(env!("CARGO_MANIFEST_DIR"), "parse_sps", streamkit_h264::fuzzing::parse_sps);
}
