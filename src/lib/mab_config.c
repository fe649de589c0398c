/* mab_config.c - read mongo-azure-backup.conf.
 *
 * All keys live in one table with their type, bounds and default text; the
 * defaults go through the same parsers as the file, so a default can never be
 * a value the file would reject.  inih does the tokenising.  Its Debian build
 * truncates lines at 199 characters, so our line reader notices longer lines
 * and reports them instead of silently using half a value; long values
 * (SAS connection strings) can be continued on indented lines.
 *
 * This file owns the key table, parsing, load and free; the value types
 * are parsed in mab_config_values.c, the secrets a configuration names are
 * read in mab_config_secrets.c, and -t's checks around the file are in
 * mab_config_check.c.
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
#include "gzip_engine.h"
#include "log.h"
#include "mab_config.h"
#include "secrets.h"
#include "path_template.h"
#include "xio.h"
#include "mab_config_values.h"

#ifndef RUNSTATEDIR
#define RUNSTATEDIR "/run"
#endif
#ifndef LOCALSTATEDIR
#define LOCALSTATEDIR "/var"
#endif

enum key_type {
	KEY_STRING,      /* free text, may be empty */
	KEY_NAME,        /* non-empty text */
	KEY_INT,
	KEY_BOOL,
	KEY_SIZE,        /* 8M */
	KEY_DURATION,    /* 6h */
	KEY_COLLECTIONS, /* list or * */
	KEY_LOG_LEVEL,
	KEY_LOG_TARGET,
	KEY_CATCH_UP,    /* yes / no / auto */
	KEY_ENGINE,      /* zlib / libdeflate / isal / auto */
	KEY_LEVEL,       /* a number, or auto: the engine's own default */
	KEY_THREADS,     /* a number, or auto: the CPUs */
	KEY_AUTH,        /* shared_key / sas / managed_identity / ... / auto */
};

struct key_spec {
	const char *section;
	const char *name;
	enum key_type type;
	size_t offset;
	long long min, max;
	const char *dflt;
	bool joins_without_separator; /* continuation lines glue directly */
};

#define F(field) offsetof(struct mab_config, field)

static const struct key_spec key_table[] = {
	{ "schedule", "cron", KEY_NAME, F(cron), 0, 0, "0 3 * * *", false },
	{ "schedule", "timezone", KEY_NAME, F(timezone), 0, 0, "UTC", false },
	{ "schedule", "catch_up", KEY_CATCH_UP, F(catch_up), 0, 0, "auto", false },

	{ "mongodb", "uri", KEY_STRING, F(mongo_uri), 0, 0, "", true },
	{ "mongodb", "uri_file", KEY_STRING, F(mongo_uri_file), 0, 0, "", false },
	{ "mongodb", "database", KEY_STRING, F(database), 0, 0, "", false },
	{ "mongodb", "databases", KEY_STRING, F(databases), 0, 0, "", false },
	{ "mongodb", "collections", KEY_COLLECTIONS, 0, 0, 0, "*", false },
	{ "mongodb", "users_and_roles", KEY_BOOL, F(users_and_roles), 0, 0, "no", false },

	{ "azure", "connection_string", KEY_STRING, F(connection_string), 0, 0, "", true },
	{ "azure", "connection_string_file", KEY_STRING, F(connection_string_file), 0, 0, "", false },
	{ "azure", "auth", KEY_AUTH, F(azure_auth), 0, 0, "auto", false },
	{ "azure", "account_url", KEY_STRING, F(account_url), 0, 0, "", false },
	{ "azure", "client_id", KEY_STRING, F(client_id), 0, 0, "", false },
	{ "azure", "tenant_id", KEY_STRING, F(tenant_id), 0, 0, "", false },
	{ "azure", "client_secret_file", KEY_STRING, F(client_secret_file), 0, 0, "", false },
	{ "azure", "client_certificate_file", KEY_STRING, F(client_certificate_file), 0, 0, "",
	  false },
	{ "azure", "federated_token_file", KEY_STRING, F(federated_token_file), 0, 0, "", false },
	{ "azure", "authority_host", KEY_STRING, F(authority_host), 0, 0, "", false },
	{ "azure", "identity_endpoint", KEY_STRING, F(identity_endpoint), 0, 0,
	  AZURE_AUTH_DEFAULT_IMDS, false },
	{ "azure", "ca_file", KEY_STRING, F(ca_file), 0, 0, "", false },
	{ "azure", "container", KEY_NAME, F(container), 0, 0, "backups", false },
	{ "azure", "blob_path", KEY_NAME, F(blob_path), 0, 0,
	  "backups/{date}/{database}_{collection}.bson.gz", true },
	{ "azure", "block_size", KEY_SIZE, F(block_size), 1 << 20, 4000LL << 20, "8M", false },
	{ "azure", "upload_concurrency", KEY_INT, F(upload_concurrency), 1, 64, "4", false },
	{ "azure", "create_container", KEY_BOOL, F(create_container), 0, 0, "yes", false },
	{ "azure", "max_retries", KEY_INT, F(max_retries), 0, 20, "5", false },

	{ "retention", "days", KEY_INT, F(retention_days), 1, 36500, "30", false },
	{ "retention", "keep_min", KEY_INT, F(keep_min), 1, 10000, "3", false },

	{ "breaker", "failure_threshold", KEY_INT, F(failure_threshold), 1, 1000, "5", false },
	{ "breaker", "open_seconds", KEY_INT, F(open_seconds), 1, 86400, "30", false },

	/* parallel 0 means "one per CPU", resolved after parsing. */
	{ "limits", "parallel", KEY_INT, F(parallel), 0, 256, "0", false },
	{ "limits", "child_memory", KEY_SIZE, F(child_memory), 0, 1LL << 42, "1G", false },
	{ "limits", "child_cpu", KEY_DURATION, F(child_cpu_seconds), 0, 7 * 86400, "0", false },
	{ "limits", "open_files", KEY_INT, F(child_open_files), 32, 65536, "256", false },
	{ "limits", "run_timeout", KEY_DURATION, F(run_timeout), 10, 7 * 86400, "6h", false },
	{ "limits", "export_retries", KEY_INT, F(export_retries), 0, 100, "2", false },

	{ "compression", "engine", KEY_ENGINE, F(compression_engine), 0, 0, "auto", false },
	{ "compression", "level", KEY_LEVEL, F(compression_level), 0, 12, "auto", false },
	{ "compression", "threads", KEY_THREADS, F(compression_threads), 1, GZIP_THREADS_MAX,
	  "auto", false },

	{ "control", "socket", KEY_NAME, F(control_socket), 0, 0,
	  RUNSTATEDIR "/mongo-azure-backup/control.sock", false },
	{ "control", "group", KEY_STRING, F(control_group), 0, 0, "", false },

	{ "state", "dir", KEY_NAME, F(state_dir), 0, 0,
	  LOCALSTATEDIR "/lib/mongo-azure-backup", false },

	{ "daemon", "pid_file", KEY_NAME, F(pid_file), 0, 0,
	  RUNSTATEDIR "/mongo-azure-backup/mongo-azure-backupd.pid", false },
	{ "daemon", "user", KEY_STRING, F(user), 0, 0, "", false },

	{ "log", "level", KEY_LOG_LEVEL, F(log_level), 0, 0, "info", false },
	{ "log", "target", KEY_LOG_TARGET, F(log_target), 0, 0, "auto", false },
	{ "log", "file", KEY_NAME, F(log_file), 0, 0,
	  LOCALSTATEDIR "/log/mongo-azure-backup.log", false },

	{ "notify", "on_success", KEY_STRING, F(on_success), 0, 0, "", false },
	{ "notify", "on_failure", KEY_STRING, F(on_failure), 0, 0, "", false },
	{ "notify", "timeout", KEY_DURATION, F(hook_timeout), 1, 86400, "60s", false },

	{ "metrics", "textfile", KEY_STRING, F(metrics_textfile), 0, 0, "", false },

	{ "verify", "after_backup", KEY_BOOL, F(verify_after_backup), 0, 0, "no", false },
};

