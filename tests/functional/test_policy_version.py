"""`POLICY_VERSION` is tied to the rows it versions: a fingerprint of `CONV_POLICY` and
`TRANSPOSE_POLICY` recorded per version, so a changed row without a new version fails here."""

import dataclasses
import hashlib
import json

from jaxconv.functional import policy
from jaxconv.functional.transpose import TRANSPOSE_POLICY

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
