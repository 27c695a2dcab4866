"""Distributed training on MXNet's parameter server: `edgecv launch` + `edgecv train
--kvstore dist_sync` on 127.0.0.1 (a scheduler, one server, two workers).

What is compared, and how exactly: two workers with batch B each train on the two halves
of the global batches that one process with batch 2B over two contexts (cpu:0, cpu:1)
trains on, every sample augmented alike, BatchNorm over the same B samples. Per step the
workers' trainable weights have the same digest, and the mean of their losses is the
single process's loss; at the end the trainable weights match to rtol 1e-6 (they differ
only in the order the gradients are summed: with two workers one float addition, so here
they agree to the bit) and the BatchNorm running statistics (averaged over the workers at
each epoch's end, over the contexts when one process saves) to rtol 1e-5.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edgecv.launch import Launcher, Node, plan, remote_command
from edgecv.train.common import TrainConfig

pytestmark = pytest.mark.integration

MODEL = "mobilenet0.25_digits"
# 16 images of two digits, one global batch of 16 an epoch, 16 epochs: short enough for
# this test, long enough for Adam to bring the loss down; light augmentation
RECIPE = {
    "epochs": 16,
    "batch_size": 8,
    "lr": 0.005,
    "optimizer": "adam",
    "warmup_epochs": 0,
    "lr_mode": "constant",
    "label_smoothing": 0.0,
    "hflip": False,
    "extra": {"min_area": 1.0, "color": 0.0},
}
TRAIN = ["--data", "tiny", "--recipe", "recipe.json", "--deterministic", "--quiet"]


def _edgecv(*args: str) -> list[str]:
    return [sys.executable, "-m", "edgecv", *args]


def _launch(
    cwd: Path, name: str, resume: bool = False, servers: int = 1, extra: tuple[str, ...] = ()
) -> subprocess.Popen:
    """`edgecv launch --workers 2 -- edgecv train ...` in the background (its stderr piped)."""
    train = _edgecv("train", "classification", MODEL, "--out", f"{name}-run", *TRAIN, *extra)
    train += ["--debug-dump", f"{name}-dump"]
    if resume:
        train.append("--resume")
    argv = _edgecv("launch", "--workers", "2", "--servers", str(servers), "--log-dir")
    argv += [f"{name}-logs", "--progress-every"]
    return subprocess.Popen(
        [*argv, "0", "--startup-timeout", "60", "--", *train],
        cwd=cwd,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def _finish(proc: subprocess.Popen, timeout: float = 120) -> str:
    _, err = proc.communicate(timeout=timeout)
    return err


def _steps(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _params(path: Path) -> dict[str, np.ndarray]:
    import mxnet as mx

    return {k: v.asnumpy() for k, v in mx.nd.load(str(path)).items()}


@pytest.fixture(scope="module")
def data(digits_root, tmp_path_factory) -> Path:
    """A folder to run the jobs in: ``tiny/train/{0,1}`` (8 digits each, no validation
    split) and ``recipe.json``."""
    cwd = tmp_path_factory.mktemp("dist")
    for digit in ("0", "1"):
        (cwd / "tiny" / "train" / digit).mkdir(parents=True)
        for image in sorted((digits_root / "classification" / "train" / digit).iterdir())[:8]:
            (cwd / "tiny" / "train" / digit / image.name).symlink_to(image)
    (cwd / "recipe.json").write_text(json.dumps(RECIPE))
    return cwd


def test_dist_sync_matches_one_process_and_survives_a_dead_worker(data):
    cwd = data
    job = _launch(cwd, "dist")
    err = _finish(job)
    assert job.returncode == 0, err
    # the launcher's merged progress: the mean loss of both workers, each step (--progress-every 0)
    merged = [line for line in err.splitlines() if "(mean of 2 workers)" in line]
    assert len(merged) == 16 and "epoch 16/16 step 1/1" in merged[-1], err
    assert (
        "dist_sync: 2 workers x batch 8 = global batch 16; lr 0.005 x 2 = 0.01"
        in (cwd / "dist-logs" / "worker-0.log").read_text()
        + (cwd / "dist-logs" / "worker-1.log").read_text()
    )
    ranks = [_steps(cwd / "dist-dump" / f"rank-{r}.jsonl") for r in (0, 1)]
    assert [s["weights"] for s in ranks[0]] == [s["weights"] for s in ranks[1]]
    assert len(ranks[0]) == 16 and len({s["weights"] for s in ranks[0]}) == 16
    # worker 0 alone wrote the run folder
    run = cwd / "dist-run"
    assert (run / f"{MODEL}.params").is_file() and (run / "checkpoint-0016.states").is_file()
    report = json.loads((run / "report.json").read_text())
    assert report["config"]["num_parts"] == 2 and report["config"]["lr"] == pytest.approx(0.01)

    # one process, the global batch (16) over two contexts, the scaled lr (0.01)
    one = subprocess.run(
        _edgecv("train", "classification", MODEL, "--out", "one-run", *TRAIN)
        + ["--batch-size", "16", "--lr", "0.01", "--contexts", "cpu:0,cpu:1"]
        + ["--debug-dump", "one-dump"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert one.returncode == 0, one.stderr
    single = _steps(cwd / "one-dump" / "rank-0.jsonl")
    mean_loss = [(a["loss"] + b["loss"]) / 2 for a, b in zip(*ranks, strict=True)]
    np.testing.assert_allclose(mean_loss, [s["loss"] for s in single], rtol=1e-6)
    losses = [s["loss"] for s in single]
    assert np.mean(losses[-4:]) < 0.8 * np.mean(losses[:4]), losses  # it learns
    dist, ref = _params(run / f"{MODEL}.params"), _params(cwd / "one-run" / f"{MODEL}.params")
    assert dist.keys() == ref.keys()
    for name in dist:
        rtol = 1e-5 if "running_" in name else 1e-6
        np.testing.assert_allclose(dist[name], ref[name], rtol=rtol, atol=1e-6, err_msg=name)

    # the same job, a worker killed once worker 0 has checkpointed epoch 1
    job = _launch(cwd, "cut")
    checkpoint = cwd / "cut-run" / "checkpoint.json"
    deadline = time.monotonic() + 90
    while not checkpoint.is_file() and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert checkpoint.is_file(), _finish(job)
    workers = json.loads((cwd / "cut-logs" / "processes.json").read_text())
    victim = next(p for p in workers if p["name"] == "worker-1")
    os.kill(victim["pid"], signal.SIGKILL)
    killed = time.monotonic()
    err = _finish(job, timeout=60)
    assert time.monotonic() - killed < 20, "the job did not end within 20 s of the kill"
    assert job.returncode == 1, err
    assert f"worker-1 (pid {victim['pid']}" in err and "was killed by signal SIGKILL" in err
    assert victim["log"] in err
    for p in workers:  # nothing is left running
        with pytest.raises(ProcessLookupError):
            os.kill(p["pid"], 0)
    assert not (cwd / "cut-run" / f"{MODEL}.params").exists()

    # resumed on the cluster: both workers load worker 0's checkpoint, the job finishes
    # where the uninterrupted one did
    job = _launch(cwd, "cut", resume=True)
    err = _finish(job)
    assert job.returncode == 0, err
    resumed = _params(cwd / "cut-run" / f"{MODEL}.params")
    for name in dist:
        np.testing.assert_array_equal(resumed[name], dist[name], err_msg=name)


def test_dist_sync_on_two_servers(data):
    """Keys spread over two servers (MXNet routes a key by (key * 9973) % servers), the
    BatchNorm averaging's and the resume agreement's included: the job finishes and the
    workers' weights are identical at every step."""
    job = _launch(data, "two", servers=2, extra=("--epochs", "3"))
    err = _finish(job)
    assert job.returncode == 0, err
    ranks = [_steps(data / "two-dump" / f"rank-{r}.jsonl") for r in (0, 1)]
    assert len(ranks[0]) == 3
    assert [s["weights"] for s in ranks[0]] == [s["weights"] for s in ranks[1]]
    assert (data / "two-run" / f"{MODEL}.params").is_file()