#define N_KEYS (sizeof(key_table) / sizeof(key_table[0]))
_Static_assert(N_KEYS <= MAB_CONFIG_MAX_KEYS, "raise MAB_CONFIG_MAX_KEYS in mab_config.h");

struct parse_state {
	struct mab_config *cfg;
	const char *path;
	config_report_fn report;
	void *ctx;
	int problems;
	FILE *fp;
	int line;                /* line number of the line inih is handling */
	bool line_continues;     /* that line started with whitespace */
	bool line_is_chunk;      /* a further piece of one long physical line */
	char *physical;          /* the physical line being handed out in pieces */
	size_t physical_cap, physical_len, physical_off;
	bool seen[N_KEYS];
	int seen_line[N_KEYS];
	char *raw[N_KEYS];       /* values as written, applied after parsing */
	char last_section[64];
	struct db_section *sections;   /* [mongodb.NAME], in file order */
	size_t n_sections;
};

static void report(struct parse_state *ps, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void report(struct parse_state *ps, int line, const char *fmt, ...)
{
	char text[1024];
	char msg[1400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	snprintf(msg, sizeof(msg), "%s:%d: %s", ps->path, line, text);
	ps->problems++;
	if (ps->report != NULL)
		ps->report(ps->ctx, msg);
}

static int set_collections(struct parse_state *ps, int line, const char *value)
{
	char err[512];

	if (config_parse_names(value, false, &ps->cfg->collections, err, sizeof(err)) != 0) {
		report(ps, line, "%s", err);
		return -1;
	}
	return 0;
}

static bool whole_in_range(const char *value, const struct key_spec *spec, int *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(value, &end, 10);
	if (*value == '\0' || *end != '\0' || errno != 0 || v < spec->min || v > spec->max)
		return false;
	*out = (int)v;
	return true;
}

/* Parses value into the field of spec; reports and returns -1 when invalid. */
static int apply_value(struct parse_state *ps, const struct key_spec *spec,
		       int line, const char *value)
{
	char *base = (char *)ps->cfg;
	uint64_t size;
	int n;
	bool b;

	switch (spec->type) {
	case KEY_NAME:
		if (*value == '\0') {
			report(ps, line, "%s: a value is required", spec->name);
			return -1;
		}
		/* fall through */
	case KEY_STRING: {
		char *copy = strdup(value);
		char **field = (char **)(base + spec->offset);
		if (copy == NULL) {
			report(ps, line, "out of memory");
			return -1;
		}
		free(*field);
		*field = copy;
		return 0;
	}
	case KEY_INT:
		if (!whole_in_range(value, spec, &n)) {
			report(ps, line, "%s: '%s' is not a whole number from %lld to %lld",
			       spec->name, value, spec->min, spec->max);
			return -1;
		}
		*(int *)(base + spec->offset) = n;
		return 0;
	case KEY_BOOL:
		if (config_parse_bool(value, &b) != 0) {
			report(ps, line, "%s: '%s' is not yes or no", spec->name, value);
			return -1;
		}
		*(bool *)(base + spec->offset) = b;
		return 0;
	case KEY_SIZE:
		if (config_parse_size(value, &size) != 0 ||
		    size < (uint64_t)spec->min || size > (uint64_t)spec->max) {
			report(ps, line, "%s: '%s' is not a size from %lldK to %lldM "
			       "(a number with an optional K, M, G or T suffix)",
			       spec->name, value, spec->min >> 10, spec->max >> 20);
			return -1;
		}
		*(uint64_t *)(base + spec->offset) = size;
		return 0;
	case KEY_DURATION:
		if (config_parse_duration(value, &n) != 0 || n < spec->min || n > spec->max) {
			report(ps, line, "%s: '%s' is not a duration from %llds to %llds "
			       "(a number with an optional s, m, h or d suffix)",
			       spec->name, value, spec->min, spec->max);
			return -1;
		}
		*(int *)(base + spec->offset) = n;
		return 0;
	case KEY_COLLECTIONS:
		return set_collections(ps, line, value);
	case KEY_LOG_LEVEL:
		n = log_level_from_name(value);
		if (n < 0) {
			report(ps, line, "level: '%s' is not one of error, warning, notice, "
			       "info, debug", value);
			return -1;
		}
		*(int *)(base + spec->offset) = n;
		return 0;
	case KEY_LOG_TARGET:
		if (strcasecmp(value, "syslog") == 0)
			n = LOG_TARGET_SYSLOG;
		else if (strcasecmp(value, "stderr") == 0)
			n = LOG_TARGET_STDERR;
		else if (strcasecmp(value, "file") == 0)
			n = LOG_TARGET_FILE;
		else if (strcasecmp(value, "auto") == 0)
			n = -1;
		else {
			report(ps, line, "target: '%s' is not auto, syslog, stderr or file", value);
			return -1;
		}
		*(int *)(base + spec->offset) = n;
		return 0;
	case KEY_ENGINE:
		n = strcasecmp(value, "auto") == 0 ? -1 : gzip_engine_from_name(value);
		if (n < 0 && strcasecmp(value, "auto") != 0) {
			report(ps, line, "engine: '%s' is not zlib, libdeflate, isal or auto",
			       value);
			return -1;
		}
		*(int *)(base + spec->offset) = n;
		return 0;
	case KEY_AUTH: {
		static const char *const names[] = {
			[AZURE_AUTH_SHARED_KEY] = "shared_key", [AZURE_AUTH_SAS] = "sas",
			[AZURE_AUTH_MANAGED_IDENTITY] = "managed_identity",
			[AZURE_AUTH_SERVICE_PRINCIPAL] = "service_principal",
			[AZURE_AUTH_WORKLOAD_IDENTITY] = "workload_identity",
		};
		n = -2;
		if (strcasecmp(value, "auto") == 0)
			n = -1;
		for (int i = 0; i < (int)(sizeof(names) / sizeof(names[0])); i++)
			if (strcasecmp(value, names[i]) == 0)
				n = i;
		if (n == -2) {
			report(ps, line, "auth: '%s' is not shared_key, sas, managed_identity, "
			       "service_principal, workload_identity or auto", value);
			return -1;
		}
		*(int *)(base + spec->offset) = n;
		return 0;
	}
	case KEY_LEVEL:
	case KEY_THREADS:
		if (strcasecmp(value, "auto") == 0) {
			/* level: the engine's default, resolved with the engine;
			 * threads: 0, resolved where the compressing happens. */
			*(int *)(base + spec->offset) = spec->type == KEY_LEVEL ? -1 : 0;
			return 0;
		}
		if (!whole_in_range(value, spec, &n)) {
			report(ps, line, "%s: '%s' is not auto or a whole number from %lld to %lld",
			       spec->name, value, spec->min, spec->max);
			return -1;
		}
		*(int *)(base + spec->offset) = n;
		return 0;
	case KEY_CATCH_UP:
		if (strcasecmp(value, "auto") == 0)
			n = -1;
		else if (config_parse_bool(value, &b) == 0)
			n = b;
		else {
			report(ps, line, "catch_up: '%s' is not yes, no or auto", value);
			return -1;
		}
		*(int *)(base + spec->offset) = n;
		return 0;
	}
	return -1;
}

static const struct key_spec *find_key(const char *section, const char *name, size_t *index)
{
	for (size_t i = 0; i < N_KEYS; i++) {
		if (strcasecmp(key_table[i].section, section) == 0 &&
		    strcasecmp(key_table[i].name, name) == 0) {
			*index = i;
			return &key_table[i];
		}
	}
	return NULL;
}

static bool section_known(const char *section)
{
	for (size_t i = 0; i < N_KEYS; i++)
		if (strcasecmp(key_table[i].section, section) == 0)
			return true;
	return false;
}

/* A key of [mongodb.NAME]: only collections, parsed with the rest. */
static int database_section(struct parse_state *ps, const char *section, const char *database,
			    const char *name, const char *value)
{
	struct db_section *sec = ps->n_sections ? &ps->sections[ps->n_sections - 1] : NULL;

	if (sec == NULL || strcmp(ps->last_section, section) != 0) {
		struct db_section *grown = realloc(ps->sections,
						   (ps->n_sections + 1) * sizeof(*grown));
		if (grown == NULL) {
			report(ps, ps->line, "out of memory");
			return 1;
		}
		ps->sections = grown;
		sec = &ps->sections[ps->n_sections];
		memset(sec, 0, sizeof(*sec));
		sec->database = strdup(database);
		sec->line = ps->line;
		if (sec->database == NULL) {
			report(ps, ps->line, "out of memory");
			return 1;
		}
		ps->n_sections++;
		snprintf(ps->last_section, sizeof(ps->last_section), "%s", section);
	}
	if (strcasecmp(name, "collections") != 0) {
		report(ps, ps->line, "unknown key '%s' in section [%s] (it takes collections)",
		       name, section);
		return 1;
	}
	char *joined = NULL;
	if (sec->raw != NULL && !ps->line_continues) {
		report(ps, ps->line, "'collections' in [%s] is already set on line %d", section,
		       sec->raw_line);
		return 1;
	}
	if (asprintf(&joined, "%s%s%s", sec->raw ? sec->raw : "",
		     sec->raw && !ps->line_is_chunk ? " " : "", value) < 0) {
		report(ps, ps->line, "out of memory");
		return 1;
	}
	free(sec->raw);
	sec->raw = joined;
	if (sec->raw_line == 0)
		sec->raw_line = ps->line;
	return 1;
}

static int config_ini_handler(void *user, const char *section, const char *name,
			      const char *value)
{
	struct parse_state *ps = user;
	const struct key_spec *spec;
	size_t index;

	if (strncasecmp(section, "mongodb.", 8) == 0)
		return database_section(ps, section, section + 8, name, value);
	if (!section_known(section)) {
		/* One report per unknown section, not one per key in it. */
		if (strcmp(ps->last_section, section) != 0)
			report(ps, ps->line, "unknown section [%s]", section);
		snprintf(ps->last_section, sizeof(ps->last_section), "%s", section);
		return 1;
	}
	snprintf(ps->last_section, sizeof(ps->last_section), "%s", section);
	spec = find_key(section, name, &index);
	if (spec == NULL) {
		report(ps, ps->line, "unknown key '%s' in section [%s]", name, section);
		return 1;
	}

	if (ps->seen[index] && ps->line_continues) {
		/* The rest of a long line is glued on as it was; an indented
		 * continuation line is joined as the key's type wants. */
		const char *sep = ps->line_is_chunk || spec->joins_without_separator ? "" : " ";
		char *joined = NULL;
		if (ps->raw[index] == NULL ||
		    asprintf(&joined, "%s%s%s", ps->raw[index], sep, value) < 0) {
			report(ps, ps->line, "%s: out of memory", name);
			return 1;
		}
		free(ps->raw[index]);
		ps->raw[index] = joined;
		return 1;
	}
	if (ps->seen[index]) {
		report(ps, ps->line, "'%s' in [%s] is already set on line %d", name,
		       section, ps->seen_line[index]);
		return 1;
	}
	ps->seen[index] = true;
	ps->seen_line[index] = ps->line;
	ps->raw[index] = strdup(value);
	if (ps->raw[index] == NULL)
		report(ps, ps->line, "%s: out of memory", name);
	return 1;
}

/* inih's line reader.  We count physical lines ourselves, and hand a line
 * longer than inih's buffer over in pieces, each further piece looking like
 * an indented continuation line, which the handler glues back together. */
static char *config_line_reader(char *str, int num, void *stream)
{
	struct parse_state *ps = stream;
	size_t room = (size_t)num - 2;   /* leave space for the NUL and a lead space */

	if (ps->physical_off < ps->physical_len) {
		size_t take = ps->physical_len - ps->physical_off;
		if (take > room)
			take = room;
		str[0] = ' ';
		memcpy(str + 1, ps->physical + ps->physical_off, take);
		str[take + 1] = '\0';
		ps->physical_off += take;
		ps->line_continues = true;
		ps->line_is_chunk = true;
		return str;
	}

	ssize_t len = getline(&ps->physical, &ps->physical_cap, ps->fp);
	if (len < 0)
		return NULL;
	ps->line++;
	ps->line_is_chunk = false;
	ps->line_continues = (ps->physical[0] == ' ' || ps->physical[0] == '\t') &&
			     ps->physical[strspn(ps->physical, " \t\r\n")] != '\0';
	while (len > 0 && (ps->physical[len - 1] == '\n' || ps->physical[len - 1] == '\r'))
		ps->physical[--len] = '\0';
	if (memchr(ps->physical, '\0', (size_t)len) != NULL) {
		report(ps, ps->line, "line contains a NUL byte");
		len = 0;
	}
	size_t take = (size_t)len < room ? (size_t)len : room;
	memcpy(str, ps->physical, take);
	str[take] = '\0';
	ps->physical_len = (size_t)len;
	ps->physical_off = take;
	return str;
}

/* Applies the collected values in the order of their lines, so problems are
 * reported in file order. */
static void apply_all(struct parse_state *ps)
{
	size_t order[N_KEYS], n = 0;

	for (size_t i = 0; i < N_KEYS; i++)
		if (ps->seen[i] && ps->raw[i] != NULL)
			order[n++] = i;
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && ps->seen_line[order[j]] < ps->seen_line[order[j - 1]]; j--) {
			size_t t = order[j];
			order[j] = order[j - 1];
			order[j - 1] = t;
		}
	for (size_t i = 0; i < n; i++)
		apply_value(ps, &key_table[order[i]], ps->seen_line[order[i]], ps->raw[order[i]]);
	for (size_t i = 0; i < N_KEYS; i++) {
		free(ps->raw[i]);
		ps->raw[i] = NULL;
	}
}

static int line_of(const struct parse_state *ps, const char *section, const char *name)
{
	size_t index;

	if (find_key(section, name, &index) == NULL)
		return 0;
	return ps->seen[index] ? ps->seen_line[index] : 0;
}

/* Azure's container rule: 3-63 of [a-z0-9-], starting with a letter or
 * digit, no "--", not ending in '-'. */
static bool container_name_ok(const char *name)
{
	size_t len = strlen(name);

	if (len < 3 || len > 63 || name[0] == '-' || name[len - 1] == '-')
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return false;
		if (c == '-' && name[i + 1] == '-')
			return false;
	}
	return true;
}

