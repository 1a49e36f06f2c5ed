// WebP decoding through libwebp.so.7, loaded at run time: the advanced decoding API (WebPDecode with a
// WebPDecoderConfig) into a buffer allocated here, so every failure comes back as a status code. The
// structures below are those of libwebp's decode.h (decoder ABI 2.x, unchanged since libwebp 0.5).
#include "sd_codec_common.h"

#include <stdlib.h>

// MARK: - libwebp's declarations

#define SD_WEBP_DECODER_ABI_VERSION 0x0209   // libwebp compares only the major byte

enum { SD_MODE_RGB = 0, SD_MODE_RGBA = 1 };
enum {
    SD_VP8_STATUS_OK = 0, SD_VP8_STATUS_OUT_OF_MEMORY, SD_VP8_STATUS_INVALID_PARAM, SD_VP8_STATUS_BITSTREAM_ERROR,
    SD_VP8_STATUS_UNSUPPORTED_FEATURE, SD_VP8_STATUS_SUSPENDED, SD_VP8_STATUS_USER_ABORT, SD_VP8_STATUS_NOT_ENOUGH_DATA,
};

typedef struct {
    int width, height, has_alpha, has_animation, format;   // format: 0 mixed/undefined, 1 lossy, 2 lossless
    uint32_t pad[5];
} sd_webp_features;

typedef struct {
    int colorspace;
    int width, height;
    int is_external_memory;
    union {
        struct {
            uint8_t *rgba;
            int stride;
            size_t size;
        } RGBA;
        struct {
            uint8_t *y, *u, *v, *a;
            int y_stride, u_stride, v_stride, a_stride;
            size_t y_size, u_size, v_size, a_size;
        } YUVA;
    } u;
    uint32_t pad[4];
    uint8_t *private_memory;
} sd_webp_buffer;

typedef struct {
    int bypass_filtering, no_fancy_upsampling, use_cropping, crop_left, crop_top, crop_width, crop_height;
    int use_scaling, scaled_width, scaled_height, use_threads, dithering_strength, flip, alpha_dithering_strength;
    uint32_t pad[5];
} sd_webp_options;

typedef struct {
    sd_webp_features input;
    sd_webp_buffer output;
    sd_webp_options options;
} sd_webp_config;

typedef int (*init_config_fn)(sd_webp_config *, int);
typedef int (*get_features_fn)(const uint8_t *, size_t, sd_webp_features *, int);
typedef int (*decode_fn)(const uint8_t *, size_t, sd_webp_config *);
typedef void (*free_buffer_fn)(sd_webp_buffer *);

static struct {
    init_config_fn WebPInitDecoderConfigInternal;
    get_features_fn WebPGetFeaturesInternal;
    decode_fn WebPDecode;
    free_buffer_fn WebPFreeDecBuffer;
} api;

static const char *const library_names[] = {"libwebp.so.7", NULL};
static const char *const symbol_names[] = {
    "WebPInitDecoderConfigInternal", "WebPGetFeaturesInternal", "WebPDecode", "WebPFreeDecBuffer",
};
static sd_codec_library library = {library_names, symbol_names, (void **)&api, sizeof symbol_names / sizeof *symbol_names,
                                   NULL, 0, {0}};

int sd_webp_library_status(sd_codec_status *status) {
    status->code = SD_CODEC_OK;
    status->message[0] = 0;
    if (sd_codec_load(&library)) return SD_CODEC_OK;
    return sd_codec_set_status(status, SD_CODEC_ERROR_LIBRARY_MISSING, "%s", library.error);
}

// MARK: - Decoding

