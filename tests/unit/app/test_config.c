/* Flag and environment parsing: defaults, env, flag-over-env precedence, value formats. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static int parse(tr_config *c, char **argv, char **envp, char *err) {
    int argc = 0;
    while (argv && argv[argc])
        argc++;
    return tr_config_parse(c, argc, argv, envp, err, 256);
}

Test(config, defaults) {
    tr_config c;
    char err[256];
    char *argv[] = {"tricorder", NULL};
    cr_assert_eq(parse(&c, argv, NULL, err), TR_CONFIG_OK, "%s", err);
    cr_assert_str_eq(c.data_dir, "./data");
    cr_assert_str_eq(c.http_addr, ":8428");
    cr_assert_str_eq(c.otlp_grpc_addr, ":4317");
    cr_assert_str_eq(c.otlp_http_addr, ":4318");
    cr_assert_eq(c.retention_ms, 30LL * 86400000);
    cr_assert_eq(c.log_level, TR_LOG_INFO);
    cr_assert_eq(c.otlp_max_message_bytes, 4 << 20);
    cr_assert_eq(c.max_import_bytes, 32 << 20);
    cr_assert_null(c.basic_user);
    cr_assert_null(c.ingest_token);
    tr_config_free(&c);
}

Test(config, env_then_flag_wins) {
    tr_config c;
    char err[256];
    char *envp[] = {"TRICORDER_DATA_DIR=/from/env",       "TRICORDER_RETENTION=14d",
                    "TRICORDER_LOG_LEVEL=debug",          "OTHER=1",
                    "TRICORDER_HTTP_ADDR=127.0.0.1:9000", NULL};
    char *argv[] = {"tricorder", "--data-dir", "/from/flag", "--http-addr=:9100", NULL};
    cr_assert_eq(parse(&c, argv, envp, err), TR_CONFIG_OK, "%s", err);
    cr_assert_str_eq(c.data_dir, "/from/flag");
    cr_assert_str_eq(c.http_addr, ":9100");
    cr_assert_eq(c.retention_ms, 14LL * 86400000);
    cr_assert_eq(c.log_level, TR_LOG_DEBUG);
    tr_config_free(&c);
}

Test(config, bad_values_are_errors) {
    struct {
        const char *flag, *val, *want;
    } cases[] = {
        {"--retention", "30x", "invalid duration"},
        {"--retention", "", "invalid duration"},
        {"--log-level", "loud", "invalid log level"},
        {"--otlp-max-message-bytes", "lots", "invalid size"},
        {"--max-import-bytes", "512", "between 1KiB and 1GiB"},
        {"--max-import-bytes", "2GiB", "between 1KiB and 1GiB"},
        {"--http-addr", "nohostport", "invalid address"},
        {"--otlp-grpc-addr", ":99999", "invalid address"},
        {"--basic-auth", "nocolon", "user:password"},
        {"--no-such-flag", "1", "unknown flag"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tr_config c;
        char err[256] = "";
        char *argv[] = {"tricorder", (char *)cases[i].flag, (char *)cases[i].val, NULL};
        cr_assert_eq(parse(&c, argv, NULL, err), TR_CONFIG_ERROR, "%s %s accepted", cases[i].flag,
                     cases[i].val);
        cr_assert(strstr(err, cases[i].want), "%s %s: error '%s' lacks '%s'", cases[i].flag, cases[i].val,
                  err, cases[i].want);
        tr_config_free(&c);
    }
}

Test(config, env_bad_value_names_the_variable) {
    tr_config c;
    char err[256];
    char *envp[] = {"TRICORDER_RETENTION=forever", NULL};
    char *argv[] = {"tricorder", NULL};
    cr_assert_eq(parse(&c, argv, envp, err), TR_CONFIG_ERROR);
    cr_assert(strstr(err, "TRICORDER_RETENTION"), "%s", err);
    tr_config_free(&c);
}

Test(config, missing_value) {
    tr_config c;
    char err[256];
    char *argv[] = {"tricorder", "--data-dir", NULL};
    cr_assert_eq(parse(&c, argv, NULL, err), TR_CONFIG_ERROR);
    cr_assert(strstr(err, "needs a value"), "%s", err);
    tr_config_free(&c);
}

Test(config, basic_auth_and_file) {
    tr_config c;
    char err[256];
    char *argv[] = {"tricorder", "--basic-auth", "admin:s3cr:et", NULL};
    cr_assert_eq(parse(&c, argv, NULL, err), TR_CONFIG_OK, "%s", err);
    cr_assert_str_eq(c.basic_user, "admin");
    cr_assert_str_eq(c.basic_pass, "s3cr:et");
    tr_config_free(&c);

    /* the users file is read (and watched) by the server, not by the flag parser */
    char *argv2[] = {"tricorder",           "--basic-auth-file", "/some/htpasswd",
                     "--ingest-token-file", "/some/tokens",      NULL};
    cr_assert_eq(parse(&c, argv2, NULL, err), TR_CONFIG_OK, "%s", err);
    cr_assert_str_eq(c.basic_auth_file, "/some/htpasswd");
    cr_assert_str_eq(c.ingest_token_file, "/some/tokens");
    cr_assert_null(c.basic_user);
    tr_config_free(&c);
}

