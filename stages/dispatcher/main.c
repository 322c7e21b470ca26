/* sluice-dispatcher — see dispatcher.c. */
#include "libpipe/stage.h"

extern const struct pipe_stage_desc dispatcher_stage;

int main(int argc, char **argv)
{
    return pipe_stage_main(&dispatcher_stage, argc, argv);
}
