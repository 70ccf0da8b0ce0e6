#!/usr/bin/env bash
# Installs the system packages Vigil needs to build and test on Debian 12:
# FFmpeg's libraries and CLI (decoding, demuxing, test clips), pkg-config and
# a C compiler for cgo. Idempotent: installs only what is missing.
set -euo pipefail

# FFmpeg: decoding, demuxing and the clips tests make. GStreamer: the
# H.265 RTSP server that ingest tests read. Chromium: the WHIP publisher and
# viewer in browser tests.
pkgs=(gcc pkg-config libavcodec-dev libavformat-dev libavutil-dev libswscale-dev ffmpeg
  gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-tools
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
  chromium)

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
