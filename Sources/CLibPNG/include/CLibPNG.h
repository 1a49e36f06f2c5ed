// CLibPNG: a small C shim around libpng for PNGImage.
//
// libpng reports errors by longjmp, which must never unwind through Swift frames; every entry point
// here owns the setjmp, frees what it allocated and returns an error code plus a message instead.
#ifndef CLIBPNG_H
#define CLIBPNG_H

#include <stddef.h>
#include <stdint.h>

enum {
    SD_PNG_OK = 0,
    SD_PNG_ERROR_LIBPNG = 1,        ///< libpng rejected the data (bad chunk, CRC, zlib stream, ...)
    SD_PNG_ERROR_NOT_PNG = 2,       ///< no PNG signature
    SD_PNG_ERROR_TRUNCATED = 3,     ///< the data ends before the image does
    SD_PNG_ERROR_TOO_LARGE = 4,     ///< the header claims more pixels than the caller's limit
    SD_PNG_ERROR_OUT_OF_MEMORY = 5,
    SD_PNG_ERROR_INVALID_ARGUMENT = 6,
};

/// Outcome of a call: `code` is one of the SD_PNG_* values, `message` a NUL-terminated description.
typedef struct {
    int code;
    char message[256];
} sd_png_status;

/// One text chunk read from a file. `key` is NUL-terminated Latin-1; `text` has `text_length` bytes,
/// UTF-8 when `international` (iTXt), Latin-1 otherwise (tEXt, zTXt).
typedef struct {
    char *key;
    char *text;
    size_t text_length;
    int international;
} sd_png_text;

/// A decoded image: `channels` is 3 (RGB) or 4 (RGBA), `bit_depth` 8 or 16 (16: host-endian uint16).
/// Palette, low bit depths, gray and tRNS are already expanded; alpha is not applied.
typedef struct {
    uint32_t width;
    uint32_t height;
    int source_bit_depth;
    int source_color_type;
    int interlaced;
    int channels;
    int bit_depth;
    uint8_t *pixels;            ///< width * height * channels * bit_depth / 8 bytes, rows top to bottom
    sd_png_text *texts;
    size_t text_count;
} sd_png_image;

/// Decodes a whole PNG held in memory. Refuses images of more than `max_pixels` pixels before
/// allocating them. On success the caller owns `out` and releases it with `sd_png_image_free`;
/// on failure nothing needs freeing.
int sd_png_decode(const uint8_t *data, size_t size, uint64_t max_pixels,
                  sd_png_image *out, sd_png_status *status);
void sd_png_image_free(sd_png_image *image);

/// A text chunk to write: `international` selects iTXt (UTF-8) instead of tEXt (Latin-1).
/// `key` and `text` are NUL-terminated.
typedef struct {
    const char *key;
    const char *text;
    int international;
} sd_png_text_input;

/// Encodes 8-bit RGB (`channels` 3) or RGBA (4) rows into a PNG held in memory, text chunks before
/// the image data. On success `*out_data` (release with `sd_png_buffer_free`) holds `*out_size` bytes.
int sd_png_encode(const uint8_t *pixels, uint32_t width, uint32_t height, int channels,
                  const sd_png_text_input *texts, size_t text_count, int compression_level,
                  uint8_t **out_data, size_t *out_size, sd_png_status *status);
void sd_png_buffer_free(uint8_t *data);

#endif
