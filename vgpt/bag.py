"""ROS 2 bags as video: the image topic of an .mcap or .db3 bag (or of a bag folder with its
metadata.yaml), read with `rosbags` (optional extra `robotics`, imported lazily).

A bag's frames are sampled at the model's frame rate from their header stamps (`sample_stamps`): a
time grid at 1/fps from the first stamp, each grid time taking the frame stamped nearest to it, so a
recording at another rate or with jitter is neither thinned at random nor assumed evenly spaced.
Gaps and out-of-order stamps are counted and reported.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vgpt.commands import plural
from vgpt.video import VideoError, opencv

log = logging.getLogger(__name__)

BAG_SUFFIXES = (".mcap", ".db3")
IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (IMAGE, COMPRESSED)
# sensor_msgs/Image encodings: channels, bytes per channel, the channel order's conversion to RGB.
RAW_ENCODINGS = {
    "rgb8": (3, 1, None), "bgr8": (3, 1, "reverse"), "rgba8": (4, 1, None), "bgra8": (4, 1, "reverse"),
    "mono8": (1, 1, None), "mono16": (1, 2, None), "8UC1": (1, 1, None), "8UC3": (3, 1, None),
    "16UC1": (1, 2, None),
}  # fmt: skip
COMPRESSED_FORMATS = ("jpeg", "png")  # image_transport's "compressed" formats; "compressedDepth" is not an image


class BagError(VideoError):
    """A bag, topic or image message that cannot be read as video."""


class TopicError(BagError):
    """A bag without the image topic asked for, or without any."""


class AmbiguousTopicError(TopicError):
    """A bag with several image topics and none chosen: the user must choose, whatever the bag's use."""


def is_bag(path: str | Path) -> bool:
    path = Path(path)
    return path.suffix.lower() in BAG_SUFFIXES or (path.is_dir() and (path / "metadata.yaml").is_file())


def _rosbags():
    try:
        from rosbags.highlevel import AnyReader
        from rosbags.typesys import Stores, get_typestore
    except ImportError as err:
        raise ImportError("reading ROS 2 bags needs rosbags: pip install 'vgpt[robotics]'") from err
    return AnyReader, Stores, get_typestore


@functools.cache
def typestore():
    """ROS 2 Humble's message types (sensor_msgs and std_msgs are the same in every ROS 2 release)."""
    _, Stores, get_typestore = _rosbags()
    return get_typestore(Stores.ROS2_HUMBLE)


@contextlib.contextmanager
def open_bag(path: str | Path):
    """A rosbags AnyReader over one bag (file or folder); a bag it cannot open is one BagError."""
    AnyReader, _, _ = _rosbags()
    path = Path(path)
    if not path.exists():
        raise BagError(f"bag {path} does not exist")
    try:
        reader = AnyReader([path], default_typestore=typestore())
        reader.open()
    except Exception as err:  # rosbags raises its own error types for every broken bag
        files = [path] if path.is_file() else sorted(path.iterdir())
        if any(p.suffix.lower() == ".mcap" for p in files):
            fix = "`mcap recover` rescues a truncated .mcap"
        else:
            fix = "sqlite3's .recover rescues a damaged .db3; `ros2 bag reindex` rebuilds a lost metadata.yaml"
        raise BagError(f"cannot read the bag {path}: {err} (a truncated or corrupt recording; {fix})") from None
    try:
        yield reader
    finally:
        reader.close()


def topics(reader) -> dict[str, str]:
    """Every topic of the bag and its message type."""
    return {c.topic: c.msgtype for c in reader.connections}


def pick_topic(reader, path: str | Path, topic: str | None) -> str:
    """The image topic to read: `topic`, or the bag's one image topic when None."""
    found = topics(reader)
    counts = {t: sum(c.msgcount for c in reader.connections if c.topic == t) for t in found}
    images = [t for t, kind in found.items() if kind in IMAGE_TYPES]
    listed = ", ".join(f"{t} ({counts[t]} messages)" for t in images)
    if topic is not None:
        if topic not in found:
            raise TopicError(f"bag {path} has no topic {topic}; "
                           + (f"its image topics: {listed}" if images else "it has no image topic"))  # fmt: skip
        if found[topic] not in IMAGE_TYPES:
            raise TopicError(f"topic {topic} of {path} carries {found[topic]}, not images "
                             f"({' or '.join(IMAGE_TYPES)}); "
                           + (f"its image topics: {listed}" if images else "the bag has no image topic"))  # fmt: skip
        return topic
    if not images:
        others = ", ".join(f"{t} ({kind})" for t, kind in found.items()) or "none"
        raise TopicError(f"bag {path} has no image topic ({' or '.join(IMAGE_TYPES)}); its topics: {others}")
    if len(images) > 1:
        raise AmbiguousTopicError(f"bag {path} has {len(images)} image topics: {listed}; choose one with --topic")
    return images[0]


def _header_stamp(raw: bytes) -> int:
    """The header stamp (ns) of a CDR-serialized Image or CompressedImage, whose first field is the
    header: after the 4-byte encapsulation, int32 sec and uint32 nanosec in the stated byte order."""
    order = "<" if raw[1] == 1 else ">"
    sec, nanosec = struct.unpack_from(order + "iI", raw, 4)
    return sec * 1_000_000_000 + nanosec


