"""Drives a workflows-server with the reference's own Python client (llama-agents-client).

Usage: python client_flow.py BASE_URL. Prints one line per check; exits non-zero on the
first failure. The Rust test `python_client.rs` runs it against a server it starts.
"""

import asyncio
import sys

from llama_agents.client import WorkflowClient
import httpx
from workflows.events import HumanResponseEvent, InputRequiredEvent, StartEvent


class Greet(StartEvent):
    name: str


class Vote(HumanResponseEvent):
    approve: bool


async def refused(call, status: int, text: str, what: str) -> None:
    """Checks that `call` fails with HTTP `status` and a body containing `text`."""
    try:
        await call
    except httpx.HTTPStatusError as e:
        check(
            e.response.status_code == status and text in str(e),
            f"{what}: {e.response.status_code} {e}",
        )
    else:
        raise AssertionError(f"{what}: accepted")


def check(condition, what):
    if not condition:
        raise AssertionError(what)
    print(f"ok: {what}")


async def main(base_url: str) -> None:
    client = WorkflowClient(base_url=base_url)

    health = await client.is_healthy()
    check(health.status == "healthy", "health")

    listed = await client.list_workflows()
    check("number" in listed.workflows, f"workflows listed: {listed.workflows}")

    schema = await client.get_workflow_schema("greet")
    check(schema.start["title"] == "Greet", "start schema")
    graph = await client.get_workflow_graph("number")
    check(any(n.id == "ask" for n in graph.graph.nodes), "graph validates as WorkflowGraph")
    events = await client.get_workflow_events_schema("number")
    check(len(events.events) >= 4, "event schemas")

    # The human-in-the-loop round trip of the guide, through the client's own calls.
    handler = await client.run_workflow_nowait("number")
    check(handler.status == "running", f"started {handler.handler_id}")
    stream = client.get_workflow_events(handler.handler_id)
    prompt = None
    async for envelope in stream:
        event = envelope.load_event([InputRequiredEvent, HumanResponseEvent])
        if isinstance(event, InputRequiredEvent):
            prompt = event
            break
    check(prompt is not None and prompt.prefix == "Enter a number: ", "prompt read from the SSE stream")
    # Built-in events load without a registry: their qualified names are importable.
    check(
        envelope.qualified_name == "workflows.events.InputRequiredEvent"
        and isinstance(envelope.load_event(), InputRequiredEvent),
        "a built-in event loads by its qualified name",
    )
    # An event type the workflow does not take is refused, as the reference refuses it.
    await refused(
        client.send_event(handler.handler_id, Vote(response="", approve=True)),
        400,
        "Invalid event type: Vote. Expected one of ",
        "an undeclared event type is a 400 naming what the workflow takes",
    )
    check(isinstance(stream.last_sequence, int), f"stream position {stream.last_sequence}")
    sent = await client.send_event(handler.handler_id, HumanResponseEvent(response="42"))
    check(sent.status == "sent", "answer sent")
    done = await client.wait_for_handler(handler.handler_id, timeout=30, poll_interval=0.05)
    check(done.status == "completed", "run completed")
    check(done.result is not None and done.result.value == {"result": "42"}, f"result {done.result}")

    for fetched in [await client.get_handler(handler.handler_id), await client.get_result(handler.handler_id)]:
        check(
            fetched.status == "completed" and fetched.result.value == {"result": "42"},
            f"get_handler / get_result {fetched.handler_id}",
        )

    # Resume the stream from a position: the rest is there, ending with the stop event.
    rest = client.get_workflow_events(handler.handler_id, after_sequence=stream.last_sequence)
    types = [e.type async for e in rest]
    check(types == ["StopEvent"], f"stream resumed after the prompt: {types}")

    # A start event of the workflow's own, waiting for the result.
    greeted = await client.run_workflow("greet", start_event=Greet(name="Ada"))
    check(greeted.status == "completed", "run_workflow waits")
    check(greeted.result.value == {"greeting": "hello Ada"}, f"custom stop event {greeted.result}")
    check("StopEvent" in (greeted.result.types or []), "custom stop event typed as a StopEvent")

    # Listing, filtering, cancelling and purging.
    waiting = await client.run_workflow_nowait("number")
    running = await client.get_handlers(status=["running"])
    check([h.handler_id for h in running.handlers] == [waiting.handler_id], "filter by status")
    cancelled = await client.cancel_handler(waiting.handler_id)
    check(cancelled.status == "cancelled", "cancel")
    # (GET /handlers/{id} answers a cancelled run with 500, as the reference does, which the
    # client raises for; the list shows it.)
    after = await client.get_handlers(status=["cancelled"])
    check([h.handler_id for h in after.handlers] == [waiting.handler_id], "cancelled handler listed")
    purged = await client.cancel_handler(waiting.handler_id, purge=True)
    check(purged.status == "deleted", "purge")
    completed = await client.get_handlers(status=["completed"], workflow_name=["number"])
    check([h.handler_id for h in completed.handlers] == [handler.handler_id], "filter by status and name")

    # A failed run: the step's own message, and a last event that says what failed and how.
    await refused(client.run_workflow("broken"), 500, '"error":"boom"', "a failed run is a 500 with its handler")
    failed = await client.get_handlers(status=["failed"], workflow_name=["broken"])
    check([h.error for h in failed.handlers] == ["boom"], "the failed run's error is the step's own message")
    last = [e async for e in client.get_workflow_events(failed.handlers[0].handler_id)][-1]
    check(last.type == "WorkflowFailedEvent" and "StopEvent" in (last.types or []), f"failure event {last.type}")
    check(
        last.value["step_name"] == "boom"
        and last.value["exception"] == {"exception_type": "alloc::string.String", "exception_message": "boom"}
        and last.value["attempts"] == 1
        and last.value["elapsed_seconds"] >= 0,
        f"failure event value {last.value}",
    )

    # Errors surface as the client's HTTP errors.
    try:
        await client.send_event(handler.handler_id, HumanResponseEvent(response="late"))
    except Exception as e:  # httpx.HTTPStatusError
        check("409" in str(e), "an event for a finished run is refused with 409")
    else:
        raise AssertionError("an event for a finished run was accepted")

    await refused(client.get_handler("nope"), 404, "Handler not found", "an unknown handler is a 404")
    await refused(
        client.get_workflow_events_schema("nope"),
        404,
        "Workflow 'nope' not found",
        "an unknown workflow's events are a 404",
    )
    print("all client checks passed")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
