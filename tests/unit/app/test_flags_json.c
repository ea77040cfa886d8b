/* /api/v1/status/flags: the flags in force as JSON, secrets hidden, values escaped. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "config.h"

Test(config, flags_json_hides_secrets) {
    tr_config c;
    char err[256];
    char *argv[] = {"tricorder", "--basic-auth",     "u:secret\"pw", "--ingest-token",
                    "tok",       "--retention",      "14d",          "--self-scrape-interval",
                    "0",         "--dashboards-dir", "/x/\"y\""};
    cr_assert_eq(tr_config_parse(&c, 11, argv, NULL, err, sizeof err), TR_CONFIG_OK, "%s", err);
    char *j = tr_config_flags_json(&c);
    cr_assert(j);
    cJSON *o = cJSON_Parse(j);
    cr_assert(o, "not JSON: %s", j);
    cr_assert_str_eq(cJSON_GetObjectItem(o, "basic-auth")->valuestring, "<hidden>");
    cr_assert_str_eq(cJSON_GetObjectItem(o, "ingest-token")->valuestring, "<hidden>");
    cr_assert_str_eq(cJSON_GetObjectItem(o, "retention")->valuestring, "14d");
    cr_assert_str_eq(cJSON_GetObjectItem(o, "self-scrape-interval")->valuestring, "0s");
    cr_assert_str_eq(cJSON_GetObjectItem(o, "dashboards-dir")->valuestring, "/x/\"y\"");
    cr_assert_str_eq(cJSON_GetObjectItem(o, "log-level")->valuestring, "info");
    cr_assert_null(strstr(j, "secret"));
    cJSON_Delete(o);
    free(j);
    tr_config_free(&c);
}
