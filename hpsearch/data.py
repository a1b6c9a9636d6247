"""Data sets, normalizers and the stratified validation split.

A data set is named by a *spec*, the string users write as ``dataset`` in the
search-space file:

``digits``
    scikit-learn's 8x8 digits (1,797 images, ships with scikit-learn, no download).
    It has no official test split, so a stratified 20% test set is carved with the
    fixed seed :data:`TEST_SEED` (0), independent of the study seed: every study
    on ``digits`` is scored against the same test images.
``mnist:DIR``
    The original MNIST IDX files in ``DIR``, gzip-compressed or not
    (``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``,
    ``t10k-images-idx3-ubyte[.gz]``, ``t10k-labels-idx1-ubyte[.gz]``; the
    ``train-images.idx3-ubyte`` spelling is accepted too). A directory holding
    only one of the two pairs (e.g. just the t10k files) is split into train and
    test the same way as ``digits``. Pixels stay raw, float32 in 0..255.
``npz:FILE``
    Arrays ``x_train``, ``y_train`` and optionally ``x_test``, ``y_test``;
    ``x`` of shape (n, h, w, ...) is flattened to (n, d). Without the test
    arrays there is no test set (``x_test`` is None).
``csv:FILE``
    A header row and one column of labels, named ``label``, ``target``, ``class``
    or ``y`` (case-insensitive, first match in that order); every other column
    is a numeric feature. No test set.

Labels of any kind are mapped to 0..K-1 in sorted order of the distinct values
(train and test together); the original values are kept as
:attr:`Dataset.class_names`. Relative paths are resolved against ``root`` if
given, else the current directory.

Loaded data sets are cached per process, keyed on the resolved path and the
files' modification times, so a worker that runs many trials parses a file
once. The cached arrays are shared, and therefore read-only.
"""

from __future__ import annotations

import functools
import gzip
import math
import numbers
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from hpsearch._registry import did_you_mean, lookup
from hpsearch.errors import DataError

__all__ = [
    "NORMALIZERS",
    "NORM_AXES",
    "TEST_FRACTION",
    "TEST_SEED",
    "Dataset",
    "Normalizer",
    "fit_normalizer",
    "load",
    "split",
]

#: Fraction and seed of the fixed test split carved from data sets without one.
TEST_FRACTION = 0.2
TEST_SEED = 0

_LABEL_COLUMNS = ("label", "target", "class", "y")
_SPEC_FORMS = {"digits": "digits", "mnist": "mnist:DIR", "npz": "npz:FILE", "csv": "csv:FILE"}
_F32_MAX = float(np.finfo(np.float32).max)
# Below this a spread cannot be represented as a float32 divisor without
# turning ordinary inputs into inf, so the feature is treated as constant.
_F32_TINY = float(np.finfo(np.float32).tiny)


# --------------------------------------------------------------------------- Dataset


