// CLibPNG: libpng decode/encode from and to memory; the only place that calls setjmp.
#include "CLibPNG.h"
#include <png.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int set_status(sd_png_status *status, int code, const char *format, ...) {
    status->code = code;
    va_list args;
    va_start(args, format);
    vsnprintf(status->message, sizeof status->message, format, args);
    va_end(args);
    return code;
}

static void on_error(png_structp png, png_const_charp message) {
    sd_png_status *status = (sd_png_status *)png_get_error_ptr(png);
    if (status->code == SD_PNG_OK) {
        set_status(status, SD_PNG_ERROR_LIBPNG, "%s", message);
    }
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp message) {
    (void)png;
    (void)message;
}

// MARK: - Decoding

typedef struct {
    const uint8_t *data;
    size_t size;
    size_t position;
} memory_reader;

static void read_from_memory(png_structp png, png_bytep out, size_t count) {
    memory_reader *reader = (memory_reader *)png_get_io_ptr(png);
    if (count > reader->size - reader->position) {
        sd_png_status *status = (sd_png_status *)png_get_error_ptr(png);
        set_status(status, SD_PNG_ERROR_TRUNCATED,
                   "truncated: the data ends at byte %zu, inside a chunk", reader->size);
        png_error(png, status->message);
    }
    memcpy(out, reader->data + reader->position, count);
    reader->position += count;
}

// Everything the decoder allocates, kept in memory (not registers) so that it survives a longjmp.
typedef struct {
    png_structp png;
    png_infop info;
    png_bytep *rows;
    uint8_t *pixels;
    sd_png_text *texts;
    size_t text_count;
} decode_state;

static char *copy_bytes(const char *bytes, size_t count) {
    char *copy = (char *)malloc(count + 1);
    if (copy) {
        if (count) memcpy(copy, bytes, count);
        copy[count] = 0;
    }
    return copy;
}

static void free_texts(sd_png_text *texts, size_t count) {
    if (!texts) return;
    for (size_t i = 0; i < count; i++) {
        free(texts[i].key);
        free(texts[i].text);
    }
    free(texts);
}

static int copy_texts(volatile decode_state *s, sd_png_status *status) {
    png_textp text = NULL;
    int count = 0;
    png_get_text(s->png, s->info, &text, &count);
    if (count <= 0) return SD_PNG_OK;
    s->texts = (sd_png_text *)calloc((size_t)count, sizeof(sd_png_text));
    if (!s->texts) return set_status(status, SD_PNG_ERROR_OUT_OF_MEMORY, "out of memory for text chunks");
    for (int i = 0; i < count; i++) {
        int international = text[i].compression >= PNG_ITXT_COMPRESSION_NONE;
        size_t length = international ? text[i].itxt_length : text[i].text_length;
        sd_png_text *t = &s->texts[i];
        s->text_count = (size_t)i + 1;
        t->key = copy_bytes(text[i].key, strlen(text[i].key));
        t->text = copy_bytes(text[i].text ? text[i].text : "", text[i].text ? length : 0);
        t->text_length = text[i].text ? length : 0;
        t->international = international;
        if (!t->key || !t->text) return set_status(status, SD_PNG_ERROR_OUT_OF_MEMORY, "out of memory for text chunks");
    }
    return SD_PNG_OK;
}

// Walks the chunk list up to IEND before libpng sees the data: libpng may allocate a chunk's
// claimed length before reading it, so a corrupt length (up to 2^31 - 1) in a small file would cost
// gigabytes. After this walk every chunk libpng reads lies inside the data.
static int check_chunks(const uint8_t *data, size_t size, sd_png_status *status) {
    size_t position = 8;
    while (size - position >= 12) {
        uint32_t length = ((uint32_t)data[position] << 24) | ((uint32_t)data[position + 1] << 16)
                        | ((uint32_t)data[position + 2] << 8) | (uint32_t)data[position + 3];
        const uint8_t *type = data + position + 4;
        if (length > PNG_UINT_31_MAX) {
            return set_status(status, SD_PNG_ERROR_LIBPNG, "chunk at byte %zu claims %u bytes, more than PNG allows",
                              position, (unsigned)length);
        }
        if ((size_t)length > size - position - 12) {
            return set_status(status, SD_PNG_ERROR_TRUNCATED,
                              "truncated: the chunk at byte %zu claims %u bytes but only %zu remain",
                              position, (unsigned)length, size - position - 12);
        }
        if (memcmp(type, "IEND", 4) == 0) return SD_PNG_OK;
        position += 12 + (size_t)length;
    }
    return set_status(status, SD_PNG_ERROR_TRUNCATED, "truncated: the data ends at byte %zu without an IEND chunk", size);
}

