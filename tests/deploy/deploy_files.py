"""Loaders of the deployment files: the bundle YAML and the Data Factory JSON."""

from __future__ import annotations

import glob
import json
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
ADF_DIR = REPO_ROOT / "adf"
# Data Factory's git-integration folders and the resource kind each one holds.
ADF_FOLDERS = ("factory", "linkedService", "pipeline", "trigger")


def load_bundle(root: Path = REPO_ROOT) -> dict[str, Any]:
    """Return databricks.yml with the `resources` of every included file merged in."""
    bundle = yaml.safe_load((root / "databricks.yml").read_text(encoding="utf-8"))
    resources: dict[str, dict[str, Any]] = dict(bundle.get("resources") or {})
    included: list[Path] = []
    for pattern in bundle.get("include") or []:
        for name in sorted(glob.glob(str(root / pattern))):
            included.append(Path(name))
            document = yaml.safe_load(Path(name).read_text(encoding="utf-8")) or {}
            for kind, items in (document.get("resources") or {}).items():
                merged = resources.setdefault(kind, {})
                duplicates = set(merged) & set(items)
                assert not duplicates, f"resource {kind}.{sorted(duplicates)} defined twice"
                merged.update(items)
    bundle["resources"] = resources
    bundle["_included_files"] = included
    return bundle


def load_adf(root: Path = ADF_DIR) -> dict[str, dict[str, dict[str, Any]]]:
    """Return folder -> resource file stem -> parsed JSON for every Data Factory file."""
    resources: dict[str, dict[str, dict[str, Any]]] = {folder: {} for folder in ADF_FOLDERS}
    for path in sorted(root.glob("*/*.json")):
        folder = path.parent.name
        assert folder in resources, f"unexpected Data Factory folder {folder!r} ({path})"
        resources[folder][path.stem] = json.loads(path.read_text(encoding="utf-8"))
    return resources
