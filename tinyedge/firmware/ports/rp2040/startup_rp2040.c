/* Reset, vector table and clocks of the RP2040 (Cortex-M0+), bare metal from the RP2040 datasheet, no SDK.
 * boot2 (boot2_w25q.c) has set XIP up and VTOR to this table; the rp2040js runner, which has no bootrom,
 * does the same. Reset_Handler paints the free RAM below the stack, brings clk_sys to 125 MHz from the
 * 12 MHz crystal through PLL_SYS (and clk_peri to clk_sys for UART0), copies .data, zeroes .bss and
 * calls main. te_port_stack_used() measures the stack's high-water mark from the paint. */
#include <stdint.h>

#include "te_startup.h"
#include "tinyedge_port.h"

int main(void);
void Reset_Handler(void);
void Fault_Handler(void);
void Default_Handler(void);
void SysTick_Handler(void);
void UART0_IRQ_Handler(void);

#define REG(address) (*(volatile uint32_t *)(address))
#define CLEAR_ALIAS 0x3000u   /* an APB register's atomic-clear alias */

#define RESETS_RESET 0x4000C000u
#define RESETS_RESET_DONE 0x4000C008u
#define RESET_PLL_SYS (1u << 12)

#define XOSC_CTRL 0x40024000u
#define XOSC_STATUS 0x40024004u
#define XOSC_STARTUP 0x4002400Cu
#define XOSC_FREQ_1_15MHZ 0xAA0u
#define XOSC_ENABLE (0xFABu << 12)
#define XOSC_STABLE (1u << 31)
#define XOSC_HZ 12000000u
#define XOSC_STARTUP_DELAY ((XOSC_HZ / 1000u + 128u) / 256u)   /* ~1 ms, in units of 256 crystal cycles */

#define CLK_REF_CTRL 0x40008030u
#define CLK_REF_DIV 0x40008034u
#define CLK_REF_SELECTED 0x40008038u
#define CLK_SYS_CTRL 0x4000803Cu
#define CLK_SYS_DIV 0x40008040u
#define CLK_SYS_SELECTED 0x40008044u
#define CLK_PERI_CTRL 0x40008048u
#define CLK_REF_SRC_XOSC 2u
#define CLK_SYS_SRC_AUX 1u           /* AUXSRC 0: clksrc_pll_sys */
#define CLK_PERI_ENABLE (1u << 11)   /* AUXSRC 0: clk_sys */
#define CLK_DIV_1 (1u << 8)

#define PLL_SYS_CS 0x40028000u
#define PLL_SYS_PWR 0x40028004u
#define PLL_SYS_FBDIV_INT 0x40028008u
#define PLL_SYS_PRIM 0x4002800Cu
#define PLL_LOCK (1u << 31)
#define PLL_PWR_PD (1u << 0)
#define PLL_PWR_POSTDIVPD (1u << 3)
#define PLL_PWR_VCOPD (1u << 5)
/* 12 MHz / REFDIV 1 x FBDIV 125 = VCO 1500 MHz (400..1600 allowed); / POSTDIV1 6 / POSTDIV2 2 = 125 MHz. */
#define PLL_FBDIV 125u
#define PLL_POSTDIV1 6u
#define PLL_POSTDIV2 2u

#if TE_CPU_HZ != XOSC_HZ / 1u * PLL_FBDIV / (PLL_POSTDIV1 * PLL_POSTDIV2)
#error "TE_CPU_HZ must be the clk_sys the PLL settings give (125 MHz)"
#endif

TE_CXX_RUNTIME_STUBS

