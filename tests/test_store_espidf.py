"""The ESP32s' persistent store: `generate --updatable` gives the profile's `store.bytes` of the chip to a
`tinyedge` data partition, backed by firmware/ports/espidf/te_store_espidf.c on ESP-IDF's esp_partition API.

No ESP-IDF, Xtensa toolchain or ESP32 emulator here: the generated partition table is checked with the rules
of ESP-IDF's gen_esp32part.py (and with the script itself, and the store against ESP-IDF's own headers, where
IDF_PATH names an ESP-IDF tree); and the store's code runs on the host over a model of a partition of SPI NOR
flash behind the esp_partition API (tests/fixtures/esp_partition_nor: erases of whole 4 KiB sectors, writes
that only clear bits, power cuts at any erase or byte), with the real te_lifecycle.c.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import run_tinyedge
from tinyedge.boards import get_board
from tinyedge.paths import boards_file
from tinyedge.sections import EsptoolSettings, StoreSettings

REPO = Path(__file__).resolve().parent.parent
STORE = REPO / "tinyedge" / "firmware" / "ports" / "espidf" / "te_store_espidf.c"
PROTOCOL = REPO / "tinyedge" / "firmware" / "protocol"
COMMON = REPO / "tinyedge" / "firmware" / "common"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
NOR = FIXTURES / "esp_partition_nor"
NOR_BYTES = 16 * 4096   # the modelled partition: 16 sectors (records, and 7 per slot)
CMAKE_SRCS = re.compile(r"SRCS(.*?)INCLUDE_DIRS(.*?)PRIV_REQUIRES([^\n]*)", re.DOTALL)
BOARDS = [("esp32-devkitc", "4MB"), ("esp32-s3-devkitc", "8MB")]


def partition_table(path: Path) -> list[tuple[str, str, str, int, int]]:
    rows = [line.split(",") for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return [(name.strip(), kind.strip(), sub.strip(), int(offset, 0), int(size, 0))
            for name, kind, sub, offset, size, *_ in rows]


def generate(model: Path, board_id: str, out: Path, *flags: str) -> Path:
    done = run_tinyedge("generate", model, "--board", board_id, "--runtime", "aot", *flags, "-o", out)
    assert done.returncode == 0, done.stderr
    return out


def cmake_component(project: Path) -> tuple[list[str], list[str]]:
    srcs, _, requires = CMAKE_SRCS.search((project / "main" / "CMakeLists.txt").read_text()).groups()
    return re.findall(r'"([^"]+)"', srcs), requires.split()


@pytest.fixture(scope="module")
def updatable(sine_model, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("espidf-updatable")
    return {board_id: generate(sine_model.int8, board_id, out / board_id, "--updatable") for board_id, _ in BOARDS}


@pytest.mark.parametrize("board_id, flash_size", BOARDS)
def test_updatable_esp32_firmware_keeps_its_slots_in_a_tinyedge_partition_at_the_chips_end(updatable, board_id,
                                                                                          flash_size):
    board = get_board(board_id)
    chip = int(flash_size[:-2]) << 20
    store = board.settings(StoreSettings).bytes
    table = partition_table(updatable[board_id] / "partitions.csv")
    rows = {row[0]: row for row in table}
    assert rows["tinyedge"] == ("tinyedge", "data", "undefined", chip - store, store)
    assert rows["factory"] == ("factory", "app", "factory", board.settings(EsptoolSettings).app_offset,
                               board.flash_bytes - store), "the app partition gives the store its bytes"
    assert store % 0x2000 == 0, "te_store_espidf.c wants an even number of 4 KiB sectors"


@pytest.mark.parametrize("board_id, flash_size", BOARDS)
def test_the_partition_table_keeps_gen_esp32parts_rules(updatable, board_id, flash_size):
    """ESP-IDF's gen_esp32part.py: app partitions at 64 KiB boundaries and whole 4 KiB sectors long, data
    partitions at 4 KiB boundaries, none below the table's end (0x9000), none overlapping, all on the chip."""
    table = partition_table(updatable[board_id] / "partitions.csv")
    for name, kind, _, offset, size in table:
        assert offset % (0x10000 if kind == "app" else 0x1000) == 0, name
        assert kind != "app" or size % 0x1000 == 0, name
        assert offset >= 0x9000, name
    spans = sorted((offset, offset + size) for *_, offset, size in table)
    assert all(end <= start for (_, end), (start, _) in zip(spans, spans[1:]))
    assert spans[-1][1] == int(flash_size[:-2]) << 20, "the store ends where the chip does"


@pytest.mark.parametrize("board_id", [b for b, _ in BOARDS])
def test_updatable_esp32_firmware_compiles_the_store_and_requires_esp_partition(updatable, board_id):
    sources, requires = cmake_component(updatable[board_id])
    assert "te_store_espidf.c" in sources and "esp_partition" in requires
    assert (updatable[board_id] / "main" / "te_store_espidf.c").read_text() == STORE.read_text()
    assert '#define PARTITION_LABEL "tinyedge"' in STORE.read_text(), "the label the partition table gives it"


