"""A production-shaped local Kafka: three KRaft nodes (one controller quorum) on 127.0.0.1.

``tradesignals stack up --brokers 3`` runs this instead of the single broker, from the same
jars, so the seed's production settings (replication factor 3, ``min.insync.replicas`` 2)
apply locally and a broker can die without losing anything. Each node is a
:class:`~tradesignals_dagster.stack.kafka_broker.KafkaBroker` in combined mode with its own
ports, data and log under ``<state_dir>/kafka-cluster/node-<id>``; all share one cluster id and
one voters list. The cluster offers the same interface as a single broker (``pid``, ``port``,
``bootstrap_servers``, ``start``, ``stop``, ``status``, ``is_ready``), so the stack treats both
alike.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tradesignals_dagster.stack.errors import BrokerStartError, PortInUseError, StackError
from tradesignals_dagster.stack.kafka_broker import KafkaBroker, new_cluster_id
from tradesignals_dagster.stack.process import LOCALHOST, find_free_port, port_in_use, read_json, write_json

CLUSTER_DIR = "kafka-cluster"
NODE_HEAP = "512m"


class KafkaCluster:
    """``size`` combined-mode nodes under ``<state_dir>/kafka-cluster`` (see the module docstring)."""

    def __init__(self, state_dir: Path, size: int = 3, *, jar_dir: Path | None = None) -> None:
        if size < 3:
            raise StackError(f"a local cluster needs at least 3 brokers for a quorum, not {size}")
        self.home = Path(state_dir).resolve() / CLUSTER_DIR
        self.state_path = self.home / "cluster.json"
        self.size = size
        self.jar_dir = jar_dir
        self.nodes = [self._node(state_dir, i) for i in range(1, size + 1)]

    def _node(self, state_dir: Path, node_id: int) -> KafkaBroker:
        state = read_json(self.state_path)
        return KafkaBroker(
            state_dir,
            jar_dir=self.jar_dir,
            heap=NODE_HEAP,
            node_id=node_id,
            voters=state.get("voters"),
            cluster_id=state.get("cluster_id"),
            subdir=f"{CLUSTER_DIR}/node-{node_id}",
        )

    # -- the single-broker interface ------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The first running node's pid (the cluster is up while any node is)."""
        return next((n.pid for n in self.nodes if n.pid is not None), None)

    @property
    def port(self) -> int | None:
        """The first node's client port."""
        return self.nodes[0].port

    @property
    def bootstrap_servers(self) -> str:
        """Every node's listener, so clients find the cluster with any node down."""
        ports = [n.port for n in self.nodes]
        if any(p is None for p in ports):
            raise StackError(f"The cluster under {self.home} has never been started.")
        return ",".join(f"{LOCALHOST}:{p}" for p in ports)

    def is_ready(self, timeout: float = 2.0) -> bool:
        """Whether every node answers metadata."""
        return all(n.is_ready(timeout=timeout) for n in self.nodes)

    def start(self, timeout: float = 90.0) -> dict[str, Any]:
        """Start every node that is down (ports and cluster id are fixed on the first start) and
        wait until all answer. Idempotent, like the single broker."""
        timeout = max(timeout, 120.0)  # three JVMs on a small machine, waiting for each other
        self.home.mkdir(parents=True, exist_ok=True)
        if not read_json(self.state_path):
            self._plan_ports()
        started = time.monotonic()
        launched = [(n, n.pid is None) for n in self.nodes]
        for node, down in launched:
            if down:
                node.start(timeout, wait=False)
        for node, down in launched:
            if down and node.pid is not None:
                try:
                    node.wait_ready(node.pid, started, max(5.0, timeout - (time.monotonic() - started)))
                except BrokerStartError as exc:
                    if not exc.exited:
                        raise  # too slow, not dead: starting it over would redo its log recovery
                    node.start(timeout)  # it died while starting (seen after a SIGKILL): once more
            elif not node.is_ready(timeout=5.0):
                node.start(timeout)  # a node that exited during start-up: its own error says why
        return self.status()

    def _plan_ports(self) -> None:
        """Choose every node's ports up front: the voters list names all controllers."""
        ports: list[int] = []
        while len(ports) < 2 * self.size:
            port = find_free_port()
            if port not in ports and not port_in_use(port):
                ports.append(port)
        controllers = ports[self.size :]
        voters = ",".join(f"{i + 1}@{LOCALHOST}:{p}" for i, p in enumerate(controllers))
        write_json(self.state_path, {"voters": voters, "cluster_id": new_cluster_id(), "size": self.size})
        for i, node in enumerate(self.nodes):
            node.voters, node.cluster_id = voters, read_json(self.state_path)["cluster_id"]
            node._want_port, node._want_controller_port = ports[i], controllers[i]
            if port_in_use(ports[i]):
                raise PortInUseError(ports[i], f"Kafka node {i + 1}")

    def stop(self, timeout: float = 20.0) -> bool:
        """Stop every node; True if any was running."""
        return any([n.stop(timeout=timeout) for n in self.nodes])

    def status(self) -> dict[str, Any]:
        """The cluster's status in the single broker's shape, plus every node's own."""
        nodes = [n.status() for n in self.nodes]
        first = nodes[0]
        return {
            **first,
            "running": any(n["running"] for n in nodes),
            "ready": all(n["ready"] for n in nodes),
            "pid": self.pid,
            "bootstrap_servers": ",".join(f"{LOCALHOST}:{n['port']}" for n in nodes if n["port"]),
            "brokers": len(nodes),
            "nodes": nodes,
        }

    def node(self, node_id: int) -> KafkaBroker:
        """Node ``node_id`` (1-based), for fault drills."""
        return self.nodes[node_id - 1]

    @staticmethod
    def stop_any(state_dir: Path, timeout: float = 20.0) -> bool:
        """Stop the cluster recorded under ``state_dir``, if there is one; True if any node ran."""
        state = read_json(Path(state_dir).resolve() / CLUSTER_DIR / "cluster.json")
        return bool(state) and KafkaCluster(state_dir, int(state.get("size", 3))).stop(timeout=timeout)


