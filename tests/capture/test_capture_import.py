"""The capture client imports and runs on a machine without PySpark or pyarrow."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

BLOCKED = ("pyspark", "pyarrow", "delta", "pandas")

WITHOUT_SPARK = textwrap.dedent(
    f"""
    import sys
    for name in {BLOCKED!r}:
        sys.modules[name] = None  # any import of these now raises ImportError

    import importlib, pkgutil
    import playtest_spark.capture as capture
    for module in pkgutil.iter_modules(capture.__path__):
        importlib.import_module(f"playtest_spark.capture.{{module.name}}")

    from pathlib import Path
    from playtest_spark.capture import (
        LocalBroker, SessionRequest, Spool, target_for, upload_session,
    )
    folder = Path(sys.argv[1])
    request = SessionRequest.from_body({{
        "game": "g", "build": "1", "platform": "Linux", "device_model": "m",
        "player_id": "p", "device_start": "2025-03-01T10:00:00Z",
    }})
    session = Spool(folder / "spool").start(LocalBroker(folder / "landing"), request)
    session.append_event({{"type": "start"}})
    report = upload_session(session, target_for(session))
    loaded = sorted(name for name in sys.modules if name.split(".")[0] in {BLOCKED!r}
                    and sys.modules[name] is not None)
    print(report.status, loaded)
    """
)


def test_capture_runs_without_spark_or_pyarrow(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_SPARK, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "uploaded []"
