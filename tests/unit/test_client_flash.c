/* The IM layer's tests (test_client.c) with the flash outbox under it
 * instead of the RAM outbox: the outbox kept until `sent`, replay order
 * after a reconnect and a gateway online, corrupt and too-large records,
 * the outbox window. The same file, compiled with the RAM outbox's names
 * mapped onto a flash outbox over a simulated NOR flash (flash_sim.h,
 * 8 pages of 4 KiB: a record larger than the transmit buffer still fits a
 * page, as the too-large record test needs). */
#include "flash_sim.h"
#include "mqim/flash_outbox.h"
#include "mqim/outbox.h"

static flash_sim_t client_flash;
static mqim_flash_page_t client_flash_pages[8];

/* Every fresh client starts on a blank flash. */
static mqim_status_t client_flash_open(mqim_flash_outbox_t *ob, uint8_t *unused, size_t unused_len)
{
    mqim_flash_t region;
    (void)unused;
    (void)unused_len;
    flash_sim_init(&client_flash, 4096, 8, 8, 1);
    region = flash_sim_region(&client_flash);
    return mqim_flash_outbox_open(ob, &region, client_flash_pages);
}

#define mqim_ram_outbox_t mqim_flash_outbox_t
#define mqim_ram_outbox_init client_flash_open
#define mqim_ram_outbox_put mqim_flash_outbox_put
#define mqim_ram_outbox_peek mqim_flash_outbox_peek
#define mqim_ram_outbox_ops mqim_flash_outbox_ops

#include "test_client.c"