/* A schedule that parses but never fires would leave the daemon idle for
 * ever: -t refuses it. */
static void check_schedule(struct parse_state *ps)
{
	struct mab_config *cfg = ps->cfg;
	struct cron_expr expr;
	char err[256];
	time_t next;
	bool zone_ok = cron_zone_check(cfg->timezone, err, sizeof(err)) == 0;

	if (!zone_ok)
		report(ps, line_of(ps, "schedule", "timezone"),
		       "timezone: '%s' is not a time zone known to this system "
		       "(an IANA name such as Europe/Berlin; is tzdata installed?): %s",
		       cfg->timezone, err);
	if (cron_parse(cfg->cron, &expr, err, sizeof(err)) != 0) {
		report(ps, line_of(ps, "schedule", "cron"), "cron: %s", err);
		return;
	}
	if (zone_ok && cron_next(&expr, cfg->timezone, time(NULL), &next, err,
				 sizeof(err)) == 1)
		report(ps, line_of(ps, "schedule", "cron"),
		       "cron: '%s' never fires (no occurrence before the year 10000)",
		       cfg->cron);
}

static const char *auth_name(int auth)
{
	switch (auth) {
	case AZURE_AUTH_SHARED_KEY: return "shared_key";
	case AZURE_AUTH_SAS: return "sas";
	case AZURE_AUTH_MANAGED_IDENTITY: return "managed_identity";
	case AZURE_AUTH_SERVICE_PRINCIPAL: return "service_principal";
	case AZURE_AUTH_WORKLOAD_IDENTITY: return "workload_identity";
	default: return "auto";
	}
}