Test(config, durations) {
    struct {
        const char *s;
        int64_t ms;
    } ok[] = {{"500ms", 500},           {"90s", 90000},           {"5m", 300000},
              {"12h", 43200000},        {"14d", 14LL * 86400000}, {"2w", 14LL * 86400000},
              {"1y", 365LL * 86400000}, {"1h30m", 5400000},       {"0s", 0}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t v = -1;
        cr_assert_eq(tr_parse_duration(ok[i].s, &v), 0, "%s", ok[i].s);
        cr_assert_eq(v, ok[i].ms, "%s → %lld", ok[i].s, (long long)v);
    }
    const char *bad[] = {"", "d", "10", "10x", "-5m", "1.5h", "h1", "99999999999999999999d"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t v;
        cr_assert_eq(tr_parse_duration(bad[i], &v), -1, "%s accepted", bad[i]);
    }
}

Test(config, sizes) {
    struct {
        const char *s;
        int64_t b;
    } ok[] = {{"4194304", 4194304}, {"4MiB", 4194304},    {"512KB", 512000},
              {"1GB", 1000000000},  {"1GiB", 1073741824}, {"10B", 10}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t v = -1;
        cr_assert_eq(tr_parse_size(ok[i].s, &v), 0, "%s", ok[i].s);
        cr_assert_eq(v, ok[i].b, "%s", ok[i].s);
    }
    const char *bad[] = {"", "MiB", "4XB", "-1", "1.5GB"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t v;
        cr_assert_eq(tr_parse_size(bad[i], &v), -1, "%s accepted", bad[i]);
    }
}

Test(config, addresses) {
    char host[64];
    int port;
    cr_assert_eq(tr_parse_addr(":8428", host, sizeof host, &port), 0);
    cr_assert_str_eq(host, "");
    cr_assert_eq(port, 8428);
    cr_assert_eq(tr_parse_addr("127.0.0.1:4317", host, sizeof host, &port), 0);
    cr_assert_str_eq(host, "127.0.0.1");
    cr_assert_eq(tr_parse_addr("[::1]:4318", host, sizeof host, &port), 0);
    cr_assert_str_eq(host, "::1");
    cr_assert_eq(port, 4318);
    cr_assert_eq(tr_parse_addr("::1:4318", host, sizeof host, &port), -1);
    cr_assert_eq(tr_parse_addr("host:", host, sizeof host, &port), -1);
    cr_assert_eq(tr_parse_addr("host:http", host, sizeof host, &port), -1);
}
