"""Task fractalization (whitepaper 5.4): one goal, a tree of paid jobs computed in parallel.

A task's root runs an outline job; the subtasks its verified output lists (camelid.node.task_outline) each
become a child node, all submitted at once, and so on down to the task's depth, where the nodes run leaf jobs
that do their subtask. So each level adds one job's time, not one per subtask. Every node is an ordinary job
of this node's job service (escrowed, paid, RASTiC-verified as submitjob's are); this module uses only its
public face: submit, job_info, watch and cancel.

The reward cap is kept by reservation, in jobs: the task may run at most max_total_reward // reward_per_job
jobs (and MAX_TASK_JOBS). The root holds that budget; a node spawning children first hands each child, in list
order, the worst case of its subtree (every node below it listing `fanout` subtasks) out of what it holds, so
a child that would not fit is shown "skipped" rather than run, and no spend can pass the cap whatever the
outlines say. A node whose job fails (not verified, not delivered, not funded) is shown failed in place and
spawns nothing; its siblings go on. Tasks live in memory: a restart forgets them (the jobs themselves are in
the job journal and settle as usual).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from camelid.chain.errors import TxRejected
from camelid.node.job_outcome import failure, stopped_waiting
from camelid.node.jobs import DEFAULT_TIMELOCK
from camelid.node.task_outline import leaf_prompt, outline_prompt, read_outline
from camelid.wallet.errors import WalletError

if TYPE_CHECKING:
    from camelid.node.jobs import JobService

log = logging.getLogger(__name__)

MAX_DEPTH = 3
MAX_FANOUT = 8
MAX_TASK_JOBS = 100
"""Jobs one task runs at most, whatever its reward cap."""
MAX_KEPT_TASKS = 100
"""Finished tasks kept for gettask; the oldest go first."""
MAX_GOAL_CHARS = 1000
JOB_WAIT = DEFAULT_TIMELOCK + 60
"""Seconds a node waits for its job's verdict: the delivery deadline, plus time to verify."""

# A node's own states, besides the job states it shows while its job runs (created, accepted, ... verified).
PENDING, FAILED, CANCELLED, SKIPPED = "pending", "failed", "cancelled", "skipped"
VERIFIED = "verified"
FINAL = frozenset({VERIFIED, FAILED, CANCELLED, SKIPPED})


def subtree_jobs(levels_below: int, fanout: int) -> int:
    """Jobs a node's subtree runs at worst: itself and `fanout` children per node for `levels_below` levels."""
    return sum(fanout**level for level in range(levels_below + 1))


