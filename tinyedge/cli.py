"""The `tinyedge` command line: thin wrappers over the stage modules."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import typer
import typer.core
from rich.console import Console
from rich.markup import escape
from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                           TimeRemainingColumn)
from typer.core import TyperGroup

try:  # typer vendors its own click from 0.2x on; older ones use click itself
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover
    from click.exceptions import UsageError

import tinyedge
from tinyedge.boards import DEFAULT_BOARD, get_board, load_boards
from tinyedge.errors import TinyedgeError
from tinyedge.outputs import check_output_dir, check_output_file, guard_outputs, write_atomically
from tinyedge.render import (board_table, boards_table, budget_table, doctor_tables, fleet_table, inspect_tables, kib,
                             ops_support_table, ports_table, quantize_table, shrink_table, status_table,
                             validation_table)

# The stage modules load NumPy (and quantize/shrink TensorFlow) when imported: each command imports
# the ones it runs, so `tinyedge --help` and the light commands start fast.
if TYPE_CHECKING:
    from tinyedge.frameworks import BuildResult
    from tinyedge.project import Project
    from tinyedge.validate import ValidationRun


class UsageErrorsExitOne(TyperGroup):
    """Click exits 2 on a usage error (unknown option, missing argument); the README gives 2 to
    "validation failed" and 1 to usage and input errors, so usage errors leave with 1."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().make_context(*args, **kwargs)
        except UsageError as exc:
            exc.exit_code = 1
            raise

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except UsageError as exc:
            exc.exit_code = 1
            raise


UNCUT_WIDTH = 10_000


def console_for(stream: Any, stderr: bool = False) -> Console:
    """A console that never cuts a line when its stream is not a terminal: a rig parses ids, URLs,
    paths and hashes from it, so tables and lines keep their natural width."""
    if stream.isatty():
        return Console(stderr=stderr)
    return Console(stderr=stderr, width=UNCUT_WIDTH)


def _flag_types_hidden(show_type: Callable[..., Any]) -> Callable[..., Any]:
    """Typer's rich help prints `<bool>` beside every flag (`--help <bool>`): a flag takes no value, so none."""

    def display_type_rich(self: Any, ctx: Any) -> Any:
        return None if getattr(self, "is_flag", False) and not getattr(self, "count", False) else show_type(self, ctx)

    return display_type_rich


typer.core.TyperOption.display_type_rich = _flag_types_hidden(typer.core.TyperOption.display_type_rich)  # type: ignore[method-assign]

app = typer.Typer(
    cls=UsageErrorsExitOne,
    name="tinyedge",
    help="Take a trained TensorFlow/Keras model onto a microcontroller and prove it runs correctly there.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = console_for(sys.stdout)
err_console = console_for(sys.stderr, stderr=True)


def show_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"tinyedge {tinyedge.__version__}\n")
        raise typer.Exit(0)


@app.callback()
def global_options(version: bool = typer.Option(False, "--version", callback=show_version, is_eager=True,
                                      help="Print tinyedge's version and exit.")) -> None:
    """Take a trained TensorFlow/Keras model onto a microcontroller and prove it runs correctly there."""


def user_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a TinyedgeError into one red sentence and its exit code; Ctrl-C into exit 130."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with terminate_as_interrupt():
                return func(*args, **kwargs)
        except TinyedgeError as exc:
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            ignore_further_interrupts()   # a second Ctrl-C while we leave must not turn 130 into a traceback
            err_console.print("[yellow]interrupted[/]")
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as exc:  # a bug of ours, not the user's: say so in one line
            if os.environ.get("TINYEDGE_DEBUG"):
                raise
            err_console.print(
                f"[bold red]internal error:[/] {type(exc).__name__}: {escape(str(exc))} — this is a tinyedge bug; "
                "rerun with TINYEDGE_DEBUG=1 for the traceback and report it.", highlight=False)
            raise typer.Exit(70) from None

    return wrapper


def ignore_further_interrupts() -> None:
    """While tinyedge leaves after a Ctrl-C or SIGTERM, further ones are ignored."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


@contextlib.contextmanager
def terminate_as_interrupt():
    """SIGTERM (a rig stopping a job) takes the same path as Ctrl-C: emulators are stopped and
    reports describe the run that was stopped."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


