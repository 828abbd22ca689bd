import numpy as np
import pytest

from keras_smalldata.viz import cam_faithfulness
from tests.viz.conftest import SIZE, region_model, region_pictures


def test_cam_faithfulness_metrics():
    model = region_model("softmax", scale=64.0)
    pictures = region_pictures()
    keep = np.zeros((2, SIZE, SIZE), dtype="float32")
    keep[0, :16, :16] = 1.0  # the red square's quadrant
    keep[1, 16:, 16:] = 1.0
    before = model.predict(pictures, verbose=0)[[0, 1], [0, 1]]
    after = model.predict(pictures * keep[..., None], verbose=0)[[0, 1], [0, 1]]
    np.testing.assert_allclose(after, before)  # the evidence is all kept
    result = cam_faithfulness(model, pictures, heatmaps=keep)
    assert result == {"average_drop": 0.0, "increase_in_confidence": 0.0, "count": 2}
    removed = cam_faithfulness(model, pictures, heatmaps=1.0 - keep)
    after = model.predict(pictures * (1.0 - keep)[..., None], verbose=0)[[0, 1], [0, 1]]
    expected = 100 * np.mean(np.maximum(0, before - after) / before)
    assert removed["average_drop"] == pytest.approx(expected, rel=1e-5)
    assert removed["average_drop"] > 40
    half = cam_faithfulness(model, pictures, heatmaps=0.5 * keep, class_index=[0, 1])
    after = model.predict(pictures * 0.5 * keep[..., None], verbose=0)[[0, 1], [0, 1]]
    assert half["average_drop"] == pytest.approx(
        100 * np.mean(np.maximum(0, before - after) / before), rel=1e-5
    )
    computed = cam_faithfulness(model, pictures)  # Grad-CAM maps: they keep the squares
    assert computed["average_drop"] < 5.0
    with pytest.raises(ValueError, match="`heatmaps` must have shape"):
        cam_faithfulness(model, pictures, heatmaps=np.ones((2, 8, 8)))
    with pytest.raises(ValueError, match="Did you mean 'gradcam'"):
        cam_faithfulness(model, pictures, method="gradcm")
