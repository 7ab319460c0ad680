"""Joining a training run that spans several processes (one per host, or several on one machine), on JAX's
own distributed runtime.

Every process runs the same program with its own id. Process 0 hosts the coordinator, a small RPC service
at ``HOST:PORT`` that the others connect to; the processes then see one list of devices, every process's,
over which ``explorer.training.parallel`` builds one mesh. Gradients are summed by CPU collectives over
gloo (TCP between the processes); on GPU or TPU hosts the same program uses their collectives instead.

Every timeout is explicit (JAX's defaults wait minutes): ``init_timeout`` bounds how long a process waits
for all the others to connect, ``heartbeat_timeout`` how long a process may go silent before the others
count it dead. JAX ends a process whose run lost a peer by aborting it (a C++ fatal log, not a Python
exception); ``explorer.cli.processes`` turns that into one line.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


@dataclass(frozen=True)
class Cluster:
    """Where this process's run meets (JAX's names: coordinator address, number of processes, process id)."""

    coordinator: str  # HOST:PORT of process 0; every process gives the same
    num_processes: int
    process_id: int  # 0 .. num_processes - 1; process 0 hosts the coordinator, evaluates and saves
    # A person starting processes on several hosts by hand needs minutes; tests pass seconds.
    init_timeout: int = 300
    # Long enough that a loaded machine's late heartbeat does not end a healthy run, short enough that a
    # vanished host ends the others within a minute. (A peer that dies outright is noticed at once: its
    # connections close under the next collective.)
    heartbeat_timeout: int = 60

    def __post_init__(self) -> None:
        host, _, port = self.coordinator.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"--coordinator must be HOST:PORT (e.g. 10.0.0.1:8800), not {self.coordinator!r}.")
        if self.num_processes < 1:
            raise ValueError(f"--num-processes must be at least 1, got {self.num_processes}.")
        if not 0 <= self.process_id < self.num_processes:
            raise ValueError(
                f"--process-id must be between 0 and {self.num_processes - 1} (one per process), got {self.process_id}."
            )
        if self.init_timeout < 1 or self.heartbeat_timeout < 1:
            raise ValueError("--init-timeout and --heartbeat-timeout must be at least 1 second.")

    @property
    def label(self) -> str:
        """How this process names itself in messages: ``process 1 of 2``."""
        return f"process {self.process_id} of {self.num_processes}"


def join(cluster: Cluster) -> None:
    """Connects this process to its run; blocks until every process has (at most ``init_timeout``).

    Must run before anything else touches JAX's devices. Afterwards ``jax.devices()`` lists every process's
    devices, ``jax.local_devices()`` this one's, and ``jax.process_index()`` is ``cluster.process_id``, and
    the collectives are connected (``_connect_collectives``).
    """
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    host = cluster.coordinator.rpartition(":")[0]
    jax.distributed.initialize(
        coordinator_address=cluster.coordinator,
        num_processes=cluster.num_processes,
        process_id=cluster.process_id,
        # Everything is given: no guessing from a cluster manager's environment (Slurm, MPI, TPU).
        cluster_detection_method="deactivate",
        initialization_timeout=cluster.init_timeout,
        heartbeat_timeout_seconds=cluster.heartbeat_timeout,
        # How long a finished process waits for the others to finish too (process 0 evaluates and saves last).
        shutdown_timeout_seconds=cluster.init_timeout,
        # A loopback coordinator listens on loopback only (JAX's default is every interface).
        coordinator_bind_address=cluster.coordinator if host in LOOPBACK_HOSTS else None,
    )
    _connect_collectives()


def _connect_collectives() -> None:
    """Runs one collective over every device while the processes are in step (they have just left
    ``initialize`` together), and checks that each took part.

    The first collective connects gloo's processes to each other, and that rendezvous waits only ~30 s for
    a late peer (a limit inside XLA, not a setting). Left to the first training step, it would fail whenever
    one process compiles for longer than that before it (process 0 also evaluates first). Once connected, a
    collective waits for its peers as long as they take.
    """
    mesh = Mesh(np.array(jax.devices()), ("all",))
    replicated = NamedSharding(mesh, PartitionSpec())
    count = jax.shard_map(
        lambda x: jax.lax.psum(x, "all"), mesh=mesh, in_specs=PartitionSpec(), out_specs=PartitionSpec()
    )
    ones = jax.make_array_from_process_local_data(replicated, np.ones((), np.int32))
    total = int(jax.jit(count, in_shardings=replicated, out_shardings=replicated)(ones).addressable_data(0))
    if total != len(jax.devices()):
        raise RuntimeError(
            f"A sum over the run's {len(jax.devices())} devices gave {total}: the collectives are broken."
        )


def leave() -> None:
    """Waits for the other processes to finish too (at most ``init_timeout``), then disconnects."""
    jax.distributed.shutdown()
