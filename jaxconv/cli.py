"""The ``jaxconv`` command: train and compare convolutional designs from configs, inspect
convolutions and models, and use trained models. Parsing and printing only; the work is in the
packages.

    jaxconv explain conv2d --input 64x64x3 --filters 32 --kernel 3x3
    jaxconv summary --model bottleneck-0.3m --input 28x28x1
    jaxconv data info fashion_mnist | jaxconv data download mnist
    jaxconv run quickstart [--set train.epochs=1 ...] | jaxconv run --list | jaxconv report RUN_DIR
    jaxconv run configs/my_study.yaml                  (a config file instead of a shipped name)
    jaxconv bench [--settings none|recommended|both] [--cases 3x3 ...] [--no-steps]

The command runs with `jaxconv.environment.recommended` settings (XLA flags, malloc tunables;
opt out with JAXCONV_TUNE=0); ``bench --settings`` chooses for itself.
"""

from __future__ import annotations

import argparse
import dis
import pathlib
import sys
import traceback
from collections.abc import Callable, Sequence


def _dims(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a shape like 64x64x3") from None
    if not dims or any(d < 1 for d in dims):
        raise argparse.ArgumentTypeError(f"{text!r} must be positive sizes like 64x64x3")
    return dims


def _int_or_dims(text: str) -> int | tuple[int, ...]:
    dims = _dims(text)
    return dims[0] if len(dims) == 1 else dims


def _padding(text: str) -> str | int:
    return int(text) if text.isdigit() else text


def _explain(args: argparse.Namespace) -> None:
    from jaxconv.analysis import explain

    result = explain(args.kind, args.input, filters=args.filters, kernel=args.kernel,
                     strides=args.strides, padding=args.padding, groups=args.groups,
                     dilation=args.dilation, depth_multiplier=args.depth_multiplier,
                     use_bias=not args.no_bias)
    print(result.text)


def _summary(args: argparse.Namespace) -> None:
    from flax import nnx

    from jaxconv import analysis, models

    models.spec(args.model)
    model = nnx.eval_shape(lambda: models.create(args.model, num_classes=args.classes,
                                                 in_features=args.input[-1], rngs=nnx.Rngs(0)))
    print(f"{args.model} on {'x'.join(map(str, args.input))}, {args.classes} classes")
    print(analysis.summary(model, args.input).table())


def _data(args: argparse.Namespace) -> None:
    from jaxconv import data

    if args.action == "info":
        print(data.info(args.name, args.data_dir))
    else:
        folder = data.download(args.name, args.data_dir)
        print(f"{args.name}: downloaded and verified in {folder}")


def _run(args: argparse.Namespace) -> None:
    import shlex

    from jaxconv import experiment
    from jaxconv.experiment import examples

    if args.list:
        width = max(map(len, examples.names()))
        print("example configs shipped with jaxconv (jaxconv run NAME; copy one from "
              f"{examples.ROOT} to change it):")
        for name in examples.names():
            print(f"  {name:<{width}}  {examples.summary(name)}")
        return
    if args.config is None:
        raise ValueError("config: missing; expected a YAML file or the name of a shipped config "
                         f"({', '.join(examples.names())}; jaxconv run --list says what each "
                         "trains)")
    config = experiment.load(args.config, args.set)
    primary = _join_processes(args)
    command = "jaxconv " + " ".join(shlex.quote(a) for a in args.argv)
    path = experiment.run(config, command=command, progress=not args.quiet and primary,
                          plan_only=args.plan, variants=args.variant or (),
                          seeds=args.seed or (), allow_dirty=args.allow_dirty)
    if path is not None and primary:
        _print_report(path.parent, built=True)


def _join_processes(args: argparse.Namespace) -> bool:
    """Joins a multi-host run when ``--coordinator`` is given; whether this process is the one
    that writes the run's files (process 0, or the only process)."""
    if args.processes < 1:
        raise ValueError(f"--processes: {args.processes} must be at least 1")
    if args.coordinator is None:
        if args.processes != 1 or args.process_id != 0:
            raise ValueError(f"--processes {args.processes} --process-id {args.process_id}: "
                             "a multi-host run also needs --coordinator HOST:PORT")
        return True
    if not 0 <= args.process_id < args.processes:
        raise ValueError(f"--process-id: {args.process_id} is not in 0..{args.processes - 1} "
                         f"(--processes {args.processes})")
    import jax

    # CPU devices of different processes exchange gradients through gloo
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(args.coordinator, num_processes=args.processes,
                               process_id=args.process_id)
    return jax.process_index() == 0


def _print_report(run_dir, built: bool = False) -> None:
    """Prints the report's table, whether its runs' clocks are speed figures and its
    comparisons between variants; builds the report first unless ``built`` (just written)."""
    from jaxconv.experiment import report

    run_dir = pathlib.Path(run_dir)
    if built:
        rows, path = report.aggregate(report.results(run_dir)), run_dir / "report.md"
    else:
        rows, path = report.build(run_dir)
    print(report.table(rows))
    found = report.results(run_dir)
    print("\n".join([*report.clock_notes(found), "", "Which differences exceed seed noise:", "",
                     *report.seed_noise(found),
                     *report.comparison(run_dir, found)]))
    print(f"report: {path}")
    print("plots: " + ", ".join(str(path.parent / p) for p in report.PLOTS))


def _report(args: argparse.Namespace) -> None:
    _print_report(args.run_dir)


def _retention(args: argparse.Namespace) -> None:
    from jaxconv import analysis, experiment

    if args.images < 1:
        raise ValueError(f"--images: {args.images} must be at least 1")
    trained = experiment.load_run(args.run_dir, args.variant, args.seed)
    start = experiment.load_run(args.run_dir, args.variant, args.seed, initial=True)
    images = trained.normalize(trained.dataset("train").images[:args.images])
    where = (f"{args.variant} seed {args.seed}, over {len(images):,} {trained.dataset_name} "
             "images")
    for title, run in (("trained", trained), ("at initialisation", start)):
        print(f"## {where}: {title}\n")
        print(analysis.retention_table(analysis.retention(run.model, images)))
        print()


def _predict(args: argparse.Namespace) -> None:
    import numpy as np

    from jaxconv import experiment
    from jaxconv.experiment import trained as trained_lib

    if args.output and not args.output.endswith(".npy"):
        raise ValueError(f"--output: {args.output!r} must end in .npy")
    run = experiment.load_run(args.run_dir, args.variant, args.seed)
    images = trained_lib.read_images(args.images, run.image_shape)
    probabilities = run.probabilities(images)
    if args.output:
        np.save(args.output, probabilities)
        print(f"{len(probabilities)} x {run.num_classes} class probabilities: {args.output}")
        return
    print("| image | class | probability |")
    print("|---:|---:|---:|")
    for i, row in enumerate(probabilities):
        print(f"| {i} | {int(row.argmax())} | {float(row.max()):.4f} |")


def _export(args: argparse.Namespace) -> None:
    from jaxconv import experiment
    from jaxconv.tuning.files import atomic_write_bytes

    if args.batch_size is not None and args.batch_size < 1:
        raise ValueError(f"--batch-size: {args.batch_size} must be at least 1 (leave it out for "
                         "any number of images per call)")
    run = experiment.load_run(args.run_dir, args.variant, args.seed)
    exported = run.export(args.batch_size)
    output = pathlib.Path(args.output)
    atomic_write_bytes(output, bytes(exported.serialize()))
    batch = "any number" if args.batch_size is None else args.batch_size
    shape = ", ".join(map(str, (batch, *run.image_shape)))
    print(f"{args.variant} seed {args.seed}: uint8 images ({shape}) -> {run.num_classes} class "
          f"probabilities, for {', '.join(exported.platforms)}: {output}")


def _bench(args: argparse.Namespace) -> None:
    from jaxconv import bench

    if args.fuzz is not None:
        from jaxconv.bench import fuzz

        if args.fuzz_jobs is not None and args.fuzz_jobs < 1:
            raise ValueError(f"--fuzz-jobs {args.fuzz_jobs}: expected at least 1 child process")

        code = fuzz.main([str(args.fuzz), "--seed", str(args.fuzz_seed),
                          "--jobs", str(args.fuzz_jobs or fuzz.cores()),
                          *(["--wide"] * args.fuzz_wide)])
        if code:
            raise ValueError("--fuzz: formulations disagree with lax or abort; see "
                             "fuzz-failures.md for reproducers")
        return
    settings = ("none", "recommended") if args.settings == "both" else (args.settings,)
    bench.run_with_settings(settings, repeats=args.repeats, cases=args.cases, nets=args.nets,
                            ops=not args.no_ops, steps=not args.no_steps, fit=args.fit)


def _trained_run_arguments(p: argparse.ArgumentParser) -> None:
    """RUN_DIR, --variant and --seed: which finished run's model a command uses."""
    p.add_argument("run_dir", help="a finished run folder")
    p.add_argument("--variant", required=True, help="a variant of the run's config")
    p.add_argument("--seed", type=int, default=0, help="which seed's run (default 0)")


def parser() -> argparse.ArgumentParser:
    from jaxconv import __version__
    from jaxconv.analysis.explain import KINDS

    p = argparse.ArgumentParser(
        prog="jaxconv", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train and compare convolutional network designs from YAML configs, see "
                    "what a convolution does to its channels, and use the trained models.",
        epilog="start here:\n"
               "  jaxconv run quickstart                   five designs x 2 seeds, about 2 min, "
               "into ./runs/\n"
               "  jaxconv run configs/quickstart.yaml      the same from the file, in a clone of "
               "the repository\n"
               "  jaxconv run --list                       the example configs shipped with "
               "jaxconv\n"
               "  jaxconv explain conv2d --input 32x32x64 --filters 16 --kernel 1\n"
               "  jaxconv <command> --help                 what a command does, with an "
               "example")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    verbs = p.add_subparsers(dest="verb", required=True, metavar="<command>")

    def verb(name: str, summary: str, example: str, run: Callable[[argparse.Namespace], None],
             *, trained_run: bool = False) -> argparse.ArgumentParser:
        """A command running ``run``; ``trained_run`` adds which finished run it uses."""
        command = verbs.add_parser(name, help=summary,
                                   description=f"{summary}. Example: {example}")
        command.set_defaults(run=run)
        if trained_run:
            _trained_run_arguments(command)
        return command

    e = verb("explain", "What one convolution does to its channels: shapes, parameters, "
                        "MACs and how each output channel mixes the inputs",
             "jaxconv explain conv2d --input 64x64x3 --filters 32 --kernel 3x3", _explain)
    e.add_argument("kind", choices=KINDS)
    e.add_argument("--input", type=_dims, required=True, help="one example, e.g. 64x64x3")
    e.add_argument("--filters", type=int, help="output channels")
    e.add_argument("--kernel", type=_int_or_dims, default=3, help="e.g. 3 or 3x3")
    e.add_argument("--strides", type=_int_or_dims, default=1)
    e.add_argument("--padding", type=_padding, default="SAME",
                   help="SAME, VALID, CAUSAL, CIRCULAR, REFLECT, REPLICATE or an int")
    e.add_argument("--groups", type=int, default=1)
    e.add_argument("--dilation", type=_int_or_dims, default=1)
    e.add_argument("--depth-multiplier", type=int, default=1)
    e.add_argument("--no-bias", action="store_true")

    s = verb("summary", "Per-layer table of a model preset: formulation, shapes, "
                        "parameters, MACs, XLA FLOPs, activation memory",
             "jaxconv summary --model bottleneck-0.3m --input 28x28x1", _summary)
    s.add_argument("--model", required=True, help="a preset, e.g. bottleneck-0.3m")
    s.add_argument("--input", type=_dims, required=True, help="one example, e.g. 28x28x1")
    s.add_argument("--classes", type=int, default=10)

    d = verb("data", "Where a dataset is looked for and what was found; download and verify "
                     "it", "jaxconv data download fashion_mnist", _data)
    d.add_argument("action", choices=("info", "download"))
    d.add_argument("name", help="digits, mnist, fashion_mnist, cifar10, synthetic")
    d.add_argument("--data-dir", help="a folder to look in first / download into")

    r = verb("run", "Train every variant x seed of a config (resuming what was "
                    "interrupted), then write the report with tables and plots",
             "jaxconv run quickstart --set train.epochs=3", _run)
    r.add_argument("config", nargs="?",
                   help="a YAML experiment config file (e.g. configs/quickstart.yaml), or the "
                        "name of a config shipped with jaxconv (e.g. quickstart; see --list); "
                        "runs are written under the config's output_dir, relative to the "
                        "current directory (./runs/ by default)")
    r.add_argument("--list", action="store_true",
                   help="name the example configs shipped with jaxconv, and what each trains")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (YAML value), e.g. train.epochs=1 or "
                        "'seeds=[0,1]'; repeatable")
    r.add_argument("--variant", action="append", metavar="NAME",
                   help="train only this variant of the config (repeatable; default: all), "
                        "e.g. to rerun one row into the study folder")
    r.add_argument("--seed", action="append", type=int, metavar="N",
                   help="train only this seed of the config (repeatable; default: all)")
    r.add_argument("--allow-dirty", action="store_true",
                   help="train a study (a run folder git does not ignore) from a tree with "
                        "uncommitted changes; its report then says so")
    r.add_argument("--quiet", action="store_true", help="no progress bars or epoch lines")
    r.add_argument("--plan", action="store_true",
                   help="print the plan (a measured step per design) and stop")
    r.add_argument("--coordinator", metavar="HOST:PORT",
                   help="a multi-host run: process 0's address; start the same command on "
                        "every host with its --process-id")
    r.add_argument("--processes", type=int, default=1, help="processes of a multi-host run")
    r.add_argument("--process-id", type=int, default=0,
                   help="this process's index in a multi-host run (0 writes the files)")

    rep = verb("report", "Rebuild a run folder's report.md, results.csv and plots from its "
                         "files", "jaxconv report runs/quickstart", _report)
    rep.add_argument("run_dir", help="a run folder, e.g. runs/quickstart")

    ret = verb("retention", "How much of its input each squeezing 1x1 of a trained model keeps, "
                            "against the best and random projections, trained and at "
                            "initialisation",
               "jaxconv retention experiments/results/fashion_mnist/width_sweep "
               "--variant ratio-0.25", _retention, trained_run=True)
    ret.add_argument("--images", type=int, default=2000,
                     help="training images whose pixels are measured (default 2000)")

    pr = verb("predict", "Class probabilities of a trained run's model for images in a .npy "
                         "file: each image's class, or every probability with --output",
              "jaxconv predict runs/quickstart images.npy --variant basic", _predict,
              trained_run=True)
    pr.add_argument("images", help=".npy of uint8 images (N, H, W, C) shaped as the run's data")
    pr.add_argument("--output", help="write the (N, classes) probabilities to this .npy")

    ex = verb("export", "Save a trained run's model as a jax.export artifact (weights, input "
                        "shape and normalisation inside) that runs with JAX alone: "
                        "jax.export.deserialize(open(FILE, 'rb').read()).call(images)",
              "jaxconv export runs/quickstart --variant basic --output basic.jax", _export,
              trained_run=True)
    ex.add_argument("--output", required=True, help="the file to write")
    ex.add_argument("--batch-size", type=int, default=None,
                    help="fix the images per call in the artifact (default: any number)")

    b = verb("bench", "Time conv formulations, training steps and whole fit epochs "
                      "against lax, flax.nnx.Conv and PyTorch on this machine",
             "jaxconv bench --cases 3x3 --no-steps", _bench)
    b.add_argument("--repeats", type=int, default=10, help="timed calls per median")
    b.add_argument("--cases", nargs="*", default=[], help="substrings of op case names")
    b.add_argument("--nets", nargs="*", default=[],
                   help="training-step nets: resnet_bottleneck, mobilenet_v2 (default both)")
    b.add_argument("--no-ops", action="store_true", help="skip the op table")
    b.add_argument("--no-steps", action="store_true", help="skip the training-step table")
    b.add_argument("--fuzz", type=int, metavar="N",
                   help="instead of timing, check N random convolutions through every "
                        "formulation (values and gradients, float32 and bfloat16) against "
                        "lax; failures and reproducers go to fuzz-failures.md")
    b.add_argument("--fuzz-seed", type=int, default=0, help="seed of the --fuzz cases")
    b.add_argument("--fuzz-jobs", type=int, default=None, metavar="J",
                   help="--fuzz cases checked in J child processes at once (default: one per "
                        "CPU core)")
    b.add_argument("--fuzz-wide", action="store_true",
                   help="--fuzz cases with 6-16x the channels (dense convs at the sizes "
                        "YNNPACK takes)")
    b.add_argument("--fit", action="store_true",
                   help="also time whole fit epochs against a PyTorch training loop")
    b.add_argument("--settings", choices=("recommended", "none", "both"),
                   default="recommended",
                   help="run with the settings the jaxconv command uses (XLA flags, malloc "
                        "tunables), with the environment as it is (as a library user gets "
                        "it), or both one after the other")
    return p


