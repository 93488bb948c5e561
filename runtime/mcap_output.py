"""`vgpt-run --output pred.mcap`: the observed frames and the predicted clips as ROS 2 image topics (the
topics of runtime/ros2.py) in an MCAP file that Foxglove (and the MCAP and rosbags libraries) open,
written with the `mcap` library.

`copy_from` (a bag input, `--copy-topics`) copies every topic of the input bag in as it was recorded
(its schemas, CDR bytes and log times), so the prediction sits next to the robot's own data. The file
is written to a temporary sibling and renamed by `close()`; `abort()` leaves nothing.
"""

from __future__ import annotations

import logging
from pathlib import Path

from vgpt import __version__
from vgpt.atomic import StagedWriter, atomic_path
from vgpt.bag import open_bag
from vgpt.runtime.ros2 import TOPICS, VgptTopics, ros2_schema, schema_data

log = logging.getLogger(__name__)


def _mcap():
    try:
        from mcap.writer import CompressionType, Writer
    except ImportError as err:
        raise ImportError("writing MCAP needs the mcap library: pip install 'vgpt[robotics]'") from err
    return CompressionType, Writer


class McapOutput(VgptTopics, StagedWriter):
    def __init__(self, path: str | Path, frame_id: str = "vgpt", copy_from: str | Path | None = None) -> None:
        CompressionType, Writer = _mcap()
        self.path, self.frame_id, self.copy_from = Path(path), frame_id, copy_from
        self._atomic = atomic_path(self.path)
        self._file = open(self._atomic.__enter__(), "wb")
        self._writer = Writer(self._file, compression=CompressionType.ZSTD)
        # No profile: the "ros2" profile wants CDR on every channel, and /vgpt/stats is JSON.
        self._writer.start(profile="", library=f"vgpt {__version__}")
        schemas = {name: self._writer.register_schema(name, kind, schema_data(name)) for _, name, kind, _ in TOPICS}
        self._channels = {topic: self._writer.register_channel(topic, encoding, schemas[name])
                          for topic, name, _, encoding in TOPICS}  # fmt: skip
        self._sequence = dict.fromkeys(self._channels, 0)
        self.messages = 0

    def _publish(self, topic: str, stamp: int, data: bytes) -> None:
        self._writer.add_message(self._channels[topic], log_time=stamp, data=data, publish_time=stamp,
                                 sequence=self._sequence[topic])  # fmt: skip
        self._sequence[topic] += 1
        self.messages += 1

    def _copy(self) -> int:
        """Every topic of the input bag, as recorded; returns how many messages."""
        copied = 0
        schemas: dict[str, int] = {}
        channels: dict[int, int] = {}
        with open_bag(self.copy_from) as reader:
            for connection in reader.connections:
                if connection.topic in self._channels:
                    log.warning("--copy-topics: %s of %s is also a vgpt topic; not copied", connection.topic,
                                self.copy_from)  # fmt: skip
                    continue
                if connection.msgtype not in schemas:
                    text = connection.msgdef.data if connection.msgdef else ""
                    data = text.encode() if text else ros2_schema(connection.msgtype)  # an old bag records none
                    schemas[connection.msgtype] = self._writer.register_schema(connection.msgtype, "ros2msg", data)
                channels[connection.id] = self._writer.register_channel(connection.topic, "cdr",
                                                                        schemas[connection.msgtype])  # fmt: skip
            wanted = [c for c in reader.connections if c.id in channels]
            for connection, log_time, raw in reader.messages(connections=wanted):
                self._writer.add_message(channels[connection.id], log_time=log_time, data=bytes(raw),
                                         publish_time=log_time)  # fmt: skip
                copied += 1
        return copied

    def close(self) -> Path | None:
        if self._writer is None:
            return None
        try:
            if self.copy_from is not None:
                log.info("copied %d messages of %s into %s", self._copy(), self.copy_from, self.path)
            self._writer.finish()
            self._file.close()
        except BaseException:
            self.abort()
            raise
        atomic, self._writer = self._atomic, None
        atomic.__exit__(None, None, None)
        return self.path

    def abort(self) -> None:
        if self._writer is None:
            return
        self._writer = None
        self._file.close()
        err = OSError("aborted")
        self._atomic.__exit__(OSError, err, None)
