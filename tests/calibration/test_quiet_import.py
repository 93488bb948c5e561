import subprocess
import sys

import pytest

pytest.importorskip("modelopt")


def test_modelopts_warning_about_the_installed_transformers_is_not_shown():
    # Printed on every quantized export and bench run; vgpt never uses ModelOpt's transformers integration.
    code = "from vgpt.calibration.quantize import require_modelopt; require_modelopt()"
    done = subprocess.run([sys.executable, "-W", "default", "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "is not tested with current version of modelopt" not in done.stderr, done.stderr
