"""Tests for `save_history` / `load_history`."""

import json
import math
import os
import tempfile
from pathlib import Path

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_smalldata.training import load_history, save_history


def strict_json(text):
    def refuse(constant):
        raise AssertionError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


def test_json_round_trip_with_numpy_floats(tmp_path):
    loss32 = np.array([0.693, 0.5123, 0.40001], dtype=np.float32)
    acc64 = np.array([0.5, 0.62, 0.7], dtype=np.float64)
    history = {
        "loss": list(loss32),  # np.float32 scalars
        "accuracy": acc64,  # a float64 array
        "val_loss": [np.float64(0.7), 0.6, np.float32(0.55)],
        "steps": [np.int64(3), 4, 5],
    }
    path = save_history(history, tmp_path / "history.json")
    assert path == tmp_path / "history.json"
    text = path.read_text()
    assert set(strict_json(text)) == set(history)
    loaded = load_history(path)
    assert list(loaded) == ["loss", "accuracy", "val_loss", "steps"]
    # float32 values come back as the float64 they convert to, exactly.
    assert loaded["loss"] == [float(v) for v in loss32]
    assert loaded["accuracy"] == [0.5, 0.62, 0.7]
    assert loaded["val_loss"] == [0.7, 0.6, float(np.float32(0.55))]
    assert loaded["steps"] == [3.0, 4.0, 5.0]
    assert all(type(v) is float for values in loaded.values() for v in values)


def test_nan_and_inf_become_null_then_nan(tmp_path):
    path = save_history({"loss": [1.0, math.nan, np.float32("inf"), 0.5]}, tmp_path / "h.json")
    assert strict_json(path.read_text()) == {"loss": [1.0, None, None, 0.5]}
    loaded = load_history(path)["loss"]
    assert loaded[0] == 1.0 and math.isnan(loaded[1]) and math.isnan(loaded[2]) and loaded[3] == 0.5


def test_save_a_history_object_from_fit(tmp_path):
    x = np.zeros((4, 2), dtype="float32")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    history = model.fit(x, x[:, :1], epochs=2, verbose=0, validation_data=(x, x[:, :1]))
    path = save_history(history, str(tmp_path / "fit.json"))
    assert load_history(path) == history.history


def test_reads_json_dumped_with_nan_tokens(tmp_path):
    path = tmp_path / "seeds.json"
    with open(path, "w") as handle:
        json.dump({"loss": [0.5, float("nan")], "val_loss": [0.6, 0.4]}, handle)
    loaded = load_history(path)
    assert loaded["val_loss"] == [0.6, 0.4]
    assert loaded["loss"][0] == 0.5 and math.isnan(loaded["loss"][1])


def test_csvlogger_round_trip(tmp_path):
    x = np.random.default_rng(1).normal(size=(8, 2)).astype("float32")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse", metrics=["mae"])
    log_path = tmp_path / "training.csv"
    history = model.fit(
        x, x[:, :1], epochs=3, verbose=0, validation_data=(x, x[:, :1]),
        callbacks=[keras.callbacks.CSVLogger(str(log_path))],
    )
    loaded = load_history(log_path)
    assert "epoch" not in loaded
    assert loaded == history.history  # Same keys, same floats.


