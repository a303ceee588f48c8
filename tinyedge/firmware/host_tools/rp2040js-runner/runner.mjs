// tinyedge's runner for rp2040js (Wokwi's RP2040 emulator, MIT, from npm): loads a UF2 into the emulated
// flash, boots it and bridges a serial port to one TCP client at a time.
//
//   node runner.mjs --rp2040js DIR --image FILE.uf2 [--port N] [--bootrom FILE] [--serial uart0|usb-cdc]
//
// Without --bootrom (the npm package ships none) the image boots as boot2 would leave it: VTOR at the
// vector table that follows boot2 (0x10000100), SP and PC from it. With --bootrom (a 16 KiB RP2040 boot
// ROM image the user has) the ROM boots the image itself. UART0 (or the USB CDC port, for MicroPython)
// is bridged to the client; host bytes are queued and fed only while the emulated receive FIFO has
// room, since rp2040js drops bytes pushed into a full FIFO. Every instruction is counted at 125 MHz
// (rp2040js's fixed rate); while the core sleeps (WFI) with nothing to receive, emulated time is paced
// to wall time so the firmware's timeouts mean what they say. Prints "rp2040js: listening on HOST:PORT"
// when ready; on SIGTERM or SIGINT prints the cycles run and exits.
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const UF2_MAGIC_START0 = 0x0a324655;
const UF2_MAGIC_START1 = 0x9e5d5157;
const UF2_MAGIC_END = 0x0ab16f30;
const UF2_FLAG_NOT_MAIN_FLASH = 0x1;
const UF2_FLAG_FAMILY_ID = 0x2000;
const RP2040_FAMILY_ID = 0xe48bff56;
const FLASH_BASE = 0x10000000;
const FLASH_BYTES = 16 * 1024 * 1024;
const VECTOR_TABLE = FLASH_BASE + 0x100;
const CYCLE_NANOS = 8; // rp2040js runs every instruction at 125 MHz
const SLICE_INSTRUCTIONS = 100000;
const FEED_EVERY = 32;
const IDLE_STEP_NANOS = 1000000;