def test_firmware_that_is_not_updatable_has_no_store_and_the_whole_budget(sine_model, tmp_path):
    board = get_board("esp32-devkitc")
    project = generate(sine_model.int8, board.id, tmp_path / "plain")
    sources, requires = cmake_component(project)
    assert "te_store_espidf.c" not in sources and "esp_partition" not in requires
    assert not (project / "main" / "te_store_espidf.c").exists()
    table = partition_table(project / "partitions.csv")
    assert [row[0] for row in table] == ["nvs", "phy_init", "factory"] and table[-1][4] == board.flash_bytes
    generate(sine_model.int8, board.id, tmp_path / "plain", "--updatable")   # regenerated in place: the store is back
    assert "te_store_espidf.c" in cmake_component(project)[0]
    assert "tinyedge" in [row[0] for row in partition_table(project / "partitions.csv")]


def idf_path() -> Path:
    path = os.environ.get("IDF_PATH")
    if not path:
        pytest.skip("set IDF_PATH to an ESP-IDF tree (its partition_table and esp_partition components) to check "
                    "against ESP-IDF itself")
    return Path(path)


@pytest.mark.parametrize("board_id, flash_size", BOARDS)
def test_esp_idfs_own_gen_esp32part_accepts_the_table(updatable, board_id, flash_size, tmp_path):
    script = idf_path() / "components" / "partition_table" / "gen_esp32part.py"
    done = subprocess.run([sys.executable, str(script), "--flash-size", flash_size,
                           str(updatable[board_id] / "partitions.csv"), str(tmp_path / "table.bin")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    back = subprocess.run([sys.executable, str(script), str(tmp_path / "table.bin")], capture_output=True, text=True)
    assert "tinyedge,data,undefined," in back.stdout


def test_the_store_compiles_against_esp_idfs_headers(tmp_path):
    """-fsyntax-only with the host's GCC: ESP-IDF's esp_partition.h and esp_err.h (and esp_blockdev.h from v6.1),
    sdkconfig.h being the build's own output (empty here)."""
    components = idf_path() / "components"
    (tmp_path / "sdkconfig.h").write_text("")
    includes = [tmp_path, components / "esp_common" / "include", components / "esp_partition" / "include",
                components / "esp_blockdev" / "include", REPO / "tinyedge" / "firmware" / "protocol"]
    done = subprocess.run(["gcc", "-std=gnu17", "-Wall", "-Wextra", "-Werror", "-fsyntax-only",
                           *(f"-I{d}" for d in includes), str(STORE)], capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == "", done.stderr


# --- the store's code over a model of NOR flash ----------------------------------------------------------


def build_nor_check(tmp_path: Path, store: Path = STORE, layout_dir: Path | None = None) -> Path:
    binary = tmp_path / "espidf_store_check"
    includes = ([layout_dir] if layout_dir else []) + [NOR, PROTOCOL, COMMON, FIXTURES]
    done = subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-O1", *(f"-I{d}" for d in includes),
                           "-DSTORE_CHECK_PAGE=4096u", f"-DSTORE_CHECK_FLASH_BYTES={NOR_BYTES}u",
                           f"-DNOR_PARTITION_BYTES={NOR_BYTES}u",
                           str(NOR / "espidf_store_check.c"), str(NOR / "nor_partition.c"),
                           str(FIXTURES / "store_checks.c"), str(store),
                           str(PROTOCOL / "te_lifecycle.c"), str(FIXTURES / "fixture_model_info.c"),
                           str(FIXTURES / "lifecycle_alone.c"), "-o", str(binary)], capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return binary


def run_check(binary: Path, mode: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary), mode], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("mode, says", [
    ("layout", "every byte as written"),
    ("powercut", "none lost"),
    ("absent", "no store"), ("encrypted", "no store"), ("odd", "no store"),
])
def test_the_esp32_stores_code_over_a_nor_flash_partition(tmp_path, mode, says):
    """layout: record copies in sectors of their own, writes across sectors, overwrites, byte writes into erased
    flash (no erase), the store's ends, no write that needs a 0 bit to become 1, and an update rewriting slot 1
    in 64-byte chunks never erasing a sector of slot 0; powercut: te_lifecycle.c's boots counted while a cut hits
    every erase and every byte of a record write in turn (4,097 cuts), none lost; a missing or encrypted
    partition, or one of an odd number of sectors: no store."""
    run = run_check(build_nor_check(tmp_path), mode)
    assert run.returncode == 0, run.stdout + run.stderr
    assert says in run.stdout and run.stdout.endswith("ok\n"), run.stdout


def test_the_nor_checks_catch_a_store_that_never_erases_and_records_sharing_a_sector(tmp_path):
    """Not vacuous: without its erase the store's bytes are wrong; with both record copies in one sector a cut
    between that sector's erase and its program loses both."""
    text = STORE.read_text()
    line = "      erase |= sector_buffer[within + i] != ERASED;\n"
    assert line in text
    (tmp_path / "no_erase").mkdir()
    never_erases = tmp_path / "no_erase" / "te_store_espidf.c"
    never_erases.write_text(text.replace(line, "      (void)erase;\n"))
    run = run_check(build_nor_check(tmp_path / "no_erase", store=never_erases), "layout")
    assert run.returncode != 0 and "FAIL" in run.stdout, run.stdout

    layout = (PROTOCOL / "te_store_layout.h").read_text()
    line = "    *at = copy * page + offset % TE_STORE_RECORD_COPY;\n"
    assert line in layout
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "te_store_layout.h").write_text(
        layout.replace(line, "    *at = copy * TE_STORE_RECORD_COPY + offset % TE_STORE_RECORD_COPY;\n"))
    run = run_check(build_nor_check(tmp_path / "shared", layout_dir=tmp_path / "shared"), "powercut")
    assert run.returncode != 0 and "a power cut lost or corrupted the boot record" in run.stdout, run.stdout