static int failure(sd_codec_status *status, int vp8, const char *stage) {
    switch (vp8) {
    case SD_VP8_STATUS_NOT_ENOUGH_DATA:
    case SD_VP8_STATUS_SUSPENDED:
        return sd_codec_set_status(status, SD_CODEC_ERROR_TRUNCATED, "the data ends before the end of the image (%s)",
                                   stage);
    case SD_VP8_STATUS_OUT_OF_MEMORY:
        return sd_codec_set_status(status, SD_CODEC_ERROR_OUT_OF_MEMORY, "libwebp ran out of memory (%s)", stage);
    case SD_VP8_STATUS_UNSUPPORTED_FEATURE:
        return sd_codec_set_status(status, SD_CODEC_ERROR_UNSUPPORTED, "libwebp does not support a feature of this file (%s)",
                                   stage);
    case SD_VP8_STATUS_BITSTREAM_ERROR:
        return sd_codec_set_status(status, SD_CODEC_ERROR_CORRUPT, "bitstream error (%s)", stage);
    default:
        return sd_codec_set_status(status, SD_CODEC_ERROR_CORRUPT, "libwebp status %d (%s)", vp8, stage);
    }
}

int sd_webp_decode(const uint8_t *data, size_t size, uint64_t max_pixels,
                   sd_codec_image *out, sd_codec_status *status) {
    sd_codec_reset(out, status);
    if (size == 0) return sd_codec_set_status(status, SD_CODEC_ERROR_NOT_THIS_FORMAT, "empty: zero bytes");
    if (size < 12 || memcmp(data, "RIFF", 4) != 0 || memcmp(data + 8, "WEBP", 4) != 0) {
        return sd_codec_set_status(status, SD_CODEC_ERROR_NOT_THIS_FORMAT, "not a WebP: the RIFF/WEBP signature is missing");
    }
    if (!sd_codec_load(&library)) {
        return sd_codec_set_status(status, SD_CODEC_ERROR_LIBRARY_MISSING, "%s", library.error);
    }
    sd_webp_config config;
    memset(&config, 0, sizeof config);
    if (!api.WebPInitDecoderConfigInternal(&config, SD_WEBP_DECODER_ABI_VERSION)) {
        return sd_codec_set_status(status, SD_CODEC_ERROR_LIBRARY_MISSING, "libwebp.so.7 has an incompatible decoder ABI");
    }
    int vp8 = api.WebPGetFeaturesInternal(data, size, &config.input, SD_WEBP_DECODER_ABI_VERSION);
    if (vp8 != SD_VP8_STATUS_OK) return failure(status, vp8, "header");
    if (config.input.has_animation) {
        return sd_codec_set_status(status, SD_CODEC_ERROR_UNSUPPORTED,
                                   "an animated WebP is not supported; save one frame as a still image");
    }
    int width = config.input.width, height = config.input.height;
    if (width <= 0 || height <= 0) {
        return sd_codec_set_status(status, SD_CODEC_ERROR_CORRUPT, "the header claims %dx%d pixels", width, height);
    }
    uint64_t pixels = (uint64_t)width * (uint64_t)height;
    if (pixels > max_pixels) {
        return sd_codec_set_status(status, SD_CODEC_ERROR_TOO_LARGE,
                                   "the header claims %dx%d = %llu pixels, more than the limit of %llu", width, height,
                                   (unsigned long long)pixels, (unsigned long long)max_pixels);
    }
    int channels = config.input.has_alpha ? 4 : 3;
    size_t bytes = (size_t)pixels * (size_t)channels;
    uint8_t *buffer = (uint8_t *)malloc(bytes + 1);
    if (!buffer) {
        return sd_codec_set_status(status, SD_CODEC_ERROR_OUT_OF_MEMORY, "out of memory for a %dx%d image", width, height);
    }
    config.output.colorspace = channels == 4 ? SD_MODE_RGBA : SD_MODE_RGB;
    config.output.is_external_memory = 1;
    config.output.u.RGBA.rgba = buffer;
    config.output.u.RGBA.stride = width * channels;
    config.output.u.RGBA.size = bytes;
    vp8 = api.WebPDecode(data, size, &config);
    int lossless = config.input.format == 2;
    api.WebPFreeDecBuffer(&config.output);
    if (vp8 != SD_VP8_STATUS_OK) {
        free(buffer);
        return failure(status, vp8, "image data");
    }
    out->width = (uint32_t)width;
    out->height = (uint32_t)height;
    out->channels = channels;
    out->pixels = buffer;
    out->source_components = channels;
    out->progressive = lossless;
    return SD_CODEC_OK;
}
