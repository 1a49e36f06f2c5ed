// Shared by sd_jpeg.c and sd_webp.c: status helpers and the run-time library loader.
#ifndef SD_CODEC_COMMON_H
#define SD_CODEC_COMMON_H

#include "CImageCodecs.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static inline int sd_codec_set_status(sd_codec_status *status, int code, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

static inline int sd_codec_set_status(sd_codec_status *status, int code, const char *format, ...) {
    status->code = code;
    va_list args;
    va_start(args, format);
    vsnprintf(status->message, sizeof status->message, format, args);
    va_end(args);
    return code;
}

static inline void sd_codec_reset(sd_codec_image *out, sd_codec_status *status) {
    memset(out, 0, sizeof *out);
    status->code = SD_CODEC_OK;
    status->message[0] = 0;
}

/// A library opened once per process: `names` are tried in order, then every symbol of `symbols` is looked up
/// into `slots` (same order). `error` holds the reason when it could not be loaded.
typedef struct {
    const char *const *names;
    const char *const *symbols;
    void **slots;
    size_t symbol_count;
    void *handle;
    int loaded;             ///< 1 when every symbol was found
    char error[200];
} sd_codec_library;

/// Loads `library` unless done already (thread-safe); 1 when it is usable.
int sd_codec_load(sd_codec_library *library);

#endif
