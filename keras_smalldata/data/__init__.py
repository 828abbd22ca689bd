"""Directory helpers: subsets and splits, image verification, demo data."""

from keras_smalldata.data.demo import demo_dataset
from keras_smalldata.data.subsets import SubsetSummary, make_subsets
from keras_smalldata.data.verify import VerificationReport, verify_images

__all__ = [
    "SubsetSummary",
    "VerificationReport",
    "demo_dataset",
    "make_subsets",
    "verify_images",
]
