"""A small training run in its own process, for the multi-device and kill -9 tests.

    python -m tests.train.runner WORKDIR [--batch-size N] [--sleep S]

Prints the run's epoch records as one JSON line. XLA_FLAGS (e.g. a forced device count) must be
set in the environment before this starts, which is why it runs as a separate process.
"""

import argparse
import json
import time

from jaxconv import data, models, train
from tests import modules


def small_model():
    """A 4-class basic-block net with Flax's default init: these 48-step runs learn the task
    with it (the reference init's zeroed residual branches need more steps), and the engine,
    not the init, is under test."""
    spec = models.ModelSpec.from_dict({**models.layout("basic", 8, depth=1).to_dict(),
                                       "init": "flax"})
    return modules.build(lambda rngs: models.ConvNet(spec, num_classes=4, in_features=1, rngs=rngs))


def run(workdir, *, batch_size=32, epochs=2, sleep=0.0, log_every=1, checkpoint_every=3,
        steps_per_call=0, on_step=None, checkpoint_seconds=30.0):
    tr, te = data.load("synthetic", "train"), data.load("synthetic", "test")
    model = small_model()
    recipe = train.Recipe(epochs=epochs, batch_size=batch_size, learning_rate=0.05,
                          log_every=log_every, checkpoint_every=checkpoint_every,
                          eval_batch_size=32, crop_padding=1, flip=True,
                          steps_per_call=steps_per_call, compile_options="default")
    if sleep:
        on_step = lambda step: time.sleep(sleep)  # noqa: E731
    return train.fit(model, tr, te, recipe, seed=0, workdir=workdir, progress=False,
                     on_step=on_step, checkpoint_seconds=checkpoint_seconds)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("workdir")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--sleep", type=float, default=0.0)
    args = parser.parse_args()
    try:
        result = run(args.workdir, batch_size=args.batch_size, sleep=args.sleep)
    except ValueError as error:
        print(json.dumps({"error": str(error)}))
        return
    print(json.dumps({"history": result.history,
                      "losses": [r["loss"] for r in train.read_jsonl(
                          __import__("pathlib").Path(args.workdir) / "metrics.jsonl")
                          if r["kind"] == "train"]}))


if __name__ == "__main__":
    main()
