"""Embed the aggregator in your own asyncio program.

Starts three tiny participant services on 127.0.0.1 (free ports), then asks the
aggregator for a few workflows' statuses and prints them, and follows one until it
is over. Run it with:

    .venv/bin/python examples/embedding.py
"""

from __future__ import annotations

import asyncio
import json
import sys

from aiohttp import web

from aggregator import Settings, StatusAggregator

# What each participant knows: (workflow id, participant) -> state. Nothing else is shared.
KNOWN = {
    ("order-1", "payment"): "captured",
    ("order-1", "inventory"): "reserved",
    ("order-1", "shipping"): "in_transit",
    ("order-2", "payment"): "refunded",
    ("order-2", "inventory"): "out_of_stock",
    ("order-3", "payment"): "authorized",
}
DOMAIN: dict[str, dict[str, object]] = {
    "payment": {"amount": 4200, "currency": "EUR"},
    "inventory": {"items": [{"sku": "book-1", "quantity": 1}]},
    "shipping": {"carrier": "parcelco", "tracking_number": "PC-1"},
}


def participant_app(name: str) -> web.Application:
    async def query(request: web.Request) -> web.Response:
        workflow_id = request.match_info["workflow_id"]
        state = KNOWN.get((workflow_id, name))
        if state is None:
            return web.json_response({"title": "no record"}, status=404)
        return web.json_response(
            {
                "workflow_id": workflow_id,
                "state": state,
                "version": 1,
                "updated_at": "2026-01-01T10:00:00Z",
                **DOMAIN[name],
            }
        )

    app = web.Application()
    app.router.add_get("/{workflow_id}", query)
    return app


async def main() -> int:
    runners, urls = [], {}
    for name in ("payment", "inventory", "shipping"):
        runner = web.AppRunner(participant_app(name), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        urls[name] = f"http://127.0.0.1:{runner.addresses[0][1]}/{{workflow_id}}"

    settings = Settings(participants={name: {"url": url} for name, url in urls.items()})
    try:
        async with StatusAggregator(settings) as agg:
            one = await agg.status("order-1")
            print(json.dumps(one.model_dump(mode="json"), indent=2))
            for status in await agg.status_many(["order-1", "order-2", "order-3", "order-4"]):
                print(f"{status.workflow_id}: {status.status} (complete: {status.complete})")
            # Follow order-1 as it changes, until it is over: its parcel arrives meanwhile,
            # and the watch sees it when the cached parts expire (cache.ttl_ms).
            async for status in agg.watch("order-1"):
                print(f"watching order-1: {status.status}")
                KNOWN[("order-1", "shipping")] = "delivered"
    finally:
        for runner in runners:
            await runner.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