__attribute__((section(".isr_vector"), used))
void (*const te_vector_table[16 + 32])(void) = {
    (void (*)(void))&__stack_top,
    Reset_Handler,
    Default_Handler,   /* NMI */
    Fault_Handler,     /* HardFault */
    0, 0, 0, 0, 0, 0, 0,
    Default_Handler,   /* SVCall */
    0, 0,
    Default_Handler,   /* PendSV */
    SysTick_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler,   /* IRQ 0-3: timer alarms */
    Default_Handler, Default_Handler, Default_Handler, Default_Handler,   /* IRQ 4-7: PWM, USB, XIP, PIO0 */
    Default_Handler, Default_Handler, Default_Handler, Default_Handler,   /* IRQ 8-11: PIO0/1, DMA 0 */
    Default_Handler, Default_Handler, Default_Handler, Default_Handler,   /* IRQ 12-15: DMA 1, IO, QSPI, SIO */
    Default_Handler, Default_Handler, Default_Handler, Default_Handler,   /* IRQ 16-19: SIO, clocks, SPI0/1 */
    UART0_IRQ_Handler,                                                   /* IRQ 20: UART0 */
    Default_Handler, Default_Handler, Default_Handler, Default_Handler,   /* IRQ 21-24: UART1, ADC, I2C0/1 */
    Default_Handler, Default_Handler, Default_Handler, Default_Handler,   /* IRQ 25-28: RTC, software */
    Default_Handler, Default_Handler, Default_Handler,                    /* IRQ 29-31: software */
};

static void wait_until_set(uint32_t address, uint32_t mask) {
  while ((REG(address) & mask) != mask) {
  }
}

static void start_crystal(void) {
  REG(XOSC_CTRL) = XOSC_FREQ_1_15MHZ;
  REG(XOSC_STARTUP) = XOSC_STARTUP_DELAY;
  REG(XOSC_CTRL) = XOSC_FREQ_1_15MHZ | XOSC_ENABLE;
  wait_until_set(XOSC_STATUS, XOSC_STABLE);
}

static void start_pll_sys(void) {
  REG(RESETS_RESET) |= RESET_PLL_SYS;
  REG(RESETS_RESET + CLEAR_ALIAS) = RESET_PLL_SYS;
  wait_until_set(RESETS_RESET_DONE, RESET_PLL_SYS);
  REG(PLL_SYS_CS) = 1u;   /* REFDIV */
  REG(PLL_SYS_FBDIV_INT) = PLL_FBDIV;
  REG(PLL_SYS_PWR + CLEAR_ALIAS) = PLL_PWR_PD | PLL_PWR_VCOPD;
  wait_until_set(PLL_SYS_CS, PLL_LOCK);
  REG(PLL_SYS_PRIM) = (PLL_POSTDIV1 << 16) | (PLL_POSTDIV2 << 12);
  REG(PLL_SYS_PWR + CLEAR_ALIAS) = PLL_PWR_POSTDIVPD;
}

/* clk_ref from the crystal, clk_sys from PLL_SYS through the glitchless mux, clk_peri from clk_sys. */
static void start_clocks(void) {
  REG(CLK_SYS_CTRL) = 0;   /* clk_sys on clk_ref while the PLL starts */
  wait_until_set(CLK_SYS_SELECTED, 1u);
  start_crystal();
  REG(CLK_REF_DIV) = CLK_DIV_1;
  REG(CLK_REF_CTRL) = CLK_REF_SRC_XOSC;
  wait_until_set(CLK_REF_SELECTED, 1u << CLK_REF_SRC_XOSC);
  start_pll_sys();
  REG(CLK_SYS_DIV) = CLK_DIV_1;
  REG(CLK_SYS_CTRL) = CLK_SYS_SRC_AUX;
  wait_until_set(CLK_SYS_SELECTED, 1u << CLK_SYS_SRC_AUX);
  REG(CLK_PERI_CTRL) = CLK_PERI_ENABLE;
}

uint32_t te_port_stack_used(void) { return te_painted_stack_used(); }

__attribute__((noreturn)) void Reset_Handler(void) {
  te_paint_free_stack();
  start_clocks();
  te_start_c_runtime();
  main();
  for (;;) {
  }
}

void Fault_Handler(void) {
  te_port_boot_banner("\r\ntinyedge: hard fault");
  for (;;) {
  }
}

void Default_Handler(void) {
  te_port_boot_banner("\r\ntinyedge: unexpected interrupt");
  for (;;) {
  }
}
