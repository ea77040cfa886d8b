/* The rules' flags: --rule-files repeats (the environment separates by commas and the command
 * line replaces it), --no-default-rules takes no value, --alertmanager-url repeats. */
#include <criterion/criterion.h>
#include <string.h>

#include "config.h"

Test(app_flags, rule_files_and_alerting_flags) {
    tr_config c;
    char err[256] = "";
    char *argv[] = {"tricorder",
                    "--rule-files",
                    "a/*.yml",
                    "--rule-files=b.yml",
                    "--no-default-rules",
                    "--alertmanager-url",
                    "http://am1:9093",
                    "--alertmanager-url",
                    "http://am2:9093",
                    NULL};
    char *env[] = {"TRICORDER_RULE_FILES=x.yml,y.yml", NULL};
    cr_assert_eq(tr_config_parse(&c, 9, argv, env, err, sizeof err), TR_CONFIG_OK, "%s", err);
    cr_expect_str_eq(c.rule_files, "a/*.yml\nb.yml");
    cr_expect_eq(c.no_default_rules, 1);
    cr_expect_str_eq(c.alertmanager_urls, "http://am1:9093\nhttp://am2:9093");
    cr_expect_eq(c.rule_eval_interval_ms, 60000);
    tr_config_free(&c);
    char *argv2[] = {"tricorder", NULL};
    cr_assert_eq(tr_config_parse(&c, 1, argv2, env, err, sizeof err), TR_CONFIG_OK, "%s", err);
    cr_expect_str_eq(c.rule_files, "x.yml\ny.yml");
    cr_expect_eq(c.no_default_rules, 0);
    tr_config_free(&c);
    char *env2[] = {"TRICORDER_NO_DEFAULT_RULES=maybe", NULL};
    cr_expect_eq(tr_config_parse(&c, 1, argv2, env2, err, sizeof err), TR_CONFIG_ERROR);
    cr_expect(strstr(err, "invalid boolean"), "%s", err);
    tr_config_free(&c);
}
