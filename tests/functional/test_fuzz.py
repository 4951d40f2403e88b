"""The formulation fuzz (`jaxconv.bench.fuzz`): a seeded slice every run, and a harness that a
process abort cannot stop."""

import functools
import json
import pathlib
import subprocess
import sys
import time

import pytest

from jaxconv import functional as F
from jaxconv.bench import fuzz
from jaxconv.tuning import native

HERE = pathlib.Path(__file__).parent


def test_a_seeded_slice_agrees_with_lax():
    """Every formulation claiming each case, float32 and bfloat16, values and both gradients."""
    failures, checks = fuzz.run(10, seed=20261201, log=lambda s: None)
    report = "\n".join(f.markdown() for f in failures)
    assert not failures, report
    assert checks == 2 * sum(len(impls) for _, impls in fuzz.cases(10, 20261201))


@pytest.mark.skipif(not native.available(), reason=str(native.reason()))
def test_a_seeded_onednn_slice_agrees_with_lax_and_pytorch():
    """The native formulation's slice of the fuzz (its full run is
    experiments/results/fuzz_onednn.md): conv and transposed conv, float32 and bfloat16."""
    failures, checks = fuzz.run(12, seed=20261205, impls=["onednn"], log=lambda s: None)
    assert not failures, "\n".join(f.markdown() for f in failures)
    claimed = [impls for _, impls in fuzz.cases(12, 20261205, impls=["onednn"])]
    assert checks == 2 * sum(map(len, claimed)) >= 2 * 8


def test_an_abort_fails_its_case_and_the_run_goes_on():
    lines = []
    failures, checks = fuzz.run(3, seed=1, dtypes=("float32",), log=lines.append,
                                worker=(sys.executable, str(HERE / "fuzz_abort_worker.py")))
    every = [(c, i) for c, impls in fuzz.cases(3, 1) for i in impls]
    assert checks == len(every) > 3
    assert len(failures) == 1 and "the process aborted (exit code" in failures[0].problem
    assert (failures[0].case, failures[0].impl) == every[2]
    assert any(line.startswith("ABORT case") for line in lines)


@pytest.mark.slow
def test_jobs_share_out_the_cases_and_an_abort_stops_only_its_own_child():
    lines = []
    failures, checks = fuzz.run(6, seed=1, dtypes=("float32",), log=lines.append, jobs=2,
                                worker=(sys.executable, str(HERE / "fuzz_abort_worker.py")))
    every = [(c, i) for c, impls in fuzz.cases(6, 1) for i in impls]
    assert checks == len(every)
    per_child = [[(c, i) for c, i in every if c.index % 2 == j] for j in range(2)]
    assert [(f.case, f.impl) for f in failures] == sorted(
        (part[2] for part in per_child), key=lambda t: (t[0].index, t[1]))
    assert sum(line.startswith("ABORT case") for line in lines) == 2
    with pytest.raises(ValueError, match="jobs=0"):
        fuzz.run(1, jobs=0)


def test_the_report_says_what_each_auto_choice_was_fuzzed_on():
    """The coverage rows group the cases by (op, shape class, what auto chose) and give the
    ranges of their shapes; wide cases reach the dense class and more than 16 channels."""

    checked = list(fuzz.cases(40, seed=2, wide=True))
    rows = fuzz.coverage(checked)
    assert sum(r["configurations"] for r in rows) == 40
    assert any(r["shape class"] == "dense" for r in rows)
    assert max(max(s.input_shape[-1], s.kernel_shape[-1]) for s in (
        F.plan(c.x_shape, c.kernel_shape, op=c.op, **c.kwargs).spec for c, _ in checked)) > 16
    dense = fuzz.Case(0, "conv", "dense", (2, 9, 9, 32), (3, 3, 32, 48),
                      {"strides": [1, 2], "kernel_dilation": [1, 1], "feature_group_count": 1,
                       "padding": "SAME"}, seed=0)
    (row,) = fuzz.coverage([(dense, ["auto"])])
    assert row == {"op": "conv", "shape class": "dense", "auto": F.plan(
        (2, 9, 9, 32), (3, 3, 32, 48), strides=(1, 2), padding="SAME").impl,
        "configurations": 1, "rank": "2", "kernel": "3", "strides": "1-2",
        "kernel dilation": "1", "input dilation": "1", "groups": "1", "channels": "32-48",
        "batch": "2", "padding": "SAME"}
    from jaxconv.functional.policy import CONV_POLICY

    pointwise = fuzz.Case(1, "conv", "pointwise", (2, 5, 5, 8), (1, 1, 8, 4),
                          {"strides": [1, 1], "kernel_dilation": [1, 1],
                           "feature_group_count": 1, "padding": "VALID"}, seed=0)
    row = next(r for r in CONV_POLICY if r.impl == "matmul")
    assert row.shape_class == "pointwise"
    assert fuzz.row_shapes([(dense, ["auto"])], "conv", row) == "no configuration"
    assert fuzz.row_shapes([(dense, ["auto"]), (pointwise, ["auto"])], "conv", row) == (
        "1 configurations: rank 2, kernel 1, strides 1, kernel dilation 1, input dilation 1, "
        "groups 1, channels 4-8, batch 2")
    text = fuzz.report([], 0, 40, 2, 1.0, checked, wide=True, jobs=3)
    assert "3 child processes at once" in text and "references: lax at HIGHEST" in text
    pairs = sum(len(impls) for _, impls in checked)
    assert f"40 configurations, {pairs} formulation x configuration pairs" in text
    assert "| conv | dense |" in text and "## Checks per formulation" in text


