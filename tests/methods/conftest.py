import pytest
from facezoo.datamodules.synthetic import SyntheticFaces

from facezoo.methods import Deep3DFace

MODEL = "procedural:600"
SIZE = 48


@pytest.fixture
def tiny_method():
    def make(**kwargs) -> Deep3DFace:
        args = dict(morphable_model=MODEL, backbone="resnet18", backbone_kwargs={"width": 8}, image_size=SIZE)
        args.update(kwargs)
        return Deep3DFace(**args)

    return make


@pytest.fixture
def tiny_data():
    def make(**kwargs) -> SyntheticFaces:
        args = dict(morphable_model=MODEL, image_size=SIZE, batch_size=4, num_train=8, num_val=4, num_test=4)
        args.update(kwargs)
        return SyntheticFaces(**args)

    return make


@pytest.fixture(scope="module")
def batch():
    dm = SyntheticFaces(MODEL, image_size=SIZE, batch_size=4, num_train=8)
    return next(iter(dm.train_dataloader()))
