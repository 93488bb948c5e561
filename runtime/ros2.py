"""The topics vgpt-run publishes, shared by the MCAP output (runtime/mcap_output.py) and the live view
(runtime/view.py), so a file and a live connection carry the same messages:

    /vgpt/observed   sensor_msgs/msg/Image (rgb8, CDR), each frame stamped with the time it was recorded
    /vgpt/predicted  sensor_msgs/msg/Image (rgb8, CDR), each frame stamped with the time it predicts
    /vgpt/stats      JSON (a JSON schema), one message per predicted clip

Every message is logged at its stamp, so a viewer's timeline lines a prediction up with the frame that
later arrived at that time.
"""

from __future__ import annotations

import json

import numpy as np

from vgpt.bag import IMAGE, image_message, typestore

OBSERVED, PREDICTED, STATS = "/vgpt/observed", "/vgpt/predicted", "/vgpt/stats"
STATS_SCHEMA = {
    "title": "vgpt.ClipStats",
    "description": "One predicted clip of vgpt-run",
    "type": "object",
    "properties": {
        "clip": {"type": "integer", "description": "1 for the first clip of the run"},
        "first_stamp": {"type": "integer", "description": "ns: the time the clip's first frame predicts"},
        "frames": {"type": "integer", "description": "frames in the clip"},
        "observed": {"type": "integer", "description": "frames observed before the clip was predicted"},
        "dropped": {"type": "integer", "description": "frames the live queue dropped so far"},
        "clip_seconds": {"type": "number", "description": "compute time of the clip"},
        "step_seconds": {"type": "number", "description": "compute time of one denoising step"},
    },
}
# (topic, schema name, schema encoding, message encoding) of each vgpt topic
TOPICS = ((OBSERVED, IMAGE, "ros2msg", "cdr"), (PREDICTED, IMAGE, "ros2msg", "cdr"),
          (STATS, STATS_SCHEMA["title"], "jsonschema", "json"))  # fmt: skip


def ros2_schema(msgtype: str) -> bytes:
    """The ros2msg schema text of a message type (its definition, then each nested type's)."""
    return typestore().generate_msgdef(msgtype, ros_version=2)[0].encode()


def schema_data(name: str) -> bytes:
    return json.dumps(STATS_SCHEMA).encode() if name == STATS_SCHEMA["title"] else ros2_schema(name)


class VgptTopics:
    """Serializes observed frames, predicted frames and clip stats into the vgpt topics' messages and
    hands each to `_publish(topic, stamp, data)`."""

    frame_id = "vgpt"

    def _publish(self, topic: str, stamp: int, data: bytes) -> None:
        raise NotImplementedError

    def _image(self, topic: str, stamp: int, frame: np.ndarray) -> None:
        self._publish(topic, stamp, bytes(typestore().serialize_cdr(image_message(frame, stamp, self.frame_id), IMAGE)))

    def observed(self, stamp: int, frame: np.ndarray) -> None:
        self._image(OBSERVED, stamp, frame)

    def predicted(self, stamps: list[int], frames: np.ndarray) -> None:
        for stamp, frame in zip(stamps, frames, strict=True):
            self._image(PREDICTED, stamp, frame)

    def stats(self, stamp: int, fields: dict) -> None:
        self._publish(STATS, stamp, json.dumps(fields).encode())