@dataclass(frozen=True, eq=False)
class Dataset:
    """Features and integer labels, with an optional test part.

    ``x_*`` are (n, d) float32, C-contiguous, un-normalized; ``y_*`` are (n,)
    int64 in ``0..n_classes-1``. ``class_names[k]`` is the original label that
    became ``k``. Arrays coming from :func:`load` are read-only.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    n_classes: int
    class_names: tuple[str, ...] = field(default=())

    def __post_init__(self):
        if (self.x_test is None) != (self.y_test is None):
            raise DataError(f"{self.name}: x_test and y_test must be given together")
        if not isinstance(self.n_classes, numbers.Integral) or self.n_classes < 1:
            raise DataError(f"{self.name}: n_classes must be a positive integer, got {self.n_classes!r}")
        for part in ("train", "test"):
            x, y = getattr(self, f"x_{part}"), getattr(self, f"y_{part}")
            if x is None:
                continue
            x = np.ascontiguousarray(x, dtype=np.float32)
            y = np.asarray(y)
            if x.ndim != 2:
                raise DataError(f"{self.name}: x_{part} must be 2-D (n, d), got shape {x.shape}")
            if y.shape != (x.shape[0],):
                raise DataError(
                    f"{self.name}: y_{part} must have shape ({x.shape[0]},) to match x_{part}, got {y.shape}"
                )
            if y.dtype.kind not in "iu":
                raise DataError(f"{self.name}: y_{part} must hold integer labels, got dtype {y.dtype}")
            if y.size and (y.min() < 0 or y.max() >= self.n_classes):
                raise DataError(f"{self.name}: y_{part} must lie in 0..{self.n_classes - 1}, got {y.min()}..{y.max()}")
            object.__setattr__(self, f"x_{part}", x)
            object.__setattr__(self, f"y_{part}", y.astype(np.int64, copy=False))
        if self.x_test is not None and self.x_test.shape[1] != self.x_train.shape[1]:
            raise DataError(
                f"{self.name}: x_test has {self.x_test.shape[1]} features, x_train has {self.x_train.shape[1]}"
            )
        if self.class_names and len(self.class_names) != self.n_classes:
            raise DataError(f"{self.name}: {len(self.class_names)} class names for {self.n_classes} classes")

    @property
    def n_features(self) -> int:
        return self.x_train.shape[1]

    def describe(self) -> str:
        """``"digits (1,437 train / 360 test, 64 features, 10 classes)"``."""
        sizes = f"{len(self.y_train):,} train"
        sizes += f" / {len(self.y_test):,} test" if self.y_test is not None else ", no test set"
        return f"{self.name} ({sizes}, {self.n_features:,} features, {self.n_classes} classes)"

    def __repr__(self) -> str:
        return f"Dataset({self.describe()})"


# --------------------------------------------------------------------------- load


def load(spec: str, *, root: Path | None = None) -> Dataset:
    """Load the data set named by ``spec`` (see the module docstring for the forms)."""
    if not isinstance(spec, str) or not spec.strip():
        raise DataError(f"dataset must be one of {', '.join(_SPEC_FORMS.values())}, got {spec!r}")
    spec = spec.strip()
    scheme, colon, arg = spec.partition(":")
    scheme = scheme.strip().lower()
    arg = arg.strip()

    if scheme == "digits" and not arg:
        return _load_cached("digits", None, ())
    if scheme in ("mnist", "npz", "csv"):
        if not arg:
            raise DataError(f"dataset {spec!r} needs a path: {_SPEC_FORMS[scheme]}")
        path = _resolve(arg, root)
        if scheme == "mnist":
            if not path.is_dir():
                raise DataError(f"mnist: directory not found: {path}")
            stamp = tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in _mnist_candidates(path))
            name = "mnist"
        else:
            if not path.is_file():
                raise DataError(f"{scheme}: file not found: {path}")
            stamp = (path.stat().st_mtime_ns, path.stat().st_size)
            name = f"{scheme}:{arg}"
        return replace(_load_cached(scheme, path, stamp), name=name)
    raise DataError(
        f"unknown dataset {spec!r} (allowed forms: {', '.join(_SPEC_FORMS.values())}){_spec_hint(spec, scheme, arg)}"
    )


def _spec_hint(spec: str, scheme: str, arg: str) -> str:
    suffix = Path(spec).suffix.lower()
    if suffix in (".npz", ".csv"):
        return f"; did you mean '{suffix[1:]}:{spec}'?"
    return did_you_mean(spec, [f"{s}:{arg}" if s != "digits" else s for s in _SPEC_FORMS])


def _resolve(arg: str, root: Path | None) -> Path:
    path = Path(arg).expanduser()
    if not path.is_absolute():
        path = Path(root if root is not None else Path.cwd()) / path
    return path.resolve()


@functools.lru_cache(maxsize=4)
def _load_cached(scheme: str, path: Path | None, stamp: tuple) -> Dataset:
    # ``stamp`` (mtimes and sizes) is only part of the key: a changed file misses the cache.
    if scheme == "digits":
        from sklearn.datasets import load_digits

        x, y = load_digits(return_X_y=True)
        return _make_dataset("digits", x, y, carve_test=True)
    if scheme == "mnist":
        return _load_mnist(path)
    if scheme == "npz":
        return _load_npz(path)
    return _load_csv(path)


def _make_dataset(name, x_train, y_train, x_test=None, y_test=None, *, carve_test=False) -> Dataset:
    """Encode labels, carve the fixed test split if asked, freeze the arrays."""
    classes, encoded = _encode_labels(y_train, *([] if y_test is None else [y_test]))
    if len(classes) < 2:
        raise DataError(f"{name}: needs at least 2 classes, found {len(classes)} ({', '.join(_names(classes))})")
    x_train = _as_features(name, "x_train", x_train)
    y_train = encoded[0]
    if x_test is None and carve_test:
        x_train, y_train, x_test, y_test = _split(
            x_train, y_train, TEST_FRACTION, TEST_SEED, what=f"{name}: test split"
        )
    elif x_test is not None:
        x_test, y_test = _as_features(name, "x_test", x_test), encoded[1]
    for a in (x_train, y_train, x_test, y_test):
        if a is not None:
            a.flags.writeable = False
    return Dataset(name, x_train, y_train, x_test, y_test, len(classes), _names(classes))


def _names(classes: np.ndarray) -> tuple[str, ...]:
    return tuple(str(c) for c in classes.tolist())


def _encode_labels(*ys: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Map labels of any kind to 0..K-1 in sorted order of the distinct values."""
    ys = [np.asarray(y) for y in ys]
    both = np.concatenate(ys) if len(ys) > 1 else ys[0]
    if both.dtype.kind == "f" and np.isfinite(both).all() and (both == np.round(both)).all():
        both = both.astype(np.int64)  # 1.0, 2.0 are the classes 1, 2
    elif both.dtype.kind not in "biuf":
        both = both.astype(str)
    classes, inverse = np.unique(both, return_inverse=True)
    inverse = inverse.reshape(-1).astype(np.int64)
    bounds = np.cumsum([len(y) for y in ys])[:-1]
    return classes, np.split(inverse, bounds)


