/* secrets.h - the secrets of one run, as a child reads them from the sealed
 * memfd its supervisor handed over (run_secrets.h makes it).
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

#define SECRET_CONNECTION_STRING "connection_string"
#define SECRET_MONGO_URI "mongo_uri"

/* In a child: the named secret from $MAB_SECRETS_FD, malloc'd; NULL when
 * there is no such fd or no such name. */
char *secrets_lookup(const char *name);

#endif
