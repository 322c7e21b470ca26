/* sluice-splitter — see splitter.c. */
#include <limits.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "libpipe/stage.h"

#define HEAP_RESERVE (1024u << 20) /* address space, not memory: see below */
#define HUGE_PAGE    (2u << 20)

extern const struct pipe_stage_desc splitter_stage;

/* tune_malloc — one arena, no mmap'd chunks, nothing trimmed, so that the
 * memory a job frees (the de-duplication backend's scratch, tables that
 * grew) is reused by the next job instead of being unmapped and faulted in
 * again. The heap is then grown once by HEAP_RESERVE and that range marked
 * for transparent huge pages: a job's buffers fault in 2 MiB at a time
 * (on a VM, a 4 KiB page fault costs microseconds, and a job touches a few
 * hundred megabytes). Pages are only used when touched. */
static void tune_malloc(void)
{
    mallopt(M_ARENA_MAX, 1);
    mallopt(M_MMAP_MAX, 0);
    mallopt(M_TRIM_THRESHOLD, INT_MAX);
    char *p = malloc(HEAP_RESERVE);
    if (!p)
        return;
    uintptr_t lo = ((uintptr_t)p + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1);
    uintptr_t hi = ((uintptr_t)p + HEAP_RESERVE) & ~(uintptr_t)(HUGE_PAGE - 1);
    madvise((void *)lo, hi - lo, MADV_HUGEPAGE); /* advice: failure is harmless */
    free(p);
}

int main(int argc, char **argv)
{
    tune_malloc();
    return pipe_stage_main(&splitter_stage, argc, argv);
}
