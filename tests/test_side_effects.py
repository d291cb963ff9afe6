"""Importing pitfall changes nothing outside it: environment, logging, Icechunk's log filter.

Each check runs in a fresh interpreter that imports every ``pitfall.*`` module while the
process-wide setters are wrapped to record who calls them. Third-party libraries imported
along the way (TensorFlow sets a few environment variables of its own) are not pitfall's
doing: only calls made from a ``pitfall`` module's code count.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

RECORD = textwrap.dedent(
    """
    import json, logging, os, pkgutil, importlib, sys

    calls = []

    def caller():
        # The first frame outside this script, os, logging and the standard library's
        # machinery that forwards to them: the code that asked for the change.
        f = sys._getframe(2)
        while f is not None and f.f_globals.get("__name__", "") in (
            "__main__", "os", "logging", "_collections_abc", "importlib._bootstrap"
        ):
            f = f.f_back
        return "" if f is None else f.f_globals.get("__name__", "")

    def recording(cls, name):
        original = getattr(cls, name)
        def wrapper(self, *args, **kwargs):
            who = caller()
            if who.split(".")[0] == "pitfall":
                calls.append([who, f"{cls.__name__}.{name}", repr(args[:2])])
            return original(self, *args, **kwargs)
        setattr(cls, name, wrapper)

    recording(type(os.environ), "__setitem__")
    recording(type(os.environ), "__delitem__")
    for name in ("setLevel", "addHandler", "removeHandler", "addFilter"):
        recording(logging.Logger, name)
    original_basic = logging.basicConfig
    def basic(*args, **kwargs):
        calls.append([caller(), "logging.basicConfig", ""])
        return original_basic(*args, **kwargs)
    logging.basicConfig = basic
    import icechunk
    original_filter = icechunk.set_logs_filter
    def set_filter(directive):
        calls.append([caller(), "icechunk.set_logs_filter", repr(directive)])
        return original_filter(directive)
    icechunk.set_logs_filter = set_filter

    env = dict(os.environ)
    import pitfall
    names = sorted(m.name for m in pkgutil.walk_packages(pitfall.__path__, "pitfall."))
    failed = []
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as err:  # an extra that is not installed
            failed.append([name, str(err)])
    %s
    print(json.dumps({"calls": calls, "modules": len(names), "failed": failed,
                      "tf_level": os.environ.get("TF_CPP_MIN_LOG_LEVEL"),
                      "tf_level_before": env.get("TF_CPP_MIN_LOG_LEVEL")}))
    """
)


def _run(after: str = "") -> dict:
    env = {k: v for k, v in __import__("os").environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env.pop("ICECHUNK_LOG", None)
    proc = subprocess.run(
        [sys.executable, "-c", RECORD % after],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_import__every_module_leaves_environment_and_logging_alone() -> None:
    out = _run()
    assert out["modules"] > 40  # the walk found the package's modules
    assert out["failed"] == []
    assert out["calls"] == []
    assert out["tf_level"] is None and out["tf_level_before"] is None


@pytest.mark.slow
def test_import__the_recorder_sees_a_pitfall_module_that_sets_them() -> None:
    """The oracle can fail: calls pitfall makes on purpose are recorded, with their caller."""
    out = _run(
        "from pitfall._logs import quiet_third_party; quiet_third_party()\n"
        "from pitfall.storage import storage; storage('/tmp/pitfall-side-effects-probe')"
    )
    seen = {(who, what) for who, what, _ in out["calls"]}
    assert ("pitfall._logs", "_Environ.__setitem__") in seen
    assert ("pitfall._logs", "Logger.setLevel") in seen
    assert ("pitfall.storage", "icechunk.set_logs_filter") in seen
    assert out["tf_level"] == "2"


def test_storage__local_open_is_quiet_and_restores_the_filter(tmp_path) -> None:
    """Opening a local cube prints no Icechunk warning, and the filter is back afterwards."""
    script = textwrap.dedent(
        f"""
        import icechunk
        from pitfall.storage import storage
        storage({str(tmp_path / "a")!r})
        icechunk.local_filesystem_storage({str(tmp_path / "b")!r})  # the user's own call
        """
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "ICECHUNK_LOG"}
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout + proc.stderr
    # One warning: the user's own call (Icechunk's default filter, restored); none for pitfall's.
    assert text.count("not safe for concurrent commits") == 1, text
