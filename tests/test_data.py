"""Data sets, normalizers and the validation split (hpsearch.data)."""

from __future__ import annotations

import gzip
import os
import pickle
import re
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest

from hpsearch import data
from hpsearch.data import NORM_AXES, NORMALIZERS, Dataset, fit_normalizer, load, split
from hpsearch.errors import DataError, HPSearchError

MNIST_T10K_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(autouse=True)
def fresh_cache():
    data._load_cached.cache_clear()
    yield
    data._load_cached.cache_clear()


def _real_mnist_dir() -> Path | None:
    candidates = [os.environ.get("HPSEARCH_MNIST_DIR")]
    candidates.append(Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist-t10k")
    for c in candidates:
        if c and (Path(c) / "t10k-images-idx3-ubyte.gz").is_file():
            return Path(c)
    return None


@pytest.fixture
def real_mnist_dir() -> Path:
    d = _real_mnist_dir()
    if d is None:
        pytest.skip("real MNIST t10k files not found (set HPSEARCH_MNIST_DIR or place ../shared beside the repo)")
    return d


def write_idx(path: Path, array: np.ndarray, magic: int, *, gz: bool, cut: int = 0) -> Path:
    """Write ``array`` (uint8) as an IDX file; ``cut`` drops that many trailing bytes."""
    raw = struct.pack(">i", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    raw += np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    raw = raw[: len(raw) - cut]
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def make_mnist_dir(root: Path, *, parts=("train", "t10k"), gz=True, n=(30, 10), sep="-") -> dict:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for part, count in zip(("train", "t10k"), n):
        x = rng.integers(0, 256, size=(count, 4, 3), dtype=np.uint8)
        y = np.arange(count, dtype=np.uint8) % 3 * 2 + 1  # labels 1, 3, 5: mapped to 0, 1, 2
        arrays[part] = (x, y)
        if part in parts:
            suffix = ".gz" if gz else ""
            write_idx(root / f"{part}-images{sep}idx3-ubyte{suffix}", x, 2051, gz=gz)
            write_idx(root / f"{part}-labels{sep}idx1-ubyte{suffix}", y, 2049, gz=gz)
    return arrays


def assert_dataset_contract(ds: Dataset):
    for x, y in ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)):
        if x is None:
            continue
        assert x.dtype == np.float32 and x.ndim == 2 and x.flags.c_contiguous
        assert y.dtype == np.int64 and y.shape == (len(x),)
        assert 0 <= y.min() and y.max() < ds.n_classes
        assert not x.flags.writeable and not y.flags.writeable


# --------------------------------------------------------------------------- digits


def test_digits_has_raw_float32_features_and_ten_classes():
    ds = load("digits")
    assert_dataset_contract(ds)
    assert ds.x_train.shape == (1437, 64) and ds.x_test.shape == (360, 64)
    assert ds.n_classes == 10 and ds.class_names == tuple("0123456789")
    assert ds.x_train.min() == 0 and ds.x_train.max() == 16  # un-normalized
    assert ds.describe() == "digits (1,437 train / 360 test, 64 features, 10 classes)"


def test_digits_test_split_is_stratified_and_stable_across_calls():
    first = load("digits")
    data._load_cached.cache_clear()
    second = load("digits")
    assert first is not second
    np.testing.assert_array_equal(first.x_test, second.x_test)
    np.testing.assert_array_equal(first.y_test, second.y_test)
    total = np.bincount(np.r_[first.y_train, first.y_test])
    assert np.all(np.abs(np.bincount(first.y_test) - 0.2 * total) <= 1)


def test_load_caches_per_spec_and_arrays_are_read_only():
    ds = load("digits")
    assert load(" digits ") is ds
    with pytest.raises(ValueError, match="read-only"):
        ds.x_train[0, 0] = 1.0


# --------------------------------------------------------------------------- MNIST


