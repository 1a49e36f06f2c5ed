// JPEG decoding through libjpeg-turbo's libjpeg.so.62, loaded at run time. The only place that calls setjmp for
// libjpeg: its errors longjmp back here (never through Swift), warnings are counted, nothing is printed and
// nothing calls exit. Output as Pillow decodes (libjpeg's defaults: accurate integer IDCT, fancy upsampling),
// gray replicated to RGB, CMYK converted as Pillow converts CMYK to RGB.
#include "jpeglib62.h"
#include "sd_codec_common.h"

#include <setjmp.h>
#include <stdlib.h>

// MARK: - The library

typedef struct sd_jpeg_error_mgr *(*std_error_fn)(struct sd_jpeg_error_mgr *);
typedef void (*create_fn)(sd_j_decompress_ptr, int, size_t);
typedef void (*destroy_fn)(sd_j_decompress_ptr);
typedef int (*read_header_fn)(sd_j_decompress_ptr, sd_boolean);
typedef sd_boolean (*start_fn)(sd_j_decompress_ptr);
typedef sd_JDIMENSION (*read_scanlines_fn)(sd_j_decompress_ptr, sd_JSAMPARRAY, sd_JDIMENSION);
typedef sd_boolean (*finish_fn)(sd_j_decompress_ptr);
typedef sd_boolean (*resync_fn)(sd_j_decompress_ptr, int);

static struct {
    std_error_fn jpeg_std_error;
    create_fn jpeg_CreateDecompress;
    destroy_fn jpeg_destroy_decompress;
    read_header_fn jpeg_read_header;
    start_fn jpeg_start_decompress;
    read_scanlines_fn jpeg_read_scanlines;
    finish_fn jpeg_finish_decompress;
    resync_fn jpeg_resync_to_restart;
} api;

static const char *const library_names[] = {"libjpeg.so.62", NULL};
static const char *const symbol_names[] = {
    "jpeg_std_error", "jpeg_CreateDecompress", "jpeg_destroy_decompress", "jpeg_read_header",
    "jpeg_start_decompress", "jpeg_read_scanlines", "jpeg_finish_decompress", "jpeg_resync_to_restart",
};
static sd_codec_library library = {library_names, symbol_names, (void **)&api, sizeof symbol_names / sizeof *symbol_names,
                                   NULL, 0, {0}};

int sd_jpeg_library_status(sd_codec_status *status) {
    status->code = SD_CODEC_OK;
    status->message[0] = 0;
    if (sd_codec_load(&library)) return SD_CODEC_OK;
    return sd_codec_set_status(status, SD_CODEC_ERROR_LIBRARY_MISSING, "%s", library.error);
}

// MARK: - Error manager, source and progress monitor

typedef struct {
    struct sd_jpeg_error_mgr pub;
    jmp_buf jump;
    sd_codec_status *status;
    char first_warning[200];
} error_manager;

typedef struct {
    struct sd_jpeg_source_mgr pub;
    size_t size;
} source_manager;

typedef struct {
    struct sd_jpeg_progress_mgr pub;
    int max_scans;
} progress_manager;

/// Sets `code` and the message unless an earlier failure already did, and returns to the setjmp.
__attribute__((noreturn)) static void fail(sd_j_decompress_ptr cinfo, int code, const char *message) {
    error_manager *err = (error_manager *)cinfo->err;
    if (err->status->code == SD_CODEC_OK) sd_codec_set_status(err->status, code, "%s", message);
    longjmp(err->jump, 1);
}

/// libjpeg's error, as the message it formats: "Insufficient memory …" is out of memory, "Unsupported JPEG …" (a
/// 12-bit or lossless file, which libjpeg.so.62 does not read) a kind of file not read, anything else corrupt data.
static void on_error(sd_j_common_ptr cinfo) {
    char text[SD_JMSG_LENGTH_MAX] = {0};
    cinfo->err->format_message(cinfo, text);
    if (strncmp(text, "Insufficient memory", 19) == 0) fail(cinfo, SD_CODEC_ERROR_OUT_OF_MEMORY, text);
    if (strncmp(text, "Unsupported JPEG", 16) == 0) {
        char line[SD_JMSG_LENGTH_MAX + 64];
        snprintf(line, sizeof line, "a JPEG that libjpeg does not read (%s); convert it to an 8-bit baseline JPEG or PNG", text);
        fail(cinfo, SD_CODEC_ERROR_UNSUPPORTED, line);
    }
    fail(cinfo, SD_CODEC_ERROR_CORRUPT, text);
}

