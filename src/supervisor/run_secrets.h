/* run_secrets.h - the secrets of one run, read by the supervisor and sealed
 * in a memfd that spawn.c places on the helpers' fd 5 (secrets.h). */
#ifndef MAB_RUN_SECRETS_H
#define MAB_RUN_SECRETS_H

#include <stddef.h>

struct mab_config;

/* A sealed memfd holding the run's secrets (close-on-exec), or -1 with err
 * (naming the file that could not be read, never a secret). */
int secrets_snapshot(const struct mab_config *cfg, char *err, size_t errlen);

#endif
