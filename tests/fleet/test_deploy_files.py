"""deploy/ stays in step with the server: every file parses, and every `npcrt serve` flag the compose file and
the Kubernetes manifest pass exists (a renamed flag would otherwise break a studio's fleet at its next deploy)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from npc_runtime.serving.cli_serve import add_arguments

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _serve_flags() -> set[str]:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return {flag for action in parser._actions for flag in action.option_strings}   # noqa: SLF001


def test_deploy_files_parse_and_use_real_flags():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    k8s = list(yaml.safe_load_all((DEPLOY / "k8s" / "npcrt.yaml").read_text()))
    envoy = yaml.safe_load((DEPLOY / "envoy" / "envoy.yaml").read_text())
    assert {"postgres", "redis", "proxy", "replica-1", "replica-2", "replica-3"} <= set(compose["services"])
    assert envoy["static_resources"]["clusters"][0]["lb_policy"] == "RING_HASH"
    deployment = next(d for d in k8s if d["kind"] == "Deployment")
    args = [*compose["x-replica"]["command"], *deployment["spec"]["template"]["spec"]["containers"][0]["args"]]
    used = {a for a in args if a.startswith("--")}
    entrypoint = next(line for line in (DEPLOY / "Dockerfile").read_text().splitlines()
                      if line.startswith("ENTRYPOINT"))
    used |= {a for a in json.loads(entrypoint.removeprefix("ENTRYPOINT")) if a.startswith("--")}
    assert used and used <= _serve_flags(), f"flags npcrt serve does not know: {used - _serve_flags()}"
    assert "hash $http_x_npc_id consistent;" in (DEPLOY / "nginx" / "nginx.conf").read_text()