@contextlib.contextmanager
def flash_progress():
    """A progress callback (done, total, what) drawn as one rich bar per step of the flasher."""
    tasks: dict[str, Any] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), console=err_console,
                  transient=True) as bar:

        def progress(done: int, total: int, what: str) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(escape(what), total=total or None)
                bar.console.print(f"[dim]{escape(what)}[/]", highlight=False)
            bar.update(tasks[what], completed=done, total=total or None)

        yield progress


def command(func: Callable[..., Any]) -> Any:
    """A `tinyedge` command whose user errors end in one sentence and their exit code."""
    return app.command()(user_errors(func))


# Options several commands take, spelled once: flag -> (default, help).
SHARED_OPTIONS: dict[str, tuple[Any, str]] = {
    "--runtime": (None, "tflm, aot or viper (default: the board's only runtime; else tflm when a TFLM tree is "
                        "configured, else aot)."),
    "--tflm-dir": (None, "TFLM source tree (default: $TINYEDGE_TFLM_DIR)."),
    "--icount": (False, "QEMU: count instructions (-icount shift=0) for deterministic cycle figures."),
    "--firmware": (None, "MicroPython boards: install MicroPython from this file first."),
    "--junit": (None, "Write a JUnit XML report."),
    "--plot": (None, "Save a PNG of the |Δ| and latency histograms."),
    "--timeout": (None, "Seconds to wait for each reply (default: 5, and for an inference what the model's MACs take "
                        "at the board's clock)."),
    "--place": (None, "A labgrid place to acquire for this command; its NetworkSerialPort is the port."),
    "--coordinator": (None, "labgrid coordinator HOST:PORT for --place (default: $LG_COORDINATOR, else 127.0.0.1:20408)."),
    "--board-port": (None, "Serial port: a path, socket://host:port or rfc2217://host:port."),
    "--link-baud": (115200, "Baud rate."),
    "--reset-state-each-inference": (False, "Start every inference from the model's first state (LSTM/SVDF state "
                                            "zeroed before each), as a PyTorch model does; the project holds the "
                                            "model marked so, which validate then takes."),
}


def shared_option(flag: str) -> Any:
    default, help_text = SHARED_OPTIONS[flag]
    shown = {"--board-port": "--port", "--link-baud": "--baud"}.get(flag, flag)
    return typer.Option(default, shown, help=help_text)


def one_board(command_name: str, port: Optional[str], place: Optional[str]) -> None:
    if not port and not place:
        raise TinyedgeError(f"{command_name} needs the board: give --port (a path or URL) or --place (a labgrid place).")


def say_dim(line: str) -> None:
    err_console.print(f"[dim]{escape(line)}[/]", highlight=False)


def held_port(port: Optional[str], place: Optional[str], coordinator: Optional[str]):
    """--port as given, or the serial URL of the --place held (and released) around the command."""
    from tinyedge.places import port_or_place  # asyncio, and labgrid for --place: not at start-up

    return port_or_place(port, place, coordinator, say=say_dim)


# --- model commands: quantize / emit / inspect / boards (lead) ---


