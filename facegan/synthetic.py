"""Procedurally drawn faces: the embedded dataset for quick runs and tests (no download, no real people).

Every face is a few soft-edged ellipses drawn on a coordinate grid, vectorised over a whole batch with numpy, so
thousands are drawn in a second. The parameters (skin tone, face shape, eyes, brows, mouth, hair, clothes,
background, a head tilt) come from one seed: the same seed always draws the same faces.
"""
from __future__ import annotations

import numpy as np

SKIN_TONES = np.array([[255, 224, 196], [241, 194, 160], [224, 172, 130], [198, 134, 90], [141, 85, 54],
                       [92, 58, 38]], dtype=np.float32) / 255
HAIR_COLOURS = np.array([[20, 17, 15], [60, 40, 30], [110, 70, 40], [180, 140, 80], [230, 200, 130],
                         [150, 60, 30], [170, 170, 170]], dtype=np.float32) / 255
IRIS_COLOURS = np.array([[70, 45, 25], [40, 90, 160], [60, 120, 70], [110, 90, 60]], dtype=np.float32) / 255


def _ellipse(x, y, cx, cy, rx, ry, size):
    """Coverage in [0, 1] of axis-aligned ellipses (one per face), antialiased over about one pixel."""
    cx, cy, rx, ry = (a[:, None, None] for a in (cx, cy, rx, ry))
    d = np.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2)
    return np.clip((1 - d) * np.minimum(rx, ry) * size / 2 + 0.5, 0, 1)


def _paint(canvas, mask, colour):
    """Alpha-blend one colour per face into the canvas where the mask covers it."""
    m = mask[..., None]
    canvas *= 1 - m
    canvas += m * colour[:, None, None, :]


def draw_faces(n: int, size: int = 64, seed: int = 0) -> np.ndarray:
    """``n`` synthetic faces as uint8 RGB, shape (n, size, size, 3)."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for start in range(0, n, 256):
        k = min(256, n - start)
        out[start:start + k] = _draw_batch(k, size, rng)
    return out


def _draw_batch(n, size, rng):
    u = lambda lo, hi: rng.uniform(lo, hi, n).astype(np.float32)  # noqa: E731
    pick = lambda table: table[rng.integers(0, len(table), n)]  # noqa: E731
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
    gy, gx = np.meshgrid(coords, coords, indexing="ij")
    # a small head tilt: facial features are drawn in rotated coordinates
    tilt = u(-0.25, 0.25)[:, None, None]
    x = gx * np.cos(tilt) + gy * np.sin(tilt)
    y = -gx * np.sin(tilt) + gy * np.cos(tilt)

    top, bottom = rng.uniform(0.2, 0.9, (n, 3)), rng.uniform(0.1, 0.8, (n, 3))
    t = (gy[None, ..., None] + 1) / 2
    canvas = (top[:, None, None, :] * (1 - t) + bottom[:, None, None, :] * t).astype(np.float32)

    skin = pick(SKIN_TONES) * u(0.92, 1.05)[:, None]
    hair = pick(HAIR_COLOURS) * u(0.8, 1.1)[:, None]
    face_x, face_y = u(-0.06, 0.06), u(0.0, 0.12)
    face_rx, face_ry = u(0.40, 0.52), u(0.55, 0.70)

    # hair behind the head (long hair reaches further down), then shoulders and neck
    hair_len = u(0.0, 0.5)
    _paint(canvas, _ellipse(x, y, face_x, face_y - 0.1 + hair_len / 2, face_rx * u(1.1, 1.35),
                            face_ry * 0.95 + hair_len / 2, size), np.clip(hair, 0, 1))
    _paint(canvas, _ellipse(gx, gy, face_x, np.full(n, 1.25, np.float32), u(0.8, 1.1), u(0.45, 0.6), size),
           rng.uniform(0.05, 0.9, (n, 3)).astype(np.float32))
    _paint(canvas, _ellipse(gx, gy, face_x, face_y + 0.6, face_rx * 0.5, np.full(n, 0.35, np.float32), size),
           skin * 0.85)

    # the face, shaded darker towards its edge
    face = _ellipse(x, y, face_x, face_y, face_rx, face_ry, size)
    r2 = ((x - face_x[:, None, None]) / face_rx[:, None, None]) ** 2 + \
         ((y - face_y[:, None, None]) / face_ry[:, None, None]) ** 2
    shade = 1 - 0.18 * np.clip(r2, 0, 1)
    m = face[..., None]
    canvas *= 1 - m
    canvas += m * skin[:, None, None, :] * shade[..., None]

    # a fringe: the hair ellipse again, but only above a hairline that sits on the forehead
    hairline = (face_y - face_ry * u(0.35, 0.7))[:, None, None]
    fringe = _ellipse(x, y, face_x, face_y - 0.08, face_rx * 1.08, face_ry * 1.02, size)
    fringe *= np.clip((hairline - y) * size / 2 + 0.5 + 0.15 * np.cos(x * 6), 0, 1)
    _paint(canvas, fringe, np.clip(hair, 0, 1))

    # eyes: white, iris, pupil; then brows above them
    eye_dx, eye_y = face_rx * u(0.35, 0.48), face_y - face_ry * u(0.05, 0.2)
    eye_rx, eye_ry = u(0.08, 0.12), u(0.035, 0.06)
    iris, gaze = pick(IRIS_COLOURS), u(-0.03, 0.03)
    brow_y, brow_rx, brow_ry = eye_y - u(0.1, 0.17), eye_rx * u(1.1, 1.5), u(0.015, 0.03)
    for side in (-1, 1):
        ex = face_x + side * eye_dx
        _paint(canvas, _ellipse(x, y, ex, eye_y, eye_rx, eye_ry, size), np.full((n, 3), 0.95, np.float32))
        _paint(canvas, _ellipse(x, y, ex + gaze, eye_y, eye_ry * 0.95, eye_ry * 0.95, size), iris)
        _paint(canvas, _ellipse(x, y, ex + gaze, eye_y, eye_ry * 0.45, eye_ry * 0.45, size),
               np.full((n, 3), 0.05, np.float32))
        _paint(canvas, _ellipse(x, y, ex, brow_y, brow_rx, brow_ry, size), np.clip(hair * 0.7, 0, 1))

    # nose: a soft shadow; mouth: lips, with a smile cut out of the top by a second ellipse
    _paint(canvas, 0.6 * _ellipse(x, y, face_x + 0.02, face_y + face_ry * 0.2, u(0.04, 0.07), u(0.08, 0.14), size),
           skin * 0.75)
    mouth_y, mouth_rx, mouth_ry = face_y + face_ry * u(0.45, 0.6), u(0.12, 0.22), u(0.03, 0.08)
    lips = np.clip(skin * np.array([0.85, 0.55, 0.55], np.float32) * u(0.8, 1.0)[:, None], 0, 1)
    smile = u(0.0, 1.0)
    mouth = _ellipse(x, y, face_x, mouth_y, mouth_rx, mouth_ry, size)
    mouth *= 1 - smile[:, None, None] * _ellipse(x, y, face_x, mouth_y - mouth_ry * 0.9, mouth_rx * 1.1,
                                                 mouth_ry, size)
    _paint(canvas, mouth, lips)

    canvas += rng.normal(0, 0.015, canvas.shape).astype(np.float32)  # a little sensor noise
    return (np.clip(canvas, 0, 1) * 255 + 0.5).astype(np.uint8)
