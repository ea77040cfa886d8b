/* Unit tests of util/file.h: mkdir -p and whole writes (through a pipe, whose reader takes
 * the data in pieces, so writes come back short). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/file.h"

Test(file, mkdir_p) {
    char base[] = "/tmp/tr_file_XXXXXX";
    cr_assert_not_null(mkdtemp(base));
    char p[256];
    snprintf(p, sizeof p, "%s/a/b/c", base);
    cr_assert_eq(tr_mkdir_p(p), 0, "%s", strerror(errno));
    struct stat st;
    cr_assert_eq(stat(p, &st), 0);
    cr_assert(S_ISDIR(st.st_mode));
    cr_assert_eq(tr_mkdir_p(p), 0, "an existing directory is fine");
    snprintf(p, sizeof p, "%s/a/b/c/", base);
    cr_assert_eq(tr_mkdir_p(p), 0, "a trailing slash is fine");
    /* a file in the way */
    snprintf(p, sizeof p, "%s/f", base);
    int fd = open(p, O_CREAT | O_WRONLY, 0644);
    cr_assert_geq(fd, 0);
    close(fd);
    snprintf(p, sizeof p, "%s/f/x", base);
    cr_assert_eq(tr_mkdir_p(p), -1);
    cr_assert_eq(errno, ENOTDIR);
    char *long_path = malloc(5000);
    memset(long_path, 'x', 4999);
    long_path[0] = '/';
    long_path[4999] = 0;
    cr_assert_eq(tr_mkdir_p(long_path), -1);
    cr_assert_eq(errno, ENAMETOOLONG);
    free(long_path);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", base);
    cr_assert_eq(system(cmd), 0);
}

typedef struct {
    int fd;
    size_t got;
    unsigned sum;
} reader;

static void *drain(void *arg) {
    reader *r = arg;
    char b[1000];
    ssize_t n;
    while ((n = read(r->fd, b, sizeof b)) > 0) {
        for (ssize_t i = 0; i < n; i++)
            r->sum = r->sum * 31 + (unsigned char)b[i];
        r->got += (size_t)n;
    }
    return NULL;
}

Test(file, write_all_through_short_writes) {
    int p[2];
    cr_assert_eq(pipe(p), 0);
    size_t n = 1 << 20; /* far more than a pipe holds */
    unsigned char *data = malloc(n);
    unsigned want = 0;
    for (size_t i = 0; i < n; i++) {
        data[i] = (unsigned char)(i * 7);
        want = want * 31 + data[i];
    }
    reader r = {.fd = p[0]};
    pthread_t t;
    pthread_create(&t, NULL, drain, &r);
    cr_assert_eq(tr_write_all(p[1], data, n), 0);
    close(p[1]);
    pthread_join(t, NULL);
    close(p[0]);
    cr_assert_eq(r.got, n);
    cr_assert_eq(r.sum, want);
    free(data);
    /* a closed fd */
    cr_assert_eq(tr_write_all(p[1], "x", 1), -1);
    cr_assert_eq(errno, EBADF);
}
