"""Files in, files out, end to end: a real controller, real hosts and engines, `bxthre3 run --out`.

The image pipeline needs the engines' per-task file system (/in, /out); until the engines offer it
(`path_open` among the supported WASI imports) that test is skipped, saying so.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
import zmq

from bxthre3.client.connection import ControllerClient
from bxthre3.controller.server import Controller
from bxthre3.dag.yaml_loader import load_dag
from bxthre3.scheduler import SchedulerConfig
from bxthre3.wasm.abi import SUPPORTED_WASI_IMPORTS
from bxthre3.wire import protocol
from bxthre3.wire.addresses import Address
from bxthre3.wire.security import secure_client
from tests import image_reference as ref
from tests.conftest import (
    ENGINES,
    REPO,
    TEST_KEYS,
    WASM_MODULES,
    HostProcesses,
    RunningController,
    subprocess_env,
    wait_for,
    wait_for_hosts,
)

HAS_VFS = "path_open" in SUPPORTED_WASI_IMPORTS


def test_a_named_output_never_written_fails_its_reader_not_the_controller(
    controller: RunningController, client: ControllerClient, hosts: HostProcesses, tmp_path: Path
) -> None:
    path = tmp_path / "missing.yaml"
    path.write_text(yaml.safe_dump({"name": "missing", "tasks": [
        {"id": "init", "module": str(WASM_MODULES / "init.wasm"), "inputs": ["Bxthre3"]},
        {"id": "reader", "module": str(WASM_MODULES / "greet_1.wasm"), "depends_on": ["init"],
         "files": {"names/in.txt": "output_of_init/names.txt"}, "retries": 3},
        {"id": "after", "module": str(WASM_MODULES / "aggregate.wasm"), "depends_on": ["reader"],
         "inputs": ["output_of_reader"]},
        {"id": "sibling", "module": str(WASM_MODULES / "greet_2.wasm"), "depends_on": ["init"],
         "inputs": ["output_of_init"]},
    ]}, sort_keys=False))  # fmt: skip
    hosts.start(controller.address, "files-host")
    wait_for_hosts(client, 1)
    dag_id = client.submit(load_dag(path))
    assert client.wait(dag_id, timeout=30)["state"] == "failed"
    tasks = {t["task_id"]: t for t in client.results(dag_id)["tasks"]}
    reader = tasks["reader"]
    assert (reader["state"], reader["reason"], reader["attempts"]) == ("failed", "missing_input", 0)
    assert reader["error"] == (
        "input 'output_of_init/names.txt': task 'init' wrote no file 'names.txt' under /out (it wrote no files)"
    )
    assert tasks["after"]["state"] == "upstream_failed"
    assert (tasks["sibling"]["state"], tasks["sibling"]["output"]) == ("succeeded", b"Hola, Bxthre3!\n")
    assert tasks["init"]["files"] == []
    # The controller carries on.
    again = client.submit(load_dag(REPO / "dags" / "hello_fanout.yaml"))
    assert client.wait(again, timeout=30)["state"] == "succeeded"


class FakeHost:
    """A member that registers as a host and answers assignments with whatever files a test wants."""

    def __init__(self, controller: RunningController) -> None:
        self.sock = controller.context.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        secure_client(self.sock, TEST_KEYS)  # a member, so trusted to connect, not to tell the truth
        self.sock.connect(controller.address.endpoint)
        self.sock.send(protocol.encode(protocol.Register("liar", 1, 128, "linux-x86_64", "wasm3", key=b"k" * 32)))

    def answer(self, dag_id: str, files: dict[str, bytes], output: bytes = b"") -> None:
        """Wait for the next assignment (heartbeating meanwhile, or the host is declared dead), report success."""
        assign = None
        for _ in range(100):
            self.sock.send(protocol.encode(protocol.Heartbeat()))
            while assign is None and self.sock.poll(100):
                for msg in protocol.unbatch(protocol.decode(self.sock.recv())):
                    if isinstance(msg, protocol.Assign):
                        assign = msg
            if assign is not None:
                break
        assert assign is not None, "no assignment came"
        result = protocol.Result(dag_id, assign.task_id, assign.attempt, 0, output, b"", None, "", 0.01, files)
        self.sock.send(protocol.encode(result))

    def close(self) -> None:
        self.sock.close()


def one_task_dag(tmp_path: Path, retries: int) -> Path:
    path = tmp_path / "one.yaml"
    path.write_text(yaml.safe_dump({"name": "one", "tasks": [
        {"id": "t", "module": str(WASM_MODULES / "init.wasm"), "retries": retries},
    ]}))  # fmt: skip
    return path


def fetch_results(controller: RunningController, dag_id: str, out: Path) -> subprocess.CompletedProcess[str]:
    """`bxthre3 results DAG --out OUT` against `controller`, as a user would run it."""
    return subprocess.run(
        [sys.executable, "-m", "bxthre3", "results", dag_id, "--controller", str(controller.address),
         "--out", str(out)],
        capture_output=True, text=True, timeout=30, env=subprocess_env(),
    )  # fmt: skip


def test_a_host_reporting_impossible_files_fails_the_task_not_the_controller(
    controller: RunningController, client: ControllerClient, tmp_path: Path
) -> None:
    dag_id = client.submit(load_dag(one_task_dag(tmp_path, retries=1)))
    host = FakeHost(controller)
    try:
        host.answer(dag_id, {"../../etc/passwd": b"root"})
        host.answer(dag_id, {f"f{i}": b"" for i in range(1001)})
        # A frame whose files are not a map of bytes is malformed: dropped and counted.
        dropped = client.status()["controller"]["dropped_frames"]
        bad = protocol.Result(dag_id, "t", 9, 0, b"", b"", None, "", 0.0, {"x": "text"})  # type: ignore[dict-item]
        host.sock.send(protocol.encode(bad))
        wait_for(lambda: client.status()["controller"]["dropped_frames"] > dropped, 5, "the bad frame to be dropped")
        assert client.wait(dag_id, timeout=10)["state"] == "failed"
    finally:
        host.close()
    [task] = client.results(dag_id)["tasks"]
    assert [h["reason"] for h in task["history"]] == ["internal", "output_limit"]
    assert task["history"][0]["error"].startswith("the host reported an impossible output: output file name")
    assert task["history"][1]["error"] == "1001 files under /out, over the limit of 1000"
    assert task["files"] == [] and task["output"] is None


def test_hostile_output_names_reach_disk_and_terminal_harmlessly(
    controller: RunningController, client: ControllerClient, tmp_path: Path
) -> None:
    """A name is any plain relative path, so it may hold escape sequences: `--out` writes it as it is,
    inside DIR, and what is printed shows the escapes instead of obeying them."""
    dag_id = client.submit(load_dag(one_task_dag(tmp_path, retries=0)))
    host = FakeHost(controller)
    hostile = "\x1b]0;pwned\x07dir/\x1b[2Jclear\u202egnp.exe"
    try:
        host.answer(dag_id, {hostile: b"bytes\x00kept", "ok.txt": b"fine"})
        assert client.wait(dag_id, timeout=10)["state"] == "succeeded"
    finally:
        host.close()
    out = tmp_path / "fetched"
    proc = fetch_results(controller, dag_id, out)
    assert proc.returncode == 0, proc.stderr
    assert (out / "t" / hostile).read_bytes() == b"bytes\x00kept" and (out / "t" / "ok.txt").read_bytes() == b"fine"
    assert sorted(p.relative_to(tmp_path).parts[0] for p in tmp_path.rglob("*")) == ["fetched"] * 5 + ["one.yaml"]
    for text in (proc.stdout, proc.stderr):
        assert "\x1b" not in text and "\u202e" not in text and "\x07" not in text
    assert "\\x1b]0;pwned\\x07dir/\\x1b[2Jclear\\u202egnp.exe" in proc.stderr, "shown escaped"
    assert "t/\\x1b]0;pwned" in proc.stdout, "listed escaped"


def expected_pipeline() -> dict[str, dict[str, bytes]]:
    """Every named output of dags/image_pipeline.yaml, computed in Python."""
    images = REPO / "dags" / "images"
    scene = ref.decode((images / "scene.pgm").read_bytes())
    blurred, edges = ref.blur(scene, 2), ref.edges(scene)
    colour, half, manifest = ref.compose(blurred, edges, ref.palette((images / "palette.txt").read_text()))
    return {
        "blur": {"image.pgm": blurred.encode()},
        "edges": {"image.pgm": edges.encode()},
        "compose": {"colour.ppm": colour.encode(), "thumbs/colour_half.ppm": half.encode(), "manifest.txt": manifest},
        "report": {},
    }


@pytest.mark.skipif(not HAS_VFS, reason="the engines have no /in and /out yet (path_open is not a supported import)")
@pytest.mark.parametrize("engine", ENGINES)
def test_image_pipeline_runs_with_files_in_and_out(tmp_path: Path, engine: str) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "bxthre3", "run", str(REPO / "dags" / "image_pipeline.yaml"), "--json",
         "--engine", engine, "--out", str(out)],
        capture_output=True, text=True, timeout=120, env=subprocess_env(),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(proc.stdout)
    assert results["state"] == "succeeded"
    expected = expected_pipeline()
    tasks = {t["task_id"]: t for t in results["tasks"]}
    for task_id, files in expected.items():
        assert tasks[task_id]["files"] == [
            {"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            for name, data in sorted(files.items())
        ], task_id
        for name, data in files.items():
            assert (out / task_id / name).read_bytes() == data, f"{task_id}/{name}"
    sums = {name.decode(): line for name, _, line in
            (ln.partition(b" ") for ln in expected["compose"]["manifest.txt"].splitlines())}  # fmt: skip
    checksum = sums["colour.ppm"].split(b"fnv1a32=")[1].decode()
    assert tasks["report"]["output"].startswith(f"colour.ppm: 128x96, checksum ok (fnv1a32={checksum}), mean colour")
    assert tasks["blur"]["output"] == "blur: 128x96, mean level 112\n"
    assert (out / "report.txt").read_text() == tasks["report"]["output"], "the final task's stdout, as before"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == sorted(
        ["report.txt"] + [f"{t}/{n}" for t, files in expected.items() for n in files]
    )


@pytest.mark.skipif(not HAS_VFS, reason="the engines have no /in and /out yet (path_open is not a supported import)")
def test_results_out_fetches_named_outputs_from_a_running_controller(
    controller: RunningController, client: ControllerClient, hosts: HostProcesses, tmp_path: Path
) -> None:
    hosts.start(controller.address, "files-host")
    dag_id = client.submit(load_dag(REPO / "dags" / "image_pipeline.yaml"))
    assert client.wait(dag_id, timeout=60)["state"] == "succeeded"
    out = tmp_path / "fetched"
    proc = fetch_results(controller, dag_id, out)
    assert proc.returncode == 0, proc.stderr
    expected = {f"{t}/{n}": data for t, files in expected_pipeline().items() for n, data in files.items()}
    assert {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()} == expected
    assert "compose/thumbs/colour_half.ppm 9,229 bytes, sha256 " in proc.stdout, "listed by name, size and digest"
    assert proc.stderr.count("wrote ") == len(expected)


@pytest.mark.skipif(not HAS_VFS, reason="the engines have no /in and /out yet (path_open is not a supported import)")
def test_named_outputs_survive_a_controller_restart(hosts: HostProcesses, tmp_path: Path) -> None:
    """A named output over 256 KiB is journalled as a file beside the database; a new controller on
    the same state dir lists it and serves the same bytes."""
    width, height = 800, 600
    picture = b"P5\n%d %d\n255\n" % (width, height) + bytes((x * 7 + y * 13) % 256 for y in range(height)
                                                              for x in range(width))  # fmt: skip
    (tmp_path / "big.pgm").write_bytes(picture)
    dag_file = tmp_path / "copy.yaml"
    dag_file.write_text(yaml.safe_dump({"name": "copy", "tasks": [
        {"id": "copy", "module": str(WASM_MODULES / "img_filter.wasm"), "inputs": ["blur", "0"],
         "files": {"image.pgm": "file:big.pgm"}},
    ]}))  # fmt: skip
    state = tmp_path / "state"
    config = SchedulerConfig(heartbeat_interval=0.25, liveness=4)

    def start() -> tuple[Controller, threading.Event, threading.Thread, ControllerClient]:
        controller = Controller(host="127.0.0.1", port=0, config=config, context=context, keys=TEST_KEYS,
                                state_dir=state)  # fmt: skip
        controller.bind()
        stop = threading.Event()
        thread = threading.Thread(target=controller.serve, args=(stop,), daemon=True)
        thread.start()
        client = ControllerClient(Address("127.0.0.1", controller.port), context=context, keys=TEST_KEYS)
        return controller, stop, thread, client

    def finish(
        controller: Controller, stop: threading.Event, thread: threading.Thread, client: ControllerClient
    ) -> None:
        client.close()
        stop.set()
        thread.join(5)
        controller.close()

    context = zmq.Context()
    try:
        first = start()
        hosts.start(Address("127.0.0.1", first[0].port), "files-host")
        dag_id = first[3].submit(load_dag(dag_file))
        assert first[3].wait(dag_id, timeout=60)["state"] == "succeeded"
        finish(*first)
        [on_disk] = (state / "outputs" / dag_id / "+files" / "copy").iterdir()
        assert on_disk.read_bytes() == picture

        second = start()
        try:
            [task] = second[3].results(dag_id, task_id="copy", with_files=True)["tasks"]
            assert task["files"] == [{"name": "image.pgm", "size": len(picture),
                                      "sha256": hashlib.sha256(picture).hexdigest(), "data": picture}]  # fmt: skip
        finally:
            finish(*second)
    finally:
        context.destroy(linger=0)
