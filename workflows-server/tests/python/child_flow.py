"""Drives a run whose step runs two child workflows with the reference's Python client
(llama-agents-client): both children's prompts arrive on the parent's stream as plain input
requests, and answers sent to the parent's handler reach the child that waits for each.

Usage: python child_flow.py BASE_URL. The Rust test `python_client.rs` runs it against a
server that serves the `pair` workflow.
"""

import asyncio
import sys

from llama_agents.client import WorkflowClient
from workflows.events import HumanResponseEvent, InputRequiredEvent


def check(condition, what):
    if not condition:
        raise AssertionError(what)
    print(f"ok: {what}")


async def main(base_url: str) -> None:
    client = WorkflowClient(base_url=base_url)
    handler = await client.run_workflow_nowait("pair")
    prompts = []
    async for envelope in client.get_workflow_events(handler.handler_id):
        event = envelope.load_event([InputRequiredEvent, HumanResponseEvent])
        if isinstance(event, InputRequiredEvent):
            prompts.append(event.prefix)
            if len(prompts) == 2:
                break
    check(prompts == ["ann, approve?", "bob, approve?"], f"both children asked: {prompts}")
    # Answered in reverse order; each answer names the person its child waits for.
    for who, response in [("bob", "no"), ("ann", "yes")]:
        sent = await client.send_event(
            handler.handler_id, HumanResponseEvent(response=response, who=who)
        )
        check(sent.status == "sent", f"{who}'s answer sent to the parent")
    done = await client.wait_for_handler(handler.handler_id, timeout=30, poll_interval=0.05)
    check(done.status == "completed", "the parent completed")
    check(
        done.result is not None and done.result.value == {"result": ["ann: yes", "bob: no"]},
        f"each child got its own answer: {done.result}",
    )
    print("all child checks passed")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
