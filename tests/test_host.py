"""Process-wide settings of blursynth's own processes (blursynth/run/host.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux-only")

CHILD = """
import sys
from blursynth.run import host
before = host.transparent_hugepages_disabled()
{call}
status = open("/proc/self/status").read()
print(before, host.transparent_hugepages_disabled(), "THP_enabled:\\t0" in status)
"""


def _run(call: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", CHILD.format(call=call)], capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_tune_process_turns_transparent_huge_pages_off():
    assert _run("host.tune_process()") == ["False", "True", "True"]


def test_the_setting_is_inherited_by_child_processes():
    call = ("host.tune_process()\n"
            "import subprocess\n"
            "print(subprocess.run([sys.executable, '-c', 'from blursynth.run import host; "
            "print(host.transparent_hugepages_disabled())'], capture_output=True, text=True).stdout.strip())")
    assert _run(call)[0] == "True"


def test_the_command_line_entry_point_applies_it(monkeypatch):
    from blursynth.cli import main as cli_main
    from blursynth.run import host

    called = []
    monkeypatch.setattr(host, "tune_process", lambda: called.append(True))
    monkeypatch.setattr(sys, "argv", ["blursynth", "--version"])
    with pytest.raises(SystemExit):
        cli_main.main()
    assert called == [True]