def test_mnist_t10k_only_directory_splits_real_files_into_train_and_test(real_mnist_dir):
    ds = load(f"mnist:{real_mnist_dir}")
    assert_dataset_contract(ds)
    assert ds.name == "mnist"
    assert (len(ds.y_train), len(ds.y_test)) == (8000, 2000)
    assert ds.n_features == 28 * 28 and ds.n_classes == 10
    assert ds.x_train.min() == 0 and ds.x_train.max() == 255
    counts = np.bincount(np.r_[ds.y_train, ds.y_test])
    assert counts.tolist() == MNIST_T10K_COUNTS
    assert np.all(np.abs(np.bincount(ds.y_test) - 0.2 * counts) <= 1)
    assert ds.describe() == "mnist (8,000 train / 2,000 test, 784 features, 10 classes)"


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "plain"])
@pytest.mark.parametrize("sep", ["-", "."], ids=["idx3-ubyte", "dot-idx3-ubyte"])
def test_mnist_with_train_and_t10k_files_keeps_the_official_split(tmp_path, gz, sep):
    arrays = make_mnist_dir(tmp_path, gz=gz, sep=sep)
    ds = load(f"mnist:{tmp_path}")
    assert_dataset_contract(ds)
    (x_tr, y_tr), (x_te, y_te) = arrays["train"], arrays["t10k"]
    np.testing.assert_array_equal(ds.x_train, x_tr.reshape(30, 12).astype(np.float32))
    np.testing.assert_array_equal(ds.x_test, x_te.reshape(10, 12).astype(np.float32))
    np.testing.assert_array_equal(ds.y_train, (y_tr - 1) // 2)
    np.testing.assert_array_equal(ds.y_test, (y_te - 1) // 2)
    assert ds.class_names == ("1", "3", "5")


def test_mnist_detects_gzip_from_content_not_name(tmp_path):
    make_mnist_dir(tmp_path, parts=("t10k",), gz=True)
    for p in tmp_path.iterdir():
        p.rename(p.with_suffix(""))  # gzip data without .gz
    ds = load(f"mnist:{tmp_path}")
    assert (len(ds.y_train), len(ds.y_test)) == (8, 2)


def _truncate_images(d: Path):
    x = np.zeros((10, 4, 3), np.uint8)
    write_idx(d / "t10k-images-idx3-ubyte", x, 2051, gz=False, cut=5)


def _truncate_gzip_stream(d: Path):
    p = d / "t10k-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:-12])


def _extra_bytes(d: Path):
    p = d / "t10k-labels-idx1-ubyte.gz"
    p.write_bytes(gzip.compress(gzip.decompress(p.read_bytes()) + b"\0\0"))


def _labels_in_images_file(d: Path):
    (d / "t10k-images-idx3-ubyte.gz").write_bytes((d / "t10k-labels-idx1-ubyte.gz").read_bytes())


def _count_mismatch(d: Path):
    write_idx(d / "t10k-labels-idx1-ubyte.gz", np.zeros(9, np.uint8), 2049, gz=True)


def _missing_labels(d: Path):
    (d / "t10k-labels-idx1-ubyte.gz").unlink()


def _no_files(d: Path):
    for p in d.iterdir():
        p.unlink()
    (d / "readme.txt").write_text("hi")


def _train_test_shapes_differ(d: Path):
    write_idx(d / "train-images-idx3-ubyte.gz", np.zeros((3, 5, 5), np.uint8), 2051, gz=True)
    write_idx(d / "train-labels-idx1-ubyte.gz", np.array([0, 1, 2], np.uint8), 2049, gz=True)


@pytest.mark.parametrize(
    "damage, message",
    [
        (
            _truncate_images,
            r"t10k-images-idx3-ubyte: truncated: header declares 10 images of 4×3 \(136 bytes\), file holds 131 bytes",
        ),
        (_truncate_gzip_stream, r"t10k-images-idx3-ubyte.gz: truncated gzip data"),
        (_extra_bytes, r"t10k-labels-idx1-ubyte.gz: 2 bytes beyond the 10 labels the header declares"),
        (
            _labels_in_images_file,
            r"wrong magic number 2049 \(that of a labels file\), expected 2051 for an IDX images file",
        ),
        (_count_mismatch, r"t10k-images-idx3-ubyte.gz holds 10 images but t10k-labels-idx1-ubyte.gz holds 9 labels"),
        (_missing_labels, r"has t10k-images-idx3-ubyte.gz but not t10k-labels-idx1-ubyte\[.gz\]"),
        (_no_files, r"no MNIST files in .*expected train-images-idx3-ubyte\[.gz\].*found readme.txt\)"),
        (
            _train_test_shapes_differ,
            r"train-images-idx3-ubyte.gz holds 5×5 images but t10k-images-idx3-ubyte.gz holds 4×3",
        ),
    ],
    ids=lambda v: getattr(v, "__name__", "")[1:] or None,
)
def test_broken_mnist_files_raise_data_error_naming_the_file(tmp_path, damage, message):
    make_mnist_dir(tmp_path, parts=("t10k",), gz=True)
    if damage is _truncate_images:
        for p in tmp_path.glob("t10k-images*"):
            p.unlink()
    damage(tmp_path)
    with pytest.raises(DataError, match=message):
        load(f"mnist:{tmp_path}")


def test_mnist_missing_directory_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match=r"mnist: directory not found: .*nowhere"):
        load(f"mnist:{tmp_path / 'nowhere'}")


# --------------------------------------------------------------------------- npz, csv


def test_npz_round_trip_flattens_images_and_maps_labels(tmp_path):
    rng = np.random.default_rng(1)
    x_train, x_test = rng.normal(size=(12, 2, 3)), rng.normal(size=(4, 2, 3))
    y_train = np.array([3, 7, 10] * 4)
    y_test = np.array([10, 3, 7, 7])
    np.savez(tmp_path / "set.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    ds = load("npz:set.npz", root=tmp_path)
    assert_dataset_contract(ds)
    assert ds.name == "npz:set.npz"
    np.testing.assert_allclose(ds.x_train, x_train.reshape(12, 6), rtol=1e-6)
    np.testing.assert_allclose(ds.x_test, x_test.reshape(4, 6), rtol=1e-6)
    np.testing.assert_array_equal(ds.y_train, [0, 1, 2] * 4)
    np.testing.assert_array_equal(ds.y_test, [2, 0, 1, 1])
    assert ds.n_classes == 3 and ds.class_names == ("3", "7", "10")


def test_npz_without_test_arrays_has_no_test_set(tmp_path):
    np.savez(tmp_path / "s.npz", x_train=np.arange(40.0).reshape(20, 2), y_train=np.array(["b", "a"] * 10))
    ds = load(f"npz:{tmp_path / 's.npz'}")
    assert ds.x_test is None and ds.y_test is None and len(ds.y_train) == 20
    np.testing.assert_array_equal(ds.y_train, [1, 0] * 10)
    assert ds.class_names == ("a", "b")


def test_load_reparses_when_the_file_changes(tmp_path):
    path = tmp_path / "s.npz"
    np.savez(path, x_train=np.zeros((10, 2)), y_train=np.arange(10) % 2)
    first = load("npz:s.npz", root=tmp_path)
    assert load("npz:s.npz", root=tmp_path).x_train is first.x_train
    np.savez(path, x_train=np.ones((10, 2)), y_train=np.arange(10) % 2)
    os.utime(path, ns=(0, path.stat().st_mtime_ns + 10**9))
    assert load("npz:s.npz", root=tmp_path).x_train.max() == 1


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"x_train": np.zeros((4, 2)), "labels": np.zeros(4)}, r"no array 'y_train' \(found: labels, x_train\)"),
        ({"x_train": np.zeros((4, 2)), "y_train": np.zeros(3)}, r"x_train has 4 rows but y_train has 3 labels"),
        (
            {"x_train": np.zeros((4, 2)), "y_train": np.arange(4), "x_test": np.zeros((2, 2))},
            r"x_test and y_test must come together",
        ),
        (
            {"x_train": np.zeros(4), "y_train": np.arange(4)},
            r"x_train must have one row per sample \(n, d\), got shape \(4,\)",
        ),
        ({"x_train": np.full((4, 2), np.nan), "y_train": np.arange(4)}, r"x_train holds a NaN \(row 1, feature 1\)"),
        ({"x_train": np.zeros((4, 2)), "y_train": np.zeros(4)}, r"needs at least 2 classes, found 1 \(0\)"),
    ],
    ids=["missing-y", "length-mismatch", "half-test", "1d-x", "nan", "one-class"],
)
def test_malformed_npz_is_a_data_error(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=message):
        load("npz:bad.npz", root=tmp_path)


