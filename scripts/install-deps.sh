#!/usr/bin/env bash
# Installs the system packages Vigil needs on Debian 12. Idempotent: installs
# only what is missing.
#
#   install-deps.sh          to build and run: a C compiler and pkg-config for
#                            cgo, FFmpeg's libraries (decoding, demuxing),
#                            OpenBLAS (tracking's and training's products)
#   install-deps.sh --test   also the peers the tests start: the ffmpeg CLI
#                            (clips, RTSP publishing), GStreamer's RTSP server
#                            (H.265 camera), Chromium (WebRTC publisher)
set -euo pipefail

pkgs=(gcc pkg-config libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libopenblas-dev ffmpeg)
if [ "${1:-}" = "--test" ]; then
  pkgs+=(gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-tools
    gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
    gstreamer1.0-plugins-ugly gstreamer1.0-libav chromium)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v go >/dev/null 2>&1; then
  echo "Go 1.26 is required (https://go.dev/dl/); put it on PATH and run again" >&2
  exit 1
fi
