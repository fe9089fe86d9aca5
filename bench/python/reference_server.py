#!/usr/bin/env python3
"""The reference server, llama-agents-server 0.8.0, serving the number workflow on SQLite:
the other side of `server_load --python` and `--compare` (bench/src/bin/server_load.rs).

It takes the flags server_load gives our binary (`--bind HOST:PORT`, `--db PATH`,
`--idle-release SECONDS|never`) and prints `listening on http://HOST:PORT` once its socket
listens, as ours does.

    bench/python/reference_server.sh --bind 127.0.0.1:0 --db /tmp/ref.db
"""

import argparse
import asyncio
import socket
import sys

import uvicorn
from llama_agents.server import SqliteWorkflowStore, WorkflowServer
from workflows import Workflow, step
from workflows.events import HumanResponseEvent, InputRequiredEvent, StartEvent, StopEvent


class NumberWorkflow(Workflow):
    """Asks for a number and ends with it, as the `number` workflow of workflows-server."""

    @step
    async def ask(self, ev: StartEvent) -> InputRequiredEvent:
        return InputRequiredEvent(prefix="Enter a number: ")

    @step
    async def answer(self, ev: HumanResponseEvent) -> StopEvent:
        return StopEvent(result=ev.response)


def seconds(text: str) -> float:
    if text == "never":
        return 10**9
    return float(text.rstrip("s"))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bind", default="127.0.0.1:0")
    parser.add_argument("--db", required=True)
    parser.add_argument("--idle-release", default="60")
    args = parser.parse_args()
    host, port = args.bind.rsplit(":", 1)

    server = WorkflowServer(
        workflow_store=SqliteWorkflowStore(args.db),
        idle_timeout=seconds(args.idle_release),
        sse_heartbeat_interval=None,
    )
    server.add_workflow("number", NumberWorkflow(timeout=None))

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, int(port)))
    sock.listen(4096)
    bound_host, bound_port = sock.getsockname()[:2]
    config = uvicorn.Config(server.app, log_level="warning", backlog=4096)
    print(f"listening on http://{bound_host}:{bound_port}", flush=True)
    await uvicorn.Server(config).serve(sockets=[sock])


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
