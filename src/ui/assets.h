/* The web UI's files, embedded at build time by tools/embed (build/ui/assets.c). */
#ifndef TR_UI_ASSETS_H
#define TR_UI_ASSETS_H

#include <stddef.h>

typedef struct tr_ui_asset {
    const char *path;        /* URL path: /ui/js/app.js, /ui/dashboards/scotty-metrics.json */
    const char *ctype;       /* Content-Type */
    const char *etag;        /* quoted, a hash of the uncompressed bytes */
    const unsigned char *gz; /* gzip-compressed content */
    size_t gz_len, raw_len;
} tr_ui_asset;

extern const tr_ui_asset tr_ui_assets[];
extern const size_t tr_ui_nassets;
extern const size_t tr_ui_gzip_bytes; /* the UI's weight on the wire */
extern const int tr_ui_built;         /* 0: uPlot was missing at build time, only dashboards */

#endif
