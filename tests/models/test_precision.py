"""models.precision.autocast: the one mixed-precision switch that training and inference share."""
import torch

from floodwatch.models.precision import autocast


def test_none_runs_float32_and_a_dtype_runs_in_it():
    conv = torch.nn.Conv2d(2, 4, 3)
    x = torch.randn(1, 2, 8, 8)
    with autocast(torch.device("cpu"), None):
        assert conv(x).dtype == torch.float32
    with autocast(torch.device("cpu"), torch.bfloat16):
        y = conv(x)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), conv(x), atol=0.05, rtol=0.02)  # bfloat16's 8-bit mantissa
