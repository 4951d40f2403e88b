"""Fuzzing every conv formulation: random configurations, values and both gradients.

Each case is a random convolution (rank 1-3; dense, 1x1, depthwise, grouped or transposed;
strides, both dilations, every padding form and fill; odd sizes; batch 1-3). Every formulation
that claims the case (`jaxconv.functional.plan` accepts it with that ``impl``), and ``auto``,
computes the output and the input and kernel gradients of a random cotangent under ``jax.jit``;
they must match lax's own convolution at ``precision=HIGHEST`` (``impl="xla"``, differentiated
by JAX itself) and, where PyTorch is installed, PyTorch autograd in float64, within a tolerance
per dtype (float32, and bfloat16 against the result for the same bfloat16-rounded operands).

Cases run in child processes, so a formulation that aborts the process (an XLA check failure)
becomes a failure that names the case, and the run goes on in a fresh child. Every failure
comes with a ready-to-paste Python reproducer.

    python -m jaxconv.bench.fuzz 2000 --seed 0 --jobs 2 --output fuzz-failures.md \
        --progress fuzz.progress.jsonl     # run again after a kill: it resumes
    jaxconv bench --fuzz 2000 --fuzz-wide
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import os
import pathlib
import select
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

DTYPES = ("float32", "bfloat16")
#: max |formulation - lax| <= TOLERANCE * (max |lax| + 1), per dtype. bfloat16 has an 8-bit
#: mantissa: products are exact in float32 accumulation but each operand was rounded once.
TOLERANCE = {"float32": 2e-5, "bfloat16": 2e-2}
PADDINGS = ("SAME", "VALID", "CAUSAL", "int", "pairs", "CIRCULAR", "REFLECT", "REPLICATE",
            "mode")


@dataclasses.dataclass(frozen=True)
class Case:
    """One random convolution: the op, operand shapes, keyword arguments, and a data seed."""

    index: int
    op: str
    kind: str
    x_shape: tuple[int, ...]
    kernel_shape: tuple[int, ...]
    kwargs: dict[str, Any]
    seed: int

    def reproducer(self, impl: str, dtype: str) -> str:
        call = "F.conv" if self.op == "conv" else "F.conv_transpose"
        return "\n".join([
            "import jax, jax.numpy as jnp, numpy as np",
            "import jaxconv.functional as F",
            f"rng = np.random.default_rng({self.seed})",
            f"x = jnp.asarray(rng.standard_normal({self.x_shape}), jnp.{dtype})",
            f"k = jnp.asarray(rng.standard_normal({self.kernel_shape}), jnp.{dtype})",
            f"f = lambda a, b: {call}(a, b, impl={impl!r}, **{self.kwargs!r})",
            "print(jax.jit(jax.grad(lambda a, b: jnp.sum(f(a, b).astype(jnp.float32) ** 2),",
            "                       argnums=(0, 1)))(x, k))"])


def _dims(rng: np.random.Generator, rank: int, low: int, high: int) -> list[int]:
    return [int(v) for v in rng.integers(low, high + 1, rank)]


def _padding(rng: np.random.Generator, rank: int, op: str) -> dict[str, Any]:
    forms = PADDINGS if op == "conv" else PADDINGS[:5]
    form = forms[rng.integers(len(forms))]
    if form == "int":
        return {"padding": int(rng.integers(0, 3))}
    if form == "pairs":
        return {"padding": [_dims(rng, 2, 0, 2) for _ in range(rank)]}
    if form == "mode":
        mode = ("circular", "reflect", "replicate")[rng.integers(3)]
        return {"padding": _dims(rng, rank, 0, 2), "padding_mode": mode}
    if form == "CAUSAL" and op != "conv":
        return {"padding": "SAME"}
    return {"padding": form}


def random_case(rng: np.random.Generator, index: int, wide: bool = False) -> Case:
    """A random convolution (not checked for validity: see `cases`). Channels are few (1-15)
    unless ``wide``, which scales them by 6-16 so that dense convs leave the narrow class and
    reach YNNPACK's more-than-16 channels."""
    op = "conv" if rng.random() < 0.8 else "conv_transpose"
    rank = int(rng.integers(1, 4))
    kind = (("dense", "pointwise", "depthwise", "grouped") if op == "conv"
            else ("dense", "grouped"))[rng.integers(2 if op != "conv" else 4)]
    groups = {"dense": 1, "pointwise": 1, "grouped": int(rng.integers(2, 4))}.get(kind, 0)
    if kind == "depthwise":
        groups = int(rng.integers(1, 6))
        c_in, c_out = groups, groups * int(rng.integers(1, 3))
    else:
        c_in, c_out = groups * int(rng.integers(1, 4)), groups * int(rng.integers(1, 4))
    if wide:
        width = int(rng.integers(6, 17))
        c_in, c_out = c_in * width, c_out * width
        groups = groups * width if kind == "depthwise" else groups
    size = [1] * rank if kind == "pointwise" else _dims(rng, rank, 1, 4)
    dilation = [1] * rank if kind == "pointwise" else _dims(rng, rank, 1, 2)
    strides = _dims(rng, rank, 1, 3)
    kwargs: dict[str, Any] = {"strides": strides, "kernel_dilation": dilation,
                              "feature_group_count": groups, **_padding(rng, rank, op)}
    if kind == "pointwise":
        kwargs["padding"] = "VALID"
        kwargs.pop("padding_mode", None)
    reach = [(k - 1) * d + 1 for k, d in zip(size, dilation)]
    spatial = [int(r + rng.integers(0, 7)) for r in reach]
    if op == "conv":
        if rng.random() < 0.15 and kind != "pointwise":
            kwargs["input_dilation"] = _dims(rng, rank, 1, 2)
        kernel = (*size, c_in // groups, c_out)
    else:
        if rng.random() < 0.3:
            kwargs["output_padding"] = [int(rng.integers(0, s)) for s in strides]
        kernel = (*size, c_out // groups, c_in)
    batch = int(rng.integers(1, 4))
    return Case(index, op, kind, (batch, *spatial, c_in), tuple(kernel), kwargs,
                int(rng.integers(2 ** 31)))


def _registry(op: str) -> list[str]:
    from jaxconv.functional.formulations import CONV
    from jaxconv.functional.transpose import TRANSPOSE

    return list(CONV if op == "conv" else TRANSPOSE)


def claimants(case: Case) -> list[str] | None:
    """The formulations that accept ``case`` (with ``"auto"`` first), or None when no
    formulation, lax included, accepts it (an invalid configuration)."""
    from jaxconv import functional as F

    def accepts(impl: str) -> bool:
        try:
            F.plan(case.x_shape, case.kernel_shape, op=case.op, impl=impl, **case.kwargs)
        except (ValueError, TypeError):
            return False
        return True

    if not accepts("xla"):
        return None
    return ["auto", *[name for name in _registry(case.op) if name != "xla" and accepts(name)]]


def cases(n: int, seed: int, wide: bool = False) -> Iterator[tuple[Case, list[str]]]:
    """``n`` valid cases and their claimants, the same for the same seed (see `random_case`
    for ``wide``)."""
    rng = np.random.default_rng(seed)
    index = 0
    while index < n:
        case = random_case(rng, index, wide)
        impls = claimants(case)
        if impls is not None:
            yield case, impls
            index += 1


#: The operands and oracle results of the case being checked, per dtype: every formulation of
#: a case is checked against the same references, computed (and compiled) once.
_REFERENCES: dict[tuple[int, int, str], tuple[Any, Any, Any, dict[str, Any]]] = {}


def _vjp(case: Case, impl: str, dtype: str, precision: Any):
    """The jitted ``(x, k, cotangent) -> (y, dx, dk)`` of ``case`` computed by ``impl`` in
    ``dtype`` (float32 operands in, float32 results out)."""
    import jax
    import jax.numpy as jnp

    from jaxconv import functional as F

    call = F.conv if case.op == "conv" else F.conv_transpose

    def f(a, b):
        return call(a.astype(dtype), b.astype(dtype), impl=impl, precision=precision,
                    **case.kwargs).astype(jnp.float32)

    def vjp(a, b, cotangent):
        y, pull = jax.vjp(f, a, b)
        return (y, *pull(cotangent))
    return jax.jit(vjp)


def _references(case: Case, dtype: str) -> tuple[Any, Any, Any, dict[str, Any]]:
    """``x``, ``k``, the cotangent, and what lax at HIGHEST precision (and PyTorch where
    installed) compute from them; bfloat16 cases round the operands first, so the references
    see what the formulation sees."""
    import jax
    import jax.numpy as jnp

    from jaxconv import functional as F
    from jaxconv.bench import torch_oracle

    key = (case.index, case.seed, dtype)
    if key in _REFERENCES:
        return _REFERENCES[key]
    if not any(cached[:2] == key[:2] for cached in _REFERENCES):
        _REFERENCES.clear()
    call = F.conv if case.op == "conv" else F.conv_transpose
    rng = np.random.default_rng(case.seed)
    x = jnp.asarray(rng.standard_normal(case.x_shape), jnp.float32)
    k = jnp.asarray(rng.standard_normal(case.kernel_shape), jnp.float32)
    if dtype == "bfloat16":
        x, k = (v.astype(jnp.bfloat16).astype(jnp.float32) for v in (x, k))
    shape = jax.eval_shape(lambda a, b: call(a, b, impl="xla", **case.kwargs), x, k).shape
    cotangent = jnp.asarray(rng.standard_normal(shape), jnp.float32)
    oracles = {"lax": _vjp(case, "xla", "float32", jax.lax.Precision.HIGHEST)(x, k, cotangent)}
    reference = torch_oracle.reference(case.op, case.x_shape, case.kernel_shape, case.kwargs,
                                       x, k, cotangent)
    if reference is not None:
        oracles["PyTorch"] = reference
    _REFERENCES[key] = (x, k, cotangent, oracles)
    return _REFERENCES[key]


def _check(case: Case, impl: str, dtype: str) -> str | None:
    """Runs one formulation on one case; a mismatch description, or None when it agrees."""
    x, k, cotangent, oracles = _references(case, dtype)
    got = _vjp(case, impl, dtype, None)(x, k, cotangent)
    for oracle, expected in oracles.items():
        for name, a, b in zip(("output", "input gradient", "kernel gradient"), got, expected):
            a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
            if a.shape != b.shape:
                return f"{name}: shape {a.shape}, {oracle} gives {b.shape}"
            error = float(np.max(np.abs(a - b))) if a.size else 0.0
            bound = TOLERANCE[dtype] * (float(np.max(np.abs(b))) if b.size else 0.0) + \
                TOLERANCE[dtype]
            if not error <= bound:
                return f"{name}: max error {error:.3g} > {bound:.3g} against {oracle}"
    return None


def _worker() -> None:
    """Child process: reads tasks (one JSON per line), prints a start line and a result each."""
    for line in sys.stdin:
        task = json.loads(line)
        case = Case(**{**task["case"], "x_shape": tuple(task["case"]["x_shape"]),
                       "kernel_shape": tuple(task["case"]["kernel_shape"])})
        print(json.dumps({"start": task["id"]}), flush=True)
        try:
            problem = _check(case, task["impl"], task["dtype"])
        except Exception as error:   # a Python error is a failure of that case, not the run
            problem = f"raised {type(error).__name__}: {str(error).splitlines()[0][:300]}"
        print(json.dumps({"done": task["id"], "problem": problem}), flush=True)


@dataclasses.dataclass(frozen=True)
class Failure:
    case: Case
    impl: str
    dtype: str
    problem: str

    def markdown(self) -> str:
        return "\n".join([
            f"### case {self.case.index}: {self.case.op} ({self.case.kind}), impl={self.impl!r}, "
            f"{self.dtype}", "", self.problem, "", "```python",
            self.case.reproducer(self.impl, self.dtype), "```", ""])


WORKER = (sys.executable, "-m", "jaxconv.bench.fuzz", "--worker")
#: Seconds one check may take (compiling a formulation's forward and backward included) before
#: its child is killed and the check counts as a failure; the slowest seen here took ~20 s.
CASE_TIMEOUT = 300.0


@dataclasses.dataclass
class _Child:
    """One worker process: what it printed, which task it is inside, and since when it has
    been silent (from its start, so a child that hangs before its first task is caught too)."""

    process: subprocess.Popen
    stderr: Any
    since: float
    buffer: bytes = b""
    started: int | None = None

    def lines(self, wait: float) -> list[str] | None:
        """Complete stdout lines within ``wait`` seconds; None once stdout is closed."""
        ready, _, _ = select.select([self.process.stdout], [], [], max(wait, 0.0))
        if not ready:
            return []
        chunk = os.read(self.process.stdout.fileno(), 65536)
        if not chunk:
            return None
        *complete, self.buffer = (self.buffer + chunk).split(b"\n")
        return [line.decode(errors="replace") for line in complete]

    def stop(self) -> tuple[int, str]:
        """Kills the child if it still runs, reaps it and closes its pipes; its exit code and
        the tail of its stderr."""
        if self.process.poll() is None:
            self.process.kill()
        code = self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            try:
                pipe.close()
            except OSError:
                pass
        self.stderr.seek(0)
        tail = self.stderr.read().decode(errors="replace").strip()[-300:]
        self.stderr.close()
        return code, tail


def _spawn(worker: Sequence[str], payload: str) -> _Child:
    stderr = tempfile.TemporaryFile()
    # A session of its own: a terminal's Ctrl-C reaches only this process, which stops the
    # children itself, instead of killing them mid-check and recording that as an abort.
    process = subprocess.Popen(list(worker), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=stderr, start_new_session=True)

    def feed():
        try:
            process.stdin.write(payload.encode())
            process.stdin.close()
        except (OSError, ValueError):   # the child died, or was stopped, before reading it all
            pass

    threading.Thread(target=feed, daemon=True).start()
    return _Child(process, stderr, since=time.monotonic())


def _key(impl: str, dtype: str, case: Case) -> str:
    return f"{case.index}/{impl}/{dtype}"


def settings(n: int, seed: int, wide: bool, dtypes: Sequence[str]) -> dict[str, Any]:
    """What identifies a run in its progress file: its cases, dtypes, and the versions and CPU
    that checked them (a resumed run must not mix results of other versions)."""
    from jaxconv.functional import cpu

    return {"n": n, "seed": seed, "wide": wide, "dtypes": list(dtypes),
            "jax": _version("jax"), "jaxlib": _version("jaxlib"), "cpu": cpu.model()}


class Progress:
    """A run's finished checks, one JSON line each, appended (and flushed) as they finish, so
    a run stopped anywhere resumes where it was. The first line names the run (`settings`);
    resuming with other settings is an error, not a mixed report."""

    def __init__(self, path: pathlib.Path | str, settings: Mapping[str, Any]):
        self.path, self.settings = pathlib.Path(path), dict(settings)
        self.done: dict[str, str | None] = {}
        self.seconds = 0.0                 # spent by earlier sessions of the same run
        self._lock = threading.Lock()
        data = self.path.read_bytes() if self.path.exists() else b""
        whole = data[:data.rfind(b"\n") + 1]   # a line cut by a kill: that check runs again
        if data and not whole:
            raise ValueError(f"progress={str(self.path)!r} has no complete line: expected a "
                             f"fuzz progress file; remove it or pass another file")
        if whole:
            self._read(whole.decode(errors="replace").splitlines())
            if len(whole) < len(data):
                os.truncate(self.path, len(whole))
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps({"fuzz": self.settings}) + "\n")
        self._start = time.monotonic() - self.seconds

    def _read(self, lines: list[str]) -> None:
        for number, line in enumerate(lines, start=1):
            try:
                entry = json.loads(line)
                if number == 1:
                    header = entry["fuzz"]
                else:
                    self.done[entry["key"]] = entry["problem"]
                    self.seconds = max(self.seconds, float(entry["seconds"]))
            except (ValueError, TypeError, KeyError):
                raise ValueError(f"progress={str(self.path)!r}: line {number} is {line[:80]!r}, "
                                 f"expected a fuzz progress record") from None
            if number == 1 and header != self.settings:
                raise ValueError(f"progress={str(self.path)!r} belongs to the run {header}, not "
                                 f"{self.settings}: remove it or pass another file")

    def elapsed(self) -> float:
        """Seconds spent on the run, earlier sessions included."""
        return time.monotonic() - self._start

    def record(self, key: str, problem: str | None) -> None:
        with self._lock, self.path.open("a") as file:
            file.write(json.dumps({"key": key, "problem": problem,
                                   "seconds": round(self.elapsed(), 1)}) + "\n")
            file.flush()


def run(n: int, *, seed: int = 0, dtypes: Sequence[str] = DTYPES, time_limit: float | None = None,
        case_timeout: float = CASE_TIMEOUT, log=print, worker: Sequence[str] = WORKER,
        wide: bool = False, jobs: int = 1,
        progress: Progress | None = None) -> tuple[list[Failure], int]:
    """Fuzzes ``n`` cases in child processes (``worker``), ``jobs`` of them at a time (case
    ``i`` goes to child ``i % jobs``); returns the failures and the number of (case,
    formulation, dtype) checks that ran. With ``time_limit`` (seconds), stops early; a check
    that aborts its child or runs past ``case_timeout`` seconds fails, and the run goes on in a
    fresh child from the next check. With ``progress``, checks it records as done are not run
    again (their failures are returned and counted) and each new one is recorded."""
    if jobs < 1:
        raise ValueError(f"jobs={jobs!r} must be at least 1")
    tasks = [({**dataclasses.asdict(case), "x_shape": list(case.x_shape),
               "kernel_shape": list(case.kernel_shape)}, impl, dtype, case)
             for case, impls in cases(n, seed, wide) for impl in impls for dtype in dtypes]
    earlier: list[Failure] = []
    record, resumed = None, 0
    if progress is not None:
        expected = settings(n, seed, wide, dtypes)
        if progress.settings != expected:
            raise ValueError(f"progress: a Progress of the run {progress.settings}, but this "
                             f"run is {expected}")
        earlier = [Failure(t[3], t[1], t[2], progress.done[_key(*t[1:])]) for t in tasks
                   if progress.done.get(_key(*t[1:]))]
        resumed = len(tasks)
        tasks = [t for t in tasks if _key(*t[1:]) not in progress.done]
        resumed -= len(tasks)
        if resumed:
            log(f"resumed: {resumed} checks already done ({len(earlier)} failed), "
                f"{len(tasks)} to go")

        def record(task: tuple[dict, str, str, Case], problem: str | None) -> None:
            progress.record(_key(*task[1:]), problem)
    deadline = None if time_limit is None else time.monotonic() + time_limit
    if jobs == 1:
        failures, done = _run_tasks(tasks, deadline, case_timeout, log, worker, record=record)
        return _merged(earlier, failures), resumed + done
    lock = threading.Lock()

    def locked_log(line: str) -> None:
        with lock:
            log(line)

    stop = threading.Event()      # set when the caller is interrupted: every child is killed
    pool = concurrent.futures.ThreadPoolExecutor(jobs)
    try:
        futures = [pool.submit(_run_tasks, [t for t in tasks if t[3].index % jobs == j],
                               deadline, case_timeout, locked_log, worker, stop, record)
                   for j in range(jobs)]
        parts = [f.result() for f in futures]
    except BaseException:
        stop.set()
        raise
    finally:
        pool.shutdown(cancel_futures=True)
    return (_merged(earlier, [f for part, _ in parts for f in part]),
            resumed + sum(done for _, done in parts))


def _merged(*parts: Sequence[Failure]) -> list[Failure]:
    return sorted((f for part in parts for f in part),
                  key=lambda f: (f.case.index, f.impl, f.dtype))


def _run_tasks(tasks: list[tuple[dict, str, str, Case]], deadline: float | None,
               case_timeout: float, log, worker: Sequence[str],
               stop: threading.Event | None = None,
               record: Callable[[tuple[dict, str, str, Case], str | None], None] | None = None,
               ) -> tuple[list[Failure], int]:
    """`run` for one child at a time: the failures among ``tasks`` and how many ran. Once
    ``stop`` is set (an interrupted parallel run), kills its child and raises. ``record(task,
    problem)`` is called as each task finishes, failed or not."""
    failures: list[Failure] = []
    done = 0

    def fail(index: int, problem: str, line: str) -> None:
        _, impl, dtype, case = tasks[index]
        failures.append(Failure(case, impl, dtype, problem))
        log(f"{line} case {case.index} {impl} {dtype}: {problem}")
        if record is not None:
            record(tasks[index], problem)

    while done < len(tasks) and (deadline is None or time.monotonic() < deadline):
        payload = "".join(json.dumps({"id": i, "case": t[0], "impl": t[1], "dtype": t[2]}) + "\n"
                          for i, t in enumerate(tasks[done:], start=done))
        child, before, timed_out = _spawn(worker, payload), done, False
        try:
            while True:
                now = time.monotonic()
                limits = [child.since + case_timeout - now]
                if deadline is not None:
                    limits.append(deadline - now)
                if min(limits) <= 0:
                    timed_out = child.since + case_timeout <= now
                    break
                if stop is not None and stop.is_set():
                    raise KeyboardInterrupt("the fuzz run was interrupted")
                lines = child.lines(min(limits) if stop is None else min(*limits, 0.5))
                if lines is None:
                    break
                for line in lines:
                    try:
                        message = json.loads(line)
                    except json.JSONDecodeError:
                        continue                  # something else wrote to stdout
                    child.since = time.monotonic()
                    if "start" in message:
                        child.started = message["start"]
                    else:
                        if message["problem"]:
                            fail(message["done"], message["problem"], "FAIL")
                        elif record is not None:
                            record(tasks[message["done"]], None)
                        done, child.started = message["done"] + 1, None
        finally:
            code, stderr = child.stop()
        if timed_out:                              # inside a task, or before the next one
            hung = child.started if child.started is not None else done
            fail(hung, f"timed out after {case_timeout:g} s (the child was killed)", "TIMEOUT")
            done = hung + 1
            continue
        if deadline is not None and time.monotonic() >= deadline:
            break
        started = child.started
        if started is None and code != 0 and done < len(tasks):
            started = done                         # it died between tasks: blame the next
        if started is not None:                    # the process died inside this task
            fail(started, f"the process aborted (exit code {code}): {stderr}", "ABORT")
            done = started + 1
        elif done == before:
            raise RuntimeError(f"fuzz worker made no progress (exit code {code}): {stderr}")
    return failures, done


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
    from jaxconv import functional as F

    groups: dict[tuple[str, str, str], list[tuple[Case, Any]]] = {}
    for case, _ in checked:
        plan = F.plan(case.x_shape, case.kernel_shape, op=case.op, impl="auto", **case.kwargs)
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
    from jaxconv import functional as F

    specs = []
    for case, _ in checked:
        if case.op != op:
            continue
        plan = F.plan(case.x_shape, case.kernel_shape, op=case.op, impl="auto",
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
           dtypes: Sequence[str] = DTYPES, wide: bool = False, jobs: int = 1) -> str:
    """The run as markdown: counts, the failures with reproducers, and with ``checked`` (the
    cases and their claimants) what each formulation and each ``auto`` choice was fuzzed on."""
    from jaxconv.bench import torch_oracle
    from jaxconv.functional import cpu

    oracles = "lax at HIGHEST precision" + (
        f" and PyTorch {_version('torch')} autograd in float64" if torch_oracle.available()
        else " (PyTorch not installed)")
    lines = [f"# Formulation fuzz: {n} {'wide ' if wide else ''}cases, seed {seed}", "",
             f"{checks} checks (case x formulation x dtype) in {seconds:.0f} s; "
             f"{len(failures)} failures.", "",
             f"CPU: {cpu.model()} ({cpu.isa()}), {jobs} child processes at once; "
             f"jax {_version('jax')}, jaxlib {_version('jaxlib')}; dtypes: {', '.join(dtypes)}; "
             f"references: {oracles}.", ""]
    if checked:
        pairs = sum(len(impls) for _, impls in checked)
        lines += [f"{len(checked)} configurations, {pairs} formulation x configuration pairs "
                  f"(each in {', '.join(dtypes)}).", "", "## Checks per formulation", "",
                  *_table([{"op": op, "formulation": impl, "configurations": count,
                            "failed checks": sum(f.impl == impl and f.case.op == op
                                                 for f in failures)}
                           for (op, impl), count in claims(checked).items()]),
                  "## What `auto` chose, by shape class, and the shapes it was fuzzed on", "",
                  *_table(coverage(checked))]
    if failures:
        lines += ["## Failures", ""]
    return "\n".join(lines + [f.markdown() for f in failures])


def _version(package: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:          # not Linux
        return os.cpu_count() or 1


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number of children")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("n", nargs="?", type=int, default=200, help="cases (default 200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtypes", nargs="*", default=list(DTYPES), choices=DTYPES)
    parser.add_argument("--case-timeout", type=float, default=CASE_TIMEOUT,
                        help=f"seconds one check may take (default {CASE_TIMEOUT:g})")
    parser.add_argument("--output", default="fuzz-failures.md",
                        help="where failures and their reproducers go")
    parser.add_argument("--jobs", type=_positive, default=cores(),
                        help="child processes checking at once (default: one per CPU core)")
    parser.add_argument("--wide", action="store_true",
                        help="cases with 6-16x the channels (dense convs, YNNPACK's sizes)")
    parser.add_argument("--progress", default=None, metavar="FILE",
                        help="record each finished check in FILE and, when it exists, skip the "
                             "checks it records: a run stopped anywhere resumes where it was; "
                             "FILE is removed once the report is written")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker()
        return 0
    start = time.monotonic()
    progress = None if args.progress is None else Progress(
        args.progress, settings(args.n, args.seed, args.wide, args.dtypes))
    # Each failure is printed (flushed) as it is found: a run stopped early keeps them.
    failures, checks = run(args.n, seed=args.seed, dtypes=args.dtypes,
                           case_timeout=args.case_timeout, wide=args.wide, jobs=args.jobs,
                           log=lambda line: print(line, flush=True), progress=progress)
    seconds = time.monotonic() - start if progress is None else progress.elapsed()
    text = report(failures, checks, args.n, args.seed, seconds,
                  list(cases(args.n, args.seed, args.wide)), args.dtypes, args.wide,
                  jobs=args.jobs)
    from jaxconv.train.logging import atomic_write_text

    atomic_write_text(pathlib.Path(args.output), text)
    if progress is not None:          # the report holds everything now
        progress.path.unlink()
    print(text.split("\n\n")[1])
    print(f"report: {args.output}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
