"""Checkpoints with orbax: the train state plus a JSON record of where the run stands.

Orbax writes each checkpoint into a temporary folder and renames it into place only when it is
complete, so a process killed at any moment (``kill -9`` included) leaves either the previous
checkpoints or a finished new one; a half-written one is never listed, hence never restored.
Typed PRNG keys (NNX's dropout streams) are stored as their raw key data.
"""

from __future__ import annotations

import pathlib
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from jaxconv.train.step import TrainState


def _is_key(x) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _to_saveable(tree):
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)


def _from_saveable(tree, like):
    return jax.tree.map(lambda x, ref: jax.random.wrap_key_data(x, impl=jax.random.key_impl(ref))
                        if _is_key(ref) else x, tree, like)


class Checkpoints:
    """The checkpoints of one run, under ``<workdir>/checkpoints``.

    Each checkpoint is named by its step and holds a `TrainState` plus a JSON-serialisable
    ``meta`` dict. Saves are synchronous (orbax's asynchronous checkpointing is off); the
    oldest checkpoints beyond ``keep`` are deleted as new ones are saved.

    Args:
      workdir: the run folder; ``checkpoints`` is created inside it (and the folder itself,
        if missing) on construction.
      keep: how many of the latest checkpoints to keep (orbax's ``max_to_keep``).

    Attributes:
      directory: the absolute path of ``<workdir>/checkpoints``.
      manager: the ``orbax.checkpoint.CheckpointManager`` over it.

    >>> import tempfile
    >>> import jax, jax.numpy as jnp
    >>> state = TrainState(params={"w": jnp.ones(2)}, rest={"n": jnp.zeros(1)},
    ...                    opt_state={"m": jnp.zeros(2)}, step=jnp.array(3),
    ...                    key=jax.random.key(0))
    >>> with tempfile.TemporaryDirectory() as workdir:
    ...     checkpoints = Checkpoints(workdir)
    ...     checkpoints.save(state, {"epoch": 1})
    ...     restored, meta = checkpoints.restore(state)
    ...     checkpoints.close()
    >>> int(restored.step), meta
    (3, {'epoch': 1})
    """

    def __init__(self, workdir: str | pathlib.Path, keep: int = 2):
        self.directory = pathlib.Path(workdir).absolute() / "checkpoints"
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                                 enable_async_checkpointing=False))

    def latest(self) -> int | None:
        """The step of the newest complete checkpoint, or ``None`` when there is none."""
        return self.manager.latest_step()

    def save(self, state: TrainState, meta: dict[str, Any]) -> None:
        """Saves ``state`` and ``meta`` as the checkpoint of step ``state.step`` and returns
        once it is on disk; orbax refuses (``StepAlreadyExistsError``) a step already saved."""
        step = int(state.step)
        tree = _to_saveable(state)
        self.manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(tree), meta=ocp.args.JsonSave(meta)), force=True)
        self.manager.wait_until_finished()

    def restore(self, like: TrainState, step: int | None = None) -> tuple[TrainState,
                                                                         dict[str, Any]]:
        """The state (with ``like``'s structure and shardings) and meta of ``step`` or the
        latest; ``FileNotFoundError`` when there is no checkpoint to restore."""
        step = self.latest() if step is None else step
        saveable = _to_saveable(like)
        abstract = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype,
                                           sharding=getattr(x, "sharding", None)), saveable)
        restored = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
        return _from_saveable(restored["state"], like), dict(restored["meta"])

    def close(self) -> None:
        """Closes the orbax manager; call it once the run is done with its checkpoints."""
        self.manager.close()
