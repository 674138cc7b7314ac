//! The committed fuzz corpus (`fuzz/corpus/`, grown by `scripts/fuzz`), replayed
//! through the fuzz targets' own checks on every test run.

#[test]
fn h264_depacketizer_corpus() {
    streamkit_testkit::replay_fuzz_corpus(
        env!("CARGO_MANIFEST_DIR"),
        "h264_depacketizer",
        streamkit_rtp::fuzzing::h264_depacketizer,
    );
}

#[test]
fn raw_depacketizer_corpus() {
    streamkit_testkit::replay_fuzz_corpus(
        env!("CARGO_MANIFEST_DIR"),
        "raw_depacketizer",
        streamkit_rtp::fuzzing::raw_depacketizer,
    );
}

#[test]
fn sdp_corpus() {
    streamkit_testkit::replay_fuzz_corpus(env!("CARGO_MANIFEST_DIR"), "sdp", streamkit_rtp::fuzzing::sdp);
}