def test_hand_written_csv_with_separator_and_missing_cells(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("epoch;loss;val_loss\n0;0.75;NA\n1;0.5;0.625\n2;0.25;\n")
    loaded = load_history(path)
    assert list(loaded) == ["loss", "val_loss"]
    assert loaded["loss"] == [0.75, 0.5, 0.25]
    assert math.isnan(loaded["val_loss"][0]) and loaded["val_loss"][1] == 0.625
    assert math.isnan(loaded["val_loss"][2])
    explicit = load_history(path, separator=";")
    assert explicit["loss"] == loaded["loss"]


def test_csv_array_cells_and_header_only(tmp_path):
    path = tmp_path / "arrays.csv"
    path.write_text('epoch,f1,loss\n0,"""[0.5, 0.25]""",1.0\n')
    loaded = load_history(path)
    assert loaded == {"f1": [[0.5, 0.25]], "loss": [1.0]}
    empty = tmp_path / "header.csv"
    empty.write_text("epoch,loss,val_loss\n")
    assert load_history(empty) == {"loss": [], "val_loss": []}


def test_save_replaces_atomically_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "h.json"
    path.write_text("old")
    save_history({"loss": [1.0]}, path)
    assert load_history(path) == {"loss": [1.0]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.json"]
    umask = os.umask(0)
    os.umask(umask)
    # Not the private 0600 of the temporary file: the usual mode for a new file.
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_empty_history(tmp_path):
    path = save_history({}, tmp_path / "empty.json")
    assert load_history(path) == {}


def test_save_errors(tmp_path):
    with pytest.raises(ValueError, match="writes JSON"):
        save_history({"loss": [1.0]}, tmp_path / "h.csv")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        save_history({"loss": [1.0]}, tmp_path / "missing" / "h.json")
    with pytest.raises(ValueError, match="is a folder"):
        save_history({"loss": [1.0]}, tmp_path)
    with pytest.raises(TypeError, match="must be the History"):
        save_history([1.0, 2.0], tmp_path / "h.json")
    with pytest.raises(TypeError, match="must be a list of values"):
        save_history({"loss": 1.0}, tmp_path / "h.json")
    with pytest.raises(TypeError, match=r"history\['loss'\] must be a list of numbers"):
        save_history({"loss": [object()]}, tmp_path / "h.json")
    assert list(tmp_path.iterdir()) == []


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="No history file"):
        load_history(tmp_path / "nope.json")
    (tmp_path / "empty.json").write_text("  \n")
    with pytest.raises(ValueError, match="is empty"):
        load_history(tmp_path / "empty.json")
    (tmp_path / "list.json").write_text('{"loss": 1.0}')
    with pytest.raises(ValueError, match="does not hold a training history"):
        load_history(tmp_path / "list.json")
    (tmp_path / "broken.json").write_text('{"loss": [1.0,')
    with pytest.raises(ValueError, match="not valid JSON"):
        load_history(tmp_path / "broken.json")
    (tmp_path / "ragged.csv").write_text("epoch,loss\n0,1.0,2.0\n")
    with pytest.raises(ValueError, match="row 2: expected 2 cells"):
        load_history(tmp_path / "ragged.csv")
    (tmp_path / "notes.txt").write_text("just some words\n")
    with pytest.raises(ValueError, match="neither a JSON history nor a CSV"):
        load_history(tmp_path / "notes.txt")
    with pytest.raises(ValueError, match="one character"):
        load_history(tmp_path / "ragged.csv", separator=";;")


# --- malformed files are refused, never half read (issue 14 item 8) ---------


@pytest.mark.parametrize(
    "content, message",
    [
        # The case: a JSON list used to be read as a CSV header
        # ({"[1": [], "2": [], "3]": []}).
        ("[1, 2, 3]", r"found a list \(an array\) at the top level"),
        ('[{"loss": [1.0]}]', r"found a list \(an array\) at the top level"),
        ("  [0.5, 0.4]\n", "found a list"),
        ('"loss"', "found a string"),
        ("0.5", "not a CSV table|found a number"),
        ('{"loss": [1.0], "loss": [2.0]}', "has the key 'loss' more than once"),
        ('{"loss": [1.0, "0.5"]}', r"history\['loss'\]\[1\] is \"0.5\", not a number"),
        ('{"loss": [true]}', r"history\['loss'\]\[0\] is true, not a number"),
        ('{"loss": [{"a": 1}]}', r"history\['loss'\]\[0\] is \{\"a\": 1\}, not a number"),
        ("[1, 2", "not valid JSON"),
    ],
)
def test_malformed_json_is_refused(tmp_path, content, message):
    path = tmp_path / "history.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_history(path)


@pytest.mark.parametrize(
    "content, message",
    [
        ("name,age\nbob,3\n", r"row 2, column 'name' is 'bob', not a number"),
        ("epoch,loss\n0,0.5\n1,abc\n", r"row 3, column 'loss' is 'abc', not a number"),
        ("epoch,,loss\n0,1,0.5\n", "column 2 of the header line has no name"),
        # CSVLogger(append=True) after resuming from epoch 1: two runs in one file.
        ("epoch,loss\n0,0.9\n1,0.7\n2,0.6\n1,0.65\n2,0.55\n", r"row 5: epoch 1 comes after epoch 2.*append=True"),
        ("epoch,loss\n0,0.9\n0.5,0.7\n", r"row 3: the epoch 0.5 is not a whole number"),
    ],
)
def test_malformed_csv_is_refused(tmp_path, content, message):
    path = tmp_path / "log.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_history(path)


def test_a_csv_with_an_epoch_offset_loads(tmp_path):
    # A resumed run logged to a new file (initial_epoch=3): epochs go up, values load.
    path = tmp_path / "log.csv"
    path.write_text("epoch,loss\n3,0.5\n4,0.25\n")
    assert load_history(path) == {"loss": [0.5, 0.25]}


def test_a_binary_file_is_refused(tmp_path):
    path = tmp_path / "model.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n\x00\x00\xff\xfe")
    with pytest.raises(ValueError, match="is not a text file"):
        load_history(path)


