"""The optional native extension: oneDNN convolutions and BatchNorm's per-channel sums as XLA
FFI handlers for the CPU.

``make native`` builds ``libjaxconv_onednn.so`` (from ``native/``) into this folder. Here it
is found, loaded and its handlers registered with XLA, once, on first use: importing jaxconv
never loads it. Without it everything works as before and `available` says why it is absent;
``impl="onednn"`` then refuses with that reason. A run's numbers differ with the extension and
its oneDNN version, so `record` is part of what a run records.

``JAXCONV_NATIVE=0`` in the environment (read when the library would first load) runs a process
without it even where it is built, as on a machine without a compiler; ``1`` or unset loads it
where it is built.

What lives here: the library's location, loading, FFI registration and its facts. The
formulation that calls the conv handlers is `jaxconv.functional.formulations.onednn`; the
BatchNorm sums are called by `jaxconv.functional.channel_sums`.
"""

from __future__ import annotations

import ctypes
import functools
import os
from pathlib import Path

import jax

#: Where ``make native`` puts the library.
LIBRARY = Path(__file__).with_name("libjaxconv_onednn.so")

#: FFI target names registered for the CPU, by the handler symbol that implements each.
TARGETS = {
    "jaxconv_onednn_conv_forward": "JaxconvOnednnConvForward",
    "jaxconv_onednn_conv_backward_data": "JaxconvOnednnConvBackwardData",
    "jaxconv_onednn_conv_backward_weights": "JaxconvOnednnConvBackwardWeights",
    "jaxconv_onednn_conv_forward_bf16": "JaxconvOnednnConvForwardBf16",
    "jaxconv_onednn_conv_backward_data_bf16": "JaxconvOnednnConvBackwardDataBf16",
    "jaxconv_onednn_conv_backward_weights_bf16": "JaxconvOnednnConvBackwardWeightsBf16",
    "jaxconv_channel_sums": "JaxconvChannelSums",
}


#: The environment variable that turns the extension off (``0``) for a process.
SWITCH = "JAXCONV_NATIVE"


def enabled() -> bool:
    """Whether `SWITCH` lets the extension load: unset or ``1``, not ``0``.

    Raises:
      ValueError: `SWITCH` has another value.
    """
    value = os.environ.get(SWITCH)
    if value not in (None, "0", "1"):
        raise ValueError(f"{SWITCH}={value!r}: expected 0 (run without the native extension), "
                         "1 or unset (load it where it is built)")
    return value != "0"


@functools.cache
def _load() -> tuple[ctypes.CDLL | None, str | None]:
    """The loaded library with its targets registered, or ``None`` and why not.

    Raises:
      ValueError: `SWITCH` has a value other than 0 or 1 (not cached: every call says so).
    """
    if not enabled():
        return None, f"disabled by {SWITCH}=0"
    if not LIBRARY.exists():
        return None, (f"the native extension is not built ({LIBRARY.name} is not in "
                      f"{LIBRARY.parent}; `make native` builds it where CMake, a C++ compiler "
                      "and oneDNN are present)")
    try:
        library = ctypes.CDLL(str(LIBRARY))
    except OSError as error:
        return None, f"the native extension {LIBRARY} does not load: {error}"
    missing = [symbol for symbol in TARGETS.values() if not hasattr(library, symbol)]
    if missing:
        return None, (f"the native extension {LIBRARY} was built from older sources (it lacks "
                      f"{', '.join(missing)}); `make native` rebuilds it")
    for target, symbol in TARGETS.items():
        jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(library, symbol)),
                                    platform="cpu")
    library.JaxconvOnednnVersion.restype = ctypes.c_char_p
    library.JaxconvOnednnCacheSize.restype = ctypes.c_int64
    return library, None


def available() -> bool:
    """Whether the extension is built, loads, and its FFI targets are registered (and
    ``JAXCONV_NATIVE`` is not 0).

    Raises:
      ValueError: ``JAXCONV_NATIVE`` has a value other than 0 or 1.
    """
    return _load()[0] is not None


def reason() -> str | None:
    """Why the extension is unavailable, or ``None`` when it is available."""
    return _load()[1]


def onednn_version() -> str | None:
    """The oneDNN version the extension runs with (``"3.2.0"``), or ``None`` without it."""
    library = _load()[0]
    return None if library is None else library.JaxconvOnednnVersion().decode()


def cached_primitives() -> int:
    """How many oneDNN primitive configurations the extension holds (its cache is bounded).

    Raises:
      RuntimeError: the extension is unavailable (the message says why).
    """
    library = _load()[0]
    if library is None:
        raise RuntimeError(f"jaxconv.tuning.native: {reason()}")
    return int(library.JaxconvOnednnCacheSize())


def library_digest() -> str | None:
    """The first 16 hex digits of the built library's SHA-256, or ``None`` where it is not
    built: a rebuild (other code, another oneDNN) gives another digest."""
    import hashlib

    if not LIBRARY.exists():
        return None
    return hashlib.sha256(LIBRARY.read_bytes()).hexdigest()[:16]


def record() -> dict[str, str | bool | None]:
    """What a run records about the extension: whether it is present and its oneDNN
    version."""
    return {"available": available(), "onednn": onednn_version()}
