/* sluice-splitter — see splitter.c. */
#include "libpipe/stage.h"

extern const struct pipe_stage_desc splitter_stage;

int main(int argc, char **argv)
{
    return pipe_stage_main(&splitter_stage, argc, argv);
}