def test_save_refuses_text_and_bools(tmp_path):
    with pytest.raises(TypeError, match=r"history\['loss'\] must be a list of numbers"):
        save_history({"loss": ["0.5"]}, tmp_path / "h.json")
    with pytest.raises(TypeError, match=r"history\['flag'\] must be a list of numbers"):
        save_history({"flag": [np.bool_(True)]}, tmp_path / "h.json")
    assert list(tmp_path.iterdir()) == []


# --- properties ----------------------------------------------------------------

# Metric names as users and Keras write them: dots, spaces, unicode, slashes.
metric_keys = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12
)
values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(width=32, allow_nan=True, allow_infinity=True).map(np.float32),
    st.integers(min_value=-(2**53), max_value=2**53),
)


def expected_after_round_trip(value):
    number = float(value)
    return number if math.isfinite(number) else math.nan


def same(a, b):
    return a == b or (math.isnan(a) and math.isnan(b))


@settings(max_examples=40, deadline=None)
@given(history=st.dictionaries(metric_keys, st.lists(values, max_size=6), max_size=5))
def test_save_then_load_gives_the_history_back(history):
    with tempfile.TemporaryDirectory() as folder:
        path = save_history(history, Path(folder) / "h istory.ü.json")
        assert strict_json(path.read_text(encoding="utf-8")).keys() == history.keys()
        loaded = load_history(path)
    assert list(loaded) == list(history)
    for key, original in history.items():
        assert len(loaded[key]) == len(original)
        for got, value in zip(loaded[key], original):
            assert type(got) is float
            assert same(got, expected_after_round_trip(value))


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None)
@given(document=json_values)
def test_any_json_document_is_a_history_or_a_value_error(document):
    """Never another exception, never a JSON document read as CSV."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "h.json"
        path.write_text(json.dumps(document))
        is_history = isinstance(document, dict) and all(
            isinstance(v, list) and all(_numbers_only(item) for item in v)
            for v in document.values()
        )
        if is_history:
            assert list(load_history(path)) == list(document)
        else:
            with pytest.raises(ValueError, match="training history|not a number"):
                load_history(path)


def _numbers_only(item):
    if isinstance(item, list):
        return all(_numbers_only(i) for i in item)
    return item is None or (isinstance(item, (int, float)) and not isinstance(item, bool))


@pytest.mark.parametrize(
    "content",
    [
        "[" * 100_000 + "]" * 100_000,  # the parser gives up
        '{"loss": ' + "[" * 100_000 + "]" * 100_000 + "}",
        '{"loss": ' + "[" * 900 + "1" + "]" * 900 + "}",  # parsed, too deep to read
        '{"a": ' * 50_000 + "1" + "}" * 50_000,
        'epoch,loss\n0,"' + "[" * 5_000 + "1" + "]" * 5_000 + '"\n',  # a CSV cell
    ],
    ids=["list", "object of lists", "just parsed", "objects", "csv cell"],
)
def test_deeply_nested_json_is_refused_with_what_a_history_is(tmp_path, content):
    """Issue 23: a RecursionError instead of a message."""
    path = tmp_path / "history.json"
    path.write_text(content)
    with pytest.raises(ValueError) as info:
        load_history(path)
    message = str(info.value)
    assert f"{str(path)!r} holds JSON nested too deeply to be a history" in message
    assert "`path` must be a history file" in message and "CSVLogger" in message
    assert info.value.__suppress_context__  # no RecursionError traceback above it
