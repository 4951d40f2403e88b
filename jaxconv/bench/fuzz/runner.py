"""Running the fuzz: checks sent to child processes (`jaxconv.bench.fuzz.check.serve`), a
check that aborts or hangs its child recorded as a failure, parallel children, and a progress
file that lets a stopped run resume. What the run found is written by
`jaxconv.bench.fuzz.report`."""

from __future__ import annotations

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
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from jaxconv.bench.fuzz.cases import DTYPES, Case, cases


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


def settings(n: int, seed: int, wide: bool, dtypes: Sequence[str],
             impls: Sequence[str] | None = None, large: bool = False,
             pointwise: bool = False) -> dict[str, Any]:
    """What identifies a run in its progress file: its cases, formulations, dtypes, and the
    versions, CPU and native library that checked them (a resumed run must not mix results of
    other versions or builds)."""
    from jaxconv.tuning import machine, native

    named = {**({} if impls is None else {"impls": list(impls)}),
             **({"large": True} if large else {}),
             **({"pointwise": True} if pointwise else {})}
    return {"n": n, "seed": seed, "wide": wide, "dtypes": list(dtypes), **named,
            "jax": package_version("jax"), "jaxlib": package_version("jaxlib"),
            "cpu": machine.model(), "native": native.library_digest()}


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
        wide: bool = False, jobs: int = 1, progress: Progress | None = None,
        impls: Sequence[str] | None = None, large: bool = False, pointwise: bool = False,
        ) -> tuple[list[Failure], int]:
    """Fuzzes ``n`` cases in child processes (``worker``), ``jobs`` of them at a time (case
    ``i`` goes to child ``i % jobs``); returns the failures and the number of (case,
    formulation, dtype) checks that ran. With ``time_limit`` (seconds), stops early; a check
    that aborts its child or runs past ``case_timeout`` seconds fails, and the run goes on in a
    fresh child from the next check. With ``progress``, checks it records as done are not run
    again (their failures are returned and counted) and each new one is recorded. With
    ``impls``, only those formulations are checked (`jaxconv.bench.fuzz.cases.claimants`);
    ``wide``, ``large`` and ``pointwise`` choose the cases
    (`jaxconv.bench.fuzz.cases.random_case`)."""
    if jobs < 1:
        raise ValueError(f"jobs={jobs!r} must be at least 1")
    tasks = [({**dataclasses.asdict(case), "x_shape": list(case.x_shape),
               "kernel_shape": list(case.kernel_shape)}, impl, dtype, case)
             for case, claimed in cases(n, seed, wide, impls, large, pointwise) for impl in claimed
             for dtype in dtypes]
    earlier: list[Failure] = []
    record, resumed = None, 0
    if progress is not None:
        expected = settings(n, seed, wide, dtypes, impls, large, pointwise)
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


def package_version(package: str) -> str:
    """The installed version of ``package``, or ``"not installed"``."""
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
