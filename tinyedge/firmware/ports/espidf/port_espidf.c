/* Board port for ESP-IDF (ESP32, ESP32-S3): the protocol owns UART0, the port behind the board's
 * USB-UART bridge (CP210x/CH340). The IDF console is switched off in sdkconfig.defaults
 * (CONFIG_ESP_CONSOLE_NONE) so no log line lands in the middle of a frame.
 *
 * On chips with a USB Serial/JTAG controller (ESP32-S3) the protocol is served there too: whichever
 * of the two ports last delivered a byte gets the replies, so either USB connector of the DevKit works.
 *
 * Clocks: esp_timer_get_time() for microseconds, the CPU's CCOUNT register for cycles. */
#include <stddef.h>
#include <stdint.h>

#include "driver/uart.h"
#include "esp_cpu.h"
#include "esp_timer.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "sdkconfig.h"
#include "soc/soc_caps.h"

#if SOC_USB_SERIAL_JTAG_SUPPORTED
#include "driver/usb_serial_jtag.h"
#define TE_HAVE_USB_SERIAL_JTAG 1
#else
#define TE_HAVE_USB_SERIAL_JTAG 0
#endif

#include "tinyedge_port.h"

#ifndef TE_RX_BUFFER_BYTES
#define TE_RX_BUFFER_BYTES 1024
#endif

#define TE_UART UART_NUM_0
/* uart_driver_install wants a buffer larger than the hardware FIFO. */
#define TE_UART_RX_BYTES (TE_RX_BUFFER_BYTES > 2 * SOC_UART_FIFO_LEN ? TE_RX_BUFFER_BYTES : 2 * SOC_UART_FIFO_LEN)
#define TE_UART_TX_BYTES (2 * SOC_UART_FIFO_LEN)

#if TE_HAVE_USB_SERIAL_JTAG
enum te_link { TE_LINK_UART = 0, TE_LINK_USB = 1 };

static enum te_link active_link = TE_LINK_UART;
static int usb_ready = 0;
#endif

static TickType_t ms_to_ticks(uint32_t ms) {
  TickType_t ticks = pdMS_TO_TICKS(ms);
  return (ms > 0 && ticks == 0) ? 1 : ticks;
}

void te_port_init(uint32_t baud) {
  const uart_config_t config = {
      .baud_rate = (int)baud,
      .data_bits = UART_DATA_8_BITS,
      .parity = UART_PARITY_DISABLE,
      .stop_bits = UART_STOP_BITS_1,
      .flow_ctrl = UART_HW_FLOWCTRL_DISABLE,
      .source_clk = UART_SCLK_DEFAULT,
  };
  ESP_ERROR_CHECK(uart_driver_install(TE_UART, TE_UART_RX_BYTES, TE_UART_TX_BYTES, 0, NULL, 0));
  ESP_ERROR_CHECK(uart_param_config(TE_UART, &config));
  ESP_ERROR_CHECK(uart_set_pin(TE_UART, UART_PIN_NO_CHANGE, UART_PIN_NO_CHANGE, UART_PIN_NO_CHANGE,
                               UART_PIN_NO_CHANGE));
#if TE_HAVE_USB_SERIAL_JTAG
  usb_serial_jtag_driver_config_t usb_config = USB_SERIAL_JTAG_DRIVER_CONFIG_DEFAULT();
  usb_config.rx_buffer_size = TE_RX_BUFFER_BYTES;
  usb_ready = usb_serial_jtag_driver_install(&usb_config) == ESP_OK;
#endif
}

static int read_uart(TickType_t ticks) {
  uint8_t byte;
  return uart_read_bytes(TE_UART, &byte, 1, ticks) == 1 ? byte : -1;
}

#if TE_HAVE_USB_SERIAL_JTAG
static int read_usb(TickType_t ticks) {
  uint8_t byte;
  return usb_serial_jtag_read_bytes(&byte, 1, ticks) == 1 ? byte : -1;
}
#endif

int te_port_read_byte(uint32_t timeout_ms) {
#if TE_HAVE_USB_SERIAL_JTAG
  if (!usb_ready) {
    return read_uart(ms_to_ticks(timeout_ms));
  }
  /* Two links: wait on the active one, glance at the other every tick. */
  const int64_t deadline = esp_timer_get_time() + (int64_t)timeout_ms * 1000;
  do {
    int byte = active_link == TE_LINK_UART ? read_uart(1) : read_usb(1);
    if (byte >= 0) {
      return byte;
    }
    byte = active_link == TE_LINK_UART ? read_usb(0) : read_uart(0);
    if (byte >= 0) {
      active_link = active_link == TE_LINK_UART ? TE_LINK_USB : TE_LINK_UART;
      return byte;
    }
  } while (esp_timer_get_time() < deadline);
  return -1;
#else
  return read_uart(ms_to_ticks(timeout_ms));
#endif
}

void te_port_write(const uint8_t *data, size_t len) {
#if TE_HAVE_USB_SERIAL_JTAG
  if (active_link == TE_LINK_USB && usb_ready) {
    while (len > 0) {
      int sent = usb_serial_jtag_write_bytes(data, len, ms_to_ticks(100));
      if (sent <= 0) {
        return; /* no host on the USB side: drop rather than hang */
      }
      data += sent;
      len -= (size_t)sent;
    }
    return;
  }
#endif
  uart_write_bytes(TE_UART, (const char *)data, len); /* blocks only while the TX ring is full */
}

uint32_t te_port_cycles(void) { return (uint32_t)esp_cpu_get_cycle_count(); }

uint32_t te_port_cycle_hz(void) { return (uint32_t)CONFIG_ESP_DEFAULT_CPU_FREQ_MHZ * 1000000u; }

uint32_t te_port_micros(void) { return (uint32_t)esp_timer_get_time(); }

void te_port_boot_banner(const char *text) {
  size_t len = 0;
  while (text[len] != '\0') {
    len++;
  }
  te_port_write((const uint8_t *)text, len);
  te_port_write((const uint8_t *)"\r\n", 2);
}