def test_a_check_past_its_timeout_fails_and_the_run_goes_on():
    lines = []
    start = time.monotonic()
    failures, checks = fuzz.run(3, seed=1, dtypes=("float32",), log=lines.append, case_timeout=5,
                                worker=(sys.executable, str(HERE / "fuzz_abort_worker.py"),
                                        "hang"))
    every = [(c, i) for c, impls in fuzz.cases(3, 1) for i in impls]
    assert checks == len(every)
    assert len(failures) == 1 and failures[0].problem.startswith("timed out after 5 s")
    assert (failures[0].case, failures[0].impl) == every[2]
    assert any(line.startswith("TIMEOUT case") for line in lines)
    assert time.monotonic() - start < 300, "the hung child was not killed"


def test_reproducers_run_as_written():
    case, impls = next(fuzz.cases(1, seed=3))
    namespace = {}
    exec(case.reproducer(impls[-1], "float32").replace("print(", "result = ("), namespace)
    assert len(namespace["result"]) == 2


def test_the_pytorch_oracle_agrees_with_lax():
    """The second oracle, on cases covering transposed convs, fills (two of them as wide as
    the input) and input dilation."""
    pytest.importorskip("torch")
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxconv.bench import torch_oracle

    wide_fills = [c for c, _ in fuzz.cases(91, seed=0) if c.index in (49, 90)]
    assert len(wide_fills) == 2 and all(c.kwargs.get("padding_mode") for c in wide_fills)
    seen = set()
    for case in [c for c, _ in fuzz.cases(40, seed=7)] + wide_fills:
        seen |= {case.op, case.kwargs.get("padding_mode"), "input_dilation" * (
            "input_dilation" in case.kwargs), "output_padding" * ("output_padding" in case.kwargs)}
        call = jax.jit(functools.partial(F.conv if case.op == "conv" else F.conv_transpose,
                                         impl="xla", precision="highest", **case.kwargs))
        rng = np.random.default_rng(case.seed)
        x, k = rng.standard_normal(case.x_shape), rng.standard_normal(case.kernel_shape)
        y, pull = jax.vjp(call, jnp.asarray(x, jnp.float32), jnp.asarray(k, jnp.float32))
        cotangent = rng.standard_normal(y.shape)
        expected = (y, *pull(jnp.asarray(cotangent, jnp.float32)))
        got = torch_oracle.reference(case.op, case.x_shape, case.kernel_shape, case.kwargs, x, k,
                                     cotangent)
        for a, b in zip(got, expected):
            np.testing.assert_allclose(a, np.asarray(b, np.float64), rtol=1e-4,
                                       atol=1e-4 * (np.abs(a).max(initial=0) + 1),
                                       err_msg=case.reproducer("xla", "float32"))
    assert {"conv", "conv_transpose", "input_dilation", "output_padding"} <= seen
    assert seen & {"circular", "reflect", "replicate"}


@pytest.mark.slow
def test_the_bench_command_fuzzes_wide_cases_in_parallel(tmp_path, monkeypatch):
    """``jaxconv bench --fuzz N --fuzz-wide --fuzz-jobs J`` writes its report where it runs."""
    from jaxconv.cli import main

    monkeypatch.chdir(tmp_path)
    main(["bench", "--fuzz", "2", "--fuzz-seed", "4", "--fuzz-wide", "--fuzz-jobs", "2"])
    text = (tmp_path / "fuzz-failures.md").read_text()
    assert text.startswith("# Formulation fuzz: 2 wide cases, seed 4")
    assert "0 failures" in text and "2 configurations" in text


