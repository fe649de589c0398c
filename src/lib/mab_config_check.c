/* mab_config_check.c - config_check: what `mongo-azure-backupd -t` checks
 * around the configuration file beyond its syntax: the file's own
 * permissions, secrets written inline in it, the secret files, the
 * metrics text file's directory.
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
/* ---- config_check: what -t checks around the file ---------------------- */

struct check_state {
	const struct mab_config *cfg;
	config_report_fn report;
	void *ctx;
	int problems;
};

static void check_report(struct check_state *cs, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void check_report(struct check_state *cs, int line, const char *fmt, ...)
{
	char text[1024];
	char msg[1400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	snprintf(msg, sizeof(msg), "%s:%d: %s", cs->cfg->path, line, text);
	cs->problems++;
	if (cs->report != NULL)
		cs->report(cs->ctx, msg);
}

/* AccountKey or SharedAccessSignature among the connection string's
 * Name=Value parts (names are case-insensitive, as connstr.c reads them). */
static bool connstr_holds_secret(const char *text)
{
	static const char *const names[] = { "AccountKey", "SharedAccessSignature" };

	for (const char *p = text; *p != '\0';) {
		size_t len = strcspn(p, ";");
		const char *eq = memchr(p, '=', len);
		if (eq != NULL) {
			const char *name = p;
			size_t name_len = (size_t)(eq - p);
			while (name_len > 0 && isspace((unsigned char)*name)) {
				name++;
				name_len--;
			}
			while (name_len > 0 && isspace((unsigned char)name[name_len - 1]))
				name_len--;
			for (size_t i = 0; i < 2; i++)
				if (strlen(names[i]) == name_len &&
				    strncasecmp(names[i], name, name_len) == 0)
					return true;
		}
		p += len;
		if (*p == ';')
			p++;
	}
	return false;
}

/* A password in scheme://user:password@hosts/...: the user information is
 * everything before the last '@' of the authority (libmongoc wants '@' and
 * '/' in a password percent-encoded). */
static bool uri_holds_password(const char *uri)
{
	const char *p = strstr(uri, "://");
	const char *at = NULL;

	if (p == NULL)
		return false;
	p += 3;
	for (const char *q = p; *q != '\0' && *q != '/'; q++)
		if (*q == '@')
			at = q;
	if (at == NULL)
		return false;
	const char *colon = memchr(p, ':', (size_t)(at - p));
	return colon != NULL && colon + 1 < at;
}

static void check_config_file(struct check_state *cs)
{
	const struct mab_config *cfg = cs->cfg;
	const char *path = cfg->path;
	struct stat st;
	unsigned mode;

	if (stat(path, &st) != 0) {
		check_report(cs, 0, "cannot check its permissions: %s", strerror(errno));
		return;
	}
	mode = (unsigned)(st.st_mode & 07777);
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		check_report(cs, 0, "writable by group or others (mode %04o): its hooks run as "
			     "the daemon and it decides where the backups go; run chmod go-w %s",
			     mode, path);
	if (st.st_uid != 0 && st.st_uid != geteuid())
		check_report(cs, 0, "owned by uid %u, neither root nor this user (uid %u), who "
			     "can change the hooks the daemon runs; run chown root %s",
			     (unsigned)st.st_uid, (unsigned)geteuid(), path);
	if (!(st.st_mode & (S_IRGRP | S_IROTH)))
		return;
	/* [mongodb] comes before [azure] in the sample file: file order. */
	if (uri_holds_password(cfg->mongo_uri))
		check_report(cs, config_key_line(cfg, "mongodb", "uri"),
			     "uri holds a password, but the file is readable by group or others "
			     "(mode %04o); run chmod 600 %s, or move the URI to a uri_file of "
			     "mode 0600", mode, path);
	if (connstr_holds_secret(cfg->connection_string))
		check_report(cs, config_key_line(cfg, "azure", "connection_string"),
			     "connection_string holds the account key or SAS, but the file is "
			     "readable by group or others (mode %04o); run chmod 600 %s, or move "
			     "the connection string to a connection_string_file of mode 0600",
			     mode, path);
}

/* The line to blame for a secret: its file's key, else the inline key. */
static int secret_line(const struct mab_config *cfg, const char *section,
		       const char *inline_key, const char *file_key)
{
	int line = config_key_line(cfg, section, file_key);

	return line > 0 ? line : config_key_line(cfg, section, inline_key);
}

static void check_secrets(struct check_state *cs)
{
	const struct mab_config *cfg = cs->cfg;
	char err[512];
	char *secret;

	if (!config_azure_uses_token(cfg)) {
		secret = config_connection_string(cfg, err, sizeof(err));
		if (secret == NULL) {
			check_report(cs, secret_line(cfg, "azure", "connection_string",
						     "connection_string_file"), "%s", err);
		} else {
			explicit_bzero(secret, strlen(secret));
			free(secret);
		}
	}
	/* client_secret_file / client_certificate_file: the same file rules. */
	secret = config_azure_credential(cfg, err, sizeof(err));
	if (secret == NULL && err[0] != '\0') {
		check_report(cs, secret_line(cfg, "azure", "client_secret_file",
					     "client_certificate_file"), "%s", err);
	} else if (secret != NULL) {
		explicit_bzero(secret, strlen(secret));
		free(secret);
	}
	secret = config_mongo_uri(cfg, err, sizeof(err));
	if (secret == NULL) {
		check_report(cs, secret_line(cfg, "mongodb", "uri", "uri_file"), "%s", err);
	} else {
		explicit_bzero(secret, strlen(secret));
		free(secret);
	}
}

/* The daemon replaces the textfile with write-temp-and-rename, so it is
 * the directory that must be writable; the service runs in /. */
static void check_metrics_textfile(struct check_state *cs)
{
	const char *path = cs->cfg->metrics_textfile;
	int line = config_key_line(cs->cfg, "metrics", "textfile");
	char dir[PATH_MAX];
	struct stat st;

	if (*path == '\0')
		return;
	if (path[0] != '/') {
		check_report(cs, line, "textfile: '%s' is not an absolute path (the service "
			     "runs in /)", path);
		return;
	}
	const char *slash = strrchr(path, '/');
	size_t len = slash == path ? 1 : (size_t)(slash - path);
	if (slash[1] == '\0' || len >= sizeof(dir)) {
		check_report(cs, line, "textfile: '%s' does not name a file", path);
		return;
	}
	memcpy(dir, path, len);
	dir[len] = '\0';
	if (stat(dir, &st) != 0) {
		check_report(cs, line, "textfile: directory %s: %s%s", dir, strerror(errno),
			     errno == ENOENT ? " (create it, e.g. node_exporter's "
					       "textfile collector directory)" : "");
		return;
	}
	if (!S_ISDIR(st.st_mode)) {
		check_report(cs, line, "textfile: %s is not a directory", dir);
		return;
	}
	/* Effective ids: -t is often run through sudo. */
	if (faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) != 0) {
		check_report(cs, line, "textfile: directory %s is not writable by uid %u: %s",
			     dir, (unsigned)geteuid(), strerror(errno));
		return;
	}
	if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
		check_report(cs, line, "textfile: %s exists and is not a regular file", path);
}

int config_check(const struct mab_config *cfg, config_report_fn report_fn, void *ctx)
{
	struct check_state cs = { .cfg = cfg, .report = report_fn, .ctx = ctx };

	check_config_file(&cs);
	check_secrets(&cs);
	check_metrics_textfile(&cs);
	return cs.problems;
}
