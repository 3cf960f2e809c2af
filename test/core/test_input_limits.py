"""Images the models cannot take are refused with the limit in words, before any model runs."""
import numpy as np
import pytest
import torch

from hybridgl_ros.core.config import ModelConfig, ProposalConfig
from hybridgl_ros.core.errors import InvalidInputError
from hybridgl_ros.core.pipeline import check_aspect_ratio


@pytest.mark.parametrize('height, width', [(2, 4096), (4096, 2), (1, 2048), (3, 6144)])
def test_sam_1024_takes_up_to_2048_to_1(height, width):
    check_aspect_ratio(height, width, 1024)


@pytest.mark.parametrize('height, width', [(2, 4097), (2, 10000), (10000, 2)])
def test_thinner_than_2048_to_1_is_refused_with_the_limit(height, width):
    with pytest.raises(InvalidInputError, match='At most 2048:1 is accepted') as info:
        check_aspect_ratio(height, width, 1024)
    assert f'{width}x{height}' in str(info.value) and 'crop or pad' in str(info.value)


def test_the_sam_proposer_applies_its_own_input_side():
    """The embedded demo SAM resizes to 256 px: 2x1024 is its thinnest frame, 2x1025 too thin
    (measured: SAM's resize fails on 2x1025 with 'height and width must be > 0')."""
    from hybridgl_ros.core.models import load_sam
    from hybridgl_ros.core.proposals import SamProposer

    proposer = SamProposer(load_sam(ModelConfig(), torch.device('cpu')), ProposalConfig())
    proposals = proposer.propose(np.full((2, 1024, 3), 128, np.uint8))
    assert proposals.masks.shape[1:] == (2, 1024)
    with pytest.raises(InvalidInputError, match='At most 512:1'):
        proposer.propose(np.full((2, 1025, 3), 128, np.uint8))
