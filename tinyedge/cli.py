"""The `tinyedge` command line: thin wrappers over the stage modules."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import typer
from rich.console import Console
from typer.core import TyperGroup

try:  # typer vendors its own click from 0.2x on; older ones use click itself
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover
    from click.exceptions import UsageError

from tinyedge.errors import TinyedgeError


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


def user_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a TinyedgeError into one red sentence and its exit code; Ctrl-C into exit 130."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with terminate_as_interrupt():
                return func(*args, **kwargs)
        except TinyedgeError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]")
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as exc:  # a bug of ours, not the user's: say so in one line
            if os.environ.get("TINYEDGE_DEBUG"):
                raise
            err_console.print(
                f"[bold red]internal error:[/] {type(exc).__name__}: {exc} — this is a tinyedge bug; "
                "rerun with TINYEDGE_DEBUG=1 for the traceback and report it.", highlight=False)
            raise typer.Exit(70) from None

    return wrapper


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
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    tasks: dict[str, Any] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), console=err_console,
                  transient=True) as bar:

        def progress(done: int, total: int, what: str) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(what, total=total or None)
                bar.console.print(f"[dim]{what}[/]", highlight=False)
            bar.update(tasks[what], completed=done, total=total or None)

        yield progress


def place_option():
    return typer.Option(None, "--place", help="A labgrid place to acquire for this command; its NetworkSerialPort is the port.")


def coordinator_option():
    return typer.Option(None, "--coordinator", help="labgrid coordinator HOST:PORT for --place (default: $LG_COORDINATOR, else 127.0.0.1:20408).")


def held_port(port: Optional[str], place: Optional[str], coordinator: Optional[str]):
    """--port as given, or the serial URL of the --place held (and released) around the command."""
    from tinyedge.places import port_or_place

    return port_or_place(port, place, coordinator, say=lambda line: err_console.print(f"[dim]{line}[/]", highlight=False))


# --- model commands: quantize / emit / inspect / boards (lead) ---


@app.command()
@user_errors
def quantize(
    model: Path = typer.Argument(..., help="Keras .keras/.h5 file, SavedModel directory or .onnx file."),
    calibration: Path = typer.Option(..., "--calibration", help="Calibration inputs, .npy of shape (N, *input_shape) (ONNX: NCHW or NHWC)."),
    output: Path = typer.Option(..., "-o", "--output", help="Where to write the full-int8 .tflite."),
    eval_data: Optional[Path] = typer.Option(None, "--eval", help="Evaluation inputs .npy (default: hold out 20 % of the calibration data)."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Labels for the evaluation inputs: class indices, one-hot or regression targets."),
    samples: Optional[int] = typer.Option(None, "--samples", help="Use at most N calibration samples."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the report as JSON."),
) -> None:
    """Quantize a float model to full int8 and report the accuracy it lost."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from tinyedge import quantize as q
    from tinyedge.outputs import check_output_file, write_atomically
    from tinyedge.render import quantize_table

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
                                  progress=lambda done, total: bar.update(task, completed=done, total=total))
    for warning in report.warnings:
        err_console.print(f"[bold yellow]warning:[/] {warning}", highlight=False)
    console.print(quantize_table(report))
    if json_out:
        write_atomically(json_out, json.dumps(report.as_dict(), indent=2) + "\n", "--json")


@app.command()
@user_errors
def emit(
    model: Path = typer.Argument(..., help="The .tflite model."),
    out_dir: Path = typer.Option(..., "-o", "--output", help="Directory for NAME.h and NAME.cc."),
    name: Optional[str] = typer.Option(None, "--name", help="C identifier / file name (default: from the model file name)."),
    progmem: bool = typer.Option(False, "--progmem", help="AVR: keep the array in program memory (PROGMEM)."),
    test_vectors: Optional[int] = typer.Option(None, "--test-vectors", help="Also emit N inputs and their expected outputs."),
    data: Optional[Path] = typer.Option(None, "--data", help="Inputs (.npy) for --test-vectors."),
) -> None:
    """Emit the model as a const, 16-byte-aligned C array with a header."""
    from tinyedge.emit import emit_model
    from tinyedge.outputs import check_output_dir
    from tinyedge.quantize import load_array

    check_output_dir(out_dir, "-o")
    arrays = load_array(data, "test data") if data else None
    for path in emit_model(model, out_dir, name, progmem, test_vectors, arrays):
        console.print(f"wrote {path} ({path.stat().st_size:,} bytes)")