def decode_image(msg, msgtype: str, where: str) -> np.ndarray:
    """uint8 RGB [H, W, 3] from an Image (the encodings of RAW_ENCODINGS; 16-bit ones keep their high
    byte) or a CompressedImage (jpeg, png). `where` names the message in errors."""
    if msgtype == COMPRESSED:
        kind = msg.format.lower()
        if "compresseddepth" in kind or not any(f in kind for f in (*COMPRESSED_FORMATS, "jpg")):
            raise BagError(f"{where}: compressed format {msg.format!r} is not supported (supported: "
                           f"{', '.join(COMPRESSED_FORMATS)})")  # fmt: skip
        cv2 = opencv()
        bgr = cv2.imdecode(np.asarray(msg.data, np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise BagError(f"{where}: the {msg.format} data cannot be decoded")
        return bgr[:, :, ::-1].copy()
    if msg.encoding not in RAW_ENCODINGS:
        raise BagError(f"{where}: image encoding {msg.encoding!r} is not supported (supported: "
                       f"{', '.join(RAW_ENCODINGS)})")  # fmt: skip
    channels, size, order = RAW_ENCODINGS[msg.encoding]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    data = np.asarray(msg.data, np.uint8)
    if h < 1 or w < 1 or step < w * channels * size or len(data) < h * step:
        raise BagError(f"{where}: a {w}x{h} {msg.encoding} image needs {h} rows of at least {w * channels * size} "
                       f"bytes, the message has step {step} and {len(data)} bytes")  # fmt: skip
    rows = data[: h * step].reshape(h, step)[:, : w * channels * size]  # [h, w * channels * size]
    if size == 2:  # 16 bit: keep the high byte (a shift, the display's usual reduction)
        pixels = rows.copy().view(">u2" if msg.is_bigendian else "<u2") >> 8
        rows = pixels.astype(np.uint8)
    img = rows.reshape(h, w, channels)  # [h, w, channels]
    if order == "reverse":
        img = img[:, :, [2, 1, 0, *range(3, channels)]]
    if channels == 1:
        img = np.repeat(img, 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3])


def image_message(rgb: np.ndarray, stamp: int, frame_id: str):
    """A sensor_msgs/msg/Image (rgb8) of a uint8 RGB [H, W, 3] frame stamped `stamp` ns."""
    types = typestore().types
    h, w, _ = rgb.shape
    header = types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](
        sec=stamp // 1_000_000_000, nanosec=stamp % 1_000_000_000), frame_id=frame_id)  # fmt: skip
    return types[IMAGE](header=header, height=h, width=w, encoding="rgb8", is_bigendian=0, step=3 * w,
                        data=np.ascontiguousarray(rgb, np.uint8).reshape(-1))  # fmt: skip


@dataclass(frozen=True)
class Timeline:
    """A stamped recording sampled at `fps`: `picks[k]` is the message (in the bag's order) shown at
    `times[k]` ns."""

    picks: np.ndarray  # int64 [K] message indices
    times: np.ndarray  # int64 [K] ns: first stamp + k / fps
    fps: float
    messages: int
    out_of_order: int  # messages stamped before one read earlier
    gaps: tuple[tuple[float, float], ...]  # (seconds from the start, length in seconds) of each hole
    repeated: int  # grid times that show the frame shown before (the recording is slower there)

    def notes(self) -> list[str]:
        notes = []
        if self.out_of_order:
            notes.append(f"{plural(self.out_of_order, 'message')} stamped before a message recorded earlier: "
                         "frames are ordered by their header stamps")  # fmt: skip
        if self.gaps:
            shown = ", ".join(f"{length:.2f} s at {at:.2f} s" for at, length in self.gaps[:3])
            more = ", ..." if len(self.gaps) > 3 else ""
            notes.append(f"{plural(len(self.gaps), 'gap')} in the stamps ({shown}{more}): the frame nearest each "
                         "sampling time stands in across it")  # fmt: skip
        if self.repeated:
            notes.append(f"{plural(self.repeated, 'sampling time')} of {len(self.times)} repeat the frame before "
                         f"(the recording has fewer frames than {self.fps:g} per second there)")  # fmt: skip
        return notes


def sample_stamps(stamps: np.ndarray | list[int], fps: float) -> Timeline:
    """Sample stamped frames at `fps`: grid times t0 + k / fps up to the last stamp, each taking the frame
    stamped nearest to it (the earlier one on a tie). A gap is a hole between consecutive stamps longer
    than twice the grid period and twice the recording's median interval."""
    stamps = np.asarray(stamps, np.int64)
    if not len(stamps):
        raise BagError("no stamped frame to sample")
    order = np.argsort(stamps, kind="stable")
    ahead = np.maximum.accumulate(stamps)
    out_of_order = int(np.sum(stamps[1:] < ahead[:-1]))
    ordered = stamps[order]
    period = 1e9 / fps
    count = int((ordered[-1] - ordered[0]) // period) + 1
    times = ordered[0] + np.round(np.arange(count) * period).astype(np.int64)
    right = np.clip(np.searchsorted(ordered, times), 0, len(ordered) - 1)
    left = np.clip(right - 1, 0, len(ordered) - 1)
    nearest = np.where(np.abs(ordered[left] - times) <= np.abs(ordered[right] - times), left, right)
    steps = np.diff(ordered)
    limit = 2 * max(period, float(np.median(steps)) if len(steps) else 0.0)
    holes = np.nonzero(steps > limit)[0]
    gaps = tuple(((ordered[i] - ordered[0]) / 1e9, steps[i] / 1e9) for i in holes)
    repeated = int(np.sum(nearest[1:] == nearest[:-1]))
    return Timeline(order[nearest], times, fps, len(stamps), out_of_order, gaps, repeated)


@dataclass(frozen=True)
class BagVideo:
    """One image topic of a bag, sampled at `timeline.fps`: what `probe` is to a video file."""

    path: Path
    topic: str
    msgtype: str
    width: int
    height: int
    frame_id: str
    stamp_source: str  # "header" or "log time" (a recording whose header stamps are all zero)
    timeline: Timeline

    @property
    def frames(self) -> int:
        return len(self.timeline.picks)

    @property
    def description(self) -> str:
        t = self.timeline
        return (f"{self.path} topic {self.topic} ({t.messages} {self.msgtype.rsplit('/', 1)[-1]} messages, "
                f"{self.width}x{self.height}, sampled at {t.fps:g} fps by {self.stamp_source} stamps: "
                f"{plural(self.frames, 'frame')})")  # fmt: skip


def _raw_messages(reader, path: Path, topic: str) -> Iterator[tuple[int, bytes]]:
    """(log time, CDR bytes) of the topic's messages in the bag's order; a read that fails midway is a
    BagError that says how far it got."""
    connections = [c for c in reader.connections if c.topic == topic]
    read = 0
    try:
        for _, log_time, raw in reader.messages(connections=connections):
            read += 1
            yield log_time, raw
    except BagError:
        raise
    except Exception as err:  # rosbags' and the storage's own errors
        raise BagError(f"cannot read the bag {path} after {plural(read, 'message')} of {topic}: {err} (a "
                       "truncated or corrupt recording)") from None  # fmt: skip


def probe_bag(path: str | Path, topic: str | None, fps: float) -> BagVideo:
    """The topic's stamps, frame size and sampling at `fps` (decodes the first frame only)."""
    path = Path(path)
    with open_bag(path) as reader:
        topic = pick_topic(reader, path, topic)
        msgtype = topics(reader)[topic]
        headers, log_times, first = [], [], None
        for log_time, raw in _raw_messages(reader, path, topic):
            if first is None:
                first = raw
            headers.append(_header_stamp(raw))
            log_times.append(log_time)
        if first is None:
            raise BagError(f"topic {topic} of {path} has no messages")
        msg = reader.deserialize(first, msgtype)
        frame = decode_image(msg, msgtype, f"{path} {topic} message 0")
    stamp_source = "header"
    if not any(headers):
        stamp_source, headers = "log time", log_times
        log.warning("%s %s: every header stamp is zero; sampling by the time each message was recorded", path, topic)
    timeline = sample_stamps(headers, fps)
    video = BagVideo(path, topic, msgtype, frame.shape[1], frame.shape[0], msg.header.frame_id, stamp_source, timeline)
    for note in timeline.notes():
        log.warning("%s %s: %s", path, topic, note)
    return video


def iter_bag_frames(video: BagVideo, picks: np.ndarray | None = None) -> Iterator[np.ndarray]:
    """Decoded frames (uint8 RGB [H, W, 3]) of `picks` (default: the whole timeline), in that order,
    reading the bag once: a message is held only from its reading to its last use."""
    picks = video.timeline.picks if picks is None else np.asarray(picks)
    if not len(picks):
        return
    last_use = {int(i): k for k, i in enumerate(picks)}
    held: dict[int, bytes] = {}
    shown: tuple[int, np.ndarray] | None = None
    k = 0
    with open_bag(video.path) as reader:
        for i, (_, raw) in enumerate(_raw_messages(reader, video.path, video.topic)):
            if i in last_use:
                held[i] = raw
            while k < len(picks) and int(picks[k]) in held:
                index = int(picks[k])
                if shown is None or shown[0] != index:
                    msg = reader.deserialize(held[index], video.msgtype)
                    frame = decode_image(msg, video.msgtype, f"{video.path} {video.topic} message {index}")
                    if frame.shape[:2] != (video.height, video.width):
                        (h, w), first = frame.shape[:2], f"{video.width}x{video.height}"
                        raise BagError(f"{video.path} {video.topic} message {index} is {w}x{h} px, the topic's "
                                       f"first is {first}")  # fmt: skip
                    shown = index, frame
                if last_use[index] == k:
                    del held[index]
                yield shown[1].copy()
                k += 1
            if k == len(picks):
                return
    if k < len(picks):
        raise BagError(f"{video.path} {video.topic}: ended before message {int(picks[k])}")
