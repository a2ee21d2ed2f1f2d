"""``hershey``: the embedded default dataset, hand-drawn-looking glyphs rendered offline.

Why it exists: the paper's datasets (CUB, Cars196, SOP) need downloads of gigabytes and hours of
GPU time. A benchmark harness needs a default that runs anywhere, in minutes on a CPU, yet keeps
the shape of the problem: *many* classes (so proxies matter, docs/protocol.md RQ5), few images per class,
and a zero-shot split where train and test classes are disjoint (docs/protocol.md, "Protocol").

The classes are the glyphs of the 32 built-in fonts of the ``hershey-fonts`` package: the
public-domain Hershey vector fonts (A. V. Hershey, US National Bureau of Standards, 1967). Glyphs
that several fonts share with the same design are one class (compared on their strokes translated
to the origin), empty glyphs (space) are dropped; about 1,200 distinct shapes remain. A class id is
``"<font>:<char>"`` of the first font (in the package's font order) that has the shape.

Each image draws its glyph with seeded random jitter so that instances differ like different
hands: a random affine map (rotation, anisotropic scale, shear, translation), a small offset per
stroke, a little noise per vertex and a random pen width. Rendering uses PIL's line drawing on a
supersampled canvas that is box-filtered down (anti-aliasing); the default 24,000 images of 32 px
take a few seconds and are cached as an ``.npz`` under ``<root>/hershey``, keyed by a hash of the
config, a format version and the ``hershey-fonts`` version.

The split is class-disjoint: a seeded half of the classes trains, the other half tests.
"""

from __future__ import annotations

import importlib.metadata
import io
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from dml_bench.config import config_hash, to_dict
from dml_bench.data.base import DataRequest, DatasetConfig, DatasetSpec, Located
from dml_bench.data.images import check_split, seeded_class_split
from dml_bench.errors import ConfigError
from dml_bench.store.write import atomic_write_bytes

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
MIN_CLASSES = 4
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 16, 256
MIN_IMAGES_PER_CLASS, MAX_IMAGES_PER_CLASS = 2, 10_000
MAX_JITTER = 3.0

# Geometry, in fractions of the image side. A cap letter of the Roman fonts spans about 21 Hershey
# units; 32 units map to 0.9 of the image, so letters keep their relative sizes ("." stays small).
# Glyphs larger than the frame are shrunk to fit.
UNIT_SCALE = 0.9 / 32
MAX_EXTENT = 0.85
SUPERSAMPLED_SIDE = 128  # render on a canvas at least this wide, then box-filter down
PEN_WIDTH_AT_32PX = 1.75

# Jitter magnitudes at jitter=1.0 (all scale linearly with the config's ``jitter``).
ROTATION_SD = 0.15  # radians (~8.6 degrees)
LOG_SCALE_SD = 0.10  # per axis, so the aspect ratio varies too
SHEAR_SD = 0.15
TRANSLATION_MAX = 0.06  # uniform, per axis
STROKE_OFFSET_SD = 0.015
VERTEX_NOISE_SD = 0.005
LOG_PEN_WIDTH_MAX = 0.35  # uniform in [-max, max]


@dataclass(frozen=True)
class HersheyConfig(DatasetConfig):
    """``max_classes``: keep only the first N classes of the fixed glyph order (quick runs)."""

    image_size: int = 32
    images_per_class: int = 20
    max_classes: int | None = None
    seed: int = 0
    jitter: float = 1.0

    def __post_init__(self) -> None:
        _check_range("image_size", self.image_size, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE)
        _check_range(
            "images_per_class",
            self.images_per_class,
            MIN_IMAGES_PER_CLASS,
            MAX_IMAGES_PER_CLASS,
            why=" (retrieval needs at least one other image of the query's class)",
        )
        if self.max_classes is not None and self.max_classes < MIN_CLASSES:
            raise ConfigError(
                f"hershey: max_classes={self.max_classes} is too few; use at least {MIN_CLASSES} "
                "(half the classes train and half test, and each half needs two classes), or "
                "leave it unset for all classes."
            )
        if self.seed < 0:
            raise ConfigError(f"hershey: seed must be >= 0, got {self.seed}.")
        if not (0.0 <= self.jitter <= MAX_JITTER):
            raise ConfigError(
                f"hershey: jitter must be between 0 (clean glyphs) and {MAX_JITTER}, "
                f"got {self.jitter}."
            )


def _check_range(name: str, value: int, low: int, high: int, why: str = "") -> None:
    if not (low <= value <= high):
        raise ConfigError(f"hershey: {name} must be between {low} and {high}{why}, got {value}.")


# --------------------------------------------------------------------------------------------
# The glyph catalogue: one class per distinct shape.


