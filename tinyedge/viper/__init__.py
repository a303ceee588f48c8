"""The `viper` runtime: an int8 .tflite as MicroPython code, bit-exact with TFLM's reference kernels.

- `kernels`: the `@micropython.viper` kernel module (te_kernels.py on the board), written so every
  intermediate stays inside int32 and the same code is exact on 32-bit (ESP32, RP2040) and 64-bit
  (unix port) machine words.
- `generator.generate_program(model)`: the model module (te_model.py): weights as `bytes`, packed
  constants and one static `bytearray` arena, from the AOT compiler's memory plan and the same
  preparation the AOT renders (tinyedge.ops: the conv/FC window, bias and bounds, op modules' OpData);
  the ops it runs, and why it refuses the others, are in tinyedge.ops.registry.
- `mpy`: mpy-cross per architecture and the `sys.implementation._mpy` check.
- `board`: the raw-REPL session (mpremote's transport) that copies, starts and stops the server.
- `bridge`: the `micropython-unix` emulated board, MicroPython's unix port behind a pseudo-terminal.
"""
