"""The one registry of plug-ins: the names a board profile may give as its `framework`, `flasher` and
`runtimes`, each with the "module:attribute" that implements it. Adding a plug-in is one line here."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tinyedge.errors import TinyedgeError

if TYPE_CHECKING:
    from tinyedge.flashers import Flasher
    from tinyedge.frameworks import Framework
    from tinyedge.runtimes import Runtime

FRAMEWORKS = {
    "host": "tinyedge.frameworks.host:FRAMEWORK",
    "baremetal": "tinyedge.frameworks.baremetal:FRAMEWORK",
    "espidf": "tinyedge.frameworks.espidf:FRAMEWORK",
    "arduino": "tinyedge.frameworks.arduino:FRAMEWORK",
    "platformio": "tinyedge.frameworks.platformio:FRAMEWORK",
    "avr": "tinyedge.frameworks.avr:FRAMEWORK",
    "micropython": "tinyedge.frameworks.micropython:FRAMEWORK",
}
FLASHERS = {
    "host": "tinyedge.flashers.host:FLASHER",
    "qemu": "tinyedge.flashers.qemu:FLASHER",
    "rp2040js": "tinyedge.flashers.rp2040js:FLASHER",
    "esptool": "tinyedge.flashers.esptool:FLASHER",
    "arduino-cli": "tinyedge.flashers.arduino_cli:FLASHER",
    "bossac": "tinyedge.flashers.bossac:FLASHER",
    "uf2": "tinyedge.flashers.uf2:FLASHER",
    "avrdude": "tinyedge.flashers.avrdude:FLASHER",
    "mpremote": "tinyedge.flashers.mpremote:FLASHER",
}
RUNTIMES = {
    "tflm": "tinyedge.runtimes.tflm:RUNTIME",
    "aot": "tinyedge.runtimes.aot:RUNTIME",
    "viper": "tinyedge.runtimes.viper:RUNTIME",
}
KINDS = {"framework": FRAMEWORKS, "flasher": FLASHERS, "runtime": RUNTIMES}


def load(kind: str, name: str) -> Any:
    registry = KINDS[kind]
    if name not in registry:
        raise TinyedgeError(f"unknown {kind} '{name}': choose one of {', '.join(registry)}.")
    module, attribute = registry[name].split(":")
    return getattr(importlib.import_module(module), attribute)


def get_framework(name: str) -> "Framework":
    return load("framework", name)


def get_flasher(name: str) -> "Flasher":
    return load("flasher", name)


def get_runtime(name: str) -> "Runtime":
    return load("runtime", name)
