"""Tests for `smooth_curve`."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_smalldata.training import smooth_curve
from keras_smalldata.training.smoothing import ExponentialAverage


def test_seeded_average_hand_computed():
    # s0 = 4; s1 = .5*4 + .5*0 = 2; s2 = .5*2 + .5*2 = 2; s3 = .5*2 + .5*8 = 5
    np.testing.assert_array_equal(smooth_curve([4, 0, 2, 8], factor=0.5), [4, 2, 2, 5])
    # s0 = 0; s1 = .75*0 + .25*4 = 1; s2 = .75*1 + .25*4 = 1.75
    np.testing.assert_array_equal(smooth_curve([0, 4, 4], factor=0.75), [0, 1, 1.75])


def test_seeded_average_matches_the_seeds_recipe_at_default_factor():
    points = [0.61, 0.68, 0.66, 0.74, 0.71, 0.79]
    expected = []
    for point in points:  # The seeds' loop, written out.
        expected.append(expected[-1] * 0.8 + point * 0.2 if expected else point)
    np.testing.assert_allclose(smooth_curve(points), expected, rtol=0, atol=1e-15)


def test_debiased_average_hand_computed():
    # a1 = .5*4 = 2, /(1 - .5) = 4
    # a2 = .5*2 + .5*0 = 1, /(1 - .25) = 4/3
    # a3 = .5*1 + .5*2 = 1.5, /(1 - .125) = 12/7
    np.testing.assert_allclose(
        smooth_curve([4, 0, 2], factor=0.5, debias=True), [4, 4 / 3, 12 / 7], rtol=1e-15
    )


def test_debiased_average_is_a_normalised_weighted_mean():
    points = np.array([3.0, -1.0, 7.0, 2.5, 0.25])
    factor = 0.7
    expected = []
    for t in range(len(points)):
        weights = factor ** np.arange(t, -1, -1)  # oldest point weighs factor**t
        expected.append(np.sum(weights * points[: t + 1]) / np.sum(weights))
    np.testing.assert_allclose(smooth_curve(points, factor, debias=True), expected, rtol=1e-12)


def test_debias_removes_the_pull_toward_the_first_point():
    points = [10.0, 0.0, 0.0, 0.0]
    seeded = smooth_curve(points, 0.9)
    debiased = smooth_curve(points, 0.9, debias=True)
    assert seeded[-1] == pytest.approx(10 * 0.9**3)
    assert debiased[-1] == pytest.approx(10 * 0.9**3 * 0.1 / (1 - 0.9**4))
    assert debiased[-1] < seeded[-1]


@pytest.mark.parametrize("debias", [False, True])
@pytest.mark.parametrize("factor", [0.0, 0.3, 0.8, 0.99])
def test_constant_sequence_unchanged(factor, debias):
    points = np.full(12, 0.4375)
    np.testing.assert_allclose(smooth_curve(points, factor, debias=debias), points, rtol=1e-13)


@pytest.mark.parametrize("debias", [False, True])
def test_factor_zero_is_identity(debias):
    points = [0.3, 1.7, -2.0, 5.5]
    result = smooth_curve(points, factor=0.0, debias=debias)
    np.testing.assert_array_equal(result, points)
    assert result.dtype == np.float64


def test_nan_and_inf_are_skipped_and_stay_nan():
    points = [4, math.nan, 0, math.inf, 2, -math.inf]
    seeded = smooth_curve(points, 0.5)
    np.testing.assert_array_equal(seeded, [4, np.nan, 2, np.nan, 2, np.nan])
    debiased = smooth_curve(points, 0.5, debias=True)
    np.testing.assert_allclose(
        debiased, [4, np.nan, 4 / 3, np.nan, 12 / 7, np.nan], rtol=1e-15
    )


def test_leading_nan_and_none():
    np.testing.assert_array_equal(smooth_curve([None, math.nan, 2, 4], 0.5), [np.nan, np.nan, 2, 3])
    np.testing.assert_array_equal(smooth_curve([2, None, 4], 0.5), [2, np.nan, 3])
    np.testing.assert_array_equal(smooth_curve([math.nan, math.nan], 0.5), [np.nan, np.nan])


def test_numpy_inputs_and_empty():
    result = smooth_curve(np.array([1.0, 3.0], dtype=np.float32), 0.5)
    assert isinstance(result, np.ndarray) and result.dtype == np.float64
    np.testing.assert_array_equal(result, [1.0, 2.0])
    np.testing.assert_array_equal(smooth_curve((1, 3), 0.5), [1.0, 2.0])
    np.testing.assert_array_equal(smooth_curve(iter([1, 3]), 0.5), [1.0, 2.0])
    assert smooth_curve([], 0.5).shape == (0,)
    assert smooth_curve(np.array([], dtype=np.float32)).shape == (0,)


@pytest.mark.parametrize("factor", [1.0, 1.5, -0.1, math.nan])
def test_factor_out_of_range(factor):
    with pytest.raises(ValueError, match=r"`factor` must be a number in \[0, 1\), e.g. factor=0.8"):
        smooth_curve([1.0, 2.0], factor=factor)


@pytest.mark.parametrize("factor", ["0.8", None, True, [0.8]])
def test_factor_wrong_type(factor):
    with pytest.raises(TypeError, match="`factor` must be a number in"):
        smooth_curve([1.0, 2.0], factor=factor)


def test_bad_points():
    with pytest.raises(ValueError, match="must be 1-D"):
        smooth_curve(np.ones((2, 3)))
    with pytest.raises(ValueError, match="must be 1-D"):
        smooth_curve(3.0)
    with pytest.raises(TypeError, match="must hold numbers"):
        smooth_curve(["a", "b"])
    with pytest.raises(TypeError, match="1-D list or NumPy array"):
        smooth_curve("0.1,0.2")
    with pytest.raises(TypeError, match="1-D list or NumPy array"):
        smooth_curve({"loss": [1.0]})


def test_running_average_matches_smooth_curve():
    points = [0.9, math.nan, 0.7, 0.8, math.inf, 0.4]
    for debias in (False, True):
        average = ExponentialAverage(0.6, debias=debias)
        online = [average.update(p) for p in points]
        np.testing.assert_array_equal(online, smooth_curve(points, 0.6, debias=debias))
        average.reset()
        assert average.update(5.0) == pytest.approx(5.0)


finite_floats = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
maybe_bad = st.one_of(finite_floats, st.just(math.nan), st.just(math.inf), st.just(-math.inf))


@settings(max_examples=30, deadline=None)
@given(
    points=st.lists(maybe_bad, max_size=40),
    factor=st.floats(min_value=0.0, max_value=0.999),
    debias=st.booleans(),
)
def test_properties(points, factor, debias):
    result = smooth_curve(points, factor, debias=debias)
    assert result.shape == (len(points),)
    values = np.asarray(points, dtype=np.float64)
    finite = np.isfinite(values)
    # Non-finite positions are exactly the NaN ones of the output.
    np.testing.assert_array_equal(np.isfinite(result), finite)
    if finite.any():
        low, high = values[finite].min(), values[finite].max()
        slack = 1e-9 * max(1.0, abs(low), abs(high))
        assert np.all(result[finite] >= low - slack)
        assert np.all(result[finite] <= high + slack)
        # The first finite point is always kept.
        first = int(np.argmax(finite))
        assert result[first] == pytest.approx(values[first], rel=1e-9, abs=1e-9)


@settings(max_examples=20, deadline=None)
@given(points=st.lists(finite_floats, min_size=1, max_size=30), debias=st.booleans())
def test_factor_zero_identity_property(points, debias):
    np.testing.assert_array_equal(smooth_curve(points, 0.0, debias=debias), points)
