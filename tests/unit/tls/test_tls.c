/* Unit tests of the TLS contexts and their reload: loading and checking the pair, refusing a
 * bad one (mismatched, encrypted, missing), reloading only on change, keeping the old context
 * when the new files are refused. Certificates are made with the openssl command line. */
#include <criterion/criterion.h>
#include <ctype.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tls/tls.h"
#include "util/log.h"

static char dir[256];

static void sh(const char *fmt, const char *arg) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, fmt, arg, arg, arg, arg);
    char full[2400];
    snprintf(full, sizeof full, "cd %s && (%s) >/dev/null 2>&1", dir, cmd);
    cr_assert_eq(system(full), 0, "%s", cmd);
}

/* a self-signed EC certificate and key: <name>.crt, <name>.key */
static void make_pair(const char *name) {
    sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout %s.key -out %s.crt "
       "-days 2 -subj /CN=%s",
       name);
}

static const char *path(const char *file) {
    static char p[8][400];
    static int k;
    k = (k + 1) % 8;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, file);
    return p[k];
}

/* "install" src.crt/src.key (or another key) as tls.crt/tls.key by rename */
static void install(const char *crt, const char *key) {
    char cmd[1200];
    snprintf(
        cmd, sizeof cmd,
        "cd %s && cp %s tls.crt.new && cp %s tls.key.new && mv tls.key.new tls.key && mv tls.crt.new tls.crt",
        dir, crt, key);
    cr_assert_eq(system(cmd), 0);
}

/* the SHA-256 fingerprint openssl prints, as 64 lower-case hex digits */
static void file_fp(const char *crt, char out[65]) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "openssl x509 -in %s/%s -noout -fingerprint -sha256", dir, crt);
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f);
    char line[300] = "";
    cr_assert_not_null(fgets(line, sizeof line, f));
    pclose(f);
    size_t o = 0;
    for (const char *p = strchr(line, '=') + 1; *p && o < 64; p++)
        if (isxdigit((unsigned char)*p)) out[o++] = (char)tolower((unsigned char)*p);
    out[o] = 0;
}

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/tr-unit-tls-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    tr_log_set_fd(open("/dev/null", 1));
    make_pair("a");
    make_pair("b");
    install("a.crt", "a.key");
}

static void teardown(void) {
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) {
    }
    tr_log_set_fd(2);
}

TestSuite(tls, .init = setup, .fini = teardown);

Test(tls, loads_a_pair_and_serves_its_certificate) {
    char err[512] = "", fp[65], want[65];
    tr_tls_files f = {path("tls.crt"), path("tls.key"), NULL};
    tr_tls *t = tr_tls_new(&f, err, sizeof err);
    cr_assert_not_null(t, "%s", err);
    tr_tls_server *s =
        tr_tls_server_add(t, "http", TR_TLS_ALPN_HTTP1, TR_TLS_CLIENT_OPTIONAL, err, sizeof err);
    cr_assert_not_null(s, "%s", err);
    cr_assert_eq(tr_tls_server_client_mode(s), TR_TLS_CLIENT_NONE, "no CA file: no client certificates");
    tr_tls_server_fingerprint(s, fp);
    file_fp("a.crt", want);
    cr_assert_str_eq(fp, want);
    cr_assert_eq(tr_tls_reload(t, 0), 0, "nothing changed");
    cr_assert_eq(tr_tls_generation(t), 0);
    tr_tls_free(t);
}

Test(tls, refuses_bad_files_at_start_with_a_clear_error) {
    char err[512] = "";
    tr_tls_files mismatch = {path("a.crt"), path("b.key"), NULL};
    cr_assert_null(tr_tls_new(&mismatch, err, sizeof err));
    cr_assert(strstr(err, "does not match"), "%s", err);

    tr_tls_files missing = {path("nope.crt"), path("a.key"), NULL};
    cr_assert_null(tr_tls_new(&missing, err, sizeof err));
    cr_assert(strstr(err, "nope.crt"), "%s", err);

    sh("openssl pkey -in a.key -aes256 -passout pass:secret -out enc.key", "");
    tr_tls_files enc = {path("a.crt"), path("enc.key"), NULL};
    cr_assert_null(tr_tls_new(&enc, err, sizeof err), "an encrypted key is refused, not prompted for");
    cr_assert(strstr(err, "unencrypted"), "%s", err);

    sh("echo not a certificate > junk.crt", "");
    tr_tls_files junk = {path("junk.crt"), path("a.key"), NULL};
    cr_assert_null(tr_tls_new(&junk, err, sizeof err));
    cr_assert(strstr(err, "no PEM certificate"), "%s", err);

    tr_tls_files noca = {path("a.crt"), path("a.key"), path("nope-ca.crt")};
    cr_assert_null(tr_tls_new(&noca, err, sizeof err));
    cr_assert(strstr(err, "nope-ca.crt"), "%s", err);
}