/* Fills an unset key from the environment (what AKS and the Azure SDKs
 * set); the value then counts as the file's. */
static void from_env(char **field, const char *env)
{
	const char *v = getenv(env);

	if (**field == '\0' && v != NULL && *v != '\0') {
		char *copy = strdup(v);
		if (copy != NULL) {
			free(*field);
			*field = copy;
		}
	}
}

/* A tenant or client id goes into a URL: a GUID or a domain name. */
static bool id_ok(const char *id)
{
	size_t len = strlen(id);

	return len > 0 && len <= 100 && strspn(id, "abcdefghijklmnopqrstuvwxyz"
					       "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") == len;
}

static bool url_ok(const char *url, bool https_only)
{
	const char *rest;

	if (strncmp(url, "https://", 8) == 0)
		rest = url + 8;
	else if (!https_only && strncmp(url, "http://", 7) == 0)
		rest = url + 7;
	else
		return false;
	return *rest != '\0' && *rest != '/' && strpbrk(url, " \t\"'<>\\?#") == NULL;
}

static bool connection_string_given(const struct mab_config *cfg)
{
	const char *env = getenv("AZURE_STORAGE_CONNECTION_STRING");

	return *cfg->connection_string || *cfg->connection_string_file ||
	       (env != NULL && *env != '\0') || secrets_lookup_present(SECRET_CONNECTION_STRING);
}

