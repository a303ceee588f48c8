"""Rich tables for people; the same data goes to JSON for rigs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.table import Table

from tinyedge.boards import Board

if TYPE_CHECKING:
    from tinyedge.doctor import DoctorReport
    from tinyedge.frameworks import BuildResult
    from tinyedge.ports import PortInfo
    from tinyedge.project import Project


def kib(n: int) -> str:
    return f"{n:,} B" if n < 10 * 1024 else f"{n / 1024:,.1f} KiB"


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def quantize_table(report: Any) -> Table:
    table = Table(title=f"Quantized → {escape(report.output)}", show_header=True, header_style="bold")
    table.add_column("")
    reference = report.float_reference
    table.add_column("float" if reference == "TensorFlow" else f"float ({escape(reference)})", justify="right")
    table.add_column("int8", justify="right")
    table.add_row("file size", kib(report.float_bytes), kib(report.int8_bytes))
    if report.accuracy:
        table.add_row("accuracy", pct(report.accuracy["float"]), pct(report.accuracy["int8"]))
        loss = 100 * (report.accuracy["float"] - report.accuracy["int8"])
        table.add_row("accuracy lost", "", f"{loss:.1f} pts" if abs(loss) >= 0.05 else "none")
    if report.label_rmse:
        table.add_row("RMSE vs labels", f"{report.label_rmse['float']:.5f}", f"{report.label_rmse['int8']:.5f}")
    table.add_section()
    table.add_row(f"int8 vs float on {report.eval_samples} samples ({escape(report.eval_source)})", "", "")
    table.add_row("  output RMSE", "", f"{report.rmse:.5f}")
    table.add_row("  cosine similarity", "", f"{report.cosine:.5f}")
    table.add_row("  top-1 agreement", "", pct(report.top1_agreement))
    table.caption = f"calibrated on {report.calibration_samples} samples · ops: {escape(', '.join(report.ops))}"
    if report.input_layout:
        table.caption += f" · input layout {escape(report.input_layout)}"
    return table


STATE_TEXT = {"carried": "carried from one inference to the next (validate resets it before the first sample)",
              "reset_each_inference": "reset before each inference (tinyedge_reset_state)"}


def inspect_tables(summary: Any) -> list[Table]:
    head = Table(title=escape(str(summary.path)), show_header=False)
    head.add_column(style="bold")
    head.add_column()
    head.add_row("model bytes", f"{summary.model_bytes:,}")
    head.add_row("sha256", summary.sha256)
    head.add_row("parameters", f"{summary.parameters:,}")
    head.add_row("MACs / inference", f"{summary.macs:,}")
    head.add_row("full int8", "yes" if summary.full_int8 else "no: " + escape("; ".join(summary.not_full_int8_because)))
    head.add_row("tensor arena", f"{summary.arena_bytes_host:,} B (host, 64-bit)")
    if summary.state != "none":
        head.add_row("state", STATE_TEXT[summary.state])
    head.caption = escape(summary.arena_note)
    if summary.zeros_note:
        head.add_row("zero weights", escape(summary.zeros_note))

    ops = Table(title="Ops", header_style="bold")
    ops.add_column("op")
    ops.add_column("version", justify="right")
    ops.add_column("count", justify="right")
    ops.add_column("runtimes")
    for name, version in summary.ops.items():
        ops.add_row(escape(name), str(version), str(summary.operators.count(name)),
                    ", ".join(summary.runtimes.get(name, [])) or "none")

    io = Table(title="Inputs and outputs", header_style="bold")
    for col in ("", "name", "shape", "dtype", "scale", "zero point"):
        io.add_column(col)
    for role, tensors in (("input", summary.inputs), ("output", summary.outputs)):
        for t in tensors:
            io.add_row(role, escape(t.name), str(tuple(t.shape)), escape(str(t.dtype)),
                       ", ".join(f"{s:.6g}" for s in t.scale) or "-", ", ".join(map(str, t.zero_point)) or "-")
    tables = [head, ops, io]
    if summary.board_fit:
        tables.append(fit_table(summary.board_fit))
    return tables


def ops_support_table(table: dict[str, Any], runtimes: list[str]) -> Table:
    """`tinyedge ops`: per op, how each runtime runs it (variants and paths) or that it does not."""
    out = Table(title="Ops per runtime", header_style="bold")
    out.add_column("op")
    for runtime in runtimes:
        out.add_column(runtime)
    for name, detail in table["detail"].items():
        if not any(name in table[r] for r in runtimes):
            continue
        cells = []
        for runtime in runtimes:
            info = detail[runtime]
            if runtime == "tflm" or name not in table[runtime]:
                cells.append("yes" if name in table[runtime] else "-")
            else:
                paths = f" ({', '.join(info['paths'])})" if info.get("paths") else ""
                cells.append(", ".join(info["variants"]) + paths)
        out.add_row(name, *cells)
    return out


def fit_table(fit: Any) -> Table:
    table = Table(title=f"Fit on {escape(fit.board)} ({escape(fit.runtime)})", header_style="bold")
    for col in ("", "needed", "budget", "use"):
        table.add_column(col, justify="right")
    for what, needed, budget in (("flash", fit.flash_needed, fit.flash_budget), ("RAM", fit.ram_needed, fit.ram_budget)):
        use = f"{100 * needed / budget:.0f} %" if budget else "unbounded"
        style = "red" if budget and needed > budget else "green"
        table.add_row(what, kib(needed), kib(budget) if budget else "-", f"[{style}]{use}[/]")
    table.caption = ("fits" if fit.fits else "[red]does not fit[/]") + f" · {escape(fit.basis)}"
    return table


def boards_table(boards: dict[str, Board]) -> Table:
    table = Table(title="Board profiles (boards.yaml)", header_style="bold")
    for col in ("id", "name", "framework", "flasher", "flash", "RAM", "runtimes", "USB ids"):
        table.add_column(col)
    for board in boards.values():
        table.add_row(*map(escape, (board.id, board.name, board.framework, board.flasher)),
                      kib(board.flash_bytes) if board.flash_bytes else "-", kib(board.ram_bytes) if board.ram_bytes else "-",
                      escape(", ".join(board.runtimes)), escape(", ".join(board.usb_ids)) or "-")
    return table


def board_table(board: Board) -> Table:
    table = Table(title=escape(f"{board.id}: {board.name}"), show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in board.as_dict().items():
        if isinstance(value, int) and not isinstance(value, bool) and key.endswith("bytes"):
            value = f"{value:,}"
        table.add_row(escape(key), escape(str(value)))
    return table


def validation_table(report: Any) -> Table:
    verdict = "[bold green]PASS[/]" if report.passed else "[bold red]FAIL[/]"
    table = Table(title=f"Validation on {escape(f'{report.board} ({report.runtime} {report.runtime_version})')} — {verdict}",
                  show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("samples", f"{report.samples} of {report.requested_samples}" + (" (interrupted)" if report.interrupted else ""))
    table.add_row("bit-exact", pct(report.bit_exact))
    table.add_row("max |Δ| / mean |Δ|", f"{report.max_abs_diff_lsb} LSB / {report.mean_abs_diff_lsb:.3f} LSB"
                  + (f" (tolerance {report.tolerance_lsb})" if report.tolerance_lsb else ""))
    table.add_row("RMSE (dequantized)", f"{report.rmse:.6f}")
    table.add_row("cosine", f"{report.cosine:.6f}")
    table.add_row("top-1 agreement", pct(report.top1_agreement))
    if report.accuracy:
        table.add_row("accuracy board / host int8" + (" / float" if "float" in report.accuracy else ""),
                      " / ".join(pct(report.accuracy[k]) for k in ("board", "host_int8", "float") if k in report.accuracy))
    if report.latency_us:
        lat = report.latency_us
        table.add_row("latency min / median / max", f"{lat['min']:,.0f} / {lat['median']:,.0f} / {lat['max']:,.0f} µs")
    if report.latency_cycles:
        lat = report.latency_cycles
        table.add_row("latency min / median / max", f"{lat['min']:,.0f} / {lat['median']:,.0f} / {lat['max']:,.0f} cycles")
    if getattr(report, "latency_instructions", None):
        lat = report.latency_instructions
        table.add_row("instructions min / median / max",
                      f"{lat['min']:,.0f} / {lat['median']:,.0f} / {lat['max']:,.0f}")
    if getattr(report, "energy_uj_estimate", None) is not None:
        sheet = report.energy_datasheet
        table.add_row("energy per inference (estimate)",
                      f"{report.energy_uj_estimate:,.1f} µJ at the datasheet's {sheet['run_current_ma']} mA, "
                      f"{sheet['supply_v']} V")
    table.add_row("tensor arena", f"{report.arena_bytes:,} B")
    if getattr(report, "link", None):
        link = report.link
        table.add_row("link", f"{link['retries']} retries, {link['crc_errors']} CRC errors, "
                              f"{link['resyncs']} resyncs, {link['timeouts']} timeouts, "
                              f"{link.get('stale', 0)} stale replies")
    table.add_row("model sha256", escape(report.model_sha256))
    if getattr(report, "reference_version", ""):
        board_tflm = f" · board: tflite-micro {report.board_tflm_commit}" if report.board_tflm_commit else ""
        table.add_row("host reference", escape(report.reference_version + board_tflm))
    if getattr(report, "fails_by_version", False):
        table.add_row("version mismatch", f"[yellow]{escape(report.version_note())}[/]")
    if report.resumed_samples:
        table.add_row("from the journal", f"{report.resumed_samples} samples (re-checked against the host reference)")
    if report.error:
        table.add_row("stopped", f"[red]{escape(report.error)}[/]")
    if report.latency_note:
        table.caption = f"latency: {escape(report.latency_note)}"
    return table


def shrink_table(report: Any) -> Table:
    target = f"to fit {escape(report.board)}" if report.board else f"by --keep {report.keep:g}"
    table = Table(title=f"Shrunk {target} → {escape(report.output)}", header_style="bold")
    table.add_column("")
    table.add_column("before", justify="right")
    table.add_column("after", justify="right")
    before, after = report.before, report.after
    table.add_row("int8 model", f"{before.int8_bytes:,} B", f"{after.int8_bytes:,} B")
    table.add_row("tensor arena (host)", f"{before.arena_bytes:,} B", f"{after.arena_bytes:,} B")
    table.add_row("MACs / inference", f"{before.macs:,}", f"{after.macs:,}")
    table.add_row("parameters", f"{before.parameters:,}", f"{after.parameters:,}")
    table.add_row("accuracy (float)", pct(before.accuracy_float), pct(after.accuracy_float))
    table.add_row("accuracy (int8)", pct(before.accuracy_int8), pct(after.accuracy_int8))
    if report.board:
        table.add_row(f"flash on {escape(report.board)}", f"{before.flash_needed:,} B", f"{after.flash_needed:,} B")
        table.add_row(f"RAM on {escape(report.board)}", f"{before.ram_needed:,} B", f"{after.ram_needed:,} B")
        table.add_row("fits", "yes" if before.fits else "no", "yes" if after.fits else "no")
    widths = escape(", ".join(f"{name} {a}→{b}" for name, (a, b) in report.widths.items()))
    table.caption = (f"width kept {report.keep:.0%} ({widths}) · distilled {report.epochs} epoch(s) · "
                     f"accuracy on {report.eval_samples} held-out samples")
    return table


def budget_table(project: Project, result: BuildResult) -> Table:
    board = project.board
    table = Table(title=escape(f"{project.dir} → {result.elf.relative_to(project.dir)} ({board.id}, {project.runtime})"),
                  header_style="bold")
    for column in ("", "used", "budget", "use"):
        table.add_column(column, justify="right")
    for what, used, budget in (("flash", result.flash_bytes, board.flash_bytes), ("RAM", result.ram_bytes, board.ram_bytes)):
        if budget:
            share = used / budget
            style = "red" if share > 1 else "yellow" if share > 0.9 else "green"
            table.add_row(what, f"{used:,} B", f"{budget:,} B", f"[{style}]{100 * share:.1f} %[/]")
        else:
            table.add_row(what, f"{used:,} B", "-", "unbounded")
    table.caption = f"built in {result.seconds:.1f} s · arena {project.arena_bytes:,} B · RAM = data + bss (+ reserved stack)"
    return table


def ports_table(ports: list[PortInfo]) -> Table:
    table = Table(title="Serial ports", header_style="bold")
    for column in ("device", "USB id", "description", "serial number", "could be"):
        table.add_column(column)
    for port in ports:
        table.add_row(*(escape(text or "-") for text in (port.device, port.usb_id, port.description, port.serial_number,
                                                          ", ".join(port.boards))))
    return table


def doctor_tables(report: DoctorReport) -> list[Table]:
    tools = Table(title="Tools", header_style="bold")
    for column in ("", "tool", "version / install", "needed by"):
        tools.add_column(column)
    for tool in sorted(report.tools, key=lambda t: (t.present, t.command)):
        mark = "[green]✔[/]" if tool.present else "[red]✘[/]"
        detail = escape(tool.version or "present") if tool.present else f"[yellow]{escape(tool.install)}[/]"
        tools.add_row(mark, escape(f"{tool.name} ({tool.command})"), detail, escape("\n".join(tool.needed_by)))
    missing = len(report.missing)
    tools.caption = (f"{missing} of {len(report.tools)} tools missing: boards needing them cannot be built or flashed"
                     if missing else "every tool is present")
    for note in report.unavailable:
        tools.add_row("[red]✘[/]", escape(note), "", "")

    environment = Table(title="Environment", header_style="bold", show_header=False)
    environment.add_column("")
    environment.add_column("", style="bold")
    environment.add_column("")
    tflm_mark = "[green]✔[/]" if report.tflm.valid else "[yellow]![/]"
    tflm_text = (f"{report.tflm.path} ({report.tflm.version}, {report.tflm.kernels} kernels)" if report.tflm.valid
                 else report.tflm.message)
    environment.add_row(tflm_mark, "TFLM tree", escape(tflm_text))
    serial = report.serial
    serial_ok = serial.in_serial_group and all(p["can_open"] for p in serial.ports)
    environment.add_row("[green]✔[/]" if serial_ok else "[red]✘[/]", "serial access", escape(serial.message))
    ports = ", ".join(f"{p['device']} ({p['usb_id'] or '?'}{': ' + '/'.join(p['boards']) if p['boards'] else ''})"
                      for p in serial.ports) or "none connected"
    environment.add_row("", "serial ports", escape(ports))
    return [tools, environment]


def status_table(report: dict[str, Any]) -> Table:
    """`tinyedge status`: one board's telemetry (telemetry.BoardStatus.as_dict())."""
    table = Table(title=f"{report['board']} on {report['port']}", header_style="bold", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    slot = "built into the firmware" if report["slot"] is None else f"slot {report['slot']}"
    latency = report["latency"]
    table.add_row("model", f"version {report['model_version']}, sha256 {report['model_sha256']} ({slot})")
    table.add_row("firmware", f"{report['firmware_version']} ({report['runtime']} {report['runtime_version']})")
    table.add_row("uptime", f"{report['uptime_s']:.1f} s, "
                  + (f"{report['resets']} resets" if report["resets_persist"] else "resets not kept (no persistent store)"))
    table.add_row("inferences", f"{report['inferences']} ({report['errors']} errors)")
    table.add_row("latency", "not measured" if latency["count"] == 0 else
                  f"min {latency['min_us']} µs, mean {latency['mean_us']} µs, max {latency['max_us']} µs")
    table.add_row("arena", f"{report['arena_high_water_bytes']:,} of {report['arena_bytes']:,} bytes (high-water)")
    return table


def fleet_table(report: dict[str, Any]) -> Table:
    """`tinyedge fleet status|update`: one row per labgrid place (fleet.FleetReport.as_dict())."""
    title = f"Fleet on {report['coordinator']}" + (f": version {report['bundle_version']}" if report["bundle_version"] else "")
    table = Table(title=title, header_style="bold")
    for column in ("place", "board", "result", "version", "model sha256", "slot", "last validation", "why"):
        table.add_column(column)
    for row in report["places"]:
        check = row["last_validation"]
        validation = (f"v{check['version']} {'passed' if check['passed'] else 'FAILED'} {check['when']}" if check else "-")
        color = {"ok": "green", "updated": "green", "skipped": "yellow"}.get(row["result"], "red")
        table.add_row(row["place"], row["board"] or "-", f"[{color}]{row['result']}[/]",
                      "-" if row["model_version"] is None else str(row["model_version"]),
                      row["model_sha256"] or "-", "-" if row["slot"] is None else str(row["slot"]), validation,
                      row["why"] or "")
    table.caption = f"{len(report['places'])} places in {report['seconds']:.1f} s"
    return table