def test_dist_async_trains(data):
    """dist_async: the servers run the optimizer (the workers push gradients and pull
    weights), the learning rate is not scaled; the job finishes and worker 0 saves."""
    job = _launch(data, "async", extra=("--kvstore", "dist_async", "--epochs", "4"))
    err = _finish(job)
    assert job.returncode == 0, err
    logs = "".join((data / "async-logs" / f"worker-{w}.log").read_text() for w in (0, 1))
    assert "dist_async: 2 workers x batch 8 = global batch 16; lr 0.005 (async" in logs
    steps = [_steps(data / "async-dump" / f"rank-{r}.jsonl") for r in (0, 1)]
    assert [len(s) for s in steps] == [4, 4]
    assert all(np.isfinite(s["loss"]) for s in steps[0] + steps[1])
    assert (data / "async-run" / f"{MODEL}.params").is_file()


def test_worker_gives_up_when_the_scheduler_is_unreachable(tmp_path, digits_root):
    from edgecv.launch import free_port

    port = free_port()  # nothing listens there
    env = {
        **os.environ,
        "DMLC_ROLE": "worker",
        "DMLC_PS_ROOT_URI": "127.0.0.1",
        "DMLC_PS_ROOT_PORT": str(port),
        "DMLC_NUM_WORKER": "2",
        "DMLC_NUM_SERVER": "1",
        "DMLC_NODE_HOST": "127.0.0.1",
        "EDGECV_STARTUP_TIMEOUT": "3",
    }
    argv = ["train", "classification", MODEL, "--data", str(digits_root / "classification")]
    t0 = time.monotonic()
    done = subprocess.run(
        _edgecv(*argv, "--out", str(tmp_path / "run")),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert f"scheduler at 127.0.0.1:{port} reachable" in done.stderr
    assert time.monotonic() - t0 < 30


def test_train_refuses_dist_without_a_cluster(tmp_path, digits_root):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DMLC_")}
    done = subprocess.run(
        _edgecv("train", "classification", MODEL, "--data", str(digits_root / "classification"))
        + ["--out", str(tmp_path / "run"), "--kvstore", "dist_sync"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3 and "runs under `edgecv launch`" in done.stderr, done.stderr


@pytest.mark.unit
def test_workers_split_each_global_batch_and_augment_alike():
    """The parts of W workers, side by side, are one process's batches of W x batch."""
    order = np.random.RandomState(0).permutation(50)
    one = TrainConfig(batch_size=6, num_parts=1)
    parts = [TrainConfig(batch_size=3, num_parts=2, part_index=r) for r in (0, 1)]
    assert one.batches_per_epoch(50) == parts[0].batches_per_epoch(50) == 8
    whole = list(one.epoch_batches(order, epoch=2))
    halves = [list(p.epoch_batches(order, epoch=2)) for p in parts]
    for b, batch in enumerate(whole):
        draws = [(i, rng.randint(1 << 30)) for i, rng in batch]
        joined = [(i, rng.randint(1 << 30)) for h in halves for i, rng in h[b]]
        assert draws == joined
        assert batch.rng().rand() == halves[0][b].rng().rand() == halves[1][b].rng().rand()
    with pytest.raises(Exception, match="part 2 of 2"):
        TrainConfig(num_parts=2, part_index=2)


@pytest.mark.unit
def test_launch_plan_sets_mxnet_environment():
    nodes = plan(["edgecv", "train"], workers=3, servers=2, port=9000, env={"PS_VERBOSE": "1"})
    assert [n.name for n in nodes] == [
        "scheduler-0",
        "server-0",
        "server-1",
        "worker-0",
        "worker-1",
        "worker-2",
    ]
    for n in nodes:
        assert n.env["DMLC_ROLE"] == n.role and n.env["DMLC_PS_ROOT_PORT"] == "9000"
        assert n.env["DMLC_PS_ROOT_URI"] == n.env["DMLC_NODE_HOST"] == "127.0.0.1"
        assert (n.env["DMLC_NUM_SERVER"], n.env["DMLC_NUM_WORKER"]) == ("2", "3")
        assert n.env["PS_VERBOSE"] == "1" and n.host is None
        assert n.argv == (["edgecv", "train"] if n.role == "worker" else n.argv)
        assert ("EDGECV_LAUNCH_PROGRESS" in n.env) == (n.role == "worker")
    assert nodes[1].argv[1:] == ["-c", "import mxnet"]
    hosts = ["alice@10.0.0.1", "10.0.0.2"]
    nodes = plan(["edgecv", "train"], 3, 2, hosts, 9000, scheduler_host="10.0.0.9")
    assert [n.host for n in nodes] == [None, *hosts, hosts[0], hosts[1], hosts[0]]
    assert all(n.env["DMLC_PS_ROOT_URI"] == "10.0.0.9" for n in nodes)
    assert not any("DMLC_NODE_HOST" in n.env for n in nodes)  # each binds its own interface
    with pytest.raises(Exception, match="no worker command"):
        plan([], 1)


@pytest.mark.unit
def test_remote_command_runs_in_cwd_with_the_environment(tmp_path):
    """The ssh command line: its last argument is what the remote shell runs; run it here
    (as `ssh host CMD` would) and check the environment and the folder, quotes included."""
    node = Node(
        "worker",
        0,
        "bob@10.0.0.3",
        ["sh", "-c", 'echo "$DMLC_ROLE|$ODD|$(pwd)"'],
        {"DMLC_ROLE": "worker", "ODD": 'it\'s a "test" $HOME'},
    )
    folder = tmp_path / "a dir"
    folder.mkdir()
    argv = remote_command(node, str(folder), ssh=("ssh", "-o", "BatchMode=yes"))
    assert argv[:4] == ["ssh", "-o", "BatchMode=yes", "bob@10.0.0.3"] and len(argv) == 5
    # ssh's stdin stays open while the launcher runs (its end stops the remote process)
    run = subprocess.Popen(["sh", "-c", argv[4]], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    out = run.stdout.read().decode()
    run.stdin.close()
    assert run.wait(timeout=10) == 0
    assert out.strip() == f'worker|it\'s a "test" $HOME|{folder}'
    # the launcher stops a remote process by ending its ssh client: stdin closes
    node.argv = ["sleep", "30"]
    run = subprocess.Popen(
        ["sh", "-c", remote_command(node, str(folder))[-1]], stdin=subprocess.PIPE
    )
    time.sleep(0.2)
    t0 = time.monotonic()
    run.stdin.close()
    assert run.wait(timeout=10) != 0 and time.monotonic() - t0 < 5


def _sh(role: str, slot: int, script: str) -> Node:
    return Node(role, slot, None, ["sh", "-c", script], {})


@pytest.mark.unit
def test_launcher_stops_everything_when_a_process_dies(tmp_path):
    nodes = [
        _sh("scheduler", 0, "sleep 60"),
        _sh("server", 0, "sleep 60"),
        _sh("worker", 0, "sleep 60"),
        _sh("worker", 1, "echo loading; sleep 0.5; echo boom; exit 3"),
    ]
    err = tmp_path / "err.txt"
    with err.open("w") as out:
        launcher = Launcher(nodes, tmp_path / "logs", cwd=str(tmp_path), out=out)
        launcher.start()
        t0 = time.monotonic()
        assert launcher.watch(poll=0.05) == 1
    assert time.monotonic() - t0 < 10
    text = err.read_text()
    assert "worker-1 (pid" in text and "exited with status 3" in text and "boom" in text
    assert str(tmp_path / "logs" / "worker-1.log") in text
    assert all(p.popen.poll() is not None for p in launcher.procs)
    assert (tmp_path / "logs" / "worker-1.log").read_text() == "loading\nboom\n"


@pytest.mark.unit
def test_launcher_fails_when_a_server_dies_and_succeeds_when_workers_do(tmp_path):
    nodes = [_sh("scheduler", 0, "sleep 60"), _sh("server", 0, "sleep 0.3; kill -9 $$")]
    nodes.append(_sh("worker", 0, "sleep 60"))
    with (tmp_path / "a.txt").open("w") as out:
        launcher = Launcher(nodes, tmp_path / "a", out=out)
        launcher.start()
        assert launcher.watch(poll=0.05) == 1
    assert "server-0 (pid" in (tmp_path / "a.txt").read_text()
    assert "killed by signal SIGKILL" in (tmp_path / "a.txt").read_text()

    nodes = [_sh("scheduler", 0, "sleep 60"), _sh("worker", 0, "true"), _sh("worker", 1, "true")]
    with (tmp_path / "b.txt").open("w") as out:
        launcher = Launcher(nodes, tmp_path / "b", grace=0.5, out=out)
        launcher.start()
        assert launcher.watch(poll=0.05) == 0
    assert "stopping scheduler-0" in (tmp_path / "b.txt").read_text()
    assert all(p.popen.poll() is not None for p in launcher.procs)


def test_a_terminated_launcher_stops_its_nodes(tmp_path):
    """SIGTERM to `edgecv launch` (a CI timeout, `kill`) stops the scheduler, the server and
    the workers, which run in their own sessions; a worker's non-UTF-8 output is logged
    with replacement characters without stopping the log copy."""
    worker = ["sh", "-c", "printf 'a\\377b\\n'; echo ready; sleep 60"]
    argv = _edgecv("launch", "--workers", "2", "--log-dir", "logs", "--", *worker)
    job = subprocess.Popen(argv, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    logs = tmp_path / "logs"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (
        (logs / "processes.json").is_file()
        and all(
            (logs / f"worker-{w}.log").is_file()
            and "ready" in (logs / f"worker-{w}.log").read_text(errors="replace")
            for w in (0, 1)
        )
    ):
        time.sleep(0.1)
    nodes = json.loads((logs / "processes.json").read_text())
    assert len(nodes) == 4
    job.send_signal(signal.SIGTERM)
    _, err = job.communicate(timeout=30)
    assert job.returncode == 130 and "interrupted" in err, err
    for p in nodes:
        with pytest.raises(ProcessLookupError):
            os.kill(p["pid"], 0)
    assert (logs / "worker-0.log").read_text() == "a\ufffdb\nready\n"
