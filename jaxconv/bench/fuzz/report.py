"""The fuzz's report: what each formulation and each ``auto`` choice was checked on (the
policy rows' ``fuzzed`` lines come from `row_shapes`), and the failures with reproducers, as
markdown."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from jaxconv.bench.fuzz.cases import DTYPES, Case
from jaxconv.bench.fuzz.runner import Failure, package_version


def padding_form(case: Case) -> str:
    """How ``case`` pads: ``"SAME"``, ``"int"``, ``"pairs"``, ``"reflect"`` (a fill mode), ..."""
    padding, mode = case.kwargs.get("padding"), case.kwargs.get("padding_mode")
    if mode:
        return mode
    if isinstance(padding, str):
        return padding
    return "int" if isinstance(padding, int) else "pairs"


def _span(values: Sequence[int]) -> str:
    low, high = min(values), max(values)
    return f"{low}" if low == high else f"{low}-{high}"


def coverage(checked: Sequence[tuple[Case, Sequence[str]]]) -> list[dict[str, Any]]:
    """What the fuzz exercised, one row per (op, shape class, formulation ``auto`` chose): how
    many configurations, and the ranges of their ranks, kernel sizes, strides, dilations,
    groups, channels, batch sizes and padding forms; so a policy row can say what it was
    fuzzed on."""
    from jaxconv import functional

    groups: dict[tuple[str, str, str], list[tuple[Case, Any]]] = {}
    for case, _ in checked:
        plan = functional.plan(case.x_shape, case.kernel_shape, op=case.op, impl="auto",
                               **case.kwargs)
        groups.setdefault((case.op, plan.shape_class, plan.impl), []).append((case, plan.spec))
    rows = []
    for (op, shape_class, impl), members in sorted(groups.items()):
        rows.append({
            "op": op, "shape class": shape_class, "auto": impl, "configurations": len(members),
            **_ranges([spec for _, spec in members]),
            "padding": ", ".join(sorted({padding_form(c) for c, _ in members})),
        })
    return rows


def _ranges(specs: Sequence[Any]) -> dict[str, str]:
    """The ranges of ``specs``' (`ConvSpec`) ranks, kernel sizes, strides, dilations, groups,
    channels and batch sizes."""
    return {
        "rank": _span([s.rank for s in specs]),
        "kernel": _span([k for s in specs for k in s.kernel_shape[:-2]]),
        "strides": _span([v for s in specs for v in s.strides]),
        "kernel dilation": _span([v for s in specs for v in s.kernel_dilation]),
        "input dilation": _span([v for s in specs for v in s.input_dilation]),
        "groups": _span([s.feature_group_count for s in specs]),
        "channels": _span([c for s in specs for c in (s.in_channels, s.out_channels)]),
        "batch": _span([s.input_shape[0] for s in specs]),
    }


def row_shapes(checked: Sequence[tuple[Case, Sequence[str]]], op: str, row: Any) -> str:
    """What ``auto`` sent to policy ``row`` (a `jaxconv.functional.policy.PolicyRow` of
    ``op``'s policy, planned for the row's backend) among the ``checked`` cases, in words: how
    many configurations and the ranges of their shapes; the start of the row's ``fuzzed``
    line."""
    from jaxconv import functional

    specs = []
    for case, _ in checked:
        if case.op != op:
            continue
        plan = functional.plan(case.x_shape, case.kernel_shape, op=case.op, impl="auto",
                               backend=row.backend, **case.kwargs)
        if (plan.impl, plan.reason) == (row.impl, row.reason):     # this row, not another
            specs.append(plan.spec)
    if not specs:
        return "no configuration"
    return f"{len(specs)} configurations: " + ", ".join(
        f"{name} {span}" for name, span in _ranges(specs).items())


def claims(checked: Sequence[tuple[Case, Sequence[str]]]) -> dict[tuple[str, str], int]:
    """Configurations each (op, formulation) was checked on, ``auto`` included."""
    counts: dict[tuple[str, str], int] = {}
    for case, impls in checked:
        for impl in impls:
            counts[case.op, impl] = counts.get((case.op, impl), 0) + 1
    return dict(sorted(counts.items()))


def _table(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    if not rows:
        return []
    keys = list(rows[0])
    return ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys),
            *("| " + " | ".join(str(row[k]) for k in keys) + " |" for row in rows), ""]


def report(failures: list[Failure], checks: int, n: int, seed: int, seconds: float,
           checked: Sequence[tuple[Case, Sequence[str]]] = (),
           dtypes: Sequence[str] = DTYPES, wide: bool = False, jobs: int = 1,
           impls: Sequence[str] | None = None, large: bool = False,
           pointwise: bool = False) -> str:
    """The run as markdown: counts, the failures with reproducers, and with ``checked`` (the
    cases and their claimants) what each formulation and each ``auto`` choice was fuzzed on;
    ``impls`` names the formulations a run was restricted to."""
    from jaxconv.bench import torch_oracle
    from jaxconv.tuning import machine

    oracles = "lax at HIGHEST precision" + (
        f" and PyTorch {package_version('torch')} autograd in float64" if torch_oracle.available()
        else " (PyTorch not installed)")
    kind = f"{'wide ' if wide else ''}{'large ' if large else ''}{'pointwise ' * pointwise}"
    lines = [f"# Formulation fuzz: {n} {kind}cases, seed {seed}", "",
             f"{checks} checks (case x formulation x dtype) in {seconds:.0f} s; "
             f"{len(failures)} failures.", "",
             f"CPU: {machine.model()} ({machine.isa()}), {jobs} child processes at once; "
             f"jax {package_version('jax')}, jaxlib {package_version('jaxlib')}; "
             f"dtypes: {', '.join(dtypes)}; "
             f"references: {oracles}.", ""]
    if impls is not None:
        lines += [f"Formulations checked: {', '.join(impls)} (`--impls`); the cases are those "
                  f"of seed {seed} whatever the formulations.", ""]
    if checked:
        pairs = sum(len(impls) for _, impls in checked)
        lines += [f"{len(checked)} configurations, {pairs} formulation x configuration pairs "
                  f"(each in {', '.join(dtypes)}).", "", "## Checks per formulation", "",
                  *_table([{"op": op, "formulation": impl, "configurations": count,
                            "failed checks": sum(f.impl == impl and f.case.op == op
                                                 for f in failures)}
                           for (op, impl), count in claims(checked).items()]),
                  *(["## What `auto` chose, by shape class, and the shapes it was fuzzed on",
                     "", *_table(coverage(checked))] if impls is None or "auto" in impls
                    else [])]
    if failures:
        lines += ["## Failures", ""]
    return "\n".join(lines + [f.markdown() for f in failures])
