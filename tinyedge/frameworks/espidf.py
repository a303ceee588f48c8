"""ESP-IDF (ESP32, ESP32-S3): a CMake project whose one component, `main`, holds every source
(the runtime's files are moved there too, so the project is self-contained).

TFLM comes from Espressif's `esp-tflite-micro` component (with the ESP-NN kernels), declared in
main/idf_component.yml and fetched by the IDF Component Manager during `idf.py build`.
`build` runs `idf.py set-target` (when the target changed) and `idf.py build`, then returns the
images esptool writes (from ESP-IDF's build/flasher_args.json) at the profile's offsets, for the build record.

Serial: the protocol owns UART0, the port behind the DevKits' USB-UART bridge, so sdkconfig.defaults
turns the IDF console and boot log off (CONFIG_ESP_CONSOLE_NONE, bootloader log level NONE); only the
ROM loader's boot text precedes the protocol, and the host skips it. On the ESP32-S3 the port also
serves the USB Serial/JTAG connector (firmware/ports/espidf). The CPU runs at the profile's clock
(240 MHz), the main task gets an 8 KiB stack and the task watchdog is not armed (a long inference must
not reset the chip).

Flash: the project brings its own partitions.csv whose factory app partition, at the profile's app offset,
is exactly the profile's `flash_bytes` (the chip, `esptool.flash_size`, less what lies below the app), so
the budget `inspect --board` checks is the one `idf.py build` enforces. Updatable firmware (`generate
--updatable`) gives the profile's `store.bytes` of it to a `tinyedge` data partition at the chip's end, the
persistent store of its boot record and model slots (firmware/ports/espidf/te_store_espidf.c, on ESP-IDF's
esp_partition API, compiled only then; `main` then requires the esp_partition component).

TFLM's DebugLog (esp-tflite-micro) writes to stderr, which CONFIG_ESP_CONSOLE_NONE sends nowhere: its
error text cannot reach the protocol's port, so TFLM keeps its error strings here.

ESP-IDF v5.3 or newer: `main` names the driver components it uses (esp_driver_uart,
esp_driver_usb_serial_jtag, split out of `driver` in v5.3, which stopped re-exporting them in v6.0).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from tinyedge.boards import Board
from tinyedge.elf import elf_sizes
from tinyedge.errors import TinyedgeError
from tinyedge.frameworks import BuildResult, Framework, RenderContext
from tinyedge.frameworks.mcu_support import (
    drop_stale_sources, firmware_defines, gather_into, project_sources,
)
from tinyedge.project import Project
from tinyedge.sections import EspidfSettings, EsptoolSettings, StoreSettings
from tinyedge.templating import render_to
from tinyedge.tools import Tool, require_tool, run_build_step

IDF_VERSION = ">=5.3"
# The components main uses beyond ESP-IDF's common ones; all exist from v5.3 on.
MAIN_REQUIRES = ("esp_driver_uart", "esp_driver_usb_serial_jtag", "esp_timer")
IDF_RELEASE = "v6.0.2"
MAIN_STACK_BYTES = 8192
ENTRY_SOURCE = "tinyedge_app_main.c"
IDF_INSTALL = (f"install ESP-IDF v5.3 or newer (git clone -b {IDF_RELEASE} --recursive "
               "https://github.com/espressif/esp-idf, then ./install.sh esp32,esp32s3) "
               "and run `. ./export.sh` from it in this shell")
PARTITION_TABLE = "partitions.csv"
# Below the app: bootloader, partition table (0x8000), nvs and phy_init, as in ESP-IDF's own tables.
DATA_PARTITIONS = (("nvs", "data", "nvs", 0x9000, 0x6000), ("phy_init", "data", "phy", 0xF000, 0x1000))
# Updatable firmware's persistent store: a data partition of ESP-IDF's "undefined" subtype, found by its label.
STORE_PARTITION = ("tinyedge", "data", "undefined")
STORE_SOURCE = "te_store_espidf.c"
STORE_REQUIRES = ("esp_partition",)
ESP_FLASH_SIZES_MIB = (1, 2, 4, 8, 16, 32, 64, 128)
IDF = Tool("ESP-IDF", "idf.py", IDF_INSTALL, ("--version",))
# The images esptool writes, and their keys in ESP-IDF's build/flasher_args.json.
FLASHER_ARGS_KEYS = {"bootloader": "bootloader", "partition_table": "partition-table", "app": "app"}


def project_name(model_name: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_]", "_", model_name).strip("_") or "model"
    return f"tinyedge_{name}"


def idf_target(board: Board) -> str:
    target = board.settings(EspidfSettings).target or board.settings(EsptoolSettings).chip
    if not target:
        raise TinyedgeError(f"board '{board.id}' names no espidf.target: add it to its profile in boards.yaml.")
    return target


def flash_size_name(board: Board) -> str:
    """The chip's flash size as ESP-IDF and esptool spell it (`4MB`), from the profile's esptool.flash_size."""
    name = board.settings(EsptoolSettings).flash_size
    if not name.endswith("MB") or not name[:-2].isdigit() or int(name[:-2]) not in ESP_FLASH_SIZES_MIB:
        raise TinyedgeError(f"board '{board.id}' needs esptool.flash_size, one of "
                            f"{', '.join(f'{m}MB' for m in ESP_FLASH_SIZES_MIB)}: fix boards.yaml.")
    return name


def app_partition(board: Board) -> tuple[int, int]:
    """(offset, size) of the factory app partition: at the profile's app offset, `flash_bytes` long."""
    offset = board.settings(EsptoolSettings).app_offset
    chip_bytes = int(flash_size_name(board)[:-2]) * 1024 * 1024
    if offset < 0x10000 or offset % 0x10000 or board.flash_bytes % 0x1000 or offset + board.flash_bytes > chip_bytes:
        raise TinyedgeError(f"board '{board.id}': the app partition (flash_bytes {board.flash_bytes} at esptool.offsets.app "
                            f"{offset:#x}) must start at 0x10000 or a later 64 KiB boundary, fill whole 4 KiB "
                            f"sectors and end within the {flash_size_name(board)} chip: set flash_bytes to at most "
                            f"{chip_bytes - offset} in boards.yaml.")
    return offset, board.flash_bytes


