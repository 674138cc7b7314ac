//! [`HlsWriter`]: the [`Segmenter`] with its events applied to a directory.
//!
//! Every file is written atomically: the bytes go to `NAME.tmp` in the same
//! directory, then `rename(2)` replaces `NAME` in one step, so a player (or
//! the [`crate::server`]) sees the old file or the new one, never half of
//! either. There is no fsync: a crash may lose the last files, but never
//! exposes a torn one to a reader of the running stream.

use std::io;
use std::path::{Path, PathBuf};

use streamkit_core::error::IoContext;
use streamkit_core::{Error, Result};

use crate::segmenter::{EncodedUnit, HlsOptions, SegmentEvent, Segmenter, PLAYLIST_NAME};

/// Writes HLS segments and the playlist into a directory.
#[derive(Debug)]
pub struct HlsWriter {
    dir: PathBuf,
    segmenter: Segmenter,
    finished: bool,
}

impl HlsWriter {
    /// Creates `output_dir` (and its parents) and removes a playlist left
    /// there by an earlier run, so players never see a stale stream.
    pub async fn create(output_dir: impl Into<PathBuf>, options: HlsOptions) -> Result<HlsWriter> {
        let dir = output_dir.into();
        let segmenter = Segmenter::new(&options)?;
        tokio::fs::create_dir_all(&dir).await.context(|| format!("creating HLS directory {}", dir.display()))?;
        remove_if_present(&dir.join(PLAYLIST_NAME)).await?;
        Ok(HlsWriter { dir, segmenter, finished: false })
    }

    /// The output directory.
    pub fn output_dir(&self) -> &Path {
        &self.dir
    }

    /// The playlist's path (`index.m3u8` in the output directory).
    pub fn playlist_path(&self) -> PathBuf {
        self.dir.join(PLAYLIST_NAME)
    }

    /// Whether the frame presented at `next_pts_90k` should be encoded as a
    /// keyframe (see [`Segmenter::keyframe_due`]).
    pub fn keyframe_due(&self, next_pts_90k: u64) -> bool {
        self.segmenter.keyframe_due(next_pts_90k)
    }

    /// The sans-IO segmenter inside (playlist state, names).
    pub fn segmenter(&self) -> &Segmenter {
        &self.segmenter
    }

    /// Adds one access unit, writing a segment and the playlist when it
    /// starts a new segment.
    pub async fn write_unit(&mut self, unit: EncodedUnit) -> Result<()> {
        if self.finished {
            return Err(Error::invalid("HLS writer: write_unit after finish"));
        }
        let events = self.segmenter.push(&unit)?;
        apply(&self.dir, events).await
    }

    /// Writes the last segment and the final playlist (`#EXT-X-ENDLIST`),
    /// and deletes evicted segments. Calling it again does nothing.
    pub async fn finish(&mut self) -> Result<()> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        let events = self.segmenter.finish()?;
        apply(&self.dir, events).await
    }
}

/// Applies segmenter events in order. (A free function: holding `&HlsWriter`
/// across an await would make the futures `!Send`, the format not being `Sync`.)
async fn apply(dir: &Path, events: Vec<SegmentEvent>) -> Result<()> {
    for event in events {
        match event {
            SegmentEvent::Segment { name, data, .. } | SegmentEvent::Init { name, data } => {
                write_atomic(dir, &name, data).await?;
            }
            SegmentEvent::Playlist { name, text } => {
                write_atomic(dir, &name, text.into_bytes()).await?;
                tracing::debug!("HLS playlist {} updated", dir.join(&name).display());
            }
            SegmentEvent::Delete { name } => remove_if_present(&dir.join(&name)).await?,
        }
    }
    Ok(())
}

/// Writes `dir/name` through `dir/name.tmp` and a rename.
pub async fn write_atomic(dir: &Path, name: &str, data: Vec<u8>) -> Result<()> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    // tokio::fs::write finishes the write (no buffered tail) before returning.
    tokio::fs::write(&tmp, data).await.context(|| format!("writing {}", tmp.display()))?;
    if let Err(e) = tokio::fs::rename(&tmp, &path).await {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(Error::io(format!("renaming {} to {}", tmp.display(), path.display()), e));
    }
    Ok(())
}

async fn remove_if_present(path: &Path) -> Result<()> {
    match tokio::fs::remove_file(path).await {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::io(format!("deleting {}", path.display()), e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn unit(n: u64, keyframe: bool) -> EncodedUnit {
        let slice: &[u8] =
            if keyframe { &[0x67, 0x42, 0, 0, 0, 1, 0x68, 0xCE, 0, 0, 0, 1, 0x65, 0x88] } else { &[0x41, 0x9A] };
        EncodedUnit {
            data: [&[0u8, 0, 0, 1][..], slice].concat(),
            pts_90k: n * 3000,
            dts_90k: n * 3000,
            keyframe,
            wallclock_ns: None,
        }
    }

    /// Sinks run in spawned tasks: the writer and its futures must be `Send`.
    #[allow(dead_code)]
    fn futures_are_send(mut w: HlsWriter) {
        fn send<T: Send>(_: T) {}
        send(w.write_unit(EncodedUnit::default()));
        send(w.finish());
        send(HlsWriter::create("x", HlsOptions::default()));
        send(w);
    }

    #[tokio::test]
    async fn writes_atomically_and_keeps_the_window() {
        let dir = streamkit_testkit::temp_dir("hls-writer-unit");
        std::fs::write(dir.join("index.m3u8"), "#EXTM3U\n#EXT-X-ENDLIST\n").unwrap();
        let options =
            HlsOptions { segment_duration: Duration::from_secs(1), playlist_size: 2, ..HlsOptions::default() };
        let mut w = HlsWriter::create(&dir, options).await.unwrap();
        assert!(!w.playlist_path().exists(), "stale playlist removed");
        for n in 0..150 {
            let key = w.keyframe_due(n * 3000);
            w.write_unit(unit(n, key)).await.unwrap();
            if n == 100 {
                let text = std::fs::read_to_string(w.playlist_path()).unwrap();
                assert!(!text.contains("ENDLIST"));
            }
        }
        w.finish().await.unwrap();
        w.finish().await.unwrap();
        assert!(w.write_unit(unit(150, true)).await.is_err());
        let mut names: Vec<String> =
            std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["index.m3u8", "segment_00003.ts", "segment_00004.ts"]);
        let text = std::fs::read_to_string(w.playlist_path()).unwrap();
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:3\n") && text.ends_with("segment_00004.ts\n#EXT-X-ENDLIST\n"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
