#!/usr/bin/env bash
# The anchors of the H.264 → HLS benchmark (issue 3, BENCHMARKS.md), runnable
# on their own. `streamkit bench hls --anchor` runs these same commands,
# interleaved with ours, and times them.
#
# Every side draws the same picture: GStreamer's `videotestsrc pattern=ball`
# (a white anti-aliased disc of radius 20 on a Lissajous path,
#   x = 20 + (0.5 + 0.5 sin(2π n/200)) (W - 40),
#   y = 20 + (0.5 + 0.5 sin(2π √2 n/200)) (H - 40))
# over a solid #203050 background, and a white text line with the frame
# number at the top left (DejaVu Sans). 1920x1080 @ 30, H.264 at the same
# target bitrate, 2 s MPEG-TS segments, every segment kept.
#
#   bench/hls/run.sh gst      OUT_DIR     # videotestsrc ! timeoverlay ! x264enc ultrafast ! hlssink2
#   bench/hls/run.sh ffmpeg   OUT_DIR     # lavfi color + overlay + drawtext → libx264 ultrafast → hls
#   bench/hls/run.sh pyav     OUT_DIR     # skia-python draws, PyAV → libx264 ultrafast → hls
#   bench/hls/run.sh pyav-design OUT_DIR  # the same, the design's compose_frame as written
#   bench/hls/run.sh gst-source|ffmpeg-source|pyav-source SOURCE.y4m   # the same frames, lossless
#   bench/hls/run.sh quality  OUT_DIR/index.m3u8 SOURCE.y4m            # PSNR and SSIM of the HLS vs its source
#   bench/hls/run.sh x264-same SOURCE.y4m OUT_DIR  # libx264 ultrafast → hls from given frames (ours)
#   bench/hls/run.sh all      [ARGS]      # build, then `streamkit bench hls --anchor ARGS`
#
# Environment: FRAMES (300), BITRATE (bits/s, 4000000), PYTHON (bench/.venv/bin/python).
# hlssink2 sometimes never exits after writing #EXT-X-ENDLIST (see BENCHMARKS.md):
# time a gst run to that line, then kill it.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
FRAMES=${FRAMES:-300}
BITRATE=${BITRATE:-4000000}
PYTHON=${PYTHON:-$root/bench/.venv/bin/python}
FONT=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
KBPS=$((BITRATE / 1000))

# GStreamer: the ball and a changing text line. 1.22's timeoverlay has no
# frame counter, so its line reads "frame 0:00:01.233333333" (buffer time).
gst_draw="videotestsrc num-buffers=$FRAMES pattern=ball background-color=0xff203050 \
  ! video/x-raw,format=I420,width=1920,height=1080,framerate=30/1 \
  ! timeoverlay text=frame font-desc=DejaVu\ Sans\ 12 draw-outline=false draw-shadow=false \
    halignment=left valignment=top xpad=40 ypad=40"

# FFmpeg: the same ball as a 41x41 anti-aliased sprite overlaid on a colour
# source at videotestsrc's path, and drawtext with the frame number.
ffmpeg_draw=(
  -f lavfi -i "color=c=0x203050:s=1920x1080:r=30"
  -f lavfi -i "color=c=white:s=41x41:r=30,format=yuva420p,geq=lum='lum(X,Y)':cb='cb(X,Y)':cr='cr(X,Y)':a='clip(128*(20-hypot(X-20,Y-20)),0,255)'"
  -filter_complex "[0:v][1:v]overlay=x='(0.5+0.5*sin(2*PI*t*30/200))*(W-40)':y='(0.5+0.5*sin(2*PI*sqrt(2)*t*30/200))*(H-40)':shortest=1,drawtext=fontfile=$FONT:text='frame %{n}':x=40:y=40:fontsize=48:fontcolor=white,format=yuv420p"
  -frames:v "$FRAMES"
)

case "${1:-}" in
gst)
  out=${2:?OUT_DIR}
  mkdir -p "$out"
  # shellcheck disable=SC2086 # the pipeline is split into words on purpose
  exec gst-launch-1.0 -q $gst_draw \
    ! x264enc speed-preset=ultrafast tune=zerolatency bitrate="$KBPS" key-int-max=60 \
    ! h264parse ! hlssink2 target-duration=2 playlist-length=0 max-files=0 \
    location="$out/segment%05d.ts" playlist-location="$out/index.m3u8"
  ;;
gst-source)
  # shellcheck disable=SC2086
  exec gst-launch-1.0 -q $gst_draw ! y4menc ! filesink location="${2:?SOURCE.y4m}"
  ;;
ffmpeg)
  out=${2:?OUT_DIR}
  mkdir -p "$out"
  exec ffmpeg -hide_banner -loglevel error -nostdin -y "${ffmpeg_draw[@]}" \
    -c:v libx264 -preset ultrafast -b:v "$BITRATE" -g 60 \
    -f hls -hls_time 2 -hls_list_size 0 -hls_segment_filename "$out/segment%05d.ts" "$out/index.m3u8"
  ;;
ffmpeg-source)
  exec ffmpeg -hide_banner -loglevel error -nostdin -y "${ffmpeg_draw[@]}" -f yuv4mpegpipe "${2:?SOURCE.y4m}"
  ;;
pyav)
  exec "$PYTHON" "$here/pyav_skia_hls.py" "${2:?OUT_DIR}" --frames "$FRAMES" --bitrate "$BITRATE"
  ;;
pyav-design)
  exec "$PYTHON" "$here/pyav_skia_hls.py" "${2:?OUT_DIR}" --frames "$FRAMES" --bitrate "$BITRATE" --per-frame-surface
  ;;
pyav-source | pyav-design-source)
  exec "$PYTHON" "$here/pyav_skia_hls.py" --source "${2:?SOURCE.y4m}" --frames "$FRAMES"
  ;;
x264-same)
  out=${3:?OUT_DIR}
  mkdir -p "$out"
  exec ffmpeg -hide_banner -loglevel error -nostdin -y -i "${2:?SOURCE.y4m}" \
    -c:v libx264 -preset ultrafast -b:v "$BITRATE" -g 60 \
    -f hls -hls_time 2 -hls_list_size 0 -hls_segment_filename "$out/segment%05d.ts" "$out/index.m3u8"
  ;;
quality)
  # Frames pair by index: both streams are re-stamped 0, 1, 2… (HLS starts
  # at 1.4 s or 3600 s, and 90 kHz rounding would pair a frame with its
  # predecessor).
  exec ffmpeg -hide_banner -nostdin -i "${2:?OUT.m3u8}" -i "${3:?SOURCE.y4m}" -lavfi \
    "[0:v]settb=1/30,setpts=N,split[a0][a1];[1:v]settb=1/30,setpts=N,split[b0][b1];[a0][b0]psnr;[a1][b1]ssim" \
    -f null -
  ;;
all)
  shift
  cd "$root"
  cargo build --release -p streamkit-cli
  exec ./target/release/streamkit bench hls --anchor "$@"
  ;;
*)
  sed -n '2,25p' "$0" >&2
  exit 2
  ;;
esac
