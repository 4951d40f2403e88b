"""Where metrics go: ``metrics.jsonl``, TensorBoard event files, and the terminal.

``metrics.jsonl`` holds one JSON record per line, each with ``kind`` (``"train"`` or
``"epoch"``) and ``step``. On resume it is cut back (atomically) to the records up to the
restored checkpoint, so a resumed run's file equals an uninterrupted run's.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
import time
from typing import Any

from jaxconv.tuning.files import atomic_write_text


def read_jsonl(path: pathlib.Path) -> list[dict[str, Any]]:
    """Records of a JSONL file; a torn last line (a process killed mid-write) is dropped.

    Reading stops at the first line that is not valid JSON (an empty line included), so
    records after such a line are dropped as well.

    Args:
      path: the file (a `pathlib.Path`).

    Returns:
      One decoded value per line, in file order; ``[]`` when ``path`` is not a file.

    >>> import pathlib, tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = pathlib.Path(folder) / "metrics.jsonl"
    ...     _ = path.write_text('{"step": 1}\\n{"step": 2}\\n{"st')
    ...     read_jsonl(path)
    [{'step': 1}, {'step': 2}]
    """
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return records


class MetricsLog:
    """Appends records to ``metrics.jsonl`` and, when available, TensorBoard; writes nothing
    when not ``enabled`` (the processes of a multi-host run other than the first).

    Constructing an enabled log rewrites ``metrics.jsonl`` (atomically) to the records whose
    ``step`` is at most ``resume_step`` (none for a fresh start), then opens it for appending,
    and opens a TensorBoard writer (``tensorboardX``) on ``<workdir>/tensorboard`` that hides
    the events earlier writers logged after ``resume_step`` (all of them for a fresh start).
    A record given to `write` must hold ``kind`` and ``step``; its other int and float values,
    except ``epoch``, also go to TensorBoard as ``<kind>/<name>`` scalars at that step.

    Args:
      workdir: the run folder (a `pathlib.Path`); created if missing.
      resume_step: the step of the checkpoint a resumed run starts from, or ``None`` for a
        fresh start.
      enabled: ``False`` to write nothing (and touch no file) at all.

    Attributes:
      path: ``<workdir>/metrics.jsonl``.
      enabled: whether this log writes.

    >>> import pathlib, tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     log = MetricsLog(pathlib.Path(folder), resume_step=None)
    ...     log.write({"kind": "train", "step": 1, "loss": 2.5})
    ...     log.close()
    ...     read_jsonl(log.path)
    [{'kind': 'train', 'step': 1, 'loss': 2.5}]
    """

    def __init__(self, workdir: pathlib.Path, *, resume_step: int | None, enabled: bool = True):
        self.path = workdir / "metrics.jsonl"
        self.enabled = enabled
        if not enabled:
            return
        kept = [r for r in read_jsonl(self.path)
                if resume_step is not None and r["step"] <= resume_step]
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))
        self._file = self.path.open("a")
        self._tb_dir = workdir / "tensorboard"
        # TensorBoard hides every earlier event at ``purge_step`` or later: keep what the
        # restored checkpoint covers, as metrics.jsonl does, and nothing of a fresh start's past
        self._tb = self._writer(purge_step=0 if resume_step is None else resume_step + 1)

    def _writer(self, **options):
        from tensorboardX import SummaryWriter

        # tensorboardX names a file by the second it was opened in and overwrites a file of the
        # same name: a writer opened in the same second as the one before it needs its own
        return SummaryWriter(str(self._tb_dir),
                             filename_suffix=f".{time.time_ns()}.{os.getpid()}", **options)

    def write(self, record: dict[str, Any]) -> None:
        """Appends ``record`` to ``metrics.jsonl`` (flushed at once) and its numbers to
        TensorBoard's queue."""
        if not self.enabled:
            return
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        for key, value in record.items():
            if key not in ("kind", "step", "epoch") and isinstance(value, int | float):
                self._tb.add_scalar(f"{record['kind']}/{key}", value, record["step"])

    def sync(self) -> None:
        """Puts every record written so far on disk, TensorBoard's included (its writer queues
        events in memory and flushes every two minutes, so a process killed outright would lose
        them while metrics.jsonl, flushed on every write, keeps them). Call it before a
        checkpoint: a run resumed from that checkpoint then finds every event it covers.
        Closing the writer is the only way tensorboardX offers to drain its queue, so later
        events go to a new file in the same folder."""
        if self.enabled:
            self._tb.close()
            self._tb = self._writer()

    def close(self) -> None:
        """Closes ``metrics.jsonl`` and the TensorBoard writer (which flushes its queue)."""
        if self.enabled:
            self._file.close()
            self._tb.close()


class Progress:
    """A tqdm bar on a terminal; plain lines (one per epoch) anywhere else."""

    def __init__(self, total: int, initial: int, *, enabled: bool, description: str):
        self.enabled = enabled
        self.bar = None
        self.description = description
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=description, unit="step",
                            dynamic_ncols=True, leave=False)

    def step(self, metrics: dict[str, float]) -> None:
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in metrics.items()}, refresh=False)
            self.bar.update(1)

    def epoch(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        text = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                         for k, v in record.items() if k not in ("kind",))
        if self.bar is not None:
            self.bar.write(f"{self.description}: {text}")
        else:
            print(f"{self.description}: {text}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