@pytest.mark.parametrize("store, says", [
    ({"bytes": 12288}, "store.bytes 12288 must be a multiple of 8192, at least 16384 and less than flash_bytes"),
    ({"bytes": 1000}, "field 'store.bytes': must be a positive multiple of 4096 (got 1000)"),
    ({"bytes": 65536, "source": "../x"}, "field 'store.source': must name a te_store_<source>.c"),
])
def test_a_profile_with_a_store_esp_idf_cannot_partition_is_told_what_to_fix(sine_model, tmp_path, store, says):
    boards = yaml.safe_load(boards_file().read_text())
    boards["boards"]["esp32-devkitc"]["store"] = store
    (tmp_path / "boards.yaml").write_text(yaml.safe_dump(boards))
    result = run_tinyedge("generate", sine_model.int8, "--board", "esp32-devkitc", "--runtime", "aot", "--updatable",
                          "-o", tmp_path / "esp32", env={"TINYEDGE_BOARDS": str(tmp_path / "boards.yaml")})
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert says in " ".join(result.stderr.split()), result.stderr


# --- flash wear: an update erases each sector of its slot once ------------------------------------------


def build_update_check(tmp_path: Path, slots: Path = PROTOCOL / "te_slots.c") -> Path:
    """espidf_update_check.c: the real te_slots.c and te_lifecycle.c over the store on the NOR model, updates
    sent as a host sends them (slots_update.c), 240-byte chunks as on the Nano 33 BLE."""
    binary = tmp_path / "espidf_update_check"
    done = subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-O1",
                           *(f"-I{d}" for d in (NOR, PROTOCOL, COMMON, FIXTURES)), f"-DNOR_PARTITION_BYTES={NOR_BYTES}u",
                           "-DTE_UPDATABLE=1", str(NOR / "espidf_update_check.c"), str(NOR / "nor_partition.c"),
                           str(FIXTURES / "slots_update.c"), str(STORE), str(slots), str(PROTOCOL / "te_lifecycle.c"),
                           str(PROTOCOL / "te_sha256.c"), str(FIXTURES / "fixture_runtime.c"),
                           str(FIXTURES / "fixture_model_info.c"), "-o", str(binary)], capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return binary


def test_an_update_erases_each_sector_of_the_inactive_slot_once(tmp_path):
    """Three updates of a 20,060-byte image alternate between the slots of a chip that held another model
    everywhere (nothing erased); the second is interrupted (a chunk sent twice, then a resuming BEGIN). Each
    erases the 5 sectors its image occupies once each (before: each sector once per chunk landing in it, up
    to 18 times), none of the other slot, never needs a 0 bit turned to 1, and the next boot runs the last model."""
    run = run_check(build_update_check(tmp_path), "")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("5 sectors erased, each once") == 3 and "interrupted and resumed" in run.stdout
    assert run.stdout.endswith("ok\n"), run.stdout


def test_the_wear_check_catches_an_update_that_erases_per_chunk(tmp_path):
    """Not vacuous: te_slots.c without its erase ahead of the chunks leaves every chunk to the store's
    read-modify-write, which erases the sector again for each one."""
    text = (PROTOCOL / "te_slots.c").read_text()
    line = "  if (erase_through(end) != 0 || te_store_write("
    assert line in text
    per_chunk = tmp_path / "te_slots.c"
    per_chunk.write_text(text.replace(line, "  if ((erase_through(0u) != 0) || te_store_write("))
    run = run_check(build_update_check(tmp_path, per_chunk), "")
    assert run.returncode != 0 and "erased 18 times" in run.stdout, run.stdout
