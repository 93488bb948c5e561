"""ROS 2 bags for the tests, written by the bag library itself (rosbags' rosbag2 Writer): a bag folder
with metadata.yaml and one .mcap or .db3 storage file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vgpt.bag import COMPRESSED, IMAGE, image_message, typestore

NS = 1_000_000_000
START = 1_700_000_000 * NS  # a stamp of the epoch's kind, as a robot's clock gives


def _raw(rgb: np.ndarray, encoding: str) -> tuple[np.ndarray, int]:
    """The pixels of a uint8 RGB frame in `encoding` (its bytes, one row's step)."""
    h, w, _ = rgb.shape
    encoding = {"8UC1": "mono8", "8UC3": "rgb8", "16UC1": "mono16"}.get(encoding, encoding)  # OpenCV-style aliases
    if encoding == "rgb8":
        return rgb, 3 * w
    if encoding == "bgr8":
        return rgb[:, :, ::-1], 3 * w
    if encoding in ("rgba8", "bgra8"):
        order = rgb if encoding == "rgba8" else rgb[:, :, ::-1]
        return np.concatenate([order, np.full((h, w, 1), 255, np.uint8)], axis=2), 4 * w
    if encoding == "mono8":
        return rgb[:, :, :1], w
    if encoding == "mono16":
        return (rgb[:, :, 0].astype("<u2") * 257).view(np.uint8), 2 * w
    return rgb, 3 * w  # any other name: RGB bytes under a label a reader must refuse


def write_bag(folder: Path, frames: np.ndarray, topic: str | None = "/camera/image_raw", storage: str = "mcap",
              encoding: str = "rgb8", compressed: str | None = None, stamps: list[int] | None = None,
              extra: dict[str, str] | None = None, fps: float = 10.0,
              log_times: list[int] | None = None) -> Path:  # fmt: skip
    """A bag folder: `frames` (uint8 RGB [F, H, W, 3]) on `topic` as Images in `encoding`, or as
    CompressedImages (`compressed` "jpeg" or "png"); header stamps `stamps` (ns; default every 1/fps s
    from START), logged at those times (or at `log_times`); `extra` topics: name -> "string" (std_msgs/String
    messages) or "image" (another camera, rgb8). `topic` None: no camera topic (the frames only time the extras)."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    ts = typestore()
    types = ts.types
    stamps = stamps if stamps is not None else [START + round(i * NS / fps) for i in range(len(frames))]
    log_times = log_times if log_times is not None else stamps
    plugin = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}[storage]
    with Writer(folder, version=9, storage_plugin=plugin) as writer:
        kind = COMPRESSED if compressed else IMAGE
        camera = writer.add_connection(topic, kind, typestore=ts) if topic else None
        others = {name: writer.add_connection(name, "std_msgs/msg/String" if what == "string" else IMAGE, typestore=ts)
                  for name, what in (extra or {}).items()}  # fmt: skip
        for i, (frame, stamp, logged) in enumerate(zip(frames, stamps, log_times, strict=True)):
            msg = image_message(frame, stamp, "camera")
            if compressed:
                import cv2

                suffix = {"jpeg": ".jpg", "png": ".png"}.get(compressed, ".png")  # other names label PNG bytes
                ok, data = cv2.imencode(suffix, np.ascontiguousarray(frame[:, :, ::-1]))
                assert ok
                msg = types[COMPRESSED](header=msg.header, format=compressed, data=data.reshape(-1))
            elif encoding != "rgb8":
                pixels, step = _raw(frame, encoding)
                h, w, _ = frame.shape
                msg = types[IMAGE](header=msg.header, height=h, width=w, encoding=encoding, is_bigendian=0, step=step,
                                   data=np.ascontiguousarray(pixels).reshape(-1))  # fmt: skip
            if camera is not None:
                writer.write(camera, logged, ts.serialize_cdr(msg, kind))
            for connection in others.values():
                if connection.msgtype == IMAGE:
                    other = image_message(255 - frame, stamp, "other")
                else:
                    other = types["std_msgs/msg/String"](data=f"tick {i}")
                writer.write(connection, logged + 1, ts.serialize_cdr(other, connection.msgtype))
    return folder


def storage_file(folder: Path) -> Path:
    """The bag's one storage file (.mcap or .db3)."""
    (found,) = [p for p in folder.iterdir() if p.suffix in (".mcap", ".db3")]
    return found


def main() -> None:
    """`python -m tests.bags OUT`: the README's demo bag, a synthetic scene on /front/image_raw at 10 fps
    beside a rear camera and a status topic."""
    import argparse

    from vgpt.synthetic import SceneConfig, render_video

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("out", type=Path, help="the bag folder to write (must not exist)")
    parser.add_argument("--seed", type=int, default=1_000_000, help="synthetic scene seed (held-out by default)")
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap")
    args = parser.parse_args()
    frames = render_video(args.seed, SceneConfig(frames=args.frames))
    write_bag(args.out, frames, topic="/front/image_raw", storage=args.storage,
              extra={"/rear/image_raw": "image", "/status": "string"})  # fmt: skip
    print(f"wrote {args.out}: {args.frames} frames on /front/image_raw, /rear/image_raw, /status")


if __name__ == "__main__":
    main()
