/* The TLS port's address-literal parser (mqim_tls_parse_ip): which server
 * names are checked against the certificate's iPAddress SANs, and as what
 * bytes. A name that is not an address goes to the DNS-name check. */
#include <string.h>

#include "mqim_check.h"
#include "mqim_tls.h"

static void check_ip(const char *text, size_t want_len, const unsigned char *want)
{
    unsigned char out[16];
    size_t n;
    memset(out, 0xee, sizeof(out));
    n = mqim_tls_parse_ip(text, out);
    CHECK_EQ_INT(n, want_len);
    if (n == want_len && want_len > 0u) {
        CHECK(memcmp(out, want, want_len) == 0);
    }
}

int main(void)
{
    static const unsigned char lo4[4] = { 127, 0, 0, 1 };
    static const unsigned char any4[4] = { 0, 0, 0, 0 };
    static const unsigned char top4[4] = { 255, 255, 255, 255 };
    static const unsigned char lo6[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 };
    static const unsigned char zero6[16] = { 0 };
    static const unsigned char ll6[16] = { 0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x2a };
    static const unsigned char full6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0xab, 0xcd };
    static const unsigned char mid6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7 };
    static const unsigned char v4m[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1 };
    static const unsigned char tail6[16] = { 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
    check_ip("127.0.0.1", 4, lo4);
    check_ip("0.0.0.0", 4, any4);
    check_ip("255.255.255.255", 4, top4);
    check_ip("::1", 16, lo6);
    check_ip("::", 16, zero6);
    check_ip("fe80::2a", 16, ll6);
    check_ip("FE80::2A", 16, ll6);
    check_ip("2001:db8:1:2:3:4:5:abcd", 16, full6);
    check_ip("2001:db8::7", 16, mid6);
    check_ip("::ffff:192.0.2.1", 16, v4m);
    check_ip("1::", 16, tail6);
    /* host names and everything malformed: not an address */
    check_ip("localhost", 0, NULL);
    check_ip("broker.example", 0, NULL);
    check_ip("dead", 0, NULL);
    check_ip("", 0, NULL);
    check_ip("256.0.0.1", 0, NULL);
    check_ip("1.2.3", 0, NULL);
    check_ip("1.2.3.4.5", 0, NULL);
    check_ip("1.2.3.4 ", 0, NULL);
    check_ip("1234.1.1.1", 0, NULL);
    check_ip("1:2:3:4:5:6:7", 0, NULL);
    check_ip("1:2:3:4:5:6:7:8:9", 0, NULL);
    check_ip("1::2::3", 0, NULL);
    check_ip("1:", 0, NULL);
    check_ip(":1", 0, NULL);
    check_ip("12345::", 0, NULL);
    check_ip("1:2:3:4:5:6:7::8", 0, NULL); /* "::" must stand for at least one group */
    check_ip("fe80::1%eth0", 0, NULL);
    check_ip("::ffff:1.2.3", 0, NULL);
    CHECK_EQ_INT(mqim_tls_parse_ip(NULL, (unsigned char[16]){ 0 }), 0);
    return CHECK_REPORT();
}