/* [azure] auth and the keys each source needs: named ones present,
 * others' absent (a key that would be ignored is a mistake to report). */
static void check_azure_auth(struct parse_state *ps)
{
	struct mab_config *cfg = ps->cfg;
	int auth = cfg->azure_auth;
	bool have_cs = connection_string_given(cfg);

	from_env(&cfg->authority_host, "AZURE_AUTHORITY_HOST");
	if (*cfg->authority_host == '\0') {
		free(cfg->authority_host);
		cfg->authority_host = strdup(AZURE_AUTH_DEFAULT_AUTHORITY);
	}
	if (auth == AZURE_AUTH_WORKLOAD_IDENTITY) {
		/* What the AKS webhook injects into the pod. */
		from_env(&cfg->client_id, "AZURE_CLIENT_ID");
		from_env(&cfg->tenant_id, "AZURE_TENANT_ID");
		from_env(&cfg->federated_token_file, "AZURE_FEDERATED_TOKEN_FILE");
	}
	if (auth < 0 && !have_cs && *cfg->account_url)
		auth = cfg->azure_auth = AZURE_AUTH_MANAGED_IDENTITY;
	bool token = auth >= AZURE_AUTH_MANAGED_IDENTITY;
	const char *name = auth_name(auth);

	if (*cfg->account_url && !url_ok(cfg->account_url, true))
		report(ps, line_of(ps, "azure", "account_url"),
		       "account_url: '%s' is not an https:// URL such as "
		       "https://ACCOUNT.blob.core.windows.net", cfg->account_url);
	if (token && *cfg->account_url == '\0')
		report(ps, line_of(ps, "azure", "auth"),
		       "auth = %s needs account_url (https://ACCOUNT.blob.core.windows.net)",
		       name);
	if (token && (*cfg->connection_string || *cfg->connection_string_file))
		report(ps, line_of(ps, "azure", *cfg->connection_string ? "connection_string"
								       : "connection_string_file"),
		       "a connection string is not used with auth = %s: the endpoint is "
		       "account_url and the credential a token", name);
	if (!token && *cfg->account_url && auth >= 0)
		report(ps, line_of(ps, "azure", "account_url"),
		       "account_url is for token sign-in; auth = %s takes the endpoint and "
		       "the credential from the connection string", name);
	if (!url_ok(cfg->authority_host, true))
		report(ps, line_of(ps, "azure", "authority_host"),
		       "authority_host: '%s' is not an https:// URL", cfg->authority_host);
	if (!url_ok(cfg->identity_endpoint, false))
		report(ps, line_of(ps, "azure", "identity_endpoint"),
		       "identity_endpoint: '%s' is not an http(s):// URL", cfg->identity_endpoint);
	if (*cfg->ca_file && access(cfg->ca_file, R_OK) != 0)
		report(ps, line_of(ps, "azure", "ca_file"), "ca_file: cannot read %s: %s",
		       cfg->ca_file, strerror(errno));

	bool need_ids = auth == AZURE_AUTH_SERVICE_PRINCIPAL ||
			auth == AZURE_AUTH_WORKLOAD_IDENTITY;
	if (need_ids && *cfg->client_id == '\0')
		report(ps, line_of(ps, "azure", "auth"), "auth = %s needs client_id "
		       "(the application's id)%s", name,
		       auth == AZURE_AUTH_WORKLOAD_IDENTITY ? " or AZURE_CLIENT_ID" : "");
	if (need_ids && *cfg->tenant_id == '\0')
		report(ps, line_of(ps, "azure", "auth"), "auth = %s needs tenant_id%s", name,
		       auth == AZURE_AUTH_WORKLOAD_IDENTITY ? " or AZURE_TENANT_ID" : "");
	if (*cfg->client_id && !id_ok(cfg->client_id))
		report(ps, line_of(ps, "azure", "client_id"),
		       "client_id: '%s' is not an id (a GUID)", cfg->client_id);
	if (*cfg->tenant_id && !id_ok(cfg->tenant_id))
		report(ps, line_of(ps, "azure", "tenant_id"),
		       "tenant_id: '%s' is not a tenant id (a GUID or a domain name)",
		       cfg->tenant_id);
	if (auth == AZURE_AUTH_SERVICE_PRINCIPAL &&
	    (*cfg->client_secret_file != '\0') == (*cfg->client_certificate_file != '\0'))
		report(ps, line_of(ps, "azure", "auth"), "auth = service_principal needs "
		       "client_secret_file or client_certificate_file (one of them)");
	if (auth == AZURE_AUTH_WORKLOAD_IDENTITY && *cfg->federated_token_file == '\0')
		report(ps, line_of(ps, "azure", "auth"), "auth = workload_identity needs "
		       "federated_token_file or AZURE_FEDERATED_TOKEN_FILE");

	/* Keys another source would read, set for this one: a mistake. */
	static const struct {
		const char *key;
		size_t offset;
		unsigned mask;      /* the auths that read it */
	} used_by[] = {
		{ "client_id", F(client_id), 1u << AZURE_AUTH_MANAGED_IDENTITY |
			1u << AZURE_AUTH_SERVICE_PRINCIPAL | 1u << AZURE_AUTH_WORKLOAD_IDENTITY },
		{ "tenant_id", F(tenant_id), 1u << AZURE_AUTH_SERVICE_PRINCIPAL |
			1u << AZURE_AUTH_WORKLOAD_IDENTITY },
		{ "client_secret_file", F(client_secret_file), 1u << AZURE_AUTH_SERVICE_PRINCIPAL },
		{ "client_certificate_file", F(client_certificate_file),
		  1u << AZURE_AUTH_SERVICE_PRINCIPAL },
		{ "federated_token_file", F(federated_token_file),
		  1u << AZURE_AUTH_WORKLOAD_IDENTITY },
	};
	for (size_t i = 0; i < sizeof(used_by) / sizeof(used_by[0]); i++) {
		const char *v = *(char **)((char *)cfg + used_by[i].offset);
		int line = line_of(ps, "azure", used_by[i].key);
		/* Only what the file says: the environment may carry values
		 * for other programs. */
		if (*v && line > 0 && (auth < 0 || !(used_by[i].mask & (1u << auth))))
			report(ps, line, "%s is not used with auth = %s", used_by[i].key, name);
	}
}

