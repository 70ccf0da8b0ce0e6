#!/usr/bin/python3
"""A GStreamer RTSP server for Vigil's tests: serves an H.265 test pattern.

Usage: rtsp_h265_server.py PORT WIDTH HEIGHT
Serves rtsp://127.0.0.1:PORT/h265 and prints "ready" once listening. Runs
until killed. Needs gir1.2-gst-rtsp-server-1.0, python3-gi and x265enc
(gstreamer1.0-plugins-bad). Run it with Debian's /usr/bin/python3.
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main():
    port, width, height = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    # No B-frames (zerolatency) and a key frame every 10 frames; the payloader
    # repeats VPS/SPS/PPS with every key frame (config-interval=-1).
    factory.set_launch(
        f"( videotestsrc is-live=true pattern=ball "
        f"! video/x-raw,width={width},height={height},framerate=25/1 "
        f"! x265enc tune=zerolatency speed-preset=ultrafast key-int-max=10 "
        f"! video/x-h265,profile=main ! rtph265pay name=pay0 pt=96 config-interval=-1 )"
    )
    factory.set_shared(True)
    server.get_mount_points().add_factory("/h265", factory)
    if server.attach(None) == 0:
        print("attach failed", flush=True)
        sys.exit(1)
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
