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

#include <stdbool.h>
#include <stddef.h>

#define SECRET_CONNECTION_STRING "connection_string"
#define SECRET_MONGO_URI "mongo_uri"
/* client_secret_file's text or client_certificate_file's PEM, escaped. */
#define SECRET_AZURE_CREDENTIAL "azure_credential"

/* In a child: the named secret from $MAB_SECRETS_FD, malloc'd; NULL when
 * there is no such fd or no such name. */
char *secrets_lookup(const char *name);
/* Whether the memfd holds the named secret (the value is not kept). */
bool secrets_lookup_present(const char *name);
/* A secret value may hold line breaks (a PEM file): escaped in the memfd
 * as %0A, %0D and %25; each returns a malloc'd copy, or NULL. */
char *secrets_escape(const char *value);
char *secrets_unescape(const char *value);

#endif
