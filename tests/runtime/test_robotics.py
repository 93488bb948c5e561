"""vgpt-run on ROS 2 bags: the prediction equals the image folder's, the MCAP output read back by the MCAP
library, --copy-topics, --realtime, a live recording that drops nothing, the Foxglove WebSocket view with
a real client of its protocol and the --show window under Xvfb."""

import contextlib
import json
import os
import shutil
import struct
import subprocess
import time

import numpy as np
import pytest
from click.testing import CliRunner

from tests.bags import NS, START, write_bag
from vgpt.bag import typestore
from vgpt.cli.run import run_main
from vgpt.runtime.config import RunConfig
from vgpt.runtime.run import run
from vgpt.video import read_frames

pytest.importorskip("rosbags")
pytest.importorskip("mcap")


def _run(*args):
    return CliRunner().invoke(run_main, [*args, "--no-progress"])


@pytest.fixture(scope="module")
def frames(clip_video):
    return read_frames(clip_video)  # uint8 [12, 48, 48, 3]


@pytest.fixture(scope="module")
def bag(frames, tmp_path_factory):
    """The clip on /front/image_raw at 10 fps, beside a rear camera and a text topic."""
    return write_bag(tmp_path_factory.mktemp("bags") / "run", frames, topic="/front/image_raw",
                     extra={"/rear/image_raw": "image", "/status": "string"})  # fmt: skip


