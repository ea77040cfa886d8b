/* Unit tests of util/credentials.h: the htpasswd parser (bcrypt only, comments, CRLF,
 * refusals with line numbers), bcrypt verification through libxcrypt (hashes made by
 * Debian's htpasswd -B), unknown users getting a dummy hash of the same cost, the token
 * list, SipHash's reference vector and the file stamps. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/credentials.h"

/* made with: htpasswd -nbB -C 4 alice wonderland; htpasswd -nbB -C 5 bob builder */
static const char H_ALICE[] = "$2y$04$pV.TuuQNgZxaV3a5kj.DMulo1G3U.2gez4Jptd9r/kHZcA/DHX28e";
static const char H_BOB[] = "$2y$05$MMCv/fhx.X0uy/zl3N4yL.2ivwQC5PuCEciRu4hiBpLMz.Zr6TBH6";

Test(credentials, htpasswd_parse_and_verify) {
    char text[512], err[200];
    snprintf(text, sizeof text, "# users\r\n\r\nalice:%s\r\n  \nbob:%s", H_ALICE, H_BOB);
    tr_htpasswd *p = tr_htpasswd_parse(text, strlen(text), err, sizeof err);
    cr_assert_not_null(p, "%s", err);
    cr_assert_eq(tr_htpasswd_count(p), 2);
    int known;
    const char *h = tr_htpasswd_hash(p, "alice", 5, &known);
    cr_assert(known);
    cr_assert(tr_bcrypt_verify("wonderland", h));
    cr_assert_not(tr_bcrypt_verify("Wonderland", h));
    cr_assert_not(tr_bcrypt_verify("", h));
    h = tr_htpasswd_hash(p, "bob", 3, &known);
    cr_assert(known);
    cr_assert(tr_bcrypt_verify("builder", h));
    /* a prefix of a user is not the user */
    h = tr_htpasswd_hash(p, "ali", 3, &known);
    cr_assert_not(known);
    /* the dummy for unknown users has the highest cost in the file (bob's 05) */
    cr_assert_eq(strncmp(h, "$2y$05$", 7), 0, "%s", h);
    cr_assert_not(tr_bcrypt_verify("wonderland", h));
    tr_htpasswd_free(p);
}

Test(credentials, htpasswd_refusals) {
    char err[200];
    struct {
        const char *text, *want;
    } cases[] = {
        {"alice:plain", "line 1"},
        {"# ok\nbob:$apr1$xyz$abcdefghijklmnopqrstuv", "line 2"},
        {":$2y$05$abcdefghijklmnopqrstuuJ0Qx2gK0eYw0Q8JmJtWq1cY4mE5pGnS", "line 1"},
        {"nocolon", "not user:hash"},
        {"a:$2y$03$abcdefghijklmnopqrstuuJ0Qx2gK0eYw0Q8JmJtWq1cY4mE5pGnS", "bcrypt"},
        {"a:$2x$05$abcdefghijklmnopqrstuuJ0Qx2gK0eYw0Q8JmJtWq1cY4mE5pGnS", "bcrypt"},
        {"a:$2y$05$abcdefghijklmnopqrstuuJ0Qx2gK0eYw0Q8JmJtWq1cY4mE5pGn", "bcrypt"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        err[0] = 0;
        tr_htpasswd *p = tr_htpasswd_parse(cases[i].text, strlen(cases[i].text), err, sizeof err);
        cr_assert_null(p, "case %zu parsed", i);
        cr_assert(strstr(err, cases[i].want), "case %zu: %s", i, err);
    }
    char dup[300];
    snprintf(dup, sizeof dup, "alice:%s\nalice:%s\n", H_ALICE, H_ALICE);
    cr_assert_null(tr_htpasswd_parse(dup, strlen(dup), err, sizeof err));
    cr_assert(strstr(err, "twice"), "%s", err);
    char nul[] = "alice:x\0y";
    cr_assert_null(tr_htpasswd_parse(nul, sizeof nul - 1, err, sizeof err));
    cr_assert(strstr(err, "NUL"), "%s", err);
    /* an empty file: no users, nothing matches */
    tr_htpasswd *p = tr_htpasswd_parse("", 0, err, sizeof err);
    cr_assert_not_null(p);
    int known;
    const char *h = tr_htpasswd_hash(p, "x", 1, &known);
    cr_assert_not(known);
    cr_assert_eq(strlen(h), 60);
    tr_htpasswd_free(p);
}

Test(credentials, tokens) {
    char err[200];
    const char text[] = "# tokens\n  tok-one  \r\n\n#tok-commented\ntok-two\n";
    tr_tokens *t = tr_tokens_parse(text, sizeof text - 1, err, sizeof err);
    cr_assert_not_null(t, "%s", err);
    cr_assert_eq(tr_tokens_count(t), 2);
    cr_assert(tr_tokens_match(t, "tok-one"));
    cr_assert(tr_tokens_match(t, "tok-two"));
    cr_assert_not(tr_tokens_match(t, "tok-commented"));
    cr_assert_not(tr_tokens_match(t, "tok-on"));
    cr_assert_not(tr_tokens_match(t, ""));
    tr_tokens_free(t);
    cr_assert_null(tr_tokens_parse("a\x01"
                                   "b\n",
                                   4, err, sizeof err));
    cr_assert(strstr(err, "line 1"), "%s", err);
}

Test(credentials, siphash_reference_vector) {
    /* SipHash-2-4 paper, appendix A: key 00..0f, message 00..0e */
    uint8_t key[16], msg[15];
    for (int i = 0; i < 16; i++)
        key[i] = (uint8_t)i;
    for (int i = 0; i < 15; i++)
        msg[i] = (uint8_t)i;
    cr_assert_eq(tr_siphash(key, msg, 15), 0xa129ca6149be45e5ULL);
}

Test(credentials, file_stamps) {
    char path[] = "/tmp/tr-cred-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, "a\n", 2), 2);
    tr_file_stamp st = {0};
    cr_assert(tr_file_changed(path, &st));
    cr_assert_not(tr_file_changed(path, &st));
    cr_assert_eq(write(fd, "b\n", 2), 2); /* the size changes */
    cr_assert(tr_file_changed(path, &st));
    close(fd);
    size_t len;
    char err[200];
    char *b = tr_read_small_file(path, 100, &len, err, sizeof err);
    cr_assert_not_null(b, "%s", err);
    cr_assert_eq(len, 4);
    free(b);
    cr_assert_null(tr_read_small_file(path, 3, &len, err, sizeof err));
    unlink(path);
    cr_assert(tr_file_changed(path, &st)); /* gone */
    cr_assert_null(tr_read_small_file(path, 100, &len, err, sizeof err));
}