def _word(value) -> str:
    return "a NaN" if np.isnan(value) else f"{float(value):+g}".replace("+inf", "inf")


def _as_features(name: str, what: str, x) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise DataError(f"{name}: {what} must hold numbers, got dtype {x.dtype}")
    if x.ndim < 2:
        raise DataError(f"{name}: {what} must have one row per sample (n, d), got shape {x.shape}")
    if x.dtype.kind == "f":
        if not np.isfinite(x).all():
            row, col = np.argwhere(~np.isfinite(x.reshape(len(x), -1)))[0]
            # counted from 1, as the csv reader counts rows and columns
            raise DataError(
                f"{name}: {what} holds {_word(x.reshape(len(x), -1)[row, col])} (row {row + 1}, feature {col + 1})"
            )
        if x.size and np.abs(x).max() > _F32_MAX:
            raise DataError(f"{name}: {what} holds values beyond the float32 range (±{_F32_MAX:.3g})")
    return np.ascontiguousarray(x.reshape(len(x), -1), dtype=np.float32)


# --------------------------------------------------------------------------- MNIST

_IMAGES_MAGIC, _LABELS_MAGIC = 2051, 2049
_MNIST_PAIRS = {"train": ("train-images", "train-labels"), "t10k": ("t10k-images", "t10k-labels")}


def _mnist_names(stem: str) -> list[str]:
    kind = "idx3-ubyte" if stem.endswith("images") else "idx1-ubyte"
    return [f"{stem}{sep}{kind}{gz}" for sep in ("-", ".") for gz in ("", ".gz")]


def _mnist_candidates(directory: Path) -> list[Path]:
    return [
        directory / n
        for pair in _MNIST_PAIRS.values()
        for stem in pair
        for n in _mnist_names(stem)
        if (directory / n).is_file()
    ]


def _find_mnist_file(directory: Path, stem: str) -> Path | None:
    return next((directory / n for n in _mnist_names(stem) if (directory / n).is_file()), None)


