"""Where a block's SE block goes: the one `se_position` vocabulary of every family.

| value | where the SE block recalibrates |
|---|---|
| "standard" | the block's transform output, before any residual addition or concatenation (the paper's SE-ResNet integration); for a block without a residual, the block's output |
| "post" | the block's output after the residual addition / concatenation and its activation |
| "pre" | the residual unit's input, before the unit (resnet only) |
| "identity" | the shortcut (resnet only) |
| "inner" | inside the block, after its intermediate activation: after the depthwise convolution in MobileNet v1/v2, after every convolution in VGG |

Per family, the values it accepts (the default first) and its former names,
which still work, deprecated (removed in 0.2), with a `DeprecationWarning`
naming the new value:

| family | accepted | former names |
|---|---|---|
| resnet | standard, pre, post, identity | - |
| inception | standard, post | "residual" -> standard, "output" -> post |
| mobilenet | standard, inner | "output" -> standard, "depthwise" -> inner |
| shufflenet | standard, post | "residual" -> standard, "output" -> post |
| vgg | standard, inner | "block" -> standard, "conv" -> inner |

In the inception family only Inception-ResNet-v2 has residual blocks;
BN-Inception and Inception-v3 accept the option and ignore it (their SE
blocks are on each module's output). The CIFAR ResNets have no
`se_position`: their SE blocks are "standard". Layer names do not depend
on the vocabulary: VGG's "inner" blocks are still `block{b}_conv{i}_se`.
"""

import collections

from se_keras._validation import check_choice
from se_keras.applications._arguments import warn_deprecated

STANDARD = "standard"
POST = "post"
PRE = "pre"
IDENTITY = "identity"
INNER = "inner"

Family = collections.namedtuple("Family", ["positions", "former", "docs"])
Family.__doc__ = """One family's `se_position` table.

Attributes:
    positions: the accepted values, the default first.
    former: deprecated old value -> the accepted value it means.
    docs: value -> what it means in this family (for builder docstrings).
"""

FAMILIES = {
    "resnet": Family(
        (STANDARD, PRE, POST, IDENTITY), {},
        {STANDARD: "on the residual branch, before the addition",
         PRE: "before the residual unit",
         POST: "after the addition and ReLU",
         IDENTITY: "on the shortcut"},
    ),
    "inception": Family(
        (STANDARD, POST), {"residual": STANDARD, "output": POST},
        {STANDARD: "Inception-ResNet-v2's residual branch, before the scaling and addition",
         POST: "after the addition and ReLU"},
    ),
    "mobilenet": Family(
        (STANDARD, INNER), {"output": STANDARD, "depthwise": INNER},
        {STANDARD: "on the block's output (v2: the linear projection, before the addition)",
         INNER: "after the depthwise convolution's activation (v2: in the expanded space)"},
    ),
    "shufflenet": Family(
        (STANDARD, POST), {"residual": STANDARD, "output": POST},
        {STANDARD: "on the residual branch, before the addition or concatenation",
         POST: "after the unit's final ReLU"},
    ),
    "vgg": Family(
        (STANDARD, INNER), {"block": STANDARD, "conv": INNER},
        {STANDARD: "after each block's last convolution, before the pool",
         INNER: "after every convolution"},
    ),
}


def resolve(family, se_position):
    """The accepted value that `se_position` names in `family`; warns for a former name.

    Raises:
        ValueError: for a value the family does not accept.

    Example:
    >>> resolve("vgg", "standard")
    'standard'
    """
    table = FAMILIES[family]
    if isinstance(se_position, str) and se_position in table.former:
        new = table.former[se_position]
        warn_deprecated(
            f"se_position={se_position!r} is deprecated and will be removed in 0.2; "
            f"use se_position={new!r}."
        )
        return new
    check_choice("se_position", se_position, table.positions)
    return se_position


def describe(family):
    """One line per accepted value of `family`, for a builder's docstring.

    Example:
    >>> describe("shufflenet").startswith('"standard" (default)')
    True
    """
    table = FAMILIES[family]
    parts = []
    for i, position in enumerate(table.positions):
        default = " (default)" if i == 0 else ""
        parts.append(f'"{position}"{default}: {table.docs[position]}')
    former = ", ".join(f'"{old}" -> "{new}"' for old, new in table.former.items())
    text = "; ".join(parts) + "."
    if former:
        text += f" Deprecated former names (removed in 0.2): {former}."
    return text