@dataclass(frozen=True)
class GlyphClass:
    """A distinct glyph shape: its id and strokes (Hershey units, centred on the bounding box)."""

    class_id: str
    strokes: tuple[np.ndarray, ...]


StrokeList = Sequence[Sequence[tuple[int, int]]]


def shape_key(strokes: StrokeList) -> tuple[tuple[tuple[int, int], ...], ...]:
    """Strokes translated to the origin, each in a canonical direction, in a canonical order.

    Two fonts that share a design give the same key even when one lists the strokes in another
    order or draws one backwards.
    """
    points = [p for stroke in strokes for p in stroke]
    min_x = min(p[0] for p in points)
    min_y = min(p[1] for p in points)
    canonical = []
    for stroke in strokes:
        moved = tuple((x - min_x, y - min_y) for x, y in stroke)
        canonical.append(min(moved, moved[::-1]))
    return tuple(sorted(canonical))


def _has_ink(strokes: StrokeList) -> bool:
    return any(len(stroke) >= 2 for stroke in strokes)


def _char_label(char: str) -> str:
    return char if char.isprintable() and not char.isspace() else f"U+{ord(char):04X}"


def _centred(strokes: StrokeList) -> tuple[np.ndarray, ...]:
    arrays = [np.asarray(stroke, dtype=np.float64).reshape(-1, 2) for stroke in strokes]
    points = np.concatenate(arrays)
    centre = (points.min(axis=0) + points.max(axis=0)) / 2
    return tuple(a - centre for a in arrays)


def glyph_catalogue(limit: int | None = None) -> list[GlyphClass]:
    """Every distinct non-empty glyph of the built-in fonts, in font order then character order.

    ``limit`` stops after that many classes (loading only the fonts needed): the first N classes
    are the same with or without it.
    """
    from HersheyFonts import HersheyFonts

    fonts = HersheyFonts()
    seen: set[tuple[Any, ...]] = set()
    classes: list[GlyphClass] = []
    for font in fonts.default_font_names:
        fonts.load_default_font(font)
        for char, glyph in fonts.all_glyphs.items():
            strokes = [list(stroke) for stroke in glyph.strokes if len(stroke) > 0]
            if not strokes or not _has_ink(strokes):
                continue
            key = shape_key(strokes)
            if key in seen:
                continue
            seen.add(key)
            classes.append(GlyphClass(f"{font}:{_char_label(char)}", _centred(strokes)))
            if limit is not None and len(classes) >= limit:
                return classes
    return classes


# --------------------------------------------------------------------------------------------
# Rendering.


@dataclass(frozen=True)
class Styles:
    """Per-image random style of one class's ``n`` images (fractions of the image side)."""

    affine: np.ndarray  # n x 2 x 2
    shift: np.ndarray  # n x 2
    stroke_offsets: np.ndarray  # n x n_strokes x 2
    vertex_noise: np.ndarray  # n x n_points x 2
    pen_width_px: np.ndarray  # n, at the output resolution


def sample_styles(
    rng: np.random.Generator, n: int, n_strokes: int, n_points: int, jitter: float, size: int
) -> Styles:
    angle = rng.normal(0.0, ROTATION_SD, n) * jitter
    log_scale = rng.normal(0.0, LOG_SCALE_SD, (n, 2)) * jitter
    shear = rng.normal(0.0, SHEAR_SD, n) * jitter
    cos, sin = np.cos(angle), np.sin(angle)
    rotation = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)
    shearing = np.zeros((n, 2, 2))
    shearing[:, 0, 0] = shearing[:, 1, 1] = 1.0
    shearing[:, 0, 1] = shear
    scaling = np.zeros((n, 2, 2))
    scaling[:, 0, 0], scaling[:, 1, 1] = np.exp(log_scale[:, 0]), np.exp(log_scale[:, 1])
    return Styles(
        affine=rotation @ shearing @ scaling,
        shift=rng.uniform(-TRANSLATION_MAX, TRANSLATION_MAX, (n, 2)) * jitter,
        stroke_offsets=rng.normal(0.0, STROKE_OFFSET_SD, (n, n_strokes, 2)) * jitter,
        vertex_noise=rng.normal(0.0, VERTEX_NOISE_SD, (n, n_points, 2)) * jitter,
        pen_width_px=PEN_WIDTH_AT_32PX
        * size
        / 32
        * np.exp(rng.uniform(-LOG_PEN_WIDTH_MAX, LOG_PEN_WIDTH_MAX, n) * jitter),
    )


