"""Video decoding benchmark: what indexing a video's frames costs, per minute of 1080p H.264.

Encodes a synthetic 1080p H.264 MP4 (``--seconds``, 30 fps, a keyframe every ``--gop`` frames as
phones write, a new scene every 5 s) with PyAV, then times ``isearchd.files.video.read_video``
(what the indexer runs: keyframes only, scene changes, at least one frame every 10 s) against a
full decode of every frame. Prints a table; writes JSON with the machine's CPU (from lscpu).

Usage: python benchmarks/bench_video.py [--seconds 60] [--gop 60] [--out benchmarks/results/video.json]
Not a test: numbers depend on the machine and its load. The model's time per frame is not in
these numbers (``bench_stages.py`` measures the tower).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from machine import cpu_model  # noqa: E402

from isearchd.files.video import VideoLimits, read_video  # noqa: E402
from tests.fixtures.shapes import CLASSES, render  # noqa: E402

FPS = 30


def encode(path: Path, seconds: int, gop: int) -> None:
    """A synthetic 1080p H.264 MP4: a new scene of the tiny model's shapes every 5 s, moving."""
    import av

    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
        stream.codec_context.gop_size = gop
        stream.options = {"preset": "ultrafast"}
        for n in range(seconds * FPS):
            colour, shape = CLASSES[(n // (5 * FPS)) % len(CLASSES)]
            if n % (5 * FPS) == 0:
                base = np.asarray(render(colour, shape, n, size=1080))
                picture = np.zeros((1080, 1920, 3), dtype=np.uint8)
                picture[:, 420:1500] = base
            frame = av.VideoFrame.from_ndarray(np.roll(picture, n % 7, axis=1), format="rgb24")
            frame.pts, frame.time_base = n, Fraction(1, FPS)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def full_decode(path: Path) -> int:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return sum(1 for _ in container.decode(stream))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--gop", type=int, default=60, help="frames between keyframes (60: 2 s at 30 fps)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "video.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.mp4"
        t0 = time.perf_counter()
        encode(path, args.seconds, args.gop)
        encode_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        video = read_video(path, VideoLimits(), side=224)
        index_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        decoded = full_decode(path)
        full_s = time.perf_counter() - t0
        size = path.stat().st_size
    minutes = args.seconds / 60
    result = {
        "cpu": f"{cpu_model()}, {os.cpu_count()} CPUs",
        "video": f"1920x1080 H.264 {FPS} fps, keyframe every {args.gop} frames, {args.seconds} s, {size} B",
        "encode_s": round(encode_s, 2),
        "frames_indexed": len(video.frames),
        "keyframes_decoded": video.keyframes_decoded,
        "frames_decoded": video.frames_decoded,
        "read_video_s": round(index_s, 3),
        "read_video_s_per_minute": round(index_s / minutes, 3),
        "read_video_minutes_per_hour": round(index_s / minutes * 60 / 60, 2),
        "keyframes_per_s": round(video.keyframes_decoded / index_s, 1),
        "full_decode_frames": decoded,
        "full_decode_s": round(full_s, 2),
        "full_decode_fps": round(decoded / full_s, 1),
        "full_decode_minutes_per_hour": round(full_s / minutes * 60 / 60, 2),
    }
    print(f"CPU: {result['cpu']}")
    print(f"video: {result['video']}")
    print(f"{'':28}{'seconds':>10}{'frames':>10}{'min per hour':>14}")
    print(f"{'read_video (keyframes)':28}{index_s:>10.2f}{video.frames_decoded:>10}"
          f"{result['read_video_minutes_per_hour']:>14}")  # fmt: skip
    full_mph = result["full_decode_minutes_per_hour"]
    print(f"{'full decode (every frame)':28}{full_s:>10.2f}{decoded:>10}{full_mph:>14}")
    print(f"frames indexed: {len(video.frames)} ({len(video.frames) / minutes:.1f} per minute)")
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