@app.command()
@user_errors
def inspect(
    model: Path = typer.Argument(..., help="The .tflite model."),
    board: Optional[str] = typer.Option(None, "--board", help="Check the fit against this board's flash and RAM budget."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Ops, tensors, parameters, MACs, arena, and the fit on a board."""
    from tinyedge.inspection import inspect_model
    from tinyedge.render import inspect_tables, kib

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


@app.command()
@user_errors
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
    from tinyedge.outputs import check_output_file, write_atomically
    from tinyedge.quantize import load_array
    from tinyedge.render import shrink_table
    from tinyedge.shrink import shrink_model

    check_output_file(output, "-o")
    if json_out:
        check_output_file(json_out, "--json")
    x, y = load_array(data, "training data"), load_array(labels, "labels")
    with err_console.status("shrinking") as status:
        report = shrink_model(model, x, y, output, board=board, keep=keep, epochs=epochs,
                              progress=lambda message: err_console.print(f"[dim]{message}[/]", highlight=False))
        status.stop()
    console.print(shrink_table(report))
    if json_out:
        write_atomically(json_out, json.dumps(report.as_dict(), indent=2) + "\n", "--json")


boards_app = typer.Typer(cls=UsageErrorsExitOne, help="List board profiles, or show one.", no_args_is_help=False)
app.add_typer(boards_app, name="boards")


@boards_app.callback(invoke_without_command=True)
@user_errors
def boards_list(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the board profiles in boards.yaml."""
    if ctx.invoked_subcommand:
        return
    from tinyedge.boards import load_boards
    from tinyedge.render import boards_table

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
    from tinyedge.boards import get_board
    from tinyedge.render import board_table

    board = get_board(board_id)
    if as_json:
        print_json(board.as_dict())
    else:
        console.print(board_table(board))


# --- stage commands: generate / build / flash (board-pipeline engineer) ---


@app.command()
@user_errors
def generate(
    model: Path = typer.Argument(..., help="The full-int8 .tflite model."),
    board: str = typer.Option(..., "--board", help="Board id from boards.yaml (see `tinyedge boards`)."),
    out_dir: Path = typer.Option(..., "-o", "--output", help="Directory for the generated firmware project."),
    runtime: Optional[str] = typer.Option(None, "--runtime", help="tflm or aot (default: tflm when a TFLM tree is configured, else aot)."),
    tflm_dir: Optional[Path] = typer.Option(None, "--tflm-dir", help="TFLM source tree (default: $TINYEDGE_TFLM_DIR)."),
    arena_kb: Optional[int] = typer.Option(None, "--arena-kb", help="Tensor arena size in KiB (default: measured)."),
) -> None:
    """Generate a firmware project for a board: sources, build files and the tinyedge.json manifest."""
    from tinyedge.generate import generate as generate_project
    from tinyedge.outputs import check_output_dir

    check_output_dir(out_dir, "-o")
    generate_project(model, board, out_dir, runtime=runtime, tflm_dir=tflm_dir, arena_kb=arena_kb, console=console)


@app.command()
@user_errors
def build(project_dir: Path = typer.Argument(..., metavar="DIR", help="A project made by `tinyedge generate`.")) -> None:
    """Build the firmware with the board's real toolchain and report flash and RAM use."""
    from tinyedge.build import build as build_project

    build_project(project_dir, console=console)


@app.command()
@user_errors
def flash(
    project_dir: Path = typer.Argument(..., metavar="DIR", help="A built project."),
    port: Optional[str] = typer.Option(None, "--port", help="Serial port (default: auto-detected by USB id)."),
    icount: bool = typer.Option(False, "--icount", help="QEMU: count instructions (-icount shift=0) for deterministic cycle figures."),
    place: Optional[str] = place_option(),
    coordinator: Optional[str] = coordinator_option(),
    firmware: Optional[Path] = typer.Option(None, "--firmware", help="MicroPython boards: install MicroPython from this file first."),
) -> None:
    """Flash the firmware; an emulated board keeps running here, printing its URL, until Ctrl-C."""
    import time

    from tinyedge.flash import flash as flash_project
    from tinyedge.flash import is_emulated, load_built_project
    from tinyedge.plugins import get_flasher

    project = load_built_project(project_dir)

    with held_port(port, place, coordinator) as port, flash_progress() as progress, \
            flash_project(project_dir, port, progress, icount=icount or None, firmware=firmware) as url:
        emulated = is_emulated(get_flasher(project.board.flasher), project, port)
        if not emulated:
            console.print(f"flashed {project.board.name}: the firmware answers on [bold]{url}[/]")
            return
        console.print(f"{project.board.name} is running: the firmware answers on [bold]{url}[/] (Ctrl-C stops it)")
        sys.stdout.flush()
        while True:
            time.sleep(3600)


# --- device commands: validate / deploy (lead) ---


def validation_progress(console_: Console):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("[bold]validating"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
                    TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), console=console_, transient=True)


def prepare_reports(json_out: Optional[Path], junit_out: Optional[Path], plot: Optional[Path],
                    journal: Optional[Path] = None) -> None:
    """Check every report path can be written, then remove the previous run's reports: whatever
    happens next, a report on disk describes this run or there is none."""
    from tinyedge.outputs import check_output_file, remove_stale

    for path, flag in ((json_out, "--json"), (junit_out, "--junit"), (plot, "--plot"), (journal, "--journal")):
        if path:
            check_output_file(path, flag)
    for path, flag in ((json_out, "--json"), (junit_out, "--junit"), (plot, "--plot")):
        if path:
            remove_stale(path, flag)


def run_validation(port: str, model: Path, data: Path, labels: Optional[Path], float_model: Optional[Path],
                   tolerance_lsb: int, json_out: Optional[Path], junit_out: Optional[Path], journal: Optional[Path],
                   resume: bool, plot: Optional[Path], baud: Optional[int] = None,
                   extra: Optional[dict[str, Any]] = None, timeout: Optional[float] = None,
                   icount: Optional[bool] = None) -> None:
    """Shared by `validate` and `deploy`: run, print the table, write the rig outputs, set the exit code."""
    import time

    from tinyedge.errors import ValidationFailed
    from tinyedge.quantize import load_array
    from tinyedge.render import validation_table
    from tinyedge.validate import StoppedByDevice, validate as run, write_json, write_junit, write_plot

    journal = journal or (json_out.with_suffix(".jsonl") if json_out else Path("tinyedge-validate.jsonl"))
    prepare_reports(json_out, junit_out, plot, journal)
    arrays = load_array(data, "validation data")
    label_array = load_array(labels, "labels") if labels else None
    started = time.monotonic()
    stopped: Optional[StoppedByDevice] = None
    with validation_progress(err_console) as bar:
        task = bar.add_task("validating", total=len(arrays) if arrays.ndim else None, rate="")

        def progress(done: int, total: int) -> None:
            elapsed = max(time.monotonic() - started, 1e-6)
            bar.update(task, completed=done, total=total, rate=f"{done / elapsed:.1f} samples/s")

        try:
            report = run(port, model, arrays, label_array, float_model, tolerance_lsb, journal, resume, baud, progress,
                         icount=icount, timeout=timeout)
        except StoppedByDevice as exc:
            stopped, report = exc, exc.report
    seconds = time.monotonic() - started
    report.extra.update(extra or {})
    console.print(validation_table(report))
    console.print(f"results journal: {journal}")
    if json_out:
        write_json(report, json_out)
    if junit_out:
        write_junit(report, junit_out, seconds)
    if plot:
        write_plot(report, journal, plot)
    if stopped:
        raise stopped
    if report.interrupted:
        raise KeyboardInterrupt
    if not report.passed:
        raise ValidationFailed(
            f"{len(report.failures)} of {report.samples} samples differ from the host reference by more than "
            f"{report.tolerance_lsb} LSB (max {report.max_abs_diff_lsb}): see {journal}."
        )


@app.command()
@user_errors
def validate(
    port: Optional[str] = typer.Option(None, "--port", help="Serial port: a path, socket://host:port or rfc2217://host:port."),
    model: Path = typer.Option(..., "--model", help="The .tflite the board runs."),
    data: Path = typer.Option(..., "--data", help="Inputs .npy, float (quantized with the model's input scale) or int8."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Class labels for accuracy."),
    float_model: Optional[Path] = typer.Option(None, "--float-model", help="The float Keras/SavedModel, for its accuracy."),
    tolerance_lsb: int = typer.Option(0, "--tolerance-lsb", help="Allowed |Δ| per output, for optimized kernels (ESP-NN, CMSIS-NN)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the report as JSON."),
    junit_out: Optional[Path] = typer.Option(None, "--junit", help="Write a JUnit XML report."),
    journal: Optional[Path] = typer.Option(None, "--journal", help="JSONL file results are appended to as they arrive."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from its journal."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Save a PNG of the |Δ| and latency histograms."),
    baud: Optional[int] = typer.Option(None, "--baud", help="Baud rate (default: the --board profile's, else 115200)."),
    board: Optional[str] = typer.Option(None, "--board", help="Board id from `tinyedge boards`: its profile's baud rate."),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="Seconds to wait for each reply (default: 5, and for "
                                            "an inference what the model's MACs take at the board's clock)."),
    place: Optional[str] = place_option(),
    coordinator: Optional[str] = coordinator_option(),
) -> None:
    """Run the test inputs on the board and compare with the host reference, bit for bit."""
    if not port and not place:
        raise TinyedgeError("validate needs the board: give --port (a path or URL) or --place (a labgrid place).")
    if board and not baud:
        from tinyedge.boards import get_board

        baud = get_board(board).baud
    with held_port(port, place, coordinator) as port:
        run_validation(port, model, data, labels, float_model, tolerance_lsb, json_out, junit_out, journal, resume, plot, baud,
                       timeout=timeout)


@app.command()
@user_errors
def deploy(
    model: Path = typer.Argument(..., help="A .tflite, or a float Keras .keras/.h5 / SavedModel / .onnx (then give --calibration)."),
    board: str = typer.Option("qemu-cortex-m4", "--board", help="Board id from `tinyedge boards`."),
    calibration: Optional[Path] = typer.Option(None, "--calibration", help="Calibration inputs .npy, to quantize a float model."),
    data: Optional[Path] = typer.Option(None, "--data", help="Validation inputs .npy (default: the calibration data)."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Class labels for the validation inputs."),
    runtime: Optional[str] = typer.Option(None, "--runtime", help="tflm or aot (default: tflm when a TFLM tree is configured, else aot)."),
    port: Optional[str] = typer.Option(None, "--port", help="Serial port (default: found by USB id, or the board's emulator)."),
    out_dir: Optional[Path] = typer.Option(None, "-o", "--output", help="Working directory (default: tinyedge-out/MODEL-BOARD)."),
    tflm_dir: Optional[Path] = typer.Option(None, "--tflm-dir", help="TFLM source tree (default: $TINYEDGE_TFLM_DIR)."),
    arena_kb: Optional[int] = typer.Option(None, "--arena-kb", help="TFLM tensor arena size in KiB."),
    fit_arena: bool = typer.Option(False, "--fit-arena", help="Find the smallest working TFLM arena on the target and rebuild with it."),
    tolerance_lsb: int = typer.Option(0, "--tolerance-lsb", help="Allowed |Δ| per output (optimized kernels)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the validation report as JSON."),
    junit_out: Optional[Path] = typer.Option(None, "--junit", help="Write a JUnit XML report."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Save a PNG of the |Δ| and latency histograms."),
    icount: bool = typer.Option(False, "--icount", help="QEMU: count instructions (-icount shift=0) for deterministic cycle figures."),
    place: Optional[str] = place_option(),
    coordinator: Optional[str] = coordinator_option(),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="Seconds to wait for each reply (default: 5, and for "
                                            "an inference what the model's MACs take at the board's clock)."),
    firmware: Optional[Path] = typer.Option(None, "--firmware", help="MicroPython boards: install MicroPython from this file first."),
) -> None:
    """Quantize, emit, generate, build, flash and validate, in one command."""
    import time

    from tinyedge.deploy import DeployPlan, board_inputs, deploy as run_deploy
    from tinyedge.outputs import check_output_dir

    validation_data = data or calibration
    if validation_data is None:
        raise TinyedgeError("deploy validates on the board: give --data X.npy (or --calibration, which is used when --data is absent).")
    if icount:
        from tinyedge.boards import get_board

        if get_board(board).flasher != "qemu":
            raise TinyedgeError(f"--icount only applies to QEMU-emulated boards, not {board}: drop it.")
    out = check_output_dir(out_dir or Path("tinyedge-out") / f"{model.stem}-{board}", "-o")
    prepare_reports(json_out, junit_out, plot)
    plan = DeployPlan(model, board, out, calibration, data, labels, runtime, port, tflm_dir, arena_kb, fit_arena,
                      firmware, icount=icount or None)
    started = time.monotonic()

    def step(name: str, message: str) -> None:
        console.print(f"[green]✔[/] [bold]{name:<9}[/] {message}  [dim]({time.monotonic() - started:.1f} s)[/]", highlight=False)

    float_model = model if labels and result_is_float(model) else None
    board_data, layout = board_inputs(model, validation_data, out)
    with held_port(port, place, coordinator) as plan.port, flash_progress() as progress, \
            run_deploy(plan, step, console, progress) as result:
        fitted = {"arena_fitted_bytes": result.fitted_arena, "arena_built_bytes": result.arena_with_margin} if fit_arena else {}
        if layout:
            fitted["input_layout"] = layout
            step("layout", f"the board is fed {layout}")
        run_validation(result.port, result.tflite, board_data, labels, float_model, tolerance_lsb,
                       json_out, junit_out, out / "validate.jsonl", False, plot, baud=result.baud, extra=fitted,
                       timeout=timeout, icount=result.icount)


def result_is_float(model: Path) -> bool:
    from tinyedge.deploy import is_tflite

    return not is_tflite(model)


# --- host commands: ports / doctor (MCU-frameworks engineer) ---


@app.command()
@user_errors
def ports(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List serial ports with their USB ids and the board profiles they could be."""
    from tinyedge.ports import list_ports, ports_table

    found = list_ports()
    if as_json:
        print_json([port.as_dict() for port in found])
        return
    if not found:
        console.print("no serial ports found: connect a board (and check `tinyedge doctor` for permissions)")
        return
    console.print(ports_table(found))


@app.command()
@user_errors
def doctor(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Check the toolchains, flashers, TFLM tree and serial permissions every board needs (a report: exits 0)."""
    from tinyedge.doctor import diagnose, doctor_tables

    report = diagnose()
    if as_json:
        print_json(report.as_dict())
        return
    for table in doctor_tables(report):
        console.print(table)


def main() -> None:  # pragma: no cover
    app()
