/* tricorder's entry point: configuration, then the application. */
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "check.h"
#include "config.h"
#include "rules/rules.h"
#include "util/log.h"

extern char **environ;

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "check") == 0) return tr_check_main(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "check-rules") == 0)
        return tr_rules_check_main(argc - 1, argv + 1, stdout, stderr);
    if (argc >= 2 && strcmp(argv[1], "test-rules") == 0)
        return tr_rules_test_main(argc - 1, argv + 1, stdout, stderr);
    tr_config cfg;
    char err[512];
    int healthcheck = argc == 2 && strcmp(argv[1], "--healthcheck") == 0;
    int rc = tr_config_parse(&cfg, healthcheck ? 1 : argc, argv, environ, err, sizeof err);
    if (healthcheck && rc == TR_CONFIG_OK) {
        rc = tr_app_healthcheck(&cfg);
        tr_config_free(&cfg);
        return rc;
    }
    if (rc == TR_CONFIG_EXIT) {
        tr_config_free(&cfg);
        return 0;
    }
    if (rc != TR_CONFIG_OK) {
        tr_log(TR_LOG_ERROR, "invalid configuration", "error=%s", tr_log_quote((char[600]){0}, 600, err));
        tr_config_free(&cfg);
        return 1;
    }
    rc = tr_app_run(&cfg);
    tr_config_free(&cfg);
    return rc;
}
