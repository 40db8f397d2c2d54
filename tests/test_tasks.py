"""Task fractalization (camelid.node.tasks, task_outline): the outline parser, the tree a task grows over a job
service, the reward cap, failures in place, cancellation, and the CLI's drawing of the tree.

The TaskService runs here over a scripted job service with JobService's public face (submit, job_info, watch,
cancel), whose jobs verify or fail as each test says; the real job network runs in
tests/functional/test_tasks.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
from collections.abc import AsyncIterator, Callable

import pytest

from camelid.cli.task_progress import TaskProgress, tree_lines
from camelid.node.task_outline import leaf_prompt, outline_prompt, read_outline
from camelid.node.tasks import MAX_TASK_JOBS, TaskParams, TaskService, subtree_jobs

REWARD = 1000
MODEL = b"\x11" * 32


# -- the outline parser ------------------------------------------------------------------------------------


def test_parser_reads_the_lists_small_models_write():
    output = (  # after the prompt's "1."
        " **Users**: sign up\n"
        "   with an e-mail address\n"  # a continuation line
        "2) Products\n"
        "\n"
        "   - Orders\n"
        "Step 4: Payments.\n"
        "(5) users: sign up\n"  # a duplicate, in another case
        "6. Build a shop\n"  # the task itself
        "7: Ship\x07ping\n"
        "Task: Make a cup of coffee\n"  # the model invents the next example: the list is over
        "1. Grind the beans\n"
    )
    assert read_outline(output, 8, "Build a shop") == ["Users: sign up", "Products", "Orders", "Payments", "Shipping"]
    assert read_outline(output, 2, "Build a shop") == ["Users: sign up", "Products"]


def test_an_outline_without_a_list_makes_a_leaf():
    assert read_outline("", 3, "goal") == []
    assert read_outline(" 42\n\x01\ufffd 7\n--\n3. a1\n-\n", 3, "goal") == []  # gibberish: no word in any item
    assert read_outline(" Goal\n2. GOAL", 3, "goal") == []  # the task repeated is no breakdown


def test_a_long_subtask_is_cut():
    (item,) = read_outline(" " + "a" * 1000, 3, "goal")
    assert len(item) == 200


def test_prompts_say_where_the_node_stands():
    root = outline_prompt("Build a shop", [], 3)
    assert root.startswith("Break each task into at most 3 smaller subtasks, as a numbered list.\n\nTask: Make a cup")
    assert root.endswith("\nTask: Build a shop\nSubtasks:\n1.") and "Part of" not in root
    child = outline_prompt("Build a shop", ["Users", "Login"], 2)
    assert child.endswith("\nTask: Login\nPart of: Build a shop > Users\nSubtasks:\n1.")
    leaf = leaf_prompt("Build a shop", ["Users"])
    assert leaf == "Task: Users\nPart of: Build a shop\nHere is how to do it, in a few sentences:\n"


# -- the tree over a scripted job service ------------------------------------------------------------------


class ScriptedJobs:
    """JobService's public face; each job's outcome is `answer(prompt)`: (verdict, text), after a short delay."""

    def __init__(self, answer: Callable[[str], tuple[str, str]], delay: float = 0.01) -> None:
        self.answer = answer
        self.delay = delay
        self.prompts: dict[bytes, str] = {}
        self.records: dict[bytes, dict] = {}
        self.events: dict[bytes, list[asyncio.Event]] = {}
        self.running = 0
        self.most_running = 0

    async def submit(self, prompt, max_tokens, model_id, seed, temperature_milli, reward) -> bytes:
        assert (model_id, reward) == (MODEL, REWARD)
        job_id = len(self.prompts).to_bytes(32, "little")
        self.prompts[job_id] = prompt
        self.records[job_id] = {"jobid": job_id[::-1].hex(), "state": "created", "verdict": None, "text": None}
        asyncio.get_running_loop().create_task(self._compute(job_id))
        return job_id

    async def _compute(self, job_id: bytes) -> None:
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        await asyncio.sleep(self.delay)
        self.running -= 1
        record = self.records[job_id]
        if record["state"] == "cancelled":
            return
        verdict, text = self.answer(self.prompts[job_id])
        record.update(state="verified" if verdict == "verified" else "disputed", verdict=verdict, text=text)
        self._changed(job_id)

    def _changed(self, job_id: bytes) -> None:
        for event in self.events.get(job_id, []):
            event.set()

    def job_info(self, job_id: bytes) -> dict | None:
        return dict(self.records[job_id])

    @contextlib.asynccontextmanager
    async def watch(self, job_id: bytes) -> AsyncIterator[asyncio.Event]:
        event = asyncio.Event()
        self.events.setdefault(job_id, []).append(event)
        try:
            yield event
        finally:
            self.events[job_id].remove(event)

    def cancel(self, job_id: bytes) -> None:
        record = self.records[job_id]
        if record["verdict"] is not None:
            raise ValueError("already paid")
        record["state"] = "cancelled"
        self._changed(job_id)


def task_of(prompt: str) -> str:
    """The node's task: the prompt's last Task: line (an outline prompt's first is its example's)."""
    return re.findall(r"^Task: (.*)$", prompt, re.MULTILINE)[-1]


def lists_three(prompt: str) -> tuple[str, str]:
    """Outline jobs list three subtasks named after their parent; leaf jobs answer with their task."""
    task = task_of(prompt)
    if prompt.endswith("Subtasks:\n1."):
        return "verified", f" {task}/1\n2. {task}/2\n3. {task}/3\n"
    return "verified", f"done {task}"


async def run_task(jobs: ScriptedJobs, goal: str = "goal", **params) -> dict:
    service = TaskService(jobs)  # type: ignore[arg-type]
    options = {"depth": 2, "fanout": 3, "max_tokens": 16, "reward_per_job": REWARD, "model_id": MODEL} | params
    task_id = await service.submit(goal, TaskParams(**options))
    while (info := service.info(task_id))["state"] == "running":
        await asyncio.sleep(0.005)
    return info


def nodes(tree: dict) -> list[dict]:
    return [tree, *(node for child in tree["children"] for node in nodes(child))]


async def test_a_depth_2_tree_runs_each_level_in_parallel_and_reads_in_tree_order():
    jobs = ScriptedJobs(lists_three)
    info = await run_task(jobs)
    tree = nodes(info["tree"])
    assert [node["node"] for node in tree] == [
        "", "1", "1.1", "1.2", "1.3", "2", "2.1", "2.2", "2.3", "3", "3.1", "3.2", "3.3"
    ]  # fmt: skip
    assert all(node["state"] == "verified" and node["jobid"] for node in tree)
    assert info["jobs"] == 13 and info["reward_committed"] == 13 * REWARD and info["counts"] == {"verified": 13}
    assert jobs.most_running == 9  # the third level all at once
    document = info["document"]
    assert document.startswith("# goal\n\n## 1 goal/1\n\n### 1.1 goal/1/1\n\ndone goal/1/1\n\n### 1.2 goal/1/2")
    assert document.index("done goal/1/3") < document.index("## 2 goal/2") < document.index("done goal/3/3")
    assert "Part of: goal > goal/2\n" in jobs.prompts[bytes.fromhex(tree[6]["jobid"])[::-1]]


async def test_the_reward_cap_skips_what_it_cannot_cover():
    # 6 jobs: the root (1) gives the first child its worst case (1 + 3 = 4) and the second what is left (1), so
    # the second runs its outline but none of the subtasks it lists, and the third does not run.
    info = await run_task(ScriptedJobs(lists_three), max_total_reward=6 * REWARD + REWARD // 2)
    states = {node["node"]: node["state"] for node in nodes(info["tree"])}
    assert info["jobs"] == 6 and info["reward_committed"] <= info["max_total_reward"]
    assert states == {
        "": "verified", "1": "verified", "1.1": "verified", "1.2": "verified", "1.3": "verified",
        "2": "verified", "2.1": "skipped", "2.2": "skipped", "2.3": "skipped", "3": "skipped",
    }  # fmt: skip
    assert "[skipped: over the task's reward cap]" in info["document"]
    assert TaskParams(3, 8, 1, REWARD, MODEL).job_budget == MAX_TASK_JOBS  # 585 at worst: held to the limit
    assert subtree_jobs(2, 3) == 13


async def test_a_failed_node_shows_in_place_and_the_rest_goes_on():
    def second_fails(prompt: str) -> tuple[str, str]:
        if task_of(prompt) == "goal/2":
            return "failed: RASTiC rejected the output at position 3", "forged"
        return lists_three(prompt)

    info = await run_task(ScriptedJobs(second_fails))
    tree = nodes(info["tree"])
    failed = [node for node in tree if node["state"] != "verified"]
    assert [(n["node"], n["state"], n["children"]) for n in failed] == [("2", "failed", [])]
    assert failed[0]["error"].startswith("failed: RASTiC rejected")
    assert info["jobs"] == 10 and "## 2 goal/2\n\n[failed: failed: RASTiC rejected" in info["document"]
    assert "forged" not in info["document"] and "done goal/3/3" in info["document"]


async def test_no_list_makes_a_leaf_whose_outline_is_its_answer():
    info = await run_task(ScriptedJobs(lambda prompt: ("verified", "\x07 9\nno list here")), depth=3)
    assert info["jobs"] == 1 and info["tree"]["children"] == []
    assert info["document"] == "# goal\n\n\x07 9\nno list here\n"


async def test_cancel_stops_what_is_not_paid():
    jobs = ScriptedJobs(lists_three, delay=0.05)
    service = TaskService(jobs)  # type: ignore[arg-type]
    task_id = await service.submit("goal", TaskParams(2, 3, 16, REWARD, MODEL))
    while len(service.info(task_id)["tree"]["children"]) < 3:
        await asyncio.sleep(0.005)
    assert service.cancel(task_id) == 3  # the three children; the root is verified (paid) already
    while (info := service.info(task_id))["state"] == "running":
        await asyncio.sleep(0.005)
    assert info["state"] == "cancelled" and info["jobs"] == 4
    assert [child["state"] for child in info["tree"]["children"]] == ["cancelled"] * 3
    with pytest.raises(KeyError):
        service.cancel(b"\x00" * 16)


async def test_bad_parameters_are_named():
    with pytest.raises(ValueError, match="depth must be 0..3"):
        TaskParams(4, 3, 16, REWARD, MODEL)
    with pytest.raises(ValueError, match="fanout must be 1..8"):
        TaskParams(1, 0, 16, REWARD, MODEL)
    with pytest.raises(ValueError, match="max_total_reward must cover at least one job"):
        TaskParams(1, 3, 16, REWARD, MODEL, REWARD - 1)
    assert TaskParams(2, 3, 16, REWARD, MODEL).max_total_reward == 13 * REWARD  # default: the worst case
    with pytest.raises(ValueError, match="the goal is empty"):
        await TaskService(ScriptedJobs(lists_three)).submit("  \n", TaskParams(1, 3, 16, REWARD, MODEL))  # type: ignore[arg-type]


# -- the CLI's drawing -------------------------------------------------------------------------------------


def gettask(states: dict[str, str]) -> dict:
    def node(number: str, children: list[dict]) -> dict:
        return {"node": number, "task": f"task {number or 'root'}", "state": states[number], "children": children}

    tree = node("", [node("1", [node("1.1", []), node("1.2", [])]), node("2", [])])
    return {"taskid": "ab" * 16, "state": "running", "jobs": 3, "created": 100.0, "finished": None, "tree": tree}


def test_the_tree_is_drawn_with_its_branches():
    lines = list(tree_lines(gettask(dict.fromkeys(["", "1", "1.1", "1.2", "2"], "created"))["tree"]))
    assert lines == [
        "task root [created]",
        "├─ 1 task 1 [created]",
        "│  ├─ 1.1 task 1.1 [created]",
        "│  └─ 1.2 task 1.2 [created]",
        "└─ 2 task 2 [created]",
    ]


def test_off_a_terminal_each_change_is_one_line_and_on_one_the_tree_is_redrawn():
    first = dict.fromkeys(["", "1", "1.1", "1.2", "2"], "created")
    later = first | {"1.2": "verified"}
    plain = io.StringIO()
    progress = TaskProgress(plain, tty=False)
    progress.show(gettask(first))
    progress.show(gettask(later))
    lines = plain.getvalue().splitlines()
    assert len(lines) == 6 and lines[-1] == f"task {'ab' * 8} 1.2 task 1.2: verified"
    screen = io.StringIO()
    progress = TaskProgress(screen, tty=True, clock=lambda: 112.5)
    progress.show(gettask(first))
    progress.show(gettask(later))
    drawn = screen.getvalue()
    assert drawn.count("\x1b[6F\x1b[J") == 1  # the second drawing replaces the header and five nodes
    assert f"task {'ab' * 8}: running, 3 jobs, 12.5 s\n" in drawn and "└─ 1.2 task 1.2 [verified]" in drawn
