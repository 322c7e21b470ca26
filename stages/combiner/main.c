/* sluice-combiner — see combiner.c. */
#include "libpipe/stage.h"

extern const struct pipe_stage_desc combiner_stage;

int main(int argc, char **argv)
{
    return pipe_stage_main(&combiner_stage, argc, argv);
}
