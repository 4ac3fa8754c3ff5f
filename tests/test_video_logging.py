"""PyAV's Python log callback must stay off: it deadlocks when a decoder stopped early is freed (PyAV#751)."""

import subprocess
import sys


def test_importing_the_decoder_keeps_pyav_logging_in_c():
    code = "import av.logging, blursynth.io.video; print(av.logging.get_level())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "None"  # any level installs the GIL-taking Python callback
