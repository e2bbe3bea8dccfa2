import numpy as np
import torch
from conftest import random_cnn, random_mlp


def test_dense_forward_matches_torch():
    m = random_mlp((6, 5, 3))
    x = np.random.default_rng(0).normal(size=(7, 6)).astype(np.float32)
    d0, d1 = m.layers[0], m.layers[2]
    h = torch.relu(torch.nn.functional.linear(torch.tensor(x), torch.tensor(d0.weight * d0.scale[:, None]),
                                              torch.tensor(d0.bias)))
    y = torch.nn.functional.linear(h, torch.tensor(d1.weight * d1.scale[:, None]), torch.tensor(d1.bias))
    assert np.allclose(m.forward(x), y.numpy(), atol=1e-5)


def test_conv_forward_matches_torch():
    m = random_cnn()
    x = np.random.default_rng(0).uniform(0, 16, size=(3, 1, 8, 8)).astype(np.float32)
    c, d = m.layers[0], m.layers[3]
    xn = torch.tensor(m.input.normalise(x))
    h = torch.nn.functional.conv2d(xn, torch.tensor(c.weight.astype(np.float32) * c.scale[:, None, None, None]),
                                   torch.tensor(c.bias), stride=c.stride, padding=c.padding)
    h = torch.relu(h).flatten(1)
    y = torch.nn.functional.linear(h, torch.tensor(d.weight.astype(np.float32) * d.scale[0]), torch.tensor(d.bias))
    assert m.shapes() == [(4, 4, 4), (4, 4, 4), (64,), (10,)]
    assert np.allclose(m.forward(x), y.numpy(), atol=1e-4)
