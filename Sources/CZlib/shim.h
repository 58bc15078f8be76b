// Shim for zlib: its init calls are function-like macros (inflateInit2 passes ZLIB_VERSION and
// sizeof(z_stream) to inflateInit2_), which Swift cannot import; one static inline wrapper each.
// 15 + 16 as windowBits: the largest window, gzip header and trailer (CRC-32, length) checked.
#ifndef CZLIB_SHIM_H
#define CZLIB_SHIM_H
#include <zlib.h>

/// inflateInit2(strm, 16 + MAX_WBITS): decode one gzip member (header, deflate data, CRC-32 and size checked).
static inline int czlib_inflate_init_gzip(z_streamp strm) {
    return inflateInit2(strm, 16 + MAX_WBITS);
}

/// deflateInit2 writing a gzip member (default memory level and strategy) at `level` (0 ... 9).
static inline int czlib_deflate_init_gzip(z_streamp strm, int level) {
    return deflateInit2(strm, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
}
#endif
