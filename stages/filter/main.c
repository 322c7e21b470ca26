/* sluice-filter — see filter.c. */
#include "libpipe/stage.h"

extern const struct pipe_stage_desc filter_stage;

int main(int argc, char **argv)
{
    return pipe_stage_main(&filter_stage, argc, argv);
}