def _mcap_messages(path):
    """{topic: [(log time, decoded message)]} of an MCAP file, decoded by mcap and mcap-ros2-support."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    found: dict[str, list] = {}
    with open(path, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        for schema, channel, message in reader.iter_messages():
            if channel.message_encoding == "json":
                decoded = json.loads(message.data)
                assert schema.encoding == "jsonschema" and json.loads(schema.data)["title"] == "vgpt.ClipStats"
            else:
                decoded = DecoderFactory().decoder_for(channel.message_encoding, schema)(message.data)
            found.setdefault(channel.topic, []).append((message.log_time, decoded))
    return found


def test_a_bag_predicts_what_the_same_frames_as_an_image_folder_predict(model_folder, frames, bag, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    import cv2

    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.ascontiguousarray(frame[:, :, ::-1]))
    outputs = {}
    for name, source in (
        ("bag", ["--input", str(bag), "--topic", "/front/image_raw"]),
        ("folder", ["--input", str(folder)]),
    ):
        out = tmp_path / name
        out.mkdir()
        result = _run(*source, "--engine", str(model_folder), "--output", str(out / "o.mp4"), "--clips", "2",
                      "--seed", "5", "--latents", str(out / "lat.npz"), "--frames-dir", str(out / "png"))  # fmt: skip
        assert result.exit_code == 0, result.output
        outputs[name] = np.load(out / "lat.npz")["prediction"], read_frames_dir(out / "png")
    # The same pixels and the same seed: the same noise and the same arithmetic, so exactly equal.
    np.testing.assert_array_equal(outputs["bag"][0], outputs["folder"][0])
    np.testing.assert_array_equal(outputs["bag"][1], outputs["folder"][1])


def read_frames_dir(folder):
    import cv2

    return np.stack([cv2.imread(str(p))[:, :, ::-1] for p in sorted(folder.glob("*.png"))])


def test_the_mcap_output_holds_observed_predicted_stats_and_the_copied_topics(model_folder, bag, tmp_path):
    out = tmp_path / "pred.mcap"
    result = _run("--input", str(bag), "--topic", "/front/image_raw", "--engine", str(model_folder), "--output",
                  str(out), "--clips", "2", "--copy-topics")  # fmt: skip
    assert result.exit_code == 0, result.output
    topics = _mcap_messages(out)
    # M=3 observed + 2 clips x G=2: the 7 frames read, and 4 predicted, at the layout's 32x32.
    observed, predicted, stats = topics["/vgpt/observed"], topics["/vgpt/predicted"], topics["/vgpt/stats"]
    period = NS // 10
    assert [t for t, _ in observed] == [START + i * period for i in range(7)]
    # Each predicted frame is stamped with the time it predicts: after the last history frame (2), 3 .. 6.
    assert [t for t, _ in predicted] == [START + i * period for i in range(3, 7)]
    for log_time, msg in observed + predicted:
        assert msg.header.stamp.sec * NS + msg.header.stamp.nanosec == log_time
        assert (msg.width, msg.height, msg.encoding, msg.step, len(msg.data)) == (32, 32, "rgb8", 96, 32 * 32 * 3)
        assert msg.header.frame_id == "camera"  # the input's frame
    assert [s["clip"] for _, s in stats] == [1, 2] and [s["first_stamp"] for _, s in stats] == [
        START + 3 * period, START + 5 * period]  # fmt: skip
    # Copied through as recorded: 12 messages on each of the bag's topics, the same bytes at the same times.
    assert {name: len(topics[name]) for name in ("/front/image_raw", "/rear/image_raw", "/status")} == dict.fromkeys(
        ("/front/image_raw", "/rear/image_raw", "/status"), 12)  # fmt: skip
    assert topics["/status"][4][1].data == "tick 4" and topics["/rear/image_raw"][0][0] == START + 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temporary file is left"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--copy-topics"], "--copy-topics copies the input bag's topics into an MCAP output"),
        (["--output", "x.mcap", "--view"], "--view is for a live run: add --live"),
        (["--output", "x.avi"], "an MP4 container, or ROS 2 image topics in an MCAP file"),
        (["--output", "x.mcap", "--topic", "/cam"], "--topic is for a ROS 2 bag input"),
        (["--output", "x.mcap", "--live", "--realtime", "--fps", "5"], "--fps is for a ROS 2 bag input"),
    ],
)
def test_robotics_options_are_refused_where_they_do_not_apply(args, message, clip_video, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = _run("--input", str(clip_video), *args)
    assert result.exit_code != 0 and message in result.output
    assert not list(tmp_path.iterdir()), "refused before anything was written"


def test_a_bag_topic_error_stops_before_the_model_loads(bag, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = _run("--input", str(bag), "--output", "x.mcap")
    assert (
        result.exit_code == 1 and "has 2 image topics: /front/image_raw (12 messages), /rear/image_raw" in result.output
    )


def test_live_mode_reads_a_recording_whole_and_realtime_at_its_pace(model_folder, bag, clip_video, tmp_path):
    config = {"model": str(model_folder), "live": True, "progress": False, "queue_size": 1}
    # A recording read as fast as it is consumed drops nothing: with a one-frame queue every frame is still
    # observed, so the 12 frames give a clip at 3, 5, 7, 9 and 11 frames.
    for source in (str(clip_video), str(bag)):
        summary = run(RunConfig(input=source, output=str(tmp_path / "o.mp4"), topic="/front/image_raw"
                                if source == str(bag) else None, **config))  # fmt: skip
        assert (summary.dropped, summary.clips) == (0, 5), source
    start = time.monotonic()
    summary = run(RunConfig(input=str(bag), topic="/front/image_raw", output=str(tmp_path / "live.mcap"), realtime=True,
                            **{**config, "queue_size": 0}))  # fmt: skip
    elapsed = time.monotonic() - start
    assert elapsed >= 1.1  # 12 frames 0.1 s apart: the last arrives 1.1 s after the first
    observed = _mcap_messages(tmp_path / "live.mcap")["/vgpt/observed"]
    assert len(observed) == 12 - summary.dropped and observed[0][0] == START


# Foxglove's WebSocket protocol: foxglove.sdk.v1 is what foxglove-sdk 0.30 serves, foxglove.websocket.v1 its
# earlier name (the same messages); the client offers both, as Foxglove does.
SUBPROTOCOLS = ("foxglove.sdk.v1", "foxglove.websocket.v1")


def _advertised(ws) -> dict:
    """The channels a Foxglove server advertises after its serverInfo, by topic."""
    channels = {}
    while len(channels) < 3:
        msg = json.loads(ws.recv(timeout=5))
        if msg["op"] == "advertise":
            channels.update({c["topic"]: c for c in msg["channels"]})
    return channels


def test_the_foxglove_view_serves_the_frames_to_a_real_websocket_client():
    pytest.importorskip("foxglove")
    pytest.importorskip("websockets")
    from websockets.sync.client import connect

    from vgpt.runtime.view import FoxgloveView

    with contextlib.ExitStack() as stack:
        view = FoxgloveView(port=0, frame_id="camera")
        stack.callback(view.close)
        ws = stack.enter_context(connect(f"ws://127.0.0.1:{view.port}", subprotocols=list(SUBPROTOCOLS),
                                         open_timeout=5))  # fmt: skip
        channels = _advertised(ws)
        assert ws.subprotocol in SUBPROTOCOLS
        image = channels["/vgpt/observed"]
        assert (image["encoding"], image["schemaName"], image["schemaEncoding"]) == ("cdr", "sensor_msgs/msg/Image",
                                                                                     "ros2msg")  # fmt: skip
        assert "uint8[] data" in image["schema"] and channels["/vgpt/stats"]["encoding"] == "json"
        ids = {topic: i for i, topic in enumerate(channels, start=1)}
        ws.send(json.dumps({"op": "subscribe", "subscriptions": [{"id": ids[t], "channelId": channels[t]["id"]}
                                                                 for t in channels]}))  # fmt: skip
        frame = np.arange(8 * 6 * 3, dtype=np.uint8).reshape(8, 6, 3)
        received = []
        for _ in range(50):  # the subscription takes effect asynchronously: log until the first frame comes through
            view.observed(START, frame)
            try:
                received.append(ws.recv(timeout=0.1))
                break
            except TimeoutError:
                pass
        assert received, "no frame reached the client"
        view.predicted([START + NS // 10, START + 2 * NS // 10], np.stack([frame, 255 - frame]))
        view.stats(START + NS // 10, {"clip": 1, "frames": 2})
        while len(received) < 4:
            received.append(ws.recv(timeout=5))
        by_topic = {}
        for data in received:
            # messageData: opcode 1, subscription id (uint32), log time (uint64), the payload; little endian.
            opcode, subscription, log_time = struct.unpack_from("<BIQ", data)
            topic = next(t for t, i in ids.items() if i == subscription)
            by_topic.setdefault(topic, []).append((opcode, log_time, data[13:]))
        (_, log_time, payload), = by_topic["/vgpt/observed"][-1:]  # fmt: skip
        msg = typestore().deserialize_cdr(payload, "sensor_msgs/msg/Image")
        assert log_time == START and (msg.width, msg.height, msg.header.frame_id) == (6, 8, "camera")
        np.testing.assert_array_equal(msg.data.reshape(8, 6, 3), frame)
        stamps = [t for _, t, _ in by_topic["/vgpt/predicted"]]
        assert stamps == [START + NS // 10, START + 2 * NS // 10]
        last = typestore().deserialize_cdr(by_topic["/vgpt/predicted"][1][2], "sensor_msgs/msg/Image")
        np.testing.assert_array_equal(last.data.reshape(8, 6, 3), 255 - frame)
        assert json.loads(by_topic["/vgpt/stats"][0][2]) == {"clip": 1, "frames": 2}
        assert {op for items in by_topic.values() for op, _, _ in items} == {1}


@pytest.fixture
def xvfb(monkeypatch):
    """A virtual X display for the window test (skipped where Xvfb is not installed)."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb)")
    pytest.importorskip("tkinter")
    display = f":{90 + os.getpid() % 500}"
    server = subprocess.Popen(["Xvfb", display, "-screen", "0", "640x480x24", "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    for _ in range(50):
        if os.path.exists(f"/tmp/.X11-unix/X{display[1:]}"):
            break
        time.sleep(0.1)
    else:
        server.kill()
        pytest.skip(f"Xvfb did not start on {display}")
    monkeypatch.setenv("DISPLAY", display)
    yield display
    server.terminate()
    server.wait(5)


def test_the_show_window_draws_observed_beside_the_prediction_for_that_time(xvfb):
    ImageGrab = pytest.importorskip("PIL.ImageGrab")
    from vgpt.runtime.output import side_by_side
    from vgpt.runtime.view import Window

    observed = np.zeros((32, 32, 3), np.uint8)
    observed[8:24, 8:24] = (250, 40, 40)
    predicted = np.zeros((2, 32, 32, 3), np.uint8)
    predicted[:, 10:26, 10:26] = (40, 200, 60)
    window = Window("test")
    try:
        window.predicted([START + NS // 10, START + 2 * NS // 10], predicted)
        window.observed(START + NS // 10, observed)  # the time the first predicted frame predicts
        root = window._root
        x, y, w, h = root.winfo_rootx(), root.winfo_rooty(), root.winfo_width(), root.winfo_height()
        shot = np.asarray(ImageGrab.grab(xdisplay=xvfb).convert("RGB"))[y : y + h, x : x + w]
    finally:
        window.close()
    want = side_by_side(observed, predicted[0], "observed", "predicted +1")
    assert shot.shape == want.shape
    np.testing.assert_array_equal(shot, want)  # the screen shows exactly the composed frame


def test_show_without_a_display_is_refused_before_the_model_loads(bag, tmp_path, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.chdir(tmp_path)
    result = _run("--input", str(bag), "--topic", "/front/image_raw", "--live", "--show", "--output", "x.mcap")
    assert result.exit_code == 1 and "--show opens a window and no display is set" in result.output
    assert not list(tmp_path.iterdir())


def test_vgpt_eval_on_bags_of_the_held_out_scenes_reports_what_the_scenes_give(tmp_path):
    import torch

    from tests.conftest import random_model
    from vgpt.checkpoint import save_checkpoint
    from vgpt.cli.eval import eval_main
    from vgpt.codecs import LightCodec
    from vgpt.config import get_preset
    from vgpt.synthetic import EVAL_SEED_START, SceneConfig, render_video

    save_checkpoint(random_model(get_preset("tiny")), tmp_path / "model")
    torch.manual_seed(0)
    LightCodec().eval().save(tmp_path / "codec")
    args = ["--checkpoint", str(tmp_path / "model"), "--codec", str(tmp_path / "codec"), "--count", "2", "--layout",
            "2,2", "--steps", "2", "--num-clips", "1", "--no-progress"]  # fmt: skip
    result = CliRunner().invoke(eval_main, [*args, "--json", str(tmp_path / "scenes.json")])
    assert result.exit_code == 0, result.output
    for i in range(2):
        write_bag(tmp_path / "bags" / f"scene{i}", render_video(EVAL_SEED_START + i, SceneConfig(frames=4)))
    bags = [*args, "--videos", str(tmp_path / "bags"), "--topic", "/camera/image_raw"]
    result = CliRunner().invoke(eval_main, [*bags, "--json", str(tmp_path / "bags.json")])
    assert result.exit_code == 0, result.output
    scenes, from_bags = (json.loads((tmp_path / f"{name}.json").read_text()) for name in ("scenes", "bags"))
    # rgb8 bags hold the scenes' pixels exactly, and the noise is the same: the same figures.
    for key in ("model_mse", "baseline_mse", "ratio"):
        assert from_bags[key] == scenes[key], key
    result = CliRunner().invoke(eval_main, [*bags[:-4], "--videos", str(tmp_path / "bags"), "--num-clips", "2"])
    assert result.exit_code == 1 and "has no topic" not in result.output
    assert "need 6 frames per video: use longer videos or fewer clips" in result.output


def test_vgpt_train_codec_takes_bags(tmp_path):
    from vgpt.cli.train import train_codec_main
    from vgpt.synthetic import SceneConfig, render_video

    for i in range(2):
        write_bag(tmp_path / "bags" / f"run{i}", render_video(i, SceneConfig(height=32, width=32, frames=10)),
                  topic="/front/image_raw", extra={"/rear/image_raw": "image"})  # fmt: skip
    args = ["--data", str(tmp_path / "bags"), "--out", str(tmp_path / "codec"), "--steps", "2", "--batch-size", "2",
            "--size", "32", "--eval-count", "2", "--no-progress"]  # fmt: skip
    result = CliRunner().invoke(train_codec_main, args)
    assert result.exit_code == 1 and "choose one with --topic" in result.output
    # 10 frames at 10 fps span 0.9 s: 5 frames at 5 fps, enough for samples of --frames 4; at 2 fps 2 are not.
    result = CliRunner().invoke(train_codec_main, [*args, "--topic", "/front/image_raw", "--fps", "2"])
    assert result.exit_code == 1 and "2 of 2 videos rejected (2 too short)" in result.output
    result = CliRunner().invoke(train_codec_main, [*args, "--topic", "/front/image_raw", "--fps", "5"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "codec" / "codec.safetensors").is_file()


def test_a_live_run_with_view_serves_its_predictions_to_a_client(model_folder, frames, tmp_path):
    pytest.importorskip("foxglove")
    pytest.importorskip("websockets")
    import socket
    import threading

    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    long = write_bag(tmp_path / "long", np.concatenate([frames, frames[::-1], frames]))  # 36 frames: 3.5 s
    with socket.socket() as s:  # a free port for the run's server
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = RunConfig(input=str(long), model=str(model_folder), output=None, live=True, realtime=True, view=True,
                       view_port=port, progress=False)  # fmt: skip
    done = {}
    thread = threading.Thread(target=lambda: done.setdefault("summary", run(config)))
    thread.start()
    received = []
    try:
        ws = None
        deadline = time.monotonic() + 300  # the server starts once the model is loaded (exported on first use)
        while ws is None and thread.is_alive() and time.monotonic() < deadline:
            try:
                ws = connect(f"ws://127.0.0.1:{port}", subprotocols=list(SUBPROTOCOLS), open_timeout=1)
            except OSError:
                time.sleep(0.02)
        assert ws is not None, "the run's server never accepted a connection"
        with ws:
            channels = _advertised(ws)
            ws.send(json.dumps({"op": "subscribe", "subscriptions": [{"id": i, "channelId": channels[t]["id"]}
                                                                     for i, t in enumerate(channels)]}))  # fmt: skip
            topics = list(channels)
            while thread.is_alive() or len(received) < 3:
                try:
                    data = ws.recv(timeout=1)
                except ConnectionClosed:  # the run ended and stopped its server
                    break
                except TimeoutError:
                    if not thread.is_alive():
                        break
                    continue
                if isinstance(data, str):  # a status or advertise message, not a message frame
                    continue
                _, subscription, log_time = struct.unpack_from("<BIQ", data)
                received.append((topics[subscription], log_time))
    finally:
        thread.join(30)
    summary = done["summary"]
    predicted = [t for topic, t in received if topic == "/vgpt/predicted"]
    assert summary.clips >= 2 and len(predicted) >= 2
    # Each served prediction is stamped on the recording's 10 fps grid, after the frames it was predicted from.
    assert all((t - START) % (NS // 10) == 0 and t > START for t in predicted)
    assert any(topic == "/vgpt/observed" for topic, _ in received)
