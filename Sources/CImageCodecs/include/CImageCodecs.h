// CImageCodecs: JPEG and WebP decoding through the system's libjpeg-turbo (libjpeg.so.62) and libwebp
// (libwebp.so.7), loaded at run time with dlopen: the package builds and links without them, and a missing
// library is reported when a JPEG or WebP is first read.
//
// libjpeg reports errors by longjmp, which must never unwind through Swift frames; every entry point
// here owns the setjmp, frees what it allocated and returns an error code plus a message instead. The
// error manager never prints and never calls exit.
#ifndef CIMAGECODECS_H
#define CIMAGECODECS_H

#include <stddef.h>
#include <stdint.h>

enum {
    SD_CODEC_OK = 0,
    SD_CODEC_ERROR_CORRUPT = 1,            ///< the library rejected the data (bad marker, bitstream error, ...)
    SD_CODEC_ERROR_NOT_THIS_FORMAT = 2,    ///< no JPEG / WebP signature
    SD_CODEC_ERROR_TRUNCATED = 3,          ///< the data ends before the image does
    SD_CODEC_ERROR_TOO_LARGE = 4,          ///< the header claims more pixels than the caller's limit
    SD_CODEC_ERROR_OUT_OF_MEMORY = 5,
    SD_CODEC_ERROR_UNSUPPORTED = 6,        ///< a valid file of a kind not read here (animated WebP, 2-channel JPEG)
    SD_CODEC_ERROR_LIBRARY_MISSING = 7,    ///< libjpeg.so.62 / libwebp.so.7 could not be loaded
};

/// Outcome of a call: `code` is one of the SD_CODEC_* values, `message` a NUL-terminated description.
typedef struct {
    int code;
    char message[256];
} sd_codec_status;

/// A decoded image, as stored (no orientation applied): `channels` is 3 (RGB) or 4 (RGBA, not premultiplied;
/// WebP with alpha only). Gray and CMYK JPEGs are already converted to RGB.
typedef struct {
    uint32_t width;
    uint32_t height;
    int channels;
    uint8_t *pixels;          ///< width * height * channels bytes, rows top to bottom
    int source_components;    ///< JPEG: 1 (gray), 3 (YCbCr/RGB), 4 (CMYK/YCCK); WebP: 3 or 4 (alpha)
    int progressive;          ///< JPEG: progressive; WebP: lossless (VP8L)
    int inverted_cmyk;        ///< JPEG: 4 components read with Adobe's inverted polarity (an Adobe APP14 marker)
    long warnings;            ///< JPEG: corrupt-data warnings libjpeg recovered from (the image decoded anyway)
    char first_warning[200];  ///< JPEG: the first of them, "" when none
} sd_codec_image;

/// 0 when the library loads; otherwise an SD_CODEC_ERROR_LIBRARY_MISSING status naming what failed.
/// Thread-safe; the library is loaded once per process.
int sd_jpeg_library_status(sd_codec_status *status);
int sd_webp_library_status(sd_codec_status *status);

/// Decodes a whole JPEG held in memory (baseline, progressive, arithmetic; gray, YCbCr, RGB, CMYK, YCCK).
/// Refuses images of more than `max_pixels` pixels and files of more than `max_scans` scans (a progressive
/// file can repeat scans to cost minutes of CPU) before decoding them. CMYK is converted to RGB as Pillow
/// converts it: Adobe-marked files have inverted samples. On success the caller owns `out` and releases it with
/// `sd_codec_image_free`; on failure nothing needs freeing.
int sd_jpeg_decode(const uint8_t *data, size_t size, uint64_t max_pixels, int max_scans,
                   sd_codec_image *out, sd_codec_status *status);

/// Decodes a still WebP (lossy, lossless, with or without alpha). Animated files are refused.
int sd_webp_decode(const uint8_t *data, size_t size, uint64_t max_pixels,
                   sd_codec_image *out, sd_codec_status *status);

void sd_codec_image_free(sd_codec_image *image);

#endif
