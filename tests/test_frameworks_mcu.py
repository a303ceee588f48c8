"""The vendor-toolchain frameworks (ESP-IDF, Arduino, PlatformIO) and the UF2 flasher.

ESP-IDF, arduino-cli cores and PlatformIO platforms download their toolchains from the internet, so
the generated projects are checked structurally here (parsed as CMake, YAML, INI), the Arduino
sources are compiled for the boards' CPUs by the real Arm GCC, and `tinyedge build` without the
vendor tool must say how to install it. UF2 conversion is checked against the UF2 specification.
"""

from __future__ import annotations

import configparser
import json
import re
import shutil
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml

from conftest import require_tools, run_tinyedge
from tinyedge.boards import get_board
from tinyedge.errors import TinyedgeError
from tinyedge.flashers import get_flasher
from tinyedge.uf2 import (
    RP2040_FAMILY_ID, UF2_MAGIC_END, UF2_MAGIC_START0, UF2_MAGIC_START1, bin_to_uf2, elf_to_uf2, find_uf2_drive,
)
from tinyedge.frameworks.arduino import FRAMEWORK as ARDUINO
from tinyedge.generate import generate
from tinyedge.project import Artifact, Project
from tinyedge.sections import EsptoolSettings, PlatformioSettings

CMAKE_SRCS = re.compile(r"SRCS(.*?)INCLUDE_DIRS(.*?)PRIV_REQUIRES", re.DOTALL)


def quoted(text: str) -> list[str]:
    return re.findall(r'"([^"]+)"', text)