/// Warnings (level < 0) are counted and the first kept; trace messages are dropped. Never prints.
static void on_message(sd_j_common_ptr cinfo, int level) {
    if (level >= 0) return;
    error_manager *err = (error_manager *)cinfo->err;
    if (err->pub.num_warnings == 0) err->pub.format_message(cinfo, err->first_warning);
    err->pub.num_warnings++;
}

static void on_output(sd_j_common_ptr cinfo) { (void)cinfo; }

static void init_source(sd_j_decompress_ptr cinfo) { (void)cinfo; }
static void term_source(sd_j_decompress_ptr cinfo) { (void)cinfo; }

/// The whole file is in the buffer from the start, so a request for more means it ended early. Pillow refuses
/// such files too ("image file is truncated"), a missing EOI marker included.
static sd_boolean fill_input_buffer(sd_j_decompress_ptr cinfo) {
    source_manager *src = (source_manager *)cinfo->src;
    char text[160];
    snprintf(text, sizeof text, "the data ends at byte %zu, before the end of the image", src->size);
    fail(cinfo, SD_CODEC_ERROR_TRUNCATED, text);
    return 0;
}

static void skip_input_data(sd_j_decompress_ptr cinfo, long count) {
    if (count <= 0) return;
    if ((size_t)count > cinfo->src->bytes_in_buffer) {
        cinfo->src->next_input_byte += cinfo->src->bytes_in_buffer;
        cinfo->src->bytes_in_buffer = 0;
        fill_input_buffer(cinfo);
    }
    cinfo->src->next_input_byte += count;
    cinfo->src->bytes_in_buffer -= (size_t)count;
}

static sd_boolean resync_to_restart(sd_j_decompress_ptr cinfo, int desired) {
    return api.jpeg_resync_to_restart(cinfo, desired);
}

static void on_progress(sd_j_common_ptr cinfo) {
    progress_manager *progress = (progress_manager *)cinfo->progress;
    if (cinfo->input_scan_number > progress->max_scans) {
        char text[160];
        snprintf(text, sizeof text, "more than %d scans (a progressive file normally has about 10); refused as hostile",
                 progress->max_scans);
        fail(cinfo, SD_CODEC_ERROR_CORRUPT, text);
    }
}

// MARK: - Decoding

/// Pillow's CMYK to RGB: with nk = 255 - k, each channel is nk - round(c * nk / 255) (its MULDIV255).
static inline uint8_t cmyk_channel(unsigned c, unsigned nk) {
    unsigned t = c * nk + 128;
    return (uint8_t)(nk - (((t >> 8) + t) >> 8));
}

// Everything the decoder allocates, kept in memory (not registers) so that it survives a longjmp.
typedef struct {
    struct sd_jpeg_decompress_struct cinfo;
    error_manager err;
    source_manager src;
    progress_manager progress;
    int created;
    uint8_t *pixels;
    uint8_t *row;
} decode_state;