def _load_mnist(directory: Path) -> Dataset:
    parts = {}
    for part, (img_stem, lab_stem) in _MNIST_PAIRS.items():
        images, labels = _find_mnist_file(directory, img_stem), _find_mnist_file(directory, lab_stem)
        if (images is None) != (labels is None):
            have, missing = (images, lab_stem) if labels is None else (labels, img_stem)
            raise DataError(f"mnist: {directory} has {have.name} but not {_mnist_names(missing)[0]}[.gz] to go with it")
        if images is not None:
            x = _read_idx(images, _IMAGES_MAGIC)
            y = _read_idx(labels, _LABELS_MAGIC)
            if len(x) != len(y):
                raise DataError(
                    f"mnist: {images.name} holds {len(x):,} images but {labels.name} holds {len(y):,} labels"
                )
            parts[part] = (x, y, images.name)
    if not parts:
        found = sorted(p.name for p in directory.iterdir())
        listing = ", ".join(found[:10]) + (", ..." if len(found) > 10 else "") if found else "nothing"
        raise DataError(
            f"mnist: no MNIST files in {directory} (expected train-images-idx3-ubyte[.gz] and "
            f"train-labels-idx1-ubyte[.gz] and/or t10k-images-idx3-ubyte[.gz] and "
            f"t10k-labels-idx1-ubyte[.gz]; found {listing})"
        )
    if len(parts) == 2:
        (x_tr, y_tr, tr_name), (x_te, y_te, te_name) = parts["train"], parts["t10k"]
        if x_tr.shape[1:] != x_te.shape[1:]:
            raise DataError(f"mnist: {tr_name} holds {_hw(x_tr)} images but {te_name} holds {_hw(x_te)} images")
        return _make_dataset("mnist", x_tr, y_tr, x_te, y_te)
    x, y, _ = next(iter(parts.values()))
    return _make_dataset("mnist", x, y, carve_test=True)


def _hw(x: np.ndarray) -> str:
    return "×".join(str(s) for s in x.shape[1:])


def _read_idx(path: Path, magic: int) -> np.ndarray:
    """Parse one IDX file (gzip detected from its first bytes, not its name)."""
    what = "images" if magic == _IMAGES_MAGIC else "labels"
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except EOFError:
            raise DataError(f"mnist: {path}: truncated gzip data (the compressed stream ends early)") from None
        except (OSError, zlib.error) as e:
            raise DataError(f"mnist: {path}: corrupt gzip data ({e})") from None
    if len(raw) < 4:
        raise DataError(f"mnist: {path}: truncated: {len(raw)} bytes, too short for an IDX header")
    (found,) = struct.unpack(">i", raw[:4])
    if found != magic:
        other = {_IMAGES_MAGIC: " (that of an images file)", _LABELS_MAGIC: " (that of a labels file)"}
        raise DataError(
            f"mnist: {path}: wrong magic number {found}{other.get(found, '')}, expected {magic} for an IDX {what} file"
        )
    ndim = 3 if magic == _IMAGES_MAGIC else 1
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"mnist: {path}: truncated: {len(raw)} bytes, the header alone needs {header}")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    if dims[0] == 0 or 0 in dims:
        raise DataError(f"mnist: {path}: header declares an empty array of shape {dims}")
    size = math.prod(dims)
    declared = f"{dims[0]:,} {what}" + (f" of {dims[1]}×{dims[2]}" if ndim == 3 else "")
    if len(raw) < header + size:
        raise DataError(
            f"mnist: {path}: truncated: header declares {declared} ({header + size:,} bytes), "
            f"file holds {len(raw):,} bytes"
        )
    if len(raw) > header + size:
        raise DataError(f"mnist: {path}: {len(raw) - header - size:,} bytes beyond the {declared} the header declares")
    return np.frombuffer(raw, dtype=np.uint8, count=size, offset=header).reshape(dims)


# --------------------------------------------------------------------------- npz, csv


def _load_npz(path: Path) -> Dataset:
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"npz: {path}: not a readable .npz file ({e})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"npz: {path}: holds a single array, expected an .npz archive with x_train, y_train")
    with archive:
        keys = sorted(archive.files)
        for key in ("x_train", "y_train"):
            if key not in keys:
                raise DataError(
                    f"npz: {path}: no array {key!r} (found: {', '.join(keys) or 'none'}){did_you_mean(key, keys)}"
                )
        if ("x_test" in keys) != ("y_test" in keys):
            raise DataError(f"npz: {path}: x_test and y_test must come together (found: {', '.join(keys)})")
        try:
            arrays = {k: archive[k] for k in ("x_train", "y_train", "x_test", "y_test") if k in keys}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise DataError(f"npz: {path}: cannot read arrays ({e})") from None
    for part in ("train", "test"):
        if f"x_{part}" not in arrays:
            continue
        x, y = arrays[f"x_{part}"], arrays[f"y_{part}"]
        if y.ndim == 2 and y.shape[1] == 1:
            y = arrays[f"y_{part}"] = y[:, 0]
        if y.ndim != 1:
            raise DataError(f"npz: {path}: y_{part} must be 1-D (one label per sample), got shape {y.shape}")
        if x.ndim >= 1 and len(x) != len(y):
            raise DataError(f"npz: {path}: x_{part} has {len(x):,} rows but y_{part} has {len(y):,} labels")
    name = f"npz:{path}"
    return _make_dataset(name, *(arrays.get(k) for k in ("x_train", "y_train", "x_test", "y_test")))


