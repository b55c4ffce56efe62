"""Seed 003's arithmetic on architectures: what a stack of small filters sees."""

from __future__ import annotations

from reproduce import Reproduction

import cnnumpy
from cnnumpy.layers import Conv2D


def receptive_field(quick: bool) -> dict:
    """Three 3x3 convolutions against one 7x7: the same field, fewer weights."""
    C = 64
    stack = cnnumpy.Sequential(
        [Conv2D(C, 3, use_bias=False) for _ in range(3)], input_shape=(C, 32, 32)
    )
    single = cnnumpy.Sequential([Conv2D(C, 7, use_bias=False)], input_shape=(C, 32, 32))
    field = cnnumpy.receptive_field(stack)[-1].size
    one = cnnumpy.receptive_field(single)[-1].size
    print(f"   three 3x3: field {field}, {stack.count_params():,} weights (C = {C})")
    print(f"   one 7x7:   field {one}, {single.count_params():,} weights")
    ratio = stack.count_params() / single.count_params()
    return {
        "cnnumpy": f"field {field[0]}x{field[1]} either way; weights 27·C² = "
        f"{stack.count_params():,} against 49·C² = {single.count_params():,} "
        f"(ratio {ratio:.3f} = 27/49) for C = {C}",
        "differences": "",
        "field": list(field),
        "weights": [stack.count_params(), single.count_params()],
    }


REPRODUCTIONS = [
    Reproduction(
        "seed003_receptive_field",
        "seed 003, VGG: three 3x3 layers see 7x7",
        "three stacked 3x3 convolutions see a 7x7 region with 27·C² weights, "
        "against 49·C² for one 7x7 layer",
        receptive_field,
        minutes=0.01,
    ),
]