def test_npz_that_is_not_an_archive_is_a_data_error(tmp_path):
    (tmp_path / "bad.npz").write_text("not a zip")
    with pytest.raises(DataError, match=r"bad.npz: not a readable .npz file"):
        load("npz:bad.npz", root=tmp_path)


@pytest.mark.parametrize("label", ["label", "Target", "CLASS", "y"])
def test_csv_round_trip_finds_the_label_column(tmp_path, label):
    rows = [f"{i},{i * 0.5},{'cat' if i % 2 else 'dog'}" for i in range(10)]
    (tmp_path / "t.csv").write_text("\n".join([f"a,b,{label}", *rows]) + "\n")
    ds = load("csv:t.csv", root=tmp_path)
    assert ds.x_test is None and ds.y_test is None
    assert_dataset_contract(ds)
    np.testing.assert_allclose(ds.x_train, [[i, i * 0.5] for i in range(10)])
    np.testing.assert_array_equal(ds.y_train, [1, 0] * 5)  # cat=0, dog=1
    assert ds.class_names == ("cat", "dog")
    assert ds.describe() == "csv:t.csv (10 train, no test set, 2 features, 2 classes)"


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "a,b,labels\n1,2,x\n3,4,y\n",
            r"no label column \(looked for label, target, class, y, any case; found columns: a, b, labels\)",
        ),
        ("a,b,label\n1,2,x\n3,abc,y\n", r"column 'b', row 2: 'abc' is not a number"),
        ("a,b,label\n1,2,x\n3,,y\n", r"column 'b', row 2: missing value"),
        ("label\nx\ny\n", r"only the label column 'label', no feature columns"),
        ("a,label\n", r"header only, no data rows"),
        ("", r"empty file"),
    ],
    ids=["no-label", "non-numeric", "missing", "no-features", "no-rows", "empty"],
)
def test_malformed_csv_is_a_data_error(tmp_path, text, message):
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(DataError, match=message):
        load("csv:bad.csv", root=tmp_path)