@dataclass(frozen=True)
class TaskParams:
    """What submittask was asked for; ValueError naming the problem for values out of range."""

    depth: int
    fanout: int
    max_tokens: int
    reward_per_job: int  # base units
    model_id: bytes
    max_total_reward: int = 0  # base units; 0: the worst case (every node listing `fanout` subtasks)

    def __post_init__(self) -> None:
        if not 0 <= self.depth <= MAX_DEPTH:
            raise ValueError(f"depth must be 0..{MAX_DEPTH}, got {self.depth}")
        if not 1 <= self.fanout <= MAX_FANOUT:
            raise ValueError(f"fanout must be 1..{MAX_FANOUT}, got {self.fanout}")
        if self.reward_per_job <= 0:
            raise ValueError("reward_per_job must be positive")
        if self.max_total_reward == 0:
            object.__setattr__(self, "max_total_reward", self.worst_case_jobs * self.reward_per_job)
        if self.max_total_reward < self.reward_per_job:
            raise ValueError("max_total_reward must cover at least one job (reward_per_job)")

    @property
    def worst_case_jobs(self) -> int:
        return min(subtree_jobs(self.depth, self.fanout), MAX_TASK_JOBS)

    @property
    def job_budget(self) -> int:
        """Jobs the task may run: what the cap pays for, at most the worst case (and MAX_TASK_JOBS)."""
        return min(self.max_total_reward // self.reward_per_job, self.worst_case_jobs)


@dataclass
class TaskNode:
    """One subtask and the job that computes it; `budget` is the jobs its subtree may still use, itself included."""

    path: tuple[int, ...]  # child numbers from the root: () is the root, (2, 1) is "2.1"
    title: str
    budget: int
    state: str = PENDING
    job_id: bytes | None = None
    verdict: str | None = None
    text: str | None = None
    error: str | None = None
    children: list[TaskNode] = field(default_factory=list)

    @property
    def label(self) -> str:
        return ".".join(map(str, self.path))

    def walk(self) -> list[TaskNode]:
        """This node and every node below it, in tree order."""
        return [self, *(node for child in self.children for node in child.walk())]

    def to_json(self) -> dict[str, Any]:
        return {
            "node": self.label,
            "task": self.title,
            "jobid": None if self.job_id is None else self.job_id[::-1].hex(),
            "state": self.state,
            "verdict": self.verdict,
            "text": self.text,
            "error": self.error,
            "children": [child.to_json() for child in self.children],
        }


@dataclass
class Task:
    task_id: bytes
    goal: str
    params: TaskParams
    root: TaskNode
    created: float = field(default_factory=time.time)
    finished: float | None = None
    cancelled: bool = False

    def document(self) -> str:
        """The tree's texts in tree order, one markdown heading per node; a node that failed says so in place."""
        parts: list[str] = []
        for node in self.root.walk():
            heading = "#" * (len(node.path) + 1)
            parts.append(f"{heading} {node.label} {node.title}" if node.path else f"{heading} {node.title}")
            if node.state == VERIFIED and not node.children:
                parts.append((node.text or "").strip())
            elif node.state != VERIFIED:
                parts.append(f"[{node.state}: {node.error or node.verdict or 'not computed'}]")
        return "\n\n".join(part for part in parts if part) + "\n"

    @property
    def state(self) -> str:
        return "running" if self.finished is None else CANCELLED if self.cancelled else "done"

    def to_json(self) -> dict[str, Any]:
        nodes = self.root.walk()
        jobs = sum(node.job_id is not None for node in nodes)
        return {
            "taskid": self.task_id.hex(),
            "goal": self.goal,
            "state": self.state,
            "depth": self.params.depth,
            "fanout": self.params.fanout,
            "max_tokens": self.params.max_tokens,
            "model": self.params.model_id.hex(),
            "reward_per_job": self.params.reward_per_job,
            "max_total_reward": self.params.max_total_reward,
            "jobs": jobs,
            "reward_committed": jobs * self.params.reward_per_job,
            "created": self.created,
            "finished": self.finished,
            "counts": {s: sum(n.state == s for n in nodes) for s in sorted({n.state for n in nodes})},
            "tree": self.root.to_json(),
            "document": None if self.finished is None else self.document(),
        }


class TaskService:
    """Runs fractal tasks on top of the job service; `await run()` in the node's TaskGroup."""

    def __init__(self, jobs: JobService) -> None:
        self._jobs = jobs
        self._tasks: dict[bytes, Task] = {}
        self._runners: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Idle until the node stops, then stop every task still running (their jobs stay in the job journal)."""
        try:
            await asyncio.Event().wait()
        finally:
            for runner in list(self._runners):
                runner.cancel()
            await asyncio.gather(*self._runners, return_exceptions=True)

    async def submit(self, goal: str, params: TaskParams) -> bytes:
        """submittask: submit the root's outline job now (so a wallet or input problem is the caller's error),
        then grow the tree in the background; the task id. ValueError, WalletError or TxRejected for bad input."""
        goal = " ".join(goal.split())
        if not goal:
            raise ValueError("the goal is empty")
        if len(goal) > MAX_GOAL_CHARS:
            raise ValueError(f"the goal is longer than {MAX_GOAL_CHARS} characters")
        task = Task(os.urandom(16), goal, params, TaskNode((), goal, params.job_budget))
        await self._submit(task, task.root)
        self._keep(task)
        runner = asyncio.create_task(self._grow(task), name=f"task-{task.task_id.hex()[:16]}")
        self._runners.add(runner)
        runner.add_done_callback(self._runners.discard)
        return task.task_id

    def info(self, task_id: bytes) -> dict[str, Any] | None:
        """gettask: the task, its tree and, once finished, its document."""
        task = self._tasks.get(task_id)
        return None if task is None else task.to_json()

    def list_tasks(self) -> list[dict[str, Any]]:
        return [{"taskid": t.task_id.hex(), "goal": t.goal, "state": t.state} for t in self._tasks.values()]

    def cancel(self, task_id: bytes) -> int:
        """canceltask: spawn nothing more and cancel every job of the task not yet paid; how many were cancelled.

        A paid job runs to its verdict (its reward is spent); a node not yet submitted never is."""
        task = self._tasks.get(task_id)
        if task is None:
            raise KeyError(task_id)
        task.cancelled = True
        cancelled = 0
        for node in task.root.walk():
            if node.job_id is None or node.state in FINAL:
                continue
            with contextlib.suppress(ValueError):  # paid already, or ended: it goes its way
                self._jobs.cancel(node.job_id)
                cancelled += 1
        return cancelled

    def _keep(self, task: Task) -> None:
        self._tasks[task.task_id] = task
        finished = [t for t in self._tasks.values() if t.finished is not None]
        for old in sorted(finished, key=lambda t: t.finished or 0)[: max(0, len(self._tasks) - MAX_KEPT_TASKS)]:
            del self._tasks[old.task_id]

    async def _grow(self, task: Task) -> None:
        try:
            await self._follow(task, task.root)
        finally:
            task.finished = time.time()
            jobs = sum(node.job_id is not None for node in task.root.walk())
            log.info("task %s %s: %d jobs", task.task_id.hex()[:16], task.state, jobs)

    async def _submit(self, task: Task, node: TaskNode) -> None:
        params, path = task.params, [n.title for n in self._ancestry(task, node)]
        above_depth = len(node.path) < params.depth
        prompt = outline_prompt(task.goal, path, params.fanout) if above_depth else leaf_prompt(task.goal, path)
        node.job_id = await self._jobs.submit(prompt, params.max_tokens, params.model_id, 0, 0, params.reward_per_job)
        node.state = "created"

    @staticmethod
    def _ancestry(task: Task, node: TaskNode) -> list[TaskNode]:
        """The nodes from the root's first child down to `node` (empty for the root)."""
        chain, current = [], task.root
        for number in node.path:
            current = current.children[number - 1]
            chain.append(current)
        return chain

    async def _run(self, task: Task, node: TaskNode) -> None:
        """Submit a child node's job and follow it; a failure stays in the node, never leaves it."""
        if task.cancelled:
            node.state = CANCELLED
            return
        try:
            await self._submit(task, node)
        except (ValueError, WalletError, TxRejected) as exc:
            node.state, node.error = FAILED, f"not submitted: {getattr(exc, 'message', exc)}"
            return
        if task.cancelled:  # canceltask ran while the escrow was being funded
            with contextlib.suppress(ValueError):
                self._jobs.cancel(node.job_id)  # type: ignore[arg-type]
        await self._follow(task, node)

    async def _follow(self, task: Task, node: TaskNode) -> None:
        try:
            info = await self._verdict(node)
        except Exception as exc:  # a bug here must cost one node, not the tree or the node
            log.exception("task %s node %r", task.task_id.hex()[:16], node.label)
            node.state, node.error = FAILED, f"internal error: {exc}"
            return
        if info is None:
            node.state, node.error = FAILED, f"no verdict within {JOB_WAIT} s"
            return
        why = failure(info)
        if why is not None:
            node.state, node.error = (CANCELLED if info["state"] == CANCELLED else FAILED), why
            return
        node.state, node.text = VERIFIED, str(info["text"])
        if len(node.path) < task.params.depth and not task.cancelled:
            await self._spawn(task, node, read_outline(node.text, task.params.fanout, node.title))

    async def _spawn(self, task: Task, node: TaskNode, subtasks: list[str]) -> None:
        """Hand each subtask its worst case out of the node's budget (the node's own job used one), then run
        them all at once. No subtasks: the node is a leaf, its outline its answer."""
        left = node.budget - 1
        worst = subtree_jobs(task.params.depth - len(node.path) - 1, task.params.fanout)
        for number, title in enumerate(subtasks, 1):
            share = min(worst, left)
            left -= share
            child = TaskNode((*node.path, number), title, share)
            if share == 0:
                child.state, child.error = SKIPPED, "over the task's reward cap"
            node.children.append(child)
        async with asyncio.TaskGroup() as group:
            for child in node.children:
                if child.state == PENDING:
                    group.create_task(self._run(task, child))

    async def _verdict(self, node: TaskNode) -> dict[str, Any] | None:
        """The job's getjob record once it has a verdict or has ended (None after JOB_WAIT), keeping the node's
        state and verdict current on every JobChanged."""
        assert node.job_id is not None
        deadline = time.monotonic() + JOB_WAIT
        async with self._jobs.watch(node.job_id) as changed:
            while True:
                changed.clear()
                info = self._jobs.job_info(node.job_id)
                if info is None:
                    return {"state": "expired", "verdict": "the job left the job pool before it ended"}
                node.state, node.verdict = info["state"], info.get("verdict")
                if stopped_waiting(info):
                    return info
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), left)
