/* `tricorder check-rules FILE…`: promtool check rules's report and exit code. */
#include <stdio.h>
#include <string.h>

#include "rules.h"

int tr_rules_check_main(int argc, char **argv, FILE *out, FILE *errout) {
    if (argc < 2) {
        fprintf(errout, "usage: tricorder check-rules FILE...\n");
        return 2;
    }
    int failed = 0;
    for (int i = 1; i < argc; i++) {
        tr_ruleset rs = {0};
        tr_buf errs;
        tr_buf_init(&errs, 0);
        fprintf(out, "Checking %s\n", argv[i]);
        int n = tr_rules_parse_file(argv[i], &rs, &errs);
        if (n) {
            fflush(out);
            fprintf(errout, "  FAILED:\n%.*s", (int)errs.len, errs.data);
            fflush(errout);
            fprintf(out, "\n");
            failed = 1;
        } else {
            fprintf(out, "  SUCCESS: %zu rules found\n\n", tr_ruleset_count(&rs));
        }
        tr_buf_free(&errs);
        tr_ruleset_free(&rs);
    }
    return failed;
}