static int decode(volatile decode_state *vs, const uint8_t *data, size_t size, uint64_t max_pixels, int max_scans,
                  sd_codec_image *out, sd_codec_status *status) {
    decode_state *s = (decode_state *)vs;
    sd_j_decompress_ptr cinfo = &s->cinfo;
    cinfo->err = api.jpeg_std_error(&s->err.pub);
    s->err.pub.error_exit = on_error;
    s->err.pub.emit_message = on_message;
    s->err.pub.output_message = on_output;
    s->err.status = status;
    if (setjmp(s->err.jump)) return status->code;

    api.jpeg_CreateDecompress(cinfo, SD_JPEG_LIB_VERSION, sizeof(struct sd_jpeg_decompress_struct));
    vs->created = 1;
    s->src.pub.next_input_byte = data;
    s->src.pub.bytes_in_buffer = size;
    s->src.pub.init_source = init_source;
    s->src.pub.fill_input_buffer = fill_input_buffer;
    s->src.pub.skip_input_data = skip_input_data;
    s->src.pub.resync_to_restart = resync_to_restart;
    s->src.pub.term_source = term_source;
    s->src.size = size;
    cinfo->src = &s->src.pub;
    s->progress.pub.progress_monitor = on_progress;
    s->progress.max_scans = max_scans;
    cinfo->progress = &s->progress.pub;

    api.jpeg_read_header(cinfo, 1);
    uint64_t pixels = (uint64_t)cinfo->image_width * (uint64_t)cinfo->image_height;
    if (pixels > max_pixels) {
        return sd_codec_set_status(status, SD_CODEC_ERROR_TOO_LARGE,
                                   "the header claims %ux%u = %llu pixels, more than the limit of %llu",
                                   cinfo->image_width, cinfo->image_height, (unsigned long long)pixels,
                                   (unsigned long long)max_pixels);
    }
    int components = cinfo->num_components;
    switch (components) {
    case 1: cinfo->out_color_space = SD_JCS_GRAYSCALE; break;
    case 3: cinfo->out_color_space = SD_JCS_RGB; break;
    case 4: cinfo->out_color_space = SD_JCS_CMYK; break;
    default:
        return sd_codec_set_status(status, SD_CODEC_ERROR_UNSUPPORTED, "a JPEG of %d colour components is not supported",
                                   components);
    }
    int inverted = components == 4 && cinfo->saw_Adobe_marker;
    api.jpeg_start_decompress(cinfo);
    uint32_t width = cinfo->output_width, height = cinfo->output_height;
    if (cinfo->output_components != components || (uint64_t)width * height > max_pixels) {
        return sd_codec_set_status(status, SD_CODEC_ERROR_CORRUPT, "unexpected decoder output: %ux%u with %d components",
                                   width, height, cinfo->output_components);
    }
    size_t row_bytes = (size_t)width * 3;
    vs->pixels = (uint8_t *)malloc(row_bytes * height + 1);
    vs->row = (uint8_t *)malloc((size_t)width * (size_t)components + 1);
    if (!s->pixels || !s->row) {
        return sd_codec_set_status(status, SD_CODEC_ERROR_OUT_OF_MEMORY, "out of memory for a %ux%u image", width, height);
    }
    while (cinfo->output_scanline < height) {
        uint32_t y = cinfo->output_scanline;
        uint8_t *line = s->pixels + (size_t)y * row_bytes;
        sd_JSAMPROW target = components == 3 ? line : s->row;
        if (api.jpeg_read_scanlines(cinfo, &target, 1) != 1) {
            return sd_codec_set_status(status, SD_CODEC_ERROR_CORRUPT, "the decoder returned no row %u", y);
        }
        if (components == 1) {
            for (uint32_t x = 0; x < width; x++) line[3 * x] = line[3 * x + 1] = line[3 * x + 2] = s->row[x];
        } else if (components == 4) {
            for (uint32_t x = 0; x < width; x++) {
                const uint8_t *p = s->row + 4 * (size_t)x;
                unsigned c = p[0], m = p[1], yy = p[2], k = p[3];
                if (inverted) c = 255 - c, m = 255 - m, yy = 255 - yy, k = 255 - k;
                unsigned nk = 255 - k;
                line[3 * x] = cmyk_channel(c, nk);
                line[3 * x + 1] = cmyk_channel(m, nk);
                line[3 * x + 2] = cmyk_channel(yy, nk);
            }
        }
    }
    api.jpeg_finish_decompress(cinfo);

    out->width = width;
    out->height = height;
    out->channels = 3;
    out->source_components = components;
    out->progressive = cinfo->progressive_mode != 0;
    out->inverted_cmyk = inverted;
    out->warnings = s->err.pub.num_warnings;
    memcpy(out->first_warning, s->err.first_warning, sizeof out->first_warning);
    out->first_warning[sizeof out->first_warning - 1] = 0;
    return SD_CODEC_OK;
}

int sd_jpeg_decode(const uint8_t *data, size_t size, uint64_t max_pixels, int max_scans,
                   sd_codec_image *out, sd_codec_status *status) {
    sd_codec_reset(out, status);
    if (size == 0) return sd_codec_set_status(status, SD_CODEC_ERROR_NOT_THIS_FORMAT, "empty: zero bytes");
    if (size < 3 || data[0] != 0xFF || data[1] != 0xD8 || data[2] != 0xFF) {
        return sd_codec_set_status(status, SD_CODEC_ERROR_NOT_THIS_FORMAT, "not a JPEG: the JPEG signature is missing");
    }
    if (!sd_codec_load(&library)) {
        return sd_codec_set_status(status, SD_CODEC_ERROR_LIBRARY_MISSING, "%s", library.error);
    }
    decode_state *state = (decode_state *)calloc(1, sizeof(decode_state));
    if (!state) return sd_codec_set_status(status, SD_CODEC_ERROR_OUT_OF_MEMORY, "out of memory for the JPEG decoder");
    volatile decode_state *s = state;
    int code = decode(s, data, size, max_pixels, max_scans > 0 ? max_scans : 1, out, status);
    if (state->created) api.jpeg_destroy_decompress(&state->cinfo);
    free(state->row);
    if (code == SD_CODEC_OK) {
        out->pixels = state->pixels;
    } else {
        free(state->pixels);
        memset(out, 0, sizeof *out);
    }
    free(state);
    return code;
}
