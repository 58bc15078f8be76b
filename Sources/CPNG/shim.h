// Shim for libpng's simplified read/write API (png_image_*). Nothing else belongs here.
#ifndef CPNG_SHIM_H
#define CPNG_SHIM_H
#include <png.h>
#endif
