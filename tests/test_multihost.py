"""Two processes on 127.0.0.1 (jax.distributed, 2 simulated CPU devices each) train like one process that sees
the whole global batch on 4 devices."""
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import simulated_devices_env

WORKER = textwrap.dedent(
    """
    import sys
    import jax
    import numpy as np

    process_id, num_processes, port = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    if num_processes > 1:
        jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=num_processes,
                                   process_id=process_id, initialization_timeout=60)
    from timesformer_jax.model import create_model
    from timesformer_jax.parallel import create_mesh, global_batch
    from timesformer_jax.train.optimizer import OptimizerConfig, create_optimizer
    from timesformer_jax.train.state import create_train_state, make_train_step, state_shardings

    shape = (8, 4, 32, 32, 3)
    model = create_model("timesformer_tiny")
    optimizer, schedule = create_optimizer(OptimizerConfig(base_learning_rate=0.05), 8, 10)
    mesh = create_mesh({"data": -1, "tensor": 2})
    shardings, _ = state_shardings(model, optimizer, mesh, shape)
    state = create_train_state(model, optimizer, mesh, shape)
    step = make_train_step(model, optimizer, schedule, mesh, shardings)
    rng = np.random.default_rng(0)
    per_host = shape[0] // jax.process_count()
    losses = []
    for _ in range(3):
        video = rng.normal(size=shape).astype(np.float32)
        label = rng.integers(0, 10, shape[0]).astype(np.int32)
        mine = slice(jax.process_index() * per_host, (jax.process_index() + 1) * per_host)  # this host's shard
        state, metrics = step(state, global_batch({"video": video[mine], "label": label[mine]}, mesh))
        losses.append(float(metrics["loss"]))
    print("LOSSES", " ".join(repr(x) for x in losses), flush=True)
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_workers(num_processes: int, devices_per_process: int) -> list[list[float]]:
    env = simulated_devices_env(devices_per_process)
    port = str(free_port())
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(i), str(num_processes), port], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for i in range(num_processes)]
    losses = []
    for worker in workers:
        out, err = worker.communicate(timeout=240)
        assert worker.returncode == 0, out + err
        losses.append([float(x) for x in out.split("LOSSES", 1)[1].split()])
    return losses


@pytest.mark.slow
def test_two_processes_match_one():
    (single,) = run_workers(1, 4)
    host0, host1 = run_workers(2, 2)
    assert host0 == host1  # every host sees the same global loss
    np.testing.assert_allclose(host0, single, rtol=1e-5)