Test(tls, reloads_on_change_and_keeps_the_old_pair_when_the_new_one_is_bad) {
    char err[512] = "", fp[65], fa[65], fb[65];
    file_fp("a.crt", fa);
    file_fp("b.crt", fb);
    tr_tls_files f = {path("tls.crt"), path("tls.key"), NULL};
    tr_tls *t = tr_tls_new(&f, err, sizeof err);
    cr_assert_not_null(t, "%s", err);
    tr_tls_server *s1 = tr_tls_server_add(t, "http", TR_TLS_ALPN_HTTP1, TR_TLS_CLIENT_NONE, err, sizeof err);
    tr_tls_server *s2 = tr_tls_server_add(t, "grpc", TR_TLS_ALPN_H2, TR_TLS_CLIENT_NONE, err, sizeof err);
    cr_assert(s1 && s2, "%s", err);

    install("b.crt", "b.key");
    cr_assert_eq(tr_tls_reload(t, 0), 1, "the files changed");
    tr_tls_server_fingerprint(s1, fp);
    cr_assert_str_eq(fp, fb);
    tr_tls_server_fingerprint(s2, fp);
    cr_assert_str_eq(fp, fb, "every listener gets the new pair");
    cr_assert_eq(tr_tls_generation(t), 1);
    cr_assert_eq(tr_tls_reload(t, 0), 0);

    /* a certificate with the other key: refused, the current one stays, and it is not tried
     * again until a file changes */
    install("a.crt", "b.key");
    cr_assert_eq(tr_tls_reload(t, 0), -1);
    tr_tls_server_fingerprint(s1, fp);
    cr_assert_str_eq(fp, fb);
    cr_assert_eq(tr_tls_reload(t, 0), 0, "the same bad files are not retried");
    cr_assert_eq(tr_tls_reload(t, 1), -1, "but SIGHUP tries again");

    /* the key arrives: the pair is whole again (an ACME client renaming one file then the other) */
    sh("cp a.key tls.key.new && mv tls.key.new tls.key", "");
    cr_assert_eq(tr_tls_reload(t, 0), 1);
    tr_tls_server_fingerprint(s2, fp);
    cr_assert_str_eq(fp, fa);

    /* a file that disappears is a refusal too */
    sh("rm tls.key", "");
    cr_assert_eq(tr_tls_reload(t, 0), -1);
    tr_tls_server_fingerprint(s2, fp);
    cr_assert_str_eq(fp, fa);
    cr_assert_eq(tr_tls_generation(t), 2);
    tr_tls_free(t);
}

Test(tls, client_ca_and_chain_files) {
    char err[512] = "";
    /* a chain file: leaf then issuer; a CA file of two certificates */
    sh("cat a.crt b.crt > chain.crt && cat a.crt b.crt > cas.crt", "");
    tr_tls_files f = {path("chain.crt"), path("a.key"), path("cas.crt")};
    tr_tls *t = tr_tls_new(&f, err, sizeof err);
    cr_assert_not_null(t, "%s", err);
    tr_tls_server *s = tr_tls_server_add(t, "otlp", TR_TLS_ALPN_H2, TR_TLS_CLIENT_REQUIRED, err, sizeof err);
    cr_assert_not_null(s, "%s", err);
    cr_assert_eq(tr_tls_server_client_mode(s), TR_TLS_CLIENT_REQUIRED);
    /* a chain file with garbage after the leaf is refused whole */
    sh("cat a.crt > bad-chain.crt && echo '-----BEGIN CERTIFICATE-----' >> bad-chain.crt && echo AAAA >> "
       "bad-chain.crt && echo '-----END CERTIFICATE-----' >> bad-chain.crt",
       "");
    tr_tls_files bad = {path("bad-chain.crt"), path("a.key"), NULL};
    cr_assert_null(tr_tls_new(&bad, err, sizeof err));
    cr_assert(strstr(err, "bad certificate"), "%s", err);
    tr_tls_free(t);
}

Test(tls, client_context_checks_its_files) {
    char err[600];
    tr_tls_client_opts o = {.ca_file = path("a.crt"),
                            .cert_file = path("b.crt"),
                            .key_file = path("b.key"),
                            .server_name = "localhost",
                            .alpn = "h2"};
    tr_tls_client *c = tr_tls_client_new(&o, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    tr_tls_client_free(c);
    tr_tls_client_opts sys = {0}; /* the system CA store */
    c = tr_tls_client_new(&sys, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    tr_tls_client_free(c);

    tr_tls_client_opts bad = o;
    bad.key_file = path("a.key"); /* not b.crt's key */
    cr_assert_null(tr_tls_client_new(&bad, err, sizeof err));
    cr_assert(strstr(err, "client key") && strstr(err, "a.key"), "%s", err);
    bad = o;
    bad.key_file = NULL;
    cr_assert_null(tr_tls_client_new(&bad, err, sizeof err));
    cr_assert(strstr(err, "both"), "%s", err);
    bad = o;
    bad.ca_file = path("missing.pem");
    cr_assert_null(tr_tls_client_new(&bad, err, sizeof err));
    cr_assert(strstr(err, "missing.pem"), "%s", err);
    bad = o;
    bad.cert_file = path("a.key"); /* a key is not a certificate */
    cr_assert_null(tr_tls_client_new(&bad, err, sizeof err));
    cr_assert(strstr(err, "client certificate"), "%s", err);
}
