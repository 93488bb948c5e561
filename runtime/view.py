"""Watching a live run as it goes: `--view` serves the observed and predicted frames to Foxglove over its
WebSocket protocol (foxglove.websocket.v1, `foxglove-sdk`) on the loopback address; `--show` opens a
local window (Tk, Python's own toolkit: the `video` extra's OpenCV is the headless build, which has no
window backend).

The served topics are the MCAP output's (runtime/ros2.py): /vgpt/observed and /vgpt/predicted as
sensor_msgs/msg/Image in CDR, /vgpt/stats as JSON, each message logged at its stamp.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from vgpt.errors import VgptError
from vgpt.runtime.output import side_by_side
from vgpt.runtime.ros2 import TOPICS, VgptTopics, schema_data

log = logging.getLogger(__name__)

VIEW_HOST = "127.0.0.1"  # loopback only: the frames of a robot's camera are not served to the network


class ViewError(VgptError, RuntimeError):
    """A live view that cannot start (port taken, no display, library missing)."""


class FoxgloveView(VgptTopics):
    """A Foxglove WebSocket server of one run (its own foxglove Context, so two runs in one process
    never share channels). `port` 0 takes a free port; `.port` says which."""

    def __init__(self, port: int = 8765, frame_id: str = "vgpt") -> None:
        try:
            import foxglove
        except ImportError as err:
            raise ImportError("--view needs the Foxglove SDK: pip install 'vgpt[robotics]'") from err
        self.frame_id = frame_id
        self._context = foxglove.Context()
        try:
            self._server = foxglove.start_server(name="vgpt-run", host=VIEW_HOST, port=port, context=self._context)
        except Exception as err:  # the SDK raises its own error when the port is taken
            raise ViewError(f"--view cannot serve on {VIEW_HOST}:{port}: {err}; choose another --view-port (0: any "
                            "free port)") from None  # fmt: skip
        schemas = {
            name: foxglove.Schema(name=name, encoding=kind, data=schema_data(name)) for _, name, kind, _ in TOPICS
        }
        self._channels = {topic: foxglove.Channel(topic, schema=schemas[name], message_encoding=encoding,
                                                  context=self._context)
                          for topic, name, _, encoding in TOPICS}  # fmt: skip
        self.port = self._server.port
        log.info("live view: open Foxglove and connect to ws://%s:%d (Open connection > Foxglove WebSocket)",
                 VIEW_HOST, self.port)  # fmt: skip

    def _publish(self, topic: str, stamp: int, data: bytes) -> None:
        self._channels[topic].log(data, log_time=stamp)

    def close(self) -> None:
        if self._server is not None:
            for channel in self._channels.values():
                channel.close()
            self._server.stop()
            self._server = None

    abort = close


def check_display() -> None:
    """`--show` needs a display and Tk; refuse before the model loads when either is missing."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise ViewError("--show opens a window and no display is set (DISPLAY); on a robot without a screen use "
                        "--view and watch in Foxglove")  # fmt: skip
    try:
        import tkinter  # noqa: F401
    except ImportError:
        raise ViewError("--show needs Tk (Python's tkinter, e.g. apt-get install python3-tk); or use --view") from None


class Window:
    """`--show`: a window with the newest observed frame beside the frame predicted for that same time
    (so the two show one instant: what the camera saw, what the model said it would see), refreshed per
    observed frame. Closing the window stops showing, not the run."""

    def __init__(self, title: str = "vgpt-run") -> None:
        import tkinter

        check_display()
        try:
            self._root = tkinter.Tk()
        except tkinter.TclError as err:
            raise ViewError(f"--show cannot open a window on {os.environ.get('DISPLAY')}: {err}") from None
        self._root.title(title)
        self._root.protocol("WM_DELETE_WINDOW", self.close)
        self._label = tkinter.Label(self._root, borderwidth=0, highlightthickness=0)
        self._label.pack()
        self._tk = tkinter
        self._photo = None
        self._predicted: dict[int, tuple[np.ndarray, int]] = {}  # stamp -> (frame, horizon)

    def observed(self, stamp: int, frame: np.ndarray) -> None:
        if self._root is None:
            return
        if self._predicted:  # the prediction for the time nearest this frame's
            near = min(self._predicted, key=lambda t: abs(t - stamp))
            right, label = self._predicted[near][0], f"predicted +{self._predicted[near][1]}"
            for t in [t for t in self._predicted if t <= near]:
                del self._predicted[t]
        else:
            right, label = np.zeros_like(frame), "no prediction yet"
        self.draw(side_by_side(frame, right, "observed", label))

    def predicted(self, stamps: list[int], frames: np.ndarray) -> None:
        self._predicted.update({t: (f, k + 1) for k, (t, f) in enumerate(zip(stamps, frames, strict=True))})

    def stats(self, stamp: int, fields: dict) -> None:
        pass  # the window shows frames; the numbers are on /vgpt/stats and in --stats

    def draw(self, rgb: np.ndarray) -> None:
        h, w, _ = rgb.shape
        ppm = b"P6 %d %d 255\n" % (w, h) + np.ascontiguousarray(rgb, np.uint8).tobytes()
        self._photo = self._tk.PhotoImage(data=ppm, format="PPM")
        self._label.configure(image=self._photo)
        self._root.update()

    def close(self) -> None:
        root, self._root = getattr(self, "_root", None), None
        if root is not None:
            root.destroy()

    abort = close
