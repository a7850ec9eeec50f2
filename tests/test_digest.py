"""Canonical JSON and call digests: the names of "this exact call" must never drift.

Histories, approvals and signatures recorded by earlier versions carry these digests; a
change in how they are spelled would make every recorded allow and signature stale.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tiergate.core import call_digest, canonical_json


# Named, not a lambda: hypothesis describes a lambda by parsing its source with `ast`, and
# that parse failed once in this suite with CPython 3.11.7's spurious "AST constructor
# recursion depth mismatch" SystemError (python/cpython#106905), unrelated to the test.
def _nested(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    _nested,
    max_leaves=12,
)


class TestCanonicalJson:
    @given(json_values)
    def test_spelled_as_sorted_compact_unescaped_json(self, value: Any) -> None:
        """The shared pre-built encoder writes exactly what json.dumps with these options does."""
        expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert canonical_json(value) == expected

    def test_key_order_does_not_matter(self) -> None:
        """Equal arguments in any order are the same call."""
        assert canonical_json({"b": 1, "a": [2, {"d": 3, "c": 4}]}) == canonical_json(
            {"a": [2, {"c": 4, "d": 3}], "b": 1}
        )


class TestCallDigest:
    def test_digests_recorded_by_earlier_versions_still_match(self) -> None:
        """Golden digests, computed before the encoder was shared, stay what they were."""
        refund = {"order_id": "ORD-5001", "amount_usd": "35.00", "reason_code": "damaged"}
        reply = {"ticket_id": "T-1001", "status": "resolved", "reply": 'Grüße — "done"\n\x01'}
        assert (
            call_digest("payments.issue_refund", refund)
            == "b836425254ce6eed692c2823081f9ded9f960d405c2e202520528418d25606cf"
        )
        assert (
            call_digest("crm.update_ticket", reply)
            == "386027166f8634e8869cba5a557e42515ae97c35cf801a35ee2be1267fb0b9f9"
        )

    def test_tool_name_is_part_of_the_call(self) -> None:
        """The same arguments to another tool are another call."""
        args = {"order_id": "ORD-5001"}
        assert call_digest("orders.get_status", args) != call_digest("orders.cancel", args)