@pytest.mark.parametrize(
    "spec, message",
    [
        (
            "mnsit:data",
            r"unknown dataset 'mnsit:data' \(allowed forms: digits, mnist:DIR, npz:FILE, csv:FILE\); "
            r"did you mean 'mnist:data'\?",
        ),
        ("digit", r"did you mean 'digits'\?"),
        ("train.npz", r"did you mean 'npz:train.npz'\?"),
        ("imagenet", r"unknown dataset 'imagenet' \(allowed forms: digits, mnist:DIR, npz:FILE, csv:FILE\)$"),
        ("csv:", r"dataset 'csv:' needs a path: csv:FILE"),
        ("npz:missing.npz", r"npz: file not found: .*missing.npz"),
        ("", r"dataset must be one of digits, mnist:DIR, npz:FILE, csv:FILE, got ''"),
    ],
)
def test_bad_spec_is_a_data_error_listing_the_forms(tmp_path, spec, message):
    with pytest.raises(DataError, match=message):
        load(spec, root=tmp_path)


# --------------------------------------------------------------------------- normalizers

NAME_AXIS = [(n, a) for n in NORMALIZERS for a in NORM_AXES]


def oracle(name: str, axis: str, x_train: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Independent float64 reference: (x - shift) / scale, scale 1 where there is no spread."""
    ax = None if axis == "global" else 0
    x_train, x = x_train.astype(np.float64), x.astype(np.float64)
    if name == "none":
        return x
    if name == "min_max":
        shift, scale = x_train.min(axis=ax), x_train.max(axis=ax) - x_train.min(axis=ax)
    else:
        shift, scale = x_train.mean(axis=ax), x_train.std(axis=ax)
    no_spread = x_train.max(axis=ax) == x_train.min(axis=ax)
    return (x - np.where(no_spread, x_train.min(axis=ax), shift)) / np.where(no_spread, 1.0, scale)


@pytest.fixture
def columns_of_different_scale():
    rng = np.random.default_rng(2)
    x_train = (rng.normal(size=(200, 3)) * [1.0, 10.0, 100.0] + [0.0, 5.0, -50.0]).astype(np.float32)
    x_val = (rng.normal(size=(50, 3)) * [2.0, 20.0, 200.0]).astype(np.float32)
    return x_train, x_val


def test_normalizer_registry_keys_are_what_users_write():
    assert sorted(NORMALIZERS) == ["min_max", "none", "z_score"]
    assert NORM_AXES == ("global", "per_feature")


@pytest.mark.parametrize("name, axis", NAME_AXIS)
def test_normalizer_applies_training_statistics_to_validation_data(name, axis, columns_of_different_scale):
    x_train, x_val = columns_of_different_scale
    before = x_val.copy()
    norm = fit_normalizer(name, axis, x_train)
    out = norm(x_val)
    assert out.dtype == np.float32 and out.flags.c_contiguous and out.flags.writeable
    assert not np.shares_memory(out, x_val)
    np.testing.assert_array_equal(x_val, before)
    np.testing.assert_allclose(out, oracle(name, axis, x_train, x_val), rtol=1e-5, atol=1e-5)
    # statistics come from x_train alone: refitting on the validation data would differ
    if name != "none":
        assert not np.allclose(out, fit_normalizer(name, axis, x_val)(x_val), atol=1e-3)


@pytest.mark.parametrize("name, axis", NAME_AXIS)
@pytest.mark.parametrize("all_constant", [False, True], ids=["one-constant-column", "all-constant"])
def test_constant_features_give_finite_output_without_warnings(name, axis, all_constant):
    rng = np.random.default_rng(3)
    x_train = rng.normal(size=(50, 4)).astype(np.float32)
    x_train[:, 1] = 0.1  # 0.1 has no exact float representation: its float64 std is not exactly 0
    if all_constant:
        x_train[:] = 7.0
    x_val = rng.normal(size=(20, 4)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        norm = fit_normalizer(name, axis, x_train)
        out_train, out_val = norm(x_train), norm(x_val)
    assert np.isfinite(out_train).all() and np.isfinite(out_val).all()
    if name != "none" and (axis == "per_feature" or all_constant):
        assert np.all(out_train[:, 1] == 0)
        assert norm.n_constant >= 1
    np.testing.assert_allclose(out_val, oracle(name, axis, x_train, x_val), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("axis", NORM_AXES)
def test_min_max_maps_the_training_range_to_unit_interval(axis, columns_of_different_scale):
    x_train, _ = columns_of_different_scale
    out = fit_normalizer("min_max", axis, x_train)(x_train)
    if axis == "per_feature":
        np.testing.assert_allclose(out.min(axis=0), 0, atol=1e-6)
        np.testing.assert_allclose(out.max(axis=0), 1, atol=1e-6)
    else:  # one range for all columns: only the widest column spans [0, 1]
        assert out.min() == pytest.approx(0, abs=1e-6) and out.max() == pytest.approx(1, abs=1e-6)
        spans = out.max(axis=0) - out.min(axis=0)
        assert spans[0] < 0.05 < spans[1] < 0.2 < spans[2]


@pytest.mark.parametrize("axis", NORM_AXES)
def test_z_score_centres_and_scales_the_training_data(axis, columns_of_different_scale):
    x_train, _ = columns_of_different_scale
    out = fit_normalizer("z_score", axis, x_train)(x_train)
    if axis == "per_feature":
        np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-5)
        np.testing.assert_allclose(out.std(axis=0), 1, atol=1e-5)
    else:
        assert out.mean() == pytest.approx(0, abs=1e-5) and out.std() == pytest.approx(1, abs=1e-5)
        assert out[:, 0].std() < 0.05 < out[:, 2].std()


@pytest.mark.parametrize(
    "name, axis, message",
    [
        (
            "minmax",
            "global",
            r"unknown normalizer 'minmax' \(allowed: min_max, none, z_score\); did you mean 'min_max'\?",
        ),
        (
            "z_score",
            "per-feature",
            r"unknown norm_axis 'per-feature' \(allowed: global, per_feature\); did you mean 'per_feature'\?",
        ),
    ],
)
def test_unknown_normalizer_or_axis_lists_the_allowed_names(name, axis, message):
    with pytest.raises(HPSearchError, match=message):
        fit_normalizer(name, axis, np.zeros((3, 2), np.float32))


def test_normalizer_rejects_a_different_feature_count():
    norm = fit_normalizer("z_score", "per_feature", np.arange(6, dtype=np.float32).reshape(3, 2))
    with pytest.raises(DataError, match=r"fitted on 2 features, got shape \(3, 4\)"):
        norm(np.zeros((3, 4), np.float32))


@pytest.mark.parametrize(
    "name, axis, expected",
    [
        ("none", "global", "Normalizer(none)"),
        ("min_max", "global", "Normalizer(min_max, global: min=0, range=5)"),
        ("z_score", "per_feature", "Normalizer(z_score, per_feature over 2 features, 1 constant)"),
    ],
)
def test_normalizer_repr_is_readable_and_it_pickles(name, axis, expected):
    x = np.array([[0, 1], [5, 1]], np.float32)
    norm = fit_normalizer(name, axis, x)
    assert repr(norm) == expected
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(norm))(x), norm(x))


# --------------------------------------------------------------------------- split


@pytest.fixture
def imbalanced():
    y = np.repeat([0, 1, 2], [60, 30, 10])
    x = np.arange(len(y) * 2, dtype=np.float32).reshape(-1, 2)
    return x, y


def test_split_preserves_class_ratios_and_partitions_rows(imbalanced):
    x, y = imbalanced
    x_tr, y_tr, x_val, y_val = split(x, y, 0.2, seed=0)
    assert np.bincount(y_val).tolist() == [12, 6, 2]
    assert np.bincount(y_tr).tolist() == [48, 24, 8]
    rows = np.r_[x_tr[:, 0], x_val[:, 0]]
    assert sorted(rows.tolist()) == x[:, 0].tolist()
    np.testing.assert_array_equal(y[(x_val[:, 0] // 2).astype(int)], y_val)


def test_split_is_reproducible_by_seed(imbalanced):
    x, y = imbalanced
    a, b, c = split(x, y, 0.2, 7), split(x, y, 0.2, 7), split(x, y, 0.2, 8)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[2], c[2])


def test_split_falls_back_to_a_plain_shuffle_when_a_class_is_too_small():
    y = np.array([0] * 10 + [1] * 9 + [2])  # class 2 has one member
    x = np.arange(20, dtype=np.float32)[:, None]
    x_tr, y_tr, x_val, y_val = split(x, y, 0.25, seed=0)
    assert (len(y_tr), len(y_val)) == (15, 5)
    assert sorted(np.r_[x_tr[:, 0], x_val[:, 0]].tolist()) == list(range(20))


@pytest.mark.parametrize("fraction", [1.5, 0, 1, -0.1, float("nan"), "0.2", True])
def test_split_rejects_a_validation_fraction_outside_0_1(imbalanced, fraction):
    x, y = imbalanced
    with pytest.raises(DataError, match=rf"validation must be in \(0, 1\), got {re.escape(repr(fraction))}"):
        split(x, y, fraction, seed=0)


@pytest.mark.parametrize(
    "x, y, message",
    [
        (np.zeros((5, 2)), np.zeros(4), r"x has 5 rows but y has 4 labels"),
        (np.zeros((1, 2)), np.zeros(1), r"cannot hold out 0.2 of 1 sample\(s\)"),
    ],
)
def test_split_rejects_inconsistent_or_tiny_inputs(x, y, message):
    with pytest.raises(DataError, match=message):
        split(x, y, 0.2, seed=0)
