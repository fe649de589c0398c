/* secrets.h - the secrets of one run, read by the supervisor and handed to
 * its children on a sealed memfd.
 *
 * The supervisor stays root and reads the connection string and the
 * MongoDB URI (inline, from their root-only files, or from the
 * environment) once per run; children that run as [daemon] user could not
 * open those files, and need not: spawn.c places the memfd on fd 5 and
 * sets MAB_SECRETS_FD=5, and the configuration loader takes the secrets
 * from there.  The text is "name=value\n" lines; values never hold a
 * newline (a secret file's trailing whitespace is trimmed).
 */
#ifndef MAB_SECRETS_H
#define MAB_SECRETS_H

#include <stddef.h>

struct mab_config;

#define SECRET_CONNECTION_STRING "connection_string"
#define SECRET_MONGO_URI "mongo_uri"

/* A sealed memfd holding the run's secrets (close-on-exec), or -1 with err
 * (naming the file that could not be read, never a secret). */
int secrets_snapshot(const struct mab_config *cfg, char *err, size_t errlen);
/* In a child: the named secret from $MAB_SECRETS_FD, malloc'd; NULL when
 * there is no such fd or no such name. */
char *secrets_lookup(const char *name);

#endif
