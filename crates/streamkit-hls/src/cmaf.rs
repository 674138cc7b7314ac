//! fMP4 (CMAF) segments for HLS: an init section (`#EXT-X-MAP`, `init.mp4`)
//! with the avcC, then `styp`+`moof`+`mdat` media segments (`.m4s`).
//! The boxes come from `streamkit-container`; this module only groups a
//! segment's access units and times them.

use streamkit_container::mp4::{init_segment, media_segment, Sample, DEFAULT_TIMESCALE};
use streamkit_core::Result;
use streamkit_h264::nal::AvcConfig;

use crate::segmenter::{EncodedUnit, SegmentFormat};

#[derive(Debug, Default)]
pub struct CmafFormat {
    config: Option<AvcConfig>,
    pending_init: Option<Vec<u8>>,
    units: Vec<EncodedUnit>,
    sequence: u32,
}

impl CmafFormat {
    pub fn new() -> CmafFormat {
        CmafFormat::default()
    }
}

impl SegmentFormat for CmafFormat {
    fn extension(&self) -> &'static str {
        "m4s"
    }

    fn playlist_version(&self) -> u8 {
        7
    }

    fn begin_segment(&mut self, _out: &mut Vec<u8>) -> Result<()> {
        self.units.clear();
        Ok(())
    }

    fn write_unit(&mut self, unit: &EncodedUnit, _out: &mut Vec<u8>) -> Result<()> {
        if unit.keyframe {
            if let Some(config) = AvcConfig::from_annexb(&unit.data).transpose()? {
                if self.config.as_ref() != Some(&config) {
                    self.pending_init = Some(init_segment(&config, 0, 0, DEFAULT_TIMESCALE));
                    self.config = Some(config);
                }
            }
        }
        self.units.push(unit.clone());
        Ok(())
    }

    fn end_segment(&mut self, end_dts_90k: u64, out: &mut Vec<u8>) -> Result<()> {
        let Some(first) = self.units.first() else { return Ok(()) };
        let base = first.dts_90k;
        let ends = self.units.iter().skip(1).map(|u| u.dts_90k).chain([end_dts_90k]);
        let samples: Vec<Sample<'_>> = self
            .units
            .iter()
            .zip(ends)
            .map(|(u, end)| {
                let duration = end.saturating_sub(u.dts_90k) as u32;
                Sample::annexb(&u.data, u.pts_90k as i64, u.dts_90k as i64, duration, u.keyframe)
            })
            .collect();
        self.sequence += 1;
        out.extend_from_slice(&media_segment(self.sequence, base, &samples));
        Ok(())
    }

    fn take_init_section(&mut self) -> Option<(&'static str, Vec<u8>)> {
        self.pending_init.take().map(|bytes| ("mp4", bytes))
    }
}