def render_class(
    glyph: GlyphClass, n: int, size: int, jitter: float, rng: np.random.Generator
) -> np.ndarray:
    """``n`` jittered drawings of one glyph: uint8 ``n x size x size``, white ink on black."""
    strokes = glyph.strokes
    points = np.concatenate(strokes)
    extent = float(np.ptp(points, axis=0).max())
    scale = min(UNIT_SCALE, MAX_EXTENT / extent) if extent > 0 else UNIT_SCALE
    stroke_of_point = np.repeat(np.arange(len(strokes)), [len(s) for s in strokes])
    styles = sample_styles(rng, n, len(strokes), len(points), jitter, size)

    # n x P x 2 in image fractions, centred at 0, then to supersampled pixel coordinates.
    base = points[None] * scale + styles.stroke_offsets[:, stroke_of_point] + styles.vertex_noise
    moved = np.einsum("nij,npj->npi", styles.affine, base) + styles.shift[:, None]
    factor = max(1, math.ceil(SUPERSAMPLED_SIDE / size))
    canvas = size * factor
    pixels = (moved + 0.5) * canvas
    bounds = np.cumsum([len(s) for s in strokes])[:-1]

    out = np.empty((n, size, size), dtype=np.uint8)
    for i in range(n):
        image = Image.new("L", (canvas, canvas), 0)
        draw = ImageDraw.Draw(image)
        width = max(1, round(float(styles.pen_width_px[i]) * factor))
        for stroke in np.split(pixels[i], bounds):
            if len(stroke) >= 2:
                draw.line(stroke.ravel().tolist(), fill=255, width=width, joint="curve")
        if factor > 1:
            image = image.resize((size, size), Image.Resampling.BOX)
        out[i] = np.asarray(image)
    return out


def class_rng(seed: int, class_index: int) -> np.random.Generator:
    """One stream per (seed, class): a class draws the same images whatever ``max_classes`` is."""
    return np.random.default_rng([seed, class_index])


def generate_images(
    glyphs: Sequence[GlyphClass], config: HersheyConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Render every class: (uint8 ``N x H x W`` images, int ``N`` catalogue class index)."""
    n = config.images_per_class
    images = np.empty((len(glyphs) * n, config.image_size, config.image_size), dtype=np.uint8)
    for index, glyph in enumerate(glyphs):
        images[index * n : (index + 1) * n] = render_class(
            glyph, n, config.image_size, config.jitter, class_rng(config.seed, index)
        )
    class_index = np.repeat(np.arange(len(glyphs), dtype=np.int32), n)
    return images, class_index


# --------------------------------------------------------------------------------------------
# The on-disk cache.


@dataclass(frozen=True)
class HersheyImages:
    """Every rendered image of a config, both splits: what the cache file holds."""

    images: np.ndarray  # N x H x W uint8
    class_index: np.ndarray  # N, index into class_ids
    class_ids: list[str]


def _fonts_version() -> str:
    try:
        return importlib.metadata.version("hershey-fonts")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def cache_path(root: Path, config: HersheyConfig) -> Path:
    key = {**to_dict(config), "format": FORMAT_VERSION, "hershey_fonts": _fonts_version()}
    return Path(root) / "hershey" / f"hershey-v{FORMAT_VERSION}-{config_hash(key)}.npz"


def _write_atomically(path: Path, data: HersheyImages) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        images=data.images,
        class_index=data.class_index,
        class_ids=np.asarray(data.class_ids, dtype=str),
        format=np.asarray(FORMAT_VERSION),
    )
    atomic_write_bytes(path, buffer.getvalue())


def _read_cache(path: Path, config: HersheyConfig) -> HersheyImages | None:
    """The cached images, or ``None`` when the file is absent, unreadable or of another format."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            data = HersheyImages(
                images=archive["images"],
                class_index=archive["class_index"],
                class_ids=[str(c) for c in archive["class_ids"]],
            )
            version = int(archive["format"])
    except (OSError, ValueError, KeyError) as exc:
        logger.warning("Ignoring unreadable Hershey cache %s (%s); rendering again.", path, exc)
        return None
    size = config.image_size
    expected = len(data.class_ids) * config.images_per_class
    if (
        version != FORMAT_VERSION
        or data.images.shape != (expected, size, size)
        or data.class_index.shape != (expected,)
    ):
        logger.warning("Ignoring Hershey cache %s: it does not match the config.", path)
        return None
    return data


def _select_glyphs(config: HersheyConfig) -> list[GlyphClass]:
    glyphs = glyph_catalogue(limit=config.max_classes)
    if config.max_classes is None:
        return glyphs
    if config.max_classes > len(glyphs):
        raise ConfigError(
            f"hershey: max_classes={config.max_classes} exceeds the {len(glyphs)} distinct glyphs "
            f"available; use a value between {MIN_CLASSES} and {len(glyphs)}, or leave it unset."
        )
    return glyphs[: config.max_classes]