/* Picks the default engine and level when not named, and holds a named
 * level to its engine's range. */
static void check_compression(struct parse_state *ps)
{
	struct mab_config *cfg = ps->cfg;
	int min, max, dflt;

	if (cfg->compression_engine < 0)
		cfg->compression_engine = gzip_engine_default();
	if (!gzip_engine_built_in(cfg->compression_engine)) {
		report(ps, line_of(ps, "compression", "engine"),
		       "engine: %s is not built into this program (built in: %s; "
		       "configure looks for lib%s-dev)",
		       gzip_engine_name(cfg->compression_engine), gzip_engines_built_in(),
		       cfg->compression_engine == GZIP_ENGINE_ISAL ? "isal" : "deflate");
		cfg->compression_engine = GZIP_ENGINE_ZLIB;
	}
	gzip_engine_levels(cfg->compression_engine, &min, &max, &dflt);
	if (cfg->compression_level < 0) {
		cfg->compression_level = dflt;
	} else if (cfg->compression_level < min || cfg->compression_level > max) {
		report(ps, line_of(ps, "compression", "level"),
		       "level: %d is outside %s's levels, %d to %d",
		       cfg->compression_level, gzip_engine_name(cfg->compression_engine),
		       min, max);
		cfg->compression_level = dflt;
	}
}

