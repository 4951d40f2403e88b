"""Policy versions are tied to the rows they version: a fingerprint of each version's
`CONV_POLICIES` and `TRANSPOSE_POLICIES` rows recorded here, so a changed row without a new
version fails, and an old version's rows stay as they were (a study pinned to it runs them
under later code)."""

import dataclasses
import hashlib
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
}


def rows(table):
    """What a row decides: backend, shape class, impl and the qualified name of its `when`."""
    return [[row.backend, row.shape_class, row.impl,
             None if row.when is None else row.when.__qualname__] for row in table]


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
    (only,) = TRANSPOSE_POLICY
    assert fingerprint(transpose=(dataclasses.replace(only, impl="xla"),)) != fingerprint()
    # a reordering changes which row wins, so it changes the fingerprint too
    assert fingerprint(conv=(*rest, first)) != fingerprint()


def test_the_reason_text_is_not_part_of_the_fingerprint():
    first, *rest = policy.CONV_POLICY
    reworded = dataclasses.replace(first, reason="reworded", fuzzed="")
    assert fingerprint(conv=(reworded, *rest)) == fingerprint()
