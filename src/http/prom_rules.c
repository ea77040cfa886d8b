/* /api/v1/rules and /api/v1/alerts as Prometheus shapes them, from the rule manager's state
 * (rules/rules.h). The state is small and kept in memory: answered on the loop thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "prom_api.h"
#include "rules/rules.h"

/* every value of `key` (repeated parameters such as rule_name[]) */
static size_t all_of(const tr_form *f, const char *key, const char ***out) {
    size_t n = 0;
    *out = calloc(f->n ? f->n : 1, sizeof **out);
    for (size_t i = 0; *out && i < f->n; i++)
        if (!strcmp(f->kv[i].key, key)) (*out)[n++] = f->kv[i].value;
    return n;
}

static void api_rules(struct evhttp_request *req, const tr_http_match *m, void *ctx) {
    const tr_api_env *env = ctx;
    tr_form f;
    if (tr_prom_form(req, &f)) return;
    const char *type = tr_form_get_nonempty(&f, "type");
    if (type && strcmp(type, "alert") != 0 && strcmp(type, "record") != 0) {
        char msg[300];
        snprintf(msg, sizeof msg, "invalid parameter \"type\": not supported value \"%.200s\"", type);
        tr_prom_reply_error(req, TR_PROM_BAD_DATA, msg);
        tr_form_free(&f);
        return;
    }
    tr_rules_filter flt = {.type = type};
    const char **rn, **gn, **fn;
    flt.nrule_names = all_of(&f, "rule_name[]", &rn);
    flt.ngroup_names = all_of(&f, "rule_group[]", &gn);
    flt.nfiles = all_of(&f, "file[]", &fn);
    flt.rule_names = rn;
    flt.group_names = gn;
    flt.files = fn;
    const char *ex = tr_form_get_nonempty(&f, "exclude_alerts");
    flt.exclude_alerts = ex && !strcmp(ex, "true");
    tr_buf b;
    tr_buf_init(&b, 0);
    tr_json js;
    tr_json_init(&js, &b);
    tr_prom_open_success(&js);
    if (env->rules) {
        tr_rules_json_rules(env->rules, &js, &flt);
    } else {
        tr_json_obj_open(&js);
        tr_json_key(&js, "groups");
        tr_json_arr_open(&js);
        tr_json_arr_close(&js);
        tr_json_obj_close(&js);
    }
    tr_prom_close_success(&js, NULL);
    tr_prom_reply_json(req, &b);
    tr_buf_free(&b);
    free(rn);
    free(gn);
    free(fn);
    tr_form_free(&f);
}

static void api_alerts(struct evhttp_request *req, const tr_http_match *m, void *ctx) {
    const tr_api_env *env = ctx;
    tr_buf b;
    tr_buf_init(&b, 0);
    tr_json js;
    tr_json_init(&js, &b);
    tr_prom_open_success(&js);
    if (env->rules) {
        tr_rules_json_alerts(env->rules, &js);
    } else {
        tr_json_obj_open(&js);
        tr_json_key(&js, "alerts");
        tr_json_arr_open(&js);
        tr_json_arr_close(&js);
        tr_json_obj_close(&js);
    }
    tr_prom_close_success(&js, NULL);
    tr_prom_reply_json(req, &b);
    tr_buf_free(&b);
}

void tr_api_prom_rules_routes(tr_http *h, const tr_api_env *env) {
    void *e = (void *)env;
    tr_http_route(h, TR_GET, "/api/v1/rules", 0, api_rules, e);
    tr_http_route(h, TR_GET, "/api/v1/alerts", 0, api_alerts, e);
}
