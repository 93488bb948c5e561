"""A local HTTP MJPEG camera for trying `vgpt-run --live` on a stream: serves a video file (or synthetic
scenes) as multipart JPEG frames at a fixed rate on the loopback address, for a bounded time.

    python scripts/mjpeg_server.py --video demo/scene-0000000.mp4 --port 8090 --fps 8 --seconds 60 &
    vgpt-run --live --input http://127.0.0.1:8090/stream.mjpg --output live.mp4
"""

from __future__ import annotations

import argparse
import http.server
import itertools
import time

import cv2
import numpy as np

BOUNDARY = "vgptframe"


def frames(video: str | None, size: int):
    if video:
        from vgpt.video import read_frames

        clip = read_frames(video)
        yield from itertools.cycle(clip)
    from vgpt.synthetic import SceneConfig, render_video

    for seed in itertools.count(5_000_000):  # seeds no training or evaluation uses
        yield from render_video(seed, SceneConfig(height=size, width=size, frames=64))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", default=None, help="A video file to loop (default: synthetic scenes).")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--fps", type=float, default=8.0)
    parser.add_argument("--seconds", type=float, default=60.0, help="Stop serving after this long.")
    parser.add_argument("--size", type=int, default=64, help="Synthetic frame size (px).")
    args = parser.parse_args()
    source = frames(args.video, args.size)
    deadline = time.monotonic() + args.seconds

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.end_headers()
            tick = time.monotonic()
            while time.monotonic() < deadline:
                rgb = np.ascontiguousarray(next(source))
                ok, jpeg = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
                if not ok:
                    raise RuntimeError("JPEG encoding failed")
                try:
                    self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                                     .encode() + jpeg.tobytes() + b"\r\n")  # fmt: skip
                except (BrokenPipeError, ConnectionResetError):
                    return
                tick += 1.0 / args.fps
                time.sleep(max(0.0, tick - time.monotonic()))

        def log_message(self, *_):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.timeout = 0.5
    while time.monotonic() < deadline:
        server.handle_request()
    server.server_close()


if __name__ == "__main__":
    main()
