/* `tricorder check DATA_DIR [--repair]` (see check.c). */
#ifndef TR_CHECK_H
#define TR_CHECK_H

/* argv[0] is "check". Returns the process exit code. */
int tr_check_main(int argc, char **argv);

#endif
