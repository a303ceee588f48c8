#!/usr/bin/env bash
# Install everything tinyedge needs on a Debian machine, then run the main job:
# train the bundled example and deploy it to the embedded default board (qemu-cortex-m4).
#   ./install.sh            install + main job
#   ./install.sh --no-demo  install only (what CI does before the tests)
set -euo pipefail
cd "$(dirname "$0")"

APT_PACKAGES=(
  python3-venv python3-dev build-essential pkg-config
  gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib
  qemu-system-arm
  gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf qemu-system-misc
  gcc-avr avr-libc avrdude simavr libsimavr-dev libelf-dev arduino-core-avr
  clang libclang-rt-14-dev
  ser2net
  prometheus
  ccache  # the test suite compiles the same firmware sources for model after model: tests/conftest.py
)
# Node.js and npm (rp2040js): Debian's, unless a Node.js with its own npm is already there (NodeSource's
# nodejs package bundles npm, and Debian's npm package conflicts with it).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  APT_PACKAGES+=(nodejs npm)
fi

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> apt: installing ${missing[*]}"
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# rp2040js (Wokwi's RP2040 emulator, the pico-emulated board) from npm, into the folder the board's
# profile names (emulator.dir; TINYEDGE_RP2040JS overrides it): nothing is downloaded at run time.
RP2040JS_DIR="${TINYEDGE_RP2040JS:-$HOME/.local/share/tinyedge/rp2040js}"
if [ ! -f "$RP2040JS_DIR/node_modules/rp2040js/package.json" ] || \
   ! grep -q '"version": "1.4.1"' "$RP2040JS_DIR/node_modules/rp2040js/package.json"; then
  echo "==> npm: installing rp2040js@1.4.1 into $RP2040JS_DIR"
  mkdir -p "$RP2040JS_DIR"
  npm install --prefix "$RP2040JS_DIR" --no-audit --no-fund --silent rp2040js@1.4.1
fi

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  python3 -m venv .venv
fi
echo "==> pip: installing tinyedge and its dependencies into .venv"
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
# onnx2tf (ONNX models in) pins exact TensorFlow, numpy and protobuf versions that would replace the
# project's: install it, and tf-keras matching our TensorFlow, without their pins. The packages they
# really import are tinyedge's own dependencies (pyproject.toml).
.venv/bin/pip install -q --disable-pip-version-check --no-deps "onnx2tf==1.29.24" "tf-keras>=2.21,<2.22"

if [ "${1:-}" = "--no-demo" ]; then
  exit 0
fi

echo "==> main job: train the example, then deploy it to qemu-cortex-m4 and validate it there"
.venv/bin/python examples/train.py --model shapes -o examples/out
.venv/bin/tinyedge deploy examples/out/shapes.keras --board qemu-cortex-m4 \
  --calibration examples/out/calibration.npy --data examples/out/test_x.npy --labels examples/out/test_y.npy \
  --json examples/out/report.json --junit examples/out/report.xml