def sdkconfig(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#"))
    return {key: value.strip('"') for key, value in pairs}


@pytest.fixture(scope="module")
def projects(sine_model, tmp_path_factory) -> dict[str, Path]:
    """One generated project per (board, runtime), as `tinyedge generate` writes them."""
    out = tmp_path_factory.mktemp("mcu")
    made = {}
    for board_id, runtime in (("esp32-devkitc", "tflm"), ("esp32-s3-devkitc", "aot"),
                              ("arduino-nano-33-ble", "tflm"), ("arduino-nano-33-ble", "aot"),
                              ("raspberry-pi-pico", "tflm"), ("raspberry-pi-pico", "aot")):
        made[f"{board_id}/{runtime}"] = generate(sine_model.int8, board_id, out / f"{board_id}-{runtime}", runtime=runtime).dir
    return made


# --- ESP-IDF ---------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["esp32-devkitc/tflm", "esp32-s3-devkitc/aot"])
def test_espidf_project_compiles_every_source_in_main(projects, key):
    project = projects[key]
    board = get_board(key.split("/")[0])
    top = (project / "CMakeLists.txt").read_text()
    assert "include($ENV{IDF_PATH}/tools/cmake/project.cmake)" in top
    assert re.search(r"^project\(tinyedge_sine_int8_tflite\)$", top, re.MULTILINE)

    main = (project / "main" / "CMakeLists.txt").read_text()
    assert main.startswith("# The one component") and "idf_component_register(" in main
    srcs, includes = (quoted(part) for part in CMAKE_SRCS.search(main).groups())
    resolved = {(project / "main" / src).resolve() for src in srcs}
    assert all(path.is_file() for path in resolved), srcs
    on_disk = {p.resolve() for p in project.rglob("*") if p.suffix in (".c", ".cc", ".cpp")}
    assert resolved == on_disk, "every generated C/C++ source is compiled, and nothing else"
    names = {path.name for path in resolved}
    assert {"tinyedge_app_main.c", "port_espidf.c", "te_protocol.c", "te_main.c", "model_info.c"} <= names
    assert all((project / "main" / inc).is_dir() for inc in includes)
    # ESP-IDF v6's `driver` no longer re-exports the UART and USB Serial/JTAG drivers: name them (v5.3+).
    assert "PRIV_REQUIRES esp_driver_uart esp_driver_usb_serial_jtag esp_timer\n" in main
    assert f"TE_BAUD={board.baud}u" in main and f"TE_PROTO_RX_BUFFER={board.rx_buffer_bytes}" in main
    assert "void app_main(void) { te_main(TE_BAUD); }" in (project / "main" / "tinyedge_app_main.c").read_text()


def test_espidf_manifest_pulls_esp_tflite_micro_only_for_the_tflm_runtime(projects):
    board = get_board("esp32-devkitc")
    tflm = yaml.safe_load((projects["esp32-devkitc/tflm"] / "main" / "idf_component.yml").read_text())
    assert tflm["dependencies"]["espressif/esp-tflite-micro"] == board.tflm["version"]
    assert tflm["dependencies"]["idf"] == ">=5.3", "the esp_driver_* components main requires came with v5.3"
    aot = yaml.safe_load((projects["esp32-s3-devkitc/aot"] / "main" / "idf_component.yml").read_text())
    assert list(aot["dependencies"]) == ["idf"]


@pytest.mark.parametrize("key, target, flash", [("esp32-devkitc/tflm", "esp32", "4MB"),
                                                ("esp32-s3-devkitc/aot", "esp32s3", "8MB")])
def test_espidf_sdkconfig_defaults_give_the_protocol_the_uart(projects, key, target, flash):
    config = sdkconfig(projects[key] / "sdkconfig.defaults")
    assert config["CONFIG_IDF_TARGET"] == target
    assert config["CONFIG_ESP_DEFAULT_CPU_FREQ_MHZ_240"] == "y"
    assert config["CONFIG_ESP_CONSOLE_NONE"] == "y" and config["CONFIG_ESP_CONSOLE_SECONDARY_NONE"] == "y"
    assert config[f"CONFIG_ESPTOOLPY_FLASHSIZE_{flash}"] == "y"
    assert config["CONFIG_PARTITION_TABLE_CUSTOM"] == "y"
    assert config["CONFIG_PARTITION_TABLE_CUSTOM_FILENAME"] == "partitions.csv"
    assert "CONFIG_PARTITION_TABLE_SINGLE_APP_LARGE" not in config, "its factory partition is only 1,500 KiB"
    assert int(config["CONFIG_ESP_MAIN_TASK_STACK_SIZE"]) >= 8192
    assert config["CONFIG_ESP_TASK_WDT_INIT"] == "n"


def partition_table(path: Path) -> list[tuple[str, str, str, int, int]]:
    rows = [line.split(",") for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return [(name.strip(), kind.strip(), sub.strip(), int(offset, 0), int(size, 0))
            for name, kind, sub, offset, size, *_ in rows]


@pytest.mark.parametrize("key, chip_mib", [("esp32-devkitc/tflm", 4), ("esp32-s3-devkitc/aot", 8)])
def test_espidf_factory_partition_is_the_flash_budget_inspect_checks(projects, sine_model, key, chip_mib):
    """`inspect --board` and `idf.py build` (which fails an app larger than its partition) use one budget."""
    board = get_board(key.split("/")[0])
    table = partition_table(projects[key] / "partitions.csv")
    apps = [row for row in table if row[1] == "app"]
    assert [row[:3] for row in apps] == [("factory", "app", "factory")]
    _, _, _, offset, size = apps[0]
    assert offset == board.settings(EsptoolSettings).offsets["app"] == 0x10000
    assert size == board.flash_bytes and offset + size == chip_mib * 1024 * 1024, "the app gets the rest of the chip"
    spans = sorted((row[3], row[3] + row[4]) for row in table)
    assert spans[0][0] >= 0x9000 and all(end <= start for (_, end), (start, _) in zip(spans, spans[1:]))

    fit = json.loads(run_tinyedge("inspect", sine_model.int8, "--board", board.id, "--json").stdout)["board_fit"]
    assert fit["flash_budget"] == size


def test_an_esp32_profile_budgeting_the_whole_chip_is_refused_with_the_size_that_fits(sine_model, tmp_path):
    from tinyedge.paths import boards_file

    boards = yaml.safe_load(boards_file().read_text())
    boards["boards"]["esp32-devkitc"]["flash_bytes"] = 4 * 1024 * 1024     # the chip, not the app partition
    (tmp_path / "boards.yaml").write_text(yaml.safe_dump(boards))
    result = run_tinyedge("generate", sine_model.int8, "--board", "esp32-devkitc", "--runtime", "aot",
                          "-o", tmp_path / "esp32", env={"TINYEDGE_BOARDS": str(tmp_path / "boards.yaml")})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    message = " ".join(result.stderr.split())
    assert "end within the 4MB chip: set flash_bytes to at most 4128768 in boards.yaml." in message


def test_espidf_build_without_idf_says_how_to_install_it(projects):
    result = run_tinyedge("build", projects["esp32-devkitc/tflm"], env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 1
    message = " ".join(result.stderr.split())
    assert "idf.py" in message and "install.sh" in message and ". ./export.sh" in message
    assert re.search(r"git clone -b v\d+\.\d+(\.\d+)? --recursive https://github.com/espressif/esp-idf", message), \
        "a release, not master"
    assert "Traceback" not in result.stderr


def test_espidf_build_records_what_esptool_writes(tmp_path):
    """After `idf.py build`, the framework reads ESP-IDF's flasher_args.json; the build records it in tinyedge.json."""
    require_tools("arm-none-eabi-gcc")
    from test_esptool_flash import make_espidf_build
    from tinyedge.build import build_record
    from tinyedge.frameworks.espidf import record_build

    make_espidf_build(tmp_path, "esp32-s3-devkitc")
    (tmp_path / "main.c").write_text("int data_word = 7; int bss_words[100];\nint main(void) { return data_word; }\n")
    subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "--specs=nosys.specs", "-o",
                    str(tmp_path / "build" / "tinyedge_fw.elf"), str(tmp_path / "main.c")], check=True)
    project = Project.load(tmp_path)
    result = record_build(project, seconds=1.0)
    record = build_record(project, result)
    assert record["elf"].path == "build/tinyedge_fw.elf"
    assert (record["bootloader"].path, record["bootloader"].offset) == ("build/bootloader/bootloader.bin", 0x0)
    assert (record["app"].path, record["app"].offset) == ("build/tinyedge_fw.bin", 0x10000)
    assert result.flash_bytes == (tmp_path / "build" / "tinyedge_fw.bin").stat().st_size
    assert result.ram_bytes >= 404


# --- Arduino ---------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["arduino-nano-33-ble/tflm", "arduino-nano-33-ble/aot"])
def test_arduino_sketch_folder_holds_every_source(projects, key):
    project = projects[key]
    sketch = project / "firmware"
    ino = (sketch / "firmware.ino").read_text()
    assert re.search(r"void setup\(\) \{\s*//.*\n\s*te_setup\(115200u\);", ino)
    assert re.search(r"void loop\(\) \{\s*//.*\n\s*te_protocol_poll\(\);", ino)
    assert '#include "src/te_protocol.h"' in ino
    assert ("#include <Chirale_TensorFlowLite.h>" in ino) == key.endswith("tflm")
    sources = [p for p in project.rglob("*") if p.suffix in (".c", ".cc", ".cpp", ".h")]
    assert sources and all((sketch / "src") in p.parents for p in sources), "arduino-cli compiles only the sketch"
    assert yaml.safe_load((sketch / "sketch.yaml").read_text()) == {"default_fqbn": "arduino:mbed_nano:nano33ble"}


def test_arduino_compile_command_installs_nothing_and_passes_defines(projects):
    project = projects["arduino-nano-33-ble/tflm"]
    command = ARDUINO.compile_command("arduino-cli", project)
    assert command[:6] == ["arduino-cli", "compile", "--fqbn", "arduino:mbed_nano:nano33ble", "--output-dir", "build"]
    assert command[-1] == "firmware"
    flags = [command[i + 1] for i, arg in enumerate(command) if arg == "--build-property"]
    assert [f.split("=", 1)[0] for f in flags] == ["compiler.c.extra_flags", "compiler.cpp.extra_flags"]
    assert "-DTF_LITE_STATIC_MEMORY=1" in flags[1] and "-DTE_PROTO_RX_BUFFER=256" in flags[0]


def test_arduino_build_without_arduino_cli_says_how_to_install_it(projects):
    result = run_tinyedge("build", projects["arduino-nano-33-ble/aot"], env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 1
    message = " ".join(result.stderr.split())
    assert "arduino-cli" in message and "install.sh" in message and "Traceback" not in result.stderr


ARDUINO_H_STAND_IN = """\
// Test fixture standing in for an Arduino core's Arduino.h (no core can be installed offline):
// exactly the API the sketch and firmware/ports/arduino use, to compile them for the board's CPU.
#pragma once
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
class SerialPort {
 public:
  void begin(unsigned long baud);
  int available();
  int read();
  size_t write(const uint8_t *data, size_t len);
  size_t print(const char *text);
  void flush();
  explicit operator bool() const;
};
extern SerialPort Serial;
extern "C" {
#endif
unsigned long millis(void);
unsigned long micros(void);
void delay(unsigned long ms);
void yield(void);
#ifdef __cplusplus
}
#endif
"""


# Each framework's C/C++ dialect and warnings; our own sources are held to -Werror everywhere. ESP-IDF
# v6 builds every component with plain -Werror (tools/cmake/build.cmake at v6.0; gnu2x is GCC 12's
# name for its gnu23); arduino-cli and PlatformIO pass the user's warnings, "All" being -Wall -Wextra.
ESP_IDF_V6_WARNINGS = ["-Wall", "-Werror", "-Wno-error=unused-function", "-Wno-error=unused-variable",
                       "-Wno-error=unused-but-set-variable", "-Wno-error=deprecated-declarations", "-Wextra",
                       "-Wno-error=extra", "-Wno-unused-parameter", "-Wno-sign-compare", "-Wno-enum-conversion"]
FRAMEWORK_FLAGS = {
    "espidf": (["-std=gnu2x"], ["-std=gnu++2b"], ESP_IDF_V6_WARNINGS),
    "arduino": (["-std=gnu11"], ["-std=gnu++17"], ["-Wall", "-Wextra", "-Werror"]),
    "platformio": (["-std=gnu17"], ["-std=gnu++17"], ["-Wall", "-Wextra", "-Werror"]),
}
ARCH_DEFINES = {"arduino-nano-33-ble": ["-DARDUINO_ARCH_MBED=1", "-DF_CPU=64000000UL"],
                "raspberry-pi-pico": ["-DARDUINO_ARCH_RP2040=1", "-DF_CPU=133000000UL"]}
CHIRALE_H_STAND_IN = "// Test fixture standing in for Chirale_TensorFlowLite.h, which is empty but for peripherals.h.\n#pragma once\n"


def source_dir(project: Path) -> Path:
    for relative in ("main", "firmware/src", "src"):
        if (project / relative).is_dir():
            return project / relative
    raise AssertionError(f"no source folder in {project}")


def compile_jobs(project: Path, board_id: str, stand_ins: Path, tflm: Path | None) -> list[list[str]]:
    """One arm-none-eabi command per C/C++ file the framework would compile, with the project's own defines."""
    board = get_board(board_id)
    c_std, cxx_std, warnings = FRAMEWORK_FLAGS[board.framework]
    src = source_dir(project)
    cpu = list(board.cpu_flags) or ["-mcpu=cortex-m4", "-mthumb"]     # Xtensa LX6/LX7: a 32-bit stand-in
    includes = [f"-I{src}", f"-I{stand_ins}"]
    if tflm is not None:
        from tinyedge.tflm_tree import include_dirs
        # ESP-IDF hands main the TFLM component's folders as plain -I, so its -Werror covers TFLM's headers;
        # under arduino-cli and PlatformIO they are a library's, whose warnings never fail a build.
        flag = "-I" if board.framework == "espidf" else "-isystem"
        includes += [f"{flag}{d}" for d in include_dirs(tflm)]
    common = [*cpu, "-O2", "-c", "-o", "/dev/null", *warnings, *includes, *ARCH_DEFINES.get(board_id, []),
              *(f"-D{name}={value}" for name, value in project_defines(project).items())]
    jobs = []
    for path in sorted(src.iterdir()):
        if path.name == "port_espidf.c":
            continue        # needs ESP-IDF's own headers: compiled by hand against v5.3 and v6.0
        if path.suffix == ".c":
            jobs.append(["arm-none-eabi-gcc", *c_std, *common, str(path)])
        elif path.suffix in (".cc", ".cpp"):
            jobs.append(["arm-none-eabi-g++", *cxx_std, "-fno-exceptions", "-fno-rtti", *common, str(path)])
    if board.framework == "arduino":
        jobs.append(["arm-none-eabi-g++", *cxx_std, *common, "-x", "c++", "-include", "Arduino.h",
                     str(project / "firmware" / "firmware.ino")])
    return jobs


@pytest.mark.parametrize("key", ["esp32-devkitc/tflm", "esp32-s3-devkitc/aot", "arduino-nano-33-ble/tflm",
                                 "arduino-nano-33-ble/aot", "raspberry-pi-pico/tflm"])
def test_generated_sources_compile_with_werror_on_a_stand_in_arm_toolchain(projects, key, tmp_path):
    """Every source of ours a generated project holds (port, protocol, model info, AOT model and kernels, TFLM
    glue), compiled with the project's own defines and its framework's flags under -Werror. Debian's Arm GCC
    stands in for the boards' compilers (Xtensa ones too); Arduino.h and Chirale_TensorFlowLite.h are stand-ins;
    a TFLM tree (TINYEDGE_TFLM_DIR) stands in for the TFLM library the framework brings. A define given twice,
    like TE_ARENA_BYTES once was (-D and te_model.h), fails here rather than under ESP-IDF v6."""
    require_tools("arm-none-eabi-gcc", "arm-none-eabi-g++")
    board_id, runtime = key.split("/")
    tflm = None
    if runtime == "tflm":
        from conftest import tflm_tree
        tflm = tflm_tree()
        if tflm is None:
            pytest.skip("the tflm glue needs TFLM's headers: set TINYEDGE_TFLM_DIR to a TFLM tree")
    (tmp_path / "Arduino.h").write_text(ARDUINO_H_STAND_IN)
    (tmp_path / "Chirale_TensorFlowLite.h").write_text(CHIRALE_H_STAND_IN)
    jobs = compile_jobs(projects[key], board_id, tmp_path, tflm)
    compiled = {Path(job[-1]).name for job in jobs}
    assert {"te_protocol.c", "te_main.c", "model_info.c"} <= compiled
    assert ({"te_model.c", "te_kernels.c"} <= compiled) == (runtime == "aot")
    assert ({"te_tflm_runtime.cc", "te_tflm_ops.cc", "te_tflm_model_data.cc"} <= compiled) == (runtime == "tflm")
    assert ("port_arduino.cpp" in compiled) == (not board_id.startswith("esp32"))
    for command in jobs:
        done = subprocess.run(command, capture_output=True, text=True, cwd=projects[key])
        assert done.returncode == 0, f"{' '.join(command)}\n{done.stderr}"
        assert "warning" not in done.stderr, done.stderr


def test_only_the_runtime_defines_the_arena_size(projects):
    """te_model.h writes `#define TE_ARENA_BYTES`: a -D of the same name from the build files is a redefinition."""
    for key, project in projects.items():
        assert not any(name.startswith("TE_ARENA") for name in project_defines(project)), key
    assert "#define TE_ARENA_BYTES" in (projects["raspberry-pi-pico/aot"] / "aot" / "te_model.h").read_text()


# --- PlatformIO --------------------------------------------------------------------------------


def test_platformio_ini_comes_from_the_board_profile(projects):
    board = get_board("raspberry-pi-pico")
    settings = board.settings(PlatformioSettings)
    ini = configparser.ConfigParser()
    ini.read(projects["raspberry-pi-pico/tflm"] / "platformio.ini")
    assert ini["platformio"]["default_envs"] == "raspberry-pi-pico"
    env = ini["env:raspberry-pi-pico"]
    assert (env["platform"], env["board"], env["framework"]) == (settings.platform, settings.board, settings.framework)
    assert env["board_build.core"] == "earlephilhower"
    assert env["lib_deps"].split() == board.tflm["lib_deps"]
    flags = env["build_flags"].split()
    assert {"-DTE_BAUD=115200u", "-DTE_PROTO_RX_BUFFER=256", "-DTF_LITE_STATIC_MEMORY=1", "-Isrc"} <= set(flags)
    main = (projects["raspberry-pi-pico/tflm"] / "src" / "main.cpp").read_text()
    assert "te_setup(115200u);" in main and "te_protocol_poll();" in main
    assert "#include <Chirale_TensorFlowLite.h>" in main

    # --runtime aot is the bare-metal image pico-emulated runs (tests/test_pico.py): no PlatformIO.
    assert not (projects["raspberry-pi-pico/aot"] / "platformio.ini").exists()
    assert "PREFIX := arm-none-eabi-" in (projects["raspberry-pi-pico/aot"] / "Makefile").read_text()


def test_the_pico_takes_a_tflm_library_that_builds_for_rp2040(projects):
    """Not tflite-micro-arduino-examples: archived, and its peripherals.h stops any board but the Nano 33 BLE.
    Chirale's library has no board check; it lists no rp2040 architecture, which PlatformIO's `soft`
    compatibility mode does not hold against it (only `strict` checks platforms)."""
    ini = configparser.ConfigParser()
    ini.read(projects["raspberry-pi-pico/tflm"] / "platformio.ini")
    env = ini["env:raspberry-pi-pico"]
    assert env["lib_deps"].split() == ["https://github.com/spaziochirale/Chirale_TensorFlowLite.git#v2.0.0"]
    assert env["lib_compat_mode"] == "soft"
    assert "tflite-micro-arduino-examples" not in (projects["raspberry-pi-pico/tflm"] / "platformio.ini").read_text()


def project_defines(project: Path) -> dict[str, str]:
    """The -D defines a generated project compiles its sources with, read from its own build files."""
    if (project / "arduino_build.json").is_file():
        return json.loads((project / "arduino_build.json").read_text())["defines"]
    if (project / "platformio.ini").is_file():
        ini = configparser.ConfigParser()
        ini.read(project / "platformio.ini")
        flags = ini[f"env:{ini['platformio']['default_envs']}"]["build_flags"].split()
        return dict(flag[2:].split("=", 1) for flag in flags if flag.startswith("-D"))
    if (project / "Makefile").is_file():
        defines = re.search(r"^DEFINES := (.*)$", (project / "Makefile").read_text(), re.MULTILINE).group(1).split()
        return dict(flag[2:].split("=", 1) for flag in defines)
    block = re.search(r"target_compile_definitions\(\$\{COMPONENT_LIB\} PRIVATE(.*?)\)",
                      (project / "main" / "CMakeLists.txt").read_text(), re.DOTALL)
    return dict(line.strip().split("=", 1) for line in block.group(1).splitlines() if line.strip())


@pytest.mark.parametrize("key", ["arduino-nano-33-ble/tflm", "raspberry-pi-pico/tflm"])
def test_tflm_on_arduino_cores_is_built_without_error_strings(projects, key):
    """Chirale's DebugLog prints on `Serial`, the protocol's port: `--fit-arena`'s deliberate "Failed to
    allocate" must never reach it. The define goes to every compilation unit, the library's included."""
    assert project_defines(projects[key])["TF_LITE_STRIP_ERROR_STRINGS"] == "1"
    assert "TF_LITE_STRIP_ERROR_STRINGS" not in project_defines(projects[key.replace("tflm", "aot")])


def test_tflm_under_esp_idf_keeps_its_error_strings_on_the_silenced_console(projects):
    """esp-tflite-micro's DebugLog writes to stderr, and CONFIG_ESP_CONSOLE_NONE sends that nowhere."""
    assert "TF_LITE_STRIP_ERROR_STRINGS" not in project_defines(projects["esp32-devkitc/tflm"])
    assert sdkconfig(projects["esp32-devkitc/tflm"] / "sdkconfig.defaults")["CONFIG_ESP_CONSOLE_NONE"] == "y"


def test_platformio_build_without_pio_says_how_to_install_it(projects):
    result = run_tinyedge("build", projects["raspberry-pi-pico/tflm"], env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 1
    assert "pip install platformio" in " ".join(result.stderr.split())


@pytest.mark.skipif(shutil.which("pio") is None, reason="PlatformIO is not installed (it needs the internet anyway)")
def test_platformio_accepts_the_project(projects):
    done = subprocess.run(["pio", "project", "config", "--json-output"], cwd=projects["raspberry-pi-pico/tflm"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# --- UF2 -----------------------------------------------------------------------------------------


def uf2_blocks(data: bytes) -> list[tuple]:
    assert len(data) % 512 == 0
    return [struct.unpack_from("<8I476sI", data, offset) for offset in range(0, len(data), 512)]


def test_bin_to_uf2_follows_the_uf2_spec():
    image = bytes(range(256)) * 3 + b"\x5a" * 100          # 868 bytes: three full blocks and a partial one
    blocks = uf2_blocks(bin_to_uf2(image))
    assert len(blocks) == 4
    for number, (m0, m1, flags, addr, size, blockno, total, family, payload, end) in enumerate(blocks):
        assert (m0, m1, end) == (UF2_MAGIC_START0, UF2_MAGIC_START1, UF2_MAGIC_END) == (0x0A324655, 0x9E5D5157, 0x0AB16F30)
        assert flags == 0x00002000 and family == RP2040_FAMILY_ID == 0xE48BFF56
        assert addr == 0x10000000 + 256 * number and blockno == number and total == 4
        assert size == (256 if number < 3 else 100)
        assert payload[:size] == image[256 * number:256 * number + size] and payload[size:] == bytes(476 - size)


def test_elf_to_uf2_takes_the_flash_segments_of_a_real_rp2040_link(tmp_path):
    require_tools("arm-none-eabi-gcc", "arm-none-eabi-objcopy")
    (tmp_path / "app.c").write_text(
        "const unsigned table[300] = {1, 2, 3, [299] = 0xC0FFEE};\n"
        "unsigned counter = 5;\n"
        "void _start(void) { for (;;) counter += table[counter % 300]; }\n")
    (tmp_path / "rp2040.ld").write_text(
        "MEMORY { FLASH (rx) : ORIGIN = 0x10000000, LENGTH = 2M\n RAM (rwx) : ORIGIN = 0x20000000, LENGTH = 256K }\n"
        "SECTIONS { .text : { *(.text*) *(.rodata*) } > FLASH\n"
        " .data : { *(.data*) } > RAM AT > FLASH\n .bss : { *(.bss*) } > RAM }\n")
    elf, flat = tmp_path / "app.elf", tmp_path / "app.bin"
    subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m0plus", "-mthumb", "-nostdlib", "-O1", "-T",
                    str(tmp_path / "rp2040.ld"), "-o", str(elf), str(tmp_path / "app.c")], check=True)
    subprocess.run(["arm-none-eabi-objcopy", "-O", "binary", str(elf), str(flat)], check=True)

    blocks = uf2_blocks(elf_to_uf2(elf.read_bytes()))
    assert blocks[0][3] == 0x10000000
    rebuilt = bytearray()
    for block in blocks:
        addr, size, payload = block[3], block[4], block[8]
        assert size == 256 and addr % 256 == 0
        rebuilt[addr - 0x10000000:addr - 0x10000000 + size] = payload[:size]
    flat_bytes = flat.read_bytes()
    assert bytes(rebuilt[:len(flat_bytes)]) == flat_bytes, "UF2 holds exactly what objcopy puts in flash"


def test_elf_without_flash_segments_is_refused(tmp_path):
    with pytest.raises(TinyedgeError, match="not a 32-bit little-endian ELF"):
        elf_to_uf2(b"not an elf at all")


def test_uf2_flash_copies_onto_the_bootsel_drive_and_yields_the_port(tmp_path, monkeypatch):
    """The drive is a folder standing in for the RPI-RP2 mass-storage volume: like the RP2040's boot ROM,
    a helper thread takes the .uf2 and 'reboots' (the drive's INFO_UF2.TXT goes away)."""
    drive = tmp_path / "RPI-RP2"
    drive.mkdir()
    (drive / "INFO_UF2.TXT").write_text("UF2 Bootloader v3.0\nModel: Raspberry Pi RP2\nBoard-ID: RPI-RP2\n")
    (drive / "INDEX.HTM").write_text("<html></html>")
    monkeypatch.setenv("TINYEDGE_UF2_DRIVE", str(drive))
    assert find_uf2_drive("RPI-RP2") == drive

    project_dir = tmp_path / "pico"
    (project_dir / ".pio" / "build" / "raspberry-pi-pico").mkdir(parents=True)
    firmware = bytes(range(256)) * 5
    (project_dir / ".pio" / "build" / "raspberry-pi-pico" / "firmware.bin").write_bytes(firmware)
    Project(dir=project_dir, board_id="raspberry-pi-pico", runtime="aot", model_name="sine", model_sha256="0" * 64,
            arena_bytes=64, ops=[], artifacts={"bin": Artifact(".pio/build/raspberry-pi-pico/firmware.bin")}).save()

    received: list[bytes] = []

    def boot_rom() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not received:
            for uf2 in drive.glob("*.uf2"):
                time.sleep(0.1)
                received.append(uf2.read_bytes())
                (drive / "INFO_UF2.TXT").unlink()
            time.sleep(0.05)

    rom = threading.Thread(target=boot_rom)
    rom.start()
    import os

    master, slave = os.openpty()
    try:
        with get_flasher("uf2").flash(Project.load(project_dir), os.ttyname(slave)) as url:
            assert url == os.ttyname(slave)
    finally:
        rom.join()
        os.close(master)
        os.close(slave)
    assert received and received[0] == bin_to_uf2(firmware)


def test_uf2_flash_without_a_drive_says_to_hold_bootsel(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYEDGE_UF2_DRIVE", str(tmp_path / "nowhere"))
    project_dir = tmp_path / "pico"
    (project_dir / "build").mkdir(parents=True)
    (project_dir / "build" / "firmware.bin").write_bytes(b"\x00" * 512)
    Project(dir=project_dir, board_id="raspberry-pi-pico", runtime="aot", model_name="m", model_sha256="0" * 64,
            arena_bytes=0, ops=[], artifacts={"bin": Artifact("build/firmware.bin")}).save()
    with pytest.raises(TinyedgeError, match="no RPI-RP2 drive is mounted: hold BOOTSEL"):
        with get_flasher("uf2").flash(Project.load(project_dir), "/dev/ttyACM7"):
            pass


# --- arduino-cli and bossac uploads --------------------------------------------------------------


BOSSAC_LIKE_OUTPUT = r"""
import sys, time
print("Device       : nRF52840-QIAA")
print("Erase flash")
for pct in (0, 25, 50, 75, 100):
    sys.stdout.write(f"\r[{'=' * (pct // 10):<10}] {pct}% ({pct}/100 pages)")
    sys.stdout.flush()
    time.sleep(0.01)
print()
print("New upload port: /dev/ttyACM3 (serial)")
"""


def test_uploader_progress_and_new_port_are_read_from_its_output(tmp_path):
    import sys

    from tinyedge.flashers.arduino_cli import new_port_from, run_with_progress

    seen: list[tuple[int, int, str]] = []
    lines = run_with_progress([sys.executable, "-c", BOSSAC_LIKE_OUTPUT], tmp_path, "bossac",
                              lambda done, total, what: seen.append((done, total, what)))
    assert [done for done, _, _ in seen] == [0, 25, 50, 75, 100]
    assert {total for _, total, _ in seen} == {100} and {what for _, _, what in seen} == {"bossac"}
    assert new_port_from(lines) == "/dev/ttyACM3"


def test_a_failing_uploader_is_a_device_error_with_its_last_words(tmp_path):
    import sys

    from tinyedge.errors import DeviceError
    from tinyedge.flashers.arduino_cli import run_with_progress

    with pytest.raises(DeviceError, match=r"bossac failed \(exit 1; No device found on ttyACM0\)"):
        run_with_progress([sys.executable, "-c", "print('No device found on ttyACM0'); raise SystemExit(1)"],
                          tmp_path, "bossac", None)


@pytest.mark.parametrize("flasher, needle", [
    ("arduino-cli", "install.sh"),
    # Debian's bossa-cli is upstream BOSSA 1.9.1, which cannot flash the nRF52840: the hint names Arduino's fork.
    ("bossac", "install Arduino's bossac 1.9.1-arduino2 with `arduino-cli core install arduino:mbed_nano`"),
])
def test_upload_without_the_uploader_says_how_to_install_it(projects, flasher, needle, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr("tinyedge.flashers.bossac.ARDUINO_TOOLS", tmp_path / "no-arduino15")
    project = Project.load(projects["arduino-nano-33-ble/aot"])
    with pytest.raises(TinyedgeError, match=re.escape(needle)):
        with get_flasher(flasher).flash(project, "/dev/ttyACM0"):
            pass


def test_bossac_is_arduinos_fork_where_arduino_cli_installs_it(projects, monkeypatch, tmp_path):
    tools = tmp_path / ".arduino15" / "packages" / "arduino" / "tools" / "bossac"
    fork = tools / "1.9.1-arduino2" / "bossac"
    fork.parent.mkdir(parents=True)
    fork.write_text("#!/bin/sh\necho 'Basic Open Source SAM-BA Application (BOSSA) Version 1.9.1-arduino2'\n")
    fork.chmod(0o755)
    monkeypatch.setattr("tinyedge.flashers.bossac.ARDUINO_TOOLS", tools)
    board = get_board("arduino-nano-33-ble")
    tool = get_flasher("bossac").tools(board)[0]
    assert tool.command == str(fork)
    from tinyedge.tools import tool_version
    assert tool_version(tool).endswith("1.9.1-arduino2")


def test_an_esp32_profile_on_the_arduino_core_renders_a_sketch(sine_model, tmp_path, monkeypatch):
    """Makers who use the Arduino core on an ESP32 add a profile with framework: arduino."""
    from tinyedge.paths import boards_file

    boards = yaml.safe_load(boards_file().read_text())
    profile = dict(boards["boards"]["esp32-devkitc"], framework="arduino", toolchain="arduino-cli",
                   flasher="arduino-cli", port="arduino")
    boards["boards"]["esp32-devkitc-arduino"] = profile
    (tmp_path / "boards.yaml").write_text(yaml.safe_dump(boards))
    monkeypatch.setenv("TINYEDGE_BOARDS", str(tmp_path / "boards.yaml"))

    project = generate(sine_model.int8, "esp32-devkitc-arduino", tmp_path / "esp32-arduino", runtime="aot").dir
    assert yaml.safe_load((project / "firmware" / "sketch.yaml").read_text()) == {"default_fqbn": "esp32:esp32:esp32"}
    assert (project / "firmware" / "src" / "port_arduino.cpp").is_file()
    command = ARDUINO.compile_command("arduino-cli", project)
    assert command[command.index("--fqbn") + 1] == "esp32:esp32:esp32"
    assert command[command.index("--additional-urls") + 1].endswith("package_esp32_index.json")
    assert "-DTE_PROTO_RX_BUFFER=1024" in command[command.index("--build-property") + 1]


def test_regenerating_with_another_runtime_leaves_no_stale_sources_to_compile(sine_model, tmp_path):
    project = tmp_path / "pico"
    generate(sine_model.int8, "raspberry-pi-pico", project, runtime="aot")
    assert (project / "aot" / "te_model.c").is_file() and (project / "src" / "startup_rp2040.c").is_file()
    generate(sine_model.int8, "raspberry-pi-pico", project, runtime="tflm")
    compiled = {p.name for p in (project / "src").iterdir() if p.suffix in (".c", ".cc", ".cpp")}
    assert "te_model.c" not in compiled and "te_kernels.c" not in compiled and "startup_rp2040.c" not in compiled
    assert not (project / "aot").exists()
    assert {"te_tflm_runtime.cc", "te_tflm_model_data.cc", "main.cpp", "port_arduino.cpp"} <= compiled
