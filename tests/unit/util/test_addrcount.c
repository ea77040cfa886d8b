/* Unit tests of the per-address connection counts: IPv4 and its mapped IPv6 form share a key,
 * the cap refuses without counting, and removals (backward-shift deletion) never lose another
 * address's count, checked against a plain array over many random operations. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "util/addrcount.h"

static tr_addrkey key4(const char *ip) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(1234)};
    inet_pton(AF_INET, ip, &a.sin_addr);
    tr_addrkey k;
    tr_addrkey_from((struct sockaddr *)&a, &k);
    return k;
}

Test(addrcount, v4_and_mapped_v6_are_one_address_and_the_port_is_ignored) {
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons(999)};
    inet_pton(AF_INET6, "::ffff:10.1.2.3", &a6.sin6_addr);
    tr_addrkey k6, k4 = key4("10.1.2.3");
    tr_addrkey_from((struct sockaddr *)&a6, &k6);
    cr_assert_eq(memcmp(&k4, &k6, sizeof k4), 0);
    char s[64];
    tr_addrkey_format(&k4, s, sizeof s);
    cr_assert_str_eq(s, "10.1.2.3");
    inet_pton(AF_INET6, "2001:db8::1", &a6.sin6_addr);
    tr_addrkey_from((struct sockaddr *)&a6, &k6);
    tr_addrkey_format(&k6, s, sizeof s);
    cr_assert_str_eq(s, "2001:db8::1");
}

Test(addrcount, cap_refuses_without_counting) {
    tr_addrcount *c = tr_addrcount_new();
    tr_addrkey a = key4("127.0.0.2"), b = key4("127.0.0.3");
    for (int i = 1; i <= 3; i++)
        cr_assert_eq(tr_addrcount_acquire(c, &a, 3), i);
    cr_assert_eq(tr_addrcount_acquire(c, &a, 3), -1);
    cr_assert_eq(tr_addrcount_get(c, &a), 3);
    cr_assert_eq(tr_addrcount_acquire(c, &b, 3), 1);
    tr_addrcount_release(c, &a);
    cr_assert_eq(tr_addrcount_acquire(c, &a, 3), 3);
    cr_assert_eq(tr_addrcount_size(c), 2);
    tr_addrcount_release(c, &b);
    cr_assert_eq(tr_addrcount_size(c), 1);
    cr_assert_eq(tr_addrcount_get(c, &b), 0);
    tr_addrcount_release(c, &b); /* releasing an unknown address changes nothing */
    cr_assert_eq(tr_addrcount_get(c, &a), 3);
    tr_addrcount_free(c);
}

Test(addrcount, random_operations_match_a_plain_count) {
    enum { N = 3000 };
    static unsigned want[N];
    tr_addrcount *c = tr_addrcount_new();
    srand(7);
    for (int op = 0; op < 200000; op++) {
        int i = rand() % N;
        tr_addrkey k;
        memset(&k, 0, sizeof k);
        memcpy(k.b + 12, &i, sizeof i);
        if (rand() % 3 && want[i] < 5) {
            cr_assert_eq(tr_addrcount_acquire(c, &k, 0), (long)want[i] + 1);
            want[i]++;
        } else {
            tr_addrcount_release(c, &k);
            if (want[i]) want[i]--;
        }
    }
    size_t distinct = 0;
    for (int i = 0; i < N; i++) {
        tr_addrkey k;
        memset(&k, 0, sizeof k);
        memcpy(k.b + 12, &i, sizeof i);
        cr_assert_eq(tr_addrcount_get(c, &k), want[i], "address %d", i);
        distinct += want[i] > 0;
    }
    cr_assert_eq(tr_addrcount_size(c), distinct);
    tr_addrcount_free(c);
}
