"""Drives a workflows-server that needs a bearer token with the reference's Python client.

Usage: python token_flow.py BASE_URL TOKEN. The token goes in the headers of the httpx client
handed to `WorkflowClient`; without it every call is refused with 401. The Rust test
`access.rs` runs it against a server it starts.
"""

import asyncio
import sys

import httpx
from llama_agents.client import WorkflowClient
from workflows.events import HumanResponseEvent, InputRequiredEvent


def check(condition, what):
    if not condition:
        raise AssertionError(what)
    print(f"ok: {what}")


async def main(base: str, token: str) -> None:
    anonymous = WorkflowClient(base_url=base)
    try:
        await anonymous.list_workflows()
    except httpx.HTTPStatusError as e:
        check(e.response.status_code == 401, f"no token: {e.response.status_code}")
    else:
        raise AssertionError("no token: accepted")

    http = httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"})
    client = WorkflowClient(httpx_client=http)
    names = await client.list_workflows()
    check("number" in names.workflows, f"workflows listed: {names.workflows}")
    started = await client.run_workflow_nowait("number")
    handler_id = started.handler_id
    async for envelope in client.get_workflow_events(handler_id):
        if isinstance(envelope.load_event([InputRequiredEvent]), InputRequiredEvent):
            await client.send_event(handler_id, HumanResponseEvent(response="42"))
            break
    done = await client.wait_for_handler(handler_id, timeout=30, poll_interval=0.05)
    check(done.status == "completed", f"the run completed: {done.status}")
    check(done.result.value == {"result": "42"}, f"its result: {done.result}")
    await http.aclose()
    print("all token checks passed")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
