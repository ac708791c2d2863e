"""A collection's report reads the collection's newest answers, however many newer answers other collections have.

Before answer_collections (migration 0002) the report read the newest RAG_SCORING__REPORT_MAX_ANSWERS answers of
all collections and filtered them afterwards: here it found none of the collection's answers, and said `truncated`.
"""

from __future__ import annotations

import csv
import io
import uuid

from tests.support.answers import new_answer


async def test_answers_of_other_collections_do_not_push_the_collections_own_out_of_its_report(
    client, services, collection
):
    limit = 100  # the least RAG_SCORING__REPORT_MAX_ANSWERS allows
    mine = [await services.answers.save(new_answer(f"mine {i}", collections=(collection,))) for i in range(3)]
    crowd = f"crowd-{uuid.uuid4().hex[:8]}"
    assert (await client.post("/v1/collections", json={"name": crowd})).status_code == 201
    for i in range(limit + 20):
        await services.answers.save(new_answer(f"other {i}", collections=(crowd,)))

    cfg = services.settings.scoring
    saved, cfg.report_max_answers = cfg.report_max_answers, limit
    try:
        report = (await client.get("/v1/reports/groundedness", params={"collection": collection})).json()
        export = await client.get("/v1/reports/groundedness", params={"collection": collection, "format": "csv"})
        crowded = (await client.get("/v1/reports/groundedness", params={"collection": crowd})).json()
    finally:
        cfg.report_max_answers = saved
    assert (report["count"], report["unscored"], report["truncated"]) == (3, 3, False), report
    assert sorted(r["answer_id"] for r in csv.DictReader(io.StringIO(export.text))) == sorted(mine)
    # The other collection really has more answers than a report reads: that one is truncated.
    assert (crowded["count"], crowded["truncated"]) == (limit, True)
