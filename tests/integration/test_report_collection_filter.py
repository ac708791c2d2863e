"""A collection's report reads the collection's newest answers, however many newer answers other collections have.

Before answer_collections (migration 0002) the report read the newest RAG_SCORING__REPORT_MAX_ANSWERS answers of
all collections and filtered them afterwards: here it found none of the collection's answers, and said `truncated`.
"""

from __future__ import annotations

import csv
import io

from tests.support.answers import new_answer
from tests.support.service import create_collection


async def test_answers_of_other_collections_do_not_push_the_collections_own_out_of_its_report(own_service):
    limit = 100  # the least RAG_SCORING__REPORT_MAX_ANSWERS allows
    # A service of its own with the smallest report window: the session's keeps the default.
    svc = await own_service({"scoring": {"report_max_answers": limit}})
    client, answers = svc.client, svc.services.answers
    collection = await create_collection(client, "mine")
    mine = [await answers.save(new_answer(f"mine {i}", collections=(collection,))) for i in range(3)]
    crowd = await create_collection(client, "crowd")
    for i in range(limit + 20):
        await answers.save(new_answer(f"other {i}", collections=(crowd,)))

    report = (await client.get("/v1/reports/groundedness", params={"collection": collection})).json()
    export = await client.get("/v1/reports/groundedness", params={"collection": collection, "format": "csv"})
    crowded = (await client.get("/v1/reports/groundedness", params={"collection": crowd})).json()
    assert (report["count"], report["unscored"], report["truncated"]) == (3, 3, False), report
    assert sorted(r["answer_id"] for r in csv.DictReader(io.StringIO(export.text))) == sorted(mine)
    # The other collection really has more answers than a report reads: that one is truncated.
    assert (crowded["count"], crowded["truncated"]) == (limit, True)