def kafka_service(
    state_dir: Path, brokers: int | None = None, *, port: int | None = None, jar_dir: Path | None = None
) -> KafkaBroker | KafkaCluster:
    """The local Kafka of ``state_dir``: one broker, or a cluster of ``brokers`` nodes.

    ``brokers`` None means the layout that runs there now (else the one that ran last, else a
    single broker). Switching layouts needs a ``stack down`` first; each keeps its own data.
    """
    single = KafkaBroker(state_dir, port=port, jar_dir=jar_dir)
    recorded = read_json(Path(state_dir).resolve() / CLUSTER_DIR / "cluster.json")
    cluster = KafkaCluster(state_dir, int(recorded.get("size", 3)), jar_dir=jar_dir) if recorded else None
    if brokers is None:
        cluster_runs = cluster is not None and cluster.pid is not None
        brokers = cluster.size if cluster is not None and (cluster_runs or single.port is None) else 1
        if single.pid is not None:
            brokers = 1
    if brokers == 1:
        if cluster is not None and cluster.pid is not None:
            raise StackError(
                f"a {cluster.size}-broker cluster runs under {state_dir}; run `tradesignals stack down` "
                "before starting a single broker"
            )
        return single
    if brokers < 3:
        raise StackError(f"--brokers takes 1 or 3 or more (a KRaft quorum needs three), not {brokers}")
    if single.pid is not None:
        raise StackError(
            f"a single broker runs under {state_dir}; run `tradesignals stack down` before "
            f"`tradesignals stack up --brokers {brokers}` (each layout keeps its own data)"
        )
    if port is not None:
        raise StackError("--kafka-port applies to a single broker; a cluster chooses its nodes' ports")
    if cluster is not None and cluster.size != brokers:
        raise StackError(
            f"the cluster under {state_dir} has {cluster.size} brokers, not {brokers}; remove "
            f"{cluster.home} to start a cluster of another size"
        )
    return KafkaCluster(state_dir, brokers, jar_dir=jar_dir)
