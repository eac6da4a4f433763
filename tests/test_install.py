"""Installing minillm from its source: with a C compiler, and without one."""
import os
import subprocess
import sys
from pathlib import Path

import shutil

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _install(target, **env):
    # Install from a clean copy of the source: no build/ cache, no in-place extension.
    src = target.parent / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", "build", "runs", "*.so", "*.egg-info", "__pycache__", ".pytest_cache"))
    return subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(src)],
        env=dict(os.environ, **env), capture_output=True, text=True, timeout=600)


def _info(target):
    env = dict(os.environ, PYTHONPATH=str(target))
    # subtle: an editable install of this checkout adds an import hook that would win
    # over PYTHONPATH; drop it so the installed copy is the one tested.
    code = ("import sys; sys.meta_path[:] = [f for f in sys.meta_path "
            "if '_editable' not in type(f).__module__ and 'editable' not in repr(f)]; "
            "from minillm import clib; from minillm.common import data_path; "
            "print(clib.c_available(), clib.simd_level(), data_path('README.md').is_file() "
            "and any(data_path('crawl', 'templates').glob('*.html')))")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, cwd=target, timeout=120)


@pytest.mark.slow
def test_regular_install_builds_kernels_and_ships_data(tmp_path):
    result = _install(tmp_path / "site")
    assert result.returncode == 0, result.stderr[-2000:]
    info = _info(tmp_path / "site")
    assert info.returncode == 0, info.stderr
    loaded, simd, has_data = info.stdout.split()
    assert loaded == "True" and simd in ("avx512", "avx2", "scalar") and has_data == "True"
    assert all((tmp_path / "site" / "minillm" / "web" / "static" / name).is_file()
               for name in ("index.html", "app.js", "style.css"))         # the web app's page


@pytest.mark.slow
def test_install_without_compiler_falls_back_to_numpy(tmp_path):
    result = _install(tmp_path / "site", CC="/nonexistent/cc")
    assert result.returncode == 0, result.stderr[-2000:]
    info = _info(tmp_path / "site")
    assert info.returncode == 0, info.stderr
    assert info.stdout.split()[0] == "False"
    assert "NumPy references" in info.stderr  # said once, at first use