static void report_at(void *ctx, int line, const char *message)
{
	report(ctx, line, "%s", message);
}

/* The databases and collections a run backs up, and blob names that
 * tell them apart. */
static void check_scopes(struct parse_state *ps)
{
	struct mab_config *cfg = ps->cfg;
	struct scope_input in = {
		.sections = ps->sections, .n_sections = ps->n_sections,
		.collections = cfg->collections,
		.database_line = line_of(ps, "mongodb", "database"),
		.databases_line = line_of(ps, "mongodb", "databases"),
		.collections_line = line_of(ps, "mongodb", "collections"),
	};

	for (size_t i = 0; i < ps->n_sections; i++) {
		struct db_section *sec = &ps->sections[i];
		char err[512];
		if (sec->raw == NULL)
			continue;
		sec->has_collections = true;
		if (config_parse_names(sec->raw, false, &sec->collections, err, sizeof(err)) != 0)
			report(ps, sec->raw_line, "[mongodb.%s] %s", sec->database, err);
	}
	if (config_resolve_scopes(cfg, &in, report_at, ps) != 0 ||
	    path_template_check(cfg->blob_path, (char[8]){ 0 }, 8) != 0)
		return;
	bool several = cfg->all_databases || cfg->n_scopes > 1;
	if (several && strstr(cfg->blob_path, "{database}") == NULL) {
		report(ps, line_of(ps, "azure", "blob_path"),
		       "blob_path: '%s' has no {database}, so the same collection name in two "
		       "databases would get one blob; with several databases put {database} "
		       "in its last segment (the default is "
		       "backups/{date}/{database}_{collection}.bson.gz)", cfg->blob_path);
		return;
	}
	/* Named collections: their names, rendered, must differ
	 * ("a_b" + "c" and "a" + "b_c" give one name with {database}_). */
	size_t n = 0;
	for (size_t i = 0; i < cfg->n_scopes; i++)
		n += cfg->scopes[i].collections.n;
	char (*names)[BLOB_NAME_MAX] = n ? calloc(n, BLOB_NAME_MAX) : NULL;
	const char **owner = n ? calloc(n, 2 * sizeof(char *)) : NULL;
	if (n && (names == NULL || owner == NULL))
		goto out;
	size_t k = 0;
	for (size_t i = 0; i < cfg->n_scopes; i++) {
		const struct mongo_scope *sc = &cfg->scopes[i];
		for (size_t c = 0; c < sc->collections.n; c++, k++) {
			owner[2 * k] = sc->database;
			owner[2 * k + 1] = sc->collections.names[c];
			if (path_template_render(cfg->blob_path, sc->database,
						 sc->collections.names[c], 0, names[k],
						 BLOB_NAME_MAX) != 0) {
				report(ps, line_of(ps, "azure", "blob_path"), "blob_path: the blob "
				       "name of %s.%s would be longer than %d bytes", sc->database,
				       sc->collections.names[c], BLOB_NAME_MAX - 1);
				goto out;
			}
			for (size_t m = 0; m < k; m++)
				if (strcmp(names[m], names[k]) == 0) {
					report(ps, line_of(ps, "azure", "blob_path"),
					       "blob_path: %s.%s and %s.%s would both be written "
					       "to %s", owner[2 * m], owner[2 * m + 1], sc->database,
					       sc->collections.names[c], names[k]);
					goto out;
				}
		}
	}
out:
	free(names);
	free(owner);
}

