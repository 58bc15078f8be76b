// Shim for Open MPI (Debian libopenmpi-dev; pkg-config ompi-c supplies -I and -lmpi).
// Swift cannot import Open MPI's handle macros (MPI_COMM_WORLD, MPI_BYTE are casts of global
// addresses), so the few calls ScoreSDEMPI makes are wrapped here. Without MPI's headers (no
// ompi-c) every wrapper reports "unavailable" and nothing links against libmpi, so the package
// builds on machines without MPI.
#ifndef CMPI_SHIM_H
#define CMPI_SHIM_H
#include <stdint.h>

#if __has_include(<mpi.h>)
#include <mpi.h>
#define CMPI_AVAILABLE 1
#else
#define CMPI_AVAILABLE 0
#endif

/// 1 when built against MPI's headers.
static inline int cmpi_available(void) { return CMPI_AVAILABLE; }

#if CMPI_AVAILABLE
static inline int cmpi_init(int *rank, int *size) {
    int provided = 0, rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) return rc;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, rank);
    return MPI_Comm_size(MPI_COMM_WORLD, size);
}
static inline int cmpi_finalize(void) { return MPI_Finalize(); }
static inline void cmpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }
static inline int cmpi_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD); }
/// Every rank's count (one int per rank) into `counts`.
static inline int cmpi_allgather_int(int value, int *counts) {
    return MPI_Allgather(&value, 1, MPI_INT, counts, 1, MPI_INT, MPI_COMM_WORLD);
}
/// Every rank's bytes, in rank order, into `out` at `displacements`.
static inline int cmpi_allgatherv_bytes(const void *bytes, int count, void *out, const int *counts, const int *displacements) {
    return MPI_Allgatherv(bytes, count, MPI_BYTE, out, counts, displacements, MPI_BYTE, MPI_COMM_WORLD);
}
/// Every rank's one int to every rank (`counts[r]` sent to rank r) (MPI_Alltoall).
static inline int cmpi_alltoall_int(const int *send, int *receive) {
    return MPI_Alltoall(send, 1, MPI_INT, receive, 1, MPI_INT, MPI_COMM_WORLD);
}
/// Bytes to every rank and from every rank at the given counts and displacements (MPI_Alltoallv).
static inline int cmpi_alltoallv_bytes(const void *send, const int *sendCounts, const int *sendDisplacements,
                                       void *receive, const int *receiveCounts, const int *receiveDisplacements) {
    return MPI_Alltoallv(send, sendCounts, sendDisplacements, MPI_BYTE,
                         receive, receiveCounts, receiveDisplacements, MPI_BYTE, MPI_COMM_WORLD);
}
static inline void cmpi_error_string(int code, char *buffer, int capacity) {
    char text[MPI_MAX_ERROR_STRING]; int length = 0;
    MPI_Error_string(code, text, &length);
    int n = length < capacity - 1 ? length : capacity - 1;
    for (int i = 0; i < n; i++) buffer[i] = text[i];
    buffer[n] = 0;
}
#else
static inline int cmpi_init(int *rank, int *size) { *rank = 0; *size = 1; return -1; }
static inline int cmpi_finalize(void) { return -1; }
static inline void cmpi_abort(int code) { (void)code; }
static inline int cmpi_barrier(void) { return -1; }
static inline int cmpi_allgather_int(int value, int *counts) { counts[0] = value; return -1; }
static inline int cmpi_allgatherv_bytes(const void *bytes, int count, void *out, const int *counts, const int *displacements) {
    (void)bytes; (void)count; (void)out; (void)counts; (void)displacements; return -1;
}
static inline int cmpi_alltoall_int(const int *send, int *receive) { receive[0] = send[0]; return -1; }
static inline int cmpi_alltoallv_bytes(const void *send, const int *sendCounts, const int *sendDisplacements,
                                       void *receive, const int *receiveCounts, const int *receiveDisplacements) {
    (void)send; (void)sendCounts; (void)sendDisplacements; (void)receive; (void)receiveCounts; (void)receiveDisplacements;
    return -1;
}
static inline void cmpi_error_string(int code, char *buffer, int capacity) {
    (void)code; const char *m = "built without MPI"; int i = 0;
    for (; m[i] && i < capacity - 1; i++) buffer[i] = m[i];
    buffer[i] = 0;
}
#endif
#endif