def store_partition_bytes(board: Board) -> int:
    """The size of updatable firmware's `tinyedge` partition: the profile's `store.bytes`, an even number of
    4 KiB sectors (te_store_espidf.c gives the boot record two and each slot half the rest)."""
    if not board.has_section(StoreSettings):
        raise TinyedgeError(f"board '{board.id}' has no `store` section for its model slots: add one to its profile "
                            "in boards.yaml, or drop --updatable.")
    size = board.settings(StoreSettings).bytes
    if size % 0x2000 or size < 0x4000 or size >= board.flash_bytes:
        raise TinyedgeError(f"board '{board.id}': store.bytes {size} must be a multiple of 8192, at least 16384 and "
                            f"less than flash_bytes ({board.flash_bytes}): fix boards.yaml.")
    return size


class EspIdfFramework(Framework):
    name = "espidf"
    sections = (EspidfSettings, EsptoolSettings, StoreSettings)
    source_dir = "main"
    default_port = "espidf"
    required_tools = (IDF,)

    def render(self, ctx: RenderContext) -> None:
        board, out = ctx.board, ctx.out_dir
        main_dir = out / self.source_dir
        name = project_name(ctx.model_name)
        render_to(main_dir / ENTRY_SOURCE, "espidf/main/tinyedge_app_main.c.j2", board=board)
        store_bytes = store_partition_bytes(board) if ctx.extra.get("updatable") else 0
        sources = list(dict.fromkeys([p.name for p in project_sources(ctx, self.source_dir)] + [ENTRY_SOURCE]))
        drop_stale_sources(main_dir, sources)
        gather_into(ctx, self.source_dir, main_dir)
        if not store_bytes and STORE_SOURCE in sources:   # the store lives in updatable firmware's partition only
            sources.remove(STORE_SOURCE)
            (main_dir / STORE_SOURCE).unlink()
        tflm = board.tflm if ctx.runtime == "tflm" else {}
        render_to(out / "CMakeLists.txt", "espidf/CMakeLists.txt.j2", board=board,
                  idf_target=idf_target(board), project_name=name)
        render_to(main_dir / "CMakeLists.txt", "espidf/main/CMakeLists.txt.j2", runtime=ctx.runtime,
                  sources=sources, include_dirs=["."], defines=firmware_defines(ctx),
                  requires=MAIN_REQUIRES + (STORE_REQUIRES if store_bytes else ()))
        render_to(main_dir / "idf_component.yml", "espidf/main/idf_component.yml.j2",
                  idf_version=IDF_VERSION, component=tflm.get("component"),
                  component_version=tflm.get("version", "*"))
        render_to(out / "sdkconfig.defaults", "espidf/sdkconfig.defaults.j2", board=board,
                  idf_target=idf_target(board), main_stack_bytes=MAIN_STACK_BYTES,
                  flash_size=flash_size_name(board), partition_table=PARTITION_TABLE)
        app_offset, app_bytes = app_partition(board)
        store = [(*STORE_PARTITION, app_offset + app_bytes - store_bytes, store_bytes)] if store_bytes else []
        render_to(out / PARTITION_TABLE, "espidf/partitions.csv.j2", board=board, data_partitions=DATA_PARTITIONS,
                  app_offset=app_offset, app_bytes=app_bytes - store_bytes, store_partitions=store)

    def build(self, project: Project) -> BuildResult:
        board = project.board
        idf = require_tool(IDF)
        started = time.monotonic()
        log = project.dir / "build.log"
        log.write_text("")
        target = idf_target(board)
        if configured_target(project.dir) != target:
            run_build_step([idf, "set-target", target], project.dir, log, f"idf.py set-target {target}")
        run_build_step([idf, "build"], project.dir, log, "idf.py build")
        return record_build(project, time.monotonic() - started)