def user_error(error: BaseException) -> bool:
    """Whether ``error`` is a mistake in how jaxconv was called, which the command prints as one
    line: an `OSError` (a path, a permission, a full disk), or a `ValueError` or `TypeError`
    that jaxconv's own checks raise on purpose (a ``raise`` statement in jaxconv's code, where
    the argument checks are). Anything else is a bug: another exception, a `TypeError` that
    Python raises inside jaxconv (a call with arguments the callee does not take), or an error
    raised deep inside JAX or NumPy."""
    if isinstance(error, OSError):
        return True
    if not isinstance(error, ValueError | TypeError) or error.__traceback__ is None:
        return False
    innermost = error.__traceback__
    while innermost.tb_next is not None:
        innermost = innermost.tb_next
    code = innermost.tb_frame.f_code
    package = pathlib.Path(__file__).resolve().parent
    if not pathlib.Path(code.co_filename).resolve().is_relative_to(package):
        return False
    return any(i.offset == innermost.tb_lasti and i.opname == "RAISE_VARARGS"
               for i in dis.get_instructions(code))


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command; 0 on success, 2 for a user's mistake (one line), 1 for a bug in jaxconv
    (its traceback and a request to report it)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    args.argv = argv
    try:
        args.run(args)
    except Exception as error:
        if user_error(error):
            print(f"jaxconv {args.verb}: error: {error}", file=sys.stderr)
            return 2
        traceback.print_exc()
        print(f"jaxconv {args.verb}: internal error: this is a bug in jaxconv, not a mistake in "
              "the command; please report it with the command line and the traceback above",
              file=sys.stderr)
        return 1
    return 0


def entry() -> None:
    """The ``jaxconv`` console command: `main` under `jaxconv.environment.recommended`
    settings (``bench`` sets up its own runs instead)."""
    from jaxconv import environment

    argv = sys.argv[1:]
    if argv[:1] != ["bench"]:
        environment.start_command([sys.executable, "-m", "jaxconv", *argv])
    sys.exit(main(argv))


if __name__ == "__main__":
    entry()
