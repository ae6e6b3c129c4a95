/* Fuzz target: what the operators' thread parses from outside (io/metrics_server.c,
 * ops/config.c): an HTTP request head of the metrics endpoint (the first
 * byte chooses: 0-127 the request, else a metrics_listen value). The
 * request is classified without reading past its NUL; a route is one of
 * the three; a listen value parses to a port 1..65535 and an address that
 * fits, or to an error message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "metrics_server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text;
    if (size < 1u || size > 8192u) {
        return 0;
    }
    text = malloc(size); /* the rest of the input, NUL-terminated: as the server reads it */
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data + 1, size - 1u);
    text[size - 1u] = '\0';
    if (data[0] < 128u) {
        bool head = true, prom = true;
        mqim_http_route_t r = mqim_metrics_http_route(text, &head, &prom);
        if ((r != MQIM_HTTP_METRICS && r != MQIM_HTTP_NOT_FOUND && r != MQIM_HTTP_BAD_METHOD) ||
            (r != MQIM_HTTP_METRICS && prom) || (head && strncmp(text, "HEAD ", 5) != 0)) {
            abort();
        }
    } else {
        char addr[64], err[256];
        int port = 0;
        bool lo = false;
        err[0] = '\0';
        if (mqim_gw_metrics_listen_parse(text, addr, sizeof(addr), &port, &lo, err, sizeof(err)) == 0) {
            if (port < 1 || port > 65535 || strlen(addr) >= sizeof(addr)) {
                abort();
            }
        } else if (err[0] == '\0') {
            abort();
        }
    }
    free(text);
    return 0;
}
