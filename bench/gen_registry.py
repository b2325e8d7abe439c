"""Generate a large synthetic registry (N topics, M pipelines) in the seed's format."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml


def generate(root: Path, topics: int, pipelines: int) -> None:
    """Write ``root/pipelines.yaml``, ``root/topics.yaml`` and one schema per topic."""
    (root / "schemas").mkdir(parents=True, exist_ok=True)
    topic_list = []
    for t in range(topics):
        topic_list.append(
            {
                "topic_id": f"topic_{t:04d}",
                "num_partitions": 1 + t % 8,
                "replication_factor": 1,
                "min_insync_replicas": 1,
                "value_schema_id": f"topic_{t:04d}",
            }
        )
        schema = {
            "name": f"Record{t}",
            "namespace": "bench",
            "fields": [
                {"name": "symbol", "type": "string", "min_length": 1, "max_length": 32},
                {"name": "timestamp", "type": "long", "logical_type": "timestamp-millis"},
                {
                    "name": "price",
                    "type": "bytes",
                    "logical_type": "decimal",
                    "precision": 12,
                    "scale": 4,
                },
                {"name": "size", "type": "int", "default": 0},
            ],
        }
        (root / "schemas" / f"topic_{t:04d}.yaml").write_text(yaml.safe_dump(schema))
    (root / "topics.yaml").write_text(yaml.safe_dump({"topics": topic_list}, sort_keys=False))
    pipes = {}
    for p in range(pipelines):
        # pipeline p reads topic 2p and writes topic 2p+1: a forest of independent chains
        src, dst = (2 * p) % topics, (2 * p + 1) % topics
        pipes[f"pipeline_{p:04d}"] = {
            "id": f"Pipeline{p}",
            "input": {"type": "kafka", "kafka_topic_id": f"topic_{src:04d}"},
            "output": {"type": "kafka", "topic_id": f"topic_{dst:04d}", "entitlements": ["x"]},
            "docker": {"image": f"bench/pipeline_{p}:1"},
        }
    app = {
        "StreamingApplication": {
            "id": "bench",
            "environment": "bench",
            "Topics": "topics.yaml",
            "Pipelines": pipes,
        }
    }
    (root / "pipelines.yaml").write_text(yaml.safe_dump(app, sort_keys=False))


def main() -> None:
    """CLI: python -m bench.gen_registry DIR --topics N --pipelines M."""
    parser = argparse.ArgumentParser()
    parser.add_argument("root", type=Path)
    parser.add_argument("--topics", type=int, default=1000)
    parser.add_argument("--pipelines", type=int, default=500)
    args = parser.parse_args()
    generate(args.root, args.topics, args.pipelines)


if __name__ == "__main__":
    main()
