"""Process settings that make convolutions faster, set only by jaxconv's own entry points.

``import jaxconv`` never changes the process environment. The ``jaxconv`` command starts itself
with `recommended` settings (re-executing once when the C library must see them at start-up)
and turns JAX's asynchronous CPU dispatch off before its first JAX operation; library
functions, `jaxconv.experiment.run` included, leave the process as it is. Library users who
want the same effect set the variables before Python starts, e.g.::

    XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=-individual_convolution,-individual_dot \\
    GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=17179869184 \\
    python train.py

and call ``jax.config.update("jax_cpu_enable_async_dispatch", False)`` before their first JAX
operation; or call `tune_process` once at the top of their program, which does both parts that
can be done from inside a running program (malloc and dispatch). The XLA part can be given to
one compiled function, with no variable at all:
``jax.jit(step, compiler_options=jaxconv.environment.compiler_options())``.

Measured by ``jaxconv bench --settings both`` on a 2-core x86 CPU (experiments/results/
bench_ops_cpu.md), jax 0.10:

- XLA flag: XLA's CPU backend hands 2-D convolutions and dots to YNNPACK by default, whose
  convolutions run slower than XLA's own here: dense, strided and dilated 3x3 convolutions
  forward + backward take about 0.6x the time without it, the grouped and transposed
  formulations 0.4-0.6x; depthwise and 1x1 are unchanged. An unknown flag makes XLA abort, so
  flags are named only for the jaxlib versions they were measured on.
- malloc: XLA allocates its large temporaries afresh on every call, and glibc maps each one
  over 32 MiB from the kernel anew (and returns it after the call), so every call pays a page
  fault per 4 KiB page of its temporaries. With ``mmap_max=0`` and a high ``trim_threshold``
  the freed memory is kept and reused. This only works with synchronous dispatch: with JAX's
  asynchronous CPU dispatch the step runs on a worker thread, whose malloc arena maps large
  blocks afresh whatever ``mmap_max`` says. Measured on a 2-core AMD EPYC (AVX2), jax 0.10.2,
  MobileNetV2 bench net training step: 875 ms default, 947 ms with the tunables alone, 935 ms
  with dispatch alone, 561 ms with both (experiments/results/fit_cpu_avx2.md). The earlier
  setting, transparent huge pages (``glibc.malloc.hugetlb=1``), measured 1.5x on an AVX-512
  CPU (experiments/results/bench_ops_cpu.md).
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping

from jaxconv.tuning.machine import jaxlib_minor

#: jaxlib ``major.minor`` -> XLA flags measured to help convolutions on CPU.
MEASURED: dict[str, tuple[str, ...]] = {
    "0.10": ("--xla_cpu_experimental_ynn_fusion_type=-individual_convolution,-individual_dot",),
}

#: jaxlib ``major.minor`` -> options for one compilation (``jax.jit(compiler_options=...)``)
#: with the effect of the `MEASURED` flags. A repeated option is replaced whole, not edited like
#: the flag: jaxlib 0.10 hands individual dots, individual convolutions and reductions to
#: YNNPACK by default, and only the reductions stay.
MEASURED_COMPILER_OPTIONS: dict[str, dict[str, str]] = {
    "0.10": {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_REDUCE"},
}

#: glibc malloc tunables: freed memory is kept for the next call instead of unmapped.
MALLOC_TUNABLES = ("glibc.malloc.mmap_max=0", "glibc.malloc.trim_threshold=17179869184")

#: ``mallopt`` parameters (glibc's ``malloc.h``) with the effect of `MALLOC_TUNABLES`.
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4

#: Set this variable to ``0`` to keep jaxconv's commands from changing any setting.
OPT_OUT = "JAXCONV_TUNE"


def recommended_xla_flags(jaxlib_version: str | None = None) -> tuple[str, ...]:
    """The XLA flags measured to help on this jaxlib (none for versions not measured).

    Args:
      jaxlib_version: a jaxlib version such as ``"0.10.2"``, looked up by ``major.minor`` in
        `MEASURED`; ``None`` for this process's jaxlib.

    Returns:
      The flags, ready for ``XLA_FLAGS``; ``()`` for a version not measured.

    >>> recommended_xla_flags("0.10.2")
    ('--xla_cpu_experimental_ynn_fusion_type=-individual_convolution,-individual_dot',)
    >>> recommended_xla_flags("0.4.38")
    ()
    """
    return MEASURED.get(jaxlib_minor(jaxlib_version), ())


def compiler_options(backend: str | None = None,
                     jaxlib_version: str | None = None) -> dict[str, str]:
    """Options for ``jax.jit(f, compiler_options=...)`` that act as the recommended XLA flags on
    that one function, set from inside a running program: nothing global changes.

    Empty off CPU and on jaxlib versions not measured (XLA rejects an option it does not know).

    Args:
      backend: the backend the function compiles for (``"cpu"``, ``"gpu"``, ...); ``None``
        for ``jax.default_backend()``, which starts JAX's backends.
      jaxlib_version: as in `recommended_xla_flags`.

    Returns:
      A new dict of option name -> value, from `MEASURED_COMPILER_OPTIONS`.

    >>> compiler_options("cpu", "0.10.2")
    {'xla_cpu_experimental_ynn_fusion_type': 'LIBRARY_FUSION_TYPE_REDUCE'}
    >>> compiler_options("gpu", "0.10.2")
    {}
    """
    if backend is None:
        import jax

        backend = jax.default_backend()
    if backend != "cpu":
        return {}
    return dict(MEASURED_COMPILER_OPTIONS.get(jaxlib_minor(jaxlib_version), {}))


def backends_started() -> bool:
    """Whether JAX has created its backends (after which ``XLA_FLAGS`` has no effect).

    Never imports JAX itself: ``False`` while ``jax`` has not been imported.

    Returns:
      ``True`` once the backends exist (after the first JAX operation or device query).
    """
    if "jax" not in sys.modules:
        return False
    from jax._src import xla_bridge

    return xla_bridge.backends_are_initialized()


def _merge(current: str, additions: tuple[str, ...], sep: str) -> tuple[str, tuple[str, ...]]:
    """``current`` plus the ``name=value`` additions whose name it does not set already."""
    names = {item.split("=")[0] for item in current.split(sep) if item}
    added = tuple(a for a in additions if a.split("=")[0] not in names)
    return sep.join([item for item in current.split(sep) if item] + list(added)), added


def glibc() -> bool:
    """Whether this process runs on Linux with the GNU C library, which reads
    ``GLIBC_TUNABLES`` and offers ``mallopt``.

    Returns:
      ``True`` on Linux with glibc; ``False`` elsewhere (macOS, Windows, musl).
    """
    return sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def recommended(environ: Mapping[str, str], jaxlib_version: str | None = None
                ) -> dict[str, str]:
    """``environ`` with the recommended XLA flags and malloc tunables added (the user's own
    values for the same names win; nothing added with ``JAXCONV_TUNE=0``).

    A flag or tunable counts as set when ``environ`` already names it (the text before its
    ``=``), whatever its value. The malloc tunables are added only where `glibc` is true.

    Args:
      environ: the environment to start from, e.g. ``os.environ``; it is not modified.
      jaxlib_version: as in `recommended_xla_flags`.

    Returns:
      A new dict: ``environ``'s variables, with ``XLA_FLAGS`` extended by
      `recommended_xla_flags` and ``GLIBC_TUNABLES`` by `MALLOC_TUNABLES`.

    >>> env = recommended({"XLA_FLAGS": "--xla_dump_to=/tmp/x"}, jaxlib_version="0.10.2")
    >>> env["XLA_FLAGS"].split() == ["--xla_dump_to=/tmp/x", *recommended_xla_flags("0.10.2")]
    True
    >>> recommended({"JAXCONV_TUNE": "0"})
    {'JAXCONV_TUNE': '0'}
    """
    env = dict(environ)
    if env.get(OPT_OUT, "1") == "0":
        return env
    flags, _ = _merge(env.get("XLA_FLAGS", ""), recommended_xla_flags(jaxlib_version), " ")
    if flags:
        env["XLA_FLAGS"] = flags
    if glibc():
        tunables, _ = _merge(env.get("GLIBC_TUNABLES", ""), MALLOC_TUNABLES, ":")
        env["GLIBC_TUNABLES"] = tunables
    return env


def needs_restart(environ: Mapping[str, str]) -> bool:
    """Whether `recommended` adds malloc tunables, which glibc reads only at start-up.

    Args:
      environ: the environment this process started with, e.g. ``os.environ``.

    Returns:
      ``True`` when `recommended` would change ``GLIBC_TUNABLES``, so the process must be
      started again for the tunables to count; always ``False`` off glibc and with
      ``JAXCONV_TUNE=0``.

    >>> needs_restart({"JAXCONV_TUNE": "0"})
    False
    """
    return recommended(environ).get("GLIBC_TUNABLES") != environ.get("GLIBC_TUNABLES")


def synchronous_dispatch() -> bool:
    """Turns JAX's asynchronous CPU dispatch off, if JAX has not started its backends yet
    (the setting is read when the CPU client is made); returns whether it is off now.

    A process-wide change (``jax_cpu_enable_async_dispatch``); imports JAX.

    Returns:
      Whether the setting reads off now. Once the backends have started the setting is left
      alone, and a ``True`` then only says it was off already, which does not show that the
      running CPU client was made with it.
    """
    import jax

    if not backends_started():
        jax.config.update("jax_cpu_enable_async_dispatch", False)
    return not jax.config.read("jax_cpu_enable_async_dispatch")


def tune_process() -> dict[str, bool]:
    """The recommended malloc and dispatch settings, applied from inside a running program.

    Call it once, before the first JAX operation: it sets glibc's ``mallopt`` to the effect
    of `MALLOC_TUNABLES` (no mmap; the trim threshold at mallopt's ``int`` maximum, 2 GiB)
    and turns JAX's asynchronous CPU dispatch off. Both are process-wide: jaxconv's library
    functions never call this by themselves. Does nothing with ``JAXCONV_TUNE=0``.

    Returns:
      ``{"malloc": ..., "synchronous_dispatch": ...}``: which of the two is in effect.
    """
    if os.environ.get(OPT_OUT, "1") == "0":
        return {"malloc": False, "synchronous_dispatch": False}
    malloc = False
    if glibc():
        import ctypes

        libc = ctypes.CDLL(None)
        malloc = bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(
            libc.mallopt(_M_TRIM_THRESHOLD, 2 ** 31 - 1))
    return {"malloc": malloc, "synchronous_dispatch": synchronous_dispatch()}


def compilation_cache(directory: str | os.PathLike | None = None) -> str | None:
    """Turns on JAX's persistent compilation cache in ``directory`` (by default
    ``~/.cache/jaxconv/xla``) unless ``JAX_COMPILATION_CACHE_DIR`` names one already; returns
    the directory in use. A second run of the same designs then loads its compiled steps
    instead of compiling them again.

    A process-wide change: sets ``jax_compilation_cache_dir`` and caches only programs that
    took at least 0.5 s to compile (``jax_persistent_cache_min_compile_time_secs``). Nothing is
    changed when the variable is set (JAX reads it itself); ``directory`` is then ignored.

    Args:
      directory: the cache folder; ``None`` for ``~/.cache/jaxconv/xla``.

    Returns:
      The cache folder in use: ``JAX_COMPILATION_CACHE_DIR``'s value, or ``directory``'s.
      Never ``None``, despite the annotation.
    """
    import jax

    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return os.environ["JAX_COMPILATION_CACHE_DIR"]
    path = str(directory or os.path.join(os.path.expanduser("~"), ".cache", "jaxconv", "xla"))
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    return path


def start_command(command: list[str]) -> None:
    """Puts the recommended settings in place for a command-line process: replaces the process
    with ``command`` when glibc must see new tunables at start-up, otherwise adds the XLA
    flags to this process's environment and turns asynchronous dispatch off (while JAX has not
    started), and keeps compiled programs in `compilation_cache`.

    The replacement (``os.execve``) starts ``command`` with `recommended`'s environment; a
    command that calls this again at start-up (as ``jaxconv`` does) then finds the tunables in
    place and goes on. Once JAX's backends have started, nothing but that restart can happen.
    With ``JAXCONV_TUNE=0`` it changes nothing.

    Args:
      command: the full command line of this process, its first item a path to the
        executable (``os.execve`` does not search ``PATH``), e.g.
        ``[sys.executable, "-m", "jaxconv", *sys.argv[1:]]``.
    """
    if needs_restart(os.environ):
        os.execve(command[0], command, recommended(os.environ))
    if not backends_started():
        os.environ.update(recommended(os.environ))
        if os.environ.get(OPT_OUT, "1") != "0":
            synchronous_dispatch()
            compilation_cache()