def _load_csv(path: Path) -> Dataset:
    import pandas as pd

    try:
        frame = pd.read_csv(path, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise DataError(f"csv: {path}: empty file, expected a header row and data rows") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as e:
        raise DataError(f"csv: {path}: cannot parse ({e})") from None
    columns = [str(c) for c in frame.columns]
    by_lower = {c.strip().lower(): c for c in reversed(columns)}  # first spelling wins
    label = next((by_lower[n] for n in _LABEL_COLUMNS if n in by_lower), None)
    if label is None:
        raise DataError(
            f"csv: {path}: no label column (looked for {', '.join(_LABEL_COLUMNS)}, any case; "
            f"found columns: {', '.join(columns)})"
        )
    frame.columns = columns
    features = [c for c in columns if c != label]
    if not features:
        raise DataError(f"csv: {path}: only the label column {label!r}, no feature columns")
    if frame.empty:
        raise DataError(f"csv: {path}: header only, no data rows")
    # Rows are counted from 1 after the header.
    missing = frame.isna().to_numpy()
    if missing.any():
        row, col = np.argwhere(missing)[0]
        raise DataError(f"csv: {path}: column {columns[col]!r}, row {row + 1}: missing value")
    numeric = frame[features].apply(pd.to_numeric, errors="coerce")
    bad = numeric.isna().to_numpy()
    if bad.any():
        row, col = np.argwhere(bad)[0]
        value = frame[features[col]].iloc[row]
        raise DataError(f"csv: {path}: column {features[col]!r}, row {row + 1}: {value!r} is not a number")
    x = numeric.to_numpy(dtype=np.float64)
    infinite = ~np.isfinite(x)
    if infinite.any():
        row, col = np.argwhere(infinite)[0]
        raise DataError(
            f"csv: {path}: column {features[col]!r}, row {row + 1}: {_word(x[row, col])} is not a finite number"
        )
    return _make_dataset(f"csv:{path}", x, frame[label].to_numpy())


# --------------------------------------------------------------------------- split


def split(x, y, validation: float, seed: int):
    """Hold out a stratified, seeded ``validation`` fraction: ``(x_tr, y_tr, x_val, y_val)``.

    Same arguments, same split. When a class is too small to stratify (fewer than
    2 members, or fewer validation rows than classes), the split falls back to a
    plain seeded shuffle of the same sizes.
    """
    if isinstance(validation, bool) or not isinstance(validation, numbers.Real) or not 0 < validation < 1:
        raise DataError(f"validation must be in (0, 1), got {validation!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise DataError(f"seed must be an integer, got {seed!r}")
    return _split(np.asarray(x), np.asarray(y), float(validation), int(seed), what="validation split")


def _split(x, y, fraction: float, seed: int, *, what: str):
    from sklearn.model_selection import train_test_split

    if len(x) != len(y):
        raise DataError(f"{what}: x has {len(x):,} rows but y has {len(y):,} labels")
    n_held = math.ceil(fraction * len(y))
    if n_held < 1 or n_held >= len(y):
        raise DataError(f"{what}: cannot hold out {fraction:g} of {len(y)} sample(s) and keep some of each")
    try:
        x_tr, x_val, y_tr, y_val = train_test_split(x, y, test_size=fraction, random_state=seed, stratify=y)
    except ValueError:
        # Too few members in some class to put one on each side: a plain shuffle still splits.
        x_tr, x_val, y_tr, y_val = train_test_split(x, y, test_size=fraction, random_state=seed)
    return x_tr, y_tr, x_val, y_val


# --------------------------------------------------------------------------- normalizers

NORM_AXES = ("global", "per_feature")


def _fit_none(x: np.ndarray, axis) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(()), np.ones(())


def _fit_min_max(x: np.ndarray, axis) -> tuple[np.ndarray, np.ndarray]:
    low = x.min(axis=axis).astype(np.float64)
    return low, x.max(axis=axis).astype(np.float64) - low


def _fit_z_score(x: np.ndarray, axis) -> tuple[np.ndarray, np.ndarray]:
    return x.mean(axis=axis, dtype=np.float64), x.std(axis=axis, dtype=np.float64)


#: name -> fit(x_train, numpy axis) -> (shift, scale); a normalizer maps x to (x - shift) / scale.
NORMALIZERS: dict[str, Callable[[np.ndarray, int | None], tuple[np.ndarray, np.ndarray]]] = {
    "none": _fit_none,
    "min_max": _fit_min_max,
    "z_score": _fit_z_score,
}


@dataclass(frozen=True, eq=False, repr=False)
class Normalizer:
    """``(x - shift) / scale`` with statistics fitted on training data.

    ``shift`` and ``scale`` are float32, shape ``()`` for ``global`` or ``(d,)``
    for ``per_feature``. ``n_constant`` counts the features (or, globally, the
    whole input) with no spread; their scale is 1, so they map to 0 on the
    training data and never to NaN or inf.
    """

    name: str
    axis: str
    n_features: int
    shift: np.ndarray
    scale: np.ndarray
    n_constant: int = 0

    def __call__(self, x) -> np.ndarray:
        """A new float32 array; ``x`` is left untouched."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise DataError(f"{self!r} was fitted on {self.n_features} features, got shape {x.shape}")
        if self.name == "none":
            return np.array(x, dtype=np.float32, order="C")
        out = np.subtract(x, self.shift, dtype=np.float32)
        out /= self.scale
        return out

    def __repr__(self) -> str:
        if self.name == "none":
            return "Normalizer(none)"
        if self.axis == "global":
            labels = ("min", "range") if self.name == "min_max" else ("mean", "std")
            stats = f"{labels[0]}={float(self.shift):.4g}, {labels[1]}={float(self.scale):.4g}"
            return f"Normalizer({self.name}, global: {stats}{', constant' if self.n_constant else ''})"
        constant = f", {self.n_constant} constant" if self.n_constant else ""
        return f"Normalizer({self.name}, per_feature over {self.n_features} features{constant})"


def fit_normalizer(name: str, axis: str, x_train) -> Normalizer:
    """Fit normalizer ``name`` (a key of :data:`NORMALIZERS`) on ``x_train`` only.

    ``axis`` is ``"global"`` (one statistic over all inputs) or ``"per_feature"``
    (one per column). Apply the result unchanged to validation and test data.
    """
    fit = lookup(NORMALIZERS, name, "normalizer")
    lookup(dict.fromkeys(NORM_AXES), axis, "norm_axis")
    x = np.asarray(x_train)
    if x.ndim != 2 or x.shape[0] == 0:
        raise DataError(f"normalizer: x_train must be a non-empty (n, d) array, got shape {x.shape}")
    if x.dtype.kind not in "biuf" or (x.dtype.kind == "f" and not np.isfinite(x).all()):
        raise DataError(f"normalizer: x_train must hold finite numbers (dtype {x.dtype})")
    np_axis = None if axis == "global" else 0
    shift, scale = fit(x, np_axis)
    # Constant means exactly no spread: it is judged on min == max rather than on
    # a float64 std, which can come out a hair above 0 for a constant column.
    low = x.min(axis=np_axis).astype(np.float64)
    spread = x.max(axis=np_axis).astype(np.float64) - low if name != "none" else np.ones(())
    constant = (spread == 0) | (scale < _F32_TINY)
    if name != "none":
        shift = np.where(constant, low, shift)  # a constant input maps to exactly 0
    scale = np.where(constant, 1.0, np.minimum(scale, _F32_MAX))
    shift, scale = (np.asarray(a, dtype=np.float32) for a in (shift, scale))
    for a in (shift, scale):
        a.flags.writeable = False
    return Normalizer(name, axis, x.shape[1], shift, scale, int(np.count_nonzero(constant)))
