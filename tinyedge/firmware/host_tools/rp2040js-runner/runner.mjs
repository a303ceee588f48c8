// tinyedge's runner for rp2040js (Wokwi's RP2040 emulator, MIT, from npm): loads a UF2 into the emulated
// flash, boots it and bridges a serial port to one TCP client at a time.
//
//   node runner.mjs --rp2040js DIR --image FILE.uf2 [--port N] [--bootrom FILE] [--serial uart0|usb-cdc]
//                   [--flash-file FILE]
//
// Without --bootrom (the npm package ships none) the image boots as boot2 would leave it: VTOR at the
// vector table that follows boot2 (0x10000100), SP and PC from it. With --bootrom (a 16 KiB RP2040 boot
// ROM image the user has; MicroPython calls its routines) the image boots as the ROM would start it:
// boot2's CRC32 checked, then boot2 run (from flash: rp2040js has one core and no SSI to copy it with)
// with lr = 0, so it vectors into the image. The ROM's flash_range_erase and flash_range_program are
// performed here on the emulated flash as NOR flash does them (an erase sets its bytes to 0xFF, a program
// only clears bits; rp2040js ignores the SSI commands they would send), and its
// other flash calls return at once. Without --bootrom the ROM holds only a function table naming those
// six flash functions (datasheet 2.8.3), performed the same way, so firmware that programs its flash
// through the ROM (the lifecycle's store, ports/rp2040/te_store_rp2040.c) runs. With --flash-file the
// emulated flash is that host file: read at start (the UF2 is then written over it), and every erase
// or program the firmware makes is written through to it before the call returns, so what the
// firmware stored (model slots, MicroPython's filesystem) survives the emulator being killed and restarted. UART0 (or the USB CDC port, for MicroPython)
// is bridged to the client; host bytes are queued and fed only while the emulated receive FIFO has
// room, since rp2040js drops bytes pushed into a full FIFO; on USB the firmware's reads are answered only
// once host bytes are there, as a real host does. Every instruction is counted at 125 MHz
// (rp2040js's fixed rate); while the core sleeps (WFI) with nothing to receive, emulated time is paced
// to wall time so the firmware's timeouts mean what they say. Prints "rp2040js: listening on HOST:PORT"
// when ready; on SIGTERM or SIGINT prints the cycles run and exits.
import { closeSync, existsSync, openSync, readFileSync, readSync, writeSync } from 'node:fs';
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
const PICO_FLASH_BYTES = 2 * 1024 * 1024; // what --flash-file holds: a Pico's W25Q16

