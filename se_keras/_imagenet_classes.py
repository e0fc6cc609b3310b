"""The 1000 ImageNet (ILSVRC-2012) classes, shipped with the package so that they work offline.

`_imagenet_class_index.json` beside this module holds them in the usual
index order, with their WordNet ids and first lemmas. Kept at the bottom
layer because the data sources (TFRecords without metadata), the builders'
`decode_predictions`, export and the commands all name the classes.

Example:
>>> imagenet_class_names()[0]
'tench'
"""

import functools
import json
import pathlib

_CLASS_INDEX = pathlib.Path(__file__).parent / "_imagenet_class_index.json"


@functools.lru_cache(maxsize=1)
def class_index():
    """The 1000 `(wordnet id, class name)` pairs in index order.

    Example:
    >>> class_index()[1]
    ('n01443537', 'goldfish')
    """
    with open(_CLASS_INDEX, encoding="utf-8") as f:
        index = json.load(f)
    return [tuple(index[str(i)]) for i in range(len(index))]


def imagenet_class_names():
    """The 1000 ImageNet class names in index order.

    Example:
    >>> imagenet_class_names()[0]
    'tench'
    """
    return [name for _, name in class_index()]