def configured_target(project_dir: Path) -> str | None:
    sdkconfig = project_dir / "sdkconfig"
    if not sdkconfig.is_file():
        return None
    match = re.search(r'^CONFIG_IDF_TARGET="([^"]+)"', sdkconfig.read_text(), re.MULTILINE)
    return match.group(1) if match else None


def read_flasher_args(build_dir: Path) -> dict[str, str]:
    """The images ESP-IDF built, by role, as paths relative to the project."""
    path = build_dir / "flasher_args.json"
    if not path.is_file():
        raise TinyedgeError(f"{path} is missing: build the project first with `tinyedge build {build_dir.parent}`.")
    try:
        args = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise TinyedgeError(f"{path} is damaged ({exc}): build the project again.") from None
    images: dict[str, str] = {}
    for role, key in FLASHER_ARGS_KEYS.items():
        entry = args.get(key)
        if not isinstance(entry, dict) or "file" not in entry:
            raise TinyedgeError(f"{path} names no {key} image: build the project again with `idf.py build`.")
        images[role] = str((build_dir / entry["file"]).relative_to(build_dir.parent))
    return images


def profile_offsets(board: Board) -> dict[str, int]:
    offsets = board.settings(EsptoolSettings).offsets
    missing = [role for role in FLASHER_ARGS_KEYS if not isinstance(offsets.get(role), int)]
    if missing:
        raise TinyedgeError(f"board '{board.id}' has no esptool offset for {', '.join(missing)}: "
                            "add esptool.offsets to its profile in boards.yaml.")
    return {role: offsets[role] for role in FLASHER_ARGS_KEYS}


def record_build(project: Project, seconds: float) -> BuildResult:
    """ESP-IDF's outputs: the ELF, and the images esptool writes at the profile's offsets."""
    images = read_flasher_args(project.dir / "build")
    offsets = profile_offsets(project.board)
    app = project.dir / images["app"]
    elf = app.with_suffix(".elf")
    if not elf.is_file():
        raise TinyedgeError(f"ESP-IDF built {app.name} but no {elf.name}: run `idf.py fullclean` and build again.")
    _, ram = elf_sizes(elf)
    return BuildResult(elf=elf, flash_bytes=app.stat().st_size, ram_bytes=ram, seconds=seconds,
                       artifacts={role: project.dir / path for role, path in images.items()}, offsets=offsets)


FRAMEWORK = EspIdfFramework()