function fail(message) {
  process.stderr.write(`rp2040js: ${message}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const args = { port: '0', serial: 'uart0' };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '');
    if (!['rp2040js', 'image', 'port', 'bootrom', 'serial'].includes(key) || i + 1 >= argv.length) {
      fail(`unknown or incomplete option ${argv[i]}`);
    }
    args[key] = argv[i + 1];
  }
  if (!args.rp2040js || !args.image) fail('--rp2040js DIR and --image FILE are required');
  return args;
}

/** The UF2's blocks, written into `flash`; refuses blocks for another chip family. */
export function loadUf2(data, flash) {
  if (data.length === 0 || data.length % 512) fail('the image is not a UF2 file (not a whole number of 512-byte blocks)');
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  for (let offset = 0; offset < data.length; offset += 512) {
    const word = (i) => view.getUint32(offset + 4 * i, true);
    if (word(0) !== UF2_MAGIC_START0 || word(1) !== UF2_MAGIC_START1 || view.getUint32(offset + 508, true) !== UF2_MAGIC_END) {
      fail(`block ${offset / 512} of the image is not a UF2 block`);
    }
    const flags = word(2);
    if (flags & UF2_FLAG_NOT_MAIN_FLASH) continue;
    if (!(flags & UF2_FLAG_FAMILY_ID) || word(7) !== RP2040_FAMILY_ID) {
      fail(`the UF2 is not for the RP2040 (family id 0x${word(7).toString(16)}, expected 0x${RP2040_FAMILY_ID.toString(16)})`);
    }
    const address = word(3);
    const size = word(4);
    if (address < FLASH_BASE || address + size > FLASH_BASE + FLASH_BYTES || size > 476) {
      fail(`UF2 block ${offset / 512} writes outside the flash (0x${address.toString(16)})`);
    }
    flash.set(data.subarray(offset + 32, offset + 32 + size), address - FLASH_BASE);
  }
}

class HostBytes {
  constructor() {
    this.chunks = [];
    this.offset = 0;
  }
  get empty() {
    return this.chunks.length === 0;
  }
  push(chunk) {
    if (chunk.length) this.chunks.push(chunk);
  }
  shift() {
    const chunk = this.chunks[0];
    const value = chunk[this.offset++];
    if (this.offset === chunk.length) {
      this.chunks.shift();
      this.offset = 0;
    }
    return value;
  }
  clear() {
    this.chunks = [];
    this.offset = 0;
  }
}

function uartBridge(mcu, input, output) {
  const uart = mcu.uart[0];
  uart.onByte = (value) => output.push(value);
  return () => {
    while (!input.empty && !uart.rxFIFO.full) uart.feedByte(input.shift());
  };
}

function usbCdcBridge(rp2040js, mcu, input, output) {
  const cdc = new rp2040js.USBCDC(mcu.usbCtrl);
  let connected = false;
  cdc.onDeviceConnected = () => {
    connected = true;
    cdc.sendSerialByte(13); // wake the REPL
  };
  cdc.onSerialData = (bytes) => {
    for (const value of bytes) output.push(value);
  };
  return () => {
    if (!connected) return;
    // The CDC endpoint takes at most 64 bytes a transfer; give it one packet at a time.
    for (let n = 0; n < 64 && !input.empty; n++) cdc.sendSerialByte(input.shift());
  };
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const entry = path.join(args.rp2040js, 'node_modules', 'rp2040js', 'dist', 'esm', 'index.js');
  let rp2040js;
  try {
    rp2040js = await import(pathToFileURL(entry).href);
  } catch (error) {
    fail(`cannot load rp2040js from ${args.rp2040js} (${error.code || error.message}): run ./install.sh`);
  }
  const simulator = new rp2040js.Simulator();
  const mcu = simulator.rp2040;
  mcu.logger = new rp2040js.ConsoleLogger(rp2040js.LogLevel.Error, true);
  if (args.bootrom) {
    const rom = readFileSync(args.bootrom);
    mcu.loadBootrom(new Uint32Array(rom.buffer, rom.byteOffset, Math.floor(rom.length / 4)));
  }
  loadUf2(readFileSync(args.image), mcu.flash);
  const core = mcu.core;
  if (!args.bootrom) {
    core.VTOR = VECTOR_TABLE;
    core.SP = mcu.readUint32(VECTOR_TABLE);
    core.PC = mcu.readUint32(VECTOR_TABLE + 4) & ~1;
  }

  const input = new HostBytes();
  const output = [];
  const feed = args.serial === 'usb-cdc' ? usbCdcBridge(rp2040js, mcu, input, output) : uartBridge(mcu, input, output);
  const clock = simulator.clock;
  let client = null;
  let started = false;

  function flushOutput() {
    if (output.length && client) client.write(Buffer.from(output));
    output.length = 0;
  }

  function slice() {
    for (let i = 0; i < SLICE_INSTRUCTIONS; i++) {
      if (i % FEED_EVERY === 0) feed();
      if (core.waiting) {
        feed();
        if (!core.waiting) continue;
        const step = Math.min(clock.nanosToNextAlarm || IDLE_STEP_NANOS, IDLE_STEP_NANOS);
        clock.tick(step);
        if (core.waiting && input.empty) {
          flushOutput();
          setTimeout(slice, 1); // asleep with nothing to receive: let wall time catch up
          return;
        }
      } else {
        clock.tick(core.executeInstruction() * CYCLE_NANOS);
      }
    }
    flushOutput();
    setImmediate(slice);
  }

  const server = net.createServer((socket) => {
    if (client) {
      socket.end();
      return;
    }
    client = socket;
    socket.setNoDelay(true);
    socket.on('data', (chunk) => input.push(chunk));
    socket.on('error', () => {});
    socket.on('close', () => {
      client = null;
      input.clear();
    });
    if (!started) {
      started = true; // like QEMU's wait=on: the boot banner goes to the first client
      setImmediate(slice);
    }
  });
  const stop = () => {
    process.stdout.write(`rp2040js: ${Math.round(clock.nanos / CYCLE_NANOS)} cycles\n`);
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  server.listen(Number(args.port), '127.0.0.1', () => {
    const { address, port } = server.address();
    process.stdout.write(`rp2040js: listening on ${address}:${port}\n`);
  });
}

main();
