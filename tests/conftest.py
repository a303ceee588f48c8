"""Session-wide fixtures: real models trained, saved and quantized once per test session."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

REPO = Path(__file__).resolve().parent.parent
TINYEDGE = [sys.executable, "-m", "tinyedge"]


def _real_models_dir() -> Path:
    """The real trained models (MLPerf Tiny, TFLM's examples): $TINYEDGE_REAL_MODELS, else ../shared/models/real
    beside the checkout (or beside its parent folder, for a worktree)."""
    if os.environ.get("TINYEDGE_REAL_MODELS"):
        return Path(os.environ["TINYEDGE_REAL_MODELS"])
    candidates = [base / "shared" / "models" / "real" for base in (REPO.parent, REPO.parent.parent)]
    return next((path for path in candidates if path.is_dir()), candidates[0])


REAL_MODELS = _real_models_dir()


def real_model(file_name: str) -> Path:
    """One of the real models, or a skip that says where they were looked for."""
    path = REAL_MODELS / file_name
    if not path.is_file():
        pytest.skip(f"{path} is absent: the real trained models live in ../shared/models/real (see its README)")
    return path


@dataclass
class ModelFiles:
    """A trained float model on disk, its data, and its full-int8 conversion."""
    keras: Path
    calibration: Path
    eval_x: Path
    eval_y: Path
    int8: Path


def run_tinyedge(*args: str | Path, cwd: Path | None = None, env: dict | None = None,
                 timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the tinyedge CLI as a user would, capturing its output."""
    merged = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run([*TINYEDGE, *map(str, args)], capture_output=True, text=True, cwd=cwd, env=merged, timeout=timeout)


def quantized_session_model(out: Path, name: str, keras_model, x: np.ndarray, y: np.ndarray,
                            calibration: int) -> ModelFiles:
    """A Keras model saved, its data split into calibration and evaluation sets, and quantized to int8."""
    from tinyedge.quantize import quantize_model

    keras_model.save(out / f"{name}.keras")
    np.save(out / "cal.npy", x[:calibration])
    np.save(out / "eval_x.npy", x[calibration:])
    np.save(out / "eval_y.npy", y[calibration:])
    quantize_model(out / f"{name}.keras", x[:calibration], out / f"{name}_int8.tflite")
    return ModelFiles(out / f"{name}.keras", out / "cal.npy", out / "eval_x.npy", out / "eval_y.npy",
                      out / f"{name}_int8.tflite")


def run_temp_dir(tmp_path_factory) -> Path:
    """This run's temporary folder, the same for every pytest-xdist worker (each has its own subfolder)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session", autouse=True)
def kernel_object_cache(tmp_path_factory) -> None:
    """The AOT kernel objects the native test builds link (aot_harness.kernel_objects), compiled once per run."""
    import aot_harness

    aot_harness.OBJECT_CACHE = run_temp_dir(tmp_path_factory) / "kernel-objects"


@pytest.fixture(scope="session", autouse=True)
def ctrl_c_reaches_the_processes_tests_start() -> None:
    """A child inherits an ignored SIGINT: pytest-xdist's workers ignore it, and so does a job a
    non-interactive shell starts in the background. The tests that press Ctrl-C on a tinyedge process
    need it at its default, as in a terminal."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


# The C and C++ compilers the firmware builds and the tests call, by the names they call them.
COMPILERS = ("cc", "gcc", "c++", "g++", "clang", "arm-none-eabi-gcc", "arm-none-eabi-g++", "avr-gcc", "avr-g++",
             "riscv64-unknown-elf-gcc", "riscv64-unknown-elf-g++")


@pytest.fixture(scope="session", autouse=True)
def compiler_cache(tmp_path_factory):
    """Where ccache is installed, every compiler the run calls by name goes through it (ccache's own
    "masquerade" links, first on PATH), with a cache for this run alone: a file compiled again with
    the same compiler, flags and preprocessed text (the AOT kernels and firmware sources of each
    board, built for model after model) is the object the compiler gave the first time, warnings
    included; what differs is compiled. Without ccache the compilers are called directly."""
    ccache = shutil.which("ccache")
    if ccache is None:
        yield
        return
    run = run_temp_dir(tmp_path_factory)
    links = run / "ccache-bin"
    links.mkdir(exist_ok=True)
    for name in (c for c in COMPILERS if shutil.which(c)):
        try:
            (links / name).symlink_to(ccache)
        except FileExistsError:  # made by another pytest-xdist worker
            pass
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", f"{links}{os.pathsep}{os.environ.get('PATH', '')}")
        patch.setenv("CCACHE_DIR", str(run / "ccache"))
        patch.setenv("CCACHE_NOCOMPRESS", "1")
        yield


@pytest.fixture(scope="session")
def sine_model(tmp_path_factory) -> ModelFiles:
    import models

    x, y = models.sine_data(300, seed=5)
    return quantized_session_model(tmp_path_factory.mktemp("sine"), "sine", models.sine_mlp(), x, y, 200)


@pytest.fixture(scope="session")
def cnn_model(tmp_path_factory) -> ModelFiles:
    import models

    x, y = models.blobs_images(160, seed=9)
    return quantized_session_model(tmp_path_factory.mktemp("cnn"), "cnn", models.small_cnn(), x, y, 100)


@pytest.fixture(scope="session")
def host_cnn_firmware(cnn_model, tmp_path_factory) -> Path:
    """The session CNN built for the host board with the AOT runtime."""
    from tinyedge.build import build
    from tinyedge.generate import generate

    require_tools("cc", "make")
    project = tmp_path_factory.mktemp("host-cnn") / "fw"
    generate(cnn_model.int8, "host", project, runtime="aot")
    build(project)
    return project


@pytest.fixture
def host_board(host_cnn_firmware):
    """The host board running the CNN, answering on a pseudo-terminal."""
    from tinyedge.flash import flash

    with flash(host_cnn_firmware) as url:
        yield url


def tflm_tree() -> Path | None:
    value = os.environ.get("TINYEDGE_TFLM_DIR")
    return Path(value) if value and Path(value).is_dir() else None


requires_tflm = pytest.mark.skipif(
    tflm_tree() is None,
    reason="needs a TFLM source tree: set TINYEDGE_TFLM_DIR to a tree made with TFLM's create_tflm_tree.py",
)


def require_tools(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} on PATH (installed by the README's set-up command)")
