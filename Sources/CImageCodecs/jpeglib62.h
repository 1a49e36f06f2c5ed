// The ABI of libjpeg 6.2 that sd_jpeg.c needs (libjpeg-turbo's libjpeg.so.62 on Linux), restated so that the
// package builds without libjpeg's headers: the field order and C types of jpeg_decompress_struct and of the
// error, source and progress managers for JPEG_LIB_VERSION 62 with 8-bit samples (`boolean` is int, JDIMENSION
// unsigned int); pointers to structures this code never looks into are void *. jpeg_CreateDecompress refuses
// a structure of the wrong size or version, and Scripts/check-jpeglib-layout.sh compares every size and offset
// with the installed jpeglib.h where libjpeg62-turbo-dev is present.
#ifndef SD_JPEGLIB62_H
#define SD_JPEGLIB62_H

#include <stddef.h>

#define SD_JPEG_LIB_VERSION 62
#define SD_DCTSIZE2 64
#define SD_NUM_QUANT_TBLS 4
#define SD_NUM_HUFF_TBLS 4
#define SD_NUM_ARITH_TBLS 16
#define SD_MAX_COMPS_IN_SCAN 4
#define SD_D_MAX_BLOCKS_IN_MCU 10
#define SD_JMSG_LENGTH_MAX 200
#define SD_JMSG_STR_PARM_MAX 80

typedef int sd_boolean;
typedef unsigned int sd_JDIMENSION;
typedef unsigned char sd_JSAMPLE;
typedef sd_JSAMPLE *sd_JSAMPROW;
typedef sd_JSAMPROW *sd_JSAMPARRAY;

typedef enum {
    SD_JCS_UNKNOWN, SD_JCS_GRAYSCALE, SD_JCS_RGB, SD_JCS_YCbCr, SD_JCS_CMYK, SD_JCS_YCCK,
} sd_J_COLOR_SPACE;

struct sd_jpeg_decompress_struct;
typedef struct sd_jpeg_decompress_struct *sd_j_decompress_ptr;
typedef struct sd_jpeg_decompress_struct *sd_j_common_ptr;   // the common fields come first

struct sd_jpeg_error_mgr {
    void (*error_exit)(sd_j_common_ptr cinfo);
    void (*emit_message)(sd_j_common_ptr cinfo, int msg_level);
    void (*output_message)(sd_j_common_ptr cinfo);
    void (*format_message)(sd_j_common_ptr cinfo, char *buffer);
    void (*reset_error_mgr)(sd_j_common_ptr cinfo);
    int msg_code;
    union {
        int i[8];
        char s[SD_JMSG_STR_PARM_MAX];
    } msg_parm;
    int trace_level;
    long num_warnings;
    const char *const *jpeg_message_table;
    int last_jpeg_message;
    const char *const *addon_message_table;
    int first_addon_message;
    int last_addon_message;
};

struct sd_jpeg_progress_mgr {
    void (*progress_monitor)(sd_j_common_ptr cinfo);
    long pass_counter;
    long pass_limit;
    int completed_passes;
    int total_passes;
};

struct sd_jpeg_source_mgr {
    const unsigned char *next_input_byte;
    size_t bytes_in_buffer;
    void (*init_source)(sd_j_decompress_ptr cinfo);
    sd_boolean (*fill_input_buffer)(sd_j_decompress_ptr cinfo);
    void (*skip_input_data)(sd_j_decompress_ptr cinfo, long num_bytes);
    sd_boolean (*resync_to_restart)(sd_j_decompress_ptr cinfo, int desired);
    void (*term_source)(sd_j_decompress_ptr cinfo);
};

struct sd_jpeg_decompress_struct {
    // jpeg_common_fields
    struct sd_jpeg_error_mgr *err;
    void *mem;
    struct sd_jpeg_progress_mgr *progress;
    void *client_data;
    sd_boolean is_decompressor;
    int global_state;

    struct sd_jpeg_source_mgr *src;

    sd_JDIMENSION image_width;
    sd_JDIMENSION image_height;
    int num_components;
    sd_J_COLOR_SPACE jpeg_color_space;

    sd_J_COLOR_SPACE out_color_space;
    unsigned int scale_num, scale_denom;
    double output_gamma;
    sd_boolean buffered_image;
    sd_boolean raw_data_out;
    int dct_method;
    sd_boolean do_fancy_upsampling;
    sd_boolean do_block_smoothing;
    sd_boolean quantize_colors;
    int dither_mode;
    sd_boolean two_pass_quantize;
    int desired_number_of_colors;
    sd_boolean enable_1pass_quant;
    sd_boolean enable_external_quant;
    sd_boolean enable_2pass_quant;

    sd_JDIMENSION output_width;
    sd_JDIMENSION output_height;
    int out_color_components;
    int output_components;
    int rec_outbuf_height;

    int actual_number_of_colors;
    sd_JSAMPARRAY colormap;

    sd_JDIMENSION output_scanline;
    int input_scan_number;
    sd_JDIMENSION input_iMCU_row;
    int output_scan_number;
    sd_JDIMENSION output_iMCU_row;
    void *coef_bits;

    void *quant_tbl_ptrs[SD_NUM_QUANT_TBLS];
    void *dc_huff_tbl_ptrs[SD_NUM_HUFF_TBLS];
    void *ac_huff_tbl_ptrs[SD_NUM_HUFF_TBLS];

    int data_precision;
    void *comp_info;
    sd_boolean progressive_mode;
    sd_boolean arith_code;
    unsigned char arith_dc_L[SD_NUM_ARITH_TBLS];
    unsigned char arith_dc_U[SD_NUM_ARITH_TBLS];
    unsigned char arith_ac_K[SD_NUM_ARITH_TBLS];
    unsigned int restart_interval;

    sd_boolean saw_JFIF_marker;
    unsigned char JFIF_major_version;
    unsigned char JFIF_minor_version;
    unsigned char density_unit;
    unsigned short X_density;
    unsigned short Y_density;
    sd_boolean saw_Adobe_marker;
    unsigned char Adobe_transform;
    sd_boolean CCIR601_sampling;
    void *marker_list;

    int max_h_samp_factor;
    int max_v_samp_factor;
    int min_DCT_scaled_size;
    sd_JDIMENSION total_iMCU_rows;
    sd_JSAMPLE *sample_range_limit;

    int comps_in_scan;
    void *cur_comp_info[SD_MAX_COMPS_IN_SCAN];
    sd_JDIMENSION MCUs_per_row;
    sd_JDIMENSION MCU_rows_in_scan;
    int blocks_in_MCU;
    int MCU_membership[SD_D_MAX_BLOCKS_IN_MCU];
    int Ss, Se, Ah, Al;
    int unread_marker;

    void *master;
    void *main;
    void *coef;
    void *post;
    void *inputctl;
    void *marker;
    void *entropy;
    void *idct;
    void *upsample;
    void *cconvert;
    void *cquantize;
};

#endif
