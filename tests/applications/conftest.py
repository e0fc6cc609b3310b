"""Shared fixtures of the application tests."""

import inspect

import pytest


@pytest.fixture(scope="module")
def models():
    """`models(builder, **kwargs)`: `builder(**kwargs)`, built once per test module.

    Full-size models take seconds to build, so the tests of a module share
    them. Calls that resolve to the same arguments (defaults filled in) share
    one model: `models(SEShuffleNet)` is `models(SEShuffleNet, groups=3)`.
    Tests must not change the models they get.
    """
    cache = {}

    def get(builder, **kwargs):
        bound = inspect.signature(builder).bind(**kwargs)
        bound.apply_defaults()
        key = (builder, repr(sorted(bound.arguments.items())))
        if key not in cache:
            cache[key] = builder(**kwargs)
        return cache[key]

    return get
