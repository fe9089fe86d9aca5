#!/usr/bin/env python3
"""One human-in-the-loop round trip over HTTP, timed, one run at a time.

Against a running server (ours, or llama-agents-server serving the same number workflow):
start a run with run-nowait, read its NDJSON stream to the prompt, answer it, read the stream
to the end. Prints the median and p90 of N round trips in milliseconds. The default client is
the standard library's; `--client aiohttp` uses aiohttp, as browsers' and the reference
client's keep-alive connections behave (that is where Nagle's algorithm costs 40 ms).

    cargo run -p workflows-server --release -- --bind 127.0.0.1:18080 --db /tmp/rt.db &
    python3 bench/server_roundtrip.py --url http://127.0.0.1:18080 --runs 50
"""

import argparse
import http.client
import json
import statistics
import time
import urllib.parse


def round_trip(host: str, port: int, workflow: str) -> float:
    start = time.perf_counter()
    control = http.client.HTTPConnection(host, port)
    control.request("POST", f"/workflows/{workflow}/run-nowait", body="{}",
                    headers={"Content-Type": "application/json"})
    handler = json.loads(control.getresponse().read())["handler_id"]
    stream = http.client.HTTPConnection(host, port)
    stream.request("GET", f"/events/{handler}?sse=false&after_sequence=-1")
    events = stream.getresponse()
    answered = False
    while True:
        line = events.readline()
        if not line:
            raise RuntimeError("the stream ended before the run did")
        if not line.strip():
            continue
        kind = json.loads(line).get("type", "")
        if kind == "InputRequiredEvent" and not answered:
            body = json.dumps({"event": {"type": "HumanResponseEvent", "value": {"response": "42"}}})
            control.request("POST", f"/events/{handler}", body=body,
                            headers={"Content-Type": "application/json"})
            reply = control.getresponse()
            reply.read()
            if reply.status != 200:
                raise RuntimeError(f"answer refused: {reply.status}")
            answered = True
        elif kind in ("StopEvent", "WorkflowFailedEvent", "WorkflowCancelledEvent",
                      "WorkflowTimedOutEvent") or kind.endswith("StopEvent"):
            break
    elapsed = time.perf_counter() - start
    stream.close()
    control.close()
    if not answered:
        raise RuntimeError("the run ended without asking")
    return elapsed * 1000


async def round_trip_aiohttp(session, base: str, workflow: str) -> float:
    start = time.perf_counter()
    async with session.post(f"{base}/workflows/{workflow}/run-nowait", json={}) as reply:
        handler = (await reply.json())["handler_id"]
    answered = False
    async with session.get(f"{base}/events/{handler}?sse=false&after_sequence=-1") as events:
        async for line in events.content:
            if not line.strip():
                continue
            kind = json.loads(line).get("type", "")
            if kind == "InputRequiredEvent" and not answered:
                event = {"event": {"type": "HumanResponseEvent", "value": {"response": "42"}}}
                async with session.post(f"{base}/events/{handler}", json=event) as reply:
                    await reply.read()
                    if reply.status != 200:
                        raise RuntimeError(f"answer refused: {reply.status}")
                answered = True
            elif kind.endswith("StopEvent") or kind in ("WorkflowFailedEvent",
                                                        "WorkflowCancelledEvent",
                                                        "WorkflowTimedOutEvent"):
                break
    if not answered:
        raise RuntimeError("the run ended without asking")
    return (time.perf_counter() - start) * 1000


def with_aiohttp(base: str, workflow: str, runs: int) -> list:
    import asyncio

    import aiohttp

    async def go():
        async with aiohttp.ClientSession() as session:
            await round_trip_aiohttp(session, base, workflow)  # warm-up
            return [await round_trip_aiohttp(session, base, workflow) for _ in range(runs)]

    return asyncio.run(go())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--workflow", default="number")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--client", choices=["stdlib", "aiohttp"], default="stdlib")
    args = parser.parse_args()
    url = urllib.parse.urlparse(args.url)
    if args.client == "aiohttp":
        times = sorted(with_aiohttp(args.url.rstrip("/"), args.workflow, args.runs))
    else:
        round_trip(url.hostname, url.port or 80, args.workflow)  # warm-up
        times = sorted(round_trip(url.hostname, url.port or 80, args.workflow)
                       for _ in range(args.runs))
    p90 = times[min(len(times) - 1, int(len(times) * 0.9))]
    print(json.dumps({"runs": args.runs, "median_ms": round(statistics.median(times), 2),
                      "p90_ms": round(p90, 2), "min_ms": round(times[0], 2),
                      "client": args.client}))


if __name__ == "__main__":
    main()
