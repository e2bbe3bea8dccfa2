"""BatchNorm statistics re-estimated for the final weights (the running averages lag CoNNTrA's jumps)."""

import torch
from torch import nn

from ternkit.trainer import TrainConfig, train
from ternkit.trainer.batchnorm import recalibrate_batchnorm


def test_statistics_are_those_of_the_data_for_the_current_weights():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.Dropout(0.5), nn.ReLU(), nn.Linear(4, 2))
    x = torch.randn(512, 5) * 3 + 1
    model.train()
    model(x[:8])  # stale statistics from one small batch
    assert recalibrate_batchnorm(model, x, batch_size=128)
    h = model[0](x).detach()
    torch.testing.assert_close(model[1].running_mean, h.mean(0), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model[1].running_var, h.var(0), rtol=1e-2, atol=1e-4)
    assert model.training and model[1].momentum == 0.1  # modes and momentum restored
    assert not recalibrate_batchnorm(nn.Sequential(nn.Linear(2, 2)), torch.zeros(4, 2))


def test_training_recalibrates_and_records_it():
    bn = train(TrainConfig(dataset="digits", model="cnn:4c3s2bn-16", epochs=1), progress=False)
    plain = train(TrainConfig(dataset="digits", model="mlp:16", epochs=1), progress=False)
    assert bn.metrics["batchnorm_recalibrated"] and not plain.metrics["batchnorm_recalibrated"]
