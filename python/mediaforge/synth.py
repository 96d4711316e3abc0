"""Music-like signals made with numpy and encoded with PyAV's real encoders: the songs
the audio fingerprint tests and benchmark use. Each seed is a different tune (tempo,
key, chords, melody, drums); the same seed always gives the same samples. And
screenshots of one app, which the near-duplicate tests and benchmark tell apart.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

SCALES = ([0, 2, 4, 5, 7, 9, 11], [0, 2, 3, 5, 7, 8, 10])


def screenshot(seed: int) -> Any:
    """A Pillow picture of one app's window (title bar, side bar, 1280x800) around lines of
    words that differ by seed: screenshots of one app, alike in their 64-bit pHash."""
    import random

    from PIL import Image, ImageDraw, ImageFont

    rnd = random.Random(seed)
    words = "the of and to in is that for it as was with be by on not this are or from at which but have".split()
    im = Image.new("RGB", (1280, 800), (245, 245, 245))
    d = ImageDraw.Draw(im)
    d.rectangle((0, 0, 1280, 60), fill=(40, 60, 120))
    d.rectangle((0, 60, 240, 800), fill=(225, 228, 235))
    font = ImageFont.load_default(size=18)
    for i in range(12):
        d.text((20, 80 + i * 40), rnd.choice(words).title(), fill=(30, 30, 30), font=font)
    for i in range(18):
        d.text((270, 90 + i * 36), " ".join(rnd.choice(words) for _ in range(rnd.randrange(4, 12))),
               fill=(20, 20, 20), font=font)
    return im


def song_pcm(seed: int, seconds: float, rate: int = 44100) -> Any:
    """Mono float32 samples in [-0.8, 0.8]: bass, a melody with harmonics, kick and hats."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    out = np.zeros(n, np.float32)
    beat = 60 / rng.uniform(70, 170)
    root = int(rng.integers(45, 57))
    scale = SCALES[int(rng.integers(0, 2))]
    harmonics = rng.uniform(0.2, 0.8, 4)

    def note(start: float, length: float, midi: int, amp: float, decay: float) -> None:
        i0 = int(start * rate)
        i1 = min(n, i0 + int(length * rate))
        if i0 >= n:
            return
        t = np.arange(i1 - i0) / rate
        f = 440 * 2 ** ((midi - 69) / 12)
        wave = sum(harmonics[k] / (k + 1) * np.sin(2 * np.pi * f * (k + 1) * t) for k in range(4))
        out[i0:i1] += (amp * wave * np.minimum(1, t / 0.01) * np.exp(-t * decay)).astype(np.float32)

    def hit(start: float, length: float, make: Any) -> None:
        i0 = int(start * rate)
        if i0 < n:
            m = min(n - i0, int(length * rate))
            out[i0:i0 + m] += make(np.arange(m) / rate).astype(np.float32)

    chords = rng.integers(0, 7, 4)
    t, bar = 0.0, 0
    while t < seconds:
        chord = int(chords[bar % 4])
        note(t, 4 * beat, root - 12 + scale[chord], 0.3, 1.0)
        for b in range(8):
            deg = chord + int(rng.integers(-3, 5))
            if rng.random() < 0.8:
                note(t + b * beat / 2, beat / 2 * rng.uniform(0.5, 1.5), root + 12 * (deg // 7) + scale[deg % 7] + 12,
                     0.2, 3.0)
        for b in range(4):
            if b % 2 == 0:
                hit(t + b * beat, 0.2, lambda x: 0.5 * np.sin(2 * np.pi * (60 + 60 * np.exp(-x * 30)) * x)
                    * np.exp(-x * 15))
            for h in (0.0, 0.5):
                if rng.random() < 0.7:
                    noise = rng.standard_normal(int(0.05 * rate))
                    hit(t + (b + h) * beat, 0.05, lambda x, z=noise: 0.08 * z[: len(x)] * np.exp(-x * 60))
        t += 4 * beat
        bar += 1
    return np.clip(out / max(1e-6, float(np.abs(out).max())) * 0.8, -1, 1)


def write_audio(path: Path, pcm: Any, rate: int, codec: str, fmt: str, bit_rate: int | None = None,
                out_rate: int | None = None) -> None:
    """Encode mono float samples as stereo with a real encoder (PyAV), resampling to
    `out_rate` when given (Opus wants 48 kHz)."""
    import av
    import numpy as np

    with av.open(str(path), "w", format=fmt) as c:
        stream = c.add_stream(codec, rate=out_rate or rate)
        stream.layout = "stereo"
        if bit_rate:
            stream.bit_rate = bit_rate
        resampler = av.AudioResampler(format=stream.format.name, layout="stereo", rate=out_rate or rate)
        both = np.stack([pcm, pcm]).astype(np.float32)
        for i in range(0, len(pcm), 4096):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(both[:, i:i + 4096]), format="fltp",
                                               layout="stereo")
            frame.sample_rate, frame.pts, frame.time_base = rate, i, Fraction(1, rate)
            for f in resampler.resample(frame):
                for p in stream.encode(f):
                    c.mux(p)
        for f in resampler.resample(None):
            for p in stream.encode(f):
                c.mux(p)
        for p in stream.encode():
            c.mux(p)