static void check_whole(struct parse_state *ps)
{
	struct mab_config *cfg = ps->cfg;

	char err[256];
	if (path_template_check(cfg->blob_path, err, sizeof(err)) != 0)
		report(ps, line_of(ps, "azure", "blob_path"), "blob_path: %s", err);
	if (!container_name_ok(cfg->container))
		report(ps, line_of(ps, "azure", "container"),
		       "container: '%s' is not a valid container name (3-63 lowercase "
		       "letters, digits and single hyphens)", cfg->container);
	check_scopes(ps);
	if (*cfg->connection_string && *cfg->connection_string_file)
		report(ps, line_of(ps, "azure", "connection_string_file"),
		       "set connection_string or connection_string_file, not both");
	if (*cfg->mongo_uri && *cfg->mongo_uri_file)
		report(ps, line_of(ps, "mongodb", "uri_file"),
		       "set uri or uri_file, not both");
	check_schedule(ps);
	check_compression(ps);
	check_azure_auth(ps);
	if (cfg->parallel == 0) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);
		cfg->parallel = cpus > 0 ? (int)cpus : 1;
	}
}

void config_defaults(struct mab_config *cfg)
{
	struct parse_state ps = { .cfg = cfg, .path = "(defaults)" };

	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < N_KEYS; i++)
		if (apply_value(&ps, &key_table[i], 0, key_table[i].dflt) != 0)
			msg_fatal(70, "internal: default for %s.%s does not parse",
				  key_table[i].section, key_table[i].name);
	check_scopes(&ps);
	check_compression(&ps);
	if (*cfg->authority_host == '\0') {
		free(cfg->authority_host);
		cfg->authority_host = strdup(AZURE_AUTH_DEFAULT_AUTHORITY);
	}
	if (cfg->parallel == 0) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);
		cfg->parallel = cpus > 0 ? (int)cpus : 1;
	}
}

#define CONFIG_MAX (1 << 20)

static int read_whole_file(const char *path, char **text, size_t *len,
			   struct parse_state *ps)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	*text = NULL;
	*len = 0;
	if (fd < 0) {
		report(ps, 0, "cannot open: %s", strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > CONFIG_MAX) {
		report(ps, 0, "not a regular file of at most %d bytes", CONFIG_MAX);
		close(fd);
		return -1;
	}
	*text = malloc((size_t)st.st_size + 1);
	if (*text == NULL) {
		report(ps, 0, "out of memory");
		close(fd);
		return -1;
	}
	n = xread_full(fd, *text, (size_t)st.st_size);
	close(fd);
	if (n < 0) {
		report(ps, 0, "read error: %s", strerror(errno));
		return -1;
	}
	(*text)[n] = '\0';
	*len = (size_t)n;
	return 0;
}

int config_load(const char *path, struct mab_config *cfg,
		config_report_fn report_fn, void *ctx)
{
	struct parse_state ps = { .cfg = cfg, .path = path, .report = report_fn, .ctx = ctx };
	int rc;

	config_defaults(cfg);
	/* Resolved again once the file is read: they depend on other keys. */
	cfg->parallel = 0;
	cfg->compression_engine = -1;
	cfg->compression_level = -1;
	free(cfg->authority_host);
	cfg->authority_host = strdup("");
	cfg->path = strdup(path);
	if (read_whole_file(path, &cfg->text, &cfg->text_len, &ps) != 0)
		return ps.problems;
	/* The text read once is what is parsed, and what the children get:
	 * an edit to the file after this cannot reach a run. */
	rc = 0;
	if (cfg->text_len > 0) {
		ps.fp = fmemopen(cfg->text, cfg->text_len, "r");
		if (ps.fp == NULL) {
			report(&ps, 0, "cannot parse: %s", strerror(errno));
			return ps.problems;
		}
		rc = ini_parse_stream(config_line_reader, &ps, config_ini_handler, &ps);
		fclose(ps.fp);
	}
	free(ps.physical);
	apply_all(&ps);
	for (size_t i = 0; i < N_KEYS; i++)
		cfg->key_lines[i] = ps.seen[i] ? ps.seen_line[i] : 0;
	if (rc > 0) {
		/* inih found a line that is neither a section, a key nor a comment. */
		report(&ps, rc, "syntax error: expected [section] or key = value");
	} else if (rc < 0) {
		report(&ps, 0, "cannot parse (out of memory?)");
	}
	check_whole(&ps);
	for (size_t i = 0; i < ps.n_sections; i++) {
		free(ps.sections[i].database);
		free(ps.sections[i].raw);
		name_list_free(&ps.sections[i].collections);
	}
	free(ps.sections);
	return ps.problems;
}

void config_free(struct mab_config *cfg)
{
	for (size_t i = 0; i < N_KEYS; i++) {
		if (key_table[i].type == KEY_STRING || key_table[i].type == KEY_NAME) {
			char **field = (char **)((char *)cfg + key_table[i].offset);
			free(*field);
			*field = NULL;
		}
	}
	name_list_free(&cfg->collections);
	config_free_scopes(cfg);
	free(cfg->path);
	cfg->path = NULL;
	if (cfg->text != NULL)
		explicit_bzero(cfg->text, cfg->text_len);
	free(cfg->text);
	cfg->text = NULL;
	cfg->text_len = 0;
}

int config_key_line(const struct mab_config *cfg, const char *section, const char *name)
{
	size_t index;

	if (find_key(section, name, &index) == NULL)
		return 0;
	return cfg->key_lines[index];
}
