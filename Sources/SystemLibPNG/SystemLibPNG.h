// libpng as found by pkg-config (`libpng`); used only by the CLibPNG shim.
#include <png.h>
