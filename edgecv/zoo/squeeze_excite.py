"""Squeeze-and-excitation (Hu et al. 2018): a per-channel gate computed from the globally
averaged feature map, shared by SE-ResNet and SE-ResNeXt.

The gate's layers are a plain ``HybridSequential`` kept by the owning block under ``se``
(GluonCV's parameter names: ``se.0``, ``se.2``): SE-ResNet's are bias-free dense layers,
SE-ResNeXt's 1x1 convolutions with bias.
"""

from __future__ import annotations

from mxnet.gluon import nn


def gate_layers(channels: int, reduced: int, dense: bool) -> nn.HybridSequential:
    """Down to ``reduced`` channels, ReLU, back up to ``channels``, sigmoid."""
    se = nn.HybridSequential(prefix="")
    if dense:
        se.add(nn.Dense(reduced, use_bias=False), nn.Activation("relu"))
        se.add(nn.Dense(channels, use_bias=False), nn.Activation("sigmoid"))
    else:
        se.add(nn.Conv2D(reduced, 1), nn.Activation("relu"))
        se.add(nn.Conv2D(channels, 1), nn.Activation("sigmoid"))
    return se


def excite(F, x, se: nn.HybridSequential):  # noqa: N803 (MXNet's F)
    """``x`` scaled per channel by the gate ``se`` computes from its global average."""
    gate = se(F.Pooling(x, kernel=(1, 1), pool_type="avg", global_pool=True))
    if isinstance(se[0], nn.Dense):  # (N, C) -> (N, C, 1, 1)
        gate = gate.expand_dims(axis=2).expand_dims(axis=2)
    return F.broadcast_mul(x, gate)
