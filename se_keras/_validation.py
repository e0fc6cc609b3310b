"""Argument checks shared by every module, with keras.applications' error wording.

Every error names the argument and the value received: "... Received: arg=value".
"""


def check_choice(name, value, choices):
    """Raises ValueError unless `value` is one of `choices`.

    Example:
    >>> check_choice("pooling", "avg", (None, "avg", "max"))
    """
    if value not in choices:
        raise ValueError(
            f"`{name}` must be one of {', '.join(map(repr, choices))}. "
            f"Received: {name}={value!r}"
        )


def check_positive(name, value, allow_none=False, integer=False):
    """Raises ValueError unless `value` is a positive number (an int if `integer`).

    Example:
    >>> check_positive("ratio", 16)
    """
    if value is None and allow_none:
        return
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:
        allowed = "a positive integer" if integer else "a positive number"
        raise ValueError(
            f"`{name}` must be {allowed}{' or None' if allow_none else ''}. "
            f"Received: {name}={value!r}"
        )
