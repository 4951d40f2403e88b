"""The machine a program runs on: the CPU's model, vector extensions and cores, jaxlib's
version, the machine class a run's numbers depend on, and whether XLA hands 2-D convolutions
to YNNPACK.

The ``auto`` policy keys some rows on these facts, because the same formulation measured up to
8x apart on two x86 CPUs: jaxlib 0.10 gives 2-D convolutions to YNNPACK by default, which on an
AVX2-only CPU ran a dense 3x3 conv's forward and backward in 1,628 ms against 127 ms for XLA's
own (experiments/results/fit_cpu_avx2.md), while on an AVX-512 CPU the gap was 1.7x.

What YNNPACK takes is fixed when a function is compiled: by ``XLA_FLAGS`` for the whole
process, or by ``compiler_options`` for one ``jax.jit``. A program that compiles with options of
its own says so to the ops it traces through their ``compilation=`` argument
(`jaxconv.functional.Compilation`), which hands the option's value to the functions here.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import platform
import re
from collections.abc import Mapping

#: The XLA option (flag or compiler option) that names what YNNPACK may take.
YNN_OPTION = "xla_cpu_experimental_ynn_fusion_type"


@functools.cache
def _cpuinfo() -> dict[str, str]:
    """The first processor's fields in ``/proc/cpuinfo`` (empty where there is none)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break
                name, _, value = line.partition(":")
                fields.setdefault(name.strip(), value.strip())
    except OSError:
        pass
    return fields


def features() -> frozenset[str]:
    """The CPU's feature flags as Linux lists them (``avx2``, ``avx512f``, ...); empty where
    ``/proc/cpuinfo`` does not say."""
    return frozenset(_cpuinfo().get("flags", "").split())


#: The flags of CPUs that compute bfloat16 products in hardware: AVX512-BF16's dot products
#: or AMX's bf16 tiles (Linux's names in ``/proc/cpuinfo``).
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def native_bf16() -> bool:
    """Whether the CPU has native bfloat16 arithmetic (one of `NATIVE_BF16_FLAGS`)."""
    return bool(features() & NATIVE_BF16_FLAGS)


def model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or what `platform` says elsewhere."""
    return _cpuinfo().get("model name") or platform.processor() or "unknown"


def cores() -> int:
    """The machine's core count (``os.cpu_count``)."""
    return os.cpu_count() or 1


def jaxlib_version() -> str:
    """jaxlib's version, ``"0.10.2"``."""
    from jaxlib import version

    return version.__version__


def jaxlib_minor(jaxlib: str | None = None) -> str:
    """``major.minor`` of ``jaxlib`` (this process's jaxlib by default): ``"0.10"``."""
    return ".".join((jaxlib or jaxlib_version()).split(".")[:2])


def isa() -> str:
    """``"avx512"``, ``"avx2"`` or ``"other"``: the class the CPU measurements are keyed on."""
    flags = features()
    if "avx512f" in flags:
        return "avx512"
    return "avx2" if "avx2" in flags else "other"


def _flag_value(xla_flags: str) -> str | None:
    """The last value the flags give `YNN_OPTION` (XLA takes the last), or ``None``."""
    values = re.findall(rf"--{YNN_OPTION}=(\S*)", xla_flags)
    return values[-1] if values else None


def ynnpack_convolutions(option: str | None = None, jaxlib_version: str | None = None,
                         environ: Mapping[str, str] | None = None) -> bool:
    """Whether XLA hands 2-D convolutions to YNNPACK in a program compiled with the compiler
    option `YNN_OPTION` set to ``option`` (``None``: not set, so ``XLA_FLAGS`` decides).

    jaxlib 0.10 does by default; the `YNN_OPTION` flag or compiler option without
    ``individual_convolution`` (or with ``-individual_convolution``) turns it off. Other jaxlib
    versions were not measured and count as not handing them over.
    """
    if jaxlib_minor(jaxlib_version) != "0.10":
        return False
    if option is not None:
        return "INDIVIDUAL_CONVOLUTION" in option.upper()
    value = _flag_value((os.environ if environ is None else environ).get("XLA_FLAGS", ""))
    if value is None:
        return True
    items = [item.strip() for item in value.split(",") if item.strip()]
    if any(item.startswith(("+", "-")) for item in items):
        return "-individual_convolution" not in items
    return "individual_convolution" in items


def slow_ynnpack_convolutions(option: str | None = None) -> bool:
    """2-D convolutions go to YNNPACK (in a program compiled with `YNN_OPTION` = ``option``)
    on the CPU class where it was measured slower than XLA's own (AVX2 without AVX-512; other
    CPUs were not measured)."""
    return isa() == "avx2" and ynnpack_convolutions(option)


@dataclasses.dataclass(frozen=True)
class MachineClass:
    """What a run's numbers depend on besides its config, seed and versions: the backend, the
    CPU class (`isa`), the core count and jaxlib's ``major.minor``."""

    backend: str
    isa: str
    cores: int
    jaxlib: str

    def __str__(self) -> str:
        return f"{self.backend}, {self.isa}, {self.cores} cores, jaxlib {self.jaxlib}"


def machine_class() -> MachineClass:
    """This process's machine class."""
    import jax

    return MachineClass(jax.default_backend(), isa(), cores(), jaxlib_minor())
