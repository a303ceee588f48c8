// Board port for Arduino cores (Arduino Mbed nRF52840, Arduino-ESP32, Arduino-Pico): the protocol
// talks over `Serial` (native USB CDC or the board's USB-UART bridge).
//
// Clocks: micros() for microseconds. Cycles come from the DWT cycle counter on Cortex-M3/M4/M7/M33,
// from CCOUNT on the ESP32's Xtensa cores, and from micros() elsewhere (Cortex-M0+ has no cycle
// counter: te_port_cycle_hz() then says 1 MHz).
#include <Arduino.h>

#include "tinyedge_port.h"

#if defined(__ARM_ARCH_7M__) || defined(__ARM_ARCH_7EM__) || defined(__ARM_ARCH_8M_MAIN__)
#define TE_CYCLES_DWT 1
#elif defined(ARDUINO_ARCH_ESP32)
#define TE_CYCLES_ESP32 1
#endif

#ifndef TE_CLOCK_HZ
#define TE_CLOCK_HZ F_CPU
#endif

#if TE_CYCLES_DWT
// Cortex-M debug registers (ARMv7-M ARM C1.8): DEMCR.TRCENA powers the DWT, DWT_CTRL.CYCCNTENA starts it.
static volatile uint32_t *const kDemcr = reinterpret_cast<volatile uint32_t *>(0xE000EDFCu);
static volatile uint32_t *const kDwtCtrl = reinterpret_cast<volatile uint32_t *>(0xE0001000u);
static volatile uint32_t *const kDwtCyccnt = reinterpret_cast<volatile uint32_t *>(0xE0001004u);
#endif

extern "C" {

void te_port_init(uint32_t baud) {
  Serial.begin(baud);
#if defined(ARDUINO_ARCH_MBED) || defined(ARDUINO_ARCH_RP2040) || defined(USBCON)
  // Native USB CDC: wait (briefly) for the host to open the port so the boot frame is not lost.
  const uint32_t start = millis();
  while (!Serial && millis() - start < 3000) {
    delay(10);
  }
#endif
#if TE_CYCLES_DWT
  *kDemcr |= 1u << 24;
  *kDwtCyccnt = 0;
  *kDwtCtrl |= 1u;
#endif
}

int te_port_read_byte(uint32_t timeout_ms) {
  const uint32_t start = millis();
  do {
    if (Serial.available() > 0) {
      return Serial.read();
    }
    yield();
  } while (millis() - start < timeout_ms);
  return -1;
}

void te_port_write(const uint8_t *data, size_t len) {
  while (len > 0) {
    const size_t sent = Serial.write(data, len);
    if (sent == 0) {
      yield();
      continue;
    }
    data += sent;
    len -= sent;
  }
}

uint32_t te_port_cycles(void) {
#if TE_CYCLES_DWT
  return *kDwtCyccnt;
#elif TE_CYCLES_ESP32
  return ESP.getCycleCount();
#else
  return micros();
#endif
}

uint32_t te_port_cycle_hz(void) {
#if TE_CYCLES_DWT
  return (uint32_t)(TE_CLOCK_HZ);
#elif TE_CYCLES_ESP32
  return getCpuFrequencyMhz() * 1000000u;
#else
  return 1000000u;
#endif
}

uint32_t te_port_micros(void) { return micros(); }

void te_port_boot_banner(const char *text) {
  Serial.print(text);
  Serial.print("\r\n");
  Serial.flush();
}

}  // extern "C"
