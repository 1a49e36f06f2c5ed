#!/usr/bin/env bash
# Checks Sources/CImageCodecs/jpeglib62.h (the libjpeg declarations the package carries so that it builds
# without libjpeg's headers) against the installed jpeglib.h of libjpeg-turbo's libjpeg.so.62: the size of
# every structure and the offset of every field sd_jpeg.c may touch. Needs libjpeg62-turbo-dev (not part of CI).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f /usr/include/jpeglib.h ] || { echo "no /usr/include/jpeglib.h (apt-get install libjpeg62-turbo-dev)" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
{
  echo '#include <stdio.h>'
  echo '#include <stddef.h>'
  echo '#include <jpeglib.h>'
  echo '#include "Sources/CImageCodecs/jpeglib62.h"'
  echo '#if JPEG_LIB_VERSION != 62'
  echo '#error "the installed jpeglib.h is not version 62"'
  echo '#endif'
  echo '#define SAME(real, ours, field) _Static_assert(offsetof(struct real, field) == offsetof(struct ours, field), #real "." #field);'
  echo '#define SIZE(real, ours) _Static_assert(sizeof(struct real) == sizeof(struct ours), "sizeof " #real);'
  echo 'SIZE(jpeg_decompress_struct, sd_jpeg_decompress_struct)'
  echo 'SIZE(jpeg_error_mgr, sd_jpeg_error_mgr)'
  echo 'SIZE(jpeg_progress_mgr, sd_jpeg_progress_mgr)'
  echo 'SIZE(jpeg_source_mgr, sd_jpeg_source_mgr)'
  for f in err mem progress client_data is_decompressor global_state src image_width image_height num_components \
           jpeg_color_space out_color_space scale_num scale_denom output_gamma buffered_image raw_data_out dct_method \
           do_fancy_upsampling do_block_smoothing quantize_colors dither_mode two_pass_quantize desired_number_of_colors \
           enable_1pass_quant enable_external_quant enable_2pass_quant output_width output_height out_color_components \
           output_components rec_outbuf_height actual_number_of_colors colormap output_scanline input_scan_number \
           input_iMCU_row output_scan_number output_iMCU_row coef_bits quant_tbl_ptrs dc_huff_tbl_ptrs ac_huff_tbl_ptrs \
           data_precision comp_info progressive_mode arith_code arith_dc_L arith_dc_U arith_ac_K restart_interval \
           saw_JFIF_marker JFIF_major_version JFIF_minor_version density_unit X_density Y_density saw_Adobe_marker \
           Adobe_transform CCIR601_sampling marker_list max_h_samp_factor max_v_samp_factor min_DCT_scaled_size \
           total_iMCU_rows sample_range_limit comps_in_scan cur_comp_info MCUs_per_row MCU_rows_in_scan blocks_in_MCU \
           MCU_membership Ss Se Ah Al unread_marker master main coef post inputctl marker entropy idct upsample \
           cconvert cquantize; do
    echo "SAME(jpeg_decompress_struct, sd_jpeg_decompress_struct, $f)"
  done
  for f in error_exit emit_message output_message format_message reset_error_mgr msg_code msg_parm trace_level \
           num_warnings jpeg_message_table last_jpeg_message addon_message_table first_addon_message last_addon_message; do
    echo "SAME(jpeg_error_mgr, sd_jpeg_error_mgr, $f)"
  done
  for f in progress_monitor pass_counter pass_limit completed_passes total_passes; do
    echo "SAME(jpeg_progress_mgr, sd_jpeg_progress_mgr, $f)"
  done
  for f in next_input_byte bytes_in_buffer init_source fill_input_buffer skip_input_data resync_to_restart term_source; do
    echo "SAME(jpeg_source_mgr, sd_jpeg_source_mgr, $f)"
  done
  echo '_Static_assert((int)JCS_CMYK == (int)SD_JCS_CMYK && (int)JCS_YCCK == (int)SD_JCS_YCCK && (int)JCS_RGB == (int)SD_JCS_RGB && (int)JCS_GRAYSCALE == (int)SD_JCS_GRAYSCALE, "J_COLOR_SPACE");'
  echo 'int main(void) { printf("jpeglib62.h matches jpeglib.h (libjpeg-turbo %s)\n", LIBJPEG_TURBO_VERSION_STRING); return 0; }'
} > "$tmp/check.c"
sed -i 's/LIBJPEG_TURBO_VERSION_STRING/"'"$(grep -m1 'define LIBJPEG_TURBO_VERSION ' /usr/include/*/jconfig.h /usr/include/jconfig.h 2>/dev/null | awk '{print $3}')"'"/' "$tmp/check.c"
cc -std=c11 -Wall -I. -o "$tmp/check" "$tmp/check.c"
"$tmp/check"
