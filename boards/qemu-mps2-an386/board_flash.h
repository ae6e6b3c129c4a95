/**
 * @file board_flash.h
 * @brief A NOR flash for the mps2-an386 under QEMU, kept in a host file
 *        through ARM semihosting (QEMU's -semihosting-config
 *        enable=on,target=native), and the semihosting command line.
 *
 * The board has no flash a program can write, so the flash port of
 * flash.h lives in a file next to QEMU: erase writes 0xFF over a page,
 * program ANDs the new bytes into what is there (bits only go from 1 to
 * 0). Both go out in small pieces (one program unit, or 64 bytes of an
 * erase, per SYS_WRITE), so a QEMU killed at any moment leaves the file as
 * a power cut leaves a real flash: some units written, a page half erased.
 */
#ifndef MQIM_BOARD_FLASH_H
#define MQIM_BOARD_FLASH_H

#include <stddef.h>
#include <stdint.h>

#include "mqim/flash.h"

#define BOARD_FLASH_PAGE_SIZE 1024u
#define BOARD_FLASH_PAGES 8u
#define BOARD_FLASH_UNIT 8u /* like an STM32L4: 8-byte double words, each programmed once */

/**
 * Open (or create, blank) the file `path` in QEMU's working directory as
 * the flash region, and describe it in *flash.
 * @return MQIM_OK, MQIM_FLASH_ERROR.
 */
mqim_status_t board_flash_open(const char *path, mqim_flash_t *flash);

/** The command line QEMU got with -append, NUL-terminated ("" if none). */
void board_cmdline(char *buf, size_t cap);

#endif /* MQIM_BOARD_FLASH_H */
