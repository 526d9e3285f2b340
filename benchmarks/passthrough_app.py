"""A per-event Faust passthrough agent: the baseline benchmarks/e2e.py and benchmarks/standing.py compare against.

    PASSTHROUGH_BOOTSTRAP=127.0.0.1:9092 PASSTHROUGH_APP_ID=pt PASSTHROUGH_SOURCE=in PASSTHROUGH_SINK=out \\
        python -m faust -A benchmarks.passthrough_app worker --without-web -l warn

Both topics must exist with 8 partitions: the embedded broker gives unknown topics 4. Faust's data folder goes to
PASSTHROUGH_DATA_DIR (the benchmarks pass their temporary folder), else to a new temporary folder, never the cwd.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import faust

PARTITIONS = 8

app = faust.App(
    os.environ["PASSTHROUGH_APP_ID"],
    broker=f"kafka://{os.environ['PASSTHROUGH_BOOTSTRAP']}",
    datadir=os.environ.get("PASSTHROUGH_DATA_DIR") or tempfile.mkdtemp(prefix="passthrough-"),
    broker_session_timeout=6,  # the embedded broker holds a new group's first join for half of this
    web_enabled=False,
    topic_partitions=PARTITIONS,
    value_serializer="raw",
)
source = app.topic(os.environ["PASSTHROUGH_SOURCE"], partitions=PARTITIONS)
sink = app.topic(os.environ["PASSTHROUGH_SINK"], partitions=PARTITIONS)


@app.agent(source)
async def passthrough(stream: Any) -> None:
    async for key, value in stream.items():
        await sink.send(key=key, value=value)
