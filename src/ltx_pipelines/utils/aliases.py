"""Keyword names of the reference package (ltx-pipelines 1.0.0) where ours differ.

Our names stay the documented ones; code written for the reference keeps working because a
pipeline's constructor or call also accepts the reference's name for the same argument::

    @reference_names(distilled_checkpoint_path="checkpoint_path")
    def __init__(self, checkpoint_path, ...): ...

The aliases are recorded on the function (``reference_aliases``), so the parity test can check
every reference argument against our signatures.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)


def reference_names(**aliases: str) -> Callable[[F], F]:
    """Accept ``reference_name=value`` as ``our_name=value``; giving both is a TypeError, like any duplicate."""

    def decorate(function: F) -> F:
        @functools.wraps(function)
        def accepting_aliases(*args: object, **kwargs: object) -> object:
            for theirs, ours in aliases.items():
                if theirs in kwargs:
                    if ours in kwargs:
                        raise TypeError(
                            f"{function.__qualname__}() got both {ours}= and {theirs}= (the reference's name for it); "
                            "pass one."
                        )
                    kwargs[ours] = kwargs.pop(theirs)
            return function(*args, **kwargs)

        accepting_aliases.reference_aliases = {**getattr(function, "reference_aliases", {}), **aliases}
        return accepting_aliases  # type: ignore[return-value]

    return decorate


def aliases_of(function: Callable) -> dict[str, str]:
    """{reference name: our name} accepted by ``function`` (empty when it takes the reference's names as they are)."""
    return dict(getattr(function, "reference_aliases", {}))


__all__ = ["aliases_of", "reference_names"]