def _check_report(path, run, impls=None):
    """The committed report of fuzz run ``run`` (n, seed, wide[, large[, pointwise]]) ran
    every check of both dtypes and found no failure."""
    n, seed, wide, large, pointwise = (*run, False, False)[:5]
    text = (HERE.parent.parent / path).read_text()
    assert text.startswith(f"# Formulation fuzz: {n} {'wide ' * wide}{'large ' * large}"
                           f"{'pointwise ' * pointwise}cases, seed {seed}\n"), path
    claimed = fuzz.claims(list(fuzz.cases(n, seed, wide, impls, large, pointwise)))
    assert f"\n{2 * sum(claimed.values())} checks (case x formulation x dtype) in " in text
    assert " s; 0 failures." in text and "dtypes: float32, bfloat16" in text, path
    for (op, impl), count in claimed.items():    # each formulation ran on what it claims
        assert f"\n| {op} | {impl} | {count} | 0 |\n" in text, (path, op, impl)


def _check_rows(checked, rows_by_op, reports):
    for op, rows in rows_by_op:
        for row in rows:
            shapes = fuzz.row_shapes(checked, op, row)
            assert shapes != "no configuration", row
            assert row.fuzzed.startswith(shapes + ";"), (row.impl, row.shape_class, shapes)
            assert all(path in row.fuzzed for path in reports), row.impl


def test_every_cpu_policy_row_says_what_the_fuzz_checked_it_on(monkeypatch):
    """Each row's ``fuzzed`` line gives the configurations ``auto`` sent to it in the fuzz runs
    of ``FUZZ_REPORTS`` (recomputed here: the cases are seeded), on the CPU class they ran on;
    the committed reports of those runs ran every check of both dtypes and found no failure.
    The ``onednn`` rows have a fuzz run of their own (see the next test)."""
    from jaxconv.functional.policy import CONV_POLICY, FUZZ_REPORTS
    from jaxconv.functional.transpose import TRANSPOSE_POLICY
    from jaxconv.tuning import machine

    # AVX2 and no native extension, as fuzzed
    monkeypatch.setattr(machine, "slow_ynnpack_convolutions", lambda option=None: True)
    monkeypatch.setattr(native, "available", lambda: False)
    monkeypatch.delenv("JAXCONV_AUTOTUNE", raising=False)
    checked = list(fuzz.cases(2000, seed=1)) + list(fuzz.cases(150, seed=2, wide=True))
    _check_rows(checked, [(op, [r for r in rows if r.backend == "cpu" and r.impl != "onednn"])
                          for op, rows in (("conv", CONV_POLICY),
                                           ("conv_transpose", TRANSPOSE_POLICY))], FUZZ_REPORTS)
    for path, run in zip(FUZZ_REPORTS, ((2000, 1, False), (150, 2, True)), strict=True):
        _check_report(path, run)
    plan = F.plan((2, 9, 9, 4), (1, 1, 4, 8), backend="cpu")
    pointwise = next(r for r in CONV_POLICY if r.impl == "matmul")
    assert plan.fuzzed == pointwise.fuzzed and f"fuzzed: {plan.fuzzed}" in str(plan)


@pytest.mark.skipif(not native.available(), reason=str(native.reason()))
def test_every_onednn_row_says_what_its_fuzz_checked_it_on(monkeypatch):
    """The ``onednn`` rows' ``fuzzed`` lines give what ``auto`` sends them among the cases of
    their own fuzz runs (`ONEDNN_FUZZ`: every case onednn claims, float32 and bfloat16, no
    failure), on the AVX-512 class they were measured on."""
    from jaxconv.functional.policy import CONV_POLICY, ONEDNN_FUZZ, ONEDNN_FUZZ_RUNS
    from jaxconv.functional.transpose import TRANSPOSE_POLICY
    from jaxconv.tuning import machine

    monkeypatch.setattr(machine, "isa", lambda: "avx512")
    monkeypatch.delenv("JAXCONV_AUTOTUNE", raising=False)
    checked = [case for n, seed, wide, large, pointwise in ONEDNN_FUZZ_RUNS
               for case in fuzz.cases(n, seed, wide, large=large, pointwise=pointwise)]
    _check_rows(checked, [(op, [r for r in rows if r.impl == "onednn"])
                          for op, rows in (("conv", CONV_POLICY),
                                           ("conv_transpose", TRANSPOSE_POLICY))], ONEDNN_FUZZ)
    for path, run in zip(ONEDNN_FUZZ, ONEDNN_FUZZ_RUNS, strict=True):
        _check_report(path, run, impls=["onednn"])


