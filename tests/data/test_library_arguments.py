"""The data library called directly (a notebook): a bad argument is one InvalidArgumentError naming it, not a
numpy, pathlib or attribute error."""
from __future__ import annotations

import numpy as np
import pytest

from floodwatch.data import open_dataset
from floodwatch.data.splits import make_split, write_split_csv
from floodwatch.data.stats import compute_stats
from floodwatch.data.synthetic import write_synthetic_dataset
from floodwatch.errors import InvalidArgumentError

from . import fakes


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return fakes.sen1floods11(tmp_path_factory.mktemp("args") / "s1", chips=6)


@pytest.fixture(scope="module")
def ds(root):
    return open_dataset(root)


BAD = [
    # a dict for the folder made a pathlib TypeError; "no" counted as True; split=3 failed on .lower()
    ("open-dataset-dict", lambda root, ds: open_dataset({"path": str(root)}), r"^path: expected a path"),
    ("open-dataset-labelled-only-str", lambda root, ds: open_dataset(root, labelled_only="no"),
     r"^labelled_only: must be True or False, got 'no'"),
    ("open-dataset-split-int", lambda root, ds: open_dataset(root, split=3), r"^split: expected a split name"),
    # max_pixels 0 or below sampled one pixel a chip, silently; a negative seed was numpy's ValueError
    ("stats-max-pixels-zero", lambda root, ds: compute_stats(ds, max_pixels=0), r"^max_pixels: "),
    ("stats-max-pixels-negative", lambda root, ds: compute_stats(ds, max_pixels=-5), r"^max_pixels: "),
    ("stats-seed-negative", lambda root, ds: compute_stats(ds, seed=-1), r"^seed: "),
    ("stats-not-a-dataset", lambda root, ds: compute_stats({"chips": 3}), r"^dataset: expected a dataset"),
    # strings for fractions: a TypeError, or the message listed the string's characters
    ("split-fractions-strings", lambda root, ds: make_split(ds, fractions=("0.7", "0.3")),
     r"^fractions: need 2 or 3 non-negative numbers summing to 1, got \('0.7', '0.3'\)"),
    ("split-fractions-string", lambda root, ds: make_split(ds, fractions="0.7,0.3"), r"^fractions: .*got '0.7,0.3'$"),
    ("split-seed-negative", lambda root, ds: make_split(ds, seed=-1), r"^seed: "),
    ("split-not-a-dataset", lambda root, ds: make_split([1, 2, 3]), r"^dataset: expected a dataset"),
    # messages start with the parameter's name (the CLI maps it to the flag)
    ("split-method-unknown", lambda root, ds: make_split(ds, method="bogus"), r"^method: 'bogus' is not one of"),
    ("split-block-zero", lambda root, ds: make_split(ds, method="blocked", block=0), r"^block: "),
    ("synthetic-no-chips", lambda root, ds: write_synthetic_dataset(root.parent / "none", chips=0),
     r"^chips, size: "),
    # other paths the library takes: a pathlib TypeError naming no argument
    ("synthetic-out-dir-dict", lambda root, ds: write_synthetic_dataset({"path": "x"}, chips=1),
     r"^out_dir: expected a path"),
    ("split-csv-path-int", lambda root, ds: write_split_csv({"train": ["a"]}, 5), r"^path: expected a path"),
]


@pytest.mark.parametrize("call,match", [pytest.param(c, m, id=i) for i, c, m in BAD])
def test_bad_argument_is_named(call, match, root, ds):
    with pytest.raises(InvalidArgumentError, match=match):
        call(root, ds)


def test_a_data_folder_for_the_dataset_points_to_open_dataset(root):
    # it was an AttributeError ('str' object has no attribute 'bands' / 'ids')
    for call in (compute_stats, make_split):
        with pytest.raises(InvalidArgumentError, match=rf"^dataset: .* is a path, not a dataset; open it first: "
                                                       rf"open_dataset\('{root}'\)"):
            call(str(root))
        with pytest.raises(InvalidArgumentError, match=r"^dataset: PosixPath"):
            call(root)


def test_sample_repr_is_one_line(ds):
    s = ds[0]
    text = repr(s)
    assert "\n" not in text and len(text) < 200
    water = s.class_counts()["water"] / (s.class_counts()["water"] + s.class_counts()["not_water"])
    for part in (f"id={s.id!r}", "bands=('VV', 'VH')", "shape=(32, 32)", "dtype=float32",
                 f"valid={np.mean(s.valid):.1%}", f"water={water:.1%}"):
        assert part in text
    unlabelled = open_dataset(fakes.sen1floods11(ds.root.parent / "nolabel", chips=2, nolabel=1, splits=False),
                              labelled_only=False)
    assert "unlabelled" in repr(next(x for x in unlabelled if x.mask is None))
