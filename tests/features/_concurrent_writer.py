"""A process that fills a feature cache at the same moment as another (see test_cache)."""

import os
import sys


def fill_cache_in_rounds(root, rounds, barrier, results):
    """Extracts the same features into ``root/<round>`` once per round, in step with the others."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np

    from keras_smalldata.features import extract_features
    from tests.features.conftest import conv_model

    model = conv_model(seed=0)
    x = np.random.default_rng(0).uniform(0, 255, (12, 16, 16, 3)).astype("float32")
    y = np.arange(12)
    for round_ in range(rounds):
        barrier.wait(timeout=120)
        try:
            result = extract_features(
                model, (x, y), batch_size=4, cache_dir=os.path.join(root, str(round_)), verbose=0
            )
            results.put((round_, "ok", np.array(result.features), np.array(result.labels)))
        except BaseException as error:  # noqa: BLE001 - reported to the test
            results.put((round_, "error", f"{type(error).__name__}: {error}", None))
    sys.stdout.flush()
