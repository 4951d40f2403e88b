"""Policy versions are tied to the rows they version: a fingerprint of each version's
`CONV_POLICIES` and `TRANSPOSE_POLICIES` rows recorded here, so a changed row without a new
version fails, and an old version's rows stay as they were (a study pinned to it runs them
under later code)."""

import dataclasses
import hashlib
import itertools
import json

import pytest

from jaxconv import functional as F
from jaxconv.functional import policy
from jaxconv.functional.transpose import TRANSPOSE_POLICIES, TRANSPOSE_POLICY

#: The fingerprint (`fingerprint`) of both tables' rows under each policy version. Changing a
#: row's backend, shape class, impl or `when` needs a new `POLICY_VERSION` and its entry here;
#: the reason text and the fuzz note are not part of it.
RECORDED = {
    1: "b0e967c93c5df4ee12ec4e40d65891d1abbb2b18339e93b3d86048285140d2ba",
    2: "83636300df8ab24ee092ff6ec3abab2a6e27f535243754b22a1966dd64f4a15e",
    3: "d13580b92fb448016bc7f5f9f2abf18ee3bf1a34459692c91fa6f32596944d7a",
    # version 3's conv rows; BatchNorm's channel sums go native (`policy.native_batch_norm`)
    4: "d13580b92fb448016bc7f5f9f2abf18ee3bf1a34459692c91fa6f32596944d7a",
}


#: The thresholds each version's ``when`` functions and shape classes read, by name (a row's
#: fingerprint sees its ``when`` by name only): changing one changes picks, so it needs a new
#: version as a row change does, and an old version's must keep their values.
THRESHOLDS = {
    1: {"PATCHES_MAX_BYTES": 512 << 10, "NARROW_PATCH": 32},
    2: {"PATCHES_MAX_BYTES": 512 << 10, "NARROW_PATCH": 32, "ONEDNN_MIN_PIXELS": 49,
        "ONEDNN_DENSE_MIN_PIXELS": 196, "ONEDNN_DENSE_MAX_CHANNELS": 128},
    3: {"PATCHES_MAX_BYTES": 512 << 10, "NARROW_PATCH": 32, "ONEDNN_MIN_PIXELS": 49,
        "ONEDNN_DENSE_MIN_PIXELS": 196, "ONEDNN_DENSE_MAX_CHANNELS": 128,
        "ONEDNN_POINTWISE_MIN_PIXELS": 196, "ONEDNN_POINTWISE_WIDEN_MIN_PIXELS": 784,
        "ONEDNN_POINTWISE_MAX_CHANNELS": 128},
    4: {"PATCHES_MAX_BYTES": 512 << 10, "NARROW_PATCH": 32, "ONEDNN_MIN_PIXELS": 49,
        "ONEDNN_DENSE_MIN_PIXELS": 196, "ONEDNN_DENSE_MAX_CHANNELS": 128,
        "ONEDNN_POINTWISE_MIN_PIXELS": 196, "ONEDNN_POINTWISE_WIDEN_MIN_PIXELS": 784,
        "ONEDNN_POINTWISE_MAX_CHANNELS": 128, "NATIVE_BATCH_NORM_SINCE": 4},
}


def test_every_version_keeps_the_thresholds_its_rows_read():
    from jaxconv.functional import formulations

    assert set(THRESHOLDS) == set(RECORDED)
    for version, values in THRESHOLDS.items():
        for name, value in values.items():
            current = getattr(policy, name, None)
            current = getattr(formulations, name) if current is None else current
            assert current == value, f"{name} changed under policy version {version}"


def rows(table):
    """What a row decides: backend, shape class, impl, the qualified name of its `when`, and
    its dtypes where it names any."""
    return [[row.backend, row.shape_class, row.impl,
             None if row.when is None else row.when.__qualname__,
             *([list(row.dtypes)] if row.dtypes else [])] for row in table]