@command
def quantize(
    model: Path = typer.Argument(..., help="Keras .keras/.h5 file, SavedModel directory or .onnx file."),
    calibration: Path = typer.Option(..., "--calibration", help="Calibration inputs, .npy of shape (N, *input_shape) (ONNX: NCHW or NHWC)."),
    output: Path = typer.Option(..., "-o", "--output", help="Where to write the full-int8 .tflite."),
    eval_data: Optional[Path] = typer.Option(None, "--eval", help="Evaluation inputs .npy (default: hold out 20 % of the calibration data)."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Labels for the evaluation inputs: class indices, one-hot or regression targets."),
    samples: Optional[int] = typer.Option(None, "--samples", help="Use at most N calibration samples."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the report as JSON."),
    activations: str = typer.Option("int8", "--activations", help="int8, or int16 for TFLite's 16x8 quantization (int16 activations, int8 weights)."),
) -> None:
    """Quantize a float model to full int8 (or 16x8) and report the accuracy it lost."""
    from tinyedge import quantize as q  # NumPy, and TensorFlow when it runs

    guard_outputs({"MODEL": model, "--calibration": calibration, "--eval": eval_data, "--labels": labels},
                  {"-o": output, "--json": json_out})
    check_output_file(output, "-o")
    if json_out:
        check_output_file(json_out, "--json")
    cal = q.load_array(calibration, "calibration")
    ev = q.load_array(eval_data, "evaluation") if eval_data else None
    lab = q.load_array(labels, "labels") if labels else None
    with Progress(TextColumn("[bold]calibrating"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err_console, transient=True) as bar:
        task = bar.add_task("calibrating", total=None)
        report = q.quantize_model(model, cal, output, ev, lab, samples,
                                  progress=lambda done, total: bar.update(task, completed=done, total=total),
                                  activations=activations)
    for warning in report.warnings:
        err_console.print(f"[bold yellow]warning:[/] {escape(warning)}", highlight=False)
    for rewrite in report.rewrites:
        err_console.print(f"[bold]rewritten:[/] {escape(rewrite)}", highlight=False)
    console.print(quantize_table(report))
    if json_out:
        write_atomically(json_out, json.dumps(report.as_dict(), indent=2) + "\n", "--json")


@command
def emit(
    model: Path = typer.Argument(..., help="The .tflite model."),
    out_dir: Path = typer.Option(..., "-o", "--output", help="Directory for NAME.h and NAME.cc."),
    name: Optional[str] = typer.Option(None, "--name", help="C identifier / file name (default: from the model file name)."),
    progmem: bool = typer.Option(False, "--progmem", help="AVR: keep the array in program memory (PROGMEM)."),
    test_vectors: Optional[int] = typer.Option(None, "--test-vectors", help="Also emit N inputs and their expected outputs."),
    data: Optional[Path] = typer.Option(None, "--data", help="Inputs (.npy) for --test-vectors."),
) -> None:
    """Emit the model as a const, 16-byte-aligned C array with a header."""
    from tinyedge.emit import emit_model  # NumPy

    check_output_dir(out_dir, "-o")
    for path in emit_model(model, out_dir, name, progmem, test_vectors, data):
        console.print(f"wrote {path} ({path.stat().st_size:,} bytes)", markup=False, highlight=False)


@command
def inspect(
    model: Path = typer.Argument(..., help="The .tflite model."),
    board: Optional[str] = typer.Option(None, "--board", help="Check the fit against this board's flash and RAM budget."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Ops, tensors, parameters, MACs, arena, and the fit on a board."""
    from tinyedge.inspection import inspect_model  # NumPy

    summary = inspect_model(model, board)
    if as_json:
        print_json(summary.as_dict())
    else:
        for table in inspect_tables(summary):
            console.print(table)
    fit = summary.board_fit
    if fit and not fit.fits:
        raise TinyedgeError(
            f"the model does not fit {fit.board}: it needs {kib(fit.flash_needed)} of flash (budget {kib(fit.flash_budget)}) "
            f"and {kib(fit.ram_needed)} of RAM (budget {kib(fit.ram_budget)}); shrink the model or pick a larger board."
        )


@command
def shrink(
    model: Path = typer.Argument(..., help="The float Keras .keras/.h5 classifier."),
    data: Path = typer.Option(..., "--data", help="Training inputs .npy (a fifth is held out for the accuracy figures)."),
    labels: Path = typer.Option(..., "--labels", help="Their class labels .npy: indices or one-hot."),
    output: Path = typer.Option(..., "-o", "--output", help="Where to write the narrower .keras model."),
    board: Optional[str] = typer.Option(None, "--board", help="Narrow until the int8 model fits this board's flash and RAM."),
    keep: Optional[float] = typer.Option(None, "--keep", help="Or narrow every hidden Conv/Dense layer to this fraction of its width."),
    epochs: int = typer.Option(3, "--epochs", help="Distillation epochs against the original model."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the report as JSON."),
) -> None:
    """Fit a model to a board: narrow its layers (L1 norm), distil from the original, report before/after."""
    from tinyedge.quantize import load_array  # NumPy, and TensorFlow
    from tinyedge.shrink import shrink_model

    guard_outputs({"MODEL": model, "--data": data, "--labels": labels}, {"-o": output, "--json": json_out})
    check_output_file(output, "-o")
    if json_out:
        check_output_file(json_out, "--json")
    x, y = load_array(data, "training data"), load_array(labels, "labels")
    with err_console.status("shrinking") as status:
        report = shrink_model(model, x, y, output, board=board, keep=keep, epochs=epochs,
                              progress=say_dim)
        status.stop()
    console.print(shrink_table(report))
    if json_out:
        write_atomically(json_out, json.dumps(report.as_dict(), indent=2) + "\n", "--json")


@command
def ops(
    runtime: Optional[str] = typer.Option(None, "--runtime", help="Only this runtime: aot, tflm or viper."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Every op each runtime runs, with its variants (int8, int16...) and paths (portable, DSP)."""
    from tinyedge.ops.registry import RUNTIMES, ops_table

    if runtime is not None and runtime not in RUNTIMES:
        raise TinyedgeError(f"there is no runtime '{runtime}': pass --runtime aot, tflm or viper.")
    table = ops_table()
    runtimes = [runtime] if runtime else list(RUNTIMES)
    if as_json:
        print_json({**{r: table[r] for r in runtimes}, "detail": table["detail"]})
    else:
        console.print(ops_support_table(table, runtimes))


boards_app = typer.Typer(cls=UsageErrorsExitOne, help="List board profiles, or show one.", no_args_is_help=False)
app.add_typer(boards_app, name="boards")


@boards_app.callback(invoke_without_command=True)
@user_errors
def boards_list(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the board profiles in boards.yaml."""
    if ctx.invoked_subcommand:
        return
    boards = load_boards()
    if as_json:
        print_json([b.as_dict() for b in boards.values()])
    else:
        console.print(boards_table(boards))


@boards_app.command("show")
@user_errors
def boards_show(board_id: str = typer.Argument(..., metavar="ID"),
                as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show every field of one board profile."""
    board = get_board(board_id)
    if as_json:
        print_json(board.as_dict())
    else:
        console.print(board_table(board))


# --- stage commands: generate / build / flash (board-pipeline engineer) ---


@command
def generate(
    model: Path = typer.Argument(..., help="The full-int8 .tflite model."),
    board: str = typer.Option(..., "--board", help="Board id from boards.yaml (see `tinyedge boards`)."),
    out_dir: Path = typer.Option(..., "-o", "--output", help="Directory for the generated firmware project."),
    runtime: Optional[str] = shared_option("--runtime"),
    tflm_dir: Optional[Path] = shared_option("--tflm-dir"),
    arena_kb: Optional[int] = typer.Option(None, "--arena-kb", help="Tensor arena size in KiB (default: measured)."),
    updatable: Optional[bool] = typer.Option(None, "--updatable/--not-updatable", help="Keep the model in one of two slots that `tinyedge update` replaces (default: the profile's `updatable`)."),
    signing_key: Optional[Path] = typer.Option(None, "--signing-key", help="Updatable firmware: take only bundles signed with this Ed25519 public key's private key (PEM)."),
    reset_state: bool = shared_option("--reset-state-each-inference"),
) -> None:
    """Generate a firmware project for a board: sources, build files and the tinyedge.json manifest."""
    from tinyedge.generate import generate as generate_project  # NumPy, Jinja

    check_output_dir(out_dir, "-o")
    generate_project(model, board, out_dir, runtime=runtime, tflm_dir=tflm_dir, arena_kb=arena_kb, report=say_plain,
                     updatable=updatable, signing_key=signing_key, reset_state_each_inference=reset_state)


@command
def build(project_dir: Path = typer.Argument(..., metavar="DIR", help="A project made by `tinyedge generate`.")) -> None:
    """Build the firmware with the board's real toolchain and report flash and RAM use."""
    from tinyedge.build import build as build_project  # NumPy

    build_project(project_dir, show_budget)


@command
def flash(
    project_dir: Path = typer.Argument(..., metavar="DIR", help="A built project."),
    port: Optional[str] = typer.Option(None, "--port", help="Serial port (default: auto-detected by USB id)."),
    icount: bool = shared_option("--icount"),
    place: Optional[str] = shared_option("--place"),
    coordinator: Optional[str] = shared_option("--coordinator"),
    firmware: Optional[Path] = shared_option("--firmware"),
) -> None:
    """Flash the firmware; an emulated board keeps running here, printing its URL, until Ctrl-C."""
    from tinyedge.flash import flash as flash_project  # NumPy
    from tinyedge.flash import is_emulated, keep_serving, load_built_project
    from tinyedge.plugins import get_flasher

    project = load_built_project(project_dir)

    with held_port(port, place, coordinator) as port, flash_progress() as progress, \
            flash_project(project_dir, port, progress, icount=icount or None, firmware=firmware) as url:
        emulated = is_emulated(get_flasher(project.board.flasher), project, port)
        if not emulated:
            console.print(f"flashed {escape(project.board.name)}: the firmware answers on [bold]{escape(url)}[/]")
            return
        console.print(f"{escape(project.board.name)} is running: the firmware answers on [bold]{escape(url)}[/] (Ctrl-C stops it)")
        sys.stdout.flush()
        keep_serving(url)


# --- device commands: validate / deploy (lead) ---


class ValidationBar:
    """The samples-done callback, drawn as a rich bar from the run's first report until `stop`."""

    def __init__(self, console_: Console):
        self.bar = Progress(TextColumn("[bold]validating"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
                            TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), console=console_, transient=True)
        self.task: Any = None
        self.started = 0.0

    def __call__(self, done: int, total: int) -> None:
        if self.task is None:
            self.started = time.monotonic()
            self.bar.start()
            self.task = self.bar.add_task("validating", total=total, rate="")
        elapsed = max(time.monotonic() - self.started, 1e-6)
        self.bar.update(self.task, completed=done, total=total, rate=f"{done / elapsed:.1f} samples/s")

    def stop(self) -> None:
        self.bar.stop()

    def __enter__(self) -> "ValidationBar":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def show_validation(run: ValidationRun) -> None:
    """The verdict table and where the journal is; the exit code comes from `run.raise_for_verdict()`."""
    console.print(validation_table(run.report))
    console.print(f"results journal: {run.journal}", markup=False, highlight=False)


def say_plain(step: str, message: str) -> None:
    """What a stage says along the way, as it says it; a labgrid place's lines go dim to stderr."""
    if step == "place":
        say_dim(message)
    else:
        console.print(message, highlight=False, markup=False)


def show_budget(project: Project, result: BuildResult) -> None:
    console.print(budget_table(project, result))


@command
def validate(
    port: Optional[str] = typer.Option(None, "--port", help="Serial port: a path, socket://host:port or rfc2217://host:port."),
    model: Path = typer.Option(..., "--model", help="The .tflite the board runs."),
    data: list[Path] = typer.Option(..., "--data", help="Inputs .npy, float (quantized with the model's input scale) or int8: one --data per input in order, or one .npz keyed by input name."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Class labels for accuracy."),
    float_model: Optional[Path] = typer.Option(None, "--float-model", help="The float Keras/SavedModel, for its accuracy."),
    tolerance_lsb: int = typer.Option(0, "--tolerance-lsb", help="Allowed |Δ| per output, for optimized kernels (ESP-NN, CMSIS-NN)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the report as JSON."),
    junit_out: Optional[Path] = shared_option("--junit"),
    journal: Optional[Path] = typer.Option(None, "--journal", help="JSONL file results are appended to as they arrive."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from its journal."),
    plot: Optional[Path] = shared_option("--plot"),
    baud: Optional[int] = typer.Option(None, "--baud", help="Baud rate (default: the --board profile's, else 115200)."),
    board: Optional[str] = typer.Option(None, "--board", help="Board id from `tinyedge boards`: its profile's baud rate."),
    timeout: Optional[float] = shared_option("--timeout"),
    place: Optional[str] = shared_option("--place"),
    coordinator: Optional[str] = shared_option("--coordinator"),
) -> None:
    """Run the test inputs on the board and compare with the host reference, bit for bit."""
    from tinyedge.validate import ReportFiles, validate_and_report  # NumPy

    if not port and not place:
        raise TinyedgeError("validate needs the board: give --port (a path or URL) or --place (a labgrid place).")
    if board and not baud:
        baud = get_board(board).baud
    with held_port(port, place, coordinator) as port, ValidationBar(err_console) as progress:
        run = validate_and_report(port, model, data, labels, float_model, tolerance_lsb,
                                  ReportFiles(json_out, junit_out, plot, journal), resume, baud, timeout, progress=progress)
        progress.stop()
        show_validation(run)
    run.raise_for_verdict()


@command
def deploy(
    model: Path = typer.Argument(..., help="A .tflite, or a float Keras .keras/.h5 / SavedModel / .onnx (then give --calibration)."),
    board: str = typer.Option(DEFAULT_BOARD, "--board", help="Board id from `tinyedge boards`."),
    calibration: Optional[Path] = typer.Option(None, "--calibration", help="Calibration inputs .npy, to quantize a float model."),
    data: Optional[list[Path]] = typer.Option(None, "--data", help="Validation inputs .npy, one --data per input in order, or one .npz keyed by input name (default: the calibration data)."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Class labels for the validation inputs."),
    runtime: Optional[str] = shared_option("--runtime"),
    port: Optional[str] = typer.Option(None, "--port", help="Serial port (default: found by USB id, or the board's emulator)."),
    out_dir: Optional[Path] = typer.Option(None, "-o", "--output", help="Working directory (default: tinyedge-out/MODEL-BOARD)."),
    tflm_dir: Optional[Path] = shared_option("--tflm-dir"),
    arena_kb: Optional[int] = typer.Option(None, "--arena-kb", help="TFLM tensor arena size in KiB."),
    fit_arena: bool = typer.Option(False, "--fit-arena", help="Find the smallest working TFLM arena on the target and rebuild with it."),
    tolerance_lsb: int = typer.Option(0, "--tolerance-lsb", help="Allowed |Δ| per output (optimized kernels)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the validation report as JSON."),
    junit_out: Optional[Path] = shared_option("--junit"),
    plot: Optional[Path] = shared_option("--plot"),
    icount: bool = shared_option("--icount"),
    place: Optional[str] = shared_option("--place"),
    coordinator: Optional[str] = shared_option("--coordinator"),
    timeout: Optional[float] = shared_option("--timeout"),
    firmware: Optional[Path] = shared_option("--firmware"),
    reset_state: bool = shared_option("--reset-state-each-inference"),
) -> None:
    """Quantize, emit, generate, build, flash and validate, in one command."""
    from tinyedge.deploy import DeployPlan, deployed  # NumPy

    if not data and calibration is None:
        raise TinyedgeError("deploy validates on the board: give --data X.npy (or --calibration, which is used when --data is absent).")
    plan = DeployPlan(model, board, out_dir, calibration, data or None, labels, runtime, port, tflm_dir, arena_kb, fit_arena,
                      firmware, icount=icount or None, tolerance_lsb=tolerance_lsb, json=json_out, junit=junit_out,
                      plot=plot, timeout=timeout, place=place, coordinator=coordinator,
                      reset_state_each_inference=reset_state)
    started = time.monotonic()

    def step(name: str, message: str) -> None:
        console.print(f"[green]✔[/] [bold]{name:<9}[/] {escape(message)}  [dim]({time.monotonic() - started:.1f} s)[/]", highlight=False)

    with flash_progress() as progress, ValidationBar(err_console) as counted, \
            deployed(plan, step, say_plain, progress, show_budget, counted) as result:
        counted.stop()
        show_validation(result.validation)
    result.validation.raise_for_verdict()


# --- lifecycle commands: bundle / update / status ---


@command
def bundle(
    model: Path = typer.Argument(..., help="The retrained full-int8 .tflite."),
    version: int = typer.Option(..., "--version", help="The model's version: updates only go up."),
    output: Path = typer.Option(..., "-o", "--output", help="Where to write the bundle."),
    data: Optional[Path] = typer.Option(None, "--data", help="Self-test inputs .npy (default: seeded random inputs)."),
    vectors: int = typer.Option(4, "--vectors", help="How many self-test inputs the board checks bit for bit before using the model."),
    sign: Optional[Path] = typer.Option(None, "--sign", help="Ed25519 private key (PEM) to sign the bundle with."),
) -> None:
    """Package a model update: the model, its version and SHA-256, self-test vectors, a signature."""
    from tinyedge.bundle import make_bundle  # NumPy, tflite-micro

    check_output_file(output, "-o")
    made = make_bundle(model, version, output, data, vectors, sign)
    console.print(f"bundle {output}: version {made.version}, model sha256 {made.model_sha256}, "
                  f"{len(made.inputs)} self-test vectors{', signed' if made.signature else ''}", highlight=False)


@command
def update(
    bundle_path: Path = typer.Argument(..., metavar="BUNDLE", help="A bundle made by `tinyedge bundle`."),
    port: Optional[str] = shared_option("--board-port"),
    allow_downgrade: bool = typer.Option(False, "--allow-downgrade", help="Accept a version not above the board's."),
    shadow: Optional[int] = typer.Option(None, "--shadow", help="Run the new model beside the old one on the next N live inferences before promoting it."),
    min_agreement: float = typer.Option(1.0, "--min-agreement", help="With --shadow: the share of top-1 agreement (0-1) needed to promote."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    baud: int = shared_option("--link-baud"),
    timeout: Optional[float] = shared_option("--timeout"),
    place: Optional[str] = shared_option("--place"),
    coordinator: Optional[str] = shared_option("--coordinator"),
) -> None:
    """Replace the model on a board running updatable firmware, proven on the board before it is used."""
    from tinyedge.bundle import load_bundle
    from tinyedge.protocol import Device
    from tinyedge.update import one_update_at_a_time, update_board

    one_board("update", port, place)
    loaded = load_bundle(bundle_path)
    with held_port(port, place, coordinator) as url, one_update_at_a_time(url), \
            Device(url, baud=baud, timeout=timeout or 5.0) as device:
        report = update_board(device, loaded, allow_downgrade, shadow=shadow, min_agreement=min_agreement)
    if as_json:
        print_json(report.as_dict())
        return
    if shadow is not None:
        console.print(f"[green]✔[/] {report.board} on {report.url} keeps version {report.previous_version} active and runs "
                      f"version {report.version} beside it on its next {shadow} inferences; it is promoted at "
                      f"{min_agreement:.0%} top-1 agreement, else dropped (`tinyedge status` shows how it goes)",
                      highlight=False)
        return
    console.print(f"[green]✔[/] {report.board} on {report.url} runs version {report.version} "
                  f"(sha256 {report.model_sha256}, slot {report.slot}), was version {report.previous_version}; "
                  f"{report.sent_bytes:,} bytes in {report.transfer_s:.2f} s, self-test {report.commit_s:.2f} s",
                  highlight=False)


@command
def status(
    port: Optional[str] = shared_option("--board-port"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    baud: int = shared_option("--link-baud"),
    timeout: Optional[float] = shared_option("--timeout"),
    place: Optional[str] = shared_option("--place"),
    coordinator: Optional[str] = shared_option("--coordinator"),
) -> None:
    """What the board runs (model version, sha256, slot, firmware) and how it has done since boot."""
    from tinyedge.telemetry import board_status

    one_board("status", port, place)
    with held_port(port, place, coordinator) as url:
        report = board_status(url, baud, timeout or 5.0).as_dict()
    if as_json:
        print_json(report)
    else:
        console.print(status_table(report))


@command
def monitor(
    ports_: list[str] = typer.Option([], "--port", help="A board's serial port (repeat for several boards)."),
    places: list[str] = typer.Option([], "--place", help="A labgrid place to hold and watch (repeatable)."),
    prometheus: str = typer.Option(..., "--prometheus", help="HOST:PORT to serve the metrics on, for Prometheus to scrape."),
    interval: float = typer.Option(5.0, "--interval", help="Seconds between two polls of every board."),
    baud: int = shared_option("--link-baud"),
    timeout: Optional[float] = shared_option("--timeout"),
    coordinator: Optional[str] = shared_option("--coordinator"),
) -> None:
    """Serve every board's telemetry as OpenMetrics (tinyedge_inferences_total, ...) until stopped."""
    from tinyedge.places import port_or_place
    from tinyedge.telemetry import BoardsCollector, serve_metrics

    if not ports_ and not places:
        raise TinyedgeError("monitor needs boards: give --port (a path or URL) or --place (a labgrid place), once per board.")
    with contextlib.ExitStack() as held:
        urls = list(ports_) + [held.enter_context(port_or_place(None, place, coordinator, say=say_dim)) for place in places]
        collector = BoardsCollector(urls, baud, timeout or 5.0)
        stop = threading.Event()
        serve_metrics(collector, prometheus, interval, stop,
                      on_listen=lambda url: console.print(f"serving {len(urls)} boards' metrics on {url}", highlight=False),
                      on_poll=lambda c: [say_dim(f"{url}: {why}") for url, why in c.errors.items()])


fleet_app = typer.Typer(cls=UsageErrorsExitOne, help="Every board of a labgrid lab: what it runs, and staged rollouts.",
                        no_args_is_help=True)
app.add_typer(fleet_app, name="fleet")


def show_fleet(report: Any, as_json: bool, json_out: Optional[Path], junit_out: Optional[Path]) -> None:
    from tinyedge.fleet import write_fleet_reports

    write_fleet_reports(report, json_out, junit_out)
    if as_json:
        print_json(report.as_dict())
    else:
        console.print(fleet_table(report.as_dict()))


@fleet_app.command("status")
@user_errors
def fleet_status(
    coordinator: Optional[str] = shared_option("--coordinator"),
    match: list[str] = typer.Option([], "--match", help="Only places tagged KEY=VALUE (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Every place: its board, model version, sha256, slot and last validation."""
    from tinyedge.fleet import fleet_status as read_fleet

    report = read_fleet(coordinator, match)
    show_fleet(report, as_json, None, None)
    if report.failed:
        raise typer.Exit(3)


@fleet_app.command("update")
@user_errors
def fleet_update(
    bundle_path: Path = typer.Argument(..., metavar="BUNDLE", help="A bundle made by `tinyedge bundle`."),
    coordinator: Optional[str] = shared_option("--coordinator"),
    match: list[str] = typer.Option([], "--match", help="Only places tagged KEY=VALUE (repeatable), such as board=host."),
    canary: int = typer.Option(1, "--canary", help="Places updated and validated one by one first."),
    parallel: int = typer.Option(1, "--parallel", help="Places updated at a time after the canaries."),
    allow_downgrade: bool = typer.Option(False, "--allow-downgrade", help="Accept a version not above a board's."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    json_out: Optional[Path] = typer.Option(None, "--report", help="Also write the JSON report to this file."),
    junit_out: Optional[Path] = shared_option("--junit"),
) -> None:
    """Roll a bundle out: canaries first, each board validated with the bundle's vectors, stop at the first failure."""
    from tinyedge.bundle import load_bundle
    from tinyedge.fleet import fleet_update as roll_out

    loaded = load_bundle(bundle_path)
    report = roll_out(loaded, coordinator, match, canary, parallel, allow_downgrade,
                      progress=lambda row: say_dim(f"{row.place}: {row.result}" + (f" ({row.why})" if row.why else "")))
    show_fleet(report, as_json, json_out, junit_out)
    if report.failed:
        raise typer.Exit(3)


# --- host commands: ports / doctor (MCU-frameworks engineer) ---


@command
def ports(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List serial ports with their USB ids and the board profiles they could be."""
    from tinyedge.ports import list_ports  # pyserial's port scan

    found = list_ports()
    if as_json:
        print_json([port.as_dict() for port in found])
        return
    if not found:
        console.print("no serial ports found: connect a board (and check `tinyedge doctor` for permissions)")
        return
    console.print(ports_table(found))


@command
def doctor(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Check the toolchains, flashers, TFLM tree and serial permissions every board needs (a report: exits 0)."""
    from tinyedge.doctor import diagnose  # NumPy

    report = diagnose()
    if as_json:
        print_json(report.as_dict())
        return
    for table in doctor_tables(report):
        console.print(table)


def main() -> None:  # pragma: no cover
    app()
