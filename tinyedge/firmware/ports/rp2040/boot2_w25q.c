/* The RP2040's second-stage loader (boot2) for the Pico's W25Q16JV flash, written from the RP2040
 * datasheet (2.8.1 "Boot sequence", 4.10 "SSI"). The bootrom copies the first 256 bytes of flash
 * to SRAM, checks their CRC32 and runs them: this code sets the SSI up so the XIP block reads the
 * flash with the standard-SPI READ command (03h, 24-bit address, 32-bit frames, SCK = clk_sys / 4,
 * within the 50 MHz the W25Q allows for 03h at the 125 MHz the port sets), then points VTOR at the
 * vector table that follows it (0x10000100), loads its stack pointer and jumps to Reset_Handler.
 * Called as a function (lr != 0) it only sets XIP up again and returns.
 *
 * The code is position independent (it runs at 0x20041F00, is linked at 0x10000000) and its bytes
 * never depend on the rest of the image, so its CRC32 is a constant: MPEG-2 CRC32 (polynomial
 * 0x04C11DB7, initial value 0xFFFFFFFF, no reflection, no final XOR) of the 252 bytes before it,
 * stored little-endian. tests/test_pico.py recomputes it from the built image. */

__asm__(
    "  .syntax unified\n"
    "  .pushsection .boot2, \"ax\", %progbits\n"
    "  .thumb\n"
    "  .global te_boot2\n"
    "  .type te_boot2, %function\n"
    "  .thumb_func\n"
    "te_boot2:\n"
    "  push {lr}\n"
    "  ldr r3, =0x18000000\n"         /* SSI */
    "  movs r1, #0\n"
    "  str r1, [r3, #0x08]\n"         /* SSIENR: off while it is configured */
    "  movs r1, #4\n"
    "  str r1, [r3, #0x14]\n"         /* BAUDR: SCK = clk_sys / 4 */
    "  ldr r1, =0x001F0300\n"
    "  str r1, [r3, #0x00]\n"         /* CTRLR0: DFS_32 = 31 (32-bit frames), TMOD = 3 (EEPROM read), SPI_FRF = 0 */
    "  ldr r1, =0x03000218\n"
    "  movs r0, #0xF4\n"
    "  str r1, [r3, r0]\n"            /* SPI_CTRLR0: XIP_CMD = 03h, INST_L = 8 bits, ADDR_L = 24 bits, all standard SPI */
    "  movs r1, #0\n"
    "  str r1, [r3, #0x04]\n"         /* CTRLR1: NDF = 0, one frame per XIP access */
    "  movs r1, #1\n"
    "  str r1, [r3, #0x08]\n"         /* SSIENR: on; XIP reads go through it from now on */
    "  pop {r0}\n"
    "  cmp r0, #0\n"
    "  beq 1f\n"
    "  bx r0\n"                        /* called as a function: return */
    "1:\n"
    "  ldr r0, =0x10000100\n"         /* the vector table after boot2 */
    "  ldr r1, =0xE000ED08\n"         /* VTOR */
    "  str r0, [r1]\n"
    "  ldmia r0, {r0, r1}\n"
    "  msr msp, r0\n"
    "  bx r1\n"
    "  .ltorg\n"
    "  .org 252\n"
    "  .word 0xA6D7127C\n"
    "  .popsection\n");
