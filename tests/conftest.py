"""Shared fixtures: the real texture the tests train on, and a randomly initialised VGG16."""

from pathlib import Path

import pytest
import torch

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def pebbles_path() -> Path:
    return DATA / "pebbles.png"


@pytest.fixture(scope="session")
def pebbles_64(pebbles_path) -> torch.Tensor:
    from nca_gradio.images import load_target

    return load_target(pebbles_path, 64)


@pytest.fixture(scope="session")
def random_vgg():
    """VGG16's feature layers with random weights: same shapes and cost as the pretrained one."""
    import timm

    torch.manual_seed(0)
    return timm.create_model("vgg16", pretrained=False, num_classes=0).features[:26]
