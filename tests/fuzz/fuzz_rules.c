/* Fuzz target: rule files and alert templates. Invariants: any input is a rule file that
 * parses or is refused with at least one "<file>: …" line, never a crash; as a template it
 * checks or fails with a "template: " message, and a template that checks expands (or fails
 * with a message) without crashing, within the output bound. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules/rules.h"
#include "rules/tmpl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 16384) return 0;
    tr_ruleset rs = {0};
    tr_buf errs;
    tr_buf_init(&errs, 0);
    int n = tr_rules_parse("f.yml", (const char *)data, size, &rs, &errs);
    if (n && (!errs.data || strncmp(errs.data, "f.yml: ", 7))) abort();
    tr_buf_free(&errs);
    tr_ruleset_free(&rs);

    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    char err[1024] = "";
    if (tr_tmpl_check("__alert_F", text, err, sizeof err) != 0) {
        if (strncmp(err, "template: ", 10)) abort();
    } else {
        static const tr_tmpl_kv labels[] = {{"instance", "h:1"}, {"job", "api"}};
        tr_tmpl_data d = {.labels = labels, .nlabels = 2, .value = 42.5, .external_url = "http://t"};
        char *out = tr_tmpl_expand("__alert_F", text, &d, err, sizeof err);
        if (!out && strncmp(err, "template: ", 10)) abort();
        free(out);
    }
    free(text);
    return 0;
}