@pytest.mark.slow
def test_an_interrupted_parallel_run_stops_its_children_at_once(tmp_path):
    """Ctrl-C (SIGINT to the main thread) while every child hangs in a check: the run raises
    within seconds, not after the hung checks' timeouts, and leaves no child behind."""
    import signal
    import threading

    # Python's own handler, as in a terminal, also where the tests run as a background job
    # of a non-interactive shell (which starts them with SIGINT ignored).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    before = time.monotonic()
    timer = threading.Timer(3.0, signal.pthread_kill,
                            (threading.main_thread().ident, signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            fuzz.run(6, seed=1, dtypes=("float32",), log=lambda s: None, jobs=2,
                     worker=(sys.executable, str(HERE / "fuzz_abort_worker.py"), "hang",
                             str(tmp_path)))
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert time.monotonic() - before < 30
    alive = subprocess.run(["pgrep", "-f", f"hang {tmp_path}"], capture_output=True)
    assert not alive.stdout.strip(), "a hung child outlived the interrupted run"


def test_a_stopped_run_resumes_from_its_progress_file(tmp_path):
    """Killed mid-run (the progress file cut inside a line), the same run resumes: it checks
    only what is missing and reports exactly what an uninterrupted run reports."""
    fast = (sys.executable, str(HERE / "fuzz_abort_worker.py"), "fast")
    settings = fuzz.settings(4, 1, False, ["float32"])
    every = [(c, i) for c, impls in fuzz.cases(4, 1) for i in impls]
    path = tmp_path / "progress.jsonl"
    whole = fuzz.run(4, seed=1, dtypes=("float32",), log=lambda s: None, worker=fast, jobs=2,
                     progress=fuzz.Progress(path, settings))
    assert whole[1] == len(every) and len(whole[0]) == 1
    assert whole[0][0].case.index == 1 and whole[0][0].impl == "canonical"
    lines = path.read_text().splitlines()
    assert len(lines) == 1 + len(every)
    kept = [lines[0], *[line for line in lines[1:] if '"1/canonical/' not in line][:3]]
    path.write_text("\n".join(kept) + '\n{"key": "3/au')
    log = []
    resumed = fuzz.run(4, seed=1, dtypes=("float32",), log=log.append, worker=fast, jobs=2,
                       progress=fuzz.Progress(path, settings))
    assert log[0] == f"resumed: 3 checks already done (0 failed), {len(every) - 3} to go"
    assert resumed == whole
    keys = [json.loads(line)["key"] for line in path.read_text().splitlines()[1:]
            if line.startswith('{"key": "') and line.endswith("}")]
    assert sorted(keys) == sorted(f"{c.index}/{i}/float32" for c, i in every)
    again = fuzz.run(4, seed=1, dtypes=("float32",), log=lambda s: None, worker=("false",),
                     progress=fuzz.Progress(path, settings))
    assert again == whole
    with pytest.raises(ValueError, match=r"progress=.*belongs to the run"):
        fuzz.Progress(path, {**settings, "jaxlib": "0.0.1"})
    with pytest.raises(ValueError, match=r"progress: a Progress of the run"):
        fuzz.run(4, seed=2, dtypes=("float32",), worker=fast,
                 progress=fuzz.Progress(path, settings))
    report = tmp_path / "report.md"
    report.write_text("# Formulation fuzz\n")
    with pytest.raises(ValueError, match=r"progress='.*report.md': line 1 is '# Formulation"):
        fuzz.Progress(report, settings)
    assert report.read_text() == "# Formulation fuzz\n"


@pytest.mark.slow
def test_ctrl_c_in_a_terminal_records_no_failure(tmp_path):
    """Ctrl-C reaches the whole foreground process group; the children, in sessions of their
    own, are stopped by the run instead of dying mid-check, so nothing is recorded as an
    abort and a resumed run has no false failures."""
    import os
    import signal

    path = tmp_path / "progress.jsonl"
    # Python raises KeyboardInterrupt on SIGINT only where SIGINT was not ignored when it
    # started, as it is in jobs a non-interactive shell puts in the background.
    script = (f"import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
              f"from jaxconv.bench import fuzz; fuzz.run(6, seed=1, "
              f"dtypes=('float32',), jobs=2, worker=(sys.executable, "
              f"{str(HERE / 'fuzz_abort_worker.py')!r}, 'hang', {str(tmp_path)!r}), "
              f"progress=fuzz.Progress("
              f"{str(path)!r}, fuzz.settings(6, 1, False, ['float32'])))")
    process = subprocess.Popen([sys.executable, "-c", script], start_new_session=True,
                               stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while (not path.exists() or len(path.read_text().splitlines()) < 5) and \
            time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(path.read_text().splitlines()) == 5, "the children did not reach their hang"
    os.killpg(process.pid, signal.SIGINT)
    assert process.wait(timeout=60) != 0
    assert b"KeyboardInterrupt" in process.stderr.read()
    entries = [json.loads(line) for line in path.read_text().splitlines()[1:]]
    assert len(entries) == 4 and not any(e["problem"] for e in entries), entries
    alive = subprocess.run(["pgrep", "-f", f"hang {tmp_path}"], capture_output=True)
    assert not alive.stdout.strip(), "a hung child outlived the interrupted run"


def test_impls_restricts_the_checks_to_the_named_formulations_on_the_same_cases():
    """``--impls`` checks only the named formulations, on the same cases as a full run of the
    seed (so a formulation fuzzed alone sees the configurations the others saw), names them in
    the run's settings (a progress file of a full run cannot resume a restricted one) and in
    the report, and refuses a name that is no formulation."""
    every = list(fuzz.cases(8, seed=5))
    only = list(fuzz.cases(8, seed=5, impls=["xla", "subpixel"]))
    assert [c for c, _ in only] == [c for c, _ in every]
    for (_, claimed), (_, full) in zip(only, every):
        assert claimed == ["xla", *(["subpixel"] if "subpixel" in full else [])]
    assert fuzz.settings(8, 5, False, ["float32"], ["xla"])["impls"] == ["xla"]
    assert "impls" not in fuzz.settings(8, 5, False, ["float32"])
    # a rebuilt native library is another run: its progress file cannot resume this one
    assert fuzz.settings(8, 5, False, ["float32"])["native"] == native.library_digest()
    text = fuzz.report([], 0, 8, 5, 1.0, only, ["float32"], impls=["xla", "subpixel"])
    assert "Formulations checked: xla, subpixel" in text and "What `auto` chose" not in text
    with pytest.raises(SystemExit):
        fuzz.main(["1", "--impls", "nonesuch"])


def test_large_cases_have_larger_maps_and_are_a_run_of_their_own():
    """``large`` cases put 8-24 positions past the kernel's window on each side of a 1-D or
    2-D map (4-8 in 3-D), where plain cases put 0-6, so dense convs reach the sizes the
    ``onednn`` policy rows take; a progress file of one kind cannot resume the other."""
    for case, _ in fuzz.cases(20, seed=3, large=True):
        rank = len(case.kernel_shape) - 2
        dilation = case.kwargs.get("kernel_dilation", [1] * rank)
        reach = [(k - 1) * d + 1 for k, d in zip(case.kernel_shape[:-2], dilation)]
        low, high = (8, 24) if rank < 3 else (4, 8)
        assert all(low <= n - r <= high for n, r in zip(case.x_shape[1:-1], reach)), case
    assert fuzz.settings(5, 3, False, ["float32"], large=True)["large"] is True
    assert "large" not in fuzz.settings(5, 3, False, ["float32"])
    assert fuzz.report([], 0, 5, 3, 1.0, wide=True, large=True).startswith(
        "# Formulation fuzz: 5 wide large cases, seed 3")


def test_pointwise_cases_are_wide_1x1s_on_larger_maps_and_a_run_of_their_own():
    """``pointwise`` cases are 1x1 convs only, of up to 255 channels, on 1-D and 2-D maps of
    13-41 positions per side, so that 2-D ones reach the ``onednn`` 1x1 row's 14x14 and 28x28
    thresholds; plain cases of the same seed stay as they were; a progress file of one kind
    cannot resume the other, and the report's title says which."""
    found = [case for case, _ in fuzz.cases(40, seed=14, pointwise=True)]
    assert all(case.kind == "pointwise" for case in found)
    assert all(set(case.kernel_shape[:-2]) == {1} for case in found)
    assert max(max(c.x_shape[-1], c.kernel_shape[-1]) for c in found) > 128
    for case in found:
        if len(case.x_shape) < 5:
            assert all(13 <= n <= 41 for n in case.x_shape[1:-1]), case
    assert any(len(c.x_shape) == 4 and c.x_shape[1] * c.x_shape[2] >= 784 for c in found)
    plain = [case.kind for case, _ in fuzz.cases(40, seed=14)]
    assert plain != ["pointwise"] * 40
    assert fuzz.settings(5, 14, False, ["float32"], pointwise=True)["pointwise"] is True
    assert "pointwise" not in fuzz.settings(5, 14, False, ["float32"])
    assert fuzz.report([], 0, 5, 14, 1.0, pointwise=True).startswith(
        "# Formulation fuzz: 5 pointwise cases, seed 14")
