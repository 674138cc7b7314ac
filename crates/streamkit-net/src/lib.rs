//! # streamkit-net
//!
//! Network transparency: any stage of a pipeline can run on another machine
//! (or in another process) with the same API, like `grep | sed | awk` across
//! hosts.
//!
//! * [`wire`] — the versioned, checksummed, length-limited wire format, as a
//!   sans-I/O encoder and [`wire::WireDecoder`] (specified in `docs/wire-format.md`);
//! * [`NetworkSink`] — `tcp://HOST:PORT` as an output: a server that any number
//!   of consumers join and leave, each behind its own bounded queue, with
//!   optional HMAC authentication and compression (none, JPEG, H.264) done
//!   once per frame for everyone;
//! * [`NetworkSource`] — `tcp://HOST:PORT` as an input: connects,
//!   authenticates, reconnects with backoff, resumes at a keyframe;
//! * [`shm`] — between processes on one host, raw frames through a shared
//!   `memfd` ring instead of the socket (the consumer's frame is the slot);
//! * [`pipe`] — the same format over stdin/stdout and files (`wire:-`,
//!   `wire:PATH`), reading Y4M too.
//!
//! ```no_run
//! use streamkit_net::{Compression, NetworkSink, NetworkSinkConfig, NetworkSource, NetworkSourceConfig};
//! use streamkit_core::{Sink, Source};
//! # async fn demo(frame: streamkit_core::Frame) -> streamkit_core::Result<()> {
//! // Machine 1: serve frames as H.264 on port 9000 (127.0.0.1 unless told otherwise).
//! let mut sink = NetworkSink::bind(NetworkSinkConfig::new(9000).with_compression(Compression::H264))?;
//! sink.write(&frame).await?;
//!
//! // Machine 2: receive them, timing and metadata intact.
//! let mut source = NetworkSource::connect(NetworkSourceConfig::new("127.0.0.1", 9000)).await?;
//! let received = source.next_frame().await?;
//! # Ok(()) }
//! ```

pub mod auth;
pub mod codec;
#[doc(hidden)]
pub mod fuzzing;
pub mod options;
pub mod pipe;
pub mod shm;
pub mod sink;
pub mod source;
pub mod wire;

use streamkit_core::registry::Registry;

pub use auth::Token;
pub use codec::{CompressOptions, FrameCompressor, FrameDecompressor};
pub use pipe::{PipeSource, WireSink, WireSource};
pub use sink::{NetworkSink, NetworkSinkConfig, NetworkSinkStats, SinkStatsHandle};
pub use source::{NetworkSource, NetworkSourceConfig, NetworkSourceStats, Reconnect, HOP_STAMP_PREFIX};
pub use wire::{Compression, WireDecoder, WireEvent, WireLimits};

/// Registers `tcp:` (source and sink) and `wire:` (source and sink; stdin and
/// stdout for an empty body or `-`). Making `-` mean `wire` is the
/// application's choice: call `registry.stdio("wire")` after this.
pub fn register(registry: &mut Registry) {
    registry
        .plugin("net", "network transparency: the streamkit wire format over TCP, pipes and files")
        .source(
            "tcp",
            "frames from a NetworkSink: reconnects, resumes at a keyframe; raw frames from this host come through shared memory (token=, token_file=, timeout=, reconnect=forever|off|30s, shm=on|off)",
            "tcp://127.0.0.1:9000",
            |uri, _| Ok(Box::new(NetworkSource::from_uri(uri)?)),
        )
        .sink(
            "tcp",
            "serve frames to any number of consumers (compression=none|jpeg|h264, queue=latest-only|drop-oldest|block, token=, bitrate=, quality=, keyframe=, capacity=, max_consumers=, stall=, handshake_timeout=, shm=on|off: shared memory for consumers on this host)",
            "tcp://127.0.0.1:9000?compression=h264",
            |uri, _| Ok(Box::new(NetworkSink::from_uri(uri)?)),
        )
        .source(
            "wire",
            "the streamkit wire format (or Y4M) from stdin ('-') or a file",
            "wire:-",
            |uri, _| {
                uri.options().finish()?;
                if uri.body.is_empty() || uri.body == "-" {
                    return Ok(Box::new(PipeSource::stdin()?));
                }
                Ok(Box::new(PipeSource::open(&uri.body)?))
            },
        )
        .sink(
            "wire",
            "the streamkit wire format to stdout ('-') or a file (compression=none|jpeg|h264, quality=, bitrate=, keyframe=)",
            "wire:-?compression=jpeg",
            |uri, _| {
                let mut o = uri.options();
                let compress = options::compress_options(&mut o, uri)?;
                o.finish()?;
                if uri.body.is_empty() || uri.body == "-" {
                    return Ok(Box::new(WireSink::stdout(compress)));
                }
                Ok(Box::new(WireSink::create(&uri.body, compress)?))
            },
        )
        .file_extension("wire", "wire");
}
