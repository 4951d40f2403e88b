"""Compile options of the engine's step: resolved from the committed per-class table, recorded,
and a resume under others refused."""

import pathlib

import pytest

from jaxconv.train import hosts, options
from jaxconv.tuning import compile_table

ROOT = pathlib.Path(__file__).resolve().parents[2]


def machine(backend="cpu", isa="avx2", cores=2, jaxlib="0.10"):
    return options.MachineClass(backend, isa, cores, jaxlib)


@pytest.fixture
def no_timing(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a timing decided the compile options")

    monkeypatch.setattr(options, "time_step", refuse)


@pytest.mark.parametrize(("cls", "expected"), [
    (machine(), "tuned"), (machine(cores=64), "tuned"), (machine(isa="avx512"), "tuned"),
    (machine(isa="other"), "default"), (machine(jaxlib="0.9"), "default"),
    (machine(backend="gpu"), "default")])
def test_auto_resolves_from_the_table_by_machine_class(cls, expected, no_timing):
    name, reason = options.resolve("auto", cls)
    assert name == expected
    assert str(cls) in reason
    row = compile_table.lookup(cls.backend, cls.isa, cls.jaxlib, cls.cores)
    assert (row.reason in reason) if row else (compile_table.UNMEASURED in reason)


def test_every_row_cites_a_committed_results_file():
    for row in compile_table.ROWS:
        cited = row.reason.split(" ")[0]
        assert cited.startswith("experiments/results/") and (ROOT / cited).is_file(), row
        assert row.option_set in ("default", "tuned")


def test_an_explicit_request_is_kept_where_the_set_exists(no_timing):
    assert options.resolve("default", machine()) == ("default", "asked for")
    assert options.resolve("tuned", machine()) == ("tuned", "asked for")
    name, reason = options.resolve("tuned", machine(backend="gpu"))
    assert name == "default" and "asked for 'tuned'" in reason


def test_unknown_request_names_the_key_and_the_choices():
    with pytest.raises(ValueError, match=r"train.compile_options: 'fast' is not one of auto, "
                                         r"default, tuned"):
        options.resolve("fast")


def test_choices_record_the_set_the_flags_and_autotuning(monkeypatch):
    flags = ("--xla_force_host_platform_device_count=1 "
             "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution")
    monkeypatch.setenv("XLA_FLAGS", flags)
    monkeypatch.setenv("JAXCONV_AUTOTUNE", "1")
    record = options.choices("auto", machine())
    assert record["requested"] == "auto" and record["option_set"] == "tuned"
    assert record["compiler_options"] == options.option_sets("cpu")["tuned"]
    assert record["xla_flags"] == flags and record["ynnpack_flag"] == "-individual_convolution"
    assert record["autotune"] is True and record["machine_class"] == str(machine())


def test_a_resume_under_other_choices_names_both(monkeypatch):
    monkeypatch.delenv("JAXCONV_AUTOTUNE", raising=False)
    tuned, default = options.choices("tuned", machine()), options.choices("default", machine())
    options.check_resume(tuned, dict(tuned, reason="another reason"), "run")
    options.check_resume(None, tuned, "run")        # a checkpoint from before records
    with pytest.raises(ValueError, match=r"run: this run was checkpointed under option set "
                                         r"tuned .* would resume under option set default"):
        options.check_resume(tuned, default, "run")
    with pytest.raises(ValueError, match=r"differs in option_set"):
        options.check_resume({"option_set": "default"}, tuned, "run")   # an older checkpoint
    with pytest.raises(ValueError, match=r"differs in autotune"):
        options.check_resume(tuned, dict(tuned, autotune=True), "run")
    with pytest.raises(ValueError, match=r"differs in ynnpack_flag"):
        options.check_resume(tuned, dict(tuned, ynnpack_flag="-individual_dot"), "run")
    with pytest.raises(ValueError, match=r"formulation policy version 1.* and .* version 2.* "
                                         r"\(differs in policy_version\)"):
        options.check_resume(dict(tuned, policy_version=1), dict(tuned, policy_version=2),
                             "run")
    # a flag that does not change the numbers, such as a forced device count, may differ
    options.check_resume(tuned, dict(tuned, xla_flags="--xla_force_host_platform_device_count=1"),
                         "run")


def test_every_process_takes_process_0s_option_set(monkeypatch):
    """Processes of a multi-host run on machines of other classes still compile one program."""
    if list(options.option_sets()) != ["default", "tuned"]:
        pytest.skip("one option set on this backend and jaxlib: nothing to disagree on")
    mine = options.choices("tuned")
    assert options.agreed(mine) == mine
    monkeypatch.setattr(hosts, "from_process_0", lambda value: 0)   # process 0 said default
    agreed = options.agreed(mine)
    assert agreed["option_set"] == "default" and agreed["compiler_options"] == {}
    assert agreed["reason"].startswith("process 0's choice")


def test_a_resume_with_or_without_the_native_extension_than_before_is_refused():
    """Policy version 2 picks oneDNN where the extension runs, so a run checkpointed with it
    must not resume without it (or under another oneDNN), and the message says so."""
    with_it = {"option_set": "default", "policy_version": 2,
               "native": {"available": True, "onednn": "3.2.0"}}
    without = {**with_it, "native": {"available": False, "onednn": None}}
    options.check_resume(with_it, dict(with_it), "run")
    with pytest.raises(ValueError, match=r"native extension oneDNN 3.2.0 .* native extension "
                                         r"absent \(differs in native\)"):
        options.check_resume(with_it, without, "run")
    options.check_resume({k: v for k, v in with_it.items() if k != "native"}, without, "run")


def test_a_resume_under_the_other_batch_norm_sums_is_refused():
    """Policy version 4 sums BatchNorm's channels natively on AVX-512 CPUs with the extension
    and with lax elsewhere: a run checkpointed one way must not resume the other (another CPU
    class with the same extension and version), and older records without the key resume."""
    native_sums = {"option_set": "default", "policy_version": 4,
                   "native": {"available": True, "onednn": "3.2.0"},
                   "batch_norm": "native channel sums"}
    options.check_resume(native_sums, dict(native_sums), "run")
    with pytest.raises(ValueError, match=r"BatchNorm sums native channel sums, .* BatchNorm "
                                         r"sums lax, .*\(differs in batch_norm\)"):
        options.check_resume(native_sums, {**native_sums, "batch_norm": "lax"}, "run")
    options.check_resume({k: v for k, v in native_sums.items() if k != "batch_norm"},
                         {**native_sums, "batch_norm": "lax"}, "run")