def fingerprint(conv=policy.CONV_POLICY, transpose=TRANSPOSE_POLICY) -> str:
    text = json.dumps({"conv": rows(conv), "conv_transpose": rows(transpose)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def test_the_rows_are_those_recorded_for_the_policy_version():
    assert policy.POLICY_VERSION in RECORDED, (
        f"POLICY_VERSION {policy.POLICY_VERSION} has no recorded fingerprint; record "
        f"{fingerprint()!r} for it in RECORDED")
    assert fingerprint() == RECORDED[policy.POLICY_VERSION], (
        "CONV_POLICY or TRANSPOSE_POLICY changed without a new POLICY_VERSION: raise it and "
        f"record {fingerprint()!r} for the new version in RECORDED")


def test_every_version_keeps_the_rows_recorded_for_it():
    assert set(policy.CONV_POLICIES) == set(TRANSPOSE_POLICIES) == set(RECORDED)
    for version, recorded in RECORDED.items():
        assert fingerprint(policy.CONV_POLICIES[version], TRANSPOSE_POLICIES[version]) == \
            recorded, f"the rows of policy version {version} changed"
    assert policy.CONV_POLICY is policy.CONV_POLICIES[policy.POLICY_VERSION]
    assert TRANSPOSE_POLICY is TRANSPOSE_POLICIES[policy.POLICY_VERSION]


def test_a_compilation_names_a_known_version_or_none():
    for bad in (0, -1, True, 1.0, "1"):
        with pytest.raises(ValueError, match=r"Compilation: policy_version="):
            F.Compilation(policy_version=bad)
    unknown = max(policy.CONV_POLICIES) + 1
    with pytest.raises(ValueError, match=rf"conv: Compilation\(policy_version={unknown}\) is "
                                         r"not a policy version of this jaxconv; expected one of"):
        F.plan((1, 8, 8, 4), (3, 3, 4, 4), compilation=F.Compilation(policy_version=unknown))
    plan = F.plan((1, 8, 8, 4), (3, 3, 4, 4), compilation=F.Compilation(policy_version=1))
    assert plan.spec.compilation.policy_version == 1


def test_every_deciding_field_of_a_row_changes_the_fingerprint():
    first, *rest = policy.CONV_POLICY
    changed = [dataclasses.replace(first, backend="gpu"),
               dataclasses.replace(first, shape_class="dense"),
               dataclasses.replace(first, impl="xla"),
               dataclasses.replace(first, when=policy.patch_bytes)]
    for row in changed:
        assert fingerprint(conv=(row, *rest)) != fingerprint()
    only, *others = TRANSPOSE_POLICY
    assert fingerprint(transpose=(dataclasses.replace(only, impl="xla"), *others)) != \
        fingerprint()
    assert fingerprint(transpose=(dataclasses.replace(only, dtypes=("bfloat16",)), *others)) \
        != fingerprint()
    # a reordering changes which row wins, so it changes the fingerprint too
    assert fingerprint(conv=(*rest, first)) != fingerprint()


def test_the_reason_text_is_not_part_of_the_fingerprint():
    first, *rest = policy.CONV_POLICY
    reworded = dataclasses.replace(first, reason="reworded", fuzzed="")
    assert fingerprint(conv=(reworded, *rest)) == fingerprint()


@pytest.mark.skipif(not __import__("jaxconv.tuning.native", fromlist=["x"]).available(),
                    reason="the onednn rows need the native extension")
def test_version_2_picks_onednn_where_it_measured_faster_and_version_1_never(monkeypatch):
    """On the CPU class it was measured on, version 2 sends depthwise and grouped convs on maps
    of 49+ output pixels, and dense and dense transposed ones on 196+ pixels with at most 128
    channels, to oneDNN, in float32; 1x1s, narrow stems, maps and widths outside the measured
    range and bfloat16 keep version 1's picks; a compilation pinned to version 1 never picks
    it."""
    import jax.numpy as jnp

    from jaxconv.tuning import machine

    monkeypatch.setattr(machine, "isa", lambda: "avx512")
    v1 = F.Compilation(policy_version=1)
    v2 = F.Compilation(policy_version=2)
    onednn = [((128, 14, 14, 96), (3, 3, 1, 96), dict(feature_group_count=96)),
              ((128, 7, 7, 64), (3, 3, 8, 64), dict(feature_group_count=8)),
              ((128, 14, 14, 32), (3, 3, 32, 32), {}),
              ((8, 8, 8, 8, 16), (3, 3, 3, 16, 16), {}),
              ((64, 16, 16, 64), (3, 3, 32, 64), dict(op="conv_transpose", strides=2))]
    for x, k, kw in onednn:
        plan = F.plan(x, k, **kw, compilation=v2)
        assert plan.impl == "onednn" and "onednn_policy_avx512.md" in plan.reason, (x, k)
        assert F.plan(x, k, **kw, compilation=v1).impl != "onednn", (x, k)
    kept = [((128, 14, 14, 24), (1, 1, 24, 96), {}),          # 1x1: matmul
            ((128, 28, 28, 1), (3, 3, 1, 24), {}),            # narrow stem: patches
            ((128, 7, 7, 32), (3, 3, 32, 32), {}),            # 49 pixels: canonical
            ((128, 10, 10, 32), (3, 3, 32, 32), {}),          # 100, not measured: canonical
            ((128, 14, 14, 256), (3, 3, 256, 256), {}),       # past the measured channels
            ((128, 6, 6, 96), (3, 3, 1, 96), dict(feature_group_count=96)),   # 36 pixels
            ((128, 14, 14, 1), (3, 3, 24, 1), dict(op="conv_transpose", strides=2))]  # narrow
    for x, k, kw in kept:
        assert F.plan(x, k, **kw, compilation=v2).impl == \
            F.plan(x, k, **kw, compilation=v1).impl, (x, k)
    bf16 = jnp.ones((8, 14, 14, 96), jnp.bfloat16)
    assert F.plan(bf16, (3, 3, 1, 96), feature_group_count=96, compilation=v2).impl == "shift"
    monkeypatch.setattr(machine, "isa", lambda: "avx2")      # not measured there
    assert F.plan(*onednn[0][:2], **onednn[0][2]).impl == "shift"


@pytest.mark.skipif(not __import__("jaxconv.tuning.native", fromlist=["x"]).available(),
                    reason="the onednn rows need the native extension")
def test_version_3_adds_the_1x1s_and_strided_dense_convs_it_measured_faster(monkeypatch):
    """Version 3 sends 2-D 1x1s of at most 128 channels to oneDNN where they keep or narrow the
    width onto 14x14 maps or more, and where they widen it from 28x28 maps onto 14x14 or more,
    and dense convs from 14x14 input maps onto 7x7 ones; other 1x1s, smaller maps and bfloat16
    keep version 2's picks, what version 2 sent to oneDNN still goes there, and version 2 keeps
    matmul for every 1x1."""
    import jax.numpy as jnp

    from jaxconv.tuning import machine

    monkeypatch.setattr(machine, "isa", lambda: "avx512")
    v2 = F.Compilation(policy_version=2)
    onednn = [((128, 28, 28, 64), (1, 1, 64, 16), {}),                # narrows, 784 pixels
              ((128, 14, 14, 128), (1, 1, 128, 48), {}),              # narrows, 196
              ((128, 14, 14, 96), (1, 1, 96, 96), {}),                # keeps the width
              ((128, 28, 28, 16), (1, 1, 16, 64), {}),                # widens, 784
              ((128, 28, 28, 64), (1, 1, 64, 128), dict(strides=2)),  # 784 input pixels
              ((128, 14, 14, 48), (3, 3, 48, 48), dict(strides=2))]   # 196 in, 49 out
    for x, k, kw in onednn:
        plan = F.plan(x, k, **kw)
        assert plan.impl == "onednn" and "onednn_policy_avx512.md" in plan.reason, (x, k)
        assert F.plan(x, k, **kw, compilation=v2).impl != "onednn", (x, k)
    kept = [((128, 14, 14, 24), (1, 1, 24, 96), {}),                  # widens on 196: matmul
            ((128, 7, 7, 64), (1, 1, 64, 16), {}),                    # 49 pixels
            ((128, 14, 14, 128), (1, 1, 128, 64), dict(strides=2)),   # onto 49 pixels
            ((128, 28, 28, 256), (1, 1, 256, 256), {}),               # past 128 channels
            ((128, 196, 64), (1, 64, 16), {}),                        # 1-D: not timed
            ((8, 14, 14, 14, 64), (1, 1, 1, 64, 16), {}),             # 3-D: not timed
            ((128, 7, 7, 48), (3, 3, 48, 48), {}),                    # 49 input pixels
            ((128, 14, 14, 48), (3, 3, 48, 48), dict(strides=3)),     # onto 25 pixels
            ((128, 14, 14, 48), (3, 3, 48, 48), dict(padding="VALID")),   # stride 1 onto 144
            ((128, 196, 48), (3, 48, 48), dict(strides=4)),           # 1-D: not timed
            ((128, 13, 13, 64), (1, 1, 64, 16), dict(padding=1))]     # a padded 1x1
    for x, k, kw in kept:
        assert F.plan(x, k, **kw).impl == F.plan(x, k, **kw, compilation=v2).impl != \
            "onednn", (x, k)
    padded = ((128, 13, 13, 32), (3, 3, 32, 32), dict(padding=2))    # 169 in, 225 out
    assert F.plan(*padded[:2], **padded[2]).impl == \
        F.plan(*padded[:2], **padded[2], compilation=v2).impl == "onednn"
    bf16 = jnp.ones((128, 28, 28, 64), jnp.bfloat16)
    assert F.plan(bf16, (1, 1, 64, 16)).impl == "matmul"
    monkeypatch.setattr(machine, "isa", lambda: "avx2")                # not measured there
    assert F.plan(*onednn[0][:2]).impl == "matmul"


def test_batch_norm_sums_natively_from_version_4_in_float32_on_avx512_with_the_extension(
        monkeypatch):
    """What `policy.native_batch_norm` decides is part of version 4's numbers: pinned here
    for every version, dtype, CPU class and extension state."""
    for isa, built, backend in itertools.product(("avx512", "avx2", "other"), (True, False),
                                                 ("cpu", "gpu")):
        monkeypatch.setattr(policy.machine, "isa", lambda isa=isa: isa)
        monkeypatch.setattr(policy.native, "available", lambda built=built: built)
        monkeypatch.setattr(policy.jax, "default_backend", lambda backend=backend: backend)
        for version in RECORDED:
            for dtype in ("float32", "bfloat16", "float16"):
                got = policy.native_batch_norm(F.Compilation(policy_version=version), dtype)
                expected = (version >= 4 and dtype == "float32" and isa == "avx512" and built
                            and backend == "cpu")
                assert got is expected, (isa, built, backend, version, dtype)