static int decode(volatile decode_state *s, memory_reader *reader, uint64_t max_pixels,
                  sd_png_image *out, sd_png_status *status) {
    s->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, status, on_error, on_warning);
    if (!s->png) return set_status(status, SD_PNG_ERROR_OUT_OF_MEMORY, "cannot create a libpng reader");
    s->info = png_create_info_struct(s->png);
    if (!s->info) return set_status(status, SD_PNG_ERROR_OUT_OF_MEMORY, "cannot create a libpng info struct");
    if (setjmp(png_jmpbuf(s->png))) return status->code;

    png_set_read_fn(s->png, reader, read_from_memory);
    // Our own limit below reports the size; libpng's default width/height caps would pre-empt it.
    png_set_user_limits(s->png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);
    png_read_info(s->png, s->info);

    png_uint_32 width = 0, height = 0;
    int depth = 0, color = 0, interlace = 0;
    png_get_IHDR(s->png, s->info, &width, &height, &depth, &color, &interlace, NULL, NULL);
    uint64_t pixels = (uint64_t)width * (uint64_t)height;
    if (pixels > max_pixels) {
        return set_status(status, SD_PNG_ERROR_TOO_LARGE,
                          "the header claims %ux%u = %llu pixels, more than the limit of %llu",
                          (unsigned)width, (unsigned)height, (unsigned long long)pixels,
                          (unsigned long long)max_pixels);
    }

    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(s->png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(s->png);
    if (png_get_valid(s->png, s->info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(s->png);
    if (!(color & PNG_COLOR_MASK_COLOR)) png_set_gray_to_rgb(s->png);
    if (depth == 16) png_set_swap(s->png);
    (void)png_set_interlace_handling(s->png);
    png_read_update_info(s->png, s->info);

    int channels = png_get_channels(s->png, s->info);
    int out_depth = png_get_bit_depth(s->png, s->info);
    size_t row_bytes = png_get_rowbytes(s->png, s->info);
    if ((channels != 3 && channels != 4) || (out_depth != 8 && out_depth != 16)
        || row_bytes != (size_t)width * (size_t)channels * (size_t)(out_depth / 8)) {
        return set_status(status, SD_PNG_ERROR_LIBPNG, "unexpected decoded layout: %d channels of %d bits",
                          channels, out_depth);
    }
    s->pixels = (uint8_t *)malloc(row_bytes * (size_t)height + 1);
    s->rows = (png_bytep *)malloc(sizeof(png_bytep) * ((size_t)height + 1));
    if (!s->pixels || !s->rows) {
        return set_status(status, SD_PNG_ERROR_OUT_OF_MEMORY, "out of memory for a %ux%u image",
                          (unsigned)width, (unsigned)height);
    }
    for (png_uint_32 y = 0; y < height; y++) s->rows[y] = s->pixels + (size_t)y * row_bytes;
    png_read_image(s->png, s->rows);
    png_read_end(s->png, s->info);
    int code = copy_texts(s, status);
    if (code != SD_PNG_OK) return code;

    out->width = width;
    out->height = height;
    out->source_bit_depth = depth;
    out->source_color_type = color;
    out->interlaced = interlace != PNG_INTERLACE_NONE;
    out->channels = channels;
    out->bit_depth = out_depth;
    return SD_PNG_OK;
}

int sd_png_decode(const uint8_t *data, size_t size, uint64_t max_pixels,
                  sd_png_image *out, sd_png_status *status) {
    memset(out, 0, sizeof *out);
    status->code = SD_PNG_OK;
    status->message[0] = 0;
    if (size == 0) return set_status(status, SD_PNG_ERROR_NOT_PNG, "empty: zero bytes");
    if (size < 8 || png_sig_cmp((png_const_bytep)data, 0, 8) != 0) {
        return set_status(status, SD_PNG_ERROR_NOT_PNG, "not a PNG: the PNG signature is missing");
    }
    int checked = check_chunks(data, size, status);
    if (checked != SD_PNG_OK) return checked;
    memory_reader reader = {data, size, 0};
    decode_state state = {0};
    volatile decode_state *s = &state;
    int code = decode(s, &reader, max_pixels, out, status);
    png_destroy_read_struct((png_structpp)&state.png, state.info ? (png_infopp)&state.info : NULL, NULL);
    free(state.rows);
    if (code == SD_PNG_OK) {
        out->pixels = state.pixels;
        out->texts = state.texts;
        out->text_count = state.text_count;
    } else {
        free(state.pixels);
        free_texts(state.texts, state.text_count);
        memset(out, 0, sizeof *out);
    }
    return code;
}

void sd_png_image_free(sd_png_image *image) {
    free(image->pixels);
    free_texts(image->texts, image->text_count);
    memset(image, 0, sizeof *image);
}

// MARK: - Encoding

typedef struct {
    uint8_t *data;
    size_t size;
    size_t capacity;
} memory_writer;

static void write_to_memory(png_structp png, png_bytep bytes, size_t count) {
    memory_writer *writer = (memory_writer *)png_get_io_ptr(png);
    if (count > writer->capacity - writer->size) {
        size_t capacity = writer->capacity ? writer->capacity : 65536;
        while (count > capacity - writer->size) capacity *= 2;
        uint8_t *grown = (uint8_t *)realloc(writer->data, capacity);
        if (!grown) {
            sd_png_status *status = (sd_png_status *)png_get_error_ptr(png);
            set_status(status, SD_PNG_ERROR_OUT_OF_MEMORY, "out of memory for the encoded PNG");
            png_error(png, status->message);
        }
        writer->data = grown;
        writer->capacity = capacity;
    }
    memcpy(writer->data + writer->size, bytes, count);
    writer->size += count;
}

static void flush_memory(png_structp png) { (void)png; }

typedef struct {
    png_structp png;
    png_infop info;
    png_textp texts;
} encode_state;

static int encode(volatile encode_state *s, memory_writer *writer, const uint8_t *pixels,
                  uint32_t width, uint32_t height, int channels, const sd_png_text_input *texts,
                  size_t text_count, int level, sd_png_status *status) {
    s->png = png_create_write_struct(PNG_LIBPNG_VER_STRING, status, on_error, on_warning);
    if (!s->png) return set_status(status, SD_PNG_ERROR_OUT_OF_MEMORY, "cannot create a libpng writer");
    s->info = png_create_info_struct(s->png);
    if (!s->info) return set_status(status, SD_PNG_ERROR_OUT_OF_MEMORY, "cannot create a libpng info struct");
    if (text_count > 0) {
        s->texts = (png_textp)calloc(text_count, sizeof(png_text));
        if (!s->texts) return set_status(status, SD_PNG_ERROR_OUT_OF_MEMORY, "out of memory for text chunks");
    }
    if (setjmp(png_jmpbuf(s->png))) return status->code;

    png_set_write_fn(s->png, writer, write_to_memory, flush_memory);
    png_set_IHDR(s->png, s->info, width, height, 8,
                 channels == 4 ? PNG_COLOR_TYPE_RGB_ALPHA : PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_compression_level(s->png, level);
    for (size_t i = 0; i < text_count; i++) {
        png_textp t = &s->texts[i];
        t->compression = texts[i].international ? PNG_ITXT_COMPRESSION_NONE : PNG_TEXT_COMPRESSION_NONE;
        t->key = (png_charp)texts[i].key;
        t->text = (png_charp)texts[i].text;
        t->lang = (png_charp)"";
        t->lang_key = (png_charp)"";
    }
    if (text_count > 0) png_set_text(s->png, s->info, s->texts, (int)text_count);
    png_write_info(s->png, s->info);
    size_t row_bytes = (size_t)width * (size_t)channels;
    for (uint32_t y = 0; y < height; y++) {
        png_write_row(s->png, (png_const_bytep)(pixels + (size_t)y * row_bytes));
    }
    png_write_end(s->png, s->info);
    return SD_PNG_OK;
}

int sd_png_encode(const uint8_t *pixels, uint32_t width, uint32_t height, int channels,
                  const sd_png_text_input *texts, size_t text_count, int compression_level,
                  uint8_t **out_data, size_t *out_size, sd_png_status *status) {
    *out_data = NULL;
    *out_size = 0;
    status->code = SD_PNG_OK;
    status->message[0] = 0;
    if ((channels != 3 && channels != 4) || width == 0 || height == 0
        || width > PNG_UINT_31_MAX || height > PNG_UINT_31_MAX) {
        return set_status(status, SD_PNG_ERROR_INVALID_ARGUMENT, "cannot encode %ux%u with %d channels",
                          (unsigned)width, (unsigned)height, channels);
    }
    if (compression_level < 0 || compression_level > 9) compression_level = 6;
    memory_writer writer = {NULL, 0, 0};
    encode_state state = {0};
    volatile encode_state *s = &state;
    int code = encode(s, &writer, pixels, width, height, channels, texts, text_count, compression_level, status);
    png_destroy_write_struct((png_structpp)&state.png, state.info ? (png_infopp)&state.info : NULL);
    free(state.texts);
    if (code == SD_PNG_OK) {
        *out_data = writer.data;
        *out_size = writer.size;
    } else {
        free(writer.data);
    }
    return code;
}

void sd_png_buffer_free(uint8_t *data) { free(data); }