def load_or_generate(root: Path, config: HersheyConfig) -> HersheyImages:
    """The images of ``config``: from the cache if present, else rendered and cached."""
    path = cache_path(root, config)
    cached = _read_cache(path, config)
    if cached is not None:
        logger.debug("Loaded Hershey images from %s", path)
        return cached
    glyphs = _select_glyphs(config)
    start = time.perf_counter()
    images, class_index = generate_images(glyphs, config)
    logger.info(
        "Rendered %d Hershey images (%d classes) in %.1f s; caching them in %s",
        len(images),
        len(glyphs),
        time.perf_counter() - start,
        path,
    )
    data = HersheyImages(images, class_index, [g.class_id for g in glyphs])
    _write_atomically(path, data)
    return data


# --------------------------------------------------------------------------------------------
# The dataset.


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``[0, 255]`` -> float32 ``[-1, 1]``, on the input's device (works on whole batches)."""
    return images.to(torch.float32) / 127.5 - 1.0


class HersheyDataset(torch.utils.data.Dataset):
    """One split of the Hershey glyphs, held in memory.

    ``images`` is the split's uint8 tensor ``N x 1 x H x W`` and ``label_tensor`` its labels, so
    a training loop can index whole batches (``to_unit_range(ds.images[idx])``) without per-item
    Python overhead; ``__getitem__`` gives the same values one item at a time.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: list[int],
        classes: list[str],
        transform: Callable[[Any], Any] | None = None,
    ) -> None:
        self.images = images
        self.labels: Sequence[int] = labels
        self.label_tensor = torch.as_tensor(labels, dtype=torch.int64)
        self.classes: Sequence[str] = classes
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = to_unit_range(self.images[index])
        if self.transform is not None:
            image = self.transform(image)
        return image, self.labels[index]

    def get_batch(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Items ``indices`` as one batch, gathered in one indexing operation instead of one
        Python call per item (the glyphs live in memory; per-item calls would dominate a step)."""
        index = torch.as_tensor(indices, dtype=torch.long)
        images = to_unit_range(self.images[index])
        if self.transform is not None:
            images = torch.stack([self.transform(image) for image in images])
        return images, self.label_tensor[index]

    def thumbnail(self, index: int, size: int = 64) -> np.ndarray:
        """Item ``index`` as uint8 ``size x size x 3`` (grey replicated to RGB for figures)."""
        grey = Image.fromarray(self.images[index, 0].cpu().numpy())
        grey = grey.resize((size, size), Image.Resampling.BILINEAR)
        return np.repeat(np.asarray(grey)[:, :, None], 3, axis=2)

    def __repr__(self) -> str:
        return f"HersheyDataset(items={len(self)}, classes={len(self.classes)})"


def split_classes(class_ids: Sequence[str], seed: int) -> tuple[list[str], list[str]]:
    """Half the classes train, half test, chosen by ``seed``; disjoint by construction."""
    return seeded_class_split(class_ids, seed, test_fraction=0.5)


def build(request: DataRequest, config: HersheyConfig) -> HersheyDataset:
    split = check_split(request.split)
    data = load_or_generate(Path(request.root), config)
    train_ids, test_ids = split_classes(data.class_ids, config.seed)
    if set(train_ids) & set(test_ids):
        raise AssertionError("Hershey train and test classes overlap")
    chosen = train_ids if split == "train" else test_ids
    position = {c: i for i, c in enumerate(data.class_ids)}
    # catalogue index -> label within the split (-1: other split)
    to_label = np.full(len(data.class_ids), -1, dtype=np.int64)
    to_label[[position[c] for c in chosen]] = np.arange(len(chosen))
    item_labels = to_label[data.class_index]
    keep = np.flatnonzero(item_labels >= 0)
    images = torch.from_numpy(np.ascontiguousarray(data.images[keep])).unsqueeze(1)
    return HersheyDataset(images, item_labels[keep].tolist(), list(chosen), request.transform)


def locate(root: Path, config: HersheyConfig) -> Located:
    path = cache_path(Path(root), config)
    if path.is_file():
        detail = "rendered images cached"
    else:
        detail = "not rendered yet; generated offline on first use (a few seconds) and cached here"
    return Located(path=path, found=True, detail=detail)


SPEC: DatasetSpec[HersheyConfig] = DatasetSpec(
    name="hershey",
    description=(
        "~1,200 glyph classes of the public-domain Hershey fonts, drawn with random jitter like "
        "different hands; generated offline, class-disjoint half/half split (the default)."
    ),
    reference="A. V. Hershey, 'Calligraphy for computers', US National Bureau of Standards, 1967",
    config_cls=HersheyConfig,
    build=build,
    locate=locate,
    input_kind="tensor",
    channels=1,
    recall_ks=(1, 2, 4, 8),
    # the glyph study of docs/tuning/README.md: its winners are `dml-bench run`'s defaults here
    tuned_defaults=Path(__file__).parent / "studies" / "hershey-glyphs-defaults.json",
)
