/* Query strings and forms as Go's url.ParseQuery parses them: a table of cases whose
 * expected pairs and errors are what Go 1.19+ returns. */
#include <criterion/criterion.h>
#include <string.h>

#include "http/http.h"

typedef struct {
    const char *in;
    const char *pairs; /* "k=v|k=v" after decoding ('|' separates; values may hold CR/LF) */
    const char *err;   /* Go's error text, or NULL */
} qcase;

static void check(const qcase *c) {
    tr_form f = {0};
    char err[256] = "";
    int rc = tr_form_parse(&f, c->in, strlen(c->in), err, sizeof err);
    if (c->err) {
        cr_assert_eq(rc, -1, "%s: want error", c->in);
        cr_assert_str_eq(err, c->err, "%s", c->in);
    } else {
        cr_assert_eq(rc, 0, "%s: %s", c->in, err);
    }
    char got[512] = "";
    for (size_t i = 0; i < f.n; i++) {
        if (i) strcat(got, "|");
        strcat(got, f.kv[i].key);
        strcat(got, "=");
        strcat(got, f.kv[i].value);
    }
    cr_assert_str_eq(got, c->pairs, "%s", c->in);
    tr_form_free(&f);
}

Test(form, parse_query_like_go) {
    static const qcase cases[] = {
        {"a=1&b=2", "a=1|b=2", NULL},
        {"a=1&a=2&A=3", "a=1|a=2|A=3", NULL}, /* names are case-sensitive, repeats kept in order */
        {"match%5B%5D=up&match[]=down", "match[]=up|match[]=down", NULL},
        {"q=a+b%20c", "q=a b c", NULL},
        {"q=sum(rate(x[5m]))%0A%20%20by%20(job)", "q=sum(rate(x[5m]))\n  by (job)", NULL},
        {"tags=%7B%0D%0A%22k%22%3A%22v%22%7D", "tags={\r\n\"k\":\"v\"}", NULL},
        {"a", "a=", NULL},
        {"a=", "a=", NULL},
        {"=v", "=v", NULL},
        {"&&a=1&", "a=1", NULL},
        {"a=1=2", "a=1=2", NULL},
        {"a=1;b=2", "", "invalid semicolon separator in query"},
        {"x=1&a=1;b=2&c=3", "x=1|c=3", "invalid semicolon separator in query"},
        {"a=%zz&b=1", "b=1", "invalid URL escape \"%zz\""},
        {"a=%4", "", "invalid URL escape \"%4\""},
        {"a=1&b=%", "a=1", "invalid URL escape \"%\""},
        {"%gg=1", "", "invalid URL escape \"%gg\""},
        {"a=%e2%82%ac", "a=\xe2\x82\xac", NULL},
        {"", "", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check(&cases[i]);
}

Test(form, any_byte_after_decoding) {
    tr_form f = {0};
    char err[64];
    cr_assert_eq(tr_form_parse(&f, "v=a%00b", 7, err, sizeof err), 0);
    cr_assert_eq(f.kv[0].vlen, 3);
    cr_assert_eq(memcmp(f.kv[0].value, "a\0b", 3), 0);
    cr_assert_str_eq(tr_form_get(&f, "v"), "a");
    cr_assert_null(tr_form_get(&f, "V"));
    tr_form_free(&f);
}

Test(form, first_value_wins_and_empty_counts_as_absent) {
    tr_form f = {0};
    char err[64];
    /* ParseForm puts the body's pairs first: a body then a URL parsed into one form */
    cr_assert_eq(tr_form_parse(&f, "query=from_body&x=", 18, err, sizeof err), 0);
    cr_assert_eq(tr_form_parse(&f, "query=from_url", 14, err, sizeof err), 0);
    cr_assert_str_eq(tr_form_get(&f, "query"), "from_body");
    cr_assert_str_eq(tr_form_get(&f, "x"), "");
    cr_assert_null(tr_form_get_nonempty(&f, "x"));
    tr_form_free(&f);
}
