/* mab_config_secrets.c - the secrets a configuration names: the
 * connection string and the MongoDB URI, inline, from a file (which must
 * be the daemon user's or root's, and not readable by others) or from the
 * environment (config_connection_string, config_mongo_uri).
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cron.h"
#include "log.h"
#include "mab_config.h"
#include "secrets.h"
#include "path_template.h"
#include "xio.h"

#ifndef RUNSTATEDIR
#define RUNSTATEDIR "/run"
#endif
#ifndef LOCALSTATEDIR
#define LOCALSTATEDIR "/var"
#endif
/* The uid of [daemon] user, who may own the secret files it reads;
 * (uid_t)-1 when there is none (or it does not exist, which -t and the
 * daemon report on their own). */
static uid_t daemon_uid(const char *user)
{
	struct passwd pw, *found = NULL;
	char buf[4096];

	if (user == NULL || *user == '\0' ||
	    getpwnam_r(user, &pw, buf, sizeof(buf), &found) != 0 || found == NULL)
		return (uid_t)-1;
	return pw.pw_uid;
}

/* Why a secret file may not be trusted, or NULL.  Readable by others, the
 * secret leaks: a leaked key is worse than a failed backup.  Owned by a
 * user other than root, us or [daemon] user, that user can swap in an
 * account of theirs and receive the database's backups. */
static const char *secret_file_problem(const struct stat *st, uid_t daemon_user, char *buf,
				       size_t len)
{
	if (!S_ISREG(st->st_mode))
		return "not a regular file";
	if (st->st_mode & (S_IRWXG | S_IRWXO)) {
		snprintf(buf, len, "%s group or others (mode %04o); run chmod 600 on it",
			 st->st_mode & (S_IRGRP | S_IROTH) ? "readable by" : "open to",
			 (unsigned)(st->st_mode & 07777));
		return buf;
	}
	if (st->st_uid != 0 && st->st_uid != geteuid() && st->st_uid != daemon_user) {
		snprintf(buf, len, "owned by uid %u, neither root nor this user (uid %u) nor "
			 "[daemon] user, and its owner could change it; run chown root on it",
			 (unsigned)st->st_uid, (unsigned)geteuid());
		return buf;
	}
	return NULL;
}

/* Reads a secret file, refusing one that others could read or change
 * (secret_file_problem). */
static char *read_secret_file(const char *path, const char *what, const char *user,
			      char *err, size_t errlen)
{
	struct stat st;
	char *buf = NULL;
	int fd = -1;
	ssize_t n;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		snprintf(err, errlen, "%s %s: cannot open: %s", what, path, strerror(errno));
		goto fail;
	}
	if (fstat(fd, &st) != 0) {
		snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
		goto fail;
	}
	char why[200];
	const char *problem = secret_file_problem(&st, daemon_uid(user), why, sizeof(why));
	if (problem != NULL) {
		snprintf(err, errlen, "%s %s: %s", what, path, problem);
		goto fail;
	}
	if (st.st_size > 64 * 1024) {
		snprintf(err, errlen, "%s %s: larger than 64 KiB", what, path);
		goto fail;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		snprintf(err, errlen, "%s %s: out of memory", what, path);
		goto fail;
	}
	n = xread_full(fd, buf, (size_t)st.st_size);
	if (n < 0) {
		snprintf(err, errlen, "%s %s: read error: %s", what, path, strerror(errno));
		goto fail;
	}
	buf[n] = '\0';
	/* Trailing newline and whitespace are editor artefacts, not key bytes. */
	while (n > 0 && isspace((unsigned char)buf[n - 1]))
		buf[--n] = '\0';
	if (n == 0) {
		snprintf(err, errlen, "%s %s: empty", what, path);
		goto fail;
	}
	close(fd);
	return buf;
fail:
	if (buf != NULL) {
		explicit_bzero(buf, (size_t)st.st_size + 1);
		free(buf);
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

static char *secret_from(const char *inline_value, const char *file, const char *env,
			 const char *what, const char *user, char *err, size_t errlen)
{
	char *out;

	if (*inline_value != '\0') {
		out = strdup(inline_value);
		if (out == NULL)
			snprintf(err, errlen, "%s: out of memory", what);
		return out;
	}
	if (*file != '\0')
		return read_secret_file(file, what, user, err, errlen);
	const char *from_env = getenv(env);
	if (from_env != NULL && *from_env != '\0') {
		out = strdup(from_env);
		if (out == NULL)
			snprintf(err, errlen, "%s: out of memory", what);
		return out;
	}
	snprintf(err, errlen, "no %s configured (set it in the config file, or %s "
		 "in the environment)", what, env);
	return NULL;
}

char *config_connection_string(const struct mab_config *cfg, char *err, size_t errlen)
{
	/* A child of the supervisor: what it read for this run. */
	char *given = secrets_lookup(SECRET_CONNECTION_STRING);

	if (given != NULL)
		return given;
	return secret_from(cfg->connection_string, cfg->connection_string_file,
			   "AZURE_STORAGE_CONNECTION_STRING", "Azure connection string",
			   cfg->user, err, errlen);
}

char *config_mongo_uri(const struct mab_config *cfg, char *err, size_t errlen)
{
	char *given = secrets_lookup(SECRET_MONGO_URI);

	if (given != NULL)
		return given;
	char *uri = secret_from(cfg->mongo_uri, cfg->mongo_uri_file, "MONGODB_URI",
				"MongoDB URI", cfg->user, err, errlen);
	if (uri == NULL && *cfg->mongo_uri_file == '\0' && getenv("MONGODB_URI") == NULL) {
		/* No URI anywhere: the local server, as mongodump assumes. */
		uri = strdup("mongodb://127.0.0.1:27017/");
	}
	return uri;
}

bool config_azure_uses_token(const struct mab_config *cfg)
{
	return cfg->azure_auth == AZURE_AUTH_MANAGED_IDENTITY ||
	       cfg->azure_auth == AZURE_AUTH_SERVICE_PRINCIPAL ||
	       cfg->azure_auth == AZURE_AUTH_WORKLOAD_IDENTITY;
}

char *config_azure_credential(const struct mab_config *cfg, char *err, size_t errlen)
{
	const char *file = NULL, *what = NULL;

	err[0] = '\0';
	if (cfg->azure_auth != AZURE_AUTH_SERVICE_PRINCIPAL)
		return NULL;
	char *given = secrets_lookup(SECRET_AZURE_CREDENTIAL);
	if (given != NULL) {
		char *plain = secrets_unescape(given);
		explicit_bzero(given, strlen(given));
		free(given);
		if (plain == NULL)
			snprintf(err, errlen, "Entra ID credential: out of memory");
		return plain;
	}
	if (*cfg->client_secret_file) {
		file = cfg->client_secret_file;
		what = "client secret file";
	} else if (*cfg->client_certificate_file) {
		file = cfg->client_certificate_file;
		what = "client certificate file";
	} else {
		snprintf(err, errlen, "auth = service_principal needs client_secret_file or "
			 "client_certificate_file");
		return NULL;
	}
	return read_secret_file(file, what, cfg->user, err, errlen);
}
