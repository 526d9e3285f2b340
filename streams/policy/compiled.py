"""Per-character loops over a whole batch, compiled to machine code with numba.

A loop over a batch's code points costs tens of nanoseconds a character in Python and a few compiled, and one pass
can do what would otherwise take a dozen whole-array numpy steps. Compiled functions are cached on disk (in
``NUMBA_CACHE_DIR`` if it is set, else in ``__pycache__`` beside the module if it is writable, else in the user's
cache folder), so only the first start on a machine compiles them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba

log = logging.getLogger(__name__)

_Function = TypeVar("_Function", bound=Callable[..., Any])
_uncached: list[str] = []  # the functions compiled without a cache, as numba found no folder it may write it to


def compiled(function: _Function) -> _Function:
    """``function`` compiled for the types of its first call; it may use Python scalars and numpy arrays only."""
    try:
        return cast(_Function, numba.njit(cache=True, nogil=True)(function))
    except RuntimeError as exc:  # no folder numba may write its cache to: compiled on every start instead
        if not _uncached:
            log.warning(
                "%s; every start compiles again (a few seconds) until NUMBA_CACHE_DIR names a writable folder", exc
            )
        _uncached.append(function.__name__)
        return cast(_Function, numba.njit(nogil=True)(function))
