/* File helpers: whole writes and directory creation. */
#ifndef TR_FILE_H
#define TR_FILE_H

#include <stddef.h>

/* Writes all n bytes of p to fd, retrying short writes and EINTR. Returns 0, or -1 with
 * errno set. */
int tr_write_all(int fd, const void *p, size_t n);
/* Creates path and its missing parents (mode 0755), as `mkdir -p`. Returns 0 (also when it
 * exists already), or -1 with errno set (ENAMETOOLONG past PATH_MAX). */
int tr_mkdir_p(const char *path);

#endif
