"""The shipped built-in packages are what the exporter makes from the committed weights.

Re-exports npc-dialogue and npc-policy with `SHIPPED`'s options (tests/install/ship_builtins.py) and compares
with runtime/npc_runtime/builtin_packages:
  * every file but manifest.json and model.onnx: identical bytes (sha256);
  * model.onnx: the identical graph and weights; only `producer_version` may differ (onnxruntime-genai's
    builder stamps the `git rev-parse HEAD` of whatever repository holds its site-packages, so it depends on
    where the venv lives, not on the model);
  * manifest.json: identical except `created_unix`, the hash of model.onnx (above) and the `validation`
    block: the exporter's self-check figures at the time of shipping (its gates and scoring are tuned
    independently of the package's content); both must have passed, at the shipped precision.
Needs the `export` extra (torch, onnxruntime-genai), installed by `make test`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="needs the export extra (pip install '.[export]')")
pytest.importorskip("onnxruntime_genai", reason="needs the export extra (pip install '.[export]')")

from npc_runtime.builtin_packages import SHIPPED, package_dir  # noqa: E402
from tests.install.ship_builtins import export_builtins  # noqa: E402

pytestmark = pytest.mark.slow


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _graph_bytes(path: Path) -> bytes:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    model.producer_version = ""
    return model.SerializeToString(deterministic=True)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> dict[str, Path]:
    return export_builtins(tmp_path_factory.mktemp("reexport"))


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_package_matches_a_fresh_export(fresh, name):
    shipped = package_dir(name)
    assert shipped is not None, f"{name} is not shipped (runtime/npc_runtime/builtin_packages/{name})"
    ours, theirs = fresh[name], shipped
    assert sorted(p.name for p in theirs.iterdir()) == sorted(p.name for p in ours.iterdir())

    for path in sorted(theirs.iterdir()):
        if path.name in ("manifest.json", "model.onnx"):
            continue
        assert _sha(path) == _sha(ours / path.name), (
            f"{name}/{path.name} differs from a fresh export: run `python tests/install/ship_builtins.py`")
    assert _graph_bytes(theirs / "model.onnx") == _graph_bytes(ours / "model.onnx"), (
        f"{name}/model.onnx differs from a fresh export: run `python tests/install/ship_builtins.py`")

    m_shipped = json.loads((theirs / "manifest.json").read_text())
    m_fresh = json.loads((ours / "manifest.json").read_text())
    assert m_shipped["architecture"] == m_fresh["architecture"]
    assert m_shipped["precision"] == SHIPPED[name]["precision"] and m_shipped["target"] == SHIPPED[name]["target"]
    assert m_shipped["validation"]["passed"] is True and m_shipped["validation"].get("overridden") is False
    assert m_fresh["validation"]["passed"] is True
    for manifest in (m_shipped, m_fresh):
        manifest.pop("created_unix", None)
        manifest["files"].pop("model.onnx", None)
        manifest.pop("validation")
    differ = sorted(k for k in m_shipped.keys() | m_fresh.keys() if m_shipped.get(k) != m_fresh.get(k))
    assert not differ, (f"{name}/manifest.json differs from a fresh export in {differ}: "
                        "run `python tests/install/ship_builtins.py`")


def test_shipped_packages_validate():
    from npc_export import validate_package

    for name in SHIPPED:
        report = validate_package(package_dir(name))
        assert report.ok, f"{name}: {report.errors}"