const VECTOR_TABLE = FLASH_BASE + 0x100;
const BOOT2_CODE_BYTES = 252;
const SRAM_END = 0x20042000;
const ROM_BYTES = 16 * 1024;
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
    if (!['rp2040js', 'image', 'port', 'bootrom', 'serial', 'flash-file'].includes(key) || i + 1 >= argv.length) {
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

/** The boot ROM's check of boot2: CRC32 (polynomial 0x04C11DB7, initial 0xFFFFFFFF, no reflection). */
function boot2Crc(flash) {
  let crc = 0xffffffff;
  for (let i = 0; i < BOOT2_CODE_BYTES; i++) {
    crc ^= flash[i] << 24;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x80000000 ? (crc << 1) ^ 0x04c11db7 : crc << 1;
  }
  return crc >>> 0;
}

/** Addresses of the ROM's functions by two-letter code, from its function table (datasheet 2.8.3). */
function romFunctions(mcu) {
  const table = mcu.readUint16(0x14);
  const found = new Map();
  for (let entry = table; ; entry += 4) {
    const code = mcu.readUint16(entry);
    if (code === 0) break;
    found.set(String.fromCharCode(code & 0xff, code >> 8), mcu.readUint16(entry + 2) & ~1);
  }
  return found;
}

const FLASH_CODES = ['RE', 'RP', 'IF', 'EX', 'FC', 'CX'];
const TABLE_AT = 0x100;
const STUBS_AT = 0x200;

/** A 16 KiB ROM that holds only the function table of the six flash functions, each a `bx lr`. */
function flashFunctionsRom() {
  const rom = new Uint8Array(ROM_BYTES);
  const view = new DataView(rom.buffer);
  view.setUint16(0x14, TABLE_AT, true);
  FLASH_CODES.forEach((code, i) => {
    view.setUint16(TABLE_AT + 4 * i, code.charCodeAt(0) | (code.charCodeAt(1) << 8), true);
    view.setUint16(TABLE_AT + 4 * i + 2, (STUBS_AT + 2 * i) | 1, true);
    view.setUint16(STUBS_AT + 2 * i, 0x4770, true); // bx lr
  });
  return new Uint32Array(rom.buffer);
}

/** The emulated flash backed by a host file: loaded now, written through on every change. */
function backFlash(mcu, file) {
  mcu.flash.fill(0xff, 0, PICO_FLASH_BYTES); // erased, until the file says otherwise
  if (existsSync(file)) {
    const fd = openSync(file, 'r');
    readSync(fd, mcu.flash, 0, PICO_FLASH_BYTES, 0);
    closeSync(fd);
  }
  const fd = openSync(file, existsSync(file) ? 'r+' : 'w+');
  return (offset, count) => {
    const end = Math.min(offset + count, PICO_FLASH_BYTES);
    if (end > offset) writeSync(fd, mcu.flash, offset, end - offset, offset);
  };
}

/** PC -> what to do instead of the ROM's flash routine there (then return to lr). */
function romFlashHooks(mcu, written = () => {}) {
  const rom = romFunctions(mcu);
  const core = mcu.core;
  const hooks = new Map();
  const erase = () => {
    const [offset, count] = [core.registers[0], core.registers[1]];
    mcu.flash.fill(0xff, offset, offset + count);
    written(offset, count);
  };
  const program = () => {
    const [offset, data, count] = [core.registers[0], core.registers[1], core.registers[2]];
    for (let i = 0; i < count; i++) mcu.flash[offset + i] &= mcu.readUint8(data + i); // NOR: a program only clears bits
    written(offset, count);
  };
  const nothing = () => {};
  const actions = { RE: erase, RP: program, IF: nothing, EX: nothing, FC: nothing, CX: nothing };
  for (const [code, action] of Object.entries(actions)) {
    if (rom.has(code)) hooks.set(rom.get(code), action);
  }
  return hooks;
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
  // USBCDC's transmit FIFO drops bytes when full, as the UART's does: feed it only while it has room.
  const cdc = new rp2040js.USBCDC(mcu.usbCtrl);
  let connected = false;
  cdc.onDeviceConnected = () => {
    connected = true;
    cdc.sendSerialByte(13); // wake the REPL
  };
  cdc.onSerialData = (bytes) => {
    for (const value of bytes) output.push(value);
  };
  // A host sends on the OUT endpoint only when it has bytes: USBCDC would answer every read at once with
  // an empty packet, which the firmware re-arms at once, so an idle REPL would keep a host core busy.
  const answerRead = mcu.usbCtrl.onEndpointRead;
  let heldRead = null;
  mcu.usbCtrl.onEndpointRead = (endpoint, size) => {
    if (endpoint === cdc.outEndpoint && cdc.txFIFO.empty) {
      heldRead = size;
      return;
    }
    answerRead(endpoint, size);
  };
  return () => {
    if (!connected) return;
    while (!input.empty && !cdc.txFIFO.full) cdc.sendSerialByte(input.shift());
    if (heldRead !== null && !cdc.txFIFO.empty) {
      const size = heldRead;
      heldRead = null;
      answerRead(cdc.outEndpoint, size);
    }
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
    if (rom.length !== ROM_BYTES) fail(`${args.bootrom} is ${rom.length} bytes, not a 16 KiB RP2040 boot ROM image`);
    mcu.loadBootrom(new Uint32Array(rom.buffer, rom.byteOffset, Math.floor(rom.length / 4)));
  } else {
    mcu.loadBootrom(flashFunctionsRom());
  }
  const written = args['flash-file'] ? backFlash(mcu, args['flash-file']) : () => {};
  loadUf2(readFileSync(args.image), mcu.flash);
  written(0, PICO_FLASH_BYTES);
  const core = mcu.core;
  const hooks = romFlashHooks(mcu, written);
  if (args.bootrom) {
    const stored = mcu.flashView.getUint32(BOOT2_CODE_BYTES, true);
    if (boot2Crc(mcu.flash) !== stored) {
      fail(`boot2's CRC32 is 0x${stored.toString(16)}, not 0x${boot2Crc(mcu.flash).toString(16)}: the boot ROM would not start this image`);
    }
    core.SP = SRAM_END;
    core.LR = 0;
    core.PC = FLASH_BASE;
  } else {
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
        if (core.PC < ROM_BYTES && hooks.has(core.PC)) {
          hooks.get(core.PC)();
          core.PC = core.LR & ~1;
          continue;
        }
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
